#!/usr/bin/env python3
"""Which of a layer's matrix products carries int8's error: each product alone at int8, the rest bf16.

For each kind of product (qkv, attention-output, ffn-up, ffn-down) it runs the reward model with
`--precision int8 --int8-products KIND` (the other three at bf16), and, for reference, all at bf16
and all at int8. Against fp32 it records:
  - the margin change on every dev comparison (`prm score`, as bench/precision_flips.py): its
    standard deviation and the pairs that flip;
  - the encoder's embedding cosine (`prm embed`; min, mean) on the first 512 distinct dev replies.
bf16's own error is about a tenth of int8's (margin-change sd 0.017 against 0.152), so a product's
row measures what int8 on that product adds.

  python3 bench/precision_probe.py --prm .build/release/prm --reward-model runs/quality/lengthpref/default.seed1 \\
      --mixed attention-output,ffn-up,ffn-down --mixed attention-output,ffn-up --json bench/results/precision/probe.seed1.json
"""
import argparse
import json
import os
import math
import statistics
import subprocess
import sys
import tempfile

import precision_flips

PRODUCTS = ("qkv", "attention-output", "ffn-up", "ffn-down")


def plans(products, mixed):
    """(label, --precision, extra options) per row: bf16, each product alone at int8, all int8,
    then each of the `mixed` plans (--int8-products lists)."""
    rows = [("bf16", "bf16", [])]
    rows += [(f"int8 {p} only", "int8", ["--int8-products", p]) for p in products]
    rows.append(("int8", "int8", []))
    rows += [(f"int8 {m}", "int8", ["--int8-products", m]) for m in mixed]
    return rows


def embeddings(args, texts_path, precision, extra):
    """`prm embed`'s L2-normalised embeddings of every text, in order."""
    out = subprocess.run([args.prm, "embed", "--model", args.model, "--input", texts_path, "--precision", precision, *extra],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["embedding"] for line in out.splitlines() if line.strip()]


def cosines(reference, other):
    """Cosine of each embedding to its fp32 one (both are unit vectors)."""
    return [sum(a * b for a, b in zip(r, o)) / math.sqrt(sum(a * a for a in o) * sum(b * b for b in r)) for r, o in zip(reference, other)]


def distinct_replies(rows, count):
    """The first `count` distinct replies of the comparisons (chosen, then rejected, row by row)."""
    seen = []
    for row in rows:
        for reply in (row["chosen"], row["rejected"]):
            if reply not in seen:
                seen.append(reply)
    return seen[:count]


def markdown(report):
    """The probe's table: per plan, the margin noise, its share of all-int8's variance, flips and cosines."""
    int8 = next(r for r in report["rows"] if r["plan"] == "int8")
    lines = ["# Which product carries int8's error (`bench/precision_probe.py`)", "",
             f"`{report['command']}`", "",
             f"Reward model `{report['reward_model']}` on `{report['data']}` ({report['comparisons']} comparisons, fp32 accuracy "
             f"{100 * report['fp32_accuracy']:.2f} %); each plan's margins (`prm score`) and embeddings of the first "
             f"{int8['replies']} distinct dev replies (`prm embed`) against fp32's. A product \"only\" runs at int8 with the "
             "other three at bf16.", "",
             "| plan | margin change sd | share of int8's variance | largest change | flips (right→wrong / wrong→right) | accuracy change (points) | embedding cosine min / mean |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        share = r["margin_change_std"] ** 2 / int8["margin_change_std"] ** 2
        lines.append(f"| {r['plan']} | {r['margin_change_std']:.4f} | {100 * share:.0f} % | {r['margin_change_max']:.3f} | "
                     f"{r['flips']} ({r['right_to_wrong']} / {r['wrong_to_right']}) | {r['accuracy_change_points']:+.2f} | "
                     f"{r['cosine_min']:.5f} / {r['cosine_mean']:.6f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prm", default=".build/release/prm")
    parser.add_argument("--reward-model", required=True)
    parser.add_argument("--model", default=os.path.join("models", "all-MiniLM-L6-v2"), help="encoder folder for prm embed")
    parser.add_argument("--data", default="data/lengthpref/dev.jsonl", help="dev comparisons: margins, and replies to embed")
    parser.add_argument("--replies", type=int, default=512, help="distinct replies embedded")
    parser.add_argument("--products", default=",".join(PRODUCTS))
    parser.add_argument("--mixed", action="append", default=[], help="an --int8-products plan to add (repeatable)")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    with open(args.data) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    report = {"command": "python3 bench/precision_probe.py " + " ".join(sys.argv[1:]), "reward_model": args.reward_model,
              "data": args.data, "comparisons": len(rows), "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        requests = precision_flips.write_requests(rows, scratch)
        texts = os.path.join(scratch, "texts.jsonl")
        with open(texts, "w") as f:
            for reply in distinct_replies(rows, args.replies):
                f.write(json.dumps({"text": reply}) + "\n")
        reference = precision_flips.margins(args.prm, args.reward_model, requests, "fp32", len(rows))
        reference_embeddings = embeddings(args, texts, "fp32", [])
        report["fp32_accuracy"] = sum(m > 0 for m in reference) / len(rows)
        for label, precision, extra in plans(args.products.split(","), args.mixed):
            other = precision_flips.margins(args.prm, args.reward_model, requests, precision, len(rows), extra)
            margins = precision_flips.compare(reference, other)
            row = {"plan": label, "precision": precision, "options": extra,
                   **{k: margins[k] for k in ("accuracy", "accuracy_change_points", "margin_change_std", "margin_change_max",
                                               "right_to_wrong", "wrong_to_right")},
                   "flips": len(margins["flips"])}
            cosine = cosines(reference_embeddings, embeddings(args, texts, precision, extra))
            row.update(replies=len(cosine), cosine_min=min(cosine), cosine_mean=statistics.fmean(cosine))
            report["rows"].append(row)
            print(f"{label}: margin change sd {row['margin_change_std']:.4f}, flips {row['flips']}, accuracy "
                  f"{row['accuracy_change_points']:+.2f} points, cosine min {row['cosine_min']:.5f} mean {row['cosine_mean']:.6f}", flush=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
    md = os.path.splitext(args.json)[0] + ".md"
    with open(md + ".tmp", "w") as f:
        f.write(markdown(report))
    os.replace(md + ".tmp", md)


if __name__ == "__main__":
    main()
