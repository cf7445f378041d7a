"""``AsyncClient`` against a real server: 64 concurrent awaits on one client, the same results as
the blocking client, errors, cancellation, and use from more than one event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness import Server, assert_close
from prm_client import AsyncClient, Client, PrmError, RankRequest, ScoreItem

CONCURRENT = 64
PROMPT = "Human: How do I keep basil alive on a windowsill?\n\nAssistant:"


def candidates_of(dialogues: list[dict[str, Any]]) -> list[str]:
    return [row["rejected"][:160] for row in dialogues[40:45]]


def test_sixty_four_concurrent_awaits(server: Server, client: Client, dialogues: list[dict[str, Any]],
                                      user_ids: list[str]) -> None:
    candidates = candidates_of(dialogues)
    users = [*user_ids[:7], None]
    expected = {user: client.rank(PROMPT, candidates, user_id=user).scores for user in users}
    batches_before = client.metrics()["batches"]

    async def run() -> tuple[list[list[float | None]], int]:
        async with AsyncClient(server.endpoint, timeout=60, retries=0) as shared:
            results = await asyncio.gather(*(shared.rank(PROMPT, candidates, user_id=users[n % len(users)])
                                             for n in range(CONCURRENT)))
            return [result.scores for result in results], shared.reconnects

    scores, reconnects = asyncio.run(run())
    assert len(scores) == CONCURRENT and reconnects == 0
    for number, got in enumerate(scores):
        assert_close(got, expected[users[number % len(users)]], 1e-6, f"await {number}")
    batches = client.metrics()["batches"]
    # The awaits were in flight together, so the server computed them in fewer batches than requests.
    assert batches["requests"] - batches_before["requests"] >= CONCURRENT
    assert batches["count"] - batches_before["count"] < CONCURRENT, (batches_before, batches)


def test_the_same_results_as_the_blocking_client(server: Server, client: Client, dialogues: list[dict[str, Any]]) -> None:
    candidates = candidates_of(dialogues)
    items = [ScoreItem(PROMPT, text, "worker-2") for text in candidates]

    async def run() -> tuple[Any, ...]:
        async with AsyncClient(server.endpoint, timeout=60) as asynchronous:
            return (await asynchronous.rank(PROMPT, candidates, user_id="worker-4", top_k=2),
                    await asynchronous.rank_many([RankRequest(PROMPT, candidates, "worker-5")] * 3),
                    await asynchronous.score(items, chunk_size=2),
                    await asynchronous.info(), await asynchronous.health(), await asynchronous.metrics())

    ranked, many, scored, info, health, metrics = asyncio.run(run())
    blocking = client.rank(PROMPT, candidates, user_id="worker-4", top_k=2)
    assert ranked.scores == blocking.scores and ranked.order == blocking.order == ranked.order[:2]
    for result in many:
        assert result.scores == client.rank(PROMPT, candidates, user_id="worker-5").scores
    assert_close(scored.scores, client.score(items).scores, 1e-6, "score")
    assert len(scored.timings) == 3  # five items in requests of two
    assert info["protocol"] == 1 and health["status"] == "serving" and "cache" in metrics


def test_errors_and_cancellation(server: Server, dialogues: list[dict[str, Any]]) -> None:
    candidates = candidates_of(dialogues)

    async def run() -> None:
        async with AsyncClient(server.endpoint, timeout=60) as asynchronous:
            with pytest.raises(PrmError) as caught:
                await asynchronous.rank(PROMPT, [])
            assert caught.value.code == "bad_request"
            # A call cancelled while its request is in flight drops its socket; the next calls
            # are not disturbed by the abandoned reply.
            pending = asyncio.ensure_future(asynchronous.rank(PROMPT, [f"{text} (cancelled)" for text in candidates]))
            await asyncio.sleep(0)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            answers = await asyncio.gather(*(asynchronous.rank(PROMPT, candidates, user_id="worker-1") for _ in range(4)))
            assert all(answer.scores == answers[0].scores for answer in answers)

    asyncio.run(run())


def test_one_client_across_event_loops(server: Server, dialogues: list[dict[str, Any]]) -> None:
    # TRL awaits its reward functions on a loop of its own; a client made elsewhere must still work.
    candidates = candidates_of(dialogues)
    asynchronous = AsyncClient(server.endpoint, timeout=60)
    first = asyncio.run(asynchronous.rank(PROMPT, candidates, user_id="worker-6"))
    second = asyncio.run(asynchronous.rank(PROMPT, candidates, user_id="worker-6"))
    asynchronous.close()
    assert first.scores == second.scores
