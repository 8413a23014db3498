"""The safetensors header check (`weights/safetensors_header.py`) on files written byte by byte: the tensors' byte
ranges must tile the data exactly, each as long as its dtype and shape need, and the file must end where the last
range does. Each damaged case is one `CheckpointError` naming the file and what is wrong (never a traceback), and a
cut file a `TruncatedError` with the sizes that `check` and the downloader report. CPU, no model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from motif_lite.errors import CheckpointError
from motif_lite.weights.safetensors_header import MAX_HEADER_BYTES, TruncatedError, read_header


def write_safetensors(path: Path, entries: dict, data_bytes: int, extra: bytes = b"") -> Path:
    """A safetensors file of `entries` (name -> dtype, shape, data_offsets) and `data_bytes` zero bytes of data."""
    header = json.dumps(entries).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(data_bytes) + extra)
    return path


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_a_sound_file_gives_each_tensor_and_the_data_length(tmp_path):
    entries = {"a": entry("F32", [2, 3], 0, 24), "b": entry("BF16", [4], 24, 32), "__metadata__": {"format": "pt"}}
    path = write_safetensors(tmp_path / "ok.safetensors", entries, 32)
    header = read_header(path)
    assert header.data_bytes == 32 and set(header.tensors) == {"a", "b"}
    assert (header.tensors["a"].shape, header.tensors["a"].nbytes) == ((2, 3), 24)
    assert (header.tensors["b"].dtype, header.tensors["b"].nbytes) == ("BF16", 8)


def test_overlapping_ranges_are_named_as_an_overlap(tmp_path):
    entries = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}
    path = write_safetensors(tmp_path / "overlap.safetensors", entries, 12)
    with pytest.raises(CheckpointError, match=r"ranges overlap at byte 4 \(corrupt header\)"):
        read_header(path)


def test_a_gap_between_ranges_is_named_as_a_gap(tmp_path):
    entries = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 12, 20)}
    path = write_safetensors(tmp_path / "gap.safetensors", entries, 20)
    with pytest.raises(CheckpointError, match=r"ranges leave a gap at byte 12 \(corrupt header\)"):
        read_header(path)


def test_one_byte_after_the_last_tensor_is_refused(tmp_path):
    path = write_safetensors(tmp_path / "padded.safetensors", {"a": entry("F32", [2], 0, 8)}, 8, extra=b"\0")
    with pytest.raises(CheckpointError, match=r"padded\.safetensors: 1 bytes after the last tensor"):
        read_header(path)


def test_a_range_longer_than_its_tensor_is_refused(tmp_path):
    path = write_safetensors(tmp_path / "long.safetensors", {"a": entry("F32", [2], 0, 12)}, 12)
    with pytest.raises(CheckpointError, match=r"'a' \(F32 \[2\]\) needs 8 bytes but its range has 12"):
        read_header(path)


def test_an_unknown_dtype_is_one_error_not_a_key_error(tmp_path):
    path = write_safetensors(tmp_path / "f128.safetensors", {"a": entry("F128", [1], 0, 16)}, 16)
    with pytest.raises(CheckpointError, match="tensor 'a' has unknown dtype 'F128'"):
        read_header(path)


def test_a_file_shorter_than_the_length_field_is_too_short(tmp_path):
    path = tmp_path / "seven.safetensors"
    path.write_bytes(b"\x01" * 7)
    with pytest.raises(CheckpointError, match="7 bytes, too short for a safetensors file"):
        read_header(path)


def test_a_cut_file_is_truncated_with_its_sizes(tmp_path):
    full = write_safetensors(tmp_path / "full.safetensors", {"a": entry("F32", [4], 0, 16)}, 16)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full.read_bytes()[:-5])
    with pytest.raises(TruncatedError, match="truncated: the header needs") as caught:
        read_header(cut)
    assert (caught.value.size, caught.value.expected) == (full.stat().st_size - 5, full.stat().st_size)


def test_a_header_length_over_the_formats_limit_is_not_read(tmp_path):
    # A file larger than the format's 100 MiB header limit whose first 8 bytes claim a header over it: not a
    # safetensors file (not "truncated", which would send the user to download it again), and not read.
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        f.truncate(MAX_HEADER_BYTES + 64)  # sparse: no 100 MiB written
    with pytest.raises(CheckpointError, match=r"the header claims 104,857,601 bytes") as caught:
        read_header(path)
    assert not isinstance(caught.value, TruncatedError)
