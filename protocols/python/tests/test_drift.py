"""Drift against training-time statistics on real processes: ``prm train`` records, per user, the
count, mean score, standard deviation of the means and spread of its scores on that user's
training comparisons (config.json ``prm.training.score_statistics``); a server ranking exactly
those comparisons serves the same statistics, so they are defined alike; a user whose served
mean moved beyond 3 standard deviations of its training-time one is flagged ``drifted`` against
the ``training`` baseline; a checkpoint without them (older ones) keeps working, its baselines
``running``, as the ``users`` reply says."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from harness import DATA, PRM, REPO, Schemas, Server, Wire
from prm_client import Client

USERS = 3
PER_USER = 12  # above UserHealth.minTrainingComparisons (8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """A checkpoint trained on PER_USER comparisons of each of USERS users, and those comparisons."""
    work = tmp_path_factory.mktemp("drift")
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if len(by_user) < USERS or row["user_id"] in by_user:
            if len(by_user[row["user_id"]]) < PER_USER:
                by_user[row["user_id"]].append(row)
    assert len(by_user) == USERS and all(len(v) == PER_USER for v in by_user.values())
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for rows_ in by_user.values() for row in rows_), encoding="utf-8")
    out = work / "checkpoint"
    run = subprocess.run([str(PRM), "train", "--data", str(data), "--epochs", "1", "--max-length", "64",
                          "--aggregator", "linear-head", "--val-fraction", "0", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return out, dict(by_user)


def recorded(checkpoint: Path) -> dict[str, dict[str, Any]]:
    return json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))["prm"]["training"]["score_statistics"]["users"]


def rank_training_comparisons(endpoint: str, comparisons: dict[str, list[dict[str, Any]]]) -> None:
    """Each user's training comparisons ranked for that user, as [chosen, rejected]."""
    with Client(endpoint, timeout=60, retries=0) as client:
        for user, rows in comparisons.items():
            for row in rows:
                assert client.rank(row["prompt"], [row["chosen"], row["rejected"]], user_id=user).known_user


def users_report(endpoint: str, schemas: Schemas, user: str) -> dict[str, Any]:
    with Wire(endpoint, schemas) as wire:
        reply = wire.call({"v": 1, "id": "u", "op": "users", "user_id": user})
    assert reply.ok, reply.body
    return reply.body


def test_prm_train_records_what_the_server_serves_for_the_same_comparisons(trained: tuple[Path, dict[str, list[dict[str, Any]]]],
                                                                          tmp_path: Path, schemas: Schemas) -> None:
    checkpoint, comparisons = trained
    statistics = recorded(checkpoint)
    assert set(statistics) == set(comparisons)
    server = Server(checkpoint, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    rank_training_comparisons(server.endpoint, comparisons)
    for user in comparisons:
        report = users_report(server.endpoint, schemas, user)
        assert report["drift_reference"]["source"] == "training"
        assert report["drift_reference"]["training_baselines"] == USERS
        served, trained_stats = report["user"], statistics[user]
        assert trained_stats["comparisons"] == PER_USER and served["requests"] == PER_USER
        # Fewer requests than the averaging window: the served averages are plain means, as the recorded ones.
        assert served["mean_score"] == pytest.approx(trained_stats["mean_score"], abs=1e-4)
        assert served["spread"] == pytest.approx(trained_stats["spread"], abs=1e-4)
        assert served["baseline"] == "training" and served["training"] == trained_stats
        assert not served["drifted"] and not served["collapsed"]
        assert user not in {entry["user_id"] for entry in report["flagged"]}
    assert server.stop() == 0


def test_a_user_whose_scores_moved_from_training_is_flagged_drifted(trained: tuple[Path, dict[str, list[dict[str, Any]]]],
                                                                    tmp_path: Path, schemas: Schemas) -> None:
    """The model now scores one user 10 training-time deviations (or spreads) below where training
    left it: simulated by moving that user's recorded mean up, which is the same comparison."""
    checkpoint, comparisons = trained
    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    config = json.loads((moved / "config.json").read_text(encoding="utf-8"))
    users = config["prm"]["training"]["score_statistics"]["users"]
    victim, others = sorted(comparisons)[0], sorted(comparisons)[1:]
    shift = 10 * max(users[victim]["score_std"], users[victim]["spread"])
    users[victim]["mean_score"] += shift
    (moved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    server = Server(moved, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    rank_training_comparisons(server.endpoint, comparisons)
    report = users_report(server.endpoint, schemas, victim)
    flagged = {entry["user_id"]: entry for entry in report["flagged"]}
    assert victim in flagged and flagged[victim]["drifted"] and not flagged[victim]["collapsed"]
    assert flagged[victim]["baseline"] == "training"
    assert flagged[victim]["baseline_mean"] == pytest.approx(users[victim]["mean_score"], abs=1e-6)
    assert not any(user in flagged for user in others)
    assert server.stop() == 0


def test_a_checkpoint_without_training_statistics_keeps_running_baselines(trained: tuple[Path, dict[str, list[dict[str, Any]]]],
                                                                          tmp_path: Path, schemas: Schemas) -> None:
    checkpoint, comparisons = trained
    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    del config["prm"]["training"]["score_statistics"]
    (old / "config.json").write_text(json.dumps(config), encoding="utf-8")
    server = Server(old, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    rank_training_comparisons(server.endpoint, comparisons)
    user = sorted(comparisons)[0]
    report = users_report(server.endpoint, schemas, user)
    assert report["drift_reference"] == {"source": "running", "training_users": 0, "training_baselines": 0, "min_training_comparisons": 8}
    assert report["user"]["baseline"] == "running" and "training" not in report["user"]
    assert report["user"]["requests"] == PER_USER and report["flagged"] == []
    assert server.stop() == 0
