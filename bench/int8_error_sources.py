#!/usr/bin/env python3
"""Where int8's error in MiniLM's products comes from, and what two textbook fixes would take off.

Simulated in PyTorch with prm's int8 scheme (s8 weights per output channel, symmetric, max scale;
u8 activations per row, asymmetric, range widened to hold 0) on the real activations that feed each
product (the first --texts dev prompts+replies through the fp32 Hugging Face model): per layer and
product, the relative Frobenius error of X·Wᵀ with
  - int8: weights and activations quantized (what prm computes);
  - weights only / activations only quantized;
  - SmoothQuant (alpha 0.5): X/s and W·s with s_j = sqrt(max|X_j| / max|W_j|), calibrated on these
    same rows (optimistic: the calibration set is the test set);
  - MSE-clipped weights: each channel's scale the one of 17 clip ratios in [0.6, 1] with the least
    squared weight error.

  python3 bench/int8_error_sources.py --json bench/results/precision/error_sources.json
"""
import argparse
import json
import os
import sys

import torch
from transformers import AutoModel, AutoTokenizer


def quantize_weights(W, clip=1.0):
    scale = W.abs().amax(1, keepdim=True) * clip / 127
    return (W / scale).round().clamp(-127, 127) * scale


def quantize_weights_mse(W):
    best, chosen = None, None
    for clip in torch.linspace(0.6, 1.0, 17):
        Q = quantize_weights(W, float(clip))
        error = ((Q - W) ** 2).sum(1, keepdim=True)
        if best is None:
            best, chosen = error, Q
        else:
            better = error < best
            best, chosen = torch.where(better, error, best), torch.where(better, Q, chosen)
    return chosen


def quantize_rows(X):
    low, high = X.amin(1, keepdim=True).clamp(max=0), X.amax(1, keepdim=True).clamp(min=0)
    scale = ((high - low) / 255).clamp(min=1e-12)
    zero = (-low / scale).round()
    return ((X / scale).round() + zero).clamp(0, 255).sub(zero) * scale


def relative(out, ref):
    return ((out - ref).norm() / ref.norm()).item()


def errors(X, W):
    ref = X @ W.T
    s = (X.abs().amax(0).clamp(min=1e-5) / W.abs().amax(0).clamp(min=1e-5)).sqrt()
    return {"int8": relative(quantize_rows(X) @ quantize_weights(W).T, ref),
            "weights_only": relative(X @ quantize_weights(W).T, ref),
            "activations_only": relative(quantize_rows(X) @ W.T, ref),
            "smoothquant_0.5": relative(quantize_rows(X / s) @ quantize_weights(W * s).T, ref),
            "mse_clipped_weights": relative(quantize_rows(X) @ quantize_weights_mse(W).T, ref)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join("models", "all-MiniLM-L6-v2"))
    parser.add_argument("--data", default="data/lengthpref/dev.jsonl")
    parser.add_argument("--texts", type=int, default=40)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    with open(args.data) as f:
        rows = [json.loads(line) for line in f if line.strip()][:args.texts]
    captured = {}

    def keep(name):
        return lambda module, inputs, output: captured.setdefault(name, []).append(inputs[0].reshape(-1, inputs[0].shape[-1]))

    for l, layer in enumerate(model.encoder.layer):
        layer.attention.self.query.register_forward_hook(keep((l, "qkv")))
        layer.attention.output.dense.register_forward_hook(keep((l, "attention-output")))
        layer.intermediate.dense.register_forward_hook(keep((l, "ffn-up")))
        layer.output.dense.register_forward_hook(keep((l, "ffn-down")))
    report = {"command": "python3 bench/int8_error_sources.py " + " ".join(sys.argv[1:]), "texts": len(rows), "layers": []}
    with torch.no_grad():
        for row in rows:
            model(**tokenizer(row["prompt"] + row["chosen"], return_tensors="pt", truncation=True, max_length=256))
        for l, layer in enumerate(model.encoder.layer):
            attention = layer.attention.self
            weights = {"qkv": torch.cat([attention.query.weight, attention.key.weight, attention.value.weight]),
                       "attention-output": layer.attention.output.dense.weight,
                       "ffn-up": layer.intermediate.dense.weight, "ffn-down": layer.output.dense.weight}
            products = {name: errors(torch.cat(captured[(l, name)]), W) for name, W in weights.items()}
            report["layers"].append({"layer": l, "rows": sum(x.shape[0] for x in captured[(l, "qkv")]), "products": products})
            print(l, {n: {k: round(v, 4) for k, v in e.items()} for n, e in products.items()}, flush=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
    kinds = list(report["layers"][0]["products"]["qkv"].keys())
    lines = ["# Sources of int8's error in MiniLM's products (`bench/int8_error_sources.py`)", "", f"`{report['command']}`", "",
             f"Relative error of X·Wᵀ on the activations of the first {len(rows)} dev prompts+replies ({report['layers'][0]['rows']} rows), "
             "simulated with prm's int8 scheme; see the script's docstring for each column.", "",
             "| layer | product | " + " | ".join(kinds) + " |", "|---:|---|" + "---:|" * len(kinds)]
    for layer in report["layers"]:
        for name, e in layer["products"].items():
            lines.append(f"| {layer['layer']} | {name} | " + " | ".join(f"{e[k]:.4f}" for k in kinds) + " |")
    with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
