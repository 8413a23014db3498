"""The shapes of the OpenAI Videos API as motif-lite serves them.

A create body (JSON, or multipart form fields where every value is a string) becomes the keyword arguments of a
`GenerationRequest`: only the fields the client sent, so that everything else keeps the request's own defaults
(and `resolve()` validates all of it exactly as it does for `motif-lite run`). A stored `Job` becomes a video
object. The `loras` field is parsed here (which files it may name is loras.py's); the checks `motif-lite run` shares
with the server word their messages and notes in the API's field names themselves (`Audience.API`). Errors are
`ApiError`s, rendered as `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import functools
import io
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from motif_lite.choices import lines_size, split_size
from motif_lite.errors import Audience, MotifLiteError, WrittenNumber, json_as_sent, shown, shown_as_sent
from motif_lite.frame_rates import exact_rate, parse_rate, rate_said
from motif_lite.request import (
    API_FIELDS,
    MOST_FRAMES,
    REQUEST_DEFAULTS,
    GenerationRequest,
    RequestError,
    countable_frames,
    other_names_of_fields,
    video_seconds,
)
from motif_lite.server.job_record import JOB_ID, Job
from motif_lite.server.jobs import VIDEO_SUFFIX
from motif_lite.settings import Settings
from motif_lite.weights.lora_values import cancelling_advice, split_strength, summed_strength

# API field -> (GenerationRequest field, type of a form value). `num_frames` wins over `seconds`.
MOTIF_FIELDS: dict[str, tuple[str, type]] = {
    "negative_prompt": ("negative_prompt", str),
    "num_frames": ("frames", int),
    "steps": ("steps", int),
    "seed": ("seed", int),
    "guidance_scale": ("cfg_scale", float),
    "guidance_method": ("guidance", str),
    "apg_eta": ("apg_eta", float),
    "apg_norm_threshold": ("apg_norm_threshold", float),
    "apg_momentum": ("apg_momentum", float),
    "flow_shift": ("flow_shift", float),
    "sampling_method": ("sampler", str),
    "fps": ("fps", float),
    "extend": ("extend", str),  # the id of a completed job: the server gives the request that job's video
}
OPENAI_FIELDS = ("prompt", "model", "size", "seconds", "input_reference")
# motif-lite serve's own: LoRA files of the operator's --lora-dir (server/loras.py), and the video encoder's
# constant-rate factor (an encoding option of the job's file, not a GenerationRequest field: `run --crf`).
SERVER_FIELDS = ("loras", "crf")
# The names other video APIs and UIs give these fields: the request fields' (request.advice.OTHER_FIELD_NAMES, the
# one table run's hints and Python read too, and the fields' own names: frames is num_frames here), and the server's
# own.
_FIELD_NAMES_AS_API = {
    other: API_FIELDS[field] for other, field in other_names_of_fields().items() if field in API_FIELDS
}
OTHER_API_FIELDS = {
    **{other: ours for other, ours in _FIELD_NAMES_AS_API.items() if other not in API_FIELDS.values()},
    "duration": "seconds",
    "lora": "loras",
    "video": "extend",  # the extensions route's name for it
    "quality": "crf",  # diffusers' export_to_video (0-10, higher is better: the other way round)
    "video_quality": "crf",
}
MiB = 2**20
_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
# Python reads no integer of over 4300 digits from text (a ValueError of its own); a form value that long is refused
# as any other that is no integer.
_MAX_DIGITS = 4000


def api_param(error: Exception) -> str | None:
    """The API field of the first setting a `RequestError` found invalid (None for any other error, and for the
    output path, the server's own, which is no parameter of the client's)."""
    if isinstance(error, RequestError) and error.fields:
        return API_FIELDS.get(error.fields[0])
    return None


# openai-python retries a 408, 409, 429 or 5xx twice unless the answer says not to: an answer no wait can change
# (a failed job's content, a full disk) says so, or the SDK re-sends the request (a whole upload into a full disk).
NOT_RETRIED = {"x-should-retry": "false"}


class ApiError(Exception):
    """An error response in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def body(self) -> dict[str, Any]:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class CreateBody:
    """A parsed create request: GenerationRequest keyword arguments (prompt included) and the first frame, if any."""

    request_fields: dict[str, Any]
    image: bytes | None
    loras: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # (file name in --lora-dir, strength)
    extend: str | None = None  # the id of the job whose video this one goes on from
    seconds: Any = None  # `seconds` as given, where it decided the frames (an extension counts it at its clip's fps)
    crf: Any = None  # as given (an int from a form); checked against the job's video by `job_crf`
    extend_upload: Any = None  # or an uploaded video to go on from (`clip_upload.UploadedClip`)
    image_name: str | None = None  # the file name the first frame was sent under (multipart); None: none given


def meant_name(name: str, known: Sequence[str], other_names: Mapping[str, str] | None = None) -> str | None:
    """The name of `known` an unknown `name` most likely meant: ours for another API's or tool's name
    (`other_names`), else the closest spelling; None for neither."""
    if other_names and name in other_names:
        return other_names[name]
    return next(iter(difflib.get_close_matches(name, known, 1)), None)


def parse_create(
    fields: Mapping[str, Any], image: bytes | None, from_form: bool, image_name: str | None = None
) -> CreateBody:
    """Map the body of `POST /v1/videos` onto GenerationRequest fields; raises `ApiError` (400) for what is
    malformed here (unknown fields, size, seconds, form values that are not numbers). The values themselves are
    checked by `GenerationRequest.resolve()`."""
    known = OPENAI_FIELDS + tuple(MOTIF_FIELDS) + SERVER_FIELDS
    unknown = sorted(set(fields) - set(known))
    if unknown:
        meant = meant_name(unknown[0], known, OTHER_API_FIELDS)
        hint = f"; did you mean {meant!r}?" if meant else ""
        if unknown[0] in ("width", "height"):
            hint = f"; {_size_field_hint(fields.get('width'), fields.get('height'))}"
        raise ApiError(400, f"unknown parameter {unknown[0]!r}{hint} (known: {', '.join(known)})", unknown[0],
                       "unknown_parameter")  # fmt: skip
    # Absent, null, or in a form "" (the SDK's None): the request's default. Not the prompt, which has none: a form's
    # "" is the empty prompt, which a first frame takes (the SDK sends a create with a file as a form).
    given = {k: v for k, v in fields.items() if v is not None and not (from_form and v == "" and k != "prompt")}
    prompt = given.get("prompt")
    if prompt is None:
        raise ApiError(400, "prompt is required", "prompt", "missing_required_parameter")
    if "model" in given and not isinstance(given["model"], str):
        raise ApiError(400, "model must be a string", "model", "invalid_value")
    request_fields: dict[str, Any] = {"prompt": prompt}
    for name, (field, kind) in MOTIF_FIELDS.items():
        if name in given:
            request_fields[field] = _form_value(given[name], kind) if from_form else given[name]
    fps = request_fields.get("fps")
    if isinstance(fps, str):  # "24000/1001", "ntsc-film", "23.976": run's --fps takes them, and so does the API
        request_fields["fps"] = _api_rate(fps)
    elif isinstance(fps, float | int) and not isinstance(fps, bool):  # others are the request's checks to refuse
        request_fields["fps"] = exact_rate(fps)  # 23.976 is NTSC's 24000/1001, as run's --fps takes it
    if "size" in given:
        request_fields["width"], request_fields["height"] = parse_size(given["size"])
    seconds = None
    if "seconds" in given and "frames" not in request_fields:
        seconds = given["seconds"]
        request_fields["frames"] = api_frames(seconds, request_fields.get("fps", REQUEST_DEFAULTS.fps))
    if "input_reference" in given:
        if image is not None:
            raise ApiError(400, "input_reference was sent twice", "input_reference", "invalid_value")
        image = image_from_reference(given["input_reference"])
        image_name = None  # a data URL has no file name
    loras = parse_loras(given["loras"], from_form) if "loras" in given else []
    extend = request_fields.pop("extend", None)
    upload = extend if is_upload(extend) else None
    extend = None if extend is None or upload is not None else _video_id(extend)
    crf = _form_value(given["crf"], int) if from_form and "crf" in given else given.get("crf")
    image_name = None if image is None else image_name
    return CreateBody(request_fields, image, loras, extend, seconds, crf, upload, image_name)


def _api_rate(text: str) -> float | str:
    """`fps` sent as text, as run's --fps reads it (`frame_rates.parse_rate`): a number, a fraction such as
    24000/1001, or ffmpeg's ntsc-film and ntsc. A malformed fraction is a 400 here, with --fps's message; other
    text that is no number stays text, for the request's check to refuse with the rate's whole range."""
    try:
        return parse_rate(text)
    except ValueError as error:
        if "/" in text:
            raise ApiError(400, f"fps {error}", "fps", "invalid_value") from None
    return text


def is_upload(value: Any) -> bool:
    """Whether a create field holds an uploaded video file (`clip_upload.UploadedClip`, from a multipart body)."""
    from motif_lite.server.clip_upload import UploadedClip  # which imports this module

    return isinstance(value, UploadedClip)


def job_crf(given: Any, server_default: int | None, output: Path) -> int | None:
    """The crf a job's video is written at: its own `crf` field, else the server's --crf, else None (the codec's
    default). A field that is no whole number, or outside the range of the codec that writes `output`, is a 400."""
    from motif_lite.io.video import check_crf

    try:
        check_crf(output, given, Audience.API)
    except MotifLiteError as exc:
        raise ApiError(400, str(exc), "crf", "invalid_value") from None
    return server_default if given is None else given


def _video_id(value: Any) -> str:
    """`extend`: the id of a video of this server, never a path (the server has the file)."""
    if not (isinstance(value, str) and JOB_ID.match(value)):
        raise ApiError(400, f"extend must be the id of a completed video of this server (video_ and 32 hex digits) "
                       f"or an uploaded video file (multipart), got {shown_as_sent(value, Audience.API)}", "extend",
                       "invalid_value")  # fmt: skip
    return value


def _form_value(value: Any, kind: type) -> Any:
    """A form field's text as the number its field takes; text that is no number stays text, for the checks every
    request gets to refuse with the message a JSON body's value gets (its range, the value cut short)."""
    if kind is str or not isinstance(value, str):
        return value
    if kind is int and _INT.match(value) and len(value) <= _MAX_DIGITS:
        return int(value)
    if kind is float:
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_size(size: Any) -> tuple[int, int]:
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        meant = _other_size_form(size)  # `720p`, `1280*720`, as the command line's -W and -H take them
        written = "" if meant is None else f": that is '{meant[0]}x{meant[1]}'"
        got = shown_as_sent(size, Audience.API)
        raise ApiError(400, f"size must be 'WIDTHxHEIGHT' (e.g. '1280x736'), got {got}{written}", "size",
                       "invalid_value")  # fmt: skip
    return int(match[1]), int(match[2])


def _other_size_form(value: Any) -> tuple[int, int] | None:
    """(width, height) of a size written in another form than the API's: `720p`, `1280*720`, `1280,720`."""
    return (split_size(value) or lines_size(value)) if isinstance(value, str) else None


def _size_field_hint(width: Any, height: Any) -> str:
    """What to send for diffusers' and ComfyUI's `width` and `height` fields (or one given a whole size, `64x64`,
    `720p`): the one `size` field, with their values where they tell it."""
    sides = [value for value in (width, height) if value is not None]
    size = next((size for value in sides if (size := _other_size_form(value)) is not None), None)
    if size is None and len(sides) == 2 and all(_INT.match(str(side)) for side in sides):
        size = (int(width), int(height))
    example = f"'{size[0]}x{size[1]}'" if size is not None else "'WIDTHxHEIGHT' (e.g. '1280x736')"
    return f"the size is one field here, 'size': {example}"


def api_frames(seconds: Any, fps: Any) -> int:
    """Seconds of video at `fps` as a frame count, of the 4k+1 form (`frames_for_seconds`, as run's hint for a
    `--video-frames 5s` counts them); a 400 for values that are no length or rate, or a length of more frames than
    any video may have (`countable_frames`), naming `seconds`."""
    value, rate = _api_number(seconds), _api_number(fps)
    # A JSON integer past the largest float (10**400) is a length, too long to count: not "no number".
    if not (value > 0 and (math.isfinite(value) or isinstance(seconds, int))):
        said = shown_as_sent(seconds, Audience.API)
        raise ApiError(400, f"seconds must be a positive number, got {said}", "seconds", "invalid_value")
    if not (math.isfinite(rate) and rate > 0):
        said = shown_as_sent(fps, Audience.API)
        raise ApiError(400, f"fps must be a positive number, got {said}", "fps", "invalid_value")
    if (frames := countable_frames(value, rate)) is None:  # refused in the field sent, not as a frame count
        raise ApiError(400, f"seconds {shown(seconds)} at {rate_said(rate)} is more frames than a video may have "
                       f"({MOST_FRAMES:,} at most, at the smallest size)", "seconds", "invalid_value")  # fmt: skip
    return frames


def _api_number(value: Any) -> float:
    """A field's number as a float: NaN for what is none (text, null, JSON's `true` and `false`, which Python's
    float() would read as 1 and 0), inf for an integer past the largest float (Python's float() raises on one)."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")  # what WHATWG's forgiving base64 drops from a data URL


def image_from_reference(reference: Any) -> bytes:
    """A JSON `input_reference`: `{"image_url": "data:image/...;base64,..."}`. The server fetches no URLs."""
    url = reference.get("image_url") if isinstance(reference, Mapping) else None
    if not isinstance(url, str):
        raise ApiError(
            400,
            'input_reference must be an uploaded image (multipart) or {"image_url": "data:image/png;base64,..."}',
            "input_reference",
            "invalid_value",
        )
    header, _, data = url.partition(",")
    header = header.lower()  # the scheme, the media type and the `base64` token are case-insensitive (RFC 2397)
    if not (header.startswith("data:image/") and header.endswith(";base64")):
        raise ApiError(400, "input_reference.image_url must be a base64 data URL; this server fetches no URLs",
                       "input_reference", "invalid_value")  # fmt: skip
    # `base64 FILE`, `openssl base64` and Python's `base64.encodebytes` wrap at 76 columns, and the newlines stay
    # in JSON made from them: ASCII whitespace is dropped, as browsers drop it (WHATWG's forgiving base64).
    data = _ASCII_WHITESPACE.sub("", data)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        why = f"({exc})"
        if "-" in data or "_" in data:
            why = "('-' and '_' are the URL-safe alphabet; a data URL takes the standard one, '+' and '/')"
        raise ApiError(400, f"input_reference: invalid base64 {why}", "input_reference", "invalid_value") from exc


def upload_limit(max_upload_bytes: int) -> str:
    """The image limit in the words of the flag that sets it, for a 413's message (the client may not know it)."""
    mib = max_upload_bytes / MiB
    return f"--max-upload-mb {mib:g}: first-frame images up to {mib:g} MiB"


def _smaller_copy(size: tuple[int, int], max_pixels: int) -> str:
    """What to send instead of an image of more than `max_pixels`: a copy of its shape within them (the limit
    alone named no size), which the first frame loses nothing by, as it is resized to the video's size."""
    scale = math.sqrt(max_pixels / (size[0] * size[1]))
    width, height = (max(1, math.floor(side * scale)) for side in size)
    return (
        f"send a smaller copy, e.g. {width}x{height} (its shape within the limit); the first frame is resized to "
        "the video's size in any case"
    )


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> None:
    """Check that the uploaded first frame is an image Pillow decodes: 413 beyond the size limits, 400 if it is not.
    The server keeps the bytes as uploaded, for `GenerationRequest.resolve()` to read as `motif-lite run` reads an
    image file (with the same notes: transparency dropped, frames after the first). Opened as `run` opens one: a
    large photo raises no "decompression bomb" warning in the log, and one Pillow refuses gets a 413 saying so."""
    import PIL.Image

    from motif_lite.io.image import ImageTooLarge, not_an_image, open_image, undecoded

    if len(data) > max_bytes:
        raise ApiError(413, f"input_reference is {len(data):,} bytes, larger than this server's limit "
                       f"({upload_limit(max_bytes)})", "input_reference", "image_too_large")  # fmt: skip
    if not data:  # as `motif-lite run` says of an empty image file, not "a format Pillow does not read"
        raise ApiError(400, "input_reference is empty (0 bytes): send the image file's contents", "input_reference",
                       "invalid_image")  # fmt: skip
    try:
        with open_image(io.BytesIO(data), "input_reference") as image:
            if image.width * image.height > max_pixels:  # checked from the header, before decoding the pixels
                raise ApiError(413, f"input_reference is {image.width}x{image.height}; the limit is "
                               f"{max_pixels:,} pixels: {_smaller_copy(image.size, max_pixels)}", "input_reference",
                               "image_too_large")  # fmt: skip
            image.load()  # a truncated or corrupt file fails here, with its upload's message
    except ImageTooLarge as exc:  # over Pillow's limit (179 megapixels), so over this server's too
        raise ApiError(413, f"{exc} (this server's limit: {max_pixels:,} pixels)", "input_reference",
                       "image_too_large") from None  # fmt: skip
    except PIL.UnidentifiedImageError as exc:  # its message names the in-memory buffer, not the upload
        why = not_an_image(data[:1024], None) or "not a format Pillow reads: PNG, JPEG, WebP, ..."
        raise ApiError(400, f"input_reference is not a readable image ({why})", "input_reference",
                       "invalid_image") from exc  # fmt: skip
    except (OSError, ValueError) as exc:  # an EPS, a WMF or a camera's RAW photo named as `run -i` names them
        why = undecoded(exc, data[:64]) if isinstance(exc, OSError) else str(exc)
        raise ApiError(400, f"input_reference is not a readable image ({why})", "input_reference",
                       "invalid_image") from exc  # fmt: skip


# The key of a job's settings that holds the file name its first frame was sent under (absent: none was given); the
# worker gives it to the video's file (`generate(stored_image=...)`), not to the request.
IMAGE_NAME_KEY = "image_name"


def job_request_fields(request: GenerationRequest) -> dict[str, Any]:
    """What the store keeps of a resolved request: every field but the paths, which come from the job ids."""
    settings = dataclasses.asdict(request)
    del settings["image"], settings["output"], settings["extend"]  # an extension's clip: the job's `extend` column
    return settings


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The values the checkpoint (or the official defaults) decide, in API names, for what a request leaves open."""
    from motif_lite.sampling import APGConfig

    guidance = settings.guidance.value
    apg = guidance if isinstance(guidance, APGConfig) else None
    return {
        "sampling_method": settings.sampler.value,
        "flow_shift": settings.flow_shift_used,  # null under dynamic shifting, as a video's stored settings say
        "guidance_method": None if guidance is None else "apg" if apg else "cfg",
        # Off: null, as the method. No one scale means "off" on every guider (0 on the official guider, 1 on a
        # standard-formulation one), and a client that sent a number back would guide.
        "guidance_scale": None if guidance is None else guidance.scale,
        "apg_eta": None if apg is None else apg.eta,
        "apg_norm_threshold": None if apg is None else apg.norm_threshold,
        "apg_momentum": None if apg is None else apg.momentum,
    }


def video_object(job: Job, jobs_ahead: int | None) -> dict[str, Any]:
    """A job as the OpenAI `Video` object, plus `settings`: every Motif setting in API names, as given or else as
    the checkpoint (or the official default) decides it, `notes`: what the checks found worth knowing, and
    `jobs_ahead`: how many jobs run before it while it is queued (None once it started)."""
    from motif_lite.io.video import default_crf

    s = job.settings
    error = None if job.error_code is None else {"code": job.error_code, "message": job.error_message}
    settings = {name: _given_or(s.get(field), job.effective.get(name)) for name, (field, _) in MOTIF_FIELDS.items()}
    settings["image_to_video"] = job.has_image or job.extends
    settings["extend"] = job.extend
    upload = job.extend_file  # the uploaded video it goes on from: its name as sent, its checksum and frames
    settings["extend_file"] = None if upload is None else {**upload, "frames": job.clip_frames}
    settings["loras"] = [{"name": name, "strength": strength} for name, strength in job.loras]
    settings["crf"] = default_crf(f"video{VIDEO_SUFFIX}") if job.crf is None else job.crf
    return {
        "id": job.id,
        "object": "video",
        "status": job.status,
        "progress": job.progress,
        "created_at": int(job.created_at),  # OpenAI's whole unix seconds; `timings` has the fraction
        "completed_at": None if job.completed_at is None else int(job.completed_at),
        "expires_at": None,
        "model": job.model,
        "prompt": s["prompt"],
        "size": f"{s['width']}x{s['height']}",
        "seconds": f"{video_seconds(job.frames_in_file, s['fps']):g}",  # an extension's: the whole file's
        "frames": job.frames_in_file,  # exact: `seconds`, to the hundredth, cannot be counted back past 100 fps
        "remixed_from_video_id": job.remixed_from,
        "jobs_ahead": jobs_ahead,
        "error": error,
        "settings": settings,
        "notes": job.notes,
        "timings": timings(job),
    }


def timings(job: Job) -> dict[str, Any]:
    """When the job was queued, started (its last start: a job a shutdown queued again starts again) and finished,
    in ISO 8601 UTC, and how long it waited in the queue and ran, in seconds (null until known)."""
    started, finished = job.started_at, job.completed_at
    ran = None if started is None or finished is None else round(finished - started, 3)
    return {
        "queued_at": iso_utc(job.created_at),
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished),
        "waited_seconds": None if started is None else round(started - job.created_at, 3),
        "ran_seconds": ran,
    }


def iso_utc(unix_seconds: float | None) -> str | None:
    """`2026-12-02T12:39:30.123Z`, or None."""
    if unix_seconds is None:
        return None
    moment = datetime.fromtimestamp(unix_seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _given_or(given: Any, effective: Any) -> Any:
    return effective if given is None else given


MAX_JOB_LORAS = 8  # each switch reloads the transformer; more than a few per job is a mistake, not a style
MAX_STRENGTH = 10.0  # 1 is as trained; far beyond a few the video is noise, and huge values overflow to inf/NaN


def parse_loras(value: Any, from_form: bool) -> list[tuple[str, float]]:
    """The `loras` field as (file name, strength) pairs; `ApiError` (400) for anything else."""
    if from_form and isinstance(value, str):
        try:
            value, repeated = json_noting_repeats(value)
        except (ValueError, RecursionError):  # not JSON, or an integer of over 4300 digits, or nested too deeply
            _refuse_loras('in a form, loras is JSON text, e.g. \'[{"name": "style.safetensors", "strength": 0.8}]\'')
        if twice := next((keys for keys in repeated if keys), None):  # as in a JSON body (`read_create_body`)
            _refuse_loras(f"{twice[0]!r} was sent twice in one of loras' JSON objects")
    if not isinstance(value, list):
        got = shown_as_sent(value, Audience.API)
        _refuse_loras(f"loras must be a list of LoRA file names or {{name, strength}} objects, got {got}")
    if len(value) > MAX_JOB_LORAS:
        _refuse_loras(f"a job may name at most {MAX_JOB_LORAS} LoRAs, got {len(value)}")
    # A name sent twice is refused with the folder's files (`lora_files`), where links to it are known too: refused
    # here, [a, a link to a, a] was told the sum of a's two entries alone, and the job sent next was refused again.
    return [_lora_entry(item) for item in value]


def named_once_advice(name: str, *strengths: float) -> str:
    """What to send instead of a job's `loras` naming one file more than once, at each of `strengths` (by one
    name, or by names of one file: `name` the first): the one object at the summed strength, that the sum is out of
    range, or, where the strengths cancel, to leave them out (`summed_strength`)."""
    total = summed_strength(*strengths)
    if total == 0:  # 1 and -1: the file at 0 would be read and change nothing
        return cancelling_advice(len(strengths), "out of loras")
    if abs(total) <= MAX_STRENGTH:
        return f"name it once with the summed strength, {json.dumps({'name': name, 'strength': total})}"
    # the object with the sum would be refused for its strength
    return f"name it once, at a strength from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} (the sum, {total:g}, is past it)"


def json_noting_repeats(text: str | bytes) -> tuple[Any, list[list[str]]]:
    """`json.loads(text)`, and per JSON object in it (inner ones first, the outermost last) the keys it names more
    than once: Python's parser keeps a repeated key's last value without a word, so its caller refuses them. A
    number past a float's range is a `WrittenNumber`, shown as the client wrote it."""
    repeated: list[list[str]] = []
    hook = functools.partial(_object_noting_repeats, repeated)
    return json.loads(text, object_pairs_hook=hook, parse_float=_json_float), repeated


def _json_float(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else WrittenNumber(text)


def _object_noting_repeats(repeated: list[list[str]], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    repeated.append(repeated_names(key for key, _ in pairs) if len(value) < len(pairs) else [])  # most have none
    return value


def repeated_names(names: Iterable[str]) -> list[str]:
    """The names given more than once, sorted. Each name is looked at once: a body's object may have many keys, and
    it is read on the server's event loop (a count per key took 10 s for 20k keys, and stalled every request)."""
    seen: set[str] = set()
    twice: set[str] = set()
    for name in names:
        (twice if name in seen else seen).add(name)
    return sorted(twice)


# How the openai SDK sends `extra_body={"loras": [...]}` in a multipart body (its form encoding of a list, which it
# groups by key: the names of the objects in one list, their strengths in another, in the same order).
FORM_LORA_KEYS = ("loras[]", "loras[][name]", "loras[][strength]")


def form_loras(items: Mapping[str, list[str]]) -> list[Any]:
    """The `loras` list from its form fields (`loras[]`: a file name; `loras[][name]` with `loras[][strength]`: an
    object; the strengths parsed as numbers)."""
    names, strengths = items.get("loras[][name]", []), items.get("loras[][strength]", [])
    if strengths and len(strengths) != len(names):
        _refuse_loras("in a form, give every LoRA object a strength, or none of them (each then has strength 1)")
    objects = [
        {"name": name, **({"strength": _form_value(strengths[i], float)} if strengths else {})}
        for i, name in enumerate(names)
    ]
    return [*items.get("loras[]", []), *objects]


# Other tools' keys for a LoRA object's two (ComfyUI's LoraLoader: lora_name, strength_model; diffusers' adapter
# weights; kohya's multiplier; AUTOMATIC1111's <lora:name:weight>), answered with the key to send instead.
OTHER_LORA_KEYS = {"file": "name", "filename": "name", "path": "name", "lora": "name", "lora_name": "name",
                   "weight": "strength", "weights": "strength", "scale": "strength", "strength_model": "strength",
                   "multiplier": "strength", "adapter_weights": "strength"}  # fmt: skip


def _lora_entry(item: Any) -> tuple[str, float]:
    if isinstance(item, str):
        return _lora_file_name(item), 1.0
    if not isinstance(item, dict):
        _refuse_loras(f'each LoRA is a file name or an object {{"name": FILE, "strength": S}}, got {_as_json(item)}')
    _check_lora_keys(item)
    strength = item.get("strength", 1.0)
    number = isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength)
    if not number or abs(strength) > MAX_STRENGTH:
        bounds = f"-{MAX_STRENGTH:g} to {MAX_STRENGTH:g}"
        _refuse_loras(f"LoRA strength must be a number from {bounds}, got {shown_as_sent(strength, Audience.API)}")
    return _lora_file_name(item["name"]), float(strength)


def _check_lora_keys(item: dict) -> None:
    """400 for a LoRA object with a key other than `name` and `strength` (naming the key meant, for another tool's
    or a typo), or without a `name`."""
    unknown = [key for key in item if key not in ("name", "strength")]
    if unknown:
        key = unknown[0]
        meant = meant_name(key, ("name", "strength"), OTHER_LORA_KEYS)
        hint = f"; did you mean {json.dumps(meant)}?" if meant else ""
        _refuse_loras(f'unknown key {json.dumps(key)} in the LoRA {_as_json(item)}{hint} (a LoRA object has '
                      f'"name" and "strength": {{"name": FILE, "strength": S}})')  # fmt: skip
    if "name" not in item:
        _refuse_loras(f'the LoRA {_as_json(item)} has no "name": give {{"name": FILE, "strength": S}}')


def _as_json(value: Any) -> str:
    """`value` as the client wrote it (JSON: `null`, double quotes), cut short as `shown` cuts a Python value."""
    try:
        return json_as_sent(value, limit=60)  # a number past a float's range as written: json.dumps wrote `Infinity`
    except (TypeError, ValueError, RecursionError):  # not from JSON (a test's object): Python's spelling
        return shown(value)


def _lora_file_name(name: Any) -> str:
    """A plain file name: the folder's own files only, and nothing that could climb out of it."""
    plain = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
    file, strength = split_strength(name) if plain else (name, None)
    if file and strength is not None:  # --lora's FILE:STRENGTH, as a user of run types it
        meant = json.dumps({"name": file, "strength": strength})  # the strength as typed: `:g` cut 0.1234567
        _refuse_loras(f"{name!r}: a job gives a LoRA's strength in an object, {meant}, not after a colon as "
                      "motif-lite run's --lora does")  # fmt: skip
    if not plain or "\0" in name or ":" in name:  # ':' a Windows drive
        _refuse_loras(
            f"a LoRA is named by its file name in the server's LoRA folder (no folders or paths), got "
            f"{shown_as_sent(name, Audience.API)}"
        )
    return name


def _refuse_loras(message: str) -> NoReturn:
    raise ApiError(400, message, "loras", "invalid_value")
