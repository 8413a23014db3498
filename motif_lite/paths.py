"""Paths as users type them."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from motif_lite.errors import MotifLiteError


def user_path(value: str | os.PathLike) -> Path:
    """`value` as a path with a leading `~` or `~user` expanded, as a shell would have (a quoted path, a config file
    or a notebook reach us unexpanded). A `~name` for which this machine has no home (`~Downloads/model`, a slash
    left out) is a `MotifLiteError` saying so, where pathlib raises a bare RuntimeError."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        user = Path(value).parts[0]
        raise MotifLiteError(
            f"{value}: {user} names the home folder of a user {user[1:]!r}, and this machine has none; give the path "
            f"in full (or ~/{str(value)[1:]} for one in your home)"
        ) from None


def quoted(path: str | os.PathLike) -> str:
    """A path as a shell takes it (a folder with a space in its name), for the commands a message suggests: they are
    pasted."""
    return shlex.quote(str(path))


def path_arg(text: str) -> str:
    """argparse's type of every flag (and argument) that takes a path: an empty or blank value is refused as the
    flags are read. Path('') is the current folder, so `--lora-dir "$DIR"` with DIR unset served every file of the
    folder the server was started in, and `--gguf ''` took the one .gguf file found there."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"is empty ({text!r}; an unset variable in a script?): give the path of the file or folder"
        )
    return text


def file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where `folder`, or a folder above it, would be (`-o fox.mp4/frames/out_%03d.png` with
    fox.mp4 a video), or None: a missing folder can then be made with `mkdir -p`, which fails on such a file."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
