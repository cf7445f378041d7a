"""SmolLM2's logits from Hugging Face `transformers` loading the same GGUF file (its own GGUF
loader dequantizes the tensors and undoes llama.cpp's q/k permutation), on the token ids of
Tests/Fixtures/gguf/smollm2-logits.safetensors (the numpy reference's prompts), float32.

    python3 Tests/Reference/smollm2_transformers.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Needs torch and transformers (run once; the result is committed). Writes
Tests/Fixtures/gguf/smollm2-transformers-logits.safetensors: for prompt i, `top_ids.{i}` /
`top_logits.{i}` (the 64 largest last-position logits, best first), `sample_ids.{i}` /
`sample_logits.{i}` (the numpy fixture's 256 sampled ids), `argmax.{i}` (every position), ids as float32.
"""
import argparse
import os

import torch
import transformers
from safetensors.numpy import load_file, save_file

IDS = "Tests/Fixtures/gguf/smollm2-logits.safetensors"
OUT = "Tests/Fixtures/gguf/smollm2-transformers-logits.safetensors"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    path = os.path.realpath(args.model)
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                              dtype=torch.float32).eval()
    numpy_reference = load_file(IDS)
    out = {}
    i = 0
    with torch.no_grad():
        while f"ids.{i}" in numpy_reference:
            ids = torch.from_numpy(numpy_reference[f"ids.{i}"].astype("int64")).unsqueeze(0)
            logits = model(input_ids=ids).logits[0]
            last = logits[-1]
            top = torch.argsort(last, descending=True)[:64]
            sample = torch.tensor(numpy_reference[f"sample_ids.{i}"].astype("int64"))
            out[f"top_ids.{i}"] = top.float().numpy()
            out[f"top_logits.{i}"] = last[top].numpy()
            out[f"sample_ids.{i}"] = sample.float().numpy()
            out[f"sample_logits.{i}"] = last[sample].numpy()
            out[f"argmax.{i}"] = logits.argmax(dim=-1).float().numpy()
            i += 1
    save_file(out, OUT, metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"wrote {OUT} ({i} prompts)")


if __name__ == "__main__":
    main()
