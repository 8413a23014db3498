"""`docker stop` (SIGTERM) of the commands other than `run`: a container's first process (PID 1) gets no default
action for a signal it has no handler for, so `check` and `verify` ignored it until SIGKILL came 10 s later. They
handle it as `run` does now: `terminated (SIGTERM)` and exit code 143. A real signal to a real process, bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)")

WAIT_S = 120  # for the process to set its handler, and then to end: seconds on the tiny checkpoint


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (SigCgt of /proc/PID/status, a bit per signal)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.parametrize("command", [["check"], ["verify", "-W", "32", "-H", "32", "--video-frames", "1"]])
def test_sigterm_stops_check_and_verify_as_it_stops_run(shared_checkpoint, command):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "motif_lite", *command, "-m", str(shared_checkpoint[0])]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + WAIT_S
        # The signal is sent once the command handles it: before that, Python's default would end any process but
        # PID 1, and the test would pass without the handler.
        while not catches(process.pid, signal.SIGTERM):
            if process.poll() is not None or time.monotonic() > deadline:
                out, err = process.communicate(timeout=WAIT_S)
                pytest.fail(f"{command[0]} ended (or ran on) without a SIGTERM handler:\n{out}\n{err}")
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()  # no-op once it ended
    assert process.returncode == 128 + signal.SIGTERM, f"{out}\n{err}"
    assert "terminated (SIGTERM)" in err and "Traceback" not in err, err


def test_sigterm_while_verify_loads_the_pipelines_stops_it(shared_checkpoint):
    # The test above signals before any work; this one once verify says it is loading (torch and diffusers
    # importing, the pipelines reading their weights): a stop in the middle of the work, not only before it.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "motif_lite", "verify", "-W", "32", "-H", "32", "--video-frames", "1",
            "-m", str(shared_checkpoint[0])]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(WAIT_S, process.kill)  # a readline that never returns cannot hold the test
    watchdog.start()
    try:
        said = []
        while not (line := process.stderr.readline()).startswith("verify: loading both pipelines"):
            if not line:
                pytest.fail("verify ended without saying it was loading:\n" + "".join(said))
            said.append(line)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        watchdog.cancel()
        process.kill()  # no-op once it ended
    assert process.returncode == 128 + signal.SIGTERM, f"{out}\n{err}"
    assert "terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert "verdict" not in out, out  # stopped during the work, not after it
