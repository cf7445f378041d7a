"""Reward functions backed by the server: a plain ``f(replies) -> scores`` for one user and
prompt, and TRL's reward-function contract for ``GRPOTrainer(reward_funcs=...)``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .messages import ScoreItem

if TYPE_CHECKING:
    from .client import Client

#: How conversational roles are written in the prompt text, as in the hh-rlhf style data prm is
#: trained on (``"Human: ...\n\nAssistant: ..."``). Other roles are written capitalised.
ROLE_NAMES = {"user": "Human", "assistant": "Assistant"}


def reward_fn(client: Client, user_id: str | None, prompt: str, user_info: str | None = None) -> Callable[[Sequence[str]], list[float]]:
    """A function scoring replies to ``prompt`` for one user: ``f(replies) -> list[float]``.

    One call sends the replies as one ``score`` request (split when longer than the server's
    ``max_candidates``). A score the model could not compute (non-finite) comes back as NaN.
    """

    def reward(replies: Sequence[str]) -> list[float]:
        if isinstance(replies, str):
            raise TypeError("replies must be a list of strings, got a single str")
        items = [ScoreItem(prompt=prompt, response=reply, user_id=user_id, user_info=user_info) for reply in replies]
        return _floats(client.score(items).scores) if items else []

    return reward


def trl_reward_func(client: Client, user_column: str = "user_id", user_info_column: str = "user_info", name: str = "prm_reward") -> Callable[..., list[float]]:
    """A reward function with TRL's contract: ``f(prompts, completions, **columns) -> list[float]``.

    ``GRPOTrainer`` calls it with keyword arguments ``prompts`` and ``completions`` (one entry per
    completion), plus every other column of the data set (``completion_ids``, ``trainer_state``
    and the like are ignored). The data set must have a ``user_column`` column (values: str,
    int or None; None or an unknown id means the generic user); a ``user_info_column`` column is
    used when present.

    Prompts and completions may be plain strings (TRL's *standard* format) or lists of
    ``{"role", "content"}`` messages (*conversational* format). A conversational prompt is written
    the way prm's training data is: ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:"``
    (``user`` → ``Human``, ``assistant`` → ``Assistant``, other roles capitalised); a
    conversational completion is the text of its messages joined by blank lines. Message content
    may be a string or a list of parts, whose ``{"type": "text", "text": ...}`` parts are used.

    All completions of one call go to the server together (pipelined, split at the server's
    ``max_candidates``). Scores the model could not compute come back as NaN, which TRL treats as
    a missing reward. The function's ``__name__`` is ``name`` (TRL logs rewards under it).
    """

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        if user_column not in columns:
            raise KeyError(f"the data set has no '{user_column}' column (columns passed: {sorted(columns)}); "
                           f"{name} scores each completion for the user named there")
        users = _column(columns, user_column, len(completions))
        infos = _column(columns, user_info_column, len(completions)) if columns.get(user_info_column) is not None else None
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        items = [
            ScoreItem(
                prompt=prompt_text(prompt),
                response=completion_text(completion),
                user_id=_user_id(users[index], user_column, index),
                user_info=None if infos is None else _optional_text(infos[index], user_info_column, index),
            )
            for index, (prompt, completion) in enumerate(zip(prompts, completions))
        ]
        return _floats(client.score(items).scores) if items else []

    reward.__name__ = reward.__qualname__ = name
    return reward


def prompt_text(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    """A prompt as prm's training data writes it: a string as is; a conversation as turns
    ``"Role: content"`` joined by blank lines, ending with the ``"Assistant:"`` tag to answer."""
    if isinstance(prompt, str):
        return prompt
    turns = [f"{_role(message)}: {_content(message)}" for message in prompt]
    return "\n\n".join([*turns, f"{ROLE_NAMES['assistant']}:"])


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """A completion's text: a string as is; messages' contents joined by blank lines."""
    if isinstance(completion, str):
        return completion
    return "\n\n".join(_content(message) for message in completion)


def _role(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    if not isinstance(role, str):
        raise ValueError(f"message without a string 'role': {message!r}")
    return ROLE_NAMES.get(role, role.capitalize())


def _content(message: Mapping[str, Any]) -> str:
    if not isinstance(message, Mapping):
        raise TypeError(f"a conversational message must be a mapping with 'role' and 'content', got {message!r}")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, Mapping) and part.get("type") == "text")
    raise ValueError(f"message without text 'content': {message!r}")


def _column(columns: Mapping[str, Any], name: str, count: int) -> Sequence[Any]:
    values = columns[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != count:
        length = len(values) if isinstance(values, Sequence) else "no"
        raise ValueError(f"column '{name}' must hold one value per completion ({count}); got {length} value(s)")
    return values


def _user_id(value: Any, column: str, index: int) -> str | None:
    # Data sets often store numeric user ids; the server's ids are strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _optional_text(value, column, index)


def _optional_text(value: Any, column: str, index: int) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"column '{column}'[{index}] must be a string or None, got {type(value).__name__}")


def _floats(scores: Sequence[float | None]) -> list[float]:
    return [math.nan if score is None else score for score in scores]
