"""Output files that appear whole or not at all, in folders checked by writing in them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from motif_lite.errors import MotifLiteError

PARTIAL_PREFIX = ".partial-"  # + the writer's PID + "-" + the output's name


@contextlib.contextmanager
def staged_output(path: Path, frames: int) -> Iterator[Path]:
    """Yield a hidden sibling path to write to; move the result to `path` on success, delete it on any failure.

    A crash or Ctrl-C mid-write never leaves a truncated video under the requested name. For PNG sequences
    (`out_%03d.png`) every frame file is staged and moved.
    """
    partial = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}")
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


def check_writable_folder(folder: Path, what: str) -> None:
    """Refuse (`MotifLiteError`, with the OS's reason) a folder in which no file can be created (`creating_fails`).
    `what`: "output directory", "preview folder", ... for the message."""
    if (reason := creating_fails(folder)) is not None:
        raise MotifLiteError(f"{what} {folder} is not writable: no file can be created there ({reason}); write to "
                             "another folder")  # fmt: skip


def creating_fails(folder: Path) -> str | None:
    """Why no file can be created in `folder` (the OS's reason), or None once one was, where the partial files go,
    and removed. Permission bits alone do not tell: root passes `os.access` on /sys, /proc and a read-only mount,
    where writing fails only once the work is done."""
    try:
        handle, name = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", suffix=".write-test", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None
