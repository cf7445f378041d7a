#!/usr/bin/env python3
"""Float64 numpy reference for the Hugging Face BertModel forward pass (post-LN BERT).

Reads a Hugging Face BERT folder (config.json + model.safetensors) and a JSON file of
token-id sequences {"ids": [[101, ...], ...]}. All sequences run as ONE right-padded batch
with an additive mask on padded keys. Writes a safetensors file with, for sequence i:
  embeddings.{i}  (T_i, C)  output of the embedding LayerNorm
  layer{l}.{i}    (T_i, C)  output of encoder layer l (l = 0 .. num_hidden_layers-1)
  hidden.{i}      (T_i, C)  last hidden state (equal to the last layer{l}.{i})
  pooled.{i}      (C,)      mean over the sequence's tokens of hidden.{i}, L2-normalised
                            (sentence-transformers: Pooling(mean) + Normalize)
Only real (unpadded) rows are written. Computation is float64; storage is --dtype.
"""
import argparse
import math
import os

import numpy as np

from reference_common import activation, fail, layer_norm, load_json, load_weights


def linear(x, w, b):
    """Hugging Face nn.Linear: weight is [out, in], y = x W^T + b."""
    return x @ w.T + b


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder with config.json and model.safetensors")
    parser.add_argument("--input", required=True, help='JSON file {"ids": [[int, ...], ...]}')
    parser.add_argument("--output", required=True, help="safetensors file to write")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="storage dtype of the output arrays (default float32; math is always float64)")
    args = parser.parse_args()

    config = load_json(os.path.join(args.model, "config.json"), "config")
    keys = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "vocab_size"]
    for key in keys:
        if key not in config:
            fail(f"config.json in {args.model} lacks '{key}'")
    C, L, H = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    I, eps, P = config["intermediate_size"], config["layer_norm_eps"], config["max_position_embeddings"]
    V, TV = config["vocab_size"], config["type_vocab_size"]
    act = activation(config.get("hidden_act", "gelu"), "hidden_act")
    if config.get("position_embedding_type", "absolute") != "absolute":
        fail(f"unsupported position_embedding_type '{config['position_embedding_type']}'")
    if C % H != 0:
        fail(f"hidden_size {C} is not divisible by num_attention_heads {H}")
    D = C // H

    data = load_json(args.input, "input")
    if not isinstance(data, dict) or "ids" not in data:
        fail(f'input {args.input} must be an object with key "ids"')
    seqs = data["ids"]
    if not isinstance(seqs, list) or not seqs:
        fail('"ids" must be a non-empty list of sequences')
    for i, s in enumerate(seqs):
        if not isinstance(s, list) or not s or not all(isinstance(t, int) and not isinstance(t, bool) for t in s):
            fail(f"ids[{i}] must be a non-empty list of integers")
        if len(s) > P:
            fail(f"ids[{i}] has {len(s)} tokens, more than max_position_embeddings {P}")
        if min(s) < 0 or max(s) >= V:
            fail(f"ids[{i}] has a token id outside [0, {V})")

    get = load_weights(args.model, "bert.")

    # One right-padded batch: ids (B, T), mask (B, T) true on real tokens.
    B, T = len(seqs), max(len(s) for s in seqs)
    lengths = [len(s) for s in seqs]
    ids = np.zeros((B, T), dtype=np.int64)  # pad id is irrelevant: padded keys are masked
    mask = np.zeros((B, T), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = True
    # Additive mask on keys, broadcast over heads and queries: (B, 1, 1, T).
    key_bias = np.where(mask, 0.0, -np.inf)[:, None, None, :]

    # Embeddings: word + absolute position + token type 0, then LayerNorm.
    x = (get("embeddings.word_embeddings.weight", (V, C))[ids]
         + get("embeddings.position_embeddings.weight", (P, C))[np.arange(T)][None, :, :]
         + get("embeddings.token_type_embeddings.weight", (TV, C))[0])
    x = layer_norm(x, get("embeddings.LayerNorm.weight", (C,)), get("embeddings.LayerNorm.bias", (C,)), eps)
    outputs = {f"embeddings.{i}": x[i, :n] for i, n in enumerate(lengths)}

    def heads(t):  # (B, T, C) -> (B, H, T, D)
        return t.reshape(B, T, H, D).transpose(0, 2, 1, 3)

    for l in range(L):
        p = f"encoder.layer.{l}."
        q = heads(linear(x, get(p + "attention.self.query.weight", (C, C)), get(p + "attention.self.query.bias", (C,))))
        k = heads(linear(x, get(p + "attention.self.key.weight", (C, C)), get(p + "attention.self.key.bias", (C,))))
        v = heads(linear(x, get(p + "attention.self.value.weight", (C, C)), get(p + "attention.self.value.bias", (C,))))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D) + key_bias  # (B, H, T, T)
        scores = scores - scores.max(axis=-1, keepdims=True)  # each row has >= 1 real key
        probs = np.exp(scores)
        probs = probs / probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        attn = linear(context, get(p + "attention.output.dense.weight", (C, C)), get(p + "attention.output.dense.bias", (C,)))
        x = layer_norm(attn + x, get(p + "attention.output.LayerNorm.weight", (C,)),
                       get(p + "attention.output.LayerNorm.bias", (C,)), eps)
        inter = act(linear(x, get(p + "intermediate.dense.weight", (I, C)), get(p + "intermediate.dense.bias", (I,))))
        out = linear(inter, get(p + "output.dense.weight", (C, I)), get(p + "output.dense.bias", (C,)))
        x = layer_norm(out + x, get(p + "output.LayerNorm.weight", (C,)), get(p + "output.LayerNorm.bias", (C,)), eps)
        for i, n in enumerate(lengths):
            outputs[f"layer{l}.{i}"] = x[i, :n]

    for i, n in enumerate(lengths):
        hidden = x[i, :n]
        mean = hidden.mean(axis=0)
        outputs[f"hidden.{i}"] = hidden
        outputs[f"pooled.{i}"] = mean / max(np.linalg.norm(mean), 1e-12)  # torch F.normalize

    from safetensors.numpy import save_file
    dtype = np.float32 if args.dtype == "float32" else np.float64
    save_file({k: np.ascontiguousarray(v, dtype=dtype) for k, v in outputs.items()}, args.output)


if __name__ == "__main__":
    main()
