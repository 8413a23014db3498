"""`motif-lite serve` as a separate process, as users run it: finished jobs and their files survive a restart
unchanged, SIGKILL mid-job leaves that job `failed` / `interrupted` while the queued ones run after the restart,
SIGTERM queues the running job again; 50 concurrent status polls while a job runs (p99 reported); the command's own
errors (missing extra, busy port, bad flags) as one-line messages before anything loads."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import RUNTIME_FLAGS, TINY, process_server, request, wait_for  # noqa: E402

from motif_lite import cli  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.server.job_record import COMPLETED, FAILED, INTERRUPTED, QUEUED  # noqa: E402
from motif_lite.server.jobs import JobStore  # noqa: E402

PROMPT = "a red fox runs through snow"
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1, negative_prompt="blurry")  # minutes: always stopped
# A server on the CPU refuses a job its measured speed puts over ~10 minutes, as LONG can be on a loaded machine;
# with --max-video it takes any job up to that size, as these tests need.
TAKES_LONG = ("--max-video", "48x32x9")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def create(server, **settings) -> dict:
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **settings})
    assert code == 200, video
    return video


def status(server, video_id: str) -> dict:
    code, video, _ = server.request("GET", f"/v1/videos/{video_id}")
    assert code == 200, video
    return video


def wait_status(server, video_id: str, wanted: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (v := status(server, video_id))["status"] == wanted and v, timeout, f"{video_id}: {wanted}")


def test_restart_keeps_finished_jobs_sigkill_interrupts_sigterm_requeues(checkpoint, tmp_path):
    data = tmp_path / "data"
    with process_server(checkpoint, data, *TAKES_LONG) as first:
        finished = create(first, **TINY)
        finished = wait_status(first, finished["id"], COMPLETED)
        video = first.request("GET", f"/v1/videos/{finished['id']}/content")[1]
        thumbnail = first.request("GET", f"/v1/videos/{finished['id']}/content?variant=thumbnail")[1]
        running = create(first, **LONG)
        queued = create(first, **TINY)
        wait_status(first, running["id"], "in_progress")
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL

    with process_server(checkpoint, data, *TAKES_LONG) as second:
        assert "1 failed as interrupted by a crash" in second.output()
        assert "guider/guider_config.json" in second.output()  # the defaults jobs get, with their sources
        assert status(second, finished["id"]) == finished  # the same object...
        assert second.request("GET", f"/v1/videos/{finished['id']}/content")[1] == video  # ...and the same files
        assert second.request("GET", f"/v1/videos/{finished['id']}/content?variant=thumbnail")[1] == thumbnail
        interrupted = status(second, running["id"])
        assert interrupted["status"] == FAILED and interrupted["error"]["code"] == INTERRUPTED
        wait_status(second, queued["id"], COMPLETED)  # queued before the kill, run after the restart
        listed = second.request("GET", "/v1/videos?order=asc")[1]["data"]
        assert [v["id"] for v in listed] == [finished["id"], running["id"], queued["id"]]
        requeued = create(second, **LONG)
        wait_status(second, requeued["id"], "in_progress")
        assert second.signal(signal.SIGTERM) == 0  # an orderly stop, asked for: no failure (systemctl stop)
        assert "stops after its current step" in second.output() and "queued again" in second.output()
        assert "Traceback" not in second.output()

    store = JobStore(data)
    try:
        assert store.get(requeued["id"]).status == QUEUED and store.get(running["id"]).status == FAILED
        files = sorted(p.name for p in store.videos.iterdir())
        assert files == sorted(f"{v['id']}{s}" for v in (finished, queued) for s in (".mp4", ".webp"))
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on Windows")
def test_a_hangup_stops_in_order_and_queues_the_running_job_again(checkpoint, tmp_path):
    # SIGHUP (the terminal of a foreground server closed) killed it at once: the running job then counted as crashed.
    with process_server(checkpoint, tmp_path / "data", *TAKES_LONG) as server:
        running = create(server, **LONG)
        wait_status(server, running["id"], "in_progress")
        assert server.signal(signal.SIGHUP) == 0
        assert "stops after its current step" in server.output() and "queued again" in server.output()
        assert server.output().rstrip().endswith("stopped")
    store = JobStore(tmp_path / "data")
    try:
        assert store.get(running["id"]).status == QUEUED
    finally:
        store.close()


def test_50_concurrent_status_polls_while_a_job_runs(checkpoint, tmp_path, record_property, capsys):
    # With a memory budget the server plans for --max-video and refuses larger videos.
    with process_server(checkpoint, tmp_path / "data", "--vram", "4", "--max-video", "48x32x9") as server:
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "size": "64x32"})
        assert code == 400 and "than the 48x32x9 this server planned its memory for" in error["error"]["message"]
        assert "Memory plan for 48x32x9" in server.output()
        video = create(server, **LONG)
        wait_status(server, video["id"], "in_progress")
        latencies: list[float] = []
        answers: list[tuple[int, str]] = []
        lock = threading.Lock()

        def poll(count: int = 10) -> None:
            for _ in range(count):
                start = time.perf_counter()
                code, body, _ = server.request("GET", f"/v1/videos/{video['id']}")
                with lock:
                    latencies.append(time.perf_counter() - start)
                    answers.append((code, body["status"]))

        threads = [threading.Thread(target=poll) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        # Every poll was answered while the job kept running: the API never waited for the worker.
        assert answers == [(200, "in_progress")] * 500
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        record_property("status_poll_p99_ms", round(p99, 1))
        with capsys.disabled():
            print(f"\n50 clients x 10 status polls while a job runs: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                  f"max {max(latencies) * 1000:.1f} ms")  # fmt: skip
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


@pytest.mark.parametrize(
    ("signum", "code", "last_line"), [(signal.SIGTERM, 0, "stopped"), (signal.SIGINT, 130, "interrupted")]
)
def test_the_port_answers_while_the_model_loads_and_a_stop_ends_the_load(signum, code, last_line, checkpoint, tmp_path,
                                                                         capsys, monkeypatch):  # fmt: skip
    # The port took connections only once the model had loaded: a readiness probe saw them refused for the whole load.
    from motif_lite import pipeline

    in_load = threading.Event()

    def slow_load(*args, **kwargs):
        in_load.set()
        time.sleep(60)  # a signal ends the sleep: it raises where the main thread is
        pytest.fail("the load went on after the signal")

    monkeypatch.setattr(pipeline, "load_pipeline", slow_load)
    # Python's own Ctrl-C handler, whatever this process inherited (a shell starts background jobs with SIGINT
    # ignored, and Python then installs none).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    seen = []

    def probe_then_stop() -> None:
        seen.append(wait_for(lambda: loading_health(port), 60, "/health to say loading"))
        seen.append(request(port, "GET", "/v1/models"))
        # Only once the main thread sleeps in the load: the port answers before, while the checks before loading
        # run, and a handler's exception that lands in a weakref callback the garbage collector runs there is
        # printed and dropped (seen once under CI's load).
        assert in_load.wait(60), "the load never started"
        time.sleep(0.2)
        os.kill(os.getpid(), signum)

    prober = threading.Thread(target=probe_then_stop, daemon=True)
    prober.start()
    flags = ["--data", str(tmp_path / "data"), "--port", str(port), *RUNTIME_FLAGS]
    try:
        assert cli.main(["serve", "-m", str(checkpoint), *flags]) == code
    finally:
        signal.signal(signal.SIGINT, inherited)
    prober.join(30)
    (health_code, health, _), (api_code, error, headers) = seen
    assert (health_code, health["status"]) == (503, "loading")
    assert (api_code, error["error"]["code"], headers["retry-after"]) == (503, "model_loading", "10")
    err = capsys.readouterr().err
    assert err.rstrip().endswith(last_line) and "Traceback" not in err, err
    with pytest.raises(ConnectionRefusedError):  # the port is closed again
        request(port, "GET", "/health")


def loading_health(port: int) -> tuple[int, dict, dict] | None:
    """/health's answer once the port answers, None before."""
    try:
        return request(port, "GET", "/health")
    except ConnectionRefusedError:
        return None


def test_missing_server_extra_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now raises ImportError
    assert cli.main(["serve"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "fastapi is not installed" in err and 'pip install -e ".[server]"' in err and "Traceback" not in err


def test_busy_port_fails_before_loading(tmp_path, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded the model"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["serve", "--port", str(port), "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and f"error: cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("below", ["", "jobs"])
def test_a_file_given_as_the_data_folder_is_named_a_file(below, tmp_path, capsys, monkeypatch):
    # The OS said "[Errno 17] File exists" (or "Not a directory" for a folder under the file).
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded the model"))
    file = tmp_path / "passwd"
    file.write_text("root:x:0:0\n")
    data = file / below if below else file
    assert cli.main(["serve", "--port", "0", "--data", str(data)]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"{file} is a file, not a folder; give --data a folder" in err and "Errno" not in err, err


def test_other_hosts_without_a_key_warn(tmp_path, capsys, monkeypatch):
    from motif_lite.errors import MotifLiteError
    from motif_lite.server import runner

    def refuse(host, port):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(runner, "bind", refuse)
    monkeypatch.delenv("MOTIF_LITE_API_KEY", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--data", str(tmp_path)]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0 without --api-key" in err, err
    # Not only the network: a page any of its users opens may point its name at the address (DNS rebinding).
    assert "a web page that one of them opens" in err and "give --api-key KEY" in err, err
    assert cli.main(["serve", "--host", "0.0.0.0", "--api-key", "k", "--data", str(tmp_path)]) == 2
    assert "warning" not in capsys.readouterr().err
    assert cli.main(["serve", "--data", str(tmp_path)]) == 2  # loopback: no warning
    assert "warning" not in capsys.readouterr().err
    assert cli.main(["serve", "--host", "localhost", "--data", str(tmp_path)]) == 2
    assert "warning" not in capsys.readouterr().err


def test_loopback_inside_a_container_says_the_port_mapping_cannot_reach_it(tmp_path, capsys, monkeypatch):
    # `docker run -p 8080:8080 ... motif-lite serve` listened on the container's 127.0.0.1: the mapping connects to
    # its own address, so every request from outside failed ("connection reset") without a word in the log.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.container import own_network_container
    from motif_lite.server import runner

    def refuse(host, port):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(runner, "bind", refuse)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # a pod's containers all have it
    assert cli.main(["serve", "--data", str(tmp_path)]) == cli.EXIT_USER_ERROR
    # Not where the pod uses the host's network (hostNetwork), which its marks cannot tell: the note allows for it.
    assert "note: in this Kubernetes container 127.0.0.1 is reachable from inside it only, unless the container " \
        "uses the host's network: a port mapping (docker run -p, a Service) cannot reach it; give --host 0.0.0.0" \
        in capsys.readouterr().err  # fmt: skip
    assert cli.main(["serve", "--host", "0.0.0.0", "--api-key", "k", "--data", str(tmp_path)]) == 2
    assert "note" not in capsys.readouterr().err
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert own_network_container({}, tmp_path) is None  # outside: nothing to say
    (tmp_path / ".dockerenv").touch()
    assert own_network_container({}, tmp_path) == "Docker"
    assert own_network_container({"container": "podman"}, tmp_path / "none") == "Podman"
    assert own_network_container({"APPTAINER_CONTAINER": "x.sif"}, tmp_path / "none") is None  # the host's network


@pytest.mark.parametrize("flag, variable", [("", None), ("  ", "k"), (None, "")])
def test_an_empty_api_key_is_refused_before_binding(flag, variable, tmp_path, capsys, monkeypatch):
    # `--api-key "$KEY"` with KEY unset (or MOTIF_LITE_API_KEY= ) served without any key, without a word on loopback.
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda host, port: pytest.fail("bound the port"))
    if variable is None:
        monkeypatch.delenv("MOTIF_LITE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("MOTIF_LITE_API_KEY", variable)
    key_flag = [] if flag is None else ["--api-key", flag]
    assert cli.main(["serve", *key_flag, "--data", str(tmp_path)]) == cli.EXIT_USER_ERROR
    source = "--api-key" if flag is not None else "$MOTIF_LITE_API_KEY"
    assert f"error: {source} is empty (an unset shell variable?)" in capsys.readouterr().err


def test_the_api_key_comes_from_the_flag_else_the_variable_without_surrounding_blanks():
    from motif_lite.cli.serve_flag_values import api_key_from

    variable = {"MOTIF_LITE_API_KEY": "from-env"}
    assert api_key_from("from-flag", variable) == "from-flag"
    assert api_key_from(None, variable) == "from-env"
    assert api_key_from(" sec ret\n", {}) == "sec ret"  # a request's token is compared stripped
    assert api_key_from(None, {}) is None


@pytest.mark.parametrize("key", ["pässwort", "key\twith-a-tab", "ключ"])
def test_a_key_no_client_can_send_is_refused_at_start(key):
    # A key with a character outside printable ASCII was taken: the SDK (httpx) and browsers cannot put it in a
    # header at all, and curl's UTF-8 bytes never matched it, so every request got 401 "incorrect API key".
    from motif_lite.cli.serve_flag_values import api_key_from

    with pytest.raises(MotifLiteError, match="printable ASCII") as refused:
        api_key_from(key, {})
    assert "openssl rand -hex 32" in str(refused.value)
    with pytest.raises(MotifLiteError, match=r"\$MOTIF_LITE_API_KEY .*printable ASCII"):
        api_key_from(None, {"MOTIF_LITE_API_KEY": key})
    assert api_key_from("a key, with spaces & punctuation!", {}) == "a key, with spaces & punctuation!"


def test_the_suite_never_sees_the_contributors_api_key():
    # tests/conftest.py's `private_caches`: with MOTIF_LITE_API_KEY exported in the shell (docs/server.md's way to
    # keep it out of `ps`), the server tests that send no key were refused and 5 of this file's tests failed.
    from motif_lite.cli.serve_flag_values import api_key_from

    assert api_key_from(None, os.environ) is None


def test_the_suite_runs_torch_on_one_thread_and_so_do_the_servers_it_starts():
    # tests/conftest.py's `one_torch_thread`: with torch's thread per core, a server's tiny jobs beside the test
    # process on a 2-core runner ran 2-7x slower (the restart test of this file alone took 76 s).
    import torch

    assert torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"  # what `motif-lite serve` processes inherit


@pytest.mark.parametrize(
    ("origin", "needle"),
    [  # copied from the address bar: it never matched a browser's Origin header, every preflight got 400
        ("http://app.example/", "got 'http://app.example/' (did you mean http://app.example?)"),
        ("https://app.example:8443/ui", "(did you mean https://app.example:8443?)"),
        ("app.example", "without a path or trailing slash, e.g. https://app.example.com, or * for any"),
        # Taken, yet never sent so: a browser's origin has its name in lower case and no default port.
        ("http://LocalHost:3000", "(did you mean http://localhost:3000?)"),
        ("https://app.example:443", "(did you mean https://app.example?)"),
        ("http://[::1]:80", "(did you mean http://[::1]?)"),
        ("http://app.example:http", "got 'http://app.example:http'"),  # was taken, a port that is none
        # Taken, yet never sent so: a browser writes a name in punycode, an address as the URL standard's examples
        # (https://url.spec.whatwg.org/#host-serializing: 127.1 is 127.0.0.1, IPv6 zeros compressed).
        ("https://bücher.example", "(did you mean https://xn--bcher-kva.example?)"),
        ("http://[0:0:0:0:0:0:0:1]:8000", "(did you mean http://[::1]:8000?)"),
        ("http://[::ffff:127.0.0.1]", "(did you mean http://[::ffff:7f00:1]?)"),
        ("http://127.1:3000", "(did you mean http://127.0.0.1:3000?)"),
        ("http://app.123", "got 'http://app.123'"),  # a browser reads it as an IPv4 address, which it is not
        # A browser maps a name before it writes it (UTS 46): an input method's ideographic full stop is a dot, its
        # full-width letters and digits the plain ones; a percent escape is decoded (that one was taken).
        ("http://bücher\u3002example", "(did you mean http://xn--bcher-kva.example?)"),
        ("https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com:8443", "(did you mean https://example.com:8443?)"),
        ("http://\uff11\uff12\uff17.0.0.1:3000", "(did you mean http://127.0.0.1:3000?)"),
        ("http://b%C3%BCcher.example", "(did you mean http://xn--bcher-kva.example?)"),
        # The messages' `--cors-origin '*'` pasted into cmd, which passes the single quotes on
        ("'*'", "(did you mean *? cmd keeps single quotes in the value: give it without them)"),
        ("'http://localhost:3000'", "(did you mean http://localhost:3000? cmd keeps single quotes in the value"),
        # A file's or a sandboxed frame's, which any site can send: what lets such a page in instead.
        ("null", "give * with --api-key, and the page the key"),
    ],
)
def test_a_cors_origin_a_browser_never_sends_is_refused_before_binding(origin, needle, tmp_path, capsys, monkeypatch):
    from motif_lite.server import runner

    # It was a bare "error: --cors-origin ..." from serve's main; now argparse's, with serve's usage, as --port's.
    monkeypatch.setattr(runner, "bind", lambda host, port: pytest.fail("bound the port"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--cors-origin", origin, "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage: motif-lite serve" in err, err
    assert "motif-lite serve: error: argument --cors-origin: must be an origin as a browser sends it" in err, err
    assert needle in err


def test_cors_origins_as_browsers_send_them_are_taken():
    from motif_lite.cli.serve_flag_values import cors_origin

    origins = ("*", "http://localhost:3000", "https://app.example.com", "http://[::1]:8080", "https://app.example:80")
    # a name in punycode, as a browser sends it; an extension's origin, whose host a browser keeps as it is
    origins += ("https://xn--bcher-kva.example", "chrome-extension://abcdefghijklmnopabcdefghijklmnop")
    # a dev server's, this machine's over IPv6, another port, a LAN address, a name with `ß` (kept by UTS 46)
    origins += ("http://localhost:5173", "https://[::1]", "https://app.example:8443", "http://192.168.1.20:3000")
    origins += ("https://xn--fa-hia.example",)
    assert [cors_origin(text) for text in origins] == list(origins)


def test_the_served_model_is_named_by_its_checkpoint_and_gguf_variant():
    from motif_lite.server.runner import served_model_name

    assert served_model_name("Motif-Technologies/Motif-Video-2B", None) == "Motif-Video-2B"
    assert served_model_name("./ckpt/Motif-Video-2B/", None) == "Motif-Video-2B"
    gguf = "ggufs/motif-video-2b-Q4_K_M.gguf"
    assert served_model_name("Motif-Technologies/Motif-Video-2B", gguf) == "Motif-Video-2B:motif-video-2b-Q4_K_M"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--max-video", "1280x736"), "argument --max-video: must look like 1280x736x121"),
        (("--max-queue", "0"), "argument --max-queue: must be a positive integer, got 0"),
        (("--max-queue", "1.5"), "argument --max-queue: must be a whole number, got '1.5'"),
        (("--max-upload-mb", "0"), "argument --max-upload-mb: must be a number of MiB > 0, got 0"),
        (("--max-video-upload-mb", "0.5"), "argument --max-video-upload-mb: must be 1 to 4096 MiB (a 5-second 720p"),
        (("--max-video-upload-mb", "5000"), "argument --max-video-upload-mb: must be 1 to 4096 MiB"),
        (("--max-video-upload-mb", "x"), "argument --max-video-upload-mb: must be a number of MiB > 0, got x"),
        (("--step-cache", "-0.05"), "argument --step-cache: must be a finite number >= 0 (e.g. 0.05), got -0.05"),
        # run's -p, out of habit: it was "unrecognized arguments: -p a fox".
        (("-p", "a", "fox"), "argument -p: the server takes no prompt: each job brings its own, in POST /v1/videos"),
        (("-p",), "argument -p: the server takes no prompt"),
        (("fox",), "error: unrecognized arguments: fox\n"),  # not "a prompt goes after -p": serve takes none
    ],
)
def test_bad_flags_are_refused_as_the_flags_are_read(flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error, before the command starts
        cli.main(["serve", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == cli.EXIT_USER_ERROR and needle in err and "Traceback" not in err, err


def test_serve_flag_values_at_their_bounds():
    import argparse

    from motif_lite.cli.flag_numbers import positive_int
    from motif_lite.cli.serve_flag_values import parse_max_video, port_number, positive_mib, video_upload_mib

    assert [port_number(text) for text in ("0", "8080", "65535")] == [0, 8080, 65535]  # 0: any free port
    assert positive_int("1") == 1 and positive_mib("0.5") == 0.5  # half a MiB is a size
    assert [video_upload_mib(text) for text in ("1", "100", "4096")] == [1, 100, 4096]
    assert parse_max_video("1280x736x121") == (1280, 736, 121)  # width, height, frames
    assert parse_max_video(" 48x32x9 ") == (48, 32, 9)
    refused = [(port_number, "65536"), (port_number, "http"), (positive_int, "0"), (positive_mib, "-1")]
    refused += [(video_upload_mib, text) for text in ("0.99", "4097", "inf", "nan")]
    refused += [(parse_max_video, text) for text in ("0x736x121", "1280x0x121", "1280x736x0", "1280x736x121x2")]
    for parse, text in refused:
        with pytest.raises(argparse.ArgumentTypeError, match="must "):
            parse(text)


def test_a_max_video_without_its_frames_or_in_wans_spelling_says_the_one_meant():
    # Were only "must look like 1280x736x121": a size alone (as run's --size hint and the server's size take it).
    import argparse

    from motif_lite.cli.serve_flag_values import parse_max_video

    for text, meant in (
        ("1280x720", "; with the frames too, e.g. 1280x720x121 (121 frames, the official length)"),
        ("720p", "; with the frames too, e.g. 1280x720x121 ("),
        ("1280*720*121", "; written 1280x720x121"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match="got .*" + re.escape(meant)):
            parse_max_video(text)
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse_max_video("1280x0x121")
    assert str(refused.value).endswith("got '1280x0x121'")  # no size of a zero side is offered


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_fails_before_binding(port, tmp_path, capsys, monkeypatch):
    # 99999 used to start the server on port 34463 (99999 % 65536), with no word about it; -1 gave a resolver error.
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound a port"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--port", port, "--data", str(tmp_path / "data")])
    assert exit_info.value.code == cli.EXIT_USER_ERROR
    assert f"error: argument --port: must be 0-65535 (0 = any free port), got {port}" in capsys.readouterr().err


def test_kernels_the_device_cannot_run_fail_before_loading(checkpoint, tmp_path, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded"))
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--kernels", "triton"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags]) == cli.EXIT_USER_ERROR
    assert "error: --kernels triton needs a CUDA device, but the device is cpu" in capsys.readouterr().err


def test_missing_lora_fails_before_binding_or_planning(tmp_path, capsys, monkeypatch):
    from motif_lite import memory_plan
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    monkeypatch.setattr(memory_plan, "plan_generation", lambda *a, **kw: pytest.fail("planned"))
    missing = tmp_path / "no.safetensors"
    assert cli.main(["serve", "--data", str(tmp_path / "data"), "--lora", f"{missing}:0.5"]) == cli.EXIT_USER_ERROR
    assert f"error: LoRA file not found: {missing}" in capsys.readouterr().err


def test_an_unusual_lora_strength_of_serve_is_warned_of_before_anything_loads(tmp_path, capsys, monkeypatch):
    # `serve --lora style.safetensors:80` (a typo for 0.8) was taken without a word, as run's was.
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    style = tmp_path / "style.safetensors"
    style.write_bytes(b"a LoRA")
    flags = ["--data", str(tmp_path / "data"), "--lora", f"{style}:80", "--lora-dir", str(tmp_path / "none")]
    assert cli.main(["serve", *flags]) == cli.EXIT_USER_ERROR  # the missing --lora-dir stops it
    err = capsys.readouterr().err
    assert err.count(f"warning: LoRA {style}: strength 80 is far above the usual 0-2") == 1, err


@pytest.mark.parametrize("vram", ["-1", "0", "nan", "inf", "lots"])
def test_vram_must_be_a_positive_number(capsys, vram):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--vram", vram])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--vram: must be a number of GiB > 0, got {vram}" in err


def test_plans_from_the_sources_preflight_found(checkpoint, tmp_path, capsys, monkeypatch):
    # As for run: every check (and any download) first, then the plan from those files, then the load from them.
    from motif_lite import memory_plan
    from motif_lite import preflight as checks
    from motif_lite.errors import MotifLiteError

    calls = []
    preflight = checks.preflight

    def checked(*args, **kwargs):
        found = preflight(*args, **kwargs)
        calls.append(("preflight", found))
        return found

    def plan(request, model, **kwargs):
        calls.append(("plan", (model, kwargs["device"])))
        raise MotifLiteError("stop here")

    monkeypatch.setattr(checks, "preflight", checked)
    monkeypatch.setattr(memory_plan, "plan_generation", plan)
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--vram", "4"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags]) == cli.EXIT_USER_ERROR
    assert "error: stop here" in capsys.readouterr().err
    assert [name for name, _ in calls] == ["preflight", "plan"] and calls[1][1] == calls[0][1]


def test_serve_sets_the_allocator_config_as_run_does(monkeypatch, tmp_path, allocator_config_seen):
    # The memory plan assumes growable allocator segments; a value the user set wins.
    missing_lora = ["serve", "--lora", str(tmp_path / "none.safetensors")]  # refused once the command starts
    assert cli.main(missing_lora) == cli.EXIT_USER_ERROR
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "backend:native")
    assert cli.main(missing_lora) == cli.EXIT_USER_ERROR
    assert allocator_config_seen == ["expandable_segments:True", "backend:native"]


def test_missing_lora_is_a_one_line_error(checkpoint, tmp_path, capsys):
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--dtype", "fp32"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags, "--lora", str(tmp_path / "no.safetensors:0.5")]) == 2
    err = capsys.readouterr().err
    assert f"error: LoRA file not found: {tmp_path / 'no.safetensors'}" in err and "Traceback" not in err


def test_speed_and_memory_flags_reach_the_plan_and_the_loaded_model(checkpoint, tmp_path, capsys, monkeypatch):
    # The model's load-time settings are run's flags, with run's meanings, applied once for every job.
    from motif_lite import memory_plan, pipeline
    from motif_lite.errors import MotifLiteError

    seen = {}

    def plan(request, model, **kwargs):
        seen["plan"] = kwargs
        return pipeline_plan(request, model, **kwargs)

    def load(sources, **kwargs):
        seen["load"] = kwargs
        raise MotifLiteError("stop here")

    pipeline_plan = memory_plan.plan_generation
    monkeypatch.setattr(memory_plan, "plan_generation", plan)
    monkeypatch.setattr(pipeline, "load_pipeline", load)
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--ram", "64"]
    flags += ["--max-video", "64x64x9"]
    speed = ["--attention", "int8", "--compile", "--attention-backend", "sdpa", "--step-cache", "0.05"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags, *speed, "--no-batch-guidance"]) == cli.EXIT_USER_ERROR
    assert "error: stop here" in capsys.readouterr().err
    assert seen["plan"]["ram_gib"] == 64 and seen["plan"]["attention"] == "int8" and seen["plan"]["step_cache"]
    assert seen["plan"]["batch_guidance"] is False
    wanted = dict(attention="int8", compile=True, attention_backend="sdpa", step_cache=0.05, batch_guidance=False)
    assert {key: seen["load"][key] for key in wanted} == wanted


def test_batch_guidance_without_room_in_the_plan_is_said_as_run_says_it(checkpoint, tmp_path, capsys, monkeypatch):
    # serve passed --batch-guidance to load_pipeline as is, whose warning speaks Python (batch_guidance=True) and
    # gives no --vram; run's note (planned_batch_guidance) says the flag and the budget that batches them.
    import dataclasses

    from motif_lite import memory_plan, pipeline
    from motif_lite.errors import MotifLiteError

    seen = {}

    def one_row(request, model, **kwargs):  # a plan with room for one prediction per forward
        return dataclasses.replace(pipeline_plan(request, model, **kwargs), cfg_batch=1)

    def load(sources, **kwargs):
        seen.update(kwargs)
        raise MotifLiteError("stop here")

    pipeline_plan = memory_plan.plan_generation
    monkeypatch.setattr(memory_plan, "plan_generation", one_row)
    monkeypatch.setattr(pipeline, "load_pipeline", load)
    flags = ["--data", str(tmp_path / "data"), "--port", "0", *RUNTIME_FLAGS, "--vram", "4", "--max-video", "48x32x9"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags, "--batch-guidance"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "note: --batch-guidance does not fit the memory plan" in err and "batch_guidance=True" not in err, err
    assert seen["batch_guidance"] is False  # refused once, by the note: load_pipeline has nothing left to warn of


def test_the_loaded_server_keeps_its_memory_plan_for_the_advice_of_a_job_out_of_memory(checkpoint, capsys):
    # The worker words a job's out-of-memory failure with the figures of the plan the model loaded with
    # (tests/test_server.py fakes one): the plan made for --max-video, with serve's --vram.
    from motif_lite.cli import serve_loading
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.server.app import ServerConfig

    args = cli.build_parser().parse_args(["serve", "-m", str(checkpoint), *RUNTIME_FLAGS, "--vram", "4",
                                          "--max-video", "48x32x9"])  # fmt: skip
    args.weights = take_weight_flags(args)
    _, loaded = serve_loading.load_served_pipeline(args, ServerConfig("tiny", max_video=args.max_video), [])
    largest = loaded.planned.request
    assert (largest.width, largest.height, largest.frames, loaded.planned.vram_gib) == (48, 32, 9, 4)
    assert loaded.plan is not None and loaded.plan.budget_bytes == 4 * 2**30
    assert "Memory plan for 48x32x9" in capsys.readouterr().err  # the plan it printed


def served(checkpoint: Path, *flags: str):
    """(the pipeline, the loaded ServerConfig) of `motif-lite serve -m checkpoint` with the runtime flags and
    `flags`, loaded as the server loads it."""
    from motif_lite.cli import serve_loading
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.server.app import ServerConfig

    args = cli.build_parser().parse_args(["serve", "-m", str(checkpoint), *RUNTIME_FLAGS, *flags])
    args.weights = take_weight_flags(args)
    return serve_loading.load_served_pipeline(args, ServerConfig("tiny", max_video=args.max_video), [])


def test_a_server_that_takes_images_plans_image_to_video(checkpoint, tmp_path):
    # Its plan was made for text-to-video, so every image-to-video job was told it may run out of device memory.
    import PIL.Image

    from motif_lite.request import GenerationRequest

    pipe, loaded = served(checkpoint, "--vram", "4", "--max-video", "48x32x5")
    assert loaded.image_to_video and loaded.plan.image and loaded.planned.request.conditions_on_image
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (48, 32), "orange").save(image)
    job = GenerationRequest("a fox", width=48, height=32, frames=5, steps=1, image=image, output=tmp_path / "a.mp4")
    notes = pipe.generate(job, keep_latents=False).notes
    assert not [note for note in notes if "the memory plan was made for" in note], notes


def test_a_server_whose_checkpoint_takes_no_images_plans_text_to_video(checkpoint, tmp_path):
    import json
    import shutil

    text_only = tmp_path / "text-only"
    shutil.copytree(checkpoint, text_only, ignore=shutil.ignore_patterns("feature_extractor"))
    index = json.loads((text_only / "model_index.json").read_text())
    del index["feature_extractor"]  # a folder model_index.json lists is required
    (text_only / "model_index.json").write_text(json.dumps(index))
    _, loaded = served(text_only, "--vram", "4", "--max-video", "48x32x5")
    assert not loaded.image_to_video and not loaded.plan.image
    assert not loaded.planned.request.starts_from_frame


def test_out_of_memory_while_the_server_loads_gives_the_operators_figures(checkpoint, tmp_path, capsys, monkeypatch):
    # It was the advice without figures, where a job's out-of-memory error names the plan and the next --vram.
    import torch

    from motif_lite import pipeline

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(pipeline, "load_pipeline", out_of_memory)
    flags = ["--data", str(tmp_path / "data"), "--port", "0", *RUNTIME_FLAGS, "--vram", "4", "--max-video", "48x32x9"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags]) == cli.EXIT_OUT_OF_MEMORY
    err = capsys.readouterr().err
    said = "the server's memory plan for videos up to 48x32x9 (1 of "
    assert said in err and "had a budget of 4.00 GiB (--vram)" in err and "Traceback" not in err, err
    assert "Restart the server with " in err, err


def test_a_missing_text_encoder_gguf_fails_before_loading(checkpoint, tmp_path, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded the model"))
    missing = tmp_path / "te.gguf"
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--text-encoder-gguf", str(missing)]
    assert cli.main(["serve", "-m", str(checkpoint), *flags]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_the_banner_names_the_text_encoder_gguf(checkpoint, tmp_path, capsys, monkeypatch):
    # It said "loading CHECKPOINT ..." and its settings table "text encoder checkpoint T5Gemma2", not the file.
    from motif_lite.cli import serve_loading
    from motif_lite.errors import MotifLiteError
    from motif_lite.quantize.cli import main as quantize_main

    def stop_here(*args, **kwargs):
        raise MotifLiteError("stop here")

    gguf = tmp_path / "te-Q8_0.gguf"
    assert quantize_main([str(checkpoint), "--component", "text_encoder", "-o", str(gguf), "--type", "Q8_0",
                          "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    monkeypatch.setattr(serve_loading, "cpu_time_limit", stop_here)  # after the banner: the load fails there
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--dtype", "fp32"]
    assert cli.main(["serve", "-m", str(checkpoint), *flags, "--text-encoder-gguf", str(gguf)]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"loading {checkpoint} with {gguf} ..." in err
    assert "\ntext encoder: te-Q8_0.gguf (Q8_0, " in err and "error: stop here" in err


def test_the_banner_names_the_servers_crf(checkpoint, tmp_path, capsys, monkeypatch):
    # The settings table holds no crf (an encoding option): the banner says the jobs' default when --crf gave one.
    from motif_lite.cli import serve_loading
    from motif_lite.errors import MotifLiteError

    def stop_here(*args, **kwargs):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(serve_loading, "cpu_time_limit", stop_here)  # after the banner
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--dtype", "fp32"]
    for crf in ("28", "0"):
        assert cli.main(["serve", "-m", str(checkpoint), *flags, "--crf", crf]) == cli.EXIT_USER_ERROR
        assert f"\ncrf: {crf} for every job that gives no crf of its own\n" in capsys.readouterr().err
    assert cli.main(["serve", "-m", str(checkpoint), *flags]) == cli.EXIT_USER_ERROR
    assert "crf:" not in capsys.readouterr().err


def test_a_cpu_server_with_max_video_checks_sizes_not_times(checkpoint, tmp_path, capsys, monkeypatch):
    # On the CPU the time limit stands in for --max-video; with --max-video the operator chose the bound, and a job
    # within it is not refused for its estimated time.
    from motif_lite.server.runner import VideoServer

    loaded = []
    monkeypatch.setattr(VideoServer, "serve", lambda self, sock, load: loaded.append(load()[1]))  # load, then stop
    flags = ["--port", "0", "--device", "cpu", "--dtype", "fp32", "--kernels", "torch"]
    said = []
    for data, max_video in (("a", []), ("b", ["--max-video", "48x32x5"])):
        assert cli.main(["serve", "-m", str(checkpoint), "--data", str(tmp_path / data), *flags, *max_video]) == 0
        said.append(capsys.readouterr().err)
    assert [config.too_long is not None for config in loaded] == [True, False]
    assert loaded[1].max_video == (48, 32, 5)
    # The banner says the time limit, and how to lift it, where it applies: not first to the client it refuses.
    limit = "\njobs estimated over 10 minutes on this CPU are refused (the CPU is meant for tests); restart with " \
        "--max-video WxHxF to accept videos up to that size whatever they take\n"  # fmt: skip
    assert [limit in err for err in said] == [True, False], said[0]
    # The banner's settings table gives the official 1280x736x121; a job that names no size gets 48x32x5 here.
    err = said[1]
    assert "\njobs by default: no size given: 48x32, the largest this server allows (its --max-video)" in err
    assert "\njobs by default: no length given: 5 frames, the most this server allows" in err
    assert err.count("jobs by default:") == 2  # said by the server with --max-video only


def test_serve_reads_the_gguf_files_header_once(shared_checkpoint_and_gguf, tmp_path, monkeypatch):
    # serve read the --gguf file's header as it started for its early check, the model's checks, the memory plan's
    # sizes, the --lora check and the load: once now, handed along, and not held (the file memory-mapped) once the
    # model is loaded.
    import torch
    from safetensors.torch import save_file

    from motif_lite.server.runner import VideoServer
    from motif_lite.weights import gguf_file

    root, gguf = shared_checkpoint_and_gguf
    out_features, in_features = gguf_file.read_gguf(gguf).tensors["transformer_blocks.0.attn.to_q.weight"].shape
    lora, layer = tmp_path / "lora.safetensors", "transformer.transformer_blocks.0.attn.to_q"
    down, up = torch.ones(2, in_features), torch.ones(out_features, 2)
    save_file({f"{layer}.lora_A.weight": down, f"{layer}.lora_B.weight": up}, lora)
    reads = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(path) or read_header(path))
    loaded = []
    monkeypatch.setattr(VideoServer, "serve", lambda self, sock, load: loaded.append(load()))  # load, then stop
    flags = ["--port", "0", *RUNTIME_FLAGS, "--vram", "4", "--max-video", "48x32x5", "--lora", str(lora)]
    assert cli.main(["serve", "-m", str(root), "--gguf", str(gguf), "--data", str(tmp_path / "data"), *flags]) == 0
    assert reads == [gguf]
    ((pipe, config),) = loaded
    assert config.plan is not None and pipe.loras.files  # the plan's sizes and the LoRA's check used the header read
    assert pipe.sources.gguf_header is None and pipe._transformer_recipe.sources.gguf_header is None
    assert config.planned.sources.gguf_header is None


@pytest.mark.parametrize("origin", ["NULL", "Null", " null"])
def test_the_null_origin_in_any_case_is_told_what_lets_such_a_page_in(origin):
    # `--cors-origin NULL` is the same null a file's page sends: told what lets it in, not only an origin's form.
    from motif_lite.cli.serve_flag_values import cors_origin

    with pytest.raises(argparse.ArgumentTypeError, match="give \\* with --api-key, and the page the key"):
        cors_origin(origin)


@pytest.mark.parametrize(
    ("origin", "meant"),
    [
        ("http://%41pp.example", "http://app.example"),  # an escaped capital: decoded, then in lower case
        ("http://127.1.:3000", "http://127.0.0.1:3000"),  # an address with a trailing dot: still an address
    ],
)
def test_a_cors_origin_is_mapped_as_a_browser_maps_it_after_decoding_and_before_its_trailing_dot(origin, meant):
    from motif_lite.cli.serve_flag_values import cors_origin

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"(did you mean {meant}?)")):
        cors_origin(origin)


def test_a_max_video_of_the_smallest_size_is_taken_and_one_pixel_less_is_not():
    from motif_lite.cli.serve_flag_values import parse_max_video
    from motif_lite.request import SIZE_MULTIPLE

    # The smallest video there is (one multiple a side) may be the largest a server takes; a side under it is none.
    smallest = f"{SIZE_MULTIPLE}x{SIZE_MULTIPLE}x1"
    assert parse_max_video(smallest) == (SIZE_MULTIPLE, SIZE_MULTIPLE, 1)
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be at least {SIZE_MULTIPLE}x{SIZE_MULTIPLE} "):
        parse_max_video(f"{SIZE_MULTIPLE - 1}x{SIZE_MULTIPLE}x1")
