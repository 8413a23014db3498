"""What a container's log shows: a log viewer under the C or POSIX locale (the default of most base images) shows
each byte of a character outside ASCII as an escape, and Python writes `\\xb7` where the output's encoding lacks it.
Every command's help is plain ASCII."""

from __future__ import annotations

import pytest
from help_text import help_text

from motif_lite import cli
from motif_lite.quantize import cli as quantize_cli
from motif_lite.shell_syntax import quoted_text


@pytest.mark.parametrize("command", [(), ("run",), ("decode",), ("check",), ("serve",), ("verify",)])
def test_every_commands_help_is_ascii(command, capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, cli.main, command)
    assert text.strip(), command
    assert [line for line in text.splitlines() if not line.isascii()] == []


def test_the_quantizers_help_is_ascii(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, quantize_cli.main)
    assert text.strip()
    assert [line for line in text.splitlines() if not line.isascii()] == []


def as_an_ascii_locale_decodes(text: str) -> str:
    """`text` as Python hands it to a program from the command line under an ASCII locale (`LC_ALL=C` with
    PYTHONUTF8=0): each byte of its UTF-8 that ASCII lacks as a lone surrogate (PEP 383)."""
    return text.encode("utf-8").decode("ascii", "surrogateescape")


def test_a_utf8_prompt_read_under_an_ascii_locale_is_its_text(shared_checkpoint, tmp_path, capsys):
    prompt, negative = "un renard roux, café ☕ 狐", "flou, déformé"
    code = cli.main(["run", "-m", str(shared_checkpoint[0]), "-p", as_an_ascii_locale_decodes(prompt),
                     "-n", as_an_ascii_locale_decodes(negative), "-W", "32", "-H", "32", "--video-frames", "1",
                     "--steps", "1", "-o", str(tmp_path / "fox.png")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"prompt: {quoted_text(prompt)}" in out
    assert f"negative     flag       {quoted_text(negative)}" in out, out


def test_bytes_that_are_not_utf8_are_still_refused(shared_checkpoint, tmp_path, capsys):
    latin1 = "café".encode("latin-1").decode("utf-8", "surrogateescape")  # a Latin-1 file's bytes
    code = cli.main(["run", "-m", str(shared_checkpoint[0]), "-p", latin1, "-o", str(tmp_path / "fox.png")])
    assert code == cli.EXIT_USER_ERROR
    assert "prompt holds bytes that are not UTF-8 text" in capsys.readouterr().err


def test_verify_reads_a_utf8_prompt_under_an_ascii_locale_as_run_does():
    # verify's -p/-n took the locale's surrogates as they came, and refused the prompt run accepts.
    prompt, negative = "un renard roux, café ☕ 狐", "flou, déformé"
    args = cli.build_parser().parse_args(
        ["verify", "-p", as_an_ascii_locale_decodes(prompt), "-n", as_an_ascii_locale_decodes(negative)]
    )
    assert (args.prompt, args.negative_prompt) == (prompt, negative)
