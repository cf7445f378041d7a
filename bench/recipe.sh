#!/usr/bin/env bash
# The recipe search of issue 8: each named run trains on train.jsonl with a validation split held
# back (--val-fraction: a share of every seen user's comparisons) and is scored on that split per
# group. dev.jsonl is never read here: it is the test set, reported once by bench/quality.sh.
#
#   bash bench/recipe.sh                              # the runs listed in bench/recipe_runs.txt
#   RUNS_FILE=my_runs.txt bash bench/recipe.sh        # lines "name  flags..."
#   ONLY="base ep5" bash bench/recipe.sh              # a subset by name
# Results: bench/results/recipe/<set>/<name>.{json,txt,train_log.jsonl}, table in recipe.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PRM=${PRM:-.build/release/prm}
SET=${SET:-lengthpref}
TRAIN=${TRAIN:-data/$SET/train.jsonl}
# lengthpref ships no labels (a model has to learn them); bench/label_users.py derives them.
LABELS=${GROUPS_FILE:-data/$SET/groups.json}
[[ -f "$LABELS" ]] || LABELS=bench/results/quality/groups.json
VAL=${VAL:-0.2}
RUNS_FILE=${RUNS_FILE:-bench/recipe_runs.txt}
OUT=${OUT:-bench/results/recipe/$SET}
RUNDIR=${RUNDIR:-runs/recipe/$SET}
LOCK=${LOCK:-/tmp/prm-cpu.lock}
mkdir -p "$OUT" "$RUNDIR"

while read -r name flags; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
    echo "== $name: $flags" >&2
    # shellcheck disable=SC2086
    flock "$LOCK" "$PRM" train --data "$TRAIN" --out "$RUNDIR/$name" --val-fraction "$VAL" $flags
    flock "$LOCK" "$PRM" eval --model "$RUNDIR/$name" --data "$RUNDIR/$name/val.jsonl" --groups "$LABELS" \
        --json "$OUT/$name.json" > "$OUT/$name.txt"
    cp "$RUNDIR/$name/train_log.jsonl" "$OUT/$name.train_log.jsonl"
    echo "$flags" > "$OUT/$name.flags"
done < "$RUNS_FILE"
python3 bench/quality_table.py recipe "$OUT" > "$OUT/recipe.md"
cat "$OUT/recipe.md"
