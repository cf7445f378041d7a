"""The v1 protocol over ZeroMQ DEALER sockets: :class:`Client`, safe to share between threads.

:class:`prm_client.AsyncClient` (``async_client.py``) is its asyncio twin; both build requests
and read replies with the functions here and run the same :func:`~prm_client.exchange.converse`.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union, cast

import zmq

from . import protocol, rewards
from .curve import CurveKeys
from .errors import PrmError, PrmProtocolError
from .exchange import Conversation, Exchange, Operation, Poll, Send, converse
from .messages import (AdaptResult, Comparison, Health, Info, Metrics, PromptInput, RankRequest, RankResult, ReplyInput, ScoreItem, ScoreResult,
                       SuggestedPair, SuggestResult, Timing)
from .sockets import SocketPool, SocketT

if TYPE_CHECKING:
    from .trl import PrmReward

log = logging.getLogger("prm_client")

#: What :meth:`Client.score` accepts as an item: a :class:`ScoreItem` or a mapping with the
#: same keys (``prompt``, ``response``, optional ``user_id`` and ``user_info``).
ItemLike = Union[ScoreItem, Mapping[str, Any]]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"

#: Seconds a server may show no sign of life before an attempt is abandoned, and the fresh
#: attempts after the first: a dead or absent server is reported after 5 s × 2 = 10 s. A slow
#: but live server is waited for as long as it takes (it answers the liveness pings).
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 1

#: The errors of ``info`` after which a client goes on with the protocol's default limits.
LIMITS_UNKNOWN = (PrmError, PrmProtocolError)


class Connection:
    """What :class:`Client` and :class:`prm_client.AsyncClient` share: settings, request ids, the
    pool of sockets, the server's limits, and the requests each operation sends. Subclasses add
    the I/O, blocking or awaited."""

    def __init__(self, endpoint: str, timeout: float, retries: int, max_in_flight: int, curve: CurveKeys | None,
                 context: zmq.Context[Any] | None, default_context: Callable[[], zmq.Context[Any]]) -> None:
        """``context``: the one to open sockets in; ``None`` for ``default_context()`` at each
        opening (the process-wide context, which is a new one in a forked child)."""
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more; got {retries!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1; got {max_in_flight!r}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.curve = curve
        self._id_prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        #: The ``limits`` of the server's ``info``, read once per connection.
        self._limits: dict[str, Any] | None = None
        self._sockets: SocketPool[Any] = SocketPool(lambda: self._open(context if context is not None else default_context()))

    @property
    def reconnects(self) -> int:
        """How many times a silent server made this client replace a socket."""
        return self._sockets.replaced

    def close(self) -> None:
        """Close the idle sockets (unsent requests are dropped). The client reconnects if used again."""
        self._limits = None  # the server behind the endpoint may come back with other limits
        self._sockets.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r}, timeout={self.timeout!r}, retries={self.retries!r})"

    def _next_id(self) -> str:
        # itertools.count's next() is atomic under the GIL: ids stay unique across threads.
        return f"{self._id_prefix}-{next(self._counter)}"

    def _open(self, context: zmq.Context[SocketT]) -> SocketT:
        """A DEALER socket connected to the endpoint (with the CURVE keys, if any)."""
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(socket)
        socket.connect(self.endpoint)
        return socket

    def _exchange_of(self, requests: Sequence[dict[str, Any]], bodies: Sequence[bytes]) -> Exchange:
        return Exchange(requests, bodies, self.endpoint, self.timeout, self.retries, self.max_in_flight, self._next_id)

    def _rank_bodies(self, requests: Iterable[RankRequest]) -> list[dict[str, Any]]:
        return [protocol.rank_request(self._next_id(), r.prompt, r.candidates, r.user_id, r.user_info, r.top_k, r.deadline_ms,
                                      r.uncertainty)
                for r in requests]

    def _score_requests(self, bodies: Sequence[dict[str, Any]], size: int, deadline_ms: float | None) -> list[dict[str, Any]]:
        """Items in requests of at most ``size`` (the server's ``max_candidates`` unless given)."""
        if size < 1:
            raise ValueError(f"chunk_size must be at least 1; got {size}")
        return [protocol.score_request(self._next_id(), bodies[start:start + size], deadline_ms)
                for start in range(0, len(bodies), size)]

    def _adapt_request(self, user_id: str, comparisons: Iterable[Comparison | Mapping[str, Any]],
                       deadline_ms: float | None) -> dict[str, Any]:
        members = [protocol.comparison(c.prompt, c.chosen, c.rejected) if isinstance(c, Comparison)
                   else protocol.comparison(c["prompt"], c["chosen"], c["rejected"]) for c in comparisons]
        return protocol.adapt_request(self._next_id(), user_id, members, deadline_ms)

    def _status_request(self, op: str) -> dict[str, Any]:
        return protocol.status_request(self._next_id(), op)

    def _keep_limits(self, info: Info) -> dict[str, Any]:
        limits = info.get("limits")
        if not isinstance(limits, dict):
            raise PrmProtocolError(f"info reply has no limits object: {limits!r}")
        self._limits = dict(limits)
        return self._limits

    def _limits_unknown(self, error: PrmError | PrmProtocolError) -> dict[str, Any]:
        """No limits when ``info`` is answered with an error (an older or other implementation):
        the protocol's defaults apply. A silent server's timeout is not caught: the request
        would only time out too, after as long again."""
        log.warning("no limits from %s's info (%s); assuming max_message_bytes %d", self.endpoint, error,
                    protocol.DEFAULT_MAX_MESSAGE_BYTES)
        return {}


class Client(Connection):
    """A connection to ``prm serve``, safe to share between threads.

    Each call borrows a DEALER socket of its own from a small pool (``sockets.py`` says why a pool
    and not a socket per thread), sends its request(s), and waits for the replies, matched by id.
    Calls that carry several requests (:meth:`rank_many`, and :meth:`score` when it splits a long
    item list) keep up to ``max_in_flight`` of them in flight at once, so the server can batch
    them together. Threads calling at once each get their own socket; after ``fork`` the child
    opens sockets of its own.

    **A slow server or a dead one.** While a call waits, the client sends a ``health`` ping
    whenever the server has been quiet for ``timeout / 4`` seconds; the server answers those at
    once, even while it computes. A server that answers (and reports itself healthy) is waited for
    however long its replies take. A server silent for ``timeout`` seconds gets a fresh socket and
    every unanswered request again (the ZeroMQ guide's *Lazy Pirate*, chapter 4); after
    ``retries`` such attempts the call raises :class:`PrmTimeoutError`, naming the endpoint and
    the time waited. With the defaults, a dead, stopped or absent server is reported after 10 s.
    Every operation is read-only on the server, so resending is safe; late replies to an
    abandoned attempt are ignored.

    **Errors.** An error reply raises :class:`PrmError` with the protocol's stable ``code``; a
    reply that is not valid v1 raises :class:`PrmProtocolError`. A ``rank`` or ``score`` body
    over the server's ``max_message_bytes`` (read with :meth:`info` once per connection) is not
    sent: it raises :class:`PrmError` ``too_large`` at once, naming its size and the limit. A call
    that raises abandons its other requests; its socket is closed so their replies cannot reach a
    later call.

    **Authentication.** A server or proxy run with ``--curve-secret-key`` and ``--allow-keys``
    admits only CURVE clients whose public key it allows: pass ``curve=CurveKeys.from_files(
    "server.pub", "me.key")``. A refused client gets no reply (the handshake fails), so its calls
    end in :class:`PrmTimeoutError`.

    Use it as a context manager, or call :meth:`close`::

        with Client("tcp://127.0.0.1:5555") as client:
            result = client.rank("Human: hi\\n\\nAssistant:", ["Hello!", "Hi, how can I help?"], user_id="worker-3")
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        *,
        max_in_flight: int = 64,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        """
        Args:
            endpoint: the server's ZeroMQ endpoint, e.g. ``tcp://127.0.0.1:5555``.
            timeout: seconds the server may show no sign of life (no reply, no answer to a
                liveness ping) before the socket is replaced and the unanswered requests resent.
            retries: how many times in a row a silent server is retried before
                :class:`PrmTimeoutError`; 0 means one attempt only.
            max_in_flight: requests a pipelined call keeps outstanding at once (keep it below the
                server's ``max_queued_requests`` to avoid ``overloaded`` replies).
            context: the ZeroMQ context to open sockets in (default: the process-wide one, which
                is a new one in a forked child).
            curve: CURVE keys (the server's public key and this client's pair) for a server that
                requires them; ``None`` for a plain connection.
        """
        super().__init__(endpoint, timeout, retries, max_in_flight, curve, context, zmq.Context.instance)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    # -- operations ------------------------------------------------------------------------------

    def rank(
        self,
        prompt: PromptInput,
        candidates: Sequence[ReplyInput],
        user_id: str | None = None,
        user_info: str | None = None,
        top_k: int | None = None,
        deadline_ms: float | None = None,
        uncertainty: bool = False,
    ) -> RankResult:
        """Score ``candidates`` (replies to ``prompt``) for one user and order them best first.

        Args:
            prompt: the conversation so far, as in the training data
                (``"Human: ...\\n\\nAssistant:"``), or ``{"role", "content"}`` messages, which the
                server writes out with the model's text template.
            candidates: the replies (strings or ``{"role": "assistant", "content"}`` messages), at
                most the server's ``max_candidates``.
            user_id: the user; ``None`` or an id the model does not know means the generic user.
            user_info: optional explicit text about the user.
            top_k: length of :attr:`RankResult.order` (all candidates if ``None``).
            deadline_ms: if the request is still queued this long after the server received it,
                the server answers ``deadline_exceeded`` instead of computing it.
            uncertainty: also return each score's standard deviation for this user
                (:attr:`RankResult.std`, :attr:`RankResult.uncertainty`).
        """
        return self.rank_many([RankRequest(prompt, candidates, user_id, user_info, top_k, deadline_ms, uncertainty)])[0]

    def rank_many(self, requests: Iterable[RankRequest]) -> list[RankResult]:
        """Send several ``rank`` requests at once (pipelined) and return their results in order."""
        bodies = self._rank_bodies(requests)
        return rank_results(bodies, self._exchange(bodies))

    def score(self, items: Iterable[ItemLike], *, deadline_ms: float | None = None, chunk_size: int | None = None) -> ScoreResult:
        """Score unrelated (user, prompt, response) items, each on its own, in input order.

        Lists longer than the server's ``max_candidates`` (read once with :meth:`info`) or than
        ``chunk_size`` are split into several requests, sent pipelined.
        """
        bodies = item_bodies(items)
        if not bodies:
            return ScoreResult(scores=[], known_user=[], truncated=[], timings=[])
        size = chunk_size if chunk_size is not None else max_candidates(self._server_limits())
        requests = self._score_requests(bodies, size, deadline_ms)
        return score_result(requests, self._exchange(requests))

    def adapt(self, user_id: str, comparisons: Iterable[Comparison | Mapping[str, Any]], *,
              deadline_ms: float | None = None) -> AdaptResult:
        """Fit ``user_id`` on comparisons they answered and add them to the live model: later
        ``rank``/``score`` calls for ``user_id`` are personalized (``known_user`` is true).

        Args:
            user_id: the new user (a user the model was trained on is refused, ``not_adaptable``).
            comparisons: :class:`Comparison` objects or ``{"prompt", "chosen", "rejected"}``
                mappings, at most the server's ``max_adapt_comparisons``. Adapting a user again
                replaces the earlier fit.
            deadline_ms: as for :meth:`rank`.
        """
        return adapt_result(self._exchange([self._adapt_request(user_id, comparisons, deadline_ms)])[0])

    def suggest(self, prompt: PromptInput, candidates: Sequence[ReplyInput], k: int, user_id: str | None = None, *,
                deadline_ms: float | None = None) -> SuggestResult:
        """The ``k`` pairs of ``candidates`` whose answers ("which do you prefer?") would tell the
        server the most about ``user_id``: a newcomer (``None`` or an unknown id) or a user this
        server adapted. Ask them, then send the answers to :meth:`adapt`.

        Args:
            prompt: as for :meth:`rank`.
            candidates: 2 to the server's ``max_suggest_candidates`` replies.
            k: pairs to return, 1 to ``max_suggest_pairs``; pairs come back best first.
            deadline_ms: as for :meth:`rank`.
        """
        body = protocol.suggest_request(self._next_id(), prompt, candidates, k, user_id, deadline_ms)
        return suggest_result(body, self._exchange([body])[0])

    def reload(self, path: str | None = None) -> dict[str, Any]:
        """Make the server load the checkpoint at ``path`` (``None``: its own folder again) and
        switch to it between batches; returns ``model_fingerprint``, ``previous_fingerprint``,
        ``path``, ``loaded_at``, ``load_ms``. A checkpoint that fails to load or to score raises
        ``PrmError`` with code ``reload_failed``, and the old model keeps serving. Sent to a
        proxy: a rolling reload, one worker at a time; ``workers`` lists each one's turn, and a
        worker that refuses stops the roll (``reload_failed``, naming that worker)."""
        return status_of(self._exchange([protocol.reload_request(self._next_id(), path)])[0])

    def users(self, user_id: str | None = None) -> dict[str, Any]:
        """Per-user health of the served scores: ``flagged`` users (collapsed: their scores no
        longer tell candidates apart; drifted: their mean moved from their baseline, the
        checkpoint's training-time statistics or its first requests, as ``drift_reference`` and
        each user's ``baseline`` say), the ``population``'s statistics, and with ``user_id`` that
        user's (``user``, ``None`` if the server has not ranked for them). Behind a proxy: every
        worker's, merged (``workers``: asked, answered, missing)."""
        return status_of(self._exchange([protocol.users_request(self._next_id(), user_id)])[0])

    def info(self) -> Info:
        """The server's model, limits and settings."""
        return cast(Info, self._status("info"))

    def health(self) -> Health:
        """Whether the server is serving or draining, and whether its compute thread progresses."""
        return cast(Health, self._status("health"))

    def metrics(self) -> Metrics:
        """Request and error counts, queue, batch and cache statistics, latency percentiles."""
        return cast(Metrics, self._status("metrics"))

    # -- adapters --------------------------------------------------------------------------------

    def reward_fn(self, user_id: str | None, prompt: str, user_info: str | None = None) -> Callable[[Sequence[str]], list[float]]:
        """A plain function scoring replies to ``prompt`` for one user: ``f(replies) -> scores``.

        See :func:`prm_client.rewards.reward_fn`.
        """
        return rewards.reward_fn(self, user_id, prompt, user_info)

    def trl_reward_func(self, user_column: str = "user_id", user_info_column: str = "user_info", name: str = "prm_reward") -> PrmReward:
        """A TRL reward function for this client's server and settings: a picklable
        :class:`prm_client.trl.PrmReward` (it opens its own sockets)."""
        from .trl import PrmReward  # trl.py builds on this module

        return PrmReward(self.endpoint, timeout=self.timeout, retries=self.retries, curve=self.curve,
                         user_column=user_column, user_info_column=user_info_column, name=name)

    # -- the wire --------------------------------------------------------------------------------

    def _status(self, op: str) -> dict[str, Any]:
        return status_of(self._exchange([self._status_request(op)])[0])

    def _server_limits(self) -> dict[str, Any]:
        return self._limits if self._limits is not None else self._keep_limits(self.info())

    def _message_limit(self) -> int:
        try:
            limits = self._server_limits()
        except LIMITS_UNKNOWN as error:
            limits = self._limits_unknown(error)
        return max_message_bytes(limits)

    def _exchange(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send every request, at most ``max_in_flight`` outstanding, and return the ok replies in
        request order; raise on the first error reply, or when the server is silent too long."""
        bodies = [protocol.encode(request) for request in requests]
        if carries_work(requests):
            refuse_oversized(requests, bodies, self._message_limit())
        return perform(converse(self._exchange_of(requests, bodies), self._sockets))


def perform(conversation: Conversation) -> list[dict[str, Any]]:
    """Runs a :func:`~prm_client.exchange.converse` with blocking socket calls."""
    try:
        operation = next(conversation)
        while True:
            try:
                outcome = blocking(operation)
            except BaseException as error:
                operation = conversation.throw(error)
            else:
                operation = conversation.send(outcome)
    except StopIteration as done:
        return cast(list[dict[str, Any]], done.value)


def blocking(operation: Operation) -> Any:
    socket: zmq.Socket[bytes] = operation.socket
    if isinstance(operation, Send):
        try:
            socket.send_multipart([b"", operation.body], flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True
    if isinstance(operation, Poll):
        return bool(socket.poll(operation.ms, zmq.POLLIN))
    return socket.recv_multipart()[-1]


def carries_work(requests: Sequence[dict[str, Any]]) -> bool:
    return any(request["op"] in ("rank", "score", "adapt") for request in requests)


def refuse_oversized(requests: Sequence[dict[str, Any]], bodies: Sequence[bytes], limit: int) -> None:
    """Raises ``too_large`` for a body over the server's limit, before anything is sent: ZeroMQ
    disconnects a peer whose message exceeds four times the limit, so the server could not even
    answer it, and the call would only time out."""
    for request, body in zip(requests, bodies):
        if len(body) > limit:
            raise PrmError(protocol.ErrorCode.TOO_LARGE.value, f"the request body has {len(body)} bytes, over the server's "
                           f"max_message_bytes of {limit}; it was not sent", request["id"])


def max_candidates(limits: Mapping[str, Any]) -> int:
    value = limits.get("max_candidates")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PrmProtocolError(f"info reply has no usable limits.max_candidates: {value!r}")
    return value


def max_message_bytes(limits: Mapping[str, Any]) -> int:
    """The server's ``max_message_bytes``, or the protocol's default when ``info`` gave none."""
    value = limits.get("max_message_bytes")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return protocol.DEFAULT_MAX_MESSAGE_BYTES
    return value


# -- replies -------------------------------------------------------------------------------------


def status_of(reply: dict[str, Any]) -> dict[str, Any]:
    """An ``info``, ``health`` or ``metrics`` reply without the envelope members."""
    return {key: value for key, value in reply.items() if key not in ("v", "id", "ok")}


def rank_results(bodies: Sequence[dict[str, Any]], replies: Sequence[dict[str, Any]]) -> list[RankResult]:
    """The results of ``rank`` requests, each checked to score every candidate it sent."""
    results = [_rank_result(reply) for reply in replies]
    for body, result in zip(bodies, results):
        if len(result.scores) != len(body["candidates"]):
            raise PrmProtocolError(f"reply {body['id']!r} has {len(result.scores)} scores for "
                                   f"{len(body['candidates'])} candidates")
    return results


def score_result(requests: Sequence[dict[str, Any]], replies: Sequence[dict[str, Any]]) -> ScoreResult:
    """The replies to a split ``score`` call stitched back into one result, in item order."""
    scores: list[float | None] = []
    known: list[bool] = []
    truncated: list[int] = []
    timings: list[Timing] = []
    for request, reply in zip(requests, replies):
        part = _score_result(reply)
        if len(part.scores) != len(request["items"]) or len(part.known_user) != len(request["items"]):
            raise PrmProtocolError(f"reply {reply.get('id')!r} has {len(part.scores)} scores and "
                                   f"{len(part.known_user)} known_user flags for {len(request['items'])} items")
        truncated += [len(scores) + index for index in part.truncated]
        scores += part.scores
        known += part.known_user
        timings += part.timings
    return ScoreResult(scores=scores, known_user=known, truncated=truncated, timings=timings)


def item_bodies(items: Iterable[ItemLike]) -> list[dict[str, Any]]:
    return [_item_body(item, index) for index, item in enumerate(items)]


def _member(reply: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = reply.get(key)
    if not isinstance(value, kind):
        raise PrmProtocolError(f"reply {reply.get('id')!r}: member '{key}' is {value!r}")
    return value


def _timing(reply: dict[str, Any]) -> Timing:
    timing = _member(reply, "timing", dict)
    try:
        return Timing(queue_ms=float(timing["queue_ms"]), compute_ms=float(timing["compute_ms"]))
    except (KeyError, TypeError, ValueError) as error:
        raise PrmProtocolError(f"reply {reply.get('id')!r}: bad timing {timing!r}") from error


def _scores(reply: dict[str, Any]) -> list[float | None]:
    scores = _member(reply, "scores", list)
    if not all(score is None or (isinstance(score, (int, float)) and not isinstance(score, bool)) for score in scores):
        raise PrmProtocolError(f"reply {reply.get('id')!r}: scores must be numbers or null")
    return [None if score is None else float(score) for score in scores]


def adapt_result(reply: dict[str, Any]) -> AdaptResult:
    """The result of an ``adapt`` request."""
    return AdaptResult(
        user_id=_member(reply, "user_id", str),
        comparisons=_member(reply, "comparisons", int),
        correct=_member(reply, "correct", int),
        mean_loss=float(_member(reply, "mean_loss", (int, float))),
        adapted_users=_member(reply, "adapted_users", int),
        timing=_timing(reply),
    )


def _rank_result(reply: dict[str, Any]) -> RankResult:
    std = reply.get("std")
    if std is not None and not (isinstance(std, list) and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in std)):
        raise PrmProtocolError(f"reply {reply.get('id')!r}: std must be a list of numbers")
    return RankResult(
        scores=_scores(reply),
        order=list(_member(reply, "order", list)),
        known_user=_member(reply, "known_user", bool),
        truncated=list(_member(reply, "truncated", list)),
        timing=_timing(reply),
        model_fingerprint=reply.get("model_fingerprint"),
        uncertainty=reply.get("uncertainty"),
        std=None if std is None else [float(s) for s in std],
        uncertainty_reason=reply.get("uncertainty_reason"),
    )


def suggest_result(body: dict[str, Any], reply: dict[str, Any]) -> SuggestResult:
    """The result of a ``suggest`` request, each pair checked to name two of its candidates."""
    pairs = []
    for member in _member(reply, "pairs", list):
        try:
            pair = SuggestedPair(first=int(member["first"]), second=int(member["second"]), p_first=float(member["p_first"]),
                                 variance_reduction=float(member["variance_reduction"]))
        except (KeyError, TypeError, ValueError) as error:
            raise PrmProtocolError(f"reply {reply.get('id')!r}: bad pair {member!r}") from error
        if not (0 <= pair.first < len(body["candidates"]) and 0 <= pair.second < len(body["candidates"])):
            raise PrmProtocolError(f"reply {reply.get('id')!r}: pair {member!r} names no candidate of the request")
        pairs.append(pair)
    return SuggestResult(
        pairs=pairs,
        uncertainty=_member(reply, "uncertainty", str),
        total_variance=float(_member(reply, "total_variance", (int, float))),
        known_user=_member(reply, "known_user", bool),
        timing=_timing(reply),
        model_fingerprint=_member(reply, "model_fingerprint", str),
    )


def _score_result(reply: dict[str, Any]) -> ScoreResult:
    return ScoreResult(
        scores=_scores(reply),
        known_user=list(_member(reply, "known_user", list)),
        truncated=list(_member(reply, "truncated", list)),
        timings=[_timing(reply)],
    )


def _item_body(item: ItemLike, index: int) -> dict[str, Any]:
    if isinstance(item, ScoreItem):
        return protocol.score_item(item.prompt, item.response, item.user_id, item.user_info)
    if isinstance(item, Mapping):
        unknown = set(item) - {"prompt", "response", "user_id", "user_info"}
        if unknown or "prompt" not in item or "response" not in item:
            raise ValueError(f"items[{index}] needs 'prompt' and 'response' (optional 'user_id', 'user_info'); "
                             f"got keys {sorted(item)}")
        return protocol.score_item(item["prompt"], item["response"], item.get("user_id"), item.get("user_info"))
    raise TypeError(f"items[{index}] must be a ScoreItem or a mapping, got {type(item).__name__}")
