"""``suggest`` and ``rank``'s ``uncertainty`` on real processes: the pairs a newcomer should be
asked about, each score's standard deviation under the prior and, after ``adapt``, under the
Laplace approximation of the fit; the limits and refusals, after which the server still serves;
and the worked example (suggest → the user answers → adapt → rank) run against a server.

Every server here runs on its own copy of the session's checkpoint, so its user log leaks into no
other test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import Schemas, Server, Wire
from prm_client import Client, Comparison

LOG = "adapted_users.jsonl"


@pytest.fixture
def server(checkpoint: Path, tmp_path: Path) -> Server:
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    (copy / LOG).unlink(missing_ok=True)
    return Server(copy, tmp_path).start()


def candidates_of(dialogues: list[dict[str, Any]], rows: range) -> tuple[str, list[str]]:
    """One prompt and replies of different lengths, from several dialogues' replies."""
    replies = [dialogues[row][side] for row in rows for side in ("chosen", "rejected")]
    return dialogues[rows.start]["prompt"], replies


def suggest_body(prompt: str, candidates: list[str], k: Any, request_id: str = "s", **extra: Any) -> dict[str, Any]:
    return {"v": 1, "id": request_id, "op": "suggest", "prompt": prompt, "candidates": candidates, "k": k, **extra}


def test_suggest_then_adapt_shrinks_the_uncertainty(server: Server, dialogues: list[dict[str, Any]], schemas: Schemas) -> None:
    prompt, candidates = candidates_of(dialogues, range(40, 44))
    with Wire(server.endpoint, schemas) as wire:
        schemas.check_request(suggest_body(prompt, candidates, 3))
        anonymous = wire.call(suggest_body(prompt, candidates, 3))
        assert anonymous.ok, anonymous.body
        reply = wire.call(suggest_body(prompt, candidates, 3, user_id="newcomer"))
        assert reply.ok, reply.body
        assert reply.body["uncertainty"] == "prior" and reply.body["known_user"] is False
        assert reply.body["pairs"] == anonymous.body["pairs"], "an unknown id is the newcomer the prior describes"
        pairs = reply.body["pairs"]
        assert len(pairs) == 3
        assert len({(p["first"], p["second"]) for p in pairs}) == 3, "a pair is asked once"
        assert all(0 <= p["first"] < len(candidates) and 0 <= p["second"] < len(candidates) and p["first"] != p["second"] for p in pairs)
        assert all(0 < p["p_first"] < 1 for p in pairs)
        reductions = [p["variance_reduction"] for p in pairs]
        assert all(r > 0 for r in reductions) and reductions == sorted(reductions, reverse=True), reductions
        assert sum(reductions) < reply.body["total_variance"]

        rank = {"v": 1, "id": "r", "op": "rank", "user_id": "newcomer", "prompt": prompt, "candidates": candidates, "uncertainty": True}
        schemas.check_request(rank)
        prior = wire.call(rank)
        assert prior.ok and prior.body["uncertainty"] == "prior", prior.body
        assert len(prior.body["std"]) == len(candidates) and all(s > 0 for s in prior.body["std"])
        plain = wire.call({**rank, "uncertainty": False})
        assert "std" not in plain.body and "uncertainty" not in plain.body
        assert plain.body["scores"] == prior.body["scores"]

        # The user answers the suggested pairs (the shorter reply wins) and is fitted on them.
        answers = []
        for p in pairs:
            first, second = candidates[p["first"]], candidates[p["second"]]
            chosen, rejected = (first, second) if len(first) <= len(second) else (second, first)
            answers.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        assert wire.call({"v": 1, "id": "a", "op": "adapt", "user_id": "newcomer", "comparisons": answers}).ok

        posterior = wire.call(rank)
        assert posterior.ok and posterior.body["uncertainty"] == "posterior" and posterior.body["known_user"] is True, posterior.body
        shrunk = [after / before for after, before in zip(posterior.body["std"], prior.body["std"])]
        assert all(ratio <= 1 + 1e-9 for ratio in shrunk), shrunk
        assert min(shrunk) < 0.95, f"three answers on these replies narrowed no score: {shrunk}"
        again = wire.call(suggest_body(prompt, candidates, 3, user_id="newcomer"))
        assert again.ok and again.body["uncertainty"] == "posterior" and again.body["known_user"] is True
        assert again.body["total_variance"] < reply.body["total_variance"]
    assert server.stop() == 0


def test_suggest_limits_and_refusals_leave_the_server_serving(server: Server, dialogues: list[dict[str, Any]], schemas: Schemas,
                                                                user_ids: list[str]) -> None:
    prompt, candidates = candidates_of(dialogues, range(0, 3))
    many = [f"reply number {i}" for i in range(33)]
    cases: list[tuple[dict[str, Any], str, str]] = [
        (suggest_body(prompt, candidates, 0), "bad_request", "'k' must be a positive integer"),
        (suggest_body(prompt, candidates, "2"), "bad_request", "'k' must be a positive integer"),
        (suggest_body(prompt, candidates, 17), "too_many_candidates", "the limit is 16"),
        (suggest_body(prompt, candidates[:3], 4), "bad_request", "3 candidates make only 3"),
        (suggest_body(prompt, candidates[:1], 1), "bad_request", "needs at least 2"),
        (suggest_body(prompt, many, 1), "too_many_candidates", "the limit is 32"),
        ({k: v for k, v in suggest_body(prompt, candidates, 1).items() if k != "k"}, "bad_request", "missing field 'k'"),
        (suggest_body(prompt, candidates, 1, user_id=user_ids[1]), "not_adaptable", "a trained user"),
        ({"v": 1, "id": "r", "op": "rank", "prompt": prompt, "candidates": candidates, "uncertainty": "yes"}, "bad_request",
         "'uncertainty' must be true or false"),
    ]
    with Wire(server.endpoint, schemas) as wire:
        info = wire.call({"v": 1, "id": "i", "op": "info"}).body
        assert info["limits"]["max_suggest_candidates"] == 32 and info["limits"]["max_suggest_pairs"] == 16
        for body, code, words in cases:
            reply = wire.call(body)
            assert reply.code == code and words in reply.message, (body, reply.body)
        trained = wire.call({"v": 1, "id": "t", "op": "rank", "user_id": user_ids[1], "prompt": prompt, "candidates": candidates,
                             "uncertainty": True})
        assert trained.ok and trained.body["uncertainty"] == "unavailable" and "std" not in trained.body
        assert "a trained user" in trained.body["uncertainty_reason"]
        assert wire.call(suggest_body(prompt, candidates, 2)).ok, "the server still serves"
    assert server.stop() == 0


def test_client_suggest_and_uncertainty(server: Server, dialogues: list[dict[str, Any]]) -> None:
    prompt, candidates = candidates_of(dialogues, range(60, 63))
    with Client(server.endpoint, timeout=60, retries=0) as client:
        suggested = client.suggest(prompt, candidates, k=2)
        assert suggested.uncertainty == "prior" and len(suggested.pairs) == 2
        first = suggested.pairs[0]
        ranked = client.rank(prompt, candidates, user_id="client-user", uncertainty=True)
        assert ranked.uncertainty == "prior" and ranked.std is not None and len(ranked.std) == len(candidates)
        chosen, rejected = candidates[first.first], candidates[first.second]
        client.adapt("client-user", [Comparison(prompt, chosen, rejected)])
        after = client.rank(prompt, candidates, user_id="client-user", uncertainty=True)
        assert after.uncertainty == "posterior" and after.std is not None
        assert after.scores[first.first] is not None and after.scores[first.second] is not None
        assert client.suggest(prompt, candidates, k=1, user_id="client-user").uncertainty == "posterior"
        assert client.users()["flagged"] == []
    assert server.stop() == 0


def test_the_onboarding_example_runs(server: Server) -> None:
    package = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(package / "examples" / "onboard_user.py"), "--endpoint", server.endpoint, "--user", "onboarded"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "before: known_user=False, uncertainty=prior" in run.stdout, run.stdout
    assert "suggested 3 questions under the prior" in run.stdout, run.stdout
    assert "adapted onboarded on 3 answers" in run.stdout, run.stdout
    assert "after: known_user=True, uncertainty=posterior" in run.stdout, run.stdout
    assert server.stop() == 0
