#!/usr/bin/env python3
"""Builds data/stylepref: the lengthpref dialogues relabelled by simulated annotators whose
preferences combine several observable, interacting properties of a reply (not length alone).

Every (prompt, reply, reply) pair of data/lengthpref/{train,dev}.jsonl goes into a pool; pairs are
split by prompt into a train pool (60%) and a dev pool (40%), so dev dialogues are new texts.
Each annotator belongs to a group with a utility over the reply's features

    w = log(word count)      q = 1 if the reply asks something back ('?')
    n = 1 if it holds a refusal/negation word (no, not, can't, cannot, don't, won't, never, unfortunately)

    thorough        u = +w − 1.0 q            longer answers, no questions back
    brief           u = −w − 1.0 n            shorter, and no refusals
    conversational  u = +1.5 q + 0.5 w (1 − 2n)   asked back; length helps unless the reply refuses

with each weight scaled per annotator by (1 + 0.2 N(0, 1)). The annotator prefers the reply of
higher utility; pairs whose utilities differ by less than 0.1 are drawn again (no coin flips).
40 annotators: 20 thorough, 12 brief, 8 conversational; 30 seen (32 train + 10 dev comparisons
each), 10 unseen (40 dev comparisons each). Seeded: the same command writes the same files.

    python3 bench/make_stylepref.py [--seed 7] [--out data/stylepref]
"""
import argparse
import json
import math
import os
import random
import re

NEGATION = re.compile(r"\b(no|not|can't|cannot|don't|won't|never|unfortunately)\b", re.I)
GROUPS = {
    "thorough": lambda w, q, n, k: k[0] * w - k[1] * q,
    "brief": lambda w, q, n, k: -k[0] * w - k[1] * n,
    "conversational": lambda w, q, n, k: 1.5 * k[1] * q + 0.5 * k[0] * w * (1 - 2 * n),
}
COUNTS = {"thorough": 20, "brief": 12, "conversational": 8}


def features(reply):
    return math.log(max(len(reply.split()), 1)), float("?" in reply), float(bool(NEGATION.search(reply)))


def read_pairs(folder):
    pairs = {}
    for name in ("train.jsonl", "dev.jsonl"):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    a, b = sorted([row["chosen"], row["rejected"]])
                    pairs[(row["prompt"], a, b)] = True
    return list(pairs)


def label(pair, group, jitter):
    prompt, a, b = pair
    ua, ub = GROUPS[group](*features(a), jitter), GROUPS[group](*features(b), jitter)
    if abs(ua - ub) < 0.1:
        return None
    chosen, rejected = (a, b) if ua > ub else (b, a)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def draw(rng, pool, count, group, jitter):
    rows = []
    for pair in rng.sample(pool, len(pool)):
        row = label(pair, group, jitter)
        if row:
            rows.append(row)
            if len(rows) == count:
                return rows
    raise SystemExit(f"pool too small for {count} comparisons of a {group} annotator")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="data/lengthpref")
    parser.add_argument("--out", default="data/stylepref")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pairs = read_pairs(args.source)
    prompts = sorted({p for p, _, _ in pairs})
    rng.shuffle(prompts)
    train_prompts = set(prompts[: int(0.6 * len(prompts))])
    train_pool = [p for p in pairs if p[0] in train_prompts]
    dev_pool = [p for p in pairs if p[0] not in train_prompts]

    groups = [g for g, n in COUNTS.items() for _ in range(n)]
    rng.shuffle(groups)
    # Seen and unseen users keep the group proportions: 3/4 of each group is seen.
    seen_left = {g: n * 3 // 4 for g, n in COUNTS.items()}
    train, dev, labels = [], [], {}
    for i, group in enumerate(groups, start=1):
        user = f"annotator-{i}"
        labels[user] = group
        jitter = [1 + 0.2 * rng.gauss(0, 1), 1 + 0.2 * rng.gauss(0, 1)]
        seen = seen_left[group] > 0
        if seen:
            seen_left[group] -= 1
            train += [dict(user_id=user, **r) for r in draw(rng, train_pool, 32, group, jitter)]
            dev += [dict(user_id=user, **r) for r in draw(rng, dev_pool, 10, group, jitter)]
        else:
            dev += [dict(user_id=user, **r) for r in draw(rng, dev_pool, 40, group, jitter)]
    rng.shuffle(train)
    rng.shuffle(dev)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("dev.jsonl", dev)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({k: row[k] for k in ("user_id", "prompt", "chosen", "rejected")}, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "groups.json"), "w", encoding="utf-8") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(train)} train, {len(dev)} dev comparisons; {len(labels)} annotators -> {args.out}")


if __name__ == "__main__":
    main()
