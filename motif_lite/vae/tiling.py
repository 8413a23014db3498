"""Spatial tiling for the streamed decoder: overlapping latent tiles, blended linearly in the overlaps.

Each tile is decoded as if it were the whole picture (its own causal state, zero padding at its borders and
attention only over its own pixels), so tiled output differs from untiled output near tile borders; the linear
blend hides the seams. Memory per decode step then scales with the tile size instead of the frame size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from motif_lite.errors import ConfigError
from motif_lite.vae.layers import CausalState

Span = tuple[int, int]


@dataclass(frozen=True)
class VAETile:
    """Tile size and overlap in latent units (1 latent unit = 8 pixels for Wan2.1)."""

    size: int = 32
    overlap: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 2:
            raise ConfigError(f"VAETile.size={self.size!r} must be an integer >= 2 (latent units)")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap <= self.size // 2:
            raise ConfigError(f"VAETile.overlap={self.overlap!r} must be an integer in [0, size // 2]")


@dataclass(frozen=True)
class VAEMode:
    """How the VAE decodes (and, for `bands`, encodes) a clip: a memory plan's VAE setup, passed as one value.

    `tile`: overlapping spatial tiles (None: whole frames). `frame_by_frame`: the decoder's upper levels one frame
    at a time (less memory) or the 4 frames of a chunk at once (faster). `bands`: exact bands across the longer
    side, one after another (`bands.py`).
    """

    tile: VAETile | None = None
    frame_by_frame: bool = True
    bands: int = 1

    def __post_init__(self) -> None:
        if self.bands != 1 and self.tile is not None:
            raise ConfigError("choose VAE bands or VAE tiles, not both (tiles already bound the memory more)")


def tile_spans(length: int, tile: VAETile) -> list[Span]:
    """Evenly spaced [start, end) spans of `tile.size` covering `length`, overlapping by at least `tile.overlap`."""
    if length <= tile.size:
        return [(0, length)]
    count = math.ceil((length - tile.size) / (tile.size - tile.overlap)) + 1
    starts = [round(k * (length - tile.size) / (count - 1)) for k in range(count)]
    return [(s, s + tile.size) for s in starts]


def blend_weights(spans: list[Span], index: int, scale: int) -> torch.Tensor:
    """1D weights over tile `index` in pixels: linear ramps where it overlaps its neighbours, 1 elsewhere."""
    start, end = spans[index]
    weights = torch.ones((end - start) * scale)
    if index > 0:
        ramp = _ramp((spans[index - 1][1] - start) * scale)
        weights[: len(ramp)] = torch.minimum(weights[: len(ramp)], ramp)
    if index < len(spans) - 1:
        ramp = _ramp((end - spans[index + 1][0]) * scale).flip(0)
        weights[len(weights) - len(ramp) :] = torch.minimum(weights[len(weights) - len(ramp) :], ramp)
    return weights


def _ramp(length: int) -> torch.Tensor:
    # Strictly positive, so every pixel keeps a non-zero total weight.
    return (torch.arange(max(length, 0)) + 0.5) / max(length, 1)


@dataclass(frozen=True)
class TilePlacement:
    """One tile: its index, latent slices [h0:h1, w0:w1], and its blend weights in pixels [8(h1-h0), 8(w1-w0)]."""

    key: tuple[int, int]
    latent: tuple[slice, slice]
    pixels: tuple[slice, slice]
    weight: torch.Tensor


def tile_count(height: int, width: int, tile: VAETile) -> int:
    """How many tiles cover a latent frame of height x width (without building their blend weights)."""
    return len(tile_spans(height, tile)) * len(tile_spans(width, tile))


def tile_grid(height: int, width: int, tile: VAETile, scale: int) -> list[TilePlacement]:
    """All tiles covering a latent frame of height x width, row by row."""
    spans_h, spans_w = tile_spans(height, tile), tile_spans(width, tile)
    grid = []
    for i, (h0, h1) in enumerate(spans_h):
        for j, (w0, w1) in enumerate(spans_w):
            weight = blend_weights(spans_h, i, scale)[:, None] * blend_weights(spans_w, j, scale)[None, :]
            pixels = (slice(h0 * scale, h1 * scale), slice(w0 * scale, w1 * scale))
            grid.append(TilePlacement((i, j), (slice(h0, h1), slice(w0, w1)), pixels, weight))
    return grid


def blend_into(out: torch.Tensor, place: TilePlacement, pixels: torch.Tensor) -> None:
    """Add one tile's decoded pixels, times its blend weights, into its place (`place.pixels`) in `out` [..., H, W].

    The weights are cast to `out`'s dtype first, so a bf16 decode blends in bf16 as before."""
    out[..., place.pixels[0], place.pixels[1]] += pixels * place.weight.to(out)


def divide_by_weights(out: torch.Tensor, grid: list[TilePlacement]) -> torch.Tensor:
    """Finish a blend: `out` [..., H, W] holds every tile of `grid` added by `blend_into`; divide it, in place, by
    each pixel's total weight (summed in `out`'s dtype and in grid order, as the tiles were added)."""
    weight_sum = out.new_zeros(out.shape[-2:])
    for place in grid:
        weight_sum[place.pixels] += place.weight.to(out)
    return out.div_(weight_sum)


def decode_tiled_step(
    step: Callable[[torch.Tensor, CausalState], torch.Tensor],
    z: torch.Tensor,
    states: dict[tuple[int, int], CausalState],
    tile: VAETile,
    scale: int,
) -> torch.Tensor:
    """Decode one latent frame [B, z, 1, h, w] tile by tile with `step`, blending into [B, 3, n, h*s, w*s].

    `states` keeps one causal state per tile across calls, so each tile streams through time on its own.
    """
    grid = tile_grid(z.shape[3], z.shape[4], tile, scale)
    out = None
    for place in grid:
        pixels = step(z[:, :, :, place.latent[0], place.latent[1]], states.setdefault(place.key, CausalState()))
        if out is None:
            out = pixels.new_zeros(*pixels.shape[:3], z.shape[3] * scale, z.shape[4] * scale)
        blend_into(out, place, pixels)
    return divide_by_weights(out, grid)
