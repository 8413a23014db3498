"""`motif-lite serve` for operators and API clients: the public `/health` route (ready, loading, failed; nothing
private in it), each job's timings (in the API and in the log, also for a data folder of an older version) and
per-job LoRAs named from the operator's `--lora-dir` (names checked, no way out of the folder, the transformer
loaded again only when a job's set differs from the last one, the server's own LoRAs back for jobs without any)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sqlite3
import threading
import time
import types
from datetime import datetime
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
from fastapi.testclient import TestClient  # noqa: E402
from server_helpers import TINY, InProcessServer, SlowStep, multipart, wait_for  # noqa: E402

from motif_lite import __version__, cli, load_pipeline  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.server import jobs  # noqa: E402
from motif_lite.server.app import ServerConfig, ServerState, create_app  # noqa: E402
from motif_lite.server.job_record import QUEUED, new_job_id  # noqa: E402
from motif_lite.server.jobs import JobStore  # noqa: E402
from motif_lite.server.runner import VideoServer, bind  # noqa: E402
from motif_lite.server.schema import job_request_fields, parse_loras  # noqa: E402
from motif_lite.server.worker import NO_LONGER_FITS, Worker  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the SDK marks client.videos
PROMPT = "a secret prompt about a red fox"
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1)  # minutes of work: every test that queues it deletes it
SETTINGS = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=1))


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture
def lora_pipe(pipe):
    """The pipeline, without LoRAs again after the test: a server's worker takes the LoRAs it finds applied at start
    for the server's own."""
    yield pipe
    if pipe.loras is not None:
        pipe.set_loras([])


def write_lora(path: Path, layers: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """A kohya LoRA of rank 2 on `layers` ({name: (out, in)}) with weights large enough to change the video."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (out_features, in_features) in layers.items():
        tensors[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(2, in_features, generator=g) * 0.5
        tensors[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_features, 2, generator=g) * 0.5
    save_file(tensors, path)
    return path


@pytest.fixture(scope="module")
def lora_dir(pipe, tmp_path_factory) -> Path:
    """A --lora-dir with a LoRA that fits the tiny transformer ("style") and one that does not ("wrong")."""
    from motif_lite.preflight import meta_transformer
    from motif_lite.weights.lora import linear_shapes

    folder = tmp_path_factory.mktemp("loras")
    shapes = linear_shapes(meta_transformer(pipe.sources.root))
    attention = {name: shape for name, shape in shapes.items() if name.endswith(("to_q", "to_k", "to_v"))}
    write_lora(folder / "style.safetensors", attention)
    write_lora(folder / "wrong.safetensors", {"no_such_layer": (8, 8)})
    return folder


# /health


def test_health_is_public_ready_and_says_nothing_private(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data", api_key="the-key") as server:
        code, health, headers = server.request("GET", "/health")
        assert code == 200 and headers["cache-control"] == "no-store"
        assert health["status"] == "ready" and health["model"] == "tiny" and health["version"] == __version__
        assert health["queued"] == 0 and health["running"] is None and health["uptime_seconds"] >= 0
        assert server.request("GET", "/v1/models")[0] == 401  # the API still wants the key

        key = {"Authorization": "Bearer the-key"}
        running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG}, key)[1]
        waiting = [server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG}, key)[1] for _ in range(2)]
        busy = wait_for(lambda: (h := server.request("GET", "/health")[1])["running"] and h, 60, "the job to run")
        assert busy["running"]["id"] == running["id"] and 0 <= busy["running"]["progress"] < 100
        assert busy["queued"] == 2 and busy["uptime_seconds"] > health["uptime_seconds"]  # the running one apart
        text = json.dumps(busy)
        assert PROMPT not in text and str(tmp_path) not in text and "the-key" not in text
        for job in (*waiting, running):
            assert server.request("DELETE", f"/v1/videos/{job['id']}", headers=key)[0] == 200


def test_health_names_a_cancelled_job_until_the_worker_has_stopped_it(pipe, tmp_path):
    # On a CPU a step takes minutes, and a job deleted while it ran stops only after it: /health said `running`
    # null with a job queued for all that time, as if the worker were stuck.
    slow = SlowStep(pipe)
    with InProcessServer(slow, tmp_path / "data") as server, slow:
        first = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})[1]
        second = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})[1]
        assert slow.in_step.wait(60)
        assert server.request("GET", "/health")[1]["stopping"] is None  # running, not cancelled
        assert server.request("DELETE", f"/v1/videos/{first['id']}")[0] == 200
        health = server.request("GET", "/health")[1]
        assert (health["running"], health["stopping"], health["queued"]) == (None, first["id"], 1)
        # The log said nothing until the step ended ("deleted, stopped"): now it says so at the delete.
        assert f"{first['id']}: deleted while running: stops after its current step" in server.log
        slow.end_step.set()
        wait_for(lambda: f"{first['id']}: deleted, stopped" in server.log, 60, "the worker to stop the job")
        server.wait_status(second["id"], ("completed",))
        assert server.request("GET", "/health")[1]["stopping"] is None


def test_a_queued_video_says_how_many_jobs_run_before_it(pipe, tmp_path):
    # Only the page counted the jobs ahead of a queued one: an API client polling `videos.retrieve` could not tell
    # how long its job would wait. The video object says it, through the SDK, in the list, and after a cancel.
    slow = SlowStep(pipe)
    with InProcessServer(slow, tmp_path / "data") as server, slow:
        client = server.client()
        jobs = [client.videos.create(prompt=PROMPT, extra_body=TINY) for _ in range(3)]
        assert slow.in_step.wait(60)
        assert [client.videos.retrieve(job.id).jobs_ahead for job in jobs] == [None, 1, 2]
        listed = {video.id: video.jobs_ahead for video in client.videos.list(order="asc").data}
        assert [listed[job.id] for job in jobs] == [None, 1, 2]
        client.videos.delete(jobs[1].id)  # a queued job ahead goes: those after it move up
        assert client.videos.retrieve(jobs[2].id).jobs_ahead == 1
        client.videos.delete(jobs[0].id)  # the running one stops after its step only: until then it is ahead
        assert client.videos.retrieve(jobs[2].id).jobs_ahead == 1
        slow.end_step.set()
        assert server.wait_status(jobs[2].id, ("completed",))["jobs_ahead"] is None


def test_a_job_the_worker_takes_at_once_is_not_answered_as_queued_with_no_place(pipe, tmp_path, monkeypatch):
    # With the queue idle the worker claims a new job as soon as it is stored, before the create's answer is made
    # from the job as stored: that answer said `queued` with `jobs_ahead` null, which the docs give only to a job
    # that has started. It is answered queued (as OpenAI's create answers) and next.
    store = JobStore(tmp_path)
    try:
        worker = Worker(store, pipe, log=lambda line: None)
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"), worker)))
        add = store.add

        def add_then_claim(*args, **kwargs):  # the worker's claim, at the moment it comes when idle
            job = add(*args, **kwargs)
            store.claim_next()
            return job

        monkeypatch.setattr(store, "add", add_then_claim)
        video = client.post("/v1/videos", json={"prompt": PROMPT, **TINY}).json()
        assert (video["status"], video["jobs_ahead"]) == ("queued", 0)
    finally:
        store.close()


def test_a_method_a_route_does_not_take_names_those_it_takes(tmp_path):
    # The 405 in OpenAI's shape dropped Starlette's `Allow` header, which HTTP requires on a 405 and which says
    # what to send instead (`curl -I /` on the page, `PUT` on the list).
    store = JobStore(tmp_path)
    try:
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"))))
        answer = client.put("/v1/videos", json={})
        assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
        assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    finally:
        store.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
def test_a_refused_upload_lets_go_of_its_temporary_file(pipe, tmp_path):
    # A form's files are spooled to a temporary file (deleted at once, open until closed): the server never closed
    # the form, and a refused upload's stayed open until Python's cycle collector ran, holding its disk space (up
    # to --max-video-upload-mb per request) though no folder shows it.
    def deleted_files_open() -> int:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # the listing's own, closed since
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        return sum(target.endswith("(deleted)") for target in targets)

    store = JobStore(tmp_path)
    gc.disable()  # what the cycle collector would free some time later is what this counts
    try:
        worker = Worker(store, pipe, log=lambda line: None)
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"), worker)))
        before = deleted_files_open()
        not_a_video = os.urandom(3 * 2**20)  # over the 1 MiB a form keeps in memory
        for route, field in (("/v1/videos/extensions", "video"), ("/v1/videos", "extend")):
            answer = client.post(route, data={"prompt": PROMPT}, files={field: ("clip.mp4", not_a_video)})
            assert answer.status_code == 400 and answer.json()["error"]["param"] == field
        assert deleted_files_open() == before
    finally:
        gc.enable()
        store.close()


def test_a_job_cancelled_as_the_worker_takes_it_is_logged_as_deleted_not_failed(pipe, tmp_path):
    # A DELETE between the worker's claim and its reading of the first frame removes the image under it: the job then
    # failed reading it, and the log said `failed: ...` with the missing file, for a job its client had cancelled.
    store = JobStore(tmp_path)
    try:
        log: list[str] = []
        worker = Worker(store, pipe, log=log.append)
        job_id = new_job_id()
        PIL.Image.new("RGB", (48, 32)).save(store.input_path(job_id))
        store.add(job_id, "tiny", SETTINGS, True, max_active=10)
        job = store.claim_next()
        store.delete(job.id)  # the client's cancel, at that moment
        worker.run_job(job)
        assert log[-1] == f"{job.id}: deleted, stopped", log
        assert not any("failed" in line for line in log) and list(tmp_path.rglob(f"{job.id}*")) == []
    finally:
        store.close()


def test_a_job_that_fails_as_it_is_deleted_keeps_its_error_in_the_log(pipe, tmp_path, monkeypatch):
    # The deleted job's line once dropped the error: a real failure (here a CUDA fault) that raced a client's cancel
    # left the operator no reason at all.
    store = JobStore(tmp_path)
    try:
        log: list[str] = []
        worker = Worker(store, pipe, log=log.append)
        store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
        job = store.claim_next()

        def failing_as_deleted(*args, **kwargs):
            store.delete(job.id)
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        monkeypatch.setattr(pipe, "generate", failing_as_deleted)
        worker.run_job(job)
        assert log[-1].startswith(f"{job.id}: deleted, stopped") and "illegal memory access" in log[-1], log
    finally:
        store.close()


def test_a_job_cancelled_as_the_worker_claims_it_is_logged_as_deleted_while_running(pipe, tmp_path, monkeypatch):
    # The worker set `current` only after its claim: a DELETE in between found no job running and the log never said
    # `deleted while running` of the job it had cancelled. The delay below holds the worker between the two.
    store = JobStore(tmp_path)
    log: list[str] = []
    worker = Worker(store, pipe, log=log.append)
    claimed = threading.Event()
    claim_next = store.claim_next

    def claim_then_pause():
        job = claim_next()
        if job is not None:
            claimed.set()
            time.sleep(0.5)  # the moment between the claim and `current`, long enough for the DELETE to come in
        return job

    monkeypatch.setattr(store, "claim_next", claim_then_pause)
    try:
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"), worker)))
        job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
        worker.start()
        assert claimed.wait(30)
        assert client.delete(f"/v1/videos/{job.id}").status_code == 200
        assert f"{job.id}: deleted while running: stops after its current step" in log, log
        wait_for(lambda: f"{job.id}: deleted, stopped" in log, 60, "the worker to stop the job")
    finally:
        worker.stop(timeout=60)
        store.close()


def test_health_is_503_before_the_worker_runs_and_after_it_failed(pipe, tmp_path, monkeypatch):
    store = JobStore(tmp_path)
    try:
        worker = Worker(store, pipe, log=lambda line: None)
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"), worker)))
        response = client.get("/health")
        assert (response.status_code, response.json()["status"]) == (503, "loading")

        def full_disk():
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(store, "claim_next", full_disk)  # the data folder can no longer be written
        worker.start()
        wait_for(lambda: not worker.running, 30, "the worker to stop")
        response = client.get("/health")
        assert (response.status_code, response.json()["status"]) == (503, "failed")
    finally:
        store.close()


def test_while_the_model_loads_health_the_page_and_the_api_say_so(pipe, tmp_path):
    # The port was bound but served only once the model had loaded: a readiness probe saw a refused connection for
    # the whole load (a minute or more), and /health's `loading` could never be seen.
    release = threading.Event()
    config = ServerConfig(model_name="tiny", api_key="the-key")

    def load():
        assert release.wait(60), "the test never let the model load"
        return pipe, config

    key = {"Authorization": "Bearer the-key"}
    with InProcessServer(pipe, tmp_path / "data", load=load, api_key="the-key") as server:
        code, health, _ = server.request("GET", "/health")
        assert (code, health["status"], health["model"], health["running"]) == (503, "loading", "tiny", None)
        code, page, headers = server.request("GET", "/")
        assert code == 503 and b"loading the model" in page and headers["retry-after"] == "10"
        assert server.request("GET", "/v1/models")[0] == 401  # the key is checked first, as always
        for method, path, body in [("GET", "/v1/models", None), ("POST", "/v1/videos", {"prompt": PROMPT, **TINY})]:
            code, error, headers = server.request(method, path, body, key)
            assert code == 503 and error["error"]["code"] == "model_loading", (path, error)
            assert headers["retry-after"] == "10" and "GET /health" in error["error"]["message"]
        with pytest.raises(openai.InternalServerError, match="still loading the model"):  # the SDK's 5xx
            server.client("the-key").videos.list()
        assert server.store.counts() == {}  # the job was refused, not stored
        release.set()
        wait_for(lambda: server.request("GET", "/health")[0] == 200, 30, "the server to be ready")
        assert any(line.startswith("ready: the model loaded in ") for line in server.log)
        assert b"<title>motif-lite</title>" in server.request("GET", "/")[1]
        code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY}, key)
        assert code == 200
        wait_for(lambda: server.request("GET", f"/v1/videos/{video['id']}", headers=key)[1]["status"] == "completed",
                 120, "the job to run with the loaded model")  # fmt: skip


def test_the_ready_line_comes_before_a_queued_jobs_start(pipe, tmp_path):
    # A job queued before a restart starts as soon as the worker does: its "started" line came before "ready: the
    # model loaded", as if it had run before the model was there.
    store = JobStore(tmp_path / "data")
    one_step = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, steps=1, seed=1))
    job = store.add(new_job_id(), "tiny", one_step, False, 10)
    store.close()
    with InProcessServer(pipe, tmp_path / "data") as server:
        wait_for(lambda: server.store.get(job.id).status == "completed", 120, "the queued job to run")
        ready = next(i for i, line in enumerate(server.log) if line.startswith("ready: the model loaded in "))
        started = next(i for i, line in enumerate(server.log) if line.startswith(f"{job.id}: started"))
        assert ready < started, server.log


def test_health_is_ready_when_the_ready_line_is_said(pipe, tmp_path):
    # docs/server.md: /health answers 200 from the "ready:" line on. The line was said before the worker started
    # and before the state had it: a script that waited for the line, then sent a request, could get 503.
    def load_once_listening():  # a real load takes seconds: the HTTP side is up by then (a tiny one may not be)
        wait_for(lambda: server.server.started, 30, "the server to start")
        return pipe, ServerConfig(model_name="tiny")

    server = InProcessServer(pipe, tmp_path / "data", load=load_once_listening)
    health_at_ready = []

    def log(line: str) -> None:
        if line.startswith("ready: "):
            health_at_ready.append(server.request("GET", "/health")[0])
        server.log.append(line)

    server.server.log = log
    with server:
        wait_for(lambda: health_at_ready, 30, "the ready line")
        assert health_at_ready == [200], server.log


def test_jobs_are_checked_against_the_config_the_loaded_model_decided(pipe, tmp_path):
    # The submit path must read the config `ready` hands over (max_video, image_to_video, too_long, lora_dir), not
    # the one the app was made with before the model loaded.
    store = JobStore(tmp_path)
    try:
        state = ServerState(ServerConfig(model_name="tiny"))
        client = TestClient(create_app(store, state))
        state.ready(Worker(store, pipe, log=lambda line: None), ServerConfig(model_name="tiny", max_video=(32, 32, 5)))
        response = client.post("/v1/videos", json={"prompt": PROMPT, **TINY})  # 48x32: wider than the plan
        assert response.status_code == 400 and response.json()["error"]["param"] == "size", response.json()
        assert store.counts() == {}
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_http_side_that_ends_on_its_own_is_an_error_not_a_stop(pipe, tmp_path):
    # uvicorn runs in a thread of its own and ends it quietly when it cannot serve; `serve` returned as after an
    # orderly stop, and the process printed "stopped" and exited 0.
    config = ServerConfig(model_name="tiny")
    server = VideoServer(JobStore(tmp_path / "data"), config, lambda line: None)
    sock = bind("127.0.0.1", 0)
    sock.close()  # uvicorn cannot listen on it
    with pytest.raises(MotifLiteError, match="its HTTP side ended on its own"):
        server.serve(sock, lambda: (pipe, config))


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="no pthread_kill on Windows")
def test_ctrl_c_while_the_server_runs_returns_only_once_the_http_side_has_ended(pipe, tmp_path):
    # Ctrl-C sometimes printed `interrupted`, then a traceback of the motif-lite-http thread cut off: serve() waited
    # for that thread with Thread.join, which Python 3.11 leaves believing the thread ended when Ctrl-C interrupts
    # it, so the process exited while uvicorn was still shutting down. A request whose body never comes holds
    # uvicorn's shutdown (for its 5 s grace), so that an early return is seen every time.
    import socket
    import sys

    config = ServerConfig(model_name="tiny")
    server = VideoServer(JobStore(tmp_path / "data"), config, lambda line: None)
    sock = bind("127.0.0.1", 0)
    sock.listen(128)  # as `motif-lite serve` does before serving
    http_thread = []
    half_sent = socket.create_connection(sock.getsockname())

    def interrupt_while_serve_waits() -> None:
        wait_for(lambda: server.loaded, 60, "the model to load")
        half_sent.sendall(b"POST /v1/videos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{")  # fmt: skip
        wait_for(lambda: server.http.server_state.tasks, 60, "the request to reach the app")
        http_thread.append(next(t.ident for t in threading.enumerate() if t.name == "motif-lite-http"))
        interrupt_main_thread_while_it_waits()

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever this process inherited
    threading.Thread(target=interrupt_while_serve_waits, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            server.serve(sock, lambda: (pipe, config))
        assert http_thread[0] not in sys._current_frames(), "serve returned while uvicorn still ran"
    finally:
        signal.signal(signal.SIGINT, inherited)
        half_sent.close()
        sock.close()


def interrupt_main_thread_while_it_waits() -> None:
    """Ctrl-C for the main thread, once it waits in the threading module (in `serve`, for the HTTP side)."""
    import sys

    main = threading.main_thread().ident
    wait_for(lambda: sys._current_frames()[main].f_code.co_filename == threading.__file__, 60, "serve to wait")
    signal.pthread_kill(main, signal.SIGINT)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="no pthread_kill on Windows")
@pytest.mark.parametrize(
    ("signum", "at_once"),
    [(None, "Ctrl-C again to quit at once"), (15, f"SIGTERM received; kill -9 {os.getpid()} to quit at once")],
    ids=["ctrl-c", "sigterm"],
)
def test_the_stop_says_how_to_quit_at_once_for_the_signal_received(pipe, tmp_path, signum, at_once):
    # After SIGTERM (systemctl stop) the log said "Ctrl-C again to quit at once": a second SIGTERM only asks for the
    # same orderly stop, and a service has no terminal to press Ctrl-C in.

    from server_helpers import request

    slow = SlowStep(pipe)
    config = ServerConfig(model_name="tiny")
    log: list[str] = []
    server = VideoServer(JobStore(tmp_path / "data"), config, log.append)
    sock = bind("127.0.0.1", 0)

    def stop_in_the_step() -> None:
        wait_for(lambda: server.loaded, 60, "the model to load")
        request(sock.getsockname()[1], "POST", "/v1/videos", {"prompt": PROMPT, **TINY})
        assert slow.in_step.wait(60), "the job never started"
        if signum is None:
            interrupt_main_thread_while_it_waits()
        else:
            server.stop(signum)  # what the handler of `motif-lite serve` does on SIGTERM
        wait_for(lambda: any(line.startswith("stopping: ") for line in log), 60, "the worker to be stopped")
        slow.end_step.set()

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever this process inherited
    threading.Thread(target=stop_in_the_step, daemon=True).start()
    try:
        with slow, contextlib.suppress(KeyboardInterrupt):
            server.serve(sock, lambda: (slow, config))
    finally:
        signal.signal(signal.SIGINT, inherited)
        sock.close()
    stopping = [line for line in log if line.startswith("stopping: ")]
    assert stopping == [f"stopping: {stopping[0].split()[1]} stops after its current step ({at_once})"]


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=XX"])
def test_a_client_that_disconnects_before_its_body_has_arrived_is_no_server_error(pipe, tmp_path, content_type):
    # A cancelled upload (the client closed the connection halfway through its body) reached the 500 handler, and
    # the server's log got a 70-line traceback of starlette's ClientDisconnect for what is no error of the server's.
    import asyncio

    store = JobStore(tmp_path)
    try:
        state = ServerState(ServerConfig(model_name="tiny"), Worker(store, pipe, log=lambda line: None))
        app = create_app(store, state)
        messages = iter([{"type": "http.request", "body": b'{"prompt": "half', "more_body": True},
                         {"type": "http.disconnect"}])  # fmt: skip
        sent = []

        async def receive() -> dict:
            return next(messages)

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"content-type", content_type.encode()), (b"content-length", b"100000")]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/videos", "raw_path": b"/v1/videos", "root_path": "",
                 "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}  # fmt: skip
        asyncio.run(app(scope, receive, send))  # raised ClientDisconnect, which uvicorn logs with its traceback
        assert store.counts() == {}
    finally:
        store.close()


# Job timings


def parse_iso(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_job_has_its_timings_in_the_api_and_the_log(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data") as server:
        code, queued, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
        assert code == 200 and queued["timings"]["queued_at"] is not None
        assert (queued["timings"]["finished_at"], queued["timings"]["ran_seconds"]) == (None, None)
        done = server.wait_status(queued["id"], ("completed",))
    timings = done["timings"]
    queued_at, started_at, finished_at = (parse_iso(timings[k]) for k in ("queued_at", "started_at", "finished_at"))
    assert queued_at <= started_at < finished_at
    assert timings["waited_seconds"] == pytest.approx(started_at - queued_at, abs=0.002)
    assert timings["ran_seconds"] == pytest.approx(finished_at - started_at, abs=0.002) and timings["ran_seconds"] > 0
    assert done["created_at"] == int(queued_at) and done["completed_at"] == int(finished_at)  # OpenAI's: whole
    line = next(line for line in server.log if line.startswith(f"{done['id']}: completed"))
    assert (
        line
        == f"{done['id']}: completed (waited {timings['waited_seconds']:.1f} s, ran {timings['ran_seconds']:.1f} s)"
    )


def test_a_data_folder_of_version_2_keeps_its_jobs_and_gains_loras(tmp_path):
    old = sqlite3.connect(tmp_path / "jobs.sqlite3")  # version 2: notes, no loras, whole seconds
    old.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT "
                "NULL, progress INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, started_at INTEGER, "
                "completed_at INTEGER, model TEXT NOT NULL, settings TEXT NOT NULL, effective TEXT NOT NULL DEFAULT "
                "'{}', has_image INTEGER NOT NULL DEFAULT 0, notes TEXT NOT NULL DEFAULT '[]', error_code TEXT, "
                "error_message TEXT)")  # fmt: skip
    done, waiting = new_job_id(), new_job_id()
    old.execute("INSERT INTO jobs (id, status, created_at, started_at, completed_at, model, settings) VALUES "
                "(?, 'completed', 1000, 1003, 1010, 'tiny', ?)", (done, json.dumps(SETTINGS)))  # fmt: skip
    old.execute("INSERT INTO jobs (id, status, created_at, model, settings) VALUES (?, ?, 1000, 'tiny', ?)",
                (waiting, QUEUED, json.dumps(SETTINGS)))  # fmt: skip
    old.execute("PRAGMA user_version=2")
    old.commit()
    old.close()
    from motif_lite.server.schema import video_object

    store = JobStore(tmp_path)
    try:
        video = video_object(store.get(done), None)
        assert video["timings"] == {"queued_at": "1970-01-01T00:16:40.000Z", "started_at": "1970-01-01T00:16:43.000Z",
                                    "finished_at": "1970-01-01T00:16:50.000Z", "waited_seconds": 3,
                                    "ran_seconds": 7}  # fmt: skip
        assert video["settings"]["loras"] == [] and video["settings"]["crf"] == 18  # the codec's default, as before
        assert store.claim_next().id == waiting
        assert store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=[("a.safetensors", 0.5)]).loras == [
            ("a.safetensors", 0.5)
        ]
    finally:
        store.close()
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == jobs.SCHEMA_VERSION == 8
    database.close()


# Per-job LoRAs


def test_loras_need_the_operators_folder(pipe, tmp_path, lora_dir):
    with InProcessServer(pipe, tmp_path / "data") as server:
        body = {"prompt": PROMPT, **TINY, "loras": ["style.safetensors"]}
        code, error, _ = server.request("POST", "/v1/videos", body)
        assert code == 400 and error["error"]["param"] == "loras" and error["error"]["code"] == "invalid_value"
        assert "--lora-dir" in error["error"]["message"]
        assert server.request("GET", "/v1/videos")[1]["data"] == []  # nothing queued


def test_a_client_lists_the_loras_it_may_name(lora_pipe, tmp_path, lora_dir):
    # A client could learn the names only from a refused job's message.
    link = lora_dir / "elsewhere.safetensors"
    link.symlink_to(write_lora(tmp_path / "outside.safetensors", {"no_such_layer": (8, 8)}))
    try:
        with InProcessServer(lora_pipe, tmp_path / "data", lora_dir=lora_dir, api_key="k") as server:
            assert server.request("GET", "/v1/loras")[0] == 401  # behind the key, as the rest of the API
            code, listed, _ = server.request("GET", "/v1/loras", headers={"Authorization": "Bearer k"})
            assert code == 200 and listed["per_job"] is True
            assert [item["id"] for item in listed["data"]] == ["style.safetensors", "wrong.safetensors"]
            (lora_dir / "later.safetensors").write_bytes((lora_dir / "style.safetensors").read_bytes())
            code, listed, _ = server.request("GET", "/v1/loras", headers={"Authorization": "Bearer k"})
            assert "later.safetensors" in [item["id"] for item in listed["data"]]  # the folder as it is now
    finally:
        link.unlink()
        (lora_dir / "later.safetensors").unlink(missing_ok=True)
    with InProcessServer(lora_pipe, tmp_path / "data2") as server:
        assert server.request("GET", "/v1/loras")[1] == {"object": "list", "data": [], "per_job": False}


def test_a_lora_folder_gone_since_start_is_no_full_data_folder(pipe, tmp_path):
    # --lora-dir removed (or an unmounted share) while the server ran: a job naming a LoRA got 507 `storage_full`,
    # "its data folder is full or cannot be written", and GET /v1/loras a 500 naming the folder's path.
    folder = tmp_path / "loras"
    folder.mkdir()
    with InProcessServer(pipe, tmp_path / "data", lora_dir=folder) as server:
        folder.rmdir()
        code, listed, _ = server.request("GET", "/v1/loras")
        assert (code, listed) == (200, {"object": "list", "data": [], "per_job": True})
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY, "loras": ["style"]})
        assert code == 400 and error["error"]["param"] == "loras", error
        assert "no LoRA file 'style'" in error["error"]["message"] and str(tmp_path) not in error["error"]["message"]


def test_a_job_names_only_files_of_the_folder_with_a_sane_strength(lora_pipe, tmp_path, lora_dir):
    outside = write_lora(tmp_path / "outside.safetensors", {"no_such_layer": (8, 8)})
    link = lora_dir / "link.safetensors"
    link.symlink_to(outside)
    bad = {
        "../outside.safetensors": "(no folders or paths)",
        str(outside): "(no folders or paths)",
        "sub/style.safetensors": "(no folders or paths)",
        "..": "(no folders or paths)",
        "..\\outside.safetensors": "(no folders or paths)",
        # run's FILE:STRENGTH: the object that gives the strength
        "style.safetensors:0.8": '{"name": "style.safetensors", "strength": 0.8}, not after a colon',
        "link.safetensors": "no LoRA file 'link.safetensors' in this server's LoRA folder (available: "
        "style.safetensors, wrong.safetensors)",
        "missing.safetensors": "no LoRA file 'missing.safetensors'",
    }
    try:
        with InProcessServer(lora_pipe, tmp_path / "data", lora_dir=lora_dir) as server:
            for name, message in bad.items():
                code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "loras": [name]})
                assert code == 400 and message in error["error"]["message"], (name, error)
                assert error["error"]["param"] == "loras" and str(lora_dir) not in error["error"]["message"]
            for strength in (10.5, -11, "strong", True, None):
                entry = {"name": "style.safetensors", "strength": strength}
                code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "loras": [entry]})
                assert code == 400 and "strength must be a number from -10 to 10" in error["error"]["message"]
            shapes = [("style.safetensors", "must be a list"), (["style.safetensors"] * 2, "twice"),
                      ([{"file": "style.safetensors"}], 'unknown key "file"'),
                      ([{"name": "style.safetensors", "weight": 0.5}], 'unknown key "weight"'),
                      ([7], "each LoRA is a file name or an object")]  # fmt: skip
            for loras, message in shapes:
                code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "loras": loras})
                assert code == 400 and message in error["error"]["message"], error
            # A LoRA that does not fit the transformer: refused before it is queued, named as the client named it.
            code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "loras": ["wrong.safetensors"]})
            assert code == 400 and "wrong.safetensors" in error["error"]["message"], error
            assert str(lora_dir) not in error["error"]["message"]
            assert server.request("GET", "/v1/videos")[1]["data"] == []  # nothing queued
            code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "loras": [
                "style.safetensors", {"name": "wrong.safetensors", "strength": 0}]})  # fmt: skip
            assert code == 400  # strength 0 is applied too, and so must fit
            code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "loras": [
                {"name": "style.safetensors", "strength": -0.5}]})  # fmt: skip
            assert code == 200 and video["settings"]["loras"] == [{"name": "style.safetensors", "strength": -0.5}]
            assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
    finally:
        link.unlink()


@pytest.mark.parametrize(
    ("entry", "message"),
    [  # other tools' keys, and typos, name the key meant
        (
            {"name": "a.safetensors", "weight": 0.8},
            'unknown key "weight" in the LoRA {"name": "a.safetensors", "weight": 0.8}; did you mean "strength"?',
        ),  # fmt: skip
        (
            {"lora_name": "a.safetensors", "strength_model": 1},
            'unknown key "lora_name" in the LoRA '
            '{"lora_name": "a.safetensors", "strength_model": 1}; did you mean "name"?',
        ),  # fmt: skip
        ({"name": "a.safetensors", "strenght": 2}, 'unknown key "strenght"'),
        ({"name": "a.safetensors", "strenght": 2}, 'did you mean "strength"?'),
        (
            {"name": "a.safetensors", "colour": 2},
            'unknown key "colour" in the LoRA {"name": "a.safetensors", '
            '"colour": 2} (a LoRA object has "name" and "strength"',
        ),  # fmt: skip
        ({"strength": 0.5}, 'the LoRA {"strength": 0.5} has no "name": give {"name": FILE, "strength": S}'),
        (None, 'each LoRA is a file name or an object {"name": FILE, "strength": S}, got null'),  # JSON's spelling
    ],
)
def test_a_lora_object_with_another_tools_keys_names_the_key_meant(entry, message):
    from motif_lite.server.schema import ApiError, parse_loras

    with pytest.raises(ApiError) as refused:
        parse_loras([entry], from_form=False)
    assert message in refused.value.message and refused.value.param == "loras"


def test_a_lora_named_without_its_extension_or_misspelled_gets_the_file_meant(tmp_path):
    from motif_lite.server.loras import lora_files
    from motif_lite.server.schema import ApiError

    for name in ("style.safetensors", "motion_v2.safetensors", "other.SAFETENSORS"):
        (tmp_path / name).write_bytes(b"")
    meant = {"style": "style.safetensors", "stlye.safetensors": "style.safetensors",
             "motion.safetensors": "motion_v2.safetensors", "other": "other.SAFETENSORS"}  # fmt: skip
    for name, file in meant.items():
        with pytest.raises(ApiError) as refused:
            lora_files([(name, 1.0)], tmp_path)
        assert f"no LoRA file {name!r} in this server's LoRA folder; did you mean {file!r}? (available: " in (
            refused.value.message
        )
    with pytest.raises(ApiError) as refused:  # nothing alike: the list alone, no guess
        lora_files([("landscape.safetensors", 1.0)], tmp_path)
    assert refused.value.message == (
        "no LoRA file 'landscape.safetensors' in this server's LoRA folder (available: motion_v2.safetensors, "
        "other.SAFETENSORS, style.safetensors)"
    )


def test_loras_in_a_form_as_the_sdk_encodes_them():
    from motif_lite.server.schema import ApiError, form_loras, parse_loras

    items = {"loras[]": ["a.safetensors"], "loras[][name]": ["b.safetensors", "c.safetensors"],
             "loras[][strength]": ["0.5", "-1"]}  # fmt: skip
    assert parse_loras(form_loras(items), from_form=True) == [
        ("a.safetensors", 1.0), ("b.safetensors", 0.5), ("c.safetensors", -1.0)
    ]  # fmt: skip
    assert form_loras({"loras[][name]": ["b.safetensors"]}) == [{"name": "b.safetensors"}]
    with pytest.raises(ApiError, match="give every LoRA object a strength, or none"):
        form_loras({"loras[][name]": ["b.safetensors", "c.safetensors"], "loras[][strength]": ["0.5"]})
    # A strength that is no number: the JSON body's message, with the range, the value cut short.
    for strength, shown in (("strong", "'strong'"), ("x" * 5000, f"'{'x' * 56}...")):
        with pytest.raises(ApiError) as refused:
            parse_loras(form_loras({"loras[][name]": ["b.safetensors"], "loras[][strength]": [strength]}), True)
        assert refused.value.message == f"LoRA strength must be a number from -10 to 10, got {shown}"
    text = '[{"name": "b.safetensors", "strength": 0.5}]'  # curl -F loras=...: the list as JSON text
    assert parse_loras(text, from_form=True) == [("b.safetensors", 0.5)]


def test_a_job_names_at_most_eight_loras_with_finite_strengths_and_a_form_sends_them_once(
    pipe, tmp_path, lora_dir, monkeypatch
):
    from motif_lite.server.loras import lora_files
    from motif_lite.server.schema import ApiError, parse_loras

    names = [f"{i}.safetensors" for i in range(9)]
    assert len(parse_loras(names[:8], from_form=False)) == 8
    with pytest.raises(ApiError, match="at most 8 LoRAs, got 9"):
        parse_loras(names, from_form=False)
    with pytest.raises(ApiError, match="strength must be a number"):  # JSON's NaN, which Python's parser reads
        parse_loras([{"name": "a.safetensors", "strength": float("nan")}], from_form=False)
    store = JobStore(tmp_path / "data")
    try:  # the list as JSON text (curl -F) and in the SDK's encoding, both in one form
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"), Worker(store, pipe))))
        form = {"prompt": PROMPT, "loras": '["a.safetensors"]', "loras[]": "b.safetensors"}
        response = client.post("/v1/videos", data=form, files={"input_reference": ("a.png", b"x", "image/png")})
        assert response.status_code == 400 and "loras was sent twice" in response.json()["error"]["message"]
    finally:
        store.close()
    monkeypatch.chdir(lora_dir.parent)  # --lora-dir given relative to the working folder
    ((path, strength),) = lora_files([("style.safetensors", 0.5)], Path(lora_dir.name))
    assert (path, strength) == (lora_dir.resolve() / "style.safetensors", 0.5)


class RecordingPipe:
    """Stands in for the pipeline: records each `set_loras` and the LoRAs each video was made with."""

    transformer = "loaded"  # None once a `set_loras` failed to load one

    def __init__(self, server_loras: list[tuple[Path, float]]) -> None:
        self.loras = self._applied(server_loras)
        self.switches: list[list[tuple[Path, float]]] = []
        self.made_with: list[list[tuple[Path, float]]] = []

    @staticmethod
    def _applied(loras):
        files = [types.SimpleNamespace(spec=types.SimpleNamespace(path=p, strength=s)) for p, s in loras]
        return types.SimpleNamespace(files=files) if loras else None

    def set_loras(self, loras) -> None:
        self.switches.append(list(loras))
        self.loras = self._applied(loras)

    def generate(self, request, **kwargs) -> types.SimpleNamespace:
        self.made_with.append([] if self.loras is None else [(f.spec.path, f.spec.strength) for f in self.loras.files])
        request.output.write_bytes(b"")  # no video: the thumbnail fails, which the worker only logs
        return types.SimpleNamespace(fallbacks_said=None)  # the result's part the worker reads: nothing fell back


def test_the_worker_switches_loras_only_when_the_set_changes_and_restores_the_servers(tmp_path, lora_dir):
    own = (tmp_path / "own.safetensors", 0.7)  # the server's --lora
    style = (lora_dir.resolve() / "style.safetensors", 1.0)
    fake = RecordingPipe([own])
    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, fake, log=lambda line: None, lora_dir=lora_dir)
        for loras in ([], [("style.safetensors", 1.0)], [("style.safetensors", 1.0)], [], [],
                      [("style.safetensors", 0.5)]):  # fmt: skip
            store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=loras)
            worker.run_job(store.claim_next())
        half = (style[0], 0.5)
        assert fake.made_with == [[own], [style], [style], [own], [own], [half]]
        assert fake.switches == [[style], [own], [half]]  # one load per change, none for a repeat
    finally:
        store.close()


def test_a_jobs_unusual_lora_strength_is_taken_with_a_warning_in_the_servers_log(lora_pipe, tmp_path, lora_dir):
    # A strength of 8 (the API takes -10 to 10) is likelier a typo for 0.8: it is a valid number, so no 400, but it
    # was taken without a word where `run --lora style.safetensors:8` warns. The switch to it warns as run does.
    assert parse_loras([{"name": "style.safetensors", "strength": 8}], False) == [("style.safetensors", 8.0)]
    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, lora_pipe, log=lambda line: None, lora_dir=lora_dir)
        job = store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=[("style.safetensors", 8.0)])
        with pytest.warns(
            UserWarning, match=r"style\.safetensors: strength 8 is far above the usual 0-2, .* for 0\.8\?"
        ):
            worker._use_loras(job)
        assert lora_pipe.loras is not None  # applied as given
    finally:
        store.close()


def test_each_job_at_an_unusual_lora_strength_says_so_in_its_notes(lora_pipe, tmp_path, lora_dir):
    # The switch's warning reached the server's log alone, and once a process: its client never read it, and a
    # second job at the same strength was not even in the log.
    from motif_lite.weights.lora_values import unusual_strength

    said = unusual_strength("style.safetensors", 8.0)
    assert said is not None and "style.safetensors: strength 8 is far above the usual 0-2" in said
    with InProcessServer(lora_pipe, tmp_path / "data", lora_dir=lora_dir) as server:
        body = {"prompt": PROMPT, **LONG, "loras": [{"name": "style.safetensors", "strength": 8}]}
        videos = [server.request("POST", "/v1/videos", body) for _ in range(2)]
        for code, video, _ in videos:
            assert code == 200 and said in video["notes"], video
            assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_the_log_says_a_switch_back_to_no_loras_in_words(tmp_path, lora_dir):
    # It said "loading the transformer again with the LoRAs none".
    store = JobStore(tmp_path / "data")
    try:
        log = []
        worker = Worker(store, RecordingPipe([]), log=log.append, lora_dir=lora_dir)
        ids = [store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=loras).id
               for loras in ([("style.safetensors", 0.8)], [])]  # fmt: skip
        for _ in ids:
            worker.run_job(store.claim_next())
        switches = [line for line in log if "loading the transformer again" in line]
        assert switches == [f"{ids[0]}: loading the transformer again with the LoRAs style.safetensors x0.8",
                            f"{ids[1]}: loading the transformer again without LoRAs"]  # fmt: skip
    finally:
        store.close()


def test_a_failed_switch_fails_its_job_without_the_folder_and_the_next_job_switches_again(tmp_path, lora_dir):
    class FailingPipe(RecordingPipe):
        def set_loras(self, loras) -> None:
            if any(path.name == "style.safetensors" for path, _ in loras):  # as when the file left the folder
                self.loras = None  # the old transformer went: what is applied now is not the server's own
                raise MotifLiteError(f"LoRA file not found: {loras[0][0]}")
            super().set_loras(loras)

    own = (tmp_path / "own.safetensors", 0.7)
    fake = FailingPipe([own])
    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, fake, log=lambda line: None, lora_dir=lora_dir)
        ids = []
        for loras in ([("style.safetensors", 1.0)], []):
            ids.append(store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=loras).id)
            worker.run_job(store.claim_next())
        failed = store.get(ids[0])
        assert failed.error_message.startswith("LoRA file not found: style.safetensors"), failed.error_message
        assert str(lora_dir.resolve()) not in failed.error_message
        assert fake.made_with == [[own]]  # the second job switched back to the server's own before it ran
    finally:
        store.close()


def test_the_servers_own_lora_given_by_a_relative_path_is_not_loaded_again_for_a_job_naming_it(
    tmp_path, lora_dir, monkeypatch
):
    # `serve --lora loras/style.safetensors --lora-dir loras`: the job's file was resolved and the server's was not,
    # so a job naming style.safetensors x1 loaded the transformer again, and the next job naming none once more.
    monkeypatch.chdir(lora_dir.parent)
    fake = RecordingPipe([(Path(lora_dir.name) / "style.safetensors", 1.0)])  # as LoRASpec.parse keeps --lora
    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, fake, log=lambda line: None, lora_dir=Path(lora_dir.name))
        for loras in ([("style.safetensors", 1.0)], [], [("style.safetensors", 0.5)]):
            store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=loras)
            worker.run_job(store.claim_next())
        assert fake.switches == [[(lora_dir.resolve() / "style.safetensors", 0.5)]]  # the strength changed only
    finally:
        store.close()


def test_a_transformer_that_fails_to_load_for_a_jobs_loras_is_told_in_the_servers_words(tmp_path, lora_dir):
    # The pipeline's note for Python callers ("call set_loras again") reached the client.
    from motif_lite.errors import CheckpointError

    cause = "transformer/diffusion_pytorch_model.safetensors changed on disk since it loaded"
    note = "the pipeline has no transformer now: call set_loras again once the cause is fixed"

    class LoadFails(RecordingPipe):
        def set_loras(self, loras) -> None:
            if self.transformer is None:  # the next job's switch: the cause was fixed
                self.transformer = "loaded"
                return super().set_loras(loras)
            self.transformer = None  # as `set_loras` leaves the pipeline once the old transformer went
            raise CheckpointError(f"{cause}\n{note}")

    store = JobStore(tmp_path / "data")
    log = []
    try:
        worker = Worker(store, LoadFails([]), log=log.append, lora_dir=lora_dir)
        ids = [store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=[("style.safetensors", 1.0)]).id]
        worker.run_job(store.claim_next())
        failed = store.get(ids[0])
        assert (failed.error_code, failed.error_message) == (
            "invalid_request",
            f"the server could not load its transformer with this job's LoRAs ({cause}); the next job tries again",
        )
        assert f"{ids[0]}: the transformer could not be loaded again: {cause}\n{note}" in log  # all, for the operator
        ids.append(store.add(new_job_id(), "tiny", SETTINGS, False, 10, loras=[("style.safetensors", 1.0)]).id)
        worker.run_job(store.claim_next())
        assert store.get(ids[1]).status == "completed"
    finally:
        store.close()


def test_a_kernel_failure_in_a_job_is_the_servers_with_its_traceback_on_stderr(tmp_path, capsys):
    # KernelFailedError is a MotifLiteError: it was the client's `invalid_request`, and no traceback was printed.
    from motif_lite.runtime.kernels import KernelFailedError

    class KernelFails(RecordingPipe):
        def generate(self, request, **kwargs) -> None:
            raise KernelFailedError("the Triton kernel rms_norm_rope raised: an illegal memory access")

    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, KernelFails([]), log=lambda line: None)
        job = store.add(new_job_id(), "tiny", SETTINGS, False, 10)
        worker.run_job(store.claim_next())
        failed = store.get(job.id)
        assert failed.error_code == "generation_failed", failed.error_message
        assert failed.error_message.startswith("KernelFailedError: the Triton kernel rms_norm_rope raised")
        assert "Traceback (most recent call last)" in capsys.readouterr().err
    finally:
        store.close()


def test_a_failed_jobs_message_names_its_first_frame_as_it_was_sent_not_by_the_servers_path(tmp_path):
    # The clip's path was put in words and the first frame's was not: "input image not found: /data/inputs/ID.png".
    from motif_lite.server.schema import IMAGE_NAME_KEY

    class ChecksTheRequest(RecordingPipe):
        def generate(self, request, **kwargs) -> None:
            request.resolve_with_inputs()  # as the pipeline does first: the image is read

    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, ChecksTheRequest([]), log=lambda line: None)
        job = store.add(new_job_id(), "tiny", {**SETTINGS, IMAGE_NAME_KEY: "fox.png"}, True, 10)
        assert not store.input_path(job.id).exists()  # removed by hand
        worker.run_job(store.claim_next())
        said = store.get(job.id).error_message
        assert "fox.png" in said and str(store.input_path(job.id)) not in said and "inputs" not in said, said
    finally:
        store.close()


def test_a_job_deleted_as_it_fails_leaves_no_sampling_state_behind(tmp_path):
    """Deleted while it ran, then failed (not at a progress report): the state its failure saved went with it, not
    at the next restart."""
    store = JobStore(tmp_path / "data")

    class DeletedAsItFails(RecordingPipe):
        def generate(self, request, latents_file, **kwargs) -> None:
            store.delete(job.id)  # the client's DELETE, during the step that then fails
            latents_file.write_bytes(b"the state the failure saved")
            raise RuntimeError("the step failed")

    try:
        worker = Worker(store, DeletedAsItFails([]), log=lambda line: None)
        job = store.add(new_job_id(), "tiny", SETTINGS, False, 10)
        worker.run_job(store.claim_next())
        assert store.get(job.id) is None and not store.state_path(job.id).exists()
    finally:
        store.close()


def test_a_jobs_lora_changes_its_video_and_the_next_job_gets_the_servers_own(lora_pipe, tmp_path, lora_dir):
    with InProcessServer(lora_pipe, tmp_path / "data", lora_dir=lora_dir) as server:
        client = server.client()
        videos = []
        for loras in ([{"name": "style.safetensors", "strength": 1}], []):  # the SDK sends them in a form
            extra = {"num_frames": 5, "steps": 2, "seed": 7, "loras": loras}
            video = client.videos.create_and_poll(prompt=PROMPT, size="48x32", poll_interval_ms=100, extra_body=extra)
            assert video.status == "completed", video
            videos.append(frames(client.videos.download_content(video.id).content, tmp_path / f"{video.id}.mp4"))
        assert any(line.endswith("LoRAs style.safetensors x1") for line in server.log), server.log
        assert lora_pipe.loras is None  # the server's own (none) again
    assert np.abs(videos[0].astype(int) - videos[1]).mean() > 1  # the LoRA made another video


def test_queued_jobs_the_restarted_server_cannot_run_fail_as_its_submission_would_be_refused(
    lora_pipe, tmp_path, lora_dir
):
    # Queued jobs were checked only at submission, against the server of then: restarted with another --lora-dir, a
    # checkpoint without the image encoder or a smaller --max-video, the server loaded the transformer again for a
    # LoRA that is gone, or ran a job past its memory plan. Each now fails before anything loads, with the reason the
    # restarted server refuses the same body with, and one log line; a job that still fits runs. An extension (of an
    # uploaded clip) needs the image encoder too, and says so first.
    import base64
    import io

    import imageio_ffmpeg

    image = io.BytesIO()
    PIL.Image.new("RGB", (48, 32), (200, 40, 40)).save(image, "PNG")
    first_frame = {"image_url": "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()}
    bodies = {
        "long": {"prompt": PROMPT, **LONG, "num_frames": 9},  # runs first, and is queued again by the stop
        "lora": {"prompt": PROMPT, **TINY, "loras": ["style.safetensors"]},
        "image": {"prompt": PROMPT, **TINY, "input_reference": first_frame},
        "fits": {"prompt": PROMPT, **TINY},
    }
    clip = tmp_path / "clip.mp4"  # 48x32, 9 frames: an uploaded video to go on from
    writer = imageio_ffmpeg.write_frames(str(clip), (48, 32), fps=24, macro_block_size=1)
    writer.send(None)
    for index in range(9):
        writer.send(np.full((32, 48, 3), 40 + 20 * index, np.uint8).tobytes())
    writer.close()
    extension = multipart({"prompt": PROMPT, "steps": "1"}, {"extend": ("clip.mp4", clip.read_bytes(), "video/mp4")})

    def submit(server: InProcessServer, name: str) -> tuple[int, dict]:
        body, headers = extension if name == "extension" else (bodies[name], None)
        return server.request("POST", "/v1/videos", body, headers)[:2]

    data = tmp_path / "data"
    with InProcessServer(lora_pipe, data, lora_dir=lora_dir) as server:
        ids = {name: submit(server, name)[1]["id"] for name in (*bodies, "extension")}
        server.wait_status(ids["long"], ("in_progress",))
    other_folder = tmp_path / "other-loras"  # another --lora-dir, without the job's file
    other_folder.mkdir()
    restarted = dict(lora_dir=other_folder, image_to_video=False, max_video=(48, 32, 5))
    with InProcessServer(lora_pipe, data, **restarted) as server:
        for name in ("long", "lora", "image", "extension"):
            failed = server.wait_status(ids[name], ("failed",))
            code, refused = submit(server, name)  # the same body, sent now
            assert code == 400, refused
            said = f"{NO_LONGER_FITS}: {refused['error']['message']}"
            assert failed["error"] == {"code": "invalid_request", "message": said}, name
            lines = [line for line in server.log if ids[name] in line]
            assert len(lines) == 1 and lines[0].startswith(f"{ids[name]}: failed") and said in lines[0], lines
        assert "which an extension needs" in failed["error"]["message"]  # not a later check's reason
        assert server.wait_status(ids["fits"], ("completed",))["size"] == "48x32"
        assert not any("loading the transformer again" in line for line in server.log)  # nothing loaded for them
        assert not (data / "inputs" / f"{ids['image']}.png").exists()  # its first frame went with the job


def test_queued_jobs_over_the_restarted_servers_upload_limits_fail_as_their_submission_would_be_refused(pipe, tmp_path):
    # A queued job's first frame and uploaded video were checked against --max-upload-mb, --max-video-upload-mb and
    # --max-image-pixels only at submission: restarted with smaller ones, the server ran them anyway. Each now fails
    # before anything loads, with the message the same body gets now.
    import base64
    import io

    import imageio_ffmpeg

    def data_url(pixels: np.ndarray) -> dict[str, str]:
        image = io.BytesIO()
        PIL.Image.fromarray(pixels).save(image, "PNG")
        return {"image_url": "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()}

    def clip(name: str, pixels: np.ndarray) -> bytes:  # 48x32, one frame per image of `pixels`
        path = tmp_path / name
        writer = imageio_ffmpeg.write_frames(str(path), (48, 32), fps=24, macro_block_size=1)
        writer.send(None)
        for frame in pixels:
            writer.send(frame.tobytes())
        writer.close()
        return path.read_bytes()

    noise = np.random.default_rng(0).integers(0, 256, (9, 32, 48, 3), np.uint8)
    flat = np.full((32, 48, 3), 90, np.uint8)
    images = {"noisy image": data_url(noise[0]), "flat image": data_url(flat)}
    clips = {"noisy.mp4": clip("noisy.mp4", noise), "flat.mp4": clip("flat.mp4", np.stack([flat] * 9))}

    def submit(server: InProcessServer, name: str) -> tuple[int, dict]:  # the job `name`: a first frame or an upload
        if name in images:
            return server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY, "input_reference": images[name]})[:2]
        body, headers = multipart({"prompt": PROMPT, "steps": "2"}, {"extend": (name, clips[name], "video/mp4")})
        return server.request("POST", "/v1/videos", body, headers)[:2]

    data = tmp_path / "data"
    with InProcessServer(pipe, data) as server:
        long = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "num_frames": 9})[1]
        server.wait_status(long["id"], ("in_progress",))
        ids = {}
        for name in (*images, *clips):
            code, queued = submit(server, name)
            assert code == 200, queued
            ids[name] = queued["id"]
    # The noisy files are over the new byte limits, the flat ones under them and over the new pixel limit.
    image_bytes = len(base64.b64decode(images["flat image"]["image_url"].split(",")[1]))
    restarted = dict(max_video=(48, 32, 5), max_upload_bytes=image_bytes + 1, max_image_pixels=48 * 32 - 1,
                     max_video_upload_bytes=len(clips["flat.mp4"]) + 1)  # fmt: skip
    assert len(clips["noisy.mp4"]) > restarted["max_video_upload_bytes"]
    with InProcessServer(pipe, data, **restarted) as server:
        server.wait_status(long["id"], ("failed",))  # over the smaller --max-video: the others are not behind it
        for name in ids:
            failed = server.wait_status(ids[name], ("failed", "completed"))
            code, refused = submit(server, name)  # the same body, sent now
            assert code in (400, 413), refused
            said = f"{NO_LONGER_FITS}: {refused['error']['message']}"
            assert failed["error"] == {"code": "invalid_request", "message": said}, name
            assert ("pixels" in said) == name.startswith("flat") and ("larger" in said) == name.startswith("noisy")
            lines = [line for line in server.log if ids[name] in line]
            assert len(lines) == 1 and lines[0].startswith(f"{ids[name]}: failed") and said in lines[0], lines
        assert not any((data / "inputs").iterdir()) and not any((data / "states").iterdir())


def test_a_queued_job_the_restarted_server_cannot_run_leaves_no_sampling_state_behind(pipe, tmp_path):
    # Its state from before the restart stayed in states/ until the next start, named by no log line.
    store = JobStore(tmp_path / "data")
    try:
        job = store.add(new_job_id(), "tiny", SETTINGS, False, 10)  # before the worker: by the server before
        worker = Worker(store, pipe, log=lambda line: None, limits=ServerConfig("tiny", max_video=(48, 32, 1)))
        store.state_path(job.id).write_bytes(b"the state its orderly stop saved")
        worker.run_job(store.claim_next())
        failed = store.get(job.id)
        assert failed.status == "failed" and failed.error_message.startswith(NO_LONGER_FITS), failed
        assert not store.state_path(job.id).exists()
    finally:
        store.close()


def test_only_a_job_queued_before_a_restart_has_its_submissions_checks_made_again(
    lora_pipe, tmp_path, lora_dir, monkeypatch
):
    # The worker made every check of a submission again for every job it took (`check_queued_job`), though only a job
    # queued before a restart was checked against another server: for one queued since, it read the job's first frame
    # and the video it goes on from again (about a second for a 720p video on a busy CPU) and found what its
    # submission had. Such a job is checked for its LoRA files alone, which may leave the folder while it waits.
    import shutil

    from motif_lite.server import worker as worker_module

    checked = []
    check = worker_module.check_queued_job
    monkeypatch.setattr(
        worker_module, "check_queued_job", lambda job, *rest: checked.append(job.id) or check(job, *rest)
    )
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(lora_dir / "style.safetensors", folder)
    settings = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, steps=1, seed=1))
    store = JobStore(tmp_path / "data")
    try:
        before = store.add(new_job_id(), "tiny", settings, False, 10)  # by the server before the restart
        config = ServerConfig("tiny", lora_dir=folder)
        worker = Worker(store, lora_pipe, log=lambda line: None, lora_dir=folder, limits=config)
        since = store.add(new_job_id(), "tiny", settings, False, 10)
        lora = store.add(new_job_id(), "tiny", settings, False, 10, loras=[("style.safetensors", 1.0)])
        (folder / "style.safetensors").unlink()  # gone from the folder while its job waits
        for _ in range(3):
            worker.run_job(store.claim_next())
        assert checked == [before.id]
        assert [store.get(job.id).status for job in (before, since)] == ["completed", "completed"]
        failed = store.get(lora.id)
        assert failed.status == "failed" and failed.error_message.startswith(NO_LONGER_FITS), failed
        assert "style.safetensors" in failed.error_message and str(folder) not in failed.error_message, failed
    finally:
        store.close()


def frames(video: bytes, path: Path) -> np.ndarray:
    import imageio_ffmpeg

    path.write_bytes(video)
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def test_a_max_video_narrower_than_any_video_is_refused_as_the_flags_are_read(capsys):
    # Under 16 pixels a side no video fits: every job that named no size got a 400 for a width of 0.
    for value in ("8x736x121", "1280x15x121"):
        with pytest.raises(SystemExit) as stopped:
            cli.main(["serve", "--max-video", value])
        said = "--max-video: must be at least 16x16 (width x height x frames)"
        assert stopped.value.code == 2 and f"{said}, got '{value}'" in capsys.readouterr().err


def test_lora_dir_must_be_a_folder_before_anything_binds(tmp_path, capsys, monkeypatch):
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    missing = tmp_path / "no-loras"
    assert cli.main(["serve", "--data", str(tmp_path / "data"), "--lora-dir", str(missing)]) == cli.EXIT_USER_ERROR
    assert f"error: --lora-dir {missing} does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli.main(["serve", "--data", str(tmp_path / "d"), "--lora-dir", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert os.path.isdir(tmp_path / "data") is False  # refused before the data folder was made


def test_a_jobs_notes_and_the_log_say_which_kernels_fell_back(tmp_path):
    """auto attention's chosen kernel (or a Triton op) that failed ran torch's instead: the job was slower. The
    worker dropped the result's fallbacks, so neither the job nor the log said so."""
    from motif_lite.pipeline.result import GenerationResult

    class FlashFellBack(RecordingPipe):
        def generate(self, request, **kwargs) -> GenerationResult:
            super().generate(request, **kwargs)
            fallbacks = {"flash attention": "RuntimeError: no kernel image"}
            return GenerationResult(*([None] * 6), kernel_fallbacks=fallbacks)

    store, logged = JobStore(tmp_path / "data"), []
    try:
        worker = Worker(store, FlashFellBack([]), log=logged.append)
        job = store.add(new_job_id(), "tiny", SETTINGS, False, 10, notes=["a note of the request"])
        worker.run_job(store.claim_next())
        said = "kernels: fell back to torch (slower, same math): flash attention (RuntimeError: no kernel image)"
        assert store.get(job.id).notes == ["a note of the request", said]
        assert f"{job.id}: note: {said}" in logged, logged
    finally:
        store.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_the_start_line_of_a_server_on_every_address_names_one_to_open(host, tmp_path, capsys, monkeypatch):
    # `--host 0.0.0.0` printed `serving ... on http://0.0.0.0:8080/`: where it listens, but no address to open from
    # the colleagues' machines (and one browsers refuse): the line names this machine's.
    import socket

    from motif_lite.cli.serve import _say_serving

    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-box")
    sock = types.SimpleNamespace(getsockname=lambda: (host, 8080))
    recovered = jobs.Recovered(failed=[], requeued=[])
    _say_serving(types.SimpleNamespace(data=tmp_path), sock, types.SimpleNamespace(recovered=recovered), "", "tiny")
    serving = capsys.readouterr().err.splitlines()[1]
    listening, here = ("0.0.0.0", "127.0.0.1") if host == "0.0.0.0" else ("[::]", "[::1]")
    assert serving.startswith(
        f"serving tiny on http://{listening}:8080/, every address of this machine: open http://gpu-box:8080/ from "
        f"another one, http://{here}:8080/ from this one (Ctrl-C to stop); "
    )


def test_the_start_line_says_a_crash_left_the_jobs_it_recovered_running(tmp_path, capsys):
    # It said "interrupted by the last stop", though an orderly stop (SIGTERM, Ctrl-C) queues its running job again:
    # only a crash (kill -9, the OOM killer, a power cut) leaves one running for the next start to find.
    from motif_lite.cli.serve import _say_serving

    recovered = jobs.Recovered(failed=["video_a"], requeued=["video_b", "video_c"])
    sock = types.SimpleNamespace(getsockname=lambda: ("127.0.0.1", 8080))
    args = types.SimpleNamespace(data=tmp_path)
    _say_serving(args, sock, types.SimpleNamespace(recovered=recovered), "3 jobs", "tiny")
    data_line = capsys.readouterr().err.splitlines()[0]
    assert data_line == (
        f"data: {tmp_path.resolve()} (3 jobs; 1 failed as interrupted by a crash; 2 interrupted by a crash queued "
        "again, from their last saved state)"
    )


def test_a_stop_while_the_model_loads_ends_though_the_http_side_never_does(tmp_path, monkeypatch):
    # SIGTERM raised in the main thread in the middle of an import, while the model loaded, could leave that module's
    # import lock held; uvicorn's thread, importing the same module as it started, waited on it for ever, and the
    # server waited for that thread for ever (`docker stop` ended it with SIGKILL). It now waits a bounded time.
    import motif_lite.server.runner as runner
    from motif_lite.stopping import Terminated

    monkeypatch.setattr(runner, "HTTP_STOP_WAIT", 0.2)
    monkeypatch.setattr(runner, "HTTP_START_WAIT", 0.2)  # an HTTP side that never starts holds the load back no more
    never = threading.Event()
    monkeypatch.setattr(VideoServer, "_run_http", lambda self, sock, ended: never.wait())  # never sets `ended`
    log: list[str] = []
    server = VideoServer(JobStore(tmp_path / "data"), ServerConfig(model_name="tiny"), log.append)

    def load():
        raise Terminated(signal.SIGTERM)

    outcome: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve(bind("127.0.0.1", 0), load)
        except BaseException as exc:  # noqa: BLE001 (the test reads what ended it)
            outcome.append(exc)

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    serving.join(10)
    never.set()
    assert not serving.is_alive(), "the server waited for its HTTP side for ever"
    assert [type(exc) for exc in outcome] == [Terminated]
    assert log[-1] == "the HTTP side did not stop within 0.2 s; stopping without it", log


class SlowStartingHttp:
    """Stands for uvicorn's server: it starts after `start_after` seconds (its imports), or, where `fails`, ends
    then without starting, as uvicorn ends its thread when it cannot serve."""

    def __init__(self, start_after: float, fails: bool = False) -> None:
        self.start_after, self.fails = start_after, fails
        self.started = self.should_exit = False

    def run(self, sockets) -> None:
        time.sleep(self.start_after)
        if self.fails:
            return
        self.started = True
        while not self.should_exit:
            time.sleep(0.01)


def test_the_model_loads_once_the_http_side_has_started(tmp_path):
    # The model's load began as uvicorn's thread started, importing: a stop signal raised in the load in the middle
    # of an import could leave that module's lock held, and uvicorn's thread waited on it for ever.
    server = VideoServer(JobStore(tmp_path / "data"), ServerConfig(model_name="tiny"), lambda line: None)
    server.http = SlowStartingHttp(start_after=0.3)
    seen_at_load = []

    def load():
        seen_at_load.append(server.started)
        raise MotifLiteError("the test's load stops here")

    with pytest.raises(MotifLiteError, match="the test's load stops here"):
        server.serve(bind("127.0.0.1", 0), load)
    assert seen_at_load == [True]


def test_an_http_side_that_cannot_start_ends_the_server_before_the_model_loads(tmp_path):
    # Its error logged, the server loaded the model all the same (a minute or more) before saying it had stopped.
    server = VideoServer(JobStore(tmp_path / "data"), ServerConfig(model_name="tiny"), lambda line: None)
    server.http = SlowStartingHttp(start_after=0.1, fails=True)
    began = time.monotonic()
    with pytest.raises(MotifLiteError, match="its HTTP side ended on its own"):
        server.serve(bind("127.0.0.1", 0), lambda: pytest.fail("the model loaded for a server that cannot serve"))
    assert time.monotonic() - began < 5


def test_systemd_is_told_ready_once_jobs_run_and_stopping_when_the_server_stops(pipe, tmp_path, monkeypatch):
    # A unit of Type=notify waits for READY=1: none came, and systemd killed the server as a start that timed out.
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"motif-lite-test-{os.getpid()}-{time.monotonic_ns()}"
    listener.bind("\0" + name)  # an abstract socket, as systemd names it: `@name`
    listener.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
    try:
        with InProcessServer(pipe, tmp_path / "data") as server:
            assert listener.recv(64) == b"READY=1"
            assert server.request("GET", "/health")[0] == 200  # ready as said: the worker runs the queue
        assert listener.recv(64) == b"STOPPING=1"
    finally:
        listener.close()


def test_a_notify_socket_that_cannot_be_reached_is_said_in_the_log(pipe, tmp_path, monkeypatch):
    # Ignored in silence, a unit of Type=notify killed the server at its TimeoutStartSec with nothing said.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "no-such-socket"))
    with InProcessServer(pipe, tmp_path / "data") as server:
        assert server.request("GET", "/health")[0] == 200
    said = [line for line in server.log if line.startswith("systemd was not told")]
    assert said and said[0].startswith(f"systemd was not told READY=1: its NOTIFY_SOCKET {tmp_path}"), server.log


def test_the_notify_socket_is_taken_out_of_the_environment_and_still_told_ready_and_stopping(
    pipe, tmp_path, monkeypatch
):
    # NOTIFY_SOCKET stayed in the environment, inherited by every process the server starts (ffmpeg, compiler
    # probes, inductor workers); systemd advises taking it out once read. The address is kept for STOPPING.
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"motif-lite-test-{os.getpid()}-{time.monotonic_ns()}"
    listener.bind("\0" + name)
    listener.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
    try:
        with InProcessServer(pipe, tmp_path / "data"):
            assert listener.recv(64) == b"READY=1"
            assert "NOTIFY_SOCKET" not in os.environ
        assert listener.recv(64) == b"STOPPING=1"
    finally:
        listener.close()
