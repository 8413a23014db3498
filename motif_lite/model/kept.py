"""Tensors that every forward of a run would build alike, built once per run instead (issue #17)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

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
