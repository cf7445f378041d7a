#!/usr/bin/env python3
"""Writes a randomly initialised GPT-2 model folder in Hugging Face format.

  OUT/config.json        HF GPT2Config keys (model_type gpt2, GPT2LMHeadModel, gelu_new, ...)
  OUT/model.safetensors  float32 weights with HF GPT-2 names and Conv1D layouts ([in, out])
  OUT/tokenizer.json     copy of --tokenizer, when given (V is then taken from it)

Initialisation is chosen so a comparison is sensitive to every parameter: each weight
matrix is normal(0, 0.02*k) with k = 50/sqrt(fan_in), i.e. std 1/sqrt(fan_in), so
activations stay O(1) (attention scores have spread ~1, GELU inputs ~1, tied logits ~1);
LayerNorm gains are 1 + normal(0, 0.1); every bias is normal(0, 0.1). The same arguments
and seed always give the same bytes.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np


def fail(message):
    print(f"make_gpt2: error: {message}", file=sys.stderr)
    sys.exit(1)


def tokenizer_vocab(path):
    """(vocab size, id of the end-of-text token or None) from a tokenizer.json."""
    if not os.path.isfile(path):
        fail(f"tokenizer not found: {path}")
    try:
        with open(path) as f:
            tok = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"tokenizer {path} is not valid JSON: {e}")
    vocab = dict((tok.get("model") or {}).get("vocab") or {})
    if not vocab:
        fail(f"tokenizer {path} has no model.vocab")
    for added in tok.get("added_tokens") or []:
        vocab[added["content"]] = added["id"]
    size = max(vocab.values()) + 1
    if "<|endoftext|>" in vocab:
        return size, vocab["<|endoftext|>"]
    specials = [a["id"] for a in tok.get("added_tokens") or [] if a.get("special")]
    return size, (specials[0] if specials else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--vocab-size", type=int, help="V; optional with --tokenizer (must then match it)")
    parser.add_argument("--layers", type=int, required=True, help="n_layer")
    parser.add_argument("--heads", type=int, required=True, help="n_head")
    parser.add_argument("--embd", type=int, required=True, help="n_embd (C), divisible by --heads")
    parser.add_argument("--positions", type=int, required=True, help="n_positions (P)")
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--tokenizer", help="tokenizer.json to copy into the folder; V is taken from it")
    args = parser.parse_args()

    eos = None
    if args.tokenizer:
        V, eos = tokenizer_vocab(args.tokenizer)
        if args.vocab_size is not None and args.vocab_size != V:
            fail(f"--vocab-size {args.vocab_size} disagrees with the tokenizer's vocabulary size {V}")
    elif args.vocab_size is None:
        fail("give --vocab-size or --tokenizer")
    else:
        V = args.vocab_size
    if eos is None:
        eos = V - 1  # as GPT-2, whose <|endoftext|> is the last id
    L, H, C, P = args.layers, args.heads, args.embd, args.positions
    for name, value in [("vocab size", V), ("--layers", L), ("--heads", H), ("--embd", C), ("--positions", P)]:
        if value < 1:
            fail(f"{name} must be positive, got {value}")
    if C % H != 0:
        fail(f"--embd {C} is not divisible by --heads {H}")

    rng = np.random.default_rng(args.seed)

    def matrix(fan_in, fan_out):  # Conv1D layout [in, out]; std 0.02*k with k = 50/sqrt(fan_in)
        return rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out))

    def bias(n):
        return rng.normal(0.0, 0.1, size=n)

    def gain(n):
        return 1.0 + rng.normal(0.0, 0.1, size=n)

    # Embeddings: std 1/sqrt(C), so tied logits ln_f(x) . wte[v] have spread ~1.
    w = {"wte.weight": rng.normal(0.0, 1.0 / np.sqrt(C), size=(V, C)),
         "wpe.weight": rng.normal(0.0, 1.0 / np.sqrt(C), size=(P, C))}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = gain(C), bias(C)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = matrix(C, 3 * C), bias(3 * C)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = matrix(C, C), bias(C)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = gain(C), bias(C)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = matrix(C, 4 * C), bias(4 * C)
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = matrix(4 * C, C), bias(C)
    w["ln_f.weight"], w["ln_f.bias"] = gain(C), bias(C)

    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": V,
        "n_positions": P,
        "n_ctx": P,
        "n_embd": C,
        "n_layer": L,
        "n_head": H,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
    }

    from safetensors.numpy import save_file
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()},
              os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    if args.tokenizer:
        target = os.path.join(args.out, "tokenizer.json")
        if os.path.abspath(args.tokenizer) != os.path.abspath(target):
            shutil.copyfile(args.tokenizer, target)


if __name__ == "__main__":
    main()
