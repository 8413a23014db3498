"""Read Motif-Video GGUF files: metadata as plain Python values, tensors kept packed over the memory map.

gguf-py's `GGUFReader` trusts the header: a corrupt one can make it fail with an unnamed error, or loop for a
very long time on an absurd array length. So `read_gguf` first walks the header itself (bounds-checked, a few
microseconds per entry) and only then hands the file to `GGUFReader`. Every problem becomes a
`CheckpointError` that names the file and, where there is one, the tensor.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import re
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import torch
from gguf import GGUFValueType
from gguf.quants import quant_shape_to_byte_shape

from motif_lite.errors import LFS_POINTER_START, CheckpointError, LFSPointerError, is_lfs_pointer
from motif_lite.shell_syntax import quoted
from motif_lite.weights.dequant import FLOAT_TYPES, check_supported, dequantize, packed_nbytes, qtype_name
from motif_lite.weights.shapes import comfy_prefix, without_comfy_prefix

EXPECTED_ARCH = "motif_video"
TEXT_ENCODER_ARCH = "t5gemma2_encoder"  # `python -m motif_lite.quantize --component text_encoder`
# The GGUF files motif-lite reads, by architecture, and where each one goes.
# Both flags that take each one are named: --diffusion-model moves a .gguf to --gguf, so which one was typed is not
# known here.
GGUF_KINDS = {
    EXPECTED_ARCH: "the Motif-Video transformer, for --gguf or --diffusion-model",
    TEXT_ENCODER_ARCH: "the T5Gemma2 text encoder, for --text-encoder-gguf or --text-encoder",
}
GGUF_FLAGS = {EXPECTED_ARCH: "--gguf", TEXT_ENCODER_ARCH: "--text-encoder-gguf"}
SUPPORTED_VERSIONS = (2, 3)
# ggml itself stops at 4 dims, but gguf-py writes any count (a Conv3d weight has 5); 8 only bounds corruption.
_MAX_DIMS = 8
# Tensor names only the Motif-Video transformer has (Flux's diffusers names are `x_embedder.weight` and
# `context_embedder.weight`): a GGUF that holds them is that transformer whatever its general.architecture says.
# stable-diffusion.cpp's `sd -M convert` writes no architecture at all, other converters their own name for it.
MOTIF_VIDEO_NAMES = ("x_embedder.proj.weight", "context_embedder.linear_1.weight")
# ComfyUI-GGUF's convert tool flattens some tensors and records the real shape under this key prefix.
ORIG_SHAPE_KEY = "comfy.gguf.orig_shape."
_MAX_NESTING = 4  # arrays of arrays in metadata; real files use at most 1
_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1,
    GGUFValueType.INT8: 1,
    GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2,
    GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4,
    GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8,
    GGUFValueType.FLOAT64: 8,
}

_INTEGER_FORMATS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
}


@dataclass(frozen=True)
class PackedTensor:
    """One tensor as stored in the file.

    `data` is a uint8 view `[*shape[:-1], bytes_per_row]` of the packed blocks for quantized types, or an
    ordinary float32/float16/bfloat16 tensor of `shape` for float types. `shape` is the logical shape in
    PyTorch order (GGUF stores dims reversed), e.g. `[out, in]` for a linear weight.
    """

    data: torch.Tensor
    qtype: gguf.GGMLQuantizationType
    shape: tuple[int, ...]
    name: str

    @property
    def is_quantized(self) -> bool:
        return self.qtype not in FLOAT_TYPES

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The values as a float tensor of `shape` (a copy; the packed data stays untouched)."""
        return dequantize(self.data, self.qtype, self.shape, dtype, name=self.name)


@dataclass
class GGUFCheckpoint:
    """A read GGUF file: `metadata` (key -> str/int/float/bool/list) and `tensors` (name -> PackedTensor)."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, PackedTensor] = field(default_factory=dict)

    def qtype_counts(self) -> dict[str, int]:
        """How many tensors of each type, e.g. {"Q4_K": 300, "F32": 500}."""
        return dict(Counter(t.qtype.name for t in self.tensors.values()))

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def read_gguf(path: str | Path, expected_arch: str = EXPECTED_ARCH) -> GGUFCheckpoint:
    """Open a GGUF file (memory-mapped), validate it, and return its metadata and packed tensors."""
    path = Path(path)
    _check_file(path)
    _validate_header(path)
    try:
        reader = gguf.GGUFReader(path, mode="c")  # copy-on-write: torch gets writable views, the file stays intact
        metadata = _metadata(reader)
    except Exception as exc:  # gguf-py raises ValueError, KeyError, IndexError, ... on bad input
        raise DamagedGGUFError(
            f"{path}: corrupt GGUF file, gguf could not read it ({type(exc).__name__}: {exc})"
        ) from exc
    _refuse_split_part(path, metadata)
    names = [t.name for t in reader.tensors]
    # A whole diffusion model file ComfyUI or stable-diffusion.cpp saved: every name carries their prefix, which
    # stripping renames nothing else.
    prefix = (comfy_prefix(names) or "") if expected_arch == EXPECTED_ARCH else ""
    if expected_arch == EXPECTED_ARCH:
        _refuse_missing_5d_weight(path, metadata, [name.removeprefix(prefix) for name in names])
    _check_architecture(path, metadata, expected_arch, [name.removeprefix(prefix) for name in names])
    if expected_arch == EXPECTED_ARCH:  # ours by its names or label: some names with the prefix is neither layout
        without_comfy_prefix(dict.fromkeys(names), str(path))
    tensors = [_restore_shape(path, _packed_tensor(path, t), metadata) for t in reader.tensors]
    if prefix:  # after the shapes are restored: their metadata keys hold the names as stored
        tensors = [dataclasses.replace(t, name=t.name.removeprefix(prefix)) for t in tensors]
    return GGUFCheckpoint(path=path, metadata=metadata, tensors={t.name: t for t in tensors})


def is_motif_video_transformer(names: Sequence[str]) -> bool:
    """Whether these tensor names are the Motif-Video transformer's (see `MOTIF_VIDEO_NAMES`)."""
    return set(MOTIF_VIDEO_NAMES) <= set(names)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"GGUF file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file (expected a .gguf file)")
    if path.stat().st_size == 0:
        raise DamagedGGUFError(f"{path} is empty (expected a .gguf file)")


def _metadata(reader: gguf.GGUFReader) -> dict[str, Any]:
    # "GGUF.*" are the reader's own pseudo-fields (version, counts), not file metadata.
    return {key: f.contents() for key, f in reader.fields.items() if not key.startswith("GGUF.")}


class DamagedGGUFError(CheckpointError):
    """A GGUF file whose bytes are not all there or not readable (empty, truncated, corrupt): an interrupted
    download or copy, to be fetched or made again."""


class ForeignGGUFError(CheckpointError):
    """A GGUF file of another model (a `llama` LLM, a Flux or Wan transformer, ...): no fix makes it ours, and the
    file is the user's to keep."""


class UnfinishedGGUFError(CheckpointError):
    """A file another tool wrote that one more step of that tool makes loadable (the merge of a split file's parts,
    ComfyUI-GGUF's 5-D weight fix): neither damaged nor another model's. `problem` and `fix` said apart for
    `motif-lite check`."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{path} {problem}; {fix}")


class SplitGGUFError(UnfinishedGGUFError):
    """One part of a GGUF file split into several (llama.cpp's `llama-gguf-split --split`, or gguf-py's writer with
    a split size): motif-lite reads one whole file."""


# llama.cpp's and gguf-py's names of the parts: NAME-00001-of-00003.gguf, ...
_SPLIT_PART_NAME = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


def _refuse_split_part(path: Path, metadata: dict[str, Any]) -> None:
    """Refuse one part of a split GGUF file (its `split.count` is over 1), naming the merge that makes one file of
    the parts. Read alone, the first part looked like a file with missing tensors, to make or download again, and
    the others like another model's file (they carry no general.architecture)."""
    count = metadata.get(gguf.Keys.Split.LLM_KV_SPLIT_COUNT)
    if type(count) is not int or count <= 1:
        return
    number = metadata.get(gguf.Keys.Split.LLM_KV_SPLIT_NO)
    part = f"part {number + 1}" if type(number) is int and 0 <= number < count else "a part"
    problem = f"is {part} of a GGUF file split into {count} files (llama.cpp's gguf-split), and motif-lite reads one"
    problem += " whole file"
    if _SPLIT_PART_NAME.search(path.name):
        first = path.with_name(_SPLIT_PART_NAME.sub(f"-00001-of-{count:05d}.gguf", path.name))
        merged = path.with_name(_SPLIT_PART_NAME.sub(".gguf", path.name))
        merge = f"llama-gguf-split --merge {quoted(str(first))} {quoted(str(merged))}"
        fix = f"merge the parts into one with llama.cpp's tool: {merge}, then pass {quoted(str(merged))}"
        if merged.is_file():  # merged before: llama-gguf-split would refuse to write over it
            fix = f"{quoted(str(merged))} is there already, the file the parts merge into: pass it"
    else:  # renamed: gguf-split finds the other parts by the names it gave them, and refuses a first part without
        first = f"NAME-00001-of-{count:05d}.gguf"
        names = f"{first} to NAME-{count:05d}-of-{count:05d}.gguf, this one {part}"
        fix = f"give the parts back the names llama.cpp's gguf-split gave them ({names}), which its merge finds them "
        fix += f"by, then merge them into one: llama-gguf-split --merge {first} NAME.gguf"
    raise SplitGGUFError(path, problem, fix)


def _refuse_missing_5d_weight(path: Path, metadata: dict[str, Any], names: Sequence[str]) -> None:
    """Refuse a transformer file that lacks only what ComfyUI-GGUF's convert.py leaves out: the 5-D Conv3d weight
    of the patch embedder (its bias and the other tensors are there), which that tool's README says to add back with
    tools/fix_5d_tensors.py. Without the weight the file's names were not the transformer's, and it was refused as
    another model's file."""
    present = set(names)
    if (
        "x_embedder.proj.weight" in present
        or not {"x_embedder.proj.bias", "context_embedder.linear_1.weight"} <= present
    ):
        return
    arch = metadata.get("general.architecture")
    saved = f"fix_5d_tensors_{arch if isinstance(arch, str) and arch else 'ARCH'}.safetensors"
    # The tool reads that file from the folder it runs in, where convert.py left it: the paths are said whole, as
    # the user's own folder is seldom that one.
    source = path.absolute()
    fixed = source.with_name(f"{path.stem}-fixed.gguf")
    problem = (
        "holds the Motif-Video transformer's tensors but not x_embedder.proj.weight, its 5-D patch embedding "
        "weight: ComfyUI-GGUF's convert.py leaves 5-D tensors out of the file it writes"
    )
    add_back = f"python fix_5d_tensors.py --src {quoted(str(source))} --dst {quoted(str(fixed))}"
    fix = f"add it back with ComfyUI-GGUF's tools/fix_5d_tensors.py, run in the folder where convert.py saved {saved} "
    fix += f"(it reads that file): {add_back}, then pass {quoted(str(fixed))}"
    raise UnfinishedGGUFError(path, problem, fix)


class OtherGGUFKindError(CheckpointError):
    """A GGUF file motif-lite reads, given where the other kind goes; `flag` is the option it belongs to."""

    def __init__(self, message: str, flag: str) -> None:
        super().__init__(message)
        self.flag = flag


def _check_architecture(path: Path, metadata: dict[str, Any], expected: str, names: Sequence[str]) -> None:
    """Refuse a file of another model; `names` (the tensor names) decide for a transformer file that another tool
    labelled with its own architecture name, or with none."""
    arch = metadata.get("general.architecture")
    if arch == expected:
        return
    if expected == EXPECTED_ARCH and arch not in GGUF_KINDS and is_motif_video_transformer(names):
        return  # the tensors are checked one by one against the config before anything loads
    from motif_lite.io.linked import other_model  # only for a file that is not ours

    wanted = GGUF_KINDS.get(expected, expected)
    model = other_model(names)  # stable-diffusion.cpp's conversions carry no architecture: the names tell
    by_names = f"; by its tensor names it is {model}" if model else ""
    if arch is None:
        raise ForeignGGUFError(f"{path} has no general.architecture; expected {expected!r} ({wanted}){by_names}")
    known = f": {GGUF_KINDS[arch]}" if arch in GGUF_KINDS else ""
    message = f"{path} is a GGUF for architecture {arch!r}{known}; here motif-lite expects {expected!r} ({wanted})"
    if arch in GGUF_FLAGS:
        raise OtherGGUFKindError(message, GGUF_FLAGS[arch])
    raise ForeignGGUFError(message + by_names)


def _packed_tensor(path: Path, t: Any) -> PackedTensor:
    """Wrap a gguf `ReaderTensor` (numpy view over the mmap) without copying."""
    qtype = check_supported(int(t.tensor_type), t.name)
    shape = tuple(int(d) for d in reversed(t.shape.tolist()))
    data = torch.from_numpy(t.data)
    if qtype == gguf.GGMLQuantizationType.BF16:
        data = data.view(torch.bfloat16)  # gguf-py gives BF16 as raw bytes
    expected = packed_nbytes(qtype, shape, t.name)
    if data.numel() * data.element_size() != expected:
        raise CheckpointError(f"{path}: tensor {t.name} has {data.nbytes} bytes, expected {expected} for {shape}")
    return PackedTensor(data=data, qtype=qtype, shape=shape, name=t.name)


def _restore_shape(path: Path, t: PackedTensor, metadata: dict[str, Any]) -> PackedTensor:
    """Apply a recorded `comfy.gguf.orig_shape.<name>` (`_loaded_layout`): packed bytes keep their type when the
    original rows are whole blocks; only a tensor whose rows would split blocks is dequantized."""
    shape, qtype = _loaded_layout(path, t.name, t.qtype, t.shape, metadata.get(ORIG_SHAPE_KEY + t.name))
    if shape == t.shape:
        return t
    if qtype != t.qtype:
        data = t.dequantize().reshape(shape)
    elif t.is_quantized:  # [*stored[:-1], bytes_per_row] -> [*orig[:-1], bytes_per_orig_row]: the same bytes
        data = t.data.reshape(quant_shape_to_byte_shape(shape, qtype))
    else:
        data = t.data.reshape(shape)
    return PackedTensor(data=data, qtype=qtype, shape=shape, name=t.name)


def _loaded_layout(
    path: Path, name: str, qtype: gguf.GGMLQuantizationType, shape: tuple[int, ...], orig: object
) -> tuple[tuple[int, ...], gguf.GGMLQuantizationType]:
    """The shape and type `read_gguf` gives a tensor stored as `shape` in `qtype`, given the value of its
    `comfy.gguf.orig_shape` entry (None: it has none). ComfyUI-GGUF's converter stores some tensors flattened
    (rows of 256, or a conv weight as one row): when the original shape's last dim is whole blocks, every block
    stays inside one original row, so the packed bytes read as that shape unchanged. Otherwise (a conv weight's
    kernel size of 2) blocks would span rows, and the tensor is dequantized to F32 (such tensors are tiny)."""
    if orig is None:
        return shape, qtype
    # Sizes are positive integers (a bool is an int to Python; -2 x -4 matches 8 elements, then fails to reshape),
    # as many as a tensor may have (the header walk reads no longer array).
    is_shape = isinstance(orig, list) and len(orig) <= _MAX_DIMS and all(type(d) is int and d > 0 for d in orig)
    restored = tuple(orig) if is_shape else ()
    if not restored or math.prod(restored) != math.prod(shape):
        raise CheckpointError(f"{path}: {ORIG_SHAPE_KEY}{name} = {orig!r} does not fit the stored shape {shape}")
    if qtype in FLOAT_TYPES or restored[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0:
        return restored, qtype
    return restored, gguf.GGMLQuantizationType.F32


class _Cursor:
    """Bounds-checked little-endian reads from the start of a file."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, n: int, what: str) -> int:
        """Advance over `n` bytes; return where they start."""
        if n < 0 or self.pos + n > len(self.buf):
            raise DamagedGGUFError(f"{self.path}: file is truncated or corrupt (it ends inside {what})")
        start, self.pos = self.pos, self.pos + n
        return start

    def u32(self, what: str) -> int:
        return struct.unpack_from("<I", self.buf, self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack_from("<Q", self.buf, self.take(8, what))[0]

    def string(self, what: str) -> str:
        n = self.u64(what)
        raw = self.buf[self.take(n, what) : self.pos]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{self.path}: {what} is not valid UTF-8") from exc


@dataclass(frozen=True)
class _TensorEntry:
    """A tensor's entry in a GGUF header: where its data starts in the data section, its type and shape (PyTorch
    order), and its bytes as stored."""

    name: str
    offset: int
    qtype: gguf.GGMLQuantizationType
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class _Header:
    """What `_walk_header` found: the tensor entries, and each `comfy.gguf.orig_shape.<name>` entry that is an
    array of integers, by the tensor name as stored."""

    tensors: list[_TensorEntry]
    orig_shapes: dict[str, list[int]]


def _validate_header(path: Path) -> _Header:
    """`_walk_header` of the file at `path`."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _walk_header(_Cursor(buf, path))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def tensor_bytes(path: str | Path) -> int:
    """The bytes of a GGUF file's tensors as loaded (packed blocks, float tensors as they are, a recorded original
    shape applied as `_restore_shape` applies it): what `read_gguf(path).nbytes()` counts, from the header alone,
    checked as `read_gguf` checks it first. For memory plans, which need no tensor: gguf-py's reader builds an
    array view of every tensor as it opens a file."""
    path = Path(path)
    _check_file(path)
    header = _validate_header(path)
    total = 0
    for t in header.tensors:
        shape, qtype = _loaded_layout(path, t.name, t.qtype, t.shape, header.orig_shapes.get(t.name))
        total += t.nbytes if qtype == t.qtype else packed_nbytes(qtype, shape, t.name)
    return total


# Where a GGUF file records the type it was made with: our quantizer's recipe name (quantize/convert.py writes it),
# llama.cpp's file type.
QUANTIZE_TYPE_KEY = "motif_lite.quantize.type"
FILE_TYPE_KEY = "general.file_type"
# The motif-lite version whose quantizer wrote the file, for a report about the file; older files and other tools'
# lack it.
QUANTIZER_VERSION_KEY = "motif_lite.quantize.version"
# What check names as that version, or as the recipe (`recorded_recipe`): a version's letters (PEP 440's, a local
# part's included), at most 64 of them. A file may hold any text there: a megabyte of it, or a line break and a
# forged "ok" line, or a ")" and a forged tensor count, would be printed in check's line.
_VERSION_SHAPE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}")


def quantization_type(path: Path) -> str | None:
    """The type a GGUF file was made with (e.g. "Q8_0"), from its metadata alone, so that a truncated file still
    tells it: our quantizer's recipe name, else llama.cpp's `general.file_type` by name; None when the metadata
    cannot be read or holds neither."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _recorded_type(_Cursor(buf, path))
    except (OSError, ValueError, CheckpointError):  # ValueError: mmap of an empty file
        return None


def split_count(path: Path) -> int | None:
    """How many parts llama.cpp's gguf-split (or gguf-py's writer) cut the file that `path` is the first part of
    (its `split.count`), from the metadata alone; None when the metadata cannot be read or records none (a whole
    file, whatever its name)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf, path)
            _check_magic_and_version(cur)
            cur.u64("the tensor count")
            for key, vtype in _metadata_entries(cur, cur.u64("the metadata count")):
                if key == gguf.Keys.Split.LLM_KV_SPLIT_COUNT and vtype in _INTEGER_FORMATS:
                    return struct.unpack_from(_INTEGER_FORMATS[vtype], cur.buf, cur.take(_SCALAR_SIZES[vtype], key))[0]
    except (OSError, ValueError, CheckpointError):  # ValueError: mmap of an empty file
        return None
    return None


def _recorded_type(cur: _Cursor) -> str | None:
    _check_magic_and_version(cur)
    cur.u64("the tensor count")
    file_type = None
    for key, vtype in _metadata_entries(cur, cur.u64("the metadata count")):
        if key == QUANTIZE_TYPE_KEY and vtype == GGUFValueType.STRING:
            return cur.string(key)
        if key == FILE_TYPE_KEY and vtype in _INTEGER_FORMATS:  # any width, as gguf-py's reading of the file
            file_type = struct.unpack_from(_INTEGER_FORMATS[vtype], cur.buf, cur.take(_SCALAR_SIZES[vtype], key))[0]
    return _file_type_name(file_type)


def recorded_version(metadata: dict[str, Any]) -> str | None:
    """The motif-lite version whose quantizer made a GGUF file (`QUANTIZER_VERSION_KEY`), from a read file's
    metadata (`read_gguf`'s: the file is not read again); None for a file that does not record it (made before it
    was recorded, or by another tool), or records something no version looks like (not text to print as it is)."""
    version = metadata.get(QUANTIZER_VERSION_KEY)
    return version if isinstance(version, str) and _VERSION_SHAPE.fullmatch(version) else None


def recorded_type(metadata: dict[str, Any]) -> str | None:
    """`quantization_type` from a read file's metadata: our quantizer's recipe name, else llama.cpp's file type."""
    return recorded_recipe(metadata) or _file_type_name(metadata.get(FILE_TYPE_KEY))


def recorded_recipe(metadata: dict[str, Any]) -> str | None:
    """Our quantizer's recipe name (`QUANTIZE_TYPE_KEY`, "Q4_K_M") from a read file's metadata; None where the file
    records none, or something no recipe name looks like: check prints it in the file's line, as the version."""
    made_as = metadata.get(QUANTIZE_TYPE_KEY)
    return made_as if isinstance(made_as, str) and _VERSION_SHAPE.fullmatch(made_as) else None


def _file_type_name(file_type: object) -> str | None:
    """llama.cpp's `general.file_type` value by name ("Q4_K_M" for MOSTLY_Q4_K_M), None for an unknown value or one
    that is no integer (llama.cpp writes a uint32; an array, a float or a bool is another writer's field)."""
    if type(file_type) is not int or file_type not in {member.value for member in gguf.LlamaFileType}:
        return None
    return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _walk_header(cur: _Cursor) -> _Header:
    """Check magic, version, counts, every metadata entry and tensor entry, and that all data is present, aligned
    and not overlapping; return the tensor entries and the recorded original shapes."""
    buf, path = cur.buf, cur.path
    _check_magic_and_version(cur)
    n_tensors, n_kv = cur.u64("the tensor count"), cur.u64("the metadata count")
    # Each metadata entry takes >= 13 bytes and each tensor entry >= 24, so absurd counts are corrupt: or the file
    # was cut inside its header (an interrupted download), whose fix is the same.
    if 13 * n_kv + 24 * n_tensors > len(buf):
        raise DamagedGGUFError(
            f"{path}: corrupt GGUF header ({n_kv} metadata entries and {n_tensors} tensors cannot fit "
            f"in {len(buf)} bytes)"
        )
    alignment, orig_shapes = _skip_metadata(cur, n_kv)
    tensors = [_tensor_info(cur) for _ in range(n_tensors)]
    data_start = -(-cur.pos // alignment) * alignment
    for t in tensors:
        if data_start + t.offset + t.nbytes > len(buf):
            raise DamagedGGUFError(
                f"{path}: file is truncated: tensor {t.name} needs bytes up to {data_start + t.offset + t.nbytes}, "
                f"but the file has {len(buf)} bytes"
            )
    _check_data_layout(path, tensors, alignment)
    return _Header(tensors, orig_shapes)


def _check_data_layout(path: Path, tensors: list[_TensorEntry], alignment: int) -> None:
    """Refuse data offsets no writer makes: ggml's gguf.cpp wants each tensor's data right after the previous one's,
    padded to the alignment. Here the order and gaps are left free (gguf-py reads them), but every offset must be
    aligned and no tensor's data may overlap another's: a changed offset byte would otherwise load as wrong
    weights, without a word."""
    previous = None
    for t in sorted(tensors, key=lambda t: (t.offset, t.nbytes)):  # an empty tensor first
        if t.offset % alignment:
            raise DamagedGGUFError(
                f"{path}: corrupt GGUF header: tensor {t.name} has data offset {t.offset}, which is not a "
                f"multiple of the file's alignment {alignment}"
            )
        if previous is not None and t.offset < previous.offset + previous.nbytes:
            raise DamagedGGUFError(
                f"{path}: corrupt GGUF header: tensor {t.name}'s data (offset {t.offset}) overlaps tensor "
                f"{previous.name}'s (offset {previous.offset}, {previous.nbytes} bytes)"
            )
        previous = t  # sorted by offset and past the previous one's end: its data ends last so far


def _check_magic_and_version(cur: _Cursor) -> None:
    start = cur.buf[:4]
    if len(start) < 4 and not b"GGUF".startswith(start):  # a few bytes of something else: not a cut-short GGUF
        raise CheckpointError(f"{cur.path} is not a GGUF file (it holds {len(start)} bytes, {start!r})")
    magic = cur.buf[cur.take(4, "the GGUF magic") : cur.pos]
    if magic != b"GGUF":
        if is_lfs_pointer(cur.buf[: len(LFS_POINTER_START)]):  # a clone made without git-lfs
            raise LFSPointerError.file(cur.path, len(cur.buf))
        message = f"{cur.path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')"
        if cur.buf[8:9] == b"{":  # a safetensors file: its header's length, then its JSON
            from motif_lite.io.linked import safetensors_advice

            message += f"\n{safetensors_advice(cur.path)}"
        raise CheckpointError(message)
    version = cur.u32("the GGUF version")
    if version & 0xFFFF == 0 and version:
        raise CheckpointError(f"{cur.path} is a big-endian GGUF file; only little-endian files are supported")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointError(f"{cur.path} has GGUF version {version}; motif-lite reads versions 2 and 3")


def _skip_metadata(cur: _Cursor, n_kv: int) -> tuple[int, dict[str, list[int]]]:
    """Walk the key/value entries; return the data alignment (general.alignment, default 32) and the recorded
    original shapes (`_Header.orig_shapes`)."""
    alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    orig_shapes = {}
    for key, vtype in _metadata_entries(cur, n_kv):
        if key == "general.alignment" and vtype == GGUFValueType.UINT32:
            alignment = struct.unpack_from("<I", cur.buf, cur.pos)[0] if cur.pos + 4 <= len(cur.buf) else 0
            if alignment == 0 or alignment & (alignment - 1):
                raise CheckpointError(f"{cur.path}: general.alignment = {alignment} is not a power of two")
        elif key.startswith(ORIG_SHAPE_KEY) and vtype == GGUFValueType.ARRAY:
            sizes = _integer_array(cur, key)
            if sizes is not None:  # any other value: `read_gguf` refuses it, naming the key
                orig_shapes[key.removeprefix(ORIG_SHAPE_KEY)] = sizes
    return alignment, orig_shapes


def _integer_array(cur: _Cursor, key: str) -> list[int] | None:
    """The array value at the cursor as a list, when it holds a shape's worth of integers (the cursor then after
    it); else None, the cursor left where it was (a corrupt count is not read into a list of millions)."""
    start = cur.pos
    item_type, count = cur.u32(key), cur.u64(key)
    if item_type not in _INTEGER_FORMATS or count > _MAX_DIMS:
        cur.pos = start
        return None
    raw = cur.buf[cur.take(count * _SCALAR_SIZES[item_type], key) : cur.pos]
    return [value for (value,) in struct.iter_unpack(_INTEGER_FORMATS[item_type], raw)]


def _metadata_entries(cur: _Cursor, n_kv: int) -> Iterator[tuple[str, int]]:
    """Each of the `n_kv` key/value entries at the cursor as (key, value type), the cursor at the value; a value
    the loop's body did not read (the cursor has not moved) is skipped when the next entry is asked for."""
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        vtype = cur.u32(f"the type of metadata {key!r}")
        value_at = cur.pos
        yield key, vtype
        if cur.pos == value_at:
            _skip_value(cur, vtype, key, depth=0)


def _skip_value(cur: _Cursor, vtype: int, key: str, depth: int) -> None:
    what = f"the value of metadata {key!r}"
    if vtype in _SCALAR_SIZES:
        cur.take(_SCALAR_SIZES[vtype], what)
    elif vtype == GGUFValueType.STRING:
        cur.take(cur.u64(what), what)
    elif vtype == GGUFValueType.ARRAY and depth < _MAX_NESTING:
        item_type, count = cur.u32(what), cur.u64(what)
        if item_type in _SCALAR_SIZES:
            cur.take(count * _SCALAR_SIZES[item_type], what)
            return
        for _ in range(count):  # each item takes >= 8 bytes, so a bad count runs into the end of the file
            _skip_value(cur, item_type, key, depth + 1)
    else:
        raise CheckpointError(f"{cur.path}: metadata {key!r} has an unknown value type (id {vtype})")


def _tensor_info(cur: _Cursor) -> _TensorEntry:
    """Read one tensor entry and check its type and shape."""
    name = cur.string("a tensor name")
    n_dims = cur.u32(f"the header of tensor {name}")
    if not 1 <= n_dims <= _MAX_DIMS:
        raise CheckpointError(f"{cur.path}: tensor {name} has {n_dims} dimensions (GGUF allows 1 to {_MAX_DIMS})")
    dims = [cur.u64(f"the shape of tensor {name}") for _ in range(n_dims)]
    qtype = cur.u32(f"the type of tensor {name}")
    offset = cur.u64(f"the data offset of tensor {name}")
    if qtype not in gguf.GGML_QUANT_SIZES:
        raise CheckpointError(f"{cur.path}: tensor {name} has {qtype_name(qtype)}, which no GGUF reader knows")
    shape = tuple(reversed(dims))  # GGUF lists the fastest-varying dim first
    what = f"{cur.path}: tensor {name}"
    return _TensorEntry(name, offset, check_supported(qtype, what), shape, packed_nbytes(qtype, shape, what))
