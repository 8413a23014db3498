"""Helpers for the `motif-lite serve` tests: servers on free loopback ports, always stopped, every wait bounded."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from motif_lite.server.app import ServerConfig
from motif_lite.server.jobs import JobStore
from motif_lite.server.runner import VideoServer, bind

HOST = "127.0.0.1"
TINY = dict(size="48x32", num_frames=5, steps=2, seed=7)  # about 2 s per job on a CPU core
RUNTIME_FLAGS = ("--device", "cpu", "--dtype", "fp32", "--kernels", "torch")


def tiny_negative_note(pipe: Any) -> str:
    """The note a guided job with the official negative prompt gets from a tiny checkpoint's server: its tokenizer
    (about a token per character) counts it over the 512 tokens, where the official one counts some 150."""
    from motif_lite.encoders.text import prompt_truncation
    from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT

    return prompt_truncation(pipe.text_encoder.tokenizer, OFFICIAL_NEGATIVE_PROMPT).advice("negative prompt")


def head_request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers in lower case, body) of a HEAD request to the server on `port`, the body being every byte
    that came after the headers before the server closed the connection: http.client reads no body after a HEAD,
    whatever the server sends, so a test reading through it could not see one."""
    sent = {"Host": f"{HOST}:{port}", **(headers or {}), "Connection": "close"}
    request = "".join([f"HEAD {path} HTTP/1.1\r\n", *(f"{name}: {value}\r\n" for name, value in sent.items()), "\r\n"])
    with socket.create_connection((HOST, port), timeout=30) as connection:
        connection.sendall(request.encode("latin-1"))
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in header_lines)
    return int(status_line.split()[1]), {name.lower(): value.strip() for name, value in fields.items()}, body


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class InProcessServer:
    """A `VideoServer` on a free loopback port, run by a thread of the test process."""

    def __init__(
        self, pipe, data: Path, load: Callable[[], Any] | None = None, port: int = 0, host: str = HOST, **config: Any
    ) -> None:
        """`load`: what the server calls to load the model (default: hand over `pipe` at once); `port`: 0, a free
        one, or that of a server stopped before (the same server started again, as a page sees it); `host`: the
        address it listens on (requests go to 127.0.0.1 all the same)."""
        self.log: list[str] = []
        self.store = JobStore(data)
        server_config = ServerConfig(model_name="tiny", **config)
        self.server = VideoServer(self.store, server_config, self.log.append)
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.loads_at_once = load is None
        load = load or (lambda: (pipe, server_config))
        self.thread = threading.Thread(target=self.server.serve, args=(self.sock, load), daemon=True)

    def __enter__(self) -> InProcessServer:
        """Started and, unless it was given a `load` of its own, with the model loaded."""
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "the server to start")
        if self.loads_at_once:
            wait_for(lambda: self.server.loaded, 30, "the model to load")
        return self

    @property
    def worker(self):
        return self.server.worker

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(timeout=120)
        self.sock.close()
        assert not self.thread.is_alive(), "the server did not stop"

    def client(self, api_key: str = "unused", **options: Any):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=30, **options)

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any, dict]:
        return request(self.port, method, path, body, headers)

    def wait_status(self, video_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict:
        def current() -> dict | None:
            code, video, _ = self.request("GET", f"/v1/videos/{video_id}")
            return video if code == 200 and video["status"] in statuses else None

        return wait_for(current, timeout, f"{video_id} to be {' or '.join(statuses)}", interval=0.1)


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict | None = None
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON or raw bytes, headers) of one request; a dict body is sent as JSON."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        kind = response.getheader("content-type", "")
        parsed = json.loads(data) if kind.startswith("application/json") else data
        return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, dict[str, str]]:
    boundary = "motiflitetestboundary"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, kind) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(f"{head}Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class PrefixProxy:
    """A reverse proxy in front of a server on `upstream_port`, as nginx and Caddy behave by default where it
    matters to the server: it serves it under `prefix` with the prefix taken off (nginx's `location /motif/ {
    proxy_pass http://127.0.0.1:8080/; }`, Caddy's `handle_path`; the prefix alone, without its slash, forwards
    `/`, as `handle_path /motif*` does), answers a body over `max_body` bytes with its own HTML 413 (nginx's
    `client_max_body_size`, 1 MB by default) and, while `down`, every request with an HTML 502 (nginx's answer
    when nothing listens upstream)."""

    HTML = "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center><hr><center>nginx</center>"

    def __init__(self, upstream_port: int, prefix: str = "/motif", max_body: int = 1024 * 1024) -> None:
        import http.server

        self.down = False
        proxy = self

        class Forward(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rest = self.path.removeprefix(prefix) if self.path.startswith(prefix) else None
                if rest is None or rest[:1] not in ("", "/", "?"):
                    return self._html(404, "404 Not Found")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if len(body) > max_body:
                    return self._html(413, "413 Request Entity Too Large")
                if proxy.down:
                    return self._html(502, "502 Bad Gateway")
                upstream = http.client.HTTPConnection(HOST, upstream_port, timeout=30)
                hop = {"host", "connection", "keep-alive", "transfer-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                try:
                    upstream.request(self.command, "/" + rest.lstrip("/"), body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in hop | {"content-length", "server", "date"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_DELETE = do_HEAD = do_GET

            def _html(self, status: int, title: str) -> None:
                data = proxy.HTML.format(title).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer((HOST, 0), Forward)
        self.url = f"http://{HOST}:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> PrefixProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(timeout=30)


class ProcessServer:
    """`motif-lite serve` as a user runs it, on a free port (it prints which); killed on exit if still running."""

    def __init__(self, checkpoint: Path, data: Path, *flags: str) -> None:
        self.log_path = data.parent / f"{data.name}-serve-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "motif_lite", "serve", "-m", str(checkpoint), "--data", str(data)]
        command += [*RUNTIME_FLAGS, "--port", "0", *flags]
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, stdout=self.log_file, stderr=subprocess.STDOUT)
        found = wait_for(self._port, 120, "motif-lite serve to print its address", interval=0.2)
        self.port = int(found)
        wait_for(self._ready, 120, "motif-lite serve to load the model", interval=0.2)

    def _port(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"motif-lite serve exited with {self.process.returncode}:\n{self.output()}")
        match = re.search(rf"on http://{re.escape(HOST)}:(\d+)/", self.output())
        return match[1] if match else None

    def _ready(self) -> bool:
        """/health answers 200: the model has loaded (it answers 503 `loading` from the moment the port is bound)."""
        if self.process.poll() is not None:
            raise AssertionError(f"motif-lite serve exited with {self.process.returncode}:\n{self.output()}")
        return self.request("GET", "/health")[0] == 200

    def output(self) -> str:
        return self.log_path.read_text()

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        return request(self.port, method, path, body, headers)

    def signal(self, signum: int, timeout: float = 120) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.log_file.close()


@contextlib.contextmanager
def process_server(checkpoint: Path, data: Path, *flags: str) -> Iterator[ProcessServer]:
    server = ProcessServer(checkpoint, data, *flags)
    try:
        yield server
    finally:
        server.stop()


class OutOfMemoryInAJob:
    """Stands in for the pipeline with jobs that run out of device memory at their first step while `failing` is set,
    as a video too large for what is left of the GPU's memory does; everything else, and the jobs once `failing` is
    cleared, is the pipeline's."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.failing = threading.Event()
        self.failing.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def generate(self, request, on_progress, **kwargs) -> Any:
        import torch

        if not self.failing.is_set():
            return self.pipe.generate(request, on_progress=on_progress, **kwargs)
        on_progress("denoise", 0, 2)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


class SlowStep:
    """Stands in for the pipeline with a first denoising step that lasts until `end_step` is set, as a step of the
    real model on a CPU lasts minutes; everything else is the pipeline's (settings, LoRAs). Makes no video."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.in_step = threading.Event()  # set once the worker is inside the long step
        self.end_step = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __enter__(self) -> SlowStep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end_step.set()  # a test that failed inside the step: the server's stop must not wait for it

    def generate(self, request, on_progress, **kwargs) -> types.SimpleNamespace:
        on_progress("denoise", 0, 2)
        self.in_step.set()
        self.end_step.wait(120)
        on_progress("denoise", 1, 2)  # where the worker stops a job deleted meanwhile
        on_progress("denoise", 2, 2)
        request.output.write_bytes(b"")  # no video: the thumbnail fails, which the worker only logs
        return types.SimpleNamespace(fallbacks_said=None)  # the result's part the worker reads: nothing fell back
