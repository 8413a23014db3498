"""Where a video or PNG file says it ends: a file cut short (a copy interrupted, a disk that filled) shows only in
a size its container wrote that runs past the file's end, or an end it lacks. ffmpeg and Pillow read such a file
without an error up to where it was cut, so a clip to extend is checked here first (`io/clip.py`); GIFs, which keep no
size of their own, in `io/gif_blocks.py`; an animated PNG by the end of a PNG it lacks."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from motif_lite.io.file_kinds import MATROSKA_MAGIC
from motif_lite.io.gif_blocks import gif_cut_short
from motif_lite.io.png_chunks import PNG_SIGNATURE, is_animated_png

MATROSKA_SEGMENT = 0x18538067
MAX_TOP_LEVEL_BOXES = 10_000  # an MP4 has a handful (ftyp, moov, mdat, free, ...): more is no MP4 to check
# How a complete PNG ends: the IEND chunk (no data, then its CRC). It may be followed by a few stray bytes, which
# Pillow ignores, so it is looked for in the file's last bytes, not only at its very end.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_TAIL_BYTES = 1024


def cut_short_by_its_sizes(path: Path) -> str | None:
    """What shows `path` cut short by its container's own sizes, or None: an MP4/MOV box or a Matroska segment
    (.mkv, .webm) that runs past the file's end, a RIFF file (WebP, AVI) shorter than its header says, a GIF without
    its trailer byte after its last block (`gif_blocks`), an animated PNG without a PNG's end (`ends_a_png`). ffmpeg
    reads such a file without an error up to where it was cut, and the run would go on from a frame in its middle.
    Other formats (a still PNG is one image, refused before), and sizes this cannot read, are left to ffmpeg."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(12)
        if head[4:8] == b"ftyp":
            return _mp4_box_past_the_end(stream, size)
        if head.startswith(MATROSKA_MAGIC):
            return _matroska_segment_past_the_end(stream, size)
        if head.startswith(b"GIF8"):
            return gif_cut_short(stream, size)
    if head.startswith(PNG_SIGNATURE) and is_animated_png(path) and not ends_a_png(path):
        return "it lacks a PNG's end"
    said = 8 + int.from_bytes(head[4:8], "little")
    if head.startswith(b"RIFF") and size < said:
        return f"its header says {said:,} bytes, the file has {size:,}"
    return None


def _mp4_box_past_the_end(stream: BinaryIO, size: int) -> str | None:
    """The top-level box of an MP4/MOV (ISO base media file) that runs past the file's end, if any."""
    offset = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset >= size:
            return None
        stream.seek(offset)
        header = stream.read(16)
        if len(header) < 8:
            return f"its last box header is cut at byte {size:,}"
        length, kind = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
        if length == 1:  # the size follows as 64 bits
            if len(header) < 16:
                return f"its last box header is cut at byte {size:,}"
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # the last box, to the end of the file
            return None
        if length < 8:
            return None  # not a size this walk understands: ffmpeg judges the file
        if offset + length > size:
            return f"its {kind!r} box ends at byte {offset + length:,}, the file at {size:,}"
        offset += length
    return None


def _matroska_segment_past_the_end(stream: BinaryIO, size: int) -> str | None:
    """Whether the segment of a Matroska/WebM file (after its EBML header) says more bytes than the file has."""
    stream.seek(0)
    data = stream.read(1024)  # the EBML header (its ID, size and a few short fields), then the segment's ID and size
    header = _ebml_element(data, 0)
    if header is None:
        return None
    _, header_data, header_size = header
    segment = _ebml_element(data, header_data + header_size)
    if segment is None or segment[0] != MATROSKA_SEGMENT or segment[2] is None:
        return None  # no segment where it should be, or one of unknown size (written as a stream): not checked
    _, segment_data, segment_size = segment
    if segment_data + segment_size > size:
        return f"its segment ends at byte {segment_data + segment_size:,}, the file at {size:,}"
    return None


def _ebml_element(data: bytes, at: int) -> tuple[int, int, int | None] | None:
    """An EBML element's ID, where its data begins and its size (None: unknown) at `at`; None if not readable."""
    element_id = _ebml_number(data, at, keep_marker=True)
    if element_id is None:
        return None
    value, after_id = element_id
    length = _ebml_number(data, after_id, keep_marker=False)
    if length is None:
        return None
    data_size, data_at = length
    width = data_at - after_id
    unknown = data_size == (1 << (7 * width)) - 1  # every value bit set: a size not known when it was written
    return value, data_at, None if unknown else data_size


def _ebml_number(data: bytes, at: int, keep_marker: bool) -> tuple[int, int] | None:
    """EBML's variable-length integer at `at` (its first byte's leading zeros say how many bytes follow) and where
    it ends; an ID keeps its length marker bit, a size drops it."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 9 - data[at].bit_length()
    if at + width > len(data):
        return None
    value = int.from_bytes(data[at : at + width], "big")
    return (value if keep_marker else value & ((1 << (7 * width)) - 1)), at + width


def ends_a_png(file: Path) -> bool:
    """Whether `file` has the end of a PNG in its last bytes (a file cut short after its header has not)."""
    with file.open("rb") as stream:
        stream.seek(max(0, file.stat().st_size - PNG_TAIL_BYTES))
        return PNG_END in stream.read()
