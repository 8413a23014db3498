"""A request's size: its sides (positive multiples of 16), its transformer tokens (bounded), and the notes for a
video beyond the sizes the model was trained at and for a first frame of another shape, which is stretched."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from motif_lite.choices import lines_size, split_size
from motif_lite.errors import Audience, Spelling, shown
from motif_lite.request.clip_checks import clip_resize_command
from motif_lite.request.terms import (
    GO_ON,
    MAX_VIDEO_TOKENS,
    OFFICIAL_VIDEO,
    SIZE_MULTIPLE,
    TEMPORAL_FACTOR,
    TRAINED_FRAMES,
    TRAINED_PIXELS,
    RequestError,
    frames_flag,
    positive_int,
    setting_name,
)

if TYPE_CHECKING:
    from motif_lite.io.clip import Clip


def check_size(value: int, side: str, size: tuple[int, int], audience: Audience) -> bool:
    """A side (`side` "width" or "height") of the video's `size` that is a positive multiple of 16, refused naming
    its flag and keyword, or for the server's client its `size` field, which holds both sides: 'size 50x32: its width
    is not a multiple of 16; ...'."""
    if audience is Audience.API:  # the size, as sent, shows the side's value
        name, given, got = f"size {size[0]}x{size[1]}: its {side}", "", ""
    else:
        name, given, got = setting_name(side), f" {value}", f", got {shown(value)}"
    if isinstance(value, str) and (whole := split_size(value) or lines_size(value)) is not None:
        # A whole size given to one side, as other tools write it (`1280x720`, `720p`): the two keywords for it.
        raise RequestError(f"{name} takes one side in pixels, got {value!r}: that size is width={whole[0]}, "
                           f"height={whole[1]}")  # fmt: skip
    if not positive_int(value):
        raise RequestError(f"{name} must be a positive integer{got}")
    if value % SIZE_MULTIPLE:
        below = value // SIZE_MULTIPLE * SIZE_MULTIPLE
        above = below + SIZE_MULTIPLE
        if below == 0 or value - below > above - value:
            nearest = f"{above}"
        elif value - below < above - value:
            nearest = f"{below}"
        else:
            nearest = f"{below} or {above}"
        raise RequestError(f"{name}{given} is not a multiple of {SIZE_MULTIPLE}; nearest valid {side}: {nearest}")
    return True


def _video_tokens(width: int, height: int, frames: int) -> int:
    """The transformer's tokens for valid sides and 4k+1 frames, with the official model's shapes."""
    latent_frames = (frames - 1) // TEMPORAL_FACTOR + 1
    return (width // SIZE_MULTIPLE) * (height // SIZE_MULTIPLE) * latent_frames


def oversized_field(width: int, height: int, frames: int) -> str:
    """The field to name for a video with too many tokens: the frames where they are further over the official
    video's than its pixels are, else the side further over the official one's (for the server: the size)."""
    official = OFFICIAL_VIDEO
    # frames / official frames > pixels / official pixels, in integers: a typo's side may be too large for a float
    frames_over = frames * official.width * official.height > width * height * official.frames
    height_over = height * official.width > width * official.height
    return "frames" if frames_over else "height" if height_over else "width"


def check_video_tokens(width: int, height: int, frames: int) -> None:
    """Refuse a video of more transformer tokens than any may have (`MAX_VIDEO_TOKENS`)."""
    tokens = _video_tokens(width, height, frames)
    if tokens > MAX_VIDEO_TOKENS:
        official = OFFICIAL_VIDEO
        usual = _video_tokens(official.width, official.height, official.frames)
        raise RequestError(
            f"{width}x{height}x{frames} (width x height x frames) is {tokens:,} transformer tokens, over the "
            f"{MAX_VIDEO_TOKENS:,} a video may have ({MAX_VIDEO_TOKENS / usual:.0f} times the official "
            f"{official.width}x{official.height}x{official.frames}; the attention's work grows with their square): "
            "make the video smaller or shorter"
        )


def beyond_training_notes(
    width: int, height: int, frames: int, audience: Audience, *, clip: Clip | None = None
) -> list[str]:
    """A note for a video longer or larger than any the model was trained on: it runs, but nobody knows how well.
    `clip`: the frames are a new part after it, at its size: a part is made shorter and extended again instead, and
    the clip resized, as a run cannot be made at another size than its clip's."""
    from motif_lite.io.clip import go_on_from_it

    notes = []
    if frames > TRAINED_FRAMES:
        instead = (
            f"give this part {frames_flag(TRAINED_FRAMES, audience)} at most, and extend the longer video again"
            if clip is not None  # the user chains already: --extend CLIP would be no news
            else f"for a longer video, make {TRAINED_FRAMES} frames and go on from them: {GO_ON.to(audience)}"
        )
        notes.append(
            f"{frames} frames is longer than the model was trained to make ({TRAINED_FRAMES}, 5 s at 24 fps): motion "
            f"often repeats or drifts past that; {instead}"
        )
    if width * height > TRAINED_PIXELS:
        instead = (
            f"resize the clip first, e.g. {clip_resize_command(clip)}, {go_on_from_it(audience)}"
            # Its size is the video's: -W/-H cannot make it smaller. (A server's client has no path of its disk.)
            if clip is not None and audience is not Audience.API
            else "make it at 1280x736 (or its shape at that many pixels) and upscale the video"
        )
        notes.append(
            f"{width}x{height} is more pixels than the model was trained at (1280x736): subjects may repeat or "
            f"distort; {instead}"
        )
    return notes


STRETCH_NOTED = 0.05  # relative aspect-ratio difference between the image and the video worth a note


def stretch_words(image_size: tuple[int, int], width: int, height: int) -> str:
    """The stretch note's statement, without its size that keeps the image's shape (`stretch_note`)."""
    (image_w, image_h), video_aspect = image_size, width / height
    return (
        f"the image is {image_w}x{image_h} (aspect {image_w / image_h:.2f}) and is stretched to {width}x{height} "
        f"(aspect {video_aspect:.2f}), as the reference pipeline does"
    )


def stretch_note(image_size: tuple[int, int], width: int, height: int, audience: Audience) -> list[str]:
    """A note when the first frame's shape differs from the video's: the reference pipeline (and so motif-lite)
    resizes it to width x height without cropping, which stretches it. Suggests a size of the image's shape with
    about as many pixels and no more, in multiples of 16: a larger one could be over what fitted (a server's
    --max-video, a memory plan), and the user would be refused for following the note."""
    image_w, image_h = image_size
    image_aspect, video_aspect = image_w / image_h, width / height
    if abs(image_aspect / video_aspect - 1) <= STRETCH_NOTED:
        return []
    pixels = width * height
    fit_w = round((pixels * image_aspect) ** 0.5 / SIZE_MULTIPLE) * SIZE_MULTIPLE
    fit_h = round((pixels / image_aspect) ** 0.5 / SIZE_MULTIPLE) * SIZE_MULTIPLE
    # Rounded to multiples of 16 each side may land on a worse shape (at small sizes, on the video's own): of the
    # sizes one step around that are no larger, the closest in shape, then in pixels.
    steps = (-SIZE_MULTIPLE, 0, SIZE_MULTIPLE)
    sizes = [
        (w, h)
        for w in (fit_w + d for d in steps)
        for h in (fit_h + d for d in steps)
        if min(w, h) >= SIZE_MULTIPLE and w * h <= pixels
    ]
    stretched = stretch_words(image_size, width, height)
    if not sizes:  # a shape so far from the video's that no size near it is as small (a 1x100 image)
        return [stretched]
    fit_w, fit_h = min(sizes, key=lambda s: (abs(math.log(s[0] / s[1] / image_aspect)), abs(s[0] * s[1] - pixels)))
    if (fit_w, fit_h) == (width, height):  # no size near this one keeps its shape better
        return [stretched]
    fitting = Spelling(f"-W {fit_w} -H {fit_h}", f"width={fit_w}, height={fit_h}", f"size {fit_w}x{fit_h}")
    return [f"{stretched}; {fitting.to(audience)} keeps its shape"]
