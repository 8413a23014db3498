"""`--attention-backend auto`'s choices, remembered per machine in `~/.cache/motif-lite/attention-choices.json`.

A trial times the exact attention kernels at each new attention shape and keeps the fastest. Two kernels often
time within noise of each other (on an H200 at 40,560 keys cuDNN and SDPA's own pick took 33.6 and 33.7 ms and
swapped places between runs), and kernels round differently, so two runs with the same seed could take different
kernels and give different bits. A remembered choice is taken again by a later run on the same GPU with the same
software, after one checked call and without timing: the same kernels, so the same rounding. The environment key
holds what can change the candidates or their outputs: the GPU, the versions of torch, CUDA, cuDNN and Triton (on
an AMD GPU: ROCm's instead of CUDA's and cuDNN's), FlashAttention-3's where it is a candidate (it is built apart
from torch, so a rebuild can change its kernels alone), and the candidates on offer. Delete the file to time again; a
cache that cannot be written (a read-only home on a cluster's compute node) means a trial in every run, and a
warning once per run that says where to keep it instead.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import tempfile
from pathlib import Path

import torch

from motif_lite.gpus import gpu_facts, gpu_platform
from motif_lite.io.user_cache import user_cache_folder
from motif_lite.json_values import NotAJSONObject, parse_json_object

CHOICES_FILE = "attention-choices.json"
FA3_MODULE = "flash_attn_interface"  # FlashAttention-3's Python package (the `fa3` backend imports it)

logger = logging.getLogger(__name__)


def environment(device: torch.device, candidates: list[str]) -> str:
    """What a remembered choice is valid for: this GPU, the software that runs the kernels, the candidates."""
    gpu = gpu_facts(device)
    if gpu.is_amd:  # a ROCm build: its HIP version, and no cuDNN
        versions = [f"torch {torch.__version__}", gpu_platform(), f"triton {_version('triton')}"]
        name = f"{gpu.name} ({gpu.arch})"
    else:
        versions = [
            f"torch {torch.__version__}",
            f"CUDA {torch.version.cuda}",
            f"cuDNN {torch.backends.cudnn.version()}",
            f"triton {_version('triton')}",
        ]
        major, minor = gpu.capability
        name = f"{gpu.name} (sm_{major}{minor})"
    if "fa3" in candidates:
        versions.append(f"FlashAttention-3 {_providers(FA3_MODULE)}")
    return f"{name}; {', '.join(versions)}; candidates {', '.join(candidates)}"


def _providers(module: str) -> str:
    """The installed distributions that provide the import package `module`, with their versions (FA3's has been
    named flashattn-hopper and flash_attn_3), e.g. "flash_attn_3 3.0.0"; "unknown" for files copied in by hand."""
    names = sorted(set(importlib.metadata.packages_distributions().get(module, [])))
    return ", ".join(f"{name} {_version(name)}" for name in names) or "unknown"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


class RememberedChoices:
    """Backend names by attention shape, for one environment (`environment`), kept in a JSON file."""

    def __init__(self, environment: str, path: Path | None = None) -> None:
        self.environment = environment
        self.path = path or user_cache_folder() / CHOICES_FILE
        self.warned = False  # a file that cannot be written is said once

    def _read(self) -> dict[str, dict[str, str]]:
        return self._load()[0]

    def _load(self) -> tuple[dict[str, dict[str, str]], bool]:
        """The file's choices, and whether its text could be read as such (a missing file can: none yet). Damaged or
        out of reach, it is as if empty: it is only a cache. Out of reach (no permission, a file where its folder
        should be) is not damage: writing fails there too, and `put` says that once."""
        try:
            return parse_json_object(self.path.read_bytes()), True
        except OSError:
            return {}, True
        except NotAJSONObject:
            return {}, False

    def get(self, shape: str) -> str | None:
        choices = self._read().get(self.environment)
        name = choices.get(shape) if isinstance(choices, dict) else None
        return name if isinstance(name, str) else None  # an edited or damaged entry: as if none

    def put(self, shape: str, name: str) -> None:
        """Remember `name` for `shape`, rewriting the file whole (a parallel run's ranks, or a cluster's jobs
        sharing the cache, may write at once: each write is complete, the last one stays)."""
        data, readable = self._load()
        if not readable:  # replaced below: said, since the file may be one the user edited
            logger.warning(
                f"{self.path} is no file of attention choices motif-lite can read (damaged, or edited by hand): it "
                "is written again with this run's choices; earlier ones are timed again"
            )
        choices = data.get(self.environment)
        data[self.environment] = {**(choices if isinstance(choices, dict) else {}), shape: name}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A name no other writer has: a process ID alone is not one where jobs on several machines share the
            # cache (the same ID on two nodes: one's write cut into the other's, or moved away before its rename).
            handle, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as error:
            self._warn_unwritable(error)
            return
        try:
            with os.fdopen(handle, "w") as file:
                # mkstemp's file is 0600, and the rename keeps that: the mode a plain write gives instead, so users
                # sharing the cache (a team's, a container's run as another UID) can still read it. Windows has no
                # os.fchmod before Python 3.13 (and no such modes): the call failed there, a traceback after a run's
                # attention timings.
                if hasattr(os, "fchmod"):
                    os.fchmod(file.fileno(), 0o666 & ~_umask())
                file.write(json.dumps(data, indent=1, sort_keys=True))
            os.replace(partial, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):  # a failed write or rename leaves no partial file behind
                os.unlink(partial)
            self._warn_unwritable(error)

    def _warn_unwritable(self, error: OSError) -> None:
        """Say once per run that the cache cannot be written: every run times again, and may choose another kernel."""
        if self.warned:
            return
        self.warned = True
        logger.warning(
            f"the attention kernels' choice could not be kept in {self.path} ({error.strerror or error}): "
            "every run times them again and may choose another, whose last bits differ; set XDG_CACHE_HOME "
            "to a folder you can write to keep it"
        )


def _umask() -> int:
    """The process's umask, read from /proc where it can be (Linux), since os.umask can only read it by setting
    it, and another thread creating a file in between would get the wrong mode."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask
