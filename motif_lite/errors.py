"""User-facing errors.

Everything a user can cause (a bad path, a corrupt file, an impossible size) raises a subclass of
`MotifLiteError` with a message that says what is wrong and what to do. The CLI prints these without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class MotifLiteError(Exception):
    """An error caused by user input or files, reported without a traceback."""


class ConfigError(MotifLiteError, ValueError):
    """A config.json value (or a value inferred from weights) is invalid."""


class CheckpointError(MotifLiteError):
    """A checkpoint is missing, corrupt, truncated, foreign, or does not match the model."""


class DeviceError(MotifLiteError):
    """The requested device does not exist or cannot be used on this machine."""


def counted(n: int, noun: str) -> str:
    """ "1 frame", "49 frames": a count with its noun (regular plurals only), for messages and summaries."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def listed(items: Sequence[str], limit: int, separator: str = ", ", more: str = "and {} more") -> str:
    """The first `limit` of `items` joined by `separator`, then how many more there are (`more` formatted with
    that count), for error messages that name a few of many: `listed(problems, 3, "; ")` -> "a; b; c; and 4 more"."""
    if len(items) <= limit:
        return separator.join(items)
    return separator.join([*items[:limit], more.format(len(items) - limit)])
