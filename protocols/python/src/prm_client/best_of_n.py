"""Best-of-N: sample N replies from any generator, return the one the server ranks best for the user."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import Client


@dataclass(frozen=True)
class BestOfNResult:
    """The chosen reply and everything it was chosen from."""

    #: The best candidate for the user.
    best: str
    #: Its index in :attr:`candidates`.
    best_index: int
    #: Every reply the generator returned, in its order.
    candidates: list[str]
    #: The user's score of each candidate (``None`` if the model produced a non-finite value).
    scores: list[float | None]
    #: Candidate indices best first.
    order: list[int]
    #: Whether the user id was one of the model's users (False: the generic user).
    known_user: bool


class BestOfN:
    """Wraps a generator ``generate(prompt, n) -> list[str]`` so that it returns its best-of-N reply.

    ::

        best_of_n = BestOfN(my_generator, client, n=8)
        result = best_of_n("Human: Any tips for sleeping?\\n\\nAssistant:", user_id="worker-3")
        print(result.best)

    The generator may return fewer than ``n`` replies (say, after removing duplicates), but at
    least one and at most the server's ``max_candidates``. Ranking is one ``rank`` request.
    """

    def __init__(self, generate: Callable[[str, int], Sequence[str]], client: Client, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n}")
        self.generate = generate
        self.client = client
        self.n = n

    def __call__(self, prompt: str, user_id: str | None = None, user_info: str | None = None) -> BestOfNResult:
        """Generate ``n`` replies to ``prompt`` and pick the best one for the user."""
        candidates = list(self.generate(prompt, self.n))
        if not candidates:
            raise ValueError(f"the generator returned no replies for prompt {prompt[:80]!r}")
        if not all(isinstance(candidate, str) for candidate in candidates):
            raise TypeError("the generator must return strings")
        ranked = self.client.rank(prompt, candidates, user_id=user_id, user_info=user_info)
        return BestOfNResult(
            best=candidates[ranked.best],
            best_index=ranked.best,
            candidates=candidates,
            scores=ranked.scores,
            order=ranked.order,
            known_user=ranked.known_user,
        )
