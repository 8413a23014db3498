"""Every command's --help against itself and against the docs' flag tables: the drifts the other help and docs
tests do not see. tests/test_cli.py checks that each help lists its flags and fits the docs' width;
tests/test_doc_claims.py that the flag tables have a row per flag and give the parsers' defaults;
tests/test_docs_examples.py that the flags the docs name exist. Here: a default a help states is the parser's,
one flag shows one value name and one list of choices in every command, and a flag table shows a flag's value as
its help does."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.cli.command_hints import subcommands

ROOT = Path(__file__).resolve().parent.parent

# A help's stated default: "default 600", "default: 1", "(default auto)", or "exact (default) or int8".
_DEFAULT_AFTER = re.compile(r"\bdefault:? (\S+)")
_DEFAULT_BEFORE = re.compile(r"(\S+) \(default\)")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by the command line that starts it, the quantizer's included."""
    from motif_lite.quantize.cli import build_parser as quantizer_parser

    commands = {f"motif-lite {name}": parser for name, parser in subcommands(cli.build_parser()).items()}
    return {**commands, "python -m motif_lite.quantize": quantizer_parser()}


def _shown(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags --help shows (not hidden, not -h)."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and action.help not in (None, argparse.SUPPRESS)
        and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
    ]


def _value_name(action: argparse.Action) -> str:
    """The value's name --help shows after the flag: its metavar, else argparse's (the choices, else DEST)."""
    if action.metavar is not None:
        return str(action.metavar)
    return "|".join(action.choices) if action.choices else action.dest.upper()


def stated_default(help_text: str) -> str | None:
    """The default a help states, as written ("600", "auto", "./motif-lite-data"), without the punctuation after it;
    None when it states none."""
    found = _DEFAULT_AFTER.search(help_text) or _DEFAULT_BEFORE.search(help_text)
    return None if found is None else found[1].strip("(").rstrip(".,;:)")


def test_stated_default_reads_each_way_a_help_writes_one():
    assert stated_default("port (0 = any free port, printed; default 8080)") == "8080"
    assert stated_default("address to listen on (default 127.0.0.1: this machine only)") == "127.0.0.1"
    assert stated_default("exact (default) or int8: 8-bit attention") == "exact"
    assert stated_default("the key (default: $MOTIF_LITE_API_KEY)") == "$MOTIF_LITE_API_KEY"
    assert stated_default("sampling steps") is None


def resolved_defaults() -> dict[tuple[str, str], str]:
    """The default of each flag whose parser starts from None and whose help states a value, as the code resolves
    it: (command, flag) -> the value, written as a help writes it. The other None flags' helps state a word, not a
    value (the checkpoint's, the guider's, the run's, none, off) or one the code writes inline (verify's fp32 on the
    CPU, verify/__init__.py)."""
    from motif_lite.dtypes import COMPUTE_DTYPES, default_dtype
    from motif_lite.io.video import default_crf
    from motif_lite.quantize.components import TRANSFORMER
    from motif_lite.request import DEFAULT_OUTPUT
    from motif_lite.runtime.parallel import DEFAULT_STEP_TIMEOUT_S
    from motif_lite.verify import VerifySettings

    dtype = next(name for name, value in COMPUTE_DTYPES.items() if value == default_dtype(None)[0])
    crf = str(default_crf(DEFAULT_OUTPUT))  # H.264's, stated first (VP9's is test_doc_claims.py's)
    # verify's flags of a --settings-from file's values start from None: a flag left out is the file's, else these.
    verify = {flag: str(getattr(VerifySettings(), field)) for flag, field in [("--width", "width"), ("--height",
              "height"), ("--video-frames", "frames"), ("--steps", "steps"), ("--seed", "seed")]}  # fmt: skip
    return {
        **{("motif-lite verify", flag): value for flag, value in verify.items()},
        ("motif-lite run", "--comm-timeout"): f"{DEFAULT_STEP_TIMEOUT_S:g}",  # cli/run.py, when none is given
        ("motif-lite run", "--output"): str(DEFAULT_OUTPUT),
        ("motif-lite run", "--crf"): crf,
        ("motif-lite decode", "--crf"): crf,
        ("motif-lite serve", "--crf"): crf,
        ("motif-lite run", "--dtype"): dtype,  # a GPU with bf16 tensor cores' (the help says what others get)
        ("motif-lite serve", "--dtype"): dtype,
        ("python -m motif_lite.quantize", "--type"): TRANSFORMER.default_recipe,  # --component's default
    }


def default_problems(
    parsers: dict[str, argparse.ArgumentParser], resolved: dict[tuple[str, str], str] | None = None
) -> list[str]:
    """A flag whose parser starts from a number or a short word must say it in its help, and say that one: the help
    is where a new user reads it (verify's and serve's helps write theirs as literals, which nothing kept equal).
    A flag that starts from None and is resolved later says the value `resolved` gives (command, flag) -> value;
    one whose help states a number that `resolved` lacks is a problem too, as nothing would compare it."""
    problems = []
    for command, parser in parsers.items():
        for action in _shown(parser):
            flag, default = action.option_strings[-1], action.default
            said = stated_default(parser._get_formatter()._expand_help(action))
            source = "the parser"
            if default is None and (command, flag) in (resolved or {}):
                default, source = resolved[command, flag], "the code"
            elif default is None and said is not None and said[0].isdigit():
                problems.append(f"{command} {flag}: the help says {said}, which no resolved default gives")
                continue
            if isinstance(default, bool) or not isinstance(default, int | float | str) or len(str(default)) > 40:
                continue  # None, a switch, a list, or a text too long to repeat (the official negative prompt)
            expected = f"{default:g}" if isinstance(default, float) else str(default)
            if said is None:
                problems.append(f"{command} {flag}: the help states no default ({expected})")
            elif said.removeprefix("./") != expected.removeprefix("./"):
                problems.append(f"{command} {flag}: the help says {said}, {source} {expected}")
    return problems


def test_the_default_each_flags_help_states_is_the_parsers():
    assert default_problems(_parsers(), resolved_defaults()) == []


def test_a_help_whose_default_drifted_from_its_parser_is_caught():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081, help="port (default 8080)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps")
    parser.add_argument("--comm-timeout", help="seconds a rank waits (default 600)")
    parser.add_argument("--wait", help="seconds to wait (default 5)")
    assert default_problems({"x": parser}, {("x", "--comm-timeout"): "900"}) == [
        "x --port: the help says 8080, the parser 8081",
        "x --steps: the help states no default (2)",
        "x --comm-timeout: the help says 600, the code 900",
        "x --wait: the help says 5, which no resolved default gives",
    ]


def test_a_flag_several_commands_take_shows_the_same_value_name_and_choices():
    # The same flag, -m or --vram, read in run --help and in serve --help, names its value and lists its choices the
    # same way: a user moving between commands reads one flag.
    seen: dict[str, dict[tuple[tuple[str, ...], str], list[str]]] = {}
    for command, parser in _parsers().items():
        for action in _shown(parser):
            if action.nargs == 0:
                continue
            for flag in action.option_strings:
                shape = (tuple(action.option_strings), _value_name(action))
                seen.setdefault(flag, {}).setdefault(shape, []).append(command)
    differing = {flag: shapes for flag, shapes in seen.items() if len(shapes) > 1}
    assert not differing, differing


# The flag tables of the docs: (page, heading of the section) -> the command whose flags they list.
FLAG_TABLES = {
    ("docs/usage.md", "## Flags of `motif-lite run`"): "motif-lite run",
    ("docs/server.md", "## Flags"): "motif-lite serve",
    ("docs/parallel.md", "## Launching"): "motif-lite run",
}


def table_value_problems(text: str, heading: str, parser: argparse.ArgumentParser) -> list[str]:
    """In the table under `heading`, a value a flag's cell shows after the flag (`--crf N`, `--dtype bf16|fp16|fp32`)
    is the value name its --help shows, or all of its choices."""
    section = text.split(heading + "\n")[1].split("\n## ")[0]
    problems = []
    for row in (line for line in section.splitlines() if line.startswith("| `")):
        cell = re.split(r"(?<!\\)\|", row)[1].replace("\\|", "|")
        for span in re.findall(r"`([^`]*)`", cell):
            for part in re.split(r",\s+(?=-)", span):  # `-p, --prompt`: the value, if any, is after the last
                # the value after a space or, `--data=FOLDER`, an equals sign (`--lora FILE=0.5` keeps its own)
                flag, value = re.fullmatch(r"([^\s=]*)[\s=]?(.*)", part, re.S).groups()
                action = parser._option_string_actions.get(flag)
                if action is None or not value:
                    continue  # a flag the command lacks is test_docs_examples.py's to find
                if value != _value_name(action):
                    problems.append(f"{heading}: `{part}`, where --help shows {flag} {_value_name(action)}")
    return problems


@pytest.mark.parametrize(("page", "heading"), list(FLAG_TABLES))
def test_a_flag_tables_value_names_are_the_helps(page, heading):
    parser = _parsers()[FLAG_TABLES[page, heading]]
    assert table_value_problems((ROOT / page).read_text(), heading, parser) == []


def test_a_flag_table_that_names_a_value_otherwise_is_caught():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", metavar="DIR")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"])
    table = ("## Flags\n\n| flag | default |\n|---|---|\n| `--data FOLDER` | x |\n| `--dtype bf16\\|fp16` | bf16 |\n"
             "| `--data=FOLDER` | x |\n")  # fmt: skip
    assert table_value_problems(table, "## Flags", parser) == [
        "## Flags: `--data FOLDER`, where --help shows --data DIR",
        "## Flags: `--dtype bf16|fp16`, where --help shows --dtype bf16|fp16|fp32",
        "## Flags: `--data=FOLDER`, where --help shows --data DIR",
    ]


def table_default_problems(text: str, heading: str, resolved: dict[str, str]) -> list[str]:
    """In the table under `heading`, the default a row gives a flag of `resolved` (flag -> the value the code
    resolves it to; its parser starts from None, which test_doc_claims.py's default check skips) is that value (or
    "as `run`", that test's to check): in the "default" column (one value per flag where the cell names several,
    ` / ` between them), else as the meaning's "default X"."""
    section = text.split(heading + "\n")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in re.split(r"(?<!\\)\|", lines[0])[1:-1]]
    problems = []
    for row in (line for line in lines if line.startswith("| `")):
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        flag_parts = cells[0].split(" / ")
        default_cell = cells[header.index("default")] if "default" in header else None
        default_parts = default_cell.split(" / ") if default_cell is not None else []
        for index, part in enumerate(flag_parts):
            for flag in set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", part)) & set(resolved):
                if default_cell is None:
                    said = stated_default(cells[-1])
                else:
                    said = default_parts[index] if len(default_parts) == len(flag_parts) else default_cell
                value = re.escape(resolved[flag])
                if said not in (None, "as `run`") and not re.search(rf"(?<![\w.-]){value}(?![\w-])", said):
                    problems.append(f"{heading}: {flag}'s default is given as {said!r}, the code's is {resolved[flag]}")
    return problems


@pytest.mark.parametrize(("page", "heading"), list(FLAG_TABLES))
def test_a_flag_tables_defaults_of_flags_resolved_later_are_the_codes(page, heading):
    command = FLAG_TABLES[page, heading]
    resolved = {flag: value for (where, flag), value in resolved_defaults().items() if where == command}
    assert table_default_problems((ROOT / page).read_text(), heading, resolved) == []


def test_a_flag_table_whose_resolved_default_drifted_is_caught():
    table = ("## Flags\n\n| flag | default | meaning |\n|---|---|---|\n"
             "| `--gpus N` / `--comm-timeout S` | 1 / 600 | x |\n\n## Launching\n\n| flag | meaning |\n|---|---|\n"
             "| `--comm-timeout S` | waits (default 600, at most) |\n")  # fmt: skip
    resolved = {"--comm-timeout": "900"}
    assert table_default_problems(table, "## Flags", resolved) == [
        "## Flags: --comm-timeout's default is given as '600', the code's is 900"
    ]
    assert table_default_problems(table, "## Launching", resolved) == [
        "## Launching: --comm-timeout's default is given as '600', the code's is 900"
    ]


def test_every_frames_flag_that_rounds_to_4k_plus_1_says_so():
    # verify rounds its --video-frames as run does (with run's note), but its help said only "frames (default 9)".
    from motif_lite.cli.flag_numbers import frame_count

    rounding = {
        f"{command} {action.option_strings[-1]}": parser._get_formatter()._expand_help(action)
        for command, parser in _parsers().items()
        for action in _shown(parser)
        if action.type is frame_count
    }
    assert {"motif-lite run --video-frames", "motif-lite verify --video-frames"} <= set(rounding)
    silent = {flag: text for flag, text in rounding.items() if "4k+1 (others are rounded" not in text}
    assert not silent, silent


# What `run --resume FILE` takes anew, as its help and docs/usage.md's table list it (parenthetical notes left out).
RESUME_TAKES_ANEW = "-o, --crf, -i for a moved image, a model flag and the device, memory and speed flags"


def given_anew(text: str) -> str:
    """The list a `--resume` text gives before "may be given anew" (after the "; " or ", while" that starts it), without
    backticks, parenthetical notes and line breaks."""
    clause = re.split(r"; |, while ", " ".join(text.split()).split(" may be given anew")[0])[-1]
    return re.sub(r" \([^()]*\)", "", clause.replace("`", ""))


def test_resumes_help_says_what_may_be_given_anew_as_the_flag_table_does():
    # `--resume` takes a model flag (-m of a moved checkpoint, with a note), --crf and -i of a moved image
    # (tests/test_resume.py), but its help said only "-o and the device, memory and speed flags may be given anew",
    # then left out --crf and -i. The whole list is compared, so "never a model flag" is no longer read as listing it.
    action = _parsers()["motif-lite run"]._option_string_actions["--resume"]
    row = next(line for line in (ROOT / "docs/usage.md").read_text().splitlines() if line.startswith("| `--resume"))
    assert given_anew(action.help) == RESUME_TAKES_ANEW
    assert given_anew(row) == RESUME_TAKES_ANEW


def test_what_resume_is_said_to_take_anew_is_what_the_code_takes():
    # The list's flags against resume_args: -o, --crf and the model flags are no request field it refuses; -i is one,
    # taken only where the file's image moved or changed (else refused as a flag that chooses the video).
    from motif_lite.cli.resume import REQUEST_DESTS
    from motif_lite.io.model_stamps import MODEL_FLAG_GROUPS

    parser = _parsers()["motif-lite run"]
    dest = {flag: parser._option_string_actions[flag].dest for flag in ("-o", "--crf", "-i", "-m")}
    assert {dest["-o"], dest["--crf"]}.isdisjoint(REQUEST_DESTS)
    assert dest["-i"] in REQUEST_DESTS and "-i for a moved image" in RESUME_TAKES_ANEW
    assert (dest["-m"],) in MODEL_FLAG_GROUPS
    assert not {d for group in MODEL_FLAG_GROUPS for d in group} & set(REQUEST_DESTS)


def test_given_anew_reads_the_list_not_its_words():
    assert given_anew("FILE; -o, a model flag (-m: a note) and the device flags may be given anew") == (
        "-o, a model flag and the device flags"
    )
    assert (
        given_anew("FILE; -o (never a model flag) and the device flags may be given anew") == "-o and the device flags"
    )


def _usage_row(flag: str) -> str:
    """The row of docs/usage.md's run flag table whose flag cell names `flag`."""
    section = (ROOT / "docs/usage.md").read_text().split("## Flags of `motif-lite run`\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    (row,) = [line for line in rows if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", line.split(" | ")[0])]
    return row


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_ranges_the_run_flag_table_gives_are_the_codes():
    # docs/usage.md, "Flags of `motif-lite run`": each range a row states is the one the command refuses outside of.
    from motif_lite.cli.flag_numbers import MAX_BATCH_COUNT, MAX_COMM_TIMEOUT_SECONDS
    from motif_lite.request import MAX_SEED, RANGES

    stated = {  # flag: (where the row states its range, the code's lowest and highest)
        "--fps": (r"; ([\d.,]+) to ([\d.,]+), a frame every millisecond", RANGES["fps"][:2]),
        "--steps": (r"two with guidance; ([\d,]+) to ([\d,]+)", RANGES["steps"][:2]),
        "--cfg-scale": (r"([\d.,]+) to ([\d.,]+), ComfyUI's range", RANGES["cfg_scale"][:2]),
        "--flow-shift": (r"([\d.,]+) to ([\d.,]+) \(100 is ComfyUI's top", RANGES["flow_shift"][:2]),
        "--seed": (r"\| ([\d,]+) to ([\d,]+) \(32 bits", (0, MAX_SEED)),
        "--batch-count": (r"N videos \(up to ([\d,]+)\)", (MAX_BATCH_COUNT,)),
        "--comm-timeout": (r"at most a week \(([\d,]+)\)", (MAX_COMM_TIMEOUT_SECONDS,)),
    }
    wrong = {}
    for flag, (pattern, expected) in stated.items():
        found = re.search(pattern, _usage_row(flag))
        assert found, f"{flag}: the row no longer states its range as {pattern!r}"
        if tuple(_number(value) for value in found.groups()) != tuple(float(value) for value in expected):
            wrong[flag] = (found.groups(), expected)
    assert not wrong, wrong


def _settings_table_row(setting: str) -> list[str]:
    """The cells of the row for `setting` in docs/usage.md's "Where each setting comes from" table."""
    section = (ROOT / "docs/usage.md").read_text().split("## Where each setting comes from\n")[1].split("\n## ")[0]
    (row,) = [line for line in section.splitlines() if line.startswith(f"| {setting} |")]
    return [cell.strip() for cell in row.strip().strip("|").split(" | ")]


def test_the_official_values_run_help_and_the_settings_table_give_are_the_defaults():
    # The end of `run --help` ("Defaults are the official settings: 1280x736, 121 frames at 24 fps, 50 steps") and
    # docs/usage.md's "Where each setting comes from" table write the official values as literals: they must stay
    # what a request with no flags and no checkpoint configs resolves to.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.request import GenerationRequest
    from motif_lite.settings import resolve_settings

    request = GenerationRequest("x")
    settings = resolve_settings(request, CheckpointConfigs())
    image_shift = resolve_settings(GenerationRequest("x", image="a.png"), CheckpointConfigs()).flow_shift.value
    apg = settings.guidance.value
    size = (request.width, request.height, request.frames, request.fps, request.steps)

    run_help = " ".join(_parsers()["motif-lite run"].format_help().split())
    said = re.search(r"Defaults are the official settings: (\d+)x(\d+), (\d+) frames at ([\d.]+) fps, (\d+) steps",
                     run_help)  # fmt: skip
    assert said and tuple(_number(value) for value in said.groups()) == size, said

    official = _settings_table_row("size, frames, fps, steps, negative prompt, seed")[-1]
    said = re.fullmatch(r"(\d+)x(\d+), (\d+), ([\d.]+), (\d+), the official negative prompt, random", official)
    assert said and tuple(_number(value) for value in said.groups()) == size, official
    assert request.seed in (None, -1)  # "random": a request's seed that resolve() draws
    shifts = _settings_table_row("flow shift")[-1]
    assert re.findall(r"([\d.]+) \(", shifts) == [f"{settings.flow_shift.value:g}", f"{image_shift:g}"], shifts
    assert _settings_table_row("sampler")[-1] == f"`{settings.sampler.value}`"
    guidance = _settings_table_row("guidance: method, scale and every parameter")[-1]
    said = re.match(r"APG scale ([\d.]+), norm threshold ([\d.]+), momentum ([\d.]+), eta ([\d.]+)", guidance)
    assert said and [_number(value) for value in said.groups()] == [
        apg.scale, apg.norm_threshold, apg.momentum, apg.eta
    ], guidance  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["resume", "fox.latents.safetensors"], "motif-lite run --resume fox.latents.safetensors"),
        (["resume"], "motif-lite run --resume FILE.latents.safetensors"),
        (["resume", "--help"], "motif-lite run --help"),
        (["resume", "fox.latents.safetensors", "-h"], "motif-lite run --help"),
        (["resume", "--vram", "8"], "motif-lite run --resume FILE.latents.safetensors --vram 8"),
        (["resume", "-o", "out.mp4", "fox.latents.safetensors"],
         "motif-lite run --resume fox.latents.safetensors -o out.mp4"),
        (["help", "resume"], "motif-lite run --resume FILE.latents.safetensors"),
        (["resume", "--lora", "style.safetensors", "x.latents.safetensors"],
         "motif-lite run --resume x.latents.safetensors --lora style.safetensors"),
        (["resume", "-m", "model.safetensors", "x.latents.safetensors"],
         "motif-lite run --resume x.latents.safetensors -m model.safetensors"),
        (["resume", "-o", "out.mp4", "x.latents"], "motif-lite run --resume x.latents -o out.mp4"),
        (["resume", "--dry-run", "x.latents"], "motif-lite run --resume x.latents --dry-run"),
    ],
)  # fmt: skip
def test_resume_typed_as_a_command_gets_a_run_line_that_parses(capsys, argv, line):
    # The docs and --help say `motif-lite run --resume FILE`; `motif-lite resume FILE` got argparse's list of the
    # commands, none of which names it. The line given must parse: with the words copied in order, `resume --help`
    # and `resume -o out.mp4 FILE` were told `run --resume --help` and `run --resume -o ...`, which --resume takes
    # as its file or refuses ("expected one argument").
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.strip() == f"motif-lite: error: there is no 'resume' command; a stopped run goes on with run: {line}"
    try:
        args = cli.build_parser().parse_args(shlex.split(line)[1:])
    except SystemExit as exc:  # --help's exit 0; argparse's error is 2
        assert exc.code == 0, capsys.readouterr().err
    else:
        # --resume gets the latents file typed (the word that ends as one, else the word no flag takes), not a
        # value of another flag: `--lora style.safetensors x.latents.safetensors` resumed from the LoRA.
        typed = [word for word in argv[1:] if word.endswith(".latents.safetensors") or word.endswith(".latents")]
        assert args.resume == (typed[0] if typed else "FILE.latents.safetensors"), args.resume


def test_help_of_a_program_of_its_own_says_how_to_start_it(capsys):
    # `motif-lite help quantize` listed the commands, as `motif-lite quantize` no longer does.
    from motif_lite.cli.command_hints import OTHER_COMMAND_NAMES

    assert cli.main(["help", "quantize"]) == cli.EXIT_USER_ERROR
    assert OTHER_COMMAND_NAMES["quantize"] in capsys.readouterr().err
