#!/usr/bin/env bash
# Runs the whole test suite. Release mode: the numerical tests (finite differences through whole
# models, training runs of tiny models, the MiniLM reference check) are ~50x slower unoptimised.
# -enable-testing lets the tests reach internal API (@testable import) in an optimised build.
# Needs what scripts/setup.sh installs (OpenBLAS, libzmq, numpy, safetensors, tokenizers, the
# MiniLM weights in models/, pytest, jsonschema, mypy); a missing resource fails its test, it is
# never skipped. First, every target's imports must be declared in Package.swift (check_imports.py).
# Arguments go to `swift test`. Then the wire-level suite: pytest against real
# `prm serve` processes (protocols/python/tests), using the .build/release/prm that `swift test`
# has just rebuilt (a plain `swift build -c release` here would rebuild every module without
# -enable-testing, and the next run would rebuild them again).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check_imports.py
swift test -c release -Xswiftc -enable-testing "$@"
python3 -m pytest protocols/python/tests -q -p no:cacheprovider
