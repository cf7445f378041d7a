#!/usr/bin/env python3
"""prm's scoring benchmark side by side with ONNX Runtime, in one run.

  python3 bench/score_vs_ort.py            (from the repository root, after scripts/setup.sh)

1. `prm bench score --json ... --dump-inputs ...`: prm's in-process cases, its sgemm table,
   and the token ids of every case.
2. `bench/ort_peer.py bench --inputs <those ids>`: ONNX Runtime's fused BERT graph on the same
   sequences (after its own checks: fused-operator counts, embeddings against the float64
   reference and against `prm embed`), each of ORT's batching strategies.
3. Whole processes, as a user meets them: `prm embed` of one short text against a fresh
   python3 that loads onnxruntime and the exported graph and embeds it (median wall time of
   several alternating runs), then both over the 512 replies and over 5,000 texts (wall time
   and peak RSS of the child, from os.wait4).
4. With --reward-model DIR (a `prm train` checkpoint), prm's report also holds one prompt's
   N = 1, 4, 16, 64 candidates ranked through its Scorer, shown as a prm-only table.

With --low-precision it instead runs `prm bench score --precision P` for P = fp32, bf16, int8 and
ORT's fp32 graph beside its int8 one (`quantize_dynamic` of the same graph, as sentence-transformers
documents it), all on the same token ids, and writes bench/results/score_lowp.{json,md}: speed,
embedding cosines to each side's own fp32, and prm's reward ranking against fp32 (pairs, best-of-4/16).

Writes bench/results/score.{json,md} and score_throughput.png, score_latency.png: prm's figures
as ratios to ORT's best strategy per case, and as fractions of the sgemm peak prm measured in
the same run. The steps run one after the other, nothing else in parallel; on the project's
shared machines hold the CPU lock: `flock "$LOCK" python3 bench/score_vs_ort.py`.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import numpy as np  # noqa: E402
import ort_peer  # noqa: E402  (also puts Tests/Reference on the path)
from reference_common import fail, load_json  # noqa: E402

SHORT_TEXT = "A man is eating food."
MANY_TEXTS = 5000


# ---------------------------------------------------------------- prm's side


def prm_help(prm):
    run = subprocess.run([prm, "bench", "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"`{prm} bench --help` failed ({run.returncode}): {run.stderr.strip()}")
    return run.stdout


def without_workdir(report, workdir):
    """`report` with the scratch folder's path written as <tmp>: recorded commands name no machine path."""
    if isinstance(report, dict):
        return {k: without_workdir(v, workdir) for k, v in report.items()}
    if isinstance(report, list):
        return [without_workdir(v, workdir) for v in report]
    return report.replace(workdir, "<tmp>") if isinstance(report, str) else report


def run_prm_bench(prm, args, workdir, precision=None):
    """prm's cases (its JSON report) and the token ids they used, or None if prm cannot dump them."""
    usage = prm_help(prm)
    if not re.search(r"^\s+score\s", usage, re.MULTILINE):  # listed under "Suites:"
        fail(f"{prm} has no `bench score` suite; build a prm that has it (`swift build -c release`)")
    tag = f".{precision}" if precision else ""
    report, inputs = os.path.join(workdir, f"prm{tag}.json"), os.path.join(workdir, f"inputs{tag}.json")
    argv = [prm, "bench", "score", "--model", args.model, "--data", args.data, "--repeats", str(args.repeats),
            "--json", report] + (["--all-backends"] if args.all_backends else []) \
        + (["--reward-model", args.reward_model] if args.reward_model else []) \
        + (["--precision", precision] if precision else [])
    dumps = "--dump-inputs" in usage
    if dumps:
        argv += ["--dump-inputs", inputs]
    print("$ " + " ".join(argv), flush=True)
    if subprocess.run(argv).returncode != 0:
        fail(f"`{' '.join(argv)}` failed")
    prm = load_json(report, "prm bench score report")
    return prm, (inputs if dumps and os.path.isfile(inputs) else None)


def prm_cases(report):
    """The per-case rows of prm's report: the first list of objects carrying a "case" key."""
    if isinstance(report, list):
        candidates = [report]
    elif isinstance(report, dict):
        candidates = [report.get("cases")] + list(report.values())
    else:
        candidates = []
    for value in candidates:
        if isinstance(value, list) and value and all(isinstance(r, dict) and "case" in r for r in value):
            return value
    fail('prm bench score report has no list of per-case objects with a "case" key')


def number(row, key):
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- ORT's side


def run_ort_bench(args, inputs, workdir, extra=()):
    report = os.path.join(workdir, "ort.json")
    argv = [sys.executable, os.path.join(BENCH, "ort_peer.py"), "bench", "--model", args.model, "--data", args.data,
            "--prm", args.prm, "--repeats", str(args.repeats), "--json", report] + list(extra)
    if inputs:
        argv += ["--inputs", inputs]
    print("$ " + " ".join(argv), flush=True)
    if subprocess.run(argv).returncode != 0:
        fail("ort_peer.py bench failed (see above)")
    return load_json(report, "ort_peer.py report")


# ---------------------------------------------------------------- whole processes


def measured(argv, workdir):
    """Runs `argv` to completion: (wall seconds, peak RSS of the child in MB, stdout path).
    The child's ru_maxrss is at least this process's own peak (Linux carries the launcher's
    high-water mark through fork/exec), so this process stays small: see `whole_process`."""
    stdout_path, stderr_path = os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr")
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        with open(stderr_path, errors="replace") as f:
            fail(f"`{' '.join(argv)}` exited {child.returncode}: {f.read().strip()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout_path  # Linux reports KiB


def embeddings_of(path, count):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if len(rows) != count:
        fail(f"expected {count} embeddings, got {len(rows)} in {path}")
    return [r["embedding"] for r in rows]


def whole_process(args, workdir):
    onnx_path = os.path.join(workdir, "minilm.onnx")
    # Exported by a child: building the graph here would raise this process's peak, and with it
    # the floor under every child's ru_maxrss.
    export = [sys.executable, os.path.join(BENCH, "ort_peer.py"), "export", "--model", args.model, "--out", onnx_path]
    if subprocess.run(export, stdout=subprocess.DEVNULL).returncode != 0:
        fail(f"`{' '.join(export)}` failed")
    prm = [args.prm, "embed", "--model", args.model, "--max-tokens", str(ort_peer.MAX_TOKENS)]
    ort = [sys.executable, os.path.join(BENCH, "ort_peer.py"), "embed", "--model", args.model, "--onnx", onnx_path]

    # One short text: alternate the two so drifting machine load hits both alike.
    contention = ort_peer.Contention()
    times = {"prm": [], "ort": []}
    rss = {"prm": 0.0, "ort": 0.0}
    vectors = {}
    for _ in range(args.runs):
        for side, argv in (("prm", prm), ("ort", ort)):
            seconds, peak, out = measured(argv + [SHORT_TEXT], workdir)
            times[side].append(seconds)
            rss[side] = max(rss[side], peak)
            vectors[side] = embeddings_of(out, 1)[0]
    agreement = ort_peer.cosines(np.array([vectors["prm"]]), np.array([vectors["ort"]]))[0]
    if agreement <= ort_peer.MIN_COSINE:
        fail(f"prm embed and ORT disagree on {SHORT_TEXT!r}: cosine {agreement:.8f}")
    rows = [{"case": "embed 1 short text", "texts": 1, "runs": args.runs,
             "prm_seconds": statistics.median(times["prm"]), "ort_seconds": statistics.median(times["ort"]),
             "prm_peak_rss_mb": rss["prm"], "ort_peak_rss_mb": rss["ort"], "others_cpu_share": contention.others()}]

    # Many texts, once each: peak memory is the point (it must not grow with the count).
    replies = ort_peer.real_replies([args.data, args.dev_data])
    for label, texts in (("embed 512 replies", replies[:512]),
                         (f"embed {MANY_TEXTS} texts", [replies[i % len(replies)] for i in range(MANY_TEXTS)])):
        path = os.path.join(workdir, "texts.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        row, contention = {"case": label, "texts": len(texts), "runs": 1}, ort_peer.Contention()
        for side, argv in (("prm", prm), ("ort", ort)):
            seconds, peak, _ = measured(argv + ["--input", path], workdir)
            row[f"{side}_seconds"], row[f"{side}_peak_rss_mb"] = seconds, peak
        row["others_cpu_share"] = contention.others()
        rows.append(row)
    floor = ort_peer.peak_rss_mb()
    for row in rows:
        row["rss_floor_mb"] = floor
        print(f"  {row['case']:22} prm {row['prm_seconds']:7.3f} s {row['prm_peak_rss_mb']:6.0f} MB   "
              f"ORT {row['ort_seconds']:7.3f} s {row['ort_peak_rss_mb']:6.0f} MB", flush=True)
    return rows


# ---------------------------------------------------------------- comparison and output


def compare(prm_report, ort_report):
    """One row per prm case: its figures, ORT's best strategy on the same sequences, ratios."""
    best = ort_report["best"]
    rows = []
    for case in prm_cases(prm_report):
        name = str(case["case"])
        row = {"case": name, "prm_backend": case.get("backend", prm_report.get("backend") if isinstance(prm_report, dict) else None)}
        for key in ("sequences", "tokens", "seconds", "seq_per_s", "tokens_per_s", "gflops", "fraction_of_peak",
                    "peak_rss_mb"):
            row["prm_" + key] = number(case, key)
        peer = best.get(name)
        if peer:
            row.update({"ort_strategy": peer["strategy"], "ort_seconds": peer["seconds"],
                        "ort_seq_per_s": peer["seq_per_s"], "ort_peak_rss_mb": peer["peak_rss_mb"]})
            if row["prm_seq_per_s"]:
                row["throughput_ratio"] = row["prm_seq_per_s"] / peer["seq_per_s"]
                # Same sequences, same useful FLOPs, same peak: fractions scale with throughput.
                if row["prm_fraction_of_peak"] is not None:
                    row["ort_fraction_of_peak"] = row["prm_fraction_of_peak"] / row["throughput_ratio"]
            if row["prm_seconds"] and row["prm_sequences"] == 1:  # one sequence: its time is a latency
                row["latency_ratio"] = row["prm_seconds"] / peer["seconds"]
        rows.append(row)
    missing = sorted(set(best) - {r["case"] for r in rows})
    if missing:
        print(f"note: ORT cases without a prm counterpart: {', '.join(missing)}", file=sys.stderr)
    return rows


def fmt(value, spec, suffix=""):
    return "—" if value is None else format(value, spec) + suffix


def markdown(score):
    prm, ort = score["prm"], score["ort"]
    lines = ["# prm vs ONNX Runtime: scoring all-MiniLM-L6-v2", "",
             f"{ort['machine']}; prm backend: {prm.get('backend', 'not reported') if isinstance(prm, dict) else '—'}; "
             f"onnxruntime {ort['onnxruntime']} ({ort['threads']} threads, fused graph); {score['date']}; "
             f"other processes used {score['others_cpu_share']:.0%} of the machine's CPU time during the run "
             f"({score['others_cpu_share_during_prm_bench']:.0%} during `prm bench score`; ORT's per case below)", "",
             f"Command: `{score['command']}`", "",
             f"Inputs: {ort['inputs']}", "",
             "ORT graph: " + ", ".join(f"{op} {n}" for op, n in ort["fused_operators"]["optimized"].items()) +
             f"; embeddings vs `prm embed` min cosine {ort['check']['prm']['min_cosine']:.7f}, "
             f"vs float64 reference max abs diff {ort['check']['reference']['max_abs_diff']:.1e}.", "",
             "## In process (model loaded, tokenization excluded)", "",
             "| case | prm backend | seqs | tokens | prm seq/s | ORT best seq/s (strategy) | prm ÷ ORT | prm latency ÷ ORT "
             "| prm of sgemm peak | ORT of sgemm peak | prm peak RSS MB | ORT peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in score["comparison"]:
        ort_cell = (f"{r['ort_seq_per_s']:.1f} ({r['ort_strategy']})" if "ort_seq_per_s" in r else "—")
        lines.append(
            f"| {r['case']} | {r['prm_backend'] or '—'} | {fmt(r['prm_sequences'], '.0f')} | {fmt(r['prm_tokens'], '.0f')} | "
            f"{fmt(r['prm_seq_per_s'], '.1f')} | {ort_cell} | **{fmt(r.get('throughput_ratio'), '.2f', '×')}** | "
            f"{fmt(r.get('latency_ratio'), '.2f', '×')} | {fmt(r['prm_fraction_of_peak'], '.0%')} | "
            f"{fmt(r.get('ort_fraction_of_peak'), '.0%')} | {fmt(r['prm_peak_rss_mb'], '.0f')} | "
            f"{fmt(r.get('ort_peak_rss_mb'), '.0f')} |")
    lines += ["", "ORT's strategies per case (its best is the denominator above):", "",
              "| case | strategy | seq/s | padded tokens | peak RSS MB | others' CPU |", "|---|---|---:|---:|---:|---:|"]
    for r in ort["cases"]:
        lines.append(f"| {r['case']} | {r['strategy']} | {r['seq_per_s']:.1f} | {r['padded_tokens']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['others_cpu_share']:.0%} |")
    t = ort["tokenization"]
    tokenize = prm.get("tokenize") if isinstance(prm, dict) else None
    prm_tokenize = (f"; prm {tokenize['texts']} in {tokenize['seconds'] * 1e3:.1f} ms "
                    f"({tokenize['seconds'] / t['seconds']:.2f}× the time)"
                    if isinstance(tokenize, dict) and number(tokenize, "seconds") and tokenize.get("texts") == t["texts"] else "")
    lines += ["", f"Tokenization, not in the figures above: `tokenizers` (Rust) {t['texts']} replies in "
              f"{t['seconds'] * 1e3:.1f} ms{prm_tokenize}.",
              "", "## Whole process (start, load, tokenize, embed, write JSON lines, exit)", "",
              "| case | runs | prm s | ORT s | prm ÷ ORT | prm peak RSS MB | ORT peak RSS MB | others' CPU |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in score["whole_process"]:
        lines.append(f"| {r['case']} | {r['runs']} | {r['prm_seconds']:.3f} | {r['ort_seconds']:.3f} | "
                     f"{r['prm_seconds'] / r['ort_seconds']:.2f}× | {r['prm_peak_rss_mb']:.0f} | {r['ort_peak_rss_mb']:.0f} | "
                     f"{r['others_cpu_share']:.0%} |")
    floor = max((r["rss_floor_mb"] for r in score["whole_process"]), default=0)
    lines += ["", "Wall times are medians over the runs (1 short text: runs alternate prm and ORT). ORT's process is "
              "python3 + onnxruntime + tokenizers loading the exported fused graph (`ort_peer.py embed`). 'others' CPU' is the share of "
              "the machine's CPU time other processes (and hypervisor steal) used meanwhile. "
              f"Peak RSS is the child's ru_maxrss (os.wait4), which cannot read below the launcher's own peak, {floor:.0f} MB."]
    ranking = prm.get("ranking") if isinstance(prm, dict) else None
    if isinstance(ranking, dict):
        lines += ["", "## Reward model ranking one prompt's N candidates (prm's Scorer; no ORT counterpart)", ""]
        if ranking.get("note"):
            lines.append(f"Reward model cases {ranking['note']}.")
        if ranking.get("cases"):
            lines += [f"Checkpoint `{ranking.get('reward_model')}`; tokenization, window, packed inference and reward head, "
                      "best of the repeats, no h cache.", "",
                      "| candidates | backend | tokens | ms | candidates/s | peak RSS MB |", "|---:|---|---:|---:|---:|---:|"]
            lines += [f"| {c['candidates']} | {c['backend']} | {c['tokens']} | {c['seconds'] * 1e3:.1f} | "
                      f"{c['candidates_per_s']:.1f} | {c['peak_rss_mb']:.0f} |" for c in ranking["cases"]]
    sgemm = prm.get("sgemm") if isinstance(prm, dict) else None
    if isinstance(sgemm, list) and sgemm and all(isinstance(r, dict) for r in sgemm):
        keys = list(dict.fromkeys(["backend", "shape", "gflops"] + [k for r in sgemm for k in r]))
        keys = [k for k in keys if any(k in r for r in sgemm)]
        lines += ["", "## prm's sgemm table (same run)", "", "| " + " | ".join(keys) + " |",
                  "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(f"{r[k]:.1f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys) + " |"
                  for r in sgemm]
    return "\n".join(lines) + "\n"


def plots(score, directory):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # With --all-backends prm reports each case per backend; the plots show the run's selected one.
    selected = score["prm"].get("backend") if isinstance(score["prm"], dict) else None
    paired = [r for r in score["comparison"] if "ort_seq_per_s" in r and r["prm_seq_per_s"]
              and (selected is None or r["prm_backend"] in (None, selected))]
    throughput = os.path.join(directory, "score_throughput.png")
    figure, axis = plt.subplots(figsize=(8, 4.2))
    positions = range(len(paired))
    axis.bar([p - 0.2 for p in positions], [r["prm_seq_per_s"] for r in paired], 0.4,
             label="prm" + (f" ({selected})" if selected else ""))
    axis.bar([p + 0.2 for p in positions], [r["ort_seq_per_s"] for r in paired], 0.4,
             label="ONNX Runtime, best strategy")
    for p, r in zip(positions, paired):
        axis.annotate(f"{r['throughput_ratio']:.2f}×", (p - 0.2, r["prm_seq_per_s"]), ha="center", va="bottom", fontsize=8)
    axis.set_xticks(list(positions), [r["case"] for r in paired], rotation=15, fontsize=8)
    axis.set_ylabel("sequences / s")
    axis.set_title("MiniLM-L6 in process, 2 threads (label: prm ÷ ORT)")
    axis.legend()
    figure.tight_layout()
    ort_peer.write_atomically(throughput, lambda temp: figure.savefig(temp, dpi=120, format="png"))
    plt.close(figure)

    latency = os.path.join(directory, "score_latency.png")
    single = [r for r in paired if r["prm_sequences"] == 1]
    processes = score["whole_process"][:1]
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for axis, rows, title, prm_key, ort_key in (
            (axes[0], single, "one sequence, in process", "prm_seconds", "ort_seconds"),
            (axes[1], processes, "one short text, whole process", "prm_seconds", "ort_seconds")):
        labels = [r["case"] for r in rows]
        axis.bar([i - 0.2 for i in range(len(rows))], [r[prm_key] * 1e3 for r in rows], 0.4, label="prm")
        axis.bar([i + 0.2 for i in range(len(rows))], [r[ort_key] * 1e3 for r in rows], 0.4, label="ONNX Runtime")
        for i, r in enumerate(rows):
            axis.annotate(f"{r[prm_key] / r[ort_key]:.2f}×", (i - 0.2, r[prm_key] * 1e3), ha="center", va="bottom", fontsize=8)
        axis.set_xticks(list(range(len(rows))), labels, fontsize=8)
        axis.set_ylabel("ms")
        axis.set_title(title + " (label: prm ÷ ORT)", fontsize=9)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    ort_peer.write_atomically(latency, lambda temp: figure.savefig(temp, dpi=120, format="png"))
    plt.close(figure)
    return [throughput, latency]


# ---------------------------------------------------------------- low precision

PRECISIONS = ("fp32", "bf16", "int8")
TARGET_CASES = ("real-512-sorted", "uniform-64x128")


def low_precision(args):
    """prm at each precision and ORT fp32 + int8 on the same token ids: speed and fidelity."""
    contention = ort_peer.Contention()
    with tempfile.TemporaryDirectory(prefix="score_vs_ort.") as workdir:
        prm, inputs = {}, None
        for precision in PRECISIONS:
            prm[precision], dumped = run_prm_bench(args.prm, args, workdir, precision)
            inputs = inputs or dumped
        ort = run_ort_bench(args, inputs, workdir, ["--int8"])
        prm, ort = without_workdir(prm, workdir), without_workdir(ort, workdir)
    rows = []
    for case in prm_cases(prm["fp32"]):
        name = case["case"]
        row = {"case": name, "sequences": case["sequences"], "tokens": case["tokens"]}
        for precision in PRECISIONS:
            match = [c for c in prm_cases(prm[precision]) if c["case"] == name]
            row[f"prm_{precision}_seq_per_s"] = match[0]["seq_per_s"] if match else None
            row[f"prm_{precision}_peak_rss_mb"] = match[0]["peak_rss_mb"] if match else None
        row["ort_fp32_seq_per_s"] = ort["best"].get(name, {}).get("seq_per_s")
        row["ort_int8_seq_per_s"] = ort["int8"]["best"].get(name, {}).get("seq_per_s")
        row["ort_int8_peak_rss_mb"] = ort["int8"]["best"].get(name, {}).get("peak_rss_mb")
        low = [(row[f"prm_{p}_seq_per_s"] or 0, p) for p in ("bf16", "int8")]
        best, which = max(low)
        row["best_low_precision"] = which
        row["best_low_precision_vs_ort_int8"] = best / row["ort_int8_seq_per_s"] if row["ort_int8_seq_per_s"] else None
        rows.append(row)
    fidelity = {p: prm[p].get("fidelity", []) for p in ("bf16", "int8")}
    ranking = {p: prm[p].get("ranking", {}).get("fidelity") for p in ("bf16", "int8")}
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "others_cpu_share": contention.others(),
              "command": "python3 bench/score_vs_ort.py " + " ".join(sys.argv[1:]), "reward_model": args.reward_model,
              "comparison": rows, "prm_embedding_fidelity": fidelity, "prm_ranking_fidelity": ranking,
              "ort_int8_embedding_fidelity": ort["int8"]["fidelity"], "ort_int8_operators": ort["int8"]["operators"],
              "prm": prm, "ort": ort}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "score_lowp.json")
    ort_peer.write_results(path, result, low_precision_markdown(result))
    plot = low_precision_plot(result, args.out)
    print(f"wrote {path}, {os.path.splitext(path)[0]}.md and {plot}")
    return 0


def low_precision_plot(r, directory):
    """score_lowp.png: sequences/s per case for prm and ORT at each precision, labelled with the
    best prm low precision's ratio to ORT int8."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["comparison"]
    series = [("prm fp32", "prm_fp32_seq_per_s"), ("prm bf16", "prm_bf16_seq_per_s"), ("prm int8", "prm_int8_seq_per_s"),
              ("ORT fp32", "ort_fp32_seq_per_s"), ("ORT int8", "ort_int8_seq_per_s")]
    width = 0.16
    figure, axis = plt.subplots(figsize=(9, 4.4))
    for k, (label, key) in enumerate(series):
        offsets = [i + (k - 2) * width for i in range(len(rows))]
        axis.bar(offsets, [row[key] or 0 for row in rows], width, label=label,
                 hatch="//" if label.startswith("ORT") else None)
    for i, row in enumerate(rows):
        if row["best_low_precision_vs_ort_int8"]:
            best = row[f"prm_{row['best_low_precision']}_seq_per_s"]
            k = [key for _, key in series].index(f"prm_{row['best_low_precision']}_seq_per_s")
            axis.annotate(f"{row['best_low_precision_vs_ort_int8']:.2f}×", (i + (k - 2) * width, best), ha="center", va="bottom", fontsize=8)
    axis.set_xticks(list(range(len(rows))), [row["case"] for row in rows], rotation=15, fontsize=8)
    axis.set_ylabel("sequences / s")
    axis.set_title("MiniLM-L6, 2 threads, same token ids (label: best prm low precision ÷ ORT int8)", fontsize=10)
    axis.legend(fontsize=8, ncol=5)
    figure.tight_layout()
    path = os.path.join(directory, "score_lowp.png")
    ort_peer.write_atomically(path, lambda temp: figure.savefig(temp, dpi=120, format="png"))
    plt.close(figure)
    return path


def low_precision_markdown(r):
    fp32 = r["prm"]["fp32"]
    lines = ["# prm bf16 / int8 against ONNX Runtime int8: all-MiniLM-L6-v2", "",
             f"{fp32.get('machine')}; {fp32.get('threads')} threads; onnxruntime {r['ort'].get('onnxruntime')}; {r['date']}; "
             f"other processes used {r['others_cpu_share']:.0%} of the machine's CPU time during the run", "",
             f"Command: `{r['command']}`", "",
             "Same token ids for every column (prm bench score --dump-inputs). prm: `prm bench score --precision P`, packed "
             "batches; ORT: its best batching strategy per case, fp32 fused graph and `quantize_dynamic` int8 of the same graph.", "",
             "| case | seqs | tokens | prm fp32 | prm bf16 | prm int8 | ORT fp32 | ORT int8 | best prm low ÷ ORT int8 | "
             "prm int8 peak RSS MB | prm fp32 peak RSS MB | ORT int8 peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["comparison"]:
        ratio = row["best_low_precision_vs_ort_int8"]
        lines.append(f"| {row['case']} | {row['sequences']} | {row['tokens']} | " + " | ".join(
            fmt(row[k], ".1f") for k in ("prm_fp32_seq_per_s", "prm_bf16_seq_per_s", "prm_int8_seq_per_s",
                                         "ort_fp32_seq_per_s", "ort_int8_seq_per_s"))
            + f" | {'**%.2f×** (%s)' % (ratio, row['best_low_precision']) if ratio else '—'} | "
            + " | ".join(fmt(row[k], ".0f") for k in ("prm_int8_peak_rss_mb", "prm_fp32_peak_rss_mb", "ort_int8_peak_rss_mb")) + " |")
    lines += ["", "Throughput in sequences per second (best of the repeats).", "",
              "## Fidelity against each side's own fp32 (same token ids)", "",
              "| who | case | seqs | cosine min | cosine mean |", "|---|---|---:|---:|---:|"]
    for precision in ("bf16", "int8"):
        for f in r["prm_embedding_fidelity"][precision]:
            lines.append(f"| prm {precision} | {f['case']} | {f['sequences']} | {f['cosine_min']:.5f} | {f['cosine_mean']:.6f} |")
    for name, f in r["ort_int8_embedding_fidelity"].items():
        lines.append(f"| ORT int8 | {name} | {f['sequences']} | {f['cosine_min']:.5f} | {f['cosine_mean']:.6f} |")
    lines += ["", f"Reward ranking against fp32 (checkpoint `{r['reward_model']}`; the 512 real replies as one prompt's "
              "candidates; pairs: all pairs of candidates; best-of-N: the 512 cut into consecutive groups of N):", "",
              "| precision | pairs same order | best-of-4 same | best-of-16 same | largest |reward difference| |",
              "|---|---:|---:|---:|---:|"]
    for precision in ("bf16", "int8"):
        f = r["prm_ranking_fidelity"][precision]
        if f:
            lines.append(f"| {precision} | {100 * f['pairs_same_order']:.2f} % of {f['pairs']} | {100 * f['best_of_same']['4']:.1f} % | "
                         f"{100 * f['best_of_same']['16']:.1f} % | {f['max_abs_reward_diff']:.4f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default=ort_peer.DEFAULT_PRM, help=f"prm binary (default {ort_peer.DEFAULT_PRM})")
    parser.add_argument("--model", default=ort_peer.DEFAULT_MODEL, help=f"model folder (default {ort_peer.DEFAULT_MODEL})")
    parser.add_argument("--data", default=ort_peer.DEFAULT_DATA, help=f"lengthpref replies (default {ort_peer.DEFAULT_DATA})")
    parser.add_argument("--dev-data", default=os.path.join("data", "lengthpref", "dev.jsonl"),
                        help="more replies for the 5,000-text run (default data/lengthpref/dev.jsonl)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per in-process case, best reported (default 5)")
    parser.add_argument("--runs", type=int, default=7, help="whole-process runs of one short text, median reported (default 7)")
    parser.add_argument("--all-backends", action="store_true", help="prm runs every case on each sgemm backend")
    parser.add_argument("--reward-model", help="a prm train checkpoint: prm also times one prompt's N = 1, 4, 16, 64 "
                        "candidates ranked through its Scorer (prm only; skipped without it)")
    parser.add_argument("--out", default=os.path.join("bench", "results"), help="results folder (default bench/results)")
    parser.add_argument("--low-precision", action="store_true", help="prm fp32/bf16/int8 against ORT fp32/int8 on the same "
                        "inputs, speed and fidelity, into score_lowp.{json,md} (no whole-process runs)")
    args = parser.parse_args()
    if args.repeats < 1 or args.runs < 1:
        parser.error("--repeats and --runs must be at least 1")
    if not os.path.isfile(args.prm):
        fail(f"prm binary not found: {args.prm} (build it with `swift build -c release`)")
    if args.low_precision:
        return low_precision(args)

    contention = ort_peer.Contention()
    with tempfile.TemporaryDirectory(prefix="score_vs_ort.") as workdir:
        during_prm = ort_peer.Contention()
        prm_report, inputs = run_prm_bench(args.prm, args, workdir)
        prm_others = during_prm.others()
        if inputs is None:
            print("note: this prm cannot dump its inputs; ort_peer.py generates the same cases", file=sys.stderr)
        ort_report = run_ort_bench(args, inputs, workdir)
        print("whole process:", flush=True)
        processes = whole_process(args, workdir)
        prm_report, ort_report, processes = (without_workdir(r, workdir) for r in (prm_report, ort_report, processes))

    score = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "others_cpu_share": contention.others(),
             "others_cpu_share_during_prm_bench": prm_others, "command": "python3 bench/score_vs_ort.py " + " ".join(sys.argv[1:]),
             "comparison": compare(prm_report, ort_report), "whole_process": processes,
             "prm": prm_report, "ort": ort_report}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "score.json")
    ort_peer.write_results(path, score, markdown(score))
    for image in plots(score, args.out):
        print(f"wrote {image}")
    print(f"wrote {path} and {os.path.splitext(path)[0]}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
