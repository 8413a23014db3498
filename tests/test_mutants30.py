"""The thirtieth mutation pass's tests: behaviours of the merges of 2026-12-04 (launcher variables, the GPU the
Triton check asks about, guided steps, ...) that no test reached, each failing with the mutant that showed the gap,
and the dry run for a GPU number this machine lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite import cli
from motif_lite.launcher_variables import launcher_number


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def one_gpu(monkeypatch) -> None:
    """A machine with one H100, cuda:0: asking torch about another number fails as torch fails (an AssertionError,
    "Invalid device id"), before any word of ours."""

    def capability(device=None):
        index = device if isinstance(device, int) else None if device is None else torch.device(device).index
        if index not in (None, 0):
            raise AssertionError("Invalid device id")
        return (9, 0)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: capability(device) and "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: capability(device) and (70 << 30, 80 << 30))


def test_a_dry_run_for_a_gpu_number_the_machine_lacks_is_one_line(monkeypatch, capsys, checkpoint, tmp_path):
    # Before: the dry run read cuda:3's facts for its default dtype and ended in torch's AssertionError traceback.
    monkeypatch.chdir(tmp_path)
    one_gpu(monkeypatch)
    argv = ["run", "-m", str(checkpoint), "-p", "fox", "-W", "64", "-H", "64", "--video-frames", "5", "--dry-run"]
    assert cli.main([*argv, "--device", "cuda:3", "--dtype", "fp32", "--kernels", "torch"]) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert "Memory plan" not in out
    assert err.splitlines()[-1] == (
        "error: device 'cuda:3': there are only 1 CUDA device(s) here, numbered from 0: cuda:0; use one of them, "
        'e.g. --device cuda:0 (in Python device="cuda:0")'
    )
    assert "Traceback" not in err and err.count("error:") == 1


def test_only_rank_0_of_a_job_with_an_unreadable_rank_prints_an_error_whole(monkeypatch, capsys):
    # A rank that cannot be read is not known to be another rank than 0: its error is printed whole, not cut to the
    # first line as a copy of rank 0's would be.
    from motif_lite.cli import run as run_cli
    from motif_lite.errors import MotifLiteError

    def refuse(args):
        raise MotifLiteError("first line\nsecond line")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(run_cli, "main", refuse)
    assert cli.main(["run", "-p", "fox"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == "[rank ?] error: first line\nsecond line\n"


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_launcher_variable_is_unset(blank):
    # A shell or wrapper that clears a variable may leave spaces: no launcher sets them, so they are no value.
    assert launcher_number("WORLD_SIZE", 1, smallest=1, environ={"WORLD_SIZE": blank}) == 1


def test_joining_a_job_without_world_size_names_it(monkeypatch):
    # torchrun sets WORLD_SIZE for every process it starts: a process joining a job without it was not started so,
    # and a world of 1 would be a guess.
    from motif_lite.errors import MotifLiteError
    from motif_lite.runtime import parallel

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(MotifLiteError, match="^WORLD_SIZE is not set, but torchrun sets it"):
        parallel.start("cpu")


def test_the_cuts_said_before_the_load_are_not_logged_again_whatever_their_label(caplog):
    # The negative prompt's cut, said before the load in more words, is no more logged by its encode than the
    # prompt's; a cut said of another label still is.
    import logging

    from motif_lite.cli.before_download import not_said_again
    from motif_lite.encoders.text import PromptTruncation, log

    cut = PromptTruncation(tokens=600, kept=512, max_length=512, kept_ending="a fox")
    with caplog.at_level(logging.WARNING, logger=log.name), not_said_again({"negative prompt": cut}):
        log.warning(cut.warning("negative prompt"))
        log.warning(cut.warning("prompt"))
    assert [record.getMessage() for record in caplog.records] == [cut.warning("prompt")]
