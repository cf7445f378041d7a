"""A new user answers 3 questions and is served personally: ``suggest`` → answers → ``adapt`` → ``rank``.

Start a server on a trained checkpoint (a linear-head model with individual users, as ``prm train``
writes by default for the built-in data), then run this script::

    prm serve --model runs/prm &
    python3 examples/onboard_user.py --endpoint tcp://127.0.0.1:5555

Unlike ``new_user.py``, which asks fixed questions, here the server chooses them: ``suggest``
returns the pairs of candidate replies whose answers would most reduce its uncertainty about the
newcomer's reward differences (under the prior estimated from the trained users), the user answers
them, ``adapt`` fits the user on the answers, and ``rank`` serves the user personally. ``rank``
with ``uncertainty=True`` shows the standard deviation of each score before (the prior) and after
(the Laplace approximation of the fit).

The user here is simulated: someone who wants short answers, who picks the shorter reply of each
pair they are shown.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from prm_client import Client, Comparison

# What the user is then served, and how they answer: as in the adapt example.
from new_user import CANDIDATES, PROMPT, answer

#: The replies the questions are drawn from: answers of different lengths to one prompt.
ONBOARDING_PROMPT = "Human: How do I keep basil alive on a windowsill?\n\nAssistant:"
ONBOARDING_CANDIDATES = [
    "Give it sun and water when the soil is dry.",
    "Basil wants at least six hours of direct sun, so a south-facing window is best. Water it when the top "
    "centimetre of soil feels dry, never letting the pot sit in water, and pinch off the flower buds as soon "
    "as they appear so the plant keeps making leaves. Harvest from the top, just above a pair of leaves, and "
    "it will branch and grow bushier.",
    "Sun, water when dry, pinch the flowers.",
    "Put it in your sunniest window and water it whenever the soil has dried out on top. Cut off any flower "
    "buds, because once basil flowers the leaves turn bitter and the plant stops growing.",
    "It needs a lot of light and regular but not excessive watering; a pot with drainage holes helps, and "
    "turning the pot every few days keeps the plant from leaning towards the glass.",
]


QUESTIONS = 3


def onboard(client: Client, user: str) -> dict[str, Any]:
    """Suggest → answer → adapt → rank for ``user``; returns what each step gave."""
    before = client.rank(PROMPT, CANDIDATES, user_id=user, uncertainty=True)
    suggested = client.suggest(ONBOARDING_PROMPT, ONBOARDING_CANDIDATES, k=QUESTIONS, user_id=user)
    answers = []
    for pair in suggested.pairs:
        chosen, rejected = answer(ONBOARDING_CANDIDATES[pair.first], ONBOARDING_CANDIDATES[pair.second])
        answers.append(Comparison(ONBOARDING_PROMPT, chosen, rejected))
    fitted = client.adapt(user, answers)
    after = client.rank(PROMPT, CANDIDATES, user_id=user, uncertainty=True)
    return {"before": before, "suggested": suggested, "answers": answers, "fitted": fitted, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--user", default=f"newcomer-{uuid.uuid4().hex[:8]}", help="the new user's id")
    arguments = parser.parse_args()
    with Client(arguments.endpoint) as client:
        steps = onboard(client, arguments.user)
    before, suggested, fitted, after = steps["before"], steps["suggested"], steps["fitted"], steps["after"]
    print(f"before: known_user={before.known_user}, uncertainty={before.uncertainty}, best candidate {before.best}")
    print(f"suggested {len(suggested.pairs)} questions under the {suggested.uncertainty} "
          f"(total variance {suggested.total_variance:.3f}):")
    for pair, comparison in zip(suggested.pairs, steps["answers"]):
        print(f"  {pair.first} vs {pair.second}: p(first)={pair.p_first:.2f}, reduces the variance by {pair.variance_reduction:.3f}; "
              f"the user chose {len(comparison.chosen)} chars over {len(comparison.rejected)}")
    print(f"adapted {fitted.user_id} on {fitted.comparisons} answers: {fitted.correct} ordered right, mean loss {fitted.mean_loss:.3f}")
    print(f"after: known_user={after.known_user}, uncertainty={after.uncertainty}, best candidate {after.best}")
    if before.std is None or after.std is None:
        raise SystemExit(f"the server gave no uncertainty: {before.uncertainty_reason or after.uncertainty_reason}")
    for index in after.order:
        print(f"  {after.scores[index]:8.3f} ± {after.std[index]:.3f}  (was {before.scores[index]:8.3f} ± {before.std[index]:.3f})  "
              f"{len(CANDIDATES[index]):4d} chars")


if __name__ == "__main__":
    main()
