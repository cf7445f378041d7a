"""The v1 protocol over a ZeroMQ DEALER socket, with Lazy Pirate retries (zguide, chapter 4)."""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Union, cast

import zmq

from . import protocol, rewards
from .curve import CurveKeys
from .errors import PrmError, PrmProtocolError, PrmTimeoutError
from .messages import Health, Info, Metrics, RankRequest, RankResult, ScoreItem, ScoreResult, Timing

log = logging.getLogger("prm_client")

#: What :meth:`Client.score` accepts as an item: a :class:`ScoreItem` or a mapping with the
#: same keys (``prompt``, ``response``, optional ``user_id`` and ``user_info``).
ItemLike = Union[ScoreItem, Mapping[str, Any]]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


class Client:
    """A connection to ``prm serve``.

    Each call sends its request(s) on a DEALER socket and waits for the replies, matched by id.
    Calls that carry several requests (:meth:`rank_many`, and :meth:`score` when it splits a
    long item list) keep up to ``max_in_flight`` of them in flight at once, so the server can
    batch them together.

    **Retries (Lazy Pirate).** When no reply arrives for ``timeout`` seconds, the socket is
    closed (linger 0), a fresh one is connected, and every unanswered request is sent again; after
    ``retries`` such attempts in a row without any reply the call raises
    :class:`PrmTimeoutError`. Every operation is read-only on the server, so resending is safe.
    Replies whose id the call is not waiting for (late answers to an abandoned attempt) are
    ignored. Each request gets a fresh id, unique to this client.

    **Errors.** An error reply raises :class:`PrmError` with the protocol's stable ``code``; a
    reply that is not valid v1 raises :class:`PrmProtocolError`. A ``rank`` or ``score`` body
    over the server's ``max_message_bytes`` (read with :meth:`info` once per connection) is not
    sent: it raises :class:`PrmError` ``too_large`` at once, naming its size and the limit. A call that raises abandons its
    other requests; the socket is replaced so their replies cannot reach a later call.

    **Authentication.** A server or proxy run with ``--curve-secret-key`` and ``--allow-keys``
    admits only CURVE clients whose public key it allows: pass ``curve=CurveKeys.from_files(
    "server.pub", "me.key")``. A refused client gets no reply (the handshake fails), so its calls
    end in :class:`PrmTimeoutError`.

    **Threads.** A ZeroMQ socket must not be used by two threads at once: use one ``Client`` per
    thread (they may share the ZeroMQ context). For concurrency within one thread, use
    :meth:`rank_many` or a long :meth:`score` call: they pipeline.

    Use it as a context manager, or call :meth:`close`::

        with Client("tcp://127.0.0.1:5555") as client:
            result = client.rank("Human: hi\\n\\nAssistant:", ["Hello!", "Hi, how can I help?"], user_id="worker-3")
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 10.0,
        retries: int = 3,
        *,
        max_in_flight: int = 64,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        """
        Args:
            endpoint: the server's ZeroMQ endpoint, e.g. ``tcp://127.0.0.1:5555``.
            timeout: seconds to wait for a reply (in a pipelined call: for the next reply)
                before the socket is replaced and the unanswered requests are resent.
            retries: how many times in a row a silent server is retried before
                :class:`PrmTimeoutError`; 0 means one attempt only.
            max_in_flight: requests a pipelined call keeps outstanding at once (keep it below the
                server's ``max_queued_requests`` to avoid ``overloaded`` replies).
            context: the ZeroMQ context to open sockets in (default: the process-wide one).
            curve: CURVE keys (the server's public key and this client's pair) for a server that
                requires them; ``None`` for a plain connection.
        """
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
        #: How many times a silent server made this client replace its socket.
        self.reconnects = 0
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context.instance()
        self._socket: zmq.Socket[bytes] | None = None
        self._id_prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        #: The ``limits`` of the server's ``info``, read once per connection.
        self._limits: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket (unsent requests are dropped). The client reconnects if used again."""
        self._limits = None  # the server behind the endpoint may come back with other limits
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.endpoint!r}, timeout={self.timeout!r}, retries={self.retries!r})"

    # -- operations ------------------------------------------------------------------------------

    def rank(
        self,
        prompt: str,
        candidates: Sequence[str],
        user_id: str | None = None,
        user_info: str | None = None,
        top_k: int | None = None,
        deadline_ms: float | None = None,
    ) -> RankResult:
        """Score ``candidates`` (replies to ``prompt``) for one user and order them best first.

        Args:
            prompt: the conversation so far, as in the training data
                (``"Human: ...\\n\\nAssistant:"``).
            candidates: the replies, at most the server's ``max_candidates``.
            user_id: the user; ``None`` or an id the model does not know means the generic user.
            user_info: optional explicit text about the user.
            top_k: length of :attr:`RankResult.order` (all candidates if ``None``).
            deadline_ms: if the request is still queued this long after the server received it,
                the server answers ``deadline_exceeded`` instead of computing it.
        """
        return self.rank_many([RankRequest(prompt, candidates, user_id, user_info, top_k, deadline_ms)])[0]

    def rank_many(self, requests: Iterable[RankRequest]) -> list[RankResult]:
        """Send several ``rank`` requests at once (pipelined) and return their results in order."""
        bodies = [
            protocol.rank_request(self._next_id(), r.prompt, r.candidates, r.user_id, r.user_info, r.top_k, r.deadline_ms)
            for r in requests
        ]
        results = [_rank_result(reply) for reply in self._exchange(bodies)]
        for body, result in zip(bodies, results):
            if len(result.scores) != len(body["candidates"]):
                raise PrmProtocolError(f"reply {body['id']!r} has {len(result.scores)} scores for "
                                       f"{len(body['candidates'])} candidates")
        return results

    def score(self, items: Iterable[ItemLike], *, deadline_ms: float | None = None, chunk_size: int | None = None) -> ScoreResult:
        """Score unrelated (user, prompt, response) items, each on its own, in input order.

        Lists longer than the server's ``max_candidates`` (read once with :meth:`info`) or than
        ``chunk_size`` are split into several requests, sent pipelined.
        """
        bodies = [_item_body(item, index) for index, item in enumerate(items)]
        if not bodies:
            return ScoreResult(scores=[], known_user=[], truncated=[], timings=[])
        size = chunk_size if chunk_size is not None else self._server_max_candidates()
        if size < 1:
            raise ValueError(f"chunk_size must be at least 1; got {size}")
        starts = range(0, len(bodies), size)
        requests = [protocol.score_request(self._next_id(), bodies[start:start + size], deadline_ms) for start in starts]
        scores: list[float | None] = []
        known: list[bool] = []
        truncated: list[int] = []
        timings: list[Timing] = []
        for start, request, reply in zip(starts, requests, self._exchange(requests)):
            part = _score_result(reply)
            if len(part.scores) != len(request["items"]) or len(part.known_user) != len(request["items"]):
                raise PrmProtocolError(f"reply {reply.get('id')!r} has {len(part.scores)} scores and "
                                       f"{len(part.known_user)} known_user flags for {len(request['items'])} items")
            scores += part.scores
            known += part.known_user
            truncated += [start + index for index in part.truncated]
            timings += part.timings
        return ScoreResult(scores=scores, known_user=known, truncated=truncated, timings=timings)

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

    def trl_reward_func(self, user_column: str = "user_id", user_info_column: str = "user_info", name: str = "prm_reward") -> Callable[..., list[float]]:
        """A reward function with TRL's contract ``f(prompts, completions, **columns) -> list[float]``.

        See :func:`prm_client.rewards.trl_reward_func`.
        """
        return rewards.trl_reward_func(self, user_column, user_info_column, name)

    # -- the wire --------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._counter)}"

    def _status(self, op: str) -> dict[str, Any]:
        reply = self._exchange([protocol.status_request(self._next_id(), op)])[0]
        return {key: value for key, value in reply.items() if key not in ("v", "id", "ok")}

    def _server_limits(self) -> dict[str, Any]:
        cached = self._limits
        if cached is None:
            limits = self.info().get("limits")
            if not isinstance(limits, dict):
                raise PrmProtocolError(f"info reply has no limits object: {limits!r}")
            cached = self._limits = dict(limits)
        return cached

    def _server_max_candidates(self) -> int:
        value = self._server_limits().get("max_candidates")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PrmProtocolError(f"info reply has no usable limits.max_candidates: {value!r}")
        return value

    def _server_max_message_bytes(self) -> int:
        """The server's ``max_message_bytes``, or the protocol's default when ``info`` is answered
        with an error or without it. A silent server's :class:`PrmTimeoutError` is raised as is:
        the request would only time out too, after as long again."""
        try:
            value = self._server_limits().get("max_message_bytes")
        except (PrmError, PrmProtocolError) as error:
            log.warning("no limits from %s's info (%s); assuming max_message_bytes %d", self.endpoint, error,
                        protocol.DEFAULT_MAX_MESSAGE_BYTES)
            return protocol.DEFAULT_MAX_MESSAGE_BYTES
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return protocol.DEFAULT_MAX_MESSAGE_BYTES
        return value

    def _refuse_oversized(self, requests: Sequence[dict[str, Any]], bodies: Sequence[bytes]) -> None:
        """Raises ``too_large`` for a rank or score body over the server's limit, before anything
        is sent: ZeroMQ disconnects a peer whose message exceeds four times the limit, so the
        server could not even answer it, and the call would only time out."""
        if not any(request["op"] in ("rank", "score") for request in requests):
            return
        limit = self._server_max_message_bytes()
        for request, body in zip(requests, bodies):
            if len(body) > limit:
                raise PrmError(protocol.ErrorCode.TOO_LARGE.value, f"the request body has {len(body)} bytes, over the server's "
                               f"max_message_bytes of {limit}; it was not sent", request["id"])

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.apply(socket)
            socket.connect(self.endpoint)
            self._socket = socket
        return self._socket

    def _exchange(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send every request, at most ``max_in_flight`` outstanding, and return the ok replies in
        request order; raise on the first error reply, or after ``retries`` silent timeouts."""
        bodies = [protocol.encode(request) for request in requests]
        self._refuse_oversized(requests, bodies)
        replies: list[dict[str, Any] | None] = [None] * len(requests)
        unsent = deque(range(len(requests)))
        in_flight: dict[str, int] = {}
        retries_left = self.retries
        wait_ms = max(1, round(self.timeout * 1000))
        try:
            while unsent or in_flight:
                socket = self._connected()
                while unsent and len(in_flight) < self.max_in_flight:
                    index = unsent[0]
                    try:
                        socket.send_multipart([b"", bodies[index]], flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break  # the outgoing pipe is full: wait for replies (or time out)
                    unsent.popleft()
                    in_flight[requests[index]["id"]] = index
                if socket.poll(wait_ms, zmq.POLLIN):
                    reply = _decode(socket.recv_multipart()[-1])
                    answered = self._match(reply, in_flight)
                    if answered is not None:
                        replies[answered] = reply
                        retries_left = self.retries
                    continue
                # Lazy Pirate: a silent server gets a fresh socket and every unanswered request again.
                attempts = self.retries - retries_left + 1
                self.close()
                if retries_left == 0:
                    raise PrmTimeoutError(self.endpoint, attempts, self.timeout, len(in_flight) + len(unsent))
                retries_left -= 1
                self.reconnects += 1
                log.warning("no reply from %s in %g s; reconnecting and resending %d request(s) (retry %d of %d)",
                            self.endpoint, self.timeout, len(in_flight) + len(unsent), attempts, self.retries)
                unsent = deque(sorted([*in_flight.values(), *unsent]))
                in_flight.clear()
        except BaseException:
            if in_flight:
                self.close()  # their replies must not reach a later call
            raise
        return [cast(dict[str, Any], reply) for reply in replies]

    @staticmethod
    def _match(reply: dict[str, Any], in_flight: dict[str, int]) -> int | None:
        """The request index an ok reply answers (removed from ``in_flight``); raises for errors
        that belong to this call; ``None`` for a stale reply."""
        request_id = reply.get("id")
        ok = reply.get("ok")
        if ok is not True and ok is not False:
            raise PrmProtocolError(f"reply {request_id!r} has no boolean 'ok': {reply!r}")
        if isinstance(request_id, str) and request_id in in_flight:
            index = in_flight.pop(request_id)
            if ok is False:
                raise _error(reply)
            return index
        if request_id is None and ok is False:
            # The server could not read the id (a message over its size limit): it can only be
            # one of ours, since this client sends nothing else.
            raise _error(reply)
        log.debug("ignoring a reply to request %r, which this call is not waiting for", request_id)
        return None


# -- replies -------------------------------------------------------------------------------------


def _decode(frame: bytes) -> dict[str, Any]:
    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(frame.decode("utf-8"), parse_constant=reject)
    except (UnicodeDecodeError, ValueError) as error:
        raise PrmProtocolError(f"reply is not UTF-8 JSON ({error}): {frame[:200]!r}") from error
    if not isinstance(value, dict):
        raise PrmProtocolError(f"reply is not a JSON object: {frame[:200]!r}")
    return value


def _error(reply: dict[str, Any]) -> PrmError:
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        raise PrmProtocolError(f"error reply without error.code and error.message: {reply!r}")
    return PrmError(error["code"], error["message"], reply.get("id"))


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


def _rank_result(reply: dict[str, Any]) -> RankResult:
    return RankResult(
        scores=_scores(reply),
        order=list(_member(reply, "order", list)),
        known_user=_member(reply, "known_user", bool),
        truncated=list(_member(reply, "truncated", list)),
        timing=_timing(reply),
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
