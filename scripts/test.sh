#!/usr/bin/env bash
# Runs the whole test suite. Release mode: the numerical tests (finite differences through whole
# models, training runs of tiny models, the MiniLM reference check) are ~50x slower unoptimised.
# -enable-testing lets the tests reach internal API (@testable import) in an optimised build.
# Needs what scripts/setup.sh installs (OpenBLAS, libzmq, numpy, safetensors, tokenizers, the
# MiniLM weights in models/); a missing resource fails its test, it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift test -c release -Xswiftc -enable-testing "$@"
