#!/usr/bin/env python3
"""Writes two tiny random reward-model folders that carry their own chat template, and what
transformers makes of a few conversations with them, as the fixtures
Tests/PRMCLITests/ChatTemplateScoreTests.swift and protocols/python/tests/test_as_is.py compare prm with.
Run once from the repository root; CI reads the committed results and needs no torch.

  OUT/qwen2-chatml/   Qwen2ForSequenceClassification; tokenizer_config.json's `chat_template` is
                      Qwen2's ChatML with a default system message
  OUT/llama3/         LlamaForSequenceClassification; `chat_template.jinja` is Llama-3's (it writes
                      bos_token), and tokenizer.json's post-processor adds <|begin_of_text|>, as
                      Meta's does, so a tokenizer that added its specials would double it
  OUT/expected.json   per folder and conversation: `ids`, what
                      tokenizer.apply_chat_template(conversation, tokenize=True) gives (the folder
                      read back with AutoTokenizer), and `score`, the model's logit on them

Each tokenizer is byte-level BPE (one token per byte, a few merges, "ĊĊ" among them, so how a reply
that starts with a newline joins the assistant header matters) with the template's control
tokens as special added tokens. Conversations: one turn, a two-turn prompt, non-ASCII text, a
reply with surrounding whitespace, a system message.

  python3 Tests/Reference/make_chat_reward.py --out Tests/Fixtures/chat-reward
"""
import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_llama_family import bytes_to_unicode, randomize  # noqa: E402

QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
                   "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

MERGES = [("Ġ", "t"), ("h", "e"), ("Ċ", "Ċ"), ("i", "n"), ("a", "s"), ("Ġ", "a"), ("o", "u"), ("e", "r")]
VOCAB = 272

MODELS = {
    "qwen2-chatml": dict(cls="Qwen2ForSequenceClassification",
                         specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                         template=QWEN2_TEMPLATE, template_file=False,
                         config=dict(model_type="qwen2", hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                                     max_position_embeddings=256, tie_word_embeddings=False, use_sliding_window=False, num_labels=1)),
    "llama3": dict(cls="LlamaForSequenceClassification",
                   specials=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                   bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|end_of_text|>", template=LLAMA3_TEMPLATE, template_file=True,
                   config=dict(model_type="llama", hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0,
                               max_position_embeddings=256, tie_word_embeddings=False, num_labels=1)),
}

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris, of course."}],
    [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Écris « bonjour » en japonais ?"}, {"role": "assistant", "content": "こんにちは — konnichiwa."}],
    [{"role": "user", "content": "  Tell me a joke. "}, {"role": "assistant", "content": "\n\nWhy did the hen cross the road?  "}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky colour?"},
     {"role": "assistant", "content": "Blue"}],
]


def tokenizer_json(specials, bos):
    """Byte-level BPE: 256 byte tokens (id = byte), MERGES, then `specials` as special added tokens;
    a TemplateProcessing post-processor putting `bos` first when there is one (as Llama-3's does)."""
    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    added = []
    for token in specials:
        added.append({"id": len(vocab), "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
        vocab[token] = len(vocab)
    assert len(vocab) <= VOCAB
    post = None
    if bos is not None:
        post = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": [[a, b] for a, b in MERGES]},
    }


def write(out, name, spec, seed):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(folder, "tokenizer.json")
    with open(raw, "w") as f:
        json.dump(tokenizer_json(spec["specials"], spec["bos"]), f, ensure_ascii=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=raw, bos_token=spec["bos"], eos_token=spec["eos"], pad_token=spec["pad"])
    tokenizer.chat_template = spec["template"]
    tokenizer.save_pretrained(folder)
    jinja = os.path.join(folder, "chat_template.jinja")
    if not spec["template_file"] and os.path.exists(jinja):
        # The older layout: the template as tokenizer_config.json's "chat_template" string.
        os.remove(jinja)
        config_path = os.path.join(folder, "tokenizer_config.json")
        with open(config_path) as f:
            config = json.load(f)
        config["chat_template"] = spec["template"]
        with open(config_path, "w") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
    assert os.path.exists(jinja) == spec["template_file"], "save_pretrained did not write the template where expected"

    pad = tokenizer.convert_tokens_to_ids(spec["pad"])
    config = transformers.AutoConfig.for_model(vocab_size=VOCAB, pad_token_id=pad, **spec["config"])
    model = getattr(transformers, spec["cls"])(config)
    randomize(model, seed)
    model.save_pretrained(folder, safe_serialization=True)

    # What the folder gives when read back, as a model card scores with it.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    stored = getattr(transformers, spec["cls"]).from_pretrained(folder, dtype=torch.float32).eval()
    results = []
    with torch.no_grad():
        for conversation in CONVERSATIONS:
            ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
            assert pad not in ids
            score = stored(input_ids=torch.tensor([ids])).logits[0, 0].item()
            results.append({"ids": ids, "score": score})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    expected = {"conversations": CONVERSATIONS, "transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    for seed, (name, spec) in enumerate(MODELS.items()):
        expected["models"][name] = write(args.out, name, spec, seed + 11)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"make_chat_reward: wrote {', '.join(MODELS)} to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
