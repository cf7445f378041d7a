"""Three GRPO steps of TRL's ``GRPOTrainer`` on CPU, rewarded by ``prm serve``.

The policy is a tiny random Llama (2 layers, hidden size 64) with a word-level vocabulary built in
memory from the prompts, so nothing is downloaded; its completions are word salad, which is all a
smoke test needs. The data set has a ``user_id`` column: each completion is scored for its user.
Needs ``pip install torch trl`` (TRL 1.16) besides prm_client, and a running server::

    prm serve --model runs/prm &
    python3 examples/trl_grpo.py --endpoint tcp://127.0.0.1:5555

It prints each step's logged metrics: the reward's mean and spread, and what the reward function
reported through TRL's ``log_metric`` (the fraction of known users, the server's queue time).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from typing import Any

# Type-checked without these installed (the tests do not need them); with them, as they type themselves.
import torch  # type: ignore[import-not-found, unused-ignore]
from datasets import Dataset  # type: ignore[import-not-found, import-untyped, unused-ignore]
from tokenizers import Tokenizer, models, pre_tokenizers  # type: ignore[import-not-found, import-untyped, unused-ignore]
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # type: ignore[import-not-found, unused-ignore]
from trl import GRPOConfig, GRPOTrainer  # type: ignore[import-not-found, attr-defined, unused-ignore]

from prm_client.trl import PrmReward

ROWS = [
    {"prompt": "Human: How do I make my houseplants thrive?\n\nAssistant:", "user_id": "worker-1"},
    {"prompt": "Human: What's a quick breakfast idea?\n\nAssistant:", "user_id": "worker-2"},
    {"prompt": "Human: Can you recommend a book for a long train ride?\n\nAssistant:", "user_id": "worker-3"},
    {"prompt": "Human: How can I sleep better?\n\nAssistant:", "user_id": "someone-new"},
]
SPECIAL = ["<unk>", "<pad>", "<eos>"]
#: Words the policy can say, besides those of the prompts.
WORDS = ("water light soil plants oats fruit eggs toast book story travel sleep dark quiet room tea warm "
         "bed early late morning evening read try keep avoid screens try regular schedule").split()


def tokenizer_in_memory(texts: list[str]) -> Any:
    """A word-level tokenizer over the texts' words: no download, tiny vocabulary."""
    words = Counter(word for text in texts for word in re.findall(r"\w+|[^\w\s]", text))
    vocab = {token: index for index, token in enumerate([*SPECIAL, *sorted(words)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",  # type: ignore[no-untyped-call, unused-ignore]
                                   eos_token="<eos>")


def tiny_llama(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the server's ZeroMQ endpoint")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    tokenizer = tokenizer_in_memory([row["prompt"] for row in ROWS] + [" ".join(WORDS)])
    reward = PrmReward(args.endpoint)
    with tempfile.TemporaryDirectory() as output_dir:
        config = GRPOConfig(output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=4, num_generations=4,
                            max_completion_length=12, learning_rate=1e-3, logging_steps=1, use_cpu=True, bf16=False,
                            report_to="none", save_strategy="no", seed=0)
        trainer = GRPOTrainer(model=tiny_llama(tokenizer), reward_funcs=[reward], args=config,
                              train_dataset=Dataset.from_list(ROWS), processing_class=tokenizer)
        trainer.train()
    for entry in trainer.state.log_history:
        if "step" in entry and "reward" in entry:
            metrics = {key: value for key, value in entry.items() if "reward" in key or key in ("loss", "step")}
            print(" ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                           for key, value in sorted(metrics.items())))
    print(f"last call: known_user_fraction={reward.known_user_fraction} queue_ms={reward.queue_ms:.2f}")


if __name__ == "__main__":
    main()
