"""`VideoServer`: a loaded pipeline, its job store, the worker and the app, run by uvicorn on one socket."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from motif_lite.errors import MotifLiteError
from motif_lite.server.app import ServerConfig, create_app
from motif_lite.server.jobs import JobStore
from motif_lite.server.worker import Worker

if TYPE_CHECKING:
    from motif_lite.pipeline import MotifVideoPipeline


class VideoServer:
    """Recovers the store from a crash, composes the worker and the app; `serve(sock)` runs them."""

    def __init__(
        self, pipe: MotifVideoPipeline, store: JobStore, config: ServerConfig, log: Callable[[str], None] | None = None
    ) -> None:
        self.store = store
        self.recovered = self.store.recover()  # what became of the jobs that were running when the last process died
        self.worker_failure: str | None = None  # why the worker stopped on its own, which stops the server
        self.worker = Worker(self.store, pipe, log, on_failure=self._worker_failed, lora_dir=config.lora_dir)
        self.app = create_app(self.store, self.worker, config)
        # No lifespan: the worker is started and stopped around `run`, whichever thread runs it.
        settings = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
        self.http = uvicorn.Server(settings)

    def serve(self, sock: socket.socket) -> None:
        """Serve until `stop()` or SIGINT/SIGTERM; the running job is stopped between steps and queued again.
        Raises `MotifLiteError` when the server stopped because the worker could not go on."""
        self.worker.start()
        try:
            self.http.run(sockets=[sock])
        finally:
            self.worker.stop()
            self.store.close()
        if self.worker_failure is not None:
            raise MotifLiteError(
                f"the server stopped: its worker could not go on ({self.worker_failure}). If the data folder "
                f"{self.store.root} is full or read-only, free space or fix that and start the server again: a job "
                "that was running goes back to the queue from its last saved state, or fails as interrupted"
            )

    def _worker_failed(self, reason: str) -> None:
        """A server whose worker stopped would take jobs that never run: it stops too, saying why."""
        self.worker_failure = reason
        self.stop()

    @property
    def started(self) -> bool:
        return self.http.started

    def stop(self) -> None:
        self.http.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (port 0: any free port), so that a busy port fails before the model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise MotifLiteError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_model_name(model: str | Path, gguf: str | Path | None) -> str:
    """The `model` of every video object: the checkpoint's folder or repo name, and the GGUF variant if any."""
    name = Path(str(model).rstrip("/")).name or str(model)
    return name if gguf is None else f"{name}:{Path(str(gguf)).stem}"
