"""8-bit attention: INT8 QKᵀ with K smoothing, FP8 or 16-bit P·V, dense or block-sparse (SageAttention's scheme).

    out = int8_attention(q, k, v, key_mask=None, block_mask=None, block_size=128)

Same arguments, layouts and masks as `attention.block_sparse_attention`; the scheme and its float64 emulation are
in `int8_scheme`. Three kernels per group of heads:

1. `_kv_stats_kernel` (one program per 1024 keys): per-channel K sums (and V sum, max, min for FP8) over the
   unmasked keys, as partials that torch adds in a fixed order (deterministic, no atomics). Reads K (and V) once.
2. `_quantize_kv_kernel` (one program per 64 keys): K - mean -> INT8 with one scale per 64 keys, and for FP8 P·V,
   V - mean -> e4m3 with per-channel scales, written transposed (`Vᵀ`, keys contiguous: Hopper's FP8 wgmma needs both
   operands K-major). Masked and padding keys become zeros. Reads K (and V), writes 1 byte per element.
3. `_int8_attention_kernel` (one program per query tile): loads its Q tile once in the input dtype and quantizes
   it to INT8 in registers with one scale per row (no pass over HBM for Q: the exact kernel reads the same bytes),
   then runs the online softmax over INT8 K tiles (int32 accumulation on the tensor cores) and P·V in FP8 (P x
   448 -> e4m3, fp32 accumulation promoted every key tile) or in the input's type (bf16, fp16; fp32 as TF32).

Memory traffic per head with L keys and D channels, in bytes, bf16 inputs, FP8 P·V (16-bit P·V: no V terms in
1-2): the prepass reads K twice and V twice and writes L·D each (10 L·D). The attention kernel reads every K and
V tile once per 128-row query tile: 2 L·D bytes per query tile against 4 L·D for the exact kernel. At 720p (the
DDT decoder, L = 228,160, 12 heads of 128) the prepass moves ~3.5 GB per call (~1 ms at an H100's 3.35 TB/s)
against an attention of 0.3-0.6 s: < 0.4 %. Fusing the quantization into the RMSNorm+RoPE kernel that writes K
would save that pass but cannot smooth (the mean needs every key before the first is quantized) and would put an
INT8 layout into the model's `Ops.rms_norm_rope` seam; Q is fused into the attention kernel itself. The copies exist for
`int8_scheme.heads_per_launch` heads at a time (<= `WORKSPACE_BYTES`, at least one head), so the extra memory is
bounded, whatever the length.

Scores: the int32 dot times (q row scale x k tile scale x softmax scale x log2 e), one factor per row, folded into
the exp2 argument's FMA as the exact kernel folds its softmax scale. At 8 bits the tensor cores spend as long on a
score (its 2 x 128 QKᵀ and P·V MACs at head dim 128) as the exp2 units on its one exp2: ~0.26 ps each across an
H100 (1,979 dense INT8/FP8 TOPS; 16 exp2 per clock per SM). So the per-score instructions bound this kernel, the
ones that issue at the exp2 unit's rate most of all. Per score: an integer add and a float add turn the int32
into fp32 (instead of a conversion, which issues at that rate, see MAGIC_BITS), one FMA (scales, running max and
FP8's factor 448 folded into it), a max, one exp2, an add to the row sum and half an e4m3 pack. Needs INT8 tensor
cores (sm_80+; not run on AMD GPUs: `gpus.int8_attention_blocker`); FP8 P·V needs sm_89+ and key tiles of 32+
keys, its MMA's depth (`pv="auto"` picks it there; a block_size of 16 keeps 16-bit P·V). Under TRITON_INTERPRET=1
the e4m3 casts round in fp32 first: the CPU interpreter's fp8 cast drops the carry of a rounded-up mantissa
(1.94 -> 1.0); compiled code casts directly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from motif_lite.gpus import GpuFacts, gpu_facts, has_fp8_pv, int8_attention_blocker

from .attention import _block_table, _block_table_row, _key_mask_arg, _length_bucket
from .errors import KernelInputError
from .int8_scheme import (
    E4M3_MAX,
    K_BLOCK,
    PV_FORMATS,
    WORKSPACE_BYTES,
    head_block,
    heads_per_launch,
    padded_keys,
)
from .launch import FUSED_FP, autotune_attention, check_block_size, cp_async_tiles, qk_scale_exp2, tuned_launch_ok

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_STATS_ROWS = 1024  # keys per statistics program


@triton.jit
def _round_int8(x):
    """x in [-127, 127] -> the nearest int8, halves away from zero (float-to-int casts truncate)."""
    return (x + tl.where(x >= 0, 0.5, -0.5)).to(tl.int8)


@triton.jit
def _to_e4m3(x, INTERPRETED: tl.constexpr):
    """fp32 -> float8 e4m3 (round to nearest even; |x| <= 448)."""
    if INTERPRETED:  # round in fp32 so the interpreter's cast only sees representable values
        bits = x.to(tl.int32, bitcast=True)
        normal = ((bits + 0x7FFFF + ((bits >> 20) & 1)) & -0x100000).to(tl.float32, bitcast=True)
        subnormal = ((x * 512.0 + 12582912.0) - 12582912.0) / 512.0  # multiples of 2**-9, ties to even
        x = tl.where(tl.abs(x) < 0.015625, subnormal, normal)
    return x.to(tl.float8e4nv)


@triton.jit
def _kv_stats_kernel(
    k_ptr, v_ptr, kmask_ptr, stats_ptr, H, L, D,
    skb, skh, skn, skd, svb, svh, svn, svd, skm_b,
    HAS_KEY_MASK: tl.constexpr, SMOOTH: tl.constexpr, V_STATS: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Program (chunk, b·H + h) writes its chunk's per-channel [K sum, V sum, V max, V min] over the unmasked
    keys to stats [B·H, chunks, 4, BLOCK_D] (float32; V terms 0 without V_STATS, max/min ∓inf if no key)."""
    chunk, pid_bh = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    cols = tl.arange(0, BLOCK_D)
    k_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    v_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    v_max = tl.full((BLOCK_D,), float("-inf"), dtype=tl.float32)
    v_min = tl.full((BLOCK_D,), float("inf"), dtype=tl.float32)
    for start in range(chunk * ROWS, chunk * ROWS + ROWS, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        keep = (rows[:, None] < L) & (cols[None, :] < D)
        if HAS_KEY_MASK:
            keep &= (tl.load(kmask_ptr + b * skm_b + 4 + rows, mask=rows < L, other=0) != 0)[:, None]
        if SMOOTH:
            k_rows = k_ptr + b.to(tl.int64) * skb + h.to(tl.int64) * skh + rows[:, None].to(tl.int64) * skn
            k_sum += tl.sum(tl.load(k_rows + cols[None, :] * skd, mask=keep, other=0.0).to(tl.float32), axis=0)
        if V_STATS:
            v_rows = v_ptr + b.to(tl.int64) * svb + h.to(tl.int64) * svh + rows[:, None].to(tl.int64) * svn
            v = tl.load(v_rows + cols[None, :] * svd, mask=keep, other=0.0).to(tl.float32)
            v_sum += tl.sum(v, axis=0)
            v_max = tl.maximum(v_max, tl.max(tl.where(keep, v, float("-inf")), axis=0))
            v_min = tl.minimum(v_min, tl.min(tl.where(keep, v, float("inf")), axis=0))
    out = stats_ptr + (pid_bh * tl.num_programs(0) + chunk) * 4 * BLOCK_D + cols
    tl.store(out, k_sum)
    tl.store(out + BLOCK_D, v_sum)
    tl.store(out + 2 * BLOCK_D, v_max)
    tl.store(out + 3 * BLOCK_D, v_min)


@triton.jit
def _quantize_kv_kernel(
    k_ptr, v_ptr, kmean_ptr, vmean_ptr, vinv_ptr, kmask_ptr, k8_ptr, kscale_ptr, v8_ptr, H, L, D, LPAD,
    skb, skh, skn, skd, svb, svh, svn, svd, skm_b,
    HAS_KEY_MASK: tl.constexpr, QUANT_V: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    INTERPRETED: tl.constexpr,
):  # fmt: skip
    """Program (key block, b·H + h): K - mean -> INT8 k8 [B·H, LPAD, BLOCK_D] with its scale in kscale
    [B·H, LPAD / BLOCK_N]; with QUANT_V, (V - mean) x 448 / max|V - mean| -> e4m3 v8 = Vᵀ [B·H, BLOCK_D, LPAD].
    Keys past L or masked out are written as zeros."""
    pid_n, pid_bh = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    keep = (rows[:, None] < L) & (cols[None, :] < D)
    if HAS_KEY_MASK:
        keep &= (tl.load(kmask_ptr + b * skm_b + 4 + rows, mask=rows < L, other=0) != 0)[:, None]
    k_rows = k_ptr + b.to(tl.int64) * skb + h.to(tl.int64) * skh + rows[:, None].to(tl.int64) * skn
    k = tl.load(k_rows + cols[None, :] * skd, mask=keep, other=0.0).to(tl.float32)
    k = tl.where(keep, k - tl.load(kmean_ptr + pid_bh * BLOCK_D + cols)[None, :], 0.0)
    amax = tl.max(tl.max(tl.abs(k), axis=1), axis=0)
    scale = tl.where(amax > 0, amax / 127.0, 1.0)
    out_rows = pid_bh.to(tl.int64) * LPAD + rows
    tl.store(k8_ptr + out_rows[:, None] * BLOCK_D + cols[None, :], _round_int8(k / scale))
    tl.store(kscale_ptr + pid_bh * (LPAD // BLOCK_N) + pid_n, scale)
    if QUANT_V:
        v_rows = v_ptr + b.to(tl.int64) * svb + h.to(tl.int64) * svh + rows[:, None].to(tl.int64) * svn
        v = tl.load(v_rows + cols[None, :] * svd, mask=keep, other=0.0).to(tl.float32)
        channel = pid_bh * BLOCK_D + cols
        v = (v - tl.load(vmean_ptr + channel)[None, :]) * tl.load(vinv_ptr + channel)[None, :]
        v8 = _to_e4m3(tl.where(keep, v, 0.0), INTERPRETED)
        vt_ptrs = v8_ptr + (pid_bh.to(tl.int64) * BLOCK_D + cols[:, None]) * LPAD + rows[None, :]
        tl.store(vt_ptrs, tl.trans(v8))


# int32 -> fp32 without a conversion instruction: for |i| < 2**22, the bits of 1.5 x 2**23 plus i are the float
# 1.5 x 2**23 + i, exactly. A QKᵀ entry is at most 127² x 256 < 2**22 (head dims up to 256). Conversions issue at
# the exp2 unit's rate (16 per clock per SM, against 128 FP32 adds), so one per score would cost as much as the exp2.
MAGIC_BITS = tl.constexpr(0x4B400000)
MAGIC = tl.constexpr(12582912.0)
LOG2_E4M3_MAX = tl.constexpr(math.log2(E4M3_MAX))


@triton.jit
def _attend_tile_int8(
    acc, l_i, m_i, q8, q_scale, k_ptrs, kscale_row, v_ptrs, kmask_row, start_n, offs_n, offs_d, LK, D,
    HAS_KEY_MASK: tl.constexpr, TAIL: tl.constexpr, EVEN_D: tl.constexpr, PV_FP8: tl.constexpr,
    BLOCK_N: tl.constexpr, INTERPRETED: tl.constexpr,
):  # fmt: skip
    """Fold key tile [start_n, start_n + BLOCK_N) into the running row max m_i (log2 units), sum l_i and output
    acc (fp32). q8: [BM, BD] int8; k_ptrs: the tile's INT8 [BN, BD] (zero-padded: no bounds); v_ptrs: its [BN, BD]
    V (e4m3 from Vᵀ, zero-padded, or the input V, bounds-masked on the TAIL tile); the rest as
    `_softmax_int8`."""
    qk = _scores_int8(q8, k_ptrs)
    p, alpha, l_i, m_new = _softmax_int8(
        qk, l_i, m_i, q_scale, kscale_row, kmask_row, start_n, offs_n, LK, HAS_KEY_MASK, TAIL, PV_FP8, BLOCK_N,
    )  # fmt: skip
    if PV_FP8:
        acc = acc * alpha[:, None] + _fp8_tile_pv(_to_e4m3(p, INTERPRETED), tl.load(v_ptrs), BLOCK_N)
    else:  # P·V in the input's type (fp32 as TF32); these MMAs accumulate in fp32: straight into acc
        acc = acc * alpha[:, None]
        cols = start_n + offs_n
        if TAIL:
            v = tl.load(v_ptrs, mask=(cols[:, None] < LK) & (offs_d[None, :] < D), other=0.0)
        elif EVEN_D:
            v = tl.load(v_ptrs)
        else:
            v = tl.load(v_ptrs, mask=offs_d[None, :] < D, other=0.0)
        if v.dtype == tl.float32:  # TF32 tensor cores: fp32's range, so a |V| above fp16's 65504 stays finite
            acc = tl.dot(_to_tf32(p), _to_tf32(v), acc, input_precision="tf32")
        else:  # the 16-bit input's own type
            acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_new


@triton.jit
def _to_tf32(x):
    """fp32 -> the nearest TF32 value (fp32 with its 13 low mantissa bits zero), halves away from zero as
    `cvt.rna.tf32.f32` rounds. Done here, in two integer ops, so that the interpreter (whose dot is exact fp32) and
    the tensor cores (whatever they do with the low bits) multiply the same values, those `int8_scheme` emulates."""
    bits = x.to(tl.int32, bitcast=True)
    return ((bits + 0x1000) & -0x2000).to(tl.float32, bitcast=True)


@triton.jit
def _scores_int8(q8, k_ptrs):
    """[BM, BN] q8·k8 of one key tile (k_ptrs: its INT8 [BN, BD], zero-padded: no bounds) in int32, to fp32
    exactly: the bits of MAGIC + qk, minus MAGIC (an integer add, which the compiler folds into the MMA's initial
    accumulator, and a float add, where a conversion would issue at the exp2 unit's rate)."""
    return (tl.dot(q8, tl.trans(tl.load(k_ptrs))) + MAGIC_BITS).to(tl.float32, bitcast=True) - MAGIC


@triton.jit
def _scores_int8_from_zero(q8, k_ptrs, INTERPRETED: tl.constexpr):
    """`_scores_int8` with the MMA accumulating from zero (no registers to set before it) and the offset applied
    after it by one logic op per score: for |i| < 2**22, the bits of MAGIC + i are (i & 0x7FFFFF) ^ MAGIC_BITS
    (the low 23 bits of i's two's complement with bit 22 flipped, under MAGIC's exponent), a single LOP3. The
    pipelined loop needs it: there a P·V MMA is in flight when the next QKᵀ is issued, and setting the QKᵀ
    accumulator's registers to MAGIC_BITS meanwhile makes ptxas serialize every wgmma of the kernel (`ptxas -v`
    info C7515); an integer add instead would be folded back into the accumulator by Triton."""
    qk = tl.dot(q8, tl.trans(tl.load(k_ptrs)))
    if INTERPRETED:
        bits = (qk & 0x7FFFFF) ^ MAGIC_BITS
    else:  # as one instruction: written as an and and an xor of two constants, it compiles to two
        bits = tl.inline_asm_elementwise(
            "lop3.b32 $0, $1, 8388607, 1262485504, 0x6A;", "=r,r", [qk], dtype=tl.int32, is_pure=True, pack=1
        )
    return bits.to(tl.float32, bitcast=True) - MAGIC


@triton.jit
def _softmax_int8(
    qk, l_i, m_i, q_scale, kscale_row, kmask_row, start_n, offs_n, LK,
    HAS_KEY_MASK: tl.constexpr, TAIL: tl.constexpr, PV_FP8: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """The online softmax of key tile [start_n, start_n + BLOCK_N) with scores qk ([BM, BN] fp32, `_scores_int8`)
    -> (p in fp32, alpha = the factor that rescales the tile's predecessors, l_i, m_new): m_i, the running row
    max (log2 units), l_i, the running sum. q_scale: [BM] (q scale x softmax scale x log2 e); kscale_row: the
    head's K scales, one per key tile. HAS_KEY_MASK: read the key mask (kmask_row[start_n:]); TAIL: mask the keys
    past LK. With FP8 P·V, p and l_i carry the factor 448 (folded into the exp2 argument, not
    multiplied per score)."""
    cols = start_n + offs_n
    row_scale = q_scale * tl.load(kscale_row + start_n // BLOCK_N)
    if HAS_KEY_MASK:
        keep = tl.load(kmask_row + cols, mask=cols < LK, other=0) != 0
        qk = tl.where(keep[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, axis=1) * row_scale)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet: avoid inf - inf
    else:
        if TAIL:
            qk = tl.where((cols < LK)[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, axis=1) * row_scale)  # finite: every computed tile has a key
        m_safe = m_new
    bias = m_safe - LOG2_E4M3_MAX if PV_FP8 else m_safe  # FP8: p x 448 (P fills e4m3's range) in the same FMA
    p = tl.math.exp2(qk * row_scale[:, None] - bias[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    return p, alpha, l_i, m_new


@triton.jit
def _fp8_tile_pv(p, v, BLOCK_N: tl.constexpr):
    """One key tile's P·V in FP8 (p, v: e4m3) from zero, in fp32. FP8 MMAs (Ada and Hopper) accumulate in reduced
    precision, so the tile's product starts from zero and joins the fp32 acc by an FMA (SageAttention2's two-level
    accumulation). Written out, not as the dot's in-place promotion (`tl.dot(p, v, acc, max_num_imprecise_acc=...)`),
    which makes ptxas serialize every wgmma of the kernel on Hopper (a wait after each 32-deep step, QKᵀ's included;
    `ptxas -v` info C7514) and does nothing on Ada. max_num_imprecise_acc=BLOCK_N here keeps Triton from folding
    the add back into the MMA (dot(p, v, 0) + acc -> dot(p, v, acc), which it does on Ada for a dot without it)."""
    return tl.dot(p, v, max_num_imprecise_acc=BLOCK_N)


@triton.jit
def _pipelined_tiles_fp8(
    acc, l_i, m_i, q8, q_scale, k_tile, kscale_row, v_tile, svn, lk_clean, offs_n,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, INTERPRETED: tl.constexpr,
):  # fmt: skip
    """The unmasked key tiles [0, lk_clean) of `_int8_attention_kernel` with FP8 P·V (lk_clean >= 2 tiles; V is
    the e4m3 Vᵀ), software-pipelined so that the P·V MMA of tile j - 1 runs on the tensor cores while the CUDA cores
    compute the softmax of tile j (FlashAttention-3's intra-warpgroup overlap). Triton (3.6 to 3.9) waits for an
    MMA with an int32 accumulator right after issuing it, so QKᵀ cannot be the one left in flight
    (docs/benchmarks.md, "8-bit attention"); the fp32 P·V can, when its result is only carried to the next
    iteration and read after that iteration's QKᵀ wait. Iteration j: QKᵀ of tile j (its wait also ends P·V j - 2);
    acc takes in P·V j - 2; P·V j - 1 is issued; the softmax of tile j runs while it computes. Same arithmetic as
    `_attend_tile_int8`, tile by tile. P crosses an iteration as its e4m3 values widened to fp16 (exact): as fp32
    or as e4m3 bytes it takes 16 registers more and 64 rows on 4 warps spill; as e4m3, Triton stages it through
    shared memory, and the MMA that reads it is waited for at once. The tiles are unmasked and full: the softmax
    gets no key mask row and no key count (None)."""
    # Prologue: tiles 0 and 1's softmax and tile 0's P·V (a real MMA, not zeros: registers that an in-flight MMA
    # writes may not be set by other instructions, or ptxas serializes every wgmma, `ptxas -v` info C7515).
    p, alpha_pv, l_i, m_i = _softmax_int8(
        _scores_int8_from_zero(q8, k_tile, INTERPRETED), l_i, m_i, q_scale, kscale_row, None, 0, offs_n, None,
        False, False, True, BLOCK_N,
    )  # fmt: skip
    pv = _fp8_tile_pv(_to_e4m3(p, INTERPRETED), tl.load(v_tile), BLOCK_N)
    k_ptrs = k_tile + BLOCK_N * BLOCK_D
    v_ptrs = v_tile + tl.cast(svn, tl.int64) * BLOCK_N
    p, alpha, l_i, m_i = _softmax_int8(
        _scores_int8_from_zero(q8, k_ptrs, INTERPRETED), l_i, m_i, q_scale, kscale_row, None, BLOCK_N, offs_n,
        None, False, False, True, BLOCK_N,
    )  # fmt: skip
    p16 = _to_e4m3(p, INTERPRETED).to(tl.float16)
    for start_n in range(2 * BLOCK_N, lk_clean, BLOCK_N):
        k_ptrs += BLOCK_N * BLOCK_D
        qk = _scores_int8_from_zero(q8, k_ptrs, INTERPRETED)
        acc = acc * alpha_pv[:, None] + pv
        pv = _fp8_tile_pv(p16.to(tl.float8e4nv), tl.load(v_ptrs), BLOCK_N)
        # A copy, not alpha itself: a value carried unchanged through an iteration stops Triton's loop pipeliner
        # (no cp.async loads, every MMA waited for at once).
        alpha_pv = alpha + 0.0
        p, alpha, l_i, m_i = _softmax_int8(
            qk, l_i, m_i, q_scale, kscale_row, None, start_n, offs_n, None, False, False, True, BLOCK_N,
        )  # fmt: skip
        p16 = _to_e4m3(p, INTERPRETED).to(tl.float16)
        v_ptrs += tl.cast(svn, tl.int64) * BLOCK_N
    # Epilogue: the last two tiles' P·V.
    acc = acc * alpha_pv[:, None] + pv
    return acc * alpha[:, None] + _fp8_tile_pv(p16.to(tl.float8e4nv), tl.load(v_ptrs), BLOCK_N), l_i, m_i


@triton.jit
def _int8_attention_kernel(
    q_ptr, k8_ptr, kscale_ptr, v_ptr, vscale_ptr, vmean_ptr, o_ptr, kmask_ptr, bmask_ptr, sm_scale_log2,
    H, LQ, LK, D, LPAD,
    sqb, sqh, sqm, sqd, svb, svh, svn, svd, sob, soh, som,
    skm_b, sbm_b, sbm_h, sbm_m, LQ_BUCKET, LK_BUCKET,
    HAS_BLOCK_MASK: tl.constexpr, MASK_BLOCK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, HAS_KEY_MASK: tl.constexpr, PV_FP8: tl.constexpr,
    EVEN_D: tl.constexpr, INTERPRETED: tl.constexpr, PIPELINE_PV: tl.constexpr = False,
):  # fmt: skip
    """The loop structure of `attention._attention_kernel` (same key-mask and block-table arguments) over INT8 K.
    V is addressed by strides (svn = 1, svd = LPAD for the e4m3 Vᵀ). LQ_BUCKET, LK_BUCKET: autotune key. The loops'
    index arithmetic is written out as there: as shared jit helpers, their line info alone changes ptxas's schedule
    (same PTX, different SASS) of one kernel or the other."""
    pid_m, pid_bh = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q_rows = q_ptr + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh + offs_m[:, None].to(tl.int64) * sqm
    q = tl.load(q_rows + offs_d[None, :] * sqd, mask=(offs_m[:, None] < LQ) & (offs_d[None, :] < D), other=0.0)
    q = q.to(tl.float32)
    q_amax = tl.max(tl.abs(q), axis=1)
    q_scale = tl.where(q_amax > 0, q_amax / 127.0, 1.0)
    q8 = _round_int8(q / q_scale[:, None])
    q_scale *= sm_scale_log2
    k_tile = k8_ptr + pid_bh.to(tl.int64) * LPAD * BLOCK_D + offs_n[:, None] * BLOCK_D + offs_d[None, :]
    kscale_row = kscale_ptr + pid_bh * (LPAD // BLOCK_N)
    v_tile = v_ptr + b.to(tl.int64) * svb + h.to(tl.int64) * svh + offs_n[:, None].to(tl.int64) * svn
    v_tile += offs_d[None, :] * svd
    kmask_head = kmask_ptr + b * skm_b
    kmask_row = kmask_head + 4
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    if HAS_BLOCK_MASK:  # compile-time: loop over the computed key tiles only
        row = _block_table_row(bmask_ptr, b, h, pid_m, sbm_b, sbm_h, sbm_m, BLOCK_M, MASK_BLOCK)
        SUB: tl.constexpr = MASK_BLOCK // BLOCK_N
        for it in range(0, tl.load(row) * SUB):
            start_n = tl.load(row + 2 + it // SUB) * MASK_BLOCK + (it % SUB) * BLOCK_N
            n64 = tl.cast(start_n, tl.int64)
            acc, l_i, m_i = _attend_tile_int8(
                acc, l_i, m_i, q8, q_scale, k_tile + n64 * BLOCK_D, kscale_row, v_tile + n64 * svn, kmask_row, start_n,
                offs_n, offs_d, LK, D, HAS_KEY_MASK, False, EVEN_D, PV_FP8, BLOCK_N, INTERPRETED,
            )  # fmt: skip
        if tl.load(row + 1) != 0:  # the partial last key block
            for start_n in range((LK // MASK_BLOCK) * MASK_BLOCK, LK, BLOCK_N):
                n64 = tl.cast(start_n, tl.int64)
                acc, l_i, m_i = _attend_tile_int8(
                    acc, l_i, m_i, q8, q_scale, k_tile + n64 * BLOCK_D, kscale_row, v_tile + n64 * svn, kmask_row,
                    start_n, offs_n, offs_d, LK, D, HAS_KEY_MASK, True, EVEN_D, PV_FP8, BLOCK_N, INTERPRETED,
                )  # fmt: skip
    else:
        lk_full = (LK // BLOCK_N) * BLOCK_N
        lk_clean = lk_full
        if HAS_KEY_MASK:  # full tiles before the first masked key need no mask
            first_masked = tl.load(kmask_head.to(tl.pointer_type(tl.int32), bitcast=True))
            lk_clean = (tl.minimum(first_masked, lk_full) // BLOCK_N) * BLOCK_N
        if PIPELINE_PV and PV_FP8:  # with 16-bit P·V, ptxas serializes the pipelined loop's wgmmas
            if lk_clean >= 2 * BLOCK_N:
                acc, l_i, m_i = _pipelined_tiles_fp8(
                    acc, l_i, m_i, q8, q_scale, k_tile, kscale_row, v_tile, svn, lk_clean, offs_n, BLOCK_N, BLOCK_D,
                    INTERPRETED,
                )  # fmt: skip
            else:  # one clean tile at most: the masked loop below takes it
                lk_clean = 0
        else:
            k_ptrs, v_ptrs = k_tile, v_tile
            for start_n in range(0, lk_clean, BLOCK_N):
                acc, l_i, m_i = _attend_tile_int8(
                    acc, l_i, m_i, q8, q_scale, k_ptrs, kscale_row, v_ptrs, kmask_row, start_n, offs_n, offs_d,
                    LK, D, False, False, EVEN_D, PV_FP8, BLOCK_N, INTERPRETED,
                )  # fmt: skip
                k_ptrs += BLOCK_N * BLOCK_D
                v_ptrs += tl.cast(svn, tl.int64) * BLOCK_N
        for start_n in range(lk_clean, LK, BLOCK_N):  # from the first masked key on, and the partial tail
            n64 = tl.cast(start_n, tl.int64)
            acc, l_i, m_i = _attend_tile_int8(
                acc, l_i, m_i, q8, q_scale, k_tile + n64 * BLOCK_D, kscale_row, v_tile + n64 * svn, kmask_row, start_n,
                offs_n, offs_d, LK, D, HAS_KEY_MASK, True, EVEN_D, PV_FP8, BLOCK_N, INTERPRETED,
            )  # fmt: skip
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    if PV_FP8:  # P and l_i carry 448, which cancels; V was smoothed and scaled per channel; the weights sum to 1:
        v_stats = pid_bh * BLOCK_D + offs_d  # add the mean back
        out *= tl.load(vscale_ptr + v_stats)[None, :]
        out += tl.where(l_i > 0.0, 1.0, 0.0)[:, None] * tl.load(vmean_ptr + v_stats)[None, :]
    o_rows = o_ptr + b.to(tl.int64) * sob + h.to(tl.int64) * soh + offs_m[:, None].to(tl.int64) * som
    tl.store(
        o_rows + offs_d[None, :], out.to(o_ptr.dtype.element_ty), mask=(offs_m[:, None] < LQ) & (offs_d[None, :] < D)
    )


# Autotuned configs for CUDA: the key tile is fixed at K_BLOCK (the K scales are per 64 keys), so only the query
# tile, warps and pipeline depth vary (sm_90, head dim 128, ptxas 13.4): 128 rows on 8 warps is two warpgroups in
# one CTA per SM (255 registers, SageAttention's Triton choice); 64 rows on 4 warps is one warpgroup at 243
# registers, so two CTAs fit an SM and one's MMAs can run while the other computes its softmax. 128 rows on 4 warps
# spills (~1.2 KB per thread) and is not offered.
_CONFIGS = [
    triton.Config({"BLOCK_M": 128}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 64}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64}, num_warps=4, num_stages=4),
]
_TUNE_KEY = ["LQ_BUCKET", "LK_BUCKET", "D", "HAS_BLOCK_MASK", "HAS_KEY_MASK", "PV_FP8", "PIPELINE_PV"]


def fits_key_loop(config: triton.Config, args: dict) -> bool:
    """Whether a call with `args` may use `config`: the pipelined loop (PIPELINE_PV) holds one more P·V tile and one
    more P, so it takes 64-row tiles only (64 rows on 4 warps fits, 254 registers; 128 rows on 8 warps spills 16
    bytes per thread); the default loop takes every config."""
    return not args["PIPELINE_PV"] or config.kwargs["BLOCK_M"] == 64


def shared_memory_floor(config: triton.Config, args: dict, capability: tuple[int, int]) -> int:
    """The fewest bytes of shared memory a block of the 8-bit kernel asks for with `config` on a call with `args`:
    its INT8 q tile, plus num_stages - 1 buffers of the INT8 K tile and of the V tile (e4m3 or the input's type)
    where they load by `cp.async` (`launch.cp_async_tiles`; tests/test_kernels_compile.py checks the floor against
    every compiled config). With bf16 inputs every config fits every GPU that runs this kernel (at most 89 KiB on
    sm_86, 99 KiB there), so it drops nothing; fp32 V tiles (fp32 inputs, 16-bit P·V) take twice the bytes: on
    99 KiB GPUs the 4-stage configs are dropped, and the 64-row 3-stage one (104 KiB compiled, above its floor)
    fails to launch, which the autotuner takes as a config to skip."""
    block_m, block_n, block_d, stages = config.kwargs["BLOCK_M"], args["BLOCK_N"], args["BLOCK_D"], config.num_stages
    v = args["v_ptr"]
    k_bytes = cp_async_tiles(args["k8_ptr"], (block_d, 1), capability)
    v_bytes = (
        cp_async_tiles(v, tuple(args[name] for name in ("svb", "svh", "svn", "svd")), capability) * v.element_size()
    )
    return (block_m + (stages - 1) * block_n * (k_bytes + v_bytes)) * block_d


# One autotuner for both key loops: PIPELINE_PV is in the key, and `fits_key_loop` picks each loop's configs.
_int8_attention_autotuned = (
    None
    if _INTERPRET
    else autotune_attention(_CONFIGS, _TUNE_KEY, shared_memory_floor, allowed=fits_key_loop)(_int8_attention_kernel)
)


def last_tuned_config() -> str | None:
    """The autotuned config of the latest CUDA call (e.g. "BLOCK_M 64, 4 warps, 4 stages"), for benchmark reports.
    None before any tuned call and under the interpreter."""
    config = getattr(_int8_attention_autotuned, "best_config", None)
    if config is None:
        return None
    return f"BLOCK_M {config.kwargs['BLOCK_M']}, {config.num_warps} warps, {config.num_stages} stages"


@dataclass
class _QuantizedKV:
    """One head group's quantized K (and V), as `_int8_attention_kernel` reads them."""

    k8: torch.Tensor  # int8 [B·G, LPAD, BLOCK_D]
    k_scale: torch.Tensor  # float32 [B·G, LPAD / BLOCK_N]
    v: torch.Tensor  # e4m3 Vᵀ [B, G, BLOCK_D, LPAD], or the 16-bit/fp32 input V [B, G, L, D]
    v_scale: torch.Tensor  # float32 [B·G, BLOCK_D]: V ≈ v8 x v_scale + v_mean (FP8 only)
    v_mean: torch.Tensor


def _gpu(device: torch.device) -> GpuFacts | None:
    """The GPU's facts, None under the interpreter; raises where the kernel cannot run."""
    if _INTERPRET:
        return None
    if device.type != "cuda":
        raise KernelInputError("int8 attention: needs CUDA tensors (or TRITON_INTERPRET=1)")
    gpu = gpu_facts(device)
    blocker = int8_attention_blocker(gpu)
    if blocker is not None:
        raise KernelInputError(f"int8 attention: {blocker}")
    return gpu


# The fewest keys an FP8 P·V tile may have: the K of the FP8 tensor-core MMA, below which Triton refuses the dot
# ("K >= 32"). A block mask of 16-key blocks makes 16-key tiles (no tile may straddle two blocks).
FP8_MIN_KEY_TILE = 32


def _use_fp8(pv: str, device: torch.device, key_tile: int = K_BLOCK) -> bool:
    """Whether P·V runs in FP8 for `pv` on `device` with key tiles of `key_tile` keys: "auto" takes FP8 on GPUs that
    have it (compute capability 8.9+) where the tile is wide enough for its MMA, else 16-bit P·V."""
    if pv not in ("auto", *PV_FORMATS):
        raise KernelInputError(f"int8 attention: pv must be auto, {' or '.join(PV_FORMATS)}; got {pv!r}")
    gpu = _gpu(device)
    fp8_ok = gpu is None or has_fp8_pv(gpu)
    if pv == "fp8" and not fp8_ok:
        raise KernelInputError(f"int8 attention: FP8 P·V needs compute capability 8.9+, this GPU is {gpu.describe()}")
    wide_enough = key_tile >= FP8_MIN_KEY_TILE
    if pv == "fp8" and not wide_enough:
        raise KernelInputError(
            f"int8 attention: FP8 P·V needs key tiles of at least {FP8_MIN_KEY_TILE} keys (its tensor-core MMA's "
            f"depth), and block_size {key_tile} gives {key_tile}-key tiles; use pv='auto' or '16bit', or a larger "
            "block_size"
        )
    return pv == "fp8" or (pv == "auto" and gpu is not None and fp8_ok and wide_enough)


@dataclass
class _Stats:
    """Per-channel statistics over the unmasked keys, float32 [B·G, BLOCK_D] each."""

    k_mean: torch.Tensor  # zeros without smoothing
    v_mean: torch.Tensor  # FP8 only (else zeros)
    v_scale: torch.Tensor  # max|V - mean| / 448 (FP8 only, else ones)


def _kv_stats(k, v, km, skm_b, has_mask: bool, smooth: bool, fp8: bool, block_d: int) -> _Stats:
    bsz, heads, length, dim = k.shape
    rows = bsz * heads
    zeros = torch.zeros(rows, block_d, device=k.device)
    if not (smooth or fp8):
        return _Stats(zeros, zeros, zeros + 1)
    chunks = triton.cdiv(length, _STATS_ROWS)
    stats = torch.empty(rows, chunks, 4, block_d, device=k.device)
    _kv_stats_kernel[(chunks, rows)](
        k, v, km, stats, heads, length, dim, *k.stride(), *v.stride(), skm_b,
        HAS_KEY_MASK=has_mask, SMOOTH=smooth, V_STATS=fp8, ROWS=_STATS_ROWS, BLOCK_N=64, BLOCK_D=block_d,
        **FUSED_FP,
    )  # fmt: skip
    kept = torch.full((bsz,), float(length), device=k.device)
    if has_mask:  # mask bytes follow each row's 4-byte header; one row broadcasts over the batch
        kept = km[:, 4 : 4 + length].sum(-1).float().clamp_min(1).expand(bsz)
    k_sum, v_sum = stats[:, :, 0].sum(1), stats[:, :, 1].sum(1)
    kept = kept.repeat_interleave(heads)[:, None]
    v_mean = v_sum / kept
    v_amax = torch.maximum(stats[:, :, 2].amax(1) - v_mean, v_mean - stats[:, :, 3].amin(1))
    v_amax = torch.where(torch.isfinite(v_amax) & (v_amax > 0), v_amax, E4M3_MAX)  # no key, or constant channels
    return _Stats(k_sum / kept, v_mean, v_amax / E4M3_MAX)


def _quantize_kv(k, v, km, skm_b, has_mask: bool, smooth: bool, fp8: bool, block_n: int, block_d: int):
    """-> `_QuantizedKV` for k/v [B, G, L, D] (one head group)."""
    bsz, heads, length, dim = k.shape
    lpad = padded_keys(length, block_n)
    stats = _kv_stats(k, v, km, skm_b, has_mask, smooth, fp8, block_d)
    k8 = torch.empty(bsz * heads, lpad, block_d, device=k.device, dtype=torch.int8)
    k_scale = torch.empty(bsz * heads, lpad // block_n, device=k.device)
    v8 = torch.empty(bsz, heads, block_d, lpad, device=k.device, dtype=torch.float8_e4m3fn) if fp8 else k8
    _quantize_kv_kernel[(lpad // block_n, bsz * heads)](
        k, v, stats.k_mean, stats.v_mean, stats.v_scale.reciprocal(), km, k8, k_scale, v8, heads, length, dim, lpad,
        *k.stride(), *v.stride(), skm_b,
        HAS_KEY_MASK=has_mask, QUANT_V=fp8, BLOCK_N=block_n, BLOCK_D=block_d, INTERPRETED=_INTERPRET,
        **FUSED_FP,
    )  # fmt: skip
    return _QuantizedKV(k8, k_scale, v8 if fp8 else v, stats.v_scale, stats.v_mean)


def _tile_sizes(block_size: int) -> tuple[int, int]:
    """Fixed (query, key) tiles for the interpreter and small block masks; keys: K_BLOCK or the mask block."""
    check_block_size("int8 attention", block_size)
    return min(block_size, 64), min(block_size, K_BLOCK)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    bsz, heads, lq, dim = q.shape
    lk = k.shape[2]
    if k.shape != (bsz, heads, lk, dim) or v.shape != k.shape:
        raise KernelInputError(f"int8 attention: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)} do not match")
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise KernelInputError(f"int8 attention: q/k/v must share one float dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if dim > 256:
        raise KernelInputError(f"int8 attention: head dim {dim} > 256")


def int8_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    block_mask: torch.Tensor | None = None,
    block_size: int = 128,
    *,
    pv: str = "auto",
    smooth_k: bool = True,
    workspace_bytes: int = WORKSPACE_BYTES,
    pipeline_pv: bool = False,
) -> torch.Tensor:
    """Softmax attention with INT8 QKᵀ, like `attention.block_sparse_attention` (same arguments, layouts, masks
    and zeros for rows that see no key). q: [B, H, Lq, D], k/v: [B, H, Lk, D], any strides, fp32/fp16/bf16.
    pv: "fp8" (sm_89+, block_size >= 32), "16bit" (P·V in the input's type; TF32 for fp32 inputs: fp32's range),
    or "auto" (fp8 where the GPU has it and block_size is at least 32). smooth_k=False skips the K smoothing (for
    comparison only: much less accurate on DiT keys). workspace_bytes: the most the quantized K/V copies may take
    (heads are processed in groups that fit; at least one head). pipeline_pv: with FP8 P·V, run the unmasked key
    tiles in the software-pipelined loop (`_pipelined_tiles_fp8`; same results up to rounding), for measuring it
    against the default loop (16-bit P·V keeps the default loop). Returns contiguous [B, H, Lq, D] in q.dtype."""
    _check_inputs(q, k, v)
    bsz, heads, lq, dim = q.shape
    lk = k.shape[2]
    block_m, block_n = _tile_sizes(block_size)
    fp8 = _use_fp8(pv, q.device, block_n)
    pipeline_pv = pipeline_pv and fp8  # 16-bit P·V keeps the default loop: its kernel and autotuner key too
    km, skm_b = _key_mask_arg(key_mask, bsz, lk, q.device)
    nq, nk = triton.cdiv(lq, block_size), triton.cdiv(lk, block_size)
    table, table_strides = _block_table(block_mask, (bsz, heads, nq, nk), lk, block_size, q.device)
    out = torch.empty(bsz, heads, lq, dim, device=q.device, dtype=q.dtype)
    if out.numel() == 0 or lk == 0:
        return out.zero_()
    block_d = head_block(dim)
    group = heads_per_launch(bsz, heads, lk, dim, fp8, block_n, workspace_bytes)
    for h0 in range(0, heads, group):
        heads_here = slice(h0, min(heads, h0 + group))
        k_g, v_g = k[:, heads_here], v[:, heads_here]
        quantized = _quantize_kv(k_g, v_g, km, skm_b, key_mask is not None, smooth_k, fp8, block_n, block_d)
        group_table = table[:, heads_here] if table.dim() == 4 and table.shape[1] > 1 else table
        _launch(
            q[:, heads_here],
            quantized,
            out[:, heads_here],
            km,
            skm_b,
            group_table,
            table_strides,
            lk,
            has_mask=key_mask is not None,
            has_blocks=block_mask is not None,
            block_size=block_size,
            fp8=fp8,
            tiles=(block_m, block_n, block_d),
            pipeline_pv=pipeline_pv,
        )
        # Freed before the next group's are made: one group's copies at a time, as `heads_per_launch` budgets (the
        # name would otherwise hold them while the next group is quantized, twice the bound).
        del quantized
    return out


# The flags after `lk` are keyword-only: several are adjacent bools (constexprs that compile either way), which a
# call by position could swap unnoticed.
def _launch(q, kv: _QuantizedKV, out, km, skm_b, table, table_strides, lk, *, has_mask: bool, has_blocks: bool,
            block_size: int, fp8: bool, tiles: tuple[int, int, int], pipeline_pv: bool) -> None:  # fmt: skip
    bsz, heads, lq, dim = q.shape
    block_m, block_n, block_d = tiles
    lpad = kv.k8.shape[1]
    v_strides = (kv.v.stride(0), kv.v.stride(1), 1, lpad) if fp8 else kv.v.stride()
    args = (
        q, kv.k8, kv.k_scale, kv.v, kv.v_scale, kv.v_mean, out, km, table, qk_scale_exp2(dim),
        heads, lq, lk, dim, lpad, *q.stride(), *v_strides, *out.stride()[:3], skm_b, *table_strides,
        _length_bucket(lq), _length_bucket(lk),
    )  # fmt: skip
    flags = dict(
        HAS_BLOCK_MASK=has_blocks,
        MASK_BLOCK=block_size if has_blocks else 128,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        HAS_KEY_MASK=has_mask,
        PV_FP8=fp8,
        EVEN_D=block_d == dim,
        INTERPRETED=_INTERPRET,
        PIPELINE_PV=pipeline_pv,
        **FUSED_FP,
    )
    # No dtype clause, unlike the dense kernel's: Q tiles are quantized to INT8 in the kernel, whatever their dtype.
    if tuned_launch_ok(_int8_attention_autotuned, block_d, has_blocks, block_size):
        _int8_attention_autotuned[lambda meta: (triton.cdiv(lq, meta["BLOCK_M"]), bsz * heads)](*args, **flags)
    else:
        grid = (triton.cdiv(lq, block_m), bsz * heads)
        stages = fixed_launch_stages(kv.v.dtype, block_d)
        _int8_attention_kernel[grid](*args, **flags, BLOCK_M=block_m, num_stages=stages)


def fixed_launch_stages(v_dtype: torch.dtype, block_d: int) -> int:
    """Pipeline stages of the fixed (not autotuned) launch, by the bytes of a V tile's row (`block_d` values of
    `v_dtype`): Triton's default 3 up to 256 bytes (16-bit V at head dims up to 128, e4m3 up to 256), 2 up to 512
    (fp32 V, from fp32 inputs with 16-bit P·V, up to 128; 16-bit V up to 256), else 1. With more, a 64-row tile asks
    for more shared memory than sm_86's and sm_89's 99 KiB (fp32 at head dim 128 and 3 stages: 104 KiB; bf16 at 256
    and 3 stages: 120 KiB, which failed to launch on an RTX 30xx; tests/test_kernels_int8_compile.py)."""
    row_bytes = torch.empty(0, dtype=v_dtype).element_size() * block_d
    return 3 if row_bytes <= 256 else 2 if row_bytes <= 512 else 1
