#!/usr/bin/env python3
"""Pretty-prints prm's JSONL output for the demo: `show.py cosine` (prm embed), `show.py ranking`
(prm score), `show.py compare A.jsonl B.jsonl` (whether two users' rankings and picks differ), or
`show.py for-user ID` (prm generate's output as prm score --input requests for user ID, the prompt
as a chat message, which prm score writes in the checkpoint's own template)."""
import json
import sys


def cosine(rows):
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            cos = sum(x * y for x, y in zip(a["embedding"], b["embedding"]))
            print(f"  cos {cos:+.3f}  {a['text']!r} ~ {b['text']!r}")


def ranking(rows):
    for r in rows:
        for rank, c in enumerate(r["ranking"], 1):
            print(f"  {rank}. {c['score']:+.3f}  ({len(c['text'].split()):2d} words) {c['text'][:72]}")


def compare(first, second):
    a, b = ([json.loads(line) for line in open(path) if line.strip()][0] for path in (first, second))
    order_a = [c["index"] for c in a["ranking"]]
    order_b = [c["index"] for c in b["ranking"]]
    verdict = "differ" if order_a != order_b else "are the SAME (the model did not personalize these candidates)"
    print(f"\n  {a['user_id']} ranks {order_a}, {b['user_id']} ranks {order_b}: the orders {verdict}")
    picks = "differ" if order_a[0] != order_b[0] else "are the SAME"
    print(f"  {a['user_id']} picks #{order_a[0]}, {b['user_id']} picks #{order_b[0]}: the picks {picks}")


def for_user(rows, user):
    for r in rows:
        prompt = [{"role": "user", "content": r["prompt"]}]
        print(json.dumps({**r, "user_id": user, "prompt": prompt}))


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "for-user":
        for_user([json.loads(line) for line in sys.stdin if line.strip()], sys.argv[2])
    else:
        rows = [json.loads(line) for line in sys.stdin if line.strip()]
        {"cosine": cosine, "ranking": ranking}[sys.argv[1]](rows)
