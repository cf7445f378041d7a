#!/usr/bin/env python3
"""Train a GPT-2 style byte-level BPE tokenizer.json with Hugging Face `tokenizers`.

    python3 Tests/Reference/train_bpe.py --corpus train.jsonl [dev.jsonl ...] --vocab-size 2000 --out tokenizer.json

The texts are the `prompt`, `chosen` and `rejected` fields of every JSONL record, in file
order. The pipeline is GPT-2's: no normalizer, ByteLevel pre-tokenizer (add_prefix_space
false, GPT-2 split regex), BPE over the 256 byte symbols, ByteLevel decoder and post-processor,
and `<|endoftext|>` as the one special token (id 0).

The result is deterministic: the same corpus and vocabulary size give the same file byte for
byte (the trainer breaks count ties by pair order; `--check-deterministic` verifies it by
training twice). Swift tests (PRMTokenizersTests, the GPT-2 model tests) call this script, so
keep the command line stable.
"""
import argparse
import json
import os
import sys
import tempfile

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

FIELDS = ("prompt", "chosen", "rejected")
END_OF_TEXT = "<|endoftext|>"


def read_texts(paths):
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    sys.exit(f"{path}:{line_number}: not JSON: {error}")
                for field in FIELDS:
                    value = record.get(field)
                    if isinstance(value, str):
                        texts.append(value)
    if not texts:
        sys.exit("no prompt/chosen/rejected texts in " + ", ".join(paths))
    return texts


def train(texts, vocab_size, min_frequency):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", required=True, help="JSONL files with prompt/chosen/rejected")
    parser.add_argument("--vocab-size", type=int, required=True, help="final vocabulary size, bytes and special token included")
    parser.add_argument("--out", required=True, help="where to write tokenizer.json")
    parser.add_argument("--min-frequency", type=int, default=2, help="minimum pair count for a merge (default 2)")
    parser.add_argument("--check-deterministic", action="store_true", help="train twice and fail if the files differ")
    args = parser.parse_args()
    if args.vocab_size < 257:
        sys.exit(f"--vocab-size {args.vocab_size} is below the 256 bytes plus {END_OF_TEXT}")

    texts = read_texts(args.corpus)
    tokenizer = train(texts, args.vocab_size, args.min_frequency)
    tokenizer.save(args.out)
    if args.check_deterministic:
        with tempfile.TemporaryDirectory() as folder:
            again = os.path.join(folder, "tokenizer.json")
            train(texts, args.vocab_size, args.min_frequency).save(again)
            with open(args.out, "rb") as first, open(again, "rb") as second:
                if first.read() != second.read():
                    sys.exit("training is not deterministic: two runs gave different files")
    print(json.dumps({"out": args.out, "vocab_size": tokenizer.get_vocab_size(), "texts": len(texts)}))


if __name__ == "__main__":
    main()
