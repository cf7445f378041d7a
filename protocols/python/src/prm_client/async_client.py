"""The v1 protocol on ``zmq.asyncio``: :class:`AsyncClient`, safe for many concurrent awaits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, cast

import zmq
import zmq.asyncio

from . import protocol
from .client import (
    DEFAULT_ENDPOINT,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    LIMITS_UNKNOWN,
    Connection,
    ItemLike,
    adapt_result,
    carries_work,
    item_bodies,
    max_candidates,
    max_message_bytes,
    rank_results,
    refuse_oversized,
    score_result,
    status_of,
    suggest_result,
)
from .curve import CurveKeys
from .exchange import Conversation, Operation, Poll, Send, converse
from .messages import (AdaptResult, Comparison, Health, Info, Metrics, PromptInput, RankRequest, RankResult, ReplyInput, ScoreResult,
                       SuggestResult)


class AsyncClient(Connection):
    """:class:`prm_client.Client`'s API as coroutines, on ``zmq.asyncio``::

        async with AsyncClient("tcp://127.0.0.1:5555") as client:
            results = await asyncio.gather(*(client.rank(prompt, replies, user_id=user) for user in users))

    **Concurrency.** Each call borrows a DEALER socket of its own from a pool for as long as it
    runs, exactly as :class:`~prm_client.Client` does for threads (``sockets.py``), so any number of
    concurrent awaits are safe: a call reads only its own socket, and the server sees every
    concurrent request at once and batches them together. A pool rather than one shared socket
    with replies routed by id: each call keeps Lazy Pirate's fresh-socket retry to itself (a
    shared socket replaced for one silent call would drop every other call's replies), and the
    blocking client's rules apply unchanged. Idle sockets are reused (at most 16 stay open).

    Timeouts, liveness pings, retries, errors and limits are the blocking client's: a dead or
    absent server is reported after ``timeout × (retries + 1)`` = 10 s by default. Calls may come
    from any event loop (pyzmq moves a socket to the loop that uses it), and from a forked child.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        *,
        max_in_flight: int = 64,
        context: zmq.asyncio.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        """The arguments are :class:`prm_client.Client`'s; ``context`` is a ``zmq.asyncio.Context``."""
        super().__init__(endpoint, timeout, retries, max_in_flight, curve, context, zmq.asyncio.Context.instance)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    async def rank(
        self,
        prompt: PromptInput,
        candidates: Sequence[ReplyInput],
        user_id: str | None = None,
        user_info: str | None = None,
        top_k: int | None = None,
        deadline_ms: float | None = None,
        uncertainty: bool = False,
    ) -> RankResult:
        """See :meth:`prm_client.Client.rank`."""
        return (await self.rank_many([RankRequest(prompt, candidates, user_id, user_info, top_k, deadline_ms, uncertainty)]))[0]

    async def rank_many(self, requests: Iterable[RankRequest]) -> list[RankResult]:
        """See :meth:`prm_client.Client.rank_many`."""
        bodies = self._rank_bodies(requests)
        return rank_results(bodies, await self._exchange(bodies))

    async def score(self, items: Iterable[ItemLike], *, deadline_ms: float | None = None, chunk_size: int | None = None) -> ScoreResult:
        """See :meth:`prm_client.Client.score`."""
        bodies = item_bodies(items)
        if not bodies:
            return ScoreResult(scores=[], known_user=[], truncated=[], timings=[])
        size = chunk_size if chunk_size is not None else max_candidates(await self._server_limits())
        requests = self._score_requests(bodies, size, deadline_ms)
        return score_result(requests, await self._exchange(requests))

    async def adapt(self, user_id: str, comparisons: Iterable[Comparison | Mapping[str, Any]], *,
                    deadline_ms: float | None = None) -> AdaptResult:
        """See :meth:`prm_client.Client.adapt`."""
        return adapt_result((await self._exchange([self._adapt_request(user_id, comparisons, deadline_ms)]))[0])

    async def suggest(self, prompt: PromptInput, candidates: Sequence[ReplyInput], k: int, user_id: str | None = None, *,
                      deadline_ms: float | None = None) -> SuggestResult:
        """See :meth:`prm_client.Client.suggest`."""
        body = protocol.suggest_request(self._next_id(), prompt, candidates, k, user_id, deadline_ms)
        return suggest_result(body, (await self._exchange([body]))[0])

    async def reload(self, path: str | None = None) -> dict[str, Any]:
        """See :meth:`prm_client.Client.reload`."""
        return status_of((await self._exchange([protocol.reload_request(self._next_id(), path)]))[0])

    async def users(self, user_id: str | None = None) -> dict[str, Any]:
        """See :meth:`prm_client.Client.users`."""
        return status_of((await self._exchange([protocol.users_request(self._next_id(), user_id)]))[0])

    async def info(self) -> Info:
        return cast(Info, await self._status("info"))

    async def health(self) -> Health:
        return cast(Health, await self._status("health"))

    async def metrics(self) -> Metrics:
        return cast(Metrics, await self._status("metrics"))

    # -- the wire --------------------------------------------------------------------------------

    async def _status(self, op: str) -> dict[str, Any]:
        return status_of((await self._exchange([self._status_request(op)]))[0])

    async def _server_limits(self) -> dict[str, Any]:
        return self._limits if self._limits is not None else self._keep_limits(await self.info())

    async def _message_limit(self) -> int:
        try:
            limits = await self._server_limits()
        except LIMITS_UNKNOWN as error:
            limits = self._limits_unknown(error)
        return max_message_bytes(limits)

    async def _exchange(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`prm_client.Client._exchange` with awaits: the same :func:`converse`."""
        bodies = [protocol.encode(request) for request in requests]
        if carries_work(requests):
            refuse_oversized(requests, bodies, await self._message_limit())
        return await perform(converse(self._exchange_of(requests, bodies), self._sockets))


async def perform(conversation: Conversation) -> list[dict[str, Any]]:
    """Runs a :func:`~prm_client.exchange.converse` with awaited socket calls (a cancelled await
    is thrown into it like any other error, so the call's socket is dealt with)."""
    try:
        operation = next(conversation)
        while True:
            try:
                outcome = await awaited(operation)
            except BaseException as error:
                operation = conversation.throw(error)
            else:
                operation = conversation.send(outcome)
    except StopIteration as done:
        return cast(list[dict[str, Any]], done.value)


async def awaited(operation: Operation) -> Any:
    socket: zmq.asyncio.Socket = operation.socket
    if isinstance(operation, Send):
        try:
            await socket.send_multipart([b"", operation.body], flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True
    if isinstance(operation, Poll):
        return bool(await socket.poll(operation.ms))  # POLLIN is the default
    return (await socket.recv_multipart())[-1]
