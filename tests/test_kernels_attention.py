"""Block-sparse FlashAttention kernel vs SDPA, and the video block-mask patterns vs brute force."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from attention_inputs import key_padding as padding_of
from attention_inputs import random_qkv
from kernels_interp import DEVICE, KernelCall, assert_bf16_error_within, kernel_runner

from motif_lite.kernels import patterns
from motif_lite.kernels.errors import KernelInputError
from motif_lite.kernels.reference import block_sparse_attention_torch, expand_block_mask

TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


def qkv(bsz: int, heads: int, lq: int, lk: int, dim: int) -> tuple[torch.Tensor, ...]:
    return random_qkv(bsz, heads, lq, lk, dim, DEVICE)


def key_padding(bsz: int, lk: int, valid: list[int]) -> torch.Tensor:
    return padding_of(bsz, lk, valid, DEVICE)


def test_dense_equals_sdpa(kernel) -> None:
    q, k, v = qkv(2, 2, 70, 70, 32)  # 70 is not a multiple of the tile
    out = kernel("attention.attention", q, k, v, None)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)


def test_key_padding_and_cross_lengths(kernel) -> None:
    q, k, v = qkv(2, 2, 40, 23, 32)
    mask = key_padding(2, 23, [23, 9])
    out = kernel("attention.attention", q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)


def test_key_padding_over_several_full_key_tiles(kernel) -> None:
    # The dense kernel runs each row's full 64-key tiles before its first padded key without reading the mask;
    # padding that covers whole tiles (the model's padded text) must be masked in every tile from there on.
    q, k, v = qkv(2, 2, 40, 200, 32)
    mask = key_padding(2, 200, [200, 70])
    out = kernel("attention.attention", q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)


@pytest.mark.parametrize("key_tile", [16, 32])
def test_key_padding_with_narrow_key_tiles(kernel, key_tile: int) -> None:
    # The `mma.sync` GPUs are offered 32- and 16-key tiles (`MMA_SYNC_CONFIGS`): with no block mask, block_size
    # only sets the fixed tiles, so this runs the dense kernel's masked loop with such tiles at Motif's head dim.
    q, k, v = qkv(2, 2, 40, 200, 128)
    mask = key_padding(2, 200, [200, 70])
    out = kernel("attention.block_sparse_attention", q, k, v, mask, None, key_tile)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)


def test_motif_head_dim(kernel) -> None:
    q, k, v = qkv(1, 1, 20, 20, 128)
    out = kernel("attention.attention", q, k, v, key_padding(1, 20, [17]))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding(1, 20, [17])), **TOL)


def test_full_block_mask_equals_dense(kernel) -> None:
    q, k, v = qkv(1, 2, 50, 50, 32)
    full = torch.ones(1, 1, 2, 2, dtype=torch.bool, device=DEVICE)
    sparse = kernel("attention.block_sparse_attention", q, k, v, None, full, 32)
    torch.testing.assert_close(sparse, F.scaled_dot_product_attention(q, k, v), **TOL)


@pytest.mark.parametrize("mask_shape", [(2, 1), (1, 2)], ids=["per-batch", "per-head"])
def test_block_mask_equals_element_mask(kernel, mask_shape: tuple[int, int]) -> None:
    q, k, v = qkv(2, 2, 80, 70, 32)
    gen = torch.Generator().manual_seed(sum(mask_shape) * 7 + mask_shape[0])
    block_mask = torch.rand(*mask_shape, 3, 3, generator=gen) < 0.5
    block_mask[..., 0] = True  # every query tile keeps at least one tile of real keys
    block_mask[0, 0, 1, 2] = False  # and at least one tile is skipped
    block_mask = block_mask.to(DEVICE)
    padding = key_padding(2, 70, [70, 50])
    out = kernel("attention.block_sparse_attention", q, k, v, padding, block_mask, 32)
    elements = expand_block_mask(block_mask, 32, 80, 70) & padding
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=elements), **TOL)


def test_query_rows_with_no_keys_are_zero(kernel) -> None:
    q, k, v = qkv(1, 1, 64, 64, 16)
    block_mask = torch.tensor([[True, True], [False, False]], device=DEVICE)[None, None]
    out = kernel("attention.block_sparse_attention", q, k, v, None, block_mask, 32)
    assert out[:, :, 32:].abs().max() == 0
    torch.testing.assert_close(out[:, :, :32], F.scaled_dot_product_attention(q[:, :, :32], k, v), **TOL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_mask": torch.ones(1, 1, 3, 2, dtype=torch.bool)}, "block mask must be bool"),
        ({"block_mask": torch.ones(1, 1, 2, 2)}, "block mask must be bool"),
        ({"key_mask": torch.ones(1, 1, 1, 7, dtype=torch.bool)}, "key mask must be bool"),
        ({"block_size": 24}, "block_size must be a power of two"),
    ],
)
def test_rejects_bad_masks(kernel, kwargs: dict, match: str) -> None:
    q, k, v = qkv(1, 1, 64, 64, 16)
    with pytest.raises(KernelInputError, match=match):
        kernel("attention.block_sparse_attention", q, k, v, **{"block_size": 32, **kwargs})


def test_torch_reference_equals_element_mask_sdpa() -> None:
    q, k, v = torch.randn(3, 2, 2, 90, 16).unbind(0)
    block_mask = patterns.local_temporal(5, 18, window=1, global_first_frame=False, block_size=16).mask
    padding = key_padding(2, 90, [90, 80]).cpu()
    out = block_sparse_attention_torch(q, k, v, padding, block_mask, 16)
    elements = expand_block_mask(block_mask, 16, 90, 90) & padding
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=elements), **TOL)


def brute_force_tiles(frame_ids: torch.Tensor, window: int, block_size: int) -> torch.Tensor:
    """A tile is needed iff some token pair in it is allowed (rule written out element by element)."""
    n = len(frame_ids)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            fi, fj = int(frame_ids[i]), int(frame_ids[j])
            allowed[i, j] = fi == -1 or fj == -1 or abs(fi - fj) <= window
    tiles = -(-n // block_size)
    return torch.tensor(
        [
            [
                allowed[a * block_size : (a + 1) * block_size, b * block_size : (b + 1) * block_size].any()
                for b in range(tiles)
            ]
            for a in range(tiles)
        ]
    )


@pytest.mark.parametrize(
    ("frames", "per_frame", "window", "first_global", "extra"),
    [(6, 12, 1, True, 5), (6, 12, 0, False, 0), (4, 20, 2, True, 0), (1, 9, 0, True, 3)],
)
def test_local_temporal_matches_brute_force(frames, per_frame, window, first_global, extra) -> None:
    mask = patterns.local_temporal(frames, per_frame, window, first_global, extra, block_size=16)
    ids = torch.arange(frames).repeat_interleave(per_frame)
    if first_global:
        ids[:per_frame] = -1
    ids = torch.cat([ids, torch.full((extra,), -1)])
    assert torch.equal(mask.mask[0, 0], brute_force_tiles(ids, window, 16))


def test_ddt_decoder_pattern_spans_both_copies() -> None:
    frames, per_frame = 6, 16
    mask = patterns.ddt_decoder_local_temporal(frames, per_frame, window=1, global_first_frame=False, block_size=16)
    n = frames * per_frame
    ids = torch.arange(frames).repeat_interleave(per_frame)
    assert torch.equal(mask.mask[0, 0], brute_force_tiles(torch.cat([ids, ids]), 1, 16))
    tiles = mask.mask[0, 0]
    assert tiles[3, n // 16 + 3] and tiles[n // 16 + 3, 3]  # decoder frame 3 sees encoder frame 3 and back
    assert not tiles[0, n // 16 + 5]
    assert 0.3 < mask.density < 0.6  # sparse: band of 3 frames out of 6


def test_patterns_reject_bad_arguments() -> None:
    with pytest.raises(KernelInputError, match="frames >= 1"):
        patterns.local_temporal(0, 10, 1)
    # The kernels' own rule and words (`patterns.block_size_problem`, which `launch.check_block_size` and
    # `SparsityConfig` raise too).
    with pytest.raises(KernelInputError, match="block_size must be a power of two >= 16, got 48"):
        patterns.local_temporal(3, 10, 1, block_size=48)
    with pytest.raises(KernelInputError, match="window >= 0, got -1"):
        patterns.local_temporal(3, 10, -1)


def test_the_smallest_block_size_is_16() -> None:
    # 8 is a power of two, but below the kernels' fixed 16-row tiles, which would straddle two mask blocks.
    assert patterns.block_size_problem(8) == "block_size must be a power of two >= 16, got 8"
    assert patterns.block_size_problem(16) is None
    assert patterns.local_temporal(3, 10, 1, block_size=16).block_size == 16


@pytest.mark.cuda
def test_bf16_sparse_on_cuda(kernel) -> None:
    # Against float64 attention, the kernel's largest bf16 error is torch's own bf16 SDPA's (both round the
    # softmax weights to bf16 for P·V and the output once): 8.3e-4 each with an output std of 0.043. Rounding the
    # scores to bf16 before the softmax measured 2.9x that, a bf16 accumulator 3.3x (torch stand-ins on a CPU).
    # torch's op runs on the CPU: on CUDA SDPA picks its backend by mask and GPU (all-bf16 math measured 5.5x).
    q, k, v = (t.bfloat16() for t in qkv(1, 12, 2 * 4 * 200, 2 * 4 * 200, 128))
    block_mask = patterns.ddt_decoder_local_temporal(4, 200, window=1, block_size=128).mask.to(DEVICE)
    out = kernel("attention.block_sparse_attention", q, k, v, None, block_mask, 128)
    elements = expand_block_mask(block_mask, 128, q.shape[2], k.shape[2]).cpu()
    q, k, v = q.cpu(), k.cpu(), v.cpu()
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=elements)
    torch_bf16 = F.scaled_dot_product_attention(q, k, v, attn_mask=elements)
    assert_bf16_error_within(out, exact, torch_bf16, factor=2)
