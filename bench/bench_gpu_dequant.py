"""Triton dequant-matmul paths vs the bf16 GEMM at video token counts.

    pytest bench/bench_gpu_dequant.py -s                      # CUDA, bf16; about 1-1.5 minutes on an H100
    TRITON_INTERPRET=1 pytest bench/bench_gpu_dequant.py      # CPU: tiny shapes, Triton's interpreter

Most of a CUDA run is Triton compiling the fused kernel's autotuner configs (6 per quant type, Q6_K twice: its
row stride at K = 1536 is not a multiple of 16) and tuning each new shape.

For M in (4096, 16384, 114080, 256, 1024) tokens, (N, K) in ((6144, 1536), (1536, 6144), (4608, 1536)) and
Q8_0 / Q4_K / Q6_K (Q4_0 and Q5_K at M = 16384 only), times (CUDA events, warm-up first, median), one row per
case in the report's table "Dequant-matmul":
  split_ms         dequant_matmul(path="split"): Triton `dequantize` to bf16, then F.linear (what "auto" runs
                   from SPLIT_MIN_M tokens on); split_ratio_vs_gemm = split_ms / gemm_ms (target <= 1.2)
  dequant_ms       `dequantize` alone (dequant_gbps: packed bytes read + bf16 bytes written per second)
  triton_ms        dequant_matmul(path="fused"), the fused GEMM (autotuned on the first call at each shape,
                   untimed); only for Q8_0 / Q4_K / Q6_K at M <= 16384 (FUSED_M), else empty
  gemm_ms          bf16 F.linear with a dense weight of the same shape (the target: ratio <= 1.2)
  dequant_gemm_ms  dequant_linear_torch: dequantize the whole weight with torch ops, then F.linear
and checks: rel_err / split_rel_err = max |y - ref| / max |ref| against F.linear(x, torch-dequantized weight);
dequant_exact: `dequantize` equals the torch dequantizer bit for bit (bf16). auto_path is what
dequant_matmul(path="auto") runs at this M. Weights are random packed blocks with finite fp16 scales; operands
stay warm in L2 between reps, for the GEMM as for the kernels.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from motif_lite.kernels import reference
from motif_lite.weights import dequant

CUDA = torch.cuda.is_available()
if not CUDA:  # fp32: the interpreter has no working bf16
    DEVICE, DTYPE, REPS, WARMUP = "cpu", torch.float32, {16: 2, 80: 2}, 1
    SHAPES = ((64, 256), (32, 512))
    MAIN_QTYPES, EXTRA_QTYPES, EXTRA_M = (Q.Q8_0, Q.Q4_K, Q.Q6_K), (Q.Q4_0, Q.Q5_K), 80
    FUSED_M = (16, 80)
else:  # M -> timed reps, in run order: the video token counts first, then the threshold sweep
    DEVICE, DTYPE, REPS, WARMUP = "cuda", torch.bfloat16, {4096: 20, 16384: 10, 114080: 10, 256: 50, 1024: 30}, 3
    SHAPES = ((6144, 1536), (1536, 6144), (4608, 1536))
    MAIN_QTYPES, EXTRA_QTYPES, EXTRA_M = (Q.Q8_0, Q.Q4_K, Q.Q6_K), (Q.Q4_0, Q.Q5_K), 16384
    # the fused kernel (compiling and tuning it is most of the run): main types only, and not at 114080 tokens
    # (3-5.5x the GEMM there when last measured; each new M bucket re-tunes)
    FUSED_M = (256, 1024, 4096, 16384)
F16_FIELDS = {Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}  # byte offsets of fp16s
TABLE = "Dequant-matmul vs the bf16 GEMM" + ("" if CUDA else " (CPU interpreter smoke run: times mean nothing)")
pytestmark = pytest.mark.cuda(smoke=True)


def packed_weight(qtype: Q, rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Random ggml blocks `[rows, bytes_per_row]`: random quant bits, every fp16 scale field set to 0.01."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = np.random.default_rng(seed).integers(0, 256, (rows, cols // block_size, type_size), dtype=np.uint8)
    for offset in F16_FIELDS[qtype]:
        blocks[..., offset : offset + 2] = np.full((1, 1, 1), 0.01, np.float16).view(np.uint8)
    return torch.from_numpy(blocks.reshape(rows, -1)).to(DEVICE)


def time_ms(fn, reps: int) -> float:
    """Median milliseconds of `reps` calls after WARMUP untimed ones."""
    for _ in range(WARMUP):
        fn()
    if not CUDA:
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def config_of(config) -> dict | None:
    """The autotuner's choice as a dict (None: the call took the fixed small-M / fp32 / interpreter config)."""
    if config is None:
        return None
    return {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float(f"{((y.float() - ref.float()).abs().max() / ref.float().abs().max()).item():.3g}")


def run_case(qtype: Q, x: torch.Tensor, n: int, k: int, gemm_ms: float, reps: int) -> dict:
    from motif_lite.kernels import dequant_matmul as dm

    m = x.shape[0]
    packed = packed_weight(qtype, n, k)
    weight = dequant.dequantize(packed, qtype, (n, k), DTYPE)
    ref = F.linear(x, weight)
    record = dict(qtype=qtype.name, M=m, N=n, K=k, gemm_ms=round(gemm_ms, 4))

    # split path: Triton dequantize + cuBLAS
    dequant_exact = torch.equal(dm.dequantize(packed, qtype, n, k, DTYPE), weight)  # first call compiles
    split_err = rel_err(dm.dequant_matmul(x, packed, qtype, n, k, path="split"), ref)
    dequant_ms = time_ms(lambda: dm.dequantize(packed, qtype, n, k, DTYPE), reps)
    split_ms = time_ms(lambda: dm.dequant_matmul(x, packed, qtype, n, k, path="split"), reps)
    moved = packed.numel() + n * k * weight.element_size()  # bytes read + written by dequantize
    record.update(
        split_ms=round(split_ms, 4), dequant_ms=round(dequant_ms, 4), split_ratio_vs_gemm=round(split_ms / gemm_ms, 3),
        split_tflops=round(2 * m * n * k / (split_ms * 1e-3) / 1e12, 1),
        dequant_gbps=round(moved / (dequant_ms * 1e-3) / 1e9), split_rel_err=split_err, dequant_exact=dequant_exact,
        auto_path="split" if m >= dm.SPLIT_MIN_M else "fused",
    )  # fmt: skip

    # fused GEMM, forced (autotuned on the first call at a new shape)
    triton_ms = best = err = None
    if m in FUSED_M and qtype in MAIN_QTYPES:
        dm._autotuned_kernel.best_config = None  # set again by the autotuned path only

        def fused_fn() -> torch.Tensor:
            return dm.dequant_matmul(x, packed, qtype, n, k, path="fused")

        err = rel_err(fused_fn(), ref)  # first call: autotuning and compilation, untimed
        best = config_of(dm._autotuned_kernel.best_config)
        triton_ms = time_ms(fused_fn, reps)
    del ref
    dequant_gemm_ms = time_ms(lambda: reference.dequant_linear_torch(x, packed, qtype, n, k), reps)
    record.update(
        triton_ms=None if triton_ms is None else round(triton_ms, 4),
        ratio_vs_gemm=None if triton_ms is None else round(triton_ms / gemm_ms, 3),
        tflops=None if triton_ms is None else round(2 * m * n * k / (triton_ms * 1e-3) / 1e12, 1),
        rel_err=err, best_config=best, dequant_gemm_ms=round(dequant_gemm_ms, 4),
    )  # fmt: skip
    return record


@pytest.mark.parametrize(("m", "n", "k"), [(m, n, k) for m in REPS for n, k in SHAPES], ids=lambda v: str(v))
def test_dequant_matmul_paths(bench_report, m: int, n: int, k: int) -> None:
    """All quant types at one (M, N, K), sharing x and the dense GEMM's time."""
    reps = REPS[m]
    g = torch.Generator(device=DEVICE).manual_seed(m + n)
    x = torch.randn(m, k, device=DEVICE, dtype=DTYPE, generator=g)
    dense = torch.randn(n, k, device=DEVICE, dtype=DTYPE, generator=g) / k**0.5
    gemm_ms = time_ms(lambda: F.linear(x, dense), reps)
    for qtype in MAIN_QTYPES + (EXTRA_QTYPES if m == EXTRA_M else ()):
        record = run_case(qtype, x, n, k, gemm_ms, reps)
        record["best_config"] = str(record["best_config"]) if record["best_config"] else None
        bench_report.add(TABLE, **record)
        assert record["dequant_exact"], record
        assert record["split_rel_err"] < 2e-2 and (record["rel_err"] is None or record["rel_err"] < 2e-2), record
    if CUDA:
        torch.cuda.empty_cache()
