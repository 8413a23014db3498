"""Triton dequant-matmul vs `x @ dequant(W)ᵀ + b` with gguf-py's numpy dequantizer as the reference."""

from __future__ import annotations

from collections.abc import Iterator

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from kernels_interp import DEVICE, KernelCall, kernel_runner

from motif_lite.kernels.errors import KernelInputError
from motif_lite.kernels.reference import dequant_linear_torch

QTYPES = [Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
F16_FIELDS = {Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}  # byte offsets of fp16s


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


def random_blocks(qtype: Q, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Random packed blocks: every quant bit pattern appears; fp16 scale fields are set to finite values."""
    rng = np.random.default_rng(seed)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (rows, cols // block_size, type_size), dtype=np.uint8)
    for offset in F16_FIELDS[qtype]:
        scale = (rng.random((rows, cols // block_size, 1)) * 0.02 - 0.005).astype(np.float16)
        blocks[..., offset : offset + 2] = scale.view(np.uint8)
    return blocks.reshape(rows, -1)


def reference(x: torch.Tensor, blocks: np.ndarray, qtype: Q, bias: torch.Tensor | None) -> torch.Tensor:
    weight = torch.from_numpy(gguf.quants.dequantize(blocks, qtype)).to(x.device)
    y = x.double() @ weight.double().T
    return (y if bias is None else y + bias.double()).float()


def assert_fp32_close(y: torch.Tensor, ref: torch.Tensor) -> None:
    # fp32 accumulation over K: the error scales with the output's magnitude (random scales make it ~1e3 here);
    # a fixed atol passed in the CPU interpreter but not on CUDA's fp32 dot.
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=5e-6 * ref.abs().max().item())


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_matches_reference(kernel, qtype: Q) -> None:
    out_features, in_features = 40, 512  # N not a multiple of the tile; several K tiles and super-blocks
    blocks = random_blocks(qtype, out_features, in_features)
    x = torch.randn(2, 3, in_features, device=DEVICE)
    bias = torch.randn(out_features, device=DEVICE)
    y = kernel(
        "dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), qtype, out_features, in_features, bias
    )
    assert y.shape == (2, 3, out_features) and y.dtype == torch.float32
    assert_fp32_close(y, reference(x, blocks, qtype, bias))


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q6_K], ids=lambda q: q.name)
def test_many_tokens_strided_input_no_bias(kernel, qtype: Q) -> None:
    out_features, in_features = 72, 256
    blocks = random_blocks(qtype, out_features, in_features, seed=1)
    x = torch.randn(in_features, 70, device=DEVICE).T  # 70 tokens (> one M tile), column-major view
    y = kernel(
        "dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), qtype, out_features, in_features
    )
    assert_fp32_close(y, reference(x, blocks, qtype, None))


def test_single_token(kernel) -> None:
    blocks = random_blocks(Q.Q4_K, 16, 256, seed=2)
    x = torch.randn(1, 256, device=DEVICE)
    y = kernel("dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), Q.Q4_K, 16, 256, None)
    assert_fp32_close(y, reference(x, blocks, Q.Q4_K, None))


@pytest.mark.parametrize(
    ("qtype", "packed_shape", "in_features", "x_features", "match"),
    [
        (Q.Q5_0, (8, 22), 32, 32, "Q5_0 is not supported"),
        (Q.Q8_0, (8, 34), 48, 48, "not a multiple of 32"),
        (Q.Q8_0, (8, 33), 32, 32, "packed must be uint8"),
        (Q.Q8_0, (8, 34), 32, 64, "x has 64 features"),
    ],
)
def test_rejects_bad_inputs(kernel, qtype, packed_shape, in_features, x_features, match) -> None:
    packed = torch.zeros(packed_shape, dtype=torch.uint8)
    with pytest.raises(KernelInputError, match=match):
        kernel("dequant_matmul.dequant_matmul", torch.zeros(2, x_features), packed, qtype, 8, in_features)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_torch_fallback_matches_reference(qtype: Q) -> None:
    blocks = random_blocks(qtype, 24, 256, seed=3)
    x, bias = torch.randn(5, 256, device=DEVICE), torch.randn(24, device=DEVICE)
    y = dequant_linear_torch(x, torch.from_numpy(blocks).to(DEVICE), qtype, 24, 256, bias)
    assert_fp32_close(y, reference(x, blocks, qtype, bias))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 tensor-core path needs CUDA")
@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_bf16_on_cuda(kernel, qtype: Q) -> None:
    blocks = random_blocks(qtype, 256, 1024, seed=4)
    x = torch.randn(300, 1024, device="cuda", dtype=torch.bfloat16)
    y = kernel("dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).cuda(), qtype, 256, 1024)
    ref = reference(x.float(), blocks, qtype, None)
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())
