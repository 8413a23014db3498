"""`ProgressBars`: a tqdm bar per stage of `generate`, for its `on_progress` (the command line's bars and a
notebook's), or whole lines where the text goes to a log. Imports nothing heavy, so that `motif-lite --help` stays
quick."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import TextIO

LOG_EVERY_S = 30.0  # a log gets a stage's first and last line, and one between at most this often


class ProgressBars:
    """A progress bar per stage for `generate(request, on_progress=ProgressBars())`: encode (inputs), denoise
    (steps) and decode (latent frames). tqdm.auto's bars: widgets in a Jupyter notebook (Colab, Kaggle), text in a
    terminal. Text that goes elsewhere (a log file, a pipe, a batch scheduler's output) gets `LogLines` instead:
    there a bar redrawn with carriage returns is one long line that `grep`, `less` and journald show garbled. One
    instance serves many calls: each stage that starts gets a new bar (the next video's encode, or the one after a
    stop part way through denoising). `file`: where text goes (default stderr)."""

    UNITS = {"encode": "input", "denoise": "step", "decode": "latent frame"}

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file
        self.stage: str | None = None
        self.bar = None  # the current stage's bar

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            from tqdm.auto import tqdm  # a notebook's widgets where ipywidgets is installed

            self.close()
            self.stage = stage
            unit = self.UNITS.get(stage, "it")
            stream = self.file if self.file is not None else sys.stderr
            bar = tqdm if shows_bars_in_place(stream) else LogLines
            # `initial`: a resumed run's bar starts at the steps already done.
            self.bar = bar(total=total, initial=done, desc=f"{stage:>7}", unit=unit, file=self.file)
        self.bar.update(done - self.bar.n)
        if stage == "decode" and done == total:  # the last stage is done: nothing more will close it
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage, self.bar = None, None


class LogLines:
    """A stage's progress as whole lines, tqdm's text without the carriage returns: one when the stage starts, one
    at its end, and one between at most every `LOG_EVERY_S` seconds (`TQDM_MININTERVAL` in the environment, if
    set), so that `tail`, `grep` and a scheduler's log show how far a run got. `TQDM_DISABLE=1` writes none, as
    it turns tqdm's bars off."""

    def __init__(self, total: int, initial: int, desc: str, unit: str, file: TextIO | None = None) -> None:
        self.total, self.initial, self.n = total, initial, initial
        self.desc, self.unit, self.file = desc, unit, file
        self.start = time.monotonic()
        self.every, self.silent = _log_settings()
        self.shown: tuple[int, float] | None = None  # (done, when) of the last line

    def update(self, steps: int) -> None:
        self.n += steps
        now = time.monotonic()
        if self.shown is None or self.n == self.total or now - self.shown[1] >= self.every:
            self._line(now)

    def close(self) -> None:
        if self.shown is None or self.shown[0] != self.n:  # stopped part way: where it got
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        from tqdm.std import tqdm

        self.shown = (self.n, now)
        if self.silent:
            return
        stream = self.file if self.file is not None else sys.stderr
        text = tqdm.format_meter(self.n, self.total, now - self.start, prefix=self.desc, unit=self.unit,
                                 initial=self.initial, ascii=not _writes_unicode(stream))  # fmt: skip
        print(text, file=stream, flush=True)


def make_write_lock() -> None:
    """Give tqdm its write lock now (`StopSafeWriteLock`), before a stop can be raised where the program is (Ctrl-C's
    KeyboardInterrupt, `Terminated` for a launcher's SIGTERM). tqdm makes its own as its first bar starts or its
    first `tqdm.write` says a line above the bars; where text goes to a log no tqdm bar starts (`LogLines`), and the
    first line said that way is a warning, often the one said as a rank whose peer was killed stops ("nothing to
    save"), just as the launcher stops it. A stop raised while tqdm made its lock left `tqdm.write`'s cleanup
    releasing a lock that was never set: "AttributeError: type object 'tqdm' has no attribute '_lock'", a traceback
    in place of the quiet stop. A lock tqdm has already (bars a Python caller showed before) is kept: bars of other
    threads may hold it."""
    from tqdm.std import tqdm  # the class tqdm.auto's bars and `tqdm.write` callers share the lock of

    if getattr(tqdm, "_lock", None) is None:  # how tqdm's own `ensure_lock` asks whether it has one
        tqdm.set_lock(StopSafeWriteLock())


class StopSafeWriteLock:
    """tqdm's write lock (`tqdm.set_lock`), which a stop raised in it leaves as it found it. tqdm's own takes a
    multiprocessing lock, then a thread lock, and `tqdm.write` releases both in a `finally`: a stop raised between the
    two, or while the thread waited for a lock a bar of another thread held (tqdm's monitor, a download's bar, a
    thread logging a warning), became "RuntimeError: cannot release un-acquired lock", a traceback in place of the
    stop, and left the first lock held, so the other threads' bars waited for ever.

    One thread lock, not a multiprocessing one: making that fixes the multiprocessing start method of the process
    (a Python caller of `cli.main` could not then ask for "spawn"), and it keeps bars of processes forked after it
    from writing over each other, which motif-lite has none of: its ranks are processes of their own, started by
    torchrun, and never shared tqdm's lock. huggingface_hub gives its bars a thread lock for the same reasons."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        try:
            return self._lock.acquire(blocking, timeout)
        except BaseException:
            # A stop raised as the lock was taken (Python runs a signal's handler as the call returns): give it
            # back. A stop raised while the thread waited took nothing; this thread held no level then (it would
            # not have waited), so `_release_if_held` releases nothing.
            self._release_if_held()
            raise

    def release(self) -> None:
        self._release_if_held()

    def _release_if_held(self) -> None:
        # Not held by this thread (RuntimeError): a stop cut its acquire short, and tqdm.write releases anyway.
        with contextlib.suppress(RuntimeError):
            self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def shows_bars_in_place(stream: TextIO) -> bool:
    """Whether text written to `stream` shows a bar redrawn in place: a terminal, or a notebook's cell."""
    return _in_a_notebook() or _is_terminal(stream)


def _in_a_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (Colab, Kaggle): its stderr is no terminal, but a cell shows tqdm's
    bars in place (widgets with ipywidgets, else text whose carriage returns it follows). tqdm.auto asks the same."""
    ipython = sys.modules.get("IPython")  # imported by then in a kernel; never imported here
    try:
        return "IPKernelApp" in ipython.get_ipython().config
    except AttributeError:  # no IPython, or get_ipython() is None outside one
        return False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _writes_unicode(stream: TextIO) -> bool:
    """Whether the bar's block characters fit `stream`'s encoding (else tqdm's ASCII bar: '#')."""
    try:
        "█▏".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _log_settings() -> tuple[float, bool]:
    """(seconds between lines, whether to write none) from tqdm's environment variables, which a user may already
    set for every tqdm bar."""
    try:
        every = float(os.environ.get("TQDM_MININTERVAL", LOG_EVERY_S))
    except ValueError:
        every = LOG_EVERY_S
    silent = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
    return every, silent
