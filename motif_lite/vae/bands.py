"""Exact bands for the decoder's upper path: the same pixels as a whole-frame decode, one band's memory.

Above the mid block (whose attention sees whole frames) the Wan2.1 decoder has only local layers: 3x3 convs
(zero-padded), nearest 2x upsampling and per-pixel ops. An output row therefore depends on a fixed number of
rows at each level below it, so a band of output rows can be decoded from a band of every level, widened by
that many halo rows. Halo rows next to a cut see the cut's zero padding instead of their neighbours and go
wrong, one row further per conv; the halo is just wide enough that the wrong rows never reach the band.

Bands are decoded one after another through all frames, each with its own causal caches, so only one band's
caches (the largest memory term at 720p) are alive at a time. The halo is extra work, a smaller share of the
longer side: "rows" below are columns (`dim=-1`) when the frame is wider than tall. Spans are `[start, end)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from motif_lite.errors import ConfigError

Span = tuple[int, int]


@dataclass(frozen=True)
class LevelShape:
    """What one up level does to rows: `convs` 3x3 convs, then (if `upsample`) nearest 2x and one 3x3 conv."""

    convs: int
    upsample: bool


@dataclass(frozen=True)
class Band:
    """One output band and the rows each level computes for it, at that level's resolution."""

    level_rows: tuple[Span, ...]  # input rows of every up level
    head_rows: Span  # input rows of the output head (norm, SiLU, conv_out) at full resolution
    out_rows: Span  # the output pixel rows this band owns
    dim: int = -2  # the tensor dim of the rows: -2 (rows) or -1 (columns)


def _check_band_count(count: int, latent_height: int) -> None:
    """Bands split the latent rows: at least one, at most one per latent row."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"VAE bands={count!r} must be an integer >= 1")
    if count > latent_height:
        raise ConfigError(f"VAE bands={count} is more than the {latent_height} latents across the frame")


def plan_bands(levels: list[LevelShape], head_convs: int, latent_height: int, count: int, dim: int = -2) -> list[Band]:
    """Split the output into `count` bands on latent-row boundaries and find each band's rows at every level."""
    _check_band_count(count, latent_height)
    scale = 2 ** sum(level.upsample for level in levels)
    cuts = [round(k * latent_height / count) * scale for k in range(count + 1)]
    height = latent_height * scale
    return [_band(levels, head_convs, height, (a, b), dim) for a, b in zip(cuts, cuts[1:], strict=False)]


def _band(levels: list[LevelShape], head_convs: int, height: int, out_rows: Span, dim: int) -> Band:
    # Walk down from the output: every 3x3 conv needs one more row on each side (not beyond the frame, where
    # the zero padding is the true input), nearest 2x upsampling halves the row numbers.
    head_rows = _widen(out_rows, head_convs, height)
    need, level_rows = head_rows, []
    for level in reversed(levels):
        if level.upsample:
            need = _widen(need, 1, height)
            height //= 2
            need = (need[0] // 2, (need[1] - 1) // 2 + 1)
        need = _widen(need, level.convs, height)
        level_rows.append(need)
    return Band(tuple(reversed(level_rows)), head_rows, out_rows, dim)


def largest_band_shares(levels: list[LevelShape], latent_height: int, bands: list[Band]) -> tuple[float, ...]:
    """The largest band's share of the rows of every up level, halo included: what one band's caches cost."""
    heights, rows = [], latent_height
    for level in levels:
        heights.append(rows)
        rows *= 2 if level.upsample else 1
    return tuple(max(b.level_rows[i][1] - b.level_rows[i][0] for b in bands) / n for i, n in enumerate(heights))


def _widen(rows: Span, by: int, height: int) -> Span:
    return max(0, rows[0] - by), min(height, rows[1] + by)


def crop_rows(x: torch.Tensor, have: Span, want: Span, dim: int = -2) -> torch.Tensor:
    """Rows `want` (along `dim`) of a tensor whose rows there are the frame's rows `have`."""
    if not have[0] <= want[0] <= want[1] <= have[1]:
        raise ValueError(f"rows {want} are not inside {have}")
    return x.narrow(dim, want[0] - have[0], want[1] - want[0])


# -- the encoder: bands of latent rows, each from a band of pixel rows --
#
# The encoder's down path (conv_in, residual blocks, stride-2 downsamplers) is local too, up to the mid block,
# which runs on whole latent frames after the bands. Each band runs the down path on a crop of the input rows and
# keeps the latent rows it owns; the crop reaches far enough past the band that the rows spoiled by the crop's
# edge (its zero padding) never reach them. Crops start and end on multiples of the downsampling factor, so every
# stride-2 conv sees the same even/odd row grid as on the whole frame.


@dataclass(frozen=True)
class DownLevel:
    """What one down level does to rows: `convs` 3x3 convs, then (if `downsample`) a stride-2 3x3 conv whose
    input is zero-padded by one row at the bottom."""

    convs: int
    downsample: bool


@dataclass(frozen=True)
class EncoderBand:
    """The input rows one band encodes from and the latent rows it owns (latent = input / factor)."""

    in_rows: Span
    out_rows: Span
    dim: int = -2


def spoiled_rows(levels: list[DownLevel]) -> tuple[int, int]:
    """How many latent rows next to a crop's top and bottom edge come out wrong, from the level shapes.

    Each 3x3 conv spoils one more row; a stride-2 conv halves the count: output row r reads input rows 2r..2r+2,
    so w spoiled rows at the top spoil ceil(w / 2), and at the bottom (where the zero pad row stands in for a
    real one) w // 2 + 1.
    """
    top = bottom = 0
    for level in levels:
        top, bottom = top + level.convs, bottom + level.convs
        if level.downsample:
            top, bottom = (top + 1) // 2, bottom // 2 + 1
    return top, bottom


def plan_encoder_bands(
    levels: list[DownLevel], latent_height: int, count: int, dim: int = -2, reach: tuple[int, int] | None = None
) -> list[EncoderBand]:
    """Split the latent rows into `count` bands and find the input rows each needs. `reach` overrides the spoiled
    rows (tests use it to show the margin is needed)."""
    _check_band_count(count, latent_height)
    top, bottom = spoiled_rows(levels) if reach is None else reach
    factor = 2 ** sum(level.downsample for level in levels)
    cuts = [round(k * latent_height / count) for k in range(count + 1)]
    bands = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        start = 0 if a == 0 else max(0, a - top)
        end = latent_height if b == latent_height else min(latent_height, b + bottom)
        bands.append(EncoderBand((start * factor, end * factor), (a, b), dim))
    return bands
