"""An output's name, chosen and held while a run makes the video: the first name no earlier video has
(`unused_path`), taken at once so that two runs started together do not pick the same one (`claim`), and a name
given with -o held by a hidden file beside it so that a second run given the same -o is refused
(`claim_named_output`). Each claim is released when its run ends (`release`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from motif_lite.errors import MotifLiteError
from motif_lite.io.staging import FRAME_PATTERN, frame_file, is_frame_sequence, process_running


def unused_path(path: Path) -> Path:
    """`path` when nothing is there, else the first free `stem-2.suffix`, `stem-3.suffix`, ... beside it (a PNG
    sequence, `f_%03d.png`, is there when its first frame is)."""
    return next(candidate for candidate in candidate_paths(path) if not _taken(candidate))


def candidate_paths(path: Path) -> Iterator[Path]:
    """The names an output of `path` may take, in order: `path`, then `stem-2.suffix`, `stem-3.suffix`, ..."""
    return itertools.chain([path], (numbered_path(path, n) for n in itertools.count(2)))


def _taken(path: Path) -> bool:
    """Whether a file is at `path`; for a PNG sequence, at its first frame (the pattern itself is never a file)."""
    return _first_file(path).exists()


def _first_file(path: Path) -> Path:
    """The file that shows `path` is taken: itself, or a PNG sequence's first frame."""
    return frame_file(path, 0) if is_frame_sequence(path) else path


def claim(path: Path) -> bool:
    """Whether `path` was free and is now this process's: an empty file created there exclusively (for a PNG
    sequence, its first frame). Of two runs choosing a name at the same moment (a script's `&`, `xargs -P`) only
    one can create it, so the other picks the next name instead of writing the same file. The finished video
    replaces the empty file; `release_claims` removes it when the run ends without one."""
    try:
        _first_file(path).open("x").close()
    except FileExistsError:
        return False
    return True


def claimed_before(path: Path, moment: float) -> bool:
    """Whether the file at `path` is a claim (`claim`'s empty file: no video is empty) made no later than `moment`,
    a time as `os.stat` gives it."""
    return written_before(path, moment) == 0


def holds_video(path: Path) -> bool:
    """Whether a written video is at `path` (for a PNG sequence, its first frame): a file with content, not the
    empty file `claim` makes, nor nothing."""
    try:
        return _first_file(path).stat().st_size > 0
    except OSError:  # nothing there, or a folder now unreachable
        return False


def written_before(path: Path, moment: float) -> int | None:
    """The size of the file at `path` (for a PNG sequence, its first frame) where it was last written no later than
    `moment`, a time as `os.stat` gives it: 0 for a claim (`claim`'s empty file), more for a video. None where
    nothing is there, or what is there was written later."""
    try:
        made = _first_file(path).stat()
    except OSError:  # nothing there, or a folder now unreachable
        return None
    return made.st_size if made.st_mtime <= moment else None


def claim_unused_path(path: Path) -> Path:
    """`unused_path`, claimed (`claim`): the first name from `path` on that no file and no other run has taken."""
    return next(candidate for candidate in candidate_paths(path) if claim(candidate))


def release_claims(paths: Iterable[Path]) -> None:
    """Remove the empty files `claim` made that no video replaced (the run failed or stopped first), so that the
    name is free again. A file with content is a written video and stays."""
    for path in paths:
        file = _first_file(path)
        with contextlib.suppress(OSError):  # gone already, or a folder now unreachable: nothing to release
            if file.stat().st_size == 0:
                file.unlink()


WRITING_PREFIX = ".writing-"  # + the output's name: the claim of a run writing that -o (`claim_named_output`)


def claim_named_output(path: Path, command: str = "run") -> None:
    """Take `path`, an output named with -o, for this process while it makes the video: a hidden file beside it
    (`.writing-NAME`, created exclusively, holding this process's ID and host) that a second run given the same -o
    finds, and is refused on in one line before any work, where the last run to finish would replace the other's
    video. -o replaces an earlier video, so the output itself may be there: the claim cannot be the output's own
    empty file as a default name's is (`claim`). A claim whose process no longer runs on this machine (killed
    outright) is stale, and taken over, as a stale partial file is removed (`io.staging.remove_stale_partials`);
    one of another machine (a shared folder) cannot be asked, and is named for the user to remove. A claim of the
    process that started this one is this process's too: `run --gpus N` claims -o before it starts the processes,
    and its rank 0 writes the video. `release_named_claims` removes the claim when the run ends. `command`: what
    the refused user gives another -o ("run", "decode")."""
    marker = path.with_name(f"{WRITING_PREFIX}{path.name}")
    for _ in range(2):  # a stale claim removed, once
        try:
            with marker.open("x") as file:
                file.write(f"{os.getpid()} {socket.gethostname()}\n")
            return
        except FileExistsError:
            pid, host = _claim_holder(marker)
        except OSError:  # no folder, or not writable there: the output checks name that, not this
            return
        here = host == socket.gethostname()
        if here and pid == os.getppid():  # the --gpus launcher's claim, made for this rank
            return
        if here and pid is not None and not process_running(pid):
            marker.unlink(missing_ok=True)  # its run was killed outright: the name is free
            continue
        which = "" if pid is None else f" (process {pid})" if here else f" (process {pid} on {host})"
        raise MotifLiteError(
            f"another run{which} is writing {path}: give this {command} another -o, or wait for that one to end (if "
            f"it is gone, remove {marker})"
        )
    raise MotifLiteError(f"another run is writing {path}: give this {command} another -o")


def claim_named_outputs(paths: Sequence[Path], command: str = "run") -> None:
    """`claim_named_output` for each of `paths` (a batch's -o names), all or none: on a refusal the claims taken
    are released before it is raised."""
    taken: list[Path] = []
    try:
        for path in paths:
            claim_named_output(path, command)
            taken.append(path)
    except BaseException:
        release_named_claims(taken)
        raise


@contextlib.contextmanager
def named_claims(paths: Sequence[Path], command: str = "run") -> Iterator[None]:
    """`claim_named_outputs` for the work inside, the claims released when it ends, however it ends."""
    claim_named_outputs(paths, command)
    try:
        yield
    finally:
        release_named_claims(paths)


def _claim_holder(marker: Path) -> tuple[int | None, str]:
    """(process ID, host) a claim file holds; (None, "") where it cannot be read, as while it is being written."""
    try:
        pid, host = marker.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None, ""


def release_named_claims(paths: Iterable[Path]) -> None:
    """Remove the claims `claim_named_output` made for `paths` that are this process's (a claim another run holds
    stays: this run was refused on it)."""
    for path in paths:
        marker = path.with_name(f"{WRITING_PREFIX}{path.name}")
        if _claim_holder(marker) == (os.getpid(), socket.gethostname()):
            marker.unlink(missing_ok=True)


def numbered_path(path: Path, n: int) -> Path:
    """The n-th of several outputs named `path`: `fox-2.mp4`; for a PNG sequence the number goes before the frame
    pattern (`f_%03d.png` -> `f-2_%03d.png`), so that each video's frames sort together in a folder listing."""
    pattern = FRAME_PATTERN.search(path.name) if is_frame_sequence(path) else None
    if pattern is None:
        return path.with_name(f"{path.stem}-{n}{path.suffix}")
    before = path.name[: pattern.start()]
    stem = before.rstrip("_-. ")
    number = f"{stem}-{n}" if stem else str(n)
    return path.with_name(f"{number}{before[len(stem) :] or '_'}{path.name[pattern.start() :]}")


def release(paths: Iterable[Path], named: bool) -> None:
    """Release the claims a run made on `paths`: the hidden files of names given with -o (`named`,
    `release_named_claims`), else the empty files of the names it chose (`release_claims`)."""
    if named:
        release_named_claims(paths)
    else:
        release_claims(paths)
