"""Block masks for video tokens (pure torch).

Video tokens are frame-major (`[F, H/2, W/2]` flattened), so a frame is a contiguous run of tokens. A pattern
gives every token a frame id (-1 = global: attends and is attended by everything); token i may attend token j
when either is global or their frames are at most `window` apart. A (query tile, key tile) pair is computed
when any token pair in it is allowed, so the block mask is the smallest tile-level superset of that rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import KernelInputError

GLOBAL = -1


@dataclass(frozen=True)
class BlockMask:
    """A bool tile mask `[1, 1, ceil(Lq/block_size), ceil(Lk/block_size)]` (True = compute the tile)."""

    mask: torch.Tensor
    block_size: int

    @property
    def density(self) -> float:
        """Fraction of tiles computed (1.0 = dense)."""
        return self.mask.float().mean().item()


def video_frame_ids(
    frames: int, tokens_per_frame: int, global_first_frame: bool = True, extra_global_tokens: int = 0
) -> torch.Tensor:
    """Frame id of each token of `[video (frames x tokens_per_frame); extra tokens]`, GLOBAL where global."""
    if frames < 1 or tokens_per_frame < 1 or extra_global_tokens < 0:
        raise KernelInputError(
            f"patterns: need frames >= 1, tokens_per_frame >= 1, extra_global_tokens >= 0; got {frames}, "
            f"{tokens_per_frame}, {extra_global_tokens}"
        )
    ids = torch.arange(frames).repeat_interleave(tokens_per_frame)
    if global_first_frame:
        ids[ids == 0] = GLOBAL
    return torch.cat([ids, torch.full((extra_global_tokens,), GLOBAL)])


def block_size_problem(block_size: int) -> str | None:
    """Why `block_size` cannot be a block mask's, else None. The one rule for the patterns, `SparsityConfig` and
    the kernels: a power of two >= 16, so that the kernels' fixed tiles divide it and no tile straddles two mask
    blocks."""
    if block_size < 16 or block_size & (block_size - 1):
        return f"block_size must be a power of two >= 16, got {block_size}"
    return None


def block_mask_from_frame_ids(frame_ids: torch.Tensor, window: int, block_size: int = 128) -> BlockMask:
    """Tile mask for self-attention over tokens with these frame ids, without building the L x L mask."""
    if window < 0:
        raise KernelInputError(f"patterns: need window >= 0, got {window}")
    if (problem := block_size_problem(block_size)) is not None:
        raise KernelInputError(f"patterns: {problem}")
    frames = int(frame_ids.max().item()) + 1
    slot = torch.where(frame_ids == GLOBAL, frames, frame_ids)  # global tokens get the extra slot `frames`
    n_blocks = -(-len(frame_ids) // block_size)
    present = torch.zeros(n_blocks, frames + 1)  # [tiles, frame slots]: which frames occur in each tile
    present[torch.arange(len(frame_ids)) // block_size, slot] = 1.0
    ids = torch.arange(frames + 1)
    allowed = (ids[:, None] - ids[None, :]).abs() <= window  # [slots, slots] frame-level rule
    allowed[frames, :] = allowed[:, frames] = True
    tiles = present @ allowed.float() @ present.T > 0  # [tiles, tiles]
    return BlockMask(tiles[None, None], block_size)


def local_temporal(
    frames: int,
    tokens_per_frame: int,
    window: int,
    global_first_frame: bool = True,
    extra_global_tokens: int = 0,
    block_size: int = 128,
) -> BlockMask:
    """Each video token sees the frames within `window` of its own; the first frame (if global) and the
    `extra_global_tokens` after the video (e.g. text) see and are seen by all tokens."""
    ids = video_frame_ids(frames, tokens_per_frame, global_first_frame, extra_global_tokens)
    return block_mask_from_frame_ids(ids, window, block_size)


def ddt_decoder_local_temporal(
    frames: int, tokens_per_frame: int, window: int, global_first_frame: bool = True, block_size: int = 128
) -> BlockMask:
    """`local_temporal` for the DDT decoder's 2N tokens `[decoder N; encoder N]`: both copies share one frame
    layout, and a token sees the nearby frames of both copies."""
    ids = video_frame_ids(frames, tokens_per_frame, global_first_frame)
    return block_mask_from_frame_ids(torch.cat([ids, ids]), window, block_size)
