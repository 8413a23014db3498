"""VAE memory: the device bytes of the Wan2.1 VAE's activations while it decodes the video (causal caches and
working tensors, whole frames, tiles or exact bands) and while it encodes image-to-video's first frame, for the
memory planner (runtime/planner.py) to add to the weights.

Every constant is explained where it is defined; docs/memory.md ("The planner's formulas": VAE decode, VAE encode)
derives the formulas, and docs/vae.md describes the bands and tiles they follow.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from motif_lite.runtime.generation_sizes import GenerationSizes
from motif_lite.vae.bands import Band
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.tiling import VAEMode

# Wan2.1 VAE decode (base_dim 96), per output pixel of one frame, in elements of the VAE dtype:
# - causal caches: every 3-tap temporal conv keeps its last 2 input frames; summed over the decoder's convs at their
#   resolutions (1/8: 4240 channels, 1/4: 2496, 1/2: 1152, full: 672) -> 2 * (4240/64 + 2496/16 + 1152/4 + 672) =
#   2364.5, rounded to 2364 (halves to even). With tiles, every tile keeps its own caches (tiling.py), so this term
#   covers the whole frame (times the tiles' overlap) whatever the tile size; with bands (bands.py) only one band's
#   caches exist, each level's term times the largest band's share of that level's rows (halo included). The 1/8
#   term is mostly the up path's first level (conv_in and the mid block, 1552 channels, run on whole frames before
#   the bands and are freed); the bands keep the mid block's output of every latent frame instead (384 channels at
#   1/8);
# - working tensors (input, float32 norm band, padded conv input, new cache, output, cuDNN's workspace), measured
#   on an H200 at 1280x736x121 in bf16 (bench/bench_vae_gpu.py, `decode_frames` into CPU memory) as peak - weights
#   - caches: 6.59 GiB -> 1311 when the 4 frames of a latent frame go through the upper levels one at a time
#   (`frame_by_frame`, the default), 10.39 GiB -> 3480 when they go together (the reference's chunking, 5-20 %
#   faster). With tiles, per tile pixel.
VAE_CACHE_CHANNELS = (4240, 2496, 1152, 672)  # at 1/8, 1/4, 1/2 and full resolution
VAE_CACHE_ELEMS_PER_PIXEL = round(2 * sum(c / 4 ** (3 - i) for i, c in enumerate(VAE_CACHE_CHANNELS)))  # 2364
VAE_LOWER_CACHE_CHANNELS = 1552  # conv_in (16) and the mid block (4 x 384): whole frames, before the bands
VAE_MID_CHANNELS = 384
VAE_WORK_ELEMS_PER_PIXEL = 1350
VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK = 3500
# Wan2.1 VAE encode of one frame (image-to-video), per input pixel, in elements of the VAE dtype: conv_in and the
# full-resolution residual blocks' tensors (input, normalized copy, zero-padded conv input of 3 frames, causal
# caches, output), counted with the tensor-lifetime tracker on the CPU in bf16 (bench/bench_planner.py).
VAE_ENCODE_ELEMS_PER_PIXEL = 1000


def vae_decode_bytes(sizes: GenerationSizes, mode: VAEMode) -> int:
    """Causal caches over the whole frame (times the tiles' overlap) or one band, plus one tile's or band's
    working tensors."""
    tile, bands = mode.tile, mode.bands
    h, w = sizes.vae_latent_hw
    coverage, tile_pixels = 1.0, sizes.vae_pixels
    if tile is not None:
        from motif_lite.vae.tiling import tile_spans

        spans_h, spans_w = tile_spans(h, tile), tile_spans(w, tile)
        coverage = sum(b - a for a, b in spans_h) * sum(b - a for a, b in spans_w) / (h * w)
        tile_pixels = (spans_h[0][1] - spans_h[0][0]) * (spans_w[0][1] - spans_w[0][0]) * sizes.vae_spatial**2
    work = VAE_WORK_ELEMS_PER_PIXEL if mode.frame_by_frame else VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK
    if bands > 1:
        shares = decoder_band_shares(sizes.vae_config, sizes.vae_latent_hw, bands)
        channels = (VAE_CACHE_CHANNELS[0] - VAE_LOWER_CACHE_CHANNELS, *VAE_CACHE_CHANNELS[1:])
        caches = 2 * sum(c / 4 ** (3 - i) * share for i, (c, share) in enumerate(zip(channels, shares, strict=True)))
        mids = VAE_MID_CHANNELS / 64 * sizes.vae_latent_frames
        elems = (caches + mids + work * shares[-1]) * sizes.vae_pixels
    else:
        elems = VAE_CACHE_ELEMS_PER_PIXEL * sizes.vae_pixels * coverage + work * tile_pixels
    return int(elems * sizes.vae_scale * sizes.vae_element_bytes)


# On the CPU, PyTorch (2.13) runs a float32 3-D convolution through oneDNN unless its input's batch x channels x
# frames x rows is at most 20,480 (aten's `use_mkldnn`: "for some case, native is faster") or its kernel is 1x1
# across (a temporal upsampler's conv, when single-threaded); then its native kernel (Slow3d) unfolds the input
# into C_in x taps elements per output pixel and frame (im2col), made inside the op: no tensor of ours, and not in
# the working term measured on CUDA. With a band's rows or a small frame the full-resolution head's conv (96
# channels in Wan2.1) falls under the threshold, and its buffer is the largest thing the decode holds besides the
# caches (82 MiB at 128x128 in 2 bands, float32). The same rule is applied to every dtype (bfloat16 takes oneDNN on
# an AVX-512 CPU whatever the size: an over-count of one buffer there). The convs' input channels and kernels are
# the decoder's own (`_decoder_convs`), so a VAE of other widths is counted with its layers.
SLOW_CONV3D_MAX_INPUT = 20480


def vae_decode_cpu_workspace_bytes(sizes: GenerationSizes, mode: VAEMode) -> int:
    """The largest im2col buffer of PyTorch's native 3-D convolution (Slow3d) in one decode on the CPU, from the
    decoder's own layers and band plan: one conv runs at a time, so the largest counts, on top of
    `vae_decode_bytes`. CUDA's convolutions (cuDNN) have their workspace in the measured working term instead."""
    h, w = sizes.vae_latent_hw
    if mode.tile is not None:
        from motif_lite.vae.tiling import tile_spans

        h, w = (spans[0][1] - spans[0][0] for spans in (tile_spans(h, mode.tile), tile_spans(w, mode.tile)))
    chunk = 1 if mode.frame_by_frame else sizes.vae_config.temporal_factor
    # Output frames at the up levels and the head: the first latent frame makes one frame, under the threshold
    # where a chunk's frames are over it, so both count.
    frames = (1, min(2, chunk), chunk, chunk, chunk)
    largest = 0

    def count(layer: _Conv, chunk_frames: int, rows: int, side: int, height: int) -> None:
        nonlocal largest
        for out_frames in {1, chunk_frames}:
            if layer.one_by_one_across or layer.padded_input(out_frames, height) <= SLOW_CONV3D_MAX_INPUT:
                largest = max(largest, layer.channels * layer.taps * out_frames * rows * side)

    lower, *upper = _decoder_convs(sizes.vae_config)
    for layer in lower:  # conv_in and the mid block: whole latent frames
        count(layer, 1, h, w, h)
    for band in decoder_bands(sizes.vae_config, (h, w), mode.bands):
        for level, (a, b) in enumerate((*band.level_rows, band.head_rows)):
            scale = 2 ** min(level, len(band.level_rows) - 1)  # the head runs at the last level's resolution
            full_h, full_w = h * scale, w * scale
            rows, side = b - a, (full_w if band.dim == -2 else full_h)
            for layer in upper[level]:  # the rows a conv's input has: the band's, or all when it splits columns
                count(layer, frames[level], rows, side, rows if band.dim == -2 else full_h)
    return largest * sizes.vae_element_bytes


@dataclass(frozen=True)
class _Conv:
    """A decoder conv that unfolds its input on the CPU: its input channels and kernel (frames, rows, columns)."""

    channels: int
    kernel: tuple[int, int, int]

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)

    def padded_input(self, out_frames: int, height: int) -> int:
        """Channels x frames x rows of its zero-padded input (batch 1), what aten's threshold counts, for
        `out_frames` output frames over `height` rows."""
        return self.channels * (out_frames + self.kernel[0] - 1) * (height + self.kernel[1] - 1)

    @property
    def one_by_one_across(self) -> bool:
        """A temporal upsampler's 3x1x1 kernel, which PyTorch runs natively whenever single-threaded."""
        return self.kernel[1:] == (1, 1)


@functools.cache
def _decoder_convs(vae_config: WanVAEConfig) -> tuple[frozenset[_Conv], ...]:
    """The decoder's 3-D convs that unfold their input, by where they run: conv_in and the mid block (whole latent
    frames), each up level (its temporal upsampler included), and the head's conv_out. A 1x1x1 conv (a residual
    shortcut) is a plain matrix product: no buffer."""
    from motif_lite.vae.model import Decoder

    with torch.device("meta"):
        decoder = Decoder(vae_config)
    parts = [(decoder.conv_in, decoder.mid_block), *((block,) for block in decoder.up_blocks), (decoder.conv_out,)]
    return tuple(
        frozenset(
            _Conv(layer.in_channels, layer.kernel_size)
            for module in modules
            for layer in module.modules()
            if isinstance(layer, nn.Conv3d) and math.prod(layer.kernel_size) > 1
        )
        for modules in parts
    )


def vae_encode_bytes(sizes: GenerationSizes, bands: int = 1) -> int:
    """Image-to-video's first frame through the VAE encoder: its full-resolution working set times the largest
    band's share of the input rows (the lower levels are smaller and come after)."""
    share = _encoder_band_share(sizes.vae_config, sizes.vae_latent_hw, bands)
    scale = sizes.vae_config.base_dim / 96
    return int(VAE_ENCODE_ELEMS_PER_PIXEL * sizes.vae_pixels * share * scale * sizes.vae_element_bytes)


@functools.cache
def _encoder_band_share(vae_config: WanVAEConfig, latent_hw: tuple[int, int], bands: int) -> float:
    """The largest encoder band's share of the input rows, from the encoder's own band plan."""
    from motif_lite.vae.model import Encoder

    with torch.device("meta"):
        return Encoder(vae_config).band_share(latent_hw, bands)


@functools.cache
def decoder_bands(vae_config: WanVAEConfig, latent_hw: tuple[int, int], bands: int) -> tuple[Band, ...]:
    """The decoder's own band plan (one band: the whole frame)."""
    from motif_lite.vae.model import Decoder

    with torch.device("meta"):
        return tuple(Decoder(vae_config).plan_bands(latent_hw, bands))


@functools.cache
def decoder_band_shares(vae_config: WanVAEConfig, latent_hw: tuple[int, int], bands: int) -> tuple[float, ...]:
    """The largest band's share of the rows of each up level (halo included), from the decoder's own plan."""
    from motif_lite.vae.model import Decoder

    with torch.device("meta"):
        return Decoder(vae_config).band_shares(latent_hw, bands)
