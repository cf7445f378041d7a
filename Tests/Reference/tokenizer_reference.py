#!/usr/bin/env python3
"""Reference outputs from Hugging Face `tokenizers` for the Swift PRMTokenizers tests.

Reads one JSON request on stdin and prints one JSON answer on stdout:

    {"tokenizer": "path/tokenizer.json", "texts": [...], "add_special_tokens": true,
     "decode": [[ids...], ...]}                                   # "decode" is optional
 -> {"ids": [[...]], "decoded": [...], "decoded_skipping_special": [...],
     "decoded_ids": [...], "decoded_ids_skipping_special": [...],
     "vocab_size": n, "token_ids": {token: id}}

`decoded` decodes each text's ids with skip_special_tokens=False, `decoded_skipping_special`
with True; `decoded_ids*` decode the ids given under "decode". Any truncation or padding
configured in the file is switched off (MiniLM's file pads and truncates to 128), because the
Swift `encode` does neither.

    {"tokenizer": ..., "normalize": [texts]}     -> {"normalized": [...]}
    {"tokenizer": ..., "pre_tokenize": [texts]}  -> {"pre_tokenized": [[piece, ...], ...]}
    {"tokenizer": ..., "pre_tokenize": [texts], "lengths_only": true}
                                                 -> {"pre_tokenized_lengths": [[n, ...], ...]}

run the file's normalizer or pre-tokenizer alone (pieces as the pre-tokenizer emits them,
byte-level characters included; or just their lengths, for sweeps over all of Unicode).

    python3 tokenizer_reference.py --unicode-table > Sources/PRMTokenizers/UnicodeTables.swift

prints the Swift table of per-code-point classes that `tokenizers` uses (see unicode_table).
"""
import json
import sys

from tokenizers import Tokenizer, normalizers, pre_tokenizers


def load(path):
    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def answer(request):
    tokenizer = load(request["tokenizer"])
    if "normalize" in request:
        normalizer = tokenizer.normalizer
        texts = request["normalize"]
        return {"normalized": [normalizer.normalize_str(t) if normalizer else t for t in texts]}
    if "pre_tokenize" in request:
        pre_tokenizer = tokenizer.pre_tokenizer
        splits = [pre_tokenizer.pre_tokenize_str(t) for t in request["pre_tokenize"]]
        if request.get("lengths_only"):
            # Piece lengths in characters (bytes, for ByteLevel): compact for whole-Unicode sweeps.
            return {"pre_tokenized_lengths": [[len(piece) for piece, _ in s] for s in splits]}
        return {"pre_tokenized": [[piece for piece, _ in s] for s in splits]}

    add_special = bool(request.get("add_special_tokens", False))
    texts = request.get("texts", [])
    encodings = tokenizer.encode_batch(texts, add_special_tokens=add_special) if texts else []
    ids = [e.ids for e in encodings]
    extra = request.get("decode", [])
    tokens = request.get("tokens", [])
    return {
        "ids": ids,
        "decoded": [tokenizer.decode(i, skip_special_tokens=False) for i in ids],
        "decoded_skipping_special": [tokenizer.decode(i, skip_special_tokens=True) for i in ids],
        "decoded_ids": [tokenizer.decode(i, skip_special_tokens=False) for i in extra],
        "decoded_ids_skipping_special": [tokenizer.decode(i, skip_special_tokens=True) for i in extra],
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "token_ids": {t: tokenizer.token_to_id(t) for t in tokens},
    }


# Flags of UnicodeTables.swift. Each is read off the behaviour of `tokenizers` itself, one code
# point at a time, not from Python's unicodedata: the Rust crate classifies with the
# `unicode_categories` 0.1 tables (an old Unicode; unassigned code points count as neither
# control nor punctuation) and its GPT-2 regex with Oniguruma's tables, while Swift's stdlib is
# on a newer Unicode, so ~5,000 code points would otherwise disagree.
BERT_CONTROL = 1   # BertNormalizer(clean_text) drops it: NUL, U+FFFD, Cc but \t\n\r, Cf, Co
BERT_PUNCT = 2     # BertPreTokenizer isolates it: ASCII symbols and P*
MARK = 4           # BertNormalizer(strip_accents) drops it after NFD: Mn
NEEDS_NFD = 8      # NFD may change it: it decomposes, or has a non-zero combining class
GPT2_LETTER = 16   # \p{L} in the ByteLevel regex
GPT2_NUMBER = 32   # \p{N} in the ByteLevel regex


def unicode_table():
    import unicodedata
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    nfd = normalizers.NFD()
    bert = pre_tokenizers.BertPreTokenizer()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    runs = []  # [start, end, flags], inclusive, only non-zero flags
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        flags = 0
        if clean.normalize_str(ch) == "":
            flags |= BERT_CONTROL
        if len(bert.pre_tokenize_str("a" + ch + "a")) == 3:
            flags |= BERT_PUNCT
        if ch != "\0" and strip.normalize_str(ch) == "":
            flags |= MARK
        if nfd.normalize_str(ch) != ch or unicodedata.combining(ch) != 0 or flags & MARK:
            flags |= NEEDS_NFD
        if len(byte_level.pre_tokenize_str("a" + ch)) == 1:
            flags |= GPT2_LETTER
        elif len(byte_level.pre_tokenize_str("1" + ch)) == 1:
            flags |= GPT2_NUMBER
        if flags == 0:
            continue
        if runs and runs[-1][1] == code - 1 and runs[-1][2] == flags:
            runs[-1][1] = code
        else:
            runs.append([code, code, flags])
    return runs


def print_unicode_table():
    import tokenizers
    runs = unicode_table()
    lines = [
        "// Generated by Tests/Reference/tokenizer_reference.py --unicode-table from Hugging Face",
        f"// tokenizers {tokenizers.__version__}; do not edit. Regenerate when the reference changes;",
        "// UnicodeSweepTests runs every code point through the stages against the reference.",
        "",
        "extension UnicodeClasses {",
        f"    /// {len(runs)} runs `start end flags` (hex, inclusive) of code points with non-zero flags.",
        "    static let runs: String = \"\"\"",
    ]
    lines += [f"        {start:X} {end:X} {flags:X}" for start, end, flags in runs]
    lines += ["        \"\"\"", "}", ""]
    sys.stdout.write("\n".join(lines))


def main():
    if sys.argv[1:] == ["--unicode-table"]:
        print_unicode_table()
        return
    if sys.argv[1:]:
        sys.exit("usage: tokenizer_reference.py < request.json | tokenizer_reference.py --unicode-table")
    request = json.load(sys.stdin)
    json.dump(answer(request), sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
