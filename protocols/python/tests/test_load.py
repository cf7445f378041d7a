"""Under load: a full queue answers ``overloaded`` at once; a request whose deadline passes while
queued is answered ``deadline_exceeded`` without being computed; health shows a compute thread
that makes no progress; a client that stops reading stalls no one."""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from harness import Reply, Schemas, Server, Wire, parse_reply

MAX_QUEUED = 4
STALL_MS = 100
PROMPT = "Human: Tell me something about the sea.\n\nAssistant:"


@pytest.fixture(scope="module")
def busy(start_server: Callable[..., Server]) -> Iterator[Server]:
    # A short queue and small batches: work piles up behind one request at a time.
    server = start_server("--max-queued", str(MAX_QUEUED), "--batch-tokens", "256", "--stall-ms", str(STALL_MS))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture
def busy_wire(busy: Server, schemas: Schemas) -> Iterator[Wire]:
    with Wire(busy.endpoint, schemas) as wire:
        yield wire


def heavy(dialogues: list[dict[str, Any]], request_id: Any, count: int = 48) -> dict[str, Any]:
    """A request of ``count`` window-filling replies no cache has seen."""
    tag = uuid.uuid4().hex
    candidates = [f"{row['chosen']} {row['rejected']} [{tag}]" for row in dialogues[:count]]
    return {"v": 1, "id": request_id, "op": "rank", "user_id": "worker-3", "prompt": PROMPT, "candidates": candidates}


def test_overload_is_answered_at_once(busy_wire: Wire, dialogues: list[dict[str, Any]]) -> None:
    before = busy_wire.call({"v": 1, "id": "m", "op": "metrics"}).body
    assert before["queue"]["capacity"] == MAX_QUEUED
    flood = 40
    sent_at = {}
    for number in range(flood):
        busy_wire.send([b"", json.dumps(heavy(dialogues, number, count=6)).encode()])
        sent_at[number] = time.monotonic()
    arrivals: dict[str, list[float]] = collections.defaultdict(list)
    ids = []
    for _ in range(flood):
        reply = parse_reply(busy_wire.receive(), busy_wire.schemas, "rank")
        arrivals["ok" if reply.ok else str(reply.code)].append(time.monotonic())
        ids.append(reply.body["id"])
    assert sorted(ids) == list(range(flood)), "every request answered exactly once"
    assert busy_wire.silent_for(0.3)
    assert set(arrivals) == {"ok", "overloaded"}, {code: len(times) for code, times in arrivals.items()}
    assert len(arrivals["overloaded"]) >= flood // 2
    # Refusals come straight from the I/O thread, not after queued work is computed.
    assert max(arrivals["overloaded"]) < max(arrivals["ok"])
    after = busy_wire.call({"v": 1, "id": "m", "op": "metrics"}).body
    assert after["errors"].get("overloaded", 0) - before["errors"].get("overloaded", 0) == len(arrivals["overloaded"])
    assert after["queue"]["max_depth"] <= MAX_QUEUED
    assert busy_wire.call(heavy(dialogues, "after", count=2)).ok


def expire_two(wire: Wire, dialogues: list[dict[str, Any]]) -> dict[str, Reply]:
    """Queues a heavy request, then a rank and a score request with 1 ms and 0.5 ms deadlines (so
    they expire behind it) and one with a generous deadline; returns the replies by id."""
    wire.send([b"", json.dumps(heavy(dialogues, "heavy")).encode()])
    short = {"v": 1, "op": "rank", "prompt": PROMPT, "candidates": [f"The sea is big. {uuid.uuid4().hex}"]}
    wire.send([b"", json.dumps({**short, "id": "late", "deadline_ms": 1}).encode()])
    wire.send([b"", json.dumps({"v": 1, "id": "late-score", "op": "score", "deadline_ms": 0.5,
                                "items": [{"prompt": PROMPT, "response": f"Waves. {uuid.uuid4().hex}"}]}).encode()])
    wire.send([b"", json.dumps({**short, "id": "patient", "deadline_ms": 600_000}).encode()])
    replies = {}
    for _ in range(4):
        frames = wire.receive()
        op = "score" if json.loads(frames[-1])["id"] == "late-score" else "rank"
        reply = parse_reply(frames, wire.schemas, op)
        replies[reply.body["id"]] = reply
    return replies


def test_deadline_exceeded_while_queued(busy_wire: Wire, dialogues: list[dict[str, Any]]) -> None:
    before = busy_wire.call({"v": 1, "id": "m", "op": "metrics"}).body
    replies = expire_two(busy_wire, dialogues)
    assert replies["heavy"].ok, replies["heavy"].body
    assert replies["late"].code == "deadline_exceeded", replies["late"].body
    assert replies["late-score"].code == "deadline_exceeded", replies["late-score"].body
    assert replies["patient"].ok, replies["patient"].body
    after = busy_wire.call({"v": 1, "id": "m", "op": "metrics"}).body
    assert after["errors"]["deadline_exceeded"] - before["errors"]["deadline_exceeded"] == 2
    # Expired requests were not computed: only the heavy and the patient request's items were.
    assert after["batches"]["items"] - before["batches"]["items"] == 48 + 1
    assert after["batches"]["requests"] - before["batches"]["requests"] == 2


def test_health_shows_a_compute_thread_without_progress(busy: Server, busy_wire: Wire, schemas: Schemas,
                                                        dialogues: list[dict[str, Any]]) -> None:
    # The busy server reports a stall after STALL_MS without progress; one long request is enough.
    busy_wire.send([b"", json.dumps(heavy(dialogues, "long", count=96)).encode()])
    seen = []
    with Wire(busy.endpoint, schemas) as monitor:
        while busy_wire.silent_for(0.05):
            health = monitor.call({"v": 1, "id": "h", "op": "health"}).body
            seen.append((health["healthy"], health["compute"]["state"]))
        assert parse_reply(busy_wire.receive(), schemas, "rank").ok
        after = monitor.call({"v": 1, "id": "h", "op": "health"}).body
    assert (False, "stalled") in seen, seen
    assert after["healthy"] is True and after["compute"]["state"] in ("idle", "busy"), after


def test_a_client_that_stops_reading_stalls_no_one(server: Server, schemas: Schemas, wire: Wire) -> None:
    # 60,000 info replies (~25 MB) to a peer that never reads: past the high-water mark and the
    # kernel's buffers the server drops that peer's replies (counted) and keeps serving others.
    before = wire.call({"v": 1, "id": "m", "op": "metrics"}).body["replies_dropped"]
    hog = zmq.Context.instance().socket(zmq.DEALER)
    hog.setsockopt(zmq.LINGER, 0)
    hog.setsockopt(zmq.SNDHWM, 0)
    hog.connect(server.endpoint)
    try:
        for _ in range(60_000):
            hog.send_multipart([b"", b'{"v":1,"id":1,"op":"info"}'])
        deadline = time.monotonic() + 60
        while wire.call({"v": 1, "id": "m", "op": "metrics"}).body["replies_dropped"] == before:
            assert time.monotonic() < deadline, "no reply to the non-reading peer was dropped"
            time.sleep(0.1)
        started = time.monotonic()
        assert wire.call({"v": 1, "id": "r", "op": "rank", "prompt": PROMPT, "candidates": ["Blue."]}).ok
        assert time.monotonic() - started < 10
    finally:
        hog.close(linger=0)
