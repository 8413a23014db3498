"""Odd flag values and odd `GenerationRequest` fields: every value-taking flag of run, decode, check, verify and serve
given 0, -1, huge numbers, nan/inf, an empty string, a float for an int, blanks, a unit, non-ASCII and undecodable
text either parses or is argparse's usage error (exit 2, no traceback); run's flags then make the request or are
refused with `MotifLiteError`, and the Python API refuses such fields with `RequestError`. CPU, no weights."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import subprocess
import sys
from datetime import timedelta

import pytest

from motif_lite import cli
from motif_lite.cli.run_flags import MAX_BATCH_COUNT, MAX_COMM_TIMEOUT_SECONDS
from motif_lite.cli.run_request import request_from_args, resolve_requests
from motif_lite.errors import MotifLiteError
from motif_lite.request import GenerationRequest, RequestError

ODD_TEXT = ["0", "-1", "1e12", str(10**30), "nan", "inf", "-inf", "", "1.5", " ", " 8 ", "8GB", "é🦊", "\udcff"]
ODD_VALUES = [0, -1, 10**12, 10**30, 10**400, 1e12, math.nan, math.inf, -math.inf, "", " ", 1.5, "8GB", "é🦊",
              "\udcff", None, True, [1], {"a": 1}, b"x"]  # fmt: skip
COMMANDS = ("run", "decode", "check", "verify", "serve")


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return {name: commands.choices[name] for name in COMMANDS}


def value_flags(parser: argparse.ArgumentParser) -> list[str]:
    """The longest name of each flag of `parser` that takes a value."""
    return [max(a.option_strings, key=len) for a in parser._actions if a.option_strings and a.nargs != 0]


def parsed(argv: list[str]) -> argparse.Namespace | None:
    """`argv` parsed as `motif-lite` parses it, or None after argparse's usage error (checked: exit 2, one line).
    stderr is a StringIO: pytest's capture refuses the lone surrogate a usage error repeats, which the real stderr
    writes escaped."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2 and "error: argument" in err.getvalue(), err.getvalue()
        return None


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_takes_an_odd_value_or_is_a_usage_error(command):
    positional = ["fox.latents.safetensors"] if command == "decode" else []
    for flag in value_flags(command_parsers()[command]):
        for value in ODD_TEXT:
            parsed([command, *positional, f"{flag}={value}"])


def test_run_flags_with_odd_values_make_the_request_or_are_refused(tmp_path):
    """What `run` does with the parsed flags before anything loads: the request, resolved, or a one-line refusal."""
    skipped = {"--resume", "--settings-from", "--extend", "--image", "--preview"}  # files: their own fuzz tests
    for flag in value_flags(command_parsers()["run"]):
        for value in ODD_TEXT if flag not in skipped else ():
            argv = ["run", "-p", "a fox", "-W", "64", "-H", "64", "-o", str(tmp_path / "fox.mp4"), f"{flag}={value}"]
            args = parsed(argv)
            if args is None:
                continue
            args.argv = argv
            with contextlib.suppress(MotifLiteError):  # anything else fails the test
                resolve_requests(args, request_from_args(args))


@pytest.mark.parametrize("count", [str(MAX_BATCH_COUNT + 1), str(10**30)])
def test_a_batch_count_beyond_any_batch_is_a_usage_error(count):
    """10**30 made the list of the batch's requests until the machine ran out of memory."""
    assert parsed(["run", "-p", "a fox", "--batch-count", count]) is None
    assert parsed(["run", "-p", "a fox", "--batch-count", str(MAX_BATCH_COUNT)]).batch_count == MAX_BATCH_COUNT


@pytest.mark.parametrize("seconds", [str(MAX_COMM_TIMEOUT_SECONDS + 1), "1e30"])
def test_a_comm_timeout_beyond_a_week_is_a_usage_error(seconds):
    """1e30 overflowed the timedelta of the process groups once the processes had started."""
    assert parsed(["run", "-p", "a fox", "--comm-timeout", seconds]) is None
    assert timedelta(seconds=MAX_COMM_TIMEOUT_SECONDS)  # the largest taken is a timeout torch can be given


@pytest.mark.parametrize("host", ["\udcff", "a..b", "x" * 64])
def test_a_host_the_resolver_cannot_encode_is_a_usage_error(host):
    """Such a name raised UnicodeError (a traceback) when the port was bound."""
    assert parsed(["serve", "--host", host]) is None
    for fine in ("127.0.0.1", "0.0.0.0", "::", "localhost", "é.example"):
        assert parsed(["serve", "--host", fine]).host == fine


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(GenerationRequest)])
def test_every_request_field_with_an_odd_value_resolves_or_raises_request_error(tmp_path, field):
    for value in ODD_VALUES:
        values = {"prompt": "a fox", "width": 64, "height": 64, "frames": 9, "output": str(tmp_path / "fox.mp4")}
        with contextlib.suppress(RequestError):  # anything else (TypeError, OverflowError, ...) fails the test
            GenerationRequest(**{**values, field: value}).resolve()


@pytest.mark.parametrize("field", ["fps", "cfg_scale", "apg_eta", "apg_norm_threshold", "apg_momentum", "flow_shift"])
def test_an_integer_beyond_a_floats_range_is_refused_naming_the_field(field):
    """math.isfinite(10**400) raised OverflowError from inside the check."""
    with pytest.raises(RequestError, match="must be a finite number") as refused:
        GenerationRequest("a fox", **{field: 10**400}).resolve()
    assert refused.value.fields == (field,) and len(str(refused.value)) < 200  # the 401 digits cut short


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        # --dry-run and no such -m: without the check the command ends at once (a batch of 10**30 would not)
        ([b"run", b"-m", b"/no/such/folder", b"--dry-run", b"--comm-timeout", b"1e30"], b"--comm-timeout: must be at"),
        ([b"serve", b"--host", b"\xff"], b"--host: '\\udcff' is not a host name or IP address"),
    ],
)
def test_the_console_script_refuses_them_in_one_line(argv, needle):
    """The real program, argv as bytes (0xff is what a terminal in another encoding sends)."""
    done = subprocess.run([sys.executable, "-m", "motif_lite", *argv], capture_output=True, timeout=120)
    assert done.returncode == 2 and needle in done.stderr and b"Traceback" not in done.stderr, done.stderr
