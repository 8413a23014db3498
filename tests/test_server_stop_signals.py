"""`motif-lite serve` as a separate process, stopped by SIGTERM or SIGHUP (`docker stop`, `systemctl stop`, a closed
terminal) at each moment of its life: during the checks before the port is bound, while the model loads, once it
serves with no job. Each stop is in order: the last line `stopped`, exit code 0 (docs/server.md, "Exit codes"). A
running job's stop is test_server_process.py's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import RUNTIME_FLAGS, process_server, wait_for  # noqa: E402

STOP_WAIT = 60  # seconds a stopped server may take to end before the test fails


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def start_serve(checkpoint: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "motif_lite", "serve", "-m", str(checkpoint), "--data", str(tmp_path / "data"),
               *RUNTIME_FLAGS, "--port", "0"]  # fmt: skip
    with open(log, "w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log


def stopped_in_order(process: subprocess.Popen, log: Path, signum: int) -> str:
    """Send `signum`, wait for the end (bounded), and check it was an orderly stop; -> the log."""
    process.send_signal(signum)
    try:
        code = process.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_WAIT)
        pytest.fail(f"still running {STOP_WAIT} s after {signal.Signals(signum).name}:\n{log.read_text()}")
    output = log.read_text()
    assert code == 0, f"exit code {code} after {signal.Signals(signum).name}:\n{output}"
    assert output.rstrip().endswith("stopped") and "Traceback" not in output, output
    return output


def torch_loaded(pid: int) -> bool:
    """Whether process `pid` has torch's library mapped: it is importing torch, as the checks before the port is
    bound do (the device, the GGUF files)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc to see torch being imported")
@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)])
def test_a_stop_during_the_checks_before_the_port_is_bound_is_in_order(signum, checkpoint, tmp_path):
    # The handler was set only once the port was bound: a signal during the checks (seconds: torch is imported)
    # killed the server (-15), and a container's first process ignored it until docker's SIGKILL.
    process, log = start_serve(checkpoint, tmp_path)
    try:
        wait_for(lambda: process.poll() is not None or torch_loaded(process.pid), 60, "torch to load", interval=0.01)
        output = stopped_in_order(process, log, signum)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_WAIT)
    assert "serving" not in output, output  # stopped before the port was bound, as meant


def test_a_stop_while_the_model_loads_is_in_order(checkpoint, tmp_path):
    process, log = start_serve(checkpoint, tmp_path)
    try:
        wait_for(lambda: process.poll() is not None or "serving" in log.read_text(), 60, "serving", interval=0.01)
        stopped_in_order(process, log, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_WAIT)


def test_a_stop_of_a_ready_server_without_a_job_is_in_order(checkpoint, tmp_path):
    with process_server(checkpoint, tmp_path / "data") as server:
        started = time.monotonic()
        assert server.signal(signal.SIGTERM, timeout=STOP_WAIT) == 0, server.output()
        assert time.monotonic() - started < 10, "an idle server waits for no step"
        assert server.output().rstrip().endswith("stopped") and "Traceback" not in server.output()


class StubbornServer:
    """What `ServerStops` sees of the server: whether the model has loaded, and the stops asked for."""

    def __init__(self, loaded: bool) -> None:
        self.loaded, self.stops = loaded, []

    def stop(self, signum: int) -> None:
        self.stops.append(signum)


def test_only_the_first_signal_interrupts_and_one_whose_interruption_was_lost_stops_the_server_as_it_starts():
    from motif_lite.cli.serve_stops import ServerStops
    from motif_lite.stopping import Terminated

    stops = ServerStops()
    with pytest.raises(Terminated):  # during the checks: raised where the main thread is
        stops(signal.SIGTERM, None)
    loading = StubbornServer(loaded=False)
    with pytest.raises(Terminated):  # that Terminated lost (a garbage collector's callback drops it): said again
        stops.serving(loading)
    assert loading.stops == [signal.SIGTERM]
    stops(signal.SIGTERM, None)  # a second signal asks for the same stop, without interrupting the stopping
    assert loading.stops == [signal.SIGTERM, signal.SIGTERM]

    loaded = StubbornServer(loaded=True)
    stops = ServerStops()
    stops.serving(loaded)
    stops(signal.SIGTERM, None)  # loaded: the server stops in order, nothing is raised
    assert loaded.stops == [signal.SIGTERM]


def test_a_second_signal_before_the_server_exists_leaves_the_stop_the_first_ones():
    # SIGHUP (the terminal closed), then SIGTERM, during the checks: the server is stopped for the first, as
    # `VideoServer.stop` keeps the first signal that asked.
    from motif_lite.cli.serve_stops import ServerStops
    from motif_lite.stopping import Terminated

    stops = ServerStops()
    with pytest.raises(Terminated):
        stops(signal.SIGHUP, None)
    stops(signal.SIGTERM, None)  # not the first: nothing raised
    loading = StubbornServer(loaded=False)
    with pytest.raises(Terminated) as raised:
        stops.serving(loading)
    assert (loading.stops, raised.value.signum) == ([signal.SIGHUP], signal.SIGHUP)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")
def test_a_stop_signal_the_server_was_started_ignoring_stays_ignored():
    # `nohup motif-lite serve`: the end of the SSH session (SIGHUP) must not stop it; SIGTERM still stops in order.
    from motif_lite.cli.serve_stops import ServerStops, stop_in_order_on_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_in_order_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert isinstance(signal.getsignal(signal.SIGTERM), ServerStops)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


# The reviewer's case: Slurm and the launcher can deliver a stop signal twice, moments apart. The second lands while
# the first one's handler is inside `VideoServer.stop`; where that held a lock (a threading.Event's, as the stop's
# flag once was), the handler run again on the same thread waits for it: the server's main thread hangs. The second
# signal is sent at the moment the flag's lock is held, if it has one, else as the first handler sets it.
SECOND_SIGNAL_INSIDE_STOP = """
import os, signal, threading, types
from motif_lite.cli.serve_stops import ServerStops
from motif_lite.server.app import ServerConfig, ServerState
from motif_lite.server.runner import VideoServer

state = ServerState(ServerConfig(model_name="motif"))
http = types.SimpleNamespace(should_exit=False)
server = types.SimpleNamespace(stop_signal=None, state=state, http=http, loaded=True)
server.stop = types.MethodType(VideoServer.stop, server)
stops = ServerStops()
stops.server = server
signal.signal(signal.SIGTERM, stops)
sent = []

def second_signal():
    if not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # a few bytecodes: the handler runs here

if isinstance(state.stopping, threading.Event):
    condition, notify_all = state.stopping._cond, state.stopping._cond.notify_all
    condition.notify_all = lambda: (second_signal(), notify_all())  # runs with the Event's lock held
threading.Timer(10, lambda: (print("hung", flush=True), os._exit(1))).start()
os.kill(os.getpid(), signal.SIGTERM)
sum(range(1000))
second_signal()
sum(range(1000))
print("stopped by", signal.Signals(server.stop_signal).name, "exit asked:", server.http.should_exit, flush=True)
os._exit(0)
"""


def test_a_second_stop_signal_inside_the_first_ones_stop_does_not_hang_the_server():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_INSIDE_STOP], capture_output=True, text=True, timeout=60)
    assert done.stdout == "stopped by SIGTERM exit asked: True\n", (done.stdout, done.stderr)
