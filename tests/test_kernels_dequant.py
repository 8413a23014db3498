"""Triton dequant-matmul vs `x @ dequant(W)ᵀ + b` with gguf-py's numpy dequantizer as the reference, and the
Triton `dequantize` vs the torch dequantizer (bit-exact)."""

from __future__ import annotations

from collections.abc import Iterator

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from kernels_interp import DEVICE, KernelCall, assert_bf16_error_within, kernel_runner

from motif_lite.kernels.errors import KernelInputError
from motif_lite.kernels.reference import dequant_linear_torch
from motif_lite.weights.dequant import dequantize as dequantize_torch

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


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0], ids=lambda q: q.name)
def test_an_odd_number_of_32_value_blocks_matches_reference(kernel, qtype: Q) -> None:
    # K = 96: the fused GEMM steps through K 32 values at a time (a 64-value step would read past a row's end).
    out_features, in_features = 8, 96
    blocks = random_blocks(qtype, out_features, in_features, seed=10)
    x = torch.randn(3, in_features, device=DEVICE)
    y = kernel("dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), qtype, 8, 96, path="fused")
    assert_fp32_close(y, reference(x, blocks, qtype, None))


def test_single_token(kernel) -> None:
    blocks = random_blocks(Q.Q4_K, 16, 256, seed=2)
    x = torch.randn(1, 256, device=DEVICE)
    y = kernel("dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), Q.Q4_K, 16, 256, None)
    assert_fp32_close(y, reference(x, blocks, Q.Q4_K, None))


@pytest.mark.parametrize("path", ["fused", "split"])
def test_a_head_groups_rows(kernel, path: str) -> None:
    # `QuantizedLinear.forward_rows` (head groups) hands the kernel a slice of rows: a view that starts mid-storage.
    blocks = random_blocks(Q.Q4_K, 96, 256, seed=4)
    rows = slice(40, 72)
    packed = torch.from_numpy(blocks).to(DEVICE)[rows]
    x = torch.randn(5, 256, device=DEVICE)
    bias = torch.randn(96, device=DEVICE)[rows]
    y = kernel("dequant_matmul.dequant_matmul", x, packed, Q.Q4_K, 32, 256, bias, path=path)
    assert_fp32_close(y, reference(x, blocks[rows], Q.Q4_K, bias))


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


def test_rejects_packed_rows_whose_bytes_are_not_contiguous() -> None:
    # In-process: the check comes before any kernel. The kernels read a row's bytes one after another.
    packed = torch.zeros(8, 68, dtype=torch.uint8)[:, ::2]  # [8, 34], every other byte of its storage
    with pytest.raises(KernelInputError, match="with contiguous rows"):
        dequant_module().dequant_matmul(torch.zeros(2, 32), packed, Q.Q8_0, 8, 32)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_torch_fallback_matches_reference(qtype: Q) -> None:
    blocks = random_blocks(qtype, 24, 256, seed=3)
    x, bias = torch.randn(5, 256, device=DEVICE), torch.randn(24, device=DEVICE)
    y = dequant_linear_torch(x, torch.from_numpy(blocks).to(DEVICE), qtype, 24, 256, bias)
    assert_fp32_close(y, reference(x, blocks, qtype, bias))


def dequant_module():
    """motif_lite.kernels.dequant_matmul in this process (its constants; monkeypatching in-process tests)."""
    from motif_lite.kernels import dequant_matmul

    return dequant_matmul


def odd_k(qtype: Q) -> int:
    """A K that is not a multiple of 64 where the type allows it (32-value blocks: BLOCK_K = 32)."""
    return 96 if qtype in (Q.Q8_0, Q.Q4_0) else 256


def assert_dequantize_exact(kernel, qtype: Q, n: int, k: int, device: str, seed: int) -> None:
    packed = torch.from_numpy(random_blocks(qtype, n, k, seed=seed)).to(device)
    ref = dequantize_torch(packed, qtype, (n, k), torch.float32)  # bit-exact against gguf-py
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        w = kernel("dequant_matmul.dequantize", packed, qtype, n, k, dtype)
        assert w.shape == (n, k) and w.dtype == dtype
        assert torch.equal(w, ref.to(dtype)), f"{qtype.name} {dtype}: {(w != ref.to(dtype)).sum().item()} differ"


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize(("n", "k_of"), [(40, lambda q: 512), (17, odd_k)], ids=["40x512", "odd-N"])
def test_dequantize_equals_torch_dequantizer(kernel, qtype: Q, n: int, k_of) -> None:
    """float32 bit for bit; fp16 / bf16 equal to the float32 reference rounded to nearest even. 17 rows are not
    a multiple of the row tile (16 at K = 256, 128 at K = 96): the last row tile is masked."""
    assert_dequantize_exact(kernel, qtype, n, k_of(qtype), DEVICE, seed=5)


def test_dequantize_defaults_to_bf16_and_handles_empty(kernel) -> None:
    packed = torch.from_numpy(random_blocks(Q.Q8_0, 3, 64, seed=6)).to(DEVICE)
    w = kernel("dequant_matmul.dequantize", packed, Q.Q8_0, 3, 64)
    assert w.dtype == torch.bfloat16
    assert torch.equal(w, dequantize_torch(packed, Q.Q8_0, (3, 64), torch.bfloat16))
    empty = kernel("dequant_matmul.dequantize", packed[:0], Q.Q8_0, 0, 64)
    assert empty.shape == (0, 64)


@pytest.mark.parametrize(
    ("qtype", "packed_shape", "in_features", "dtype", "match"),
    [
        (Q.Q5_0, (8, 22), 32, torch.bfloat16, "dequantize: quant type Q5_0 is not supported"),
        (Q.Q8_0, (8, 34), 48, torch.bfloat16, "dequantize: in_features=48 is not a multiple of 32"),
        (Q.Q8_0, (8, 33), 32, torch.bfloat16, "dequantize: packed must be uint8"),
        (Q.Q8_0, (8, 34), 32, torch.float64, "dequantize: dtype must be"),
    ],
)
def test_dequantize_rejects_bad_inputs(kernel, qtype, packed_shape, in_features, dtype, match) -> None:
    packed = torch.zeros(packed_shape, dtype=torch.uint8)
    with pytest.raises(KernelInputError, match=match):
        kernel("dequant_matmul.dequantize", packed, qtype, 8, in_features, dtype)


@pytest.mark.parametrize("side", ["below", "at"])
def test_auto_path_matches_reference_on_both_sides_of_the_threshold(kernel, side: str) -> None:
    """SPLIT_MIN_M - 1 tokens run the fused kernel, SPLIT_MIN_M tokens dequantize + F.linear."""
    m = dequant_module().SPLIT_MIN_M - (side == "below")
    out_features, in_features = 24, 256
    blocks = random_blocks(Q.Q4_K, out_features, in_features, seed=7)
    x = torch.randn(m, 1, in_features, device=DEVICE)
    bias = torch.randn(out_features, device=DEVICE)
    packed = torch.from_numpy(blocks).to(DEVICE)
    y = kernel("dequant_matmul.dequant_matmul", x, packed, Q.Q4_K, out_features, in_features, bias)
    assert y.shape == (m, 1, out_features) and y.dtype == torch.float32
    assert_fp32_close(y, reference(x, blocks, Q.Q4_K, bias))


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q5_K], ids=lambda q: q.name)
@pytest.mark.parametrize("path", ["fused", "split"])
def test_forced_path_matches_reference(kernel, qtype: Q, path: str) -> None:
    out_features, in_features = 20, 256
    blocks = random_blocks(qtype, out_features, in_features, seed=8)
    x = torch.randn(in_features, 6, device=DEVICE).T  # strided input
    bias = torch.randn(out_features, device=DEVICE)
    packed = torch.from_numpy(blocks).to(DEVICE)
    y = kernel("dequant_matmul.dequant_matmul", x, packed, qtype, out_features, in_features, bias, path=path)
    assert_fp32_close(y, reference(x, blocks, qtype, bias))


def test_rejects_unknown_path(kernel) -> None:
    packed = torch.zeros(8, 34, dtype=torch.uint8)
    with pytest.raises(KernelInputError, match="path must be one of auto, fused, split, got 'cublas'"):
        kernel("dequant_matmul.dequant_matmul", torch.zeros(2, 32), packed, Q.Q8_0, 8, 32, path="cublas")


def test_path_choice_follows_the_threshold(monkeypatch) -> None:
    """In-process, no kernel runs: the threshold is read at call time; `path` overrides it."""
    dm = dequant_module()
    calls: list[str] = []

    def fake_dequantize(packed, qtype, out_features, in_features, dtype):
        calls.append("split")
        return dequantize_torch(packed, qtype, (out_features, in_features), dtype)

    def fake_fused(x2, packed, qtype, out_features, bias):
        calls.append("fused")
        return torch.zeros(x2.shape[0], out_features, dtype=x2.dtype)

    monkeypatch.setattr(dm, "dequantize", fake_dequantize)
    monkeypatch.setattr(dm, "_fused_matmul", fake_fused)
    monkeypatch.setattr(dm, "SPLIT_MIN_M", 4)
    blocks = random_blocks(Q.Q8_0, 8, 64, seed=9)
    packed, bias = torch.from_numpy(blocks), torch.randn(8, dtype=torch.float64)
    cases = [  # x shape (tokens = all but the last dim), path, expected
        ((3, 64), "auto", "fused"),
        ((4, 64), "auto", "split"),
        ((2, 2, 64), "auto", "split"),
        ((300, 64), "fused", "fused"),
        ((1, 64), "split", "split"),
    ]
    for shape, path, expected in cases:
        calls.clear()
        x = torch.randn(shape)
        y = dm.dequant_matmul(x, packed, Q.Q8_0, 8, 64, bias, path=path)
        assert calls == [expected], (shape, path)
        assert y.shape == (*shape[:-1], 8) and y.dtype == x.dtype
        if expected == "split":
            assert_fp32_close(y, reference(x, blocks, Q.Q8_0, bias))  # bias cast to x.dtype first


@pytest.mark.cuda
@pytest.mark.parametrize("path", ["fused", "split"])
@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_bf16_on_cuda(kernel, qtype: Q, path: str) -> None:
    # Both paths and torch's bf16 op round the weight to bf16, accumulate in float32 and round the output once:
    # the same largest error against float64 (1.0x with torch stand-ins on a CPU, every type); a bf16 accumulator
    # rounded after each 64-wide K tile measured 2.6x to 3.7x. torch's op runs on the CPU, the same everywhere.
    blocks = random_blocks(qtype, 256, 1024, seed=4)
    x = torch.randn(300, 1024, device=DEVICE, dtype=torch.bfloat16)
    y = kernel("dequant_matmul.dequant_matmul", x, torch.from_numpy(blocks).to(DEVICE), qtype, 256, 1024, path=path)
    x = x.cpu()
    exact = x.double() @ torch.from_numpy(gguf.quants.dequantize(blocks, qtype)).double().T
    torch_bf16 = dequant_linear_torch(x, torch.from_numpy(blocks), qtype, 256, 1024)
    assert_bf16_error_within(y, exact, torch_bf16, factor=2)


@pytest.mark.cuda
@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_dequantize_exact_on_cuda(kernel, qtype: Q) -> None:
    """Compiled (fp fusion off, hardware rounding to bf16 / fp16): bit-exact at Motif's K and an odd N."""
    for n, k in [(300, 1536), (37, 6144)]:
        assert_dequantize_exact(kernel, qtype, n, k, "cuda", seed=10)
