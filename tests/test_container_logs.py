"""A container's output goes to a log (`docker run` without `-t`, `kubectl logs`): no bar there is redrawn with
carriage returns, which make one long line of every redraw. transformers' "Loading weights" bar (the bf16 text
encoder) and Hugging Face's download bars are the libraries' own; our stages write whole lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from motif_lite import cli
from motif_lite.cli.common import library_bars_kept_out_of_logs


@pytest.fixture
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]


def tiny_run(checkpoint: Path, output: Path) -> int:
    return cli.main(["run", "-m", str(checkpoint), "-p", "a fox", "-W", "32", "-H", "32", "--video-frames", "5",
                     "--steps", "2", "-o", str(output)])  # fmt: skip


def test_a_run_logged_to_a_file_writes_no_carriage_returns(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    assert tiny_run(checkpoint, tmp_path / "fox.webp") == 0
    err = capsys.readouterr().err
    assert "denoise: 100%" in err  # our own stage lines are there
    assert "\r" not in err, err
    assert not are_progress_bars_disabled()  # as it was before: a program calling main keeps its bars


def test_hf_hub_disable_progress_bars_set_to_0_keeps_the_libraries_bars(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    assert tiny_run(checkpoint, tmp_path / "fox.webp") == 0
    assert "\rLoading weights" in capsys.readouterr().err


def test_a_callers_own_group_of_hub_bars_turned_off_stays_off_and_the_other_bars_go_off_inside(monkeypatch):
    # Turning the bars back on at the end cleared every group's setting, so a program that had turned off one
    # group of the Hub's bars (a download's) before calling motif-lite's main found them on again; and skipping the
    # whole switch for such a program left the Hub's other bars and transformers' on in a log.
    import transformers.utils.logging as transformers_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    disable_progress_bars("huggingface_hub.http_get")
    try:
        with library_bars_kept_out_of_logs(io.StringIO()):
            assert are_progress_bars_disabled()  # every group, not only the caller's
            assert not transformers_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled("huggingface_hub.http_get")
        assert not are_progress_bars_disabled()  # the others on again, as the caller had them
        assert transformers_logging.is_progress_bar_enabled()
    finally:
        enable_progress_bars()


def test_transformers_bars_a_caller_turned_off_stay_off(monkeypatch):
    import transformers.utils.logging as transformers_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    transformers_logging.disable_progress_bar()
    enable_progress_bars()  # transformers' switch turned the Hub's off too: only transformers' stay off
    try:
        with library_bars_kept_out_of_logs(io.StringIO()):
            pass
        assert not transformers_logging.is_progress_bar_enabled()
        assert not are_progress_bars_disabled()
    finally:
        transformers_logging.enable_progress_bar()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_keeps_the_libraries_bars(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    with library_bars_kept_out_of_logs(_Terminal()):
        assert not are_progress_bars_disabled()


def test_bars_a_calling_program_turned_off_stay_off_after_a_command(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    disable_progress_bars()
    try:
        with library_bars_kept_out_of_logs(io.StringIO()):
            pass
        assert are_progress_bars_disabled()  # not turned on by a command it ran
    finally:
        enable_progress_bars()


def tiny_verify(checkpoint: Path) -> int:
    return cli.main(["verify", "-m", str(checkpoint), "-W", "32", "-H", "32", "--video-frames", "1", "--device", "cpu"])


def test_verify_logged_to_a_file_writes_no_carriage_returns(checkpoint, capsys, monkeypatch):
    # diffusers' "Loading pipeline components..." bar (the reference pipeline) has its own switch, which the Hub's
    # setting does not reach: it was one carriage-return line in the log.
    from diffusers.utils.logging import is_progress_bar_enabled

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    assert tiny_verify(checkpoint) == 0
    err = capsys.readouterr().err
    assert "verify: stage 5/5 frames: match" in err  # our own lines are there
    assert "\r" not in err and "Loading pipeline components" not in err, err
    assert is_progress_bar_enabled()  # as it was before: a program calling main keeps its bars


def test_hf_hub_disable_progress_bars_set_to_0_keeps_diffusers_bars(checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    assert tiny_verify(checkpoint) == 0
    assert "\rLoading pipeline components" in capsys.readouterr().err


def test_hf_hub_disable_progress_bars_set_to_1_turns_diffusers_bars_off_too(checkpoint):
    # diffusers reads no such variable: the one that asks for no bars brought its "Loading pipeline components"
    # bar into the log. The Hub reads it as it is imported, so the command runs in a process of its own.
    environ = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    command = [sys.executable, "-m", "motif_lite", "verify", "-m", str(checkpoint), "-W", "32", "-H", "32",
               "--video-frames", "1", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "verify: stage 5/5 frames: match" in done.stderr
    assert "\r" not in done.stderr and "Loading pipeline components" not in done.stderr, done.stderr


def test_the_hubs_bars_come_back_after_a_command_that_never_imported_transformers():
    # transformers' enable_progress_bar turns the hub's back on too: only a process without it shows the hub's own.
    script = (
        "import io, sys\n"
        "from huggingface_hub.utils import are_progress_bars_disabled\n"
        "from motif_lite.cli.common import library_bars_kept_out_of_logs\n"
        "with library_bars_kept_out_of_logs(io.StringIO()):\n"
        "    inside = are_progress_bars_disabled()\n"
        "print(inside, are_progress_bars_disabled(), 'transformers' in sys.modules)\n"
    )
    environ = {key: value for key, value in os.environ.items() if key != "HF_HUB_DISABLE_PROGRESS_BARS"}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "False"], done.stderr
