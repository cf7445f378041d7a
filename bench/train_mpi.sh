#!/usr/bin/env bash
# Issue 21: data-parallel `prm train` on one host. The same short run (the built-in lengthpref data,
# the default MiniLM recipe, the same global batch and seed) as 1 rank × 2 threads (a plain process)
# and as 2 ranks × 1 thread (`mpirun -np 2`), the latter with each --allreduce mode (once: one
# MPI_Allreduce after the backward pass; overlapped: MPI_Iallreduce per layer as the backward pass
# finishes it): tokens per second of each (the same compute, so their ratio is the cost of
# communication and sharding), the time rank 0 spent in the gradient allreduce (or starting and
# waiting for it) as a share of the run, and, from bench/allreduce.c, the allreduce alone of the
# same message (the flat gradient buffer: 4 bytes × parameters). bench/train_mpi.py projects it to
# 8 and 32 hosts with the ring-allreduce cost model. Needs a quiet CPU:
#   flock "$LOCK" bash bench/train_mpi.sh          (LOCK: the shared CPU lock, default /tmp/prm-cpu.lock)
# Writes bench/results/train-mpi.{json,md}; COMMAND overrides the command they record and NOTE adds a
# line (a run without the lock says so).
set -euo pipefail
cd "$(dirname "$0")/.."
prm=${PRM:-.build/release/prm}
limit=${LIMIT:-128}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Open MPI refuses root without these; bench runs on a 2-core CI machine run as root.
mpirun=(mpirun --allow-run-as-root -np 2 --bind-to core)
common=(train --data data/lengthpref/train.jsonl --limit "$limit" --epochs 1 --max-length 128 --batch-size 16 --micro-batch 8
        --no-refit-seen --log-every 1 --seed 1)

read -r load _ < /proc/loadavg
"$prm" "${common[@]}" --threads 2 --out "$work/one-rank" 2> "$work/one-rank.err"
"${mpirun[@]}" "$prm" "${common[@]}" --threads 1 --out "$work/two-ranks" 2> "$work/two-ranks.err"
"${mpirun[@]}" "$prm" "${common[@]}" --threads 1 --allreduce overlapped --out "$work/overlapped" 2> "$work/overlapped.err"
parameters=$(grep -o '[0-9]* parameters' "$work/one-rank.err" | head -1 | cut -d' ' -f1)
mpicc -O2 -o "$work/allreduce" bench/allreduce.c
"${mpirun[@]}" "$work/allreduce" $((4 * parameters)) 20 > "$work/allreduce.json"

python3 bench/train_mpi.py --one-rank "$work/one-rank/train_log.jsonl" --two-ranks "$work/two-ranks/train_log.jsonl" \
    --overlapped "$work/overlapped/train_log.jsonl" --checkpoint "$work/overlapped/model.safetensors" \
    --allreduce "$work/allreduce.json" --parameters "$parameters" --limit "$limit" \
    --load-before "$load" ${COMMAND:+--command "$COMMAND"} ${NOTE:+--note "$NOTE"} \
    --json bench/results/train-mpi.json --markdown bench/results/train-mpi.md
