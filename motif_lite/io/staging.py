"""Output files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_output(path: Path, frames: int) -> Iterator[Path]:
    """Yield a hidden sibling path to write to; move the result to `path` on success, delete it on any failure.

    A crash or Ctrl-C mid-write never leaves a truncated video under the requested name. For PNG sequences
    (`out_%03d.png`) every frame file is staged and moved.
    """
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    pairs = _staged_files(partial, path, frames)
    try:
        yield partial
    except BaseException:
        for staged, _ in pairs:
            staged.unlink(missing_ok=True)
        raise
    for staged, final in pairs:
        os.replace(staged, final)


def _staged_files(partial: Path, final: Path, frames: int) -> list[tuple[Path, Path]]:
    if final.suffix.lower() != ".png":
        return [(partial, final)]
    return [(partial.with_name(partial.name % i), final.with_name(final.name % i)) for i in range(frames)]
