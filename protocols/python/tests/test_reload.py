"""Hot reload on real processes: ``reload`` (with a path, or the model's own folder) and SIGHUP
load a checkpoint beside the model served and switch between batches. Under load nothing is lost
and every reply names the model that scored it, old or new, never old again after new; a corrupt
checkpoint is refused (``reload_failed``) and the old model keeps serving."""

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

from harness import PRM, Schemas, Server, Wire
from prm_client import Client, PrmError

CLIENTS = 8
REQUESTS = 125  # per client: 1,000 in all


@pytest.fixture
def two_checkpoints(checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The session's checkpoint (copied) and another one: the same run with a user added by
    ``prm adapt`` (other users, so another fingerprint and other scores for that user)."""
    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    (old / "adapted_users.jsonl").unlink(missing_ok=True)
    data = tmp_path / "late.jsonl"
    data.write_text("".join(f'{{"user_id": "late", "prompt": {json_text(d["prompt"])}, "chosen": {json_text(d["chosen"])}, '
                            f'"rejected": {json_text(d["rejected"])}}}\n' for d in dialogues[:4]), encoding="utf-8")
    new = tmp_path / "new"
    run = subprocess.run([str(PRM), "adapt", "--model", str(old), "--data", str(data), "--out", str(new)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return old, new


def json_text(text: str) -> str:
    return json.dumps(text)


def test_reload_under_load_loses_nothing_and_fingerprints_never_go_back(two_checkpoints: tuple[Path, Path], tmp_path: Path,
                                                                        dialogues: list[dict[str, Any]], schemas: Schemas) -> None:
    old, new = two_checkpoints
    server = Server(old, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    with Client(server.endpoint, timeout=60, retries=0) as client:
        info = client.info()
        first = info["model"]["fingerprint"]  # type: ignore[typeddict-item]
    seen: dict[int, list[str]] = {}
    failures: list[str] = []
    started = threading.Barrier(CLIENTS + 1)

    def ranker(number: int) -> None:
        fingerprints = []
        try:
            with Client(server.endpoint, timeout=60, retries=0) as client:
                started.wait()
                for k in range(REQUESTS):
                    d = dialogues[(number * REQUESTS + k) % len(dialogues)]
                    result = client.rank(d["prompt"], [d["chosen"], d["rejected"]], user_id="late")
                    assert result.model_fingerprint is not None
                    fingerprints.append(result.model_fingerprint)
        except Exception as error:  # noqa: BLE001 - the test fails on it below
            failures.append(f"client {number}: {error!r}")
        seen[number] = fingerprints

    threads = [threading.Thread(target=ranker, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.5)
    with Client(server.endpoint, timeout=60, retries=0) as client:
        switched = client.reload(str(new))
    for thread in threads:
        thread.join(300)
    assert not failures, failures
    assert sum(len(f) for f in seen.values()) == CLIENTS * REQUESTS, "a reply was lost"
    second = switched["model_fingerprint"]
    assert switched["previous_fingerprint"] == first and second != first
    for fingerprints in seen.values():
        assert set(fingerprints) <= {first, second}
        if second in fingerprints:
            switch = fingerprints.index(second)
            assert all(f == second for f in fingerprints[switch:]), "a reply named the old model after the new one"
    assert any(second in f for f in seen.values()), "no reply came from the new model"
    with Wire(server.endpoint, schemas) as wire:
        reply = wire.call({"v": 1, "id": "r", "op": "rank", "user_id": "late", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello."]})
        assert reply.body["model_fingerprint"] == second and reply.body["known_user"] is True
        info_reply = wire.call({"v": 1, "id": "i", "op": "info"})
        assert info_reply.body["model"]["fingerprint"] == second and info_reply.body["model"]["path"] == str(new)
    assert server.stop() == 0


def test_a_corrupt_checkpoint_is_refused_and_the_old_model_keeps_serving(two_checkpoints: tuple[Path, Path], tmp_path: Path,
                                                                         schemas: Schemas) -> None:
    old, new = two_checkpoints
    corrupt = tmp_path / "corrupt"
    shutil.copytree(new, corrupt)
    with open(corrupt / "model.safetensors", "r+b") as weights:
        weights.truncate(1000)
    server = Server(old, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    with Client(server.endpoint, timeout=60, retries=0) as client:
        before = client.rank("Human: hi\n\nAssistant:", ["Hello.", "Hi there, how can I help?"], user_id="late")
        for path in (str(corrupt), str(tmp_path / "missing")):
            with pytest.raises(PrmError) as caught:
                client.reload(path)
            assert caught.value.code == "reload_failed" and "keeps serving" in caught.value.message
        after = client.rank("Human: hi\n\nAssistant:", ["Hello.", "Hi there, how can I help?"], user_id="late")
        assert after.scores == before.scores and after.model_fingerprint == before.model_fingerprint
        assert client.info()["model"]["path"] == str(old)
    with Wire(server.endpoint, schemas) as wire:
        assert wire.call({"v": 1, "id": 1, "op": "reload", "path": ""}).code == "bad_request"
    assert server.stop() == 0


def test_sighup_reloads_the_model_folder(two_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = two_checkpoints
    served = tmp_path / "served"
    shutil.copytree(old, served)
    server = Server(served, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    with Client(server.endpoint, timeout=60, retries=0) as client:
        before = client.rank("Human: hi\n\nAssistant:", ["Hello."], user_id="late")
        assert not before.known_user
        # A retrained checkpoint is put in place of the old one, then the server is told.
        for name in ("config.json", "model.safetensors", "users.json"):
            shutil.copy(new / name, served / name)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = client.rank("Human: hi\n\nAssistant:", ["Hello."], user_id="late")
            if after.model_fingerprint != before.model_fingerprint:
                break
            time.sleep(0.2)
        assert after.known_user and after.model_fingerprint != before.model_fingerprint
    assert server.stop() == 0
    assert "reloading the model from" in server.full_log()


def test_a_reload_keeps_the_served_precision(two_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    """A server started at --precision int8 prepares the reloaded checkpoint's encoder for int8 too:
    the scores after the reload equal a fresh int8 server's on the new checkpoint."""
    old, new = two_checkpoints
    candidates = ["Hello.", "Hi there, how can I help?", "Sure."]
    server = Server(old, tmp_path, ["--precision", "int8", "--user-log", str(tmp_path / "users.jsonl")]).start()
    with Client(server.endpoint, timeout=60, retries=0) as client:
        client.reload(str(new))
        assert client.info()["model"]["precision"] == "int8"
        assert client.info()["model"]["precision_plan"] == "int8"
        reloaded = client.rank("Human: hi\n\nAssistant:", candidates).scores
    assert server.stop() == 0
    fresh = Server(new, tmp_path, ["--precision", "int8", "--user-log", str(tmp_path / "fresh.jsonl")]).start()
    with Client(fresh.endpoint, timeout=60, retries=0) as client:
        assert client.rank("Human: hi\n\nAssistant:", candidates).scores == reloaded
    assert fresh.stop() == 0
