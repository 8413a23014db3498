"""`VideoServer`: the job store, the app and, once the model has loaded, the worker, run by uvicorn on one socket."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from motif_lite.encoders.text import tokenizer_notes_said_once
from motif_lite.errors import MotifLiteError
from motif_lite.server.app import ServerConfig, ServerState, create_app
from motif_lite.server.jobs import JobStore
from motif_lite.server.service_manager import READY, STOPPING, notify_service_manager, take_notify_socket
from motif_lite.server.worker import Worker, write_thumbnail

if TYPE_CHECKING:
    from motif_lite.pipeline import MotifVideoPipeline


# How long a stopping server waits for its HTTP side: uvicorn's graceful shutdown (timeout_graceful_shutdown=5) ends
# well within it.
HTTP_STOP_WAIT = 15.0

# How long the model's load waits for the HTTP side to start: uvicorn starts in well under a second; one that takes
# longer does not hold the load back any further.
HTTP_START_WAIT = 10.0


class VideoServer:
    """Recovers the store from a crash and composes the app; `serve(sock, load)` answers on the socket at once, while
    the model loads, then runs the jobs with it."""

    def __init__(self, store: JobStore, config: ServerConfig, log: Callable[[str], None] | None = None) -> None:
        self.store = store
        # What became of the jobs that were running when the last process died, and of those queued that it took.
        self.recovered = self.store.recover(config.lora_dir)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        for job_id in self.recovered.completed:
            self._finish_recovered(job_id)
        for job_id, why in self.recovered.refused:
            self.log(f"{job_id}: failed: {why}")
        self.worker: Worker | None = None  # from the moment the model has loaded
        self._notify_socket: str | None = None  # systemd's, taken out of the environment as the server starts
        self.worker_failure: str | None = None  # why the worker stopped on its own, which stops the server
        self.stop_signal: int | None = None  # the first stop signal (SIGTERM, ...) that stopped the server
        self.state = ServerState(config)
        self.app = create_app(self.store, self.state)
        # No lifespan and no signal handlers: uvicorn runs in a thread of its own (the main thread loads the model,
        # where Ctrl-C can interrupt it), and the worker is started and stopped around it.
        settings = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
        self.http = uvicorn.Server(settings)

    def _finish_recovered(self, job_id: str) -> None:
        """A job whose video was whole when the last process died, before the worker wrote its thumbnail and
        recorded it: the thumbnail is written now, and the log says why the job is completed."""
        thumbnail = self.store.thumbnail_path(job_id)
        if not thumbnail.exists():
            try:
                write_thumbnail(self.store.video_path(job_id), thumbnail)
            except Exception as exc:  # the video is fine; only the thumbnail variant will be missing
                self.log(f"{job_id}: no thumbnail: {exc!r}")
        self.log(f"{job_id}: completed: its video was written whole before the server crashed")

    def serve(self, sock: socket.socket, load: Callable[[], tuple[MotifVideoPipeline, ServerConfig]]) -> None:
        """Answer on `sock` at once while `load()` loads the model in this thread, from the moment the HTTP side has
        started (/health says `loading`, the API 503), then run the jobs with the pipeline and config it returns
        until `stop()`; the running job is then stopped between steps and queued again. An exception of `load` (a
        user's mistake, Ctrl-C) stops the HTTP side and goes on as it was raised. Raises `MotifLiteError` when the
        worker could not go on, or when the HTTP side could not start (then before `load`)."""
        # `load` reads the tokenizer with the model, and the first submission reads it again to measure its prompts:
        # a note on the tokenizer's files is said once, as `motif-lite run` says it.
        with tokenizer_notes_said_once():
            self._serve(sock, load)

    def _serve(self, sock: socket.socket, load: Callable[[], tuple[MotifVideoPipeline, ServerConfig]]) -> None:
        # A loopback address answers loopback names only (`CrossSiteGuard`). A socket closed already has none: uvicorn
        # then fails on it, and says why.
        with contextlib.suppress(OSError):
            self.state.listening_on = sock.getsockname()[0]
        self._notify_socket = take_notify_socket()  # before the load, which may start processes of its own
        http_ended = threading.Event()
        http = threading.Thread(target=self._run_http, args=(sock, http_ended), name="motif-lite-http", daemon=True)
        http.start()
        interrupted = False
        try:
            # An HTTP side that could not start (its error is logged) ends the server now, before a load of minutes.
            if self._wait_for_http_start(http_ended):
                started = time.monotonic()
                pipe, config = load()
                self.worker = Worker(self.store, pipe, self.log, on_failure=self._worker_failed,
                                     lora_dir=config.lora_dir, planned=config.planned, plan=config.plan,
                                     limits=config)  # fmt: skip
                # /health is ready once the state has the worker and its thread runs; the line is said from that
                # thread, before its first job: a job queued before a restart starts at once, and its "started"
                # line came first; said before `ready`, a request sent on seeing the line could still get 503.
                self.state.ready(self.worker, config)
                self.worker.start(
                    f"ready: the model loaded in {time.monotonic() - started:.1f} s; jobs run from now on"
                )
                self._notify_service_manager(READY)  # systemd's Type=notify counts the start as done from here
            # Until stop(); a timeout, so that Ctrl-C is seen at once on every platform. An event, not http.join():
            # Python 3.11's join, interrupted by Ctrl-C, marks a thread that still runs as ended, and the process
            # then exited while uvicorn was shutting down, its thread cut off in the middle of a traceback.
            while not http_ended.wait(0.5):
                pass
            # uvicorn ends its thread quietly when it cannot go on (its own error is logged above): not a stop.
            http_failed = not self.http.should_exit
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self._notify_service_manager(STOPPING)
            self.stop()  # the HTTP side first, then the running job at its next step
            # Bounded: a stop signal raised in this thread in the middle of an import (while the model loads) can
            # leave that module's import lock held, and an HTTP thread importing the same module then waits on it
            # for ever; uvicorn's own shutdown ends within its 5 s. A daemon thread, it ends with the process.
            if http_ended.wait(HTTP_STOP_WAIT):
                http.join()
            else:
                self.log(f"the HTTP side did not stop within {HTTP_STOP_WAIT:g} s; stopping without it")
            if self.worker is not None:
                self.worker.stop(at_once=self._how_to_quit_at_once(interrupted))
            self.store.close()
        if self.worker_failure is not None:
            raise MotifLiteError(
                f"the server stopped: its worker could not go on ({self.worker_failure}). If the data folder "
                f"{self.store.root} is full or read-only, free space or fix that and start the server again: a job "
                "that was running goes back to the queue from its last saved state, or fails as interrupted"
            )
        if http_failed:
            raise MotifLiteError("the server stopped: its HTTP side ended on its own (its error is above)")

    def _notify_service_manager(self, state: str) -> None:
        if (unreached := notify_service_manager(state, self._notify_socket)) is not None:
            self.log(unreached)

    def _wait_for_http_start(self, http_ended: threading.Event) -> bool:
        """Wait until uvicorn has started (at most `HTTP_START_WAIT`), so that the model loads once its thread is
        done importing: a stop signal raised in this thread in the middle of an import (while the model loads) can
        leave that module's import lock held, and an HTTP thread importing the same module then waits on it for
        ever. -> False where the HTTP thread ended first: it could not serve, or the server was stopped."""
        deadline = time.monotonic() + HTTP_START_WAIT
        while not self.http.started and time.monotonic() < deadline:
            if http_ended.wait(0.01):  # a short poll: uvicorn sets `started` and has no event to wait on
                break
        return not http_ended.is_set()

    def _worker_failed(self, reason: str) -> None:
        """A server whose worker stopped would take jobs that never run: it stops too, saying why."""
        self.worker_failure = reason
        self.stop()

    @property
    def started(self) -> bool:
        """The HTTP side answers (the model may still be loading)."""
        return self.http.started

    @property
    def loaded(self) -> bool:
        """The model has loaded: the worker runs the jobs."""
        return self.state.worker is not None

    def stop(self, signum: int | None = None) -> None:
        """Stop the HTTP side, then the worker; `signum`: the stop signal that asked for it, if one did."""
        if signum is not None and self.stop_signal is None:
            self.stop_signal = signum
        # First: a connection's lingering close ends at once, not up to 2 s later. A plain assignment: this runs in
        # a signal's handler, where taking a lock (Event.set) hangs if a second signal runs it again meanwhile.
        self.state.stopping = True
        self.http.should_exit = True

    def _run_http(self, sock: socket.socket, ended: threading.Event) -> None:
        try:
            self.http.run(sockets=[sock])
        finally:
            ended.set()

    def _how_to_quit_at_once(self, interrupted: bool) -> str | None:
        """What ends the process without waiting for the running job's step, for the way it was stopped: a second
        stop signal only asks for the same orderly stop again."""
        if self.stop_signal is not None:
            return f"{signal.Signals(self.stop_signal).name} received; kill -9 {os.getpid()} to quit at once"
        return "Ctrl-C again to quit at once" if interrupted else None


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (port 0: any free port), so that a busy port fails before the model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise MotifLiteError(f"cannot listen on {host}:{port}: {_why_not_bound(exc, host, port)}") from exc
    return sock


def _why_not_bound(error: OSError, host: str, port: int) -> str:
    """The OS's reason a bind failed, with the flag that fixes it where the reason says which (a busy port, a
    privileged one, an address of another machine); else the reason alone."""
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        return f"{reason} (another server listens there): give another --port, or --port 0 for any free one"
    if error.errno == errno.EACCES and 0 < port < 1024:
        return f"{reason}: ports below 1024 need root; give a --port from 1024 up, e.g. the default 8080"
    if error.errno == errno.EADDRNOTAVAIL:
        every = "give --host 127.0.0.1 (this machine only) or 0.0.0.0 (every address)"
        return f"{reason}: {host} is no address of this machine; {every}"
    return reason


def served_model_name(model: str | Path, gguf: str | Path | None) -> str:
    """The `model` of every video object: the checkpoint's folder or repo name, and the GGUF variant if any."""
    name = Path(str(model).rstrip("/")).name or str(model)
    return name if gguf is None else f"{name}:{Path(str(gguf)).stem}"
