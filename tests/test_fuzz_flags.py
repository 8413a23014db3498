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
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from fuzz_checks import read_or_refused_naming

from motif_lite import cli
from motif_lite.cli.flag_numbers import MAX_BATCH_COUNT, MAX_COMM_TIMEOUT_SECONDS
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


# The request field each flag sets, where its name differs from the flag's.
FLAG_FIELDS = {"video_frames": "frames", "sampling_method": "sampler", "init_img": "image"}


def made_requests(argv: list[str]) -> list[dict]:
    args = parsed(argv)
    args.argv = argv
    requests, _ = resolve_requests(args, request_from_args(args))
    return [dataclasses.asdict(request) for request in requests]


def test_run_flags_with_odd_values_make_the_request_or_are_refused(tmp_path):
    """What `run` does with the parsed flags before anything loads: a one-line refusal naming the flag (or the
    field it sets), or the request, resolved, which differs from the one without the flag in that field only (or
    in none: a flag of the model or the machine)."""
    skipped = {"--resume", "--settings-from", "--extend", "--image", "--preview"}  # files: their own fuzz tests
    given = ["run", "-p", "a fox", "-W", "64", "-H", "64", "--seed", "1", "-o", str(tmp_path / "fox.mp4")]
    (unedited,) = made_requests(given)
    for action in command_parsers()["run"]._actions:
        flag = max(action.option_strings, key=len) if action.option_strings and action.nargs != 0 else None
        for value in ODD_TEXT if flag is not None and flag not in skipped else ():
            argv = [*given, f"{flag}={value}"]
            if parsed(argv) is None:
                continue
            field = FLAG_FIELDS.get(action.dest, action.dest)
            with read_or_refused_naming(MotifLiteError, field):
                first = made_requests(argv)[0]  # of a batch: the others differ in seed and file
                changed = {name for name in first if first[name] != unedited[name]}
                allowed = {field} | ({"output"} if field == "batch_count" else set())
                assert changed <= allowed, f"{flag}={value!r} changed {changed}"


# Every flag (and argument) that takes a path, by command. Path("") is the current folder: `serve --lora-dir ""`
# served the LoRA files of the folder it was started in, `--gguf ""` took the one .gguf file found there.
PATH_FLAGS = {
    "run": ["-o", "-i", "--extend", "--resume", "--settings-from", "--lora", "--preview", "-m", "--gguf",
            "--diffusion-model", "--text-encoder", "--vae", "--text-encoder-gguf"],
    "decode": ["LATENTS", "-o", "-m", "--vae"],
    "check": ["-m", "--gguf", "--text-encoder-gguf", "--diffusion-model", "--text-encoder", "--vae"],
    "verify": ["-i", "--settings-from", "-m", "--gguf", "--text-encoder-gguf", "--diffusion-model", "--text-encoder",
               "--vae"],
    "serve": ["--data", "--lora", "--lora-dir", "-m", "--gguf", "--text-encoder-gguf", "--diffusion-model",
              "--text-encoder", "--vae"],
}  # fmt: skip
PATH_METAVARS = {"FILE", "DIR", "CLIP", "FILE[:STRENGTH]", "LATENTS"}


def usage_error(argv: list[str]) -> str:
    """argparse's usage error for `argv` (checked: exit 2), its message line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2, err.getvalue()
    return err.getvalue().splitlines()[-1]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_path_flags_listed_are_every_flag_that_takes_a_file(command):
    """So that the test below sees a new file flag: each one named FILE, DIR, ... in --help is in PATH_FLAGS."""
    actions = command_parsers()[command]._actions
    files = {flag_name(action) for action in actions if action.metavar in PATH_METAVARS}
    assert files <= set(PATH_FLAGS[command]) <= {flag_name(action) for action in actions}


def flag_name(action: argparse.Action) -> str:
    """A flag's shortest name (-o of -o/--output), an argument's metavar (LATENTS)."""
    return min(action.option_strings, key=len) if action.option_strings else action.metavar


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_path_is_a_usage_error_naming_its_flag(command, value):
    """A script's unset "$VAR" (or one holding blanks) is refused as the flags are read, before anything loads."""
    for flag in PATH_FLAGS[command]:
        positional = ["fox.latents.safetensors"] if command == "decode" else []
        argv = [command, value] if flag == "LATENTS" else [command, *positional, flag, value]
        message = usage_error(argv)
        assert f"argument {flag}" in message, message
        assert f"is empty ({value!r}; an unset variable in a script?)" in message, message
    if command != "decode":  # the same flags with a path are taken
        assert parsed([command, "-m", "ckpt", "--gguf", "fox.gguf"]).gguf == "fox.gguf"


# Windows paths pasted on Linux (WSL), each with what its refusal must say: `C:\Users\...` named a file in the
# current folder, where an input was "not found" and an output written under that name; `\out\fox` (C:\out\fox on
# Windows, where C: is current) was taken by every flag, the run's video written as one file of that name here.
WINDOWS_PATHS = [
    ("C:\\Users\\me\\fox", ["C:\\Users\\me\\fox is a Windows path", "that is /mnt/c/Users/me/fox)"]),
    (
        "\\out\\fox",
        [
            "\\out\\fox is a Windows path from the root of the current drive",
            "that is /mnt/c/out/fox when C: is the current drive",
        ],
    ),
]


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
@pytest.mark.parametrize(("value", "said"), WINDOWS_PATHS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_windows_path_is_a_usage_error_naming_its_flag_and_the_path_to_give(command, value, said):
    for flag in PATH_FLAGS[command]:
        positional = ["fox.latents.safetensors"] if command == "decode" else []
        argv = [command, value] if flag == "LATENTS" else [command, *positional, flag, value]
        message = usage_error(argv)
        assert f"argument {flag}" in message, message
        for words in said:
            assert words in message, message


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
def test_a_relative_windows_path_is_a_usage_error_with_the_path_in_slashes():
    """`-o .\\out\\fox.mp4` on Linux: the run wrote its video as one file of that name in the current folder."""
    message = usage_error(["run", "-p", "a fox", "-o", ".\\out\\fox.mp4"])
    assert "argument -o/--output: .\\out\\fox.mp4 is a Windows path" in message, message
    assert "so give ./out/fox.mp4 (a name with backslashes in it is given with its folder: " in message, message


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_lora_strength_without_its_file_is_a_usage_error(command):
    """`--lora "$LORA:0.8"` with LORA unset: the current folder at 0.8 took the one LoRA file found there."""
    for value in (":0.8", "  :1"):
        assert "gives a strength but no file" in usage_error([command, "--lora", value])
    assert parsed([command, "--lora", "style.safetensors:0.8"]).lora == ["style.safetensors:0.8"]
    assert parsed([command, "--lora", "C:x.safetensors"]).lora == ["C:x.safetensors"]  # a drive, no strength


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_lora_path_with_a_colon_and_no_strength_is_taken(command):
    """Only a number after the last colon is a strength: `:style.safetensors` is a path with a colon in it (which
    `LoRASpec.parse` reads whole), not a strength without its file."""
    for value in (":style.safetensors", "  :style.safetensors"):
        assert parsed([command, "--lora", value]).lora == [value]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_path_with_blanks_around_it_is_kept_as_given(command):
    """Only an empty or blank value is refused: a name that begins or ends with a blank is a file's real name."""
    positional = ["fox.latents.safetensors"] if command == "decode" else []
    assert parsed([command, *positional, "-m", " ckpt "]).model == " ckpt "
    if command in ("run", "serve"):
        assert parsed([command, "--lora", " style.safetensors :0.8"]).lora == [" style.safetensors :0.8"]


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
    """A `RequestError` whose fields are the one given (the server names the parameter by them), or the request
    without the value but for that field; anything else (TypeError, OverflowError, ...) fails the test."""
    values = {"prompt": "a fox", "width": 64, "height": 64, "frames": 9, "seed": 1, "output": str(tmp_path / "f.mp4")}
    unedited = dataclasses.asdict(GenerationRequest(**values).resolve()[0])
    for value in ODD_VALUES:
        try:
            made = dataclasses.asdict(GenerationRequest(**{**values, field: value}).resolve()[0])
        except RequestError as exc:
            assert exc.fields == (field,), f"{field}={value!r:.40} refused naming {exc.fields}: {exc}"
            continue
        changed = {name for name in made if made[name] != unedited[name]}
        assert changed <= {field}, f"{field}={value!r:.40} changed {changed}"


@pytest.mark.parametrize("field", ["fps", "cfg_scale", "apg_eta", "apg_norm_threshold", "apg_momentum", "flow_shift"])
def test_an_integer_beyond_a_floats_range_is_refused_naming_the_field(field):
    """math.isfinite(10**400) raised OverflowError from inside the check."""
    with pytest.raises(RequestError, match="must be (a finite number|a number from)") as refused:
        GenerationRequest("a fox", **{field: 10**400}).resolve()
    assert refused.value.fields == (field,) and str(refused.value).endswith("0...")  # the 401 digits cut short
    assert len(str(refused.value)) < 300


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
