"""User-facing errors.

Everything a user can cause (a bad path, a corrupt file, an impossible size) raises a subclass of
`MotifLiteError` with a message that says what is wrong and what to do. The CLI prints these without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum
import errno
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


class MotifLiteError(Exception):
    """An error caused by user input or files, reported without a traceback."""


class ConfigError(MotifLiteError, ValueError):
    """A config.json value (or a value inferred from weights) is invalid."""


class CheckpointError(MotifLiteError):
    """A checkpoint is missing, corrupt, truncated, foreign, or does not match the model."""


# The first bytes of a Git LFS pointer: what `git clone` leaves in place of a large file without git-lfs installed.
LFS_POINTER_START = b"version https://git-lfs.github.com/spec/"
LFS_FIX = (
    "the repo was cloned without Git LFS, which leaves a ~130-byte text pointer in place of each large file: in "
    "the cloned folder run `git lfs install && git lfs pull`, or download the files with `hf download` instead"
)


class LFSPointerError(CheckpointError):
    """Git LFS pointers where weights (or other large files) should be: `subject` (a file, or a folder whose files
    `problem` names); `problem` and `fix` said apart for `motif-lite check`."""

    def __init__(self, subject: object, problem: str) -> None:
        self.problem, self.fix = problem, LFS_FIX
        super().__init__(f"{subject}: {problem}; {LFS_FIX}")

    @classmethod
    def file(cls, path: object, size: int) -> LFSPointerError:
        return cls(path, f"a Git LFS pointer ({size} bytes of text), not the file itself")


def is_lfs_pointer(head: bytes) -> bool:
    """Whether a file's first bytes are those of a Git LFS pointer (`LFS_POINTER_START`)."""
    return head.startswith(LFS_POINTER_START)


class DiskFullError(MotifLiteError, OSError):
    """An output's disk is full before the work starts. A user error for `motif-lite run` (another -o) and an
    OSError (ENOSPC) for a server, where it is the data folder's: its operator's to fix, not the client's."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.message = message

    def __str__(self) -> str:
        return self.message


class MemoryBudgetError(MotifLiteError):
    """No memory plan fits the budget (device or host memory): the request and the files are fine, this machine
    (or the budget given) is too small for it. `motif-lite check` says it as a limit of the machine, not a fault.
    `smallest_vram_gib`: where no plan fits the device, the --vram that holds the smallest (the advice after running
    out of memory names it); None otherwise."""

    def __init__(self, message: str, smallest_vram_gib: float | None = None) -> None:
        super().__init__(message)
        self.smallest_vram_gib = smallest_vram_gib


class DeviceError(MotifLiteError):
    """The requested device does not exist or cannot be used on this machine."""


def both_spellings(flag: str, keyword: str) -> str:
    """A setting named in a message that `motif-lite run` and the Python API share (the checks before loading), as
    each of their users writes it: `both_spellings("--device cpu", 'device="cpu"')` -> '--device cpu (in Python
    device="cpu")'. A Python caller would otherwise have to guess the keyword from the flag."""
    return f"{flag} (in Python {keyword})"


class Audience(enum.Enum):
    """Who a message of the checks that `motif-lite run`, the Python API and `motif-lite serve` share speaks to,
    which decides how it names a setting. The checks serve run and Python alike (a run reaches them through the
    Python API), so their messages name both spellings; a server's client sets neither, but the API's fields. A
    command's own check of its flags (run's, check's, serve's, decode's), which no Python caller reaches, names the
    flags alone. verify checks its size, seed and first frame with run's checks, in run's words, but has no --extend:
    it is not told to go on from a clip with it."""

    RUN_OR_PYTHON = "run or python"  # '--video-frames 5 (in Python frames=5)'
    API = "api"  # 'num_frames 5' (docs/server.md's fields)
    FLAGS = "flags"  # '--video-frames 5': a command's flags alone
    VERIFY = "verify"  # as RUN_OR_PYTHON, less the advice to give a clip to --extend


@dataclass(frozen=True)
class Spelling:
    """A setting, with its value where it has one, as each audience gives it."""

    flag: str  # motif-lite run's: "--video-frames 5"
    keyword: str  # the Python API's: "frames=5"
    field: str  # the server API's: "num_frames 5"

    def to(self, audience: Audience) -> str:
        """The setting in `audience`'s words: its field for the API, its flag for a command's flags alone, else both
        spellings (`both_spellings`)."""
        if audience is Audience.API:
            return self.field
        return self.flag if audience is Audience.FLAGS else both_spellings(self.flag, self.keyword)


def counted(n: int, noun: str) -> str:
    """ "1 frame", "49 frames": a count with its noun (regular plurals only), for messages and summaries."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def listed(items: Sequence[str], limit: int, separator: str = ", ", more: str = "and {} more") -> str:
    """The first `limit` of `items` joined by `separator`, then how many more there are (`more` formatted with
    that count), for error messages that name a few of many: `listed(problems, 3, "; ")` -> "a; b; c; and 4 more"."""
    if len(items) <= limit:
        return separator.join(items)
    return separator.join([*items[:limit], more.format(len(items) - limit)])


def whole_float_hint(value: object, valid: Callable[[int], bool] = lambda number: True) -> str:
    """' (a float: give 18)' for a whole-number float given where an integer is wanted, whose integer is `valid`;
    else '': a float is refused as a float, not as a fraction, and without saying so "a whole number ... got 18.0"
    reads as a contradiction (JSON encoders such as Python's write a float 18 as 18.0)."""
    if not (isinstance(value, float) and value.is_integer() and valid(int(value))):
        return ""
    return f" (a float: give {int(value)})"


def shown(value: object, limit: int = 60) -> str:
    """`value` as Python writes it (`repr`), cut to `limit` characters, for a message about a value that may be of
    any length (a damaged file's entry, a request's 4000-digit field): "'xxxxx...'"."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_as_sent(value: object, audience: Audience, limit: int = 60) -> str:
    """`value` as `audience` wrote it, cut as `shown` cuts it: to the server's client a JSON literal, object or list
    as JSON writes it (`true`, `null`, `{"a": 1}`: what its body held, not Python's `True`), else `shown`'s text.
    Text stays quoted as `shown` quotes it ('abc'), as every message names a value sent as text."""
    if audience is not Audience.API or not (value is None or isinstance(value, bool | dict | list)):
        return shown(value, limit)
    try:
        return json_as_sent(value, ensure_ascii=False, limit=limit)
    except (TypeError, ValueError, RecursionError):  # not from JSON after all (a Python caller's object inside)
        return shown(value, limit)


class WrittenNumber(float):
    """A JSON number that Python reads as infinity (`1e400`, past the largest float), kept with the text the client
    wrote: a message about it said "got inf", a value the client never sent."""

    written: str

    def __new__(cls, written: str) -> WrittenNumber:
        number = super().__new__(cls, written)
        number.written = written
        return number

    def __repr__(self) -> str:
        return self.written

    __str__ = __repr__


def json_as_sent(value: object, ensure_ascii: bool = True, limit: int | None = None) -> str:
    """`value`, read from a client's JSON, as `json.dumps` writes it, but for a number past a float's range (a
    `WrittenNumber`), written as the client wrote it: json.dumps wrote `{"strength": Infinity}` for `1e400`. Cut to
    `limit` characters as `shown` cuts (None: whole), and written no further than that: a body's LoRA object holding
    two million numbers was written whole, in Python on the server's event loop, to show 60 characters of it (4 s,
    every request waiting). Raises what json.dumps raises for a value JSON has no form of (TypeError, ValueError)
    in the part written."""
    pieces, length = [], 0
    for piece in _json_pieces(value, ensure_ascii):
        pieces.append(piece)
        length += len(piece)
        if limit is not None and length > limit:  # enough to cut: the rest would not be shown
            break
    text = "".join(pieces)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def _json_pieces(value: object, ensure_ascii: bool) -> Iterator[str]:
    """The text of `json_as_sent`, piece by piece, each written only once the one before it has been taken."""
    if isinstance(value, WrittenNumber):
        yield value.written
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError("keys of a client's JSON object are text")
            yield f"{', ' if index else ''}{json.dumps(key, ensure_ascii=ensure_ascii)}: "
            yield from _json_pieces(item, ensure_ascii)
        yield "}"
    elif isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _json_pieces(item, ensure_ascii)
        yield "]"
    else:
        yield json.dumps(value, ensure_ascii=ensure_ascii)
