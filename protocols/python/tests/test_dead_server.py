"""A dead or absent server is reported within about 10 s by every entry point, with their default
settings: a clear :class:`PrmTimeoutError` naming the endpoint and the timeout. Two ways to be
dead: nothing listens on the port, and a server that is SIGSTOPped (its socket is open, the kernel
accepts the connection, nothing ever answers)."""

from __future__ import annotations

import asyncio
import pickle
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness import Pool, Server, assert_close, free_port
from prm_client import DEFAULT_RETRIES, DEFAULT_TIMEOUT, AsyncClient, Client, PrmError, PrmTimeoutError
from prm_client import trl, verl

PROMPT = "Human: Is anyone there?\n\nAssistant:"
#: The defaults' promise: silent for DEFAULT_TIMEOUT per attempt, DEFAULT_RETRIES + 1 attempts.
REPORTED_AFTER = DEFAULT_TIMEOUT * (DEFAULT_RETRIES + 1)


def entry_points(endpoint: str) -> dict[str, Callable[[], Any]]:
    """One call through each way into the server, all with their default timeouts (trl.reward and
    verl.compute_score find the endpoint in PRM_ENDPOINT)."""
    columns = {"prompts": [PROMPT], "completions": ["Yes."], "user_id": ["worker-1"]}
    return {
        "Client.rank": lambda: Client(endpoint).rank(PROMPT, ["Yes."]),
        "AsyncClient.score": lambda: asyncio.run(AsyncClient(endpoint).score([{"prompt": PROMPT, "response": "Yes."}])),
        "trl.PrmReward": lambda: trl.PrmReward(endpoint)(**columns),
        "trl.AsyncPrmReward": lambda: asyncio.run(trl.AsyncPrmReward(endpoint)(**columns)),
        "trl.reward": lambda: trl.reward(**columns),
        "verl.compute_score": lambda: verl.compute_score("hh", "Yes.", None, {"prompt": PROMPT}),
    }


def check_all_report(endpoint: str) -> None:
    """Runs every entry point at once (each in its own thread) and checks each raised a clear
    PrmTimeoutError in REPORTED_AFTER seconds, give or take scheduling."""
    outcomes: dict[str, tuple[BaseException | None, float]] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - examined below
            outcomes[name] = (error, time.monotonic() - started)
        else:
            outcomes[name] = (None, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=item) for item in entry_points(endpoint).items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == len(threads), f"entry points still waiting after 60 s: {set(entry_points(endpoint)) - set(outcomes)}"
    for name, (error, elapsed) in outcomes.items():
        assert isinstance(error, PrmTimeoutError), f"{name}: {error!r} after {elapsed:.1f} s"
        assert REPORTED_AFTER - 0.5 <= elapsed <= REPORTED_AFTER + 3, f"{name}: reported after {elapsed:.1f} s"
        message = str(error)
        assert endpoint in message and f"{DEFAULT_TIMEOUT:g} s each" in message and f"{REPORTED_AFTER:g} s in all" in message, \
            f"{name}: {message}"


def test_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PRM_ENDPOINT", endpoint)
    monkeypatch.delenv("PRM_TIMEOUT", raising=False)
    check_all_report(endpoint)


def test_a_stopped_server(start_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server()
    with Client(server.endpoint) as client:
        assert client.health()["status"] == "serving"
    monkeypatch.setenv("PRM_ENDPOINT", server.endpoint)
    monkeypatch.delenv("PRM_TIMEOUT", raising=False)
    server.signal(signal.SIGSTOP)
    try:
        check_all_report(server.endpoint)
    finally:
        server.signal(signal.SIGCONT)
    assert server.stop() == 0, server.log()


def test_a_server_restarted_under_a_call(start_server: Callable[..., Server], dialogues: list[dict[str, Any]]) -> None:
    # The request dies with the old process, but the new one answers the liveness pings: its
    # uptime shows it started after the request was sent, so the request is sent again, long
    # before the (here 60 s) timeout would have made the client resend it.
    first = start_server()
    candidates = [row["chosen"][:200] for row in dialogues[60:64]]
    with Client(first.endpoint, timeout=60, retries=0) as client:
        before = client.rank(PROMPT, candidates, user_id="worker-4").scores
        first.signal(signal.SIGSTOP)  # the next request reaches the process but is never read
        outcome: list[Any] = []
        call = threading.Thread(target=lambda: outcome.append(client.rank(PROMPT, candidates, user_id="worker-4")))
        started = time.monotonic()
        call.start()
        time.sleep(0.5)
        first.kill()
        start_server(port=first.port)
        call.join(timeout=60)
        elapsed = time.monotonic() - started
        assert outcome, f"no result after {elapsed:.1f} s"
        assert elapsed < 30, f"answered after {elapsed:.1f} s: the lost request waited for the timeout"
        assert client.reconnects == 0
    assert_close(outcome[0].scores, before, 1e-5, "after the restart")


def test_a_proxy_without_workers_is_not_alive(start_pool: Callable[..., Pool]) -> None:
    # The proxy answers the pings, but healthy: false (no worker): no progress is possible, so
    # those answers are no sign of life and the call ends after its timeout, saying why.
    pool = start_pool(0)
    with Client(pool.endpoint, timeout=1.0, retries=1) as client, pytest.raises(PrmTimeoutError) as caught:
        client.rank(PROMPT, ["Yes."])
    assert "healthy: false" in str(caught.value) and pool.endpoint in str(caught.value), str(caught.value)


def test_the_errors_survive_pickling() -> None:
    # Raised in a worker process (a process pool, TRL's child), they must reach the parent intact.
    error = pickle.loads(pickle.dumps(PrmTimeoutError("tcp://10.0.0.5:5555", 2, 5.0, 3, "it reports healthy: false")))
    assert (error.endpoint, error.attempts, error.timeout, error.outstanding) == ("tcp://10.0.0.5:5555", 2, 5.0, 3)
    assert "healthy: false" in str(error) and "10 s in all" in str(error)
    refused = pickle.loads(pickle.dumps(PrmError("overloaded", "1024 requests queued", "a-7")))
    assert (refused.code, refused.message, refused.request_id, refused.transient) == ("overloaded", "1024 requests queued", "a-7", True)
