"""A clip to go on from (`run --extend`): its size, frame rate and frame count, checked before any work; its last
frame (the next video's first frame); its frames again, one at a time, as the longer video is written.

A clip is a video file ffmpeg reads (.mp4, .mkv, .mov, .webm, an animated GIF, WebP or PNG, ...: imageio-ffmpeg's
ffmpeg decodes it to RGB) or a PNG sequence such as motif-lite writes (`fox_%03d.png`: frames 0, 1, ... until one is
missing, or from 1 as ffmpeg, Blender and ComfyUI number them; lossless). The frames are never all in memory: they
are decoded when needed, once for the last frame and once more while writing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from motif_lite.errors import Audience, MotifLiteError
from motif_lite.frame_rates import rate_said
from motif_lite.io.container_ends import cut_short_by_its_sizes, ends_a_png
from motif_lite.io.ffmpeg import (
    OWN_PROCESS_GROUP,
    each_frame_once,
    ffmpeg_process,
    file_argument,
    find_ffmpeg,
    last_line,
)
from motif_lite.io.png_chunks import animated_png_rate, is_animated_png
from motif_lite.io.rgb import to_rgb8
from motif_lite.io.staging import (
    FIRST_FRAME_NUMBERS,
    FRAME_PATTERN,
    first_frame_number,
    frame_file,
    is_frame_sequence,
)
from motif_lite.log_filters import filtered_log
from motif_lite.paths import blank_path_problem, url_fix, user_path, windows_path_problem
from motif_lite.shell_syntax import quoted

DEFAULT_FPS = 24.0  # a PNG sequence that does not say its rate (motif-lite's store it in each frame)
# The transfer functions of HDR video as ffmpeg names them in a video stream's description: phones record HLG
# (iPhones by default) or PQ (HDR10, HDR10+).
HDR_TRANSFERS = {"arib-std-b67": "HLG", "smpte2084": "PQ"}
# zscale's tone mapping of HDR video to SDR BT.709 (zimg is in imageio-ffmpeg's ffmpeg and most builds).
TO_SDR = (
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
    "zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)


class ClipError(MotifLiteError):
    """A clip given to go on from that cannot be used (missing, not a video, one frame, ...)."""


@dataclass(frozen=True)
class Clip:
    """A clip to go on from: `path` (a file, or a PNG sequence's pattern), its frame count, size and rate."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    has_sound: bool = False  # an audio stream, which the longer video does not keep
    first: int = 0  # a PNG sequence's first frame number (FIRST_FRAME_NUMBERS)
    hdr: str | None = None  # an HDR video's transfer (HDR_TRANSFERS), read as stored: without tone mapping
    # A video file with no colour matrix tag at an HD size, which players show as BT.709 (but one an older motif-lite
    # wrote, whose frames it converted with BT.601: `_written_by_motif_lite`).
    untagged_hd: bool = False
    # The width of its pixels over their height (a DV or DVD clip's 64/45: 720x576 shown 16:9); written videos'
    # pixels are square.
    pixel_aspect: Fraction = Fraction(1)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    @property
    def files(self) -> list[Path]:
        """The files the clip is read from: one video file, or each frame of a PNG sequence."""
        if is_frame_sequence(self.path):
            return [frame_file(self.path, index) for index in range(self.first, self.first + self.frames)]
        return [self.path]

    def describe(self) -> str:
        """The clip in a few words, for notes: `fox.mp4 (121 frames, 1280x736 at 24 fps)`."""
        return f"{self.path.name} ({self.frames} frames, {self.width}x{self.height} at {rate_said(self.fps)})"


def _no_clip_file(path: Path) -> str:
    """The error for a clip path that is no file: a Windows path, `-` (standard input) or a pipe (piped /dev/stdin,
    a shell's <(...)), which would be read once where the clip is read twice, else not found."""
    if (windows := windows_path_problem(str(path))) is not None:
        return f"the clip to extend: {windows}"
    if str(path) == "-":  # many tools' standard input
        return "the clip to extend, -: no clip is read from standard input; save it to a file and give its path"
    if path.exists():
        return (
            f"the clip to extend, {path}, is not a regular file (a pipe, such as piped standard input or a shell's "
            "<(...)): the clip is read twice (its last frame first, all its frames as the video is written), so save "
            "it to a file first and give that"
        )
    return f"the clip to extend was not found: {path}"


def read_clip(path: str | Path, *, frames: int | None = None, audience: Audience = Audience.RUN_OR_PYTHON) -> Clip:
    """The clip at `path`, checked: it exists, is a video (or a PNG sequence) and has more than one frame; decodes
    it once to count its frames (a second or two for a 5-second 720p clip). `ClipError` with what to do otherwise.
    `frames`: a video file's frame count where the caller knows it (the server, of a video it wrote): the file is
    then checked from its container's sizes and ffmpeg's header alone, not decoded to count them. A PNG sequence's
    frames are counted from its files either way (no pixels are read). `audience`: whom the messages about an image
    given as the clip speak to: run's `-i FILE` is the API's `input_reference` (for a file a client uploaded)."""
    if blank := blank_path_problem(path, "the clip to extend", "give the path of a video, or leave extend out (None)"):
        raise ClipError(blank)
    if (fix := url_fix(str(path), "--extend", "clip.mp4")) is not None:  # not "not found: https:/..."
        # Only run and Python reach this (a server's extend is an id or an upload): the keyword named too.
        in_python = "" if audience is Audience.FLAGS else " (in Python extend= that file)"
        raise ClipError(f"the clip to extend, {path}, is a URL; motif-lite reads local files only: {fix}{in_python}")
    path = user_path(path)
    if is_frame_sequence(path):
        return _read_png_sequence(path, audience)
    if path.is_dir():
        raise ClipError(_folder_given(path))
    if _is_image_pattern(path) and not path.is_file():  # `frames/fox_%03d.jpg`
        raise ClipError(_not_png_frames(path))
    if not path.is_file():
        raise ClipError(_no_clip_file(path))
    if (path.suffix.lower() == ".png" and not is_animated_png(path)) or _is_image(path):  # an APNG is a clip
        raise ClipError(f"{path.name} is one image, not a clip: {_image_fix(path, audience)}")
    try:
        return _read_video_file(path, frames, audience)
    except PermissionError as exc:  # was a traceback from the check of its sizes
        raise ClipError(f"cannot read the clip to extend, {path}: {exc.strerror}") from None


def _image_fix(path: Path, audience: Audience) -> str:
    """What to do with an image given as the clip: start a video from it; or give the pattern of its PNG sequence
    (an uploaded file is one file: the API's client has no sequence to give)."""
    if audience is Audience.API:
        return "to start a video from it, send it as input_reference"
    sequence = _sequence_pattern(path.parent, like=path.name)
    pattern = (
        f"for the PNG sequence it is a frame of, give its pattern, --extend {quoted(sequence)}"
        if sequence
        else "for a PNG sequence give its pattern (e.g. fox_%03d.png)"
    )
    return f"to start a video from it use -i {quoted(path)}; {pattern}"


def _folder_given(folder: Path) -> str:
    """What to say of a folder given as the clip: the pattern of the frames in it (a PNG sequence's, or the command
    that makes one of other frames), else what to give."""
    pattern = _sequence_pattern(folder)
    if pattern is None:
        return (f"the clip to extend, {folder}, is a directory: give the video file (or a PNG sequence's pattern, "
                "e.g. frames/fox_%03d.png)")  # fmt: skip
    if pattern.suffix.lower() == ".png":
        return (
            f"the clip to extend, {folder}, is a folder of PNG frames: give their pattern, --extend {quoted(pattern)}"
        )
    return f"the clip to extend, {folder}, is a folder of frames: {_not_png_frames(pattern)}"


def _not_png_frames(pattern: Path) -> str:
    """The fix for frames of a sequence that are not PNG (`fox_%03d.jpg`): ffmpeg's command that writes them as one."""
    png = pattern.with_suffix(".png")
    return (f"a sequence of frames is read from PNG files only, and {pattern.name} names {pattern.suffix} files: "
            f"convert them first, ffmpeg -i {quoted(pattern)} -start_number 0 {quoted(png)}, then give "
            f"--extend {quoted(png)}")  # fmt: skip


# A frame of a sequence: a name, then its number (the last digits), maybe more, then an image's extension.
_NUMBERED_FRAME = re.compile(r"([^%]*?)(\d+)([^\d%]*)(\.(?:png|jpe?g|webp|tiff?|bmp))", re.IGNORECASE)
_FRAME_SUFFIXES = (".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")  # frames of a sequence that is not PNG


def _is_image_pattern(path: Path) -> bool:
    """Whether `path` names a sequence of frames other than PNG (`fox_%03d.jpg`), which ffmpeg reads but this does
    not (a video's name with a `%d` in it is none)."""
    return path.suffix.lower() in _FRAME_SUFFIXES and FRAME_PATTERN.search(path.name) is not None


def _sequence_pattern(folder: Path, like: str | None = None) -> Path | None:
    """The pattern of the numbered frames in `folder` (`fox_000.png`, `fox_001.png`, ... -> `fox_%03d.png`,
    `ComfyUI_00001_.png` -> `ComfyUI_%05d_.png`): of those named like `like` (a frame's file name), else of the
    most frames that share a name; None when there are not two."""
    named: dict[tuple[str, ...], list[str]] = {}
    with contextlib.suppress(OSError):  # an unreadable folder: the plain message
        for file in folder.iterdir():
            if (match := _NUMBERED_FRAME.fullmatch(file.name)) is not None:
                prefix, number, after, suffix = match.groups()
                named.setdefault((prefix, after, suffix), []).append(number)
    if like is not None:
        match = _NUMBERED_FRAME.fullmatch(like)
        key = None if match is None else (match[1], match[3], match[4])
    else:
        key = max(named, key=lambda name: len(named[name]), default=None)
    numbers = named.get(key, []) if key is not None else []
    if len(numbers) < 2:
        return None
    first = min(numbers, key=int)  # zero-padded (`000`) when the sequence is, which its first number shows
    digits = f"%0{len(first)}d" if len(first) > 1 and first.startswith("0") else "%d"
    prefix, after, suffix = key
    return folder / f"{prefix}{digits}{after}{suffix}"


def hdr_note(clip: Clip, *, audience: Audience = Audience.RUN_OR_PYTHON) -> str | None:
    """A note for an HDR clip (a phone's, recorded in HLG): ffmpeg turns its frames into RGB as stored, without tone
    mapping, so they look washed out in the longer video, which is SDR, and the new frames go on from that look;
    with the command that makes an SDR copy, and what to do with it (`go_on_from_it`). None for other clips."""
    if clip.hdr is None:
        return None
    sdr = clip.path.with_name(f"{clip.path.stem}-sdr.mp4")
    return (f"{clip.path.name} is HDR video ({clip.hdr}, as phones often record): its frames are read without tone "
            "mapping, so they look washed out in the longer video (SDR), and the new frames go on from that "
            f"look; convert it to SDR first, ffmpeg -i {quoted(clip.path)} -vf {TO_SDR} -crf 18 {quoted(sdr)}, "
            f"{go_on_from_it(audience)}")  # fmt: skip


def go_on_from_it(audience: Audience) -> str:
    """The end of a message that gives the command making a fixed copy of the clip: go on from the copy. A run's
    user extends it (`--extend`, `extend=`); the API's client sends it (as `extend`, or `video` on the extensions
    route: either field)."""
    return "and send that" if audience is Audience.API else "and extend that"


def clip_frames(clip: Clip) -> Iterator[np.ndarray]:
    """The clip's frames in order, each a uint8 `[H, W, 3]` array, decoded one at a time. A clip that is no longer
    there (read again after a run's sampling, minutes after `read_clip`) is said to be moved or deleted."""
    if is_frame_sequence(clip.path):
        for file in clip.files:
            _check_still_there(file)
            yield _read_png(file)
        return
    _check_still_there(clip.path)
    yield from _decoded_frames(clip)


def _check_still_there(file: Path) -> None:
    if not file.is_file():
        raise ClipError(f"{file} was moved or deleted since the run read it: put it back there")


def _decoded_frames(clip: Clip) -> Iterator[np.ndarray]:
    """A video file's frames from ffmpeg, as RGB at the size `read_clip` found (upright: ffmpeg turns a rotated
    clip's frames as it did there). ffmpeg runs here rather than through imageio-ffmpeg's reader, which leaves the
    pipes of an ffmpeg that finished to the garbage collector (a ResourceWarning for each clip read to its end);
    `ffmpeg_process` closes them and waits for ffmpeg however the reading ends."""
    exe = find_ffmpeg()  # a clear message when there is none
    # Each stored frame once, as many as the clip counts (a variable-rate clip would come out with frames repeated).
    command = [exe, "-nostdin", "-v", "error", "-i", file_argument(clip.path), *_untagged_hd_as_bt709(clip),
               "-f", "rawvideo", "-pix_fmt", "rgb24", *each_frame_once(exe), "-"]  # fmt: skip
    frame_bytes = clip.width * clip.height * 3
    with ffmpeg_process(command, stdout=subprocess.PIPE) as (process, said):  # stopping early kills ffmpeg
        while frame := process.stdout.read(frame_bytes):
            if len(frame) < frame_bytes:
                raise ClipError(f"{clip.path} ended in the middle of a frame: it changed since it was read, "
                                "or is damaged; give it again, or write it again")  # fmt: skip
            yield np.frombuffer(bytearray(frame), np.uint8).reshape(clip.height, clip.width, 3)  # writable
        if process.wait() != 0:
            _check_still_there(clip.path)  # deleted as ffmpeg opened it: not a file that fails to play
            error = said()
            raise ClipError(f"ffmpeg could not decode {clip.path}" + (f": {error}" if error else "")
                            + "; give a video that plays, or write it again")  # fmt: skip


def _untagged_hd_as_bt709(clip: Clip) -> list[str]:
    """ffmpeg's options that decode an untagged HD clip with the BT.709 matrix, as browsers, QuickTime, mpv and
    editors show it; ffmpeg alone decodes every untagged video as BT.601, so an HD clip's frames (and the first
    frame of the new ones) came out with other colours than the clip played with (its pure red 251 as 229). A
    tagged clip is decoded as its tag says, which ffmpeg does by itself."""
    return ["-vf", "scale=in_color_matrix=bt709"] if clip.untagged_hd else []


def is_hd(width: int, height: int) -> bool:
    """Whether players take an untagged video of this size for HD, BT.709, rather than SD, BT.601: mpv's rule,
    wider than 1279 or taller than 576 (PAL's height)."""
    return width >= 1280 or height > 576


def last_frame(clip: Clip) -> PIL.Image.Image:
    """The clip's last frame as an RGB image: the first frame of the video that goes on from it."""
    if is_frame_sequence(clip.path):
        return PIL.Image.fromarray(_read_png(clip.files[-1]))
    last = None
    for last in clip_frames(clip):  # noqa: B007 (the loop keeps the last one)
        pass
    if last is None:
        raise ClipError(f"no frames could be read from {clip.path}")
    return PIL.Image.fromarray(last.copy())


def last_frame_file(path: str | Path) -> Path:
    """The file holding a clip's last frame: the video file itself, or a PNG sequence's last frame (what the
    encodings of its last frame depend on)."""
    path = user_path(path)
    if not is_frame_sequence(path):
        return path
    first = first_frame_number(path)
    return frame_file(path, 0 if first is None else _frame_numbers(path, first)[-1])


def is_clip_file(clip: str | Path, file: str | Path) -> bool:
    """Whether `file` is one the clip at `clip` is read from: the video file, or a frame of a PNG sequence, or the
    frame after its last or one before its first, which would join it (checked before a run writes `file`, as the
    clip is read again)."""
    target = user_path(file).resolve()
    path = user_path(clip)
    if not is_frame_sequence(path):
        return path.resolve() == target
    first = first_frame_number(path) or 0
    for index in itertools.count():
        frame = frame_file(path, index)
        if frame.resolve() == target:
            return True
        if index >= first and not frame.is_file():
            return False


def joined_frames(clip: Clip, new: Iterable[torch.Tensor]) -> Iterator[torch.Tensor | np.ndarray]:
    """The longer video's frames, as `write_video` takes them: the clip's frames, then the `new` ones without their
    first, which is the clip's last frame again (decoded from its latents, so not bit for bit the clip's)."""
    for frame in clip_frames(clip):
        yield frame[None]  # [1, H, W, 3] uint8
    first = True
    for chunk in new:  # float [3, n, H, W], as decoded
        if first:
            chunk, first = chunk[:, 1:], False
        if chunk.numel():
            yield chunk


def _read_video_file(path: Path, frames: int | None, audience: Audience) -> Clip:
    import imageio_ffmpeg

    find_ffmpeg()
    missing = cut_short_by_its_sizes(path)
    if missing is not None:
        raise _cut_short(path, missing)
    try:
        with _upright_frames_expected():
            meta = _video_header(path)
        if frames is None:  # counting them decodes the whole video
            frames, _ = imageio_ffmpeg.count_frames_and_secs(file_argument(path))
    except (OSError, RuntimeError):  # ffmpeg found no video stream in it: not a video, an audio file, damaged
        raise ClipError(f"{path} has no video that ffmpeg can read (not a video file, only audio, or damaged): give "
                        "a video such as an .mp4 motif-lite wrote") from None  # fmt: skip
    width, height = meta["size"]
    if frames < 2:
        raise _one_frame(path, frames, audience)
    # An animated PNG's frames' delays, where it has them: ffmpeg's header gives no rate for one of two frames, and
    # for delays that differ a rate of its own (12 fps where they make 9.09): frames kept as they are, each once,
    # play as long as the animation only at frames / total delay.
    fps = float(_rate_written(path) or animated_png_rate(path) or meta.get("exact_fps") or DEFAULT_FPS)
    hdr = next((kind for name, kind in HDR_TRANSFERS.items() if name in str(meta.get("pix_fmt"))), None)
    # JPEG's full-range YUV (yuvj420p) is BT.601 by its standard, whatever the size: a video made from JPEG stills
    # untagged (a camera's MJPEG comes tagged BT.601 by ffmpeg's decoder already).
    full_range_jpeg = str(meta.get("pix_fmt")).startswith("yuvj")
    untagged_hd = meta["color_space"] == "unknown" and is_hd(width, height) and not full_range_jpeg
    untagged_hd = untagged_hd and not _written_by_motif_lite(path)
    sound = bool(meta.get("audio_codec"))
    aspect = meta["pixel_aspect"]
    return Clip(
        path, frames, width, height, fps, has_sound=sound, hdr=hdr, untagged_hd=untagged_hd, pixel_aspect=aspect
    )


def _written_by_motif_lite(path: Path) -> bool:
    """Whether motif-lite wrote the video at `path` (its settings are in the file). Asked of an untagged one only:
    motif-lite tags every video it writes since 2026-12-02, and before it converted with ffmpeg's default, BT.601,
    and tagged nothing; decoding such a video as BT.601 gives back the frames its run made (read as BT.709, an
    extension of it shifted their colours: pure red came back as 255, 23, 0)."""
    from motif_lite.io.settings_file import read_settings

    try:
        read_settings(path)
    except MotifLiteError:  # another tool's video, or one without its comment
        return False
    return True


def _video_header(path: Path) -> dict:
    """ffmpeg's description of the video in `path` as imageio-ffmpeg's reader gives it (the size its frames come out
    at, upright; its rate, pixel format and audio codec), from a decode of its first frame, `exact_fps`, its rate
    as a fraction gives it (`_exact_rate`), `color_space`, its matrix tag as showinfo says it ("unknown" where it
    has none; None where showinfo says nothing), and `pixel_aspect`, its pixels' width over height; OSError when
    there is no video in it. ffmpeg runs here through `subprocess.run`, which closes its pipes: imageio-ffmpeg's
    reader left those of an ffmpeg that had already finished (a clip of a few small frames) to the garbage
    collector."""
    from imageio_ffmpeg._parsing import parse_ffmpeg_header  # its reader's parser, which has no public name

    # The output options of imageio-ffmpeg's reader: the output stream's size is that of the frames decoded later.
    # showinfo (it changes no frame) says the rate as the fraction it is.
    command = [find_ffmpeg(), "-nostdin", "-i", file_argument(path), "-frames:v", "1", "-vf", "showinfo", "-pix_fmt",
               "rgb24", "-vcodec", "rawvideo", "-f", "image2pipe", "-"]  # fmt: skip
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, **OWN_PROCESS_GROUP)
    said = done.stderr.decode(errors="replace")
    if done.returncode != 0 or " Video: " not in said:  # no video stream, or none ffmpeg can decode
        raise OSError(last_line(done.stderr) or f"ffmpeg exited with {done.returncode}")
    meta = parse_ffmpeg_header(said)
    color_space = re.search(r"color_space:(\S+)", said)  # showinfo's: "unknown" where the video has no tag
    # The input stream's sample aspect ratio, where it says one (SAR 0:1 is none: square).
    sar = re.search(r"Video: .*?\[SAR (\d+):(\d+) DAR", said)
    pixel_aspect = (
        Fraction(int(sar[1]), int(sar[2])) if sar is not None and int(sar[1]) and int(sar[2]) else Fraction(1)
    )
    return {
        **meta,
        "exact_fps": _exact_rate(said, meta.get("fps") or 0.0),
        "color_space": color_space and color_space[1],
        "pixel_aspect": pixel_aspect,
    }


def _exact_rate(said: str, rounded: float) -> float:
    """The rate of the video ffmpeg described in `said`, from showinfo's fraction (24000/1001), where that is the
    rate its header says rounded to two decimals (23.98): the clip's rate becomes the longer video's, and 23.98 would
    write it at 1199/50 fps, not NTSC's. `rounded` as it is where showinfo says none or another (a variable-rate
    clip's header gives its average rate, showinfo a guess of its own)."""
    found = re.search(r"config in time_base: \S+, frame_rate: (\d+)/(\d+)", said)
    if found is None or int(found[2]) == 0:
        return rounded
    exact = Fraction(int(found[1]), int(found[2]))
    return float(exact) if abs(exact - Fraction(rounded)) <= Fraction(1, 200) else rounded


def _cut_short(path: Path, said: str) -> ClipError:
    return ClipError(f"{path} is cut short (a copy interrupted, a disk that filled?): {said}; copy or write it again")


@contextlib.contextmanager
def _upright_frames_expected() -> Iterator[None]:
    """While inside, imageio-ffmpeg does not warn that a video's frames are read at another size than stored: a
    phone's portrait clip is stored sideways with a rotation, and ffmpeg turns its frames upright, as players show
    them and as the clip's size says (one line per read, five per run, would say nothing to do)."""

    def not_the_turn(record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()

    with filtered_log("imageio_ffmpeg", not_the_turn):
        yield


def _rate_written(path: Path) -> float | None:
    """The frame rate motif-lite wrote a GIF or WebP at, from the settings it keeps: these formats store whole
    milliseconds per frame (a GIF tens of them), which ffmpeg reads back as another rate (a 24 fps GIF as 25)."""
    from motif_lite.io.settings_file import read_settings

    if path.suffix.lower() not in (".gif", ".webp"):
        return None
    try:
        fps = read_settings(path).values.get("fps")
    except MotifLiteError:  # not written by motif-lite: ffmpeg's rate is all there is
        return None
    return float(fps) if isinstance(fps, int | float) and not isinstance(fps, bool) and fps > 0 else None


def _read_png_sequence(pattern: Path, audience: Audience) -> Clip:
    number = first_frame_number(pattern)
    if number is None:
        low, high = (frame_file(pattern, n).name for n in (FIRST_FRAME_NUMBERS[0], FIRST_FRAME_NUMBERS[-1]))
        raise ClipError(f"the clip to extend was not found: {pattern} has no frame {low} (nor any up to {high}, "
                        "where a sequence may start)")  # fmt: skip
    numbers = _frame_numbers(pattern, number)
    if len(numbers) < 2:
        raise _one_frame(pattern, len(numbers), audience, first=number)
    first = frame_file(pattern, number)
    (width, height), fps = _png_header(first)
    # Every frame's header (no pixels: cheap): one of another size, or not an image, would fail the writing of the
    # longer video only after sampling.
    for index in numbers[1:]:
        frame = frame_file(pattern, index)
        size, _ = _png_header(frame)
        if size != (width, height):
            raise ClipError(f"{frame.name} is {size[0]}x{size[1]} and {first.name} {width}x{height}: the "
                            f"frames of {pattern.name} must be of one size")  # fmt: skip
    return Clip(pattern, len(numbers), width, height, fps, first=number)


def _frame_numbers(pattern: Path, first: int) -> range:
    """The numbers of a PNG sequence's frames: from `first` until one is missing."""
    last = first
    while frame_file(pattern, last + 1).is_file():
        last += 1
    return range(first, last + 1)


def _png_header(file: Path) -> tuple[tuple[int, int], float]:
    """A frame's size and the frame rate its `fps` text says (motif-lite writes one; the default where it is missing
    or no rate, as after a hand edit), from its header alone; and that the file is whole (`ends_a_png`)."""
    try:
        with PIL.Image.open(file) as image:
            size, said, is_png = image.size, image.info.get("fps"), image.format == "PNG"
        whole = not is_png or ends_a_png(file)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
        raise ClipError(f"cannot read {file}, a frame of the clip to extend: {exc}") from None
    if not whole:  # it would fail only as the longer video is written, after the sampling
        raise _cut_short(file, "a frame of the clip to extend, it lacks a PNG's end")
    try:
        fps = float(said)
    except (TypeError, ValueError):
        fps = DEFAULT_FPS
    return size, fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS


def _one_frame(path: Path, frames: int, audience: Audience, *, first: int = 0) -> ClipError:
    if audience is Audience.API:
        start = "start image-to-video from such a frame with input_reference instead"
    elif is_frame_sequence(path) and frames == 1:  # the frame is a PNG already: -i takes it as it is
        start = f"start image-to-video from it with -i {quoted(str(frame_file(path, first)))} instead"
    else:  # -i reads images only: a video given to it is refused, so give the command that takes the frame out
        still = quoted(f"{path.with_suffix('')}.png")
        start = (f"start image-to-video from it with -i instead, as a PNG: ffmpeg -i {quoted(str(path))} "
                 f"-frames:v 1 -y {still}, then -i {still}")  # fmt: skip
    return ClipError(f"{path.name} has {frames} frame{'s' if frames != 1 else ''}: there is nothing to go on from "
                     f"but an image; {start}")  # fmt: skip


def _read_png(file: Path) -> np.ndarray:
    try:
        with PIL.Image.open(file) as image:
            return np.array(to_rgb8(image))  # writable, for torch; 16-bit levels scaled, not clipped
    except OSError as exc:
        raise ClipError(f"cannot read {file}, a frame of the clip to extend: {exc}") from None


def _is_image(path: Path) -> bool:
    """Whether Pillow reads `path` as a still image (a JPEG given as the clip, say); an animated GIF, WebP or PNG is
    a clip ffmpeg reads. Counting a damaged GIF's frames raises what its plugin meets (an IndexError for one cut
    short): any error leaves the file to ffmpeg, whose refusal says what is wrong with it."""
    try:
        with PIL.Image.open(path) as image:
            return getattr(image, "n_frames", 1) == 1
    except Exception:
        return False
