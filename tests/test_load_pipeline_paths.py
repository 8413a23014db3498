"""`load_pipeline` given a path whose name is longer than the file system allows: the command line's one-line error
as a `MotifLiteError` (as `check_setup` gives it), never a bare OSError from the file system or pathlib."""

from __future__ import annotations

from pathlib import Path

import pytest

from motif_lite import cli, load_pipeline
from motif_lite.errors import MotifLiteError

TOO_LONG = "x" * 300  # over the 255 bytes most file systems allow in a name


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.mark.parametrize(
    ("flag", "argument", "path"),
    [
        ("-m", "model", f"/tmp/{TOO_LONG}/Motif-Video-2B"),
        ("--gguf", "gguf", f"{TOO_LONG}.gguf"),
        ("--text-encoder-gguf", "text_encoder_gguf", f"{TOO_LONG}.gguf"),
    ],
)
def test_a_name_too_long_is_the_error_the_command_line_prints(checkpoint, capsys, flag, argument, path):
    keywords = {"model": checkpoint, argument: path}  # the tiny checkpoint unless the model is the long path
    command = ["run", "-m", str(keywords["model"]), "-p", "a fox", "--device", "cpu"]
    if argument != "model":
        command += [flag, path]
    assert cli.main(command) == cli.EXIT_USER_ERROR
    printed = capsys.readouterr().err.strip()
    with pytest.raises(MotifLiteError) as raised:
        load_pipeline(**keywords, device="cpu")
    assert printed == f"error: {raised.value}"
    assert "a file name is too long for this file system" in printed


@pytest.mark.parametrize(
    "keywords",
    [{"loras": [f"{TOO_LONG}.safetensors"]}, {"weights": {"vae": f"{TOO_LONG}.safetensors"}}],
    ids=["loras", "weights"],
)
def test_a_name_too_long_in_the_other_files_is_the_same_error(checkpoint, keywords):
    with pytest.raises(MotifLiteError, match="^a file name is too long for this file system: .*that name is 3"):
        load_pipeline(checkpoint, device="cpu", **keywords)
