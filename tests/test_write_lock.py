"""tqdm's write lock as the command line gives it (`progress.make_write_lock`): a stop raised while a line waits for
it stays a stop, and making it leaves a Python caller's multiprocessing start method as it was. Each case runs in a
process of its own: signal handlers, tqdm's lock and the start method are the whole process's."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from motif_lite.progress import StopSafeWriteLock
from motif_lite.stopping import Terminated

# The stop (the launcher's SIGTERM) lands while the main thread's warning line waits for tqdm's write lock, which
# another thread holds a moment (a bar's refresh, tqdm's monitor, a thread logging a warning).
STOPPED_WHILE_WAITING = """
import os, signal, threading, time
from tqdm.std import tqdm
from motif_lite import cli
from motif_lite.progress import make_write_lock
from motif_lite.stopping import Terminated, signals_interrupt

make_write_lock()  # as cli.main makes it, before signals_interrupt
held, let_go = threading.Event(), threading.Event()

def other_thread():
    with tqdm.get_lock():
        held.set()
        let_go.wait(10)

threading.Thread(target=other_thread, daemon=True).start()
held.wait()
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
try:
    with signals_interrupt():
        cli._say_above_bars("warning: nothing to save")
except Terminated:
    print("stopped")
let_go.set()
taken = []
waiter = threading.Thread(target=lambda: taken.append(tqdm.get_lock().acquire(timeout=5)))
waiter.start()
waiter.join()
print("free for other threads" if taken == [True] else "still held")
"""


def test_a_stop_raised_while_a_line_waits_for_tqdms_lock_stays_a_stop_and_leaves_the_lock_free():
    # tqdm's own lock (a multiprocessing lock, then a thread lock) turned this stop into "RuntimeError: cannot
    # release un-acquired lock", a traceback, and kept its first lock held, so other threads' bars waited for ever.
    done = subprocess.run([sys.executable, "-c", STOPPED_WHILE_WAITING], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.split("\n")[:2] == ["stopped", "free for other threads"], (done.stdout, done.stderr)


CALLER_CHOOSES_SPAWN = """
import multiprocessing
from tqdm import tqdm
from motif_lite import cli

cli.main(["check", "--model", "/nonexistent/motif"])  # a user error: said, no bar
multiprocessing.set_start_method("spawn")  # "context has already been set" where main fixed the method
tqdm.write("a line above the bars still")
print(multiprocessing.get_start_method())
"""


def test_cli_main_leaves_a_python_callers_multiprocessing_start_method_unset():
    done = subprocess.run([sys.executable, "-c", CALLER_CHOOSES_SPAWN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2:] == ["spawn", ""] and "a line above the bars still" in done.stdout, done.stdout


class StoppedAsTaken:
    """A thread lock on which a stop lands just as `acquire` takes it, as Python runs a signal's handler when the
    call returns: the lock is held, and the caller sees the stop in place of True."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.lock.acquire(blocking, timeout)
        raise Terminated(signal.SIGTERM)

    def release(self) -> None:
        self.lock.release()


def test_a_stop_raised_as_the_lock_is_taken_gives_it_back():
    # A bar's `with tqdm.get_lock():` never releases a lock whose acquire raised: the stop kept it held for ever.
    lock = StopSafeWriteLock()
    lock._lock = StoppedAsTaken()
    with pytest.raises(Terminated), lock:
        pass
    taken = []
    other = threading.Thread(target=lambda: taken.append(lock._lock.lock.acquire(timeout=2)))
    other.start()
    other.join()
    assert taken == [True]
    lock.release()  # tqdm.write's cleanup releases all the same: not this thread's lock, and nothing is said


def test_a_write_lock_tqdm_has_already_is_kept(monkeypatch):
    # A Python caller's bars, shown before `cli.main`, share tqdm's lock with their threads (tqdm's monitor, a bar
    # being refreshed): a new lock put in its place would let those threads and our lines write at once. Without
    # one, tqdm is given the lock a stop leaves as it found it.
    from tqdm.std import tqdm

    from motif_lite.progress import make_write_lock

    callers = threading.RLock()
    monkeypatch.setattr(tqdm, "_lock", callers, raising=False)
    make_write_lock()
    assert tqdm.get_lock() is callers
    monkeypatch.delattr(tqdm, "_lock")
    make_write_lock()
    assert isinstance(tqdm.get_lock(), StopSafeWriteLock)


def test_a_release_by_a_thread_that_holds_nothing_leaves_another_threads_hold():
    # tqdm.write releases in its cleanup whether or not its acquire took the lock: after a stop cut the wait short,
    # that release must not free the lock a bar of another thread still holds (a lock without an owner would, and
    # two threads would then write at once).
    lock = StopSafeWriteLock()
    held, let_go = threading.Event(), threading.Event()

    def bar_thread():
        with lock:
            held.set()
            let_go.wait(10)

    other = threading.Thread(target=bar_thread)
    other.start()
    held.wait(10)
    lock.release()  # this thread's cleanup, its acquire cut short
    try:
        assert not lock.acquire(blocking=False)  # still the other thread's
    finally:
        let_go.set()
        other.join(10)
    assert lock.acquire(blocking=False)
    lock.release()
