"""Frames written as .mp4 (.mkv, .mov) or .webm by ffmpeg: its command (the encoder, BT.709 colour, the settings
read from a metadata file), the frames piped to it one at a time, and why a write failed (the folder, the disk, or
what ffmpeg said)."""

from __future__ import annotations

import contextlib
import errno
import re
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.io.ffmpeg import FfmpegFailed, ffmpeg_process, file_argument, find_ffmpeg, older_than
from motif_lite.io.output_formats import FFMPEG
from motif_lite.io.staging import (
    FILE_SIZE_LIMIT_FIX,
    closed_on_the_way,
    creating_fails,
    os_error_number,
    out_of_space,
    output_of,
)
from motif_lite.shell_syntax import quoted, variable_set

# RGB to yuv420p with the BT.709 matrix, and the stream tagged BT.709 (limited range). ffmpeg's default converts with
# BT.601 and tags nothing, while browsers, QuickTime and phones decode untagged HD video as BT.709: colours then
# shift (pure red plays as 255, 23, 0; pure green as 0, 215, 0). The scale filter converts (the tags alone do not on
# older ffmpeg), setparams tags the frames and the encoder options tag the stream. The frames' tags are needed too:
# imageio-ffmpeg's bundled n9.0.2 takes the stream's from them and kept only the matrix of the options, primaries
# and transfer "unknown" ("bt709/unknown/unknown"), which an editor may read as another standard's.
_TO_BT709 = "scale=out_color_matrix=bt709:out_range=tv"
_TAG_FRAMES_BT709 = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709"
_TAG_STREAM_BT709 = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
# setparams has these options from ffmpeg 4.3 on: an older one (Ubuntu 20.04's 4.2, named by IMAGEIO_FFMPEG_EXE)
# refuses the filter, which failed the write after the whole sampling; it gets the stream options alone.
_SETPARAMS_COLOURS_SINCE = (4, 3)


def _bt709_options(exe: str) -> list[str]:
    """The output options that convert to BT.709 and tag it, for the ffmpeg at `exe`."""
    tag_frames = not older_than(exe, _SETPARAMS_COLOURS_SINCE)
    return ["-vf", f"{_TO_BT709},{_TAG_FRAMES_BT709}" if tag_frames else _TO_BT709, *_TAG_STREAM_BT709]


def write_ffmpeg(
    stream: Iterator[np.ndarray], path: Path, fps: float, comment: str, shape: tuple, crf: int | None = None
) -> None:
    height, width = shape[0], shape[1]
    if height % 2 or width % 2:
        raise ConfigError(f"{path.suffix} (yuv420p) needs an even width and height, got {width}x{height}")
    # The comment goes to ffmpeg in a metadata file, not as a command-line argument: Linux refuses any one argument
    # over 128 KiB (a long prompt), and ffmpeg then stops before writing anything. The file is a temporary one, so
    # that a process killed outright leaves nothing beside the output but its partial file (which the next run
    # removes).
    with _metadata_file(comment) as metadata:
        failed = _pipe_to_ffmpeg(stream, shape, _ffmpeg_command(path, metadata, width, height, fps, crf))
    # A short video fits in the pipe: ffmpeg failing to open the file then breaks nothing; its exit code tells.
    if failed is not None or not path.is_file() or path.stat().st_size == 0:
        raise MotifLiteError(f"ffmpeg could not write {output_of(path)}: {_write_failure(path, failed)}")


# Where the advice moves the temporary folder to, as an example path (POSIX, Windows): `variable_set`'s words.
_ROOMY_TEMP = ("/data/tmp", r"D:\tmp")


@contextlib.contextmanager
def _metadata_file(comment: str) -> Iterator[Path]:
    """`comment` in ffmpeg's FFMETADATA file, in a temporary folder removed on leaving. A temporary folder that takes
    no file (a small /tmp filled by something else) is a `MotifLiteError` naming it and TMPDIR, which moves it: the
    folder's own OSError was said as the output disk's want of space, or as a traceback."""
    folder = None
    try:
        folder = tempfile.TemporaryDirectory(prefix="motif-lite-")
        metadata = Path(folder.name) / "comment.ffmetadata"
        metadata.write_text(_ffmetadata(comment), encoding="utf-8")
    except OSError as exc:
        if folder is not None:
            folder.cleanup()
        raise MotifLiteError(
            f"cannot write the video's metadata (a small file) to the temporary folder {tempfile.gettempdir()}: "
            f"{exc.strerror or exc}; free space there, or set TMPDIR to a folder with room "
            f"({variable_set('TMPDIR', *_ROOMY_TEMP)})"
        ) from None
    with folder:
        yield metadata


def _ffmetadata(comment: str) -> str:
    """`comment` as ffmpeg's FFMETADATA file, with the characters that format gives a meaning escaped."""
    escaped = re.sub(r"([=;#\\\n])", r"\\\1", comment)
    return f";FFMETADATA1\ncomment={escaped}\n"


def _ffmpeg_command(path: Path, metadata: Path, width: int, height: int, fps: float, crf: int | None) -> list[str]:
    """ffmpeg reading RGB frames from its standard input and the container metadata from `metadata`, encoding at
    `crf` (None: the codec's default)."""
    encoder, container = FFMPEG[path.suffix.lower()]
    quality = str(encoder.default_crf if crf is None else crf)
    rate = str(Fraction(fps).limit_denominator())  # a fraction, so that 24000/1001 is not rounded
    frames = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", rate, "-i", "-"]
    tags = ["-f", "ffmetadata", "-i", str(metadata), "-map", "0:v", "-map_metadata", "1"]
    exe = find_ffmpeg()
    encode = ["-an", *_bt709_options(exe), "-c:v", encoder.name, "-pix_fmt", "yuv420p", "-crf", quality]
    encode += [*encoder.options, *container]
    return [exe, "-y", "-nostdin", "-v", "error", *frames, *tags, *encode, file_argument(path)]


def _pipe_to_ffmpeg(stream: Iterator[np.ndarray], shape: tuple, command: list[str]) -> FfmpegFailed | None:
    """Run `command` with the frames on its standard input. None when ffmpeg succeeded, else what it said."""
    with ffmpeg_process(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as (process, said):
        try:
            for frame in stream:
                if frame.shape != shape:
                    raise ConfigError(f"frame size changed mid-video: {frame.shape} after {shape}")
                process.stdin.write(np.ascontiguousarray(frame))
        except OSError:  # ffmpeg stopped reading (a broken pipe): its exit code and message say why
            pass
        except BaseException:  # Ctrl-C, a bad frame: no file wanted, so ffmpeg is killed before its input ends
            process.kill()
            raise
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the end of the video: ffmpeg finishes the file
            code = process.wait()
        return None if code == 0 else FfmpegFailed(said(whole=True), code)


def _write_failure(path: Path, failed: FfmpegFailed | None) -> str:
    """Why writing `path` failed: the folder's reason first (ffmpeg's message then names the hidden partial file),
    then a want of space, else what ffmpeg said (its last error line)."""
    if (unreachable := _folder_unreachable(path.parent)) is not None:  # ffmpeg and the OS say only ENOENT, EACCES
        return unreachable
    if (reason := creating_fails(path.parent)) is not None:
        return reason
    if out_of_space(failed, path.parent):  # ffmpeg's reason is often on a line before its last
        if failed is not None and os_error_number(failed) == errno.EDQUOT:
            return f"your disk quota in {path.parent} is used up"
        return f"no space left on the disk of {path.parent}"
    # ffmpeg's own failure (an encoder its build lacks, a damaged binary) comes again with the same format: the
    # formats it does not write are the way to the video.
    if failed is not None and failed.code == -getattr(signal, "SIGXFSZ", 0):  # a file over the size limit kills it
        return f"ffmpeg was stopped at the file size limit: {FILE_SIZE_LIMIT_FIX}"
    said = failed.last_line if failed is not None else ""
    told = f"ffmpeg said: {said}" if said else "ffmpeg stopped without saying why"
    stem = output_of(path).stem
    return f"{told} (.webp, .gif and PNG frames need no ffmpeg: -o {quoted(f'{stem}.webp')}, or {stem}_%03d.png)"


def _folder_unreachable(folder: Path) -> str | None:
    """Why the output's `folder`, there when the run began, cannot be reached now, or None while it is a folder:
    removed or unmounted, or a folder on its way that this process may no longer enter (its permissions changed:
    then `is_dir` is False too, as the folder cannot be looked at, though it is still there)."""
    try:
        if stat.S_ISDIR(folder.stat().st_mode):
            return None
    except PermissionError:
        above = closed_on_the_way(folder)
        return (
            f"its folder {folder} cannot be reached: this process may no longer enter {above} (its permissions "
            "changed since the run began; it needs x, search permission): give it back, or write to another folder"
        )
    except OSError:  # gone, or a file stands where a folder on its way was
        pass
    return f"its folder {folder} is no longer there (removed or unmounted since the run began)"
