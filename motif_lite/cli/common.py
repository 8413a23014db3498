"""What several commands share: the download hint that repeats the user's command, free output
names, `--lora` values, the `note: ...` lines, and whether a question can be asked."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from motif_lite.shell_syntax import command_line

if TYPE_CHECKING:
    import argparse

    from motif_lite.io.missing_report import MissingFilesError
    from motif_lite.weights.lora_specs import LoRASpec


def print_notes(notes: Iterable[str], say: Callable = print) -> None:
    """Each note as a `note: ...` line on stderr (`say`: print, or a rank's that prints nothing)."""
    for note in notes:
        say(f"note: {note}", file=sys.stderr)


def can_ask() -> bool:
    """Whether a question (`input`, which writes it on stdout and reads stdin) can be seen and answered: stdin and
    stdout are a terminal, and this process is its foreground job. A script's run has no terminal (stdin from
    /dev/null, or closed: `sys.stdin` is None) or takes stdout (`subprocess.run(..., capture_output=True)`,
    `$(...)`, `> log`: the question would go there), and a job started with `&` in a shell would be stopped by the
    terminal (SIGTTIN) as it read the answer: each a run that waits unseen."""
    if any(stream is None or not stream.isatty() for stream in (sys.stdin, sys.stdout)):
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (AttributeError, OSError, ValueError):  # no job control (Windows), or a stdin without a descriptor
        return True


@contextlib.contextmanager
def download_hint_repeats(argv: list[str] | None) -> Iterator[None]:
    """Missing files raised inside end their download hint with the user's own command (`argv`, the subcommand
    first: run, verify, serve), pointed at the folders the downloads fill."""
    from motif_lite.io.missing_report import MissingFilesError

    try:
        yield
    except MissingFilesError as exc:
        exc.run_command = rerun_command(argv, exc)
        raise


def rerun_command(argv: list[str] | None, error: MissingFilesError) -> str:
    """The user's command with -m / --gguf pointing at the folders the download commands fill."""
    tokens = list(argv or ["run", "-p", "..."])
    for flags, key in (((("--gguf",), "gguf")), (("-m", "--model"), "model")):  # each goes first: -m ends first
        if key in error.replacements:
            tokens = _replace_flag(tokens, flags, error.replacements[key])
    return "motif-lite " + command_line(tokens)


def _replace_flag(tokens: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    out, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token in flags and i + 1 < len(tokens):
            i += 2
            continue
        if any(token.startswith(f"{flag}=") for flag in flags if flag.startswith("--")):
            i += 1
            continue
        out.append(token)
        i += 1
    return [*out[:1], flags[0], value, *out[1:]]


def free_output(
    wanted: Path, dry_run: bool = False, claim: bool = False, command: str = "run"
) -> tuple[Path, str | None]:
    """`wanted`, or the next free name beside it when a file is there (a default output never replaces an earlier
    video), with the note that says so (in a `dry_run`, which writes nothing: what a `command` would write).
    `claim`: the name is taken at once (`io.output_claims.claim`), so that a command started at the same moment picks
    another."""
    from motif_lite.io.output_claims import claim_unused_path, unused_path

    chosen = claim_unused_path(wanted) if claim and not dry_run else unused_path(wanted)
    if chosen == wanted:
        return wanted, None
    writing = f"a {command} would write" if dry_run else "writing"
    return chosen, f"{wanted} exists: {writing} {chosen} instead (-o names the file and replaces it)"


def lora_args(values: list[str]) -> list[tuple[Path, float]]:
    """`--lora FILE[:STRENGTH]` values as (path, strength), each file checked to exist, and to be given once, before
    anything loads."""
    from motif_lite.weights.lora_errors import LoRAError
    from motif_lite.weights.lora_specs import LoRASpec

    specs = [LoRASpec.parse(value) for value in values]
    for value, spec in zip(values, specs, strict=True):
        if not spec.path.is_file():
            raise LoRAError(_web_address_fix(value) or _strength_after_a_space(value) or _lora_not_found(spec))
    if (repeat := same_file_refusal(values, [(spec.path, spec.strength) for spec in specs])) is not None:
        raise LoRAError(repeat)
    return [(spec.path, spec.strength) for spec in specs]


def _lora_not_found(spec: LoRASpec) -> str:
    """A missing --lora file, with the --lora of the file beside it that it likely meant, its strength kept: `--lora
    style` for style.safetensors, as ComfyUI and A1111 name LoRAs, was only "not found"."""
    from motif_lite.shell_syntax import quoted
    from motif_lite.weights.lora_specs import meant_before_a_colon, meant_lora_file
    from motif_lite.weights.lora_values import lora_flag

    # A colon left in the name (`style:0.8.safetensors`, `style:strong`): the file before it, and what followed it
    # not dropped (the closest spelling alone was `--lora style.safetensors`, at strength 1).
    if (before_colon := meant_before_a_colon(spec.path)) is not None:
        file, after, strength = before_colon
        if strength is None:
            return (f"LoRA file not found: {spec.path}; the strength {after!r} is not a number: use FILE:STRENGTH, "
                    f"e.g. --lora {quoted(lora_flag(file, 0.8))}")  # fmt: skip
        if spec.strength == 1:  # a second strength after the name (`style:0.8.safetensors:0.5`): which one is meant?
            return f"LoRA file not found: {spec.path}; did you mean --lora {quoted(lora_flag(file, strength))}?"
        return f"LoRA file not found: {spec.path}"
    meant = meant_lora_file(spec.path)
    if meant is None:
        return f"LoRA file not found: {spec.path}"
    flag = meant if spec.strength == 1 else lora_flag(meant, spec.strength)
    return f"LoRA file not found: {spec.path}; did you mean --lora {quoted(str(flag))}?"


def same_file_refusal(values: list[str], loras: list[tuple[Path, float]]) -> str | None:
    """The refusal of `--lora` `values` (each as (path, strength)) that name one file more than once: every --lora
    of it (a third too), and the one to give instead; None where each names another file."""
    from motif_lite.shell_syntax import quoted
    from motif_lite.weights.lora_values import (
        cancelling_advice,
        lora_flag,
        same_file_positions,
        summed_strength,
        times_applied,
    )

    if (same := same_file_positions([path for path, _ in loras])) is None:
        return None
    strengths = [loras[i][1] for i in same]
    total = summed_strength(*strengths)
    if total == 0:  # `:1` and `:-1`: a --lora at 0 would load the file and change nothing
        advice = cancelling_advice(len(same), "--lora out")
    elif math.isfinite(total):
        advice = f"give one --lora with the summed strength: --lora {quoted(lora_flag(loras[same[0]][0], total))}"
    else:  # `:1e308` twice: the sum overflows, and `:inf` would be refused
        advice = "their sum is no finite strength: give one --lora, with the strength you mean"
    flags = [f"--lora {values[i]}" for i in same]
    applied = times_applied(strengths)
    return f"{', '.join(flags[:-1])} and {flags[-1]} name the same file, which would apply {applied}; {advice}"


# A LoRA strength typed as a word apart from its file (`0.8`, `-1`, `.5`, `1e-3` as --lora's `:1e-3` takes it):
# digits, not whatever float() takes (`infinity`, `nan`, `1_0`), which read a prompt's word (`infinity pool`) as a
# strength to put after a colon.
STRENGTH_WORD = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _strength_after_a_space(value: str) -> str | None:
    """The hint for a --lora value holding a file and its strength apart (`--lora "style.safetensors 0.8"`, quoted
    with a space, as sd.cpp's `<lora:style:0.8>` users may guess): the strength goes after a colon."""
    from motif_lite.paths import user_path  # a quoted ~, as --lora reads its file
    from motif_lite.shell_syntax import quoted

    parts = value.rsplit(None, 1)
    if len(parts) != 2 or STRENGTH_WORD.fullmatch(parts[1]) is None or not user_path(parts[0]).is_file():
        return None
    return f"LoRA file not found: {value}; a strength goes after a colon: --lora {quoted(f'{parts[0]}:{parts[1]}')}"


def _web_address_fix(value: str) -> str | None:
    """What to do with a --lora value that is a URL (a Hub or Civitai page's link), which was looked up as a file
    named "https:/..." and reported missing: the command that downloads it; None for anything else."""
    from motif_lite.paths import url_fix
    from motif_lite.weights.lora_values import split_strength

    file, strength = split_strength(value)
    url, strength = (file, value[len(file) :]) if strength is not None else (value, "")
    if (fix := _civitai_page_fix(url, strength)) is not None:  # curl would save the page
        return (
            f"--lora {value} is a Civitai model's page, not its file; --lora takes a LoRA file on this machine: {fix}"
        )
    if (fix := url_fix(url, "--lora", "lora.safetensors", strength)) is None:
        return None
    return f"--lora {value} is a URL; --lora takes a LoRA file on this machine: {fix}"


# A Civitai model's page, as a browser shows it: https://civitai.com/models/ID/NAME, with `?modelVersionId=VERSION`
# once a version is picked. Its file is at Civitai's download address of that version.
_CIVITAI_PAGE = re.compile(
    r"https?://(?:www\.)?civitai\.com/models/\d+(?:/(?P<name>[^/?#]+))?/?(?:\?(?P<query>[^#]*))?(?:#.*)?"
)
_CIVITAI_DOWNLOAD = "https://civitai.com/api/download/models/"


def _civitai_page_fix(url: str, after_name: str) -> str | None:
    """The command that downloads the file of a Civitai model's page `url` (of the version its address names, else
    with the version to fill in), and the --lora to give then, with `after_name` (`:0.8`); None for another URL."""
    from urllib.parse import parse_qs

    from motif_lite.paths import curl_download
    from motif_lite.shell_syntax import quoted

    if (page := _CIVITAI_PAGE.fullmatch(url)) is None:
        return None
    name = f"{page['name'] or 'lora'}.safetensors"
    then = f"then give --lora {quoted(name + after_name)}"
    version = parse_qs(page["query"] or "").get("modelVersionId", [""])[0]
    if version.isdigit():
        return f"download it first, e.g. {curl_download(name, _CIVITAI_DOWNLOAD + version)}, {then}"
    return (
        f"download it first with the page's Download button, or {curl_download(name, _CIVITAI_DOWNLOAD + 'VERSION')} "
        f"(VERSION: the modelVersionId the page's address shows once a version is picked), {then}"
    )


def lora_specs_from_flags(args: argparse.Namespace) -> list[LoRASpec]:
    """--lora's files and strengths (`lora_args`: each file checked to exist) as the LoRA checks take them."""
    from motif_lite.weights.lora_specs import LoRASpec

    return [LoRASpec(path, strength) for path, strength in lora_args(args.lora)]


@contextlib.contextmanager
def library_bars_kept_out_of_logs(stream: TextIO | None = None) -> Iterator[None]:
    """Hugging Face's download bars and transformers' "Loading weights" bar off for the command where its stderr
    (`stream`) is no terminal: redrawn with carriage returns, each is one long line in a log (`docker logs`, a
    batch job's file, journald), thousands of redraws long over a download. Our own stages write whole lines there
    (`progress.LogLines`) and a download is said in one line as it starts. HF_HUB_DISABLE_PROGRESS_BARS, where set
    (0 too), decides instead; a notebook keeps its bars."""
    from motif_lite.progress import shows_bars_in_place

    stream = sys.stderr if stream is None else stream
    if "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ or shows_bars_in_place(stream):
        yield
        return
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils.tqdm import progress_bar_states

    # The calling program's own settings (one group of the Hub's bars off, transformers' off) are put back as they
    # were at the end, not turned all on: turning them on would undo what it chose.
    saved_groups = dict(progress_bar_states)
    # transformers reads huggingface_hub's setting as it is imported; where it is imported already it is told too.
    loaded = sys.modules.get("transformers.utils.logging")
    # One imported inside reads the Hub's setting then (off): it gets the one it would have read before.
    transformers_bars_were_on = loaded.is_progress_bar_enabled() if loaded else saved_groups.get("_global", True)
    disable_progress_bars()
    if loaded is not None:
        loaded.disable_progress_bar()
    try:
        yield
    finally:
        if transformers_bars_were_on and (now := sys.modules.get("transformers.utils.logging")) is not None:
            now.enable_progress_bar()  # it also clears the Hub's groups: they are put back after it
        progress_bar_states.clear()
        progress_bar_states.update(saved_groups)


def hub_bars_on() -> bool:
    """Whether huggingface_hub's bars are on now: diffusers' bars (`verify`) follow them, since diffusers reads
    neither HF_HUB_DISABLE_PROGRESS_BARS nor the Hub's switch. Off by that variable (=1), by the program that
    called us, or by `library_bars_kept_out_of_logs` in a log."""
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def text_from_argv(value: str) -> str:
    """argparse's type of the prompts: an argument as the UTF-8 text its bytes spell. Under a locale without UTF-8
    (`LC_ALL=C` with PYTHONUTF8=0, an ASCII one) Python keeps each byte of a UTF-8 character of the command line as
    a lone surrogate, and a prompt read with "$(cat prompt.txt)" from a UTF-8 file was refused as not UTF-8. Text
    that is already whole, or bytes that are not UTF-8 either, stay as they came."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:  # lone surrogates: bytes the locale's encoding could not read
        pass
    try:
        return os.fsencode(value).decode("utf-8")
    except UnicodeError:
        return value
