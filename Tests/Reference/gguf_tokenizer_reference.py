"""Expected token ids and chat renderings for the SmolLM2 GGUF file, from independent
implementations: a Hugging Face `tokenizers` tokenizer built from the file's own
`tokenizer.ggml.*` metadata (read by the `gguf` package), and the file's
`tokenizer.chat_template` rendered by jinja2, as transformers' apply_chat_template does.

    python3 Tests/Reference/gguf_tokenizer_reference.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes Tests/Fixtures/gguf/smollm2-tokenizer.json:
  {"texts": [...], "ids": [[...], ...], "chats": [{"messages": [...], "rendered": "..."}, ...]}
"""
import argparse
import json

import jinja2
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

OUT = "Tests/Fixtures/gguf/smollm2-tokenizer.json"

TEXTS = [
    "Hello, world!",
    "hello world",
    " leading space",
    "  two leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nmany",
    "\n",
    "",
    "It's a dog's life; they'll say we'd've won.",
    "I'M SHOUTING, ISN'T IT?",
    "Numbers: 3.14159, 2024-12-04, 1,000,000 and 007",
    "12345678901234567890",
    "x = a1b2c3 + 99bottles",
    "Unicode: café, naïve, Ærøskøbing, Straße",
    "中文字符和日本語のテキスト",
    "emoji 😀🎉👩‍💻 done",
    "Ελληνικά και русский текст",
    "Arabic: مرحبا بالعالم",
    "math: ∑ x² ≤ ∞, ½ ⅓ ¼",
    "Roman numerals Ⅻ and superscript ² digits",
    "code: def f(x):\n    return x**2  # square",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|endoftext|>text after end",
    "<|im_start|><|im_end|><|im_start|>",
    "not <|im_start special",
    "https://example.com/path?query=1&x=y#frag",
    "email@example.org, @handle #hashtag",
    "   \n  \t mixed whitespace \r\n end",
    "a\u00a0non-breaking\u2009thin space",
    "repeated!!!??? ... --- ***",
    "CamelCaseIdentifierWithNumbers123",
    "What is the capital of France?",
    "Write a haiku about the sea.",
]

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}],
    [{"role": "user", "content": "First question"}, {"role": "assistant", "content": "An answer."},
     {"role": "user", "content": "Second\nline two"}],
]


def field(reader, key):
    return reader.fields[key].contents()


def build_tokenizer(reader):
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    assert field(reader, "tokenizer.ggml.pre") == "smollm"
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3]
    tok.add_special_tokens(special)
    return tok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    reader = GGUFReader(args.model)
    tok = build_tokenizer(reader)
    ids = [tok.encode(text, add_special_tokens=False).ids for text in TEXTS]
    template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(field(reader, "tokenizer.chat_template"))
    chats = [{"messages": m, "rendered": template.render(messages=m, add_generation_prompt=True)} for m in CHATS]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"texts": TEXTS, "ids": ids, "chats": chats}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
