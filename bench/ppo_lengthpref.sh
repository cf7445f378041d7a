#!/usr/bin/env bash
# Issue 10 §5: PPO from the SFT policy against a personalized and a vanilla reward model trained on
# the built-in length-preference data; per-group reward and reply length over iterations.
#   bash bench/ppo_lengthpref.sh SFT_DIR PERSONALIZED_RM VANILLA_RM OUT_DIR
# Writes OUT_DIR/{personalized,vanilla}/ppo_log.jsonl (and the policies); bench/plot_ppo.py makes
# the table and the plot. Run under the shared lock: flock "$LOCK" bash bench/ppo_lengthpref.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
sft=$1 personalized=$2 vanilla=$3 out=$4
prm=${PRM:-.build/release/prm}
common=(--policy "$sft" --groups bench/results/quality/groups.json --iterations "${ITERATIONS:-40}" --rollouts 60 --minibatch 15
        --max-new-tokens 48 --lr 1e-4 --user-lr 5e-3 --kl-coef 0.02 --seed 1 --checkpoint-every 1000)
"$prm" ppo "${common[@]}" --reward-model "$personalized" --out "$out/personalized"
"$prm" ppo "${common[@]}" --reward-model "$vanilla" --out "$out/vanilla"
