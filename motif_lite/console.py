"""What both programs (`motif-lite` and `python -m motif_lite.quantize`) do to their console before they print."""

from __future__ import annotations

import contextlib
import sys


def escape_what_stdout_cannot_encode() -> None:
    """Characters that stdout's encoding lacks (a prompt's "café" or "狐" under an ASCII or Latin-1 locale, or
    Windows' cp1252, a path's "C:\\Users\\José\\狐") written as backslash escapes, as Python writes them on stderr:
    a summary comes after the video or GGUF file is written, and failing on it would turn finished work into a
    traceback and exit code 1."""
    with contextlib.suppress(AttributeError, ValueError):  # a stream without `reconfigure`, or already closed
        sys.stdout.reconfigure(errors="backslashreplace")
