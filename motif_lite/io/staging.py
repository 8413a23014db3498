"""Output files that appear whole or not at all, in folders checked by writing in them."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from motif_lite.errors import MotifLiteError
from motif_lite.paths import file_in_the_way, make_folder_command

PARTIAL_PREFIX = ".partial-"  # + the writer's PID + "-" + the output's name
FRAME_PATTERN = re.compile(r"%0?\d*d")  # the frame number in a PNG sequence's name: out_%03d.png
# The numbers a PNG sequence's first frame may have, as ffmpeg's image2 reader looks for it (-start_number_range 5):
# 0 as motif-lite writes frames, 1 as ffmpeg itself, Blender and ComfyUI do.
FIRST_FRAME_NUMBERS = range(5)
# Free space under which a disk counts as full: not even a small clip's file fits there, and a write that failed
# without saying why (a short write, ffmpeg's exit code) on a disk with less left failed for want of space.
FULL_DISK_BYTES = 2**20
# The OS's errors for want of space: the disk is full, or the user's disk quota is used up.
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# A file size limit (SIGXFSZ, EFBIG) is set where the process was started: a shell's `ulimit -f`, a systemd
# service's LimitFSIZE, a container's fsize ulimit; each has its own way to raise it.
FILE_SIZE_LIMIT_FIX = (
    "raise the file size limit where it is set: ulimit -f unlimited in the shell that starts motif-lite, "
    "LimitFSIZE=infinity for a systemd service, or the container's fsize ulimit"
)
# How the OS says each want of space in words: glibc's and musl's (ffmpeg's builds), and this system's.
_SPACE_WORDS = [
    (errno.ENOSPC, "No space left on device"),
    (errno.EDQUOT, "Disk quota exceeded"),
    (errno.EDQUOT, "Quota exceeded"),
    *((code, os.strerror(code)) for code in sorted(OUT_OF_SPACE_ERRNOS)),
]
logger = logging.getLogger(__name__)


def is_frame_sequence(path: Path) -> bool:
    """Whether `path` names a PNG per frame (`out_%03d.png`); a plain `out.png` is one image."""
    return path.suffix.lower() == ".png" and FRAME_PATTERN.search(path.name) is not None


def frame_file(pattern: Path, index: int) -> Path:
    """The file of frame `index` of a PNG sequence: `out_%03d.png`, 7 -> `out_007.png`."""
    return pattern.parent / (pattern.name % index)


def first_frame_number(pattern: Path) -> int | None:
    """The number of a PNG sequence's first frame (the lowest of FIRST_FRAME_NUMBERS with a file), None if none."""
    return next((number for number in FIRST_FRAME_NUMBERS if frame_file(pattern, number).is_file()), None)


@dataclass
class StagedOutput:
    """Where to write (`partial`, a hidden sibling) and, once the `staged_output` block has ended, where the output
    is (`written`: the path asked for, or the fallback's)."""

    partial: Path
    written: Path


@contextlib.contextmanager
def staged_output(path: Path, frames: int, fallback: Callable[[Path], Path] | None = None) -> Iterator[StagedOutput]:
    """Yield a hidden sibling path to write to; move the result to `path` on success, delete it on any failure.

    A crash or Ctrl-C mid-write never leaves a truncated video under the requested name. For PNG sequences
    (`out_%03d.png`) every frame file is staged and moved. A process killed outright (`kill -9`) cannot delete its
    partial file, nor one whose folder it may no longer enter: the next write of the same output removes it
    (`remove_stale_partials`).
    `fallback(path)`: where a finished single file goes when `path` cannot be replaced (Windows refuses to replace a
    file that a video player, a sync client or an antivirus scan has open), with a warning; without one, that error
    goes on and the next write of the output removes the finished file.
    A PNG sequence whose move fails midway (a frame's name taken by a folder or a file in use) is all or nothing
    too: the frames already moved and every partial frame are removed, then a `MotifLiteError` says so
    (the caller's saved latents keep the work: `motif-lite decode`).
    """
    remove_stale_partials(path)
    partial = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}")
    pairs = _staged_files(partial, path, frames)
    staged = StagedOutput(partial, path)
    try:
        yield staged
    except BaseException:
        for file, _ in pairs:
            # One that cannot be removed (its folder may no longer be entered, a file Windows holds) stays for the
            # next write to remove: the error that stopped the write is the one to tell.
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        raise
    if is_frame_sequence(path):
        _move_frames(pairs, path)
        return
    if fallback is None:
        os.replace(partial, path)
        return
    # A sync client (OneDrive, Dropbox) or an antivirus scan holds a new file open as often as a player does.
    held = "open in a player, a sync client (OneDrive, Dropbox) or an antivirus scan"
    staged.written, note = replace_or_beside(partial, path, fallback, held)
    if note is not None:
        logger.warning("%s", note)


def replace_or_beside(partial: Path, path: Path, beside: Callable[[Path], Path], held: str) -> tuple[Path, str | None]:
    """Rename the finished `partial` to `path`: (`path`, None). Where `path` cannot be replaced (Windows refuses to
    replace a file another program has open: `held` says which, "open in a player, ..."), to `beside(path)` instead, so
    that the work is kept: (that name, the note that says so)."""
    try:
        os.replace(partial, path)
        return path, None
    except PermissionError as exc:  # the "in use" of Windows; other errors are not a name's fault
        written = beside(path)
        os.replace(partial, written)
        return written, (
            f"{path} could not be replaced ({exc.strerror or exc}; on Windows a file {held} cannot be): wrote "
            f"{written} instead"
        )


def _move_frames(pairs: list[tuple[Path, Path]], pattern: Path) -> None:
    """Move each staged frame to its final name; if one move fails, remove the frames already moved and every
    partial frame, and raise: no frame of a sequence that could not be written whole stays under its name."""
    moved = 0
    try:
        for file, final in pairs:
            os.replace(file, final)
            moved += 1
    except OSError as exc:
        for _, final in pairs[:moved]:
            with contextlib.suppress(OSError):
                final.unlink(missing_ok=True)
        for file, _ in pairs[moved:]:
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        failed = pairs[moved][1]
        raise MotifLiteError(
            f"{pattern}: frame {failed.name} could not be put in place ({exc.strerror or exc}); no frame was kept "
            f"(the {moved} moved before it were removed, the other {len(pairs) - moved - 1} not moved)"
        ) from exc


def _staged_files(partial: Path, final: Path, frames: int) -> list[tuple[Path, Path]]:
    if not is_frame_sequence(final):
        return [(partial, final)]
    return [(frame_file(partial, i), frame_file(final, i)) for i in range(frames)]


def described_output(path: Path, frames: int) -> str:
    """The output as said when it is written: a PNG sequence's pattern with its first and last file."""
    if FRAME_PATTERN.search(path.name) is None:
        return str(path)
    if frames == 1:
        return str(frame_file(path, 0))
    return f"{path} ({path.name % 0} ... {path.name % (frames - 1)})"


def output_of(path: Path) -> Path:
    """`path` as the user named it: a staged file (`.partial-PID-fox.mp4`) as its output (`fox.mp4`)."""
    return path.with_name(re.sub(rf"^{re.escape(PARTIAL_PREFIX)}\d+-", "", path.name))


def output_folder_problem(parent: Path, what: str) -> str | None:
    """Why `parent`, the folder an output goes in, is not there to write in: a file stands where it (or a folder
    above it) would be, or it does not exist (with the `mkdir` that makes it); None when it is a folder. A
    string, so that each writer raises its own error. `what`: "output directory", "output folder", ... for the
    message."""
    if (blocker := file_in_the_way(parent)) is not None:
        return f"{what} {parent} cannot be made: {blocker} is a file, not a folder: write to another folder"
    if not parent.is_dir():
        return f"{what} {parent} does not exist; create it first ({make_folder_command(parent)})"
    return None


def closed_on_the_way(path: Path) -> str:
    """The first folder from the root on the way to `path` that this process may not enter (it lacks x, search
    permission), which stops the way; `path` itself need not be enterable to be looked at. "a folder above it"
    where `os.access` tells none (Windows, or a denial the permission bits do not show)."""
    closed = _first_closed_folder(reversed(path.parents))
    return str(closed) if closed is not None else "a folder above it"


def unreachable_path(exc: OSError) -> str | None:
    """What to tell of a permission error (`exc`) on a path under a folder this process may not enter (no x,
    search permission), the path itself included where it is a folder, or through a link into one: which folder
    stops the way and what to do; None for any other error. Python 3.10-3.13 raise it from `Path.exists`, `is_dir`
    and `resolve` alike, so that a path given to read (an image, a checkpoint folder, a LoRA, latents) was a
    traceback: the command line says this instead, for any command."""
    if exc.errno != errno.EACCES or not isinstance(exc.filename, (str, bytes, os.PathLike)):
        return None
    path = Path(os.fsdecode(exc.filename))
    closed = _first_closed_folder([*reversed(path.parents), path])
    if closed is None:  # through a link into a closed folder: the link is no folder seen from here, its target is
        real = Path(os.path.realpath(path))  # not strict: the parts it cannot see are kept as they are
        closed = _first_closed_folder([*reversed(real.parents), real])
    if closed is None:  # a file or folder it may not read: the error says so as it is
        return None
    where = "" if closed == path else f"{path} cannot be reached: "
    return (
        f"{where}this process may not enter {closed} (it needs x, search permission there): give this user that "
        "permission, or give a path outside that folder"
    )


def _first_closed_folder(folders: Iterable[Path]) -> Path | None:
    """The first of `folders` that is a folder there (seen from its own folder) which this process may not enter;
    None where it may enter each (or none is there: a folder under a closed one is not seen)."""
    return next((folder for folder in folders if os.path.isdir(folder) and not os.access(folder, os.X_OK)), None)


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


def stale_partials(path: Path) -> list[Path]:
    """The partial files of the output `path` (`.partial-PID-name`, or the frames of `.partial-PID-out_%03d.png`)
    whose writer, process PID, is no longer running on this machine: left by a process that was killed outright.
    Never a running process's (this one's included), nor any file of another name."""
    path = Path(path)
    name = re.escape(path.name)
    if is_frame_sequence(path):  # %03d stands for the frame numbers
        name = FRAME_PATTERN.sub(r"\\d+", name)  # re.escape leaves % as it is (Python 3.7 on)
    pattern = re.compile(rf"{re.escape(PARTIAL_PREFIX)}(\d+)-{name}")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    stale = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and not process_running(int(match.group(1))) and entry.is_file():
            stale.append(entry)
    return sorted(stale)


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove `stale_partials(path)` (each named in a logged warning) and return them."""
    removed = []
    for stale in stale_partials(path):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed.append(stale)
    if removed:
        files = removed[0].name if len(removed) == 1 else f"{len(removed)} files such as {removed[0].name}"
        logger.warning(f"removed {files} from {path.parent}: the partial output of an earlier process that stopped "
                       "while writing it (killed outright)")  # fmt: skip
    return removed


def process_running(pid: int) -> bool:
    """Whether process `pid` runs on this machine (or may: where neither signals nor Windows can say)."""
    if pid == os.getpid() or pid <= 0:  # (0 and below would ask about process groups)
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would send it a Ctrl-C there (CTRL_C_EVENT is 0)
        return _windows_process_running(pid)
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: another user's process, running
        return True
    return True


# Windows' answers that `_windows_process_running` reads (Microsoft's OpenProcess and GetExitCodeProcess pages).
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000  # the least access that reads an exit code; any user's own processes
_STILL_ACTIVE = 259  # GetExitCodeProcess's code for a process that has not ended
_ERROR_INVALID_PARAMETER = 87  # OpenProcess's error for a process ID that names no process


def _windows_process_running(pid: int) -> bool:
    """Whether process `pid` runs, asked of Windows itself: a run killed outright (its console window closed, Task
    Manager's End task) left its claim on -o and its partial file for good when every process counted as running,
    and the next run with the same -o was refused. A process Windows will not open (another user's, a protected
    one) counts as running, as one that ended with the code 259 does: the file is kept."""
    import ctypes  # Windows' kernel32 only: imported here, as the call is made there alone
    from ctypes import wintypes

    if pid > 0xFFFFFFFF:  # a process ID is a DWORD there: a damaged claim file's number names no process
        return False
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))  # a whole 64-bit handle
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return ctypes.get_last_error() != _ERROR_INVALID_PARAMETER
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def free_bytes(folder: Path) -> int | None:
    """The free space of `folder`'s disk for a user without root's reserve (a disk quota is not counted); None when
    the OS cannot say (a folder that is gone, a share that no longer answers)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def out_of_space(
    error: BaseException | None, folder: Path, free_space: Callable[[Path], int | None] = free_bytes
) -> bool:
    """Whether a write in `folder` that failed with `error` failed for want of space: the disk is full or the disk
    quota is used up (ENOSPC, EDQUOT), as an `OSError`'s errno or in a message that wraps it (safetensors' "(os
    error 28)", "[Errno 122]", ffmpeg's "No space left on device"), in `error` or an error it came from; or a write
    that failed without the OS's reason (`error` None, as ffmpeg's exit code; numpy's short write, "4096 requested
    and 3680 written") with under `FULL_DISK_BYTES` free. An error with another reason (a permission) is not, however
    little is free. `free_space(folder)`: the free bytes, None when unknown."""
    if said_out_of_space(error):
        return True
    if any(os_error_number(e) is not None for e in _chain(error)):
        return False
    free = free_space(folder)
    return free is not None and free < FULL_DISK_BYTES


def said_out_of_space(error: BaseException | None) -> bool:
    """Whether the OS said `error`, or an error it came from, was for want of space (ENOSPC, EDQUOT: its errno, or
    in the message of an error that wraps it): `out_of_space` without its guess for a failure the OS gave no reason
    for, for work whose failures have other reasons than the OS's (a Hub call: an HTTP status)."""
    return any(os_error_number(e) in OUT_OF_SPACE_ERRNOS for e in _chain(error))


def said_quota_used_up(error: BaseException | None) -> bool:
    """Whether the want of space the OS said (`said_out_of_space`) was a used-up disk quota (EDQUOT), whose fix is
    not a fuller disk's: the disk itself may have room."""
    return any(os_error_number(e) == errno.EDQUOT for e in _chain(error))


def _chain(error: BaseException | None) -> list[BaseException]:
    """`error` and the errors it came from (`raise ... from`, or raised while handling)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def os_error_number(error: BaseException) -> int | None:
    """The OS's error number behind `error`: an `OSError`'s, or the one its message gives: "(os error N)" (Rust's,
    which safetensors' errors end with), "[Errno N]" (an OSError's text in another error), or the OS's words for
    want of space (ffmpeg says no number)."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    text = str(error)
    if found := re.search(r"\(os error (\d+)\)|\[Errno (\d+)\]", text):
        return int(found.group(1) or found.group(2))
    return next((code for code, words in _SPACE_WORDS if words in text), None)
