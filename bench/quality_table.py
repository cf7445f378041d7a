#!/usr/bin/env python3
"""Markdown tables from committed results, so every number in the README comes from a file.

  quality_table.py recipe DIR     recipe search: validation accuracy per run (DIR/<run>.json from
                                  `prm eval` on the run's val.jsonl, DIR/<run>.train_log.jsonl, DIR/<run>.flags)
  quality_table.py test DIR       test table: mean and spread over seeds of DIR/<run>.seed<N>.json
                                  (`prm eval --json` on dev.jsonl), per seen/unseen x group
  quality_table.py fewshot DIR    few-shot table from the "few_shot" part of DIR/<run>.seed<N>.json
  quality_table.py refit DIR      refit of seen users on the validation split: DIR/<ckpt>.none.json (as
                                  trained) and DIR/<ckpt>.tau<TAU>.json with its .refit.json record (bench/refit.sh)
  quality_table.py probe DIR      linear probes of h: DIR/<set>/<model>.json from `prm probe --json` (bench/probe.sh)
  quality_table.py readme README  rewrites the README blocks between <!-- table:NAME --> and
                                  <!-- /table --> markers; NAME is "test:DIR", "fewshot:DIR", "recipe:DIR", "refit:DIR" or "probe:DIR"
"""
import glob
import json
import os
import re
import statistics
import sys

def labels(report):
    """Group labels of a report, largest first (majority before minority)."""
    groups = report.get("by_group", {})
    return sorted((k for k in groups if "/" not in k), key=lambda k: (-groups[k]["n"], k))


def cells(report):
    return [f"{side}/{label}" for side in ("seen", "unseen") for label in labels(report)]


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def pct(x):
    return f"{100 * x:.1f}"


def cell_accuracy(report, name, generic=False):
    key = "generic_accuracy" if generic else "accuracy"
    if name in ("seen", "unseen", "overall"):
        return report[name][key] if report[name]["n"] else None
    cell = report.get("by_group", {}).get(name)
    return cell[key] if cell else None


def val_curve(log_path):
    """Held-out accuracy at each epoch end, from a training log."""
    if not os.path.exists(log_path):
        return []
    with open(log_path, encoding="utf-8") as f:
        return [json.loads(line).get("dev_accuracy") for line in f if '"dev_accuracy"' in line]


def recipe(folder):
    paths = sorted(glob.glob(os.path.join(folder, "*.json")))
    columns = [f"seen/{label}" for label in labels(load(paths[0]))] + ["seen"]
    lines = ["| run | flags | val acc by epoch | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---:|" * len(columns)]
    for path in paths:
        run = os.path.basename(path)[:-5]
        report = load(path)
        flags_path = os.path.join(folder, run + ".flags")
        flags = open(flags_path, encoding="utf-8").read().strip() if os.path.exists(flags_path) else ""
        curve = " → ".join(pct(a) for a in val_curve(os.path.join(folder, run + ".train_log.jsonl")) if a is not None)
        cells = [cell_accuracy(report, c) for c in columns]
        n = [report["by_group"].get(c, {}).get("n", 0) for c in columns[:-1]] + [report["seen"]["n"]]
        lines.append(f"| {run} | `{flags}` | {curve} | "
                     + " | ".join(f"{pct(a)}% (n={k})" if a is not None else "-" for a, k in zip(cells, n)) + " |")
    lines += ["", "Validation split: 20% of train.jsonl held back from training (`--val-fraction 0.2`, seed 42): of every",
              "seen user's comparisons, or, for runs with `--val-by prompts`, of the prompts with all their comparisons",
              "(texts new to the model, as dev's are); accuracy at each epoch end from the training log (before the",
              "refit of seen users), per group from `prm eval` on the held-back val.jsonl. dev.jsonl is not read.",
              "Reproduce: bash bench/recipe.sh (RUNS_FILE names the runs)"]
    return "\n".join(lines)


def seeds_by_run(folder):
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.seed*.json"))):
        match = re.match(r"(.+)\.seed(\d+)\.json$", os.path.basename(path))
        if match:
            runs.setdefault(match.group(1), []).append(load(path))
    return runs


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{pct(values[0])}%"
    return f"{pct(statistics.mean(values))} ± {pct(statistics.stdev(values))}%"


def order(runs):
    preferred = ["vanilla", "default"]
    return sorted(runs, key=lambda r: (preferred.index(r) if r in preferred else len(preferred), r))


def test(folder):
    runs = seeds_by_run(folder)
    first = next(iter(runs.values()))[0]
    names = cells(first)
    lines = ["| model | seeds | " + " | ".join(names) + " | seen | unseen | unseen, generic user |",
             "|---|---:|" + "---:|" * (len(names) + 3)]
    for run in order(runs):
        reports = runs[run]
        row = [mean_sd([cell_accuracy(r, c) for r in reports]) for c in names + ["seen", "unseen"]]
        generic = mean_sd([cell_accuracy(r, "unseen", generic=True) for r in reports])
        lines.append(f"| {run} | {len(reports)} | " + " | ".join(row) + f" | {generic} |")
    sizes = ", ".join(f"{c} n={first['by_group'][c]['n']}" for c in names if c in first.get("by_group", {}))
    lines += ["", f"Mean ± sample standard deviation over seeds; {sizes}. Unseen users are scored as the generic user 0."]
    return "\n".join(lines)


def fewshot(folder):
    runs = seeds_by_run(folder)
    first = next(iter(runs.values()))[0]
    groups = labels(first)
    lines = ["| model | K | " + " | ".join(f"unseen/{g} adapted | generic" for g in groups) + " |",
             "|---|---:|" + "---:|---:|" * len(groups)]
    for run in order(runs):
        reports = [r for r in runs[run] if r.get("few_shot")]
        if not reports:
            continue
        for i, row in enumerate(reports[0]["few_shot"]):
            cells = []
            for label in groups:
                for generic in (False, True):
                    key = "generic_accuracy" if generic else "accuracy"
                    cells.append(mean_sd([r["few_shot"][i]["by_group"].get(label, {}).get(key) for r in reports]))
            lines.append(f"| {run} | {row['k']} | " + " | ".join(cells) + " |")
    lines += ["", "Each unseen user is adapted on their first K comparisons (`prm eval --few-shot`; backbone, head and",
              "trained users frozen) and scored on the rest; 'generic' scores the same comparisons as user 0."]
    return "\n".join(lines)


def refit(folder):
    lines = ["| checkpoint | seen users' vectors | seen/majority | seen/minority | seen | own training comparisons ordered right | their mean loss |",
             "|---|---|---:|---:|---:|---:|---:|"]
    rows = []
    for path in glob.glob(os.path.join(folder, "*.json")):
        match = re.match(r"(.+)\.(none|tau([0-9.e+-]+))\.json$", os.path.basename(path))
        if match:
            tau = float(match.group(3)) if match.group(3) else None
            rows.append((match.group(1), -1 if tau is None else tau, match.group(3), path))
    n = {}
    for ckpt, _, tau, path in sorted(rows):
        report = load(path)
        n = {c: report["by_group"].get(c, {}).get("n", 0) for c in ("seen/majority", "seen/minority")} | {"seen": report["seen"]["n"]}
        cells = [cell_accuracy(report, c) for c in ("seen/majority", "seen/minority", "seen")]
        fit = "-", "-"
        if tau is not None:
            record = load(path[:-5] + ".refit.json")
            b, a = record["before"], record["after"]
            fit = (f"{pct(b['accuracy'])}% → {pct(a['accuracy'])}% (n={a['n']})", f"{b['mean_loss']:.3f} → {a['mean_loss']:.3f}")
        what = "as trained (SGD)" if tau is None else f"refitted, prior scale τ = {tau}"
        lines.append(f"| {ckpt} | {what} | " + " | ".join(f"{pct(x)}%" if x is not None else "-" for x in cells) + f" | {fit[0]} | {fit[1]} |")
    sizes = ", ".join(f"{c} n={k}" for c, k in n.items())
    lines += ["", f"Held-back validation split of train.jsonl ({sizes}); each seen user's vector refitted on the run's",
              "training part with backbone, head and user 0 frozen (`prm adapt --refit-seen --refit-prior-scale τ`).",
              "dev.jsonl is not read. Reproduce: MODE=val bash bench/refit.sh"]
    return "\n".join(lines)


PROBE_MODELS = ["frozen-mean-pool", "frozen-reply-counts", "mean-pool", "reply-counts"]


def probe(folder):
    """One row per (set, model): log-word-count R² and pair ordering, the yes/no properties' ROC areas."""
    binary = ["question", "negation", "refusal", "first_person", "list"]
    lines = ["| set | h of | log word count R² | pairs ordered by it | " + " | ".join(f"{b.replace('_', ' ')} AUC" for b in binary) + " |",
             "|---|---|---:|---:|" + "---:|" * len(binary)]
    for set_dir in sorted(glob.glob(os.path.join(folder, "*", ""))):
        names = [os.path.basename(p)[:-5] for p in glob.glob(os.path.join(set_dir, "*.json"))]
        for name in sorted((n for n in names if n != "reference"), key=lambda n: (PROBE_MODELS.index(n) if n in PROBE_MODELS else 99, n)):
            report = load(os.path.join(set_dir, name + ".json"))
            props = {p["property"]: p for p in report["properties"]}
            cells = [f"{props['log_word_count']['r2']:.3f}", f"{pct(report['pair_ordering']['fraction'])}%"]
            cells += [f"{props[b]['auc']:.2f}" for b in binary]
            lines.append(f"| {os.path.basename(os.path.normpath(set_dir))} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "Ridge probes from h on 600 distinct training replies, scored on 600 others (split by prompt, seed 42);",
              "`prm probe`, run by `bash bench/probe.sh NAME=CHECKPOINT`. AUC: ROC area of the probe's unthresholded prediction."]
    return "\n".join(lines)


def readme(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    makers = {"test": test, "fewshot": fewshot, "recipe": recipe, "refit": refit, "probe": probe}

    def replace(match):
        kind, folder = match.group(1).split(":", 1)
        return f"<!-- table:{match.group(1)} -->\n{makers[kind](folder)}\n<!-- /table -->"

    text = re.sub(r"<!-- table:(\S+) -->\n.*?<!-- /table -->", replace, text, flags=re.S)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("recipe", "test", "fewshot", "refit", "probe", "readme"):
        sys.exit(__doc__)
    if argv[1] == "readme":
        readme(argv[2])
    else:
        print({"recipe": recipe, "test": test, "fewshot": fewshot, "refit": refit, "probe": probe}[argv[1]](argv[2]))


if __name__ == "__main__":
    main(sys.argv)
