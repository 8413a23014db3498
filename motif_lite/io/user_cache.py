"""motif-lite's folder in the user's cache: `$XDG_CACHE_HOME/motif-lite`, else `~/.cache/motif-lite` (on Windows
too, as Hugging Face's cache). What lives there can be deleted at any time; it is made again when needed."""

from __future__ import annotations

import os
from pathlib import Path

from motif_lite.paths import user_path


def user_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return user_path(base) / "motif-lite"
