#!/usr/bin/env python3
"""Issue 10 §5: table and plot of PPO runs against a personalized and a vanilla reward model.

Reads RUN_DIR/{personalized,vanilla}/ppo_log.jsonl (bench/ppo_lengthpref.sh) and writes OUT.md
(per-group mean reply length and reward: the SFT policy's own replies, i.e. iteration 1, whose
rollouts come from the unchanged SFT policy, against the mean of the last LAST iterations; and
the median time split of one iteration) and OUT.png (reward and length per group over iterations,
5-iteration rolling means)."""
import argparse
import json
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def group_series(log, group, field):
    return [entry["groups"].get(group, {}).get(field) for entry in log]


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def rolling(values, width=5):
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - width + 1):i + 1] if v is not None]
        out.append(sum(window) / len(window) if window else float("nan"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True, help="output path without extension")
    parser.add_argument("--last", type=int, default=10)
    parser.add_argument("--command", default="", help="the command that made the runs, for the table")
    args = parser.parse_args()

    runs = {name: load(f"{args.run_dir}/{name}/ppo_log.jsonl") for name in ("personalized", "vanilla")}
    groups = ("majority", "minority")
    lines = ["# PPO against a personalized and a vanilla reward model (lengthpref)", ""]
    if args.command:
        lines += [f"Command: `{args.command}`", ""]
    lines += [f"Iterations: {len(runs['personalized'])} (personalized), {len(runs['vanilla'])} (vanilla). "
              f"SFT = iteration 1's replies (sampled from the unchanged SFT policy); PPO = mean of the last {args.last} iterations.", "",
              "| reward model | group | length SFT (tokens) | length PPO (tokens) | change | words SFT | words PPO | reward SFT | reward PPO |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, log in runs.items():
        for group in groups:
            first, last = log[:1], log[-args.last:]
            l0, l1 = mean(group_series(first, group, "length_tokens")), mean(group_series(last, group, "length_tokens"))
            w0, w1 = mean(group_series(first, group, "length_words")), mean(group_series(last, group, "length_words"))
            r0, r1 = mean(group_series(first, group, "reward")), mean(group_series(last, group, "reward"))
            lines.append(f"| {name} | {group} | {l0:.1f} | {l1:.1f} | {l1 - l0:+.1f} | {w0:.1f} | {w1:.1f} | {r0:.2f} | {r1:.2f} |")
    lines += ["", "One iteration's time (median over iterations, seconds):", "",
              "| reward model | rollout | scoring | update | total | KL at the end |", "|---|---:|---:|---:|---:|---:|"]
    for name, log in runs.items():
        parts = [statistics.median(e[k] for e in log) for k in ("rollout_seconds", "scoring_seconds", "update_seconds")]
        lines.append(f"| {name} | {parts[0]:.2f} | {parts[1]:.2f} | {parts[2]:.2f} | {sum(parts):.2f} | {mean(e['kl'] for e in log[-args.last:]):.2f} |")
    with open(args.out + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for column, (name, log) in enumerate(runs.items()):
        iterations = [e["iteration"] for e in log]
        for group, colour in zip(groups, ("tab:blue", "tab:orange")):
            axes[0][column].plot(iterations, rolling(group_series(log, group, "reward")), color=colour, label=group)
            axes[1][column].plot(iterations, rolling(group_series(log, group, "length_tokens")), color=colour, label=group)
        axes[0][column].set_title(f"{name} reward model")
        axes[0][column].set_ylabel("reward (raw score)")
        axes[1][column].set_ylabel("mean reply length (policy tokens)")
        axes[1][column].set_xlabel("PPO iteration")
        axes[0][column].legend()
    fig.suptitle("PPO on lengthpref: per-group reward and reply length (5-iteration rolling means)")
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
