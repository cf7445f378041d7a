"""The server scores exactly what in-process ``prm score`` scores on the same checkpoint, and
``prm score --server`` prints what in-process ``prm score`` prints."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import PRM, Server, Wire, assert_close, prm_score

#: Server and in-process scores may come from differently packed batches.
TOLERANCE = 1e-5


def ranking_requests(dialogues: list[dict[str, Any]], user_ids: list[str]) -> list[dict[str, Any]]:
    """Known, unknown, missing and null users, with and without user_info, long prompts (cut to
    the window) and short ones, non-ASCII text."""
    long_a, long_b, long_c = dialogues[0], dialogues[1], dialogues[2]
    short_prompt = "Human: What is a good name for a cat?\n\nAssistant:"
    short_candidates = ["Whiskers.", "Many people like names such as Luna, Milo or Oliver; pick one that fits its character.",
                        "Tom", "I'd go with Mochi 🍡 or 小花 — both are popular."]
    return [
        {"user_id": user_ids[0], "prompt": long_a["prompt"], "candidates": [long_a["chosen"], long_a["rejected"], "OK."]},
        {"user_id": user_ids[5], "prompt": short_prompt, "candidates": short_candidates},
        {"user_id": "nobody-seen-this-one", "prompt": short_prompt, "candidates": short_candidates},
        {"prompt": long_b["prompt"], "candidates": [long_b["chosen"], long_b["rejected"]]},
        {"user_id": None, "prompt": short_prompt, "candidates": short_candidates[:2]},
        {"user_id": user_ids[5], "user_info": "prefers short, direct answers", "prompt": short_prompt, "candidates": short_candidates},
        {"user_id": "someone-new", "user_info": "likes long detailed explanations", "prompt": long_c["prompt"],
         "candidates": [long_c["chosen"], long_c["rejected"]]},
        {"user_id": user_ids[-1], "prompt": long_c["prompt"], "candidates": [long_c["rejected"]]},
    ]


@pytest.fixture(scope="module")
def cases(checkpoint: Path, work_dir: Path, dialogues: list[dict[str, Any]], user_ids: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    requests = ranking_requests(dialogues, user_ids)
    return list(zip(requests, prm_score(checkpoint, requests, work_dir)))


def test_cases_cover_every_kind_of_user_and_truncation(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    # The comparison below is only as good as its inputs: both outcomes of each fact must occur.
    assert {reference["known_user"] for _, reference in cases} == {True, False}
    assert any(reference["truncated"] for _, reference in cases)
    assert any(not reference["truncated"] for _, reference in cases)


def test_rank_equals_in_process_scores(wire: Wire, cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    for number, (request, reference) in enumerate(cases):
        reply = wire.call({"v": 1, "id": number, "op": "rank", **request})
        assert reply.ok, reply.body
        assert reply.body["id"] == number
        assert_close(reply.body["scores"], reference["scores"], TOLERANCE, f"request {number} scores")
        assert reply.body["known_user"] == reference["known_user"], f"request {number}"
        assert reply.body["truncated"] == reference["truncated"], f"request {number}"
        assert reply.body["order"] == reference["order"], f"request {number}"


def test_score_op_equals_in_process_scores(wire: Wire, cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    items, scores, known, truncated = [], [], [], []
    for request, reference in cases:
        for index, candidate in enumerate(request["candidates"]):
            item = {key: request[key] for key in ("user_id", "user_info") if key in request}
            if index in reference["truncated"]:
                truncated.append(len(items))
            items.append({**item, "prompt": request["prompt"], "response": candidate})
            scores.append(reference["scores"][index])
            known.append(reference["known_user"])
    reply = wire.call({"v": 1, "id": "all-items", "op": "score", "items": items})
    assert reply.ok, reply.body
    assert_close(reply.body["scores"], scores, TOLERANCE, "score items")
    assert reply.body["known_user"] == known
    assert reply.body["truncated"] == truncated


def test_order_and_top_k(wire: Wire, cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    request, _ = cases[1]  # four candidates
    full = wire.call({"v": 1, "id": "full", "op": "rank", **request}).body
    scores = full["scores"]
    assert full["order"] == sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    for top_k in (1, 2, 4, 50):
        reply = wire.call({"v": 1, "id": f"top-{top_k}", "op": "rank", **request, "top_k": top_k})
        assert reply.ok, reply.body
        assert reply.body["order"] == full["order"][:top_k]
        assert reply.body["scores"] == scores


def test_ties_keep_input_order(wire: Wire) -> None:
    reply = wire.call({"v": 1, "id": "ties", "op": "rank", "prompt": "Human: hi\n\nAssistant:",
                       "candidates": ["Hello.", "A longer greeting, friend.", "Hello.", "Hello."]})
    assert reply.ok, reply.body
    scores = reply.body["scores"]
    assert scores[0] == scores[2] == scores[3]
    hello = [index for index in reply.body["order"] if index in (0, 2, 3)]
    assert hello == [0, 2, 3]


def test_known_users_are_personalised(wire: Wire, user_ids: list[str]) -> None:
    # Different users must get different scores for the same text, else user resolution is a no-op.
    request = {"v": 1, "op": "rank", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello there, how can I help you today?"]}
    scores = {user: wire.call({**request, "id": user, "user_id": user}).body["scores"][0] for user in user_ids[:6]}
    generic = wire.call({**request, "id": "generic"}).body["scores"][0]
    assert len(set(scores.values()) | {generic}) == 7, scores


def test_prm_score_through_the_server_prints_what_in_process_prints(server: Server, checkpoint: Path, work_dir: Path,
                                                                    cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    path = work_dir / "score-through-server.jsonl"
    path.write_text("".join(json.dumps(request, ensure_ascii=False) + "\n" for request, _ in cases), encoding="utf-8")
    outputs = []
    for target in (["--model", str(checkpoint)], ["--server", server.endpoint]):
        run = subprocess.run([str(PRM), "score", *target, "--input", str(path)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        outputs.append([json.loads(line) for line in run.stdout.splitlines()])
    local, remote = outputs
    assert len(local) == len(remote) == len(cases)
    for number, (a, b) in enumerate(zip(local, remote)):
        assert list(a) == list(b), f"line {number}: keys {list(a)} vs {list(b)}"
        assert (a["known_user"], a["truncated"], a["user_id"]) == (b["known_user"], b["truncated"], b["user_id"]), f"line {number}"
        assert [(e["index"], e["text"]) for e in a["ranking"]] == [(e["index"], e["text"]) for e in b["ranking"]], f"line {number}"
        assert_close([e["score"] for e in b["ranking"]], [e["score"] for e in a["ranking"]], TOLERANCE, f"line {number}")
