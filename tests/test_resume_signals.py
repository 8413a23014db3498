"""A run on a remote machine whose SSH session drops: `nohup motif-lite run ...` must go on, and a run whose
terminal hung up must still keep its state and exit with 129. Tiny checkpoint, CPU."""

from __future__ import annotations

import errno
import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.io.latents import read_latents

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")

SIZE = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32", "-s", "3"]


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


class HungUpTerminal(io.TextIOBase):
    """stderr once the terminal is gone: every write fails as a hung-up tty's does (EIO)."""

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")


def run_cli(checkpoint, output, capsys) -> tuple[int, str]:
    args = ["run", "-m", str(checkpoint), "-p", "a red fox", *SIZE, "-o", str(output)]
    code = cli.main([*args, "--device", "cpu", "--kernels", "torch", "--yes"])
    return code, capsys.readouterr().err


def send_at_step(monkeypatch, step: int, then=lambda: None) -> None:
    """SIGHUP to this process as sampling step `step` finishes, after `then()`."""

    def hang_up(self, stage, done, total):
        if stage == "denoise" and done == step:
            then()
            signal.raise_signal(signal.SIGHUP)

    monkeypatch.setattr("motif_lite.progress.ProgressBars.__call__", hang_up)


@pytest.fixture
def sighup_restored():
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


def test_a_run_under_nohup_outlives_the_hangup(checkpoint, tmp_path, capsys, monkeypatch, sighup_restored):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does before it starts the command
    send_at_step(monkeypatch, 2)
    code, err = run_cli(checkpoint, tmp_path / "fox.mp4", capsys)
    assert code == 0, err
    assert (tmp_path / "fox.mp4").is_file()
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_a_run_whose_terminal_hung_up_keeps_its_state_and_exits_129(
    checkpoint, tmp_path, capsys, monkeypatch, sighup_restored
):
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    send_at_step(monkeypatch, 2, then=lambda: monkeypatch.setattr(sys, "stderr", HungUpTerminal()))
    code, _ = run_cli(checkpoint, tmp_path / "fox.mp4", capsys)
    assert code == 128 + signal.SIGHUP
    assert read_latents(tmp_path / "fox.latents.safetensors").progress == (2, 4)


FINISHED_THEN_SIGNAL = """
import os, signal, sys
from motif_lite import cli
cli.main = lambda argv=None: 0  # the command finished: the video is written
real_exit = sys.exit
def exiting(code):  # a preemption or a hangup on the way out, as while Python tears torch down
    signal.raise_signal(signal.{name})
    real_exit(code)
sys.exit = exiting
cli.entry()
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_after_the_command_finished_keeps_its_exit_status(name):
    script = FINISHED_THEN_SIGNAL.replace("{name}", name)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
