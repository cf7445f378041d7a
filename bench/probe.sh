#!/usr/bin/env bash
# Linear probes of h (issue 16, item 1): what a reward model's pooled state carries linearly about
# replies (log word count, question, refusal, negation, first person, list), for the frozen backbone and for
# trained checkpoints, on lengthpref's and stylepref's training replies.
#
#   bash bench/probe.sh                                   # the frozen backbone only
#   bash bench/probe.sh reply-counts=runs/quality/lengthpref/default.seed1   # and a checkpoint, by name
#   SETS="lengthpref" MAX_REPLIES=600 bash bench/probe.sh name=DIR ...
# Results: bench/results/probe/<set>/<name>.{json,txt}; the frozen backbone twice: "frozen-mean-pool"
# (its mean pooling alone, --reply-counts 0) and "frozen-reply-counts" (prm train's default pooling,
# the reply counts untrained);
# each .txt starts with the command that made it. No CPU lock: nothing here is a timing, and the
# numbers depend only on the model, the data and the seed.
set -euo pipefail
cd "$(dirname "$0")/.."

PRM=${PRM:-.build/release/prm}
SETS=${SETS:-"lengthpref stylepref"}
BACKBONE=${BACKBONE:-models/all-MiniLM-L6-v2}
MAX_REPLIES=${MAX_REPLIES:-1200}
SEED=${SEED:-42}
OUT=${OUT:-bench/results/probe}

models=("frozen-mean-pool=$BACKBONE" "frozen-reply-counts=$BACKBONE")
for arg in "$@"; do
    [[ "$arg" == *=* ]] || { echo "usage: bash bench/probe.sh [name=CHECKPOINT_DIR ...]" >&2; exit 2; }
    models+=("$arg")
done

for set in $SETS; do
    mkdir -p "$OUT/$set"
    for entry in "${models[@]}"; do
        name=${entry%%=*}
        dir=${entry#*=}
        echo "== $set $name ($dir)" >&2
        command=("$PRM" probe --model "$dir" --data "data/$set/train.jsonl" --max-replies "$MAX_REPLIES" --seed "$SEED"
                 --json "$OUT/$set/$name.json")
        [[ "$name" == frozen-mean-pool ]] && command+=(--reply-counts 0)
        { echo "\$ ${command[*]}"; echo; "${command[@]}"; } > "$OUT/$set/$name.txt"
        cat "$OUT/$set/$name.txt"
    done
done
