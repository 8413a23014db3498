"""The memory planner: specific decisions, monotonicity, honest errors, and apply_plan on a tiny model."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from test_streaming import TINY, forward, inputs, tiny_model

from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.runtime.chunking import ChunkedFeedForward
from motif_lite.runtime.planner import (
    GiB,
    apply_plan,
    default_budget,
    plan_memory,
    transformer_activation_bytes,
    video_tokens,
)
from motif_lite.runtime.streaming import TextEncoderPlacement
from motif_lite.vae.config import WanVAEConfig

FULL = TransformerConfig()
VAE = WanVAEConfig()
Q4_K_M = int(1.13e9)  # Motif-Video 2B transformer as Q4_K_M GGUF (~1.1 GB)
BF16 = 2 * 2_037_809_600
T5GEMMA2 = int(8.6e9)  # the text encoder in bf16


def plan(width, height, frames, budget_gib, weights=Q4_K_M, cfg_batch=1, vae_dtype=torch.bfloat16, fused=False):
    budget = None if budget_gib is None else int(budget_gib * GiB)
    return plan_memory(
        width, height, frames, FULL, weights, T5GEMMA2, VAE, budget, cfg_batch, vae_dtype=vae_dtype, fused_norms=fused
    )


def test_token_count_matches_the_field_estimate():
    assert video_tokens(1280, 736, 121, FULL, VAE) == 31 * 46 * 80 == 114_080
    with pytest.raises(ConfigError, match="multiples of 16"):
        video_tokens(1280, 730, 121, FULL, VAE)
    with pytest.raises(ConfigError, match="1 \\+ 4k"):
        video_tokens(1280, 736, 120, FULL, VAE)


def test_decoder_activation_formula():
    # At 720p the 8 DDT decoder blocks (2N tokens, 16 D live per token for D=1536, F=4D) set the peak.
    n, d = 114_080, 1536
    assert transformer_activation_bytes(n, FULL, 1, None) == 2 * n * 16 * d * 2
    assert transformer_activation_bytes(n, FULL, 2, None) == 2 * transformer_activation_bytes(n, FULL, 1, None)


def test_80_gb_keeps_everything_resident():
    p = plan(1280, 736, 121, 80, weights=BF16, cfg_batch=2, vae_dtype=torch.float32)
    assert p.rank == 0 and p.resident_blocks is None and p.text_placement is TextEncoderPlacement.DEVICE
    assert p.ff_chunk_tokens is None and p.vae_tile is None and p.peak_bytes <= 80 * GiB
    assert not p.vae_frame_by_frame  # the faster decode (4 frames at once) when memory allows


def test_no_budget_means_all_resident():
    assert plan(1280, 736, 121, None).rank == 0
    assert default_budget("cpu") is None


def test_480p_streams_the_text_encoder_first_then_transformer_blocks():
    p = plan(832, 480, 121, 8)  # the 8.6 GB text encoder is what does not fit; the transformer stays whole
    assert p.text_placement is TextEncoderPlacement.STREAMED and p.resident_blocks is None
    assert p.peak_bytes <= 8 * GiB
    p = plan(832, 480, 121, 6)
    assert p.text_placement is TextEncoderPlacement.STREAMED
    assert p.resident_blocks is not None and p.resident_blocks < 36
    assert p.peak_bytes <= 6 * GiB


def test_8_gb_at_720p_121_frames_fits_with_the_fused_norms():
    # The target: everything streamed, FF chunked, the DDT decoder's attention phase at ~7 D per token
    # over 2N = 228,160 tokens once the fused QK-norm + RoPE kernel drops RoPE's float32 temporaries.
    p = plan(1280, 736, 121, 8, fused=True)
    assert p.resident_blocks == 0 and p.ff_chunk_tokens and p.text_placement is TextEncoderPlacement.STREAMED
    assert p.vae_frame_by_frame and p.vae_tile is None
    assert p.peak_bytes <= 8 * GiB
    # The text encoder holds no device memory after encoding: later stages count only the transformer and VAE.
    text, denoise, decode = p.stages
    assert denoise.weight_bytes < text.weight_bytes and decode.weight_bytes < text.weight_bytes


def test_8_gb_at_720p_121_frames_is_refused_with_torch_ops():
    # With the torch ops RoPE's float32 temporaries take the attention phase to ~12 D per token (~8 GiB of
    # activations at 2N tokens, see docs/memory.md): 8 GB is out of reach whatever is streamed.
    with pytest.raises(MotifLiteError, match=r"needs at least (\d+\.\d\d) GiB") as err:
        plan(1280, 736, 121, 8)
    minimum = float(re.search(r"needs at least (\d+\.\d\d) GiB", str(err.value)).group(1))
    assert 8 < minimum < 12
    assert "budget is 8.00 GiB" in str(err.value) and "denoise" in str(err.value)
    assert "everything streamed, text encoder streamed)" in str(err.value)  # in words, not "on streamed"


def test_more_budget_never_gives_a_slower_plan():
    for size in [(1280, 736, 121), (832, 480, 121), (832, 480, 49)]:
        ranks = []
        for tenth in range(40, 400, 5):  # 4 GiB .. 40 GiB
            try:
                p = plan(*size, tenth / 10)
            except MotifLiteError:
                assert not ranks, "a smaller budget fitted but a larger one did not"
                continue
            assert p.peak_bytes <= tenth / 10 * GiB
            ranks.append(p.rank)
        assert ranks and ranks == sorted(ranks, reverse=True) and ranks[-1] == 0


def test_bigger_videos_need_more_memory():
    small, large = plan(832, 480, 49, None), plan(832, 480, 121, None)
    assert all(a.peak_bytes <= b.peak_bytes for a, b in zip(small.stages, large.stages, strict=True))
    assert plan(1280, 736, 121, None).peak_bytes > large.peak_bytes


def test_float32_vae_doubles_decode_memory():
    bf16 = plan(832, 480, 49, None).stages[2].activation_bytes
    fp32 = plan(832, 480, 49, None, vae_dtype=torch.float32).stages[2].activation_bytes
    assert fp32 == pytest.approx(2 * bf16, rel=1e-6)


def test_describe_lists_every_stage():
    text = plan(832, 480, 121, 8).describe()
    for word in ("text", "denoise", "decode", "transformer blocks:", "ff:", "vae", "budget 8.00 GiB", "N = 48,360"):
        assert word in text


def test_apply_plan_on_a_tiny_model_equals_plain():
    base = plan_memory(64, 48, 5, TINY, 10_000_000, 0, VAE, None, 1, device="cpu")
    chosen = dataclasses.replace(base, resident_blocks=2, ff_chunk_tokens=4, text_placement=TextEncoderPlacement.CPU)
    model = tiny_model()
    x = inputs()
    expected = forward(model, x)
    handle = apply_plan(model, None, chosen)
    assert isinstance(model.transformer_blocks[0].ff, ChunkedFeedForward)
    out = forward(model, x)
    assert (out - expected).abs().max() <= 1e-6 * expected.abs().max()
    handle.remove()
    assert not isinstance(model.transformer_blocks[0].ff, ChunkedFeedForward)
    assert torch.equal(forward(model, x), expected)


def test_vae_decodes_one_frame_at_a_time_before_anything_is_streamed():
    # A single 720p frame: tiny denoise, so the VAE's decode sets the peak. Between "all resident, 4 frames at
    # once" and streaming the text encoder comes the frame-by-frame decode.
    fast = plan(1280, 736, 1, None)
    assert not fast.vae_frame_by_frame and fast.peak_bytes == fast.stages[2].peak_bytes
    p = plan(1280, 736, 1, (fast.peak_bytes - 1) / GiB)
    assert p.rank == 1 and p.vae_frame_by_frame
    assert p.text_placement is TextEncoderPlacement.DEVICE and p.resident_blocks is None
    assert p.stages[2].peak_bytes < fast.stages[2].peak_bytes


def test_vae_bands_come_before_streaming():
    # Still one 720p frame, the text encoder streamed: below the frame-by-frame decode's peak, exact bands fit
    # before any block is streamed, each band count a step down in memory.
    previous = plan(1280, 736, 1, 9)
    assert (
        previous.vae_bands == 1 and previous.vae_frame_by_frame and previous.peak_bytes == previous.stages[2].peak_bytes
    )
    for bands in (2, 3, 4):
        p = plan(1280, 736, 1, (previous.stages[2].peak_bytes - 1) / GiB)
        assert p.vae_bands == bands and p.vae_frame_by_frame and p.vae_tile is None
        assert p.text_placement is TextEncoderPlacement.STREAMED and p.resident_blocks is None
        assert p.stages[2].peak_bytes < previous.stages[2].peak_bytes and p.rank == previous.rank + 1
        assert f"{bands} exact bands" in p.describe()
        previous = p


def test_vae_band_estimate_follows_the_decoder_plan():
    # Caches scale with the largest band's share of each level; the halo makes 2 bands more than half.
    from motif_lite.runtime.planner import _band_shares

    shares = _band_shares(VAE, (92, 160), 2)
    assert len(shares) == 4 and all(0.5 < s < 0.65 for s in shares)
    assert shares[-1] < shares[0]  # the halo is a larger share of the coarse levels
    assert _band_shares(VAE, (92, 160), 4)[-1] < 0.3
