"""Tests for the survivors of the forty-seventh mutation pass (docs/testing.md): each fails with its mutant."""

from __future__ import annotations

import pytest

from motif_lite.request import MAX_SEED, RANGES, GenerationRequest, RequestError


def _refusal(**fields: object) -> str:
    with pytest.raises(RequestError) as error:
        GenerationRequest("x", **fields).resolve()
    return str(error.value)


def test_a_whole_float_at_the_edges_of_a_range_is_told_its_integer():
    # Mutants: the seed's hint without MAX_SEED itself, the steps' hint without the lowest count.
    assert _refusal(seed=float(MAX_SEED)).endswith(f"got {float(MAX_SEED)} (a float: give {MAX_SEED})")
    low = RANGES["steps"][0]
    assert _refusal(steps=float(low)).endswith(f"(a float: give {low})")


@pytest.mark.parametrize("value", [0.0, -4.0])
def test_a_whole_float_that_is_no_positive_integer_gets_no_hint(value):
    # Mutant: a positive integer's hint given for any whole float ("give 0" would be refused in turn).
    said = _refusal(frames=value)
    assert said.endswith(f"must be a positive integer, got {value}"), said


def test_the_pace_of_a_batch_counts_the_videos_left():
    # Mutant: the time left counted for one video fewer than the batch has left.
    from motif_lite.cli.batch_notes import batch_pace

    assert batch_pace(0, 3, 0.0) == ""
    assert batch_pace(1, 3, 10.0) == " (1 done in 0:00:10, about 0:00:20 left at that pace)"
    assert batch_pace(2, 5, 100.0) == " (2 done in 0:01:40, about 0:02:30 left at that pace)"


def test_a_single_video_ends_without_a_batch_line(shared_checkpoint, tmp_path, capsys):
    # Mutant: "batch done: 1 videos ..." after the one video of a plain run.
    from motif_lite import cli

    args = ["run", "-m", str(shared_checkpoint[0]), "-p", "a fox", "-o", str(tmp_path / "out_%03d.png")]
    args += ["-W", "48", "-H", "32", "--steps", "1", "--video-frames", "1", "--dtype", "fp32", "--device", "cpu"]
    assert cli.main([*args, "--kernels", "torch"]) == 0
    out, err = capsys.readouterr()
    assert "done: " in out and "batch done" not in err


def test_a_ctrl_c_exit_keeps_what_was_printed_before_it(tmp_path):
    # Mutant: the process ends by SIGINT without flushing stdout; a pipe's block buffer held the last lines.
    import os
    import signal
    import subprocess
    import sys

    code = "import sys; from motif_lite.stopping import exit_with; print('said before'); exit_with(130)"
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as a shell's
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=buffered)
    assert done.stdout == "said before\n"
    assert done.returncode == -signal.SIGINT


def test_a_gguf_files_bytes_of_no_file_are_a_checkpoint_error(tmp_path):
    # Mutant: tensor_bytes without its file checks: an OS error for a missing file or a folder.
    from motif_lite.errors import CheckpointError
    from motif_lite.weights.gguf_file import tensor_bytes

    with pytest.raises(CheckpointError, match="^GGUF file not found: "):
        tensor_bytes(tmp_path / "missing.gguf")
    with pytest.raises(CheckpointError, match=r"is not a file \(expected a .gguf file\)$"):
        tensor_bytes(tmp_path)
    (tmp_path / "empty.gguf").touch()
    with pytest.raises(CheckpointError, match=r"is empty \(expected a .gguf file\)$"):
        tensor_bytes(tmp_path / "empty.gguf")


def test_the_models_end_run_lets_its_text_masks_go():
    # Mutant: end_run without the text masks: the caller's mask and the attention masks built from it stayed.
    import torch
    from speed_helpers import tiny_transformer
    from tiny_config import inputs

    model = tiny_transformer()
    x = inputs(image=5, image_dim=20)
    with torch.no_grad():
        first = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
        assert model.text_masks.kept.seen  # kept for the run's next forwards
        model.end_run()
        assert not model.text_masks.kept.seen
        again = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    assert torch.equal(first, again)
