"""Write generated frames as .mp4 (.mkv, .mov), .webm, animated .webp / .gif, a lossless PNG sequence, or (one
frame) a PNG image; and the output's name: checked before any work (`check_output_path`, `check_crf`, ...), and
chosen without replacing an earlier video in io/output_claims.py.

Frames arrive as chunks (the VAE decoder streams them): each chunk is a uint8 `[F, H, W, 3]` array/tensor or a
float `[3, F, H, W]` tensor in [-1, 1] (as decoded). Chunks are converted and written one frame at a time, so a
whole float video never sits in memory next to its uint8 copy. mp4/mkv/mov/webm go through ffmpeg (`find_ffmpeg`:
a pipe, fully streamed); gif/webp through Pillow, which keeps one uint8 copy of the frames. The generation settings
are stored as one JSON string in each format's comment field.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from PIL.PngImagePlugin import PngInfo

from motif_lite.choices import CRF_RANGES, VIDEO_EXTENSIONS
from motif_lite.errors import (
    Audience,
    ConfigError,
    DiskFullError,
    MotifLiteError,
    Spelling,
    shown_as_sent,
    whole_float_hint,
)
from motif_lite.frame_rates import rate_said
from motif_lite.io.ffmpeg import FfmpegFailed, ffmpeg_process, file_argument, find_ffmpeg
from motif_lite.io.staging import (
    FILE_SIZE_LIMIT_FIX,
    FRAME_PATTERN,
    FULL_DISK_BYTES,
    PARTIAL_PREFIX,
    check_writable_folder,
    closed_on_the_way,
    creating_fails,
    frame_file,
    free_bytes,
    is_frame_sequence,
    os_error_number,
    out_of_space,
    output_folder_problem,
    output_of,
)
from motif_lite.paths import (
    blank_path_problem,
    file_url_path,
    is_url,
    make_folder_command,
    user_path,
    windows_long_path_problem,
    windows_name_problem,
    windows_path_problem,
)
from motif_lite.shell_syntax import quoted, variable_set

Chunk = torch.Tensor | np.ndarray
FrameSource = Chunk | Iterable[Chunk]

_VIDEO_FORMATS = ".mp4, .mkv, .mov, .webm, .webp or .gif"
_FORMATS = ".mp4, .mkv, .mov, .webm, .webp, .gif, or out_%03d.png for a PNG per frame (out.png: one frame)"
_STILL_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # a frame format: a PNG per frame instead
EXIF_IMAGE_DESCRIPTION = 0x010E  # the EXIF tag a WebP keeps the settings in (io.settings_file reads it)


@dataclass(frozen=True)
class _Encoder:
    """An ffmpeg video encoder as motif-lite runs it: `-c:v name -pix_fmt yuv420p -crf N *options`."""

    name: str  # ffmpeg's
    codec: str  # as CRF_RANGES and the messages name it
    default_crf: int  # without a crf of the user's
    options: tuple[str, ...]


# H.264 at CRF 18 ("visually lossless"); VP9 at CRF 30 in constant-quality mode (-b:v 0: the CRF alone decides).
_H264 = _Encoder("libx264", "H.264", 18, ("-preset", "medium"))
_VP9 = _Encoder("libvpx-vp9", "VP9", 30, ("-b:v", "0", "-row-mt", "1"))
_FAST_START = ("-movflags", "+faststart")  # the index first (MP4/QuickTime), so that players start before the end
# QuickTime's classic user data holds at most 64 KiB of text (a longer comment is cut); its metadata keys hold more.
_QUICKTIME_TAGS = ("-movflags", "+faststart+use_metadata_tags")
# Each container's encoder and its own options. .mkv and .mov (what editors and ComfyUI's video nodes often ask for)
# hold the same H.264 stream as .mp4.
_FFMPEG = {
    ".mp4": (_H264, _FAST_START),
    ".mov": (_H264, _QUICKTIME_TAGS),
    ".mkv": (_H264, ()),
    ".webm": (_VP9, ()),
}
# Why the formats ffmpeg does not write take no crf (a constant-rate factor is a video encoder's setting).
_NO_CRF = {
    ".webp": "animated WebP is written by Pillow at its quality 90, a 0-100 scale of its own that no CRF maps to",
    ".gif": "a GIF's 256-colour palette has no quality setting",
    ".png": "PNG frames are lossless",
}
# RGB to yuv420p with the BT.709 matrix, and the stream tagged BT.709 (limited range). ffmpeg's default converts with
# BT.601 and tags nothing, while browsers, QuickTime and phones decode untagged HD video as BT.709: colours then
# shift (pure red plays as 255, 23, 0; pure green as 0, 215, 0). The scale filter converts (the tags alone do not on
# older ffmpeg), the encoder options tag: options that any ffmpeg imageio-ffmpeg may find takes. (Its bundled n9.0.2
# keeps only the matrix tag, primaries and transfer "unknown", which players take as BT.709 for HD.)
_BT709 = [
    *("-vf", "scale=out_color_matrix=bt709:out_range=tv"),
    *("-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"),
]


def check_output_path(
    path: str | Path,
    frames: int | None = None,
    frames_chosen: bool = True,
    audience: Audience = Audience.RUN_OR_PYTHON,
) -> bool:
    """Fail early (`MotifLiteError`) for outputs `write_video` cannot produce: bad extension, pattern, directory,
    a folder in which no file can be created (tried: `check_writable_folder`), the ffmpeg formats without an
    ffmpeg that runs (`find_ffmpeg`), a single .png for a video of `frames` frames other than one (when known; with
    `frames_chosen`, a run's, the message also offers one frame: a decode's frames are its latents'); -o named in
    `audience`'s words (`motif-lite decode`: its flag alone). True when the path is fine."""
    if not isinstance(path, str | Path):  # e.g. None, as if the frames came back instead (diffusers' output_type)
        raise MotifLiteError(
            f"output must be a file path (str or Path) such as 'fox.mp4', got {path!r}: the video is written to "
            "that file, and the result's `output` is its path"
        )
    if blank := blank_path_problem(path, "the output", "give a file name such as fox.mp4, or leave output out"):
        raise MotifLiteError(f"{blank} (output.mp4, or output-2.mp4, ... when it is there)")
    if str(path) == "-":  # ffmpeg's and many tools' name for standard output
        raise MotifLiteError(
            "output - (standard output) is not supported: the video is written to a file (under a temporary name, "
            "renamed when it is complete); give a file name, e.g. fox.mp4"
        )
    check_no_control_character(path)  # before "ends in a space": a trailing \r is a CRLF line end
    if isinstance(path, str):  # as typed: Path would fold a URL's // and keep a pasted space as part of the suffix
        _check_typed_output(path)
    if (windows := windows_path_problem(str(path))) is not None:  # Path(r"C:\Users\...") too
        raise MotifLiteError(f"output {windows}")
    if sys.platform == "win32":
        staged = len(f"{PARTIAL_PREFIX}{os.getpid()}-")  # the name the video is written under first (io.staging)
        if (windows := windows_name_problem(str(path)) or windows_long_path_problem(path, staged)) is not None:
            raise MotifLiteError(f"output {windows}")
    folder = isinstance(path, str) and path.endswith(("/", os.sep))  # `-o renders/`: Path drops the slash
    path = user_path(path)
    try:
        is_folder = path.is_dir()
    except PermissionError:  # a folder on its way this process may not enter: Python 3.10-3.13 raise, not False
        raise MotifLiteError(_unenterable_output(path, audience)) from None
    if is_folder:  # first: a folder (`-o renders`) has no suffix, and "unsupported format" would mislead
        raise MotifLiteError(f"output path {path} is a directory; give a file name, e.g. {_files_in(path)}")
    if folder:
        raise MotifLiteError(
            f"output {path}/ names a folder, and that folder does not exist; -o takes a file name: create the "
            f"folder ({make_folder_command(path)}) and give a file in it, e.g. {_files_in(path)}"
        )
    suffix = path.suffix.lower()
    if path.name.lower() in VIDEO_EXTENSIONS:  # `-o .mp4`: a name that is only an extension (Path: no suffix)
        named = quoted(path.parent / f"output{path.name}")  # quoted whole: 'a b/output'.mp4 is two words in PowerShell
        raise MotifLiteError(f"output {path} is only an extension: give the file a name too, e.g. {named}")
    if not suffix:
        raise MotifLiteError(
            f"output {path} has no extension to say its format: e.g. {quoted(f'{path}.mp4')} ({_FORMATS})"
        )
    if suffix not in VIDEO_EXTENSIONS:
        raise MotifLiteError(f"unsupported output format {suffix!r} for {path}; {_instead_of(path)}")
    _check_frame_pattern(path, frames, frames_chosen)
    _check_no_space_padding(path, audience)
    _check_output_folder(path.parent, audience)
    if suffix in _FFMPEG:  # else a missing ffmpeg shows only once the video is made
        find_ffmpeg()
    return True


def _check_frame_pattern(path: Path, frames: int | None, frames_chosen: bool) -> None:
    """A .png output's frame-number pattern: one printf pattern for a PNG sequence (another tool's placeholder is
    refused with ours in its place), none for one image, which only a 1-frame video (`frames`, when known) can be;
    no pattern in any other format's name."""
    suffix = path.suffix.lower()
    patterns = FRAME_PATTERN.findall(path.name)
    if (foreign := foreign_frame_number_problem(path, frames, lambda ours: f"-o {quoted(ours)}")) is not None:
        raise MotifLiteError(foreign)
    if suffix == ".png" and (len(patterns) > 1 or path.name.count("%") != len(patterns)):
        raise MotifLiteError(
            f"a PNG sequence's name holds one frame-number pattern and no other %, got {path.name!r}; e.g. out_%03d.png"
        )
    if suffix == ".png" and not patterns and frames is not None and frames != 1:
        raise MotifLiteError(
            f"{path.name} is one image, and this video has {frames} frames: for a PNG per frame put a frame-number "
            f"pattern in the name, e.g. {quoted(path.with_name(f'{path.stem}_%03d.png'))}"
            + (" (or ask for one frame: --video-frames 1)" if frames_chosen else "")
        )
    if suffix != ".png" and patterns:
        raise MotifLiteError(f"frame-number patterns are only for .png sequences, got {path.name!r}")


def _check_no_space_padding(path: Path, audience: Audience) -> None:
    """Refuse a PNG sequence's pattern that pads with spaces (`fox_%5d.png`, printf's and Python's `%5d`:
    `fox_    7.png`), naming the zero-padded one. ffmpeg reads `%5d` as `%05d`, so `ffmpeg -i fox_%5d.png` would
    find none of the frames written, and a name with spaces splits in an unquoted shell loop. Not taken as %05d
    either: the name would then mean one file here and another in the user's own `name % i` or glob."""
    found = FRAME_PATTERN.search(path.name) if path.suffix.lower() == ".png" else None
    if found is None or found[0].startswith("%0") or int(found[0][1:-1] or 0) < 2:  # `%d`, `%1d`: no padding
        return
    zeros = path.with_name(path.name.replace(found[0], "%0" + found[0][1:], 1))
    spelled = Spelling(f"-o {quoted(zeros)}", f"output={str(zeros)!r}", f"output {zeros}").to(audience)
    raise MotifLiteError(
        f"{path.name} pads the frame number with spaces ({found[0]}: {path.name % 7!r}), where ffmpeg's "
        f"{found[0]} pads with zeros and reads none of those frames back; for zeros give {spelled}"
    )


def _check_output_folder(parent: Path, audience: Audience) -> None:
    """The output's folder exists (no file is in the way of it) and a file can be created there."""
    if (problem := output_folder_problem(parent, "output directory")) is not None:
        raise MotifLiteError(problem)
    check_writable_folder(parent, "output directory")  # by creating a file there: root passes os.access anywhere
    _check_not_full(parent, audience)


def _check_not_full(parent: Path, audience: Audience) -> None:
    """Refuse an output folder on a full disk before the work: the run (or decode) would fail only when it writes the
    video, minutes to hours later. Unknown free space (an OS that cannot say) lets it pass."""
    from motif_lite.units import file_size

    free = free_bytes(parent)
    if free is not None and free < FULL_DISK_BYTES:
        raise DiskFullError(
            f"the disk of output directory {parent} is full ({file_size(free)} free): free some space there, or "
            f"write the video to another disk ({Spelling('-o', 'output=', '-o').to(audience)})"
        )


# Other tools' frame-number placeholders: Blender's, Nuke's and Houdini's `####` (one digit per #), Python's
# `{:04d}` or `{}`, a script's `{frame}` (or `{frame_number}`, `{frame:04d}`, ...: a format string's field), C's
# `%04i`, and a shell glob's `*` (how a folder of frames is listed, not named).
_FOREIGN_FRAME_NUMBER = re.compile(
    r"#+|\{(?:frame(?:_?(?:number|num|index|idx))?)?(?::0?(\d*)d?)?\}|%(0?\d*)[iu]|\*", re.IGNORECASE
)


def foreign_frame_number_problem(path: Path, frames: int | None, spelled: Callable[[Path], str]) -> str | None:
    """The refusal of a .png output that writes its frame number as another tool does (`fox_{frame}.png`,
    `fox_####.png`), with ours in its place, given as `spelled` says an output (`-o 'fox_%03d.png'`, or in Python
    `output='fox_%03d.png'`); None for a name without one, and for one frame's, where `f_#.png` may be a plain name
    (`frames`: the video's, when known)."""
    if path.suffix.lower() != ".png" or FRAME_PATTERN.search(path.name) is not None:
        return None
    foreign = _foreign_frame_number(path.name)
    if foreign is None or ((frames or 1) <= 1 and "%" not in path.name):
        return None
    placeholder, ours = foreign
    return (
        f"{path.name} writes its frame number as another tool does ({placeholder}); motif-lite's PNG sequences "
        f"write it as printf's {ours}: {spelled(path.with_name(path.name.replace(placeholder, ours, 1)))}"
    )


def _foreign_frame_number(name: str) -> tuple[str, str] | None:
    """(the first of another tool's frame-number placeholders in `name`, the printf pattern that means the same),
    e.g. ("####", "%04d"); None without one. A placeholder of no stated width gets three digits, as out_%03d.png."""
    found = _FOREIGN_FRAME_NUMBER.search(name)
    if found is None:
        return None
    placeholder, braces_width, printf_width = found.group(0), found.group(1), found.group(2)
    if placeholder.startswith("#"):
        digits = str(len(placeholder)) if len(placeholder) > 1 else ""
    else:
        digits = (braces_width or printf_width or "").lstrip("0") or ("" if printf_width is not None else "3")
    return placeholder, f"%0{digits}d" if digits else "%d"


def _instead_of(path: Path) -> str:
    """What to write instead of an output format motif-lite does not write: for stable-diffusion.cpp's (an MJPEG
    .avi for a video, JPEG frames) the same output in ours, named; else the formats there are."""
    suffix = path.suffix.lower()
    if suffix == ".avi":
        return (f"use {quoted(path.with_suffix('.mp4'))} (or .mkv): H.264, smaller than stable-diffusion.cpp's "
                f"MJPEG AVI, plays where an AVI does; or {_FORMATS}")  # fmt: skip
    if suffix in _STILL_IMAGE_EXTENSIONS:  # the PNG sequence named once, as the name to give: not _FORMATS' too
        numbered = FRAME_PATTERN.search(path.stem) is not None
        stem = path.stem if numbered else f"{path.stem}_%03d"
        one = "" if numbered else f" ({quoted(path.with_suffix('.png'))} for a one-frame video)"
        return (f"for a file per frame use PNG, lossless: {quoted(path.with_name(f'{stem}.png'))}{one}; "
                f"or a video: {_VIDEO_FORMATS}")  # fmt: skip
    return f"use {_FORMATS}"


# C0 control characters and DEL: none belongs in a file name a script prints and reads back.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def check_no_control_character(output: str | Path, named: str = "output") -> None:
    """Refuse an output whose name holds a control character: a carriage return from a name read out of a CRLF file
    (`-o "$name.mp4"`), a line break from a multi-line prompt put in the name. The file would be named with it, out
    of sight in a listing, and a line break would split the `output:` line a script reads from stdout. `named`: how
    the message names the output (run's flag check: `-o`). One rule for run, decode and Python (`check_output_path`)."""
    if (control := _CONTROL_CHARACTER.search(str(output))) is None:
        return
    if control[0] == "\r":
        what = "a carriage return (\\r: a Windows line end, CRLF, of a name read line by line from a file)"
        fix = "remove it (tr -d '\\r' < names.txt, or name=${name%$'\\r'} in a shell loop)"
    else:
        what = f"a control character ({control[0]!r})"
        fix = "give a name without it"
    raise MotifLiteError(f"{named} {str(output)!r} holds {what}, which would end up in the file's name (and in the "
                         f"output: line a script reads); {fix}")  # fmt: skip


def _check_typed_output(given: str) -> None:
    """Refuse an output as typed that names no file to write: a URL (motif-lite writes a local file; a file:// URL is
    told its path) and a name ending in a space (pasted with it) or a dot, each with the -o to give."""
    if (local := file_url_path(given)) is not None:
        raise MotifLiteError(f"output {given} is a URL: give its path, -o {quoted(local)}")
    if is_url(given):
        name = Path(urllib.parse.urlparse(given).path).name or "fox.mp4"
        raise MotifLiteError(f"output {given} is a URL; motif-lite writes a file here: give its name, e.g. -o "
                             f"{quoted(name)}, and upload that file")  # fmt: skip
    if given.strip() and given != given.rstrip():
        raise MotifLiteError(f"output {given!r} ends in a space (pasted with the name?): -o {quoted(given.rstrip())}")
    named = given.rstrip(".")  # `-o x.mp4.`: Path sees no suffix, Windows drops the dot; `.` and `..` are folders
    if named != given and named and not named.endswith(("/", "\\")):
        raise MotifLiteError(f"output {given} ends in a dot: -o {quoted(named)}")


def _files_in(folder: Path) -> str:
    """The outputs to name in `folder`: a video file, or the PNG frames that a folder given as the output (the habit
    of tools that write one image per frame, such as ComfyUI's image nodes) may have meant."""
    return f"{quoted(folder / 'output.mp4')} (or {quoted(folder / 'output_%03d.png')} for a PNG per frame)"


def replaces_file(output: str | Path, frames: int, file: str | Path) -> bool:
    """Whether writing a `frames`-frame video to `output` (one file, or one PNG per frame for a `%d` pattern) would
    replace `file`: the run's input image, or its preview, would be lost to the video."""
    path = user_path(output)
    try:
        names = [path.name % i for i in range(frames)] if "%" in path.name else [path.name]
        # realpath, not Path.resolve: a symlink loop raises RuntimeError there (Python 3.11), a traceback in place
        # of the missing folder's error the output check gives
        target = os.path.realpath(user_path(file))
        return any(os.path.realpath(path.parent / name) == target for name in names)
    except (OSError, TypeError, ValueError):  # an odd pattern: check_output_path has said so
        return False


# A GIF stores each frame's time in 10 ms units (Pillow truncates 1000/fps to them, 16 bits), and browsers play a
# frame of 0 or 10 ms for 100 ms: above 50 fps a GIF plays at 10 fps, below 1/655 fps it cannot be written.
GIF_FPS = (100 / 65535, 50.0)
# A WebP stores each frame's time in whole ms, 24 bits (Pillow rounds the running time to ms, so a frame may get
# 1 ms more: hence 2^24 - 2), and libwebp counts the running time in a C int: past either, Pillow raised a bare
# RuntimeError or OverflowError after the whole run.
WEBP_MIN_FPS = 1000 / (2**24 - 2)
WEBP_MAX_MS = 2**31 - 1


def webp_length_problem(frames: int, fps: float) -> str | None:
    """Why `frames` frames at `fps` do not fit one WebP (its running time, in ms, passes WEBP_MAX_MS), or None."""
    if frames * (1000.0 / fps) <= WEBP_MAX_MS:
        return None
    return f"{frames} frames at {rate_said(fps)} last longer than a WebP can (2^31 ms, 24.9 days)"


def check_output_fps(
    path: str | Path,
    fps: float,
    advice: str = "give --fps in that range, or use .webp or .mp4",
    *,
    frames: int | None = None,
) -> None:
    """Fail early (`MotifLiteError`) for a frame rate the output's format cannot play (GIF: see GIF_FPS), with
    `advice` (where the frame rate is a run's own, as in a decode, --fps is no way out). `frames`: the frames the
    output will hold, when known: a WebP as long as they last at `fps` must fit its running time too."""
    low, high = GIF_FPS
    suffix = Path(path).suffix.lower()
    if suffix == ".webp" and fps < WEBP_MIN_FPS:
        raise MotifLiteError(
            f"fps {fps:g} does not fit a WebP, whose frames last under 2^24 ms (4.66 hours: {WEBP_MIN_FPS:.2g} fps "
            "at the least): write an .mp4"
        )
    if suffix == ".webp" and frames is not None and (too_long := webp_length_problem(frames, fps)) is not None:
        raise MotifLiteError(f"{too_long}: write an .mp4")
    if suffix == ".gif" and not low <= fps <= high:
        raise MotifLiteError(
            f"fps {fps:g} does not fit a GIF, which plays {low:.4f} to {high:g} fps (frame times in 10 ms steps; "
            f"browsers show shorter frames for 100 ms): {advice}"
        )


def check_crf(path: str | Path, crf: int | None, audience: Audience = Audience.RUN_OR_PYTHON) -> None:
    """Fail early (`MotifLiteError`) for a constant-rate factor the output's encoder cannot take: one outside its
    codec's range (`CRF_RANGES`: H.264 for .mp4 .mkv .mov, VP9 for .webm), or any for .webp, .gif and PNG, which no
    video encoder writes. None is each codec's default (18 for H.264, 30 for VP9). `audience`: whose spelling of a
    wrong value the message shows (a server's client sent JSON's `true`)."""
    if crf is None:
        return
    if isinstance(crf, bool) or not isinstance(crf, int):
        got = shown_as_sent(crf, audience)
        raise ConfigError(f"crf must be a whole number, e.g. 23, got {got}{whole_float_hint(crf)}")
    suffix = Path(path).suffix.lower()
    if suffix not in _FFMPEG:
        why = _NO_CRF.get(suffix, "it is no video encoder's")
        raise MotifLiteError(
            f"crf has no meaning for a {suffix or 'file without an extension'} output ({why}); it sets the quality "
            "of .mp4, .mkv, .mov (H.264) and .webm (VP9): leave it out, or write one of those"
        )
    encoder = _FFMPEG[suffix][0]
    low, high = CRF_RANGES[encoder.codec]
    if not low <= crf <= high:
        raise MotifLiteError(
            f"crf {crf} is outside {encoder.codec}'s range for {suffix}: {low} to {high}, lower is better and larger "
            f"(default {encoder.default_crf})"
        )


def default_crf(path: str | Path) -> int | None:
    """The constant-rate factor a `path` video is encoded at without a crf of the user's (18 for H.264, 30 for VP9);
    None for the formats no video encoder writes."""
    encoder = _FFMPEG.get(Path(path).suffix.lower())
    return None if encoder is None else encoder[0].default_crf


def stale_frames_note(path: str | Path, frames: int) -> str | None:
    """The note on the frames of an earlier, longer PNG sequence under the pattern `path` that a `frames`-frame
    video leaves in place: numbered right after its own, they would play as part of it (`ffmpeg -i out_%03d.png`
    reads on while the numbers go on). None for other formats or when there are none."""
    path = user_path(path)
    if not is_frame_sequence(path):
        return None
    stale = list(itertools.takewhile(Path.exists, (frame_file(path, i) for i in itertools.count(frames))))
    if not stale:
        return None
    files = stale[0].name if len(stale) == 1 else f"{stale[0].name} to {stale[-1].name}"
    return (
        f"{files} in {path.parent}, from an earlier, longer sequence, stay after this video's {frames} frames and "
        f"would play as part of it: delete them, or give -o another name"
    )


def to_uint8_frames(chunk: Chunk) -> np.ndarray:
    """Convert one chunk to uint8 `[F, H, W, 3]`, matching diffusers' postprocessing bit for bit.

    Float input (`[3, F, H, W]` or `[1, 3, F, H, W]`, in [-1, 1]) follows `VideoProcessor.postprocess_video`
    with `output_type="pil"` (the pipeline default): `(x * 0.5 + 0.5).clamp(0, 1)` in the input dtype, then
    float32, `* 255`, round half to even, uint8. (diffusers' `export_to_video` on `output_type="np"` frames
    truncates instead of rounding, so it can be one level darker.)
    """
    if isinstance(chunk, np.ndarray):
        chunk = torch.from_numpy(chunk)
    if not isinstance(chunk, torch.Tensor):
        raise ConfigError(f"frames must be tensors or numpy arrays, got {type(chunk).__name__}")
    if chunk.dtype == torch.uint8:
        if chunk.ndim != 4 or chunk.shape[-1] != 3:
            raise ConfigError(f"uint8 frames must be [F, H, W, 3], got shape {tuple(chunk.shape)}")
        return chunk.cpu().numpy()
    if chunk.ndim == 5 and chunk.shape[0] == 1:
        chunk = chunk[0]
    if not chunk.is_floating_point() or chunk.ndim != 4 or chunk.shape[0] != 3:
        raise ConfigError(f"float frames must be [3, F, H, W] in [-1, 1], got {chunk.dtype} {tuple(chunk.shape)}")
    unit = (chunk * 0.5 + 0.5).clamp(0, 1)
    return (unit.permute(1, 2, 3, 0).cpu().float() * 255).round().to(torch.uint8).numpy()


def _frames(source: FrameSource) -> Iterator[np.ndarray]:
    chunks = [source] if isinstance(source, (torch.Tensor, np.ndarray)) else source
    for chunk in chunks:
        yield from to_uint8_frames(chunk)  # converts one chunk at a time


def write_video(
    frames: FrameSource, path: str | Path, fps: float, metadata: dict | None = None, *, crf: int | None = None
) -> Path:
    """Write frames to `path` (format from the extension) and return the path.

    `frames` is one chunk or an iterable of chunks (see the module doc). `metadata` (prompt, seed, settings)
    is stored as JSON in the container's comment (mp4/webm), the GIF comment, the WebP EXIF description,
    or a `comment` text chunk of every PNG. `crf`: the encoder's constant-rate factor for .mp4/.mkv/.mov (H.264,
    0-51) and .webm (VP9, 0-63), lower is better and larger; None keeps the codec's default (18, 30). Other formats
    refuse one (`check_crf`).
    """
    check_output_path(path)
    if not (math.isfinite(fps) and fps > 0):  # inf would write 0 ms frames, or fail in Fraction after the run
        raise ConfigError(f"fps must be a finite number > 0, got {fps}")
    check_output_fps(path, fps)
    check_crf(path, crf)
    path = user_path(path)
    stream = _frames(frames)
    first = next(stream, None)
    if first is None:
        raise ConfigError(f"no frames to write to {path}")
    stream = itertools.chain([first], stream)
    comment = json.dumps(metadata or {}, sort_keys=True, default=str)
    suffix = path.suffix.lower()
    if suffix in _FFMPEG:
        _write_ffmpeg(stream, path, fps, comment, first.shape, crf)
    elif is_frame_sequence(path):
        _write_png_sequence(stream, path, fps, comment)
    elif suffix == ".png":
        _write_png_image(stream, path, fps, comment)
    else:
        _write_pillow_animation(stream, path, fps, comment)
    return path


def _write_ffmpeg(
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
    encoder, container = _FFMPEG[path.suffix.lower()]
    quality = str(encoder.default_crf if crf is None else crf)
    rate = str(Fraction(fps).limit_denominator())  # a fraction, so that 24000/1001 is not rounded
    frames = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", rate, "-i", "-"]
    tags = ["-f", "ffmetadata", "-i", str(metadata), "-map", "0:v", "-map_metadata", "1"]
    encode = ["-an", *_BT709, "-c:v", encoder.name, "-pix_fmt", "yuv420p", "-crf", quality, *encoder.options]
    encode += container
    return [find_ffmpeg(), "-y", "-nostdin", "-v", "error", *frames, *tags, *encode, file_argument(path)]


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


def _unenterable_output(path: Path, audience: Audience) -> str:
    """Why the output `path` cannot be written, where a folder on its way (its own included) may not be entered: at
    the start (`-o` in another user's home), or at the decode, once its permissions changed as the run went on."""
    return (
        f"the output's folder {path.parent} cannot be reached: this process may not enter {closed_on_the_way(path)} "
        f"(it needs x, search permission there): write the video to another folder "
        f"({Spelling('-o', 'output=', '-o').to(audience)})"
    )


def _write_png_sequence(stream: Iterator[np.ndarray], path: Path, fps: float, comment: str) -> None:
    for index, frame in enumerate(stream):
        _write_png(frame, frame_file(path, index), fps, comment)


def _write_png_image(stream: Iterator[np.ndarray], path: Path, fps: float, comment: str) -> None:
    """A one-frame video as one PNG image (`check_output_path` refuses a longer video before it is made)."""
    frame = next(stream)
    if next(stream, None) is not None:
        raise ConfigError(f"{output_of(path)} is one image, but the video has more than one frame")
    _write_png(frame, path, fps, comment)


def _write_png(frame: np.ndarray, file: Path, fps: float, comment: str) -> None:
    info = PngInfo()
    info.add_text("comment", comment)
    info.add_text("fps", str(fps))
    try:
        PIL.Image.fromarray(frame).save(file, pnginfo=info, compress_level=6)
    except OSError as exc:
        raise MotifLiteError(f"cannot write {output_of(file)}: {exc.strerror or exc}") from None


def _write_pillow_animation(stream: Iterator[np.ndarray], path: Path, fps: float, comment: str) -> None:
    images = [PIL.Image.fromarray(frame) for frame in stream]  # one uint8 copy; float chunks are gone
    duration = 1000.0 / fps  # ms per frame; GIF stores 10 ms units, so it rounds (24 fps -> 40 ms)
    # A run and a decode refuse it before sampling (`check_output_fps`); a stream's length is known only here.
    if path.suffix.lower() == ".webp" and (too_long := webp_length_problem(len(images), fps)) is not None:
        raise MotifLiteError(f"cannot write {output_of(path)}: {too_long}; write an .mp4")
    options: dict = {"save_all": True, "append_images": images[1:], "duration": duration, "loop": 0}
    if path.suffix.lower() == ".gif":
        options["comment"] = comment
    else:
        exif = PIL.Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = comment
        options.update(lossless=False, quality=90, exif=exif.tobytes())
    try:
        images[0].save(path, **options)
    except (OSError, RuntimeError) as exc:  # RuntimeError: what libwebp's encoder refuses ("ERROR adding frame")
        reason = getattr(exc, "strerror", None) or exc  # a RuntimeError has no strerror
        raise MotifLiteError(f"cannot write {output_of(path)}: {reason}") from None
