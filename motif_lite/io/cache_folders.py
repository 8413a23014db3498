"""The folders a run writes caches into, each with the variable that moves it, for `motif-lite check` to list.

On a shared cluster each of them lands in the home folder (or the node's temporary directory) by default, where a
small quota fills up or a job's files are gone when it ends; a user moves each with its own variable.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from motif_lite.errors import MotifLiteError
from motif_lite.io.user_cache import user_cache_folder


@dataclass(frozen=True)
class CacheFolder:
    name: str  # whose cache: "Hugging Face cache"
    holds: str  # what a run keeps there, in words
    variables: str  # the variable(s) that move it
    folder: Path | None  # None where there is none (a variable set but empty)
    refused: str | None = None  # why there is no folder, in one line
    instead: str | None = None  # what a run does where the folder cannot be written, in words
    read_only_ok: bool = False  # a shared read-only one still serves runs


def triton_cache_dir(environ: Mapping[str, str]) -> Path | None:
    """The folder Triton compiles into under `environ`, as Triton finds it (a variable set but empty counts as set);
    None for an empty TRITON_CACHE_DIR, where Triton finds no folder and every compile fails."""
    if "TRITON_CACHE_DIR" in environ:
        return Path(environ["TRITON_CACHE_DIR"]) if environ["TRITON_CACHE_DIR"] else None
    return Path(environ.get("TRITON_HOME", os.path.expanduser("~"))) / ".triton" / "cache"


def triton_tilde(environ: Mapping[str, str]) -> str | None:
    """Why Triton's cache folder under `environ` starts with a literal `~` (a folder of that name in the working
    folder), or None where it does not: a TRITON_CACHE_DIR or TRITON_HOME given with a `~` that nothing expanded
    (a Dockerfile's ENV, a quoted value; Triton does not expand it either), else a user without a home
    (`os.path.expanduser` finds none: HOME unset and a UID /etc/passwd lacks)."""
    folder = triton_cache_dir(environ)
    if folder is None or not folder.parts or folder.parts[0] != "~":
        return None
    given = next((variable for variable in ("TRITON_CACHE_DIR", "TRITON_HOME") if variable in environ), None)
    if given is None:
        return "this user has no home"
    return f"{given} starts with a ~ that nothing expanded (Triton does not; give an absolute path)"


def triton_fallback_dir() -> Path:
    """Where a run compiles Triton's kernels when their cache cannot be written or there is no home
    (`cli/kernel_cache.py`): a folder of this user in the temporary directory, gone with a container or a job's
    node-local /tmp."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"motif-lite-triton-{user}"


def inductor_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where `--compile` (torch's inductor) keeps what it compiled: TORCHINDUCTOR_CACHE_DIR, else
    `torchinductor_USER` in the temporary directory, as torch names it (its own function is private)."""
    if environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(environ["TORCHINDUCTOR_CACHE_DIR"]).absolute()
    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):  # a UID /etc/passwd lacks, as torch handles it
        user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
    return Path(tempfile.gettempdir()) / ("torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def cache_folders(environ: Mapping[str, str] = os.environ) -> list[CacheFolder]:
    """Every cache a run may write, in the order a run first writes them."""
    try:
        ours, refused = user_cache_folder(environ), None
    except MotifLiteError as error:  # a folder of that name in the temporary directory that is another user's
        ours, refused = None, str(error)
    triton = triton_cache_dir(environ)
    return [
        CacheFolder(
            "Hugging Face cache",
            "the weights a run downloads",
            "HF_HUB_CACHE or HF_HOME",
            Path(constants.HF_HUB_CACHE),
            read_only_ok=True,
        ),
        CacheFolder(
            "motif-lite cache",
            "linked weight files, attention choices, a stopped run's state where its output's folder takes none",
            "XDG_CACHE_HOME",
            ours,
            refused,
        ),
        CacheFolder(
            "Triton cache",
            "compiled GPU kernels",
            "TRITON_CACHE_DIR",
            triton,
            None if triton is not None else "TRITON_CACHE_DIR is set but empty",
            instead=f"a run on a GPU compiles its kernels into {triton_fallback_dir()} instead (again in each new "
            "container)",
        ),
        CacheFolder(
            "torch.compile cache", "--compile's kernels", "TORCHINDUCTOR_CACHE_DIR", inductor_cache_dir(environ)
        ),
    ]


def nearest_existing(folder: Path) -> Path | None:
    """`folder`, or where it is not made yet the nearest folder above it: the disk its files will go to."""
    return next((path for path in (folder, *folder.parents) if path.exists()), None)
