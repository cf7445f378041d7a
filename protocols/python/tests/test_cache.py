"""The h cache (linear head: h(prompt, reply) is shared by every user) changes no score, and the
metrics show it working."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness import Schemas, Server, Wire, assert_close


@pytest.fixture(scope="module")
def uncached(start_server: Callable[..., Server]) -> Iterator[Server]:
    server = start_server("--cache-entries", "0")
    yield server
    assert server.stop() == 0, server.log()


def test_cached_scores_equal_uncached_scores(server: Server, uncached: Server, schemas: Schemas,
                                             dialogues: list[dict[str, Any]], user_ids: list[str]) -> None:
    tag = uuid.uuid4().hex  # texts no earlier test has put in the cache
    prompt = dialogues[30]["prompt"]
    candidates = [f"{row['chosen']} ({tag})" for row in dialogues[30:38]]
    users = [*user_ids[:12], "unseen-a", "unseen-b"]
    with Wire(server.endpoint, schemas) as cached_wire, Wire(uncached.endpoint, schemas) as plain_wire:
        info = plain_wire.call({"v": 1, "id": 0, "op": "info"}).body
        assert info["server"]["cache_entries"] == 0
        assert cached_wire.call({"v": 1, "id": 0, "op": "info"}).body["server"]["cache_entries"] > len(candidates)
        cached_before = cached_wire.call({"v": 1, "id": 0, "op": "metrics"}).body["cache"]
        plain_before = plain_wire.call({"v": 1, "id": 0, "op": "metrics"}).body["cache"]
        for user in users:
            request = {"v": 1, "id": user, "op": "rank", "user_id": user, "prompt": prompt, "candidates": candidates}
            with_cache = cached_wire.call(request).body
            without = plain_wire.call(request).body
            assert_close(with_cache["scores"], without["scores"], 1e-6, f"user {user}")
            assert with_cache["order"] == without["order"] or _near_tie(without["scores"])
        # Score op too: the same texts, every user at once.
        items = [{"user_id": user, "prompt": prompt, "response": text} for user in users for text in candidates]
        score = {"v": 1, "id": "all", "op": "score", "items": items}
        assert_close(cached_wire.call(score).body["scores"], plain_wire.call(score).body["scores"], 1e-6, "score items")
        cached_after = cached_wire.call({"v": 1, "id": 0, "op": "metrics"}).body["cache"]
        plain_after = plain_wire.call({"v": 1, "id": 0, "op": "metrics"}).body["cache"]

    texts = len(candidates)
    hits = cached_after["hits"] - cached_before["hits"]
    misses = cached_after["misses"] - cached_before["misses"]
    assert misses == texts, f"each new text is computed once: {misses} misses for {texts} texts"
    # Every later user's ranking is all hits (the score op adds more, counted per text or per item).
    assert hits >= (len(users) - 1) * texts, f"{hits} hits"
    total = cached_after["hits"] + cached_after["misses"]
    assert cached_after["hit_rate"] == pytest.approx(cached_after["hits"] / total, abs=1e-3)
    assert plain_after["capacity"] == 0 and plain_after["entries"] == 0
    assert plain_after["hits"] == plain_before["hits"] == 0


def test_one_reply_under_other_prompts_or_user_texts_is_not_a_hit(server: Server, uncached: Server, schemas: Schemas,
                                                                   dialogues: list[dict[str, Any]], user_ids: list[str]) -> None:
    """h depends on the whole input: one candidate answering two prompts, or read with two user
    texts, has two h. Each request holds one such variant, so a cache keyed by the reply alone
    would answer the later ones with the first one's h."""
    # A short reply: the test server's window (64 tokens) keeps the prompt's end beside it.
    reply = f"Yes, gladly ({uuid.uuid4().hex[:8]})."
    base = {"v": 1, "op": "rank", "user_id": user_ids[0], "candidates": [reply]}
    variants = [{"prompt": dialogues[k]["prompt"]} for k in (40, 41, 42)]
    variants += [{"prompt": dialogues[40]["prompt"], "user_info": text} for text in ("I am a nurse.", "I write short stories.")]
    with Wire(server.endpoint, schemas) as cached_wire, Wire(uncached.endpoint, schemas) as plain_wire:
        expected = [plain_wire.call({**base, **variant, "id": k}).body["scores"][0] for k, variant in enumerate(variants)]
        assert len(set(expected)) == len(variants), f"the variants must score differently for the test to mean anything: {expected}"
        for round_ in range(2):
            for k, variant in enumerate(variants):
                got = cached_wire.call({**base, **variant, "id": k}).body["scores"][0]
                assert_close([got], [expected[k]], 1e-6, f"round {round_}, variant {k} ({variant})")


def _near_tie(scores: list[float]) -> bool:
    ordered = sorted(scores)
    return any(b - a <= 2e-6 for a, b in zip(ordered, ordered[1:]))
