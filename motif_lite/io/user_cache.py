"""motif-lite's folder in the user's cache: `$XDG_CACHE_HOME/motif-lite`, else `~/.cache/motif-lite` (on Windows
too, as Hugging Face's cache). What lives there can be deleted at any time; it is made again when needed.

A container often runs as a user with no home: an odd UID (`docker run -u 12345`, OpenShift) that /etc/passwd
lacks, with HOME unset. There the folder is `motif-lite-cache-UID` in the temporary directory, which goes with the
container: set XDG_CACHE_HOME to a mounted volume to keep it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from motif_lite.paths import user_path


def user_cache_folder(environ: Mapping[str, str] = os.environ, uid: int | None = None) -> Path:
    """The folder for `environ` and the user `uid` (this process's when None)."""
    if environ.get("XDG_CACHE_HOME"):
        return user_path(environ["XDG_CACHE_HOME"]) / "motif-lite"
    uid = os.getuid() if uid is None and hasattr(os, "getuid") else uid
    if (home := _home(environ, uid)) is not None:
        return home / ".cache" / "motif-lite"
    return Path(tempfile.gettempdir()) / f"motif-lite-cache-{uid}"


def _home(environ: Mapping[str, str], uid: int | None) -> Path | None:
    """HOME, else the user's home in the password database (as Python's `Path.home()`, which raises a bare
    RuntimeError where neither has one); None then."""
    if environ.get("HOME"):
        return Path(environ["HOME"])
    if uid is None:  # Windows: no UIDs; pathlib reads its own variables
        return Path.home()
    import pwd  # POSIX only

    try:
        return Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:  # a UID /etc/passwd lacks
        return None
