"""Pure-torch dequantizers for GGUF (ggml) block formats.

Every function takes the packed bytes of `n` blocks as a uint8 tensor `[n, type_size]` and returns float32
values `[n, block_size]`. They use torch ops only, so the same code runs on CPU and CUDA, and they repeat the
float operations of `gguf.quants` in the same order, so results are bit-exact against it.

Layouts follow ggml's `block_*` structs (ggml-common.h); fp16 fields are little-endian.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import quant_shape_to_byte_shape

from motif_lite.errors import CheckpointError

Q = GGMLQuantizationType
QK_K = 256  # values per super-block of the K-quants and IQ4_XS

# Non-linear 4-bit codebook of IQ4_NL / IQ4_XS (ggml `kvalues_iq4nl`).
IQ4_VALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)

FLOAT_TYPES = {Q.F32: torch.float32, Q.F16: torch.float16, Q.BF16: torch.bfloat16}


def _split(blocks: torch.Tensor, *sizes: int) -> list[torch.Tensor]:
    """Cut `[n, type_size]` into column groups of the given byte sizes (the rest is the last group)."""
    return list(torch.split(blocks, [*sizes, blocks.shape[1] - sum(sizes)], dim=1))


def _f16(field: torch.Tensor) -> torch.Tensor:
    """A 2-byte fp16 field `[n, 2]` -> float32 `[n, 1]` (exact)."""
    return field.contiguous().view(torch.float16).float()


def _unpack(x: torch.Tensor, group: int, bits: int) -> torch.Tensor:
    """Unpack `bits`-wide fields, ggml order: for each run of `group` bytes, all fields at shift 0, then 1, ...

    x: uint8 [n, B] -> uint8 [n, B * 8 // bits].
    """
    x = x.reshape(x.shape[0], -1, 1, group)
    # Python-int shifts: a shift by a broadcast shift tensor has no fast CPU kernel (~50x slower).
    planes = torch.cat([x >> shift for shift in range(0, 8, bits)], dim=2)  # [n, B/group, 8/bits, group]
    return (planes & ((1 << bits) - 1)).reshape(x.shape[0], -1)


def _as_int(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.int16)


def dequant_q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d, qs = _split(blocks, 2)
    return qs.contiguous().view(torch.int8).float() * _f16(d)


def dequant_q4_0(blocks: torch.Tensor) -> torch.Tensor:
    d, qs = _split(blocks, 2)
    q = _as_int(_unpack(qs, 16, 4)) - 8
    return _f16(d) * q.float()


def dequant_q4_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m, qs = _split(blocks, 2, 2)
    return _f16(d) * _unpack(qs, 16, 4).float() + _f16(m)


def _q5_values(qh: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """Low nibbles from qs, bit 4 from the 32-bit mask qh (bit i belongs to value i). -> int16 [n, 32] in 0..31."""
    high = _unpack(qh, 1, 1)  # [n, 32], little-endian bit order of the uint32
    return _as_int(_unpack(qs, 16, 4) | (high << 4))


def dequant_q5_0(blocks: torch.Tensor) -> torch.Tensor:
    d, qh, qs = _split(blocks, 2, 4)
    return _f16(d) * (_q5_values(qh, qs) - 16).float()


def dequant_q5_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m, qh, qs = _split(blocks, 2, 2, 4)
    return _f16(d) * _q5_values(qh, qs).float() + _f16(m)


def dequant_q2_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    scales, qs, d, dmin = _split(blocks, QK_K // 16, QK_K // 4, 2)
    # 16 sub-blocks of 16 values; each scale byte = (min << 4) | scale.
    dl = (_f16(d) * (scales & 0xF).float()).view(n, 16, 1)
    ml = (_f16(dmin) * (scales >> 4).float()).view(n, 16, 1)
    q = _unpack(qs, 32, 2).view(n, 16, 16).float()
    return (dl * q - ml).reshape(n, QK_K)


def _q3_k_scales(scales: torch.Tensor) -> torch.Tensor:
    """12 bytes -> 16 signed 6-bit scales: low 4 bits from bytes 0-7, high 2 bits from bytes 8-11."""
    low = _unpack(scales[:, :8], 8, 4)
    high = _unpack(scales[:, 8:], 4, 2)
    return _as_int(low | (high << 4)) - 32


def dequant_q3_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    hmask, qs, scales, d = _split(blocks, QK_K // 8, QK_K // 4, 12)
    dl = (_f16(d) * _q3_k_scales(scales).float()).view(n, 16, 1)
    low = _as_int(_unpack(qs, 32, 2))
    # A cleared hmask bit means "subtract 4" (ggml stores the high bit inverted).
    minus = _as_int(_unpack(hmask, 32, 1) ^ 1) << 2
    q = (low - minus).view(n, 16, 16).float()
    return (dl * q).reshape(n, QK_K)


def _k_scale_min(scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (ggml `get_scale_min_k4`)."""
    d, m, md = scales.view(-1, 3, 4).unbind(1)  # each [n, 4]
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=1)
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=1)
    return sc, mn


def dequant_q4_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, dmin, scales, qs = _split(blocks, 2, 2, 12)
    sc, mn = _k_scale_min(scales)
    dl = (_f16(d) * sc.float()).view(n, 8, 1)
    ml = (_f16(dmin) * mn.float()).view(n, 8, 1)
    q = _unpack(qs, 32, 4).view(n, 8, 32).float()
    return (dl * q - ml).reshape(n, QK_K)


def dequant_q5_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, dmin, scales, qh, qs = _split(blocks, 2, 2, 12, QK_K // 8)
    sc, mn = _k_scale_min(scales)
    dl = (_f16(d) * sc.float()).view(n, 8, 1)
    ml = (_f16(dmin) * mn.float()).view(n, 8, 1)
    q = (_unpack(qs, 32, 4) | (_unpack(qh, 32, 1) << 4)).view(n, 8, 32).float()
    return (dl * q - ml).reshape(n, QK_K)


def dequant_q6_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    ql, qh, scales, d = _split(blocks, QK_K // 2, QK_K // 4, QK_K // 16)
    dl = (_f16(d) * scales.contiguous().view(torch.int8).float()).view(n, 16, 1)
    q = _as_int(_unpack(ql, 64, 4) | (_unpack(qh, 32, 2) << 4)) - 32
    return (dl * q.view(n, 16, 16).float()).reshape(n, QK_K)


def _iq4_lookup(codes: torch.Tensor) -> torch.Tensor:
    table = torch.tensor(IQ4_VALUES, dtype=torch.float32, device=codes.device)
    return table[codes.long()]


def dequant_iq4_nl(blocks: torch.Tensor) -> torch.Tensor:
    d, qs = _split(blocks, 2)
    return _f16(d) * _iq4_lookup(_unpack(qs, 16, 4))


def dequant_iq4_xs(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, scales_h, scales_l, qs = _split(blocks, 2, 2, QK_K // 64)
    # 8 six-bit scales: low nibbles from scales_l, high 2 bits from the uint16 scales_h.
    sc = _as_int(_unpack(scales_l, 1, 4) | (_unpack(scales_h, 1, 2) << 4)) - 32
    dl = (_f16(d) * sc.float()).view(n, 8, 1)
    q = _iq4_lookup(_unpack(qs, 16, 4)).view(n, 8, 32)
    return (dl * q).reshape(n, QK_K)


BlockDequantizer = Callable[[torch.Tensor], torch.Tensor]

DEQUANTIZERS: dict[GGMLQuantizationType, BlockDequantizer] = {
    Q.Q8_0: dequant_q8_0,
    Q.Q4_0: dequant_q4_0,
    Q.Q4_1: dequant_q4_1,
    Q.Q5_0: dequant_q5_0,
    Q.Q5_1: dequant_q5_1,
    Q.Q2_K: dequant_q2_k,
    Q.Q3_K: dequant_q3_k,
    Q.Q4_K: dequant_q4_k,
    Q.Q5_K: dequant_q5_k,
    Q.Q6_K: dequant_q6_k,
    Q.IQ4_NL: dequant_iq4_nl,
    Q.IQ4_XS: dequant_iq4_xs,
}

SUPPORTED_TYPES = frozenset(FLOAT_TYPES) | frozenset(DEQUANTIZERS)


def qtype_name(qtype: int) -> str:
    """`GGMLQuantizationType` name for messages; also works for values outside the enum."""
    try:
        return GGMLQuantizationType(qtype).name
    except ValueError:
        return f"unknown type id {int(qtype)}"


def check_supported(qtype: int, name: str = "tensor") -> GGMLQuantizationType:
    """Return `qtype` as an enum member, or raise CheckpointError naming the tensor and the type."""
    if qtype not in SUPPORTED_TYPES:
        supported = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
        raise CheckpointError(
            f"{name}: GGUF tensor type {qtype_name(qtype)} is not supported by motif-lite (supported: {supported})"
        )
    return GGMLQuantizationType(qtype)


def packed_nbytes(qtype: int, shape: Sequence[int], name: str = "tensor") -> int:
    """Bytes that a tensor of logical `shape` takes in `qtype`; the last dim must be whole blocks."""
    qtype = check_supported(qtype, name)
    shape = tuple(int(dim) for dim in shape)  # a header's numpy integers as ints
    block_size = GGML_QUANT_SIZES[qtype][0]
    if not shape or shape[-1] % block_size:
        raise CheckpointError(
            f"{name}: shape {shape} does not fit {qtype_name(qtype)}: "
            f"the last dimension must be a multiple of the block size {block_size}"
        )
    return math.prod(quant_shape_to_byte_shape(shape, qtype))


def dequantize(
    packed: torch.Tensor,
    qtype: int,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    name: str = "tensor",
) -> torch.Tensor:
    """Unpack GGUF data into a float tensor of logical (PyTorch-order) `shape`.

    `packed` holds the raw bytes as uint8 in row-major order (any shape, e.g. `[out, bytes_per_row]` for a
    linear weight `[out, in]`); float types may also be passed as a tensor of their own dtype. The values are
    computed in float32 (bit-exact against `gguf.quants.dequantize`) and then cast to `dtype`.
    """
    qtype = check_supported(qtype, name)
    expected = packed_nbytes(qtype, shape, name)
    nbytes = packed.numel() * packed.element_size()
    if nbytes != expected:
        raise CheckpointError(
            f"{name}: {nbytes} bytes of data, but shape {tuple(shape)} in {qtype.name} needs {expected} bytes"
        )
    if qtype in FLOAT_TYPES:
        if packed.dtype == torch.uint8:
            packed = packed.contiguous().view(-1).view(FLOAT_TYPES[qtype])
        return packed.reshape(tuple(shape)).to(dtype)
    type_size = GGML_QUANT_SIZES[qtype][1]
    blocks = packed.contiguous().view(-1, type_size)  # [n_blocks, type_size]
    return DEQUANTIZERS[qtype](blocks).reshape(tuple(shape)).to(dtype)
