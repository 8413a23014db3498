"""Fused LayerNorm+modulation and QK RMSNorm+RoPE kernels vs the torch references in motif_lite.model.ops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from kernels_interp import DEVICE, KernelCall, assert_bf16_error_within, kernel_runner

from motif_lite.kernels.errors import KernelInputError
from motif_lite.model import ops


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


def adaln_chunks(bsz: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """shift/scale as the model makes them: strided chunks of one AdaLN linear output."""
    shift, scale, _gate = torch.randn(bsz, 3 * channels, device=DEVICE).chunk(3, dim=1)
    return shift, scale


@pytest.mark.parametrize(("bsz", "length", "channels"), [(2, 7, 96), (1, 3, 1536)])
def test_layer_norm_modulate(kernel, bsz: int, length: int, channels: int) -> None:
    x = torch.randn(length, bsz, channels, device=DEVICE).transpose(0, 1) * 3 + 1  # non-contiguous [B, L, C]
    shift, scale = adaln_chunks(bsz, channels)
    y = kernel("norm.layer_norm_modulate", x, shift, scale, 1e-6)
    torch.testing.assert_close(y, ops.layer_norm_modulate(x, shift, scale, 1e-6), rtol=1e-5, atol=1e-5)


def test_layer_norm_modulate_promotes_like_torch(kernel) -> None:
    x = torch.randn(1, 4, 32, device=DEVICE, dtype=torch.float16)
    shift, scale = adaln_chunks(1, 32)
    y = kernel("norm.layer_norm_modulate", x, shift, scale, 1e-6)
    ref = ops.layer_norm_modulate(x.float(), shift, scale, 1e-6)
    assert y.dtype == torch.float32  # fp16 tokens with fp32 modulation -> fp32, as in the reference
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_layer_norm_modulate_eps_and_its_default(kernel) -> None:
    # Tokens whose variance (1e-6) is of eps' size: a kernel that drops eps or adds another is far off here, and
    # the model calls the op without eps, so the default must be the reference's too.
    x = torch.randn(2, 5, 96, device=DEVICE) * 1e-3
    shift, scale = adaln_chunks(2, 96)
    y = kernel("norm.layer_norm_modulate", x, shift, scale)
    torch.testing.assert_close(y, ops.layer_norm_modulate(x, shift, scale), rtol=1e-5, atol=1e-5)


def heads_view(bsz: int, length: int, heads: int, dim: int) -> torch.Tensor:
    """[B, H, L, D] the way the model gets it: `view(B, L, H, D).transpose(1, 2)` of a [B, L, C] projection."""
    return torch.randn(bsz, length, heads * dim, device=DEVICE).view(bsz, length, heads, dim).transpose(1, 2)


@pytest.mark.parametrize(
    ("rotated", "with_weight"),
    [(7, True), (11, True), (0, True), (7, False)],
    ids=["first-7-of-11", "all-rotated", "no-rope", "no-weight"],
)
def test_rms_norm_rope(kernel, rotated: int, with_weight: bool) -> None:
    x = heads_view(2, 11, 3, 16)
    weight = torch.randn(16, device=DEVICE) if with_weight else None
    cos = torch.randn(rotated, 16, device=DEVICE) if rotated else None
    sin = torch.randn(rotated, 16, device=DEVICE) if rotated else None
    y = kernel("norm.rms_norm_rope", x, weight, 1e-6, cos, sin)
    assert y.shape == x.shape
    torch.testing.assert_close(y, ops.rms_norm_rope(x, weight, 1e-6, cos, sin), rtol=1e-5, atol=1e-5)


def test_rms_norm_rope_eps(kernel) -> None:
    # Heads whose mean square (1e-6) is of eps' size: the kernel must add eps where the reference does.
    x = heads_view(2, 11, 3, 16) * 1e-3
    weight, cos, sin = (torch.randn(*shape, device=DEVICE) for shape in ((16,), (7, 16), (7, 16)))
    y = kernel("norm.rms_norm_rope", x, weight, 1e-6, cos, sin)
    torch.testing.assert_close(y, ops.rms_norm_rope(x, weight, 1e-6, cos, sin), rtol=1e-5, atol=1e-5)


def test_rms_norm_rope_motif_head_dim(kernel) -> None:
    x = heads_view(1, 5, 2, 128)
    weight = torch.rand(128, device=DEVICE) + 0.5
    angles = torch.rand(4, 64, device=DEVICE).repeat_interleave(2, dim=1) * 6.3  # real RoPE: pairs share angles
    y = kernel("norm.rms_norm_rope", x, weight, 1e-6, angles.cos(), angles.sin())
    ref = ops.rms_norm_rope(x, weight, 1e-6, angles.cos(), angles.sin())
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("length", "rotated"), [(37, 30), (32, 20)])
def test_rms_norm_rope_token_blocks_and_a_head_dim_not_a_power_of_2(kernel, length: int, rotated: int) -> None:
    # Several blocks of 16 rows per head: 37 tokens (the last block partial) or 32 (two whole blocks), RoPE ending
    # inside the second block. A head dim of 48 is padded to 64 lanes in the kernel: the padding must stay out of
    # the mean, the tables and the output rows.
    x = heads_view(2, length, 3, 48)
    weight, cos, sin = (torch.randn(*shape, device=DEVICE) for shape in ((48,), (rotated, 48), (rotated, 48)))
    y = kernel("norm.rms_norm_rope", x, weight, 1e-6, cos, sin)
    torch.testing.assert_close(y, ops.rms_norm_rope(x, weight, 1e-6, cos, sin), rtol=1e-5, atol=1e-5)


def test_rms_norm_rope_rounds_before_rotating(kernel) -> None:
    """The reference rounds the normed values to x's dtype before RoPE. In fp16 (Triton's CPU interpreter rounds
    fp16 as a GPU does, but truncates to bf16), token 0's first pair (2 - 2^-10, 2) normalizes to about 1.04447 and
    1.04498, which round to the same fp16 value: rotated with cos = sin = 1, its first element is exactly 0, where
    rotating the unrounded values gives -0.0005."""
    x = torch.tensor([2 - 2**-10, 2.0] + [1.9013671875] * 14, device=DEVICE).view(1, 1, 1, 16).half()
    cos = sin = torch.ones(1, 16, device=DEVICE)
    ref = ops.rms_norm_rope(x, None, 1e-6, cos, sin)
    normed = x.double() * x.double().square().mean().add(1e-6).rsqrt()
    assert ref[0, 0, 0, 0] == 0 and (normed[0, 0, 0, 0] - normed[0, 0, 0, 1]).half() != 0  # the case discriminates
    torch.testing.assert_close(kernel("norm.rms_norm_rope", x, None, 1e-6, cos, sin), ref)


@pytest.mark.parametrize(
    ("shape", "rope_shape", "match"),
    [
        ((1, 2, 4, 15), None, "even D"),
        ((1, 2, 4, 16), (5, 16), "5 rotary positions for only 4"),
        ((1, 2, 4, 16), (3, 8), "must be"),
    ],
)
def test_rms_norm_rope_rejects_bad_shapes(kernel, shape, rope_shape, match) -> None:
    cos = torch.ones(rope_shape) if rope_shape else None
    with pytest.raises(KernelInputError, match=match):
        kernel("norm.rms_norm_rope", torch.randn(shape), None, 1e-6, cos, cos)


def test_layer_norm_modulate_rejects_bad_shapes(kernel) -> None:
    with pytest.raises(KernelInputError, match="shift/scale"):
        kernel("norm.layer_norm_modulate", torch.randn(2, 3, 8), torch.randn(1, 8), torch.randn(1, 8))


@pytest.mark.cuda
def test_bf16_on_cuda(kernel) -> None:
    # Largest errors against float64, as measured with torch stand-ins on a CPU (the CPU interpreter truncates to
    # bf16 instead of rounding, so it doubles the kernels' errors). layer_norm_modulate computes in float32 and
    # rounds once: its error is the correctly rounded result's (0.031 here; torch's bf16 op rounds four times:
    # 0.12), so that is its baseline; a bf16 rstd or x - mean measured 2.1x, bf16 (1 + scale) 3.5x.
    # rms_norm_rope rounds the normed values before RoPE, as torch's op does: the same 0.027, while a dropped
    # weight measured 33x.
    x = torch.randn(2, 300, 12 * 128, device=DEVICE, dtype=torch.bfloat16)
    shift, scale = (t.bfloat16() for t in adaln_chunks(2, 12 * 128))
    y = kernel("norm.layer_norm_modulate", x, shift, scale)
    exact = ops.layer_norm_modulate(*(t.cpu().double() for t in (x, shift, scale)))
    assert_bf16_error_within(y, exact, exact.bfloat16(), factor=2)
    q = x.view(2, 300, 12, 128).transpose(1, 2)
    weight = (1 + 0.1 * torch.randn(128, device=DEVICE)).bfloat16()
    angles = torch.rand(200, 128, device=DEVICE)
    y = kernel("norm.rms_norm_rope", q, weight, 1e-6, angles.cos(), angles.sin())
    q, weight, cos, sin = q.cpu(), weight.cpu(), angles.cos().cpu(), angles.sin().cpu()
    exact = ops.rms_norm_rope(q.double(), weight.double(), 1e-6, cos.double(), sin.double())
    assert_bf16_error_within(y, exact, ops.rms_norm_rope(q, weight, 1e-6, cos, sin), factor=2)
