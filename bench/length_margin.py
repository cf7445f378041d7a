#!/usr/bin/env python3
"""Where a lengthpref model's errors on seen users lie (issue 16): dev's seen-user pairs by how far
apart the two replies' word counts are (|log ratio|), the model's accuracy in each band, and the
accuracy of the rule a perfect *token* counter would follow (longer in all-MiniLM-L6-v2's WordPiece
tokens is better for majority users, shorter for minority ones). Annotators judged by words;
the model reads tokens. A diagnostic, never an input to a model.

    python3 bench/length_margin.py --model runs/quality/lengthpref/default.seed1 \
        --json bench/results/quality/lengthpref/length_margin.json
"""
import argparse
import collections
import json
import math
import subprocess

from tokenizers import Tokenizer

BANDS = [(0.1, "<0.1"), (0.3, "0.1-0.3"), (0.7, "0.3-0.7"), (math.inf, ">=0.7")]


def band(chosen, rejected):
    ratio = abs(math.log(max(len(chosen.split()), 1) / max(len(rejected.split()), 1)))
    return next(name for limit, name in BANDS if ratio < limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prm", default=".build/release/prm")
    ap.add_argument("--data", default="data/lengthpref")
    ap.add_argument("--groups", default="bench/results/quality/groups.json")
    ap.add_argument("--tokenizer", default="models/all-MiniLM-L6-v2/tokenizer.json")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    dev = [json.loads(line) for line in open(f"{args.data}/dev.jsonl") if line.strip()]
    seen = {json.loads(line)["user_id"] for line in open(f"{args.data}/train.jsonl") if line.strip()}
    groups = json.load(open(args.groups))
    pairs = [r for r in dev if r["user_id"] in seen]
    requests = "".join(json.dumps({"user_id": r["user_id"], "prompt": r["prompt"],
                                   "candidates": [r["chosen"], r["rejected"]]}) + "\n" for r in pairs)
    scored = subprocess.run([args.prm, "score", "--model", args.model, "--input", "-"], input=requests,
                            capture_output=True, text=True, check=True).stdout
    rankings = [json.loads(line) for line in scored.splitlines() if line.strip()]
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.no_truncation()

    def tokens(text):
        return len(tok.encode(text, add_special_tokens=False).ids)

    table = collections.defaultdict(lambda: {"n": 0, "model": 0, "token_rule": 0})
    for r, ranking in zip(pairs, rankings):
        group = groups[r["user_id"]]
        longer_wins = group == "majority"
        token_right = (tokens(r["chosen"]) > tokens(r["rejected"])) == longer_wins
        for key in (f"{group}/{band(r['chosen'], r['rejected'])}", f"{group}/all"):
            row = table[key]
            row["n"] += 1
            row["model"] += ranking["ranking"][0]["index"] == 0
            row["token_rule"] += token_right
    result = {"model": args.model, "bands": "|log(words chosen / words rejected)|",
              "rows": {k: {**v, "model_accuracy": v["model"] / v["n"], "token_rule_accuracy": v["token_rule"] / v["n"]}
                       for k, v in sorted(table.items())}}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print("| seen group / word-count band | n | model | perfect token counter |")
    print("|---|---:|---:|---:|")
    for k, v in result["rows"].items():
        print(f"| {k} | {v['n']} | {100 * v['model_accuracy']:.1f}% | {100 * v['token_rule_accuracy']:.1f}% |")


if __name__ == "__main__":
    main()
