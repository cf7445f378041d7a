#!/usr/bin/env bash
# Scoring memory of a SmolLM2 reward model before and after the lean Llama inference pass
# (LlamaLayerStack): `prm eval` on the first 100 comparisons of lengthpref's dev.jsonl with two prm
# binaries, one after the other in the same run, under the CPU lock ($LOCK). Wall time and peak RSS
# from /usr/bin/time -v; the accuracies must agree (same model, same scores up to float rounding).
#
#   BEFORE=/tmp/prm-main AFTER=.build/release/prm bash bench/llama_eval_memory.sh [CHECKPOINT]
# CHECKPOINT: a reward model from `prm train --backbone models/SmolLM2-135M-Instruct.Q4_1.gguf`
# (default runs/decoder-rm, which bench/decoder_vs_transformers.py trains).
# Results: bench/results/llama_eval_memory.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BEFORE:?BEFORE=<prm binary before>}" "${AFTER:?AFTER=<prm binary after>}"
CHECKPOINT=${1:-runs/decoder-rm}
LOCK=${LOCK-/tmp/prm-cpu.lock}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=bench/results/llama_eval_memory
head -100 data/lengthpref/dev.jsonl > "$WORK/dev100.jsonl"
locked() { if [[ -n "$LOCK" ]]; then flock "$LOCK" "$@"; else "$@"; fi; }
cat /proc/loadavg > "$WORK/loadavg.before"
for side in before after; do
    binary=$BEFORE; [[ $side == after ]] && binary=$AFTER
    locked /usr/bin/time -v "$binary" eval --model "$CHECKPOINT" --data "$WORK/dev100.jsonl" --json "$WORK/eval-$side.json" \
        > /dev/null 2> "$WORK/$side.time"
done
cat /proc/loadavg > "$WORK/loadavg.after"
python3 - "$WORK" "$OUT" "$CHECKPOINT" "${LOCK:+locked}" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from gnu_time import timed
work, out, checkpoint, locked = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else ""
rows = {}
for side in ["before", "after"]:
    wall, rss = timed(f"{work}/{side}.time")
    report = json.load(open(f"{work}/eval-{side}.json"))["overall"]
    rows[side] = dict(wall_seconds=wall, peak_rss_mb=rss, comparisons=report["n"], accuracy=report["accuracy"])
command = ("" if locked else "LOCK= ") + f"BEFORE=<main's prm> AFTER=<this branch's prm> bash bench/llama_eval_memory.sh {checkpoint}"
result = dict(command=command, lock=bool(locked), checkpoint=checkpoint,
              loadavg_before=open(f"{work}/loadavg.before").read().split()[:3], loadavg_after=open(f"{work}/loadavg.after").read().split()[:3],
              runs=rows, after_over_before=dict(wall=rows["after"]["wall_seconds"] / rows["before"]["wall_seconds"],
                                                peak_rss=rows["after"]["peak_rss_mb"] / rows["before"]["peak_rss_mb"]))
json.dump(result, open(out + ".json", "w"), indent=2)
lines = ["# `prm eval` on a SmolLM2 reward model: before and after the lean Llama inference pass", "",
         f"`{command}`; load average before {' '.join(result['loadavg_before'])}, after {' '.join(result['loadavg_after'])}"
         + ("" if locked else " (without the CPU lock)") + ".", "",
         "| binary | comparisons | wall s (load included) | peak RSS MB | accuracy |", "|---|---:|---:|---:|---:|"]
for side, r in rows.items():
    lines.append(f"| {side} | {r['comparisons']} | {r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['accuracy']:.3f} |")
lines += ["", f"After ÷ before: wall × {result['after_over_before']['wall']:.2f}, peak RSS × {result['after_over_before']['peak_rss']:.2f}."]
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
