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

# VAE decode, per output pixel of one frame, in elements of the VAE dtype:
# - causal caches: every temporal conv keeps its last input frames (2 for a 3-tap one); summed over the decoder's
#   own convs at their resolutions (`decoder_caches`; Wan2.1's, base_dim 96: 1/8: 4240 channels, 1/4: 2496,
#   1/2: 1152, full: 672 -> 2 * (4240/64 + 2496/16 + 1152/4 + 672) = 2364.5, not rounded). With
#   tiles, every tile keeps its own caches (tiling.py), so this term covers the whole frame (times the tiles'
#   overlap) whatever the tile size; with bands (bands.py) only one band's caches exist, each level's term times the
#   largest band's share of that level's rows (halo included). The lowest level's term is mostly conv_in and the mid
#   block (1552 channels in Wan2.1), run on whole frames before the bands and freed; the bands keep the mid block's
#   output of every latent frame instead (384 channels at 1/8 in Wan2.1);
# - working tensors (input, float32 norm band, padded conv input, new cache, output, cuDNN's workspace), measured
#   on an H200 at 1280x736x121 in bf16 (bench/bench_vae_gpu.py, `decode_frames` into CPU memory) as peak - weights
#   - caches: 6.59 GiB -> 1311 when the 4 frames of a latent frame go through the upper levels one at a time
#   (`frame_by_frame`, the default), 10.39 GiB -> 3480 when they go together (the reference's chunking, 5-20 %
#   faster). With tiles, per tile pixel; for a VAE of other widths, times its width over Wan2.1's 96.
VAE_WORK_ELEMS_PER_PIXEL = 1350
VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK = 3500
# Wan2.1 VAE encode of one frame (image-to-video), per input pixel, in elements of the VAE dtype: conv_in and the
# full-resolution residual blocks' tensors (input, normalized copy, zero-padded conv input of 3 frames, causal
# caches, output), counted with the tensor-lifetime tracker on the CPU in bf16 (bench/bench_planner.py).
VAE_ENCODE_ELEMS_PER_PIXEL = 1000


def vae_decode_bytes(sizes: GenerationSizes, mode: VAEMode) -> int:
    """Causal caches over the whole frame (times the tiles' overlap) or one band (`vae_decode_cache_bytes`), plus
    one tile's or band's working tensors: what `WanVAE.decode_frames`, the pipeline's streamed decode, keeps. Not
    an estimate of `WanVAE.decode` or diffusers' tiled decode in tiles: those decode one tile through the whole clip
    at a time and free its caches before the next (a fraction of these bytes, plus the whole video they return)."""
    h, w = sizes.vae_latent_hw
    work = VAE_WORK_ELEMS_PER_PIXEL if mode.frame_by_frame else VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK
    if mode.bands > 1:
        work_pixels = decoder_band_shares(sizes.vae_config, sizes.vae_latent_hw, mode.bands)[-1] * sizes.vae_pixels
    elif mode.tile is not None:
        from motif_lite.vae.tiling import tile_spans

        spans_h, spans_w = tile_spans(h, mode.tile), tile_spans(w, mode.tile)
        work_pixels = (spans_h[0][1] - spans_h[0][0]) * (spans_w[0][1] - spans_w[0][0]) * sizes.vae_spatial**2
    else:
        work_pixels = sizes.vae_pixels
    work_bytes = int(work * sizes.vae_scale * work_pixels * sizes.vae_element_bytes)
    return vae_decode_cache_bytes(sizes, mode) + work_bytes


def vae_decode_cache_bytes(sizes: GenerationSizes, mode: VAEMode) -> int:
    """The causal caches a decode keeps, from the decoder's own layers (`decoder_caches`): over the whole frame
    (times the tiles' overlap, each tile keeping its own), or one band's plus the mid block's output of every latent
    frame."""
    caches = decoder_caches(sizes.vae_config)
    if mode.bands > 1:
        shares = decoder_band_shares(sizes.vae_config, sizes.vae_latent_hw, mode.bands)
        elems = caches.band_elems_per_pixel(shares, sizes.vae_latent_frames) * sizes.vae_pixels
    else:
        coverage = 1.0
        if mode.tile is not None:
            from motif_lite.vae.tiling import tile_spans

            h, w = sizes.vae_latent_hw
            spans_h, spans_w = tile_spans(h, mode.tile), tile_spans(w, mode.tile)
            coverage = sum(b - a for a, b in spans_h) * sum(b - a for a, b in spans_w) / (h * w)
        elems = caches.elems_per_pixel() * sizes.vae_pixels * coverage
    return math.ceil(elems * sizes.vae_element_bytes)  # never under: the caches are what the decode keeps


@dataclass(frozen=True)
class DecoderCaches:
    """What the decoder's causal convs keep between latent frames, read from its layers: input channels times the
    past frames each conv keeps, summed per place, and the pixel share of each place's resolution.

    lower: conv_in and the mid block (whole latent frames); levels: each up level (the head's conv_out in the
    last); level_pixels: each level's pixels per output pixel; mid_channels: the mid block's output channels."""

    lower: int
    levels: tuple[int, ...]
    level_pixels: tuple[float, ...]
    mid_channels: int

    def elems_per_pixel(self) -> float:
        """The whole frame's caches per output pixel, unrounded: rounding 2364.5 down would put the estimate
        under the caches a decode keeps (by half an element per pixel, times the tiles' overlap)."""
        levels = sum(c * p for c, p in zip(self.levels, self.level_pixels, strict=True))
        return self.lower * self.level_pixels[0] + levels

    def band_elems_per_pixel(self, shares: tuple[float, ...], latent_frames: int) -> float:
        """One band's caches per output pixel of the whole frame, each level's times the largest band's share of its
        rows (`shares`), plus the mid block's output of every latent frame, which the bands keep."""
        kept = sum(c * p * share for c, p, share in zip(self.levels, self.level_pixels, shares, strict=True))
        return kept + self.mid_channels * self.level_pixels[0] * latent_frames


@functools.cache
def decoder_caches(vae_config: WanVAEConfig) -> DecoderCaches:
    """The `DecoderCaches` of the decoder `vae_config` builds (on the meta device: no memory)."""
    from motif_lite.vae.layers import CausalConv3d
    from motif_lite.vae.model import Decoder

    with torch.device("meta"):
        decoder = Decoder(vae_config)

    def kept(*modules: nn.Module) -> int:
        layers = (layer for module in modules for layer in module.modules() if isinstance(layer, CausalConv3d))
        return sum(layer.in_channels * layer.past_frames for layer in layers)

    blocks = list(decoder.up_blocks)
    levels = [kept(block) for block in blocks]
    levels[-1] += kept(decoder.conv_out)  # the head runs at the last level's resolution
    # Every upsampler after a level doubles both sides of the frame.
    doublings = [sum(block.upsamplers is not None for block in blocks[i:]) for i in range(len(blocks))]
    return DecoderCaches(
        lower=kept(decoder.conv_in, decoder.mid_block),
        levels=tuple(levels),
        level_pixels=tuple(4.0**-d for d in doublings),
        mid_channels=decoder.conv_in.out_channels,
    )


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
    shortcut: stride 1, no padding, one group) is left out: PyTorch's native kernel takes its input as the columns
    (a view, nothing allocated, as its profiler shows), where any other kernel is unfolded."""
    from motif_lite.vae.model import Decoder

    with torch.device("meta"):
        decoder = Decoder(vae_config)
    parts = [(decoder.conv_in, decoder.mid_block), *((block,) for block in decoder.up_blocks), (decoder.conv_out,)]
    return tuple(
        frozenset(
            _Conv(layer.in_channels, layer.kernel_size)
            for module in modules
            for layer in module.modules()
            if isinstance(layer, nn.Conv3d) and layer.kernel_size != (1, 1, 1)
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
