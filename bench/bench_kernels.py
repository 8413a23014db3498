"""Triton kernels vs their torch baselines at Motif-Video 2B shapes (CUDA, bf16).

    pytest bench/bench_kernels.py                       # on a CUDA machine
    TRITON_INTERPRET=1 pytest bench/bench_kernels.py    # CPU smoke: tiny shapes, interpreted

Each benchmark adds a row (mean ms, `tflops`, or `gbps` for the memory-bound norms) to the report's table "Kernels
vs torch baselines"; pytest-benchmark's groups put a kernel next to its baseline. Before timing, each Triton row
checks in the same run that its output agrees with its torch baseline's (`check_agrees`, recorded as
`rel_err_vs_torch`): a fast but wrong kernel fails its row (no row in the report) instead of reporting a speed-up.
`run` makes the check, on a GPU as in the interpreter's smoke run on the CPU, and refuses to time a Triton row
without its baseline; tests/test_bench_kernels.py shows a wrong kernel failing its row. TRITON_INTERPRET must be set
before triton is imported, hence on the command line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from helpers import rel_diff

from motif_lite.kernels import patterns
from motif_lite.kernels.reference import block_sparse_attention_torch, dequant_linear_torch
from motif_lite.model import ops

CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.cuda(smoke=True)
DEVICE, DTYPE = ("cuda", torch.bfloat16) if CUDA else ("cpu", torch.float32)
# Real shapes: 4096-token chunks of the hidden/FF linears; 832x480x49 video = 13 latent frames x 30 x 52 tokens.
TOKENS, HIDDEN, FF, HEADS, HEAD_DIM = (4096, 1536, 6144, 12, 128) if CUDA else (8, 256, 64, 2, 32)
FRAMES, PER_FRAME = (13, 30 * 52) if CUDA else (4, 16)
BLOCK = 128 if CUDA else 16


TABLE = "Kernels vs torch baselines" + ("" if CUDA else " (CPU interpreter smoke run: times mean nothing)")


# How far a Triton output may be from its torch baseline's (relative L2). bf16 keeps 8 significant bits, and the
# two paths round at different steps, so they differ by a few times its 2^-9 rounding error (bf16_bounds.py
# measures 1e-3 to 1e-2 between paths at the tests' shapes); the interpreter's float32 differs by the order of
# accumulation only. A wrong kernel misses by order 1.
AGREE = {torch.bfloat16: 2e-2, torch.float32: 1e-4}


def check_agrees(benchmark, triton_out: torch.Tensor, torch_out: torch.Tensor) -> None:
    """Fail the row unless the Triton output is within AGREE of its torch baseline's; record the error."""
    error = rel_diff(triton_out, torch_out)
    benchmark.extra_info["rel_err_vs_torch"] = error
    bound = AGREE[torch_out.dtype]
    assert error <= bound, f"the Triton output is {error:.3g} from torch's (relative L2), past {bound:g}"


def run(
    benchmark,
    report,
    fn: Callable[[], torch.Tensor],
    flops: float = 0.0,
    nbytes: float = 0.0,
    baseline: Callable[[], torch.Tensor] | None = None,
) -> None:
    """Time `fn` and add its row to the report. A Triton row gives its torch `baseline`: the outputs must agree
    (`check_agrees`) before anything is timed, so that a wrong kernel fails its row on the GPU as on the CPU."""
    if "triton" in benchmark.name and baseline is None:
        raise ValueError(f"{benchmark.name}: a Triton row is timed only against its torch baseline: give baseline=")
    if baseline is not None:
        check_agrees(benchmark, fn(), baseline())

    def call() -> None:
        fn()
        if CUDA:
            torch.cuda.synchronize()

    if CUDA:
        benchmark.pedantic(call, rounds=20, warmup_rounds=3)
    else:
        benchmark.pedantic(call, rounds=1, iterations=1)  # the interpreter proves the kernel runs, nothing more
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"tflops": flops / mean / 1e12, "gbps": nbytes / mean / 1e9})
    report.add(TABLE, benchmark=benchmark.name, mean_ms=mean * 1e3, tflops=flops / mean / 1e12 if flops else None,
               gbps=nbytes / mean / 1e9 if nbytes else None,
               rel_err_vs_torch=benchmark.extra_info.get("rel_err_vs_torch"))  # fmt: skip


def packed_weight(qtype: Q, rows: int, cols: int) -> torch.Tensor:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = np.random.default_rng(0).integers(0, 256, (rows, cols // block_size, type_size), dtype=np.uint8)
    offsets = {Q.Q8_0: [0], Q.Q4_K: [0, 2], Q.Q6_K: [208]}[qtype]
    for offset in offsets:  # finite fp16 scales
        blocks[..., offset : offset + 2] = np.full((1, 1, 1), 0.01, np.float16).view(np.uint8)
    return torch.from_numpy(blocks.reshape(rows, -1)).to(DEVICE)


@pytest.mark.benchmark(group="dequant_matmul")
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_K, Q.Q6_K], ids=lambda q: q.name)
@pytest.mark.parametrize("impl", ["triton", "torch-dequant+linear", "bf16-linear"])
def test_dequant_matmul(benchmark, bench_report, impl: str, qtype: Q) -> None:
    from motif_lite.kernels.dequant_matmul import dequant_matmul

    x, packed = torch.randn(TOKENS, HIDDEN, device=DEVICE, dtype=DTYPE), packed_weight(qtype, FF, HIDDEN)
    dense = torch.randn(FF, HIDDEN, device=DEVICE, dtype=DTYPE)
    fns = {
        "triton": lambda: dequant_matmul(x, packed, qtype, FF, HIDDEN),
        "torch-dequant+linear": lambda: dequant_linear_torch(x, packed, qtype, FF, HIDDEN),
        "bf16-linear": lambda: F.linear(x, dense),
    }
    baseline = fns["torch-dequant+linear"] if impl == "triton" else None
    run(benchmark, bench_report, fns[impl], flops=2 * TOKENS * FF * HIDDEN, baseline=baseline)


@pytest.mark.benchmark(group="layer_norm_modulate")
@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_layer_norm_modulate(benchmark, bench_report, impl: str) -> None:
    from motif_lite.kernels import norm

    x = torch.randn(1, 8 * TOKENS, HIDDEN, device=DEVICE, dtype=DTYPE)
    shift, scale = torch.randn(2, 1, HIDDEN, device=DEVICE, dtype=DTYPE).unbind(0)
    fn = norm.layer_norm_modulate if impl == "triton" else ops.layer_norm_modulate
    baseline = (lambda: ops.layer_norm_modulate(x, shift, scale)) if impl == "triton" else None
    run(benchmark, bench_report, lambda: fn(x, shift, scale), nbytes=2 * x.numel() * x.element_size(),
        baseline=baseline)  # fmt: skip


@pytest.mark.benchmark(group="rms_norm_rope")
@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_rms_norm_rope(benchmark, bench_report, impl: str) -> None:
    from motif_lite.kernels import norm

    length = 8 * TOKENS
    x = torch.randn(1, length, HEADS * HEAD_DIM, device=DEVICE, dtype=DTYPE).view(1, length, HEADS, HEAD_DIM)
    x = x.transpose(1, 2)  # the model's head view
    weight = torch.ones(HEAD_DIM, device=DEVICE, dtype=DTYPE)
    text = 64 if CUDA else 16  # the last tokens (text) are unrotated; the smoke run's 64 tokens keep 48 rotated
    angles = torch.rand(length - text, HEAD_DIM, device=DEVICE)
    cos, sin = angles.cos(), angles.sin()  # once, as the model does per forward: not timed
    fn = norm.rms_norm_rope if impl == "triton" else ops.rms_norm_rope
    baseline = (lambda: ops.rms_norm_rope(x, weight, 1e-6, cos, sin)) if impl == "triton" else None
    run(benchmark, bench_report, lambda: fn(x, weight, 1e-6, cos, sin), nbytes=2 * x.numel() * x.element_size(),
        baseline=baseline)  # fmt: skip


def decoder_qkv() -> tuple[torch.Tensor, ...]:
    length = 2 * FRAMES * PER_FRAME  # the DDT decoder's [decoder N; encoder N]
    return torch.randn(3, 1, HEADS, length, HEAD_DIM, device=DEVICE, dtype=DTYPE).unbind(0)


@pytest.mark.benchmark(group="attention")
@pytest.mark.parametrize("impl", ["triton-dense", "triton-sparse-w2", "sdpa"])
def test_decoder_attention(benchmark, bench_report, impl: str) -> None:
    from motif_lite.kernels.attention import block_sparse_attention

    q, k, v = decoder_qkv()
    tiles = patterns.ddt_decoder_local_temporal(FRAMES, PER_FRAME, window=2, block_size=BLOCK).mask.to(DEVICE)
    fns = {
        "triton-dense": lambda: block_sparse_attention(q, k, v, block_size=BLOCK),
        "triton-sparse-w2": lambda: block_sparse_attention(q, k, v, None, tiles, BLOCK),
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
    }
    baselines = {
        "triton-dense": fns["sdpa"],
        "triton-sparse-w2": lambda: block_sparse_attention_torch(q, k, v, None, tiles, BLOCK),
    }
    # Dense-equivalent FLOPs, so the sparse row's tflops reads as an effective speed.
    run(benchmark, bench_report, fns[impl], flops=4 * HEADS * q.shape[2] * k.shape[2] * HEAD_DIM,
        baseline=baselines.get(impl))  # fmt: skip
    benchmark.extra_info["tile_density"] = tiles.float().mean().item() if "sparse" in impl else 1.0
