"""The `motif-lite` command: one subcommand per module of this package.

Each subcommand module adds its parser with `register(commands)` and imports torch and the pipeline only inside its
handler, so that `motif-lite --help` answers at once. User mistakes (`MotifLiteError`) print `error: ...` and exit
with code 2 (a parallel run's rank that lost contact with another: 3), Ctrl-C ends it by SIGINT (a shell shows
130; `main` returns 130), running out of device memory prints `error: out of device memory: ...` and exits with
code 1; none prints a traceback. While `run`, `decode`, `check` or `verify` works, SIGTERM and SIGHUP (`kill`,
`docker stop`, a batch scheduler's preemption, a closed terminal) and SIGUSR1 and SIGUSR2 (a batch scheduler's
warning before its time limit, as Slurm's `--signal`) stop it as Ctrl-C does, so that `run` and `decode` keep
their work (docs/usage.md, "When a run stops"), and it exits with 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn, TextIO

from motif_lite import __version__
from motif_lite.cli import check, command_hints, decode, run, run_inputs, serve, unknown_flags, verify
from motif_lite.cli.common import library_bars_kept_out_of_logs
from motif_lite.console import escape_what_stdout_cannot_encode
from motif_lite.errors import MotifLiteError
from motif_lite.flag_spelling import ValueNamingParser, refuse_lookalike_positionals
from motif_lite.io.staging import unreachable_path
from motif_lite.launcher_variables import job_ranks, launcher_number_or_none, rank_prefix
from motif_lite.paths import name_too_long
from motif_lite.progress import make_write_lock
from motif_lite.stopping import EXIT_INTERRUPTED, STOP_SIGNALS, Terminated, exit_with, signals_interrupt

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 1  # what the uncaught exception gave before: scripts see the same code
# 128 + SIGPIPE: what a shell reports for a program whose reader went away (`motif-lite run ... | head -1`).
EXIT_OUTPUT_CLOSED = 141
OUT_OF_MEMORY_ADVICE = (
    "the memory plan is made from the GPU's free memory at the start: another program may have taken some since. "
    "Close it, or give a smaller budget (--vram GiB) so that the plan leaves room; --dry-run shows the plan"
)
SUBCOMMANDS = (run, decode, check, verify, serve)
# Commands that termination signals stop as Ctrl-C does: `run` and `decode` keep their work, `check` and `verify`
# have none to keep but must stop all the same. Without a handler, a container's first process (PID 1) ignores
# `docker stop`'s SIGTERM until SIGKILL comes 10 s later. (`serve` has its own.)
STOPPED_LIKE_CTRL_C = ("run", "decode", "check", "verify")
ALLOCATOR_CONFIG = "PYTORCH_CUDA_ALLOC_CONF"  # torch's CUDA caching allocator's settings, read as CUDA starts

EPILOG = """\
examples:
  motif-lite run -p "a red fox runs through snow" -o fox.mp4
  motif-lite run --gguf Q4_K_M -i first_frame.png -p "the fox turns its head" -o fox_i2v.mp4
  motif-lite check                                    (what is missing, with the download command)

Each command's flags: motif-lite COMMAND --help. The GGUF quantizer is a program of its own:
  python -m motif_lite.quantize CHECKPOINT -o motif-video-2b-Q4_K_M.gguf --type Q4_K_M   (docs/quantize.md)
"""


def build_parser() -> argparse.ArgumentParser:
    # Its subcommands' parsers are of its class: each says what a flag given without its value takes.
    parser = ValueNamingParser(
        prog="motif-lite",
        description="Lean, quantized, low-VRAM runtime for Motif-Video 2B (text/image-to-video).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"motif-lite {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    for command_parser in commands.choices.values():  # whose usage and flags an unknown argument is reported with
        command_parser.set_defaults(command_parser=command_parser)
        # No prefix matching: argparse would read another tool's flag as ours when it begins one (stable-diffusion.cpp's
        # --mode as --model); an unknown flag gets unknown_flags' hints instead.
        command_parser.allow_abbrev = False
    return parser


def entry() -> NoReturn:
    """The `motif-lite` program (and `python -m motif_lite`): `main`, then exit with its code, the stop signals
    ignored from then on (`stopping.exit_with`)."""
    escape_what_stdout_cannot_encode()
    exit_with(_flushed(main()))


def _flushed(code: int) -> int:
    """`code`, once stdout has written what it holds (a pipe's stdout is buffered: the summary may still be
    there); `EXIT_OUTPUT_CLOSED` when its reader went away. Left to Python's exit, that write would fail with
    "Exception ignored ... BrokenPipeError" and the exit code 120."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stop_writing_to_closed_pipes()
        return EXIT_OUTPUT_CLOSED
    return code


def _help(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """`motif-lite help [COMMAND]`, as pip, git and cargo take it: the command's --help, or the program's without
    one. A word that is no command gets the typo hint (`help rnu`: did you mean help run) or the list of commands."""
    commands = command_hints.subcommands(parser)
    if not argv:
        parser.print_help()
        return 0
    if argv[0] in commands:
        commands[argv[0]].print_help()
        return 0
    # `help resume`, `help quantize`: what to type instead, as `motif-lite resume` is told
    hint = command_hints.other_command(argv[:1]) or command_hints.misspelled_command(argv[:1], parser, before=["help"])
    print(hint or f"motif-lite: error: there is no '{argv[0]}' command; the commands are "
          f"{', '.join(commands)}: motif-lite help COMMAND", file=sys.stderr)  # fmt: skip
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `quantize` / `convert` (what stable-diffusion.cpp and llama.cpp users type) are a program of their own here, a
    # prompt first (`motif-lite "a red fox"`) and `run`'s flags without `run` (as sd.cpp's `sd` takes them) lack the
    # command, and `chek` is a typo of one; argparse alone would answer "invalid choice" with the list of subcommands.
    if argv[:1] == ["help"]:
        return _help(parser, argv[1:])
    hint = (
        command_hints.other_command(argv)
        or command_hints.prompt_as_command(argv)
        or command_hints.misspelled_command(argv, parser)
        or command_hints.sd_cpp_mode(argv)
        or command_hints.missing_command(argv, parser)
        or unknown_flags.lookalike_command(argv, parser)
    )
    if hint is not None:
        print(hint, file=sys.stderr)
        return EXIT_USER_ERROR
    if wide := command_hints.wide_space_before_value(argv, parser):  # before argparse's own look-alike advice
        command_hints.subcommands(parser)[argv[0]].error(wide)
    if small := command_hints.lowercase_size_flag(argv, parser):  # before argparse takes -h for help
        command_hints.subcommands(parser)[argv[0]].error(small)
    args, extras = parser.parse_known_args(argv)
    args.argv = argv  # the command as typed: for hints that repeat it, and what `run --gpus N` starts
    run_inputs.refuse_seconds(getattr(args, "command_parser", parser), args)
    refuse_lookalike_positionals(getattr(args, "command_parser", parser), args)
    if extras:
        unknown_flags.reject(getattr(args, "command_parser", parser), extras, args)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    stops = STOP_SIGNALS if args.command in STOPPED_LIKE_CTRL_C else ()
    try:
        with (
            _warnings_to_stderr(),
            signals_interrupt(stops),
            _environment_kept(ALLOCATOR_CONFIG, "TRITON_CACHE_DIR"),
            library_bars_kept_out_of_logs(),
        ):
            return args.handler(args)
    except MotifLiteError as exc:
        _say(f"{rank_prefix()}error: {_as_this_rank_says(str(exc))}")
        # A rank that lost contact with another has its own status (`parallel.EXIT_LOST_CONTACT`): the launcher
        # counts it among the ranks stopped by another's failure.
        return getattr(exc, "exit_status", EXIT_USER_ERROR)
    except Terminated as exc:
        if not _other_rank():  # a stop reaches every rank of a job: rank 0 says it for all
            _say(f"\n{rank_prefix()}terminated ({exc})")
        return 128 + exc.signum
    except KeyboardInterrupt:
        if not _other_rank():  # (one rank stopped alone is named by the launcher: "rank 1 failed (stopped by ...)")
            _say(f"\n{rank_prefix()}interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout or stderr went away: nothing more can be said
        _stop_writing_to_closed_pipes()
        return EXIT_OUTPUT_CLOSED
    except OSError as exc:
        if (said := path_error_said(exc)) is None:
            raise
        _say(f"{rank_prefix()}error: {said}")
        return EXIT_USER_ERROR
    except Exception as exc:
        if not _out_of_memory(exc):
            raise  # a bug: keep its traceback
        # Not a bug: other programs took the memory, or the size is too large for it. torch's message says how much.
        _say(f"{rank_prefix()}error: out of device memory: {str(exc).splitlines()[0]}")
        if hasattr(args, "vram"):  # the commands that plan their memory: run, decode, serve
            _say(f"{rank_prefix()}{_out_of_memory_advice(exc)}")
        return EXIT_OUT_OF_MEMORY


def path_error_said(exc: OSError) -> str | None:
    """What `main` says in one line, with no traceback, of an OSError on a path the user typed or a script built: a
    name too long, or one under a folder this user may not enter; None for any other (a bug's traceback)."""
    return name_too_long(exc) if exc.errno == errno.ENAMETOOLONG else unreachable_path(exc)


def _stop_writing_to_closed_pipes() -> None:
    """stdout and stderr sent to /dev/null: Python flushes them as it exits, and a write to a closed pipe then
    prints "Exception ignored ... BrokenPipeError" and makes the exit code 120 (Python's advice, "Note on
    SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a stream with no file descriptor (captured in a test)
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _out_of_memory(exc: Exception) -> bool:
    """Whether `exc` is torch's out-of-memory error (torch is imported by then if it can be one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def _out_of_memory_advice(exc: Exception) -> str:
    """What to do about running out of device memory: the command's advice with the figures of its plan, noted on
    the error where it knew them (`prepare.figures_on_out_of_memory`), else the advice without figures."""
    notes = getattr(exc, "__notes__", None)
    return notes[-1] if notes else OUT_OF_MEMORY_ADVICE


def _say(line: str) -> None:
    """`line` on stderr, where it may fail: a terminal that hung up (SIGHUP when the SSH session dropped) takes no
    more lines, and a failed write must not turn a kept run's exit code into a traceback's. When stderr's reader
    went away, on the terminal instead (`_say_on_terminal`)."""
    try:
        print(line, file=sys.stderr)
    except BrokenPipeError:
        _say_on_terminal(line)
    except OSError:
        pass


def _say_above_bars(line: str) -> None:
    """`line` on whatever `sys.stderr` is now (so redirected or captured streams see it), on a line of its own
    above any progress bar (a plain write would land inside the bar's line). A terminal that hung up takes no more
    lines (`_say`): the work of a run stopping then is kept all the same."""
    from tqdm import tqdm

    try:
        tqdm.write(line, file=sys.stderr)
    except BrokenPipeError:
        _say_on_terminal(line)
    except OSError:
        pass


CONTROLLING_TERMINAL = "/dev/tty"


def _say_on_terminal(line: str) -> None:
    """`line` on the terminal the command runs in, for when stderr's reader went away: Ctrl-C in `motif-lite run ...
    2>&1 | tee run.log` stops tee too, and what the run kept, and how to go on, was said to no one. Nothing where
    there is no terminal (cron, a scheduler, Windows) or it hung up."""
    with contextlib.suppress(OSError):
        terminal = os.open(CONTROLLING_TERMINAL, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0))
        try:
            os.write(terminal, f"{line}\n".encode(errors="backslashreplace"))
        finally:
            os.close(terminal)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _say_above_bars(f"{record.levelname.lower()}: {record.getMessage()}")


class _WarningLines:
    """Python's warnings as `warning: ...` lines, each line once per command: ours (a kernel falling back mid-run)
    as the message alone, as the logged ones are; another library's with its category and place, which say where
    to look. Python's own once-per-place registry forgets what it showed whenever a filter changes (every
    `catch_warnings` with a `simplefilter`, as the quiet planning passes make), so a config read again after one
    printed its warning again."""

    def __init__(self) -> None:
        self.said: set[str] = set()

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = str(message)
        ours = text.startswith("motif-lite: ") or os.path.abspath(filename).startswith(_own_folders())
        if ours:
            said = f"warning: {text.removeprefix('motif-lite: ')}"
        else:
            said = f"warning: {category.__name__}: {text} ({filename}:{lineno})"
        if said not in self.said:
            self.said.add(said)
            _say_above_bars(said)


def _own_folders() -> tuple[str, ...]:
    """The folders motif-lite's code is read from, each ending in a separator: motif_lite/, and in a checkout's
    editable install the top-level kernels/ and quantize/ folders that import as motif_lite.kernels and
    motif_lite.quantize (a wheel has them inside motif_lite/). Found without importing them."""
    folders = {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for name in ("motif_lite.kernels", "motif_lite.quantize"):
        spec = importlib.util.find_spec(name)
        folders.update((spec.submodule_search_locations or ()) if spec else ())
    return tuple(os.path.join(os.path.abspath(folder), "") for folder in folders)


def _no_warning(*args: object, **kwargs: object) -> None:
    """Python's warnings on a rank other than 0 of a torchrun job: rank 0 shows them."""


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """While a command runs, motif_lite's logged warnings (e.g. a truncated prompt) and Python's warnings as
    `warning: ...` lines above the progress bars, on one process or rank 0 of a torchrun job (its other ranks print
    logged errors only). Python's filters are unchanged (each warning still shows once per place); the display is
    put back after."""
    make_write_lock()  # here, before `signals_interrupt`: a stop raised as tqdm makes it hid the stop (progress.py)
    logger = logging.getLogger("motif_lite")
    # The ranks other than 0 of a torchrun job print errors alone: they read the same files and run the same steps,
    # so rank 0 says each warning once where N processes said it N times.
    other_rank = _other_rank()
    handler = _StderrHandler(logging.ERROR if other_rank else logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # printed once, here
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _no_warning if other_rank else _WarningLines()
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def use_expandable_segments() -> None:
    """Before torch starts CUDA: growable allocator segments keep what is reserved close to what is allocated, as
    the memory planner assumes (docs/memory.md). A value the user set wins. It is set in the environment, the only
    way to configure the allocator before it starts, for the command `main` runs (`_environment_kept`)."""
    os.environ.setdefault(ALLOCATOR_CONFIG, "expandable_segments:True")


@contextlib.contextmanager
def _environment_kept(*names: str) -> Iterator[None]:
    """The variables `names` after a command as they were before: a command sets the allocator's for itself (torch
    reads it once, as CUDA starts, and the ranks and workers the command starts inherit it) and may point Triton's
    kernel cache at a folder it can write (`kernel_cache.writable_kernel_cache`); a Python caller of `main` (a
    script, a test) keeps its own environment for what it does next, its own CUDA use included."""
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _other_rank() -> bool:
    """Whether this process is a rank other than 0 of a torchrun job (`run --gpus N` starts one)."""
    return job_ranks() > 1 and launcher_number_or_none("RANK") not in (0, None)


def _as_this_rank_says(message: str) -> str:
    """A user error as this process prints it: whole, except on the ranks other than 0 of a torchrun job, which print
    its first line. They mostly fail as rank 0 does (the same refusal of a memory plan, with its table), and N
    copies of a table say nothing more than one; the first line says what is wrong."""
    if launcher_number_or_none("RANK") in (0, None) or job_ranks() == 1:
        return message
    return message.splitlines()[0] if message else message
