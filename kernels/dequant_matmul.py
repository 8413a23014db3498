"""y = x @ dequant(W)ᵀ + b with the weight kept packed (GGUF blocks); `dequantize` for the weight alone.

The weight stays packed (`[N, bytes_per_row]` uint8, raw ggml blocks) in memory. The fused kernel is a tiled GEMM:
each program owns a `[BLOCK_M, BLOCK_N]` output tile and, inside the K loop, dequantizes one `[BLOCK_N, BLOCK_K]`
weight tile (BLOCK_K spans several 32-value quant groups) straight to x's dtype and feeds it to `tl.dot` with an
fp32 accumulator. Block layouts follow gguf-py's `gguf/quants.py` (ggml's `block_*` structs); fp16 fields are
little-endian.

The product is computed transposed, `yᵀ tile = W tile @ xᵀ tile`: on Hopper the wgmma A operand may live in
registers, so the dequantized weight goes to the tensor cores from registers (only the raw quant bytes change
layout through shared memory), while the x tile, a plain load pipelined with cp.async over `num_stages`, is the
shared-memory B operand. It also makes BLOCK_M the wgmma N dimension (up to 256 tokens), so each dequantized
weight value serves many tokens. (The other orientation, W as the B operand, spilled registers on sm_90.)

Two paths, chosen by the token count M (rows of x), `SPLIT_MIN_M`:
  * M < SPLIT_MIN_M — the fused GEMM above. Few tokens make the product memory-bound: reading the packed
    bytes (0.56-1.06 bytes per weight) instead of a bf16 weight (2 bytes) is what saves time there.
  * M ≥ SPLIT_MIN_M — split: `dequantize` (a Triton kernel, one memory pass over the packed blocks, writing
    the weight in x's dtype) and then cuBLAS via `F.linear`. At video token counts the product is
    compute-bound, and the fused kernel, which spends issue slots and registers on dequantization inside its
    K loop, measured 3-5.5x slower than the bf16 cuBLAS GEMM on an H200, while the split path measured
    1.00-1.07x of it at 16,384 and 114,080 tokens and 1.09-1.68x at 4,096 (`dequantize`: 40-80 µs per layer;
    bench/bench_gpu_dequant.py, docs/benchmarks.md). The dense weight exists only during that one call (one layer:
    ≤ 19 MB for Motif); what stays resident is the packed weight.
`dequantize` reuses the fused kernel's per-type tile helpers, so each block layout is written down once. It is
bit-exact against the torch dequantizer (`motif_lite.weights.dequant.dequantize`): the helpers repeat its
float operations in order, and the kernel is compiled with fp fusion off (no mul+add -> FMA contraction).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .errors import KernelInputError
from .launch import (
    FUSED_FP,
    PERSISTENT_TUNING,
    benchmark_options,
    cp_async_tiles,
    device_fitting_configs,
    triton_version,
    uses_mma_sync,
)

# SMALL_M: up to this many rows one fixed config; SPLIT_MIN_M: from this many rows the split path (tuning.py).
from .tuning import SMALL_M, SPLIT_MIN_M

Q = GGMLQuantizationType
SUPPORTED_QTYPES = (Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q5_K, Q.Q6_K)
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
GROUP_M = tl.constexpr(8)  # M tiles per group in the program ordering (L2 reuse of the x rows)


@triton.jit
def _f16(ptr):
    """Little-endian fp16 at byte pointers `ptr` -> float32."""
    lo = tl.load(ptr).to(tl.uint16)
    hi = tl.load(ptr + 1).to(tl.uint16)
    return (lo | (hi << 8)).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _byte(ptr):
    return tl.load(ptr).to(tl.int32)


@triton.jit
def _int_to_f32(q, offset: tl.constexpr):
    """`q - offset` as float32, for int32 `q` in [0, 2^23): the float with bit pattern 0x4B000000 | q is 2^23 + q,
    so one OR and one exact subtraction replace an int->float conversion. (`.to(tl.float32)` on byte-sized
    values compiles to the slow 8/16-bit I2F instructions: LLVM narrows the conversion to the bytes' width.)"""
    return (q | 0x4B000000).to(tl.float32, bitcast=True) - (8388608.0 + offset)


# Each helper dequantizes the BLOCK_K columns k0 .. k0 + BLOCK_K of BLOCK_N weight rows, in float32.
# `row` are [BLOCK_N, 1, 1] byte pointers to the weight rows (rows past N point at row 0, so no load needs a
# mask). The tile is built as [BLOCK_N, groups, values per group]:
# scales and mins are loaded once per (row, group) as [BLOCK_N, groups, 1] and broadcast over the group; only
# the quant bits are gathered per element. The last two axes are then merged into [BLOCK_N, BLOCK_K].
# For the K-quants BLOCK_K divides 256, so a tile never leaves its 256-value super-block.


@triton.jit
def _q8_0(row, k0, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    g = tl.arange(0, BLOCK_K // 32)[None, :, None]
    j = tl.arange(0, 32)[None, None, :]
    blk = row + (k0 // 32 + g) * 34  # block: d f16 | 32 x int8
    q = _int_to_f32(_byte(blk + 2 + j) ^ 0x80, 128)  # int8 = (byte ^ 0x80) - 128
    return tl.reshape(_f16(blk) * q, (BLOCK_N, BLOCK_K))


@triton.jit
def _q4_0(row, k0, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    g = tl.arange(0, BLOCK_K // 32)[None, :, None]
    j = tl.arange(0, 32)[None, None, :]
    blk = row + (k0 // 32 + g) * 18  # block: d f16 | 16 bytes; value j is nibble j//16 of byte j%16
    q = (_byte(blk + 2 + j % 16) >> ((j // 16) * 4)) & 0xF
    return tl.reshape(_f16(blk) * _int_to_f32(q, 8), (BLOCK_N, BLOCK_K))


@triton.jit
def _kquant_scale_min(scales, s):
    """6-bit scale and min of sub-blocks s (0..7) from the 12 packed bytes (gguf Q4_K.get_scale_min)."""
    a = _byte(scales + s % 4)
    b = _byte(scales + 4 + s % 4)
    c = _byte(scales + 8 + s % 4)
    sc = tl.where(s < 4, a & 63, (c & 0xF) | ((a >> 2) & 0x30))
    mn = tl.where(s < 4, b & 63, (c >> 4) | ((b >> 2) & 0x30))
    return sc.to(tl.float32), mn.to(tl.float32)


@triton.jit
def _q4_k(row, k0, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    blk = row + (k0 // 256) * 144  # d f16 | dmin f16 | 12 scale bytes | 128 bytes of nibbles
    # sub-blocks of 32: sub-block s is the low nibbles of 32-byte run s//2 when s is even, high nibbles when odd
    s = (k0 % 256) // 32 + tl.arange(0, BLOCK_K // 32)[None, :, None]
    j = tl.arange(0, 32)[None, None, :]
    sc, mn = _kquant_scale_min(blk + 4, s)
    q = (_byte(blk + 16 + (s // 2) * 32 + j) >> ((s % 2) * 4)) & 0xF
    w = (_f16(blk) * sc) * _int_to_f32(q, 0) - _f16(blk + 2) * mn
    return tl.reshape(w, (BLOCK_N, BLOCK_K))


@triton.jit
def _q5_k(row, k0, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    blk = row + (k0 // 256) * 176  # d | dmin | 12 scale bytes | 32 bytes qh (bit s = 5th bit) | 128 bytes qs
    s = (k0 % 256) // 32 + tl.arange(0, BLOCK_K // 32)[None, :, None]
    j = tl.arange(0, 32)[None, None, :]
    sc, mn = _kquant_scale_min(blk + 4, s)
    low = (_byte(blk + 48 + (s // 2) * 32 + j) >> ((s % 2) * 4)) & 0xF
    high = (_byte(blk + 16 + j) >> s) & 1
    q = low | (high << 4)
    w = (_f16(blk) * sc) * _int_to_f32(q, 0) - _f16(blk + 2) * mn
    return tl.reshape(w, (BLOCK_N, BLOCK_K))


@triton.jit
def _q6_k(row, k0, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    blk = row + (k0 // 256) * 210  # 128 bytes ql | 64 bytes qh | 16 int8 scales (one per 16 values) | d f16
    # units of 16 values (one scale each): unit u is half u%2 of 32-value group g = u//2; each 128-value half
    # of the super-block (g//4) uses 64 ql bytes and 32 qh bytes
    u = (k0 % 256) // 16 + tl.arange(0, BLOCK_K // 16)[None, :, None]
    g = u // 2
    j = (u % 2) * 16 + tl.arange(0, 16)[None, None, :]
    low = (_byte(blk + (g // 4) * 64 + (g % 2) * 32 + j) >> (((g // 2) % 2) * 4)) & 0xF
    high = (_byte(blk + 128 + (g // 4) * 32 + j) >> ((g % 4) * 2)) & 3
    q = _int_to_f32(low | (high << 4), 32)
    sc = _int_to_f32(_byte(blk + 192 + u) ^ 0x80, 128)  # int8
    return tl.reshape((_f16(blk + 208) * sc) * q, (BLOCK_N, BLOCK_K))


@triton.jit
def _dequant_tile(row, k0, QTYPE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    if QTYPE == 8:
        w = _q8_0(row, k0, BLOCK_N, BLOCK_K)
    elif QTYPE == 2:
        w = _q4_0(row, k0, BLOCK_N, BLOCK_K)
    elif QTYPE == 12:
        w = _q4_k(row, k0, BLOCK_N, BLOCK_K)
    elif QTYPE == 13:
        w = _q5_k(row, k0, BLOCK_N, BLOCK_K)
    else:
        w = _q6_k(row, k0, BLOCK_N, BLOCK_K)
    return w


@triton.jit
def _dequant_matmul_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, M, N, K, m_bucket,
    stride_xm, stride_xk, stride_wn, stride_ym,
    QTYPE: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # m_bucket is only the autotuner's key (M rounded to a power of two); K is a multiple of BLOCK_K (host).
    # Grouped ordering: GROUP_M consecutive M tiles per N tile, so programs running together share x rows in L2.
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * num_pid_n
    first_m = (pid // width) * GROUP_M
    group_m = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % group_m
    pid_n = (pid % width) // group_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    # Rows past M / N read row 0 instead (their results are never stored): the loads need no masks.
    rm = tl.where(offs_m < M, offs_m, 0).to(tl.int64)
    rn = tl.where(offs_n < N, offs_n, 0).to(tl.int64)
    xt_ptrs = x_ptr + rm[None, :] * stride_xm + offs_k[:, None] * stride_xk  # xᵀ tile [BK, BM]
    w_rows = (w_ptr + rn * stride_wn)[:, None, None]  # [BN, 1, 1]
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)  # yᵀ tile
    for k0 in range(0, K, BLOCK_K):
        xt = tl.load(xt_ptrs)
        w = _dequant_tile(w_rows, k0, QTYPE, BLOCK_N, BLOCK_K)  # [BN, BK] fp32
        acc = tl.dot(w.to(xt.dtype), xt, acc, input_precision=PRECISION)
        xt_ptrs += BLOCK_K * stride_xk
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[:, None]
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :]
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(y_ptrs, tl.trans(acc).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dequantize_kernel(
    w_ptr, out_ptr, N, num_pid_k, stride_wn, stride_on,
    QTYPE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BF16_BY_BITS: tl.constexpr,
):  # fmt: skip
    # One [BLOCK_N, BLOCK_K] tile of the weight per program; the K tiles of a row band are consecutive programs,
    # so neighbouring programs read and write neighbouring bytes. K is a multiple of BLOCK_K (host).
    pid = tl.program_id(0)
    pid_n = pid // num_pid_k
    k0 = (pid % num_pid_k) * BLOCK_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rn = tl.where(offs_n < N, offs_n, 0).to(tl.int64)  # rows past N read row 0 (not stored): no load masks
    w = _dequant_tile((w_ptr + rn * stride_wn)[:, None, None], k0, QTYPE, BLOCK_N, BLOCK_K)  # [BN, BK] fp32
    offs_k = k0 + tl.arange(0, BLOCK_K)
    out_ptrs = out_ptr + offs_n.to(tl.int64)[:, None] * stride_on + offs_k[None, :]
    if BF16_BY_BITS:  # interpreter only: its fp32 -> bf16 cast truncates; round to nearest even on the bits
        bits = w.to(tl.uint32, bitcast=True)
        bits += 0x7FFF + ((bits >> 16) & 1)
        out = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:  # compiled: cvt.rn (round to nearest even), like torch's cast
        out = w.to(out_ptr.dtype.element_ty)
    tl.store(out_ptrs, out, mask=(offs_n < N)[:, None])


# Autotuned configs (CUDA). BLOCK_N is the wgmma M side (64 weight rows per warpgroup), BLOCK_M the wgmma N side
# (≤ 256 tokens): a big BLOCK_M amortizes each dequantized weight value over more tokens. BLOCK_K is 64 or 32:
# BLOCK_K = 128 spilled registers (or overflowed shared memory) at these tile sizes for most quant types when
# compiled for sm_90. None of these spills for any quant type, and all use ≤ 132 KiB of shared memory (on sm_90;
# Q5_K's 256 x 128 x 64 and 128 x 128 x 64 ask for 104 and 100 KiB on the 99 KiB GPUs: pruned there). The
# 64-token and 64-row tiles give the N = 1536 outputs (a short grid with big tiles) more programs, and two
# resident programs per SM, so one program's dequantization can overlap the other's tensor-core work.
CONFIGS = [
    triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 32}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=4),
]


def _block_k(k: int) -> int:
    """64, or 32 when K is an odd multiple of 32 (Q8_0 / Q4_0 only: the K-quants have K % 256 == 0)."""
    return 64 if k % 64 == 0 else 32


def _fixed_config(m: int, k: int, fp32: bool = False) -> triton.Config:
    """The config used without autotuning: small M, the interpreter, fp32 inputs. BLOCK_M just covers M (16..64).
    fp32 is the accuracy path (an exact FMA dot, not tensor cores): smaller K steps keep its registers in check."""
    block_m = min(max(16, triton.next_power_of_2(m)), 64)
    block_k = 32 if fp32 else _block_k(k)
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": 64, "BLOCK_K": block_k}, num_warps=4, num_stages=2 if fp32 else 3
    )


# Bytes of quant bits per weight row that the fused GEMM's K loop copies by `cp.async` (16-byte vectors), per
# BLOCK_K values, for the types whose blocks keep them 16-byte aligned: Q4_K's nibbles are gathered as one byte per
# value, Q5_K's too plus its 32 high-bit bytes. The other types' quants are read 1-2 bytes at a time, into registers.
_CP_ASYNC_QUANT_BYTES = {int(Q.Q4_K): lambda block_k: block_k, int(Q.Q5_K): lambda block_k: block_k + 32}


def shared_memory_floor(config: triton.Config, args: dict, capability: tuple[int, int]) -> int:
    """The fewest bytes of shared memory a block of the fused GEMM asks for with `config` on a call with `args`:
    num_stages - 1 buffers of its xᵀ tile where x loads by `cp.async` (`launch.cp_async_tiles`), and for Q4_K and
    Q5_K of their quant bits (`_CP_ASYNC_QUANT_BYTES`) and, on the `mma.sync` GPUs, of the dequantized weight tile
    on its way to the tensor cores (Hopper's wgmma takes it from registers). Exactly what Q4_K and Q5_K compile to
    on sm_86; tests/test_kernels_compile.py checks the floor against every compiled config and GPU generation."""
    block_m, block_n, block_k = (config.kwargs[name] for name in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    buffers = config.num_stages - 1
    x = args["x_ptr"]
    floor = 0
    if cp_async_tiles(x, (args["stride_xm"], args["stride_xk"]), capability):
        floor += buffers * block_k * block_m * x.element_size()
    quant_bytes = _CP_ASYNC_QUANT_BYTES.get(args["QTYPE"])
    if quant_bytes and cp_async_tiles(args["w_ptr"], (args["stride_wn"], 1), capability):
        floor += buffers * block_n * quant_bytes(block_k)
        if uses_mma_sync(capability):
            floor += block_n * block_k * x.element_size()
    return floor


def _prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop configs whose BLOCK_K does not divide K (only Q8_0 / Q4_0 with K = 32·odd can hit this), and those
    that cannot fit the GPU's shared memory (`launch.fitting_configs`)."""
    args = {**named_args, **kwargs}
    k = args["K"]
    kept = [c for c in configs if k % c.kwargs["BLOCK_K"] == 0] or [_fixed_config(SMALL_M, k)]
    return device_fitting_configs(kept, args, args["x_ptr"].device, shared_memory_floor)


# Tuning runs once per (M bucket, N, K, quant type, dtypes). 10 ms warm-up + 40 ms of timed runs per config
# (Triton's default is 25 + 100) keeps the first call at a new shape short.
_TUNING = benchmark_options(warmup_ms=10, rep_ms=40)
_autotuned_kernel = triton.autotune(
    configs=CONFIGS,
    key=["m_bucket", "N", "K", "QTYPE"],
    prune_configs_by={"early_config_prune": _prune},
    **_TUNING,
    **PERSISTENT_TUNING,
)(_dequant_matmul_kernel)


PATHS = ("auto", "fused", "split")
DEQUANT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DEQUANT_TILE = 4096  # weight values per `dequantize` program (BLOCK_N x BLOCK_K); 32 per thread at 4 warps
# Launch options of `dequantize`. enable_fp_fusion=False: no mul + sub -> FMA contraction (Q4_K / Q5_K compute
# d·sc·q - dmin·m), which would change last bits against the torch dequantizer.
DEQUANTIZE_OPTIONS = dict(num_warps=4, enable_fp_fusion=False)


def _dequantize_blocks(k: int) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_K) of `dequantize`: BLOCK_K is the largest power of two ≤ 256 dividing K (≥ 32: K is whole
    32-value blocks; for the K-quants 256, so a tile stays inside one super-block), BLOCK_N fills the tile."""
    block_k = min(256, k & -k)
    return DEQUANT_TILE // block_k, block_k


def _check_packed(packed: torch.Tensor, qtype: int, out_features: int, in_features: int, who: str) -> Q:
    if qtype not in SUPPORTED_QTYPES:
        names = ", ".join(t.name for t in SUPPORTED_QTYPES)
        raise KernelInputError(f"{who}: quant type {Q(qtype).name} is not supported (supported: {names})")
    qtype = Q(qtype)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if in_features % block_size:
        raise KernelInputError(f"{who}: in_features={in_features} is not a multiple of {block_size}")
    row_bytes = in_features // block_size * type_size
    if packed.dtype != torch.uint8 or tuple(packed.shape) != (out_features, row_bytes) or packed.stride(1) != 1:
        raise KernelInputError(
            f"{who}: packed must be uint8 [{out_features}, {row_bytes}] with contiguous rows for "
            f"{qtype.name}, got {packed.dtype} {list(packed.shape)}"
        )
    return qtype


def _check_inputs(x: torch.Tensor, packed: torch.Tensor, qtype: int, out_features: int, in_features: int) -> Q:
    qtype = _check_packed(packed, qtype, out_features, in_features, "dequant_matmul")
    if x.shape[-1] != in_features:
        raise KernelInputError(f"dequant_matmul: x has {x.shape[-1]} features, the weight expects {in_features}")
    return qtype


def dequantize(
    packed: torch.Tensor,
    qtype: int,
    out_features: int,
    in_features: int,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """The weight `[out_features, in_features]` in `dtype` from its packed GGUF blocks, in one Triton pass.

    Equal to `motif_lite.weights.dequant.dequantize(packed, qtype, (out, in), dtype)`: the same float32 values
    (bit for bit), rounded to nearest-even for fp16 / bf16. Supports the quant types of `dequant_matmul`.
    """
    qtype = _check_packed(packed, qtype, out_features, in_features, "dequantize")
    if dtype not in DEQUANT_DTYPES:
        raise KernelInputError(f"dequantize: dtype must be float32, float16 or bfloat16, got {dtype}")
    out = torch.empty(out_features, in_features, device=packed.device, dtype=dtype)
    if out.numel() == 0:
        return out
    block_n, block_k = _dequantize_blocks(in_features)
    num_pid_k = in_features // block_k
    grid = (triton.cdiv(out_features, block_n) * num_pid_k,)
    _dequantize_kernel[grid](
        packed, out, out_features, num_pid_k, packed.stride(0), out.stride(0),
        QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=INTERPRET and dtype == torch.bfloat16,
        **DEQUANTIZE_OPTIONS,
    )  # fmt: skip
    return out


def _fused_matmul(
    x2: torch.Tensor, packed: torch.Tensor, qtype: Q, out_features: int, bias: torch.Tensor | None
) -> torch.Tensor:
    """The fused GEMM kernel on x2 [M, K] -> [M, out_features]."""
    m, in_features = x2.shape
    y = torch.empty(m, out_features, device=x2.device, dtype=x2.dtype)
    if m == 0:
        return y
    args = (
        x2, packed, bias if bias is not None else y, y, m, out_features, in_features,
        min(triton.next_power_of_2(m), 32768), x2.stride(0), x2.stride(1), packed.stride(0), y.stride(0),
    )  # fmt: skip
    flags = dict(
        QTYPE=int(qtype),
        HAS_BIAS=bias is not None,
        PRECISION="ieee" if x2.dtype == torch.float32 else "tf32",
        **FUSED_FP,
    )

    def grid(meta: dict) -> tuple[int]:
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(out_features, meta["BLOCK_N"]),)

    fp32 = x2.dtype == torch.float32
    if INTERPRET or m <= SMALL_M or fp32:
        config = _fixed_config(m, in_features, fp32=fp32 and not INTERPRET)
        _dequant_matmul_kernel[grid](
            *args, **flags, **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages
        )
    else:
        _autotuned_kernel[grid](*args, **flags)
    return y


# Triton 3.2 (torch 2.6) aborts the whole process compiling the float32 fused GEMM of Q4_K and Q5_K (an assertion
# in its shared-memory lowering; bench/triton_versions.py, docs/kernels.md): there float32 inputs take the split path.
FUSED_FP32_TRITON = (3, 3)


def takes_split(m: int, dtype: torch.dtype, version: str = triton.__version__) -> bool:
    """Whether `path="auto"` dequantizes, then multiplies (`F.linear`), for M rows of `dtype`: from `SPLIT_MIN_M`
    rows on, and for float32 inputs where this Triton cannot compile the fused kernel for them."""
    too_old_for_fp32 = not INTERPRET and triton_version(version) < FUSED_FP32_TRITON
    return m >= SPLIT_MIN_M or (dtype == torch.float32 and too_old_for_fp32)


def dequant_matmul(
    x: torch.Tensor,
    packed: torch.Tensor,
    qtype: int,
    out_features: int,
    in_features: int,
    bias: torch.Tensor | None = None,
    *,
    path: str = "auto",
) -> torch.Tensor:
    """`x @ dequantize(packed)ᵀ + bias`, the weight kept packed. x: [..., in] -> [..., out] in x.dtype.

    Signature of `QuantizedLinear.kernel`. Supports Q8_0, Q4_0, Q4_K, Q5_K and Q6_K. `path`: "auto" runs the
    fused GEMM below `SPLIT_MIN_M` tokens and `dequantize` + `F.linear` from there on (module docstring);
    "fused" / "split" force one (benchmarks, tests).
    """
    qtype = _check_inputs(x, packed, qtype, out_features, in_features)
    if path not in PATHS:
        raise KernelInputError(f"dequant_matmul: path must be one of {', '.join(PATHS)}, got {path!r}")
    x2 = x.reshape(-1, in_features)  # [M, K]; a view when possible, any strides are fine
    if path == "split" or (path == "auto" and takes_split(x2.shape[0], x.dtype)):
        weight = dequantize(packed, qtype, out_features, in_features, x.dtype)  # transient: this call only
        return F.linear(x, weight, None if bias is None else bias.to(x.dtype))
    return _fused_matmul(x2, packed, qtype, out_features, bias).reshape(*x.shape[:-1], out_features)
