"""``info``, ``health`` and ``metrics``: valid against the schemas (as every reply is) and true."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from harness import Schemas, Wire

DEFAULT_LIMITS = {"max_message_bytes": 1_048_576, "max_candidates": 256, "max_request_tokens": 65_536, "max_queued_requests": 1024,
                  "max_adapt_comparisons": 64, "max_suggest_candidates": 32, "max_suggest_pairs": 16}


def test_schemas_are_valid_and_complete(schemas: Schemas) -> None:
    for name, document in schemas.documents.items():
        Draft202012Validator.check_schema(document)
        assert document["$id"].endswith("/" + name)
    for op in ("rank", "score", "adapt", "suggest", "reload", "users", "info", "health", "metrics"):
        assert f"{op}.request.schema.json" in schemas.documents
        assert f"{op}.reply.schema.json" in schemas.documents
    codes = schemas.documents["common.schema.json"]["$defs"]["errorCode"]["enum"]
    assert set(codes) >= {"bad_json", "bad_utf8", "bad_request", "unsupported_version", "unknown_op", "too_many_candidates",
                          "too_many_tokens", "too_large", "overloaded", "deadline_exceeded", "shutting_down", "internal"}


def test_info(wire: Wire, checkpoint: Path) -> None:
    info = wire.call({"v": 1, "id": "i", "op": "info"}).body
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    users = json.loads((checkpoint / "users.json").read_text(encoding="utf-8"))
    assert info["protocol"] == 1
    assert info["prm_version"]
    model = info["model"]
    assert Path(model["path"]).resolve() == checkpoint.resolve()
    assert model["aggregator"] == config["prm"]["aggregator"] == "linear-head"
    assert model["user_model"] == config["prm"]["user_model"]["kind"]
    assert model["users"] == len(users)
    assert model["max_length"] == config["prm"]["max_length"] == 64
    assert model["hidden_size"] == config["hidden_size"]
    assert model["precision"] == "fp32"
    assert model["backbone"]
    assert info["limits"] == DEFAULT_LIMITS
    assert info["server"]["batch_tokens"] > 0 and info["server"]["cache_entries"] > 0


def test_health(wire: Wire) -> None:
    first = wire.call({"v": 1, "id": "h1", "op": "health"}).body
    time.sleep(0.2)
    second = wire.call({"v": 1, "id": "h2", "op": "health"}).body
    for health in (first, second):
        assert health["status"] == "serving" and health["healthy"] is True, health
        assert health["compute"]["state"] in ("idle", "busy"), health
    assert second["uptime_s"] - first["uptime_s"] >= 0.15


def test_metrics_count_what_was_sent(wire: Wire) -> None:
    before = wire.call({"v": 1, "id": "m", "op": "metrics"}).body
    tag = uuid.uuid4().hex  # texts computed for the first time: each is one batch item
    for number in range(3):
        assert wire.call({"v": 1, "id": number, "op": "rank", "prompt": "Human: hi\n\nAssistant:",
                          "candidates": [f"Hello {number} {tag}.", f"Hi {number} {tag}."]}).ok
    assert wire.call({"v": 1, "id": "s", "op": "score",
                      "items": [{"prompt": "Human: hi\n\nAssistant:", "response": f"Hey {tag}."}]}).ok
    assert wire.call({"v": 1, "id": "b", "op": "health"}).ok
    wire.call(b"{not json")
    after = wire.call({"v": 1, "id": "m", "op": "metrics"}).body

    def grew(group: str, key: str) -> int:
        return int(after[group].get(key, 0) - before[group].get(key, 0))

    assert grew("requests", "rank") == 3
    assert grew("requests", "score") == 1
    assert grew("requests", "health") == 1
    assert grew("requests", "metrics") == 1  # the first metrics request; this one is counted later
    assert grew("errors", "bad_json") == 1
    batches = after["batches"]
    assert batches["count"] - before["batches"]["count"] >= 1
    assert batches["requests"] - before["batches"]["requests"] == 4
    assert batches["items"] - before["batches"]["items"] == 3 * 2 + 1
    assert batches["tokens"] > 0 and batches["max_tokens"] > 0
    assert batches["mean_tokens"] * batches["count"] == _approx(batches["tokens"])
    assert batches["mean_requests"] * batches["count"] == _approx(batches["requests"])
    assert after["queue"]["capacity"] == DEFAULT_LIMITS["max_queued_requests"]
    for name in ("queue", "compute", "total"):
        percentiles = after["latency_ms"][name]
        assert percentiles["p50"] <= percentiles["p95"] <= percentiles["p99"], (name, percentiles)
    cache = after["cache"]
    assert cache["hits"] + cache["misses"] > 0
    assert cache["entries"] <= cache["capacity"]


def _approx(value: float) -> object:
    return pytest.approx(value, rel=1e-3, abs=1e-3)
