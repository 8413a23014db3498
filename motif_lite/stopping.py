"""Stop signals for the programs that keep or clean up their work when stopped (`motif-lite run`/`decode`, the
quantizer): `kill`, a batch scheduler's stop or warning, a closed terminal. By default they end a process where it
is (a stopped run's state lost, a partial file left behind); caught, they unwind as Ctrl-C does."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

# SIGUSR1/2 kill a process that has no handler for them: a scheduler's warning before its time limit (Slurm's
# `--signal=USR1@120`) would lose a run's state instead of giving it the time to keep it.
STOP_SIGNAL_NAMES = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
STOP_SIGNALS = tuple(getattr(signal, name) for name in STOP_SIGNAL_NAMES if hasattr(signal, name))
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program Ctrl-C stopped


class Terminated(KeyboardInterrupt):
    """A termination signal, raised where the program is, as Ctrl-C's KeyboardInterrupt is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def not_ignored(signums: Sequence[int]) -> list[int]:
    """The signals of `signums` the program was not started ignoring. One it was (`nohup` ignores SIGHUP) is left
    as it is: `nohup motif-lite run ...` or `serve` must outlive the SSH session that started it."""
    return [signum for signum in signums if signal.getsignal(signum) is not signal.SIG_IGN]


@contextlib.contextmanager
def signals_interrupt(signums: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """While the block runs, each of `signums` raises `Terminated` where the program is (the handlers before are
    put back after). A signal the program was started ignoring stays ignored: `nohup motif-lite run ...` must
    outlive the SSH session that started it. Only the main thread can set handlers: elsewhere (a host application's
    worker) nothing changes. Only the first signal stops: the program is stopping from then on, and a second one
    would interrupt the save of its state or the removal of a partial file. Slurm can signal every process of a
    job step, and the torchrun launcher there passes the signal on to its ranks too, so that each rank gets it
    twice, moments apart. (torch's launcher alone, as `--gpus N` starts it, delivers it once: its ranks run in
    sessions of their own, which a terminal's Ctrl-C does not reach. A second Ctrl-C still stops a save.)"""
    stopping = []  # the signal that stopped the block, once one did

    def stop(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(signum)
            raise Terminated(signum)

    before = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in not_ignored(signums):
            before[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def exit_with(code: int) -> NoReturn:
    """Exit with `code`, Ctrl-C and the stop signals ignored from here on: one that lands while Python tears torch
    down would turn a finished command's exit status into 130 (or a death by the signal) without a word, and a
    script would take the video or file it got for a failure."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to ignore
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            signal.signal(signum, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        _end_by_sigint()
    sys.exit(code)


def _end_by_sigint() -> None:
    """End this process by SIGINT itself, as Python does after an uncaught Ctrl-C (the shell still shows 130). A
    shell running the command in a loop (`while read -r prompt; do motif-lite run ...; done`) gets the Ctrl-C too,
    and stops the loop only when the program died of it: one that exits with 130 handled the Ctrl-C, so the loop
    went on with its next prompt and a second Ctrl-C was needed for every line left. Not on Windows, which has no
    such ending (there the exit status stays 130)."""
    if os.name != "posix":
        return
    for stream in (sys.stdout, sys.stderr):  # what they hold: the process ends without Python's own flush
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    with contextlib.suppress(ValueError):  # not the main thread: exit with 130 instead
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
