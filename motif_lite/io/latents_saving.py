"""Saving a run's latents file (`latents`) so that no disk short of space loses hours of sampling: `LatentsFile`
names the file beside the output, replaces it on each save, and falls back on a folder in motif-lite's cache
(`fallback_folder`) when the output's folder takes no file; `LatentsSaveError` says where it tried, why, and the
space needed. `still_running` tells whether the run that saved a file still runs on this machine.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
from dataclasses import replace
from pathlib import Path

import torch

from motif_lite.errors import MotifLiteError
from motif_lite.io.latents import SavedLatents, latents_path, save_latents
from motif_lite.io.output_claims import unused_path
from motif_lite.io.staging import FILE_SIZE_LIMIT_FIX, free_bytes, os_error_number, out_of_space, process_running
from motif_lite.io.user_cache import user_cache_folder
from motif_lite.units import file_size

logger = logging.getLogger(__name__)


class LatentsSaveError(MotifLiteError):
    """Latents that could be saved nowhere: the message names each place tried, why, and the space they need."""


class LatentsFile:
    """The latents file of one run: named on its first save (beside the output, never replacing a file that is
    there) unless given (the file a resumed run came from); each later save replaces it; `remove` once the video
    is written. With a `fallback` folder, a save that fails where it was meant to go (a full disk, a network share
    gone read-only) goes there instead, and so do the later ones: hours of sampling are not lost for want of a
    few tens of MB on the output's disk. `moved` then says why."""

    def __init__(self, output: str | Path, path: Path | None = None, fallback: Path | None = None) -> None:
        self.output = Path(output)
        self.path = path
        self.written = path is not None  # a file this run owns
        self.fallback = fallback
        self.moved: str | None = None  # why the file is in `fallback`, not beside the output
        self.kept: SavedLatents | None = None  # what the last save of this run wrote, its tensors left out

    def save(self, saved: SavedLatents) -> Path:
        """Write `saved` (whole or not at all) and return where; `LatentsSaveError` when no place takes it."""
        if self.path is None:
            try:
                self.path = unused_path(latents_path(self.output))
            except OSError:  # the output's folder cannot be looked in now (a folder on its way closed as it ran):
                self.path = latents_path(self.output)  # its save fails below, and the fallback folder takes it
        try:
            save_latents(saved, self.path)
        except Exception as error:
            if self.fallback is None or self.path.parent == self.fallback:
                raise LatentsSaveError(_not_saved([(self.path, error)], saved)) from error
            self._save_in_fallback(saved, error)
        self.written = True
        self.kept = replace(saved, latents=torch.empty(0), state={})  # no tensors (a view would keep them alive)
        return self.path

    def _save_in_fallback(self, saved: SavedLatents, error: Exception) -> None:
        """`saved` in the fallback folder, where `self.path` failed with `error`; from then on the file is there."""
        path = unused_path(self.fallback / self.path.name)
        try:
            self.fallback.mkdir(parents=True, exist_ok=True)
            save_latents(saved, path)
        except Exception as second:
            raise LatentsSaveError(_not_saved([(self.path, error), (path, second)], saved)) from error
        if self.written:  # this run's older state there: superseded, and its space is wanted
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self.moved = f"{self.path} could not be written: {_reason(error)}"
        self.path = path

    def remove(self) -> None:
        """Delete the file once the video is written. One that cannot be deleted (a resumed run's file in a
        read-only folder, or another user's) is left with a warning: the video is there all the same."""
        if not self.written or self.path is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            logger.warning(
                f"the video is written, but {self.path} could not be deleted ({error.strerror or error}): delete it "
                "yourself, or a script that resumes whenever it is there would go on with it again"
            )


def _not_saved(attempts: list[tuple[Path, Exception]], saved: SavedLatents) -> str:
    """Why `saved` is nowhere: each path tried with its error and the free space in its folder, the size, and what
    to do about it."""
    tried = "; nor to ".join(f"{path} ({_reason(error)}{_free_space(path.parent)})" for path, error in attempts)
    if any(os_error_number(error) == errno.EFBIG for _, error in attempts):  # a size limit, whatever the free space
        fix = FILE_SIZE_LIMIT_FIX
    elif any(out_of_space(error, path.parent) for path, error in attempts):
        fix = "free that much space, or give the output another folder (-o)"
    else:
        fix = "give the output a folder this process can write (-o)"
    return f"the latents could not be saved to {tried}; they need {file_size(_file_size(saved))}: {fix}"


def _reason(error: Exception) -> str:
    """An error's cause in short: the OS's words where there are some (safetensors wraps them in its own, and names
    its hidden temporary file after them: `(os error 2) at path ".../.tmpAbC123"`, a file the user never made)."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    text = text.removeprefix("Error while serializing: ").removeprefix("I/O error: ")
    return re.sub(r' \(os error \d+\)( at path ".*")?$', "", text)


def _free_space(folder: Path) -> str:
    free = free_bytes(folder)
    return "" if free is None else f", {file_size(free)} free there"


def _file_size(saved: SavedLatents) -> int:
    """About the bytes of the file `saved` makes: the latents in float32, the state, and the header (the description
    as a JSON string inside JSON, about 100 bytes per tensor's entry)."""
    state = saved.state.values()
    header = len(json.dumps(json.dumps(saved.info(), default=str))) + 100 * (1 + len(state))
    return header + saved.latents.numel() * 4 + sum(t.numel() * t.element_size() for t in state)


def still_running(saved: SavedLatents) -> int | None:
    """The process ID of the run that wrote `saved` when it still runs on this machine (a periodic save of a run
    that goes on: under nohup after an SSH drop, in another terminal), else None. A recycled process ID can make it
    a false alarm: say it as a note, never refuse on it."""
    writer = saved.writer or {}
    pid = writer.get("pid")
    if not isinstance(pid, int) or writer.get("host") != socket.gethostname() or pid == os.getpid():
        return None
    return pid if process_running(pid) else None


def fallback_folder() -> Path:
    """Where `motif-lite run` keeps a run's latents when the output's folder takes no file (`LatentsFile`)."""
    return user_cache_folder() / "latents"
