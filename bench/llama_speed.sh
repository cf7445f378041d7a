#!/usr/bin/env bash
# Issue 18's decoder reward model beside MiniLM, on a small budget: `prm train` (1 epoch, the
# first 64 comparisons of lengthpref's train.jsonl, defaults otherwise, no validation split, no
# seen-user refit) and `prm eval` (the first 100 comparisons of dev.jsonl) with
# all-MiniLM-L6-v2 and with SmolLM2-135M-Instruct (the GGUF file, dequantized to fp32), one after
# the other in the same run. Training tokens/s are the trainer's own (train_log.jsonl); wall time
# and peak RSS from /usr/bin/time -v. 64 comparisons say nothing about accuracy: the eval is
# there for its speed.
#
#   bash bench/llama_speed.sh                  # under the CPU lock ($LOCK)
#   LOCK= bash bench/llama_speed.sh            # without it (then the machine is not quiet: say so)
# Results: bench/results/llama_speed.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PRM=${PRM:-.build/release/prm}
LOCK=${LOCK-/tmp/prm-cpu.lock}
WORK=${WORK:-runs/llama_speed}
OUT=bench/results/llama_speed
mkdir -p "$WORK"
head -64 data/lengthpref/train.jsonl > "$WORK/train64.jsonl"
head -100 data/lengthpref/dev.jsonl > "$WORK/dev100.jsonl"
locked() { if [[ -n "$LOCK" ]]; then flock "$LOCK" "$@"; else "$@"; fi; }
cat /proc/loadavg > "$WORK/loadavg.before"
for name in minilm smollm2; do
    case $name in
        minilm) backbone=models/all-MiniLM-L6-v2 ;;
        smollm2) backbone=models/SmolLM2-135M-Instruct.Q4_1.gguf ;;
    esac
    rm -rf "$WORK/run-$name"
    locked /usr/bin/time -v "$PRM" train --backbone "$backbone" --data "$WORK/train64.jsonl" --out "$WORK/run-$name" \
        --epochs 1 --val-fraction 0 --no-refit-seen 2> "$WORK/train-$name.time"
    locked /usr/bin/time -v "$PRM" eval --model "$WORK/run-$name" --data "$WORK/dev100.jsonl" --json "$WORK/eval-$name.json" \
        > "$WORK/eval-$name.txt" 2> "$WORK/eval-$name.time"
done
cat /proc/loadavg > "$WORK/loadavg.after"
python3 - "$WORK" "$OUT" "${LOCK:+locked}" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from gnu_time import timed
work, out, locked = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
rows = {}
for name in ["minilm", "smollm2"]:
    log = [json.loads(l) for l in open(f"{work}/run-{name}/train_log.jsonl")]
    train_wall, train_rss = timed(f"{work}/train-{name}.time")
    eval_wall, eval_rss = timed(f"{work}/eval-{name}.time")
    report = json.load(open(f"{work}/eval-{name}.json"))
    rows[name] = dict(train_tokens_per_second=log[-1]["tokens_per_second"], train_steps=log[-1]["step"],
                      train_wall_seconds=train_wall, train_peak_rss_mb=train_rss,
                      eval_wall_seconds=eval_wall, eval_comparisons=report["overall"]["n"],
                      eval_comparisons_per_second=report["overall"]["n"] / eval_wall, eval_peak_rss_mb=eval_rss,
                      dev100_accuracy=report["overall"]["accuracy"])
ratio = {k: rows["smollm2"][k] / rows["minilm"][k] for k in ["train_tokens_per_second", "eval_comparisons_per_second"]}
result = dict(command="bash bench/llama_speed.sh" if locked else "LOCK= bash bench/llama_speed.sh", lock=bool(locked),
              loadavg_before=open(f"{work}/loadavg.before").read().split()[:3], loadavg_after=open(f"{work}/loadavg.after").read().split()[:3],
              runs=rows, smollm2_over_minilm=ratio)
json.dump(result, open(out + ".json", "w"), indent=2)
lines = [f"# SmolLM2-135M (GGUF, fp32) beside all-MiniLM-L6-v2 as a reward-model backbone", "",
         f"`{result['command']}`; load average before {' '.join(result['loadavg_before'])}, after {' '.join(result['loadavg_after'])}"
         + ("" if locked else " (run without the CPU lock: the machine was shared)") + ".", "",
         "| backbone | train tokens/s | train wall s | train peak RSS MB | eval comparisons/s | eval peak RSS MB | dev100 acc |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for name, r in rows.items():
    lines.append(f"| {name} | {r['train_tokens_per_second']:.0f} | {r['train_wall_seconds']:.0f} | {r['train_peak_rss_mb']:.0f} | "
                 f"{r['eval_comparisons_per_second']:.2f} | {r['eval_peak_rss_mb']:.0f} | {r['dev100_accuracy']:.3f} |")
lines += ["", f"SmolLM2 / MiniLM: training tokens/s × {ratio['train_tokens_per_second']:.3f}, scoring comparisons/s × {ratio['eval_comparisons_per_second']:.3f}.",
          "", "1 epoch on 64 comparisons (4 steps of 16): the accuracies are not a quality result."]
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
