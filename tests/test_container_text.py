"""What a container's log shows: a log viewer under the C or POSIX locale (the default of most base images) shows
each byte of a character outside ASCII as an escape, and Python writes `\\xb7` where the output's encoding lacks it.
Every command's help is plain ASCII."""

from __future__ import annotations

import pytest
from help_text import help_text

from motif_lite import cli
from motif_lite.quantize import cli as quantize_cli


@pytest.mark.parametrize("command", [(), ("run",), ("decode",), ("check",), ("serve",), ("verify",)])
def test_every_commands_help_is_ascii(command, capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, cli.main, command)
    assert text.strip(), command
    assert [line for line in text.splitlines() if not line.isascii()] == []


def test_the_quantizers_help_is_ascii(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, quantize_cli.main)
    assert text.strip()
    assert [line for line in text.splitlines() if not line.isascii()] == []
