"""Job submission: a create body (POST /v1/videos, an extension, a remix) checked as `motif-lite run` checks its
flags, given its files (a first frame, the video it goes on from) and queued; or refused with the API's error (400,
429 when the queue is full, 507 when the data folder cannot be written), leaving no file behind.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from motif_lite.encoders.text import PromptTruncation, load_tokenizer, long_prompts
from motif_lite.errors import Audience, DiskFullError, MotifLiteError, counted, shown
from motif_lite.frame_rates import rate_said
from motif_lite.request import (
    API_FIELDS,
    REQUEST_DEFAULTS,
    SIZE_MULTIPLE,
    TEMPORAL_FACTOR,
    GenerationRequest,
    video_seconds,
)
from motif_lite.server.clip_upload import (
    UploadedClip,
    check_kept_upload,
    check_server_video,
    read_upload,
    save_upload,
    upload_names,
    uploaded_record,
)
from motif_lite.server.extension import (
    EXTENSION_NEEDS_IMAGE_ENCODER,
    check_can_extend,
    checked_clip,
    extended_job,
    keep_clip,
    renamed,
    server_names,
    with_clip_defaults,
)
from motif_lite.server.job_record import Job, new_job_id
from motif_lite.server.jobs import JobStore
from motif_lite.server.loras import check_loras_fit, check_loras_fit_plan, lora_files
from motif_lite.server.remix import other_upload_note
from motif_lite.server.schema import (
    IMAGE_NAME_KEY,
    NOT_RETRIED,
    ApiError,
    CreateBody,
    api_param,
    check_image,
    effective_settings,
    job_crf,
    job_request_fields,
)
from motif_lite.weights.lora_values import unusual_strength

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from motif_lite.io.clip import Clip
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.server.app import ServerConfig, ServerState
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile


# The refusal of a first frame on a checkpoint without the image encoder, at submission and as a queued job starts.
NO_IMAGE_ENCODER = "this checkpoint has no image encoder (feature_extractor/): text-to-video only"


class JobSubmitter:
    """The API's `submit(body, remixed=None)` of jobs to `store`, with the server's `state` (its config and worker)."""

    def __init__(self, store: JobStore, state: ServerState) -> None:
        self.store = store
        self.state = state
        self.prompts_cut = _PromptsCut()

    def __call__(self, body: CreateBody, remixed: Job | None = None, sender: str = "an unknown client") -> Job:
        """Validate like `motif-lite run`, store, queue (runs in a thread: decoding an image takes a while). Only
        called once the model has loaded (the API's `_loaded_checker`). `remixed`: the video whose settings the body
        holds; `sender`: the client's address, which the log names (on a server a team shares, the proxy's access
        log has each request but not the job it made)."""
        store, worker, config = self.store, self.state.worker, self.state.config
        job_id = new_job_id()
        crf = job_crf(body.crf, config.crf, store.video_path(job_id))  # before any file is written for the job
        extended = None if body.extend is None else extended_job(store, body, config.image_to_video)
        upload: UploadedClip | None = body.extend_upload
        if upload is not None:
            check_can_extend(body, config.image_to_video)
        if body.image is not None:
            check_image(body.image, config.max_upload_bytes, config.max_image_pixels)
            if not config.image_to_video:
                raise ApiError(400, NO_IMAGE_ENCODER, "input_reference", "invalid_value")
        image_path = None if body.image is None else store.input_path(job_id)
        kept = []  # the files this job has been given so far: removed again if it is not queued
        try:
            if image_path is not None:
                image_path.write_bytes(body.image)
                kept.append(image_path)
            output = store.video_path(job_id)
            source = _take_source_video(store, config, body, job_id, extended, kept)
            clip, names, uploaded = source.clip, source.names, source.uploaded
            fields, capped = within_max_video(source.fields, config.max_video)

            def worded(text: str) -> str:  # a message or note of the checks, with the client's names of its files
                return renamed(text, names)

            request = GenerationRequest(**fields, image=image_path, extend=source.path, output=output)
            resolved, notes, run_settings = _resolved_for_api(request, clip, body, worker.pipe, worded)
            cut = self.prompts_cut(worker.pipe, run_settings)  # said as `motif-lite run` says them before it loads
            notes = _job_notes([*capped, *notes, *run_settings.notes], cut, worded, remixed, uploaded)
            job_loras = check_loras_fit(worker.pipe, lora_files(body.loras, config.lora_dir), config.lora_dir)
            # Each job's own: the switch's warning reaches the operator's log alone, and once (one text once a command)
            notes += [note for name, strength in body.loras if (note := unusual_strength(name, strength)) is not None]
            check_loras_fit_plan(job_loras, config.planned, config.plan)
            check_fits_server(resolved, run_settings, config, body.seconds, job_loras)
            settings = job_request_fields(resolved)
            if body.image is not None and body.image_name is not None:  # its video's file names it so (`stored_image`)
                settings[IMAGE_NAME_KEY] = body.image_name
            with worker.queuing():  # its `queued by` line before the worker's `started`, even at an idle look
                job = store.add(
                    job_id, config.model_name, settings, image_path is not None, config.max_queue,
                    effective=effective_settings(run_settings), notes=notes, loras=body.loras, extend=extended,
                    crf=crf, remixed_from=None if remixed is None else remixed.id, extend_file=uploaded,
                    clip_frames=None if uploaded is None else clip.frames,
                    prompt_warnings=[truncation.warning(label) for label, truncation in cut.items()],
                )  # fmt: skip
                if job is not None:
                    worker.log(f"{job.id}: queued by {sender}")
            if job is None:  # filled while the body was read and checked
                raise queue_full(config.max_queue)
        except (OSError, sqlite3.Error) as exc:  # the data folder: a full disk, a read-only mount
            _remove(kept)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            message = (
                f"the server cannot store the job ({reason}): its data folder is full or cannot be written; try again "
                "later, once space is freed, or ask the server's operator"
            )
            raise ApiError(507, message, None, "storage_full", headers=NOT_RETRIED) from None
        except BaseException:
            _remove(kept)
            raise
        worker.notify()
        return job


def _resolved_for_api(
    request: GenerationRequest,
    clip: Clip | None,
    body: CreateBody,
    pipe: MotifVideoPipeline,
    worded: Callable[[str], str],
) -> tuple[GenerationRequest, list[str], Settings]:
    """`request` resolved as `motif-lite run` resolves its flags (`resolve(clip)`), with its notes and the settings
    `pipe` will run it with (as the worker will see them), both in the API's fields; a refusal of either as the API's
    400, its message `worded` in the client's names of its files, with the field the API calls it."""
    try:
        resolved, notes = request.resolve(clip, audience=Audience.API)
        return resolved, notes, pipe.settings_for(resolved, audience=Audience.API)
    except DiskFullError:  # the data folder's disk: 507, as for any storage failure (`submit`)
        raise
    except MotifLiteError as exc:  # a RequestError
        param, message = api_param(exc), worded(str(exc))
        if param == "size" and clip is not None and "width" not in body.request_fields:
            param = "extend"  # the size is the video's: it is the one to fix (resized, the message says)
        if param == "num_frames" and body.seconds is not None:  # the frames are the seconds': name the field sent
            param = "seconds"
            message = f"seconds {shown(body.seconds)} at {rate_said(request.fps)} is {request.frames} frames: {message}"
        raise ApiError(400, message, param, "invalid_value") from exc


def _job_notes(
    notes: list[str],
    cut: dict[str, PromptTruncation],
    worded: Callable[[str], str],
    remixed: Job | None,
    uploaded: dict[str, str] | None,
) -> list[str]:
    """A job's notes, in the client's words (`worded`): run's `notes`, the advice on the prompts the text encoder
    will `cut`, and a remix's note on an upload other than the `remixed` video's."""
    advice = [truncation.advice(label) for label, truncation in cut.items()]
    worded_notes = [worded(note) for note in (*notes, *advice)]
    if remixed is not None and uploaded is not None and (note := other_upload_note(remixed, uploaded)):
        worded_notes.append(note)
    return worded_notes


@dataclass(frozen=True)
class _SourceVideo:
    """The video a job goes on from, taken for it (`_take_source_video`); no path, clip or record for a job that goes
    on from none."""

    path: Path | None  # the job's own file of it, where the worker reads it
    clip: Clip | None  # that file, read and checked as `motif-lite run --extend` reads it
    names: dict[str, str]  # its file names -> what a client calls them, for messages (`renamed`)
    uploaded: dict[str, str] | None  # an uploaded video's record, {name, sha256}
    fields: dict[str, Any]  # the body's request fields, with the video's size and rate where the body gives none


def _take_source_video(
    store: JobStore, config: ServerConfig, body: CreateBody, job_id: str, extended: Job | None, kept: list[Path]
) -> _SourceVideo:
    """Give the job `job_id` its own file of the video it goes on from (a video of this server, `extended`, or the
    body's upload), appended to `kept`, and read it; 400 when it cannot be used."""
    output = store.video_path(job_id)
    upload: UploadedClip | None = body.extend_upload
    if extended is not None:  # taken first: the clip checked is the one the job will read
        path = keep_clip(store, extended.id, job_id)
        kept.append(path)
        names = server_names(path, extended.id, output)
        clip = checked_clip(path, extended, names)
        check_server_video(path, extended.id, config.max_video_upload_bytes, config.max_image_pixels, clip)
        made = extended.settings
        return _SourceVideo(
            path, clip, names, None, with_clip_defaults(body, made["width"], made["height"], made["fps"])
        )
    if upload is not None:  # written beside the job, where the worker reads it, then read as run reads it
        path = store.clip_path(job_id)
        kept.append(path)
        uploaded = uploaded_record(upload, save_upload(upload, path, config.max_video_upload_bytes))
        names = upload_names(path, upload, output)
        clip = read_upload(path, upload, config.max_image_pixels, names)
        return _SourceVideo(path, clip, names, uploaded, with_clip_defaults(body, clip.width, clip.height, clip.fps))
    return _SourceVideo(None, None, {}, None, body.request_fields)


class _PromptsCut:
    """The prompts of a job that the text encoder will cut (the job runs, as `motif-lite run` goes on after its
    warning), measured at submission: its notes say them, so that a client reads them at once, not only the server's
    log as the job is encoded; and the job keeps the encode's own warnings on them, which the worker then leaves out
    of its log (the notes said them). With a tokenizer of its own, one job at a time: a fast tokenizer keeps its
    truncation as state, and two threads calling one at once fail ("Already borrowed"), the worker's encode or a
    submission."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: PreTrainedTokenizerBase | None = None

    def __call__(self, pipe: MotifVideoPipeline, settings: Settings) -> dict[str, PromptTruncation]:
        """label -> how the text encoder will cut it (`long_prompts`)."""
        if pipe.sources is None or pipe.sources.root is None:  # no checkpoint folder to read it from
            return {}
        with self._lock:
            if self._tokenizer is None:  # the checkpoint's, loaded once (seconds) by the first job's submission
                try:
                    self._tokenizer = load_tokenizer(pipe.sources.root)
                except MotifLiteError:  # gone from the folder since the model loaded: the encode warns as it cuts
                    return {}
            return long_prompts(self._tokenizer, settings.encoded_prompts)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def within_max_video(
    fields: dict[str, Any], max_video: tuple[int, int, int] | None
) -> tuple[dict[str, Any], list[str]]:
    """A job that names no size (or no length) gets the official one, or the largest this server allows where that
    is smaller (--max-video: a 400 for a job that asked for nothing was no default), in valid steps (multiples of
    16 a side, 4k+1 frames); with a note that says so."""
    if max_video is None:
        return fields, []
    width, height, frames = max_video
    fields, notes = dict(fields), []
    official = REQUEST_DEFAULTS
    if fields.get("width") is None and official.width * official.height > width * height:
        fields["width"], fields["height"] = width - width % SIZE_MULTIPLE, height - height % SIZE_MULTIPLE
        notes.append(f"no size given: {fields['width']}x{fields['height']}, the largest this server allows "
                     f"(its --max-video), instead of the official {official.width}x{official.height}")  # fmt: skip
    if fields.get("frames") is None and official.frames > frames:
        fields["frames"] = frames - (frames - 1) % TEMPORAL_FACTOR
        notes.append(f"no length given: {fields['frames']} frames, the most this server allows (its --max-video), "
                     f"instead of the official {official.frames}")  # fmt: skip
    return fields, notes


def check_queued_job(job: Job, request: GenerationRequest, pipe: MotifVideoPipeline, config: ServerConfig) -> None:
    """Refuse (the API's 400, as its submission would have been refused) a queued `job`, whose settings make
    `request`, that this server cannot run: checked again as the worker takes it, before anything loads. A job
    queued before a restart was checked against the server before, which may have had another checkpoint (one with
    the image encoder), --lora-dir (its LoRA file since gone), memory plan (room for its LoRAs' adapters) or
    --max-video, --max-upload-mb, --max-video-upload-mb or image size limit (`ServerConfig.max_image_pixels`, 40
    megapixels: checked on the job's stored first frame and the video it goes on from, uploaded or this server's); a
    LoRA file may also have left the folder while the job waited. In the order of `JobSubmitter`'s checks: the first
    that fails is the one the same submission is refused with now."""
    if job.extends and not config.image_to_video:
        raise ApiError(400, EXTENSION_NEEDS_IMAGE_ENCODER, "extend", "invalid_value")
    if request.image is not None and request.image.is_file():  # a file gone is left to the job's read, which says so
        check_image(request.image.read_bytes(), config.max_upload_bytes, config.max_image_pixels)
    if job.has_image and not config.image_to_video:
        raise ApiError(400, NO_IMAGE_ENCODER, "input_reference", "invalid_value")
    if job.extend_file is not None and request.extend is not None:  # an uploaded video
        check_kept_upload(request.extend, job.extend_file["name"], config.max_video_upload_bytes,
                          config.max_image_pixels)  # fmt: skip
    elif job.extend is not None and request.extend is not None:  # a video of this server
        check_server_video(request.extend, job.extend, config.max_video_upload_bytes, config.max_image_pixels)
    job_loras = check_job_loras(job, pipe, config)
    check_fits_server(request, pipe.settings_for(request, audience=Audience.API), config, loras=job_loras)


def check_job_loras(job: Job, pipe: MotifVideoPipeline, config: ServerConfig) -> list[LoRAFile]:
    """Refuse (the API's 400) a queued `job` whose LoRAs no longer fit: a file gone from --lora-dir, or another one
    put in its place, while it waited. The one check of `check_queued_job` that a job queued since this server
    started can fail: the others concern the server's flags and checkpoint, and the job's own files in the data
    folder, which have not changed since its submission was checked against them. -> the job's files, read (none
    where it names none)."""
    files = check_loras_fit(pipe, lora_files(job.loras, config.lora_dir), config.lora_dir)
    check_loras_fit_plan(files, config.planned, config.plan)
    return files


@dataclass(frozen=True)
class TooLong:
    """Why a job is too long to run on this server's CPU (`ServerConfig.too_long`): the estimate and advice, and
    the request fields that make it so ("width" for the size, "frames", "steps"), most to blame first."""

    why: str
    fields: tuple[str, ...]


def _too_long_error(long: TooLong, seconds: Any) -> ApiError:
    """The 400 for a job too long for the CPU, naming the fields that make it so as the client sent them: `seconds`
    where it decided the frames (as `_check_planned_size` names it); `param` the first of them."""
    names = [("seconds" if field == "frames" and seconds is not None else API_FIELDS[field]) for field in long.fields]
    verb = "makes" if len(names) == 1 and names != ["seconds"] else "make"  # a plural alone: "its seconds make"
    return ApiError(400, f"its {' and '.join(names)} {verb} this job too long: {long.why}", names[0], "invalid_value")


def check_fits_server(
    request: GenerationRequest,
    settings: Settings,
    config: ServerConfig,
    seconds: Any = None,
    loras: Sequence[LoRAFile] = (),
) -> None:
    """Refuse (the API's 400) a resolved `request`, to run with `settings`, that is over this server's limits: its
    --max-video, or on the CPU without one, too long to run there (`config.too_long`, with the job's `loras`, read:
    none where it names none). `seconds`: the body's, where it decided the frames (the message names the field the
    client sent). Checked at submission, and again as a queued job starts: a restart may have brought smaller limits
    (`Worker`)."""
    _check_planned_size(request, config.max_video, seconds, config.plan is not None)
    if config.too_long is not None and (long := config.too_long(request, settings, loras)) is not None:
        raise _too_long_error(long, seconds)


def _check_planned_size(
    request: GenerationRequest, max_video: tuple[int, int, int] | None, seconds: Any, planned: bool
) -> None:
    """Refuse a job over --max-video, naming the field that is over as the client sent it: `seconds`, where
    `seconds` decided the frames (else `num_frames`). `planned`: whether the server made its memory plan for that
    size (on the CPU without --vram there is none, and --max-video is the operator's bound alone)."""
    if max_video is None:
        return
    width, height, frames = max_video
    too_many_pixels = request.width * request.height > width * height
    if too_many_pixels or request.frames > frames:
        length = "num_frames" if seconds is None else "seconds"
        counted = ""
        if seconds is not None:  # the frames are the seconds': say both, and the most seconds that fit
            most = video_seconds(frames, request.fps)
            counted = (f" (seconds {shown(seconds)} at {rate_said(request.fps)}: {request.frames} frames; up to "
                       f"{most:g} s fit)")  # fmt: skip
        raise ApiError(
            400,
            f"{request.width}x{request.height}x{request.frames}{counted} is larger than the {width}x{height}x{frames} "
            f"{'this server planned its memory for' if planned else 'this server takes (its --max-video)'}; ask for "
            "less, or restart it with a larger --max-video",
            "size" if too_many_pixels else length,  # the field that is over (the size first, as in the message)
            "invalid_value",
        )


def queue_full(max_queue: int) -> ApiError:
    """The 429 for a create that finds `max_queue` jobs queued or running."""
    full = f"the queue is full ({counted(max_queue, 'job')} queued or running); try again later"
    return ApiError(429, full, None, "queue_full", headers={"Retry-After": "30"})
