"""`python -m motif_lite.quantize SRC -o OUT.gguf --type Q4_K_M [--component text_encoder] [--keep PATTERN=TYPE ...]
[--force]`."""

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from motif_lite.console import escape_what_stdout_cannot_encode
from motif_lite.devices import checked_device
from motif_lite.errors import ConfigError, DeviceError, MotifLiteError
from motif_lite.flag_spelling import (
    ValueNamingParser,
    closest_flag,
    lookalike_hint,
    option_strings,
    refuse_lookalike_positionals,
    spelled,
)
from motif_lite.io.staging import unreachable_path
from motif_lite.paths import path_arg
from motif_lite.shell_syntax import command_line, quoted
from motif_lite.stopping import EXIT_INTERRUPTED, Terminated, exit_with, signals_interrupt
from motif_lite.units import file_size
from motif_lite.version import VERSION

from .components import COMPONENTS, Component
from .convert import check_output, quantize_checkpoint
from .recipes import Recipe, get_recipe, keep_fallbacks, official_sizes, parse_keep, recipe_names
from .sources import open_source
from .text_recipes import TextRecipe, text_recipe_names

EPILOG = """\
examples:
  python -m motif_lite.quantize Motif-Video-2B -o motif-video-2b-Q4_K_M.gguf --type Q4_K_M
  python -m motif_lite.quantize Motif-Video-2B -o mv-hq.gguf --type Q4_K_M --keep 'transformer_blocks.0.*=Q8_0'
  python -m motif_lite.quantize Motif-Video-2B --component text_encoder -o te-Q8_0.gguf --type Q8_0
then: motif-lite run -m Motif-Video-2B --gguf motif-video-2b-Q4_K_M.gguf --text-encoder-gguf te-Q8_0.gguf -p "..."
(docs/quantize.md: the recipes, their measured error and time)
"""


class _QuantizeParser(ValueNamingParser):
    """The quantizer's parser, whose --help lists each recipe with the size of the file it makes, as llama.cpp's
    `llama-quantize` lists its types: counted when the help is shown, not on every run."""

    def format_help(self) -> str:
        self.epilog = recipe_sizes() + EPILOG
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        # `--src=MODEL --dst=OUT.gguf` (ComfyUI-GGUF's convert.py; sd.cpp's --model=MODEL): the source went into
        # another converter's flag, and argparse said only that SRC is missing, where `--src MODEL` gets the hint.
        if message.startswith("the following arguments are required: src"):
            given = [word for word in getattr(self, "_words", []) if word.split("=", 1)[0] in OTHER_TOOLS_FLAGS]
            if given:  # none: SRC was simply left out, and argparse's words say so
                message += _hint(given, known=option_strings(self))
        super().error(message)


def recipe_sizes() -> str:
    """The help's list of the transformer recipes with the size and bits per weight of the file each makes of the
    official 2.04B transformer, three to a line."""
    cells = [f"{name:<7}{file_size(size):>8} {bits:5.2f} bpw" for name, size, bits in official_sizes()]
    lines = ["   ".join(cells[i : i + 3]) for i in range(0, len(cells), 3)]
    heading = "transformer recipes: the file each makes of the 2.04B model, bits per weight (bpw):"
    return "\n".join([heading, *(f"  {line}" for line in lines), ""]) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m motif_lite.quantize`."""
    parser = _QuantizeParser(  # lists the recipes with their sizes; says what a flag given without its value takes
        prog="python -m motif_lite.quantize",
        usage="%(prog)s SRC -o OUT.gguf [--type TYPE] [--component text_encoder] [options]",
        description="Quantize a Motif-Video transformer or its T5Gemma2 text encoder to GGUF (K-quants included).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
        allow_abbrev=False,  # --type only, not --t or --ty: flags are spelled whole, as in motif-lite
    )
    parser.add_argument(
        "src", type=path_arg, help="checkpoint folder, component folder (transformer/, text_encoder/), .safetensors, "
        ".index.json or .gguf, or a Hub repo id in the Hugging Face cache (Motif-Technologies/Motif-Video-2B)",
    )  # fmt: skip
    # Not `required` for argparse: a missing -o is reported by `main`, with a hint when OUT was given another way.
    parser.add_argument("-o", "--output", type=path_arg, help="output .gguf path (required)")
    parser.add_argument(
        "--component",
        type=_component,
        choices=tuple(COMPONENTS),
        default="transformer",
        help="what to quantize (default transformer); text_encoder makes the file for motif-lite run "
        "--text-encoder-gguf",
    )
    parser.add_argument(
        "--type",
        action="append",  # kept whole, so that `run` can refuse a second type rather than keep only the last
        help=f"recipe, one per run; transformer: {recipe_names()}, default Q4_K_M; text_encoder: "
        f"{text_recipe_names()}, default Q8_0 (the text encoder's error grows fast below it, docs/quantize.md)",
    )
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="PATTERN=TYPE",
        help="force a tensor type for names matching an fnmatch pattern, e.g. 'transformer_blocks.0.*=Q8_0'; "
        "repeatable, later rules win; a block type sets matrices only (biases and norms stay F32), and rows "
        "that cannot hold its blocks get the row fallback, with a note",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists (never the GGUF being read)")
    parser.add_argument(
        "--device", default="cpu", help="torch device for the K-quant search (default cpu; cuda runs it on a GPU)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); use 1 on a busy machine, where extra threads "
        "slow the K-quant search down many times",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # Before SRC is asked for, as `motif-lite --version`: the version a file made now records (docs/quantize.md).
    parser.add_argument("--version", action="version", version=f"motif-lite {VERSION}")
    return parser


def run(args: argparse.Namespace) -> None:
    """Quantize as `args` say and print the summary; user errors raise `MotifLiteError`."""
    component = COMPONENTS[args.component]
    recipe = chosen_recipe(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)  # this process is ours: the CLI owns its thread setting
    keep = parse_keep(args.keep)
    _check_device(args.device)
    source = open_source(args.src, component)
    try:
        check_output(source, args.output, recipe, force=args.force)  # a refusal first, not after the notes below
        for note in source.notes:
            print(note, file=sys.stderr)
        if source.is_gguf:
            print(_requantize_note(recipe.name), file=sys.stderr)
        plan = component.plan(source.shapes, recipe, keep)
        for line in keep_fallbacks(source.shapes, plan, keep):
            print(f"note: {line}", file=sys.stderr)
        summary = quantize_checkpoint(
            source,
            args.output,
            recipe,
            keep,
            force=args.force,
            device=args.device,
            progress=not args.quiet,
            component=component,
        )
    finally:
        source.close()
    _print_summary([*summary.lines(), next_steps(Path(args.src), summary.path, component)])


def _print_summary(lines: list[str]) -> None:
    """`lines` on stdout, whose reader may have stopped reading (`| head -1`): the file is written by then, so that
    is no failure and no traceback. Python would write the rest again at exit: stdout goes to /dev/null instead."""
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # a stdout without a file descriptor has nothing buffered
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def missing_output(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The error for a command (`argv`) without -o: the same command with an -o that names the file after the source,
    the component and the type."""
    try:
        recipe = chosen_recipe(args).name
    except MotifLiteError:  # a --type that is refused: said by the run that has an -o
        recipe = "TYPE"
    source = Path(args.src).name.split(".")[0].lower() or "model"  # a file's name without .safetensors, .gguf, ...
    component = "" if args.component == "transformer" else "-" + args.component.replace("_", "-")
    command = command_line(["python", "-m", "motif_lite.quantize", *argv, "-o", f"{source}{component}-{recipe}.gguf"])
    return f"-o is missing: name the .gguf file to write, e.g. {command}"


def chosen_recipe(args: argparse.Namespace) -> Recipe | TextRecipe:
    """The recipe that --type names (one: `_one_type`) for --component, else that component's default."""
    component = COMPONENTS[args.component]
    return component.get_recipe(_one_type(args.type) or component.default_recipe)


def _one_type(typed: list[str] | None) -> str | None:
    """--type's one value. Several (--type repeated, or a list as `Q4_K_M,Q8_0`) were read as the last one, or as
    an unknown type: one run writes one file, so each type needs a run and an -o of its own."""
    names = [name.strip() for text in typed or [] for name in text.split(",") if name.strip()]
    if len(names) > 1:
        runs = ", then ".join(f"-o model-{name.upper()}.gguf --type {name}" for name in names)
        raise ConfigError(
            f"--type takes one type per run, got {len(names)} ({', '.join(names)}): run the quantizer once per "
            f"type, each with its own -o ({runs})"
        )
    return names[0] if names else None


def _requantize_note(recipe: str) -> str:
    """What converting a GGUF costs: nothing to F32 (float32 holds every dequantized value exactly), else a second
    rounding on top of the first."""
    if recipe == "F32":
        return "note: dequantizing a GGUF to F32 keeps its values exactly (no further loss; 4 bytes per weight)"
    return (  # a larger type (Q4_K_M -> Q8_0) makes a larger file of the same quality: said, as users try it
        "warning: requantizing an already quantized GGUF loses quality, and a larger type does not bring back what "
        "the file lost; quantize from the original safetensors when you can (tensors already of the type planned "
        "for them are copied as they are)"
    )


def _component(text: str) -> str:
    """--component's value, in any letter case and with a dash for the underscore (text-encoder, as the flag
    --text-encoder-gguf that takes the file spells it, was "invalid choice"); the VAE, which other converters may
    offer, is named as what it is here."""
    name = text.lower().replace("-", "_")
    if name == "vae":
        raise argparse.ArgumentTypeError(
            "the VAE (0.25 GB) is not quantized: runs use the checkpoint's vae/ weights as they are"
        )
    return name


def next_steps(src: Path, out: Path, component: Component) -> str:
    """The commands that check and use the file just written (the flag depends on the component)."""
    if (src / component.folder).is_dir():
        checkpoint = str(src)
    elif src.name == component.folder:
        checkpoint = str(src.parent)
    elif not src.exists():  # a Hub repo id, read from the Hugging Face cache: run and check take it too
        checkpoint = str(src)
    else:  # a single file or a GGUF: where the checkpoint is, we cannot tell
        checkpoint = "CHECKPOINT"
    flag = "--gguf" if component.name == "transformer" else "--text-encoder-gguf"
    use = f"-m {quoted(checkpoint)} {flag} {quoted(str(out))}"
    return f'next: motif-lite check {use}, then motif-lite run {use} -p "..."'


def _check_device(name: str) -> None:
    """Refuse, before any tensor is read, a device the search cannot run on here: one torch does not know, one it
    knows but this machine or build lacks (mps, a missing GPU), and one that holds no data (meta)."""
    try:
        checked_device(name)
    except DeviceError as exc:
        raise DeviceError(f"--device: {exc}") from None


# Other converters' flags, and what they are here: llama.cpp's convert_hf_to_gguf.py (--outfile, --outtype),
# llama-quantize (--allow-requantize, --imatrix), stable-diffusion.cpp's `sd -M convert -m MODEL -o OUT --type TYPE
# -t THREADS`, ComfyUI-GGUF's `convert.py --src MODEL --dst OUT`, and ffmpeg's -y.
SOURCE_FIRST = "the source needs no flag, it comes first: python -m motif_lite.quantize SRC -o ..."
KEEP_RULES = ("here --keep PATTERN=TYPE, one rule each (an fnmatch pattern of our tensor names, e.g. "
              "'transformer_blocks.0.*=Q8_0'; later rules win)")  # fmt: skip
EMBED_AND_HEAD = ("the quantized recipes keep the embedders and the output head (proj_out) at Q8_0 (Q3_K_S and Q2_K: "
                  "Q6_K); another type: --keep 'proj_out.*=F16'")  # fmt: skip
OTHER_TOOLS_FLAGS = {
    "--outfile": "here -o",
    "--dst": "here -o",  # ComfyUI-GGUF's convert.py
    "--src": SOURCE_FIRST,
    "--outtype": "here --type",
    "-m": SOURCE_FIRST,
    "--model": SOURCE_FIRST,
    "-M": "not needed, this program only converts: python -m motif_lite.quantize SRC -o ...",
    "--mode": "not needed, this program only converts: python -m motif_lite.quantize SRC -o ...",
    "-t": "here --threads",
    "--allow-requantize": "not needed: a GGUF given as SRC is requantized, with a warning",
    "--imatrix": "not taken: no importance matrix is used (docs/quantize.md, How the K-quants are made)",
    "--overwrite": "here --force",
    "-y": "here --force",  # ffmpeg's
    # Per-tensor types: llama-quantize's --tensor-type, sd.cpp's --tensor-type-rules (regular expressions, joined by
    # commas), llama-quantize's output and embedding types, its one type for every tensor (--pure).
    "--tensor-type": KEEP_RULES,
    "--tensor-type-rules": KEEP_RULES,
    "--output-tensor-type": EMBED_AND_HEAD,
    "--token-embedding-type": EMBED_AND_HEAD,
    "--leave-output-tensor": EMBED_AND_HEAD,
    "--pure": "one type for every matrix is --keep '*=TYPE' (biases and norms stay F32)",
}
FLAGS_WITHOUT_VALUE = ("--allow-requantize", "--overwrite", "-y", "--leave-output-tensor", "--pure")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; user errors print `error: ...` and return status 2, Ctrl-C 130 (the program then ends by
    SIGINT: a shell shows 130), SIGTERM and SIGHUP 128 + their number."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    refuse_lookalike_positionals(parser, args)  # `－－type Q4_K_M SRC`: SRC took the look-alike flag
    if extras:
        hint = _hint(extras, typed=bool(args.type), known=option_strings(parser))
        parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    if args.output is None:  # one line that says what to add, not argparse's usage and "required"
        print(f"error: {missing_output(args, sys.argv[1:] if argv is None else argv)}", file=sys.stderr)
        return 2
    try:
        with signals_interrupt():  # kill, a closed terminal: OUT.tmp is removed, as for Ctrl-C
            run(args)
    except MotifLiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:  # the partial OUT.tmp is already removed (quantize_checkpoint), as for Ctrl-C
        _say(f"\nterminated ({exc}): {args.output} was not written")
        return 128 + exc.signum
    except KeyboardInterrupt:  # the partial OUT.tmp is already removed (quantize_checkpoint)
        _say(f"\ninterrupted: {args.output} was not written")
        return EXIT_INTERRUPTED
    except OSError as exc:  # the source or OUT under a folder this user may not enter: a traceback from pathlib
        if (said := unreachable_path(exc)) is None:
            raise
        _say(f"error: {said}")
        return 2
    return 0


def entry() -> NoReturn:
    """`python -m motif_lite.quantize`: `main`, then exit with its code, the stop signals ignored from then on: one
    landing while Python tears torch down turned a written file's exit status 0 into 143 (`stopping.exit_with`)."""
    escape_what_stdout_cannot_encode()
    exit_with(main())


def _say(line: str) -> None:
    """`line` on stderr, where it may fail: a terminal that hung up (SIGHUP) takes no more lines, and the exit status
    must still say how the quantizer stopped."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr)


def _hint(extras: list[str], typed: bool = False, known: Sequence[str] = ()) -> str:
    """What a user of another converter most likely meant by `extras` (llama-quantize takes SRC OUT TYPE), or which
    of our flags (`known`) a misspelled one is; `typed`: whether --type was given (a type after it is a second type,
    not a misplaced one)."""
    hints = []
    for previous, word in zip([None, *extras[:-1]], extras, strict=True):
        meant = OTHER_TOOLS_FLAGS.get(word.split("=", 1)[0])
        if (lookalike := lookalike_hint(word, known)) is not None:  # `--type　Q4_K_M`, as motif-lite names it
            hints.append(lookalike)
        elif (
            previous
            and not word.startswith("-")
            and lookalike_hint(previous, known)
            and not {"=", "\u3000"} & set(previous)
        ):
            continue  # the value of the look-alike flag before it (`－－type Q4_K_M`); a flag after it is a flag
        elif meant is not None:
            hints.append(f"{word}: {meant}")
        elif previous in OTHER_TOOLS_FLAGS and previous not in FLAGS_WITHOUT_VALUE:  # the value of a flag above
            continue
        elif (ours := _misspelled(word, known)) is not None:
            hints.append(f"{word}: did you mean {ours}?")
        elif previous is not None and _misspelled(previous, known) is not None and "=" not in previous:
            continue  # the value of the misspelled flag before it
        elif word.lower().endswith(".gguf"):
            hints.append(f"{word}: the output goes after -o")
        elif not word.startswith("-") and _is_recipe(word):
            where = "one type per run: run again for it" if typed else "the type goes after --type"
            hints.append(f"{word}: {where}")
    return f" ({'; '.join(hints)})" if hints else ""


def _misspelled(word: str, known: Sequence[str]) -> str | None:
    """The long flag of `known` that `word` most likely misspells (`--componet`, `--Type`, `--keep_`), or None."""
    if not word.startswith("--"):
        return None
    return closest_flag(spelled(word.split("=", 1)[0]), [flag for flag in known if flag.startswith("--")])


def _is_recipe(word: str) -> bool:
    try:
        get_recipe(word)
    except MotifLiteError:
        return False
    return True
