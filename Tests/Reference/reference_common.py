"""Plumbing shared by the numpy references: error exit, JSON and weight loading, LayerNorm, GELU.
Everything is float64."""
import json
import math
import os
import sys

import numpy as np


def fail(message):
    """Exit with `<script>: error: message` and status 1."""
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    print(f"{script}: error: {message}", file=sys.stderr)
    sys.exit(1)


def load_json(path, what):
    if not os.path.isfile(path):
        fail(f"{what} not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        fail(f"{what} {path} is not valid JSON: {e}")


def jsonl_rows(path, what):
    """(line number, parsed value) for each non-blank line of a JSONL file; a bad line exits
    naming the file and line."""
    if not os.path.isfile(path):
        fail(f"{what} not found: {path}")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{number}: not valid JSON: {e}")


def load_weights(model_dir, prefix):
    """A getter `get(name, shape)` over model.safetensors; keys may carry `prefix` (e.g. "bert.",
    "transformer.") or not, as Hugging Face's task heads store them."""
    from safetensors.numpy import load_file
    path = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(path):
        fail(f"weights not found: {path}")
    raw = load_file(path)
    weights = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in raw.items()}

    def get(name, shape):
        if name not in weights:
            fail(f"weight '{name}' (or '{prefix}{name}') missing from {path}")
        w = weights[name].astype(np.float64)
        if w.shape != shape:
            fail(f"weight '{name}' has shape {w.shape}, expected {shape}")
        return w
    return get


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased variance, as torch
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.frompyfunc(math.erf, 1, 1)


def activation(name, key):
    """Hugging Face's activations by config name (`key` names the config field in errors)."""
    if name == "gelu":  # exact: x * Phi(x)
        return lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):  # tanh approximation
        return lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    fail(f"unsupported {key} '{name}' (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)")
