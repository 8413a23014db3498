"""y = x @ dequant(W)ᵀ + b, reading GGUF blocks straight from the packed weight.

The weight stays packed (`[N, bytes_per_row]` uint8, raw ggml blocks) in memory; each program dequantizes one
`[BLOCK_N, BLOCK_K]` tile inside the K loop and feeds it to `tl.dot` with an fp32 accumulator. Block layouts
follow gguf-py's `gguf/quants.py` (ggml's `block_*` structs); fp16 fields are little-endian.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .errors import KernelInputError

Q = GGMLQuantizationType
SUPPORTED_QTYPES = (Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q5_K, Q.Q6_K)


@triton.jit
def _f16(ptr, mask):
    """Little-endian fp16 at byte pointers `ptr` -> float32."""
    lo = tl.load(ptr, mask=mask, other=0).to(tl.uint16)
    hi = tl.load(ptr + 1, mask=mask, other=0).to(tl.uint16)
    return (lo | (hi << 8)).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _byte(ptr, mask):
    return tl.load(ptr, mask=mask, other=0).to(tl.int32)


# Each helper dequantizes one group of 32 consecutive values per row: `row` are [BN, 1] byte pointers to the
# weight rows, `k0` is the group's first column (a multiple of 32), `j` = arange(32)[None, :]. Per-row scales
# are loaded once as [BN, 1] and broadcast; only the quant bits are gathered per element. -> float32 [BN, 32]


@triton.jit
def _q8_0(row, k0, j, mask):
    blk = row + (k0 // 32) * 34  # block: d f16 | 32 x int8
    q = tl.load(blk + 2 + j, mask=mask, other=0).to(tl.int8, bitcast=True).to(tl.float32)
    return _f16(blk, mask) * q


@triton.jit
def _q4_0(row, k0, j, mask):
    blk = row + (k0 // 32) * 18  # block: d f16 | 16 bytes; value j is nibble j//16 of byte j%16
    q = (_byte(blk + 2 + j % 16, mask) >> ((j // 16) * 4)) & 0xF
    return _f16(blk, mask) * (q - 8).to(tl.float32)


@triton.jit
def _kquant_scale_min(scales, s, mask):
    """6-bit scale and min of sub-block s (0..7) from the 12 packed bytes (gguf Q4_K.get_scale_min)."""
    a = _byte(scales + s % 4, mask)
    b = _byte(scales + 4 + s % 4, mask)
    c = _byte(scales + 8 + s % 4, mask)
    if s < 4:
        sc, mn = a & 63, b & 63
    else:
        sc, mn = (c & 0xF) | ((a >> 2) & 0x30), (c >> 4) | ((b >> 2) & 0x30)
    return sc.to(tl.float32), mn.to(tl.float32)


@triton.jit
def _q4_k(row, k0, j, mask):
    blk = row + (k0 // 256) * 144  # d f16 | dmin f16 | 12 scale bytes | 128 bytes of nibbles
    s = (k0 % 256) // 32  # sub-block: low nibbles of 32-byte run s//2 when s is even, high nibbles when odd
    sc, mn = _kquant_scale_min(blk + 4, s, mask)
    q = (_byte(blk + 16 + (s // 2) * 32 + j, mask) >> ((s % 2) * 4)) & 0xF
    return (_f16(blk, mask) * sc) * q.to(tl.float32) - _f16(blk + 2, mask) * mn


@triton.jit
def _q5_k(row, k0, j, mask):
    blk = row + (k0 // 256) * 176  # d | dmin | 12 scale bytes | 32 bytes qh (bit s = 5th bit) | 128 bytes qs
    s = (k0 % 256) // 32
    sc, mn = _kquant_scale_min(blk + 4, s, mask)
    low = (_byte(blk + 48 + (s // 2) * 32 + j, mask) >> ((s % 2) * 4)) & 0xF
    high = (_byte(blk + 16 + j, mask) >> s) & 1
    q = low | (high << 4)
    return (_f16(blk, mask) * sc) * q.to(tl.float32) - _f16(blk + 2, mask) * mn


@triton.jit
def _q6_k(row, k0, j, mask):
    blk = row + (k0 // 256) * 210  # 128 bytes ql | 64 bytes qh | 16 int8 scales (one per 16 values) | d f16
    g = (k0 % 256) // 32  # group 0..7; each 128-value half uses 64 ql bytes and 32 qh bytes
    low = (_byte(blk + (g // 4) * 64 + (g % 2) * 32 + j, mask) >> (((g // 2) % 2) * 4)) & 0xF
    high = (_byte(blk + 128 + (g // 4) * 32 + j, mask) >> ((g % 4) * 2)) & 3
    q = (low | (high << 4)) - 32
    sc = tl.load(blk + 192 + 2 * g + j // 16, mask=mask, other=0).to(tl.int8, bitcast=True).to(tl.float32)
    return (_f16(blk + 208, mask) * sc) * q.to(tl.float32)


@triton.jit
def _dequant_group(row, k0, j, mask, QTYPE: tl.constexpr):
    if QTYPE == 8:
        w = _q8_0(row, k0, j, mask)
    elif QTYPE == 2:
        w = _q4_0(row, k0, j, mask)
    elif QTYPE == 12:
        w = _q4_k(row, k0, j, mask)
    elif QTYPE == 13:
        w = _q5_k(row, k0, j, mask)
    else:
        w = _q6_k(row, k0, j, mask)
    return w


@triton.jit
def _dequant_matmul_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, M, N, K,
    stride_xm, stride_xk, stride_wn, stride_ym,
    QTYPE: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)  # BLOCK_K = 32: one quant group (one scale) per step
    m_mask = offs_m[:, None] < M
    n_mask = offs_n[:, None] < N
    w_rows = w_ptr + offs_n[:, None].to(tl.int64) * stride_wn
    x_rows = x_ptr + offs_m[:, None].to(tl.int64) * stride_xm
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):  # K is a multiple of 32 (checked on the host)
        x = tl.load(x_rows + (k0 + offs_k)[None, :] * stride_xk, mask=m_mask, other=0.0)  # [BM, BK]
        w = _dequant_group(w_rows, k0, offs_k[None, :], n_mask, QTYPE)  # [BN, BK] fp32
        acc = tl.dot(x, tl.trans(w.to(x.dtype)), acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_mask & n_mask.reshape(1, BLOCK_N))


def _check_inputs(x: torch.Tensor, packed: torch.Tensor, qtype: int, out_features: int, in_features: int) -> Q:
    if qtype not in SUPPORTED_QTYPES:
        names = ", ".join(t.name for t in SUPPORTED_QTYPES)
        raise KernelInputError(f"dequant_matmul: quant type {Q(qtype).name} is not supported (supported: {names})")
    qtype = Q(qtype)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if in_features % block_size:
        raise KernelInputError(f"dequant_matmul: in_features={in_features} is not a multiple of {block_size}")
    row_bytes = in_features // block_size * type_size
    if packed.dtype != torch.uint8 or tuple(packed.shape) != (out_features, row_bytes) or packed.stride(1) != 1:
        raise KernelInputError(
            f"dequant_matmul: packed must be uint8 [{out_features}, {row_bytes}] with contiguous rows for "
            f"{qtype.name}, got {packed.dtype} {list(packed.shape)}"
        )
    if x.shape[-1] != in_features:
        raise KernelInputError(f"dequant_matmul: x has {x.shape[-1]} features, the weight expects {in_features}")
    return qtype


def dequant_matmul(
    x: torch.Tensor,
    packed: torch.Tensor,
    qtype: int,
    out_features: int,
    in_features: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """`x @ dequantize(packed)ᵀ + bias` without materializing the weight. x: [..., in] -> [..., out] in x.dtype.

    Signature of `QuantizedLinear.kernel`. Supports Q8_0, Q4_0, Q4_K, Q5_K and Q6_K.
    """
    qtype = _check_inputs(x, packed, qtype, out_features, in_features)
    x2 = x.reshape(-1, in_features)  # [M, K]; a view when possible, any strides are fine
    m = x2.shape[0]
    y = torch.empty(m, out_features, device=x.device, dtype=x.dtype)
    block_m = 16 if m <= 16 else 32 if m <= 32 else 64
    block_n = 64
    grid = (triton.cdiv(m, block_m), triton.cdiv(out_features, block_n))
    _dequant_matmul_kernel[grid](
        x2, packed, bias if bias is not None else y, y, m, out_features, in_features,
        x2.stride(0), x2.stride(1), packed.stride(0), y.stride(0),
        QTYPE=int(qtype), HAS_BIAS=bias is not None, PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=32,
    )  # fmt: skip
    return y.reshape(*x.shape[:-1], out_features)
