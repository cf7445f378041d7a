#!/usr/bin/env python3
"""An independent numpy measurement beside `prm probe` (issue 16): ridge probes of log(word count)
from three representations of the same replies, computed here with HF `tokenizers` and a numpy
BERT forward pass, not with prm's code:

  window-h      what prm's linear head reads: [CLS] prompt-tail reply [SEP] in prm's 128-token
                window (the whole reply kept, the prompt trimmed from the left), mean over every
                row, not normalised
  reply-mean    the reply alone ([CLS] reply [SEP], at most 128 tokens), mean over rows
  reply-embed   the same, L2-normalised: `prm embed --max-tokens 128`, the issue's measurement

Replies: distinct (prompt, reply) pairs sampled whole prompts at a time; halves by prompt;
features standardised on the fitting half; lambda by 5-fold CV by prompt; R2 on the other half,
and the share of held-out comparison pairs the probe orders as their word counts.

    python3 bench/probe_reference.py --data data/lengthpref/train.jsonl --max-replies 1200
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "Reference"))
from reference_common import layer_norm, load_json, load_weights  # noqa: E402


def erf(x):
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return s * y


class Bert:
    def __init__(self, folder):
        config = load_json(os.path.join(folder, "config.json"), "config")
        self.C, self.L, self.H = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        get = load_weights(folder, "bert.")
        C, I = self.C, config["intermediate_size"]
        f = np.float32
        self.word = get("embeddings.word_embeddings.weight", (config["vocab_size"], C)).astype(f)
        self.pos = get("embeddings.position_embeddings.weight", (config["max_position_embeddings"], C)).astype(f)
        self.type0 = get("embeddings.token_type_embeddings.weight", (config["type_vocab_size"], C))[0].astype(f)
        self.ln = (get("embeddings.LayerNorm.weight", (C,)).astype(f), get("embeddings.LayerNorm.bias", (C,)).astype(f))
        self.layers = []
        for l in range(self.L):
            p = f"encoder.layer.{l}."
            w = {}
            for name, shape in [("attention.self.query", (C, C)), ("attention.self.key", (C, C)), ("attention.self.value", (C, C)),
                                ("attention.output.dense", (C, C)), ("intermediate.dense", (I, C)), ("output.dense", (C, I))]:
                w[name] = (get(p + name + ".weight", shape).T.astype(f).copy(), get(p + name + ".bias", (shape[0],)).astype(f))
            for name in ["attention.output.LayerNorm", "output.LayerNorm"]:
                w[name] = (get(p + name + ".weight", (C,)).astype(f), get(p + name + ".bias", (C,)).astype(f))
            self.layers.append(w)

    def hidden(self, ids):
        """(T, C) last hidden states of one unpadded sequence."""
        T, C, H = len(ids), self.C, self.H
        D = C // H
        x = layer_norm(self.word[ids] + self.pos[:T] + self.type0, *self.ln, self.eps)
        for w in self.layers:
            def lin(v, name):
                return v @ w[name][0] + w[name][1]
            q = lin(x, "attention.self.query").reshape(T, H, D).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(T, H, D).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(T, H, D).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(D)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            context = (s @ v).transpose(1, 0, 2).reshape(T, C)
            x = layer_norm(lin(context, "attention.output.dense") + x, *w["attention.output.LayerNorm"], self.eps)
            inner = lin(x, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
            x = layer_norm(lin(inner, "output.dense") + x, *w["output.LayerNorm"], self.eps)
        return x


def ridge_fits(x, y, lambdas):
    mean, y_mean = x.mean(axis=0), y.mean()
    xc = x - mean
    gram, rhs = xc.T @ xc, xc.T @ (y - y_mean)
    fits = []
    for lam in lambdas:
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        fits.append((w, y_mean - mean @ w))
    return fits


def probe(features, y, fit, test, folds, lambdas):
    mu, sd = features[fit].mean(axis=0), features[fit].std(axis=0)
    sd[sd < 1e-12] = 1
    z = (features - mu) / sd
    errors = np.zeros(len(lambdas))
    for k in sorted(set(folds)):
        held, kept = fit[folds == k], fit[folds != k]
        for i, (w, b) in enumerate(ridge_fits(z[kept], y[kept], lambdas)):
            errors[i] += ((z[held] @ w + b - y[held]) ** 2).sum()
    lam = lambdas[int(np.argmin(errors))]
    w, b = ridge_fits(z[fit], y[fit], [lam])[0]
    predicted = z @ w + b
    r2 = 1 - ((predicted[test] - y[test]) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum()
    return lam, r2, predicted


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2")
    parser.add_argument("--max-replies", type=int, default=1200)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    from tokenizers import Tokenizer

    rows = [json.loads(line) for line in open(args.data) if line.strip()]
    by_prompt = {}
    for r in rows:
        for text in (r["chosen"], r["rejected"]):
            group = by_prompt.setdefault(r["prompt"], [])
            if text not in group:
                group.append(text)
    rng = np.random.default_rng(args.seed)
    prompts = list(by_prompt)
    replies = []
    for i in rng.permutation(len(prompts)):
        group = by_prompt[prompts[i]]
        if len(replies) + len(group) <= args.max_replies:
            replies += [(prompts[i], t) for t in group]
    chosen_prompts = sorted({p for p, _ in replies}, key=lambda p: rng.random())
    half = {p: n % 2 for n, p in enumerate(chosen_prompts)}
    fold_of = {p: (n // 2) % 5 for n, p in enumerate(chosen_prompts)}
    side = np.array([half[p] for p, _ in replies])
    fit, test = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
    folds = np.array([fold_of[replies[i][0]] for i in fit])

    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    bert = Bert(args.model)
    budget = args.window - 2
    representations = {"window-h": [], "reply-mean": [], "reply-embed": []}
    for n, (prompt, reply) in enumerate(replies):
        p_ids = tokenizer.encode(prompt, add_special_tokens=False).ids
        r_ids = tokenizer.encode(reply, add_special_tokens=False).ids[:budget]
        room = min(budget - len(r_ids), len(p_ids))
        kept_prompt = p_ids[len(p_ids) - room:] if room > 0 else []
        window = bert.hidden(np.array([cls] + kept_prompt + r_ids + [sep])).mean(axis=0)
        alone = bert.hidden(np.array([cls] + r_ids + [sep])).mean(axis=0)
        representations["window-h"].append(window)
        representations["reply-mean"].append(alone)
        representations["reply-embed"].append(alone / max(np.linalg.norm(alone), 1e-12))
        if (n + 1) % 200 == 0:
            print(f"{n + 1}/{len(replies)} replies", file=sys.stderr)

    words = np.array([max(len(t.split()), 1) for _, t in replies])
    y = np.log(words)
    position = {replies[i]: k for k, i in enumerate(test)}
    pairs = set()
    for r in rows:
        a, b = position.get((r["prompt"], r["chosen"])), position.get((r["prompt"], r["rejected"]))
        if a is not None and b is not None and words[test[a]] != words[test[b]]:
            pairs.add((min(a, b), max(a, b)))
    lambdas = [0.01, 0.1, 1, 10, 100, 1000, 10000, 100000]
    results = {}
    print(f"{len(replies)} replies, {len(fit)} fit / {len(test)} test, {len(pairs)} held-out pairs")
    for name, vectors in representations.items():
        lam, r2, predicted = probe(np.array(vectors, dtype=np.float64), y, fit, test, folds, lambdas)
        held = predicted[test]
        agree = sum((held[a] - held[b]) * (words[test[a]] - words[test[b]]) > 0 for a, b in pairs)
        results[name] = {"lambda": lam, "r2": float(r2), "pair_ordering": agree / max(len(pairs), 1)}
        print(f"{name:12s} lambda {lam:>8g}  R2 {r2:.3f}  pairs ordered {100 * agree / max(len(pairs), 1):.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "replies": len(replies), "fit": len(fit), "test": len(test), "pairs": len(pairs),
                       "seed": args.seed, "window": args.window, "results": results}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
