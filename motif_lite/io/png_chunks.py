"""An animated PNG (APNG) told from a still one by its chunks, without a decoder: an `acTL` chunk before its first
image data (`IDAT`) makes it an animation, which ffmpeg decodes as a video (`io/clip.py` reads it as a clip to go on
from); each frame's `fcTL` chunk says how long it shows, from which its frame rate follows (ffmpeg's header gives
none for an animation of two frames, and a rate of its own for delays that differ). Only the chunks' headers are
read, each chunk's data skipped: a few small reads a frame. https://wiki.mozilla.org/APNG_Specification"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A chunk: its data's length (4 bytes), its type (4), its data, its CRC (4).
CHUNK_OVERHEAD = 12
# Where an fcTL chunk's delay is, in its data: after its sequence number, width, height, x and y offsets (4 bytes
# each); the delay is two 16-bit numbers, seconds as numerator / denominator (a denominator of 0 means 100).
FCTL_DELAY_AT = 20
DELAY_DENOMINATOR_OF_ZERO = 100
# The most chunks read: an APNG has two or three a frame, and a few before its first image. A file of more (an
# upload of a million empty ones: a second or more to walk in Python) is read only this far.
MAX_CHUNKS = 100_000


def is_animated_png(path: Path) -> bool:
    """Whether `path` is an animated PNG: a PNG with an `acTL` chunk before its first `IDAT` (False for a still PNG,
    a damaged one whose chunks end before either, another kind of file, or one that cannot be read)."""
    try:
        with path.open("rb") as stream:
            for kind, _ in _chunks(stream, path.stat().st_size):
                if kind in (b"acTL", b"IDAT"):
                    return kind == b"acTL"
    except OSError:
        pass
    return False


def animated_png_rate(path: Path) -> float | None:
    """An animated PNG's frame rate from its frames' delays (`fcTL`): its frames over the seconds they show, an
    average where they differ (the rate at which its frames, each once, play as long as it does); None for a file
    that is no APNG, has no delays, or shows its frames for no time."""
    if not is_animated_png(path):
        return None
    frames, seconds = 0, 0.0
    with path.open("rb") as stream:
        for kind, data_at in _chunks(stream, path.stat().st_size):
            if kind != b"fcTL":
                continue
            stream.seek(data_at + FCTL_DELAY_AT)
            delay = stream.read(4)
            if len(delay) < 4:  # an fcTL too short to hold one: not a delay to count
                return None
            numerator, denominator = int.from_bytes(delay[:2], "big"), int.from_bytes(delay[2:], "big")
            frames += 1
            seconds += numerator / (denominator or DELAY_DENOMINATOR_OF_ZERO)
    return frames / seconds if frames and seconds > 0 else None


def _chunks(stream: BinaryIO, size: int) -> Iterator[tuple[bytes, int]]:
    """Each chunk of the PNG in `stream` (`size` bytes) in order: its type and where its data begins, the first
    `MAX_CHUNKS` of them. Nothing when it does not start as a PNG; it stops after `IEND`, or before a chunk that runs
    past the file's end (a damaged file, or one cut short: what follows is not read as chunks)."""
    stream.seek(0)
    if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return
    offset = len(PNG_SIGNATURE)
    for _ in range(MAX_CHUNKS):
        if offset + CHUNK_OVERHEAD > size:
            return
        stream.seek(offset)
        header = stream.read(8)
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        end = offset + CHUNK_OVERHEAD + length
        if end > size:
            return
        yield kind, offset + 8
        if kind == b"IEND":
            return
        offset = end
