"""A video's frame counts: the 4k+1 count the VAE packs frames in nearest a count asked for, the count a length in
seconds stands for, and the most frames any video may have."""

from __future__ import annotations

import math

from motif_lite.request.terms import MAX_VIDEO_TOKENS, TEMPORAL_FACTOR

# The most frames a video may have: MAX_VIDEO_TOKENS latent frames at the smallest size (16x16, a token each).
MOST_FRAMES = (MAX_VIDEO_TOKENS - 1) * TEMPORAL_FACTOR + 1


def frames_for_seconds(seconds: float, fps: float) -> int:
    """The frame count of `seconds` of video at `fps` (seconds * fps + 1: 121 frames at 24 fps are 5 s), of the 4k+1
    form the VAE packs frames in: the nearest one, a tie going up as for a frame count (`normalize_frames`), so
    that `seconds` and the frames it stands for give one count. What a length in seconds stands for: the API's
    `seconds`, and run's hint for a `--video-frames 5s`."""
    # Rounded to a millionth of a frame first: a decimal length times a rate is a whole count off by float error
    # (8.2 * 30 = 245.99999999999997), which must not decide a tie.
    counted = round(seconds * fps, 6)
    return math.floor(counted / TEMPORAL_FACTOR + 0.5) * TEMPORAL_FACTOR + 1


def countable_frames(seconds: float, fps: float) -> int | None:
    """`frames_for_seconds(seconds, fps)`, or None for a length of more frames than any video may have
    (`MOST_FRAMES`; an infinite one too): a length to refuse in seconds, not a frame count to suggest."""
    if not math.isfinite(seconds * fps):
        return None
    frames = frames_for_seconds(seconds, fps)
    return frames if frames <= MOST_FRAMES else None


def nearest_video_frames(frames: int) -> int:
    """The frame count a request of `frames` (a positive int) runs: the nearest 4k+1, a tie (e.g. 11: 9 or 13)
    going up."""
    return (frames - 1 + TEMPORAL_FACTOR // 2) // TEMPORAL_FACTOR * TEMPORAL_FACTOR + 1
