"""The `motif-lite` program as pip's launcher starts it (`python -m motif_lite` too).

The launcher imports the function it calls before calling it, and importing the command line takes a moment (more
on a cold disk or a network file system): a Ctrl-C then would print a traceback. This module imports nothing
until it is called, then imports the command line inside its own Ctrl-C handling, which says what `motif-lite`
says for a Ctrl-C later on.
"""

from __future__ import annotations

from typing import NoReturn


def main() -> NoReturn:
    """Import the command line and run it; Ctrl-C during that import prints the one "interrupted" line and exits
    with the same status as a Ctrl-C during the command."""
    try:
        from motif_lite.cli import entry
    except KeyboardInterrupt:
        _interrupted_while_starting()
    entry()


def _interrupted_while_starting() -> NoReturn:
    import contextlib
    import sys

    from motif_lite.launcher_variables import rank_prefix
    from motif_lite.stopping import EXIT_INTERRUPTED, exit_with

    with contextlib.suppress(OSError):  # stderr's reader went away, or the terminal hung up: nothing to tell
        print(f"\n{rank_prefix()}interrupted", file=sys.stderr)
    exit_with(EXIT_INTERRUPTED)
