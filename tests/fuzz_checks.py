"""What the fuzz tests (tests/test_fuzz_*.py) ask of a hand-edited or damaged file: it is read, or refused with a
message that names the file and the entry edited, so that the user knows what to fix."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from unittest.mock import ANY


def unnamed(message: str, *needles: str) -> list[str]:
    """The needles (a file, a key) that `message` does not name; a key with underscores may be named by its flag
    (`negative_prompt` as `--negative-prompt`)."""
    return [needle for needle in needles if needle not in message and "--" + needle.replace("_", "-") not in message]


@contextlib.contextmanager
def read_or_refused_naming(error: type[Exception], *needles: str) -> Iterator[None]:
    """The block reads the file, or raises `error` whose message names every needle; anything else fails the
    test."""
    try:
        yield
    except error as exc:
        missing = unnamed(str(exc), *needles)
        assert not missing, f"{exc} does not name {missing}"


def entries(values: Mapping, prefix: str = "") -> dict[str, object]:
    """A config read as nested dicts, by dotted path (`text_config.hidden_size`); lists as JSON holds them (a tuple
    field is a list)."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(entries(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _same(a: object, b: object) -> bool:
    """Equal, NaN being equal to itself (a NaN read as read is no change), `true` no number (Python's True == 1)."""
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or (a == b and isinstance(a, bool) == isinstance(b, bool))


def assert_read_as_edited(read: Mapping, unedited: Mapping, key: str, expected: object = ANY) -> None:
    """A config read from a file with `key` (a dotted path) edited differs from the unedited file's read in that
    entry (or, for a section, entries under it) only, and holds `expected` there where given (the edited value, or
    the reference's default for a key left out): never another entry's change, nor a silent default."""
    now, before = entries(read), entries(unedited)
    changed = {entry for entry in now.keys() | before.keys() if not _same(now.get(entry), before.get(entry))}
    others = sorted(entry for entry in changed if entry != key and not entry.startswith(key + "."))
    assert not others, f"{key} edited, but {others} changed too"
    if expected is not ANY:
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert _same(now.get(key), expected), f"{key} edited: read as {now.get(key)!r:.40}, not {expected!r:.40}"
