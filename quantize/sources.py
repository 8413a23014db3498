"""Quantizer inputs: safetensors (single, sharded, diffusers folder) or an existing GGUF, read lazily.

Every source exposes the tensor names and shapes up front (from headers only) and reads one tensor (or one slice of
its rows) at a time as float32, so peak memory stays near the size of the largest slice.
"""

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import safe_open

from motif_lite.errors import CheckpointError
from motif_lite.paths import user_path
from motif_lite.weights.dequant import dequantize
from motif_lite.weights.float8 import is_companion, kept_scale_shape, weight_scales, widened
from motif_lite.weights.gguf_file import OtherGGUFKindError, read_gguf
from motif_lite.weights.safetensors_files import find_weight_files, shard_files
from motif_lite.weights.safetensors_header import read_header
from motif_lite.weights.shapes import comfy_prefix

from .components import TRANSFORMER, Component


class SafetensorsSource:
    """Tensors from one or more .safetensors files (a diffusers `transformer/` folder or shards), under the names
    `rename` gives them (the component's GGUF tensor names)."""

    is_gguf = False

    def __init__(self, files: list[Path], config_path: Path | None, rename: Callable[[str], str] = str):
        self.path = files[0].parent
        self.config_json = config_path.read_text() if config_path and config_path.is_file() else None
        self._stack = ExitStack()
        self._handles: dict[str, tuple[object, str]] = {}  # our name -> (file handle, the name in the file)
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
            handle = self._open(file)
            for stored in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                name = rename(stored)
                if name in self.shapes:
                    raise CheckpointError(f"tensor {name!r} appears more than once (again as {stored!r} in {file})")
                self._handles[name] = (handle, stored)
                self.shapes[name] = tuple(handle.get_slice(stored).get_shape())

    def _split_float8_scales(self) -> None:
        """A scaled fp8 file (ComfyUI's fp8_scaled): its weights are read times their scales, and what it stores
        beside them (scales, input scales, markers) is not a tensor of the model."""
        dtypes = {name: handle.get_slice(stored).get_dtype() for name, (handle, stored) in self._handles.items()}
        self._scales = weight_scales(dtypes, str(self.path))
        for weight, scale in self._scales.items():
            kept_scale_shape(self.shapes[scale], self.shapes[weight][0], f"{self.path}: {weight}")
        self.shapes = {name: shape for name, shape in self.shapes.items() if not is_companion(name)}

    def drop_name_prefix(self, prefix: str) -> None:
        """Name every tensor without `prefix`, which every name carries (ComfyUI's `model.diffusion_model.`)."""
        self._handles = {name.removeprefix(prefix): handle for name, handle in self._handles.items()}
        self.shapes = {name.removeprefix(prefix): shape for name, shape in self.shapes.items()}
        self._scales = {name.removeprefix(prefix): scale.removeprefix(prefix) for name, scale in self._scales.items()}

    def _open(self, file: Path):
        if not file.is_file():
            raise CheckpointError(f"missing safetensors file {file}")
        try:  # our own header check first: it says what is wrong (truncated, not safetensors) in words
            read_header(file)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; download the file again") from None
        try:
            return self._stack.enter_context(safe_open(str(file), framework="pt"))
        except Exception as exc:  # safetensors raises its own error type for corrupt headers
            raise CheckpointError(f"cannot read {file}: {exc}") from None

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """One tensor (or the slice `rows` of its first dimension) as float32 (bf16/f16/fp8 upcast; a scaled fp8
        weight times its scale)."""
        handle, stored = self._handles[name]
        tensor = handle.get_tensor(stored) if rows is None else handle.get_slice(stored)[rows]
        if not tensor.is_floating_point():
            raise CheckpointError(f"tensor {name!r} has dtype {tensor.dtype}; only float tensors can be quantized")
        if name not in self._scales:
            return tensor.float()
        handle, stored = self._handles[self._scales[name]]
        scale = handle.get_tensor(stored)
        return widened(tensor, scale if scale.numel() == 1 else scale.reshape(-1)[rows or slice(None)])

    def close(self) -> None:
        self._stack.close()


class GGUFSource:
    """Tensors of an existing GGUF of one of our components, dequantized on read (for requantizing).

    Opened like the runtime opens a GGUF (header walked and bounds-checked, every tensor's data present, the
    architecture and quant types known); `open_source` then checks that it holds the whole component its config
    describes (the component's `check`), so a truncated or partial file is refused before anything is written.
    """

    is_gguf = True

    def __init__(self, path: Path, component: Component = TRANSFORMER):
        self.path = path
        try:
            self._checkpoint = read_gguf(path, expected_arch=component.arch)
        except OtherGGUFKindError as exc:  # the other component's file: the fix is --component, not another file
            raise CheckpointError(f"cannot read GGUF source: {exc}; {_component_fix(exc, component)}") from None
        except CheckpointError as exc:
            raise CheckpointError(f"cannot read GGUF source: {exc}") from None
        self.config_json = self._checkpoint.metadata.get(component.config_key)
        self.shapes = {name: t.shape for name, t in self._checkpoint.tensors.items()}

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """One tensor (or the slice `rows` of its first dimension), dequantized to float32."""
        t = self._checkpoint.tensors[name]
        if rows is None:
            return t.dequantize(torch.float32)
        data = t.data[rows]  # packed rows are whole rows of blocks
        return dequantize(data, t.qtype, (data.shape[0], *t.shape[1:]), torch.float32, name=name)

    def close(self) -> None:
        self._checkpoint = None


def _component_fix(error: OtherGGUFKindError, component: Component) -> str:
    """What to type to requantize a GGUF of the other component (`error.flag` is the run flag it belongs to)."""
    if error.flag == "--text-encoder-gguf":
        return "to requantize a text encoder GGUF, add --component text_encoder"
    return f"to requantize a transformer GGUF, leave out --component {component.name}"


def open_source(path: str | Path, component: Component = TRANSFORMER) -> SafetensorsSource | GGUFSource:
    """Open SRC: a checkpoint folder (uses the component's folder, e.g. `transformer/`), a folder of safetensors, a
    `.safetensors` file, a sharded `.safetensors.index.json`, or a `.gguf` file of the component. Raises
    `CheckpointError` otherwise; the component's `check` runs on the names and shapes before any tensor is read.
    """
    path = user_path(path)  # a quoted "~/..." reaches us unexpanded
    if not path.exists():
        path = _cached_repo(str(path), component)
    if path.is_dir():
        folder = path / component.folder if (path / component.folder).is_dir() else path
        files = find_weight_files(folder, component.weights_file)  # as a run finds them
        source = SafetensorsSource(files, folder / "config.json", component.tensor_name)
    elif path.suffix == ".gguf":
        source = GGUFSource(path, component)
    elif path.name.endswith(".index.json"):
        source = SafetensorsSource(shard_files(path), path.parent / "config.json", component.tensor_name)
    elif path.suffix == ".safetensors":
        source = SafetensorsSource([path], path.parent / "config.json", component.tensor_name)
    else:
        raise CheckpointError(
            f"unsupported source {path}: expected a folder, .safetensors, .safetensors.index.json or .gguf"
        )
    # A transformer file ComfyUI saved names every tensor `model.diffusion_model.<name>`: read it as its own GGUF
    # converter (and motif-lite's GGUF reader) does, without the prefix.
    if component is TRANSFORMER and not source.is_gguf and (prefix := comfy_prefix(list(source.shapes))):
        source.drop_name_prefix(prefix)
    if component.check is not None:
        try:
            component.check(source.config_json, source.shapes)
        except BaseException:
            source.close()
            raise
    return source


def _cached_repo(name: str, component: Component) -> Path:
    """The local copy of the Hub repo `name` in the Hugging Face cache, where `motif-lite run -m REPO` put it (the
    quantizer never downloads); a `CheckpointError` saying how to get the files otherwise."""
    from motif_lite.io.hub import cached_snapshot, is_repo_id, local_dir_for

    if not is_repo_id(name):
        raise CheckpointError(f"source {name} does not exist")
    snapshot = cached_snapshot(name)
    if snapshot is not None and (snapshot / component.folder).is_dir():
        return snapshot
    cached = "is not in the Hugging Face cache" if snapshot is None else f"has no {component.folder}/ in the cache"
    local = local_dir_for(name)
    raise CheckpointError(
        f"source {name} is neither a local file nor a folder, and the Hub repo {cached} (the quantizer does not "
        f"download): hf download {name} --include '{component.folder}/*' --local-dir {local}, then quantize {local}"
    )
