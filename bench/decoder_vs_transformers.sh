#!/usr/bin/env bash
# bench/decoder_vs_transformers.py under the CPU lock ($LOCK): prm's Llama-family decoder (a SmolLM2
# reward model's scoring, and SmolLM2's greedy decoding) beside Hugging Face transformers on CPU,
# 2 threads each (transformers fp32; prm fp32, bf16 and int8). Needs torch and transformers (not in CI; not a test).
#
#   bash bench/decoder_vs_transformers.sh                   # under the CPU lock
#   LOCK= bash bench/decoder_vs_transformers.sh             # without it (the machine is then not quiet: say so)
#   PRM=/tmp/prm-copy bash bench/decoder_vs_transformers.sh # a copy of the binary, safe from rebuilds
# Results: bench/results/decoder_vs_transformers.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PRM=${PRM:-.build/release/prm}
LOCK=${LOCK-/tmp/prm-cpu.lock}
locked() { if [[ -n "$LOCK" ]]; then flock "$LOCK" "$@"; else "$@"; fi; }
command="bash bench/decoder_vs_transformers.sh${*:+ $*}"
[[ -n "$LOCK" ]] || command="LOCK= $command"
locked python3 bench/decoder_vs_transformers.py --prm "$PRM" --command "$command" "$@"
