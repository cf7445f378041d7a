#!/usr/bin/env bash
# prm's story on the built-in data (data/lengthpref: real hh-rlhf dialogues, 30 annotators of
# whom a third prefer the SHORTER reply): train a small personalized reward model in a few
# minutes, then rank the same candidate replies for a majority user, a minority user and an
# unseen user.
set -euo pipefail
cd "$(dirname "$0")/.."
PRM=${PRM:-.build/release/prm}
OUT=${OUT:-runs/demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. embeddings from the pretrained encoder (all-MiniLM-L6-v2, read from models/)"
"$PRM" embed "A man is eating food." "A man is eating a piece of bread." "The new movie is awesome." \
    | python3 scripts/show.py cosine

say "2. train a personalized reward model with prm train's defaults (linear head, individual users, 2 epochs)"
"$PRM" train --data data/lengthpref/train.jsonl --out "$OUT"

prompt=$'Human: I have trouble falling asleep at night. Any tips?\n\nAssistant:'
short="Keep a regular bedtime and avoid screens before bed."
long="There are a few things that usually help. Go to bed and get up at the same time every day, even on weekends. Keep your bedroom dark, quiet and cool, avoid caffeine after lunch, and put screens away an hour before bed. If you still lie awake for more than twenty minutes, get up and do something calm until you feel sleepy."
medium="Try a consistent sleep schedule, a dark and cool bedroom, and no caffeine late in the day."

for user in worker-3 worker-2 someone-new; do
    case $user in
        worker-3) what="a majority user (prefers longer replies)" ;;
        worker-2) what="a minority user (prefers shorter replies)" ;;
        *) what="an unseen user (scored as the generic user 0)" ;;
    esac
    say "3. ranking for $user: $what"
    "$PRM" score --model "$OUT" --user "$user" --prompt "$prompt" "$short" "$medium" "$long" \
        | python3 scripts/show.py ranking
done

say "4. per-user accuracy on held-out dialogues (dev: seen users and 10 unseen ones)"
"$PRM" eval --model "$OUT" --data data/lengthpref/dev.jsonl --groups bench/results/quality/groups.json \
    --json "$OUT/dev-eval.json" | head -n 12
