"""The output's name, checked before any work (`check_output_path`): its format and frame-number pattern, its
folder (there, one a file can be created in, on a disk with room) and a name typed wrong (a URL, a control
character, a trailing space or dot); and what writing it would replace (`replaces_file`) or leave beside it
(`stale_frames_note`)."""

from __future__ import annotations

import itertools
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from motif_lite.choices import VIDEO_EXTENSIONS
from motif_lite.errors import Audience, DiskFullError, MotifLiteError, Spelling
from motif_lite.io.ffmpeg import find_ffmpeg
from motif_lite.io.output_formats import FFMPEG
from motif_lite.io.staging import (
    FRAME_PATTERN,
    FULL_DISK_BYTES,
    PARTIAL_PREFIX,
    check_writable_folder,
    closed_on_the_way,
    frame_file,
    free_bytes,
    is_frame_sequence,
    output_folder_problem,
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
from motif_lite.shell_syntax import quoted

_VIDEO_FORMATS = ".mp4, .mkv, .mov, .webm, .webp or .gif"
_FORMATS = ".mp4, .mkv, .mov, .webm, .webp, .gif, or out_%03d.png for a PNG per frame (out.png: one frame)"
_STILL_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # a frame format: a PNG per frame instead


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
    if suffix in FFMPEG:  # else a missing ffmpeg shows only once the video is made
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


def _unenterable_output(path: Path, audience: Audience) -> str:
    """Why the output `path` cannot be written, where a folder on its way (its own included) may not be entered: at
    the start (`-o` in another user's home), or at the decode, once its permissions changed as the run went on."""
    return (
        f"the output's folder {path.parent} cannot be reached: this process may not enter {closed_on_the_way(path)} "
        f"(it needs x, search permission there): write the video to another folder "
        f"({Spelling('-o', 'output=', '-o').to(audience)})"
    )


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


def narrow_frame_numbers_note(path: str | Path, frames: int) -> str | None:
    """The note on a PNG sequence whose pattern pads fewer digits than its last frame number has (`out_%03d.png` for
    1001 frames: `out_1000.png`): sorted by name, as file browsers and some editors' sequence imports do, that frame
    comes between `out_100.png` and `out_101.png`. None for other formats, for `%d` (no padding asked for) and when
    every number fits."""
    path = user_path(path)
    width = FRAME_PATTERN.search(path.name) if is_frame_sequence(path) else None
    digits = int(width[0][1:-1] or 0) if width is not None else 0
    needed = len(str(frames - 1))
    if not digits or needed <= digits:
        return None
    wider = path.with_name(FRAME_PATTERN.sub(f"%0{needed}d", path.name, count=1))
    return (
        f"{path.name} pads frame numbers to {digits} digits, but this video's {frames} frames go up to "
        f"{frame_file(path, frames - 1).name}: sorted by name (a file browser, an editor's sequence import) it comes "
        f"between {frame_file(path, 10 ** (needed - 2)).name} and {frame_file(path, 10 ** (needed - 2) + 1).name}; "
        f"-o {quoted(str(wider))} keeps every name {needed} digits"
    )
