#!/usr/bin/env bash
# prm's story on the built-in data (data/lengthpref: real hh-rlhf dialogues, 40 annotators of
# whom about a third prefer the SHORTER reply): train a personalized reward model in a few
# minutes, serve it over ZeroMQ, and rank the same candidate replies for a majority user, a
# minority user and an unseen user: once with `prm score --server`, once with the Python
# client's best-of-N wrapper around a generator. Then a real pretrained generator (SmolLM2) writes
# eight replies and the model picks one for each user. Then stop the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
PRM=${PRM:-.build/release/prm}
OUT=${OUT:-runs/demo}
ENDPOINT=${ENDPOINT:-tcp://127.0.0.1:5555}
SMOLLM2=${SMOLLM2:-models/SmolLM2-135M-Instruct.Q4_1.gguf}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. embeddings from the pretrained encoder (all-MiniLM-L6-v2, read from models/)"
"$PRM" embed "A man is eating food." "A man is eating a piece of bread." "The new movie is awesome." \
    | python3 scripts/show.py cosine

say "2. train a personalized reward model with prm train's defaults"
"$PRM" train --data data/lengthpref/train.jsonl --out "$OUT"

say "3. serve it: prm serve --model $OUT --bind $ENDPOINT (in the background)"
"$PRM" serve --model "$OUT" --bind "$ENDPOINT" 2> "$OUT/serve.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
# Ready when health answers (the model loads in well under a second).
for _ in $(seq 1 100); do
    "$PRM" score --server "$ENDPOINT" --timeout 0.2 --retries 0 --prompt "Human: hi\n\nAssistant:" "Hello." >/dev/null 2>&1 && break
    sleep 0.1
done

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
    say "4. ranked over ZeroMQ for $user: $what"
    "$PRM" score --server "$ENDPOINT" --user "$user" --prompt "$prompt" "$short" "$medium" "$long" \
        | tee "$OUT/ranking-$user.jsonl" | python3 scripts/show.py ranking
done
python3 scripts/show.py compare "$OUT/ranking-worker-3.jsonl" "$OUT/ranking-worker-2.jsonl"

say "5. best-of-N with the Python client: a generator's samples, each user's pick (protocols/python/examples)"
PYTHONPATH=protocols/python/src python3 protocols/python/examples/best_of_n.py --endpoint "$ENDPOINT" \
    --users worker-3 worker-2 someone-new

say "6. a real generator: SmolLM2-135M-Instruct (models/, GGUF) writes 8 replies; the P-RM picks one per user"
question="I have trouble falling asleep at night. Any tips?"
"$PRM" generate --policy "$SMOLLM2" --prompt "$question" -n 8 --max-new-tokens 80 --temperature 0.7 --top-p 0.9 --seed 7 \
    > "$OUT/smollm2.jsonl"
for user in worker-3 worker-2; do
    echo "  for $user:"
    python3 scripts/show.py for-user "$user" < "$OUT/smollm2.jsonl" | "$PRM" score --server "$ENDPOINT" --input - \
        | tee "$OUT/smollm2-$user.jsonl" | python3 scripts/show.py ranking
done
python3 scripts/show.py compare "$OUT/smollm2-worker-3.jsonl" "$OUT/smollm2-worker-2.jsonl"

say "7. stop the server with SIGTERM: it answers what it accepted, then exits 0"
kill -TERM "$server"
wait "$server" && echo "  prm serve exited 0"
trap - EXIT

say "8. per-user accuracy on held-out dialogues (dev: seen users and 10 unseen ones)"
"$PRM" eval --model "$OUT" --data data/lengthpref/dev.jsonl --groups bench/results/quality/groups.json \
    --json "$OUT/dev-eval.json" | head -n 12
