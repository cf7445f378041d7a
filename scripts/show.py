#!/usr/bin/env python3
"""Pretty-prints prm's JSONL output for the demo: `show.py cosine` (prm embed) or `show.py ranking` (prm score)."""
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


if __name__ == "__main__":
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    {"cosine": cosine, "ranking": ranking}[sys.argv[1]](rows)
