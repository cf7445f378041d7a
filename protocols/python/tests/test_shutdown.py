"""SIGTERM (or SIGINT) under load: everything accepted is answered, new work gets
``shutting_down``, health says ``draining``, and the process exits 0; a drain longer than
``--drain-timeout`` answers what still waits ``shutting_down`` and exits 0 all the same."""

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

from harness import Pool, PrmProcess, Schemas, Server, Wire, encode, parse_reply

CLIENTS = 4
IN_FLIGHT = 6
PROMPT = "Human: How do I keep basil alive indoors?\n\nAssistant:"
#: The id of the health request each peer sends after its last rank.
ALL_ACCEPTED = "all-accepted"
#: Heavy requests (flood_requests') queued just before the signal, so the drain takes seconds.
BALLAST = 6

#: The flood of the drain-timeout tests: far more compute than the drain timeout allows (tens of
#: seconds on two cores with one-item batches), queued before the signal.
FLOOD = 100
FLOOD_CANDIDATES = 32
DRAIN_TIMEOUT = 1.0
#: Seconds an exit may take beyond --drain-timeout: the batch being computed is finished (one
#: request here), the poll loop notices within a tick, and the machine is shared.
EXIT_SLACK = 8.0


@dataclass
class Peer:
    sent: dict[str, float] = field(default_factory=dict)  # id -> monotonic send time
    replies: dict[str, list[str]] = field(default_factory=dict)  # id -> codes received ("ok" or error code)
    failure: str | None = None
    #: Set when the server has answered the health request the peer sent after its last rank:
    #: the server reads a socket's messages in order, so by then it has accepted every rank.
    all_accepted: threading.Event = field(default_factory=threading.Event)


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

        marker_sent = False
        try:
            for _ in range(IN_FLIGHT):
                send()
            while len(peer.replies) < len(peer.sent) or not peer.all_accepted.is_set():
                if not socket.poll(120_000, zmq.POLLIN):
                    peer.failure = f"{len(peer.sent) - len(peer.replies)} request(s) never answered"
                    return
                frames = socket.recv_multipart()
                if json.loads(frames[-1])["id"] == ALL_ACCEPTED:
                    parse_reply(frames, schemas, "health")
                    peer.all_accepted.set()
                    continue
                reply = parse_reply(frames, schemas, "rank").body
                peer.replies.setdefault(reply["id"], []).append("ok" if reply["ok"] else reply["error"]["code"])
                answered.release()
                with gate:  # so that after stop_sending is set, no peer is still sending
                    if not stop_sending.is_set():
                        send()
                    elif not marker_sent:
                        socket.send_multipart([b"", json.dumps({"v": 1, "id": ALL_ACCEPTED, "op": "health"}).encode()])
                        marker_sent = True
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            peer.failure = repr(error)
        finally:
            socket.close(linger=0)

    threads = [threading.Thread(target=run, args=(n, peer)) for n, peer in enumerate(peers)]
    for thread in threads:
        thread.start()
    for _ in range(2 * CLIENTS):  # the server is demonstrably busy, with a full pipeline behind
        assert answered.acquire(timeout=120), "the server answered nothing under load"

    with Wire(server.endpoint, schemas) as monitor, Wire(server.endpoint, schemas) as ballast:
        assert monitor.call({"v": 1, "id": "before", "op": "health"}).body["status"] == "serving"
        # The accepted work is what the peers have outstanding now and the ballast: seconds of
        # compute queued behind them, so that the drain outlasts the probe's round trip (the
        # server takes all queued jobs into one batch up to its token budget, and the peers'
        # few requests can be one batch); nothing more is sent but the monitor's requests.
        with gate:
            stop_sending.set()
        heavy = flood_requests(texts)[:BALLAST]
        for body in heavy:
            ballast.send([b"", encode(body)])
        assert ballast.call({"v": 1, "id": ALL_ACCEPTED, "op": "health"}, timeout=120).body["status"] == "serving"
        for number, peer in enumerate(peers):  # what was sent is accepted before the signal
            assert peer.all_accepted.wait(timeout=120), f"peer {number}: its ranks were not all read by the server"
        signalled_at = time.monotonic()
        server.signal(signal_number)
        health: dict[str, Any] = {}
        while health.get("status") != "draining":  # until the server has seen the signal
            assert time.monotonic() - signalled_at < 30, f"still not draining: {health}"
            health = monitor.call({"v": 1, "id": "health", "op": "health"}).body
        probe = monitor.call(rank("probe")).body
        ballast_codes: dict[str, str] = {}
        ballast_after_signal = 0
        while len(ballast_codes) < len(heavy):
            reply = parse_reply(ballast.receive(timeout=120), schemas, "rank").body
            ballast_codes[reply["id"]] = "ok" if reply["ok"] else reply["error"]["code"]
            ballast_after_signal += time.monotonic() > signalled_at
    status = server.wait(timeout=120)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    assert probe["ok"] is False and probe["error"]["code"] == "shutting_down", probe
    assert status == 0, server.log()
    for number, peer in enumerate(peers):
        assert peer.failure is None, f"peer {number}: {peer.failure}"
        assert set(peer.replies) == set(peer.sent), f"peer {number}: unanswered {set(peer.sent) - set(peer.replies)}"
        for request_id, codes in peer.replies.items():
            # Everything the peers sent reached the server before the signal: all of it was
            # accepted, so all of it must be computed and answered, exactly once.
            assert codes == ["ok"], f"peer {number}: {request_id} answered {codes}"
    # The ballast too was accepted before the signal, and the drain computed what was left of it.
    assert set(ballast_codes.values()) == {"ok"}, f"the ballast was answered {ballast_codes}"
    assert ballast_after_signal >= 1, "the whole ballast was answered before the signal: nothing was left to drain"


def flood_requests(texts: list[str]) -> list[dict[str, Any]]:
    """FLOOD uncached rank requests of FLOOD_CANDIDATES candidates each."""
    tag = uuid.uuid4().hex
    return [{"v": 1, "id": f"f{number}", "op": "rank", "user_id": "worker-5", "prompt": PROMPT,
             "candidates": [f"{texts[(number + k) % len(texts)]} [{tag} {number}]" for k in range(FLOOD_CANDIDATES)]}
            for number in range(FLOOD)]


def drain_a_flood(process: PrmProcess, endpoint: str, schemas: Schemas, requests: list[dict[str, Any]]) -> tuple[dict[str, list[Any]], float, int]:
    """Queues every request on one socket, SIGTERMs ``process`` once all are accepted and one is
    answered, and collects the replies. Returns each request's replies, the seconds from the signal
    to the exit, and the exit status."""
    replies: dict[str, list[Any]] = {}
    with Wire(endpoint, schemas) as wire:
        for body in requests:
            wire.send([b"", encode(body)])
        # Answered at once, and only after the requests sent before it on this socket were read:
        # every one of them is accepted when this reply comes.
        wire.send([b"", encode({"v": 1, "id": "all-queued", "op": "health"})])
        accepted = False
        signalled_at = 0.0
        while sum(len(answers) for answers in replies.values()) < len(requests):
            frames = wire.receive()
            request_id = json.loads(frames[-1])["id"]
            if request_id == "all-queued":
                parse_reply(frames, schemas, "health")
                accepted = True
            else:
                replies.setdefault(request_id, []).append(parse_reply(frames, schemas, "rank"))
            if accepted and replies and not signalled_at:
                signalled_at = time.monotonic()
                process.signal(signal.SIGTERM)
        status = process.wait(timeout=120)
        exited_after = time.monotonic() - signalled_at
        assert wire.silent_for(0.2), "a request was answered twice"
    return replies, exited_after, status


def check_drained_in_time(replies: dict[str, list[Any]], requests: list[dict[str, Any]], exited_after: float, status: int,
                          log: str) -> None:
    assert status == 0, log
    assert exited_after <= DRAIN_TIMEOUT + EXIT_SLACK, f"exited {exited_after:.1f} s after SIGTERM with --drain-timeout {DRAIN_TIMEOUT}"
    assert set(replies) == {body["id"] for body in requests}, "some requests were never answered"
    assert all(len(answers) == 1 for answers in replies.values()), "some requests were answered twice"
    codes = [answers[0].code or "ok" for answers in replies.values()]
    assert set(codes) <= {"ok", "shutting_down"}, sorted(set(codes))
    # The flood is far more than a second of compute: most of it was refused, what was computed
    # before the timeout was answered ok.
    assert 1 <= codes.count("ok") < len(requests) // 2, f"{codes.count('ok')} of {len(requests)} computed"
    for answers in replies.values():
        if answers[0].code == "shutting_down":
            assert "drain timeout" in answers[0].message, answers[0].message


def test_drain_timeout_answers_what_still_waits_shutting_down(start_server: Callable[..., Server], schemas: Schemas,
                                                              dialogues: list[dict[str, Any]]) -> None:
    # Found by hand: with 1,041 requests queued, a SIGTERMed server took 69 s to exit.
    server = start_server("--batch-tokens", "64", "--drain-timeout", str(DRAIN_TIMEOUT))
    requests = flood_requests([row["chosen"] for row in dialogues[:64]])
    replies, exited_after, status = drain_a_flood(server, server.endpoint, schemas, requests)
    check_drained_in_time(replies, requests, exited_after, status, server.log())


def test_proxy_drain_timeout_answers_what_its_workers_hold_shutting_down(start_pool: Callable[..., Pool], schemas: Schemas,
                                                                        dialogues: list[dict[str, Any]]) -> None:
    pool = start_pool(1, proxy_args=["--drain-timeout", str(DRAIN_TIMEOUT)],
                      worker_args=["--batch-tokens", "64", "--drain-timeout", str(DRAIN_TIMEOUT)])
    requests = flood_requests([row["chosen"] for row in dialogues[:64]])
    replies, exited_after, status = drain_a_flood(pool.proxy, pool.endpoint, schemas, requests)
    check_drained_in_time(replies, requests, exited_after, status, pool.proxy.log())
