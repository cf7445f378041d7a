"""Writes the GGUF fixtures the Swift reader is checked against, with the `gguf` package
(llama.cpp's gguf-py; numpy only) as the independent reference:

  Tests/Fixtures/gguf/types.gguf            metadata of every value type and one small tensor of
                                            each supported type (F32, F16, BF16, Q8_0, Q4_0, Q4_1
                                            quantized by gguf.quants.quantize; Q4_K and Q6_K, which
                                            gguf-py cannot quantize, as random blocks with finite
                                            half-precision scales), alignment 64
  Tests/Fixtures/gguf/types.expected.safetensors
                                            each tensor dequantized by gguf.quants.dequantize (F32)
  Tests/Fixtures/gguf/unsupported.gguf      one Q5_K tensor (a type prm does not read)
  Tests/Fixtures/gguf/smollm2-tensors.safetensors
                                            for a few tensors of the real SmolLM2 file: the first
                                            4096 dequantized values, and in the metadata the FNV-1a
                                            64 checksum of the whole tensor's float32 bit patterns

    python3 Tests/Reference/gguf_fixtures.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import os

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

OUT = "Tests/Fixtures/gguf"
REAL_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight",
                "blk.29.ffn_norm.weight", "output_norm.weight"]
HEAD = 4096


def fnv1a64(values):
    """FNV-1a over the little-endian bytes of the float32 values (numpy, vectorised per byte lane)."""
    data = np.ascontiguousarray(values, dtype=np.float32).view(np.uint8)
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    mask = (1 << 64) - 1
    for byte in data.tobytes():
        h = ((h ^ byte) * prime) & mask
    return f"{h:016x}"


def random_k_blocks(rng, qtype, rows, columns):
    """Random bytes for `rows` × `columns` values of a K-quant, the f16 scales set to finite values."""
    block_bytes = {Q.Q4_K: 144, Q.Q6_K: 210}[qtype]
    blocks = rows * columns // 256
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    scales = rng.uniform(-0.05, 0.05, size=(blocks, 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q4_K:
        raw[:, 0:4] = scales  # d, dmin
    else:
        raw[:, 208:210] = scales[:, 0:2]  # d
    return raw.reshape(rows, columns // 256 * block_bytes)


def write_types(rng):
    path = os.path.join(OUT, "types.gguf")
    writer = GGUFWriter(path, arch="test")
    writer.data_alignment = 64
    writer.add_uint32("general.alignment", 64)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_float32("test.f32", 0.1)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo, 世界")
    writer.add_uint64("test.u64", 2**62 + 3)
    writer.add_int64("test.i64", -(2**62) - 3)
    writer.add_float64("test.f64", 0.1)
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.strings", ["a", "", "ß c"])
    writer.add_array("test.nested", [[1, 2], [3]])
    expected = {}
    values = rng.standard_normal((4, 64)).astype(np.float32)
    for name, qtype in [("f32", Q.F32), ("f16", Q.F16), ("bf16", Q.BF16), ("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0), ("q4_1", Q.Q4_1)]:
        raw = quantize(values, qtype)
        writer.add_tensor(name, raw, raw_shape=values.shape if qtype == Q.F32 else raw.shape, raw_dtype=qtype)
    for name, qtype in [("q4_k", Q.Q4_K), ("q6_k", Q.Q6_K)]:
        raw = random_k_blocks(rng, qtype, 2, 512)
        writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for tensor in GGUFReader(path).tensors:
        expected[tensor.name] = np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    save_file(expected, os.path.join(OUT, "types.expected.safetensors"))


def write_unsupported(rng):
    path = os.path.join(OUT, "unsupported.gguf")
    writer = GGUFWriter(path, arch="test")
    raw = rng.integers(0, 256, size=(1, 176), dtype=np.uint8)
    writer.add_tensor("blk.0.ffn_up.weight", raw, raw_shape=raw.shape, raw_dtype=Q.Q5_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_real(model):
    reader = GGUFReader(model)
    by_name = {t.name: t for t in reader.tensors}
    tensors, metadata = {}, {}
    for name in REAL_TENSORS:
        t = by_name[name]
        values = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
        tensors[name] = np.ascontiguousarray(values[:HEAD])
        metadata[name + ".fnv1a64"] = fnv1a64(values)
        metadata[name + ".type"] = t.tensor_type.name
    save_file(tensors, os.path.join(OUT, "smollm2-tensors.safetensors"), metadata=metadata)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(18)
    write_types(rng)
    write_unsupported(rng)
    write_real(args.model)


if __name__ == "__main__":
    main()
