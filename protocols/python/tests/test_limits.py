"""A server started with small limits reports them in ``info`` and enforces each with its code;
the clients refuse to send a body over the limit it reports."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import PRM, SMALL_LIMITS, Schemas, Server, Wire
from prm_client import Client, PrmError

MAX_CANDIDATES = SMALL_LIMITS["max_candidates"]
MAX_MESSAGE_BYTES = SMALL_LIMITS["max_message_bytes"]
MAX_REQUEST_TOKENS = SMALL_LIMITS["max_request_tokens"]


@pytest.fixture
def limited_wire(limited_server: Server, schemas: Schemas) -> Iterator[Wire]:
    with Wire(limited_server.endpoint, schemas) as wire:
        yield wire


def rank(candidates: list[str], prompt: str = "Human: hi\n\nAssistant:", **extra: Any) -> dict[str, Any]:
    return {"v": 1, "id": "lim", "op": "rank", "prompt": prompt, "candidates": candidates, **extra}


def test_info_reports_the_limits(limited_wire: Wire) -> None:
    limits = limited_wire.call({"v": 1, "id": 1, "op": "info"}).body["limits"]
    assert limits["max_candidates"] == MAX_CANDIDATES
    assert limits["max_message_bytes"] == MAX_MESSAGE_BYTES
    assert limits["max_request_tokens"] == MAX_REQUEST_TOKENS


def test_candidate_limit(limited_wire: Wire) -> None:
    assert limited_wire.call(rank([f"reply {n}" for n in range(MAX_CANDIDATES)])).ok
    reply = limited_wire.call(rank([f"reply {n}" for n in range(MAX_CANDIDATES + 1)]))
    assert reply.code == "too_many_candidates" and reply.body["id"] == "lim", reply.body
    assert str(MAX_CANDIDATES) in reply.message


def test_message_size_limit(limited_wire: Wire) -> None:
    fits = rank(["a reply"], prompt="x " * 1000)
    assert limited_wire.call(fits).ok
    reply = limited_wire.call(rank(["a reply"], prompt="x " * (MAX_MESSAGE_BYTES // 2 + 10)))
    assert reply.code == "too_large", reply.body
    assert reply.body["id"] in (None, "lim")
    assert limited_wire.call(fits).ok


def test_token_limit_counts_tokens_after_the_window(limited_wire: Wire, dialogues: list[dict[str, Any]]) -> None:
    # Eight long replies: each is cut to the 64-token window, so the request holds at most
    # 8 * 64 = 512 tokens, over the 300 allowed. Three of them (at most 192) are fine, however
    # long the prompt, because the window trims it.
    rows = sorted(dialogues, key=lambda row: len(row["chosen"]) + len(row["rejected"]), reverse=True)
    long_replies = [(row["chosen"] + " " + row["rejected"])[:600] for row in rows[:MAX_CANDIDATES]]  # under the byte limit
    assert all(len(text.split()) > 64 for text in long_replies)
    reply = limited_wire.call(rank(long_replies))
    assert reply.code == "too_many_tokens" and reply.body["id"] == "lim", reply.body
    assert limited_wire.call(rank(long_replies[:3], prompt=dialogues[0]["prompt"] * 3)).ok
    items = [{"prompt": "Human: hi\n\nAssistant:", "response": text} for text in long_replies]
    reply = limited_wire.call({"v": 1, "id": "lim", "op": "score", "items": items})
    assert reply.code == "too_many_tokens", reply.body


#: Seconds a refused oversized request may take: an info round trip, not a reply timeout.
REFUSED_WITHIN = 5.0


def test_the_python_client_refuses_a_body_over_the_limit_at_once(limited_server: Server) -> None:
    # Found by hand: a 50 MB message is over four times the limit, so ZeroMQ dropped the
    # connection and the client saw nothing but its own timeout.
    huge = "x" * 50_000_000
    with Client(limited_server.endpoint, timeout=REFUSED_WITHIN * 2, retries=0) as client:
        started = time.monotonic()
        with pytest.raises(PrmError) as caught:
            client.rank("Human: hi\n\nAssistant:", [huge])
        assert time.monotonic() - started < REFUSED_WITHIN
        assert caught.value.code == "too_large"
        assert "50000" in caught.value.message and f"max_message_bytes of {MAX_MESSAGE_BYTES}" in caught.value.message, caught.value.message
        with pytest.raises(PrmError, match="too_large"):
            client.score([{"prompt": "Human: hi\n\nAssistant:", "response": "x" * (MAX_MESSAGE_BYTES + 1)}])
        assert client.rank("Human: hi\n\nAssistant:", ["a reply"]).scores, "the next request is sent and served"


def test_prm_score_refuses_a_candidate_over_the_limit_at_once(limited_server: Server, work_dir: Path) -> None:
    # The same through the Swift client. A command-line argument is capped at 128 KiB, so the
    # huge candidate comes in a JSONL file.
    requests = work_dir / f"huge-{time.monotonic_ns()}.jsonl"
    requests.write_text(json.dumps({"user_id": "worker-3", "prompt": "Human: hi\n\nAssistant:", "candidates": ["x" * 5_000_000]}) + "\n",
                        encoding="utf-8")
    started = time.monotonic()
    run = subprocess.run([str(PRM), "score", "--server", limited_server.endpoint, "--timeout", str(REFUSED_WITHIN * 2), "--retries", "0",
                          "--input", str(requests)], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < REFUSED_WITHIN, run.stderr
    assert run.returncode != 0 and run.stdout == "", run
    assert "5000" in run.stderr and f"max_message_bytes of {MAX_MESSAGE_BYTES}" in run.stderr, run.stderr
