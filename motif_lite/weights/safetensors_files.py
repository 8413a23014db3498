"""Finding and reading the transformer's safetensors files (single file, folder, or sharded with an index)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open

from motif_lite.errors import CheckpointError, listed, shown
from motif_lite.json_values import read_json_object
from motif_lite.weights.safetensors_header import SafetensorsHeader, read_open_header

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
# safetensors' names of the dtypes torch has (weights/safetensors_header.py's DTYPE_BYTES also sizes those it may
# lack). Here, not in safetensors_header.py, which reads headers without importing torch.
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
# Those that hold a float weight: fp8 too (weights/float8.py keeps or widens them). Integers and booleans are an
# int8 export without its scales, or a damaged file: cast to floats they would load without a word and make noise.
FLOAT_DTYPES = {name: dtype for name, dtype in SAFETENSORS_DTYPES.items() if dtype.is_floating_point}
# The stored dtypes `TensorFiles.load` casts as it reads; fp8 ones come back as stored (weights/float8.py keeps them,
# or widens them with their scales).
CAST_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class TensorRef:
    """A tensor in a safetensors file, read only when asked."""

    file: Path
    name: str
    shape: tuple[int, ...]
    dtype: str  # as the header names it: "BF16", "F8_E4M3", ...


class TensorFiles:
    """Reads `TensorRef`s, opening each file once, on its first tensor, and closing them all as the `with` block
    ends. Opening a file reads and parses its header again: once per tensor, 1,500 tensors took 4 s on a 2-core
    CPU (0.05 s opened once). A tensor read as stored is a view of the memory-mapped file: its pages count in the
    process's resident memory once touched, and stay while the file is open or the tensor lives. A tensor read and
    cast comes from the file opened once too, checked against the header read from it; a file replaced or rewritten
    during the load is a `CheckpointError`, never a mix of two versions."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._opened: dict[Path, Any] = {}  # safe_open's handle by file
        self._read_from: dict[Path, tuple[BinaryIO, SafetensorsHeader]] = {}  # `_read`'s handle and its header
        # Each file's identity as first opened, by either path: a file replaced during a load (a re-download renamed
        # into place) is refused, not read half from each version.
        self._identities: dict[Path, tuple[int, ...]] = {}

    def __enter__(self) -> TensorFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def load(self, ref: TensorRef, cast_to: torch.dtype | None = None) -> torch.Tensor:
        """The tensor `ref` names, read from its file; `CheckpointError` when it cannot be read. `cast_to`: a 16- or
        32-bit float tensor stored in another dtype comes back in this one (any other tensor as stored), read with
        a plain read and cast: cast from the mapping, the file pages it was read from would stay in the process's
        resident memory until the files close (a bf16 transformer loaded in float32 peaked at its float32 size plus
        its whole bf16 file)."""
        stored = SAFETENSORS_DTYPES.get(ref.dtype)
        if cast_to is not None and stored != cast_to and stored in CAST_DTYPES:
            return self._read(ref, stored).to(cast_to)
        try:
            if ref.file not in self._opened:
                identity = _identity(os.stat(ref.file))
                self._opened[ref.file] = self._stack.enter_context(safe_open(ref.file, framework="pt"))
                self._check_same(ref.file, identity)
            return self._opened[ref.file].get_tensor(ref.name)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read tensor {ref.name!r} from {ref.file}: {exc}") from None

    def _read(self, ref: TensorRef, dtype: torch.dtype) -> torch.Tensor:
        """The tensor `ref` names, as stored (`dtype`), in memory of its own: read from the file, not mapped."""
        f, header = self._file_to_read(ref.file)
        entry = header.tensors.get(ref.name)
        if entry is None or (entry.dtype, entry.shape) != (ref.dtype, ref.shape):
            now = "no such tensor" if entry is None else f"{entry.dtype} {list(entry.shape)}"
            raise CheckpointError(
                f"cannot read tensor {ref.name!r} from {ref.file}: the file changed while it was read (it was "
                f"{ref.dtype} {list(ref.shape)}, now {now}); load again once the file is complete"
            )
        data = bytearray(entry.nbytes)
        try:
            f.seek(entry.offset)
            if f.readinto(data) != entry.nbytes:
                raise OSError("the file ended before the tensor")
        except OSError as exc:
            raise CheckpointError(f"cannot read tensor {ref.name!r} from {ref.file}: {exc}") from None
        if not data:  # torch.frombuffer refuses an empty buffer
            return torch.empty(ref.shape, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(ref.shape)

    def _file_to_read(self, file: Path) -> tuple[BinaryIO, SafetensorsHeader]:
        """`file` opened for `_read` (once: every tensor comes from the same version of it) and its header."""
        if file not in self._read_from:
            try:
                f = self._stack.enter_context(open(file, "rb"))  # noqa: SIM115 - the stack closes it
                identity = _identity(os.fstat(f.fileno()))
            except OSError as exc:
                raise CheckpointError(f"cannot read {file}: {exc.strerror or exc}") from None
            self._check_same(file, identity)
            self._read_from[file] = f, read_open_header(file, f)
        return self._read_from[file]

    def _check_same(self, file: Path, identity: tuple[int, ...]) -> None:
        """Refuses `file` when it is not the file that was first opened under its name during this load."""
        first = self._identities.setdefault(file, identity)
        if identity != first:
            raise CheckpointError(
                f"{file} changed while it was read (replaced or rewritten during the load); load again once the "
                "file is complete"
            )


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    """What tells one version of a file from another: a file renamed into place has another inode, a file rewritten
    in place another size or modification time."""
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def weight_files(
    folder: Path, single: str = WEIGHTS_NAME, several: Callable[[Path, list[Path]], str] | None = None
) -> tuple[list[Path], Path | None]:
    """The safetensors files a model folder should hold, there or not, and the index naming them: the shards of its
    `*.safetensors.index.json`, else `single`, else its shards without their index (`unindexed_shards`), else its one
    `*.safetensors` under another name; `single` when it holds none. Raises `CheckpointError` for an index that
    cannot be read, shards some of which are missing, or several unrelated files and no index (the message
    `several(folder, files)` where given: each caller has its own advice)."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        return index_shards(indexes[0]), indexes[0]
    candidates = sorted(folder.glob("*.safetensors"))
    if (folder / single).is_file() or not candidates:
        return [folder / single], None
    shards = unindexed_shards(folder, candidates)
    if shards is not None:
        return shards, None
    if len(candidates) == 1:
        return candidates, None
    if several is not None:
        raise CheckpointError(several(folder, candidates))
    raise CheckpointError(f"{folder} holds several .safetensors files and no .index.json saying how they fit")


# A shard's name, as transformers and diffusers save them: model-00001-of-00002.safetensors.
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<number>\d+)-of-(?P<count>\d+)\.safetensors$")


def shard_of_several(file: Path) -> re.Match[str] | None:
    """The name of a shard of two or more (model-00001-of-00002.safetensors), parsed; None for any other name."""
    match = _SHARD.match(file.name)
    return match if match is not None and int(match["count"]) > 1 else None


def missing_shards(folder: Path, stem: str, count: str) -> list[str]:
    """The names of the shards `stem-0000N-of-{count}.safetensors` that `folder` lacks."""
    names = [f"{stem}-{number:0{len(count)}d}-of-{count}.safetensors" for number in range(1, int(count) + 1)]
    return [name for name in names if not (folder / name).is_file()]


def unindexed_shards(folder: Path, files: list[Path]) -> list[Path] | None:
    """`files`, the .safetensors files of `folder` that has no index, when they are the shards of one model
    (model-00001-of-00002.safetensors, ...): they are read together, as the index only tells which shard holds each
    tensor and their headers tell that too (an index left out of a download, or not copied). None when they are
    not one model's shards; `CheckpointError` naming the missing ones when some are not there."""
    parsed = [shard_of_several(file) for file in files]
    if not all(parsed) or len({(match["stem"], match["count"]) for match in parsed}) != 1:
        return None
    stem, count = parsed[0]["stem"], parsed[0]["count"]
    missing = missing_shards(folder, stem, count)
    if missing:
        raise CheckpointError(
            f"{folder} holds {len(files)} of the {int(count)} shards of {stem} (missing: {listed(missing, 4)}) and no "
            ".safetensors.index.json: download the missing shards (and the index) again"
        )
    return files


def find_weight_files(
    folder: Path, single: str = WEIGHTS_NAME, several: Callable[[Path, list[Path]], str] | None = None
) -> list[Path]:
    """The safetensors files of a model folder (`weight_files`), every one of them there; else `CheckpointError`."""
    files, index = weight_files(folder, single, several)
    if index is not None:
        return _present(files, index)
    if not files[0].is_file():
        raise CheckpointError(f"no {single} (nor a *.safetensors.index.json, nor another *.safetensors) in {folder}")
    return files


def shard_files(index_path: Path) -> list[Path]:
    """The shards a safetensors index names, every one of them there; else `CheckpointError`."""
    return _present(index_shards(index_path), index_path)


def index_shards(index_path: Path) -> list[Path]:
    """The shard files a safetensors index names (its weight_map's values), there or not."""
    weight_map = read_json_object(index_path, "safetensors index", CheckpointError).get("weight_map")
    if weight_map is None or weight_map == {}:
        found = "no weight_map" if weight_map is None else "an empty weight_map"
        raise CheckpointError(f"{index_path}: the safetensors index has {found}; it should map each tensor to its file")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index_path}: the safetensors index's weight_map is {shown(weight_map)}, not an object "
                              "mapping each tensor to its file")  # fmt: skip
    odd = [name for name in weight_map.values() if not (isinstance(name, str) and name)]
    if odd:
        raise CheckpointError(f"{index_path}: the safetensors index's weight_map gives {shown(odd[0])} where a file "
                              "name belongs")  # fmt: skip
    return sorted({index_path.parent / name for name in weight_map.values()})


def _present(files: list[Path], index_path: Path) -> list[Path]:
    missing = [f.name for f in files if not f.is_file()]  # the index names shards beside it
    if missing:
        raise CheckpointError(
            f"{index_path} lists shards that are not in {index_path.parent}: {listed(missing, 4)}; download them "
            "again (an interrupted download leaves some out)"
        )
    return files


def read_tensor_refs(files: list[Path]) -> dict[str, TensorRef]:
    """Tensor names and shapes from the headers; checks that each file is complete."""
    refs: dict[str, TensorRef] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    if name in refs:
                        raise CheckpointError(f"tensor {name!r} appears in both {refs[name].file} and {file}")
                    stored = f.get_slice(name)
                    refs[name] = TensorRef(file, name, tuple(stored.get_shape()), stored.get_dtype())
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    return refs


def check_floats(refs: Mapping[str, TensorRef], source: str, what: str) -> None:
    """One `CheckpointError` naming (as the file does) every tensor of `refs` (`what`'s weights, read from `source`)
    whose stored dtype is no float (`FLOAT_DTYPES`): from the headers, before any tensor is read."""
    others = sorted(f"{ref.name} ({ref.dtype})" for ref in refs.values() if ref.dtype not in FLOAT_DTYPES)
    if others:
        raise CheckpointError(
            f"{source}: {len(others)} {what} tensor{'s' if len(others) > 1 else ''} not stored as floats (integers "
            f"or booleans: a quantized export motif-lite does not read, or a damaged file): {listed(others, 5)}; "
            "give the checkpoint's float weights (bf16, fp16, fp32 or fp8)"
        )
