"""The ``adapt`` op on real processes: a new user answers a few comparisons, the server fits the
user (``prm adapt``'s math, on the h its scorer computes) between batches, and later requests for
that user are personalized. Fits go to the user log beside the checkpoint: a restarted server
replays it, a torn last line is reported and skipped, ``prm adapt --merge`` folds it into a
checkpoint, and the workers behind one proxy share it.

Every server here runs on its own copy of the session's checkpoint (or its own ``--user-log``), so
no log leaks into the other tests' servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import TRAIN_ARGS
from harness import PRM, REPO, Pool, Schemas, Server, Wire, free_port, prm_score
from prm_client import Client, Comparison, PrmError

#: The server's h and ``prm adapt``'s come from differently packed batches.
TOLERANCE = 1e-5
LOG = "adapted_users.jsonl"


def comparisons_of(dialogues: list[dict[str, Any]], start: int, count: int) -> list[Comparison]:
    return [Comparison(row["prompt"], row["chosen"], row["rejected"]) for row in dialogues[start:start + count]]


def rank_request(dialogues: list[dict[str, Any]], user: str, row: int) -> dict[str, Any]:
    d = dialogues[row]
    return {"user_id": user, "prompt": d["prompt"], "candidates": [d["chosen"], d["rejected"], "Sure."]}


@pytest.fixture
def own_checkpoint(checkpoint: Path, tmp_path: Path) -> Path:
    """A copy of the session's checkpoint, with no user log."""
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    (copy / LOG).unlink(missing_ok=True)
    return copy


def assert_offline_adapt_scores_the_same(model: Path, answered: list[Comparison], probes: list[dict[str, Any]],
                                         live: list[Any], tmp_path: Path) -> None:
    """`prm adapt` on the answered comparisons, then in-process `prm score`: the live scores of
    "newcomer" within TOLERANCE."""
    data = tmp_path / "newcomer.jsonl"
    data.write_text("".join(json.dumps({"user_id": "newcomer", "prompt": c.prompt, "chosen": c.chosen, "rejected": c.rejected}) + "\n"
                            for c in answered), encoding="utf-8")
    offline = tmp_path / "offline"
    run = subprocess.run([str(PRM), "adapt", "--model", str(model), "--data", str(data), "--out", str(offline)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for got, want in zip(live, prm_score(offline, probes, tmp_path)):
        assert want["known_user"] is True
        assert max(abs(a - b) for a, b in zip(got.scores, want["scores"])) <= TOLERANCE


def serve(model: Path, tmp_path: Path, *args: str) -> Server:
    return Server(model, tmp_path, args).start()


def test_adapt_then_rank_equals_offline_prm_adapt_restart_and_merge(own_checkpoint: Path, tmp_path: Path,
                                                                   dialogues: list[dict[str, Any]], schemas: Schemas) -> None:
    answered = comparisons_of(dialogues, 0, 5)
    probes = [rank_request(dialogues, "newcomer", row) for row in range(100, 106)]
    server = serve(own_checkpoint, tmp_path)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        before = [client.rank(p["prompt"], p["candidates"], user_id="newcomer") for p in probes]
        fitted = client.adapt("newcomer", answered)
        live = [client.rank(p["prompt"], p["candidates"], user_id="newcomer") for p in probes]
        assert client.info()["adapt"]["adaptable"] is True
    with Wire(server.endpoint, schemas) as wire:  # the reply on the wire matches adapt.reply.schema.json
        reply = wire.call({"v": 1, "id": "w", "op": "adapt", "user_id": "newcomer",
                              "comparisons": [{"prompt": c.prompt, "chosen": c.chosen, "rejected": c.rejected} for c in answered]})
        assert reply.ok and reply.body["known_user"] is True
    assert server.stop() == 0
    assert fitted.user_id == "newcomer" and fitted.comparisons == 5 and 0 <= fitted.correct <= 5
    assert fitted.mean_loss > 0 and fitted.adapted_users == 1
    assert not any(r.known_user for r in before) and all(r.known_user for r in live)
    assert any(abs(a - b) > 1e-3 for r0, r1 in zip(before, live) for a, b in zip(r0.scores, r1.scores)), "the fit changed nothing"

    # The same comparisons through the offline path: prm adapt, then in-process prm score.
    assert_offline_adapt_scores_the_same(own_checkpoint, answered, probes, live, tmp_path)

    # A restarted server replays the log and knows the user, with the same scores.
    lines = (own_checkpoint / LOG).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["user_id"] == "newcomer" for line in lines)
    restarted = serve(own_checkpoint, tmp_path)
    with Client(restarted.endpoint, timeout=60, retries=0) as client:
        again = [client.rank(p["prompt"], p["candidates"], user_id="newcomer") for p in probes]
    assert restarted.stop() == 0
    assert "replayed 2 fits" in restarted.full_log()
    for got, want in zip(again, live):
        assert got.known_user and got.scores == want.scores

    # prm adapt --merge folds the log into a checkpoint that scores the same in-process.
    merged = tmp_path / "merged"
    run = subprocess.run([str(PRM), "adapt", "--model", str(own_checkpoint), "--merge", "--out", str(merged)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "newcomer" in json.loads((merged / "users.json").read_text(encoding="utf-8"))
    assert not (merged / LOG).exists()
    for got, want in zip(live, prm_score(merged, probes, tmp_path)):
        assert max(abs(a - b) for a, b in zip(got.scores, want["scores"])) <= TOLERANCE


def test_torn_and_malformed_log_lines_are_reported_and_skipped(own_checkpoint: Path, tmp_path: Path,
                                                               dialogues: list[dict[str, Any]]) -> None:
    server = serve(own_checkpoint, tmp_path)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        client.adapt("first", comparisons_of(dialogues, 0, 3))
    assert server.stop() == 0
    log = own_checkpoint / LOG
    good = log.read_text(encoding="utf-8")
    # A line that is not a record, then what a crash mid-append leaves: half a line, no newline.
    log.write_text(good + "{\"user_id\": \"broken\"}\n" + good[: len(good) // 2], encoding="utf-8")
    restarted = serve(own_checkpoint, tmp_path)
    with Client(restarted.endpoint, timeout=60, retries=0) as client:
        d = dialogues[50]
        assert client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id="first").known_user
        assert not client.rank(d["prompt"], [d["chosen"]], user_id="broken").known_user
        client.adapt("second", comparisons_of(dialogues, 3, 3))
    assert restarted.stop() == 0
    text = restarted.full_log()
    assert "torn last line" in text and "no 'row' list" in text
    # The torn line was closed before the next append: the new fit is a line of its own.
    third = serve(own_checkpoint, tmp_path)
    with Client(third.endpoint, timeout=60, retries=0) as client:
        d = dialogues[51]
        assert client.rank(d["prompt"], [d["chosen"]], user_id="second").known_user
        assert client.rank(d["prompt"], [d["chosen"]], user_id="first").known_user
    assert third.stop() == 0


def test_ranking_clients_concurrent_with_an_adapt_stream_lose_nothing(own_checkpoint: Path, tmp_path: Path,
                                                                      dialogues: list[dict[str, Any]]) -> None:
    """8 clients rank while another adapts 50 users: nothing is lost, and no rank waits longer than
    two batches (the one being computed when it arrived, and one more: an adapt takes its place in a
    batch like scoring, so it can delay a rank by one batch, never stall it)."""
    server = serve(own_checkpoint, tmp_path)
    users = [f"stream-{n}" for n in range(50)]
    adapt_timings: list[Any] = []
    results: dict[int, list[Any]] = {}
    failures: list[str] = []

    def ranker(number: int) -> None:
        got = []
        try:
            with Client(server.endpoint, timeout=60, retries=0) as client:
                for k in range(40):
                    d = dialogues[(number * 40 + k) % len(dialogues)]
                    got.append(client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id=users[k % len(users)]))
        except Exception as error:  # noqa: BLE001 - reported below, the test fails on it
            failures.append(f"ranker {number}: {error!r}")
        results[number] = got

    def adapter() -> None:
        try:
            with Client(server.endpoint, timeout=60, retries=0) as client:
                for n, user in enumerate(users):
                    adapted = client.adapt(user, comparisons_of(dialogues, 2 * n, 2))
                    assert adapted.adapted_users == n + 1
                    adapt_timings.append(adapted.timing)
        except Exception as error:  # noqa: BLE001
            failures.append(f"adapter: {error!r}")

    threads = [threading.Thread(target=ranker, args=(n,)) for n in range(8)] + [threading.Thread(target=adapter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, failures
    assert sum(len(r) for r in results.values()) == 8 * 40
    ranks = [result.timing for got in results.values() for result in got]
    longest_batch = max(t.compute_ms for t in ranks + adapt_timings)
    slowest = max(ranks, key=lambda t: t.queue_ms)
    # 50 ms for the I/O thread's hand-over and the scheduler on a 2-core machine.
    assert slowest.queue_ms <= 2 * longest_batch + 50, (slowest, longest_batch)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        d = dialogues[0]
        assert all(client.rank(d["prompt"], [d["chosen"]], user_id=user).known_user for user in users)
        metrics = client.metrics()
    assert metrics["requests"]["adapt"] == 50
    assert server.stop() == 0


def test_adapt_limits_and_refusals(own_checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]], user_ids: list[str]) -> None:
    server = serve(own_checkpoint, tmp_path, "--max-adapt-comparisons", "3", "--adapts-per-minute", "2")
    with Client(server.endpoint, timeout=60, retries=0) as client:
        assert client.info()["limits"]["max_adapt_comparisons"] == 3

        def refused(user: str, count: int) -> str:
            with pytest.raises(PrmError) as caught:
                client.adapt(user, comparisons_of(dialogues, 0, count))
            return caught.value.code

        assert refused("a", 4) == "too_many_candidates"          # refused at the door: not counted
        assert refused(user_ids[0], 2) == "not_adaptable"        # a trained user (counts towards the minute)
        client.adapt("a", comparisons_of(dialogues, 0, 2))
        assert refused("b", 2) == "rate_limited"                 # the third in a minute of two
    assert server.stop() == 0


def test_adapt_limit_of_users(own_checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]]) -> None:
    server = serve(own_checkpoint, tmp_path, "--max-adapted-users", "1")
    with Client(server.endpoint, timeout=60, retries=0) as client:
        client.adapt("a", comparisons_of(dialogues, 0, 2))
        client.adapt("a", comparisons_of(dialogues, 2, 2))      # refitting a held user is always possible
        with pytest.raises(PrmError) as caught:
            client.adapt("b", comparisons_of(dialogues, 0, 2))
        assert caught.value.code == "too_many_users"
        with pytest.raises(PrmError) as caught:
            client.adapt("", comparisons_of(dialogues, 0, 2))
        assert caught.value.code == "bad_request" and "user_id" in caught.value.message
    assert server.stop() == 0


def test_two_workers_behind_the_proxy_both_know_an_adapted_user(start_pool: Callable[..., Pool], tmp_path: Path,
                                                                 dialogues: list[dict[str, Any]]) -> None:
    """The workers share one user log: the worker that did not fit the user knows it from its
    next batch on. The fitting worker is then killed, so the other one must answer."""
    log = tmp_path / "shared-users.jsonl"
    pool = start_pool(2, worker_args=["--user-log", str(log)])
    d = dialogues[10]
    with Client(pool.endpoint, timeout=60, retries=0) as client:
        client.adapt("roaming", comparisons_of(dialogues, 0, 4))
        seen = client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id="roaming")
    writer = json.loads(log.read_text(encoding="utf-8").splitlines()[0])["writer"]
    fitters = [w for w in pool.workers if f"written as {writer}" in w.full_log()]
    assert len(fitters) == 1, "exactly one worker wrote the fit"
    fitters[0].signal(signal.SIGKILL)
    assert fitters[0].wait(5) == -signal.SIGKILL
    pool.wait_for(lambda state: state["workers"] == 1, "the fitting worker dropped", timeout=30)
    with Client(pool.endpoint, timeout=60, retries=2) as client:
        other = client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id="roaming")
    assert seen.known_user and other.known_user
    assert max(abs(a - b) for a, b in zip(seen.scores, other.scores)) <= TOLERANCE


def test_the_new_user_example_runs(own_checkpoint: Path, tmp_path: Path) -> None:
    server = serve(own_checkpoint, tmp_path)
    package = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(package / "examples" / "new_user.py"), "--endpoint", server.endpoint, "--user", "example"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "before: known_user=False" in run.stdout and "after: known_user=True" in run.stdout, run.stdout
    assert "adapted example on 3 answers" in run.stdout, run.stdout
    assert server.stop() == 0


def test_adapt_over_http(own_checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]], schemas: Schemas) -> None:
    port = free_port()
    server = serve(own_checkpoint, tmp_path, "--http", f"127.0.0.1:{port}")

    def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode("utf-8"), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    comparisons = [{"prompt": c.prompt, "chosen": c.chosen, "rejected": c.rejected} for c in comparisons_of(dialogues, 0, 3)]
    status, reply = post("/v1/adapt", {"v": 1, "id": 1, "user_id": "web", "comparisons": comparisons})
    assert status == 200 and reply["known_user"] is True, reply
    schemas.check_reply(reply, "adapt")
    d = dialogues[20]
    status, ranked = post("/v1/rank", {"v": 1, "id": 2, "user_id": "web", "prompt": d["prompt"], "candidates": [d["chosen"], d["rejected"]]})
    assert status == 200 and ranked["known_user"] is True
    status, refused = post("/v1/adapt", {"v": 1, "id": 3, "user_id": "web", "comparisons": []})
    assert status == 400 and refused["error"]["code"] == "bad_request"
    assert server.stop() == 0


def test_a_cluster_models_newcomer_is_fitted_live_as_offline(tmp_path: Path, dialogues: list[dict[str, Any]]) -> None:
    """A cluster model's newcomer is a mixture of its centres: the op fits the K mixture logits,
    as `prm adapt` does, and the scores match the offline path."""
    model = tmp_path / "cluster"
    run = subprocess.run([str(PRM), "train", *TRAIN_ARGS, "--user-model", "cluster", "--clusters", "3", "--out", str(model)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    answered = comparisons_of(dialogues, 0, 5)
    probes = [rank_request(dialogues, "newcomer", row) for row in range(100, 104)]
    server = serve(model, tmp_path)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        assert client.info()["adapt"]["adaptable"] is True
        fitted = client.adapt("newcomer", answered)
        live = [client.rank(p["prompt"], p["candidates"], user_id="newcomer") for p in probes]
    assert server.stop() == 0
    assert fitted.comparisons == 5 and all(r.known_user for r in live)
    row = json.loads((model / LOG).read_text(encoding="utf-8").splitlines()[-1])["row"]
    assert len(row) == 3, "a cluster user's own row is its 3 mixture logits"
    assert_offline_adapt_scores_the_same(model, answered, probes, live, tmp_path)
