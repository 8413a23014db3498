"""Tensors that every forward of a run would build alike, built once per run instead (issue #17)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class LastKept(Generic[T]):
    """The value built for the last key asked for: a run's forwards all ask with the same key (the same grid, the
    same device...), so it is built once per run; another key builds its own, which replaces it. The key must hold
    everything the value depends on, so that a changed config or device is honoured. `clear` lets the value go (the
    end of a run)."""

    def __init__(self) -> None:
        self.last: tuple[Hashable, T] | None = None  # (key, value)

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        if self.last is None or self.last[0] != key:
            self.last = (key, build())
        return self.last[1]

    def clear(self) -> None:
        self.last = None


class LastFewByTensor(Generic[T]):
    """Values built from a tensor, kept for the last `kept` tensors asked about: a run passes the same tensors (a
    text or key mask) to every forward, so each value is built once per tensor and run. A tensor matches by
    identity and by its `_version` (a tensor changed in place since is built for again), and by `key`, which holds
    whatever else the value depends on. The oldest value goes first; `clear` lets them all go (the end of a run)."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        # (tensor, its version when built, key, value); holding the tensor keeps its identity from going to another.
        # The deque drops the oldest entry itself once `kept` are held.
        self.seen: deque[tuple[torch.Tensor, int, Hashable, T]] = deque(maxlen=kept)

    def get(self, tensor: torch.Tensor, build: Callable[[], T], key: Hashable = None) -> T:
        for seen, version, seen_key, value in self.seen:
            if seen is tensor and version == tensor._version and seen_key == key:
                return value
        value = build()
        self.seen.append((tensor, tensor._version, key, value))
        return value

    def clear(self) -> None:
        self.seen.clear()
