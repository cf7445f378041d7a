"""10,000 seeded, mutated requests through ``prm proxy`` to two workers: truncated, bit-flipped,
wrong types, deep nesting, huge numbers, NaN and infinities, duplicate keys, garbage, odd frame
layouts. Every one gets exactly one schema-valid reply with the envelope it was sent with, no
process crashes, no ``internal`` error, resident memory stays bounded, and a good request is
still answered with in-process ``prm score``'s scores afterwards."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import zmq

from harness import Pool, Schemas, Wire, assert_close, op_of, parse_reply

SEED = 20_261_130
REQUESTS = 10_000
SOCKETS = 8
#: RSS readings: after this many requests (the base), and at the end.
BASE_AFTER = 2_000
#: What the proxy or a worker may gain between the readings. Workers keep at most 256 hidden
#: states (--cache-entries), so mutated texts cannot fill a large cache. Measured: proxy +0.1 MiB,
#: workers +7 MiB (allocator pools for new batch shapes; flat over 80,000 further requests).
MAX_GROWTH = 24 << 20
REPLY_TIMEOUT = 30.0

PROMPT = "Human: Any tips for sleeping?\n\nAssistant:"
BASES: list[dict[str, Any]] = [
    {"v": 1, "id": "rank-1", "op": "rank", "user_id": "worker-3", "prompt": PROMPT,
     "candidates": ["Keep a regular schedule.", "Avoid screens."], "top_k": 1},
    {"v": 1, "id": 7, "op": "rank", "prompt": PROMPT, "candidates": ["Sleep.", "Read a book.", "Warm milk."],
     "user_info": "likes short answers", "deadline_ms": 5000},
    {"v": 1, "id": "score-1", "op": "score", "items": [
        {"user_id": "worker-3", "prompt": PROMPT, "response": "Keep a regular schedule."},
        {"user_id": None, "prompt": "Human: hi\n\nAssistant:", "response": "Hello!"}]},
    {"v": 1, "id": "h", "op": "health"},
    {"v": 1, "id": "i", "op": "info"},
    {"v": 1, "id": "m", "op": "metrics"},
]
HUGE = ["1e999", "-1e999", "1" + "0" * 400, "123456789012345678901234567890", "1e-400", "-0", "4294967297",
        "9007199254740993", "-9223372036854775809", "0.0000000000000000000000001"]
NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "nan", "inf"]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 2.5, "", "x", [], [1, 2], {}, {"a": 1}, [None], [[]]]
RAW = "\u0000raw\u0000"


class Mutator:
    """Seeded mutations of the base requests; each returns the frames to send."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def paths(self, value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every member and element position in ``value``."""
        found: list[tuple[Any, ...]] = []
        if isinstance(value, dict):
            for key, member in value.items():
                found += [(*prefix, key), *self.paths(member, (*prefix, key))]
        elif isinstance(value, list):
            for index, element in enumerate(value):
                found += [(*prefix, index), *self.paths(element, (*prefix, index))]
        return found

    def replaced(self, request: dict[str, Any], replacement: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(request))
        path = self.random.choice(self.paths(copy))
        holder = copy
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = replacement
        return copy

    def raw_value(self, request: dict[str, Any], token: str) -> bytes:
        """``request`` with one member or element spelled ``token`` verbatim (not valid JSON
        when ``token`` is NaN or Infinity)."""
        return json.dumps(self.replaced(request, RAW), ensure_ascii=False).replace(json.dumps(RAW), token, 1).encode()

    def nested(self) -> Any:
        depth = self.random.choice([2, 16, 63, 64, 65, 100, 300])
        value: Any = "deep"
        for level in range(depth):
            value = [value] if level % 2 else {"k": value}
        return value

    def duplicate_key(self, request: dict[str, Any]) -> bytes:
        text = json.dumps(request, ensure_ascii=False)
        key = self.random.choice(list(request))
        value = self.random.choice([json.dumps(request[key]), '"other"', "2", "null"])
        return (text[:-1] + f', {json.dumps(key)}: {value}' + "}").encode()

    def body(self) -> bytes:
        base = self.random.choice(BASES)
        text = json.dumps(base, ensure_ascii=False).encode()
        kind = self.random.randrange(10)
        if kind == 0:
            return text[:self.random.randrange(len(text))]
        if kind == 1:
            flipped = bytearray(text)
            for _ in range(self.random.randint(1, 3)):
                flipped[self.random.randrange(len(flipped))] ^= 1 << self.random.randrange(8)
            return bytes(flipped)
        if kind == 2:
            return json.dumps(self.replaced(base, self.random.choice(WRONG_TYPES))).encode()
        if kind == 3:
            return json.dumps(self.replaced(base, self.nested())).encode()
        if kind == 4:
            return self.raw_value(base, self.random.choice(HUGE))
        if kind == 5:
            return self.raw_value(base, self.random.choice(NOT_JSON_NUMBERS))
        if kind == 6:
            return self.duplicate_key(base)
        if kind == 7:
            return self.random.randbytes(self.random.randrange(200))
        if kind == 8:  # a whole request in the wrong place: a list, a string, a number
            return self.random.choice([b"[" + text + b"]", json.dumps(text.decode()).encode(), b"1", b"null", b""])
        return text  # unmutated (its frames may still be odd, below)

    def frames(self) -> list[bytes]:
        body = self.body()
        layout = self.random.randrange(12)
        if layout == 0:
            return [body]  # DEALER without the delimiter
        if layout == 1:
            return [b"", body, b"extra"]
        if layout == 2:
            return [b"hop", b"", body]
        if layout == 3:
            return [b"", b"", body]
        return [b"", body]


def envelope_of(frames: list[bytes]) -> list[bytes]:
    """Protocol: every frame up to and including the first empty one; none without an empty frame."""
    return frames[:frames.index(b"") + 1] if b"" in frames else []


def test_fuzz_through_the_proxy(start_pool: Callable[..., Pool], schemas: Schemas,
                                references: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    pool = start_pool(2, worker_args=["--cache-entries", "256"])
    mutator = Mutator(SEED)
    context: zmq.Context[Any] = zmq.Context.instance()
    sockets: list[zmq.Socket[bytes]] = []
    poller = zmq.Poller()
    for _ in range(SOCKETS):
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(pool.endpoint)
        poller.register(socket, zmq.POLLIN)
        sockets.append(socket)
    processes = [pool.proxy, *pool.workers]
    outstanding: dict[zmq.Socket[bytes], tuple[list[bytes], float]] = {}
    codes: Counter[str] = Counter()
    sent = answered = 0
    base_rss: list[int] = []
    try:
        while answered < REQUESTS:
            for socket in sockets:
                if socket not in outstanding and sent < REQUESTS:
                    frames = mutator.frames()
                    socket.send_multipart(frames)
                    outstanding[socket] = (frames, time.monotonic())
                    sent += 1
            ready = dict(poller.poll(1000))
            now = time.monotonic()
            for socket, (frames, since) in outstanding.items():
                assert socket in ready or now - since < REPLY_TIMEOUT, \
                    f"no reply in {REPLY_TIMEOUT} s to {frames!r}\n--- proxy:\n{pool.proxy.log()}"
            for socket in ready:
                request, _ = outstanding.pop(socket)
                reply = socket.recv_multipart()
                assert reply[:-1] == envelope_of(request), f"reply envelope {reply[:-1]} for request frames {request!r}"
                body = request[-1] if len(request) - len(envelope_of(request)) == 1 else b""
                parsed = parse_reply(reply, schemas, op_of(body))
                codes[parsed.code or "ok"] += 1
                answered += 1
                if answered == BASE_AFTER:
                    base_rss = [process.rss_bytes() for process in processes]
        # Exactly one reply each: nothing more arrives.
        assert not poller.poll(500), "a request was answered twice"
    finally:
        for socket in sockets:
            socket.close(linger=0)
    grown = [process.rss_bytes() - base for process, base in zip(processes, base_rss)]
    assert all(process.running for process in processes), "a process died"
    assert max(grown) <= MAX_GROWTH, f"RSS grew by {[f'{g / 2**20:.1f}' for g in grown]} MiB (proxy, workers)"
    assert codes["internal"] == 0, codes
    # The mutations reached every layer: parser, validator, version and op checks, the workers.
    for code in ("ok", "bad_json", "bad_utf8", "bad_request", "unsupported_version", "unknown_op"):
        assert codes[code] > 0, f"no {code} reply among {codes}"
    state = pool.call("metrics")
    assert state["pool"]["workers"] == 2 and state["pool"]["lost"] == 0, state["pool"]
    # The workers still compute correctly.
    good, reference = references[0]
    with Wire(pool.endpoint, schemas) as wire:
        after = wire.call({"v": 1, "id": "after", "op": "rank", **good})
    assert after.ok, after.body
    assert_close(after.body["scores"], reference["scores"], 1e-5, "scores after the fuzz")
