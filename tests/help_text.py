"""A command's --help as a user reads it, for the tests of every command's help (tests/test_cli.py) and of each
command's own lines: its text in a terminal of 80 columns, the lines wider than the docs' 115 columns, and its
examples as the shell would split them."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence

import pytest

DOCS_WIDTH = 115
_COMMENT = re.compile(r"\s{2,}\(.*\)$")  # "   (image-to-video)" after an example
_VARIABLE = re.compile(r"^[A-Z_]+=")  # MOTIF_LITE_API_KEY=... before the command


def help_text(capsys, monkeypatch, main: Callable[[Sequence[str]], int], args: Sequence[str] = ()) -> str:
    """What `main([*args, "--help"])` prints in a terminal of 80 columns (argparse wraps to COLUMNS)."""
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return capsys.readouterr().out


def wide_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > DOCS_WIDTH]


def examples(text: str, program: str) -> list[list[str]]:
    """The example lines of a help `text` that run `program` ("motif-lite", "python -m motif_lite.quantize"): the
    words after it, as the shell splits them, without variables set before it or a comment after it."""
    found = []
    for line in text.splitlines():
        command = _COMMENT.sub("", line.strip())
        if not line.startswith("  ") or not (command.startswith(program) or _VARIABLE.match(command)):
            continue
        words = shlex.split(command)
        while words and _VARIABLE.match(words[0]):
            words.pop(0)
        if words[: len(program.split())] == program.split():
            found.append(words[len(program.split()) :])
    return found
