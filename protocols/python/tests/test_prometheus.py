"""``--metrics-http``: ``GET /metrics`` in Prometheus's text format, on a server and on a proxy,
parsed with the ``prometheus_client`` package's own parser. The names and labels follow
Prometheus's conventions and the counters move with the traffic the test sends."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from harness import Pool, Schemas, Server, Wire, free_port
from prm_client import Client

PROMPT = "Human: Any tips for sleeping?\n\nAssistant:"
CANDIDATES = ["Keep a regular schedule.", "Avoid screens before bed, and keep the room cool and dark."]
STAGES = {"queue", "compute", "total"}
#: Families every scrape must hold, with their Prometheus types.
FAMILIES = {"prm_requests": "counter", "prm_request_duration_seconds": "histogram", "prm_queue_depth": "gauge",
            "prm_queue_capacity": "gauge", "prm_batches": "counter", "prm_batch_requests": "counter",
            "prm_batch_tokens": "counter", "prm_cache_hits": "counter", "prm_cache_misses": "counter",
            "prm_cache_entries": "gauge", "prm_replies_dropped": "counter", "prm_uptime_seconds": "gauge"}
PROXY_FAMILIES = {"prm_workers": "gauge", "prm_worker_losses": "counter", "prm_resends": "counter", "prm_in_flight": "gauge"}


@dataclass
class Scrape:
    """One parsed exposition: family types, and every sample by name and labels."""

    types: dict[str, str]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labelled(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def get(address: str, path: str = "/metrics", method: str = "GET") -> tuple[int, str, str]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode("utf-8")
    finally:
        connection.close()


def scrape(address: str) -> Scrape:
    status, content_type, text = get(address)
    assert status == 200, (status, text)
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type, content_type
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in types, f"family {family.name} appears twice"
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"sample {key} appears twice"
            samples[key] = sample.value
    return Scrape(types, samples)


def check_conventions(result: Scrape, families: dict[str, str]) -> None:
    """Types as declared, counters exposed as ``*_total``, and each histogram stage's buckets
    cumulative, ending at ``+Inf`` with the stage's ``_count``."""
    for name, kind in families.items():
        assert result.types.get(name) == kind, f"{name}: type {result.types.get(name)!r}, expected {kind}"
        if kind == "counter":
            assert any(sample == f"{name}_total" for sample, _ in result.samples), f"counter {name} has no {name}_total sample"
    buckets = result.labelled("prm_request_duration_seconds_bucket")
    assert {dict(labels)["stage"] for labels in buckets} == STAGES, buckets
    for stage in STAGES:
        bounds = sorted((float(dict(labels)["le"]), value) for labels, value in buckets.items() if dict(labels)["stage"] == stage)
        counts = [value for _, value in bounds]
        assert counts == sorted(counts), f"stage {stage}: buckets not cumulative {bounds}"
        assert bounds[-1][0] == float("inf") and bounds[-1][1] == result.value("prm_request_duration_seconds_count", stage=stage), bounds
    for labels in result.labelled("prm_requests_total"):
        assert {key for key, _ in labels} == {"op", "code"}, labels


def test_server_metrics_http(start_server: Callable[..., Server], schemas: Schemas) -> None:
    address = f"127.0.0.1:{free_port()}"
    server = start_server("--metrics-http", address)
    before = scrape(address)
    check_conventions(before, FAMILIES)
    assert before.value("prm_queue_capacity") > 0 and before.value("prm_uptime_seconds") >= 0
    with Client(server.endpoint, timeout=30, retries=0) as client:
        for _ in range(3):
            client.rank(PROMPT, CANDIDATES, user_id="worker-3")
    with Wire(server.endpoint, schemas) as wire:
        assert wire.call({"v": 1, "id": 1, "op": "fly"}).code == "unknown_op"
        assert wire.call(b"{not json").code == "bad_json"
        metrics = wire.call({"v": 1, "id": 2, "op": "metrics"}).body
    after = scrape(address)
    check_conventions(after, FAMILIES)
    assert after.value("prm_requests_total", op="rank", code="ok") == before.value("prm_requests_total", op="rank", code="ok") + 3
    assert after.value("prm_requests_total", op="none", code="bad_json") == before.value("prm_requests_total", op="none", code="bad_json") + 1
    assert after.value("prm_requests_total", op="none", code="unknown_op") == before.value("prm_requests_total", op="none", code="unknown_op") + 1
    for stage in STAGES:
        grew = after.value("prm_request_duration_seconds_count", stage=stage) - before.value("prm_request_duration_seconds_count", stage=stage)
        assert grew == 3, f"stage {stage}: {grew} more observations for 3 ranks"
        assert after.value("prm_request_duration_seconds_sum", stage=stage) > before.value("prm_request_duration_seconds_sum", stage=stage)
    assert after.value("prm_batch_requests_total") >= before.value("prm_batch_requests_total") + 3
    assert (after.value("prm_cache_hits_total") + after.value("prm_cache_misses_total")
            >= before.value("prm_cache_hits_total") + before.value("prm_cache_misses_total") + 6)
    # The same counts as the metrics op (which is itself counted once the scrape follows it).
    by_op: dict[str, float] = {}
    for labels, value in after.labelled("prm_requests_total").items():
        op = dict(labels)["op"]
        by_op[op] = by_op.get(op, 0) + value
    assert by_op["rank"] == metrics["requests"]["rank"], (by_op, metrics["requests"])
    assert after.value("prm_requests_total", op="none", code="bad_json") == metrics["errors"]["bad_json"]


def test_metrics_http_answers_only_get_metrics(start_server: Callable[..., Server]) -> None:
    address = f"127.0.0.1:{free_port()}"
    start_server("--metrics-http", address)
    assert get(address, "/elsewhere")[0] == 404
    assert get(address, method="POST")[0] == 405
    status, _, body = get(address, method="HEAD")
    assert status == 200 and body == ""
    assert scrape(address).types["prm_requests"] == "counter"  # still serving after the odd requests


def test_proxy_metrics_http(start_pool: Callable[..., Pool]) -> None:
    address = f"127.0.0.1:{free_port()}"
    pool = start_pool(1, proxy_args=["--metrics-http", address])
    before = scrape(address)
    check_conventions(before, {**FAMILIES, **PROXY_FAMILIES})
    assert before.value("prm_workers", state="alive") == 1, before.labelled("prm_workers")
    assert {dict(labels)["state"] for labels in before.labelled("prm_workers")} == {"alive", "busy", "draining", "reloading"}
    assert before.value("prm_workers", state="reloading") == 0
    with Client(pool.endpoint, timeout=30, retries=0) as client:
        for _ in range(4):
            client.rank(PROMPT, CANDIDATES)
    after = scrape(address)
    assert after.value("prm_requests_total", op="rank", code="ok") == before.value("prm_requests_total", op="rank", code="ok") + 4
    assert after.value("prm_request_duration_seconds_count", stage="total") == before.value("prm_request_duration_seconds_count", stage="total") + 4
    assert after.value("prm_in_flight") == 0 and after.value("prm_worker_losses_total") == 0
    pool.workers[0].stop()
    pool.wait_for(lambda state: state["workers"] == 0, "the worker gone")
    assert scrape(address).value("prm_workers", state="alive") == 0
