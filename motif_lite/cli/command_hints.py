"""What to say when the command itself is wrong: another tool's name for one of ours or a program of its own
(`quantize`), a typo (`chek`), a prompt where the command goes, stable-diffusion.cpp's `-M MODE`, or a flag of `run`
before any command. argparse alone answers "invalid choice" and lists the commands.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence

from motif_lite import flag_spelling
from motif_lite.choices import LATENTS_SUFFIX
from motif_lite.cli.run_flags import run_only_parser
from motif_lite.shell_syntax import command_line, quoted

# The ideographic space, which a Japanese, Chinese or Korean input method in full-width mode types for the space bar:
# the shell does not split words at it.
IDEOGRAPHIC_SPACE = "\u3000"

# Commands people type that motif-lite names otherwise, or has as a program of its own (stable-diffusion.cpp's
# `-M convert`, llama.cpp's llama-quantize): what to type instead.
_QUANTIZER = ("the GGUF quantizer is a program of its own: python -m motif_lite.quantize SRC -o OUT.gguf --type "
              "Q4_K_M (--help lists the types; docs/quantize.md)")  # fmt: skip
OTHER_COMMAND_NAMES = {
    "quantize": _QUANTIZER,
    "convert": _QUANTIZER,
    "generate": 'the command that makes a video is run: motif-lite run -p "..."',
    "download": "a run downloads what it needs; motif-lite check -m FOLDER prints the hf download command for "
    "whatever a local checkpoint lacks",
    "version": "the version is a flag: motif-lite --version",  # a close match of "verify", which it is not
    # AUTOMATIC1111's and other tools' modes: here one command makes both kinds of video
    "txt2vid": 'the command that makes a video is run: motif-lite run -p "..."',
    "t2v": 'the command that makes a video is run: motif-lite run -p "..."',
    "img2vid": 'the command that makes a video is run, with the first frame: motif-lite run -i IMAGE -p "..."',
    "i2v": 'the command that makes a video is run, with the first frame: motif-lite run -i IMAGE -p "..."',
}


def other_command(argv: Sequence[str]) -> str | None:
    """The error line for a command that is not a `motif-lite` subcommand but a program of its own, or another
    tool's name for one of ours; else None."""
    if argv and argv[0] in OTHER_COMMAND_NAMES:
        return f"motif-lite: error: there is no '{argv[0]}' command; {OTHER_COMMAND_NAMES[argv[0]]}"
    if argv and argv[0] == "resume":  # `run --resume FILE` typed as a command: the line, with the file given
        line = command_line(resume_line(argv[1:]))
        return f"motif-lite: error: there is no 'resume' command; a stopped run goes on with run: motif-lite {line}"
    return None


def resume_line(words: Sequence[str]) -> list[str]:
    """The `run` line that `resume WORDS` meant: --resume with the latents file among `words` (a placeholder where
    none is given) and the other words after it; `run --help` for a -h/--help, which `--resume` would take for its
    file. Copied in order, a flag first (`resume -o out.mp4 FILE`) became --resume's value: argparse's error."""
    if "-h" in words or "--help" in words:
        return ["run", "--help"]
    # The file is a word that ends as a latents file does, else the first that is neither a flag nor a flag's value:
    # `--lora style.safetensors` and `-o out.mp4` are another flag's files.
    run_flags = run_only_parser()._option_string_actions  # argparse keeps no public table
    values = {i + 1 for i, word in enumerate(words) if word in run_flags and run_flags[word].nargs != 0}
    loose = [i for i, word in enumerate(words) if not word.startswith("-") and i not in values]
    named = [i for i in loose if words[i].endswith(LATENTS_SUFFIX)]
    at = (named or loose or [None])[0]
    file = None if at is None else words[at]
    rest = [word for i, word in enumerate(words) if i != at]
    return ["run", "--resume", file or "FILE.latents.safetensors", *rest]


def prompt_as_command(argv: Sequence[str]) -> str | None:
    """The error line for a prompt given where the command goes (`motif-lite "a red fox"`, as a diffusers script or
    an LLM CLI takes its prompt), with the `run` line that makes that video; None when the first word is no prompt
    (no command has a space in its name)."""
    if not argv or argv[0].startswith("-") or not any(c.isspace() for c in argv[0].strip()):
        return None
    meant = command_line(["run", "-p", argv[0], *argv[1:]])
    return f"motif-lite: error: {argv[0]!r} is no command; a prompt goes to run, after -p: motif-lite {meant}"


def misspelled_command(argv: Sequence[str], parser: argparse.ArgumentParser, before: Sequence[str] = ()) -> str | None:
    """The error line for a command that is a typo of one of ours (`chek`, `verfiy`), with the command line it
    most likely meant, or None. `parser`: the `motif-lite` parser; `before`: the words the line meant keeps before
    the command (`help` of `motif-lite help rnu`). argparse alone lists the commands, leaving the user to find their
    own mistake among them."""
    if not argv or argv[0].startswith("-"):
        return None
    commands = subcommands(parser)
    if argv[0] in commands:
        return None
    close = difflib.get_close_matches(argv[0].lower(), list(commands), n=1, cutoff=0.6)
    if not close:
        return None
    meant = command_line([*before, close[0], *argv[1:]])
    return f"motif-lite: error: there is no '{argv[0]}' command: did you mean motif-lite {meant}"


def sd_cpp_mode(argv: Sequence[str]) -> str | None:
    """The error line for a command line that starts with stable-diffusion.cpp's run mode (`-M vid_gen ...`, as
    its `sd` takes it), with the command meant: `run` and the rest of the line, or the quantizer for its `convert`
    mode; else None. argparse alone took the mode's value for the command: "invalid choice: 'vid_gen'"."""
    if not argv or argv[0].split("=", 1)[0] not in ("-M", "--mode"):
        return None
    given, _, attached = argv[0].partition("=")
    mode, rest = (attached, argv[1:]) if attached else (argv[1] if len(argv) > 1 else "", argv[2:])
    said = f"{given} {mode}".strip()
    if mode == "convert":
        return f"motif-lite: error: stable-diffusion.cpp's {said}: {_QUANTIZER}"
    line = command_line(["run", *_in_our_names(rest)])
    return f"motif-lite: error: stable-diffusion.cpp's mode is the command here: did you mean motif-lite {line}"


def _in_our_names(words: Sequence[str]) -> list[str]:
    """stable-diffusion.cpp's words with its flags that are ours under another name renamed (`--t5xxl FILE` is
    `--text-encoder FILE`), and its `-m FILE.gguf` given to --gguf, which takes it here: the command meant runs, or is
    answered for the flags that have no counterpart, without a round of "did you mean" for each renamed one. Only a
    flag given a value is renamed: a switch of theirs may be a flag of ours that takes one (`--xformers` is
    `--attention-backend NAME`), which run's answer names."""
    from motif_lite.cli.foreign_flags import OTHER_TOOLS_NAMES

    renamed = []
    for i, word in enumerate(words):
        flag, equals, value = word.partition("=")
        following = words[i + 1] if i + 1 < len(words) else ""
        given = value or ("" if following.startswith("-") else following)
        if flag in ("-m", "--model") and given.lower().endswith(".gguf"):
            flag = "--gguf"
        elif flag.startswith("--") and given:
            flag = OTHER_TOOLS_NAMES.get(flag.replace("_", "-"), flag)
        renamed.append(f"{flag}{equals}{value}")
    return renamed


def missing_command(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The error line for a command line that starts with a flag of `run` that the top level does not take
    (stable-diffusion.cpp's `sd` takes its flags alone: `--gguf Q4_K_M -p "a fox"`), or None. `parser`: the
    `motif-lite` parser. argparse alone would take the flag's value for the command: "invalid choice: 'Q4_K_M'".
    A flag typed with look-alike dashes (`－－steps 4`) gets the line with it typed in ASCII."""
    if not argv:
        return None
    flag = argv[0].split("=", 1)[0]
    ours = flag_spelling.option_strings(parser)
    run_flags = flag_spelling.option_strings(subcommands(parser)["run"])
    if flag in ours or flag_spelling.lookalike_flag(argv[0], ours):  # `－－help`: lookalike_command's
        return None
    if flag in run_flags:
        line = command_line(_in_our_names(argv))
        return f"motif-lite: error: the command comes first: did you mean motif-lite run {line}"
    found = lookalike_with_value(argv, 0, subcommands(parser)["run"])
    if found is None:
        return None
    lookalike, used = found
    line = " ".join(["run", lookalike.typed, *([command_line(argv[used:])] if argv[used:] else [])])
    return f"motif-lite: error: the command comes first, and {lookalike.said}: did you mean motif-lite {line}"


def wide_space_before_value(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The error line's message for the first flag of a subcommand's words (`run -p　 fox`) that ends at an
    ideographic space, as `lookalike_with_value` advises it; else None. Only the words before `--` are flags."""
    commands = subcommands(parser)
    if not argv or argv[0] not in commands:
        return None
    command = commands[argv[0]]
    words = list(argv[1 : argv.index("--")] if "--" in argv else argv[1:])
    for index, word in enumerate(words):
        if index and _value_goes_next(words[index - 1], command):  # `-p "—steps　"`: a prompt may hold such words
            continue
        if _takes_value(word.partition("=")[0], command):  # `--prompt=赤い狐　`: the wide space is the value's
            continue
        if word.endswith(IDEOGRAPHIC_SPACE) and (found := lookalike_with_value(words, index, command)):
            return f"{found[0].said}: type {found[0].typed}"
    return None


def _value_goes_next(word: str, parser: argparse.ArgumentParser) -> bool:
    """Whether the word after `word` is a flag's value: `word` is a flag of `parser` that takes one, typed in ASCII
    or with look-alike dashes (`－－prompt`, which argparse does not know but the advice types as --prompt), and
    given without its value (`－－prompt=fox` and `－－prompt　fox` hold theirs)."""
    if _takes_value(word, parser):
        return True
    found = flag_spelling.lookalike_flag(word, flag_spelling.option_strings(parser))
    return found is not None and _takes_value(found.typed, parser)


def _takes_value(word: str, parser: argparse.ArgumentParser) -> bool:
    """Whether `word` is one of `parser`'s flags that take a value."""
    action = parser._option_string_actions.get(word)  # argparse keeps no public map
    return action is not None and action.nargs != 0


def lookalike_with_value(
    words: Sequence[str], index: int, parser: argparse.ArgumentParser
) -> tuple[flag_spelling.Lookalike, int] | None:
    """`flag_spelling.lookalike_flag` for `words[index]` (a flag of `parser`), and the index of the first word its
    advice leaves out. A word that ends at its ideographic space (`-p　`, then `fox`: the input method typed U+3000
    where the space goes, and the user a space after it) has its value in the next word, which lookalike_flag does
    not see: it advised `-p ''`. Here the advice takes that word for the value, as the flag typed in ASCII would;
    a switch takes none (`--dry-run`, not `--dry-run ''`), and a flag followed by no value is shown with the
    value's name (`-p PROMPT`)."""
    found = flag_spelling.lookalike_flag(words[index], flag_spelling.option_strings(parser))
    if found is None:
        return None
    typed = found.words  # what lookalike_flag advises: the flag, and the value it found in the word
    if typed[1:] != ("",):  # a value in the word (`-p　fox`), or no wide space at all (`－－steps`)
        return found, index + 1
    flag = typed[0]
    action = parser._option_string_actions.get(flag.partition("=")[0])  # argparse keeps no public map
    following = words[index + 1] if index + 1 < len(words) else None
    if action is None or action.nargs == 0 or "=" in flag:  # a switch, or a value given after '=' (`－－steps=4　`)
        return found._replace(typed=quoted(flag)), index + 1
    if following is None or (following.startswith("-") and not flag_spelling.is_number(following)):
        return found._replace(typed=f"{quoted(flag)} {flag_spelling.value_name(action)}"), index + 1
    return found._replace(typed=f"{quoted(flag)} {quoted(following)}"), index + 2


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The `motif-lite` parser's commands, by name."""
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices


# `-w 832 -h 480`, the size in lower case (as many tools and scripts write it): here the size flags are capitals,
# and argparse takes `-h` for help, so such a run printed run's help and ended with exit code 0, making no video.
_SMALL_SIZE_FLAG = re.compile(r"-([wh])=?(\d+)?")


def lowercase_size_flag(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The error line's message for the first `-w N` or `-h N` (also `-w=N`, `-hN`) in a command with -W and -H;
    else None. `-h` alone stays the help flag. Only the words before `--` are flags, and a flag's value (`-p -h`)
    is none."""
    commands = subcommands(parser)
    if not argv or argv[0] not in commands or "-W" not in flag_spelling.option_strings(commands[argv[0]]):
        return None
    command = commands[argv[0]]
    words = list(argv[1 : argv.index("--")] if "--" in argv else argv[1:])
    for index, word in enumerate(words):
        if index and _value_goes_next(words[index - 1], command):
            continue
        if (found := _SMALL_SIZE_FLAG.fullmatch(word)) is None:
            continue
        value = found[2] or (words[index + 1] if index + 1 < len(words) and words[index + 1].isdigit() else None)
        if value is None:
            continue
        typed = word if found[2] else f"{word} {value}"
        if found[1] == "h":
            return f"{typed}: -h is the help flag; the height is -H {value} (a capital H, as the width is -W)"
        return f"{typed}: the width is -W {value} (a capital W, as the height is -H: -h is the help flag)"
    return None
