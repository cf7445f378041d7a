"""A new user answers 3 questions and is served personally: the ``adapt`` op.

Start a server on a trained checkpoint (a linear-head model with individual users, as ``prm train``
writes by default for the built-in data), then run this script::

    prm serve --model runs/prm &
    python3 examples/new_user.py --endpoint tcp://127.0.0.1:5555

The new user here is simulated: someone who wants short answers, who picks the shorter reply of
each pair they are shown. Before adapting, the server knows nothing about them and scores them as
the generic user; after three answers it has fitted their vector (in well under a second, without
a restart) and ranks candidate replies for them personally. The fit is logged beside the
checkpoint, so a restarted server still knows them.
"""

from __future__ import annotations

import argparse
import uuid

from prm_client import Client, Comparison

#: Three questions, each with two replies the user chooses between.
QUESTIONS = [
    ("Human: How do I boil an egg?\n\nAssistant:",
     "Put it in boiling water for nine minutes, then cool it in cold water.",
     "Boiling an egg well takes a little care. Bring a pot of water to a rolling boil, lower the egg in "
     "gently with a spoon so the shell does not crack, and keep the heat steady. Nine minutes gives a firm "
     "yolk, six a soft one. Afterwards, move the egg into cold water for a few minutes so it stops cooking "
     "and the shell comes off more easily."),
    ("Human: What is the capital of Australia?\n\nAssistant:",
     "Many people guess Sydney or Melbourne, but the capital of Australia is Canberra, a planned city that "
     "was chosen as a compromise between those two rivals and became the seat of parliament in 1927.",
     "Canberra."),
    ("Human: Should I water my cactus every day?\n\nAssistant:",
     "No: every two to three weeks is plenty.",
     "Cacti store water in their stems and are adapted to long dry spells, so watering them every day "
     "would rot the roots. In spring and summer, water thoroughly when the soil has dried out completely, "
     "which is usually every two to three weeks; in winter, once a month or even less is enough."),
]

#: What the user is then served: one prompt, candidates of different lengths.
PROMPT = "Human: How can I fall asleep faster?\n\nAssistant:"
CANDIDATES = [
    "Keep a regular bedtime and put the phone away an hour before it.",
    "There are several things that help most people fall asleep faster. Go to bed and get up at the same "
    "time every day, keep the bedroom cool, dark and quiet, avoid caffeine after lunch and alcohol in the "
    "evening, and stop looking at screens an hour before bed. If you lie awake for more than twenty "
    "minutes, get up and read something calm until you feel sleepy.",
    "Try a regular bedtime.",
]


def answers_of_someone_who_wants_short_replies() -> list[Comparison]:
    """The simulated user's answers: the shorter reply of each pair is the one they chose."""
    return [Comparison(prompt, *answer(first, second)) for prompt, first, second in QUESTIONS]


def answer(first: str, second: str) -> tuple[str, str]:
    """The simulated user's answer to "which do you prefer?": (chosen, rejected), the shorter chosen."""
    return (first, second) if len(first) <= len(second) else (second, first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--user", default=f"newcomer-{uuid.uuid4().hex[:8]}", help="the new user's id")
    arguments = parser.parse_args()
    with Client(arguments.endpoint) as client:
        before = client.rank(PROMPT, CANDIDATES, user_id=arguments.user)
        print(f"before: known_user={before.known_user}, best candidate {before.best}: {CANDIDATES[before.best][:60]!r}")
        fitted = client.adapt(arguments.user, answers_of_someone_who_wants_short_replies())
        print(f"adapted {fitted.user_id} on {fitted.comparisons} answers: {fitted.correct} ordered right, "
              f"mean loss {fitted.mean_loss:.3f}, in {fitted.timing.compute_ms:.0f} ms")
        after = client.rank(PROMPT, CANDIDATES, user_id=arguments.user)
        print(f"after: known_user={after.known_user}, best candidate {after.best}: {CANDIDATES[after.best][:60]!r}")
        for index in after.order:
            print(f"  {after.scores[index]:8.3f}  (was {before.scores[index]:8.3f})  {len(CANDIDATES[index]):4d} chars")


if __name__ == "__main__":
    main()
