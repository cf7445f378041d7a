#!/usr/bin/env python3
"""Why the default recipe does not carry over from MiniLM to SmolLM2 (issue 18): the scale of the
pooled state h each backbone gives the linear head, measured independently of prm with
transformers (reference only: not a test, and CI does not need torch).

For the first N comparisons of a data file it computes each backbone's pretrained h of both
replies as `prm train` pools it (MiniLM: the mean over the window; SmolLM2: the last token's state
after the final RMSNorm), then the quantities the linear head's training sees at step 0:
- the initial margin <e, h_chosen - h_rejected> with e a random row of the token-embedding table
  (how `prm train` starts the generic user), as a standard deviation over rows and comparisons;
- sum_i |dh_i|, the margin change one AdamW step of the user learning rate can make (Adam moves
  every coordinate by about the rate, whatever the gradient's scale).

    python3 bench/pooled_scale.py --json bench/results/decoder_recipe/pooled_scale.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

USER_LR = 1e-2  # prm train's default --user-lr


def statistics(h: np.ndarray, table: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    dh = h[0::2] - h[1::2]
    rows = table[rng.integers(0, table.shape[0], 200)]
    l1 = float(np.abs(dh).sum(1).mean())
    return {"rms_h": float(np.sqrt((h ** 2).mean())), "mean_abs_dh_sum": l1,
            "rms_token_row": float(np.sqrt((table ** 2).mean())), "initial_margin_sd": float((dh @ rows.T).std()),
            "margin_change_per_step_at_default_user_lr": USER_LR * l1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/lengthpref/train.jsonl")
    parser.add_argument("--comparisons", type=int, default=32)
    parser.add_argument("--minilm", default="models/all-MiniLM-L6-v2")
    parser.add_argument("--smollm2", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [json.loads(line) for line in open(args.data)][:args.comparisons]
    rng = np.random.default_rng(0)

    tokenizer = AutoTokenizer.from_pretrained(args.minilm)
    bert = AutoModel.from_pretrained(args.minilm)
    pooled = []
    for row in rows:
        for reply in (row["chosen"], row["rejected"]):
            encoded = tokenizer(row["prompt"][-400:], reply, return_tensors="pt", truncation=True, max_length=128)
            with torch.no_grad():
                pooled.append(bert(**encoded).last_hidden_state[0].mean(0).numpy())
    minilm = statistics(np.array(pooled), bert.embeddings.word_embeddings.weight.detach().numpy(), rng)

    folder, name = args.smollm2.rsplit("/", 1)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    llm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    pooled = []
    for row in rows:
        for reply in (row["chosen"], row["rejected"]):
            ids = tokenizer(row["prompt"][-400:] + " " + reply, return_tensors="pt").input_ids[:, -128:]
            with torch.no_grad():
                pooled.append(llm(ids, output_hidden_states=True).hidden_states[-1][0, -1].numpy())
    smollm2 = statistics(np.array(pooled), llm.model.embed_tokens.weight.detach().numpy(), rng)

    result = {"command": f"python3 bench/pooled_scale.py --json {args.json}", "data": args.data,
              "comparisons": len(rows), "minilm_window_mean": minilm, "smollm2_last_token": smollm2,
              "smollm2_over_minilm": {k: smollm2[k] / minilm[k] for k in minilm}}
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    for key in minilm:
        print(f"{key:45s} MiniLM {minilm[key]:9.4f}  SmolLM2 {smollm2[key]:9.4f}  ratio {smollm2[key] / minilm[key]:7.2f}")


if __name__ == "__main__":
    main()
