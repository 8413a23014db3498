"""The ffmpeg executable that writes .mp4, .mkv, .mov and .webm and reads the clips a run goes on from
(imageio-ffmpeg's, or the one $IMAGEIO_FFMPEG_EXE names), checked to run before any work needs it; and how it is
started (in a process group of its own, passing a clip's frames each once)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator

from motif_lite.errors import MotifLiteError

ENV_VARIABLE = "IMAGEIO_FFMPEG_EXE"  # imageio-ffmpeg takes this path as given, without trying it
PROBE_TIMEOUT_S = 10.0  # `ffmpeg -version` answers in well under a second; a binary that hangs is not usable
_NO_FFMPEG_NEEDED = "or write .webp, .gif or PNG frames (out_%03d.png), which need no ffmpeg"
# ffmpeg in a process group of its own: Ctrl-C reaches Python only, which stops ffmpeg itself (ffmpeg stopping first
# would turn an interruption into a failed write or a clip read short).
OWN_PROCESS_GROUP: dict = (
    {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
)


def find_ffmpeg() -> str:
    """The path of the ffmpeg that writes .mp4/.mkv/.mov/.webm, once it ran `ffmpeg -version` (a `MotifLiteError` saying
    what to do otherwise). A file that is not there is looked for on each call, so that installing it is seen; the
    answer of one that is, is kept for the process (a request is checked on each submission to the server)."""
    chosen = os.environ.get(ENV_VARIABLE)
    source = f" ({ENV_VARIABLE})" if chosen else ""
    fix = f"fix or unset {ENV_VARIABLE}" if chosen else "install ffmpeg or reinstall imageio-ffmpeg"
    try:
        import imageio_ffmpeg  # imports only its own small modules; the binary is looked up here
    except ImportError:  # a dependency, but an environment installed with --no-deps or by hand may lack it
        raise MotifLiteError(
            f"imageio-ffmpeg is not installed, and .mp4, .mkv, .mov and .webm need it: pip install imageio-ffmpeg; "
            f"{_NO_FFMPEG_NEEDED}"
        ) from None
    except OSError as exc:  # installed, its files unreadable to this user (another's install under umask 077)
        raise MotifLiteError(
            f"imageio-ffmpeg's files cannot be read ({exc}), and .mp4, .mkv, .mov and .webm need ffmpeg: {fix}; "
            f"{_NO_FFMPEG_NEEDED}"
        ) from None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # none bundled, none on PATH
        raise MotifLiteError(
            f"ffmpeg not found, which .mp4, .mkv, .mov and .webm need: {fix}; {_NO_FFMPEG_NEEDED}"
        ) from None
    # Its binaries' package missing or unreadable (a partly removed install); AttributeError: its folder, which this
    # user may not enter, imported as an empty namespace package.
    except (ImportError, OSError, AttributeError) as exc:
        raise MotifLiteError(
            f"imageio-ffmpeg's files cannot be read ({exc}), and .mp4, .mkv, .mov and .webm need ffmpeg: {fix}; "
            f"{_NO_FFMPEG_NEEDED}"
        ) from None
    found = exe if os.path.isfile(exe) else shutil.which(exe)  # a path, else a command name looked up on PATH
    if found is None:
        raise MotifLiteError(f"ffmpeg not found at {exe}{source}: {fix}; {_NO_FFMPEG_NEEDED}")
    if (failure := _version_failure(found)) is not None:
        raise MotifLiteError(f"ffmpeg at {exe}{source} does not run ({failure}): {fix}; {_NO_FFMPEG_NEEDED}")
    return exe


def _version_failure(exe: str) -> str | None:
    """Why `exe -version` failed (cannot start, no answer in time, a non-zero exit), or None when it ran."""
    try:
        done = _version_answer(exe)
    except subprocess.TimeoutExpired:
        return f"no answer to -version within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    if done.returncode != 0:
        said = last_line(done.stderr)
        return f"-version exited with code {done.returncode}" + (f": {said}" if said else "")
    return None


@functools.cache
def _version_answer(exe: str) -> subprocess.CompletedProcess:
    """What `exe -version` answered, asked once per process (a request is resolved for each run and each server
    submission). A timeout or a failure to start raises and so is not remembered: one slow answer on a busy machine
    must not fail every later video of a server, or of a test session, until it restarts."""
    return subprocess.run([exe, "-version"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)


def last_line(stderr: bytes) -> str:
    """The last line ffmpeg wrote to its standard error (its error, with `-v error`); "" when it wrote nothing."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


class FfmpegFailed(Exception):
    """ffmpeg exited with an error; the message is all it wrote to its standard error, in which the reason (such as
    "No space left on device") is often on a line before the last. `code`: its exit status (negative: the number
    of the signal that killed it)."""

    def __init__(self, said: str, code: int | None = None) -> None:
        super().__init__(said)
        self.code = code

    @property
    def last_line(self) -> str:
        """Its last error line, the one to show; "" when it said nothing."""
        return last_line(str(self).encode())


@contextlib.contextmanager
def ffmpeg_process(
    command: list[str], *, stdin: int | None = None, stdout: int | None = None
) -> Iterator[tuple[subprocess.Popen, Callable[..., str]]]:
    """ffmpeg running `command` in a process group of its own, with the process and a `said()` that returns the last
    line of its standard error so far (`said(whole=True)`: all of it). Its errors go to a temporary file, not a
    pipe: ffmpeg never blocks on a full one. On leaving, an ffmpeg still running (the caller stopped reading early,
    or failed) is killed, and every exit is waited for, so that no pipe or process is left to the garbage
    collector."""
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=errors, **OWN_PROCESS_GROUP) as process,
    ):

        def said(whole: bool = False) -> str:
            errors.seek(0)
            text = errors.read()
            return text.decode(errors="replace").strip() if whole else last_line(text)

        try:
            yield process, said
        finally:
            if process.poll() is None:  # not needed any more: what it would write is not wanted
                process.kill()
            process.wait()


def file_argument(path: str | os.PathLike) -> str:
    """`path` as ffmpeg's command line takes a local file: after `file:`. ffmpeg reads what comes before a name's
    first colon as a protocol when it is made of letters, digits and `+-.` alone, so a name in the current folder
    such as `take:2.mp4` or `12:30.mp4` (or its hidden `.partial-PID-take:2.mp4`) failed with "Protocol not found"
    after the whole run; a name starting with `-` would be read as an option."""
    return f"file:{os.fspath(path)}"


def each_frame_once(exe: str) -> list[str]:
    """The output option with which ffmpeg at `exe` passes a video's frames as they are stored, each once. By default
    a pipe of frames is made constant-rate, so that a variable-rate video (a screen or phone recording) comes out
    with frames repeated or dropped: more or fewer than the frames it counts. `-fps_mode` since ffmpeg 5.1, `-vsync`
    before it (9.0 no longer takes it); a build without a version number (from git) is taken to be recent."""
    return ["-vsync" if older_than(exe, (5, 1)) else "-fps_mode", "passthrough"]


def older_than(exe: str, version: tuple[int, int]) -> bool:
    """Whether the ffmpeg at `exe` says a version before `version` (major, minor). A build without a version number
    (from git), or one that does not answer, is taken to be recent."""
    try:
        said = _version_answer(exe).stdout.decode(errors="replace")
    except (subprocess.TimeoutExpired, OSError):  # it answered `find_ffmpeg` moments ago: taken to be recent
        said = ""
    found = re.search(r"version n?(\d+)\.(\d+)", said)
    return found is not None and (int(found[1]), int(found[2])) < version
