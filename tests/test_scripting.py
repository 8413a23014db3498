"""`motif-lite run` driven by a script: a loop over a prompts file, names made from seeds, exit codes checked.
What such a script gives by mistake is refused at once with a one-line error (exit code 2, no traceback, no file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from motif_lite import cli


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> tuple[Path, object]:
    return shared_checkpoint  # read only


def run_args(root: Path, *extra: str) -> list[str]:
    return ["run", "-m", str(root), "-W", "48", "-H", "32", "--video-frames", "1", "--steps", "1", "-s", "3", *extra]


def test_an_output_name_with_another_tools_placeholder_is_refused(checkpoint, tmp_path, capsys):
    # -o "fox_{seed}.mp4" (a placeholder ComfyUI-like tools fill in) was written as it is, braces and all, after a
    # note: every run of a loop over prompts or seeds then replaced the last one's video.
    output = tmp_path / "fox_{seed}.png"
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(output))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: -o {output} has {{seed}}, which motif-lite does not fill in" in err, err
    assert '-s "$seed" -o "fox_$seed.mp4"' in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # refused before any work: no file of that name, nor a claim of it


def test_braces_without_a_name_in_them_are_no_placeholder(checkpoint, tmp_path, capsys):
    for plain in ("fox {1}.png", "fox {}.png"):
        assert cli.main([*run_args(checkpoint[0], "-p", "fox", "--dry-run", "-o", str(tmp_path / plain))]) == 0
        assert "does not fill in" not in capsys.readouterr().err, plain
