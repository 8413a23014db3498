"""The stop signals through the whole of `motif-lite serve`: SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 stop it in
order, as Ctrl-C does, before the model has loaded (the checks, the load) and after (the HTTP side, then the running
job after its current step).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from motif_lite.stopping import STOP_SIGNALS, Terminated, not_ignored


class ServerStops:
    """The handler of the stop signals for the whole of `serve`. Before the model has loaded a signal raises
    `Terminated` where the main thread is, as Ctrl-C interrupts the checks or the load; once the server exists it
    also stops its HTTP side (`VideoServer.stop`), and once the model has loaded that is all it does: the running job
    stops after its current step. Only the first signal raises: a second one asks for the same orderly stop, and
    must not interrupt the server's own stopping."""

    def __init__(self) -> None:
        self.server = None
        self.received: int | None = None  # the first stop signal

    def __call__(self, signum: int, _frame: object) -> None:
        first = self.received is None
        self.received = self.received or signum
        if self.server is not None:
            self.server.stop(signum)
        if first and (self.server is None or not self.server.loaded):
            raise Terminated(signum)

    def serving(self, server) -> None:
        """From now on a signal stops `server` too. A signal received before whose `Terminated` was lost (raised in
        a callback of the garbage collector, which prints and drops it) stops the server now, before it serves."""
        self.server = server
        if self.received is not None:
            server.stop(self.received)
            raise Terminated(self.received)


@contextlib.contextmanager
def stop_in_order_on_signals() -> Iterator[ServerStops]:
    """SIGTERM (`systemctl stop`, `docker stop`), SIGHUP (the terminal closed), SIGUSR1 and SIGUSR2 (a scheduler's
    warning) stop the server as Ctrl-C does, the HTTP side first, then the running job after its current step, and
    the process exits with 0: with 130 (Ctrl-C's code) systemd marked every stop as a failure, and SIGHUP's default
    killed the server like a crash (`ServerStops` says how, before and after the load). A signal the server was
    started ignoring stays ignored (`nohup motif-lite serve`: the SSH session's end must not stop it). Only the main
    thread can set handlers: elsewhere nothing changes. The handlers before are put back after."""
    stops = ServerStops()
    before = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in not_ignored(STOP_SIGNALS):
            before[signum] = signal.signal(signum, stops)
    try:
        yield stops
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
