"""What a file given where weights belong holds, told from its first bytes (`io/file_kinds.py`): the words an error
uses for a failed download's page or message, an image, a video. Pure bytes, no files."""

from __future__ import annotations

import pytest

from motif_lite.io.file_kinds import HEAD_BYTES, other_kind

LONG_LINE = "401 Unauthorized: this repository requires you to accept its license first"


@pytest.mark.parametrize(
    ("head", "said"),
    [
        (b"\r\n\r\n<!DOCTYPE html>\n<html><head>", "a web page (HTML)"),  # a server's page after blank lines
        ("a fox 🦊".encode()[:-1], "text, not weights (it begins 'a fox"),  # a 4-byte character cut after 3
        (LONG_LINE.encode(), f"text, not weights (it begins {LONG_LINE[:40]!r};"),  # the first words, not the line
        (b"RIFF\x00\x10\x00\x00WEBPVP8 ", "a WebP image"),
    ],
)
def test_first_bytes_are_named_for_what_they_hold(head: bytes, said: str) -> None:
    assert other_kind(head[:HEAD_BYTES]).startswith(said)


@pytest.mark.parametrize(
    "head",
    [b"  \r\n\t\n ", b"RIFF\x00\x10\x00\x00WAVEfmt "],  # blanks only; RIFF of another form (a sound) is no WebP
    ids=["blank", "wave"],
)
def test_bytes_of_nothing_known_are_named_nothing(head: bytes) -> None:
    assert other_kind(head) is None
