"""The Python client against real servers: results, errors, pipelining, Lazy Pirate retries, and
the reward adapters."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from harness import Schemas, Server, Wire, assert_close, free_port
from prm_client import (
    BestOfN,
    Client,
    ErrorCode,
    PrmError,
    PrmTimeoutError,
    RankRequest,
    ScoreItem,
    protocol,
)

PACKAGE = Path(__file__).resolve().parents[1]
PROMPT = "Human: What should I cook tonight?\n\nAssistant:"
CANDIDATES = ["Pasta.", "A stir-fry with whatever vegetables you have, some rice, and a quick soy-ginger sauce.",
              "How about soup?", "Tacos are quick and everyone can pick their own fillings."]


def test_rank_returns_what_the_server_sends(client: Client, wire: Wire) -> None:
    for user, extra in [("worker-3", {}), ("nobody", {"user_info": "likes short answers"}), (None, {"top_k": 2})]:
        result = client.rank(PROMPT, CANDIDATES, user_id=user, **extra)
        body: dict[str, Any] = {"v": 1, "id": "raw", "op": "rank", "prompt": PROMPT, "candidates": CANDIDATES, **extra}
        if user is not None:
            body["user_id"] = user
        raw = wire.call(body).body
        assert result.scores == raw["scores"]
        assert result.order == raw["order"] and result.best == raw["order"][0]
        assert result.known_user == raw["known_user"] == (user == "worker-3")
        assert result.truncated == raw["truncated"]
        assert result.timing.queue_ms >= 0 and result.timing.compute_ms >= 0
    assert len(client.rank(PROMPT, CANDIDATES, top_k=2).order) == 2


def test_rank_many_pipelines_and_keeps_request_order(client: Client, user_ids: list[str]) -> None:
    requests = [RankRequest(PROMPT, CANDIDATES[k % 4:] + CANDIDATES[:k % 4], user_id=user_ids[k]) for k in range(12)]
    results = client.rank_many(requests)
    assert len(results) == len(requests)
    for request, result in zip(requests, results):
        single = client.rank(request.prompt, request.candidates, user_id=request.user_id)
        assert_close(result.scores, single.scores, 1e-6, f"user {request.user_id}")


def test_score_items_and_mappings(client: Client) -> None:
    items: list[Any] = [ScoreItem(PROMPT, text, user_id="worker-3") for text in CANDIDATES]
    items.append({"prompt": PROMPT, "response": CANDIDATES[0], "user_id": "stranger", "user_info": "terse"})
    result = client.score(items)
    ranked = client.rank(PROMPT, CANDIDATES, user_id="worker-3")
    assert_close(result.scores[:4], ranked.scores, 1e-6, "score vs rank")
    assert result.known_user == [True] * 4 + [False]
    assert len(result.timings) == 1
    assert client.score([]).scores == []
    with pytest.raises(ValueError, match="prompt"):
        client.score([{"response": "no prompt"}])


def test_long_item_lists_are_split_at_the_server_limit(limited_server: Server, client: Client, dialogues: list[dict[str, Any]]) -> None:
    # 20 items over a server that takes 8 per request: three pipelined requests, stitched together.
    # Two long prompts (cut to the window) land in different requests, so their indices must be
    # shifted by each request's start; the rest are short, keeping requests under the token limit.
    items = [ScoreItem(f"Human: question {n}?\n\nAssistant:", f"Answer {n}.", user_id=f"worker-{n % 5 + 1}") for n in range(20)]
    for index, row in zip((3, 13), dialogues[50:52]):
        items[index] = ScoreItem(row["prompt"], row["chosen"], user_id="worker-2")
    whole = client.score(items)  # the default server takes them in one request
    with Client(limited_server.endpoint, timeout=60, retries=1) as small:
        split = small.score(items)
    assert len(whole.timings) == 1 and len(split.timings) == 3
    assert_close(split.scores, whole.scores, 1e-5, "split vs whole")
    assert split.known_user == whole.known_user
    assert split.truncated == whole.truncated == [3, 13]
    assert len(client.score(items, chunk_size=6).timings) == 4


def test_error_replies_raise_prm_error(client: Client, limited_server: Server) -> None:
    with pytest.raises(PrmError) as caught:
        client.rank(PROMPT, [])
    assert caught.value.code == ErrorCode.BAD_REQUEST == "bad_request"
    assert "candidates" in caught.value.message
    assert isinstance(caught.value.request_id, str) and not caught.value.transient
    with Client(limited_server.endpoint, timeout=60) as small, pytest.raises(PrmError) as caught:
        small.rank(PROMPT, [f"reply {n}" for n in range(9)])
    assert caught.value.code == "too_many_candidates"
    assert PrmError("overloaded", "busy").transient and PrmError("shutting_down", "bye").transient


def test_client_side_mistakes_are_caught_before_sending(client: Client) -> None:
    with pytest.raises(TypeError, match="candidates"):
        client.rank(PROMPT, "a single string")
    with pytest.raises(ValueError):
        client.rank(PROMPT, CANDIDATES, deadline_ms=math.nan)
    with pytest.raises(ValueError, match="Unicode"):
        client.rank(PROMPT, ["lone surrogate \ud800"])


def test_a_failed_pipelined_call_does_not_leak_into_the_next(client: Client, wire: Wire) -> None:
    good = RankRequest(PROMPT, [f"{text} {uuid.uuid4().hex}" for text in CANDIDATES], user_id="worker-3")
    with pytest.raises(PrmError):
        client.rank_many([good, RankRequest(PROMPT, []), good, good])
    result = client.rank(PROMPT, CANDIDATES, user_id="worker-7")
    raw = wire.call({"v": 1, "id": 1, "op": "rank", "prompt": PROMPT, "candidates": CANDIDATES, "user_id": "worker-7"}).body
    assert result.scores == raw["scores"]


def test_info_health_metrics(client: Client, checkpoint: Path) -> None:
    info = client.info()
    assert info["protocol"] == 1 and info["model"]["max_length"] == 64
    assert not {"v", "id", "ok"} & set(info)
    health = client.health()
    assert health["status"] == "serving" and health["healthy"] is True
    metrics = client.metrics()
    assert 0 <= metrics["cache"]["hit_rate"] <= 1


def test_timeout_after_the_last_retry_when_nothing_listens() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Client(endpoint, timeout=0.2, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(PrmTimeoutError) as caught:
            client.health()
        elapsed = time.monotonic() - started
        assert client.reconnects == 2
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.attempts == 3 and caught.value.outstanding == 1
    assert 0.6 <= elapsed < 10, elapsed


def test_oversized_bodies_are_refused_at_the_default_limit_when_info_fails() -> None:
    # A peer whose info is an error (an older or other implementation): the client assumes the
    # protocol's default max_message_bytes and sends nothing over it.
    peer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    peer.setsockopt(zmq.LINGER, 0)
    port = free_port()
    peer.bind(f"tcp://127.0.0.1:{port}")
    ops: list[str] = []

    def answer_once() -> None:
        if peer.poll(10_000, zmq.POLLIN):
            *route, body = peer.recv_multipart()
            request = json.loads(body)
            ops.append(request["op"])
            error = {"v": 1, "id": request["id"], "ok": False, "error": {"code": "unknown_op", "message": "no info here"}}
            peer.send_multipart([*route, json.dumps(error).encode()])

    answering = threading.Thread(target=answer_once)
    answering.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=10, retries=0) as client, pytest.raises(PrmError) as caught:
            client.rank(PROMPT, ["x" * protocol.DEFAULT_MAX_MESSAGE_BYTES])
        answering.join(timeout=10)
        assert caught.value.code == "too_large"
        assert f"max_message_bytes of {protocol.DEFAULT_MAX_MESSAGE_BYTES}" in caught.value.message, caught.value.message
        assert ops == ["info"] and not peer.poll(200, zmq.POLLIN), "the oversized request was not sent"
    finally:
        peer.close(linger=0)


def test_lazy_pirate_recovers_after_a_restart(start_server: Callable[..., Server]) -> None:
    first = start_server()
    with Client(first.endpoint, timeout=1.0, retries=60) as client:
        before = client.rank(PROMPT, CANDIDATES, user_id="worker-3")
        assert first.stop() == 0
        problems: list[BaseException] = []

        def restart() -> None:
            time.sleep(2.5)  # the client's first attempts go unanswered
            try:
                start_server(port=first.port)
            except BaseException as error:  # noqa: BLE001 - re-raised below
                problems.append(error)

        thread = threading.Thread(target=restart)
        thread.start()
        after = client.rank(PROMPT, CANDIDATES, user_id="worker-3")
        thread.join()
        assert not problems, problems
        assert client.reconnects >= 2
    assert_close(after.scores, before.scores, 1e-5, "after restart")


def test_a_slow_reply_is_waited_for_while_the_server_answers_pings(client: Client, server: Server,
                                                                    dialogues: list[dict[str, Any]]) -> None:
    # A reply slower than the timeout: the server answers the client's liveness pings (health, from
    # its I/O thread) meanwhile, so the client waits for it instead of taking the server for dead.
    heavy = [f"{row['chosen']} {row['rejected']} {uuid.uuid4().hex}" for row in dialogues[80:128]]
    pings_before = client.metrics()["requests"]["health"]
    with Client(server.endpoint, timeout=0.1, retries=0) as impatient:
        started = time.monotonic()
        result = impatient.rank(PROMPT, heavy, user_id="worker-3")
        elapsed = time.monotonic() - started
        assert impatient.reconnects == 0
    assert elapsed > 0.1, f"the reply took {elapsed:.3f} s: not slower than the timeout, so nothing was tested"
    assert client.metrics()["requests"]["health"] > pings_before, "no liveness ping reached the server"
    assert_close(result.scores, client.rank(PROMPT, heavy, user_id="worker-3").scores, 1e-6, "slow reply")


def test_reward_fn(client: Client) -> None:
    reward = client.reward_fn("worker-3", PROMPT)
    scores = reward(CANDIDATES)
    assert_close(scores, client.rank(PROMPT, CANDIDATES, user_id="worker-3").scores, 1e-6, "reward_fn")
    assert all(isinstance(score, float) for score in scores)
    assert reward([]) == []
    with_info = client.reward_fn("stranger", PROMPT, user_info="wants detail")(CANDIDATES)
    assert_close(with_info, client.rank(PROMPT, CANDIDATES, user_id="stranger", user_info="wants detail").scores, 1e-6, "info")


def test_best_of_n(client: Client) -> None:
    calls: list[tuple[str, int]] = []

    def generate(prompt: str, n: int) -> list[str]:
        calls.append((prompt, n))
        return CANDIDATES[:n]

    best_of_n = BestOfN(generate, client, n=3)
    result = best_of_n(PROMPT, user_id="worker-3")
    assert calls == [(PROMPT, 3)]
    ranked = client.rank(PROMPT, CANDIDATES[:3], user_id="worker-3")
    assert result.candidates == CANDIDATES[:3]
    assert_close(result.scores, ranked.scores, 1e-6, "best of n")
    best = max(range(3), key=lambda i: (result.scores[i], -i))
    assert result.best_index == best and result.best == CANDIDATES[best]
    assert result.order == ranked.order and result.known_user
    with pytest.raises(ValueError, match="no replies"):
        BestOfN(lambda prompt, n: [], client, n=2)(PROMPT)


def test_requests_match_the_schemas(schemas: Schemas) -> None:
    schemas.check_request(protocol.rank_request("a", PROMPT, CANDIDATES))
    schemas.check_request(protocol.rank_request(7, PROMPT, CANDIDATES, "u", "info", 2, 100.5))
    schemas.check_request(protocol.score_request("b", [protocol.score_item(PROMPT, "x"),
                                                      protocol.score_item(PROMPT, "y", "u", "i")], 5))
    for op in ("info", "health", "metrics"):
        schemas.check_request(protocol.status_request(1.5, op))
    # The client's error codes are the protocol's, no more and no fewer.
    assert {code.value for code in ErrorCode} == set(schemas.documents["common.schema.json"]["$defs"]["errorCode"]["enum"])


def test_the_client_closes_and_reconnects(server: Server) -> None:
    client = Client(server.endpoint, timeout=30)
    with client:
        assert client.health()["status"] == "serving"
    assert client.health()["status"] == "serving"  # used again: a new socket
    client.close()


@pytest.mark.parametrize("script, expect", [
    ("best_of_n.py", ["worker-1", "someone-new", "best"]),
    ("trl_reward.py", ["standard", "conversational"]),
])
def test_examples_run(server: Server, script: str, expect: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(PACKAGE / "examples" / script), "--endpoint", server.endpoint],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    for word in expect:
        assert word in run.stdout, run.stdout
