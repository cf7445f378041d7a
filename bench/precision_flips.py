#!/usr/bin/env python3
"""Which dev comparisons a low inference precision orders differently from fp32, and why.

Every comparison of --data becomes one `prm score` request (candidates: chosen, rejected; the
comparison's user, unknown users scored as the generic user as `prm eval`'s personal column does),
scored once per precision by the same checkpoint. For each precision against fp32 it reports the
pairwise accuracy, the pairs that flip (right -> wrong and wrong -> right) with their fp32 margins,
the spread of the margin's change (the precision's noise on a margin), and how many pairs have an
fp32 margin within a few of those spreads (the pairs noise of that size can flip at all).

  python3 bench/precision_flips.py --prm .build/release/prm --model runs/quality/lengthpref/default.seed1 \\
      --data data/lengthpref/dev.jsonl --json bench/results/precision/flips.seed1.json
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile


def margins(prm, model, requests_path, precision, count, extra=()):
    """chosen - rejected reward per comparison, in file order (`extra`: more `prm score` options)."""
    out = subprocess.run([prm, "score", "--model", model, "--input", requests_path, "--precision", precision, *extra],
                         check=True, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(lines) != count:
        sys.exit(f"prm score returned {len(lines)} results for {count} comparisons")
    result = []
    for line in lines:
        score = {item["index"]: item["score"] for item in line["ranking"]}
        result.append(score[0] - score[1])
    return result


def write_requests(rows, directory):
    """One `prm score` request per comparison (candidates: chosen, rejected) in `directory`; its path."""
    requests = os.path.join(directory, "requests.jsonl")
    with open(requests, "w") as f:
        for row in rows:
            f.write(json.dumps({"user_id": row["user_id"], "prompt": row["prompt"],
                                "candidates": [row["chosen"], row["rejected"]]}) + "\n")
    return requests


def compare(reference, other):
    n = len(reference)
    changes = [o - r for r, o in zip(reference, other)]
    noise = statistics.pstdev(changes)
    spread = statistics.pstdev(reference)
    flips = [{"pair": i, "fp32_margin": reference[i], "margin": other[i],
              "direction": "right->wrong" if reference[i] > 0 else "wrong->right"}
             for i in range(n) if (reference[i] > 0) != (other[i] > 0)]
    near = {f"within_{k}_noise": sum(abs(r) < k * noise for r in reference) for k in (1, 3, 5)}
    return {
        "accuracy": sum(m > 0 for m in other) / n,
        "margin_change_std": noise,
        "margin_change_max": max(abs(c) for c in changes),
        "fp32_margin_std": spread,
        "fp32_margins_near_zero": near,
        "flips": sorted(flips, key=lambda f: abs(f["fp32_margin"])),
        "right_to_wrong": sum(f["direction"] == "right->wrong" for f in flips),
        "wrong_to_right": sum(f["direction"] == "wrong->right" for f in flips),
        # Each flip is a coin toss for its sign when it is noise: the accuracy change is then
        # (wrong->right - right->wrong)/n with a standard deviation of sqrt(flips)/n.
        "accuracy_change_points": 100 * (sum(m > 0 for m in other) - sum(m > 0 for m in reference)) / n,
        "noise_sd_points": 100 * math.sqrt(len(flips)) / n,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prm", default=".build/release/prm")
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="data/lengthpref/dev.jsonl")
    parser.add_argument("--precisions", default="bf16,int8")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    with open(args.data) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with tempfile.TemporaryDirectory() as scratch:
        requests = write_requests(rows, scratch)
        reference = margins(args.prm, args.model, requests, "fp32", len(rows))
        report = {"command": "python3 bench/precision_flips.py " + " ".join(sys.argv[1:]),
                  "model": args.model, "data": args.data, "comparisons": len(rows),
                  "fp32_accuracy": sum(m > 0 for m in reference) / len(rows), "precisions": {}}
        for precision in args.precisions.split(","):
            report["precisions"][precision] = compare(reference, margins(args.prm, args.model, requests, precision, len(rows)))
    for flip in (f for p in report["precisions"].values() for f in p["flips"]):
        row = rows[flip["pair"]]
        flip.update(user_id=row["user_id"], chosen_chars=len(row["chosen"]), rejected_chars=len(row["rejected"]))
    with open(args.json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
    print(f"fp32 accuracy {100 * report['fp32_accuracy']:.2f} % on {len(rows)} comparisons")
    for precision, r in report["precisions"].items():
        print(f"{precision}: accuracy {100 * r['accuracy']:.2f} % ({r['accuracy_change_points']:+.2f} points); "
              f"{len(r['flips'])} flips ({r['right_to_wrong']} right->wrong, {r['wrong_to_right']} wrong->right; "
              f"noise sd of the change {r['noise_sd_points']:.2f} points); margin change sd {r['margin_change_std']:.4f} "
              f"(fp32 margins sd {r['fp32_margin_std']:.3f}); fp32 |margin| < 1/3/5 noise sd: "
              f"{r['fp32_margins_near_zero']}; flipped pairs' fp32 margins "
              + ", ".join(f"{f['fp32_margin']:+.4f}" for f in r["flips"]))


if __name__ == "__main__":
    main()
