"""Test fixtures for GGUF: random packed blocks and small GGUF files written with gguf-py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

Q = GGMLQuantizationType

# Byte offsets of the fp16 scale fields inside one block (ggml-common.h). Random bytes there could be
# inf/NaN, which makes bit-exact comparison meaningless, so we overwrite them with finite values.
FP16_FIELDS: dict[GGMLQuantizationType, tuple[int, ...]] = {
    Q.Q8_0: (0,),
    Q.Q4_0: (0,),
    Q.Q4_1: (0, 2),
    Q.Q5_0: (0,),
    Q.Q5_1: (0, 2),
    Q.Q2_K: (80, 82),
    Q.Q3_K: (108,),
    Q.Q4_K: (0, 2),
    Q.Q5_K: (0, 2),
    Q.Q6_K: (208,),
    Q.IQ4_NL: (0,),
    Q.IQ4_XS: (0,),
}

# What gguf-py itself can quantize (used for round trips from float data).
GGUF_PY_QUANTIZABLE = (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.BF16, Q.F16)


def random_packed(
    qtype: GGMLQuantizationType, shape: Sequence[int], rng: np.random.Generator, scale: float = 0.05
) -> np.ndarray:
    """Random raw data for a tensor of logical `shape`, as uint8 `[*shape[:-1], bytes_per_row]`.

    Quantized types: random bytes with finite random fp16 scales of std `scale`. Float types: finite random
    values.
    """
    if qtype in (Q.F32, Q.F16, Q.BF16):
        values = rng.standard_normal(tuple(shape)).astype(np.float32)
        if qtype == Q.F16:
            return values.astype(np.float16).view(np.uint8)
        raw = values.view(np.uint8)
        # BF16 keeps the high half of each float32 (little-endian: bytes 2 and 3).
        return raw.reshape(-1, 4)[:, 2:].reshape(*shape[:-1], -1).copy() if qtype == Q.BF16 else raw
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = int(np.prod(shape)) // block_size
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS[qtype]:
        d = (rng.standard_normal(n_blocks) * scale).astype(np.float16)
        blocks[:, offset : offset + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*shape[:-1], -1)


def _as_gguf_array(data: Any, qtype: GGMLQuantizationType, shape: Sequence[int]) -> np.ndarray:
    """Float data is quantized with gguf-py; bytes or uint8 arrays are taken as already packed."""
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(bytes(data), dtype=np.uint8)
    if data.dtype == np.uint8:
        return data.reshape(*shape[:-1], -1)
    data = np.asarray(data, dtype=np.float32).reshape(tuple(shape))
    if qtype == Q.F32:
        return data
    return gguf.quants.quantize(data, qtype)


def write_test_gguf(
    path: str | Path,
    tensors: Mapping[str, tuple[Any, GGMLQuantizationType, Sequence[int]]],
    arch: str | None = "motif_video",
    extra_metadata: Mapping[str, Any] | None = None,
    alignment: int | None = None,
) -> Path:
    """Write a small GGUF file. `tensors`: name -> (float ndarray | packed bytes/uint8, qtype, logical shape).

    Metadata values may be str, int (written as uint32), np.uint64, np.int32, float, bool or a list. `arch=None`
    writes no general.architecture at all. `alignment`: the tensor data alignment (general.alignment; gguf-py's
    default 32).
    """
    path = Path(path)
    writer = gguf.GGUFWriter(path, arch or "none")
    if arch is None:
        writer.kv_data[0].pop("general.architecture")  # GGUFWriter always adds it
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for key, value in (extra_metadata or {}).items():
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, np.uint64):
            writer.add_uint64(key, int(value))
        elif isinstance(value, np.int32):
            writer.add_int32(key, int(value))
        else:
            writer.add_string(key, str(value))
    for name, (data, qtype, shape) in tensors.items():
        array = _as_gguf_array(data, qtype, shape)
        raw_dtype = None if array.dtype == np.float32 else qtype
        writer.add_tensor(name, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_split_gguf(whole: Path, tensors: Sequence[str], per_part: int = 1, arch: str = "motif_video") -> list[Path]:
    """Write `tensors` (each a 2x32 f32 of ones) as llama.cpp's gguf-split leaves a file it cut, `per_part` tensors a
    file named `<whole's stem>-0000i-of-0000N.gguf` beside `whole` (only the first part carries the architecture);
    -> the parts, in order."""
    writer = gguf.GGUFWriter(whole, arch, split_max_tensors=per_part)
    for name in tensors:
        writer.add_tensor(name, np.ones((2, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(whole.parent.glob(f"{whole.stem}-0*-of-0*.gguf"))
