"""What the fuzz tests (tests/test_fuzz_*.py) ask of a hand-edited or damaged file: it is read, or refused with a
message that names the file and the entry edited, so that the user knows what to fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
