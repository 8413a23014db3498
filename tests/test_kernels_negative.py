"""Negative controls for the kernel tests: a deliberately broken kernel fails the comparison the kernel tests use.

Each broken "kernel" is the torch reference with one classic bug put in (swapped arguments, the wrong RoPE pair
layout, a mask ignored, a nibble order reversed, ...), or for the 8-bit attention its float64 emulation with one
quantization step done otherwise (coarser K scales, no K smoothing, INT8 ties rounded to even) or its key mask
ignored. It gets the same inputs and must fail the same check (`torch.testing.assert_close` with the same
tolerances) that the real kernels pass in tests/test_kernels_*.py: the inputs exercise what the kernels compute,
and the tolerances are tight enough to see such bugs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q
from test_kernels_attention import TOL, key_padding, qkv
from test_kernels_dequant import assert_fp32_close, random_blocks, reference
from test_kernels_int8 import EMULATION, PV, emulation_tolerance, fp16_cross_inputs, padded_inputs, tied_qkv
from test_kernels_norm import adaln_chunks, heads_view

from motif_lite.kernels import int8_scheme
from motif_lite.kernels.int8_scheme import emulate_int8_attention
from motif_lite.kernels.reference import dequant_linear_torch, expand_block_mask
from motif_lite.model import ops

NORM_TOL = {"rtol": 1e-5, "atol": 1e-5}


def rope_half_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on pairs (i, i + D/2) instead of the model's interleaved (2i, 2i + 1)."""
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def broken_rms_norm_rope(bug: str, x, weight, eps, cos, sin):
    n = cos.shape[0]
    normed = F.rms_norm(x, x.shape[-1:], None if bug == "weight ignored" else weight, eps)
    if bug == "rope on every token":  # the text tokens rotated too (with the last angle repeated)
        extra = x.shape[2] - n
        cos, sin = (torch.cat([t, t[-1:].expand(extra, -1)]) for t in (cos, sin))
        return ops.apply_rope(normed, cos, sin)
    rope = {"half-split pairs": rope_half_split, "rotation reversed": lambda t, c, s: ops.apply_rope(t, c, -s)}
    rope = rope.get(bug, ops.apply_rope)
    if bug == "positions shifted by one":
        cos, sin = cos.roll(1, dims=0), sin.roll(1, dims=0)
    return torch.cat([rope(normed[:, :, :n], cos, sin), normed[:, :, n:]], dim=2)


@pytest.mark.parametrize(
    "bug",
    ["weight ignored", "half-split pairs", "rotation reversed", "positions shifted by one", "rope on every token"],
)
def test_broken_rms_norm_rope_fails_the_check(bug: str) -> None:
    # The inputs of test_kernels_norm.py::test_rms_norm_rope[first-7-of-11] (the first 7 of 11 tokens rotated).
    x = heads_view(2, 11, 3, 16)
    weight, cos, sin = torch.randn(16), torch.randn(7, 16), torch.randn(7, 16)
    broken = broken_rms_norm_rope(bug, x, weight, 1e-6, cos, sin)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(broken, ops.rms_norm_rope(x, weight, 1e-6, cos, sin), **NORM_TOL)


LAYER_NORM_BUGS = {
    "shift and scale swapped": lambda x, shift, scale: ops.layer_norm_modulate(x, scale, shift),
    "scale without the 1 +": lambda x, shift, scale: (
        F.layer_norm(x, x.shape[-1:], eps=1e-6) * scale[:, None] + shift[:, None]
    ),
    "eps 1e-2": lambda x, shift, scale: ops.layer_norm_modulate(x, shift, scale, 1e-2),
    "biased variance": lambda x, shift, scale: (
        ((x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)) * (1 + scale[:, None]) + shift[:, None]
    ),
}


@pytest.mark.parametrize("bug", LAYER_NORM_BUGS)
def test_broken_layer_norm_modulate_fails_the_check(bug: str) -> None:
    # The inputs of test_kernels_norm.py::test_layer_norm_modulate (small channel count: the variance bug shows).
    x = torch.randn(7, 2, 96).transpose(0, 1) * 3 + 1
    shift, scale = adaln_chunks(2, 96)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            LAYER_NORM_BUGS[bug](x, shift, scale), ops.layer_norm_modulate(x, shift, scale, 1e-6), **NORM_TOL
        )


ATTENTION_BUGS = {
    "key mask ignored": lambda q, k, v, mask, tiles: F.scaled_dot_product_attention(
        q, k, v, attn_mask=expand_block_mask(tiles, 32, q.shape[2], k.shape[2])
    ),
    "softmax scale 1/D": lambda q, k, v, mask, tiles: F.scaled_dot_product_attention(
        q, k, v, attn_mask=expand_block_mask(tiles, 32, q.shape[2], k.shape[2]) & mask, scale=1 / q.shape[-1]
    ),
    "one tile too many": lambda q, k, v, mask, tiles: F.scaled_dot_product_attention(
        q, k, v, attn_mask=expand_block_mask(tiles | torch.eye(3, dtype=torch.bool), 32, q.shape[2], k.shape[2]) & mask
    ),
}


@pytest.mark.parametrize("bug", ATTENTION_BUGS)
def test_broken_attention_fails_the_check(bug: str) -> None:
    # The inputs of test_kernels_attention.py::test_block_mask_equals_element_mask[per-batch].
    q, k, v = qkv(2, 2, 80, 70, 32)
    tiles = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(21)) < 0.5
    tiles[..., 0] = True
    tiles[0, 0, 1, 2] = False
    tiles[:, :, 1, 1] = False  # so that "one tile too many" adds a tile
    padding = key_padding(2, 70, [70, 50])
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=expand_block_mask(tiles, 32, 80, 70) & padding)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ATTENTION_BUGS[bug](q, k, v, padding, tiles), expected, **TOL)


# The 8-bit kernel is checked against its emulation (test_kernels_int8.py); a broken scheme is the emulation with
# one quantization step done otherwise.
INT8_BUGS = {"K scales per 128 keys": dict(block_n=128), "no K smoothing": dict(smooth_k=False)}


@pytest.mark.parametrize("pv", PV)
@pytest.mark.parametrize("bug", INT8_BUGS)
def test_broken_int8_scheme_fails_the_check(bug: str, pv: str) -> None:
    # The inputs and the check of test_kernels_int8.py::test_matches_emulation_with_key_padding.
    q, k, v, mask = padded_inputs()
    broken = emulate_int8_attention(q, k, v, mask, pv=pv, **INT8_BUGS[bug])
    with pytest.raises(AssertionError):
        torch.testing.assert_close(broken, emulate_int8_attention(q, k, v, mask, pv=pv), **emulation_tolerance(pv))


@pytest.mark.parametrize("pv", PV)
def test_int8_key_mask_ignored_fails_the_check(pv: str) -> None:
    # The inputs and the check of test_kernels_int8.py::test_matches_emulation_with_key_padding, the second batch
    # row's 25 padded keys attended to (a kernel that drops the mask in its softmax fails that test: tried).
    q, k, v, mask = padded_inputs()
    broken = emulate_int8_attention(q, k, v, None, pv=pv)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(broken, emulate_int8_attention(q, k, v, mask, pv=pv), **emulation_tolerance(pv))


def test_int8_rounding_halves_to_even_fails_the_check(monkeypatch) -> None:
    # The inputs and the check of test_kernels_int8.py::test_int8_ties_round_half_away_from_zero, with Q and K
    # rounded to INT8 half to even (torch.round) instead of away from zero.
    q, k, v = tied_qkv()
    expected = emulate_int8_attention(q, k, v, pv="16bit")
    monkeypatch.setattr(int8_scheme, "round_half_away", torch.round)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(emulate_int8_attention(q, k, v, pv="16bit"), expected, **EMULATION)


def test_int8_biased_16bit_pv_fails_the_check(monkeypatch) -> None:
    # The inputs and the check of test_kernels_int8.py::test_cross_lengths_and_fp16, with every 16-bit P·V
    # product 0.6 % too large (P scaled by 1.006 before the dot): a bias well under a looser fp16 bound.
    q, k, v, mask = fp16_cross_inputs()
    expected = emulate_int8_attention(q, k, v, mask, pv="16bit")
    exact_operands = int8_scheme._pv_operands

    def biased_operands(*args):
        v_dot, round_p, v_mean = exact_operands(*args)
        return v_dot, lambda p: round_p(p) * 1.006, v_mean

    monkeypatch.setattr(int8_scheme, "_pv_operands", biased_operands)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(emulate_int8_attention(q, k, v, mask, pv="16bit"), expected, **EMULATION)


def nibbles_swapped(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of two 4-bit values) with the low and high nibble of every byte swapped."""
    out = blocks.reshape(blocks.shape[0], -1, 18).copy()
    out[..., 2:] = (out[..., 2:] >> 4) | (out[..., 2:] << 4)
    return out.reshape(blocks.shape)


DEQUANT_BUGS = {
    "bias dropped": lambda x, blocks, bias: dequant_linear_torch(x, torch.from_numpy(blocks), Q.Q4_0, 40, 512),
    "nibble order reversed": lambda x, blocks, bias: dequant_linear_torch(
        x, torch.from_numpy(nibbles_swapped(blocks)), Q.Q4_0, 40, 512, bias
    ),
    "one block row skipped": lambda x, blocks, bias: dequant_linear_torch(
        x, torch.from_numpy(np.concatenate([blocks[:, :18] * 0, blocks[:, 18:]], axis=1)), Q.Q4_0, 40, 512, bias
    ),
}


@pytest.mark.parametrize("bug", DEQUANT_BUGS)
def test_broken_dequant_matmul_fails_the_check(bug: str) -> None:
    # The inputs of test_kernels_dequant.py::test_matches_reference[Q4_0].
    blocks = random_blocks(Q.Q4_0, 40, 512)
    x, bias = torch.randn(2, 3, 512), torch.randn(40)
    with pytest.raises(AssertionError):
        assert_fp32_close(DEQUANT_BUGS[bug](x, blocks, bias), reference(x, blocks, Q.Q4_0, bias))
