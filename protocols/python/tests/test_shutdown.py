"""SIGTERM (or SIGINT) under load: everything accepted is answered, new work gets
``shutting_down``, health says ``draining``, and the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import zmq

from harness import Schemas, Server, Wire, parse_reply

CLIENTS = 4
IN_FLIGHT = 6
PROMPT = "Human: How do I keep basil alive indoors?\n\nAssistant:"


@dataclass
class Peer:
    sent: dict[str, float] = field(default_factory=dict)  # id -> monotonic send time
    replies: dict[str, list[str]] = field(default_factory=dict)  # id -> codes received ("ok" or error code)
    received_at: dict[str, float] = field(default_factory=dict)
    failure: str | None = None


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_under_load(start_server: Callable[..., Server], schemas: Schemas, dialogues: list[dict[str, Any]],
                           signal_number: int) -> None:
    server = start_server()
    texts = [f"{row['chosen']} {row['rejected']}" for row in dialogues[40:48]]

    def rank(request_id: str) -> dict[str, Any]:
        tag = uuid.uuid4().hex  # uncached: every request costs real compute
        return {"v": 1, "id": request_id, "op": "rank", "user_id": "worker-5", "prompt": PROMPT,
                "candidates": [f"{text} [{tag}]" for text in texts]}

    peers = [Peer() for _ in range(CLIENTS)]
    stop_sending = threading.Event()
    gate = threading.Lock()
    answered = threading.Semaphore(0)

    def run(number: int, peer: Peer) -> None:
        # Keeps IN_FLIGHT requests outstanding until told to stop, then collects every reply.
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(server.endpoint)

        def send() -> None:
            request_id = f"p{number}-{len(peer.sent)}"
            socket.send_multipart([b"", json.dumps(rank(request_id)).encode()])
            peer.sent[request_id] = time.monotonic()

        try:
            for _ in range(IN_FLIGHT):
                send()
            while len(peer.replies) < len(peer.sent):
                if not socket.poll(120_000, zmq.POLLIN):
                    peer.failure = f"{len(peer.sent) - len(peer.replies)} request(s) never answered"
                    return
                reply = parse_reply(socket.recv_multipart(), schemas, "rank").body
                peer.replies.setdefault(reply["id"], []).append("ok" if reply["ok"] else reply["error"]["code"])
                peer.received_at[reply["id"]] = time.monotonic()
                answered.release()
                with gate:  # so that after stop_sending is set, no peer is still sending
                    if not stop_sending.is_set():
                        send()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            peer.failure = repr(error)
        finally:
            socket.close(linger=0)

    threads = [threading.Thread(target=run, args=(n, peer)) for n, peer in enumerate(peers)]
    for thread in threads:
        thread.start()
    for _ in range(2 * CLIENTS):  # the server is demonstrably busy, with a full pipeline behind
        assert answered.acquire(timeout=120), "the server answered nothing under load"

    with Wire(server.endpoint, schemas) as monitor:
        assert monitor.call({"v": 1, "id": "before", "op": "health"}).body["status"] == "serving"
        # The accepted work is what the peers have outstanding now (about CLIENTS * IN_FLIGHT
        # requests, seconds of compute); nothing more is sent but the monitor's requests.
        with gate:
            stop_sending.set()
        time.sleep(0.2)  # what was sent has reached the server: it is accepted before the signal
        signalled_at = time.monotonic()
        server.signal(signal_number)
        health: dict[str, Any] = {}
        while health.get("status") != "draining":  # until the server has seen the signal
            assert time.monotonic() - signalled_at < 30, f"still not draining: {health}"
            health = monitor.call({"v": 1, "id": "health", "op": "health"}).body
        probe = monitor.call(rank("probe")).body
    status = server.wait(timeout=120)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    assert probe["ok"] is False and probe["error"]["code"] == "shutting_down", probe
    assert status == 0, server.log()
    ok_after_signal = 0
    for number, peer in enumerate(peers):
        assert peer.failure is None, f"peer {number}: {peer.failure}"
        assert set(peer.replies) == set(peer.sent), f"peer {number}: unanswered {set(peer.sent) - set(peer.replies)}"
        for request_id, codes in peer.replies.items():
            # Everything the peers sent reached the server before the signal: all of it was
            # accepted, so all of it must be computed and answered, exactly once.
            assert codes == ["ok"], f"peer {number}: {request_id} answered {codes}"
            if peer.received_at[request_id] > signalled_at:
                ok_after_signal += 1
    assert ok_after_signal >= CLIENTS, f"only {ok_after_signal} queued requests were answered after the signal"
