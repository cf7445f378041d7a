"""prm's Llama-family decoder beside Hugging Face transformers on CPU (2 threads each), the peer a
user would otherwise pick, on the same weights and the same token ids (issue 18's speed check). The
peer runs fp32; prm's scoring runs at fp32, bf16 and int8 (`--precision`).

    bash bench/decoder_vs_transformers.sh     # flock "$LOCK" python3 bench/decoder_vs_transformers.py

(a) Scoring. A SmolLM2 reward model from `prm train --backbone models/SmolLM2-135M-Instruct.Q4_1.gguf
--limit 32 --epochs 1 --reply-counts 0` (trained first if --checkpoint does not exist; without reply
counts its reward is ⟨e_generic, last token's hidden state⟩, which is what
`LlamaForSequenceClassification` computes): its model.safetensors and config.json are loaded into
transformers' `LlamaForSequenceClassification`, the generic user's vector as the `score` head. Cases
(token ids from the checkpoint's tokenizer.json): 64 × 128 and 1 × 128 tokens, the first 100
comparisons of data/lengthpref/dev.jsonl (200 real ragged prompt + reply sequences, the prompt cut from
the left to the 128-token window as prm's window cuts it), and one dev prompt with 16 distinct dev
replies (a best-of-16 ranking). prm runs `prm bench reward` (the product's scoring path: packed
batches of ≤ 8192 tokens, a prompt its replies share computed once) once per precision, fp32, bf16
and int8, each in a process of its own; transformers runs length-sorted padded batches of ≤ 8192
tokens (its most favourable order) with an attention mask, at fp32. At fp32 both sides' scores must
agree within 1e-3 on every sequence, or the run fails. bf16 and int8 round the layers' products, so
their scores are not held to 1e-3: each row records its largest |Δscore| against transformers' fp32
scores, that difference over the standard deviation of the fp32 scores, and, for the cases that are
rankings (the dev comparisons' chosen/rejected pairs; every pair of the 16 replies), the share of
pairs it orders as transformers fp32 does.

(b) Decoding. SmolLM2 from the GGUF file on both sides: greedy decoding after the chat-templated
prompt "Any tips for sleeping better?" — `prm bench generate` (batch 1, and 8 samples sharing the
prompt's cache; 64 steps, the prompt's pass not timed) against transformers' `generate`
(do_sample=False, 65 new tokens minus 1 new token: 64 steps without the prompt's pass) at batch 1 and
for 8 copies of the prompt.

One child process per side per case; peak RSS is each child's (os.wait4). Best of --repeats after a
warm-up on both sides. Writes bench/results/decoder_vs_transformers.{json,md}.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREADS = 2
TOKEN_BUDGET = 8192
WINDOW = 128
PROMPT = "Any tips for sleeping better?"
STEPS = 64
PRECISIONS = ["fp32", "bf16", "int8"]
FP32_TOLERANCE = 1e-3


def child(command, env=None):
    """A child's stdout and its own peak RSS in MB (wait4 on exactly that child)."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    # Read both pipes to the end before reaping, so a full pipe cannot block the child.
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{err.decode()[-3000:]}")
    return out.decode(), usage.ru_maxrss / 1024, time.monotonic() - start


def tokenizer(checkpoint):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(checkpoint, "tokenizer.json"))


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def windowed(prompt, reply):
    """prm's window rule for a model without special tokens: the whole reply (its beginning when it
    alone is longer), the prompt cut from the left."""
    reply = reply[:WINDOW]
    return prompt[len(prompt) - min(len(prompt), WINDOW - len(reply)):], reply


def scoring_cases(checkpoint, dev):
    tok = tokenizer(checkpoint)
    rows = [json.loads(line) for line in open(dev)]
    uniform = []
    for row in rows[:64]:
        ids = encode(tok, row["prompt"] + " " + row["chosen"])
        while len(ids) < WINDOW:
            ids += ids
        uniform.append({"prompt": [], "reply": ids[:WINDOW]})
    ragged = []
    for row in rows[:100]:
        prompt = encode(tok, row["prompt"])
        for key in ["chosen", "rejected"]:
            p, r = windowed(prompt, encode(tok, " " + row[key]))
            ragged.append({"prompt": p, "reply": r})
    replies = []
    for row in rows:
        for key in ["chosen", "rejected"]:
            if row[key] not in replies:
                replies.append(row[key])
    prompt = encode(tok, rows[0]["prompt"])
    best_of = [dict(zip(["prompt", "reply"], windowed(prompt, encode(tok, " " + reply)))) for reply in replies[:16]]
    # The pairs each case ranks (index pairs into its items): none for the uniform cases.
    return [{"name": "64 x 128 tokens", "items": uniform, "pairs": []}, {"name": "1 x 128 tokens", "items": uniform[:1], "pairs": []},
            {"name": "100 dev comparisons (200 real ragged sequences)", "items": ragged,
             "pairs": [(2 * k, 2 * k + 1) for k in range(len(ragged) // 2)]},
            {"name": "one dev prompt, 16 distinct replies", "items": best_of,
             "pairs": [(i, j) for i in range(len(best_of)) for j in range(i + 1, len(best_of))]}]


def agreement(scores, reference, pairs):
    """Largest |Δscore| against the reference, that over the reference scores' standard deviation,
    and the share of `pairs` ordered as the reference orders them (None without pairs)."""
    difference = max(abs(a - b) for a, b in zip(scores, reference))
    mean = sum(reference) / len(reference)
    sd = (sum((r - mean) ** 2 for r in reference) / len(reference)) ** 0.5
    ordered = [(scores[i] - scores[j]) * (reference[i] - reference[j]) > 0 for i, j in pairs if reference[i] != reference[j]]
    return difference, (difference / sd if sd > 0 else None), (sum(ordered) / len(ordered) if ordered else None)


# --- transformers children -----------------------------------------------------------------------

def peer_score(checkpoint, inputs, repeats):
    """transformers' LlamaForSequenceClassification on the checkpoint's weights: the scores of the
    case's sequences and the best time over `repeats` after a warm-up."""
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForSequenceClassification
    torch.set_num_threads(THREADS)
    config = json.load(open(os.path.join(checkpoint, "config.json")))
    config.pop("prm")
    sequences = [item["prompt"] + item["reply"] for item in json.load(open(inputs))["cases"][0]["items"]]
    used = {t for s in sequences for t in s}
    pad = next(t for t in range(config["vocab_size"] - 1, 0, -1) if t not in used)
    model = LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1, pad_token_id=pad)).eval()
    weights = load_file(os.path.join(checkpoint, "model.safetensors"))
    state = {"model." + k: v for k, v in weights.items() if not k.startswith("user.")}
    state["score.weight"] = weights["user.embeddings"][0].reshape(1, -1).clone()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"weights do not fit LlamaForSequenceClassification: missing {missing}, unexpected {unexpected}")
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * len(sequences[current[0]]) > TOKEN_BUDGET:
            batches.append(current)
            current = []
        current.append(i)
    batches.append(current)
    tensors = []
    for batch in batches:
        width = len(sequences[batch[0]])
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, :len(sequences[i])] = torch.tensor(sequences[i])
            mask[row, :len(sequences[i])] = 1
        tensors.append((batch, ids, mask))
    scores = [0.0] * len(sequences)

    def run():
        with torch.inference_mode():
            for batch, ids, mask in tensors:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, 0]
                for row, i in enumerate(batch):
                    scores[i] = float(logits[row])
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "scores": scores, "padded_tokens": sum(ids.numel() for _, ids, _ in tensors)}))


def peer_generate(gguf, samples, repeats):
    """transformers' greedy `generate` on the GGUF file: 64 decoding steps (65 new tokens minus 1,
    each the best of `repeats` after a warm-up) for `samples` copies of the chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(THREADS)
    path = os.path.realpath(gguf)
    folder, name = os.path.dirname(path), os.path.basename(path)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    load = time.perf_counter() - start
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    prompt = prompt["input_ids"] if isinstance(prompt, dict) or hasattr(prompt, "keys") else prompt
    ids = torch.tensor([prompt] * samples)

    def timed(new):
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new, min_new_tokens=new,
                                 pad_token_id=tok.eos_token_id)
            return time.perf_counter() - start, out

    timed(STEPS + 1)
    full = min(timed(STEPS + 1)[0] for _ in range(repeats))
    first = min(timed(1)[0] for _ in range(repeats))
    _, out = timed(STEPS + 1)
    print(json.dumps({"prompt_tokens": len(prompt), "seconds": full - first, "seconds_65": full, "seconds_1": first,
                      "load_seconds": load, "first_tokens": out[0, len(prompt):len(prompt) + 16].tolist()}))


# --- the run -------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default=".build/release/prm")
    parser.add_argument("--checkpoint", default="runs/decoder-rm")
    parser.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--dev", default="data/lengthpref/dev.jsonl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/decoder_vs_transformers")
    parser.add_argument("--command", default="flock \"$LOCK\" python3 bench/decoder_vs_transformers.py",
                        help="The command recorded in the results.")
    parser.add_argument("--peer-score", nargs=2, metavar=("CHECKPOINT", "INPUTS"), help=argparse.SUPPRESS)
    parser.add_argument("--peer-generate", type=int, metavar="SAMPLES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_score:
        return peer_score(*args.peer_score, args.repeats)
    if args.peer_generate:
        return peer_generate(args.gguf, args.peer_generate, args.repeats)

    os.chdir(ROOT)
    loadavg_before = open("/proc/loadavg").read().split()[:3]
    if not os.path.exists(os.path.join(args.checkpoint, "model.safetensors")):
        child([args.prm, "train", "--backbone", args.gguf, "--limit", "32", "--epochs", "1", "--reply-counts", "0",
               "--val-fraction", "0", "--no-refit-seen", "--out", args.checkpoint])
    me = [sys.executable, os.path.abspath(__file__), "--repeats", str(args.repeats), "--gguf", args.gguf]
    scoring = []
    with tempfile.TemporaryDirectory() as scratch:
        for case in scoring_cases(args.checkpoint, args.dev):
            inputs = os.path.join(scratch, "inputs.json")
            json.dump({"cases": [{"name": case["name"], "items": case["items"]}]}, open(inputs, "w"))
            out, peer_rss, _ = child(me + ["--peer-score", args.checkpoint, inputs])
            peer = json.loads(out)
            for precision in PRECISIONS:
                report = os.path.join(scratch, "prm.json")
                _, prm_rss, _ = child([args.prm, "bench", "reward", "--reward-model", args.checkpoint, "--inputs", inputs,
                                       "--precision", precision, "--repeats", str(args.repeats), "--json", report])
                ours = json.load(open(report))["cases"][0]
                difference, relative, ordered = agreement(ours["scores"], peer["scores"], case["pairs"])
                if precision == "fp32" and difference > FP32_TOLERANCE:
                    sys.exit(f"{case['name']}: prm's and transformers' fp32 scores differ by {difference:.2e} (> {FP32_TOLERANCE})")
                scoring.append(dict(case=case["name"], precision=precision, sequences=ours["sequences"], tokens=ours["tokens"],
                                    peer_padded_tokens=peer["padded_tokens"], prm_seconds=ours["seconds"], transformers_seconds=peer["seconds"],
                                    prm_sequences_per_s=ours["sequences"] / ours["seconds"],
                                    transformers_sequences_per_s=ours["sequences"] / peer["seconds"],
                                    speedup=peer["seconds"] / ours["seconds"], prm_peak_rss_mb=prm_rss, transformers_peak_rss_mb=peer_rss,
                                    max_abs_score_difference=difference, difference_over_score_sd=relative, pairs=len(case["pairs"]),
                                    pairs_ordered_as_transformers=ordered))
                print(f"{case['name']} at {precision}: prm {ours['seconds']:.3f} s, transformers fp32 {peer['seconds']:.3f} s "
                      f"({scoring[-1]['speedup']:.2f}x), |Δscore| ≤ {difference:.1e}, pairs ordered alike {ordered}", flush=True)
        report = os.path.join(scratch, "generate.json")
        _, prm_rss, _ = child([args.prm, "bench", "generate", "--policy", args.gguf, "--repeats", str(args.repeats), "--json", report])
        ours = json.load(open(report))
    decoding = []
    for case in ours["cases"]:
        out, peer_rss, _ = child(me + ["--peer-generate", str(case["sequences"])])
        peer = json.loads(out)
        if peer["prompt_tokens"] != ours["promptTokens"]:
            sys.exit(f"the chat prompt is {peer['prompt_tokens']} tokens in transformers, {ours['promptTokens']} in prm")
        peer_rate = case["sequences"] * STEPS / peer["seconds"]
        decoding.append(dict(case=case["name"], sequences=case["sequences"], prm_tokens_per_s=case["tokensPerSecond"],
                             transformers_tokens_per_s=peer_rate, speedup=case["tokensPerSecond"] / peer_rate,
                             prm_peak_rss_mb=prm_rss, transformers_peak_rss_mb=peer_rss, transformers_load_seconds=peer["load_seconds"],
                             prm_load_seconds=ours["loadSeconds"], transformers_first_tokens=peer["first_tokens"]))
        print(f"decode {case['name']}: prm {case['tokensPerSecond']:.1f} tokens/s, transformers {peer_rate:.1f} ({decoding[-1]['speedup']:.2f}x)",
              flush=True)
    import torch
    import transformers
    result = dict(command=args.command, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), machine=ours["machine"],
                  threads=THREADS, repeats=args.repeats, checkpoint=args.checkpoint, gguf=args.gguf,
                  torch=torch.__version__, transformers=transformers.__version__, python=platform.python_version(),
                  loadavg_before=loadavg_before, loadavg_after=open("/proc/loadavg").read().split()[:3],
                  memory_bandwidth_gb_per_s=ours["bandwidthGBPerSecond"], scoring=scoring, decoding=decoding)
    json.dump(result, open(args.out + ".json", "w"), indent=2)
    open(args.out + ".md", "w").write(markdown(result))
    print(markdown(result))


def markdown(r):
    lines = ["# prm's Llama-family decoder beside Hugging Face transformers on CPU", "",
             f"{r['machine']}; {r['date']}; {r['threads']} threads each (torch.set_num_threads); "
             f"torch {r['torch']}, transformers {r['transformers']}; best of {r['repeats']} after a warm-up.", "",
             f"Command: `{r['command']}`; load average before {' '.join(r['loadavg_before'])}, after {' '.join(r['loadavg_after'])}.", "",
             f"## Scoring: a SmolLM2 reward model (`{r['checkpoint']}`) against `LlamaForSequenceClassification` on its weights", "",
             "prm: `prm bench reward --precision P` (packed batches ≤ 8192 tokens, a shared prompt computed once), one process "
             "per precision. transformers: fp32, length-sorted padded batches ≤ 8192 tokens with an attention mask. Same token ids. "
             f"Every fp32 score agrees with transformers' within {FP32_TOLERANCE:g} (else the run fails); bf16 and int8 are compared "
             "with transformers' fp32 scores: the largest |Δscore|, that over the fp32 scores' standard deviation (sd), and the share "
             "of the case's pairs (the dev comparisons' chosen/rejected, all pairs of the 16 replies) ordered as transformers fp32 orders them.", "",
             "| case | sequences | tokens (transformers padded) | prm precision | prm seq/s | transformers fp32 seq/s | prm ÷ transformers | "
             "peak RSS MB prm / transformers | max abs score difference (÷ sd) | pairs ordered as transformers fp32 |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for c in r["scoring"]:
        relative = "" if c["difference_over_score_sd"] is None else f" ({c['difference_over_score_sd']:.3f})"
        ordered = "—" if c["pairs_ordered_as_transformers"] is None else f"{100 * c['pairs_ordered_as_transformers']:.1f} % of {c['pairs']}"
        lines.append(f"| {c['case']} | {c['sequences']} | {c['tokens']} ({c['peer_padded_tokens']}) | {c['precision']} | "
                     f"{c['prm_sequences_per_s']:.2f} | {c['transformers_sequences_per_s']:.2f} | **{c['speedup']:.2f}×** | "
                     f"{c['prm_peak_rss_mb']:.0f} / {c['transformers_peak_rss_mb']:.0f} | {c['max_abs_score_difference']:.1e}{relative} | {ordered} |")
    lines += ["", f"## Decoding: SmolLM2 from `{r['gguf']}`, greedy, 64 steps after the chat prompt, fp32 on both sides", "",
              "prm: `prm bench generate` (one process for both cases). transformers: `generate(do_sample=False)`, "
              "65 new tokens minus 1 (the prompt's pass not timed), one process per case. "
              f"Memory bandwidth measured by prm in the same run: {r['memory_bandwidth_gb_per_s']:.1f} GB/s.", "",
              "| case | prm tokens/s | transformers tokens/s | prm ÷ transformers | peak RSS MB prm / transformers |",
              "|---|---:|---:|---:|---:|"]
    for c in r["decoding"]:
        lines.append(f"| {c['case']} | {c['prm_tokens_per_s']:.1f} | {c['transformers_tokens_per_s']:.1f} | **{c['speedup']:.2f}×** | "
                     f"{c['prm_peak_rss_mb']:.0f} / {c['transformers_peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
