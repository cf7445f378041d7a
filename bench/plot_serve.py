#!/usr/bin/env python3
"""Plots of `prm bench serve` results: throughput and latency against concurrent clients for each
deployment, throughput against candidates per request, and CURVE off/on.

    python3 bench/plot_serve.py bench/results/serve.json      # writes serve-*.png beside it
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
    topologies = report.get("topologies")
    if not topologies:
        sys.exit(f"{path}: no deployment cases (run prm bench serve without --endpoint or --no-deployments)")
    stem = path.with_suffix("")
    peak = report.get("sgemmPeakGflops", 0)
    subtitle = f"{report['machine']}, sgemm peak {peak:.0f} GFLOP/s; {report['date']}"

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
    for axis in (left, right):
        axis.grid(True, axis="y", alpha=0.3)
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{stem}-candidates-curve.png", dpi=120)
    print(f"{stem}-concurrency.png\n{stem}-candidates-curve.png")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
