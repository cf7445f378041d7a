"""Best-of-N for any generator: sample N replies, let a running ``prm serve`` pick each user's best.

Start a server on a trained checkpoint, then run this script::

    prm serve --model runs/prm &
    python3 examples/best_of_n.py --endpoint tcp://127.0.0.1:5555 --users worker-1 worker-2 someone-new

The generator is a toy that samples canned replies of different lengths (no ML framework needed);
replace ``CannedGenerator`` with your model's sampling function ``generate(prompt, n) -> list[str]``.
"""

from __future__ import annotations

import argparse
import random

from prm_client import BestOfN, Client

PROMPT = "Human: I can't sleep at night. Any tips?\n\nAssistant:"

REPLIES = [
    "Try a regular bedtime.",
    "Cut caffeine after noon and keep your bedroom dark.",
    "Keep a regular schedule, even on weekends, and avoid screens for an hour before bed.",
    "A few things help most people: go to bed and get up at the same time every day, keep the bedroom "
    "cool, dark and quiet, avoid caffeine after lunch and alcohol in the evening, and put the phone away "
    "an hour before bed. If you lie awake for more than twenty minutes, get up and read until you feel sleepy.",
    "Sleep hygiene matters. Exercise during the day, but not late in the evening; have a light dinner; "
    "write tomorrow's worries on paper before bed so they stop circling; and if this goes on for weeks, "
    "talk to a doctor, since insomnia can have medical causes that are easy to treat.",
    "Warm milk.",
]


class CannedGenerator:
    """Samples ``n`` distinct canned replies; the same prompt always gets the same sample, so the
    users below are offered the same candidates and their picks can be compared."""

    def __call__(self, prompt: str, n: int) -> list[str]:
        return random.Random(f"{prompt}|{n}").sample(REPLIES, k=min(n, len(REPLIES)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the server's ZeroMQ endpoint")
    parser.add_argument("--users", nargs="+", default=["worker-1", "worker-2", "someone-new"], help="user ids to pick for")
    parser.add_argument("-n", type=int, default=4, help="replies to sample per prompt")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply before retrying")
    args = parser.parse_args()

    with Client(args.endpoint, timeout=args.timeout, retries=3) as client:
        best_of_n = BestOfN(CannedGenerator(), client, n=args.n)
        for user in args.users:
            result = best_of_n(PROMPT, user_id=user)
            kind = "known user" if result.known_user else "unseen user: scored as the generic user"
            print(f"{user} ({kind}): best is #{result.best_index}: {result.best[:60]!r}")
            for index in result.order:
                score = result.scores[index]
                shown = "nan" if score is None else f"{score:+.4f}"
                print(f"    #{index} {shown}  ({len(result.candidates[index].split())} words) {result.candidates[index][:50]!r}")


if __name__ == "__main__":
    main()
