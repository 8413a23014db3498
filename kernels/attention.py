"""FlashAttention-style forward with an optional key-padding mask and an optional block mask.

Online softmax (base 2) with fp32 accumulators. A block mask `[B or 1, H or 1, ceil(Lq/S), ceil(Lk/S)]` (S =
`block_size`) says which (query tile, key tile) pairs to compute; skipped tiles cost one byte load. With no
block mask the result is exact softmax attention (SDPA with the same boolean key mask). Query rows that see no
key at all (every tile skipped or every key padded) return zeros, where SDPA would return NaN.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .errors import KernelInputError


@triton.jit
def _load_kv(k_base, v_base, kmask_row, start_n, offs_d, d_mask, LK, skn, skd, svn, svd, BLOCK_N: tl.constexpr):
    """One key tile: k, v [BN, BD] and `keep` [BN] (in range and not padded)."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    kv_mask = (offs_n[:, None] < LK) & d_mask
    rows = offs_n[:, None].to(tl.int64)  # 2N tokens x a fused-QKV row stride can pass 2**31
    k = tl.load(k_base + rows * skn + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
    v = tl.load(v_base + rows * svn + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
    keep = (offs_n < LK) & (tl.load(kmask_row + offs_n, mask=offs_n < LK, other=0) != 0)
    return k, v, keep


@triton.jit
def _online_softmax_step(q, k, v, keep, m_i, l_i, acc, qk_scale, PRECISION: tl.constexpr):
    """Fold one key tile into the running row max m_i, normalizer l_i and output acc (all fp32)."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BM, BN], log2 units
    s = tl.where(keep[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet: avoid inf - inf
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return m_new, l_i, acc


@triton.jit
def _attention_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, kmask_ptr, bmask_ptr, qk_scale, H, LQ, LK, D,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    skm_b, sbm_b, sbm_h, sbm_m, sbm_n,
    HAS_BLOCK_MASK: tl.constexpr, MASK_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    b, h = tl.program_id(1) // H, tl.program_id(1) % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d[None, :] < D
    q_base = q_ptr + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
    q = tl.load(
        q_base + offs_m[:, None].to(tl.int64) * sqm + offs_d[None, :] * sqd,
        mask=(offs_m[:, None] < LQ) & d_mask,
        other=0.0,
    )
    k_base = k_ptr + b.to(tl.int64) * skb + h.to(tl.int64) * skh
    v_base = v_ptr + b.to(tl.int64) * svb + h.to(tl.int64) * svh
    kmask_row = kmask_ptr + b * skm_b  # a missing key mask is all ones with batch stride 0
    bmask_row = bmask_ptr + b * sbm_b + h * sbm_h + (pid_m * BLOCK_M // MASK_BLOCK) * sbm_m
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start_n in range(0, LK, BLOCK_N):
        if HAS_BLOCK_MASK:  # compile-time: the dense kernel has no branch in its loop
            if tl.load(bmask_row + (start_n // MASK_BLOCK) * sbm_n) != 0:
                k, v, keep = _load_kv(
                    k_base, v_base, kmask_row, start_n, offs_d, d_mask, LK, skn, skd, svn, svd, BLOCK_N
                )
                m_i, l_i, acc = _online_softmax_step(q, k, v, keep, m_i, l_i, acc, qk_scale, PRECISION)
        else:
            k, v, keep = _load_kv(k_base, v_base, kmask_row, start_n, offs_d, d_mask, LK, skn, skd, svn, svd, BLOCK_N)
            m_i, l_i, acc = _online_softmax_step(q, k, v, keep, m_i, l_i, acc, qk_scale, PRECISION)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = o_ptr + ((b * H + h).to(tl.int64) * LQ + offs_m[:, None]) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=(offs_m[:, None] < LQ) & d_mask)


def _key_mask_arg(mask: torch.Tensor | None, bsz: int, lk: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Bool [B or 1, 1, 1, Lk] -> (uint8 [B or 1, Lk], batch stride)."""
    if mask is None:
        return torch.ones(1, lk, dtype=torch.uint8, device=device), 0
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1:3] != (1, 1) or mask.shape[3] != lk:
        raise KernelInputError(f"attention: key mask must be bool [B, 1, 1, {lk}], got {mask.dtype} {list(mask.shape)}")
    if mask.shape[0] not in (1, bsz):
        raise KernelInputError(f"attention: key mask batch {mask.shape[0]} does not match batch {bsz}")
    km = mask.reshape(mask.shape[0], lk).to(torch.uint8).contiguous()
    return km, (lk if mask.shape[0] == bsz and bsz > 1 else 0)


def _block_mask_arg(block_mask: torch.Tensor | None, shape: tuple[int, ...], device: torch.device) -> tuple:
    """Bool [B or 1, H or 1, nq, nk] -> (uint8 tensor, strides with 0 on broadcast dims)."""
    if block_mask is None:
        return torch.ones(1, dtype=torch.uint8, device=device), (0, 0, 0, 0)
    bsz, heads, nq, nk = shape
    ok = block_mask.dim() == 4 and block_mask.shape[2:] == (nq, nk)
    ok = ok and block_mask.shape[0] in (1, bsz) and block_mask.shape[1] in (1, heads)
    if not ok or block_mask.dtype != torch.bool:
        raise KernelInputError(
            f"attention: block mask must be bool [{bsz} or 1, {heads} or 1, {nq}, {nk}], "
            f"got {block_mask.dtype} {list(block_mask.shape)}"
        )
    bm = block_mask.to(device=device, dtype=torch.uint8).contiguous()
    strides = tuple(0 if bm.shape[i] == 1 else bm.stride(i) for i in range(4))
    return bm, strides


def _tile_sizes(block_size: int, head_dim: int) -> tuple[int, int]:
    """Kernel tiles that divide the mask's block size (so no tile straddles two mask blocks)."""
    if block_size < 16 or block_size & (block_size - 1):
        raise KernelInputError(f"attention: block_size must be a power of two >= 16, got {block_size}")
    return min(block_size, 128 if head_dim <= 64 else 64), min(block_size, 64)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    block_mask: torch.Tensor | None = None,
    block_size: int = 128,
) -> torch.Tensor:
    """Softmax attention over the tiles that `block_mask` allows. q: [B, H, Lq, D], k/v: [B, H, Lk, D] any
    strides; key_mask: bool [B or 1, 1, 1, Lk] (True = attend); block_mask: bool [B or 1, H or 1,
    ceil(Lq/block_size), ceil(Lk/block_size)] (True = compute). Returns contiguous [B, H, Lq, D] in q.dtype."""
    bsz, heads, lq, dim = q.shape
    lk = k.shape[2]
    if k.shape != (bsz, heads, lk, dim) or v.shape != k.shape:
        raise KernelInputError(f"attention: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)} do not match")
    block_m, block_n = _tile_sizes(block_size, dim)
    km, skm_b = _key_mask_arg(key_mask, bsz, lk, q.device)
    bm, bm_strides = _block_mask_arg(
        block_mask, (bsz, heads, triton.cdiv(lq, block_size), triton.cdiv(lk, block_size)), q.device
    )
    out = torch.empty(bsz, heads, lq, dim, device=q.device, dtype=q.dtype)
    if out.numel() == 0:
        return out
    qk_scale = 1.0 / math.sqrt(dim) * math.log2(math.e)  # SDPA's default scale, in exp2 units
    grid = (triton.cdiv(lq, block_m), bsz * heads)
    _attention_kernel[grid](
        q, k, v, out, km, bm, qk_scale, heads, lq, lk, dim,
        *q.stride(), *k.stride(), *v.stride(), skm_b, *bm_strides,
        HAS_BLOCK_MASK=block_mask is not None, MASK_BLOCK=block_size,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=max(16, triton.next_power_of_2(dim)),
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )  # fmt: skip
    return out


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Dense attention with the `Ops.attention` signature (mask: bool [B, 1, 1, Lk] or None)."""
    return block_sparse_attention(q, k, v, key_mask=mask)
