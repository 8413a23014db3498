"""Key masks for the attention kernels that take none, or take them in another form than SDPA's.

The model's masks only ever hide keys at the end of the sequence (padded text), so a kernel that takes no mask runs
each batch row over that row's valid keys (`attend_by_rows`). What a backend computes from a mask (its valid key
lengths, its bool form) is kept per mask and run (`PerMask`), not computed again at every attention call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

from motif_lite.errors import ConfigError
from motif_lite.model.kept import LastFewByTensor
from motif_lite.model.ops import AttentionFn

T = TypeVar("T")


def valid_key_lengths(mask: torch.Tensor) -> list[int]:
    """Valid keys per batch row of a bool key mask [B, 1, 1, Lk] (True = attend) whose False entries are all at
    the end of each row (trailing padding); raises ConfigError for any other mask. One host sync."""
    rows = mask.reshape(mask.shape[0], -1).cpu()
    lengths = rows.sum(-1).tolist()
    for row, length in zip(rows, lengths, strict=True):
        if not bool(row[:length].all()):
            raise ConfigError("attention mask is not trailing key padding; use --attention-backend sdpa")
    return lengths


class PerMask(Generic[T]):
    """Something computed from a key mask, kept for the last few masks seen: a run passes the same mask tensors to
    every forward (the joint attention's and the text cross-attention's, which one backend may serve in turn), so
    it is computed once per mask and run instead of once per attention call. A mask changed in place since (its
    `_version`) is computed again. `clear` at the end of a run (the backend's `end_run`) lets the masks go: kept,
    they would hold the caller's device tensors, and the bool forms built from them, until the next run."""

    KEPT = 4  # masks remembered: the joint and the text one of a batch-2 and of a batch-1 forward

    def __init__(self) -> None:
        self.kept: LastFewByTensor[T] = LastFewByTensor(self.KEPT)

    def compute(self, mask: torch.Tensor) -> T:
        raise NotImplementedError

    def __call__(self, mask: torch.Tensor) -> T:
        return self.kept.get(mask, lambda: self.compute(mask))

    def clear(self) -> None:
        self.kept.clear()


class KeyLengths(PerMask[list[int]]):
    """`valid_key_lengths` of the last few masks seen: the host sync happens once per mask and run."""

    def compute(self, mask: torch.Tensor) -> list[int]:
        return valid_key_lengths(mask)


class BoolMasks(PerMask[torch.Tensor]):
    """The bool form (True = attend) of the last few key masks seen, for a kernel that reads one when given SDPA's
    additive form (`ops.additive_mask`, whose kept keys are 0); a bool mask is its own."""

    def compute(self, mask: torch.Tensor) -> torch.Tensor:
        return mask if mask.dtype == torch.bool else mask == 0


@torch.compiler.disable  # host sync and a Python loop: kept out of compiled graphs
def attend_by_rows(
    attend: AttentionFn,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    key_lengths: Callable[[torch.Tensor], list[int]],
) -> torch.Tensor:
    """Masked attention through an unmasked kernel: each batch row over its own valid keys (trailing padding), as
    `key_lengths` counts them (`KeyLengths`: once per mask and run)."""
    lengths = key_lengths(mask)
    if len(set(lengths)) == 1:
        n = lengths[0]
        return attend(q, k[:, :, :n], v[:, :, :n], None)
    rows = [attend(q[i : i + 1], k[i : i + 1, :, :n], v[i : i + 1, :, :n], None) for i, n in enumerate(lengths)]
    return torch.cat(rows)
