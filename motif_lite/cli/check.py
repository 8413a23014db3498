"""`motif-lite check`: what is on disk and what this machine can do, without loading any weights.

    motif-lite check -m ./Motif-Video-2B --gguf ./motif-video-2b-Q4_K_M.gguf

Prints one line per finding (`ok`, `warning` or `problem`, then the file or part of the machine), the default
request's memory plan, and a summary. Exit code 0 when there is no problem, 2 otherwise (see motif_lite.checkup).
"""

from __future__ import annotations

import argparse

from motif_lite.cli.run_flags import (
    add_checkpoint_flags,
    add_text_encoder_gguf_flag,
    add_weight_file_flags,
    take_weight_flags,
)

EXIT_PROBLEMS = 2

DESCRIPTION = """\
Check that every file a run reads is present, complete (safetensors and GGUF headers against the file sizes) and
consistent with its config (every tensor's name and shape), that every config parses, and what this machine
offers (GPU and free memory, Triton, ffmpeg); print the memory plan of a default run. Nothing is downloaded and
no weights are loaded. Exit code 0: no problem; 2: problems, each on its own line with its file and the fix. No
GPU, Triton or ffmpeg is a warning, not a problem."""

EPILOG = """\
examples:
  motif-lite check                                                (the official repo, from the Hugging Face cache)
  motif-lite check -m ./Motif-Video-2B --gguf ./motif-video-2b-Q4_K_M.gguf
  motif-lite check -m ./Motif-Video-2B --gguf Q4_K_M --text-encoder-gguf te-Q8_0.gguf
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `check` to the `motif-lite` subcommands."""
    check = commands.add_parser(
        "check",
        help="check the checkpoint files, the GGUF file and this machine without loading weights",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
    )
    add_checkpoint_flags(check)
    add_text_encoder_gguf_flag(check)
    add_weight_file_flags(check)
    check.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from motif_lite.checkup import check_setup

    weights = take_weight_flags(args)
    report = check_setup(args.model, args.gguf, args.text_encoder_gguf, weights)
    for line in report.lines():
        print(line)
    if report.plan is not None:
        print("\n".join("         " + line for line in report.plan.describe().splitlines()))
    problems, warnings = len(report.problems), len(report.warnings)
    verdict = "everything needed is in place" if report.passed else "a run would fail: fix the problems above"
    print(f"check: {problems} problem(s), {warnings} warning(s); {verdict}")
    return 0 if report.passed else EXIT_PROBLEMS
