"""A plain reward function backed by the server: ``f(replies) -> scores`` for one user and
prompt. The framework adapters live in ``trl.py`` and ``verl.py``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .messages import ScoreItem

if TYPE_CHECKING:
    from .client import Client


def reward_fn(client: Client, user_id: str | None, prompt: str, user_info: str | None = None) -> Callable[[Sequence[str]], list[float]]:
    """A function scoring replies to ``prompt`` for one user: ``f(replies) -> list[float]``.

    One call sends the replies as one ``score`` request (split when longer than the server's
    ``max_candidates``). A score the model could not compute (non-finite) comes back as NaN.
    """

    def reward(replies: Sequence[str]) -> list[float]:
        if isinstance(replies, str):
            raise TypeError("replies must be a list of strings, got a single str")
        items = [ScoreItem(prompt=prompt, response=reply, user_id=user_id, user_info=user_info) for reply in replies]
        return floats(client.score(items).scores) if items else []

    return reward


def floats(scores: Sequence[float | None]) -> list[float]:
    """Scores as floats for a training loop: a score the model could not compute is NaN (TRL
    treats NaN as a missing reward)."""
    return [math.nan if score is None else score for score in scores]
