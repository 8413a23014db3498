"""The worker: one thread that runs the queued jobs in submission order on the one loaded pipeline.

Progress comes from `MotifVideoPipeline.generate(request, on_progress=...)` and goes to the store; its previews
(`on_preview`, a cheap look at the clip every quarter of the steps) go to a file the API serves, written by a
`PreviewFile` on a background thread so that sampling does not wait for them. The progress callback is where a job
stops between steps, the way Ctrl-C stops `motif-lite run`: it raises when the job was deleted (the store no longer
has it running) or the server is shutting down (the job goes back to the queue).
`generate` writes the video under a temporary name and renames it only once it is complete, so a stopped or
failed job leaves no video behind. A job stopped by the server's shutdown keeps its sampling state (the store's
`state_path`) and goes on from it when it runs again, to the video it would have made.
A job that names LoRAs (files of the server's --lora-dir) runs with those instead of the server's own (--lora); the
transformer is loaded again only when a job's set differs from the one applied last, since that takes a while.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.encoders.text import warnings_not_logged
from motif_lite.errors import Audience, DiskFullError, MotifLiteError, counted
from motif_lite.io.clip import read_clip
from motif_lite.io.latents import LatentsFileError, SavedLatents, read_latents
from motif_lite.io.preview import PreviewFile
from motif_lite.paths import user_path
from motif_lite.request import TEMPORAL_FACTOR, GenerationRequest, RequestError, ResolvedRequest
from motif_lite.server.job_record import Job
from motif_lite.server.jobs import VIDEO_SUFFIX, JobStore
from motif_lite.server.loras import without_folder
from motif_lite.server.schema import IMAGE_NAME_KEY, ApiError, timings
from motif_lite.server.submission import check_job_loras, check_queued_job

if TYPE_CHECKING:
    import numpy as np

    from motif_lite.memory_advice import PlannedRun
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.runtime.planner import Plan
    from motif_lite.server.app import ServerConfig

# Share of the progress bar per stage (percent at its start and end); "completed" is 100.
STAGE_SPANS = {"encode": (0, 5), "denoise": (5, 90), "decode": (90, 99)}
# What a queued job that the server can no longer run (restarted with other flags, a LoRA file gone) fails with,
# before the reason its submission would have been refused with now.
NO_LONGER_FITS = "this job no longer fits the server, which changed since it was queued"
IDLE_WAIT_SECONDS = 5.0  # the worker also looks at the queue this often without being woken


class JobStopped(MotifLiteError):
    """Raised from the progress callback to stop the running job between steps, at `stage` after `done` of `total`.

    A `MotifLiteError` with a one-line message: `generate` adds where it kept the job's work to that message (its
    documented way with user errors) instead of logging the CLI's advice (`motif-lite run --resume`, `motif-lite
    decode`), which does not apply here; the worker says what the server does with that work."""

    def __init__(self, job_id: str, stage: str, done: int, total: int) -> None:
        super().__init__(f"{job_id} stopped during {stage}")
        self.stage, self.done, self.total = stage, done, total


class JobDeleted(JobStopped):
    pass


class ShuttingDown(JobStopped):
    pass


def percent(stage: str, done: int, total: int) -> int | None:
    span = STAGE_SPANS.get(stage)
    if span is None:
        return None
    start, end = span
    return start + (end - start) * min(done, total) // max(total, 1)


def resumed_percent(saved: SavedLatents | None) -> int:
    """Where a job going on from `saved` had got (0 for a fresh job). Its progress starts there and never goes
    below it: the resumed run encodes its prompts again first, whose 0-5% would look like starting over."""
    if saved is None:
        return 0
    if saved.sampling_done:  # stopped while it decoded
        return STAGE_SPANS["decode"][0]
    return percent("denoise", *saved.progress)


class Worker:
    """Runs jobs from `store` with `pipe` (a `MotifVideoPipeline`, or anything with its `generate`)."""

    def __init__(
        self,
        store: JobStore,
        pipe: MotifVideoPipeline,
        log: Callable[[str], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        lora_dir: Path | None = None,
        planned: PlannedRun | None = None,
        plan: Plan | None = None,
        limits: ServerConfig | None = None,
    ) -> None:
        self.store = store
        self.pipe = pipe
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        # Called with the reason when the worker cannot go on (the store cannot be written): the server stops.
        self.on_failure = on_failure or (lambda reason: None)
        self._wake = threading.Event()
        # Held while a job is stored and its `queued by` line logged (`queuing`), and while the worker claims one: its
        # idle look at the queue (every IDLE_WAIT_SECONDS, unwoken) could otherwise claim a job just stored, and log
        # `started` before `queued by`. A delete takes it too (`deleted`), to see the claimed job as `current`.
        self._claiming = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="motif-lite-worker", daemon=True)
        self.current: str | None = None  # the id of the job running now
        self._first_line: str | None = None  # logged from the thread before its first job (`start`)
        self.failure: str | None = None  # why the worker stopped on its own (then it runs nothing any more)
        self.lora_dir = lora_dir  # where the files a job's LoRAs name are (--lora-dir)
        self.server_loras = applied_loras(pipe)  # --lora: what a job that names none runs with
        self._loras = self.server_loras  # what the pipeline has applied now; None: unknown (a switch failed)
        # The memory plan the model loaded with, and what it was made for (the largest video): None without one.
        self.planned, self.plan = planned, plan
        # The server's config (its checkpoint's image encoder, --lora-dir, memory plan, --max-video, the CPU's time
        # limit), checked again as each job starts: one queued before a restart was checked against the server before
        # it. None: no check.
        self.limits = limits
        # The jobs queued before a restart: the API queues nothing until the worker is handed to it (`ServerState.
        # ready`), so these were checked against another server. A job queued since was checked against this one,
        # and is checked again for its LoRA files alone (`_check_still_fits`).
        self._queued_before = store.queued_ids() if limits is not None else set()

    @property
    def running(self) -> bool:
        """The worker thread runs the queue."""
        return self._thread.is_alive()

    def start(self, first_line: str | None = None) -> None:
        """Run the queue in the worker's thread; `first_line` is logged from it before its first job (the server's
        `ready:` line: the thread runs by then, so /health is ready, and no job's `started` comes before it)."""
        self._first_line = first_line
        self._thread.start()

    @contextmanager
    def queuing(self) -> Iterator[None]:
        """A job stored and logged inside is claimed by the worker only after: its `started` line comes after."""
        with self._claiming:
            yield

    def notify(self) -> None:
        """A job was queued: look now instead of at the next idle check."""
        self._wake.set()

    def stop(self, timeout: float | None = None, at_once: str | None = None) -> None:
        """Stop after the current step; the running job goes back to the queue. `at_once`: how to quit without
        waiting for the step, which depends on how the server was stopped (None: nothing to say)."""
        if self.current is not None:
            hint = f" ({at_once})" if at_once else ""
            self.log(f"stopping: {self.current} stops after its current step{hint}")
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def deleted(self, job_id: str) -> None:
        """Log a job deleted while it runs at once: it stops only once its current step ends (minutes on a CPU),
        and until then the log would say nothing of why the next job does not start."""
        with self._claiming:  # a claim under way has set `current` once this lock is free: see `_run_queue`
            running = job_id == self.current
        if running:
            self.log(f"{job_id}: deleted while running: stops after its current step")

    def _loop(self) -> None:
        """Run the queue until stopped. A failure outside a job's own run (the store cannot record it: the disk is
        full, the folder became read-only) ends the worker and is reported: nothing could run the queue any more,
        and a server that went on taking jobs would hold them forever, the running one at its last percentage."""
        try:
            if self._first_line is not None:
                self.log(self._first_line)
            self._run_queue()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.failure = reason
            self.log(f"error: the worker stopped: {reason}")
            if not isinstance(exc, (OSError, sqlite3.Error)):  # not the data folder's state: a bug, keep its trace
                traceback.print_exc(file=sys.stderr)
            self.on_failure(reason)

    def _run_queue(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before looking, so that a job queued meanwhile is not missed
            # The claim and `current` in one step under the lock: a delete between the two found `current` unset
            # and logged nothing of the running job it cancelled (`deleted`).
            with self._claiming:
                job = self.store.claim_next()
                self.current = None if job is None else job.id
            if job is None:
                self._wake.wait(IDLE_WAIT_SECONDS)
                continue
            try:
                self.run_job(job)
            finally:
                self.current = None

    def run_job(self, job: Job) -> None:
        image = self.store.input_path(job.id) if job.has_image else None
        clip_file = self.store.clip_path(job.id) if job.extends else None  # its own hold on the video, or the upload
        output = self.store.video_path(job.id)
        # The settings of a job queued by the version before extensions hold `extend: null`; the clip is a path here.
        # The first frame's name as sent is for the video's file (`stored_image`), not the request.
        s = {name: value for name, value in job.settings.items() if name not in ("extend", IMAGE_NAME_KEY)}
        going_on = "" if not job.extends else f", going on from {job.extended_name}"
        quality = "" if job.crf is None else f", crf {job.crf}"
        try:
            # Inside the try: settings stored by another version of motif-lite fail this job, not the worker.
            request = GenerationRequest(**s, image=image, extend=clip_file, output=output)
            # Before its `started` line: a job this server cannot run logs the one line of its failure.
            self._check_still_fits(job, request)
            self.log(f"{job.id}: started ({s.get('width')}x{s.get('height')}, {counted(s.get('frames'), 'frame')}, "
                     f"{counted(s.get('steps'), 'step')}{quality}{going_on})")  # fmt: skip
            for note in job.notes:  # as `motif-lite run` prints them
                self.log(f"{job.id}: note: {note}")
            # Read once for the whole job, with the frames the server counted as it wrote that video: the pipeline
            # then decodes it only for its last frame and as the longer video is written.
            clip = None if clip_file is None else read_clip(clip_file, frames=job.clip_frames, audience=Audience.API)
            # Written on a background thread, one preview frame per latent frame.
            preview = FirstPreviewOpens(self.store.preview_path(job.id), request.fps / TEMPORAL_FACTOR)
            state = self.store.state_path(job.id)
            # Resolved once for the whole job, its image read and hashed once: to check a saved state, for what the
            # video's file stores of the image, and for `generate`, which takes it as it is.
            resolved = request.resolve_with_inputs(clip)
            resume = self._saved_state(job.id, state, resolved.request, resolved.first_frame_sha256)
            # Never below the percent it had reached before a restart (kept as it was queued again and claimed),
            # unless it starts over: its state was dropped.
            start = 0 if resume is None else max(resumed_percent(resume), job.progress)
            if start != job.progress and not self.store.set_progress(job.id, start):  # at once, before the LoRAs
                raise JobDeleted(job.id, "resume", 0, 0)
            self._use_loras(job)
            try:
                # The cut prompts its notes say (logged above) are not logged again as they are encoded.
                with warnings_not_logged(job.prompt_warnings):
                    result = self.pipe.generate(
                        resolved.request, on_progress=self._progress(job.id, start), on_preview=preview, resume=resume,
                        latents_file=state, clip=clip, crf=job.crf, stored_clip=stored_clip(job),
                        stored_image=stored_image(job, resolved), resolved=resolved,
                    )  # fmt: skip
            finally:
                preview.close()  # the last preview is written before the job's files are removed below
        except JobDeleted:
            self.log(f"{job.id}: deleted, stopped")
            self.store.remove_files(job.id)
        except ShuttingDown as stop:
            if self.store.requeue(job.id):
                self.log(f"{job.id}: {stopped_by_shutdown(stop, self.store.state_path(job.id).exists())}")
            else:  # deleted during the step the shutdown came in: the state it saved as it stopped is of no use
                self.log(f"{job.id}: deleted, stopped")
                self.store.remove_files(job.id)
        except DiskFullError:  # the data folder's disk, not this job: queued again, and the worker stops (`_loop`)
            self.store.requeue(job.id)
            raise
        except Exception as exc:  # one failed job must not stop the server
            code, message = failure(exc, self.planned, self.plan)
            to_client = for_the_client(message, self.store.state_path(job.id))
            if clip_file is not None:  # the clip by the id of the video it is (or its upload's name), not by the path
                to_client = to_client.replace(str(clip_file), job.extended_name)
            if image is not None:  # the first frame by the name it was sent under, as its video stores it
                to_client = to_client.replace(str(image), stored_image_name(job))
            if self.store.finish(job.id, (code, to_client)):
                # All of the message: where the job's work is kept is for the operator.
                self.log(f"{job.id}: failed{self._took(job.id)}: {message}")
            else:  # deleted as it failed, or as it started (its first frame went with it): the client's cancel
                self.store.remove_files(job.id)
                # A real failure (out of memory, a fault) that raced the cancel is still the operator's to know of;
                # a request's own error here is what the cancel caused (its inputs went with it).
                ended = "" if code == "invalid_request" else f" (as it ended with: {message})"
                self.log(f"{job.id}: deleted, stopped{ended}")
            if code == "generation_failed":
                traceback.print_exc(file=sys.stderr)
        else:
            if result.fallbacks_said is not None:  # a job in which a kernel fell back ran slower: say so in it
                self.log(f"{job.id}: note: {result.fallbacks_said}")
                self.store.add_note(job.id, result.fallbacks_said)
            try:
                write_thumbnail(output, self.store.thumbnail_path(job.id))
            except Exception as exc:  # the video is fine; only the thumbnail variant will be missing
                self.log(f"{job.id}: no thumbnail: {exc!r}")
            if self.store.finish(job.id):
                self.log(f"{job.id}: completed{self._took(job.id)}")
            else:  # deleted after its last progress report
                self.store.remove_files(job.id)
        finally:
            self.store.preview_path(job.id).unlink(missing_ok=True)

    def _check_still_fits(self, job: Job, request: GenerationRequest) -> None:
        """Fail a job this server cannot run (`check_queued_job`: the checks its submission made), before anything
        loads for it: queued before a restart, it was checked against the server before, whose checkpoint, LoRA
        folder, memory plan or --max-video may have differed, and could run past this one's memory plan, or for
        hours on its CPU, or fail only once the transformer had been loaded again for its LoRAs. The sampling state
        it kept from before the restart goes with it (its inputs go as any failed job's): this server cannot go on
        from it, and its one log line does not name it, so nothing would ever use it. A job queued since the server
        started is checked for its LoRA files alone, which may have left the folder while it waited: the rest was
        checked against this server at submission, and checking it again read its first frame and the video it goes
        on from once more (about a second for a 720p video, on a busy CPU)."""
        if self.limits is None:
            return
        try:
            if job.id in self._queued_before:
                check_queued_job(job, request, self.pipe, self.limits)
            else:
                check_job_loras(job, self.pipe, self.limits)
        except ApiError as exc:
            self.store.state_path(job.id).unlink(missing_ok=True)
            if exc.status >= 500:  # the server's state now (its --lora-dir closed while the job waited), not the job's
                raise MotifLiteError(exc.message) from exc
            raise MotifLiteError(f"{NO_LONGER_FITS}: {exc.message}") from exc

    def _use_loras(self, job: Job) -> None:
        """Apply the job's LoRAs (or, for a job that names none, the server's own) unless they are applied already.
        A switch that fails fails the job; the next job then switches again, whatever it asks for."""
        wanted = self.server_loras
        if job.loras:
            if self.lora_dir is None:
                raise MotifLiteError("this job names LoRAs, and the server was started without --lora-dir")
            wanted = tuple((self.lora_dir.resolve() / name, strength) for name, strength in job.loras)
        if wanted == self._loras:
            return
        names = ", ".join(f"{path.name} x{strength:g}" for path, strength in wanted)
        which = f"with the LoRAs {names}" if names else "without LoRAs"
        self.log(f"{job.id}: loading the transformer again {which}")
        self._loras = None
        try:
            self.pipe.set_loras(list(wanted))
        except MotifLiteError as exc:  # e.g. the file left the folder since: named for the client, not its path
            said = without_folder(str(exc), self.lora_dir) if job.loras else str(exc)
            if self.pipe.transformer is not None:  # refused before the old transformer went: the cause is all
                raise MotifLiteError(said) from exc
            # The load itself failed; the pipeline's note says to call set_loras again, Python the client cannot
            # run: the whole text is the operator's, the client gets its cause and what the server does next.
            self.log(f"{job.id}: the transformer could not be loaded again: {exc}")
            raise MotifLiteError(
                f"the server could not load its transformer with this job's LoRAs ({said.splitlines()[0]}); the "
                "next job tries again"
            ) from exc
        self._loras = wanted

    def _took(self, job_id: str) -> str:
        """` (waited 1.2 s, ran 34.5 s)` of a finished job, for its log line: the API's `timings` (the log rounding
        its own differences could say 0.2 where the API's 0.150 says 0.1)."""
        job = self.store.get(job_id)
        if job is None or job.started_at is None or job.completed_at is None:
            return ""
        took = timings(job)
        return f" (waited {took['waited_seconds']:.1f} s, ran {took['ran_seconds']:.1f} s)"

    def _saved_state(
        self, job_id: str, path: Path, resolved: GenerationRequest, first_frame_sha256: str | None
    ) -> SavedLatents | None:
        """The sampling state an orderly stop kept for this job, or None (none; an unreadable one, or one that no
        longer fits this server and the `resolved` request, whose first frame's file has the checksum
        `first_frame_sha256`, is dropped and the job starts over)."""
        if not path.exists():
            return None
        try:
            saved = read_latents(path)
        except LatentsFileError as exc:
            self.log(f"{job_id}: its saved state cannot be read ({exc}): starting again")
            path.unlink(missing_ok=True)
            return None
        if (misfit := self._state_misfit(saved, resolved, first_frame_sha256)) is not None:
            self.log(f"{job_id}: its saved state does not fit this server ({misfit}): starting again")
            path.unlink(missing_ok=True)
            return None
        if saved.sampling_done:  # stopped while it decoded (its denoised latents, or its state after the last step)
            self.log(f"{job_id}: goes on from its denoised latents (the decode only)")
        else:
            self.log(f"{job_id}: goes on from step {saved.progress[0]} of {saved.progress[1]}")
        return saved

    def _state_misfit(
        self, saved: SavedLatents, resolved: GenerationRequest, first_frame_sha256: str | None
    ) -> str | None:
        """Why `generate` would refuse to go on from `saved` with the `resolved` request (the server came back with
        another checkpoint or config, the state was damaged, the first frame's file has another checksum), or None:
        the checks `generate` makes before any work, made here so that the job starts over instead of failing with
        an error about a file the client never saw."""
        import torch

        from motif_lite.pipeline.resuming import resumed_state

        settings = self.pipe.settings_for(resolved)
        shape = self.pipe.vae.config.latent_shape(resolved.width, resolved.height, resolved.frames)
        try:  # on the CPU, in the latents' own dtype: a check, nothing is moved
            resumed_state(
                saved, resolved, settings, shape, torch.device("cpu"), saved.latents.dtype, first_frame_sha256
            )
        except RequestError as exc:  # its first line names the state's path: the log says "the state" instead
            why = str(exc).splitlines()[0]
            return why if saved.file is None else why.replace(str(saved.file), "the state")
        return None

    def _progress(self, job_id: str, start: int = 0) -> Callable[[str, int, int], None]:
        """The job's `on_progress`: its percent to the store, never below `start` (`resumed_percent`)."""
        last = [start]

        def report(stage: str, done: int, total: int) -> None:
            if self._stopping.is_set():
                raise ShuttingDown(job_id, stage, done, total)
            value = percent(stage, done, total)
            # A stage this worker does not know keeps the last value; a resumed job's encode keeps its start.
            last[0] = last[0] if value is None else max(value, start)
            if not self.store.set_progress(job_id, last[0]):
                raise JobDeleted(job_id, stage, done, total)

        return report


def stored_clip(job: Job) -> dict[str, str] | None:
    """What the job's video file stores of the video it goes on from (the settings `motif-lite run --settings-from`
    and a remix read) instead of the name of the server's copy, `inputs/ID.mp4`, which goes when the job ends: an
    upload by the name it was sent under and its SHA-256 (as `settings.extend_file` gives them), a video of this
    server by the name its download has."""
    if job.extend_file is not None:
        return {"extend": job.extend_file["name"], "extend_sha256": job.extend_file["sha256"]}
    return None if job.extend is None else {"extend": f"{job.extend}{VIDEO_SUFFIX}"}


def stored_image(job: Job, resolved: ResolvedRequest) -> dict[str, str] | None:
    """What the job's video file stores of its first frame instead of the name of the server's copy, `inputs/ID.png`,
    which goes when the job ends: its SHA-256 (the copy's bytes are the upload's; hashed as the job's request was
    resolved), and the name it was sent under where it had one (a multipart file; a data URL has none: the file then
    names it `input_reference`, the field it came in)."""
    if resolved.request.image is None:
        return None
    stored = {"image": stored_image_name(job)}
    if resolved.first_frame_sha256 is not None:
        stored["image_sha256"] = resolved.first_frame_sha256
    return stored


def stored_image_name(job: Job) -> str:
    """The name a job's first frame was sent under: a multipart file's, else the field a data URL came in."""
    return job.settings.get(IMAGE_NAME_KEY) or "input_reference"


def applied_loras(pipe: MotifVideoPipeline) -> tuple[tuple[Path, float], ...]:
    """The (resolved file, strength) of each LoRA the pipeline has applied (none for a pipeline without LoRA
    support)."""
    loras = getattr(pipe, "loras", None)
    # Resolved, as a job's files are (`Worker._use_loras`): `--lora loras/a.safetensors` and a job naming
    # `a.safetensors` of `--lora-dir loras` are the same file, which must not load the transformer again.
    return () if loras is None else tuple((user_path(f.spec.path).resolve(), f.spec.strength) for f in loras.files)


class FirstPreviewOpens:
    """The worker's `on_preview`: a `PreviewFile` opened at the job's first preview. A job may make none (few steps,
    stopped first, a resumed decode), which is no news here: the warning a `PreviewFile` that wrote nothing gives
    when it closes is advice for `motif-lite run --preview`, whose user asked for a file."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._file: PreviewFile | None = None

    def __call__(self, done: int, steps: int, frames: np.ndarray) -> None:
        if self._file is None:
            self._file = PreviewFile(self.path, self.fps)
        self._file(done, steps, frames)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def stopped_by_shutdown(stop: ShuttingDown, kept: bool) -> str:
    """What becomes of a job the shutdown stopped (`kept`: it saved its state), for the log."""
    if not kept:
        return "stopped by shutdown, queued again: it starts from the beginning when the server starts again"
    if stop.stage == "decode":
        return (
            "stopped by shutdown while decoding, queued again: its denoised latents are kept and decoded when the "
            "server starts again"
        )
    return (
        f"stopped by shutdown after step {stop.done} of {stop.total}, queued again: it goes on from that step when "
        "the server starts again"
    )


def failure(exc: Exception, planned: PlannedRun | None = None, plan: Plan | None = None) -> tuple[str, str]:
    """(error code, message) of a failed job; `plan`: the server's memory plan, made for `planned` (None: none)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out_of_memory", out_of_memory_message(exc, planned, plan)
    from motif_lite.runtime.kernels import KernelBackendError

    if isinstance(exc, KernelBackendError):  # a kernel's own error (a bug, a driver fault): not the request's
        return "generation_failed", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MotifLiteError):
        return "invalid_request", str(exc)
    return "generation_failed", f"{type(exc).__name__}: {exc}"


# What the client of a job that ran out of device memory can do, in the API's words.
SMALLER_JOB = "Ask for a smaller size or fewer num_frames"


def out_of_memory_message(exc: Exception, planned: PlannedRun | None, plan: Plan | None) -> str:
    """A job's out-of-memory failure: what the client can do, and, with the figures of the server's memory `plan`
    (`memory_advice`, as `motif-lite run` gives them), what the server's operator can: a --vram that plans for less
    memory, or a smaller --max-video. Without a plan, or where the figures cannot be made, the client's part only."""
    said = f"out of device memory: {str(exc).splitlines()[0]}. {SMALLER_JOB}"
    if planned is None or plan is None:
        return said
    try:
        operator = operator_advice(planned, plan)
    except Exception:  # a help: failing to make it must not hide the error it is for
        return said
    return f"{said}. For the server's operator: {operator}"


def operator_advice(planned: PlannedRun, plan: Plan) -> str:
    """What the operator of a server whose `plan` (made for `planned`, its largest video) ran out of memory can do."""
    from motif_lite.memory_advice import out_of_memory_figures

    largest = planned.request
    what = f"the server's memory plan for videos up to {largest.width}x{largest.height}x{largest.frames}"
    figures = out_of_memory_figures(planned, plan, what)
    if (under := figures.under_the_smallest_plan()) is not None:  # other processes hold what a smaller plan needs
        return f"{figures.said}. {under}: close what holds GPU memory, or restart the server with a smaller --max-video"
    if figures.next_plan is None:
        return f"{figures.said}. Restart the server with a smaller --max-video"
    return (
        f"{figures.said}. Restart the server with --vram {figures.lower_gib:.2f} ({figures.lower_why}), which gives "
        f"{figures.next_plan_words()}; or with a smaller --max-video"
    )


def for_the_client(message: str, state: Path) -> str:
    """A failed job's `message` as the API's client gets it: its first line (the error) with the job's `state`
    file named in words, not by its path on the server; without the later lines on that file, which the pipeline
    adds for `motif-lite run` (where the work is kept, a `motif-lite` command the client cannot run); while that file
    is there, the client is told what it and the server's operator can do instead."""
    first, *notes = message.splitlines() or [""]
    lines = [first.replace(str(state), "the job's saved state"), *notes]
    kept = lines[:1] + [line for line in notes if str(state) not in line]
    if len(kept) == len(lines) or not state.exists():
        return "\n".join(kept)
    return (
        "\n".join(kept) + "; submit the job again, or ask the server's operator: what this job had done is kept on "
        "the server until the job is deleted or the server restarts, and the server's log says how to finish the "
        "video from it"
    )


def write_thumbnail(video: Path, thumbnail: Path) -> None:
    """The first frame of the finished video as WebP, written under a temporary name and renamed (removed if the
    write fails). ffmpeg runs here through `subprocess.run`, which closes its pipes and waits for it: imageio-ffmpeg's
    reader left the pipes of an ffmpeg that had finished to the garbage collector (a ResourceWarning per job)."""
    import io
    import subprocess

    import PIL.Image

    from motif_lite.io.ffmpeg import OWN_PROCESS_GROUP, find_ffmpeg
    from motif_lite.io.staging import staged_output

    command = [find_ffmpeg(), "-nostdin", "-v", "error", "-i", str(video), "-frames:v", "1", "-f", "image2pipe",
               "-c:v", "png", "-"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=False, **OWN_PROCESS_GROUP)
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg could not read the first frame of {video}" + (f": {said[-1]}" if said else ""))
    first = PIL.Image.open(io.BytesIO(done.stdout)).convert("RGB")
    with staged_output(thumbnail, 1) as staged:
        first.save(staged.partial, "WEBP", quality=85)
