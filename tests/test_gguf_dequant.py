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
