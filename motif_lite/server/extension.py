"""Going on from a finished video of this server (the create field `extend`, or the SDK's `client.videos.extend`):
the job it extends, checked before queueing (400 with `param` extend), the request's defaults taken from that video,
the extension's own link to its file, and the server's file names said as the ids a client knows. An uploaded video
to go on from is clip_upload.py's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from motif_lite.errors import Audience, shown_as_sent
from motif_lite.io.clip import Clip, ClipError, read_clip
from motif_lite.server.job_record import COMPLETED, IN_PROGRESS, QUEUED, Job
from motif_lite.server.jobs import JobStore
from motif_lite.server.schema import ApiError, CreateBody, api_frames

# The refusal of an extension on a checkpoint without the image encoder, at submission and as a queued one starts.
EXTENSION_NEEDS_IMAGE_ENCODER = (
    "this checkpoint has no image encoder (feature_extractor/), which an extension needs: text-to-video only"
)


def extended_job(store: JobStore, body: CreateBody, image_to_video: bool) -> Job:
    """The completed job whose video `body` goes on from; 400 (`param` extend) for any other, or for a request that
    conflicts with going on from it (a first frame of its own, another size)."""
    video_id = body.extend
    check_can_extend(body, image_to_video)
    job = store.get(video_id)
    if job is None:
        raise _extend_error(f"extend: no video {video_id} on this server (never made here, or deleted)")
    if job.status != COMPLETED:
        wait = "; wait until it is completed" if job.status in (QUEUED, IN_PROGRESS) else ""
        raise _extend_error(f"extend: video {video_id} is {job.status}: only a completed video can be extended{wait}")
    width, height = job.settings["width"], job.settings["height"]
    asked = body.request_fields.get("width"), body.request_fields.get("height")
    if asked != (None, None) and asked != (width, height):
        raise _extend_error(f"extend: video {video_id} is {width}x{height}, and an extension keeps the size of the "
                            f"video it goes on from: leave size out, or give {width}x{height}")  # fmt: skip
    return job


def check_can_extend(body: CreateBody, image_to_video: bool) -> None:
    """400 (`param` extend) for an extension (of a video of this server or an uploaded one) that cannot be made
    whatever its video: a first frame of its own, or a checkpoint without the image encoder."""
    if body.image is not None:
        raise _extend_error("input_reference and extend would both give the first frame (an extension starts from the "
                            "last frame of the video it extends): send one of them")  # fmt: skip
    if not image_to_video:
        raise _extend_error(EXTENSION_NEEDS_IMAGE_ENCODER)


def with_clip_defaults(body: CreateBody, width: int, height: int, fps: float) -> dict[str, Any]:
    """The request's fields with the size and frame rate of the video it extends (a video of this server's, or an
    uploaded one) where it gives none, as `motif-lite run --extend` takes them from its clip; `seconds` then counts
    at that rate."""
    fields = dict(body.request_fields)
    fields.setdefault("width", width)
    fields.setdefault("height", height)
    if "fps" not in fields:
        fields["fps"] = fps
        if body.seconds is not None:
            fields["frames"] = api_frames(body.seconds, fps)
    return fields


def keep_clip(store: JobStore, extended_id: str, job_id: str) -> Path:
    try:
        return store.keep_clip(extended_id, job_id)
    except FileNotFoundError:  # deleted since it was looked up, or removed by hand
        raise _extend_error(f"extend: the video file of {extended_id} is not in the data folder (deleted, or "
                            "removed by hand)") from None  # fmt: skip


def checked_clip(clip: Path, extended: Job, names: dict[str, str]) -> Clip:
    """The video of `extended`, as the extension's own link `clip` holds it, checked before the job is queued (400,
    `param` extend, for one damaged since it was written; the message in the client's `names`). Its frames are those
    the server recorded when it wrote it: counting them would decode the whole video, while the checks need only its
    container's sizes and ffmpeg's header."""
    try:
        return read_clip(clip, frames=extended.frames_in_file, audience=Audience.API)
    except ClipError as exc:
        raise _extend_error(renamed(str(exc), names)) from None


def server_names(clip: Path, extended_id: str, output: Path) -> dict[str, str]:
    """What the request's messages and notes say of the server's files -> the names a client knows: the clip by the
    id of the video it is, the output as the job's video (the full paths first: a name is part of one)."""
    return {str(clip): extended_id, str(output): "the video", clip.name: extended_id}


def renamed(text: str, names: dict[str, str]) -> str:
    """`text` with each key of `names` replaced by its value, in order."""
    for old, new in names.items():
        text = text.replace(old, new)
    return text


def _extend_error(message: str) -> ApiError:
    return ApiError(400, message, "extend", "invalid_value")


# `POST /v1/videos/extensions` (the SDK's `client.videos.extend`): its `video` is the create field `extend`.
def extension_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The create fields of an extensions body: `video` ({"id": ...} in JSON, `video[id]` in a form, or an uploaded
    file in a form) becomes `extend`; every other field is a create field, as on `POST /v1/videos`."""
    from motif_lite.server.clip_upload import UploadedClip

    create = dict(fields)
    if "extend" in create:
        raise _video_error("extend is POST /v1/videos's name for video here: give video={\"id\": \"video_...\"} or "
                           "the video file only")  # fmt: skip
    reference = create.pop("video", None)
    video_id = create.pop("video[id]", None)  # the SDK's form encoding of {"id": ...}
    if isinstance(reference, UploadedClip):
        if video_id is not None:
            raise _video_error("video is an uploaded file and an id (video[id]): send one of them")
        video_id = reference
    elif isinstance(reference, Mapping) and set(reference) == {"id"}:
        video_id = reference["id"]
    elif reference is not None:
        raise _video_error(f'video must be {{"id": "video_..."}}, a completed video of this server, or a video file '
                           f"(multipart), got {shown_as_sent(reference, Audience.API)}")  # fmt: skip
    if video_id is None:
        raise ApiError(400, 'video is required: {"id": "video_..."}, the completed video to go on from, or a video '
                       "file (multipart)", "video", "missing_required_parameter")  # fmt: skip
    create["extend"] = video_id
    return create


def in_video_words(error: ApiError) -> ApiError:
    """An `extend` refusal as the extensions route says it: its field is `video`."""
    if error.param != "extend":
        return error
    message = re.sub(r"\bextend\b", "video", error.message)  # the field's name only: not "extended", "extension"
    return ApiError(error.status, message, "video", error.code, error.headers)


def _video_error(message: str) -> ApiError:
    return ApiError(400, message, "video", "invalid_value")
