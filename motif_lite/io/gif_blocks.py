"""Where a GIF's blocks end: a GIF keeps no size of its own, so a file cut short shows only in a block (or the run
of sub-blocks of one) that runs past the file's end, or the trailer byte that ends the blocks missing."""

from __future__ import annotations

from typing import BinaryIO

_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B


def gif_cut_short(stream: BinaryIO, size: int) -> str | None:
    """What shows the GIF in `stream` (of `size` bytes) cut short, or None: whole, or blocks this does not know
    (left to ffmpeg)."""
    offset = 6 + 7  # the header (GIF89a) and the logical screen descriptor
    stream.seek(10)
    packed = stream.read(1)
    if not packed:
        return _past_the_end(offset, size)
    offset += _color_table_size(packed[0])
    while offset < size:
        stream.seek(offset)
        kind = stream.read(1)[0]
        if kind == _TRAILER:
            return None
        if kind == _EXTENSION:
            offset = _after_sub_blocks(stream, offset + 2, size)  # after the introducer and the label
        elif kind == _IMAGE:
            stream.seek(offset + 9)  # the left, top, width and height before the packed byte
            packed = stream.read(1)
            if not packed:
                return _past_the_end(offset + 10, size)
            # after the descriptor, its color table and the LZW code size
            offset = _after_sub_blocks(stream, offset + 10 + _color_table_size(packed[0]) + 1, size)
        else:
            return None
    return _past_the_end(offset, size)


def _color_table_size(packed: int) -> int:
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def _after_sub_blocks(stream: BinaryIO, offset: int, size: int) -> int:
    """Where the sub-blocks from `offset` end (after their terminator, a block of size 0); past `size` where the
    file ends in them."""
    while offset < size:
        stream.seek(offset)
        length = stream.read(1)[0]
        offset += 1 + length
        if length == 0:
            return offset
    return size + 1


def _past_the_end(offset: int, size: int) -> str:
    if offset > size:
        return f"its blocks run past the file's end at byte {size:,}"
    return "a GIF's blocks end with its trailer, ';', and this one has none"
