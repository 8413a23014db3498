"""Write generated frames as .mp4 (.mkv, .mov), .webm, animated .webp / .gif, a lossless PNG sequence, or (one
frame) a PNG image; and the output's name: checked before any work (`check_output_path`, `check_crf`, ...), and
chosen without replacing an earlier video in io/output_claims.py.

Frames arrive as chunks (the VAE decoder streams them): each chunk is a uint8 `[F, H, W, 3]` array/tensor or a
float `[3, F, H, W]` tensor in [-1, 1] (as decoded). Chunks are converted and written one frame at a time, so a
whole float video never sits in memory next to its uint8 copy. mp4/mkv/mov/webm go through ffmpeg (`find_ffmpeg`:
a pipe, fully streamed); gif/webp through Pillow, which keeps one uint8 copy of the frames. The generation settings
are stored as one JSON string in each format's comment field.

Its parts: `output_checks` (the output's name checked before any work), `output_formats` (each format's
encoder, its crf, and the frame rates and lengths a GIF and a WebP can hold) and `ffmpeg_writer` (the formats
ffmpeg writes). The names imported from them `as` themselves are this module's too, as they were before it was
split.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from PIL.PngImagePlugin import PngInfo

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.io.ffmpeg_writer import write_ffmpeg
from motif_lite.io.output_checks import check_no_control_character as check_no_control_character
from motif_lite.io.output_checks import check_output_path
from motif_lite.io.output_checks import foreign_frame_number_problem as foreign_frame_number_problem
from motif_lite.io.output_checks import replaces_file as replaces_file
from motif_lite.io.output_checks import stale_frames_note as stale_frames_note
from motif_lite.io.output_formats import FFMPEG, check_crf, check_output_fps, webp_length_problem
from motif_lite.io.output_formats import GIF_FPS as GIF_FPS
from motif_lite.io.output_formats import WEBP_MAX_MS as WEBP_MAX_MS
from motif_lite.io.output_formats import WEBP_MIN_FPS as WEBP_MIN_FPS
from motif_lite.io.output_formats import default_crf as default_crf
from motif_lite.io.staging import frame_file, is_frame_sequence, output_of
from motif_lite.paths import user_path

Chunk = torch.Tensor | np.ndarray
FrameSource = Chunk | Iterable[Chunk]
EXIF_IMAGE_DESCRIPTION = 0x010E  # the EXIF tag a WebP keeps the settings in (io.settings_file reads it)


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
    if suffix in FFMPEG:
        write_ffmpeg(stream, path, fps, comment, first.shape, crf)
    elif is_frame_sequence(path):
        _write_png_sequence(stream, path, fps, comment)
    elif suffix == ".png":
        _write_png_image(stream, path, fps, comment)
    else:
        _write_pillow_animation(stream, path, fps, comment)
    return path


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
