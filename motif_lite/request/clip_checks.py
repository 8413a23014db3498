"""The clip a request goes on from (`extend`): its checks against the request (one first frame, new frames to add,
one size) and the notes on what the longer video holds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.errors import Audience, Spelling
from motif_lite.frame_rates import rate_flag_value, rate_name, rate_said
from motif_lite.paths import user_path
from motif_lite.request.terms import (
    EXTEND_FLAG,
    IMAGE_FLAG,
    SIZE_MULTIPLE,
    TEMPORAL_FACTOR,
    TRAINED_FPS,
    TRAINED_PIXELS,
    RequestError,
    extended_frames,
    frames_flag,
    video_seconds,
)
from motif_lite.shell_syntax import quoted

if TYPE_CHECKING:
    from motif_lite.io.clip import Clip
    from motif_lite.request import GenerationRequest


def _frames_in_memory_advice(extend: object) -> str:
    """What to give instead of frames (or one image) made in memory, a diffusers pipeline's `.frames[0]`, given as
    `extend`: one image is the first frame itself (`image=`); of frames, their last frame as `image=` makes the same
    new frames (`extend` goes on from the clip's last frame as `image` would), or a file of them, written by what
    takes their kind as it is: diffusers' `export_to_video` takes PIL images and 0..1 float arrays (it multiplies an
    array by 255, so an 8-bit one's pixels wrap, in a list too), `io.video.write_video` 8-bit [F, H, W, 3] frames
    (a list of 8-bit frames stacked into them). A 0..1 float tensor (diffusers' output_type="pt", [F, 3, H, W])
    neither takes: it is told the array export_to_video takes. Nothing for another type, whose message is the type
    alone."""
    import numpy as np  # with the image readers: once frames in memory are refused
    import torch

    from motif_lite.errors import MotifLiteError
    from motif_lite.io.image import image_from_memory, is_in_memory

    if not (is_in_memory(extend) or isinstance(extend, list | tuple)):
        return ""
    if is_in_memory(extend):
        try:
            image_from_memory(extend)  # one image (a PIL image, [H, W, 3], [1, 3, H, W], ...), not a stack of frames
        except MotifLiteError:
            pass  # frames: [F, H, W, 3], ...
        else:
            return ": one image is no clip; give it as image= for a video that starts from it"
    listed = isinstance(extend, list | tuple)
    frame = extend[0] if listed and extend else extend  # a list's pixels are its frames' kind
    eight_bit = (isinstance(frame, np.ndarray) and not np.issubdtype(frame.dtype, np.floating)) or (
        isinstance(frame, torch.Tensor) and not frame.is_floating_point()
    )
    if isinstance(extend, torch.Tensor) and extend.is_floating_point():
        channels_last = "" if extend.shape[-1] == 3 else ".permute(0, 2, 3, 1)"  # [F, 3, H, W] -> [F, H, W, 3]
        writer = f"diffusers' export_to_video(frames{channels_last}.float().cpu().numpy(), 'clip.mp4', fps=24)"
    elif eight_bit:  # a list of [H, W, 3] frames is stacked: write_video takes [F, H, W, 3] chunks
        stacked = "np.stack(frames)" if listed else "frames"
        writer = (
            f"motif_lite.io.video.write_video({stacked}, 'clip.mp4', fps=24), which takes 8-bit [F, H, W, 3] frames"
        )
    else:
        writer = "diffusers' export_to_video(frames, 'clip.mp4', fps=24)"
    return (
        ": frames in memory are no clip; give image= the last of them (e.g. image=frames[-1]) for the same new "
        f"frames, without the clip's in the file, or save them as a video file first ({writer}) and give "
        "extend='clip.mp4'"
    )


def checked_clip(
    request: GenerationRequest, frames: int | None, size_ok: bool, read: Clip | None, audience: Audience
) -> Clip:
    """The clip `request.extend` names, read (unless `read` is that clip already) and checked against the request:
    one first frame (not `image` too), new frames to add, and the clip's size (the longer video has one size; the
    clip is not resized, so as not to change the frames it already has)."""
    from motif_lite.io.clip import read_clip

    if not isinstance(request.extend, str | Path):
        raise RequestError(
            f"extend must be the path of a video file (str or Path), got {type(request.extend).__name__}"
            + _frames_in_memory_advice(request.extend)
        )
    if request.image is not None:
        raise RequestError(
            f"the image {request.image} and the clip {request.extend} would both be the first frame: "
            f"give {IMAGE_FLAG.to(audience)} to start from an image, or {EXTEND_FLAG.to(audience)} to go on from a "
            "clip's last frame, not both"
        )
    if frames is not None and frames <= TEMPORAL_FACTOR:
        raise RequestError(f"going on from a clip needs {frames_flag(TEMPORAL_FACTOR + 1, audience)} or more: with "
                           f"{frames} the first frame conditions nothing and no new frame follows it")  # fmt: skip
    if read is not None and read.path == user_path(request.extend):
        clip = read
    else:
        clip = read_clip(request.extend, audience=audience)
    if not size_ok and (clip.width, clip.height) == (request.width, request.height):  # the clip's own size is wrong
        raise ClipSizeError(f"{clip.path.name} is {clip.width}x{clip.height}: {_clip_size_fix(clip, audience)}")
    if size_ok and (clip.width, clip.height) != (request.width, request.height):
        raise RequestError(
            f"{clip.path.name} is {clip.width}x{clip.height} and the new frames would be "
            f"{request.width}x{request.height}: one video has one size; {_clip_size_fix(clip, audience)}"
        )
    return clip


class ClipSizeError(RequestError):
    """The clip's own size is none the model makes: its message says what to do, which the width and height lines
    (their nearest sizes, which the clip does not have) would only confuse."""


def _clip_size_fix(clip: Clip, audience: Audience) -> str:
    """What to do about a clip whose size differs from the request's: its size, when the model can make it, else
    the ffmpeg command that resizes the clip to the nearest size it can."""
    from motif_lite.io.clip import go_on_from_it

    if clip.width % SIZE_MULTIPLE == 0 and clip.height % SIZE_MULTIPLE == 0:
        size = Spelling(f"-W {clip.width} -H {clip.height}", f"width={clip.width}, height={clip.height}",
                        f"size {clip.width}x{clip.height}")  # fmt: skip
        return f"give {size.to(audience)}, or leave them out"
    larger = ", and at most 1280x736 pixels well" if clip.width * clip.height > TRAINED_PIXELS else ""
    return (
        f"the model makes sides in multiples of {SIZE_MULTIPLE}{larger}: resize the clip first, e.g. "
        f"{clip_resize_command(clip)}, {go_on_from_it(audience)}"
    )


def clip_resize_command(clip: Clip) -> str:
    """The ffmpeg command that resizes the clip to a size the model makes well (`_resized_clip_size`)."""
    from motif_lite.io.staging import is_frame_sequence

    width, height = _resized_clip_size(clip.width, clip.height)
    resized = f"{clip.path.stem}-{width}x{height}{clip.path.suffix}"
    # A PNG sequence stays lossless, numbered from 0 as motif-lite writes them (ffmpeg's own numbering starts at 1).
    encoding = "-start_number 0" if is_frame_sequence(clip.path) else "-crf 18"
    return f"ffmpeg -i {quoted(str(clip.path))} -vf scale={width}:{height} {encoding} {quoted(resized)}"


def _resized_clip_size(width: int, height: int) -> tuple[int, int]:
    """The size to resize a clip to whose sides are not multiples of SIZE_MULTIPLE: the nearest multiples, or, for a
    clip of more pixels than the model was trained at (a phone's 1920x1080), its shape at most at those pixels
    (1280x720), which the model makes well: 1920x1088 would only meet the note that it makes it badly."""
    scale = math.sqrt(TRAINED_PIXELS / (width * height))
    if scale >= 1:
        return tuple(max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (width, height))
    # Down, and never past the trained pixels (rounding up could be).
    return tuple(
        max(SIZE_MULTIPLE, math.floor(side * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (width, height)
    )


def _how_the_clip_is_kept(output: str | Path | None, audience: Audience) -> str:
    """Whether the clip's frames stay exact in the longer video: a chain of extensions re-encodes the first part
    once per link in a lossy format, while a PNG sequence keeps each frame as it decodes."""
    from motif_lite.io.staging import is_frame_sequence

    if output is not None and is_frame_sequence(Path(output)):
        return "the clip's frames are written again losslessly (PNG), exactly as they decode"
    kept = "the clip is decoded and encoded again with them, frame by frame"
    if audience is Audience.API:  # the server writes .mp4 only: nothing to choose
        return kept
    frames = f"{Path(output).with_suffix('')}_%03d.png" if output is not None else "NAME_%03d.png"
    exact = Spelling(f"-o {quoted(frames)}", f"output={frames!r}", "")
    return f"{kept}, one lossy pass more for them; to keep them exact, write a PNG sequence: {exact.to(audience)}"


def _model_pace_note(fps: float, audience: Audience) -> str | None:
    """A note when the clip's rate, kept, is not the model's: the new frames move at the pace of its 24 fps training
    clips, so played at the clip's rate they move faster or slower than the clip's own frames. None within 1% of 24
    fps (NTSC film's 24000/1001 is 0.1% slower: no one sees it)."""
    speed = fps / TRAINED_FPS
    if abs(speed - 1) <= 0.01:
        return None
    how = f"{speed:.3g}x faster" if speed > 1 else f"{1 / speed:.3g}x slower"
    model_rate = Spelling(f"--fps {TRAINED_FPS:g}", f"fps={TRAINED_FPS:g}", f"fps {TRAINED_FPS:g}")
    return (
        f"the longer video keeps the clip's {rate_said(fps)}, but the model makes motion at the pace of the "
        f"{rate_said(TRAINED_FPS)} clips it was trained on: its new frames move {how} than it made them; "
        f"{model_rate.to(audience)} plays them at the model's pace (and the clip's frames at that rate too)"
    )


def _sound_back(clip: Clip, output: str | Path, audience: Audience) -> str:
    """The ffmpeg command that puts the clip's sound back into the longer video. A server's client holds neither
    file at the server's paths: the command names placeholders, and says what each is."""
    command = "ffmpeg -i {video} -i {clip} -map 0:v -map 1:a -c:v copy with-sound.mp4"
    if audience is Audience.API:
        return (command.format(video="VIDEO.mp4", clip="CLIP") + f", VIDEO.mp4 being this job's video once "
                f"downloaded and CLIP the file sent, {clip.path.name}")  # fmt: skip
    return command.format(video=quoted(str(output)), clip=quoted(str(clip.path)))


def extension_notes(clip: Clip, frames: int, fps: float, output: str | Path, audience: Audience) -> list[str]:
    """What an extended video holds and how it is written, and a note when its frame rate is not the clip's (the
    clip's frames then play faster or slower), one on its sound and one on HDR video, which the longer video lacks."""
    from motif_lite.io.clip import hdr_note

    total = extended_frames(frames, clip.frames)
    length = f"{video_seconds(total, fps):g} s at {rate_said(fps)}"  # as the API's video object says it
    notes = [
        f"going on from {clip.describe()}: its last frame is the first frame; the video holds its {clip.frames} frames "
        f"and {frames - 1} new ones, {total} in all ({length}); {_how_the_clip_is_kept(output, audience)}"
    ]
    # Rates are exact now (a clip's NTSC rate is 24000/1001, not 23.98): 24 fps for it is another rate, 0.1% faster.
    if abs(fps - clip.fps) > 1e-9 * clip.fps:
        # The rate may come from --fps or from --settings-from's file: the fix is the flag either way.
        # An NTSC rate as a fraction (24000/1001): the flag and Python both take it back exactly, 23.976 would not.
        rate = rate_flag_value(clip.fps)
        clip_fps = Spelling(f"--fps {rate}", f"fps={rate}", f"fps {rate_name(clip.fps)}")
        notes.append(f"{rate_said(fps)} is not the clip's {rate_said(clip.fps)}: its frames play at {rate_said(fps)} "
                     f"in the longer video too; {clip_fps.to(audience)} keeps the clip's rate")  # fmt: skip
    elif (note := _model_pace_note(fps, audience)) is not None:
        notes.append(note)
    if clip.has_sound:  # written frames carry no sound: say so rather than lose it without a word
        notes.append(f"{clip.path.name} has sound, which the longer video leaves out (motif-lite writes pictures "
                     f"only); put it back with {_sound_back(clip, output, audience)}")  # fmt: skip
    if (note := hdr_note(clip, audience=audience)) is not None:
        notes.append(note)
    if (note := _pixel_aspect_note(clip, audience)) is not None:
        notes.append(note)
    return notes


def _pixel_aspect_note(clip: Clip, audience: Audience) -> str | None:
    """A note for a clip of non-square pixels (a DV or DVD clip's 720x576, shown 16:9): the longer video's pixels are
    square, so the whole of it, the clip's frames and the new ones, shows squeezed; with the command that makes a
    square-pixel copy at the width it is shown at. None for a clip of square pixels."""
    from motif_lite.io.clip import go_on_from_it

    if clip.pixel_aspect == 1:
        return None
    shown = max(SIZE_MULTIPLE, round(clip.width * clip.pixel_aspect / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    # An .mp4 beside the clip, as the HDR note's copy: a DV clip's own container (.dv) takes no other size, and an
    # .avi or .mpg encoder no -crf.
    square = clip.path.with_name(f"{clip.path.stem}-{shown}x{clip.height}.mp4")
    resize = (
        f"ffmpeg -i {quoted(str(clip.path))} -vf scale={shown}:{clip.height},setsar=1 -crf 18 {quoted(str(square))}"
    )
    aspect = f"{clip.pixel_aspect.numerator}:{clip.pixel_aspect.denominator}"
    return (
        f"{clip.path.name} has non-square pixels (aspect {aspect}: its {clip.width}x{clip.height} is shown as "
        f"{shown}x{clip.height}), but the longer video's are square, so all of it shows squeezed at "
        f"{clip.width}x{clip.height}; make a square-pixel copy first, {resize}, {go_on_from_it(audience)}"
    )
