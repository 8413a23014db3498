"""The examples in README.md and docs/*.md work with the code as it is. Nothing is run: no model loads.

Commands: every `motif-lite ...`, `python -m motif_lite ...`, `torchrun ... -m motif_lite ...` and `python -m
motif_lite.quantize ...` of a fenced or indented code block (continuation lines joined; `$ ` prompts, comments and
`VAR=value` prefixes dropped), and every inline code span that starts with one of those programs, is parsed by the
program's own parser the way its `main` parses it (an unknown flag is refused with `unknown_flags`' hint). An
example without placeholders (`...` as more arguments, `N`, a flag's metavar) then goes through the checks the
command makes before it loads anything: `run`'s `check_flags` and `take_weight_flags`, the request's `resolve()` (sizes,
frames, steps, output format and fps; the image is not read, the output goes to a temporary folder), `--resume`'s
refusal of the flags that choose the video and `--preview`, `decode`'s output, `verify`'s `check_flags`, the quantizer's
`-o`, recipe and `--keep` rules (flags with one bad value, e.g. `--step-cache`, `--port`, `--max-video`, are refused
by their parser). An inline span may leave
out the prompt, the output and required arguments. Examples that show a mistake on purpose are listed in
INTENDED_ERRORS and must fail. Spans that start with a flag (`--vram 8GB`) must parse as some command's arguments;
flag tables name flags of the command their section documents; `pip install` names extras pyproject.toml has.

Python: every ```python block compiles; `from motif_lite... import X` names something that exists; a call of one of
ours (imported, assigned from one of ours, or a name the docs use without defining it: DOC_VALUES, DOC_METHODS, or a
top-level name defined once in the package) binds to its signature (keywords, number of positional arguments), and
attributes read from our values exist. Inline spans that parse as Python are checked the same way.

Server: docs/server.md's route and field tables, the curl commands and the openai SDK calls (`client.videos.*`) name
routes the server's app has (the API under /v1 and the routes outside it, /health and the page), query parameters
and create fields the API has (the server's own, such as `loras`, included), with values it accepts (the list's
query checks, `parse_create`, then `resolve()`), and SDK arguments the installed SDK takes.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import importlib
import inspect
import io
import json
import re
import shlex
import sys
import types
import typing
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.cli import command_hints, unknown_flags
from motif_lite.cli import resume as resume_command
from motif_lite.cli import run_request as run_command
from motif_lite.cli import verify as verify_command
from motif_lite.cli.run_flags import take_weight_flags
from motif_lite.cli.run_inputs import run_inputs
from motif_lite.errors import MotifLiteError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")

# Examples that show a mistake and what it prints: (file, command as written) -> why it is there. Each must fail.
INTENDED_ERRORS = {
    ("docs/usage.md", "motif-lite run a red fox"): "the hint for an unquoted prompt",
    ("docs/usage.md", "motif-lite run -p a red fox"): "the hint for an unquoted prompt",
    ("docs/quantize.md", "motif-lite quantize"): "there is no quantize subcommand: the doc says so",
    ("docs/usage.md", "motif-lite check ./Motif-Video-2B"): "the hint for a path without its flag",
    ("docs/usage.md", "motif-lite chek"): "the hint for a misspelled command",
}

# Words that stand for a value the reader fills in (beside a flag's own metavar, which counts too).
PLACEHOLDERS = {"N", "K", "M", "S", "GiB", "MB", "KEY", "DIR", "FILE", "ORIGIN", "WxHxF", "THRESHOLD", "CKPT", "SRC"}
ELLIPSES = ("...", "…")
PROMPTS = ("prompt", "negative_prompt")  # the flags that take any text


# ---------------------------------------------------------------------------------------------------------------
# Reading the docs


@dataclass(frozen=True)
class Block:
    """A code block: its language ("" when none; "indented" for a 4-space block) and its lines, numbered."""

    path: Path
    lang: str
    lines: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Doc:
    path: Path
    blocks: tuple[Block, ...]
    prose: str  # the text with every code block blanked out (line numbers kept)

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    def spans(self) -> list[tuple[int, str]]:
        """(line, text) of every inline code span of the prose; a span may continue on the next line."""
        found = []
        for match in re.finditer(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*?)`(?!`)", self.prose):
            if "\n\n" not in match.group(1):
                text = re.sub(r"\s*\n\s*", " ", match.group(1))
                found.append((self.prose.count("\n", 0, match.start()) + 1, text))
        return found


def read_doc(path: Path) -> Doc:
    lines = path.read_text().splitlines()
    blocks, prose = [], list(lines)
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", lines[i])
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence[1])), len(lines))
            blocks.append(Block(path, fence[2], tuple((n + 1, lines[n]) for n in range(i + 1, end))))
            prose[i : end + 1] = [""] * (end + 1 - i)
            i = end + 1
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):  # an indented block
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append(Block(path, "indented", tuple((n + 1, lines[n][4:]) for n in range(i, end))))
            prose[i:end] = [""] * (end - i)
            i = end
        else:
            i += 1
    return Doc(path, tuple(blocks), "\n".join(prose))


ALL_DOCS = [read_doc(path) for path in DOCS]


@dataclass(frozen=True)
class Example:
    """One command of the docs, split into words as a shell would."""

    doc: str
    line: int
    text: str  # as written (continuation lines joined)
    words: tuple[str, ...]
    inline: bool  # from an inline code span: often a fragment naming a flag

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at `&&`, `||`, `;`, `|`), comments dropped, each without its
    `VAR=value` prefixes."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in ("&&", "||", ";", "|", "&"):
            commands.append([])
        else:
            commands[-1].append(word)
    for command in commands:
        while command and re.fullmatch(r"[A-Za-z_]\w*=.*", command[0]) and len(command) > 1:
            del command[0]
    return [command for command in commands if command]


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """The block's lines with `\\` continuations joined, each with the number of its first line, `$ ` removed."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in block.lines:
        start, text = pending if pending is not None else (number, "")
        text += line.strip() if pending is not None else line.lstrip()
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip() + " ")
            continue
        pending = None
        joined.append((start, text[2:] if text.startswith("$ ") else text))
    if pending is not None:
        joined.append(pending)
    return joined


PROGRAM = re.compile(r"^(motif-lite|python3? -m motif_lite|torchrun)\b")


def command_examples() -> list[Example]:
    """Every command of ours in the docs' code blocks and inline code spans."""
    examples = []
    for doc in ALL_DOCS:
        for block in doc.blocks:
            if block.lang not in (*SHELL_LANGUAGES, "", "indented"):
                continue
            for number, text in logical_lines(block):
                # In a shell block every line is a command line (`pip install ... && motif-lite ...`); elsewhere
                # (output, an indented block) only a line that starts with one of our programs.
                if block.lang not in SHELL_LANGUAGES and not PROGRAM.match(text):
                    continue
                for words in shell_commands(text):
                    if PROGRAM.match(" ".join(words)):
                        examples.append(Example(doc.name, number, text.split(" #")[0].strip(), tuple(words), False))
        for number, text in doc.spans():
            try:
                commands = shell_commands(text)
            except ValueError:  # unbalanced quotes: prose, not a command
                continue
            for words in commands:
                if PROGRAM.match(" ".join(words)) and len(words) > 1:  # the bare name is a mention
                    examples.append(Example(doc.name, number, text, tuple(words), True))
    return examples


# ---------------------------------------------------------------------------------------------------------------
# Parsing a command


def program_and_argv(words: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """("motif-lite" or "quantize", the arguments) of a command line, or None for a program that is not ours."""
    if words[0] == "motif-lite":
        return "motif-lite", list(words[1:])
    if "-m" not in words:
        return None
    at = words.index("-m")
    module = words[at + 1] if at + 1 < len(words) else ""
    if module in ("motif_lite", "motif_lite.cli"):
        return "motif-lite", list(words[at + 2 :])
    if module == "motif_lite.quantize":
        return "quantize", list(words[at + 2 :])
    return None


@functools.cache
def motif_lite_parser() -> argparse.ArgumentParser:
    """`motif-lite`'s parser, built once (parsing does not change it)."""
    return cli.build_parser()


@functools.cache
def quantize_parser() -> argparse.ArgumentParser:
    from motif_lite.quantize.cli import build_parser

    return build_parser()


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def option_actions(program: str, argv: list[str]) -> dict[str, argparse.Action]:
    """The flags (option string -> action) of the parser that reads `argv`'s options."""
    if program == "quantize":
        return quantize_parser()._option_string_actions
    parser = motif_lite_parser()
    sub = subcommand_parsers(parser).get(argv[0]) if argv else None
    return (sub or parser)._option_string_actions


def sample_value(action: argparse.Action) -> str:
    """A valid value for a flag whose value the docs leave to the reader."""
    if action.choices:
        return str(next(iter(action.choices)))
    if action.type in (None, str):
        return "placeholder"
    for value in SAMPLE_VALUES:  # the first the flag's type takes
        with contextlib.suppress(ValueError, argparse.ArgumentTypeError):
            action.type(value)
            return value
    raise AssertionError(f"no sample value for {action.option_strings}: add one to SAMPLE_VALUES")


SAMPLE_VALUES = ("2", "1280x736x121", "Q8_0", "*")  # numbers; --max-video's WxHxF; --quantize's type; --cors-origin


def fill_placeholders(example: Example, program: str, argv: list[str]) -> tuple[list[str], bool]:
    """(the arguments with each placeholder value replaced by a valid one, whether the example is a fragment: it
    has placeholders or `...`). `[--flag]` is an optional flag: it is kept; `[flags]` and a `...` that is not a
    flag's value stand for more arguments: they are dropped."""
    actions = option_actions(program, argv)
    words, fragment, expecting = [], False, None
    for word in argv:
        if expecting is not None:
            # `-p "..."` is a prompt like any other; another placeholder value makes the example a fragment.
            if expecting.dest not in PROMPTS and (
                word in ELLIPSES or word in PLACEHOLDERS or word == expecting.metavar
            ):
                fragment = True
                if expecting.type not in (None, str) or expecting.choices:
                    word = sample_value(expecting)
            words.append(word)
            expecting = None
            continue
        if word in ELLIPSES or re.fullmatch(r"\[[a-z ]+\]", word):
            fragment = True
            continue
        if re.fullmatch(r"\[-.*\]", word):
            word = word[1:-1]
        if word in PLACEHOLDERS:
            fragment = True
        action = actions.get(word)
        if action is not None and action.nargs != 0:
            expecting = action
        words.append(word)
    if expecting is not None and example.inline:  # a span that names a flag: `motif-lite run --gguf`
        words.append(sample_value(expecting))
        fragment = True
    return words, fragment


def parse_motif_lite(argv: list[str]) -> argparse.Namespace | None:
    """`argv` parsed as `motif_lite.cli.main` parses it (None for --help and --version); a refusal raises
    `ParseError` with argparse's message."""
    if argv[:1] == ["help"]:  # `motif-lite help [COMMAND]` shows that command's --help
        return parse_motif_lite([*argv[1:2], "--help"])
    parser = motif_lite_parser()
    hint = command_hints.other_command(argv)
    if hint is not None:
        raise ParseError(hint)
    with _argparse_errors():
        args, extras = parser.parse_known_args(argv)
        if extras:
            unknown_flags.reject(getattr(args, "command_parser", parser), extras, args)
    if args is None or args.command is None:
        return None
    args.argv = argv
    return args


def parse_quantize(argv: list[str]) -> argparse.Namespace | None:
    """`argv` parsed as `python -m motif_lite.quantize` parses it."""
    parser = quantize_parser()
    with _argparse_errors():
        args, extras = parser.parse_known_args(argv)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


class ParseError(Exception):
    pass


@contextlib.contextmanager
def _argparse_errors():
    """argparse's exit as `ParseError` (its message: the last line it printed), `--help`/`--version` as success."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ParseError(err.getvalue().strip().splitlines()[-1]) from None
        raise _Exited from None


class _Exited(Exception):
    """--help or --version: printed, exit code 0."""


# ---------------------------------------------------------------------------------------------------------------
# What each command checks before it loads anything


def checks_before_loading(program: str, args: argparse.Namespace, tmp: Path) -> None:
    """The checks `program` makes from its flags alone, with no weights and no files: a `MotifLiteError` says
    what is wrong. Paths the run writes are moved into `tmp`; input files are not read."""
    if program == "quantize":
        from motif_lite.quantize.cli import chosen_recipe
        from motif_lite.quantize.recipes import parse_keep

        if args.output is None:
            raise MotifLiteError("the following arguments are required: -o/--output")
        chosen_recipe(args)
        parse_keep(args.keep)
        return
    command = args.command
    if command in ("run", "check", "verify", "serve"):
        take_weight_flags(args)
    if command == "run":
        run_command.check_flags(args, resume=object() if args.resume is not None else None)
        if args.resume is not None:  # the video's flags come from the file: run refuses them
            given = run_inputs(args).typed
            clash = [dest for dest in resume_command.REQUEST_DESTS if dest in given]
            if clash:
                raise MotifLiteError(f"--resume goes on with the video its file describes: {clash} given")
        else:
            request = run_command.request_from_args(args)
            output = tmp / Path(request.output).name
            dataclasses.replace(request, image=None, extend=None, output=output).resolve()
        if args.preview:
            from motif_lite.io.preview import check_preview_path

            check_preview_path(tmp / Path(args.preview).name)
    elif command == "decode" and args.output is not None:
        from motif_lite.io.video import check_output_path

        check_output_path(tmp / Path(args.output).name)
    elif command == "verify":
        verify_command.check_flags(args)


def check_example(example: Example, tmp: Path) -> str | None:
    """What is wrong with one command of the docs, or None."""
    found = program_and_argv(example.words)
    if found is None:
        return None
    program, argv = found
    words, fragment = fill_placeholders(example, program, argv)
    parse = parse_quantize if program == "quantize" else parse_motif_lite
    try:
        args = parse(words)
    except _Exited:
        return None
    except ParseError as exc:
        # A fragment or a span may leave out a required argument (`motif-lite decode`, `python -m
        # motif_lite.quantize`).
        if (fragment or example.inline) and "the following arguments are required" in str(exc):
            return None
        return str(exc)
    if args is None or fragment:
        return None
    if example.inline:  # a span in a sentence may leave out the prompt or the output: the rest is checked
        if program == "quantize" and args.output is None:
            return None
        if program == "motif-lite" and args.command == "run" and args.prompt is None:
            args.prompt = "left out"
    try:
        checks_before_loading(program, args, tmp)
    except MotifLiteError as exc:
        return str(exc).replace("\n", "; ")
    return None


EXAMPLES = command_examples()


def test_every_command_in_the_docs_parses_and_passes_the_checks_before_loading(tmp_path):
    problems, intended = [], {}
    for example in EXAMPLES:
        error = check_example(example, tmp_path)
        key = (example.doc, example.text)
        if key in INTENDED_ERRORS:
            intended[key] = error
        elif error is not None:
            problems.append(f"{example}\n    -> {error}")
    assert not problems, "doc examples the code refuses:\n" + "\n".join(problems)
    missing = [key for key in INTENDED_ERRORS if key not in intended]
    assert not missing, f"INTENDED_ERRORS lists examples the docs no longer have: {missing}"
    passing = [key for key, error in intended.items() if error is None]
    assert not passing, f"INTENDED_ERRORS lists examples that no longer fail: {passing}"


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("motif-lite run -p fox -W 830", "multiple of 16"),
        ("motif-lite run --resume fox.latents.safetensors --steps 5", "--resume goes on with the video"),
        ("motif-lite run -p fox --step-cache -0.05", "must be a finite number >= 0"),
        ("motif-lite serve --step-cache -0.05", "must be a finite number >= 0"),  # serve takes run's speed flags
        ("motif-lite serve --port 99999", "must be 0-65535"),
        ("motif-lite serve --max-video 1280x736", "must look like 1280x736x121"),
        ("motif-lite verify --text-encoder te.gguf", "cannot read a text encoder GGUF"),
        ("motif-lite decode fox.latents.safetensors -o fox.avi", "avi"),
        ("python -m motif_lite.quantize Motif-Video-2B -o a.gguf --type Q4_K_X", "Q4_K_X"),
        ("torchrun --standalone --nproc-per-node 4 -m motif_lite run --dtype bf17 -p fox", "bf17"),
    ],
)
def test_a_broken_example_is_refused(tmp_path, command, refusal):
    # Negative controls for the checks above, one per command and path, as a doc would write them.
    example = Example("docs/x.md", 1, command, tuple(shlex.split(command)), inline=False)
    error = check_example(example, tmp_path)
    assert error is not None and refusal in error, error


def test_the_extraction_finds_every_kind_of_example():
    """A broken extractor would pass the test above with nothing checked: each form the docs use is found."""
    texts = {(e.doc, e.text) for e in EXAMPLES}
    expected = [
        ("README.md", 'motif-lite run -p "a red fox runs through snow" -o fox.mp4'),  # fenced, with a comment
        ("README.md", 'pip install -e ".[server]" && motif-lite serve --gguf Q4_K_M'),  # inline, after &&
        ("docs/memory.md", "motif-lite run --dry-run --device cuda --vram 6 --gguf Q4_K_M"),  # indented, `$ `
        ("docs/usage.md", "motif-lite run --gguf Q4_K_M -W 832 -H 480 --video-frames 65 --sampling-method dpm++2m "
         '--steps 25 -p "a red fox runs through snow" -o fox_draft.mp4'),  # continuation line
        ("docs/parallel.md", "torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
         '--rdzv-id fox -m motif_lite run -p "..." -o fox.mp4'),
        ("docs/quantize.md", "python -m motif_lite.quantize Motif-Video-2B -o mv-Q4_K_M-hq.gguf --type Q4_K_M "
         "--keep 'transformer_blocks.0.*=Q8_0' --keep '*.norm1.linear.weight=Q6_K'"),
        ("docs/io.md", "motif-lite run -m /root/videos/Motif-Video-2B --gguf /root/videos/Motif-Video-2B-GGUF "
         "-p 'a red fox' -o fox.mp4"),
    ]  # fmt: skip
    assert not [item for item in expected if item not in texts]
    blocks = [e for e in EXAMPLES if not e.inline]
    assert len(blocks) >= 50 and len(EXAMPLES) - len(blocks) >= 75, (len(blocks), len(EXAMPLES))


def test_pip_installs_name_extras_the_package_has():
    """`pip install -e ".[server]"` and the like: every extra named exists in pyproject.toml."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+) = ", section, flags=re.MULTILINE))
    named = []
    for doc in ALL_DOCS:
        lines = [(n, t) for b in doc.blocks if b.lang in (*SHELL_LANGUAGES, "indented") for n, t in logical_lines(b)]
        for line, text in [*lines, *doc.spans()]:
            if "pip install" in text:
                named += [
                    (f"{doc.name}:{line}", extra) for extra in re.findall(r"(?:\.|motif-lite)\[([\w,-]+)\]", text)
                ]
    assert len(named) >= 5, named
    wrong = [f"{where}: no extra {name!r}" for where, names in named for name in names.split(",") if name not in extras]
    assert not wrong, f"{wrong}; pyproject.toml has {sorted(extras)}"


# ---------------------------------------------------------------------------------------------------------------
# Flags named in prose and tables

# Flags in inline code spans that belong to other programs, or show a mistake: flag -> whose it is.
FOREIGN_FLAGS = {
    "--bench-report": "bench/conftest.py's pytest option",
    "-k": "pytest's",
    "-pix_fmt": "ffmpeg's (docs/usage.md's ffmpeg commands)",
    "--num-frame": "docs/usage.md's example of a misspelling that gets a hint",
    "--gpu": "other tools' GPU index, docs/usage.md's example of a flag whose hint is not --gpus",
    # docs/usage.md's examples of other tools' flags whose hint shows ours for the value given
    "--size": "Wan2.1's and the server's size",
    "--prompt-file": "other tools' prompt file",
    "--output-dir": "other tools' output folder",
    "-w": "docs/usage.md's example of a side in lower case, an error that gives -W",
    # docs/parallel.md's table for xDiT and Wan2.1 users
    "--ulysses_degree": "xDiT's",
    "--ulysses_size": "Wan2.1's",
    "--use_cfg_parallel": "xDiT's",
    "--ring_degree": "xDiT's",
    "--ring_size": "Wan2.1's",
    "--dit_fsdp": "Wan2.1's",
    "--t5_fsdp": "Wan2.1's",
    "--gpu_ids": "accelerate's",
    "--cuda-device": "ComfyUI's",
    "--devices": "PyTorch Lightning's",
    "--repo-type": "hf download's (docs/gguf.md: a dataset's or a Space's file)",
}


# Whole spans that show a mistake made with our own flags (docs/usage.md's strengths typed apart from --lora's file
# and numbers with a thousands separator, memory.md's budgets of "auto"), each with the advice its refusal gives, as
# the docs say. Exempt by the whole span: FOREIGN_FLAGS would exempt every --lora.
STRENGTH_HINT = "a LoRA's strength goes after its file and a colon: --lora"
MISTAKE_SPANS = {
    "--lora style.safetensors 0.8": STRENGTH_HINT,
    "--lora a 0.5 --lora a 0.5": STRENGTH_HINT,
    "--steps 1,000": "--steps: takes no thousands separator: 1000",
    "--comm-timeout 1,800": "--comm-timeout: takes no thousands separator: 1800",
    "--vram 8,000MB": "--vram: takes no thousands separator: 8000MB",
    "--vram 1,000": "--vram: takes a decimal point, not a comma: 1.000 (1 GiB), or no thousands separator: 1000",
    "--vram 8,000": "--vram: takes a decimal point, not a comma: 8.000",
    "--vram auto": "leave --vram out to plan for the GPU's free memory",
    "--ram auto": "leave --ram out for no host memory limit",
}


def span_variants(text: str) -> list[list[str]]:
    """The argument lists a span of flags stands for: `-p, --prompt` is two flags, `--dtype bf16|fp16|fp32` three
    values, `--steps 20..30` two."""
    variants = []
    for part in re.split(r",\s+(?=-)", text.replace("\\|", "|")):
        words = shlex.split(part)
        alternatives = [[]]
        for word in words:
            if "|" in word and not word.startswith("-"):
                choices = word.split("|")
            elif re.fullmatch(r"\d+\.\.\d+", word):
                choices = word.split("..")
            else:
                choices = [word]
            alternatives = [[*done, choice] for done in alternatives for choice in choices]
        variants += alternatives
    return variants


def flag_span_problems(tmp: Path) -> list[str]:
    """An inline code span that starts with a flag (`--vram 8GB`, `--attention int8`) must parse as the arguments of
    one of our commands (placeholders allowed)."""
    heads = [("motif-lite", name) for name in subcommand_parsers(motif_lite_parser())]
    heads.append(("python", "-m", "motif_lite.quantize", "SRC"))
    problems, checked = [], 0
    for doc in ALL_DOCS:
        for line, text in doc.spans():
            if not re.match(r"-{1,2}[A-Za-z]", text) or text.split()[0] in FOREIGN_FLAGS or text in MISTAKE_SPANS:
                continue
            for words in span_variants(text):
                checked += 1
                errors = []
                for head in heads:
                    errors.append(check_example(Example(doc.name, line, text, (*head, *words), True), tmp))
                    if errors[-1] is None:
                        break
                else:
                    problems.append(f"{doc.name}:{line}: `{text}` is no command's flag: {errors[0]}")
    assert checked > 300, checked  # the docs name a few hundred flags in prose and tables
    return problems


def test_flags_named_in_prose_and_tables_exist(tmp_path):
    problems = flag_span_problems(tmp_path)
    assert not problems, "\n".join(problems)


# Tables of flags: (file, heading of the section) -> the subcommand whose flags the table lists.
FLAG_TABLES = {
    ("docs/usage.md", "Flags of `motif-lite run`"): "run",
    ("docs/parallel.md", "Launching"): "run",
    ("docs/server.md", "Flags"): "serve",
}


@dataclass(frozen=True)
class Table:
    heading: str  # of the section the table is in
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line, cells)


def tables(doc: Doc) -> list[Table]:
    """Every table in the prose."""
    found, heading, rows = [], "", []
    for number, line in enumerate([*doc.prose.splitlines(), ""], start=1):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not re.fullmatch(r"[-: ]*", "".join(cells)):  # not the |---| line
                rows.append((number, cells))
        elif rows:
            found.append(Table(heading, rows[0][1], rows[1:]))
            rows = []
    return found


def test_flag_tables_list_flags_of_their_command():
    problems, seen = [], set()
    for doc in ALL_DOCS:
        for table in tables(doc):
            if table.header[0] != "flag":
                continue
            seen.add((doc.name, table.heading))
            command = FLAG_TABLES.get((doc.name, table.heading))
            if command is None:
                problems.append(f"{doc.name}: a flag table under '{table.heading}' that FLAG_TABLES does not map")
                continue
            known = subcommand_parsers(motif_lite_parser())[command]._option_string_actions
            for line, cells in table.rows:
                for flag in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", " ".join(re.findall(r"`([^`]*)`", cells[0]))):
                    if flag not in known:
                        problems.append(f"{doc.name}:{line}: {flag} is not a flag of motif-lite {command}")
    assert not problems, "\n".join(problems)
    assert seen == set(FLAG_TABLES), f"FLAG_TABLES names tables the docs no longer have: {set(FLAG_TABLES) - seen}"


# ---------------------------------------------------------------------------------------------------------------
# Python


def definitions() -> dict[str, str]:
    """Every top-level function and class of ours -> its module, for names defined once (read from the source,
    nothing imported)."""
    found: dict[str, set[str]] = {}
    for folder, package in ((ROOT / "motif_lite", "motif_lite"), (ROOT / "quantize", "motif_lite.quantize"),
                            (ROOT / "kernels", "motif_lite.kernels")):  # fmt: skip
        for path in folder.rglob("*.py"):
            parts = [*path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join([package, *parts])
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                    found.setdefault(node.name, set()).add(module)
    return {name: modules.pop() for name, modules in found.items() if len(modules) == 1}


DEFINITIONS = definitions()
# Values the docs use without saying where they come from: name -> (module, class) of what the name holds.
DOC_VALUES = {
    "pipe": ("motif_lite.pipeline", "MotifVideoPipeline"),
    "result": ("motif_lite.pipeline", "GenerationResult"),
    "vae": ("motif_lite.vae.model", "WanVAE"),
}
# Methods the docs call by their bare name: name -> (module, class).
DOC_METHODS = {
    "generate": ("motif_lite.pipeline", "MotifVideoPipeline"),
    "decode_frames": ("motif_lite.vae.model", "WanVAE"),
}


@dataclass(frozen=True)
class Value:
    """What a name holds in an example: an instance of one of our classes."""

    cls: type


@dataclass(frozen=True)
class Method:
    """A function looked up on one of our classes, called on an instance (its `self` is implied)."""

    function: object


class Unknown(Exception):
    """Not one of ours, or not something this test can follow: not checked."""


def ours(thing: object) -> bool:
    module = getattr(thing, "__module__", None) or getattr(thing, "__name__", "")
    return str(module).split(".")[0] == "motif_lite"


def annotation_class(function: object) -> type:
    """The class a function (or property) returns, from its return annotation."""
    try:
        annotation = inspect.signature(function).return_annotation
    except (TypeError, ValueError):
        raise Unknown from None
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, getattr(inspect.unwrap(function), "__globals__", {}))
        except Exception:
            raise Unknown from None
    if isinstance(annotation, type) and ours(annotation):
        return annotation
    raise Unknown


@dataclass(frozen=True)
class Items:
    """A dict, list or tuple of instances of one of our classes: what a subscript gives."""

    cls: type


def field_value(cls: type, name: str) -> Value | Items:
    """What the field `name` of a `cls` instance holds, from its annotation (Unknown unless it is one of our
    classes, optionally None, or a dict/list/tuple of them)."""
    for klass in cls.__mro__:
        annotation = getattr(klass, "__annotations__", {}).get(name)
        if annotation is None:
            continue
        try:
            hint = eval(annotation, vars(sys.modules[klass.__module__])) if isinstance(annotation, str) else annotation
        except Exception:
            raise Unknown from None
        arguments = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        if isinstance(hint, type) and ours(hint):
            return Value(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(arguments) == 1:  # X | None
            hint, arguments = arguments[0], list(typing.get_args(arguments[0]))
            if isinstance(hint, type) and ours(hint):
                return Value(hint)
        if typing.get_origin(hint) in (dict, list, tuple) and arguments and ours(arguments[-1]):
            return Items(arguments[-1])
        raise Unknown
    raise Unknown


def has_attribute(cls: type, name: str) -> bool:
    """Whether instances of `cls` have `name`: a class attribute, a (dataclass) field, or `self.name` in a class."""
    if hasattr(cls, name):
        return True
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}) or name in getattr(klass, "__dataclass_fields__", {}):
            return True
        if ours(klass) and re.search(rf"\bself\.{name}\b", inspect.getsource(klass)):
            return True
    return False


def attribute(base: object, name: str) -> object:
    """`base.name` where `base` is a module, class, or value of ours; AttributeError when it does not exist."""
    if isinstance(base, types.ModuleType):
        try:
            return getattr(base, name)
        except AttributeError:
            try:
                return importlib.import_module(f"{base.__name__}.{name}")
            except ModuleNotFoundError:
                raise AttributeError(f"module {base.__name__} has no {name}") from None
    if isinstance(base, Value):
        if not has_attribute(base.cls, name):
            raise AttributeError(f"{base.cls.__name__} has no attribute {name}")
        static = inspect.getattr_static(base.cls, name, None)
        if isinstance(static, property):
            return Value(annotation_class(static.fget))
        if isinstance(static, staticmethod | classmethod):
            return getattr(base.cls, name)
        if inspect.isfunction(static):
            return Method(static)
        return field_value(base.cls, name)
    if inspect.isclass(base) and ours(base) and not re.fullmatch(r"[A-Z]", name):  # `Enum.X`: any member
        if not hasattr(base, name):
            raise AttributeError(f"{base.__name__} has no attribute {name}")
        return getattr(base, name)
    raise Unknown


class Checker:
    """Follows the names of one example (imports, assignments) and checks what it does with ours."""

    def __init__(self, where: Callable[[int], str]) -> None:
        self.where = where  # line of the example -> where it is in the docs
        self.names: dict[str, object] = {}
        self.problems: list[str] = []

    def lookup(self, name: str) -> object:
        if name in self.names:
            return self.names[name]
        if name == "motif_lite":
            return importlib.import_module(name)
        if name in DOC_VALUES:
            module, cls = DOC_VALUES[name]
            return Value(getattr(importlib.import_module(module), cls))
        if name in DOC_METHODS:
            module, cls = DOC_METHODS[name]
            return Method(getattr(getattr(importlib.import_module(module), cls), name))
        if name in DEFINITIONS:
            return getattr(importlib.import_module(DEFINITIONS[name]), name)
        raise Unknown

    def value(self, node: ast.expr) -> object:
        """What an expression evaluates to, as far as this test follows it (Unknown beyond)."""
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            return attribute(self.value(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            base = self.value(node.value)
            if isinstance(base, Items):
                return Value(base.cls)
            raise Unknown
        if isinstance(node, ast.Call):
            callee = self.value(node.func)
            if inspect.isclass(callee) and ours(callee):
                return Value(callee)
            return Value(annotation_class(callee.function if isinstance(callee, Method) else callee))
        raise Unknown

    def problem(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"{self.where(node.lineno)}: {message}")

    def check_expression(self, node: ast.AST) -> None:
        """Every call of ours in `node` binds to its signature; every attribute read from ours exists."""
        for child in ast.walk(node):
            try:
                if isinstance(child, ast.Attribute):
                    self.value(child)
                elif isinstance(child, ast.Call):
                    self.check_call(child)
            except AttributeError as exc:
                self.problem(child, str(exc))
            except Unknown:
                pass

    def check_call(self, node: ast.Call) -> None:
        callee = self.value(node.func)
        if isinstance(callee, Value) and hasattr(callee.cls, "forward"):  # a module called: its forward
            callee = Method(callee.cls.forward)
        function = callee.function if isinstance(callee, Method) else callee
        if not callable(function) or not ours(function):
            return
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return
        positional = [...] * len(node.args)
        keywords = {k.arg: ... for k in node.keywords if k.arg is not None}
        if isinstance(callee, Method):
            positional.insert(0, ...)
        name = getattr(function, "__qualname__", str(function))
        if any(isinstance(a, ast.Starred) for a in node.args) or len(keywords) < len(node.keywords):
            accepts = {p.name for p in signature.parameters.values() if p.kind != p.POSITIONAL_ONLY}
            open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
            for keyword in keywords:
                if keyword not in accepts and not open_ended:
                    self.problem(node, f"{name}() takes no argument {keyword!r}")
            return
        try:
            signature.bind_partial(*positional, **keywords)
        except TypeError as exc:
            self.problem(node, f"{name}(): {exc}")

    def run(self, tree: ast.Module) -> None:
        for statement in tree.body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] != "motif_lite":
            self.names.update({alias.asname or alias.name: None for alias in node.names})  # not ours: not followed
            return
        if isinstance(node, ast.ImportFrom):
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                self.problem(node, f"from {node.module} import ...: {exc}")
                return
            for alias in node.names:
                try:
                    self.names[alias.asname or alias.name] = attribute(module, alias.name)
                except AttributeError:
                    self.problem(node, f"{node.module} has no {alias.name}")
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "motif_lite":
                    try:
                        importlib.import_module(alias.name)
                    except ImportError as exc:
                        self.problem(node, f"import {alias.name}: {exc}")
                self.names[(alias.asname or alias.name).split(".")[0]] = (
                    importlib.import_module("motif_lite") if alias.name.split(".")[0] == "motif_lite" else None
                )
            return
        if isinstance(node, ast.FunctionDef | ast.ClassDef):  # its body refers to names the example leaves out
            self.names[node.name] = None
            return
        if isinstance(node, ast.For | ast.With):
            headers = [node.iter] if isinstance(node, ast.For) else [item.context_expr for item in node.items]
            for header in headers:
                self.check_expression(header)
            for child in node.body:
                self.statement(child)
            return
        self.check_expression(node)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.names[name.id] = None  # not followed, unless it is a single name:
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                with contextlib.suppress(Unknown, AttributeError):
                    self.names[node.targets[0].id] = self.value(node.value)


def python_blocks() -> list[tuple[Doc, Block]]:
    return [(doc, block) for doc in ALL_DOCS for block in doc.blocks if block.lang == "python"]


def test_python_examples_compile_and_call_what_exists():
    problems = []
    for doc, block in python_blocks():
        first = block.lines[0][0]
        source = "\n".join(line for _, line in block.lines)
        try:
            tree = ast.parse(compile(source, doc.name, "exec", ast.PyCF_ONLY_AST))
        except SyntaxError as exc:
            problems.append(f"{doc.name}:{first + (exc.lineno or 1) - 1}: does not compile: {exc.msg}")
            continue
        checker = Checker(lambda line, doc=doc, first=first: f"{doc.name}:{first + line - 1}")
        checker.run(tree)
        problems += checker.problems
    assert len(python_blocks()) >= 15
    assert not problems, "\n".join(problems)


def inline_python() -> list[tuple[str, int, str, ast.Module]]:
    """(file, line, text, tree) of the inline code spans that are Python calling something (`-> result` after a
    call is a signature's notation: dropped)."""
    found = []
    for doc in ALL_DOCS:
        for line, text in doc.spans():
            code = re.sub(r"\s*->.*$", "", text)
            if not re.search(r"\w\(", code):
                continue
            try:
                found.append((doc.name, line, text, ast.parse(code)))
            except SyntaxError:
                continue
    return found


def test_inline_python_calls_what_exists():
    problems = []
    for name, line, text, tree in inline_python():
        checker = Checker(lambda _, where=f"{name}:{line}: `{text}`": where)
        checker.run(tree)
        problems += checker.problems
    assert len(inline_python()) >= 80
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# The server's API (docs/server.md and the server's lines elsewhere)

VIDEO_ID = "video_" + "0" * 32
# openai SDK methods of client.videos -> (HTTP method, path) they call.
SDK_ROUTES = {
    "create": ("POST", "/v1/videos"),
    "create_and_poll": ("POST", "/v1/videos"),
    "list": ("GET", "/v1/videos"),
    "retrieve": ("GET", "/v1/videos/ID"),
    "delete": ("DELETE", "/v1/videos/ID"),
    "download_content": ("GET", "/v1/videos/ID/content"),
    "extend": ("POST", "/v1/videos/extensions"),
    "remix": ("POST", "/v1/videos/ID/remix"),
}
SDK_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout", "poll_interval_ms")


class ReadKeys(dict):
    """A query whose `get`s are recorded: the parameters a handler reads from `request.query_params`."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def api_route(method: str, path: str):
    """The route of the server that answers `method path`, or None: the API's under /v1 (its router's), and the
    app's own outside it (/health, the page; the app holds the API as one included router, not as routes)."""
    from fastapi.routing import APIRoute

    from motif_lite.server.app import ServerConfig, ServerState, _api_router, create_app

    state = ServerState(ServerConfig(model_name="motif"))
    outside_api = [route for route in create_app(None, state).routes if isinstance(route, APIRoute)]
    for route in [*_api_router(None, state).routes, *outside_api]:
        if method in route.methods and route.path_regex.fullmatch(path):
            return route
    return None


@dataclass
class HttpRequest:
    """A request to the server that a doc shows. Values that are not literals (`...`, a name) are None."""

    method: str
    path: str
    query: dict = dataclasses.field(default_factory=dict)
    body: dict | None = None  # create fields
    form: bool = False  # multipart: every value a string
    image: bool = False  # a first-frame file is uploaded
    elided: bool = False  # `create(...)`: the arguments are left out


def request_problems(request: HttpRequest, tmp: Path) -> list[str]:
    """What the server would refuse in `request`: an unknown route, query parameter or create field, or a value
    that the route's checks, `parse_create` or `resolve()` reject (values only where every one is a literal)."""
    from motif_lite.request import GenerationRequest
    from motif_lite.server import app
    from motif_lite.server.extension import extension_fields
    from motif_lite.server.schema import ApiError, parse_create

    route = api_route(request.method, request.path)
    if route is None:
        return [f"no route {request.method} {request.path}"]
    problems = []
    known = {p.name for p in route.dependant.query_params}
    if route.path == "/v1/videos" and request.method == "GET":  # the list reads its query itself
        reader = ReadKeys()
        app._page_params(reader)
        known |= reader.read
        try:
            app._page_params(ReadKeys({k: v for k, v in request.query.items() if v is not None}))
        except ApiError as exc:
            problems.append(exc.message)
    if request.query.get("variant") not in (None, *app.MEDIA_TYPES):
        problems.append(f"variant {request.query['variant']!r} is none of {list(app.MEDIA_TYPES)}")
    problems += [f"{route.path} reads no query parameter {name!r}" for name in set(request.query) - known]
    if request.body is not None:
        complete = not request.elided and not holds_none(request.body)
        try:
            body = extension_fields(request.body) if route.path.endswith("/extensions") else request.body
            parsed = parse_create(body, b"image" if request.image else None, from_form=request.form)
            if complete:
                GenerationRequest(**parsed.request_fields, output=tmp / "video.mp4").resolve()
        except ApiError as exc:
            if complete or exc.code == "unknown_parameter":
                problems.append(exc.message)
        except MotifLiteError as exc:
            problems.append(str(exc))
    return problems


def holds_none(value: object) -> bool:
    """A value that is not a literal, or a dict holding one (`{"video": {"id": fox.id}}`)."""
    return value is None or (isinstance(value, dict) and any(holds_none(item) for item in value.values()))


def curl_requests() -> list[tuple[str, int, str, HttpRequest]]:
    """(file, line, command, request) of every curl command of a shell block, with the block's `NAME=value`
    variables expanded."""
    found = []
    for doc in ALL_DOCS:
        for block in doc.blocks:
            if block.lang not in SHELL_LANGUAGES:
                continue
            variables: dict[str, str] = {}
            for number, text in logical_lines(block):
                for words in shell_commands(text):
                    if len(words) == 1 and "=" in words[0]:
                        name, _, value = words[0].partition("=")
                        variables[name] = value
                    words = [expand(word, variables) for word in words]
                    if words[0] == "curl":
                        found.append((doc.name, number, text.split(" #")[0].strip(), curl_request(words)))
    return found


def expand(word: str, variables: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced by the values the block gave them."""
    return re.sub(r"\$\{?(\w+)\}?", lambda match: variables.get(match[1], match[0]), word)


def curl_request(words: list[str]) -> HttpRequest:
    method, url, body, form, image = None, "", None, False, False
    options = iter(words[1:])
    for word in options:
        if word in ("-X", "--request"):
            method = next(options)
        elif word in ("-d", "--data"):
            body = json.loads(next(options))
        elif word in ("-F", "--form"):
            name, _, value = next(options).partition("=")
            body, form = body or {}, True
            if value.startswith("@") and name in ("video", "extend"):  # a video to go on from, uploaded
                from motif_lite.server.clip_upload import UploadedClip

                body[name] = UploadedClip.of(io.BytesIO(), value[1:])
            elif value.startswith("@"):
                image = True
            else:
                body[name] = value
        elif word in ("-H", "--header", "-o", "--output"):
            next(options)
        elif not word.startswith("-"):
            url = word
    parts = urllib.parse.urlsplit(url)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
    method = method or ("POST" if body is not None else "GET")
    return HttpRequest(method, parts.path, query, body, form, image)


def sdk_calls() -> list[tuple[str, str, ast.Call]]:
    """(where, method name, call) of every `client.videos.METHOD(...)` of the docs' Python, blocks and spans."""
    found = []
    for doc, block in python_blocks():
        for node in ast.walk(ast.parse("\n".join(line for _, line in block.lines))):
            if is_sdk_call(node):
                found.append((f"{doc.name}:{block.lines[0][0] + node.lineno - 1}", node.func.attr, node))
    for name, line, _, tree in inline_python():
        found += [(f"{name}:{line}", node.func.attr, node) for node in ast.walk(tree) if is_sdk_call(node)]
    return found


def is_sdk_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "videos")  # fmt: skip


def literal(node: ast.expr | None) -> object:
    """A literal's value (a dict's values each on their own); None for anything else (a name, `...`)."""
    if isinstance(node, ast.Dict):
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    return None if value is Ellipsis else value


def sdk_request(sdk_method: str, call: ast.Call) -> HttpRequest:
    """The request the openai SDK sends for `client.videos.METHOD(...)`: arguments of the create calls are body
    fields (multipart with a file), of the others query parameters; `extra_body`/`extra_query` are merged in."""
    method, path = SDK_ROUTES[sdk_method]
    given = {k.arg: literal(k.value) for k in call.keywords if k.arg is not None}
    fields = {k: v for k, v in given.items() if k not in SDK_OPTIONS}
    request = HttpRequest(method, path.replace("ID", VIDEO_ID), elided=any(literal(a) is None for a in call.args))
    if method == "POST":
        request.image = request.form = "input_reference" in fields
        fields.pop("input_reference", None)
        request.body = {**fields, **(given.get("extra_body") or {})}
    else:
        request.query = {**fields, **(given.get("extra_query") or {})}
    return request


def test_server_examples_use_routes_fields_and_values_the_server_has(tmp_path):
    pytest.importorskip("fastapi")  # the server extra, as tests/test_server.py
    pytest.importorskip("openai")
    from openai.resources.videos import Videos

    problems = []
    curls, calls = curl_requests(), sdk_calls()
    for name, line, text, request in curls:
        problems += [f"{name}:{line}: {text}\n    -> {problem}" for problem in request_problems(request, tmp_path)]
    for where, sdk_method, call in calls:
        if sdk_method not in SDK_ROUTES:
            problems.append(f"{where}: client.videos.{sdk_method} is not in this test's SDK_ROUTES")
            continue
        accepted = inspect.signature(getattr(Videos, sdk_method)).parameters
        problems += [f"{where}: the openai SDK's videos.{sdk_method} takes no {k.arg!r}" for k in call.keywords
                     if k.arg is not None and k.arg not in accepted]  # fmt: skip
        problems += [f"{where}: client.videos.{sdk_method}: {problem}"
                     for problem in request_problems(sdk_request(sdk_method, call), tmp_path)]  # fmt: skip
    assert len(curls) >= 6 and len(calls) >= 8, (len(curls), len(calls))
    assert not problems, "\n".join(problems)


def test_server_route_and_field_tables_match_the_server():
    """docs/server.md's route table names routes the server's app has; its create-field table names fields
    `parse_create` takes, each with the `run` flag that sets the same request field (none for the server's own)."""
    pytest.importorskip("fastapi")
    from motif_lite.server.schema import MOTIF_FIELDS, SERVER_FIELDS

    doc = next(doc for doc in ALL_DOCS if doc.name == "docs/server.md")
    run_parser = subcommand_parsers(motif_lite_parser())["run"]
    problems, routes, fields = [], 0, 0
    for table in tables(doc):
        for line, cells in table.rows:
            if table.header[0] == "route":
                routes += 1
                method, path = cells[0].strip("`").split(" ", 1)
                if api_route(method, re.sub(r"\{\w+\}", VIDEO_ID, path)) is None:
                    problems.append(f"docs/server.md:{line}: no route {cells[0]}")
            elif table.header[0] == "field":
                names = re.findall(r"`(\w+)`", cells[0])
                flags = re.findall(r"`(-[\w-]+)`", cells[1])
                for index, name in enumerate(names):
                    fields += 1
                    if name in SERVER_FIELDS:  # the server's own (LoRAs of its --lora-dir): no run flag sets one
                        continue
                    if name not in MOTIF_FIELDS:
                        problems.append(f"docs/server.md:{line}: the server takes no field {name!r}")
                    elif index < len(flags):  # `--apg-eta`, ...: the first flag stands for the row
                        problems += flag_sets_field(run_parser, flags[index], MOTIF_FIELDS[name][0], line)
    assert routes >= 6 and fields >= 10, (routes, fields)
    assert not problems, "\n".join(problems)


def flag_sets_field(parser: argparse.ArgumentParser, flag: str, field: str, line: int) -> list[str]:
    """[] when `motif-lite run FLAG VALUE` sets the request field `field`, else what is wrong."""
    action = parser._option_string_actions.get(flag)
    if action is None:
        return [f"docs/server.md:{line}: {flag} is not a flag of motif-lite run"]
    value = str(list(action.choices)[-1]) if action.choices else "3"
    default = run_command.request_from_args(parse_motif_lite(["run", "-p", "fox"]))
    given = run_command.request_from_args(parse_motif_lite(["run", "-p", "fox", flag, value]))
    changed = [f.name for f in dataclasses.fields(given) if getattr(given, f.name) != getattr(default, f.name)]
    if changed != [field]:
        return [f"docs/server.md:{line}: {flag} sets {changed}, the field's request field is {field!r}"]
    return []


@pytest.mark.parametrize("span", sorted(MISTAKE_SPANS))
def test_each_span_exempt_as_a_mistake_shown_is_refused_with_its_advice(capsys, span):
    # MISTAKE_SPANS skips the flag-span check for spans the docs show as mistakes: one that run took, or refused for
    # another reason, would be a real mistake in the docs, hidden by its exemption.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", *shlex.split(span)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and MISTAKE_SPANS[span] in err, err
