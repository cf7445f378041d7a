#!/usr/bin/env python3
"""Plots of `prm bench serve` results: throughput and latency against concurrent clients for each
deployment, throughput against candidates per request, CURVE off/on, and the HTTP front door
against ZeroMQ on the same server.

    python3 bench/plot_serve.py bench/results/serve.json       # writes serve-*.png beside it
    python3 bench/plot_serve.py bench/results/serve-http.json  # a --no-deployments run: serve-http-frontdoor.png
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    stem = path.with_suffix("")
    peak = report.get("sgemmPeakGflops", 0)
    subtitle = f"{report['machine']}, sgemm peak {peak:.0f} GFLOP/s; {report['date']}"
    if report.get("http"):
        plot_http(report["http"], subtitle, f"{stem}-frontdoor.png")
        print(f"{stem}-frontdoor.png")
    topologies = report.get("topologies")
    if not topologies:
        if not report.get("http"):
            sys.exit(f"{path}: neither HTTP nor deployment cases (run prm bench serve on a server it starts)")
        return

    points = topologies["concurrency"]
    names = list(dict.fromkeys(p["topology"] for p in points))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in names:
        series = [p for p in points if p["topology"] == name]
        clients = [p["clients"] for p in series]
        left.plot(clients, [p["itemsPerSecond"] for p in series], marker="o", label=name)
        right.plot(clients, [p["latencyMs"]["p50"] for p in series], marker="o", label=f"{name} p50")
        right.plot(clients, [p["latencyMs"]["p99"] for p in series], marker="x", linestyle="--", label=f"{name} p99")
    n = series[0]["candidates"] if points else 0
    for axis, ylabel in ((left, "scored replies per second"), (right, "latency per request (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    left.set_title(f"throughput, N = {n} candidates per request")
    right.set_title("latency")
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{stem}-concurrency.png", dpi=120)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    candidates = topologies["candidates"]
    labels = [str(p["candidates"]) for p in candidates]
    left.bar(labels, [p["itemsPerSecond"] for p in candidates], color="tab:blue")
    left.set_xlabel("candidates per request (N)")
    left.set_ylabel("scored replies per second")
    left.set_title(f"one server, {candidates[0]['clients'] if candidates else 0} clients")
    curve = topologies["curve"]
    right.bar(["CURVE off", "CURVE on"][: len(curve)], [p["itemsPerSecond"] for p in curve], color=["tab:gray", "tab:green"][: len(curve)])
    right.set_ylabel("scored replies per second")
    right.set_title(f"CURVE costs {100 * topologies['curveCostFraction']:.1f}% (N = {curve[0]['candidates'] if curve else 0})")
    save_bars(fig, (left, right), subtitle, f"{stem}-candidates-curve.png")
    print(f"{stem}-concurrency.png\n{stem}-candidates-curve.png")


def plot_http(http: dict, subtitle: str, out: str) -> None:
    """Left: one rank's round trip over ZeroMQ and HTTP (p50, p95); right: single-sample HTTP
    clients against batched ZeroMQ score requests, with the server's requests per batch."""
    latency, single = http["latency"], http["singleSamples"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for offset, (key, name, color) in enumerate((("zeromqRoundTripMs", "ZeroMQ", "tab:gray"), ("httpRoundTripMs", "HTTP /v1/rank", "tab:blue"))):
        values = [latency[key]["p50"], latency[key]["p95"]]
        left.bar([i + (offset - 0.5) * width for i in range(2)], values, width, label=name, color=color)
    left.set_xticks(range(2), ["p50", "p95"])
    left.set_ylabel("round trip (ms)")
    left.set_title(f"one rank of N = {latency['candidates']}: HTTP {100 * latency['overheadP50']:+.1f}% at p50, "
                   f"{100 * latency['overheadP95']:+.1f}% at p95")
    left.legend(fontsize=8)
    labels = [f"ZeroMQ score, {single['zeromqItemsPerRequest']} per request\n1 client",
              f"HTTP /v1/score, 1 per request\n{single['httpClients']} clients"]
    rates = [single["zeromqSamplesPerSecond"], single["httpSamplesPerSecond"]]
    batches = [single["zeromqMeanItemsPerBatch"], single["httpMeanItemsPerBatch"]]
    bars = right.bar(labels, rates, color=["tab:gray", "tab:blue"])
    for bar, per_batch in zip(bars, batches):
        right.annotate(f"{per_batch:.1f} samples per batch", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                       ha="center", va="bottom", fontsize=8)
    right.set_ylabel("samples per second")
    right.set_title(f"{single['samples']} samples: HTTP at {100 * single['fractionOfZeromq']:.0f}% of batched ZeroMQ")
    save_bars(fig, (left, right), subtitle, out)


def save_bars(fig, axes, subtitle: str, out: str) -> None:
    """Horizontal grid lines on bar charts, the run's machine and date on top, then the PNG."""
    for axis in axes:
        axis.grid(True, axis="y", alpha=0.3)
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
