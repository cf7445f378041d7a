#!/usr/bin/env python3
"""Labels each annotator majority or minority from the data itself (lengthpref's README: majority
annotators prefer the longer final reply, minority the shorter; which is which is not written).

A seen user is labelled from its training comparisons; an unseen user (absent from train) from its
dev comparisons, the only data it has. Writes {user_id: "majority"|"minority"} as JSON."""
import argparse
import json
import sys


def longer_chosen_share(path):
    counts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            longer = len(row["chosen"].split()) > len(row["rejected"].split())
            n, k = counts.get(row["user_id"], (0, 0))
            counts[row["user_id"]] = (n + 1, k + int(longer))
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    train, dev = longer_chosen_share(args.train), longer_chosen_share(args.dev)
    labels = {}
    for user in sorted(set(train) | set(dev), key=lambda u: (len(u), u)):
        n, k = train.get(user) or dev[user]
        labels[user] = "majority" if k / n > 0.5 else "minority"
        print(f"{user:12s} {'seen' if user in train else 'unseen':7s} longer chosen {k:3d}/{n:3d} -> {labels[user]}", file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
    majority = sum(v == "majority" for v in labels.values())
    print(f"{majority} majority, {len(labels) - majority} minority users -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
