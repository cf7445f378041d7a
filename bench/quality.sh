#!/usr/bin/env bash
# The test table of issue 8: `prm train` with its defaults (the recipe chosen on a validation split
# by bench/recipe.sh) and the vanilla reward model, each over several seeds, trained on train.jsonl
# and evaluated once on dev.jsonl per seen/unseen x group; the default model also runs the
# few-shot protocol (`prm eval --few-shot`) on dev's unseen users.
#
#   bash bench/quality.sh                         # lengthpref, seeds 1 2 3, runs "default vanilla"
#   SET=stylepref bash bench/quality.sh           # the second preference set
#   SET=multipref RUNS="default cluster vanilla" bash bench/quality.sh   # six kinds of annotator
#   SEEDS="1" RUNS="default" bash bench/quality.sh
#   SEEDS=1 RUNS=smollm2 bash bench/quality.sh   # the default recipe on the SmolLM2 decoder
#   SET=questionpref DATA=runs/diag/questionpref SEEDS=1 RUNS=default bash bench/quality.sh   # a made set
# Results: bench/results/quality/<set>/<run>.seed<N>.{json,txt,train_log.jsonl}, tables in
# quality.md and fewshot.md; the README's tables are rebuilt from them by
# `python3 bench/quality_table.py readme README.md`.
set -euo pipefail
cd "$(dirname "$0")/.."

PRM=${PRM:-.build/release/prm}
SET=${SET:-lengthpref}
SEEDS=${SEEDS:-"1 2 3"}
RUNS=${RUNS:-"default vanilla"}
FEWSHOT=${FEWSHOT-1,2,5,10}  # FEWSHOT= (empty) skips the few-shot protocol
OUT=${OUT:-bench/results/quality/$SET}
RUNDIR=${RUNDIR:-runs/quality/$SET}
LOCK=${LOCK:-/tmp/prm-cpu.lock}
# A set made elsewhere (bench/make_stylepref.py --out DIR): DATA=DIR.
DATA=${DATA:-data/$SET}
TRAIN=$DATA/train.jsonl
DEV=$DATA/dev.jsonl
mkdir -p "$OUT" "$RUNDIR"
# lengthpref ships no labels (a model has to learn them): derive them from the data.
LABELS=$DATA/groups.json
if [[ ! -f "$LABELS" ]]; then
    LABELS=$OUT/groups.json
    python3 bench/label_users.py --train "$TRAIN" --dev "$DEV" --out "$LABELS"
fi

flags() {
    case "$1" in
        default) echo "" ;;
        vanilla) echo "--vanilla" ;;
        # The default before reply counts and the refit stage (issue 8's); bench/refit.sh refits it.
        mean-pool) echo "--reply-counts 0 --no-refit-seen" ;;
        # Low-rank users: each a mixture of 6 learned centres (multipref has six kinds of annotator).
        cluster) echo "--user-model cluster --clusters 6" ;;
        # The soft prompt with its own defaults (the reply's rows pooled, backbone lr 5e-5).
        soft-prompt) echo "--aggregator soft-prompt" ;;
        # Users' offsets starting apart (a random token embedding each) instead of at the generic user.
        spread) echo "--user-spread 1" ;;
        # The default recipe on SmolLM2-135M-Instruct (issue 18's decoder reward model): its pooled
        # state is scaled to MiniLM's by --pooled-scale auto, the default; nothing tuned for it.
        smollm2) echo "--backbone models/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        *) echo "unknown run $1" >&2; exit 2 ;;
    esac
}

for seed in $SEEDS; do
    for run in $RUNS; do
        name=$run.seed$seed
        echo "== $SET $name" >&2
        # shellcheck disable=SC2046
        flock "$LOCK" "$PRM" train --data "$TRAIN" --out "$RUNDIR/$name" --seed "$seed" $(flags "$run")
        few=()
        # The few-shot protocol (prm adapt) needs users of one's own: individual or cluster.
        [[ "$run" != vanilla && "$run" != soft-prompt && -n "$FEWSHOT" ]] && few=(--few-shot "$FEWSHOT")
        flock "$LOCK" "$PRM" eval --model "$RUNDIR/$name" --data "$DEV" --groups "$LABELS" --json "$OUT/$name.json" "${few[@]}" > "$OUT/$name.txt"
        cp "$RUNDIR/$name/train_log.jsonl" "$OUT/$name.train_log.jsonl"
    done
done
python3 bench/quality_table.py test "$OUT" > "$OUT/quality.md"
python3 bench/quality_table.py fewshot "$OUT" > "$OUT/fewshot.md"
cat "$OUT/quality.md" "$OUT/fewshot.md"
