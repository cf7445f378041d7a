#!/usr/bin/env bash
# The "refit seen users" stage (prm train's last stage; `prm adapt --refit-seen` for a finished
# checkpoint) measured on checkpoints that were trained without it.
#
#   MODE=val bash bench/refit.sh     choose the prior scale: refit the validation-split checkpoint of
#                                    bench/recipe.sh (--val-fraction 0.2, seed 42) on its training part
#                                    for each TAU in TAUS and score its held-back val.jsonl. dev.jsonl is
#                                    not read.
#   MODE=test TAU=64 [RUN=mean-pool] bash bench/refit.sh
#                                    the test: refit each bench/quality.sh checkpoint (SEEDS) on the
#                                    train.jsonl it was trained on with the chosen TAU; dev.jsonl read once,
#                                    with the few-shot protocol (FEWSHOT) on its unseen users.
# Results: val: bench/results/refit/<set>/<ckpt>.tau<TAU>.{json,txt,refit.json} and <ckpt>.none.* (no
# refit), table refit.md; test: bench/results/quality/<set>/<RUN>-refit.seed<N>.{json,txt,refit.json}
# beside the runs bench/quality.sh recorded, tables quality.md and fewshot.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PRM=${PRM:-.build/release/prm}
SET=${SET:-lengthpref}
MODE=${MODE:-val}
LOCK=${LOCK:-/tmp/prm-cpu.lock}
LABELS=data/$SET/groups.json
[[ -f "$LABELS" ]] || LABELS=bench/results/quality/$SET/groups.json
[[ -f "$LABELS" ]] || LABELS=bench/results/quality/groups.json
WORK=${WORK:-runs/refit/$SET}
mkdir -p "$WORK"
# One measurement is one job: the whole script holds the shared CPU lock (its commands inherit it).
exec 9>>"$LOCK"
flock 9

# The refit record prm adapt wrote into the checkpoint's config.json.
record() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["prm"]["training"]["refit_seen"], indent=1))' "$1/config.json"; }

if [[ "$MODE" == val ]]; then
    CKPTS=${CKPTS:-"runs/recipe/$SET/lin-lr2e-5-ep2 runs/recipe/$SET/lin-lr2e-5"}
    TAUS=${TAUS:-"0.25 1 4 16 64"}
    OUT=${OUT:-bench/results/refit/$SET}
    mkdir -p "$OUT"
    for ckpt in $CKPTS; do
        name=$(basename "$ckpt")
        # The run's training part: train.jsonl less the rows prm train held back into val.jsonl.
        python3 bench/split_rest.py --data "data/$SET/train.jsonl" --held-out "$ckpt/val.jsonl" --out "$WORK/$name.train-part.jsonl"
        "$PRM" eval --model "$ckpt" --data "$ckpt/val.jsonl" --groups "$LABELS" --json "$OUT/$name.none.json" > "$OUT/$name.none.txt"
        for tau in $TAUS; do
            # KEEP=1: results already recorded stay (each refit is deterministic).
            [[ -n "${KEEP:-}" && -f "$OUT/$name.tau$tau.refit.json" ]] && continue
            echo "== $SET $name tau $tau" >&2
            rm -rf "$WORK/$name.tau$tau"
            "$PRM" adapt --refit-seen --refit-prior-scale "$tau" --model "$ckpt" \
                --data "$WORK/$name.train-part.jsonl" --out "$WORK/$name.tau$tau" > /dev/null
            "$PRM" eval --model "$WORK/$name.tau$tau" --data "$ckpt/val.jsonl" --groups "$LABELS" \
                --json "$OUT/$name.tau$tau.json" > "$OUT/$name.tau$tau.txt"
            record "$WORK/$name.tau$tau" > "$OUT/$name.tau$tau.refit.json"
            rm -rf "$WORK/$name.tau$tau"
        done
    done
    python3 bench/quality_table.py refit "$OUT" > "$OUT/refit.md"
    cat "$OUT/refit.md"
elif [[ "$MODE" == test ]]; then
    TAU=${TAU:?TAU: the prior scale chosen on the validation split}
    SEEDS=${SEEDS:-"1 2 3"}
    # New users' prior comes from the trained users' vectors, so the refit changes prm adapt too.
    FEWSHOT=${FEWSHOT:-1,2,5,10}
    RUNDIR=${RUNDIR:-runs/quality/$SET}
    OUT=${OUT:-bench/results/quality/$SET}
    # The runs refitted: bench/quality.sh's checkpoints trained without the refit stage.
    RUN=${RUN:-mean-pool}
    for seed in $SEEDS; do
        echo "== $SET $RUN.seed$seed tau $TAU" >&2
        rm -rf "$WORK/$RUN-refit.seed$seed"
        "$PRM" adapt --refit-seen --refit-prior-scale "$TAU" --model "$RUNDIR/$RUN.seed$seed" \
            --data "data/$SET/train.jsonl" --out "$WORK/$RUN-refit.seed$seed" > /dev/null
        "$PRM" eval --model "$WORK/$RUN-refit.seed$seed" --data "data/$SET/dev.jsonl" --groups "$LABELS" \
            --json "$OUT/$RUN-refit.seed$seed.json" --few-shot "$FEWSHOT" > "$OUT/$RUN-refit.seed$seed.txt"
        record "$WORK/$RUN-refit.seed$seed" > "$OUT/$RUN-refit.seed$seed.refit.json"
    done
    python3 bench/quality_table.py test "$OUT" > "$OUT/quality.md"
    python3 bench/quality_table.py fewshot "$OUT" > "$OUT/fewshot.md"
    cat "$OUT/quality.md" "$OUT/fewshot.md"
else
    echo "MODE must be val or test" >&2
    exit 2
fi
