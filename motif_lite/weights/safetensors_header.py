"""Read and validate a safetensors header without touching the tensor data.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, data offsets)
and the data. `read_header` checks that every tensor's byte range fits its dtype and shape, that the ranges tile
the data without gaps or overlaps, and that the file is exactly as long as the header says: a truncated or
padded download is caught from its first few kilobytes.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from motif_lite.errors import LFS_POINTER_START, CheckpointError, LFSPointerError, is_lfs_pointer
from motif_lite.json_values import NotAJSONObject, parse_json_object

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100 * 2**20  # the format's own limit


class TruncatedError(CheckpointError):
    """A safetensors file shorter than its header says (a copy or download that did not finish): `size` bytes where
    the header asks for `expected` or more."""

    def __init__(self, message: str, size: int, expected: int) -> None:
        super().__init__(message)
        self.size, self.expected = size, expected


@dataclass(frozen=True)
class HeaderTensor:
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    offset: int  # where its bytes start in the file (after the 8-byte length and the header)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    tensors: dict[str, HeaderTensor]
    data_bytes: int


def read_header(path: str | Path) -> SafetensorsHeader:
    """The tensors listed in `path`'s header; a `CheckpointError` naming the file if it is corrupt or truncated."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return read_open_header(path, f)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_open_header(path: Path, f: BinaryIO) -> SafetensorsHeader:
    """`read_header` of `f`, the file `path` opened for reading: the header of the very file a caller goes on
    reading from, even if `path` is replaced meanwhile (a re-download renamed into place)."""
    try:
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
        head = f.read(len(LFS_POINTER_START))  # read once: the length, then what else the file may be
        if is_lfs_pointer(head):  # a clone made without git-lfs
            raise LFSPointerError.file(path, size)
        prefix = head[:8]
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: {size} bytes, too short for a safetensors file (truncated?)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            what = "not a safetensors file, or truncated"
            message = f"{path}: the header claims {length:,} bytes, the file has {size:,} ({what})"
            if length > MAX_HEADER_BYTES:
                from motif_lite.io.file_kinds import HEAD_BYTES, other_kind  # only for this error

                # a failed download's page, an image: told from the bytes read so far and the rest of HEAD_BYTES
                kind = other_kind(head + f.read(max(HEAD_BYTES - len(head), 0)))
                raise CheckpointError(f"{path} is not a safetensors file: it is {kind}" if kind else message)
            raise TruncatedError(message, size, 8 + length)  # or cut inside its header
        f.seek(8)
        raw = f.read(length)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        entries = parse_json_object(raw)
    except NotAJSONObject as exc:
        raise CheckpointError(f"{path}: the safetensors header is {exc}") from None
    entries.pop("__metadata__", None)
    tensors, spans = {}, []
    for name, entry in entries.items():
        tensors[name], span = _tensor(path, name, entry, 8 + length)
        spans.append(span)
    data_bytes = _check_spans(path, sorted(spans))
    expected = 8 + length + data_bytes
    if size < expected:
        raise TruncatedError(
            f"{path}: truncated: the header needs {expected:,} bytes, the file has {size:,}", size, expected
        )
    if size > expected:
        raise CheckpointError(f"{path}: {size - expected:,} bytes after the last tensor (corrupt download?)")
    return SafetensorsHeader(path, tensors, data_bytes)


def _tensor(path: Path, name: str, entry: object, data_start: int) -> tuple[HeaderTensor, tuple[int, int]]:
    try:
        dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        ok = all(isinstance(v, int) and v >= 0 for v in (*shape, begin, end))
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: malformed header entry for tensor {name!r}: {entry!r}")
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
    nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != nbytes:
        raise CheckpointError(
            f"{path}: tensor {name!r} ({dtype} {list(shape)}) needs {nbytes:,} bytes but its range has {end - begin:,}"
        )
    return HeaderTensor(dtype, shape, nbytes, data_start + begin), (begin, end)


def _check_spans(path: Path, spans: list[tuple[int, int]]) -> int:
    """The data's length, after checking that the tensors' byte ranges tile it exactly."""
    position = 0
    for begin, end in spans:
        if begin != position:
            what = "overlap" if begin < position else "leave a gap"
            raise CheckpointError(f"{path}: tensor data ranges {what} at byte {begin:,} (corrupt header)")
        position = end
    return position
