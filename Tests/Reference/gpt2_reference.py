#!/usr/bin/env python3
"""Float64 numpy reference for the Hugging Face GPT-2 forward pass (GPT2LMHeadModel, pre-LN).

Reads a Hugging Face GPT-2 folder (config.json + model.safetensors, Conv1D layouts) and a
JSON file of token ids, in one of two forms:
  {"ids": [[...], ...]}                             sequence i = ids[i]
  {"prefix": [...], "continuations": [[...], ...]}  sequence j = prefix + continuations[j]
Each sequence is computed from scratch on its own (no cache, no padding). Writes a
safetensors file with, for each sequence i:
  hidden.{i}  (T_i, C)  hidden state after ln_f
  logits.{i}  (T_i, V)  hidden.{i} . wte^T (tied embeddings)
Computation is float64; storage is --dtype.
"""
import argparse
import math
import os

import numpy as np

from reference_common import activation, fail, layer_norm, load_json, load_weights


def conv1d(x, w, b):
    """Hugging Face GPT-2 Conv1D: weight is [in, out], y = x W + b."""
    return x @ w + b


def read_sequences(data, path):
    if isinstance(data, dict) and "ids" in data:
        seqs, where = data["ids"], "ids"
        if not isinstance(seqs, list) or not seqs:
            fail('"ids" must be a non-empty list of sequences')
    elif isinstance(data, dict) and "prefix" in data and "continuations" in data:
        prefix, conts = data["prefix"], data["continuations"]
        if not isinstance(prefix, list) or not isinstance(conts, list) or not conts:
            fail('"prefix" must be a list and "continuations" a non-empty list of lists')
        if not all(isinstance(c, list) for c in conts):
            fail('every entry of "continuations" must be a list')
        seqs, where = [prefix + c for c in conts], "prefix+continuations"
    else:
        fail(f'input {path} must be an object with "ids", or with "prefix" and "continuations"')
    for i, s in enumerate(seqs):
        if not s or not all(isinstance(t, int) and not isinstance(t, bool) for t in s):
            fail(f"{where}[{i}] must be a non-empty list of integers")
    return seqs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder with config.json and model.safetensors")
    parser.add_argument("--input", required=True, help='JSON file {"ids": [[...]]} or {"prefix": [...], "continuations": [[...]]}')
    parser.add_argument("--output", required=True, help="safetensors file to write")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="storage dtype of the output arrays (default float32; math is always float64)")
    args = parser.parse_args()

    config = load_json(os.path.join(args.model, "config.json"), "config")
    for key in ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]:
        if key not in config:
            fail(f"config.json in {args.model} lacks '{key}'")
    V, P, C = config["vocab_size"], config["n_positions"], config["n_embd"]
    L, H = config["n_layer"], config["n_head"]
    I = config.get("n_inner") or 4 * C
    eps = config.get("layer_norm_epsilon", 1e-5)
    act = activation(config.get("activation_function", "gelu_new"), "activation_function")
    if not config.get("tie_word_embeddings", True):
        fail("tie_word_embeddings false is not supported (logits use wte)")
    if C % H != 0:
        fail(f"n_embd {C} is not divisible by n_head {H}")
    D = C // H

    seqs = read_sequences(load_json(args.input, "input"), args.input)
    for i, s in enumerate(seqs):
        if len(s) > P:
            fail(f"sequence {i} has {len(s)} tokens, more than n_positions {P}")
        if min(s) < 0 or max(s) >= V:
            fail(f"sequence {i} has a token id outside [0, {V})")

    get = load_weights(args.model, "transformer.")
    wte, wpe = get("wte.weight", (V, C)), get("wpe.weight", (P, C))
    blocks = []
    for l in range(L):
        p = f"h.{l}."
        blocks.append({n: get(p + n, s) for n, s in [
            ("ln_1.weight", (C,)), ("ln_1.bias", (C,)),
            ("attn.c_attn.weight", (C, 3 * C)), ("attn.c_attn.bias", (3 * C,)),
            ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
            ("mlp.c_fc.weight", (C, I)), ("mlp.c_fc.bias", (I,)),
            ("mlp.c_proj.weight", (I, C)), ("mlp.c_proj.bias", (C,))]})
    ln_f = (get("ln_f.weight", (C,)), get("ln_f.bias", (C,)))

    # HF attention scaling options (defaults: divide scores by sqrt(D) only).
    scale_by_dim = config.get("scale_attn_weights", True)
    scale_by_layer = config.get("scale_attn_by_inverse_layer_idx", False)

    def forward(ids):
        T = len(ids)
        x = wte[ids] + wpe[np.arange(T)]  # (T, C)
        causal = np.triu(np.full((T, T), -np.inf), k=1)  # query t sees keys 0..t
        for l, b in enumerate(blocks):
            h = layer_norm(x, b["ln_1.weight"], b["ln_1.bias"], eps)
            qkv = conv1d(h, b["attn.c_attn.weight"], b["attn.c_attn.bias"])  # (T, 3C): q | k | v
            q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(T, H, D).transpose(1, 0, 2) for j in range(3))
            scores = q @ k.transpose(0, 2, 1)  # (H, T, T)
            if scale_by_dim:
                scores = scores / math.sqrt(D)
            if scale_by_layer:
                scores = scores / (l + 1)
            scores = scores + causal
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs = probs / probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(T, C)
            x = x + conv1d(context, b["attn.c_proj.weight"], b["attn.c_proj.bias"])
            h = layer_norm(x, b["ln_2.weight"], b["ln_2.bias"], eps)
            x = x + conv1d(act(conv1d(h, b["mlp.c_fc.weight"], b["mlp.c_fc.bias"])),
                           b["mlp.c_proj.weight"], b["mlp.c_proj.bias"])
        hidden = layer_norm(x, ln_f[0], ln_f[1], eps)
        return hidden, hidden @ wte.T

    outputs = {}
    for i, s in enumerate(seqs):
        outputs[f"hidden.{i}"], outputs[f"logits.{i}"] = forward(np.array(s, dtype=np.int64))

    from safetensors.numpy import save_file
    dtype = np.float32 if args.dtype == "float32" else np.float64
    save_file({k: np.ascontiguousarray(v, dtype=dtype) for k, v in outputs.items()}, args.output)


if __name__ == "__main__":
    main()
