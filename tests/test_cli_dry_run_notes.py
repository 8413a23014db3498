"""What `motif-lite run --dry-run` says about the files an earlier run of the same output left, and of the seeds."""

from __future__ import annotations

import re
import shlex

import pytest
import torch
from stopped_runs import stopped_run

from motif_lite import cli, load_pipeline
from motif_lite.request import GenerationRequest


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint):
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def test_a_dry_run_of_a_stopped_runs_output_says_how_to_resume_it(checkpoint, tmp_path, capsys):
    # After Ctrl-C, the same command with --dry-run said nothing of the saved state, which the real run names.
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    output = tmp_path / "fox.mp4"
    request = GenerationRequest("a red fox", width=48, height=32, frames=9, steps=3, seed=1, output=str(output))
    saved = stopped_run(pipe, request)
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "3", "-s", "1"]
    code = cli.main(["run", "-m", str(checkpoint), "-p", "a red fox", *size, "-o", str(output), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"holds an earlier run of {output} that stopped after step 1 of 3" in err, err
    assert f"motif-lite run --resume {saved.file}" in err, err


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["-s", "5"], "seed: 5"),
        (["-s", "5", "-b", "2"], "seeds: 5, 6"),
        ([], "seed: drawn by the run and printed as it starts (-s N chooses one)"),
    ],
    ids=["given", "batch", "drawn"],
)
def test_a_dry_run_says_the_seed(checkpoint, tmp_path, capsys, flags, said):
    # A dry run's printout, kept as the record of a run's settings, named no seed for one video (-s 5 or none).
    code = cli.main(
        ["run", "-m", str(checkpoint), "-p", "a red fox", *flags, "-o", str(tmp_path / "f.mp4"), "--dry-run"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"prompt: 'a red fox'\n{said}\nsettings (" in out, out


def test_a_dry_run_of_a_resumed_run_says_the_seed_its_file_keeps(checkpoint, tmp_path, capsys):
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    request = GenerationRequest("a red fox", width=48, height=32, frames=9, steps=3, seed=77, output=tmp_path / "f.mp4")
    saved = stopped_run(pipe, request)
    code = cli.main(["run", "--resume", str(saved.file), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "prompt: 'a red fox'\nseed: 77\nsettings (" in out, out


def test_a_dry_runs_prompt_and_negative_prompt_paste_back_into_the_shell(checkpoint, tmp_path, capsys):
    # They were Python reprs: a prompt with both kinds of quote showed `'it\'s a "fox"'`, and pasted after -p the
    # shell kept the backslash (or read a quote that never closed).
    prompt, negative = """it's a "fox" \\ in snow""", "don't blur"
    argv = ["run", "-m", str(checkpoint), "-p", prompt, "-n", negative, "-o", str(tmp_path / "f.mp4"), "--dry-run"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    shown = re.search(r"^prompt: (.*)$", out, re.MULTILINE).group(1)
    negative_shown = re.search(r"^  negative +flag +(.*)$", out, re.MULTILINE).group(1)
    assert shlex.split(shown) == [prompt], shown
    assert shlex.split(negative_shown) == [negative], negative_shown
