#!/usr/bin/env python3
"""Writes tiny random Llama-family models in Hugging Face format and Hugging Face's own outputs
for them (transformers + torch), as the fixtures Tests/PRMModelTests/LlamaFamilyReferenceTests.swift
compares prm's `LlamaBackbone` with. Run once from the repository root; CI reads the committed
results and needs no torch.

  OUT/<name>/config.json, model.safetensors, tokenizer.json   one folder per model (save_pretrained)
  OUT/inputs.json                                             the token ids every model runs
  OUT/<name>-reference.safetensors                            hidden.{i} (T_i, C): last hidden state
                                                              (after the final norm); score.{i} (1):
                                                              the classification head on the last token

The models cover what the decoder selects by config: llama (untied, stored F32, a sequence-
classification head, grouped-query attention 4/2), qwen2 (q/k/v biases, tied, stored BF16) and
qwen3 (per-head q/k RMSNorm, head_dim ≠ hidden/heads, stored F16, a classification head), and two
more reward models: qwen2-reward (Qwen2ForSequenceClassification, F32) and mistral-reward
(MistralForSequenceClassification without a sliding window, BF16). The
references are computed from the weights as stored (rounded to BF16/F16), read back in float32.
Weights are normal(0, 1/sqrt(fan_in)) and norm gains 1 + normal(0, 0.1), so every tensor matters.

  python3 Tests/Reference/make_llama_family.py --out Tests/Fixtures/llama-family
"""
import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

VOCAB = 260  # 256 byte tokens, <|endoftext|>, three unused rows

MODELS = {
    "llama": dict(cls="LlamaForSequenceClassification", dtype=torch.float32,
                  config=dict(model_type="llama", hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                              max_position_embeddings=64, tie_word_embeddings=False, num_labels=1, pad_token_id=256)),
    "qwen2": dict(cls="Qwen2ForCausalLM", dtype=torch.bfloat16,
                  config=dict(model_type="qwen2", hidden_size=24, intermediate_size=36, num_hidden_layers=2,
                              num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                              max_position_embeddings=64, tie_word_embeddings=True, use_sliding_window=False)),
    "qwen3": dict(cls="Qwen3ForSequenceClassification", dtype=torch.float16,
                  config=dict(model_type="qwen3", hidden_size=16, intermediate_size=28, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=8, rms_norm_eps=1e-6, rope_theta=100000.0,
                              max_position_embeddings=64, tie_word_embeddings=True, use_sliding_window=False,
                              num_labels=1, pad_token_id=256)),
    # Reward models of the other two families (prm serves such folders as they are, Tests/PRMCLITests/InitFromTests.swift).
    "qwen2-reward": dict(cls="Qwen2ForSequenceClassification", dtype=torch.float32,
                         config=dict(model_type="qwen2", hidden_size=24, intermediate_size=36, num_hidden_layers=2,
                                     num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                                     max_position_embeddings=64, tie_word_embeddings=False, use_sliding_window=False,
                                     num_labels=1, pad_token_id=256)),
    "mistral-reward": dict(cls="MistralForSequenceClassification", dtype=torch.bfloat16,
                           config=dict(model_type="mistral", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                                       max_position_embeddings=64, tie_word_embeddings=False, sliding_window=None,
                                       num_labels=1, pad_token_id=256)),
}

INPUTS = [[72, 101, 108, 108, 111, 44, 32], [256, 7, 3], [84, 104, 101, 32, 113, 117, 105, 99, 107, 32, 98, 114, 111, 119, 110]]


def bytes_to_unicode():
    """GPT-2's byte ↔ printable character map (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json():
    """A byte-level BPE tokenizer.json with no merges: one token per byte, <|endoftext|> = 256."""
    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    vocab["<|endoftext|>"] = 256
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": []},
    }


def randomize(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 1:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5)


def write(out, name, spec, seed):
    folder = os.path.join(out, name)
    config = transformers.AutoConfig.for_model(vocab_size=VOCAB, **spec["config"])
    model = getattr(transformers, spec["cls"])(config)
    randomize(model, seed)
    model.to(spec["dtype"]).save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)
    # The reference: the stored weights read back in float32, one sequence at a time (no padding).
    stored = getattr(transformers, spec["cls"]).from_pretrained(folder, dtype=torch.float32).eval()
    tensors = {}
    with torch.no_grad():
        for i, ids in enumerate(INPUTS):
            x = torch.tensor([ids])
            tensors[f"hidden.{i}"] = stored.model(input_ids=x).last_hidden_state[0].contiguous()
            if hasattr(stored, "score"):
                tensors[f"score.{i}"] = stored(input_ids=x).logits[0, -1].reshape(1).contiguous()
    save_file(tensors, os.path.join(out, f"{name}-reference.safetensors"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for seed, (name, spec) in enumerate(MODELS.items()):
        write(args.out, name, spec, seed + 1)
    with open(os.path.join(args.out, "inputs.json"), "w") as f:
        json.dump({"ids": INPUTS, "transformers": transformers.__version__, "torch": torch.__version__}, f)
    print(f"make_llama_family: wrote {', '.join(MODELS)} to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
