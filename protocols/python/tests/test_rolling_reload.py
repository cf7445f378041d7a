"""Rolling reload and gathered ``users`` behind ``prm proxy``, on real processes (a proxy and two
workers): a ``reload`` sent to the proxy reloads the workers one at a time — each out of routing
while it reloads — so under a steady rank load nothing is lost, both workers end on the new
model, no worker's model ever goes back, and the pool never had both workers out; a worker that
refuses the checkpoint stops the roll and the reply names it; SIGHUP to the proxy rolls each
worker's own folder; ``users`` asks every worker and answers their flagged users merged."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import PRM, Pool, Schemas, Wire
from prm_client import Client, PrmError
from test_users import generic_row

CLIENTS = 4


@pytest.fixture
def two_checkpoints(checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The session's checkpoint (copied) and the same run with a user added by ``prm adapt``."""
    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    (old / "adapted_users.jsonl").unlink(missing_ok=True)
    data = tmp_path / "late.jsonl"
    data.write_text("".join(json.dumps({"user_id": "late", "prompt": d["prompt"], "chosen": d["chosen"], "rejected": d["rejected"]}) + "\n"
                            for d in dialogues[:4]), encoding="utf-8")
    new = tmp_path / "new"
    run = subprocess.run([str(PRM), "adapt", "--model", str(old), "--data", str(data), "--out", str(new)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return old, new


def start_pool(model: Path, tmp_path: Path, schemas: Schemas, models: list[Path] | None = None) -> Pool:
    """A proxy and two workers that joined in order (the roll's order): `models` gives each its folder."""
    pool = Pool(model, tmp_path, schemas, worker_args=["--user-log", str(tmp_path / "users.jsonl")])
    pool.proxy.start()
    for n, folder in enumerate(models or [model, model]):
        pool.model = folder
        pool.add_worker()
        pool.wait_for(lambda p, n=n: p["workers"] == n + 1, f"{n + 1} workers in the pool")
    return pool


def workers(pool: Pool) -> list[dict[str, Any]]:
    return pool.call("info")["workers"]


def test_a_rolling_reload_under_load_loses_nothing_and_never_takes_both_workers_out(
        two_checkpoints: tuple[Path, Path], tmp_path: Path, dialogues: list[dict[str, Any]], schemas: Schemas) -> None:
    old, new = two_checkpoints
    pool = start_pool(old, tmp_path, schemas)
    try:
        first = workers(pool)[0]["model_fingerprint"]
        stop = threading.Event()
        replies: list[list[str]] = [[] for _ in range(CLIENTS)]
        sent = [0] * CLIENTS
        failures: list[str] = []
        polls: list[list[dict[str, Any]]] = []
        ready: list[int] = []

        def ranker(number: int) -> None:
            try:
                with Client(pool.endpoint, timeout=60, retries=0) as client:
                    k = 0
                    while not stop.is_set():
                        d = dialogues[(number * 50 + k) % len(dialogues)]
                        sent[number] += 1
                        result = client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id="late")
                        assert result.model_fingerprint is not None
                        replies[number].append(result.model_fingerprint)
                        k += 1
            except Exception as error:  # noqa: BLE001 - the test fails on it below
                failures.append(f"client {number}: {error!r}")

        def poller() -> None:
            with Wire(pool.endpoint, schemas) as wire:
                while not stop.is_set():
                    polls.append(wire.call({"v": 1, "id": "i", "op": "info"}, timeout=10).body["workers"])
                    ready.append(wire.call({"v": 1, "id": "h", "op": "health"}, timeout=10).body["pool"]["ready"])
                    time.sleep(0.01)

        threads = [threading.Thread(target=ranker, args=(n,)) for n in range(CLIENTS)] + [threading.Thread(target=poller)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        with Client(pool.endpoint, timeout=120, retries=0) as client:
            rolled = client.reload(str(new))
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(120)
        assert not failures, failures
        assert sum(map(len, replies)) == sum(sent) and sum(sent) > 20, "a reply was lost"
        second = rolled["model_fingerprint"]
        assert second != first and rolled["previous_fingerprint"] == first and rolled["path"] == str(new)
        assert all(set(r) <= {first, second} for r in replies)
        assert any(second in r for r in replies), "no reply came from the new model"
        # One worker at a time: the turns' intervals out of routing do not overlap.
        turns = rolled["workers"]
        assert [t["model_fingerprint"] for t in turns] == [second, second]
        assert [t["previous_fingerprint"] for t in turns] == [first, first]
        assert turns[0]["back_at_ms"] <= turns[1]["out_at_ms"]
        metrics = pool.call("metrics")["pool"]["reload"]
        assert metrics == {"rolls": 1, "reloading": 0, "max_out": 1, "min_ready": 1}
        assert min(ready) >= 1, "both workers were out at once"
        # Per worker, as the proxy's pool saw each one's model: old, then new, never old again.
        for worker in {w["worker"] for poll in polls for w in poll}:
            seen = [w["model_fingerprint"] for poll in polls for w in poll if w["worker"] == worker]
            assert set(seen) <= {first, second}
            assert seen[-1] == second and (second not in seen or first not in seen[seen.index(second):]), seen
        assert all(sum(w["state"] == "reloading" for w in poll) <= 1 for poll in polls)
        assert [w["model_fingerprint"] for w in workers(pool)] == [second, second]
        assert pool.call("info")["model"]["fingerprint"] == second
    finally:
        assert not pool.close()


def test_a_worker_that_refuses_stops_the_roll_and_sighup_rolls_own_folders(
        two_checkpoints: tuple[Path, Path], tmp_path: Path, schemas: Schemas) -> None:
    old, new = two_checkpoints
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        shutil.copytree(old, folder)
    pool = start_pool(old, tmp_path, schemas, models=folders)
    try:
        (a, b) = workers(pool)
        first = a["model_fingerprint"]
        # The first worker's folder gets the retrained checkpoint; the second's is corrupt.
        for name in ("config.json", "model.safetensors", "users.json"):
            shutil.copy(new / name, folders[0] / name)
        with open(folders[1] / "model.safetensors", "r+b") as weights:
            weights.truncate(1000)
        with Client(pool.endpoint, timeout=120, retries=0) as client:
            with pytest.raises(PrmError) as caught:
                client.reload()
            assert caught.value.code == "reload_failed"
            message = caught.value.message
            assert f"worker {b['worker']} refused" in message and str(folders[1]) in message, message
            assert f"1 worker(s) reloaded before it ({a['worker']})" in message, message
            after = workers(pool)
            second = after[0]["model_fingerprint"]
            assert second != first and after[1]["model_fingerprint"] == first
            assert [w["state"] for w in after] == ["ready", "ready"]
            # Both keep serving.
            for _ in range(4):
                assert client.rank("Human: hi\n\nAssistant:", ["Hello.", "Hi!"], user_id="late").model_fingerprint in {first, second}
        # The second folder repaired; SIGHUP to the proxy rolls both workers' own folders.
        for name in ("config.json", "model.safetensors", "users.json"):
            shutil.copy(new / name, folders[1] / name)
        pool.proxy.signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and [w["model_fingerprint"] for w in workers(pool)] != [second, second]:
            time.sleep(0.1)
        assert [w["model_fingerprint"] for w in workers(pool)] == [second, second]
        assert pool.call("metrics")["pool"]["reload"]["rolls"] == 2
    finally:
        assert not pool.close()


def test_users_behind_the_proxy_merges_every_workers_flagged_users(checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]],
                                                                   user_ids: list[str], schemas: Schemas) -> None:
    """test_users' collapsed user, ranked through a proxy: each worker sees part of its requests;
    the proxy's ``users`` sums them."""
    model = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, model)
    row = [-x for x in generic_row(model)]
    (model / "adapted_users.jsonl").write_text(json.dumps({"user_id": "flat", "row": row, "comparisons": 1, "correct": 0,
                                                           "loss": 0.69, "writer": "test", "model": ""}) + "\n", encoding="utf-8")
    pool = Pool(model, tmp_path, schemas)
    pool.start(2)
    try:
        # Three users a round: least-loaded routing alternates workers, so flat's requests alternate too.
        trained = user_ids[:2]
        with Client(pool.endpoint, timeout=60, retries=0) as client:
            for k in range(24):
                d = dialogues[k]
                candidates = [d["chosen"], d["rejected"], "Sure.", "I can't help with that, but here is a long explanation of why not."]
                for user in [*trained, "flat"]:
                    assert client.rank(d["prompt"], candidates, user_id=user).known_user
        with Wire(pool.endpoint, schemas) as wire:
            report = wire.call({"v": 1, "id": "u", "op": "users", "user_id": "flat"}).body
        assert report["workers"] == {"asked": 2, "answered": 2, "missing": 0}
        flagged = {entry["user_id"]: entry for entry in report["flagged"]}
        assert set(flagged) == {"flat"}, report["flagged"]
        # Each worker ranked 12 of flat's 24 requests, at least the 8 a flag needs: both flag it, merged into one entry.
        assert flagged["flat"]["collapsed"] and flagged["flat"]["workers"] == 2 and flagged["flat"]["requests"] == 24
        assert report["user"]["requests"] == 24 and report["user"]["workers"] == 2
        assert report["population"]["requests"] == 24 * 3 and report["tracked"] == 2 * 3
        assert report["collapsed_total"] == 2
    finally:
        assert not pool.close()
