"""Telling systemd how the server stands, for a unit of `Type=notify` (the sd_notify protocol, without libsystemd).

systemd names a datagram socket in `$NOTIFY_SOCKET` (a path, or `@name` for an abstract one) and reads lines such
as `READY=1` from it. A unit of `Type=notify` counts the server as started only once `READY=1` comes: without it,
systemd killed the server as a start that timed out (TimeoutStartSec, 90 s by default) while the model loaded.
"""

from __future__ import annotations

import os
import socket

# The server has loaded the model and its worker runs the queue (the log's `ready:` line).
READY = "READY=1"
# An orderly stop has begun (systemd then shows the unit as deactivating).
STOPPING = "STOPPING=1"


def take_notify_socket() -> str | None:
    """`$NOTIFY_SOCKET`, taken out of this process's environment (None where it is not set), as systemd advises:
    the processes the server starts (ffmpeg, compiler probes, inductor workers) inherited it, and one of them could
    speak for the server. Taken once, before the model loads; the address is kept for READY and STOPPING."""
    return os.environ.pop("NOTIFY_SOCKET", None)


def notify_service_manager(state: str, named: str | None) -> str | None:
    """Send `state` to the service manager at `named` (`take_notify_socket`); nothing where it is None (not under
    systemd, or a unit of another type). A socket that cannot be reached is not the server's failure, but it is
    said: -> a line for the log saying so, else None. Silent, a unit of Type=notify killed the server at its
    TimeoutStartSec with nothing in the log to say why."""
    if not named or not hasattr(socket, "AF_UNIX"):
        return None
    address = "\0" + named[1:] if named.startswith("@") else named  # `@name`: an abstract socket, a zero byte first
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        return f"systemd was not told {state}: its NOTIFY_SOCKET {named} could not be reached ({exc.strerror or exc})"
    return None
