"""The VAE decode estimate read from the decoder's own layers, checked against what PyTorch and a real decode hold:
the causal caches a decode keeps (measured tensor bytes, for VAEs of other widths and levels than Wan2.1), and
which 3-D convs PyTorch's CPU kernel unfolds into a buffer (measured with its profiler)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from motif_lite.config import TransformerConfig
from motif_lite.runtime.generation_sizes import generation_sizes
from motif_lite.runtime.vae_memory import _Conv, _decoder_convs, vae_decode_cache_bytes
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.layers import CausalState
from motif_lite.vae.model import Decoder, WanVAE
from motif_lite.vae.tiling import VAEMode, VAETile, tile_count

# VAEs unlike Wan2.1 (base_dim 96, dim_mult 1, 2, 4, 4, 2 residual blocks): a first level twice as wide, a decoder
# wider than its encoder, and three levels (4x spatial, 2x temporal) with one residual block.
OTHER_VAES = {
    "wide-head": WanVAEConfig(base_dim=16, dim_mult=(2, 2, 4, 4)),
    "wide-decoder": WanVAEConfig(base_dim=8, decoder_base_dim=24),
    "three-levels": WanVAEConfig(
        base_dim=8,
        dim_mult=(1, 3, 2),
        num_res_blocks=1,
        temperal_downsample=(True, False),
        scale_factor_spatial=4,
        scale_factor_temporal=2,
    ),  # fmt: skip
}
LATENT_FRAMES, LATENT_H, LATENT_W = 3, 4, 6
# Wan2.1's own layout (dim_mult 1, 2, 4, 4, 2 residual blocks, 8x spatial, 4x temporal) at a tiny width.
WAN_LAYOUT = {"wan2.1-layout": WanVAEConfig(base_dim=8)}
# Tiles of the 4 x 6 latent frame: 2 x 3 tiles overlapping by 2 latent units (3 x 3 units, 2.25x the frame), and
# 2 x 3 tiles of 2 x 2 units without overlap (exactly the frame).
TILES = {"3-overlap-1": VAETile(3, 1), "2-overlap-0": VAETile(2, 0)}


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def sizes_of(config: WanVAEConfig):
    s = config.spatial_factor
    frames = config.video_frames(LATENT_FRAMES)
    return generation_sizes(
        LATENT_W * s, LATENT_H * s, frames, TransformerConfig(), 1 << 30, 0, config, torch.float32, False,
        torch.float32,
    )  # fmt: skip


def decoded(config: WanVAEConfig, bands: int) -> tuple[list[CausalState], int]:
    """Decode 3 latent frames for real (float32): the causal states the decoder's up path used (one per band), and
    the bytes of the mid block's outputs."""
    torch.manual_seed(0)
    vae = WanVAE(config).eval().requires_grad_(False)
    states: list[CausalState] = []
    mids: list[torch.Tensor] = []

    def seen(module: nn.Module, args: tuple) -> None:
        if not any(state is args[1] for state in states):
            states.append(args[1])

    vae.decoder.up_blocks[0].register_forward_pre_hook(seen)
    vae.decoder.mid_block.register_forward_hook(lambda module, args, out: mids.append(out))
    z = torch.randn(1, config.z_dim, LATENT_FRAMES, LATENT_H, LATENT_W)
    for _ in vae.decode_frames(z, bands=bands):
        pass
    return states, tensor_bytes(mids)


@pytest.mark.parametrize("config", OTHER_VAES.values(), ids=OTHER_VAES.keys())
def test_the_cache_estimate_is_what_a_whole_frame_decode_keeps(config: WanVAEConfig) -> None:
    # After the last latent frame every causal conv holds its past frames: what the decode keeps between frames.
    (state,), _ = decoded(config, bands=1)
    kept = tensor_bytes(state.frames.values())
    estimate = vae_decode_cache_bytes(sizes_of(config), VAEMode())
    assert kept <= estimate <= kept + 1, (kept, estimate)  # + 1: the estimate's bytes are rounded up


@pytest.mark.parametrize("config", OTHER_VAES.values(), ids=OTHER_VAES.keys())
def test_the_band_cache_estimate_covers_the_largest_bands_caches_and_the_mid_outputs(config: WanVAEConfig) -> None:
    # Each level's caches times the largest band's share of its rows: at least the largest band's, and close.
    states, mids = decoded(config, bands=2)
    assert len(states) == 2
    kept = max(tensor_bytes(state.frames.values()) for state in states) + mids
    estimate = vae_decode_cache_bytes(sizes_of(config), VAEMode(bands=2))
    assert kept <= estimate <= 1.1 * kept, (kept, estimate)


def tiled_peak_cache_bytes(config: WanVAEConfig, tile: VAETile) -> int:
    """Decode 3 latent frames for real (float32) in tiles, the way the pipeline does (`decode_frames` with the
    planner's `VAEMode.tile`): the most bytes the tiles' causal states hold together after any decode step."""
    torch.manual_seed(0)
    vae = WanVAE(config).eval().requires_grad_(False)
    states: list[CausalState] = []

    def seen(module: nn.Module, args: tuple) -> None:
        if not any(state is args[1] for state in states):
            states.append(args[1])

    vae.decoder.up_blocks[0].register_forward_pre_hook(seen)
    z = torch.randn(1, config.z_dim, LATENT_FRAMES, LATENT_H, LATENT_W)
    peak = 0
    for _ in vae.decode_frames(z, tile=tile):
        peak = max(peak, sum(tensor_bytes(state.frames.values()) for state in states))
    assert len(states) == tile_count(LATENT_H, LATENT_W, tile)
    return peak


@pytest.mark.parametrize("tile", TILES.values(), ids=TILES.keys())
@pytest.mark.parametrize("config", {**OTHER_VAES, **WAN_LAYOUT}.values(), ids={**OTHER_VAES, **WAN_LAYOUT}.keys())
def test_the_tile_cache_estimate_covers_every_tiles_caches(config: WanVAEConfig, tile: VAETile) -> None:
    # Every tile keeps its own causal state through the clip, so the caches of all tiles are alive together.
    kept = tiled_peak_cache_bytes(config, tile)
    estimate = vae_decode_cache_bytes(sizes_of(config), VAEMode(tile))
    assert kept <= estimate <= 1.15 * kept, (kept, estimate)


def native_conv_extra_bytes(conv: nn.Conv3d) -> tuple[int, int]:
    """The bytes PyTorch's CPU conv3d allocates beyond its output for `conv` on a small input (its native kernel,
    Slow3d, single-threaded), measured with its profiler, and the im2col buffer C_in x taps x output elements."""
    x = torch.randn(1, conv.in_channels, conv.kernel_size[0] + 1, 6, 5)
    args = (conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, False, (0, 0, 0), conv.groups)
    assert torch._C._select_conv_backend(x, *args, None) == torch._C._ConvBackend.Slow3d
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    finally:
        torch.set_num_threads(threads)
    allocated = sum(e.self_cpu_memory_usage for e in prof.key_averages() if e.self_cpu_memory_usage > 0)
    unfolded = conv.in_channels * math.prod(conv.kernel_size) * out[0, 0].numel() * out.element_size()
    return allocated - tensor_bytes([out]), unfolded


def test_the_cpu_workspace_counts_exactly_the_convs_torch_unfolds() -> None:
    # PyTorch's native conv3d takes a 1x1x1 kernel's input as its columns (a view: nothing allocated) and unfolds
    # any other kernel into C_in x taps elements per output pixel. The decoder has all three kinds: 3x3x3 convs,
    # 3x1x1 temporal upsamplers and 1x1x1 residual shortcuts.
    config = OTHER_VAES["wide-head"]
    counted = frozenset().union(*_decoder_convs(config))
    torch.manual_seed(0)
    kernels = set()
    for conv in (m for m in Decoder(config).modules() if isinstance(m, nn.Conv3d)):
        extra, unfolded = native_conv_extra_bytes(conv)
        assert extra in (0, unfolded), (conv, extra, unfolded)
        assert (_Conv(conv.in_channels, conv.kernel_size) in counted) == (extra > 0), (conv, extra)
        kernels.add(conv.kernel_size)
    assert kernels == {(3, 3, 3), (3, 1, 1), (1, 1, 1)}


def test_the_band_estimate_grows_by_the_mid_outputs_a_longer_decode_keeps() -> None:
    # The bands keep the mid block's output of every latent frame: 12 latent frames keep 9 more than 3, which the
    # estimate must add in full (the band test's 10 % slack over 3 frames hid a mid term of one frame).
    config = OTHER_VAES["three-levels"]
    mids, estimates = [], []
    for latent_frames in (3, 12):
        torch.manual_seed(0)
        vae = WanVAE(config).eval().requires_grad_(False)
        outputs: list[torch.Tensor] = []
        vae.decoder.mid_block.register_forward_hook(lambda module, args, out, kept=outputs: kept.append(out))
        for _ in vae.decode_frames(torch.randn(1, config.z_dim, latent_frames, LATENT_H, LATENT_W), bands=2):
            pass
        mids.append(tensor_bytes(outputs))
        s = config.spatial_factor
        sizes = generation_sizes(
            LATENT_W * s, LATENT_H * s, config.video_frames(latent_frames), TransformerConfig(), 1 << 30, 0, config,
            torch.float32, False, torch.float32,
        )  # fmt: skip
        estimates.append(vae_decode_cache_bytes(sizes, VAEMode(bands=2)))
    assert mids[1] > mids[0] > 0
    assert abs((estimates[1] - estimates[0]) - (mids[1] - mids[0])) <= 1, (estimates, mids)  # each rounded up
