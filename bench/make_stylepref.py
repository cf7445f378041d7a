#!/usr/bin/env python3
"""Builds data/stylepref (and data/multipref, --preset multipref): the lengthpref dialogues
relabelled by simulated annotators whose preferences combine several observable, interacting
properties of a reply (not length alone).

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

multipref (issue 16, item 3) has six groups, 8 annotators each (6 seen, 2 unseen), and as few
comparisons per seen annotator as real logs have: 20 to 50 in train (uniform), 10 in dev. A fourth
feature joins the three above, p = 1 if the reply speaks in the first person (I, I'm, I've, me, my):

    thorough        u = +w − 1.0 q
    brief           u = −w − 1.0 n
    conversational  u = +1.5 q + 0.5 w (1 − 2n)
    direct          u = −1.0 n − 1.0 q + 0.3 w         answers, neither refusing nor asking back
    personal        u = +1.0 p + 0.5 q (1 − n)        speaks as itself; a question back unless refusing
    cautious        u = +1.0 n + 0.5 w p              refusals welcome; length only in the first person

    python3 bench/make_stylepref.py [--seed 7] [--out data/stylepref]
    python3 bench/make_stylepref.py --preset multipref [--seed 11] [--out data/multipref]

Two one-property diagnostics, lengthpref's shape with q or n in place of length (20 + 20 annotators,
30 seen): questionpref (asking u = +q, answering u = −q) and negationpref (negating u = +n,
affirming u = −n). They ask whether a reward model can learn the property when it is all that
matters, which separates "h cannot carry it" from "several properties share too little signal".
    python3 bench/make_stylepref.py --preset questionpref --out runs/diag/questionpref

--train-per-user N gives every seen annotator N training comparisons (a data-quantity diagnostic:
    python3 bench/make_stylepref.py --train-per-user 128 --out runs/diag/stylepref-x4).
"""
import argparse
import json
import math
import os
import random
import re

NEGATION = re.compile(r"\b(no|not|can't|cannot|don't|won't|never|unfortunately)\b", re.I)
FIRST_PERSON = re.compile(r"\b(I|I'm|I've|me|my)\b")
# Utilities of the features f (w, q, n, p) and an annotator's weight jitter k (k[0] scales the
# first term's weight, k[1] the second's).
GROUPS = {
    "thorough": lambda f, k: k[0] * f.w - k[1] * f.q,
    "brief": lambda f, k: -k[0] * f.w - k[1] * f.n,
    "conversational": lambda f, k: 1.5 * k[1] * f.q + 0.5 * k[0] * f.w * (1 - 2 * f.n),
    "direct": lambda f, k: -k[0] * f.n - k[1] * f.q + 0.3 * f.w,
    "personal": lambda f, k: k[0] * f.p + 0.5 * k[1] * f.q * (1 - f.n),
    "cautious": lambda f, k: k[0] * f.n + 0.5 * k[1] * f.w * f.p,
    # One-property diagnostics (presets questionpref, negationpref): can h learn q or n when it is
    # all a user cares about?
    "asking": lambda f, k: k[0] * f.q,
    "answering": lambda f, k: -k[0] * f.q,
    "negating": lambda f, k: k[0] * f.n,
    "affirming": lambda f, k: -k[0] * f.n,
}
# Annotators per group, and (train comparisons per seen annotator: fixed or a uniform range, dev
# comparisons per seen annotator, dev comparisons per unseen annotator).
PRESETS = {
    "stylepref": dict(counts={"thorough": 20, "brief": 12, "conversational": 8}, train=(32, 32), dev=10, unseen=40, seed=7),
    "multipref": dict(counts={g: 8 for g in ("thorough", "brief", "conversational", "direct", "personal", "cautious")},
                      train=(20, 50), dev=10, unseen=40, seed=11),
    "questionpref": dict(counts={"asking": 20, "answering": 20}, train=(32, 32), dev=10, unseen=40, seed=13),
    "negationpref": dict(counts={"negating": 20, "affirming": 20}, train=(32, 32), dev=10, unseen=40, seed=17),
}


class Features:
    def __init__(self, reply):
        self.w = math.log(max(len(reply.split()), 1))
        self.q = float("?" in reply)
        self.n = float(bool(NEGATION.search(reply)))
        self.p = float(bool(FIRST_PERSON.search(reply)))


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
    ua, ub = GROUPS[group](Features(a), jitter), GROUPS[group](Features(b), jitter)
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
    parser.add_argument("--preset", choices=sorted(PRESETS), default="stylepref")
    parser.add_argument("--source", default="data/lengthpref")
    parser.add_argument("--out", help="default: data/PRESET")
    parser.add_argument("--seed", type=int, help="default: the preset's")
    parser.add_argument("--train-per-user", type=int, help="training comparisons per seen annotator (default: the preset's)")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    if args.train_per_user:
        preset = dict(preset, train=(args.train_per_user, args.train_per_user))
    out = args.out or f"data/{args.preset}"
    rng = random.Random(preset["seed"] if args.seed is None else args.seed)
    pairs = read_pairs(args.source)
    prompts = sorted({p for p, _, _ in pairs})
    rng.shuffle(prompts)
    train_prompts = set(prompts[: int(0.6 * len(prompts))])
    train_pool = [p for p in pairs if p[0] in train_prompts]
    dev_pool = [p for p in pairs if p[0] not in train_prompts]

    counts = preset["counts"]
    groups = [g for g, n in counts.items() for _ in range(n)]
    rng.shuffle(groups)
    # Seen and unseen users keep the group proportions: 3/4 of each group is seen.
    seen_left = {g: n * 3 // 4 for g, n in counts.items()}
    train, dev, labels = [], [], {}
    for i, group in enumerate(groups, start=1):
        user = f"annotator-{i}"
        labels[user] = group
        jitter = [1 + 0.2 * rng.gauss(0, 1), 1 + 0.2 * rng.gauss(0, 1)]
        seen = seen_left[group] > 0
        if seen:
            seen_left[group] -= 1
            low, high = preset["train"]
            # A fixed count draws nothing, so stylepref's files stay what they were.
            n_train = low if low == high else rng.randint(low, high)
            train += [dict(user_id=user, **r) for r in draw(rng, train_pool, n_train, group, jitter)]
            dev += [dict(user_id=user, **r) for r in draw(rng, dev_pool, preset["dev"], group, jitter)]
        else:
            dev += [dict(user_id=user, **r) for r in draw(rng, dev_pool, preset["unseen"], group, jitter)]
    rng.shuffle(train)
    rng.shuffle(dev)
    os.makedirs(out, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("dev.jsonl", dev)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({k: row[k] for k in ("user_id", "prompt", "chosen", "rejected")}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "groups.json"), "w", encoding="utf-8") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(train)} train, {len(dev)} dev comparisons; {len(labels)} annotators -> {out}")


if __name__ == "__main__":
    main()
