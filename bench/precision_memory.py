#!/usr/bin/env python3
"""Peak resident memory of whole `prm` processes at each --precision (GNU time's maximum RSS).

Two uses: one `prm generate` from the SmolLM2 GGUF (16 greedy tokens; the load, the dequantization
and the preparation included), and one `prm score` of --score-requests requests by a MiniLM reward
model. With --before, the same commands run by a second binary (e.g. main's build) in the same run.

  python3 bench/precision_memory.py --prm .build/release/prm --before <main's prm> \\
      --reward-model runs/quality/lengthpref/default.seed1 --json bench/results/precision/memory.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import precision_flips

PRECISIONS = ("fp32", "bf16", "int8")


def peak_mb(argv):
    """The command's maximum resident size in MB (it must succeed)."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *argv], check=True, capture_output=True)
        return int(report.read().split()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prm", default=".build/release/prm")
    parser.add_argument("--before", help="another prm binary to measure the same way")
    parser.add_argument("--policy", default=os.path.join("models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--reward-model", required=True)
    parser.add_argument("--data", default="data/lengthpref/dev.jsonl")
    parser.add_argument("--score-requests", type=int, default=64)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    with open(args.data) as f:
        rows = [json.loads(line) for line in f if line.strip()][:args.score_requests]
    binaries = {"this": args.prm} | ({"before": args.before} if args.before else {})
    report = {"command": "python3 bench/precision_memory.py " + " ".join(sys.argv[1:]), "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        requests = precision_flips.write_requests(rows, scratch)
        uses = {"prm generate (SmolLM2 GGUF)": ["generate", "--policy", args.policy, "--prompt", "Any tips for sleeping better?",
                                                "-n", "1", "--max-new-tokens", "16", "--temperature", "0"],
                "prm score (MiniLM reward model)": ["score", "--model", args.reward_model, "--input", requests]}
        for use, options in uses.items():
            for precision in PRECISIONS:
                row = {"use": use, "precision": precision}
                for name, prm in binaries.items():
                    row[f"{name}_peak_mb"] = peak_mb([prm, *options, "--precision", precision])
                report["rows"].append(row)
                print(row, flush=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
    lines = ["# Peak RSS per precision (`bench/precision_memory.py`)", "", f"`{report['command']}`", "",
             "Whole processes, GNU time's maximum resident size. " + ("`before`: the same commands by main's build, which kept the fp32 "
                                                                     "matrices beside the low-precision copies." if args.before else ""), "",
             "| use | precision | peak RSS MB | " + ("before MB |" if args.before else ""), "|---|---|---:|" + ("---:|" if args.before else "")]
    for r in report["rows"]:
        lines.append(f"| {r['use']} | {r['precision']} | {r['this_peak_mb']:.0f} | " + (f"{r['before_peak_mb']:.0f} |" if args.before else ""))
    with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
