"""The 8-bit attention scheme of `attention_int8`, in plain torch (no triton import).

Constants shared with the kernel, the size of its quantized K/V workspace (for the memory planner), and a float64
emulation of the whole algorithm that tests and benches compare against: it runs where the kernel cannot (the
CPU, any size) and shows what each quantization step costs in accuracy.

The scheme, per (batch, head):
  K smoothing   k' = k - mean(k over the unmasked keys), per channel. Every query row's scores shift by the
                constant q·mean, which softmax cancels: exact. It removes the channel offsets that DiT keys share,
                so the INT8 grid resolves what differs between keys.
  K             INT8, one scale per K_BLOCK keys (a key tile of the kernel): scale = max|k'| / 127.
  Q             INT8, one scale per query row (the kernel quantizes the row it has loaded anyway).
  scores        (q8 · k8) in int32, times q_scale · k_scale · softmax scale; online softmax in fp32.
  P·V           FP8 e4m3: P scaled by 448 (p <= 1 against the running max); V smoothed too (its per-channel
                mean over the unmasked keys added back after the division by the row sum: the weights sum to 1,
                exact) and scaled per channel to ±448. Or "16bit": in the input's type, P rounded to it (bf16
                or fp16 inputs); fp32 inputs run on the TF32 tensor cores, P and V rounded to TF32 (10 mantissa
                bits, fp32's range: no overflow where fp16 would have one). fp32 accumulation.
Rounding: to nearest, halves away from zero for INT8 and TF32; round-to-nearest-even for e4m3 and 16-bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

INT8_MAX = 127.0
E4M3_MAX = 448.0
K_BLOCK = 64  # keys per K scale = the kernel's key tile
# Quantized K/V copies are made for as many heads at a time as fit this (at least one head): a bounded transient.
WORKSPACE_BYTES = 128 * 2**20
PV_FORMATS = ("fp8", "16bit")


def padded_keys(length: int, block_n: int = K_BLOCK) -> int:
    return -(-length // block_n) * block_n


def head_block(dim: int) -> int:
    """The tiles' head-dim width: a power of two of at least 32, the K of the smallest INT8 / FP8 tensor-core MMA
    (Triton refuses a narrower 8-bit dot); the extra columns load as zeros, which leaves QKᵀ and P·V unchanged."""
    return max(32, 1 << (dim - 1).bit_length())


def head_workspace_bytes(batch: int, length: int, head_dim: int, fp8_v: bool, block_n: int = K_BLOCK) -> int:
    """Bytes of the quantized copies for one head of every batch row, as they are alive together while the
    quantization kernel runs: INT8 K (+ e4m3 Vᵀ), one float32 scale per K_BLOCK keys, and 4 float32 statistics
    rows of the head width (K mean, V mean, V scale and its reciprocal). The per-chunk partial sums the
    statistics are added from (4 rows per 1024 keys) are freed before the copies exist, and are far smaller."""
    block_d = head_block(head_dim)
    rows = padded_keys(length, block_n)
    per_head = rows * block_d * (2 if fp8_v else 1) + rows // block_n * 4 + 4 * block_d * 4
    return batch * per_head


def heads_per_launch(
    batch: int,
    heads: int,
    length: int,
    head_dim: int,
    fp8_v: bool,
    block_n: int = K_BLOCK,
    budget: int = WORKSPACE_BYTES,
) -> int:
    """How many heads the kernel quantizes and attends at once so the copies stay within `budget` bytes."""
    return max(1, min(heads, budget // head_workspace_bytes(batch, length, head_dim, fp8_v, block_n)))


def workspace_bytes(
    batch: int, heads: int, length: int, head_dim: int, key_mask: bool = False, budget: int = WORKSPACE_BYTES
) -> int:
    """Peak device bytes `int8_attention` adds on top of its inputs and output (the FP8 layout, the larger): one
    head group's copies (`budget`: the call's `workspace_bytes`), and the two argument blocks every call makes
    (`attention._key_mask_arg`, `attention._block_table`): with a `key_mask` [batch, 1, 1, length], each row's
    4-byte header and mask bytes (rounded up to 4), else a 4-byte stand-in; a dense call's 4-byte table."""
    group = heads_per_launch(batch, heads, length, head_dim, True, budget=budget)
    mask = batch * (4 + -(-length // 4) * 4) if key_mask else 4
    return group * head_workspace_bytes(batch, length, head_dim, True) + mask + 4


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.trunc(x + torch.where(x >= 0, 0.5, -0.5))


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """x (float64) -> fp32, then the nearest TF32 value (the 13 low mantissa bits dropped, halves away from zero),
    as the kernel's `_to_tf32`; float64 again."""
    bits = x.float().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32).double()


def _quantize_k(k: torch.Tensor, keep: torch.Tensor, smooth: bool, block_n: int) -> torch.Tensor:
    """k [B, H, L, D] float64, keep [B|1, 1, L, 1] -> dequantized INT8 K (masked keys zero)."""
    if smooth:
        count = keep.sum(2, keepdim=True).clamp_min(1)
        k = k - (k * keep).sum(2, keepdim=True) / count
    k = k * keep
    bsz, heads, length, dim = k.shape
    blocks = F.pad(k, (0, 0, 0, padded_keys(length, block_n) - length)).unflatten(2, (-1, block_n))
    amax = blocks.abs().amax((-1, -2), keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_MAX, 1.0)
    return (round_half_away(blocks / scale) * scale).flatten(2, 3)[:, :, :length]


def _quantize_q(q: torch.Tensor) -> torch.Tensor:
    amax = q.abs().amax(-1, keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_MAX, 1.0)
    return round_half_away(q / scale) * scale


def _pv_operands(v: torch.Tensor, keep: torch.Tensor, pv: str, dtype: torch.dtype):
    """-> (V as the dot sees it, float64; P's rounding function; the mean to add back)."""
    if pv == "fp8":
        mean = (v * keep).sum(2, keepdim=True) / keep.sum(2, keepdim=True).clamp_min(1)
        v = (v - mean) * keep
        amax = v.abs().amax(2, keepdim=True)
        scale = torch.where(amax > 0, amax / E4M3_MAX, 1.0)
        v_dot = (v / scale).to(torch.float8_e4m3fn).double() * scale
        return v_dot, lambda p: (p * E4M3_MAX).to(torch.float8_e4m3fn).double() / E4M3_MAX, mean
    no_mean = torch.zeros_like(v[:, :, :1])
    if dtype in (torch.float16, torch.bfloat16):
        return v.to(dtype).double(), lambda p: p.to(dtype).double(), no_mean
    return round_tf32(v), round_tf32, no_mean  # fp32 inputs


def emulate_int8_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    block_mask: torch.Tensor | None = None,
    block_size: int = 128,
    pv: str = "fp8",
    smooth_k: bool = True,
    block_n: int = K_BLOCK,
) -> torch.Tensor:
    """What `attention_int8.int8_attention` computes, in float64 between the roundings (same arguments; the
    kernel's arithmetic is fp32, so results agree to rounding). Rows that see no key return zeros. O(Lq·Lk)
    memory: for tests and small shapes."""
    if pv not in PV_FORMATS:
        raise ValueError(f"pv must be one of {PV_FORMATS}, got {pv!r}")
    from .reference import expand_block_mask  # pure torch

    length, dim = k.shape[2], k.shape[3]
    keep = torch.ones(1, 1, length, 1, dtype=torch.bool, device=k.device)
    if key_mask is not None:
        keep = key_mask.transpose(-1, -2)  # [B|1, 1, L, 1]
    k_dq = _quantize_k(k.double(), keep, smooth_k, block_n)
    scores = _quantize_q(q.double()) @ k_dq.transpose(-1, -2) / math.sqrt(dim)  # [B, H, Lq, Lk]
    allowed = keep.transpose(-1, -2)
    if block_mask is not None:
        allowed = allowed & expand_block_mask(block_mask, block_size, q.shape[2], length)
    scores = scores.masked_fill(~allowed, -math.inf)
    v_dot, round_p, v_mean = _pv_operands(v.double(), keep, pv, v.dtype)
    row_max = torch.full(scores.shape[:-1], -math.inf, dtype=torch.float64, device=q.device)
    row_sum = torch.zeros_like(row_max)
    acc = torch.zeros(*scores.shape[:-1], dim, dtype=torch.float64, device=q.device)
    for start in range(0, length, block_n):  # the kernel's online softmax, one key tile at a time
        tile = scores[..., start : start + block_n]
        new_max = torch.maximum(row_max, tile.amax(-1))
        safe = torch.where(new_max == -math.inf, 0.0, new_max)
        p = torch.exp(tile - safe[..., None])
        alpha = torch.exp(row_max - safe)
        row_sum = row_sum * alpha + p.sum(-1)
        acc = acc * alpha[..., None] + round_p(p) @ v_dot[:, :, start : start + block_n]
        row_max = new_max
    out = acc / torch.where(row_sum == 0, 1.0, row_sum)[..., None] + (row_sum > 0)[..., None] * v_mean
    return out.to(q.dtype)
