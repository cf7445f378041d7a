"""TRL reward functions backed by ``prm serve``, for ``GRPOTrainer(reward_funcs=[...])``.

- :class:`PrmReward`: a picklable callable (endpoint and options are plain attributes; its
  client is made on the first call, and again after unpickling or in a forked child);
- :class:`AsyncPrmReward`: the same as ``async def __call__``, which TRL awaits together with its
  other async reward functions;
- :func:`reward`: a module-level function configured by ``PRM_ENDPOINT`` (and ``PRM_TIMEOUT``),
  for ``--reward_funcs prm_client.trl.reward`` in TRL's ``grpo.py`` script.

How TRL 1.16 calls a reward function (``trl/trainer/grpo_trainer.py``,
``GRPOTrainer._calculate_rewards``, lines 1579-1662 of trl 1.16.0)::

    keys = [key for key in inputs[0] if key not in ["prompt", "completion", "completion_ids"]]
    reward_kwargs = {key: [example[key] for example in inputs] for key in keys}   # every other column
    reward_kwargs["trainer_state"] = self.state
    reward_kwargs["log_extra"] = self._log_completion_extra
    reward_kwargs["log_metric"] = self._log_metric                # log_metric(name, value), line 1565
    output = reward_func(prompts=prompts, completions=completions, completion_ids=completion_ids_list,
                         **reward_kwargs)                         # line 1626; `await func(...)` at 1644

It awaits a function when ``trl.trainer.utils.is_async_callable`` says so
(``inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(func.__call__)``, line 247),
on an event loop of its own in a daemon thread, all async reward functions at once
(``asyncio.gather``); it logs rewards under ``getattr(func, "__name__", type(func).__name__)``
(``get_callable_name``, line 236). Prompts and completions are strings (TRL's standard format)
or lists of ``{"role", "content"}`` messages (conversational format), sent for the server to write
out with the model's template (:func:`prm_client.template.wire_prompt`).

Each call reports, through ``log_metric`` when TRL passes it (and as the attributes
``known_user_fraction`` and ``queue_ms`` in any case), the fraction of completions whose user the
model knows and the server's mean queue time in milliseconds, as ``<name>/known_user_fraction``
and ``<name>/queue_ms``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from . import environment
from .async_client import AsyncClient
from .client import DEFAULT_ENDPOINT, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Client
from .curve import CurveKeys
from .messages import ScoreItem, ScoreResult
from .template import Message, Prompt, wire_prompt, wire_reply

log = logging.getLogger("prm_client")


class _TrlReward:
    """The settings and the TRL side of :class:`PrmReward` and :class:`AsyncPrmReward`: reading
    TRL's arguments into score items, and reporting what the server said about them."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 curve: CurveKeys | None = None, user_column: str = "user_id", user_info_column: str = "user_info",
                 name: str = "prm_reward") -> None:
        """
        Args:
            endpoint, timeout, retries, curve: as for :class:`prm_client.Client`.
            user_column: the data set column naming each completion's user (str, int or None).
                Missing, None or an id the model does not know: the generic user.
            user_info_column: the column of explicit text about the user, used when present.
            name: the function's ``__name__``, under which TRL logs its rewards.
        """
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.curve = curve
        self.user_column = user_column
        self.user_info_column = user_info_column
        self.__name__ = name
        #: From the last call: the fraction of completions scored for a user the model knows.
        self.known_user_fraction: float | None = None
        #: From the last call: the server's mean queue time over its requests, in milliseconds.
        self.queue_ms: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The client holds sockets, which cannot cross a process boundary: the copy makes its own.
        return {**self.__dict__, "_client": None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r}, name={self.__name__!r})"

    def _items(self, prompts: Sequence[Prompt], completions: Sequence[str | Sequence[Message]],
               columns: Mapping[str, Any]) -> list[ScoreItem]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        if self.user_column not in columns:
            log.debug("%s: no %r column; every completion is scored as the generic user", self.__name__, self.user_column)
        users = _column(columns, self.user_column, len(completions))
        infos = _column(columns, self.user_info_column, len(completions))
        return [ScoreItem(prompt=wire_prompt(prompt), response=wire_reply(completion),
                          user_id=_user_id(users[index], self.user_column, index),
                          user_info=_optional_text(infos[index], self.user_info_column, index))
                for index, (prompt, completion) in enumerate(zip(prompts, completions))]

    def _report(self, result: ScoreResult, columns: Mapping[str, Any]) -> list[float | None]:
        """The rewards (``None`` where the model could not compute one: TRL reads it as NaN, a
        missing reward), after noting (and logging through TRL's ``log_metric``) the known-user
        fraction and the queue time."""
        self.known_user_fraction = sum(result.known_user) / len(result.known_user)
        self.queue_ms = sum(timing.queue_ms for timing in result.timings) / len(result.timings)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/known_user_fraction", self.known_user_fraction)
            log_metric(f"{self.__name__}/queue_ms", self.queue_ms)
        return result.scores


class PrmReward(_TrlReward):
    """A TRL reward function: ``reward(prompts=..., completions=..., **columns) -> list[float | None]``.

    ::

        from prm_client.trl import PrmReward
        trainer = GRPOTrainer(model=..., reward_funcs=[PrmReward("tcp://127.0.0.1:5555")], train_dataset=dataset)

    All completions of a call go to the server together (split at its ``max_candidates`` and
    sent pipelined). Safe to call from several threads; picklable (the copy connects on its first
    call). A score the model could not compute is ``None``, which TRL treats as a missing reward
    (NaN), as its ``RewardFunc`` type (``Callable[..., list[float | None]]``) allows.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, **options: Any) -> None:
        """Arguments as for :class:`_TrlReward`."""
        super().__init__(endpoint, **options)
        self._client: Client | None = None

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str | Sequence[Message]], **columns: Any) -> list[float | None]:
        items = self._items(prompts, completions, columns)
        if not items:
            return []
        if self._client is None:
            self._client = Client(self.endpoint, self.timeout, self.retries, curve=self.curve)
        return self._report(self._client.score(items), columns)


class AsyncPrmReward(_TrlReward):
    """:class:`PrmReward` as a coroutine function, on :class:`prm_client.AsyncClient`: TRL awaits
    it on its own event loop, together with its other async reward functions."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._client: AsyncClient | None = None

    async def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str | Sequence[Message]], **columns: Any) -> list[float | None]:
        items = self._items(prompts, completions, columns)
        if not items:
            return []
        if self._client is None:
            self._client = AsyncClient(self.endpoint, self.timeout, self.retries, curve=self.curve)
        return self._report(await self._client.score(items), columns)


def reward(prompts: Sequence[Prompt], completions: Sequence[str | Sequence[Message]], **columns: Any) -> list[float | None]:
    """A :class:`PrmReward` on the server named by ``PRM_ENDPOINT`` (default
    ``tcp://127.0.0.1:5555``) and ``PRM_TIMEOUT``, for ``--reward_funcs prm_client.trl.reward``
    (TRL's ``grpo.py`` imports the module and takes the function by name)."""
    return environment.shared(_environment_reward)(prompts, completions, **columns)


def _environment_reward(endpoint: str, timeout: float) -> PrmReward:
    return PrmReward(endpoint, timeout=timeout, name="reward")


def _column(columns: Mapping[str, Any], name: str, count: int) -> Sequence[Any]:
    """A column's values, one per completion; a missing column is all None."""
    values = columns.get(name)
    if values is None:
        return [None] * count
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
