#!/usr/bin/env python3
"""ONNX Runtime peer for prm's scoring benchmarks: all-MiniLM-L6-v2 as the fused BERT graph.

What people deploy for MiniLM on CPU is ONNX Runtime running the graph that
onnxruntime.transformers' BERT optimizer produces. This script builds that graph directly with
the `onnx` package from the files prm reads (config.json, model.safetensors, tokenizer.json):
one EmbedLayerNormalization, per layer one Attention (packed QKV weights, 1-D mask_index),
MatMul projections, two SkipLayerNormalization (bias folded in) and one BiasGelu; then mean
pooling and L2 normalisation, as sentence-transformers does. float32 throughout.

Subcommands:
  bench   check the graph (fused-operator counts; embeddings against the float64 numpy
          reference and against `prm embed`), then time the benchmark cases, each in a fresh
          process (so its peak RSS is its own), and time tokenization. Exits 1 on any mismatch.
  export  write the fused graph to an .onnx file.
  embed   load an .onnx file and embed texts (one JSON line each): the whole-process peer of
          `prm embed`, importing only what a deployment would (no graph building).

Session settings everywhere: 2 intra-op threads, 1 inter-op thread, ORT_ENABLE_ALL, sequential.
"""
import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The float64 references and their plumbing live with the tests; the peer reuses them.
sys.path.insert(0, os.path.join(REPO, "Tests", "Reference"))
from reference_common import fail, jsonl_rows, load_json, load_weights  # noqa: E402

DEFAULT_MODEL = os.path.join("models", "all-MiniLM-L6-v2")
DEFAULT_DATA = os.path.join("data", "lengthpref", "train.jsonl")
DEFAULT_PRM = os.path.join(".build", "release", "prm")
MAX_TOKENS = 128  # the cases truncate replies here, as `prm embed --max-tokens 128` does
BATCH = 32        # ORT's usual padded batch size
THREADS = 2

# What the BERT optimizer produces for a 6-layer BertModel (onnx_model_bert.py's statistics).
EXPECTED_FUSED = {"EmbedLayerNormalization": 1, "Attention": 6, "SkipLayerNormalization": 12, "BiasGelu": 6}
# Unfused leftovers that would mean a fusion silently did not happen.
UNFUSED = ("LayerNormalization", "Softmax", "Gelu", "Erf", "Gather")

# Tolerances: float32 against float64 through 6 layers, and against prm's float32 path.
REFERENCE_MAX_ABS = 1e-4
MIN_COSINE = 0.9999


# ---------------------------------------------------------------- graph


def model_config(model_dir):
    config = load_json(os.path.join(model_dir, "config.json"), "config")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "vocab_size"):
        if key not in config:
            fail(f"config.json in {model_dir} lacks '{key}'")
    if config.get("model_type", "bert") != "bert":
        fail(f"config.json in {model_dir}: model_type '{config['model_type']}', expected 'bert'")
    if config.get("hidden_act", "gelu") != "gelu":
        fail(f"config.json in {model_dir}: hidden_act '{config['hidden_act']}', expected 'gelu' (BiasGelu is exact erf GELU)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        fail(f"config.json in {model_dir}: position_embedding_type '{config['position_embedding_type']}', expected 'absolute'")
    if config["hidden_size"] % config["num_attention_heads"] != 0:
        fail(f"config.json in {model_dir}: hidden_size {config['hidden_size']} is not divisible by "
             f"num_attention_heads {config['num_attention_heads']}")
    return config


def build_graph(model_dir):
    """The fused BERT graph as onnxruntime.transformers' optimizer emits it (model_type "bert",
    default options: mask as a 1-D mask_index computed by EmbedLayerNormalization)."""
    from onnx import TensorProto, helper, numpy_helper

    config = model_config(model_dir)
    C, L, H = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    I, eps = config["intermediate_size"], float(config["layer_norm_eps"])
    V, P, TV = config["vocab_size"], config["max_position_embeddings"], config["type_vocab_size"]
    get64 = load_weights(model_dir, "bert.")  # float64 copies; float32 -> float64 -> float32 is exact

    initializers = []

    def weight(name, array):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def get(name, shape):
        return get64(name, shape).astype(np.float32)

    def node(op, inputs, outputs, contrib=False, **attributes):
        return helper.make_node(op, inputs, outputs, name=outputs[0] + "/" + op,
                                domain="com.microsoft" if contrib else "", **attributes)

    nodes = [node("EmbedLayerNormalization",
                  ["input_ids", "token_type_ids",
                   weight("word_embeddings", get("embeddings.word_embeddings.weight", (V, C))),
                   weight("position_embeddings", get("embeddings.position_embeddings.weight", (P, C))),
                   weight("token_type_embeddings", get("embeddings.token_type_embeddings.weight", (TV, C))),
                   weight("embeddings.gamma", get("embeddings.LayerNorm.weight", (C,))),
                   weight("embeddings.beta", get("embeddings.LayerNorm.bias", (C,))),
                   "attention_mask"],
                  ["embeddings", "mask_index"], contrib=True, epsilon=eps)]
    x = "embeddings"
    for l in range(L):
        p, o = f"encoder.layer.{l}.", f"layer{l}."
        # Hugging Face Linear stores [out, in]; MatMul wants [in, out]. Attention's packed weight
        # is (C, 3C) with columns [Q | K | V] (the optimizer stacks q, k, v on axis 1), bias [bq, bk, bv].
        qkv_w = np.concatenate([get(p + f"attention.self.{n}.weight", (C, C)).T for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([get(p + f"attention.self.{n}.bias", (C,)) for n in ("query", "key", "value")])
        nodes += [
            node("Attention", [x, weight(o + "qkv_weight", qkv_w), weight(o + "qkv_bias", qkv_b), "mask_index"],
                 [o + "context"], contrib=True, num_heads=H),
            node("MatMul", [o + "context", weight(o + "attention_out_weight",
                                                  get(p + "attention.output.dense.weight", (C, C)).T)],
                 [o + "attention_out"]),
            # SkipLayerNormalization(input, skip, gamma, beta, bias) = LayerNorm(input + bias + skip)
            node("SkipLayerNormalization",
                 [o + "attention_out", x,
                  weight(o + "attention_ln_gamma", get(p + "attention.output.LayerNorm.weight", (C,))),
                  weight(o + "attention_ln_beta", get(p + "attention.output.LayerNorm.bias", (C,))),
                  weight(o + "attention_out_bias", get(p + "attention.output.dense.bias", (C,)))],
                 [o + "attention_ln"], contrib=True, epsilon=eps),
            node("MatMul", [o + "attention_ln", weight(o + "ffn_in_weight", get(p + "intermediate.dense.weight", (I, C)).T)],
                 [o + "ffn_in"]),
            node("BiasGelu", [o + "ffn_in", weight(o + "ffn_in_bias", get(p + "intermediate.dense.bias", (I,)))],
                 [o + "gelu"], contrib=True),
            node("MatMul", [o + "gelu", weight(o + "ffn_out_weight", get(p + "output.dense.weight", (C, I)).T)],
                 [o + "ffn_out"]),
            node("SkipLayerNormalization",
                 [o + "ffn_out", o + "attention_ln",
                  weight(o + "output_ln_gamma", get(p + "output.LayerNorm.weight", (C,))),
                  weight(o + "output_ln_beta", get(p + "output.LayerNorm.bias", (C,))),
                  weight(o + "ffn_out_bias", get(p + "output.dense.bias", (C,)))],
                 [o + "output"], contrib=True, epsilon=eps),
        ]
        x = o + "output"

    # sentence-transformers Pooling(mean) + Normalize: sum(h * mask) / max(sum(mask), 1e-9),
    # then x / max(||x||, 1e-12) (torch F.normalize).
    initializers += [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
                     numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
                     numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "count_floor"),
                     numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "norm_floor")]
    nodes += [
        node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["mask_float", "axis2"], ["mask_column"]),
        node("Mul", [x, "mask_column"], ["masked_hidden"]),
        node("ReduceSum", ["masked_hidden", "axis1"], ["token_sum"], keepdims=0),
        node("ReduceSum", ["mask_float", "axis1"], ["token_count"], keepdims=1),
        node("Max", ["token_count", "count_floor"], ["token_count_floored"]),
        node("Div", ["token_sum", "token_count_floored"], ["mean_pooled"]),
        node("ReduceL2", ["mean_pooled"], ["norm"], axes=[1], keepdims=1),
        node("Max", ["norm", "norm_floor"], ["norm_floored"]),
        node("Div", ["mean_pooled", "norm_floored"], ["sentence_embedding"]),
    ]
    ids = [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "sequence"])
           for name in ("input_ids", "token_type_ids", "attention_mask")]
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", C])
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2 fused", ids, [output], initializers)
    model = helper.make_model(graph, producer_name="prm bench/ort_peer.py",
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8  # opset 17's IR; any ORT >= 1.13 reads it
    return model


def operator_counts(model):
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def check_fused(counts, what):
    """Fails unless `counts` has exactly the optimizer's fused operators and no unfused leftovers."""
    problems = [f"{op}: {counts.get(op, 0)}, expected {n}" for op, n in EXPECTED_FUSED.items() if counts.get(op, 0) != n]
    problems += [f"{op}: {counts[op]}, expected 0 (unfused)" for op in UNFUSED if counts.get(op, 0)]
    if problems:
        fail(f"{what} is not the fused BERT graph: " + "; ".join(problems))


# ---------------------------------------------------------------- session


def session_options(optimized_path=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if optimized_path:
        options.optimized_model_filepath = optimized_path  # the graph ORT actually runs
        options.log_severity_level = 3  # saving it warns that NCHWc layouts are machine-specific: known
    return options


def open_session(onnx_path, optimized_path=None):
    import onnxruntime as ort
    return ort.InferenceSession(onnx_path, session_options(optimized_path), providers=["CPUExecutionProvider"])


def embed_batch(session, sequences):
    """Embeddings (B, C) of one right-padded batch of token-id lists."""
    B, T = len(sequences), max(len(s) for s in sequences)
    ids = np.zeros((B, T), dtype=np.int32)  # [PAD] = 0; padded keys are masked, padded rows not pooled
    mask = np.zeros((B, T), dtype=np.int32)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    return session.run(["sentence_embedding"], feed)[0]


# Strategies over a list of sequences: (name, batch size, sort by length?)
STRATEGIES = {
    "arrival-32": (BATCH, False),
    "sorted-32": (BATCH, True),
    "single": (1, False),
}


def strategy_order(sequences, sort):
    order = list(range(len(sequences)))
    if sort:  # longest first, stable: batches of near-equal lengths waste little padding
        order.sort(key=lambda i: -len(sequences[i]))
    return order


def embed_all(session, sequences, batch, sort):
    """Embeddings of all sequences, in input order, batched `batch` at a time."""
    order = strategy_order(sequences, sort)
    out = None
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        vectors = embed_batch(session, [sequences[i] for i in chunk])
        if out is None:
            out = np.empty((len(sequences), vectors.shape[1]), dtype=np.float32)
        out[chunk] = vectors
    return out


def padded_tokens(sequences, batch, sort):
    order = strategy_order(sequences, sort)
    return sum(len(chunk) * max(len(sequences[i]) for i in chunk)
               for chunk in (order[s:s + batch] for s in range(0, len(order), batch)))


# ---------------------------------------------------------------- inputs


def load_tokenizer(model_dir):
    from tokenizers import Tokenizer
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(path):
        fail(f"tokenizer not found: {path}")
    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_padding()  # all-MiniLM-L6-v2's tokenizer.json pads to 128; we pad per batch
    return tokenizer


def real_replies(data_paths, count=None):
    """The first `count` (default: all) distinct chosen/rejected replies of lengthpref JSONL
    files, in file order."""
    seen, replies = set(), []
    for data_path in data_paths:
        for number, row in jsonl_rows(data_path, "data"):
            for key in ("chosen", "rejected"):
                text = row.get(key) if isinstance(row, dict) else None
                if not isinstance(text, str):
                    fail(f"{data_path}:{number}: field '{key}' missing or not a string")
                if text not in seen:
                    seen.add(text)
                    replies.append(text)
                    if len(replies) == count:
                        return replies
    if count is not None:
        fail(f"{', '.join(data_paths)}: only {len(replies)} distinct replies, {count} needed")
    return replies


def encode(tokenizer, texts, max_tokens):
    """Token ids incl. [CLS]/[SEP], truncated to `max_tokens` as prm's SentenceEmbedder does
    (the text's first max_tokens - 2 tokens, then the special tokens)."""
    tokenizer.enable_truncation(max_tokens)
    return [e.ids for e in tokenizer.encode_batch(texts)]


def uniform(tokenizer, texts, length):
    """One sequence of exactly `length` tokens per text: the text's tokens repeated until long
    enough, cut to `length` with [CLS]/[SEP] included (as prm bench score builds them)."""
    tokenizer.no_truncation()
    room = length - tokenizer.num_special_tokens_to_add(False)
    cls_sep = tokenizer.encode("").ids  # the post-processor's template around no tokens: [CLS] [SEP]
    sequences = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids = encoding.ids
        if not ids:
            fail(f"cannot build a {length}-token sequence from a text without tokens")
        repeated = ids * (room // len(ids) + 1)
        sequences.append(cls_sep[:1] + repeated[:room] + cls_sep[1:])
    return sequences


def generated_cases(tokenizer, replies):
    """The cases of `prm bench score`, built the same way (for a prm without --dump-inputs).
    Both real cases hold the replies in arrival order; prm batches them differently, ORT runs
    its own strategies on them."""
    real = encode(tokenizer, replies, MAX_TOKENS)
    return {
        "latency-1x128": uniform(tokenizer, replies[:1], 128),
        "uniform-64x64": uniform(tokenizer, replies[:64], 64),
        "uniform-32x128": uniform(tokenizer, replies[:32], 128),
        "real-512-arrival": real,
        "real-512-sorted": real,
    }


def read_cases(path, vocab_size, max_positions):
    """A `prm bench score --dump-inputs` file: {"case": [[token ids incl. specials], ...], ...}."""
    cases = load_json(path, "inputs")
    if not isinstance(cases, dict) or not cases:
        fail(f"inputs {path}: expected a non-empty object {{case name: [[ids], ...]}}")
    for name, sequences in cases.items():
        if not isinstance(sequences, list) or not sequences:
            fail(f"inputs {path}: case '{name}' must be a non-empty list of sequences")
        for i, s in enumerate(sequences):
            if (not isinstance(s, list) or not s
                    or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab_size for t in s)):
                fail(f"inputs {path}: case '{name}' sequence {i} must be a non-empty list of token ids in [0, {vocab_size})")
            if len(s) > max_positions:
                fail(f"inputs {path}: case '{name}' sequence {i} has {len(s)} tokens, more than {max_positions} positions")
    return cases


def strategies_for(sequences):
    """Ragged cases get ORT's three strategies; uniform ones padded batches of 32 (no padding)."""
    if len({len(s) for s in sequences}) > 1:
        return list(STRATEGIES)
    return ["arrival-32"]


# ---------------------------------------------------------------- checks


def cosines(a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def check_against_reference(session, model_dir, sequences, workdir):
    """ORT (padded batches of 32 in the given order) against bert_reference.py's float64 `pooled`.
    The reference pads each call to its longest sequence and its erf is scalar Python, so the
    sequences go to it in length-sorted groups of 8 to keep the check to seconds."""
    from safetensors.numpy import load_file
    script = os.path.join(REPO, "Tests", "Reference", "bert_reference.py")
    request, result = os.path.join(workdir, "reference_in.json"), os.path.join(workdir, "reference_out.safetensors")
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    expected = np.empty((len(sequences), session.get_outputs()[0].shape[1]))
    for start in range(0, len(order), 8):
        group = order[start:start + 8]
        with open(request, "w") as f:
            json.dump({"ids": [sequences[i] for i in group]}, f)
        run = subprocess.run([sys.executable, script, "--model", model_dir, "--input", request, "--output", result,
                              "--dtype", "float64"], capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"bert_reference.py failed ({run.returncode}): {run.stderr.strip()}")
        reference = load_file(result)
        for slot, i in enumerate(group):
            expected[i] = reference[f"pooled.{slot}"]
    got = embed_all(session, sequences, BATCH, sort=False)
    return float(np.abs(got - expected).max()), float(cosines(got, expected).min())


def prm_embeddings(prm, model_dir, texts, workdir):
    """`prm embed --max-tokens 128` of `texts` (JSONL in, JSONL out), in input order."""
    if not os.path.isfile(prm):
        fail(f"prm binary not found: {prm} (build it with `swift build -c release`)")
    request = os.path.join(workdir, "texts.jsonl")
    with open(request, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    run = subprocess.run([prm, "embed", "--model", model_dir, "--max-tokens", str(MAX_TOKENS), "--input", request],
                         capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{prm} embed failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    lines = run.stdout.splitlines()
    if len(lines) != len(texts):
        fail(f"{prm} embed wrote {len(lines)} lines for {len(texts)} texts")
    vectors = []
    for i, line in enumerate(lines):
        row = json.loads(line)
        if row.get("text") != texts[i]:
            fail(f"{prm} embed line {i + 1} is for another text than input {i + 1}")
        vectors.append(row["embedding"])
    return np.array(vectors, dtype=np.float32)


def check(session, model_dir, prm, tokenizer, replies, workdir):
    """Both correctness checks; fails (exit 1) on a mismatch. Returns the numbers."""
    # The float64 reference is slow: 16 replies spread over the length range, the longest
    # (truncated at 128) included, all run through ORT as one padded batch in file order.
    ids = encode(tokenizer, replies, MAX_TOKENS)
    by_length = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    subset = sorted(set(by_length[::len(by_length) // 14][:14] + by_length[-2:]))
    max_abs, reference_cosine = check_against_reference(session, model_dir, [ids[i] for i in subset], workdir)
    print(f"  vs float64 numpy reference ({len(subset)} replies, {min(len(ids[i]) for i in subset)}-"
          f"{max(len(ids[i]) for i in subset)} tokens): max abs diff {max_abs:.2e}, min cosine {reference_cosine:.8f}")

    ours = embed_all(session, ids, BATCH, sort=True)
    theirs = prm_embeddings(prm, model_dir, replies, workdir)
    prm_cos = cosines(ours, theirs)
    worst = int(prm_cos.argmin())
    print(f"  vs prm embed ({len(replies)} replies): min cosine {prm_cos[worst]:.8f} (reply {worst}), "
          f"max abs diff {float(np.abs(ours - theirs).max()):.2e}")

    if max_abs > REFERENCE_MAX_ABS or reference_cosine < MIN_COSINE:
        fail(f"ORT differs from the float64 reference: max abs diff {max_abs:.3e} (limit {REFERENCE_MAX_ABS}), "
             f"min cosine {reference_cosine:.8f} (limit {MIN_COSINE})")
    if prm_cos[worst] <= MIN_COSINE:
        bad = int((prm_cos <= MIN_COSINE).sum())
        fail(f"ORT differs from prm embed on {bad} of {len(replies)} replies: reply {worst} ({replies[worst][:60]!r}) "
             f"has cosine {prm_cos[worst]:.8f}, limit > {MIN_COSINE}")
    return {"reference": {"texts": len(subset), "max_abs_diff": max_abs, "min_cosine": reference_cosine},
            "prm": {"texts": len(replies), "min_cosine": float(prm_cos[worst]),
                    "max_abs_diff": float(np.abs(ours - theirs).max())}}


# ---------------------------------------------------------------- benchmark


def peak_rss_mb():
    """This process's peak resident memory in MB (MiB). VmHWM, the high-water mark of this
    process's own address space: ru_maxrss would also count the parent's resident memory at
    fork/exec (Linux carries the old address space's high-water mark into ru_maxrss on exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    fail("/proc/self/status has no VmHWM line (peak RSS needs Linux)")


class Contention:
    """The share of the machine's CPU time used by anything but this process and its reaped
    children (other processes, and the hypervisor's steal) since construction. On a shared
    machine that work slows every figure; it is recorded beside them."""

    def __init__(self):
        self.start = self.sample()

    @staticmethod
    def sample():
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        hz = os.sysconf("SC_CLK_TCK")
        ours = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for field in ("ru_utime", "ru_stime"))
        return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz, ours

    def others(self):
        (busy0, total0, ours0), (busy, total, ours) = self.start, self.sample()
        return max(0.0, (busy - busy0 - (ours - ours0)) / max(total - total0, 1e-9))


def time_case(onnx_path, sequences, strategy, repeats):
    """Runs in a fresh process: open the session, warm up, best of `repeats` over all sequences."""
    batch, sort = STRATEGIES[strategy]
    session = open_session(onnx_path)
    embed_all(session, sequences, batch, sort)  # warm-up: first-run allocations and prepacking
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embed_all(session, sequences, batch, sort)
        best = min(best, time.perf_counter() - start)
    return best, peak_rss_mb()


def bench_cases(onnx_path, cases, repeats):
    rows, measured = [], {}
    context = multiprocessing.get_context("spawn")  # a new interpreter per case: its VmHWM is the case's own
    for name, sequences in cases.items():
        for strategy in strategies_for(sequences):
            batch, sort = STRATEGIES[strategy]
            # prm's two real cases are the same replies batched two ways; ORT runs them once.
            key = (json.dumps(sequences), strategy)
            if key not in measured:
                contention = Contention()
                with context.Pool(1) as pool:
                    seconds, rss = pool.apply(time_case, (onnx_path, sequences, strategy, repeats))
                measured[key] = seconds, rss, contention.others()  # after the pool reaped its worker
            seconds, rss, others = measured[key]
            tokens = sum(len(s) for s in sequences)
            row = {"case": name, "strategy": strategy, "batch": batch, "sequences": len(sequences), "tokens": tokens,
                   "padded_tokens": padded_tokens(sequences, batch, sort), "seconds": seconds,
                   "seq_per_s": len(sequences) / seconds, "tokens_per_s": tokens / seconds, "peak_rss_mb": rss,
                   "others_cpu_share": others}
            rows.append(row)
            print(f"  {name:18} {strategy:10} {seconds * 1e3:9.2f} ms  {row['seq_per_s']:8.1f} seq/s  "
                  f"{rss:6.0f} MB   others used {others:4.0%} of the CPU", flush=True)
    return rows


def best_per_case(rows):
    best = {}
    for row in rows:
        if row["case"] not in best or row["seq_per_s"] > best[row["case"]]["seq_per_s"]:
            best[row["case"]] = row
    return {name: {"strategy": r["strategy"], "seconds": r["seconds"], "seq_per_s": r["seq_per_s"],
                   "tokens_per_s": r["tokens_per_s"], "peak_rss_mb": r["peak_rss_mb"]} for name, r in best.items()}


def time_tokenization(tokenizer, texts, repeats):
    encode(tokenizer, texts, MAX_TOKENS)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encode(tokenizer, texts, MAX_TOKENS)
        best = min(best, time.perf_counter() - start)
    return {"texts": len(texts), "seconds": best, "texts_per_s": len(texts) / best,
            "note": "tokenizers encode_batch (Rust, its own thread pool), truncation at 128"}


def markdown(report):
    lines = ["# ONNX Runtime peer (all-MiniLM-L6-v2, fused BERT graph)", "",
             f"{report['machine']}; onnxruntime {report['onnxruntime']}, {THREADS} intra-op threads, "
             f"ORT_ENABLE_ALL, sequential; {report['date']}; other processes used "
             f"{report['others_cpu_share']:.0%} of the machine's CPU time during the run", "",
             f"Command: `{report['command']}`", "",
             f"Inputs: {report['inputs']}", "",
             "Fused operators in the graph ORT runs: " +
             ", ".join(f"{op} {n}" for op, n in report["fused_operators"]["optimized"].items()), ""]
    c = report["check"]
    lines += [f"Check: vs float64 numpy reference ({c['reference']['texts']} replies) max abs diff "
              f"{c['reference']['max_abs_diff']:.1e}, min cosine {c['reference']['min_cosine']:.7f}; "
              f"vs `prm embed` ({c['prm']['texts']} replies) min cosine {c['prm']['min_cosine']:.7f}.", "",
              "| case | strategy | sequences | tokens | padded tokens | best s | seq/s | tokens/s | peak RSS MB | others' CPU |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["cases"]:
        mark = " **best**" if report["best"][r["case"]]["strategy"] == r["strategy"] and len(
            [x for x in report["cases"] if x["case"] == r["case"]]) > 1 else ""
        lines.append(f"| {r['case']} | {r['strategy']}{mark} | {r['sequences']} | {r['tokens']} | {r['padded_tokens']} | "
                     f"{r['seconds']:.4f} | {r['seq_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['others_cpu_share']:.0%} |")
    t = report["tokenization"]
    lines += ["", f"Tokenization (`tokenizers`, {t['texts']} real replies, truncated at 128): "
              f"{t['seconds'] * 1e3:.1f} ms, {t['texts_per_s']:.0f} texts/s (not included above).", "",
              "Strategies: arrival-32 = padded batches of 32 in the given order; sorted-32 = batches of 32 "
              "after sorting by length (the usual deployment); single = one sequence per run. Best of "
              f"{report['repeats']} runs after a warm-up, each case in a fresh process (peak RSS = its VmHWM). 'others' CPU' "
              "is the share of the machine's CPU time other processes (and hypervisor steal) used meanwhile.", ""]
    return "\n".join(lines)


def write_atomically(path, write):
    """Calls `write(temp path)` for a temp file beside `path`, then renames it to `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, suffix=".tmp" + os.path.splitext(path)[1])
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def write_results(path, report, text):
    """`report` as JSON at `path`, the markdown `text` beside it (same name, .md)."""
    for target, content in ((path, json.dumps(report, indent=2) + "\n"), (os.path.splitext(path)[0] + ".md", text)):
        def write(temp, content=content):
            with open(temp, "w", encoding="utf-8") as f:
                f.write(content)
        write_atomically(target, write)


def machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def export(model_dir, path):
    import onnx
    model = build_graph(model_dir)
    check_fused(operator_counts(model), "the built graph")
    onnx.save(model, path)
    return model


# Cases whose int8 embeddings are compared with fp32's (the real replies and 64×128).
FIDELITY_CASES = ("real-512-sorted", "uniform-64x128")


def quantize_int8(onnx_path, int8_path):
    """ONNX Runtime's dynamic int8 quantization of the same graph, as sentence-transformers documents
    it (`quantize_dynamic`, s8 weights; activations quantized per tensor at run time), fused at load."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    # The fused graph's contrib operators (Attention, SkipLayerNormalization) have no ONNX shape
    # inference, so the quantizer is told that untyped tensors are float.
    quantize_dynamic(onnx_path, int8_path, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def int8_fidelity(onnx_path, int8_path, cases):
    """Cosine of the int8 graph's embeddings to the fp32 graph's, per case in FIDELITY_CASES."""
    fp32, int8 = open_session(onnx_path), open_session(int8_path)
    out = {}
    for name in FIDELITY_CASES:
        if name in cases:
            c = cosines(embed_all(int8, cases[name], BATCH, True), embed_all(fp32, cases[name], BATCH, True))
            out[name] = {"sequences": len(cases[name]), "cosine_min": float(c.min()), "cosine_mean": float(c.mean())}
    return out


def command_bench(args):
    import onnx
    import onnxruntime as ort
    contention = Contention()
    tokenizer = load_tokenizer(args.model)
    replies = real_replies([args.data], 512)
    config = model_config(args.model)
    with tempfile.TemporaryDirectory(prefix="ort_peer.") as workdir:
        onnx_path, optimized_path = os.path.join(workdir, "minilm.onnx"), os.path.join(workdir, "minilm.optimized.onnx")
        built = operator_counts(export(args.model, onnx_path))
        session = open_session(onnx_path, optimized_path)
        optimized = operator_counts(onnx.load(optimized_path))
        check_fused(optimized, "the graph ORT runs (after ORT_ENABLE_ALL)")
        print("fused operators (built / run by ORT): " +
              ", ".join(f"{op} {built.get(op, 0)}/{optimized.get(op, 0)}" for op in EXPECTED_FUSED) +
              f"; MatMul {built.get('MatMul', 0)}/{optimized.get('MatMul', 0)}")
        print("check:")
        checked = check(session, args.model, args.prm, tokenizer, replies, workdir)
        del session
        if args.check_only:
            return 0

        if args.inputs:
            cases = read_cases(args.inputs, config["vocab_size"], config["max_position_embeddings"])
            source = f"{args.inputs} (prm bench score --dump-inputs)"
        else:
            cases = generated_cases(tokenizer, replies)
            source = f"generated by ort_peer.py from {args.data} and tokenizer.json"
        print(f"benchmark ({args.repeats} timed runs per case, best reported):")
        rows = bench_cases(onnx_path, cases, args.repeats)
        int8 = None
        if args.int8:
            int8_path = os.path.join(workdir, "minilm.int8.onnx")
            quantize_int8(onnx_path, int8_path)
            print(f"int8 (quantize_dynamic) benchmark ({args.repeats} timed runs per case, best reported):")
            int8_rows = bench_cases(int8_path, cases, args.repeats)
            int8 = {"operators": operator_counts(onnx.load(int8_path)), "cases": int8_rows, "best": best_per_case(int8_rows),
                    "fidelity": int8_fidelity(onnx_path, int8_path, cases)}
            for name, f in int8["fidelity"].items():
                print(f"  int8 vs fp32 {name}: cosine min {f['cosine_min']:.5f} mean {f['cosine_mean']:.6f}")
    report = {
        "others_cpu_share": contention.others(),
        "machine": machine(), "onnxruntime": ort.__version__, "threads": THREADS,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python3 bench/ort_peer.py " + " ".join(sys.argv[1:]),
        "inputs": source, "repeats": args.repeats,
        "fused_operators": {"built": {op: built.get(op, 0) for op in EXPECTED_FUSED},
                            "optimized": {op: optimized.get(op, 0) for op in EXPECTED_FUSED}},
        "check": checked, "cases": rows, "best": best_per_case(rows),
        "tokenization": time_tokenization(tokenizer, replies, args.repeats),
    }
    if int8:
        report["int8"] = int8
    t = report["tokenization"]
    print(f"tokenization: {t['texts']} replies in {t['seconds'] * 1e3:.1f} ms")
    if args.json:
        write_results(args.json, report, markdown(report))
        print(f"wrote {args.json} and {os.path.splitext(args.json)[0]}.md")
    return 0


def command_export(args):
    counts = operator_counts(export(args.model, args.out))
    print(f"wrote {args.out}: " + ", ".join(f"{op} {counts.get(op, 0)}" for op in EXPECTED_FUSED))
    return 0


def read_texts(path):
    """Texts of a JSONL file of {"text": ...} objects, as `prm embed --input` reads them."""
    texts = []
    for number, row in jsonl_rows(path, "input"):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            fail(f"{path}:{number}: expected an object with a string field 'text'")
        texts.append(row["text"])
    return texts


def command_embed(args):
    if bool(args.texts) == bool(args.input):
        fail("give texts as arguments or with --input, one of the two")
    texts = read_texts(args.input) if args.input else args.texts
    tokenizer = load_tokenizer(args.model)
    session = open_session(args.onnx)
    vectors = embed_all(session, encode(tokenizer, texts, MAX_TOKENS), BATCH, sort=True)
    for text, vector in zip(texts, vectors):
        sys.stdout.write(json.dumps({"text": text, "embedding": vector.tolist()}) + "\n")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="check the graph, then time the benchmark cases")
    bench.add_argument("--model", default=DEFAULT_MODEL, help=f"Hugging Face model folder (default {DEFAULT_MODEL})")
    bench.add_argument("--data", default=DEFAULT_DATA, help=f"lengthpref JSONL for the real replies (default {DEFAULT_DATA})")
    bench.add_argument("--prm", default=DEFAULT_PRM, help=f"prm binary for the embedding check (default {DEFAULT_PRM})")
    bench.add_argument("--inputs", help="cases from `prm bench score --dump-inputs FILE` instead of generating them")
    bench.add_argument("--repeats", type=int, default=5, help="timed runs per case, best reported (default 5)")
    bench.add_argument("--json", help="write results as JSON (and markdown beside it, same name with .md)")
    bench.add_argument("--check-only", action="store_true", help="stop after the fused-operator and embedding checks")
    bench.add_argument("--int8", action="store_true", help="also time ORT's dynamically quantized int8 graph (quantize_dynamic "
                       "of the same graph) and its embeddings' cosine to the fp32 graph's")
    export_parser = sub.add_parser("export", help="write the fused graph as an .onnx file")
    export_parser.add_argument("--model", default=DEFAULT_MODEL)
    export_parser.add_argument("--out", required=True, help="the .onnx file to write")
    embed = sub.add_parser("embed", help="embed texts with an exported graph (one JSON line each, input order)")
    embed.add_argument("--model", default=DEFAULT_MODEL, help="folder holding tokenizer.json")
    embed.add_argument("--onnx", required=True, help="graph written by `export`")
    embed.add_argument("--input", help='JSONL file of {"text": ...} objects')
    embed.add_argument("texts", nargs="*", help="texts to embed (or --input)")
    args = parser.parse_args()
    if args.command == "bench" and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return {"bench": command_bench, "export": command_export, "embed": command_embed}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
