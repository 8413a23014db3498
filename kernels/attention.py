"""FlashAttention-style forward with an optional key-padding mask and an optional block mask.

Online softmax (base 2) with fp32 accumulators. A block mask `[B or 1, H or 1, ceil(Lq/S), ceil(Lk/S)]` (S =
`block_size`) says which (query tile, key tile) pairs to compute; the kernel loops over a compacted list of
the computed key blocks per query block, so skipped tiles cost nothing in the loop. With no block mask the
result is exact softmax attention (SDPA with the same boolean key mask). Query rows that see no key at all
(every tile skipped or every key padded) return zeros, where SDPA would return NaN.

Speed (bf16/fp16 on CUDA): tiles, warps and pipeline stages come from `triton.autotune` over `_CONFIGS` (and
`MMA_SYNC_CONFIGS` on Ampere, Ada and RTX 50xx), keyed on the (bucketed) lengths, head dim and which masks are
present. The key loop is split into full key tiles,
which load k/v without bounds masks and apply no mask at all, and one partial tail tile. With a key mask, the
full tiles before each row's first masked key (all but the last one or two for the model's trailing text
padding) take that mask-free path too; only the tiles from there on read the mask. k/v tile pointers are
built once and advanced by one scalar step per tile (no per-element 64-bit row math in the loop); the JIT
specializes the head dim's unit stride to a constant, so full tiles load as 16-byte cp.async copies that the
loop software-pipelines into Hopper wgmma. The softmax scale (times log2 e) is folded into the exp2 argument
(one FMA per score) instead of rounding a pre-scaled q to bf16. The calls the tuned configs do not cover
(`launch.tuned_launch_ok`) take a fixed launch instead: fp32 inputs (exact `ieee` dots), head dims above 128 and
block masks of blocks below 128 keys get `fixed_launch`'s tiles and stages for their GPU generation (made to fit
its shared memory); the CPU interpreter, which has no shared memory to fit, gets the tiles that divide the block
size (`_tile_sizes`).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .errors import KernelInputError
from .launch import (
    FUSED_FP,
    TENSOR_CORE_DOTS,
    autotune_attention,
    check_block_size,
    cp_async_tiles,
    qk_scale_exp2,
    tuned_launch_ok,
)

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _attend_tile(
    acc, l_i, m_i, q, k_ptrs, v_ptrs, kmask_row, start_n, offs_n, offs_d, LK, D, qk_scale,
    HAS_KEY_MASK: tl.constexpr, TAIL: tl.constexpr, EVEN_D: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Fold key tile [start_n, start_n + BLOCK_N) into the running row max m_i (log2 units), normalizer l_i
    and output acc (all fp32). k_ptrs/v_ptrs: the tile's [BLOCK_N, BLOCK_D] k/v pointers. TAIL: the tile runs
    past LK (bounds-masked loads, out-of-range keys -inf). HAS_KEY_MASK: apply the per-key mask (bytes at
    kmask_row[start_n:]); False on tiles whose keys are all kept."""
    cols = start_n + offs_n
    if TAIL:
        kv_mask = (cols[:, None] < LK) & (offs_d[None, :] < D)
        k = tl.load(k_ptrs, mask=kv_mask, other=0.0)
    elif EVEN_D:
        k = tl.load(k_ptrs)
    else:
        k = tl.load(k_ptrs, mask=offs_d[None, :] < D, other=0.0)
    qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # [BM, BN] raw scores
    if HAS_KEY_MASK:
        keep = tl.load(kmask_row + cols, mask=cols < LK, other=0) != 0
        qk = tl.where(keep[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, axis=1) * qk_scale)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet: avoid inf - inf
    else:
        if TAIL:
            qk = tl.where((cols < LK)[None, :], qk, float("-inf"))
        # Without a key mask every computed tile holds at least one real key, so m_new is finite.
        m_new = tl.maximum(m_i, tl.max(qk, axis=1) * qk_scale)
        m_safe = m_new
    p = tl.math.exp2(qk * qk_scale - m_safe[:, None])  # the scale rides on the subtraction's FMA
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    if TAIL:
        v = tl.load(v_ptrs, mask=kv_mask, other=0.0)
    elif EVEN_D:
        v = tl.load(v_ptrs)
    else:
        v = tl.load(v_ptrs, mask=offs_d[None, :] < D, other=0.0)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
    return acc, l_i, m_new


@triton.jit
def _block_table_row(bmask_ptr, b, h, pid_m, sbm_b, sbm_h, sbm_m, BLOCK_M: tl.constexpr, MASK_BLOCK: tl.constexpr):
    """The `_block_table` row (an int32 pointer) of query tile pid_m of batch b, head h."""
    table = bmask_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
    return table + b.to(tl.int64) * sbm_b + h.to(tl.int64) * sbm_h + (pid_m * BLOCK_M // MASK_BLOCK) * sbm_m


@triton.jit
def _attention_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, kmask_ptr, bmask_ptr, qk_scale, H, LQ, LK, D,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    skm_b, sbm_b, sbm_h, sbm_m, LQ_BUCKET, LK_BUCKET,
    HAS_BLOCK_MASK: tl.constexpr, MASK_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
    HAS_KEY_MASK: tl.constexpr = True, EVEN_D: tl.constexpr = False,
):  # fmt: skip
    """bmask_ptr: the block mask as an int32 table (see `_block_table`), one row per (batch, head, query
    block): [number of computed full key blocks, last key block is partial and computed, their indices...].
    LQ_BUCKET, LK_BUCKET: unused here; they are the autotuner's key."""
    pid_m = tl.program_id(0)
    b, h = tl.program_id(1) // H, tl.program_id(1) % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d[None, :] < D
    q_base = q_ptr + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
    q = tl.load(
        q_base + offs_m[:, None].to(tl.int64) * sqm + offs_d[None, :] * sqd,
        mask=(offs_m[:, None] < LQ) & d_mask,
        other=0.0,
    )
    # Tile pointers at key 0, hoisted out of the loops: a tile at start_n adds one scalar int64 offset
    # (start_n * stride, 2N tokens x a fused-QKV row stride can pass 2**31) instead of per-element row math.
    k_tile = k_ptr + b.to(tl.int64) * skb + h.to(tl.int64) * skh + offs_n[:, None].to(tl.int64) * skn
    k_tile += offs_d[None, :] * skd
    v_tile = v_ptr + b.to(tl.int64) * svb + h.to(tl.int64) * svh + offs_n[:, None].to(tl.int64) * svn
    v_tile += offs_d[None, :] * svd
    # Key mask rows: [int32 index of the first masked key (LK if none), LK mask bytes, padding]; see
    # `_key_mask_arg`. Read only when HAS_KEY_MASK.
    kmask_head = kmask_ptr + b * skm_b
    kmask_row = kmask_head + 4
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    if HAS_BLOCK_MASK:  # compile-time
        # Loop over the computed key tiles only (MASK_BLOCK // BLOCK_N kernel tiles per mask block): no branch
        # in the loop, so the k/v loads software-pipeline like the dense loop's.
        row = _block_table_row(bmask_ptr, b, h, pid_m, sbm_b, sbm_h, sbm_m, BLOCK_M, MASK_BLOCK)
        SUB: tl.constexpr = MASK_BLOCK // BLOCK_N
        for it in range(0, tl.load(row) * SUB):
            start_n = tl.load(row + 2 + it // SUB) * MASK_BLOCK + (it % SUB) * BLOCK_N
            n64 = tl.cast(start_n, tl.int64)
            acc, l_i, m_i = _attend_tile(
                acc, l_i, m_i, q, k_tile + n64 * skn, v_tile + n64 * svn, kmask_row, start_n, offs_n, offs_d,
                LK, D, qk_scale, HAS_KEY_MASK, False, EVEN_D, PRECISION,
            )  # fmt: skip
        if tl.load(row + 1) != 0:  # the partial last key block, bounds-masked
            for start_n in range((LK // MASK_BLOCK) * MASK_BLOCK, LK, BLOCK_N):
                n64 = tl.cast(start_n, tl.int64)
                acc, l_i, m_i = _attend_tile(
                    acc, l_i, m_i, q, k_tile + n64 * skn, v_tile + n64 * svn, kmask_row, start_n, offs_n,
                    offs_d, LK, D, qk_scale, HAS_KEY_MASK, True, EVEN_D, PRECISION,
                )  # fmt: skip
    else:
        lk_full = (LK // BLOCK_N) * BLOCK_N
        if HAS_KEY_MASK:
            # Full tiles before the first masked key need no mask (all of them for trailing text padding).
            first_masked = tl.load(kmask_head.to(tl.pointer_type(tl.int32), bitcast=True))
            lk_clean = (tl.minimum(first_masked, lk_full) // BLOCK_N) * BLOCK_N
        else:
            lk_clean = lk_full
        k_ptrs = k_tile
        v_ptrs = v_tile
        k_step = tl.cast(skn, tl.int64) * BLOCK_N
        v_step = tl.cast(svn, tl.int64) * BLOCK_N
        for start_n in range(0, lk_clean, BLOCK_N):  # full, unmasked key tiles: no bounds or key masks
            acc, l_i, m_i = _attend_tile(
                acc, l_i, m_i, q, k_ptrs, v_ptrs, kmask_row, start_n, offs_n, offs_d, LK, D, qk_scale,
                False, False, EVEN_D, PRECISION,
            )  # fmt: skip
            k_ptrs += k_step
            v_ptrs += v_step
        if HAS_KEY_MASK:
            for start_n in range(lk_clean, lk_full, BLOCK_N):  # full tiles from the first masked key on
                n64 = tl.cast(start_n, tl.int64)
                acc, l_i, m_i = _attend_tile(
                    acc, l_i, m_i, q, k_tile + n64 * skn, v_tile + n64 * svn, kmask_row, start_n, offs_n,
                    offs_d, LK, D, qk_scale, True, False, EVEN_D, PRECISION,
                )  # fmt: skip
        if lk_full < LK:  # the partial last key tile
            n64 = tl.cast(lk_full, tl.int64)  # LK may be a specialized constant
            acc, l_i, m_i = _attend_tile(
                acc, l_i, m_i, q, k_tile + n64 * skn, v_tile + n64 * svn, kmask_row, lk_full, offs_n, offs_d,
                LK, D, qk_scale, HAS_KEY_MASK, True, EVEN_D, PRECISION,
            )  # fmt: skip
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = o_ptr + ((b * H + h).to(tl.int64) * LQ + offs_m[:, None]) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=(offs_m[:, None] < LQ) & d_mask)


def _key_mask_arg(mask: torch.Tensor | None, bsz: int, lk: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Bool [B or 1, 1, 1, Lk] -> (uint8 [B or 1, 4 + Lk rounded up to 4], batch stride); a dummy when there is
    no mask. Each row: the index of its first False key (Lk if none) as an int32, then the mask as bytes, so
    the dense kernel runs the key tiles before the first masked key without the mask."""
    if mask is None:
        return torch.zeros(4, dtype=torch.uint8, device=device), 0
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1:3] != (1, 1) or mask.shape[3] != lk:
        raise KernelInputError(f"attention: key mask must be bool [B, 1, 1, {lk}], got {mask.dtype} {list(mask.shape)}")
    if mask.shape[0] not in (1, bsz):
        raise KernelInputError(f"attention: key mask batch {mask.shape[0]} does not match batch {bsz}")
    rows = mask.shape[0]
    keep = mask.reshape(rows, lk).to(device)
    positions = torch.arange(lk, device=device, dtype=torch.int32)
    first_masked = torch.where(keep, lk, positions).amin(-1) if lk else torch.zeros(rows, dtype=torch.int32)
    km = torch.zeros(rows, 4 + (lk + 3) // 4 * 4, dtype=torch.uint8, device=device)
    km[:, :4] = first_masked.to(device=device, dtype=torch.int32).contiguous().view(torch.uint8).view(rows, 4)
    km[:, 4 : 4 + lk] = keep
    return km, (km.shape[1] if rows == bsz and bsz > 1 else 0)


def _block_table(block_mask: torch.Tensor | None, shape: tuple[int, ...], lk: int, block_size: int, device) -> tuple:
    """Bool [B or 1, H or 1, nq, nk] -> (int32 [B or 1, H or 1, nq, 2 + nk'], strides with 0 on broadcast dims).

    Row (b, h, i): [c, t, j_1 .. j_c, padding]: the c computed key blocks j that lie wholly inside Lk, ascending,
    and t = 1 when the partial last key block (Lk not a multiple of block_size) is computed."""
    if block_mask is None:
        return torch.zeros(1, dtype=torch.int32, device=device), (0, 0, 0)
    bsz, heads, nq, nk = shape
    ok = block_mask.dim() == 4 and block_mask.shape[2:] == (nq, nk)
    ok = ok and block_mask.shape[0] in (1, bsz) and block_mask.shape[1] in (1, heads)
    if not ok or block_mask.dtype != torch.bool:
        raise KernelInputError(
            f"attention: block mask must be bool [{bsz} or 1, {heads} or 1, {nq}, {nk}], "
            f"got {block_mask.dtype} {list(block_mask.shape)}"
        )
    bm = block_mask.to(device)
    n_full = lk // block_size
    full = bm[..., :n_full]
    cols = torch.arange(n_full, device=device, dtype=torch.int32).expand(full.shape)
    indices = torch.where(full, cols, n_full).sort(dim=-1).values  # computed blocks first, ascending
    partial = bm[..., n_full:].any(-1, keepdim=True)  # nk == n_full + 1 exactly when Lk is ragged
    table = torch.cat([full.sum(-1, keepdim=True, dtype=torch.int32), partial.to(torch.int32), indices], -1)
    table = table.contiguous()
    return table, tuple(0 if table.shape[i] == 1 else table.stride(i) for i in range(3))


def _tile_sizes(block_size: int, head_dim: int) -> tuple[int, int]:
    """Fixed kernel tiles that divide the mask's block size (so no tile straddles two mask blocks)."""
    check_block_size("attention", block_size)
    return min(block_size, 128 if head_dim <= 64 else 64), min(block_size, 64)


# The fixed launch of fp32 inputs (exact `ieee` dots on the CUDA cores): 32 query rows and no pipelining. Its
# operands are staged through shared memory, and at head dim 128 the 16-bit inputs' 64-row tiles with 3 stages ask
# for 176 KiB, more than any GPU but Hopper gives a block (sm_75: 64 KiB; sm_86/89/120: 99 KiB; sm_80: 163 KiB);
# 32 x 64 with one stage takes 56 KiB (tests/test_kernels_compile.py). Query rows are independent, so the rows
# per program change no result; the key tile, which orders the online softmax, stays.
FP32_BLOCK_M = 32
FP32_STAGES = 1
# The fixed launch of 16-bit inputs at head dims above 128 (BLOCK_D 256): with 64 x 64 tiles and 3 stages it asks
# for 168 KiB as the model's strides specialize it, more than any GPU but Hopper gives a block; one stage takes 72
# KiB (sm_80-sm_120). Turing, whose dots stage their operands through shared memory, needs 128 KiB even then, and
# 64 KiB (all it has) with 32 x 32 tiles; there the smaller key tile changes the online softmax's rounding order.
WIDE_HEAD_STAGES = 1
TURING_WIDE_HEAD_TILES = (32, 32)


def fixed_launch(
    block_size: int, block_d: int, dtype: torch.dtype, capability: tuple[int, int]
) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_stages) of the non-autotuned launch on a GPU of compute capability `capability`: the
    tiles that divide the mask's block size (`_tile_sizes`), made to fit the GPU's shared memory
    (tests/test_kernels_compile.py compiles each for every generation)."""
    block_m, block_n = _tile_sizes(block_size, block_d)
    if dtype == torch.float32:
        return min(block_m, FP32_BLOCK_M), block_n, FP32_STAGES
    if block_d <= 128:
        return block_m, block_n, 3
    if capability < TENSOR_CORE_DOTS:
        return min(block_m, TURING_WIDE_HEAD_TILES[0]), min(block_n, TURING_WIDE_HEAD_TILES[1]), WIDE_HEAD_STAGES
    return block_m, block_n, WIDE_HEAD_STAGES


# Autotuned configs for 16-bit inputs on CUDA (head_dim <= 128). Every tile is <= 128, so each divides any
# power-of-two block mask size >= 128. 128-row query tiles on 8 warps (two warpgroups of 64 rows) are the usual
# Hopper FlashAttention shape; 128- vs 64-key tiles trade the [BM, BN] fp32 score tile's registers (~254 vs
# ~215 per thread at head_dim 128 for sm_90; no spills inside the key loop, a 40-byte stack outside it for
# 128 x 128) against loop overhead (~540 vs ~380 SASS instructions per key tile, i.e. 128 x 64 issues ~40 %
# more per key); 2-4 stages trade shared memory (q + stages x k/v tiles: 160-224 KiB for 128 x 128) for
# hiding load latency. 64 x 64 on 4 warps (the old fixed tiles, two CTAs per SM) is the fallback for short
# sequences. 128 x 64 on 4 warps and
# 64 x 128 spill registers, 128 x 128 with 4 stages does not fit shared memory: left out.
_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
]
# Offered too on the GPUs whose dots are `mma.sync` (sm_80-sm_89, sm_120), where every config above spills
# registers (a 72-1144-byte stack per thread at head dim 128 as a call specializes it: its warps hold k and v
# fragments in registers, where Hopper's wgmma reads them from shared memory). 32-key tiles on 8 warps do not spill
# there without a key mask (one stage on all four; three on all but sm_120, 48 bytes), but do with one (8-56
# bytes: the masked tiles hold the mask too); 16-key tiles on 8 warps with one stage are the ones that spill with
# neither (220-224 registers with a key mask; two and three stages spill on sm_120). 64-row tiles would not give
# warps whole rows. Not timed on those GPUs: the autotuner times them with the others there and keeps the fastest
# (tests/test_kernels_compile.py).
MMA_SYNC_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=8, num_stages=1),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 16}, num_warps=8, num_stages=1),
]
_TUNE_KEY = ["LQ_BUCKET", "LK_BUCKET", "D", "HAS_BLOCK_MASK", "HAS_KEY_MASK"]


def shared_memory_floor(config: triton.Config, args: dict, capability: tuple[int, int]) -> int:
    """The fewest bytes of shared memory a block of the dense kernel asks for with `config` on a call with `args`:
    its q tile, plus num_stages - 1 buffers of each k or v tile that loads by `cp.async` (`launch.cp_async_tiles`).
    Hopper's 128 x 128 tiles with 3 stages: 32 + 2 x 64 KiB, exactly what they compile to on sm_80-sm_120
    (tests/test_kernels_compile.py checks the floor against every compiled config)."""
    block_m, block_n, stages = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_stages
    tile = args["BLOCK_D"] * args["q_ptr"].element_size()
    k_strides = tuple(args[name] for name in ("skb", "skh", "skn", "skd"))
    v_strides = tuple(args[name] for name in ("svb", "svh", "svn", "svd"))
    pipelined = int(cp_async_tiles(args["k_ptr"], k_strides, capability))
    pipelined += cp_async_tiles(args["v_ptr"], v_strides, capability)
    return (block_m + (stages - 1) * block_n * pipelined) * tile


_attention_autotuned = (
    None
    if _INTERPRET
    else autotune_attention(_CONFIGS, _TUNE_KEY, shared_memory_floor, MMA_SYNC_CONFIGS)(_attention_kernel)
)


def _length_bucket(n: int) -> int:
    """Autotune key for a sequence length: the next power of two, capped at 16384. Past a few waves of
    128-row tiles the best config no longer depends on the length, so every long (Motif-size) sequence shares
    one tuning run instead of re-tuning, seconds each, at every new resolution."""
    return min(triton.next_power_of_2(max(n, 1)), 16384)


def _use_autotune(dtype: torch.dtype, block_d: int, block_mask: torch.Tensor | None, block_size: int) -> bool:
    # 16-bit only: fp32 takes its own fixed launch (exact `ieee` dots), which the tuned configs do not cover.
    return dtype in (torch.bfloat16, torch.float16) and tuned_launch_ok(
        _attention_autotuned, block_d, block_mask is not None, block_size
    )


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
    bm, bm_strides = _block_table(
        block_mask, (bsz, heads, triton.cdiv(lq, block_size), triton.cdiv(lk, block_size)), lk, block_size, q.device
    )
    out = torch.empty(bsz, heads, lq, dim, device=q.device, dtype=q.dtype)
    if out.numel() == 0:
        return out
    qk_scale = qk_scale_exp2(dim)
    block_d = max(16, triton.next_power_of_2(dim))
    args = (
        q, k, v, out, km, bm, qk_scale, heads, lq, lk, dim,
        *q.stride(), *k.stride(), *v.stride(), skm_b, *bm_strides, _length_bucket(lq), _length_bucket(lk),
    )  # fmt: skip
    flags = dict(
        HAS_BLOCK_MASK=block_mask is not None,
        # The dense kernel never reads MASK_BLOCK: one fixed value, so block_size does not recompile it.
        MASK_BLOCK=block_size if block_mask is not None else 128,
        BLOCK_D=block_d,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        HAS_KEY_MASK=key_mask is not None,
        EVEN_D=block_d == dim,
        **FUSED_FP,
    )
    if _use_autotune(q.dtype, block_d, block_mask, block_size):
        _attention_autotuned[lambda meta: (triton.cdiv(lq, meta["BLOCK_M"]), bsz * heads)](*args, **flags)
    else:
        stages = 3
        if not _INTERPRET:  # the interpreter has no shared memory to fit: it keeps the mask's tiles
            capability = torch.cuda.get_device_capability(q.device)
            block_m, block_n, stages = fixed_launch(block_size, block_d, q.dtype, capability)
        grid = (triton.cdiv(lq, block_m), bsz * heads)
        _attention_kernel[grid](*args, **flags, BLOCK_M=block_m, BLOCK_N=block_n, num_stages=stages)
    return out


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Dense attention with the `Ops.attention` signature (mask: bool [B, 1, 1, Lk] or None)."""
    return block_sparse_attention(q, k, v, key_mask=mask)
