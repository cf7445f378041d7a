#!/usr/bin/env python3
"""Independent reference for the Swift safetensors reader and writer (SafetensorsTests.swift).

Uses numpy and the Hugging Face `safetensors` package (the Rust implementation). Every float
is reported as the bit pattern of its float32 value (an unsigned 32-bit integer), so that
-0, infinities and NaNs survive JSON and comparisons are exact.

    write DIR          writes f32/f16/f64/bf16/mixed .safetensors into DIR and prints, per file,
                       the metadata and each tensor's dtype, shape and expected float32 bits
    verify FILE        loads FILE (written by Swift) with safetensors.numpy.load_file and prints
                       metadata, dtype, shape and float32 bits per tensor, the header length,
                       the names in buffer order, and whether safetensors.numpy.save of the
                       loaded tensors reproduces FILE byte for byte
    minilm FILE        for the pretrained model: tensor count, metadata, per tensor dtype,
                       shape and float64 sum, plus spot values of one attention weight
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save, save_file


# numpy dtype -> safetensors dtype name.
DTYPE_NAMES = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64",
               "int32": "I32", "bool": "BOOL", "uint8": "U8"}


def bits(array):
    """float32 bit patterns of `array`'s values, flattened in row-major order. Values beyond
    float32's range become infinities, as in the Swift conversion."""
    with np.errstate(over="ignore"):
        array = np.asarray(array).astype(np.float32)
    return np.ascontiguousarray(array).reshape(-1).view(np.uint32).tolist()


def describe(array, dtype_name):
    return {"dtype": dtype_name, "shape": list(array.shape), "bits": bits(array)}


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def to_bf16_bits(values):
    """float32 -> bfloat16 bit patterns by round-to-nearest-even on the dropped 16 bits
    (what torch's `.to(torch.bfloat16)` does); NaNs stay NaN with the quiet bit set."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    rounded[nan] = (u[nan] >> 16) | 0x40
    return rounded.astype(np.uint16)


def check_bf16_rounding():
    """Self-check of the rounding against values worked out by hand: bfloat16 keeps 7 mantissa
    bits, so near 1 its spacing is 2^-7 and 2^-8 is exactly half of it."""
    cases = {
        1.0: 0x3F80,
        1.0 + 2**-8: 0x3F80,               # tie, even neighbour is 1.0
        1.0 + 3 * 2**-8: 0x3F82,           # tie, even neighbour is 1 + 2^-6
        1.0 + 2**-8 + 2**-20: 0x3F81,      # just above the tie: rounds up
        -2.0: 0xC000,
        float(np.finfo(np.float32).max): 0x7F80,  # rounds past the largest bfloat16 to +inf
    }
    for value, expected in cases.items():
        got = int(to_bf16_bits([value])[0])
        assert got == expected, f"bf16({value!r}) = {got:#06x}, expected {expected:#06x}"


def write_bf16_file(path, tensors, metadata):
    """numpy has no bfloat16, so the header and bytes are written by hand, laid out as the
    Rust writer lays them out (sorted names, packed, header space-padded to a multiple of 8)."""
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        raw = to_bf16_bits(tensors[name]).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(np.shape(tensors[name])),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    # The Rust parser must accept the hand-made file (it validates the layout on open).
    with safe_open(str(path), framework="np") as f:
        assert sorted(f.keys()) == sorted(tensors), f.keys()
        assert f.metadata() == metadata, f.metadata()


def command_write(directory):
    out = Path(directory)
    rng = np.random.default_rng(20240611)
    result = {}

    f32 = {
        "weight": rng.standard_normal((3, 5, 7)).astype(np.float32),
        "bias": np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, 1e-45, 3.4028235e38], dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((2, 0), dtype=np.float32),
    }
    save_file(f32, str(out / "f32.safetensors"), metadata={"format": "np", "source": "numpy"})
    result["f32.safetensors"] = {"metadata": {"format": "np", "source": "numpy"},
                                 "tensors": {k: describe(v, "F32") for k, v in f32.items()}}

    half_specials = np.array([
        0.0, -0.0, 1.0, -2.0, 0.1, 1 / 3, 65504.0, -65504.0,
        2.0**-24,                   # smallest subnormal
        -(2.0**-24) * 3,            # negative subnormal
        2.0**-14 - 2.0**-24,        # largest subnormal
        2.0**-14,                   # smallest normal
        np.inf, -np.inf, np.nan,
    ], dtype=np.float16)
    f16 = {
        "specials": half_specials,
        "matrix": rng.standard_normal((4, 6)).astype(np.float16),
    }
    save_file(f16, str(out / "f16.safetensors"))
    result["f16.safetensors"] = {"metadata": {},
                                 "tensors": {k: describe(v, "F16") for k, v in f16.items()}}

    f64 = {
        # Values that float32 must round: 0.1, 1/3, and ones beyond float32's range.
        "values": np.array([0.1, 1 / 3, -2.5, 1e-50, 1e300, -1e300, np.pi], dtype=np.float64),
        "cube": rng.standard_normal((2, 2, 2)),
    }
    save_file(f64, str(out / "f64.safetensors"))
    result["f64.safetensors"] = {"metadata": {},
                                 "tensors": {k: describe(v, "F64") for k, v in f64.items()}}

    check_bf16_rounding()
    bf16_sources = {
        "ties": np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, -2.0, 3.14159265,
                          -1e30, 1e-40, 0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32),
        "matrix": rng.standard_normal((3, 4)).astype(np.float32),
    }
    write_bf16_file(out / "bf16.safetensors", bf16_sources, {"format": "pt"})
    result["bf16.safetensors"] = {"metadata": {"format": "pt"}, "tensors": {
        # The value a bfloat16 holds is its 16 bits followed by 16 zero bits.
        k: {"dtype": "BF16", "shape": list(v.shape),
            "bits": (to_bf16_bits(v).astype(np.uint32) << 16).reshape(-1).tolist()}
        for k, v in bf16_sources.items()}}

    # Mixed dtypes: the Rust writer orders these by alignment, not by name.
    mixed = {
        "a_f32": rng.standard_normal((2, 3)).astype(np.float32),
        "b_f16": np.array([0.5, -0.25, 6e-8], dtype=np.float16),
        "c_f64": np.array([[1.0, -1.0], [0.5, 1e-3]]),
        "d_ids": np.arange(5, dtype=np.int64),
        "e_flags": np.array([True, False, True]),
        "f_bytes": np.array([1, 2, 3], dtype=np.uint8),
    }
    save_file(mixed, str(out / "mixed.safetensors"))
    tensors = {}
    for k, v in mixed.items():
        name = DTYPE_NAMES[str(v.dtype)]
        entry = {"dtype": name, "shape": list(v.shape)}
        if name in ("F32", "F16", "F64"):
            entry["bits"] = bits(v)
        tensors[k] = entry
    result["mixed.safetensors"] = {"metadata": {}, "tensors": tensors}

    print(json.dumps(result))


def command_verify(path):
    tensors = load_file(path)
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
    header_length, header = read_header(path)
    names_in_order = sorted((k for k in header if k != "__metadata__"),
                            key=lambda k: header[k]["data_offsets"][0])
    resaved = save(tensors, metadata=metadata or None)
    with open(path, "rb") as f:
        original = f.read()
    print(json.dumps({
        "metadata": metadata,
        "tensors": {k: {"dtype": DTYPE_NAMES.get(str(v.dtype), str(v.dtype)), "shape": list(v.shape),
                        "bits": bits(v)} for k, v in tensors.items()},
        "header_length": header_length,
        "names_in_buffer_order": names_in_order,
        # Only meaningful with at most one metadata key: the Rust writer keeps metadata in a
        # HashMap, so with several keys its order varies from run to run.
        "resaved_identical": resaved == original,
    }))


def command_minilm(path):
    tensors = load_file(path)
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
    name = "encoder.layer.0.attention.self.query.weight"
    weight = tensors[name]
    rng = np.random.default_rng(7)
    positions = [0, 1, 383, 384, 12345, weight.size - 1] + rng.integers(0, weight.size, 6).tolist()
    flat = weight.reshape(-1)
    print(json.dumps({
        "count": len(tensors),
        "metadata": metadata,
        "tensors": {k: {"dtype": DTYPE_NAMES.get(str(v.dtype), str(v.dtype)), "shape": list(v.shape),
                        "sum": float(v.astype(np.float64).sum()),
                        "abs_sum": float(np.abs(v.astype(np.float64)).sum())}
                    for k, v in tensors.items()},
        "spot": {"name": name, "positions": positions, "bits": bits(flat[positions])},
    }))


def main(argv):
    commands = {"write": command_write, "verify": command_verify, "minilm": command_minilm}
    if len(argv) != 3 or argv[1] not in commands:
        sys.exit(f"usage: {argv[0]} write DIR | verify FILE | minilm FILE")
    commands[argv[1]](argv[2])


if __name__ == "__main__":
    main(sys.argv)
