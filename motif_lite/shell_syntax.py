"""The commands a message suggests, written for the shell the user most likely types them into: bash (any POSIX
shell) on Linux and macOS, PowerShell on Windows, whose terminal opens it by default (cmd's forms are in
docs/usage.md, "On Windows"). On POSIX the words are what the messages always said.
"""

from __future__ import annotations

import os
import re
import shlex

# An argument that needs no quotes in either shell (PowerShell reads a backslash as a plain character).
_PLAIN = re.compile(r"[\w@%+=:,./\\-]+")


def on_windows() -> bool:
    return os.name == "nt"


def quoted(text: str) -> str:
    """`text` as one argument: as shlex quotes it, or in PowerShell's single quotes (a quote inside doubled)."""
    if not on_windows():
        return shlex.quote(text)
    return text if _PLAIN.fullmatch(text) else _single_quoted(text)


def variable_set(name: str, value: str, windows_value: str | None = None) -> str:
    """Setting the environment variable `name` for the commands after it: `NAME=value`, or PowerShell's
    `$env:NAME = 'value'` with `windows_value` where a POSIX example path (`/big/disk/...`) would mislead."""
    if not on_windows():
        return f"{name}={shlex.quote(value)}"
    return f"$env:{name} = {_single_quoted(windows_value or value)}"


def file_text(path: str) -> str:
    """An argument that is the whole text of the file `path`: `"$(cat FILE)"`, or PowerShell's
    `(Get-Content -Raw FILE)`."""
    if not on_windows():
        return f'"$(cat {shlex.quote(path)})"'
    return f"(Get-Content -Raw {quoted(path)})"


def _single_quoted(text: str) -> str:
    """PowerShell's literal string: nothing inside is expanded, a quote is doubled."""
    return "'" + text.replace("'", "''") + "'"
