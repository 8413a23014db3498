"""Quantizer inputs: safetensors (single, sharded, diffusers folder) or an existing GGUF, read lazily.

Every source exposes the tensor names and shapes up front (from headers only) and reads one tensor (or one slice of
its rows) at a time as float32, so peak memory stays near the size of the largest slice.
"""

import json
import re
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from gguf import GGMLQuantizationType

from motif_lite.errors import CheckpointError, LFSPointerError, listed
from motif_lite.io.file_kinds import has_extension
from motif_lite.io.gguf_source import split_gguf_in, unfinished_download_problem
from motif_lite.io.latents import latents_given_as
from motif_lite.json_values import read_json_object
from motif_lite.paths import user_path, windows_path_problem
from motif_lite.shell_syntax import pattern_quoted, quoted
from motif_lite.weights.dequant import dequantize
from motif_lite.weights.float8 import is_companion, kept_scale_shape, weight_scales, widened
from motif_lite.weights.gguf_file import OtherGGUFKindError, read_gguf
from motif_lite.weights.safetensors_files import (
    FLOAT_DTYPES,
    find_weight_files,
    missing_shards,
    shard_files,
    shard_of_several,
)
from motif_lite.weights.safetensors_header import HeaderTensor, SafetensorsHeader, read_header
from motif_lite.weights.shapes import comfy_prefix

from .components import TRANSFORMER, Component
from .tensor import byte_shape

T = TypeVar("T")


def _config_text(path: Path) -> str:
    """The text of the config.json beside the weights, to embed in the GGUF as it is; `CheckpointError` naming the
    file when it holds no JSON object (not UTF-8, not JSON, a list, ...)."""
    read_json_object(path, "config", CheckpointError)
    return path.read_text(encoding="utf-8")


class SafetensorsSource:
    """Tensors from one or more .safetensors files (a diffusers `transformer/` folder or shards), under the names
    `rename` gives them (the component's GGUF tensor names).

    Each read is a plain file read of the tensor's (or its rows') bytes, not a memory map: a mapped file's pages
    count in the process's resident memory until the file closes, so quantizing an 8.6 GB encoder would have shown
    it all as the run's own (docs/gguf.md, "Memory while it quantizes"). Read pages stay in the system's file cache.
    """

    is_gguf = False

    def __init__(
        self,
        files: list[Path],
        config_path: Path | None,
        rename: Callable[[str], str] = str,
        config_values: dict | None = None,
    ):
        self.path = files[0].parent
        self.files = list(files)
        self.notes: list[str] = []  # what reading the files left out, for the user (`open_source`)
        if config_values is not None:  # read by the caller already: a second read could find the file edited
            self.config_json: str | None = json.dumps(config_values)
        else:
            self.config_json = _config_text(config_path) if config_path and config_path.is_file() else None
        self._stack = ExitStack()
        self._stored: dict[str, _StoredTensor] = {}  # our name -> where its bytes are
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._scales: dict[str, str] = {}  # a scaled fp8 weight's name -> its scale's (weights/float8.py)
        try:
            self._index(files, rename)
            self._split_float8_scales()
        except BaseException:
            self._stack.close()
            raise

    def _index(self, files: list[Path], rename: Callable[[str], str]) -> None:
        for file in files:
            header = _checked_header(file)
            handle = self._stack.enter_context(_opened(file))
            for stored in sorted(header.tensors):  # sorted, as safetensors lists them: the plan's and file's order
                name = rename(stored)
                if name in self.shapes:
                    raise CheckpointError(f"tensor {name!r} appears more than once (again as {stored!r} in {file})")
                self._stored[name] = _StoredTensor(handle, file, stored, header.tensors[stored])
                self.shapes[name] = header.tensors[stored].shape

    def _split_float8_scales(self) -> None:
        """A scaled fp8 file (ComfyUI's fp8_scaled): its weights are read times their scales, and what it stores
        beside them (scales, input scales, markers) is not a tensor of the model."""
        dtypes = {name: stored.tensor.dtype for name, stored in self._stored.items()}
        self._scales = weight_scales(dtypes, str(self.path))
        for weight, scale in self._scales.items():
            kept_scale_shape(self.shapes[scale], self.shapes[weight][0], f"{self.path}: {weight}")
        self.shapes = {name: shape for name, shape in self.shapes.items() if not is_companion(name)}

    def keep_name_prefix(self, prefix: str) -> dict[str, int]:
        """Keep only the tensors whose names carry `prefix` (ComfyUI's `model.diffusion_model.`), named without it.
        Returns how many tensors were left out, by the first part of their names: a single-file checkpoint holds
        the VAE (`first_stage_model.`) and text encoders beside the transformer."""
        left_out = Counter(_first_part(name) for name in self.shapes if not name.startswith(prefix))
        self._stored = _under(prefix, self._stored)
        self.shapes = _under(prefix, self.shapes)
        self._scales = {weight: scale.removeprefix(prefix) for weight, scale in _under(prefix, self._scales).items()}
        return dict(left_out)

    def blocks(self, name: str, qtype: GGMLQuantizationType) -> np.ndarray | None:
        """A tensor's stored blocks when they are already `qtype`'s: never, safetensors hold floats."""
        return None

    def file_names(self) -> list[str]:
        """The tensor names as the files store them (before `rename`)."""
        return [stored.name for stored in self._stored.values()]

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """One tensor (or the slice `rows` of its first dimension) as float32 (bf16/f16/fp8 upcast; a scaled fp8
        weight times its scale)."""
        stored = self._stored[name]
        if stored.tensor.dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"tensor {name!r} has dtype {stored.tensor.dtype}; only float tensors can be quantized"
            )
        tensor = stored.read(rows)
        if name not in self._scales:
            return tensor.float()
        scale = self._stored[self._scales[name]].read()
        return widened(tensor, scale if scale.numel() == 1 else scale.reshape(-1)[rows or slice(None)])

    def close(self) -> None:
        self._stack.close()


def _under(prefix: str, by_name: dict[str, T]) -> dict[str, T]:
    """The entries whose names carry `prefix`, named without it."""
    return {name.removeprefix(prefix): value for name, value in by_name.items() if name.startswith(prefix)}


@dataclass(frozen=True)
class _StoredTensor:
    """A tensor's bytes in an open safetensors file: `handle` at `tensor.offset`."""

    handle: BinaryIO
    file: Path
    name: str  # the name in the file
    tensor: HeaderTensor

    def read(self, rows: slice | None = None) -> torch.Tensor:
        """The tensor (or the rows `rows` of its first dimension), in its stored dtype, read into new memory."""
        shape, offset, nbytes = self.tensor.shape, self.tensor.offset, self.tensor.nbytes
        if rows is not None and shape:
            start, stop, step = rows.indices(shape[0])
            if step != 1:
                raise ValueError(f"rows must be contiguous (a slice with step 1), got {rows}")
            row_bytes = nbytes // shape[0] if shape[0] else 0
            shape = (max(stop - start, 0), *shape[1:])
            offset, nbytes = offset + start * row_bytes, max(stop - start, 0) * row_bytes
        data = torch.empty(nbytes, dtype=torch.uint8)
        try:
            _read_into(self.handle, offset, memoryview(data.numpy()))
        except (OSError, EOFError) as exc:  # a disk error, or a file cut short since its header was checked
            raise CheckpointError(f"cannot read tensor {self.name!r} from {self.file}: {exc}") from None
        return data.view(FLOAT_DTYPES[self.tensor.dtype]).reshape(shape)


def _read_into(handle: BinaryIO, offset: int, buffer: memoryview) -> None:
    """Fill `buffer` with the file's bytes from `offset` on (a large read may come back in parts)."""
    handle.seek(offset)
    done = 0
    while done < len(buffer):
        got = handle.readinto(buffer[done:])
        if not got:
            raise EOFError(f"the file ends at byte {offset + done:,}, inside the tensor (changed since it was opened?)")
        done += got


def _checked_header(file: Path) -> SafetensorsHeader:
    """The file's header, checked (a truncated file or one that is not safetensors is said in words)."""
    if not file.is_file():
        raise CheckpointError(f"missing safetensors file {file}")
    try:
        return read_header(file)
    except LFSPointerError:  # its message ends with its own fix (git lfs pull, or hf download)
        raise
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; download the file again") from None


def _opened(file: Path) -> BinaryIO:
    """`file` opened for plain reads: unbuffered, as each read is one tensor's bytes or a slice of them."""
    try:
        return open(file, "rb", buffering=0)  # noqa: SIM115 (the source's ExitStack closes it)
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc.strerror or exc}") from None


class GGUFSource:
    """Tensors of an existing GGUF of one of our components, dequantized on read (for requantizing).

    Opened like the runtime opens a GGUF (header walked and bounds-checked, every tensor's data present, the
    architecture and quant types known); `open_source` then checks that it holds the whole component its config
    describes (the component's `check`), so a truncated or partial file is refused before anything is written.
    """

    is_gguf = True

    def __init__(self, path: Path, component: Component = TRANSFORMER):
        self.path = path
        self.notes: list[str] = []
        try:
            self._checkpoint = read_gguf(path, expected_arch=component.arch)
        except OtherGGUFKindError as exc:  # the other component's file: the fix is --component, not another file
            raise CheckpointError(f"cannot read GGUF source: {exc}; {_component_fix(exc, component)}") from None
        except CheckpointError as exc:
            raise CheckpointError(f"cannot read GGUF source: {exc}") from None
        self.config_json = self._checkpoint.metadata.get(component.config_key)
        name = self._checkpoint.metadata.get("general.name")
        self.model_name = name if isinstance(name, str) and name.strip() else None  # what a requantized file keeps
        self.shapes = {name: t.shape for name, t in self._checkpoint.tensors.items()}

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """One tensor (or the slice `rows` of its first dimension), dequantized to float32."""
        t = self._checkpoint.tensors[name]
        if rows is None:
            return t.dequantize(torch.float32)
        data = t.data[rows]  # packed rows are whole rows of blocks
        return dequantize(data, t.qtype, (data.shape[0], *t.shape[1:]), torch.float32, name=name)

    def blocks(self, name: str, qtype: GGMLQuantizationType) -> np.ndarray | None:
        """Tensor `name`'s packed blocks as the file stores them when they are `qtype`'s (its type, in the layout a
        new file writes), else None: requantizing them to their own type would only round them again (Q3_K
        blocks of a Q3_K file moved by 3 % of their values), so they are copied as they are."""
        t = self._checkpoint.tensors[name]
        if t.qtype != qtype or qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16):
            return None  # float values are written again exactly anyway
        data = t.data.numpy()
        return data if data.shape == byte_shape(t.shape, qtype) else None

    def close(self) -> None:
        self._checkpoint = None


def _component_fix(error: OtherGGUFKindError, component: Component) -> str:
    """What to type to requantize a GGUF of the other component (`error.flag` is the run flag it belongs to)."""
    if error.flag == "--text-encoder-gguf":
        return "to requantize a text encoder GGUF, add --component text_encoder"
    return f"to requantize a transformer GGUF, leave out --component {component.name}"


def open_source(
    path: str | Path, component: Component = TRANSFORMER, config_values: dict | None = None
) -> SafetensorsSource | GGUFSource:
    """Open SRC: a checkpoint folder (uses the component's folder, e.g. `transformer/`), a folder of safetensors, a
    `.safetensors` file, a sharded `.safetensors.index.json`, or a `.gguf` file of the component. Raises
    `CheckpointError` otherwise; the component's `check` runs on the names and shapes before any tensor is read.
    `config_values`: the config.json beside the safetensors as the caller read it already (a run's loading, whose
    configs were read as the checkpoint was found), not read again.
    """
    given, path = str(path), user_path(path)  # a quoted "~/..." reaches us unexpanded
    notes = []
    # As its command line's SRC (`path_arg`): `C:\models\x` from Python was "source ... does not exist"
    if (windows := windows_path_problem(given)) is not None:
        raise CheckpointError(f"source {windows}")
    if not path.exists():
        path = _cached_repo(given, component)  # as typed: a Path makes a web address's "//" one "/"
        notes.append(f"note: {given} is read from the Hugging Face cache: {path}")
    if path.is_dir():
        _refuse_checkpoint_without(path, component)
        folder = path / component.folder if (path / component.folder).is_dir() else path
        if (split := split_gguf_in(folder)) is not None:  # was "no diffusion_pytorch_model.safetensors"
            GGUFSource(split, component)  # refuses the part, naming llama.cpp's merge of the parts
        files, note = _folder_files(folder, component)
        source = SafetensorsSource(files, folder / "config.json", component.tensor_name, config_values)
        notes += [note] if note else []
    elif has_extension(path, ".gguf"):
        source = GGUFSource(path, component)
    elif has_extension(path, ".index.json"):
        source = SafetensorsSource(shard_files(path), path.parent / "config.json", component.tensor_name, config_values)
    elif (saved := latents_given_as(path, "weights to quantize")) is not None:
        raise CheckpointError(f"source {path}: {saved}")
    elif has_extension(path, ".safetensors"):
        _refuse_one_shard(path)
        source = SafetensorsSource([path], path.parent / "config.json", component.tensor_name, config_values)
    elif has_extension(path, ".gguf.tmp"):
        raise CheckpointError(_partial_output(path))
    elif (unfinished := unfinished_download_problem(path)) is not None:
        raise CheckpointError("source {} {}; {}".format(path, *unfinished))
    else:
        raise CheckpointError(
            f"unsupported source {path}: expected a folder, .safetensors, .safetensors.index.json or .gguf"
        )
    source.notes.extend(notes)
    try:
        if not source.is_gguf:
            _refuse_other_model(source, path, component)
            _read_transformer_part(source, path, component)
        if component.check is not None:
            component.check(source.config_json, source.shapes)
    except BaseException:
        source.close()
        raise
    return source


def _refuse_checkpoint_without(folder: Path, component: Component) -> None:
    """A checkpoint folder (diffusers' `model_index.json` in it) that lacks the component's folder: an incomplete
    download, said as such with the command that completes it, rather than as no weights found in the checkpoint
    folder itself (where they never are)."""
    from motif_lite.choices import MOTIF_REPO

    if (folder / component.folder).is_dir() or not (folder / "model_index.json").is_file():
        return
    has = sorted(f"{child.name}/" for child in folder.iterdir() if child.is_dir())
    holds = f" (it has {listed(has, 4)})" if has else ""
    include = pattern_quoted(f"{component.folder}/*")
    raise CheckpointError(
        f"{folder} is a checkpoint folder without {component.folder}/{holds}: an incomplete download? Download it: "
        f"hf download {MOTIF_REPO} --include {include} --local-dir {quoted(str(folder))}, then "
        "quantize the folder again"
    )


def _folder_files(folder: Path, component: Component) -> tuple[list[Path], str | None]:
    """The weight files of a folder as a run finds them (`find_weight_files`), and a note where they are shards
    without their .index.json (`unindexed_shards`), which are read together."""
    files = find_weight_files(folder, component.weights_file, several=_several_files)
    if len(files) < 2 or any(folder.glob("*.safetensors.index.json")):
        return files, None
    return files, (
        f"note: {folder} has no .safetensors.index.json; its {len(files)} shards ({files[0].name} ... "
        f"{files[-1].name}) are read together"
    )


def _several_files(folder: Path, files: list[Path]) -> str:
    """Why a folder of several unrelated safetensors files is no source, and what to pass instead."""
    return (
        f"{folder} holds several .safetensors files ({listed([f.name for f in files], 4)}) and no .safetensors."
        f"index.json saying they are shards of one model: pass the file to quantize, e.g. python -m "
        f"motif_lite.quantize {quoted(str(files[0]))} -o OUT.gguf"
    )


def _refuse_one_shard(path: Path) -> None:
    """One shard of several given as the source: its tensors are only part of the model; the folder is the source."""
    match = shard_of_several(path)
    if match is None:
        return
    missing = missing_shards(path.parent, match["stem"], match["count"])
    shard = f"{path} is shard {int(match['number'])} of {int(match['count'])}"
    command = f"python -m motif_lite.quantize {quoted(str(path.parent))} -o OUT.gguf"
    if missing:
        raise CheckpointError(
            f"{shard}, and {listed(missing, 4)} {'is' if len(missing) == 1 else 'are'} not beside it: download "
            f"every shard (and the index) into its folder, then quantize the folder: {command}"
        )
    raise CheckpointError(f"{shard}: the quantizer reads them all from their folder: {command}")


def _partial_output(path: Path) -> str:
    """What a quantizer's OUT.tmp given as SRC is: the partial file of a run that stopped (kill -9, a crash)."""
    return (
        f"{path} is the partial file of a quantizer run that stopped before it finished (a run writes OUT.tmp and "
        f"renames it to OUT when done): delete it and quantize again, from the safetensors it was being made from "
        f"(-o {path.with_suffix('')})"
    )


def _refuse_other_model(source: SafetensorsSource, path: Path, component: Component) -> None:
    """Another model's file (Stable Diffusion, Flux, Wan, ...: ComfyUI's folders hold them beside ours) named as what
    it is, with where Motif-Video's comes from, rather than as the first Motif-Video tensor it lacks."""
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.io.linked import other_model

    if (model := other_model(source.file_names())) is not None:
        what = component.name.replace("_", " ")
        flag = "" if component is TRANSFORMER else f" --component {component.name}"
        raise CheckpointError(
            f"{path} is not Motif-Video's {what}: it is {model}; quantize the official one: python -m "
            f"motif_lite.quantize {MOTIF_REPO}{flag} -o OUT.gguf (read from the Hugging Face cache; where it is not "
            "there, that says how to download it)"
        )


def _read_transformer_part(source: SafetensorsSource, path: Path, component: Component) -> None:
    """A file ComfyUI saved names the transformer's tensors `model.diffusion_model.<name>`: a transformer alone, or a
    single-file checkpoint with the VAE (`first_stage_model.`) and text encoders beside it. The transformer is read
    as ComfyUI-GGUF's converter (and motif-lite's GGUF reader) reads it, without the prefix, and the rest is left
    out with a note; the text encoder's names in such a file are not known here, so --component text_encoder is
    refused with what the file is."""
    prefix = _transformer_prefix(source.file_names())
    if prefix is None:
        return
    if component is not TRANSFORMER:
        raise CheckpointError(_transformer_file(path, prefix, source))
    left_out = source.keep_name_prefix(prefix)
    if left_out:
        source.notes.append(
            f"note: {path.name} is a single-file checkpoint; its transformer is quantized (the {len(source.shapes)} "
            f"tensors under '{prefix}'), the rest is left out: {_counted(left_out)}"
        )


def _transformer_prefix(names: list[str]) -> str | None:
    """The prefix ComfyUI puts before the transformer's tensor names that most of `names` carry (none: None)."""
    carried = Counter(prefix for name in names if (prefix := comfy_prefix([name])) is not None)
    return carried.most_common(1)[0][0] if carried else None


def _transformer_file(path: Path, prefix: str, source: SafetensorsSource) -> str:
    """Why a file holding the transformer under ComfyUI's `prefix` is no text encoder source, and what to do."""
    others = Counter(_first_part(name) for name in source.file_names() if not name.startswith(prefix))
    if not others:
        return (
            f"{path} is the transformer's file (every tensor named '{prefix}<name>', as ComfyUI saves it); to "
            "quantize it, leave out --component text_encoder"
        )
    return (
        f"{path} is a single-file checkpoint (its transformer under '{prefix}', {_counted(others)}): its text encoder "
        "part is not read; give the official checkpoint folder or its text_encoder/ folder (their config.json goes "
        "into the GGUF), or leave out --component text_encoder to quantize the file's transformer"
    )


# What the first part of a tensor name holds in a single-file checkpoint (ComfyUI's names), for the notes.
_PART_WORDS = {
    "first_stage_model.": "the VAE",
    "cond_stage_model.": "a text encoder",
    "text_encoders.": "text encoders",
}


def _first_part(name: str) -> str:
    """`name`'s first part with its dot (`first_stage_model.`), or the whole name when it has no dot."""
    head, dot, _ = name.partition(".")
    return head + dot


def _counted(parts: dict[str, int]) -> str:
    """{'first_stage_model.': 146} -> "146 tensors under 'first_stage_model.' (the VAE)"."""
    said = []
    for part, count in sorted(parts.items()):
        held = f" ({_PART_WORDS[part]})" if part in _PART_WORDS else ""
        said.append(f"{count} tensor{'s' if count > 1 else ''} under '{part}'{held}")
    return ", ".join(said)


def _cached_repo(name: str, component: Component) -> Path:
    """The local copy of the Hub repo `name` in the Hugging Face cache, where `motif-lite run -m REPO` put it (the
    quantizer never downloads), or of the folder or file of it that a web address copied from the browser names
    (.../tree/main/transformer, .../blob/main/transformer/x.safetensors); a `CheckpointError` saying how to get the
    files otherwise."""
    from motif_lite.io.hub import cached_snapshot, hub_address, is_repo_id, local_folder_for

    address = hub_address(name)  # the repo's web address (or a file's in it), copied from the browser
    repo = address.repo if address is not None and not address.names_gguf else name
    inside = _path_in_repo(name)
    if address is not None and inside is not None:
        repo = address.repo
    if not is_repo_id(repo):
        raise CheckpointError(f"source {name} does not exist")
    folder = local_folder_for(repo)  # absolute: the download may be typed in another folder
    local = quoted(folder)
    # The path to quantize, quoted whole: PowerShell splits a word that starts with a quoted part where it ends, and
    # `"C:\my models\tiny"/transformer` was two arguments.
    then = quoted(f"{folder}/{inside}" if inside else folder)
    if address is not None and address.revision != "main":  # the cache's refs/main is all it can tell
        raise CheckpointError(
            f"source {name} is on the {address.revision!r} revision of {repo}, and the quantizer reads the Hugging "
            f"Face cache's main revision only: hf download {repo} --revision {quoted(address.revision)} "
            f"--local-dir {local}, then quantize {then}"
        )
    wanted = inside or component.folder
    snapshot = cached_snapshot(repo)
    if snapshot is not None and (snapshot / wanted).exists():
        return snapshot / inside if inside else snapshot
    shown = wanted if _is_weights_file(wanted) else f"{wanted}/"
    cached = "is not in the Hugging Face cache" if snapshot is None else f"has no {shown} in the cache"
    named = "" if repo == name else f" {repo}"
    one_file = "/" not in wanted and _is_weights_file(wanted)  # e.g. a GGUF repo's motif-video-2b-Q8_0.gguf
    include = wanted if one_file else f"{wanted.split('/')[0]}/*"  # a component's config.json comes with it
    raise CheckpointError(
        f"source {name} is neither a local file nor a folder, and the Hub repo{named} {cached} (the quantizer does "
        f"not download): hf download {repo} --include {pattern_quoted(include)} --local-dir {local}, then quantize "
        f"{then}"
    )


def _path_in_repo(name: str) -> str | None:
    """The folder or weights file of a repo that a Hub web address names after /tree/REV/, /blob/REV/ or
    /resolve/REV/ ("transformer", "transformer/diffusion_pytorch_model.safetensors"), or the folder of another file
    it names (a config.json clicked in the browser); None for the repo itself, a file at its top, or a tag."""
    match = re.search(r"/(?:tree|blob|resolve)/[^/]+/([^?]+?)/?(?:\?.*)?$", name)
    if match is None:
        return None
    inside = match[1]
    if "." in inside.rsplit("/", 1)[-1] and not _is_weights_file(inside):
        inside = inside.rpartition("/")[0]
    return inside or None


def _is_weights_file(name: str) -> bool:
    return name.endswith((".safetensors", ".gguf", ".index.json"))
