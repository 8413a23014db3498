"""The FastAPI app: the OpenAI Videos API under /v1, the web page at /, the server's health at /health.

The app answers from the moment the port is bound, while the model still loads: /health then says `loading`, the
page says so, and every /v1 route answers 503 (`model_loading`, with Retry-After) until `ServerState.ready` hands
over the worker.

Every /v1 route asks for `Authorization: Bearer KEY` when the server has a key (compared in constant time). The
page and its files are public: they hold no data, and a browser cannot send a bearer header when it opens a page;
the page asks for the key and sends it with each API call. /health is public too, for load balancers: it says how
the server is doing and nothing of any job but the running one's id and progress. Bodies over the limit get 413
before they are parsed to the end, a full queue 429, and every error has OpenAI's JSON shape. Without a key, web
pages of other sites are refused what changes anything, and a loopback server answers loopback names only
(`CrossSiteGuard`).
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from motif_lite.errors import MotifLiteError
from motif_lite.io.preview import preview_steps
from motif_lite.json_values import is_count
from motif_lite.request import GenerationRequest
from motif_lite.server.body_limit import BodyLimit
from motif_lite.server.cors import ApiCors
from motif_lite.server.cross_site import CrossSiteGuard
from motif_lite.server.downloads import download
from motif_lite.server.extension import extension_fields, in_video_words
from motif_lite.server.internal_errors import InternalErrors
from motif_lite.server.job_record import COMPLETED, FAILED, IN_PROGRESS, JOB_ID, QUEUED, Job
from motif_lite.server.jobs import VIDEO_SUFFIX, JobStore
from motif_lite.server.loras import available_loras
from motif_lite.server.remix import remix_fields
from motif_lite.server.request_body import read_create_body
from motif_lite.server.schema import (
    NOT_RETRIED,
    ApiError,
    MiB,
    effective_settings,
    meant_name,
    parse_create,
    video_object,
)
from motif_lite.server.submission import JobSubmitter, TooLong, queue_full, within_max_video
from motif_lite.server.unread_body import CloseAfterUnreadBody
from motif_lite.server.worker import Worker
from motif_lite.version import VERSION

if TYPE_CHECKING:
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.runtime.planner import Plan
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile

STATIC = Path(__file__).parent / "static"
SCHEMA_PATHS = ("/openapi.json", "/docs", "/redoc")  # where FastAPI serves its OpenAPI schema and its pages
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")  # those a 405's `Allow` may name
# The response headers a page of another origin may read (`--cors-origin`): those the SDKs' poll and retries read,
# and a download's that a script reads: the file's size in a 206's Content-Range, its name, and the ETag with which
# an If-Range resumes it.
SDK_HEADERS = ("openai-poll-after-ms", "retry-after", "x-should-retry")
DOWNLOAD_HEADERS = ("content-range", "accept-ranges", "content-disposition", "etag")
CORS_OFF = (
    "; a browser's CORS preflight: this server takes no calls from pages of other origins unless started with "
    "--cors-origin ORIGIN (or serve the page and the API from one origin, behind one proxy: docs/server.md)"
)
LOADING_RETRY_SECONDS = 10  # what a 503 `model_loading` tells a client to wait (the SDK retries after it)
# The page while the model loads: it reloads itself, and so becomes the real page once the model is ready.
LOADING_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{LOADING_RETRY_SECONDS}">
<title>motif-lite: loading</title></head>
<body><p>motif-lite is loading the model; this page reloads every {LOADING_RETRY_SECONDS} s until it is ready.</p>
</body></html>
"""
# variant -> (media type, suffix). `preview` (motif-lite's own): a running job's latest preview, animated WebP.
MEDIA_TYPES = {"video": ("video/mp4", ".mp4"), "thumbnail": ("image/webp", ".webp"), "preview": ("image/webp", ".webp")}
# What the server offers instead of the SDK's calls that need a model that changes or studies a video.
INSTEAD = (
    "Motif-Video makes videos from text or a first frame. This server offers instead: extend (client.videos.extend, "
    "POST /v1/videos/extensions: the next part after a video's last frame), remix (client.videos.remix, POST "
    "/v1/videos/{id}/remix: a video's settings and seed with a new prompt) and input_reference on create (a first "
    "frame)"
)


@dataclass(frozen=True)
class ServerConfig:
    """What `motif-lite serve`'s flags decide about the API."""

    model_name: str
    api_key: str | None = None
    max_queue: int = 100  # queued + running jobs; more gets 429
    max_upload_bytes: int = 20 * MiB  # the first-frame image
    max_video_upload_bytes: int = 100 * MiB  # an uploaded video to extend (multipart only)
    max_image_pixels: int = 40_000_000
    # (width, height, frames): the largest video the memory plan covers (None: no plan, no limit).
    max_video: tuple[int, int, int] | None = None
    image_to_video: bool = True  # the checkpoint has the image encoder
    # A server on the CPU without --max-video: why a job is too long to run there (`motif-lite run` would ask
    # first) and which of its fields make it so, or None when it is not; None: no such check. Its third argument:
    # the job's LoRA files, whose adapters beside packed layers add work (empty: the server's own LoRAs run).
    too_long: Callable[[GenerationRequest, Settings, Sequence[LoRAFile]], TooLong | None] | None = None
    cors_origins: tuple[str, ...] = ()
    poll_after_ms: int = 1000  # the SDK's `poll` waits this long between retrieves
    lora_dir: Path | None = None  # --lora-dir: the folder of LoRA files a job may name (None: jobs may name none)
    crf: int | None = None  # --crf: the videos' constant-rate factor for jobs that give none (None: the codec's)
    # The memory plan the model loaded with, and what it was made for (the largest video a job may ask for): the
    # figures a job that runs out of device memory is told. None: no plan.
    planned: PlannedRun | None = None
    plan: Plan | None = None

    @property
    def max_body_bytes(self) -> int:
        """The image as a base64 data URL in JSON (4/3 of its size) plus 1 MiB for the other fields."""
        return self.max_upload_bytes * 4 // 3 + MiB

    @property
    def max_form_bytes(self) -> int:
        """A multipart body: that, or an uploaded video to extend plus 1 MiB for the other fields (a form's files
        go to a temporary file as they arrive, not into memory)."""
        return max(self.max_body_bytes, self.max_video_upload_bytes + MiB)


class ServerState:
    """What the app answers from: the worker, and the settings the loaded model decides (`ServerConfig`'s
    `max_video`, `image_to_video`, `too_long`), once the model has loaded; until then `worker` is None and the API
    answers 503. The HTTP side's settings (key, limits, CORS) are those of the first config and never change."""

    def __init__(self, config: ServerConfig, worker: Worker | None = None) -> None:
        self.config = config
        self.worker = worker
        # True once the server stops (`VideoServer.stop`). A plain flag, not a threading.Event: a stop signal's
        # handler sets it, and one run again inside Event.set() (a second signal) would wait for its own lock.
        self.stopping = False
        self.listening_on: str | None = None  # the address the socket is bound to, once `VideoServer.serve` has it

    def ready(self, worker: Worker, config: ServerConfig) -> None:
        self.config = config  # first: a request that sees the worker sees the config that goes with it
        self.worker = worker


def create_app(store: JobStore, state: ServerState) -> FastAPI:
    config = state.config
    # No redirect for a trailing slash: its 307 has an empty body, which curl without -L prints as nothing at all (a
    # POST that seemed to succeed); the 404 instead names the route without the slash (`_add_error_handlers`).
    app = FastAPI(title="motif-lite", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.include_router(_api_router(store, state))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/health", _health_route(store, state), methods=["GET", "HEAD"], include_in_schema=False)

    # HEAD too: an uptime monitor pointed at the page sends it (FastAPI's routes take only the methods named).
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> Response:
        if state.worker is None:
            return HTMLResponse(LOADING_PAGE, status_code=503, headers=_loading_headers())
        return FileResponse(STATIC / "index.html", media_type="text/html")

    _add_error_handlers(app, cors_on=bool(config.cors_origins))
    app.add_middleware(
        BodyLimit,
        max_bytes=config.max_body_bytes,
        max_upload_bytes=config.max_upload_bytes,
        max_form_bytes=config.max_form_bytes,
        max_video_upload_bytes=config.max_video_upload_bytes,
    )
    # Before the body is read: a refused page's upload is not stored first. Inside CORS: a page of an origin that
    # --cors-origin allows is never refused, and so needs none of its headers on a refusal.
    app.add_middleware(CrossSiteGuard, has_key=config.api_key is not None, cors_origins=config.cors_origins,
                       listening_on=lambda: state.listening_on)  # fmt: skip
    app.add_middleware(InternalErrors)  # inside CORS: a page of another origin reads a bug's 500 too
    # Outside every answer given before the body was read; a stop ends its reading of the rest at once.
    app.add_middleware(CloseAfterUnreadBody, stopping=lambda: state.stopping)
    if config.cors_origins:
        # Any request header: OpenAI's SDKs send their own (X-Stainless-*, OpenAI-Organization), and a preflight
        # naming one not listed was refused, so a page using an SDK could call nothing. No cookies are allowed, so
        # a header grants nothing the key does not. A browser shows a script few response headers of its own
        # choosing: the others it reads are exposed (the SDKs' poll and retry hints, a download's).
        app.add_middleware(
            ApiCors,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=[*SDK_HEADERS, *DOWNLOAD_HEADERS],
        )
    return app


def _api_router(store: JobStore, state: ServerState) -> APIRouter:
    # The handlers run on the event loop: each store call is a short SQLite statement, and a hop to a thread per
    # request (FastAPI's way with plain functions) cost more than the work under load. Creating a job decodes an
    # image and so goes to a thread.
    config = state.config  # its HTTP side: the key and the poll interval, fixed at start
    checks = [Depends(_key_checker(config.api_key)), Depends(_loaded_checker(state)), Depends(_close_form)]
    api = APIRouter(prefix="/v1", dependencies=checks)
    submit = JobSubmitter(store, state)

    @api.post("/videos")
    async def create_video(request: Request) -> dict[str, Any]:
        _refuse_if_full(store, state)
        fields, (image, image_name), from_form = await read_create_body(request)
        body = parse_create(fields, image, from_form, image_name)
        job = await run_in_threadpool(submit, body, sender=_sender(request))
        return _video_objects(store, state, [job])[0]

    @api.post("/videos/extensions")
    async def extend_video(request: Request) -> dict[str, Any]:
        """The SDK's `client.videos.extend`: a create with `extend` = the id in `video`; `seconds` is the new
        part's length, as for `extend`."""
        _refuse_if_full(store, state)
        fields, (image, image_name), from_form = await read_create_body(request)
        try:
            body = parse_create(extension_fields(fields), image, from_form, image_name)
            job = await run_in_threadpool(submit, body, sender=_sender(request))
        except ApiError as exc:
            raise in_video_words(exc) from None
        return _video_objects(store, state, [job])[0]

    @api.post("/videos/edits")
    async def edit_video(request: Request) -> None:
        await request.body()  # read to its end: the client then sees the answer, not a connection closed mid-upload
        raise ApiError(400, f"this server does not edit videos: {INSTEAD}", "video", "unsupported")

    @api.post("/videos/characters")
    async def create_character(request: Request) -> None:
        await request.body()
        raise ApiError(400, f"this server has no characters: {INSTEAD}; a character's picture can be the first "
                       "frame", "video", "unsupported")  # fmt: skip

    @api.get("/videos/characters/{character_id}")  # before /videos/{video_id}/content: `characters/content`
    async def get_character(character_id: str) -> None:
        raise ApiError(400, f"this server has no characters: {INSTEAD}", "character_id", "unsupported")

    @api.post("/videos/{video_id}/remix")
    async def remix_video(video_id: str, request: Request) -> dict[str, Any]:
        """The SDK's `client.videos.remix`: the completed video's settings and seed with a new prompt."""
        source = _job(store, video_id)
        _refuse_if_full(store, state)
        fields, (image, image_name), from_form = await read_create_body(request)
        remixed = remix_fields(source, fields, image, state.config.lora_dir)
        body = parse_create(remixed, image, from_form, image_name)
        job = await run_in_threadpool(submit, body, source, sender=_sender(request))
        return _video_objects(store, state, [job])[0]

    @api.get("/videos")
    async def list_videos(request: Request) -> dict[str, Any]:
        _only_known_query(request, ("after", "limit", "order"))
        after, limit, descending = _page_params(request.query_params)
        page = store.page(after, limit, descending)
        if page is None:
            raise ApiError(400, f"after: no video {after!r}", "after", "invalid_value")
        jobs, has_more = page
        data = _video_objects(store, state, jobs)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}

    @api.get("/videos/{video_id}")
    async def retrieve_video(video_id: str, response: Response) -> dict[str, Any]:
        response.headers["openai-poll-after-ms"] = str(config.poll_after_ms)
        return _video_objects(store, state, [_job(store, video_id)])[0]

    @api.delete("/videos/{video_id}")
    async def delete_video(video_id: str) -> dict[str, Any]:
        job = store.delete(video_id) if JOB_ID.match(video_id) else None
        if job is None:
            raise _not_found(video_id)
        if state.worker is not None:
            state.worker.deleted(job.id)
        return {"id": job.id, "object": "video.deleted", "deleted": True}

    # HEAD too, as on every GET route (`curl -I`, download managers): the file's size and type without its bytes.
    @api.get("/videos/{video_id}/content")
    async def download_video(video_id: str, request: Request, variant: str = "video") -> Response:
        _only_known_query(request, ("variant",))  # `?varient=thumbnail` would send the MP4 without a word
        if variant == "spritesheet":  # OpenAI's, in the SDK: not a typo, so not "must be one of"
            raise ApiError(400, "this server makes no sprite sheets (the thumbnail variant is the first frame)",
                           "variant", "unsupported")  # fmt: skip
        if variant not in MEDIA_TYPES:
            raise ApiError(400, f"variant must be one of {', '.join(MEDIA_TYPES)}, got {variant!r}", "variant",
                           "invalid_value")  # fmt: skip
        job = _job(store, video_id)
        if variant == "preview":
            return _preview(store, job)
        if job.status != COMPLETED:
            raise _not_ready(job)
        media_type, suffix = MEDIA_TYPES[variant]
        path = store.video_path(job.id) if variant == "video" else store.thumbnail_path(job.id)
        # Gone with its job since the lookup above (a DELETE at that moment): the job's own 404.
        missing = f"the {variant} of {video_id} is missing from the data folder"
        try:
            return await download(path, request.headers, missing, media_type=media_type,
                                  filename=f"{job.id}{suffix}", content_disposition_type="inline")  # fmt: skip
        except ApiError as exc:
            if exc.status == 404 and store.get(job.id) is None:
                raise _not_found(video_id) from None
            raise

    model = {"id": config.model_name, "object": "model", "created": 0, "owned_by": "motif-lite"}

    @api.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model]}

    @api.get("/models/{model_id}")
    async def retrieve_model(model_id: str) -> dict[str, Any]:
        """The SDK's `models.retrieve`, as a client checks the model it means is served: the one model, else 404 (the
        route's own, not "this server speaks OpenAI's Videos API", which it is a route of)."""
        if model_id != config.model_name:
            raise ApiError(404, f"no model {model_id!r} on this server: it serves {config.model_name!r} alone",
                           "model", "not_found")  # fmt: skip
        return model

    @api.get("/info")
    async def server_info() -> dict[str, Any]:
        """motif-lite's own: what a job that leaves a field empty gets on this server, and the largest uploads it
        takes (the web page shows both in its fields, and checks a file's size before sending it)."""
        worker, config = state.worker, state.config
        return {"object": "server.info", "model": config.model_name, "defaults": job_defaults(worker.pipe, config),
                "limits": upload_limits(config)}  # fmt: skip

    @api.get("/loras")
    async def list_loras() -> dict[str, Any]:
        """The LoRA files a job may name (`loras`), read from --lora-dir now: files added since start count."""
        folder = state.config.lora_dir
        names = [] if folder is None else await run_in_threadpool(available_loras, folder)
        return {"object": "list", "data": [{"id": name, "object": "lora"} for name in names],
                "per_job": folder is not None}  # fmt: skip

    # HEAD as GET on every GET route (`curl -I`, an HTTP client probing a URL): FastAPI's routes take only the methods
    # they name, and a HEAD of a video's status was a 405. The key and cross-site checks are the GET's; uvicorn sends
    # the answer's headers without its body.
    for route in api.routes:
        if "GET" in route.methods:
            route.methods.add("HEAD")
    return api


def _video_objects(store: JobStore, state: ServerState, jobs: list[Job]) -> list[dict[str, Any]]:
    """The video objects of `jobs`, each queued one with the jobs that run before it: those queued before it and
    the one the worker is on (also one deleted while it ran, which the worker stops only after its current step:
    the queue waits for it)."""
    ahead = store.queued_ahead(jobs)
    running = int(state.worker is not None and state.worker.current is not None)

    def jobs_ahead(job: Job) -> int | None:
        if job.status != QUEUED:
            return None
        # Queued as read, but gone from the queue since: the idle worker claims a new job at once, before its create
        # is answered. It was next: null would say it had started, which its status does not.
        return ahead[job.id] + running if job.id in ahead else 0

    return [video_object(job, jobs_ahead(job)) for job in jobs]


def _refuse_if_full(store: JobStore, state: ServerState) -> None:
    """The 429 of a full queue before a create's body is read: an upload of up to --max-video-upload-mb would
    otherwise arrive, be stored and be checked only to be refused. The queue may still fill while the body is read,
    which `JobSubmitter` checks again as it queues."""
    counts = store.counts()
    if counts.get(QUEUED, 0) + counts.get(IN_PROGRESS, 0) >= state.config.max_queue:
        raise queue_full(state.config.max_queue)


def _sender(request: Request) -> str:
    """Who sent a job, for the log's `queued by` line: the client's address, behind a proxy on this machine the one
    its X-Forwarded-For names (uvicorn takes that header from this machine only)."""
    return request.client.host if request.client is not None else "an unknown client"


def job_defaults(pipe: MotifVideoPipeline, config: ServerConfig) -> dict[str, dict[str, Any] | None]:
    """The values of a job that gives no settings, in API names, as `submit` resolves them (the checkpoint's
    configs, else the official values; the size and length within --max-video; the server's --crf): for a video
    from text, and from a first frame (its flow shift may differ), None where the checkpoint takes no image or
    refuses a job without that setting (a scheduler config no sampler runs: such a job must name its sampler)."""
    from motif_lite.io.video import default_crf

    fields, _ = within_max_video({}, config.max_video)
    text = GenerationRequest("-", **fields)
    requests = {"text_to_video": text, "image_to_video": dataclasses.replace(text, image=Path("first-frame.png"))}
    crf = default_crf(f"video{VIDEO_SUFFIX}") if config.crf is None else config.crf
    defaults: dict[str, dict[str, Any] | None] = {}
    for kind, request in requests.items():
        try:
            effective = effective_settings(pipe.settings_for(request))
        except MotifLiteError:
            effective = None
        if effective is None or (kind == "image_to_video" and not config.image_to_video):
            defaults[kind] = None
            continue
        defaults[kind] = {**effective, "size": f"{request.width}x{request.height}", "num_frames": request.frames,
                          "steps": request.steps, "fps": request.fps, "crf": crf}  # fmt: skip
    return defaults


def upload_limits(config: ServerConfig) -> dict[str, Any]:
    """The largest first-frame image and video to go on from (bytes; --max-upload-mb, --max-video-upload-mb), the
    most pixels of an image, and the largest video a job may ask for (`WxHxF`, None: no limit)."""
    max_video = None if config.max_video is None else "x".join(map(str, config.max_video))
    return {"max_upload_bytes": config.max_upload_bytes, "max_video_upload_bytes": config.max_video_upload_bytes,
            "max_image_pixels": config.max_image_pixels, "max_video": max_video}  # fmt: skip


def _health_route(store: JobStore, state: ServerState) -> Callable[[], Awaitable[JSONResponse]]:
    started = time.monotonic()

    async def health() -> JSONResponse:
        """200 while the worker runs the queue; 503 while the model loads and once the worker has failed (the server
        is then stopping). Public: nothing here is a prompt, a setting, a path or a key."""
        worker = state.worker
        status = _status(worker)
        running_id = None if worker is None else worker.current
        running = store.get(running_id) if running_id is not None else None
        # A job deleted while it ran is gone from the store at once, but the worker finishes the step it is on
        # first (minutes on a CPU): until then the queue waits, which `running` alone would not explain.
        stopping = running_id if running_id is not None and running is None else None
        body = {
            "status": status,
            "model": state.config.model_name,
            "version": VERSION,
            "uptime_seconds": round(time.monotonic() - started, 3),
            "queued": store.counts().get(QUEUED, 0),
            "running": None if running is None else {"id": running.id, "progress": running.progress},
            "stopping": stopping,
        }
        return JSONResponse(body, status_code=200 if status == "ready" else 503, headers={"Cache-Control": "no-store"})

    return health


def _status(worker: Worker | None) -> str:
    """`loading` until the worker runs (the model loads first), `failed` once it stopped on its own."""
    if worker is not None and worker.failure is not None:
        return "failed"
    return "ready" if worker is not None and worker.running else "loading"


def _when_previews_come(job: Job) -> str:
    """For a preview asked of a queued or running job that has none: the steps after which it makes one (the
    pipeline's rule, `preview_steps`), so that a client asking while it denoises its first steps, or one of a job
    that makes none, is not left to guess (it said "previews exist while a job is denoising" to a job doing so)."""
    steps = job.settings.get("steps")
    after = preview_steps(steps, None) if is_count(steps) else []
    if not after:  # a 1-step job: previews come between steps, never after the last one
        return f": a job of {steps} step makes none (previews come between its steps, never after the last one)"
    which = f"step{'s' if len(after) > 1 else ''} {_listed(after)}"
    when = f"previews exist while a job is denoising, after {which} of its {steps}"
    return f" yet: it is queued; {when}" if job.status == QUEUED else f" now: {when}"


def _listed(numbers: Sequence[int]) -> str:
    """'250', '250 and 500', '250, 500 and 750'."""
    return " and ".join(
        [", ".join(map(str, numbers[:-1])), str(numbers[-1])] if len(numbers) > 1 else map(str, numbers)
    )


def _preview(store: JobStore, job: Job) -> Response:
    """The latest preview of a running job (read at once: the worker replaces the file as it goes)."""
    try:
        data = store.preview_path(job.id).read_bytes() if job.status == IN_PROGRESS else None
    except FileNotFoundError:
        data = None
    if data is None:
        # A job that has ended will have none: "yet" would keep a client polling for one.
        only = "a preview exists only while a job is denoising"
        said = {
            COMPLETED: f": it is completed, and {only} (its video: variant=video)",
            FAILED: f": it failed, and {only}",
        }.get(job.status) or _when_previews_come(job)
        raise ApiError(404, f"no preview of {job.id}{said}", None, "preview_not_ready")
    return Response(data, media_type="image/webp", headers={"Cache-Control": "no-store"})


def _only_known_query(request: Request, known: tuple[str, ...]) -> None:
    """400 for a query parameter the route does not take: a typo (`limt`) or another API's (`status`, `page`) would
    otherwise be ignored, its default taken silently, as an unknown field of a create body is refused."""
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        meant = meant_name(unknown[0], known)
        hint = f"; did you mean {meant!r}?" if meant else ""
        raise ApiError(400, f"unknown query parameter {unknown[0]!r}{hint} (known: {', '.join(known)})", unknown[0],
                       "unknown_parameter")  # fmt: skip
    # One given twice (`limit=10&limit=20`, URLSearchParams.append called twice) had its last value taken silently.
    if repeated := [name for name in known if len(request.query_params.getlist(name)) > 1]:
        raise ApiError(400, f"query parameter {repeated[0]!r} was given twice", repeated[0], "invalid_value")


def _page_params(query) -> tuple[str | None, int, bool]:
    limit_text = query.get("limit", "20")
    # ASCII digits, at most 3: str.isdigit takes "²", which int() refuses, and int() refuses over 4300 digits.
    if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= 100:
        raise ApiError(400, f"limit must be an integer from 1 to 100, got {limit_text!r}", "limit", "invalid_value")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order must be asc or desc, got {order!r}", "order", "invalid_value")
    return query.get("after") or None, int(limit_text), order == "desc"


def _job(store: JobStore, video_id: str) -> Job:
    job = store.get(video_id) if JOB_ID.match(video_id) else None
    if job is None:
        raise _not_found(video_id)
    return job


def _not_ready(job: Job) -> ApiError:
    """409 for the content of a job without its video: what the client does next, wait or read why it failed."""
    follow = f"GET /v1/videos/{job.id}"
    if job.status in (QUEUED, IN_PROGRESS):  # the SDK's retries may well see it completed
        why = f"is {job.status}, not completed; wait until it is ({follow} says its status and progress)"
        return ApiError(409, f"video {job.id} {why}", None, "video_not_ready")
    # failed: waiting brings no video
    why = f"failed: it has no video ({follow}: its error says why)"
    return ApiError(409, f"video {job.id} {why}", None, "video_not_ready", headers=NOT_RETRIED)


def _not_found(video_id: str) -> ApiError:
    return ApiError(404, f"no video with id {video_id!r}", None, "not_found")


def _loaded_checker(state: ServerState) -> Callable[[], Awaitable[None]]:
    async def check_loaded() -> None:
        if state.worker is None:
            raise ApiError(503, "the server is still loading the model: try again shortly (GET /health answers 200 "
                           "once it is ready)", None, "model_loading", headers=_loading_headers())  # fmt: skip

    return check_loaded


async def _close_form(request: Request) -> AsyncIterator[None]:
    """Close the form a route read (`read_create_body`) once it has answered, refused or not: its files are spooled
    to temporary files (up to --max-video-upload-mb each), which nothing else closes until Python's cycle collector
    runs; FastAPI closes only the forms it parses itself."""
    try:
        yield
    finally:
        await request.close()


def _loading_headers() -> dict[str, str]:
    return {"Retry-After": str(LOADING_RETRY_SECONDS), "Cache-Control": "no-store"}


def _key_checker(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    expected = None if api_key is None else api_key.encode()

    async def check_key(request: Request) -> None:
        if expected is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise ApiError(
                401, "missing or incorrect API key (send Authorization: Bearer KEY)", None, "invalid_api_key"
            )

    return check_key


def _api_route(app: FastAPI, request: Request, path: str) -> bool:
    """Whether `path` is a route of the app, for any method (an id in it matches the route's parameter)."""
    scope = {**request.scope, "path": path}
    return any(route.matches(scope)[0] is not Match.NONE for route in app.routes)


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods the routes at the request's path take, for a 405's `Allow` (which HTTP requires on it): each
    method of a path is a route of its own, and Starlette's 405 names those of the first only."""
    allowed = [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in app.routes)
    ]
    return ", ".join(allowed)


def _route_hint(app: FastAPI, request: Request) -> str:
    """What a 404 for a path that is no route adds: the route meant, else where the API is. Clients of other tools
    arrive with their own routes (ComfyUI's /prompt, AUTOMATIC1111's /sdapi/v1/txt2img)."""
    path, method = request.url.path, request.method
    if path in SCHEMA_PATHS:  # FastAPI's own, switched off: a schema made from these routes would name no field
        return "; this server serves no OpenAPI schema: its API is OpenAI's Videos API, its fields in docs/server.md"
    if _api_route(app, request, "/v1" + path):  # a client without the /v1 base
        return f"; the API is under /v1: {method} /v1{path}"
    if len(path) > 1 and path.endswith("/") and _api_route(app, request, path.rstrip("/")):
        return f"; without the trailing slash: {method} {path.rstrip('/')}"
    return "; this server speaks OpenAI's Videos API: POST /v1/videos makes a video, GET /v1/videos/ID follows it"


def _add_error_handlers(app: FastAPI, cors_on: bool) -> None:
    def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += _route_hint(app, request)
        if (
            exc.status_code == 405
            and request.method == "OPTIONS"
            and "access-control-request-method" in request.headers
        ):
            # A preflight: `ApiCors` answers one that has an Origin, so either it is off or the Origin is missing.
            message += (
                "; a CORS preflight needs an Origin header naming the page's origin (a browser sends it; with curl, "
                "add -H 'Origin: https://page.example')"
                if cors_on
                else CORS_OFF
            )
        headers = exc.headers
        if exc.status_code == 405 and (allowed := _allowed_methods(app, request)):
            headers = {**(headers or {}), "Allow": allowed}
        return api_error(request, ApiError(exc.status_code, message, None, code, headers))

    def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return api_error(request, ApiError(400, str(exc.errors()), None, "invalid_value"))

    def client_gone(_request: Request, _exc: ClientDisconnect) -> Response:
        # A client that closed its connection before its body had arrived (a cancelled upload, a timeout) is no
        # server error: without this it reached a bug's 500 (`InternalErrors`), logged with a traceback.
        return Response(status_code=400)  # nobody reads it: the connection is gone

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
