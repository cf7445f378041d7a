"""Float64 numpy forward of the SmolLM2 GGUF file (llama architecture), independent of prm's:
tensors dequantized by the `gguf` package, RoPE applied as llama.cpp applies it to the file's
own q/k rows (adjacent pairs x[2j], x[2j+1], which convert_hf_to_gguf's permutation of q_proj and
k_proj makes equal to Hugging Face's rotate-half), grouped-query attention, SwiGLU, RMSNorm,
tied embeddings. Prompts are chat-rendered with the file's jinja template and tokenized with a
`tokenizers` tokenizer built from its metadata (gguf_tokenizer_reference.py).

    python3 Tests/Reference/smollm2_reference.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes Tests/Fixtures/gguf/smollm2-logits.safetensors (ids stored as float32, exact below 2^24, so the
Swift side reads every tensor as floats): for prompt i, `ids.{i}` (token ids),
`top_ids.{i}` / `top_logits.{i}` (the 64 largest last-position logits, best first),
`sample_ids.{i}` / `sample_logits.{i}` (logits of 256 fixed random ids), and `argmax.{i}` (the
argmax at every position).
"""
import argparse
import os
import sys

import jinja2
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
from gguf_tokenizer_reference import build_tokenizer, field  # noqa: E402

OUT = "Tests/Fixtures/gguf/smollm2-logits.safetensors"
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Name a colour of the sky 2 times."}],
]


class Weights:
    def __init__(self, path):
        self.reader = GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}

    def __call__(self, name):
        t = self.tensors[name]
        return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)

    def meta(self, key):
        return field(self.reader, key)


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rope_adjacent(x, base):
    """x (T, H, D): pairs (2j, 2j+1) turn by t · base^(−2j/D) (ggml's rope, mode 0)."""
    T, H, D = x.shape
    angles = np.arange(T)[:, None] * base ** (-np.arange(0, D, 2) / D)[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out


def forward(w, ids):
    L = w.meta("llama.block_count")
    NH, NKV = w.meta("llama.attention.head_count"), w.meta("llama.attention.head_count_kv")
    eps, base = w.meta("llama.attention.layer_norm_rms_epsilon"), w.meta("llama.rope.freq_base")
    embed = w("token_embd.weight")
    C = embed.shape[1]
    D = C // NH
    T = len(ids)
    x = embed[ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        b = f"blk.{l}."
        h = rms_norm(x, w(b + "attn_norm.weight"), eps)
        q = rope_adjacent((h @ w(b + "attn_q.weight").T).reshape(T, NH, D), base)
        k = rope_adjacent((h @ w(b + "attn_k.weight").T).reshape(T, NKV, D), base)
        v = (h @ w(b + "attn_v.weight").T).reshape(T, NKV, D)
        k, v = np.repeat(k, NH // NKV, axis=1), np.repeat(v, NH // NKV, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        attended = np.einsum("hts,shd->thd", probs, v).reshape(T, C)
        x = x + attended @ w(b + "attn_output.weight").T
        h = rms_norm(x, w(b + "ffn_norm.weight"), eps)
        g, u = h @ w(b + "ffn_gate.weight").T, h @ w(b + "ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ w(b + "ffn_down.weight").T
    h = rms_norm(x, w("output_norm.weight"), eps)
    return h @ embed.T


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    w = Weights(args.model)
    assert "output.weight" not in w.tensors, "expected tied embeddings"
    tok = build_tokenizer(w.reader)
    template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(w.meta("tokenizer.chat_template"))
    rng = np.random.default_rng(18)
    out = {}
    for i, messages in enumerate(PROMPTS):
        ids = tok.encode(template.render(messages=messages, add_generation_prompt=True), add_special_tokens=False).ids
        logits = forward(w, np.array(ids))
        last = logits[-1]
        top = np.argsort(-last, kind="stable")[:64]
        sample = rng.choice(last.shape[0], 256, replace=False)
        out[f"ids.{i}"] = np.array(ids, dtype=np.float32)
        out[f"top_ids.{i}"] = top.astype(np.float32)
        out[f"top_logits.{i}"] = last[top].astype(np.float32)
        out[f"sample_ids.{i}"] = sample.astype(np.float32)
        out[f"sample_logits.{i}"] = last[sample].astype(np.float32)
        out[f"argmax.{i}"] = logits.argmax(-1).astype(np.float32)
    save_file(out, OUT)


if __name__ == "__main__":
    main()
