"""One call's requests on the wire, without the I/O: what to send next, which reply answers which
request, when a quiet server is pinged, when a silent one gets a fresh socket (Lazy Pirate), and
when it is given up for dead.

:class:`prm_client.Client` (blocking) and :class:`prm_client.AsyncClient` (asyncio) run the same
:func:`converse` over an :class:`Exchange`, so both follow one set of rules: :func:`converse`
yields the socket operations it needs (:class:`Send`, :class:`Poll`, :class:`Receive`), and each
client performs them its own way (blocking, or awaited) and sends back the outcome.

**Slow or dead?** A silent socket alone cannot tell a server computing a large batch from one
that is gone (killed, SIGSTOPped, unreachable). So while a call waits, every ``timeout /
PINGS_PER_TIMEOUT`` seconds without a reply it also sends a ``health`` request, which the server
answers at once from its I/O thread (PROTOCOL.md, "info, health, metrics"). A server that answers
and reports itself healthy is alive: the call keeps waiting for its replies, however long they
take. Only ``timeout`` seconds without any sign of life end the attempt; after ``retries`` fresh
attempts the call raises :class:`PrmTimeoutError`, naming the endpoint and the time waited. A
server that answers ``health`` but reports ``healthy: false`` (its compute thread stalled, or a
proxy without workers) makes no progress either, so its answers do not count as life.

**Restarts.** A server restarted while requests were in flight lost them, yet answers the pings.
The ``uptime_s`` of its ``health`` reply says when it started: requests sent before then are sent
again (every operation is read-only, so a duplicate is harmless; its late reply is ignored).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Union, cast

from . import protocol
from .errors import PrmError, PrmProtocolError, PrmTimeoutError
from .sockets import SocketPool

log = logging.getLogger("prm_client")

#: Liveness pings per ``timeout`` of silence: a live server has that many chances to answer one.
PINGS_PER_TIMEOUT = 4


class Exchange:
    """The state of one call: its requests, their replies, and the clocks of the quiet server.

    :func:`converse` loops until :attr:`finished`: it sends what :meth:`sendable` yields (confirming each
    with :meth:`sent`) and :meth:`ping` when it returns a body, waits up to :meth:`wait_ms` for a
    reply, and hands each reply to :meth:`receive`, or calls :meth:`silent` when none came.
    """

    def __init__(self, requests: Sequence[dict[str, Any]], bodies: Sequence[bytes], endpoint: str, timeout: float,
                 retries: int, max_in_flight: int, next_id: Callable[[], str]) -> None:
        self.requests = requests
        self.bodies = bodies
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.max_in_flight = max_in_flight
        self._next_id = next_id
        self.replies: list[dict[str, Any] | None] = [None] * len(requests)
        self._unsent = deque(range(len(requests)))
        #: Request id → (its index, when it was last sent).
        self._in_flight: dict[str, tuple[int, float]] = {}
        self._retries_left = retries
        self._pings: set[str] = set()
        self._heard = self._pinged = time.monotonic()
        #: Why the last health reply did not count as life, for the timeout's message.
        self._unhealthy = ""

    # -- the driver's questions --------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return not self._unsent and not self._in_flight

    @property
    def waiting(self) -> bool:
        """Whether requests are in flight (a failed call must then drop its socket, lest their
        replies reach a later call)."""
        return bool(self._in_flight)

    def sendable(self) -> Iterator[bytes]:
        """The bodies that may go out now (at most ``max_in_flight`` outstanding). The driver
        confirms each with :meth:`sent`, or stops early when its socket would block."""
        while self._unsent and len(self._in_flight) < self.max_in_flight:
            yield self.bodies[self._unsent[0]]

    def sent(self) -> None:
        index = self._unsent.popleft()
        self._in_flight[self.requests[index]["id"]] = (index, time.monotonic())

    def ping(self) -> bytes | None:
        """A ``health`` request to send now, when requests are in flight and the server has been
        quiet for a ping interval; else ``None``."""
        now = time.monotonic()
        if not self._in_flight or now - max(self._heard, self._pinged) < self._ping_interval:
            return None
        ping_id = f"{self._next_id()}-ping"
        self._pings.add(ping_id)
        self._pinged = now
        return protocol.encode(protocol.status_request(ping_id, "health"))

    def wait_ms(self) -> int:
        """How long to wait for a reply before the next ping or the end of the attempt."""
        now = time.monotonic()
        until = self._heard + self.timeout
        if self._in_flight:
            until = min(until, max(self._heard, self._pinged) + self._ping_interval)
        return max(1, round((until - now) * 1000))

    # -- what happened -----------------------------------------------------------------------------

    def receive(self, reply: dict[str, Any]) -> None:
        """Takes one reply: an answer (raises :class:`PrmError` if it is an error), a ping's
        answer, or a stale reply to an abandoned attempt (ignored, but a sign of life)."""
        request_id = reply.get("id")
        if isinstance(request_id, str) and request_id in self._pings:
            self._pings.discard(request_id)
            self._take_health(reply)
            return
        self._heard = time.monotonic()
        ok = reply.get("ok")
        if ok is not True and ok is not False:
            raise PrmProtocolError(f"reply {request_id!r} has no boolean 'ok': {reply!r}")
        if isinstance(request_id, str) and request_id in self._in_flight:
            index, _ = self._in_flight.pop(request_id)
            if ok is False:
                raise error_of(reply)
            self.replies[index] = reply
            self._retries_left = self.retries
            return
        if request_id is None and ok is False:
            # The server could not read the id (a message over its size limit): it can only be
            # one of ours, since this socket carries nothing else.
            raise error_of(reply)
        log.debug("ignoring a reply to request %r, which this call is not waiting for", request_id)

    def silent(self) -> bool:
        """Called when :meth:`wait_ms` passed without a reply. True when the server has been
        silent for a whole ``timeout``: the driver must replace its socket, and every unanswered
        request is sent again on the new one. Raises :class:`PrmTimeoutError` when no retry is
        left. False when only a ping is due."""
        if time.monotonic() - self._heard < self.timeout:
            return False
        attempt = self.retries - self._retries_left + 1
        outstanding = len(self._in_flight) + len(self._unsent)
        if self._retries_left == 0:
            raise PrmTimeoutError(self.endpoint, attempt, self.timeout, outstanding, self._unhealthy)
        self._retries_left -= 1
        log.warning("no reply from %s in %g s%s; reconnecting and resending %d request(s) (retry %d of %d)",
                    self.endpoint, self.timeout, self._unhealthy and f" ({self._unhealthy})", outstanding, attempt,
                    self.retries)
        self._resend([index for index, _ in self._in_flight.values()])
        self._pings.clear()
        self._heard = self._pinged = time.monotonic()
        return True

    def results(self) -> list[dict[str, Any]]:
        """The ok replies in request order, once :attr:`finished`."""
        assert self.finished
        return [cast(dict[str, Any], reply) for reply in self.replies]

    # -- internals ---------------------------------------------------------------------------------

    @property
    def _ping_interval(self) -> float:
        return self.timeout / PINGS_PER_TIMEOUT

    def _take_health(self, reply: dict[str, Any]) -> None:
        """A ping's answer: life if the server is healthy; requests it cannot have seen (sent
        before it started) are sent again."""
        if reply.get("ok") is True and reply.get("healthy") is False:
            compute = reply.get("compute")
            state = compute.get("state") if isinstance(compute, dict) else None
            self._unhealthy = f"it answers health but reports healthy: false (status {reply.get('status')!r}, " \
                              f"compute {state!r})"
            return
        now = self._heard = time.monotonic()
        self._unhealthy = ""
        uptime = reply.get("uptime_s")
        if isinstance(uptime, (int, float)) and not isinstance(uptime, bool):
            started = now - float(uptime)
            lost = [index for index, sent_at in self._in_flight.values() if sent_at < started]
            if lost:
                log.warning("%s restarted after %d request(s) were sent; sending them again", self.endpoint, len(lost))
                self._resend(lost)

    def _resend(self, indices: list[int]) -> None:
        for index in indices:
            del self._in_flight[self.requests[index]["id"]]
        self._unsent = deque(sorted([*indices, *self._unsent]))


@dataclass(frozen=True)
class Send:
    """Send ``body`` (after an empty delimiter frame) without blocking; the outcome is whether it
    went (False: the outgoing pipe is full)."""

    socket: Any
    body: bytes


@dataclass(frozen=True)
class Poll:
    """Wait up to ``ms`` for a reply; the outcome is whether one is ready."""

    socket: Any
    ms: int


@dataclass(frozen=True)
class Receive:
    """Read one reply; the outcome is its last frame (the body)."""

    socket: Any


Operation = Union[Send, Poll, Receive]
#: What :func:`converse` is: it yields operations, is sent their outcomes, and returns the replies.
Conversation = Generator[Operation, Any, list[dict[str, Any]]]


def converse(exchange: Exchange, pool: SocketPool[Any]) -> Conversation:
    """One call on a socket borrowed from ``pool``: send what may go, ping a quiet server, read
    replies, replace the socket of a silent one; the ok replies in request order. An error in an
    operation is thrown in here, so the socket goes back to the pool, or is closed when requests
    are still in flight (their replies must not reach a later call)."""
    socket = pool.take()
    try:
        while not exchange.finished:
            for body in exchange.sendable():
                if not (yield Send(socket, body)):
                    break  # the outgoing pipe is full: wait for replies (or time out)
                exchange.sent()
            ping = exchange.ping()
            if ping is not None:
                yield Send(socket, ping)  # a full pipe skips this ping; the next interval tries again
            if (yield Poll(socket, exchange.wait_ms())):
                exchange.receive(decode((yield Receive(socket))))
            elif exchange.silent():
                socket = pool.replace(socket)
    except BaseException:
        _release(pool, socket, exchange)
        raise
    _release(pool, socket, exchange)
    return exchange.results()


def _release(pool: SocketPool[Any], socket: Any, exchange: Exchange) -> None:
    if exchange.waiting:
        socket.close(linger=0)
    else:
        pool.give_back(socket)


def decode(frame: bytes) -> dict[str, Any]:
    """A reply frame as a JSON object; :class:`PrmProtocolError` if it is not one."""

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(frame.decode("utf-8"), parse_constant=reject)
    except (UnicodeDecodeError, ValueError) as error:
        raise PrmProtocolError(f"reply is not UTF-8 JSON ({error}): {frame[:200]!r}") from error
    if not isinstance(value, dict):
        raise PrmProtocolError(f"reply is not a JSON object: {frame[:200]!r}")
    return value


def error_of(reply: dict[str, Any]) -> PrmError:
    """The :class:`PrmError` an error reply stands for."""
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        raise PrmProtocolError(f"error reply without error.code and error.message: {reply!r}")
    return PrmError(error["code"], error["message"], reply.get("id"))
