"""A client that sends and never reads must not grow a server's or a proxy's memory without bound:
replies beyond the send high-water mark are dropped and counted (``replies_dropped``), resident
memory (VmRSS from /proc) levels off, and other clients are served all along."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import zmq

from harness import Pool, PrmProcess, Schemas, Server, Wire

#: Each reply echoes this id: 4 KiB, so that buffering every reply would show plainly in RSS.
BIG_ID = "x" * 4096
#: Requests per burst. The first bursts fill every bounded buffer on the way (the receive
#: high-water mark alone holds 10,000 requests ≈ 40 MiB) and the allocator's pools; RSS is read
#: after them, and again after each later burst.
BURST = 25_000
WARM_UP_BURSTS = 2
BURSTS = 3
#: RSS the process may gain over the later bursts. Keeping their replies would take
#: 3 × 25,000 × 4 KiB ≈ 300 MiB; measured: +8 MiB at most (server and proxy), allocator noise.
MAX_GROWTH = 32 << 20


def flood(socket: zmq.Socket[bytes], count: int) -> None:
    body = ('{"v":1,"op":"health","id":"%s"}' % BIG_ID).encode()
    for _ in range(count):
        socket.send_multipart([b"", body])


def wait_handled(status: Callable[[], dict[str, Any]], total: int, timeout: float = 60.0) -> dict[str, Any]:
    """Polls ``metrics`` until ``total`` health requests in all were answered (or their replies dropped)."""
    deadline = time.monotonic() + timeout
    metrics = status()
    while metrics["requests"]["health"] < total:
        assert time.monotonic() < deadline, f"only {metrics['requests']['health']} of {total} health requests handled: {metrics}"
        time.sleep(0.1)
        metrics = status()
    return metrics


def check_bounded(process: PrmProcess, endpoint: str, status: Callable[[], dict[str, Any]], schemas: Schemas) -> None:
    context: zmq.Context[Any] = zmq.Context.instance()
    slow: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    # Hold as little as possible on the client's side, so that the server's side fills.
    slow.setsockopt(zmq.RCVHWM, 1)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.SNDTIMEO, 30_000)
    slow.setsockopt(zmq.LINGER, 0)
    slow.connect(endpoint)
    # Health requests so far (the probes that saw the process start); metrics calls are not counted there.
    sent = status()["requests"]["health"]
    try:
        for _ in range(WARM_UP_BURSTS):
            flood(slow, BURST)
            sent += BURST
            before = wait_handled(status, sent)
        base = process.rss_bytes()
        readings = []
        for _ in range(BURSTS):
            flood(slow, BURST)
            sent += BURST
            after = wait_handled(status, sent)
            readings.append(process.rss_bytes())
        # A normal client is served while the slow one still holds its socket open.
        with Wire(endpoint, schemas) as wire:
            assert wire.call({"v": 1, "id": "normal", "op": "info"}, timeout=10).ok
    finally:
        slow.close(linger=0)
    dropped, more = after["replies_dropped"] - before["replies_dropped"], BURSTS * BURST
    assert dropped >= more * 0.9, f"only {dropped} of {more} replies dropped: they are being held somewhere ({after})"
    mib = [f"{(reading - base) / 2**20:+.1f}" for reading in readings]
    assert max(readings) - base <= MAX_GROWTH, \
        f"RSS grew by {mib} MiB (from {base / 2**20:.0f} MiB) while a client that never reads sent {more} requests"


def test_slow_client_server(start_server: Callable[..., Server], schemas: Schemas) -> None:
    server = start_server()

    def status() -> dict[str, Any]:
        with Wire(server.endpoint, schemas) as wire:
            return wire.call({"v": 1, "id": "m", "op": "metrics"}, timeout=10).body

    check_bounded(server, server.endpoint, status, schemas)


def test_slow_client_proxy(start_pool: Callable[..., Pool], schemas: Schemas) -> None:
    pool = start_pool(1)
    check_bounded(pool.proxy, pool.endpoint, lambda: pool.call("metrics"), schemas)
