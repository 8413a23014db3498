"""What a file holds, told from its first bytes, for errors about a file of the wrong kind given where weights
belong: a failed download saves a web page or an error message under the name it was asked for (a sign-in page of a
model site, an API's JSON error), and an image or video lands in the wrong flag."""

from __future__ import annotations

from pathlib import Path

from motif_lite.io.clip import MATROSKA_MAGIC

HEAD_BYTES = 64  # enough for every signature below and the first words of a text
_IMAGES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}


def text_start(head: bytes) -> str | None:
    """The first words of `head` (a file's first bytes) when it is text, UTF-8 without control characters, else
    None."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut where the bytes end
            return None
        text = head[: exc.start].decode("utf-8")
    if not text.strip() or not all(char.isprintable() or char in "\t\r\n" for char in text):
        return None
    return text.strip().splitlines()[0][:40]


def other_kind(head: bytes) -> str | None:
    """What a file whose first bytes are `head` is, when it is something known that holds no weights ("a web page
    (HTML): ..."), else None."""
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return ("a web page (HTML), not weights (a download that saved an error or a sign-in page instead of the "
                "file? open it to see)")  # fmt: skip
    for magic, kind in _IMAGES.items():
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp" or head.startswith(MATROSKA_MAGIC):  # MP4/MOV, Matroska/WebM
        return "a video"
    if (words := text_start(head)) is not None:
        return (f"text, not weights (it begins {words!r}; a download that saved an error message instead of the "
                "file?)")  # fmt: skip
    return None


def file_kind(path: str | Path) -> str | None:
    """`other_kind` of the file at `path`; None when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return other_kind(file.read(HEAD_BYTES))
    except OSError:
        return None
