"""What to say about arguments a subcommand does not know: the flag meant, where one is recognizable.

People arrive with the names of the tools they used before (diffusers' `num_frames`, ComfyUI's `length`, ...) or
with a typo; argparse alone answers "unrecognized arguments" with the top-level usage.

This module decides which hint each unknown argument gets, and holds the commands' own advice on run's flags they
lack; the tables of other tools' flags are `foreign_flags`, and the hints that read a flag's value `flag_hints`.
"""

from __future__ import annotations

import argparse
import os
import re

from motif_lite import flag_spelling
from motif_lite.choices import LATENTS_SUFFIX, SAMPLERS, VIDEO_EXTENSIONS
from motif_lite.cli.flag_hints import (
    CFG_ONE,
    CLASSIC_CFG_ONE,
    VALUED_HINTS,
    duration_hint,
    is_one,
    other_sampler,
    value_of,
)
from motif_lite.cli.foreign_flags import OTHER_TOOLS_NAMES, OTHER_TOOLS_SETTINGS
from motif_lite.cli.lora_argv import extras_at, lora_strengths, repeat_once_joined
from motif_lite.cli.run_flags import run_only_parser
from motif_lite.shell_syntax import quoted


def suggestion(flag: str, known: list[str]) -> str | None:
    """The flag of `known` (a subcommand's option strings) that `flag` most likely means, or None."""
    name = flag_spelling.spelled(flag.split("=", 1)[0])
    if name in known:  # only its spelling differed (underscores, capitals)
        return name
    meant = OTHER_TOOLS_NAMES.get(name)
    if meant in known:
        return meant
    # A typo of our flag or of another tool's name for one (`--num-frame`, `--guidance_scal`): both are candidates.
    others = [other for other, ours in OTHER_TOOLS_NAMES.items() if ours in known]
    candidates = [k for k in known if k.startswith("--")] + others
    close = flag_spelling.closest_flag(name, candidates)
    return OTHER_TOOLS_NAMES.get(close, close) if close else None


def reject(parser: argparse.ArgumentParser, extras: list[str], args: argparse.Namespace) -> None:
    """Exit through `parser.error` (usage, one line, exit code 2) naming the unknown arguments and, for each
    unknown flag, the flag it most likely means; words without a flag in a command that takes a prompt are probably
    an unquoted prompt, or the rest of one (`args`: what was parsed, the prompt's first word included)."""
    known = flag_spelling.option_strings(parser)
    command = parser.prog.split()[-1]  # "motif-lite run" -> "run"; "motif-lite" itself without a command
    flags_by_advice: dict[str, list[str]] = {}  # advice -> the flags given it, in the order typed
    runs = []
    # A flag typed with full-width or typographic dashes (a Korean or Japanese input method on): said as such, not
    # taken for words of the prompt.
    lookalikes = {word: hint for word in extras if (hint := flag_spelling.lookalike_hint(word, known))}
    # Settings typed without their dashes (`seed=42`, `cfg 6`): as flags, not words of the prompt, where the
    # prompt hint would have put them.
    settings, taken = _bare_settings(extras, command, known, _switches(parser), args)
    # Strengths typed apart from their --lora's file: a negative one (`-1`) is one too, not a flag.
    argv = getattr(args, "argv", [])
    strengths, typed_apart = lora_strengths(argv) if "--lora" in known else ({}, set())
    not_flags = {*lookalikes, *strengths}
    typed_flags = [(i, word) for i, word in enumerate(extras) if word.startswith("-") and word not in not_flags]
    for index, flag in typed_flags:
        if hint := _flag_hint(flag, command, known, extras[index + 1 : index + 2], args):
            flags_by_advice.setdefault(hint.removeprefix(f"{flag}: "), []).append(flag)
        elif _left_to_run(flag, command, known):
            runs.append(flag)  # one hint for them all, after the loop
        elif flag.split("=", 1)[0] in known and "--" in extras[:index]:  # was "-h: did you mean -h?"
            flags_by_advice.setdefault("a flag after --, which ends the flags: leave the -- out", []).append(flag)
        elif meant := suggestion(flag, known):
            flags_by_advice.setdefault(f"did you mean {meant}?", []).append(flag)
    # One line per advice: stable-diffusion.cpp's --offload-to-cpu --vae-tiling --clip-on-cpu got the same
    # sentence three times over.
    hints = [
        *lookalikes.values(),
        *settings,
        *(f"{', '.join(flags)}: {advice}" for advice, flags in flags_by_advice.items()),
    ]
    if runs:
        hints.append(f"{', '.join(runs)}: {_LEFT_TO_RUN[command]}")
    # Only the words typed right after a --lora's file are strengths: a word of the prompt may be the same number.
    apart = extras_at(parser, argv, typed_apart) if typed_apart else set()
    # Words alone: a path without its flag, or a prompt.
    if not lookalikes and not typed_flags:
        rest = [(index, word) for index, word in enumerate(extras) if index not in taken]
        placed = {
            index: hint
            for index, word in rest
            if (hint := strengths[word] if index in apart else unit_apart_hint(word, argv) or path_hint(word, known))
            is not None
        }
        hints.extend(dict.fromkeys(placed.values()))  # a strength typed apart twice has one hint
        if apart and (repeat := repeat_once_joined(argv, typed_apart)) is not None:
            hints.append(repeat)  # said now: the --lora values the hint gives would be refused next for it
        loose = [word for index, word in rest if index not in placed]
        if "--prompt" in known and loose:
            words = [*([args.prompt] if getattr(args, "prompt", None) else []), *loose]
            hints.append(f'a prompt goes after -p, in quotes: -p "{" ".join(words)}"')
    elif apart:  # beside a mistyped flag too, as their place is known: else the flag's fix was refused for them next
        hints.extend(dict.fromkeys(strengths[extras[index]] for index in sorted(apart)))
        if (repeat := repeat_once_joined(argv, typed_apart)) is not None:
            hints.append(repeat)
    parser.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))


def lookalike_command(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """The error line for a flag of `motif-lite` itself typed with look-alike dashes where the command goes
    (`motif-lite －－help`), which argparse answers "invalid choice"; else None."""
    hint = flag_spelling.lookalike_hint(argv[0], flag_spelling.option_strings(parser)) if argv else None
    return f"{parser.prog}: error: {hint}" if hint else None


def _flag_hint(flag: str, command: str, known: list[str], following: list[str], args: argparse.Namespace) -> str | None:
    """The advice on one unknown `flag` of `command` (whose option strings are `known`; `following`: the word after
    it), or None. The first that applies wins: the command's own advice before another tool's names."""
    name = flag.split("=", 1)[0]
    spelled = flag_spelling.spelled(name)
    if name in DURATION_FLAGS and "--video-frames" in known:
        return duration_hint(flag, following, args)
    needs, valued = VALUED_HINTS.get(spelled, (None, None))
    if needs in known:  # a hint that shows the flags for the value given (--size 1280x720: -W 1280 -H 720)
        return f"{flag}: {valued(value_of(flag, following))}"
    meant = OTHER_TOOLS_NAMES.get(spelled)
    if meant == "--cfg-scale" and meant in known and is_one(value_of(flag, following)):
        return f"{flag}: {CLASSIC_CFG_ONE if getattr(args, 'guidance', None) == 'cfg' else CFG_ONE}"
    if meant == "--sampling-method" and meant in known and (other := other_sampler(value_of(flag, following))):
        return f"{flag}: the sampler is --sampling-method {'|'.join(SAMPLERS)}{other}"
    if spelled == "--version":  # a flag of motif-lite itself, not of its commands
        return f"{flag}: the version is motif-lite --version"
    if (command, spelled) in _COMMAND_ADVICE:
        return f"{flag}: {_COMMAND_ADVICE[command, spelled]}"
    if spelled == "--lora" and "--lora" not in known:  # check, decode, verify
        return f"{flag}: {LORA_CHECKED_BY_DRY_RUN}"
    needs, advice = OTHER_TOOLS_SETTINGS.get(name) or OTHER_TOOLS_SETTINGS.get(spelled, (None, None))
    if needs not in known:
        return None
    return f"{flag}: {advice() if callable(advice) else advice}"


def _switches(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    """The option strings of `parser` that take no value, each with the one that turns it the other way where
    there is one (a BooleanOptionalAction's `--batch-guidance` and `--no-batch-guidance`), else None."""
    switches: dict[str, str | None] = {}
    for action in (action for action in parser._actions if action.nargs == 0):
        for option in action.option_strings:
            other = "--" + option[5:] if option.startswith("--no-") else "--no-" + option.removeprefix("--")
            switches[option] = other if isinstance(action, argparse.BooleanOptionalAction) else None
    return switches


def _bare_settings(
    extras: list[str], command: str, known: list[str], switches: dict[str, str | None], args: argparse.Namespace
) -> tuple[list[str], set[int]]:
    """The hints for settings among `extras` typed without their dashes, as NAME=VALUE (`seed=42`, as a ComfyUI
    widget or a config file writes it) or as NAME and a number where NAME is spelled as no word of a prompt is
    (`batch_size 2`, `cfg 6`: `_setting_name`), and the indices of the words they take. Only a NAME that --NAME
    answers counts (`_setting_hint`; `switches`: the option strings that take no value, `_switches`)."""
    hints: list[str] = []
    taken: set[int] = set()
    for index, word in enumerate(extras):
        following = extras[index + 1] if index + 1 < len(extras) else ""
        if index in taken or word.startswith("-"):
            continue
        if "=" in word:
            name, _, value = word.partition("=")
            said, used = word, {index}
        elif flag_spelling.is_number(following) and _setting_name(word):
            name, value, said, used = word, following, f"{word} {following}", {index, index + 1}
        else:
            continue
        if hint := _setting_hint(name, value, command, known, switches, args):
            hints.append(f"{said}: {hint}")
            taken |= used
    return hints, taken


def _setting_name(word: str) -> bool:
    """Whether `word`, before a number, is a setting's name rather than a word of an unquoted prompt: one in lower
    case, as flags and ComfyUI's widgets are spelled, joined with an underscore (`batch_size`) or without a vowel
    (`cfg`, `fps`, `crf`). Plain words that name flags (model, type, steps, seed, length, image) are prose too:
    `-p a tesla model 3 driving` lost "model 3"; and so are acronyms in capitals: `a LLM 3 robot` lost "LLM 3" to
    --text-encoder 3, `an FPS 2 game` its "FPS 2" to --fps 2."""
    return word.islower() and ("_" in word or not re.search(r"[aeiouy]", word))


# A switch given one of these (`compile=0`) was meant off, which is what leaving the switch out gives.
_OFF_VALUES = ("0", "false", "no", "off", "none", "disable", "disabled")


def _setting_hint(
    name: str, value: str, command: str, known: list[str], switches: dict[str, str | None], args: argparse.Namespace
) -> str | None:
    """What --NAME VALUE is here, when --NAME is a flag of ours or another tool's name with a hint (`seed`, 42:
    --seed 42; `length`, 81: --video-frames 81); for a switch (`switches`: `compile`), the switch alone, which
    takes no value, or for an off value the switch that turns it off (`batch_guidance=0`: --no-batch-guidance), or
    none; else None. Only exact names count: a close spelling is more likely a word of an unquoted prompt."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        return None
    flag = flag_spelling.spelled("--" + name)
    typed = f"{flag}={value}"
    if flag not in known and (advice := _flag_hint(typed, command, known, [], args)):
        return advice.removeprefix(f"{typed}: ")
    ours = flag if flag in known else OTHER_TOOLS_NAMES.get(flag)
    if ours not in known:
        return None
    if ours in switches:  # `--compile 1` is refused again, its 1 taken for a word of the prompt
        if value.strip().lower() not in _OFF_VALUES:
            return f"switches are flags here, and take no value: {ours}"
        # --batch-guidance is on by default where the memory plan allows: leaving it out does not turn it off.
        if (other := switches[ours]) is not None:
            return f"switches are flags here, and take no value: {other}"
        return f"{ours} is a switch that takes no value, and off unless given: leave it out"
    return f"settings are flags here: {ours} {quoted(value)}"


def _left_to_run(flag: str, command: str, known: list[str]) -> bool:
    """Whether `flag` is one of run's that `command` (decode, check; its option strings `known`) leaves to run."""
    spelled = flag_spelling.spelled(flag.split("=", 1)[0])
    return command in _LEFT_TO_RUN and spelled not in known and spelled in _run_option_strings()


def _run_option_strings() -> list[str]:
    return flag_spelling.option_strings(run_only_parser())


SERVER_ON_ONE_GPU = ("the server runs on one GPU; for several, start one server per GPU (motif-lite serve --device "
                     "cuda:1 --port 8001), or use motif-lite run --gpus N")  # fmt: skip
SERVER_FROM_A_FILE = ("a server loads its transformer once, from a GGUF file: make it once with python -m "
                      "motif_lite.quantize CHECKPOINT --type Q8_0 -o transformer-Q8_0.gguf and serve --gguf "
                      "transformer-Q8_0.gguf, or serve --gguf Q4_K_M (the official file)")  # fmt: skip
QUANTIZED_FROM_A_FILE = ("this command reads quantized weights from a GGUF file: --gguf Q4_K_M (the official "
                         "file) or one python -m motif_lite.quantize CHECKPOINT --type Q8_0 makes; run's --quantize "
                         "quantizes the transformer as it loads")  # fmt: skip
TEXT_ENCODER_FROM_A_FILE = ("this command loads a quantized text encoder from a GGUF file: make it once with "
                            "python -m motif_lite.quantize CHECKPOINT --component text_encoder --type Q8_0 -o "
                            "te-Q8_0.gguf, then --text-encoder-gguf te-Q8_0.gguf; run's --text-encoder-quantize "
                            "quantizes it as it loads")  # fmt: skip
LORA_CHECKED_BY_DRY_RUN = (
    "this command takes no LoRA (LoRAs change the transformer); a dry run checks one "
    'against it without generating: motif-lite run -p "..." --lora FILE --dry-run'
)
DECODE_KEEPS_THE_RUNS = (
    "decode makes the video of the latents a run sampled: its prompt, seed, size, frames, fps and steps were the "
    "run's (stored in the file) and no transformer runs; it takes -o, --crf, -m, --vae, --dtype, --device, --vram "
    "and --dry-run (another video: motif-lite run)"
)
CHECK_PLANS_A_DEFAULT_RUN = (
    "check takes only the files' flags (-m, --gguf, --text-encoder-gguf, --diffusion-model, --text-encoder, --vae) "
    "and plans the official default run; your run's settings, files and memory plan, without loading anything: "
    "motif-lite run with the same flags and --dry-run"
)
VERIFY_DRY_RUN = ("verify has no dry run: motif-lite check with the same -m and files checks them and this "
                  "machine without loading anything")  # fmt: skip
CHECK_IS_A_DRY_RUN = ("check is one already: it reads no weights and downloads nothing; a run's own settings and "
                      "memory plan: motif-lite run with the same flags and --dry-run")  # fmt: skip
DURATION_FLAGS = ("--seconds", "--duration")  # a clip's length in seconds, as other tools take it
# A command's own advice on a flag it lacks (and run takes), by (command, flag).
_COMMAND_ADVICE = {
    **{("serve", flag): SERVER_ON_ONE_GPU for flag in ("--gpus", "--sp")},
    **{("serve", flag): SERVER_FROM_A_FILE for flag in ("--quantize", "--type")},
    **{(command, flag): QUANTIZED_FROM_A_FILE for command in ("check", "verify") for flag in ("--quantize", "--type")},
    # serve, check and verify take --text-encoder-gguf only
    **{(command, "--text-encoder-quantize"): TEXT_ENCODER_FROM_A_FILE for command in ("serve", "check", "verify")},
    ("verify", "--dry-run"): VERIFY_DRY_RUN,
    ("check", "--dry-run"): CHECK_IS_A_DRY_RUN,
}
# The commands that leave the flags of run they lack to it (a flag with advice of its own gets that instead), and the
# one hint for them all: decode's latents file holds the run's settings; check plans the official default run.
_LEFT_TO_RUN = {"decode": DECODE_KEEPS_THE_RUNS, "check": CHECK_PLANS_A_DEFAULT_RUN}


def unit_apart_hint(word: str, argv: list[str]) -> str | None:
    """The hint for a memory budget's unit typed as a word of its own (`--vram 8 GB`, `--ram=32 GB`), or None: the
    budget was read without it, and the unit was taken for a word of the prompt."""
    if word.lower() not in ("g", "gb", "gib", "m", "mb", "mib"):
        return None
    for index in range(1, len(argv)):
        if argv[index] != word:
            continue
        flag, equals, value = argv[index - 1].partition("=")  # `--vram=8 GB`
        if not equals and index >= 2:  # `--vram 8 GB`
            flag, value = argv[index - 2], argv[index - 1]
        if flag in ("--vram", "--ram"):
            return f"{word}: the unit goes with its number, no space: {flag} {value}{word}"
    return None


def path_hint(word: str, known: list[str]) -> str | None:
    """Where a path given without its flag goes, for a command whose option strings are `known`, or None: diffusers'
    `from_pretrained(path)`, the quantizer and sd.cpp's `-m` make a checkpoint folder the first thing people type,
    and `run -p "a fox" fox.mp4` names the output without -o. Without this, the path was taken for part of a
    prompt."""
    lower, pasted = word.lower(), quoted(word)
    if lower.endswith(LATENTS_SUFFIX) and "--resume" in known:
        return f"{word}: a stopped run's latents go after --resume: --resume {pasted}"
    if lower.endswith(".gguf") and "--gguf" in known:
        return f"{word}: a GGUF file goes after --gguf: --gguf {pasted}"
    if lower.endswith(VIDEO_EXTENSIONS) and "--output" in known:
        return f"{word}: the output goes after -o: -o {pasted}"
    folder = os.path.expanduser(word)
    # A word of an unquoted prompt may name a folder here too ("snow"): a path or a checkpoint, not a plain word.
    looks_like_one = "/" in word or os.sep in word or os.path.isfile(os.path.join(folder, "model_index.json"))
    if os.path.isdir(folder) and looks_like_one and "--model" in known:
        return f"{word}: a checkpoint folder goes after -m: -m {pasted}"
    return None
