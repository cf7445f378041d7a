#!/usr/bin/env python3
"""The accuracy a perfect representation would allow with this little data: for each seen user, a
logistic regression on the true properties the simulated annotators weigh (log word count, a
question mark, a refusal/negation word, first person: bench/make_stylepref.py's features), fitted
on the user's train.jsonl comparisons and scored on their dev.jsonl ones. A diagnostic of the data
set, never an input to a model (issue 16: no hand-made features).

    python3 bench/feature_ceiling.py --set multipref --json bench/results/quality/multipref/ceiling.json
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from make_stylepref import Features  # noqa: E402  (the annotators' own features, one definition)


def properties(text, interactions):
    f = Features(text)
    values = [f.w, f.q, f.n, f.p]
    if interactions:
        values += [f.w * f.n, f.w * f.p, f.q * f.n]
    return np.array(values)


def fit_logistic(differences, l2=0.1, steps=2000, rate=0.5):
    """Weights w with P(chosen) = σ(w · (x_chosen − x_rejected)), by gradient descent."""
    w = np.zeros(differences.shape[1])
    for _ in range(steps):
        margin = differences @ w
        gradient = -(differences * (1 / (1 + np.exp(margin)))[:, None]).mean(0) + l2 * w / len(differences)
        w -= rate * gradient
    return w


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ceiling(folder, interactions):
    groups = json.load(open(os.path.join(folder, "groups.json"), encoding="utf-8"))
    by_user = collections.defaultdict(list)
    for row in read(os.path.join(folder, "train.jsonl")):
        by_user[row["user_id"]].append(properties(row["chosen"], interactions) - properties(row["rejected"], interactions))
    weights = {user: fit_logistic(np.array(rows)) for user, rows in by_user.items()}
    tally = collections.defaultdict(lambda: [0, 0])
    for row in read(os.path.join(folder, "dev.jsonl")):
        w = weights.get(row["user_id"])
        if w is None:
            continue  # unseen users have no comparisons to fit
        d = properties(row["chosen"], interactions) - properties(row["rejected"], interactions)
        cell = tally[f"seen/{groups[row['user_id']]}"]
        cell[0] += 1
        cell[1] += int(d @ w > 0)
    return {name: {"n": n, "accuracy": correct / n} for name, (n, correct) in sorted(tally.items())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="multipref")
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = os.path.join("data", args.set)
    result = {"set": args.set, "linear": ceiling(folder, False), "with_interactions": ceiling(folder, True)}
    for kind in ("linear", "with_interactions"):
        print(f"{kind:18s} " + "  ".join(f"{g} {100 * c['accuracy']:.1f}% (n={c['n']})" for g, c in result[kind].items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
