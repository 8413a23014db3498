"""Dequantizers are bit-exact against gguf-py; QuantizedLinear equals F.linear on the dequantized weight."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf_helpers import random_packed

from motif_lite.errors import CheckpointError
from motif_lite.weights.dequant import DEQUANTIZERS, FLOAT_TYPES, dequantize
from motif_lite.weights.quant_embedding import QuantizedEmbedding
from motif_lite.weights.quant_linear import QuantizedLinear

Q = GGMLQuantizationType
ALL_TYPES = [*FLOAT_TYPES, *DEQUANTIZERS]


def _shapes(qtype: GGMLQuantizationType) -> list[tuple[int, ...]]:
    block = GGML_QUANT_SIZES[qtype][0]
    return [(block,), (3, block), (5, 2 * block), (2, 3, block)]


def _reference(raw: np.ndarray, qtype: GGMLQuantizationType, shape: tuple[int, ...]) -> np.ndarray:
    """gguf-py's numpy dequantization (expects uint8 bytes, or fp16/fp32 arrays for F16/F32)."""
    if qtype == Q.F16:
        raw = raw.view(np.float16)
    elif qtype == Q.F32:
        raw = raw.view(np.float32)
    return gguf.quants.dequantize(raw, qtype).reshape(shape)


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_dequantize_is_bit_exact(qtype: GGMLQuantizationType) -> None:
    rng = np.random.default_rng(int(qtype))
    for shape in _shapes(qtype):
        raw = random_packed(qtype, shape, rng)
        expected = torch.from_numpy(_reference(raw, qtype, shape).astype(np.float32))
        got = dequantize(torch.from_numpy(raw.copy()), qtype, shape)
        assert got.dtype == torch.float32 and got.shape == shape
        assert torch.equal(got.view(torch.int32), expected.view(torch.int32)), f"{qtype.name} {shape}"


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q8_0, Q.BF16], ids=lambda t: t.name)
def test_dequantize_casts_to_requested_dtype(qtype: GGMLQuantizationType) -> None:
    shape = (4, GGML_QUANT_SIZES[qtype][0] * 2)
    packed = torch.from_numpy(random_packed(qtype, shape, np.random.default_rng(0)).copy())
    full = dequantize(packed, qtype, shape)
    half = dequantize(packed, qtype, shape, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, full.to(torch.bfloat16))


def test_dequantize_accepts_float_tensor_for_float_types() -> None:
    values = torch.randn(3, 8, dtype=torch.float16)
    assert torch.equal(dequantize(values, Q.F16, (3, 8)), values.float())


def test_dequantize_q8_0_matches_gguf_py_round_trip() -> None:
    # Real quantized data (not random bytes): quantize with gguf-py, dequantize with both.
    values = np.random.default_rng(1).standard_normal((6, 64)).astype(np.float32)
    packed = gguf.quants.quantize(values, Q.Q8_0)
    expected = torch.from_numpy(gguf.quants.dequantize(packed, Q.Q8_0))
    assert torch.equal(dequantize(torch.from_numpy(packed), Q.Q8_0, (6, 64)), expected)


def test_unsupported_type_names_type_and_tensor() -> None:
    packed = torch.zeros(66, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.w.*IQ2_XXS"):
        dequantize(packed, Q.IQ2_XXS, (256,), name="blocks.0.w")


def test_wrong_byte_count_raises() -> None:
    packed = torch.zeros(2, 33, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"lin\.weight.*bytes"):
        dequantize(packed, Q.Q4_0, (2, 64), name="lin.weight")


def test_row_not_whole_blocks_raises() -> None:
    with pytest.raises(CheckpointError, match="multiple of the block size 32"):
        dequantize(torch.zeros(18, dtype=torch.uint8), Q.Q4_0, (1, 40), name="w")


def test_dequantize_full_size_weight_is_bit_exact() -> None:
    # A real to_q size: [1536, 1536] in Q4_K, checked whole against gguf-py.
    shape = (1536, 1536)
    raw = random_packed(Q.Q4_K, shape, np.random.default_rng(2))
    expected = torch.from_numpy(_reference(raw, Q.Q4_K, shape))
    assert torch.equal(dequantize(torch.from_numpy(raw.copy()), Q.Q4_K, shape), expected)


# --- QuantizedLinear ------------------------------------------------------------------------------------------


def _layer(qtype: GGMLQuantizationType, out_f: int, in_f: int, bias: bool, seed: int = 0) -> QuantizedLinear:
    rng = np.random.default_rng(seed)
    packed = torch.from_numpy(random_packed(qtype, (out_f, in_f), rng).copy())
    b = torch.from_numpy(rng.standard_normal(out_f).astype(np.float32)) if bias else None
    return QuantizedLinear.from_packed(packed, qtype, in_f, bias=b)


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q8_0, Q.Q5_1, Q.Q6_K, Q.IQ4_XS], ids=lambda t: t.name)
@pytest.mark.parametrize("bias", [True, False])
def test_quantized_linear_equals_f_linear(qtype: GGMLQuantizationType, bias: bool) -> None:
    in_f = 2 * GGML_QUANT_SIZES[qtype][0]
    layer = _layer(qtype, 24, in_f, bias)
    x = torch.randn(2, 5, in_f)
    weight = dequantize(layer.packed, qtype, (24, in_f))
    expected = F.linear(x, weight, layer.bias)
    assert torch.equal(layer(x), expected)
    assert torch.equal(layer.dequantized_weight(), weight)


def test_quantized_linear_resident_bytes_equal_packed_size() -> None:
    layer = _layer(Q.Q4_K, 64, 512, bias=True)
    packed_size = 64 * 512 // 256 * 144
    buffers = sum(b.numel() * b.element_size() for b in layer.buffers())
    assert buffers == packed_size
    params = sum(p.numel() * p.element_size() for p in layer.parameters())
    assert params == 64 * 4  # only the float32 bias


def test_quantized_linear_bf16_input_and_to() -> None:
    layer = _layer(Q.Q8_0, 16, 64, bias=True).to(torch.bfloat16)
    assert layer.packed.dtype == torch.uint8 and layer.bias.dtype == torch.bfloat16
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    expected = F.linear(x, dequantize(layer.packed, Q.Q8_0, (16, 64)).to(torch.bfloat16), layer.bias)
    assert torch.equal(layer(x), expected)
    moved = layer.to("meta")
    assert moved.packed.device.type == "meta" and moved.packed.dtype == torch.uint8


def test_quantized_linear_float32_bias_follows_a_bf16_input() -> None:
    # The bias is stored as the file has it (F32 in our recipes) and cast per call, as the weight is.
    layer = _layer(Q.Q8_0, 16, 64, bias=True)
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    expected = F.linear(x, layer.dequantized_weight(torch.bfloat16), layer.bias.to(torch.bfloat16))
    assert layer.bias.dtype == torch.float32 and torch.equal(layer(x), expected)


@pytest.mark.parametrize("rows", [slice(0, 8), slice(8, 24), slice(16, None)], ids=["first", "middle", "last"])
def test_quantized_linear_rows_equal_those_of_the_whole_output(rows: slice) -> None:
    # Attention computes one group of heads at a time from its rows of the q/k/v projections (`project_rows`).
    layer = _layer(Q.Q4_K, 24, 256, bias=True)
    x = torch.randn(2, 3, 256)
    out = layer.forward_rows(x, rows)
    # Exactly the product of those rows of the weights; the whole product's columns agree to float32 rounding only:
    # a BLAS may block a product of 8 rows otherwise than one of 24 (bits differ on an AMD EPYC, not on earlier CPUs).
    weight, bias = layer.dequantized_weight(torch.float32)[rows], layer.bias[rows]
    assert torch.equal(out, F.linear(x, weight, bias))
    whole = layer(x)
    torch.testing.assert_close(out, whole[..., rows], rtol=1e-5, atol=1e-6 * whole.abs().max().item())


def test_quantized_linear_uses_kernel_when_set() -> None:
    layer = _layer(Q.Q4_0, 8, 64, bias=True)
    calls = []

    def kernel(x, packed, qtype, out_features, in_features, bias):
        calls.append((qtype, out_features, in_features))
        return F.linear(x, dequantize(packed, qtype, (out_features, in_features)), bias) + 1

    x = torch.randn(2, 64)
    plain = layer(x)
    layer.kernel = kernel
    assert torch.equal(layer(x), plain + 1)
    assert calls == [(Q.Q4_0, 8, 64)]


def test_quantized_linear_repr_and_bad_packed() -> None:
    layer = _layer(Q.Q4_K, 8, 256, bias=False)
    assert "qtype=Q4_K" in repr(layer) and "packed_bytes=1152" in repr(layer)
    with pytest.raises(CheckpointError, match="uint8"):
        QuantizedLinear.from_packed(torch.zeros(8, 100, dtype=torch.uint8), Q.Q4_K, 256)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_quantized_embedding_lookup_equals_rows_of_the_dequantized_table(dtype: torch.dtype) -> None:
    table = torch.from_numpy(random_packed(Q.Q4_K, (10, 256), np.random.default_rng(5)).copy())
    embedding = QuantizedEmbedding(10, 256, Q.Q4_K)
    embedding.packed = table
    ids = torch.tensor([[3, 0, 9], [3, 7, 1]])
    rows = embedding.lookup(ids, dtype)
    assert rows.dtype == dtype and rows.shape == (2, 3, 256)
    assert torch.equal(rows, dequantize(table, Q.Q4_K, (10, 256), dtype)[ids])


def test_packed_blocks_of_another_dtype_are_refused_even_in_the_right_shape() -> None:
    # The message says uint8, and int8 bytes of the right shape were wrapped all the same: the dtype is checked too.
    with pytest.raises(CheckpointError, match=r"must be uint8 \(8, 144\), got torch.int8 \(8, 144\)"):
        QuantizedLinear.from_packed(torch.zeros(8, 144, dtype=torch.int8), Q.Q4_K, 256)
