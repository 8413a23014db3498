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


def plan_bands(levels: list[LevelShape], head_convs: int, latent_height: int, count: int, dim: int = -2) -> list[Band]:
    """Split the output into `count` bands on latent-row boundaries and find each band's rows at every level."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"VAE bands={count!r} must be an integer >= 1")
    if count > latent_height:
        raise ConfigError(f"VAE bands={count} is more than the {latent_height} latents across the frame")
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
