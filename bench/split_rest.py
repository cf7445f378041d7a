#!/usr/bin/env python3
"""The training part of a `prm train --val-fraction` run: the rows of --data that are not in the
run's held-back val.jsonl (matched on user, prompt, chosen and rejected; prm writes val.jsonl in the
native layout, so --data must be in it too). Fails unless every held-out row is found once."""
import argparse
import json
import sys

def key(row):
    return (row["user_id"], row["prompt"], row["chosen"], row["rejected"])

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--held-out", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with open(a.held_out, encoding="utf-8") as f:
        held = [key(json.loads(line)) for line in f if line.strip()]
    remaining = set(held)
    kept = []
    with open(a.data, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            k = key(json.loads(line))
            if k in remaining:
                remaining.discard(k)
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if remaining or len(set(held)) != len(held):
        sys.exit(f"{a.held_out}: {len(remaining)} held-out rows not found in {a.data} (or duplicated)")
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(kept)
    print(f"{a.out}: {len(kept)} rows ({len(held)} held out)", file=sys.stderr)

if __name__ == "__main__":
    main()
