"""`check_setup` (what `motif-lite check` runs) given a path no file can have, from Python: the command line's
one-line error as a `MotifLiteError`, never a bare OSError from the file system or pathlib."""

from __future__ import annotations

import pytest

from motif_lite import cli
from motif_lite.checkup import check_setup
from motif_lite.errors import MotifLiteError

TOO_LONG = "x" * 300  # over the 255 bytes most file systems allow in a name


@pytest.mark.parametrize(
    ("flag", "argument", "path"),
    [
        ("-m", "model", TOO_LONG),
        ("-m", "model", f"/tmp/{TOO_LONG}/Motif-Video-2B"),
        ("--gguf", "gguf", f"{TOO_LONG}.gguf"),
        ("-m", "model", "~motif-lite-no-such-user/Motif-Video-2B"),
    ],
)
def test_an_impossible_path_is_the_error_the_command_line_prints(capsys, flag, argument, path):
    assert cli.main(["check", flag, path]) == cli.EXIT_USER_ERROR
    printed = capsys.readouterr().err.strip()
    with pytest.raises(MotifLiteError) as raised:
        check_setup(**{argument: path})
    assert printed == f"error: {raised.value}"


@pytest.mark.parametrize("argument", ["model", "gguf", "text_encoder_gguf"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(argument):
    # The command line refuses an empty value as it reads its flags; Path('') is the current folder.
    with pytest.raises(MotifLiteError, match=f"^{argument} is empty"):
        check_setup(**{argument: " "})
