"""Per-user health on a real server: a user whose scores stop telling candidates apart is flagged
collapsed (the ``users`` op, ``metrics``, Prometheus's ``prm_user_collapsed_total`` and a bounded
``prm_user_flagged``), while the trained users ranked beside it are not.

The collapsed user is simulated as the issue asks, through the adapted-users path: a user-log line
whose row cancels the generic user's vector (e = e_0 + row = 0), so every reply scores the same.
"""

from __future__ import annotations

import json
import shutil
import struct
import urllib.request
from pathlib import Path
from typing import Any

from harness import Schemas, Server, Wire, free_port
from prm_client import Client


def generic_row(checkpoint: Path) -> list[float]:
    """Row 0 (the generic user e_0) of the checkpoint's user.embeddings, read from safetensors."""
    with open(checkpoint / "model.safetensors", "rb") as weights:
        (length,) = struct.unpack("<Q", weights.read(8))
        header = json.loads(weights.read(length))
        entry = header["user.embeddings"]
        assert entry["dtype"] == "F32"
        width = 1
        for size in entry["shape"][1:]:
            width *= size
        weights.seek(8 + length + entry["data_offsets"][0])
        return list(struct.unpack(f"<{width}f", weights.read(4 * width)))


def test_a_collapsed_user_is_flagged(checkpoint: Path, tmp_path: Path, dialogues: list[dict[str, Any]], user_ids: list[str],
                                     schemas: Schemas) -> None:
    model = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert config["prm"]["user_model"]["shared_generic"] is True, "the row below is an offset from e_0"
    row = [-x for x in generic_row(model)]
    (model / "adapted_users.jsonl").write_text(json.dumps({"user_id": "flat", "row": row, "comparisons": 1, "correct": 0,
                                                           "loss": 0.69, "writer": "test", "model": ""}) + "\n", encoding="utf-8")
    port = free_port()
    server = Server(model, tmp_path, ["--metrics-http", f"127.0.0.1:{port}"]).start()
    trained = user_ids[:4]
    with Client(server.endpoint, timeout=60, retries=0) as client:
        for k in range(12):
            d = dialogues[k]
            candidates = [d["chosen"], d["rejected"], "Sure.", "I can't help with that, but here is a long explanation of why not."]
            for user in [*trained, "flat"]:
                result = client.rank(d["prompt"], candidates, user_id=user)
                assert result.known_user
                if user == "flat":
                    assert max(result.scores) - min(result.scores) < 1e-3  # type: ignore[operator]
        report = client.users(user_id="flat")
        metrics = client.metrics()
    flagged = {entry["user_id"]: entry for entry in report["flagged"]}
    assert "flat" in flagged and flagged["flat"]["collapsed"] is True and flagged["flat"]["requests"] == 12
    assert not any(user in flagged for user in trained), f"trained users flagged: {report['flagged']}"
    assert report["user"]["user_id"] == "flat" and report["tracked"] == 5 and report["collapsed_total"] == 1
    assert report["population"]["spread"] > 0
    assert metrics["users"] == {"tracked": 5, "flagged": 1, "collapsed_total": 1}  # type: ignore[typeddict-item]
    with Wire(server.endpoint, schemas) as wire:
        assert wire.call({"v": 1, "id": "u", "op": "users", "user_id": "nobody"}).body["user"] is None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode("utf-8")
    assert "prm_user_collapsed_total 1\n" in text
    assert 'prm_user_flagged{user_id="flat",reason="collapsed"} 1\n' in text
    assert text.count("prm_user_flagged{") == 1
    assert server.stop() == 0
