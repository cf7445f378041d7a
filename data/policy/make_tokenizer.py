#!/usr/bin/env python3
"""Train the policy's byte-level BPE vocabulary (data/policy/tokenizer.json) on lengthpref.

    python3 data/policy/make_tokenizer.py                       # writes data/policy/tokenizer.json
    python3 data/policy/make_tokenizer.py --out /tmp/t.json --vocab-size 4096

The corpus is every turn of every dialogue in data/lengthpref/train.jsonl (the prompt's turns
and both final replies), each with one leading space, as the policy sees it: the dialogue format
(data/policy/README.md) puts a role token before each turn and the turn's text after a space.
The pipeline is GPT-2's (no normalizer, ByteLevel pre-tokenizer without a prefix space, BPE over
the 256 byte symbols, ByteLevel decoder) with the three role tokens as special tokens, ids 0-2:
<|human|>, <|assistant|>, <|end|> (end of reply). Training is deterministic: the same corpus and
vocabulary size give the same vocabulary and merges.
"""
import argparse
import json
import os
import re
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|human|>", "<|assistant|>", "<|end|>"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A turn starts at the beginning of the text or after a blank line (Sources/PRMPolicy/DialogueFormat.swift).
TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def turns(text):
    """The texts of a dialogue's turns, stripped; text without role tags is one turn."""
    marks = list(TURN.finditer(text))
    if not marks:
        return [text.strip()]
    return [text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))].strip() for i, m in enumerate(marks)]


def corpus(path):
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{path}:{line_number}: not JSON: {error}")
            for text in turns(row["prompt"]) + [row["chosen"].strip(), row["rejected"].strip()]:
                if text:
                    texts.append(" " + text)
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data/lengthpref/train.jsonl"), help="lengthpref-style JSONL")
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary size, bytes and special tokens included")
    parser.add_argument("--out", default=os.path.join(ROOT, "data/policy/tokenizer.json"), help="where to write tokenizer.json")
    args = parser.parse_args()

    texts = corpus(args.data)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer.save(args.out)
    tokens = sum(len(encoding.ids) for encoding in tokenizer.encode_batch(texts))
    print(json.dumps({"out": args.out, "vocab_size": tokenizer.get_vocab_size(), "turns": len(texts), "tokens": tokens,
                      "chars_per_token": round(sum(map(len, texts)) / tokens, 2)}))


if __name__ == "__main__":
    main()
