"""Which calls of our Triton kernels autotune, in plain Python (no triton import), for the memory planner: while
Triton's autotuner times a kernel's configs at a new tuning key it holds a benchmark buffer on the GPU
(`launch.benchmark_buffer_bytes`), which the planner counts in the stages where that can happen.

Autotuned: `dequant_matmul`'s fused GEMM between SMALL_M and SPLIT_MIN_M rows in 16 bits, 8-bit attention
(`attention_int8`) and our Triton attention (`attention`) in 16 bits, dense (`--attention-backend triton`, or as a
candidate of `auto`) and block-sparse (`SparsityConfig`), on the calls `launch.tuned_launch_ok` allows. The norms
and the dequantization pass take fixed launch options.
"""

from __future__ import annotations

SMALL_M = 64  # dequant_matmul: up to this many rows one fixed narrow config, no autotuning
# Token count from which `dequant_matmul` dequantizes the weight (Triton, one pass) and calls cuBLAS instead of
# running the fused GEMM. From a few hundred tokens the GEMM is compute-bound and cuBLAS beats the fused kernel
# by more than the dequantization pass costs (H200, bf16: fused 3-5.5x the bf16 GEMM at M ≥ 4096, dequantize +
# cuBLAS 1.2-1.8x even with the torch dequantizer); below it, reading the packed bytes in the GEMM wins.
# 256 is a starting point: bench/bench_gpu_dequant.py times both paths (split_ms vs triton_ms) to place it.
SPLIT_MIN_M = 256


def dequant_matmul_tunes(rows: int, act_bytes: int) -> bool:
    """Whether `dequant_matmul` (path "auto") autotunes its fused GEMM for `rows` rows of activations of
    `act_bytes` bytes: from SMALL_M + 1 rows up to the split path's SPLIT_MIN_M, in 16 bits (float32 inputs take a
    fixed config)."""
    return act_bytes < 4 and SMALL_M < rows < SPLIT_MIN_M
