#!/usr/bin/env python3
"""Builds the markdown quality table from the `prm eval --json` reports in a results folder."""
import json
import os
import sys

RUNS = ["vanilla", "prm-soft-prompt", "prm-linear-head", "prm-cluster-k2", "prm-cluster-k10"]
CELLS = ["seen/majority", "seen/minority", "unseen/majority", "unseen/minority"]


def main(folder):
    lines = ["| model | " + " | ".join(CELLS) + " | seen | unseen | overall |",
             "|---|" + "---:|" * (len(CELLS) + 3)]
    for run in RUNS:
        path = os.path.join(folder, run + ".json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            report = json.load(f)
        groups = report.get("by_group", {})
        cells = [f"{100 * groups[c]['accuracy']:.1f}% (n={groups[c]['n']})" if c in groups else "-" for c in CELLS]
        lines.append(f"| {run} | " + " | ".join(cells)
                     + f" | {100 * report['seen']['accuracy']:.1f}% | {100 * report['unseen']['accuracy']:.1f}%"
                     + f" | {100 * report['overall']['accuracy']:.1f}% |")
    lines += ["", "Personalized accuracy on lengthpref dev (unseen users are scored as the generic user 0);",
              "generic-user accuracy for every slice is in each run's JSON report (`generic_accuracy`).",
              "Every run: MiniLM-L6 backbone fine-tuned, 3 epochs, batch 16, lr 1e-5 (user tables and head 1e-2),",
              "dropout 0.1, max length 128, alpha 0.5 (vanilla: uniform users, 0 user tokens, alpha 1);",
              "P-RM: individual users (soft prompt with T_u 10, or linear head); cluster runs: linear head with K centres",
              "(mixture logits at 10x the user learning rate).",
              "Majority/minority labels come from the data itself (bench/label_users.py).",
              "Reproduce: bash bench/quality.sh"]
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/quality")
