"""Triton's kernel cache, made writable for a run before its first kernel compiles.

Triton compiles each kernel into its cache folder (`TRITON_CACHE_DIR`, else `~/.triton/cache`, or under `TRITON_HOME`)
and cannot compile at all where that folder cannot be written: a read-only home on a cluster's compute node, a home
whose quota is used up, a container's read-only file system. Every kernel would then fail at its first call, each
falling back to the torch ops with a warning (`--kernels auto`, much slower) or stopping the run (`--kernels triton`).
Triton reads the variable at each compile, so pointing it at a folder of the temporary directory before loading is
enough.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.errors import MotifLiteError
from motif_lite.io.cache_folders import triton_cache_dir, triton_fallback_dir, triton_tilde
from motif_lite.io.user_cache import private_temp_folder

if TYPE_CHECKING:
    import torch


# Written and flushed to the disk by the probe: a full quota (a cluster's 20 GB home) still lets an empty file be
# made, and NFS reports the quota only as data is flushed. Compiled kernels take from kilobytes to a megabyte each.
PROBE_BYTES = 1 << 20


def unwritable(folder: Path) -> str | None:
    """Why no kernel can be written in `folder` (made first if missing, as Triton does), in words; None if one can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".motif-lite-")
        try:
            with os.fdopen(handle, "wb") as probe:
                probe.write(bytes(PROBE_BYTES))
                probe.flush()
                os.fsync(probe.fileno())
        finally:
            os.unlink(name)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def writable_kernel_cache(environ: MutableMapping[str, str], kernels: str, device: torch.device) -> str | None:
    """Where Triton will compile this run's kernels (on CUDA, unless `kernels` is "torch") and its cache folder
    cannot be written (or TRITON_CACHE_DIR is empty): set `environ`'s TRITON_CACHE_DIR to a folder of this user in
    the temporary directory and return the note that says so, with how to keep the kernels between runs. A note
    without the change when that folder cannot be written either; None when nothing is wrong."""
    if device.type != "cuda" or kernels == "torch":
        return None
    folder = triton_cache_dir(environ)
    if folder is None:
        told = "Triton has no kernel cache (TRITON_CACHE_DIR is set but empty)"
    elif (tilde := triton_tilde(environ)) is not None:
        told = f"{tilde}, so Triton's kernel cache would be {folder} under a folder named '~' here"
    elif (problem := unwritable(folder)) is not None:
        told = f"Triton's kernel cache {folder} cannot be written ({problem})"
    else:
        return None
    try:
        fallback = private_temp_folder(triton_fallback_dir().name, "set TRITON_CACHE_DIR to a folder you may write")
    except MotifLiteError as refused:
        return f"{told}, and {refused}"
    if (other := unwritable(fallback)) is not None:
        return (
            f"{told}, nor {fallback} ({other}): each kernel will fail to compile; set TRITON_CACHE_DIR to a "
            "folder you may write"
        )
    environ["TRITON_CACHE_DIR"] = str(fallback)
    return (
        f"{told}: this run compiles its kernels into {fallback}; set TRITON_CACHE_DIR to a folder of yours to keep "
        "them between runs (compiling takes seconds to minutes per size)"
    )
