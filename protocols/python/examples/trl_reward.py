"""The server as a TRL reward function: what ``GRPOTrainer`` calls, without TRL installed.

``prm_client.trl.PrmReward`` follows TRL's contract ``f(prompts, completions, **columns) ->
list[float | None]``: one reward per completion, the user read from the data set's ``user_id``
column. With TRL installed, the same object goes straight into the trainer (``trl_grpo.py`` runs
three steps of it)::

    from trl import GRPOTrainer
    from prm_client.trl import PrmReward
    trainer = GRPOTrainer(model="Qwen/Qwen2-0.5B-Instruct", reward_funcs=[PrmReward("tcp://127.0.0.1:5555")],
                          train_dataset=dataset)   # columns: "prompt", "user_id" (and optional "user_info")

This script makes the calls GRPOTrainer would make for a batch of two prompts with three
completions each, in TRL's standard (string) and conversational (message list) formats::

    python3 examples/trl_reward.py --endpoint tcp://127.0.0.1:5555
"""

from __future__ import annotations

import argparse

from prm_client.trl import PrmReward

# A data set with a prompt and the user it is for; GRPO samples G completions per prompt and
# repeats every column G times, so each completion has its own row.
ROWS = [
    {"prompt": "Human: How do I make my houseplants thrive?\n\nAssistant:", "user_id": "worker-1"},
    {"prompt": "Human: What's a quick breakfast idea?\n\nAssistant:", "user_id": "someone-new"},
]
COMPLETIONS = [
    ["Water them.", "Give them bright indirect light, water when the top inch of soil is dry, and feed monthly in spring.",
     "Talk to them."],
    ["Toast.", "Overnight oats: mix oats, milk and fruit the evening before and it is ready when you wake up.",
     "Yogurt with granola."],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the server's ZeroMQ endpoint")
    args = parser.parse_args()

    group = len(COMPLETIONS[0])
    prompts = [row["prompt"] for row in ROWS for _ in range(group)]
    users = [row["user_id"] for row in ROWS for _ in range(group)]
    completions = [text for texts in COMPLETIONS for text in texts]

    reward = PrmReward(args.endpoint)

    # Standard format: strings. Extra keyword arguments (completion_ids, trainer_state, other
    # columns) are accepted and ignored, as TRL requires.
    rewards = reward(prompts=prompts, completions=completions, completion_ids=[[0]] * len(completions),
                     trainer_state=None, user_id=users)
    print("standard format:")
    for user, completion, value in zip(users, completions, rewards):
        print(f"  {user:12} {value:+.4f}  {completion[:60]!r}")

    # Conversational format: lists of {"role", "content"} messages.
    conversational_prompts = [[{"role": "user", "content": prompt.removeprefix("Human: ").removesuffix("\n\nAssistant:")}]
                              for prompt in prompts]
    conversational_completions = [[{"role": "assistant", "content": text}] for text in completions]
    rewards = reward(prompts=conversational_prompts, completions=conversational_completions, user_id=users)
    print("conversational format (the same texts, so the same rewards):")
    for user, value in zip(users, rewards):
        print(f"  {user:12} {value:+.4f}")


if __name__ == "__main__":
    main()
