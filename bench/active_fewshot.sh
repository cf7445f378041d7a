#!/usr/bin/env bash
# Issue 19, part 2: do the `suggest` op's questions teach the model a new user faster than random
# ones? `prm train` with its defaults on the built-in data (lengthpref), then
# `prm eval --few-shot K --active` on dev's unseen users: each user's comparisons are split in half
# (file order); K of the first half are chosen by the suggest criterion (greedy, largest expected
# reduction of the posterior variance of the user's reward differences under the Laplace
# approximation of the adapt fit, from the prior) or at random (DRAWS draws), the user is fitted
# with the adapt math, and the second half is scored.
#
#   bash bench/active_fewshot.sh                  # seeds 1 2, K = 1,2,3,4,5, 200 random draws
#   SEEDS="1" bash bench/active_fewshot.sh
# Results: bench/results/active/lengthpref.seed<N>.{json,txt}, the table in lengthpref.md.
# Accuracy, not speed: no CPU lock needed.
set -euo pipefail
cd "$(dirname "$0")/.."

PRM=${PRM:-.build/release/prm}
SEEDS=${SEEDS:-"1 2"}
KS=${KS:-1,2,3,4,5}
DRAWS=${DRAWS:-200}
OUT=${OUT:-bench/results/active}
RUNDIR=${RUNDIR:-runs/active}
DATA=data/lengthpref
GROUPS_FILE=bench/results/quality/groups.json
mkdir -p "$OUT" "$RUNDIR"

for seed in $SEEDS; do
    model=$RUNDIR/lengthpref.seed$seed
    [[ -f $model/config.json ]] || "$PRM" train --data "$DATA/train.jsonl" --out "$model" --seed "$seed"
    "$PRM" eval --model "$model" --data "$DATA/dev.jsonl" --groups "$GROUPS_FILE" --few-shot "$KS" --active --draws "$DRAWS" \
        --json "$OUT/lengthpref.seed$seed.json" > "$OUT/lengthpref.seed$seed.txt"
done
python3 - "$OUT" "$KS" "$DRAWS" $SEEDS <<'PY'
import json, sys
out, ks, draws, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
lines = ["# `prm eval --few-shot K --active`: suggest's questions vs random ones (lengthpref, unseen users)", "",
         f"Command: `SEEDS=\"{' '.join(seeds)}\" bash bench/active_fewshot.sh` (per seed: `prm train --data data/lengthpref/train.jsonl --seed N`, then "
         f"`prm eval --model M --data data/lengthpref/dev.jsonl --groups {'bench/results/quality/groups.json'} --few-shot {ks} --active --draws {draws}`).", "",
         "Each unseen user's dev comparisons are split in half (file order): K of the first half are chosen by the suggest "
         "criterion (active) or at random (random: mean ± sd over the draws), the user is fitted with the adapt math, and the "
         "second half is scored. 'generic' scores the same comparisons as the generic user (K = 0).", "",
         "| seed | slice | K | users | held-out | active | random | generic |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
for seed in seeds:
    rows = json.load(open(f"{out}/lengthpref.seed{seed}.json"))["few_shot_active"]
    for r in rows:
        lines.append(f"| {seed} | {r['slice']} | {r['k']} | {r['users']} | {r['n']} | {100 * r['active']:.1f}% | "
                     f"{100 * r['random']:.1f} ± {100 * r['random_spread']:.1f}% | {100 * r['generic']:.1f}% |")
open(f"{out}/lengthpref.md", "w").write("\n".join(lines) + "\n")
PY
echo "wrote $OUT/lengthpref.md" >&2
