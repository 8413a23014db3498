"""Each output format's encoding and what it can hold, checked before any work: the ffmpeg encoder that writes
.mp4, .mkv, .mov and .webm and its constant-rate factor (`check_crf`, `default_crf`), and the frame rates and
lengths a GIF and a WebP can play (`check_output_fps`, `webp_length_problem`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from motif_lite.choices import CRF_RANGES
from motif_lite.errors import Audience, ConfigError, MotifLiteError, shown_as_sent, whole_float_hint
from motif_lite.frame_rates import rate_said


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
FFMPEG = {
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
    if suffix not in FFMPEG:
        why = _NO_CRF.get(suffix, "it is no video encoder's")
        raise MotifLiteError(
            f"crf has no meaning for a {suffix or 'file without an extension'} output ({why}); it sets the quality "
            "of .mp4, .mkv, .mov (H.264) and .webm (VP9): leave it out, or write one of those"
        )
    encoder = FFMPEG[suffix][0]
    low, high = CRF_RANGES[encoder.codec]
    if not low <= crf <= high:
        raise MotifLiteError(
            f"crf {crf} is outside {encoder.codec}'s range for {suffix}: {low} to {high}, lower is better and larger "
            f"(default {encoder.default_crf})"
        )


def default_crf(path: str | Path) -> int | None:
    """The constant-rate factor a `path` video is encoded at without a crf of the user's (18 for H.264, 30 for VP9);
    None for the formats no video encoder writes."""
    encoder = FFMPEG.get(Path(path).suffix.lower())
    return None if encoder is None else encoder[0].default_crf
