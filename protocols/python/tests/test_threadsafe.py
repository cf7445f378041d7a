"""One ``Client`` shared by many threads, and used again in a forked child: every call gets its
own socket from the client's pool, so nothing fails and every result is the one asked for."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from harness import Server, assert_close
from prm_client import Client, ScoreItem

THREADS = 8
CALLS_PER_THREAD = 50
PROMPT = "Human: What should I read on a long flight?\n\nAssistant:"


def candidates_of(dialogues: list[dict[str, Any]]) -> list[str]:
    return [row["chosen"][:160] for row in dialogues[30:36]]


def differ(got: list[float | None], want: list[float | None]) -> bool:
    return len(got) != len(want) or any(a is None or b is None or abs(a - b) > 1e-6 for a, b in zip(got, want))


def test_eight_threads_share_one_client(server: Server, dialogues: list[dict[str, Any]], user_ids: list[str]) -> None:
    candidates = candidates_of(dialogues)
    users = [*user_ids[:6], "stranger-1", None]
    with Client(server.endpoint, timeout=60, retries=0) as reference:
        expected = {user: reference.rank(PROMPT, candidates, user_id=user).scores for user in users}

    shared = Client(server.endpoint, timeout=60, retries=0)
    barrier = threading.Barrier(THREADS)
    failures: list[str] = []
    mismatches: list[str] = []

    def run(thread: int) -> None:
        barrier.wait(timeout=60)
        for call in range(CALLS_PER_THREAD):
            user = users[(thread + call) % len(users)]
            try:
                # Half the calls rank, half score: both kinds of request share the pool.
                if call % 2:
                    scores = shared.rank(PROMPT, candidates, user_id=user).scores
                else:
                    scores = shared.score([ScoreItem(PROMPT, text, user) for text in candidates]).scores
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(f"thread {thread} call {call}: {error!r}")
                continue
            if differ(scores, expected[user]):
                mismatches.append(f"thread {thread} call {call} user {user}: {scores} vs {expected[user]}")

    threads = [threading.Thread(target=run, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    shared.close()
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert failures == [], f"{len(failures)} of {THREADS * CALLS_PER_THREAD} calls failed: {failures[:5]}"
    assert mismatches == [], mismatches[:5]
    assert shared.reconnects == 0


def _rank_in_child(client: Client, candidates: list[str], results: Any) -> None:
    results.put(client.rank(PROMPT, candidates, user_id="worker-3").scores)


def test_a_forked_child_uses_its_parents_client(server: Server, dialogues: list[dict[str, Any]]) -> None:
    # verl's process pools and TRL's child processes may inherit a client that already has open
    # sockets: the child must open its own (ZeroMQ sockets must not cross a fork).
    candidates = candidates_of(dialogues)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        before = client.rank(PROMPT, candidates, user_id="worker-3").scores  # the pool now holds a socket
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_rank_in_child, args=(client, candidates, results))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0, f"the child exited with {child.exitcode}"
        assert_close(results.get(timeout=10), before, 1e-6, "child")
        assert_close(client.rank(PROMPT, candidates, user_id="worker-3").scores, before, 1e-6, "parent after the fork")
