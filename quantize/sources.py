"""Quantizer inputs: safetensors (single, sharded, diffusers folder) or an existing GGUF, read lazily.

Every source exposes the tensor names and shapes up front (from headers only) and reads one tensor
at a time as float32, so peak memory stays near the size of the largest tensor.
"""

import json
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import safe_open

from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.keymap import detect_layout, to_model_name
from motif_lite.weights.loader import build_model, check_tensors, resolve_config

ARCH = "motif_video"
CONFIG_KEY = f"{ARCH}.config_json"


class SafetensorsSource:
    """Tensors from one or more .safetensors files (a diffusers `transformer/` folder or shards)."""

    is_gguf = False

    def __init__(self, files: list[Path], config_path: Path | None):
        self.path = files[0].parent
        self.config_json = config_path.read_text() if config_path and config_path.is_file() else None
        self._stack = ExitStack()
        self._handles: dict[str, object] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        try:
            self._index(files)
        except BaseException:
            self._stack.close()
            raise

    def _index(self, files: list[Path]) -> None:
        for file in files:
            handle = self._open(file)
            for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                if name in self.shapes:
                    raise CheckpointError(f"tensor {name!r} appears in more than one shard (again in {file})")
                self._handles[name] = handle
                self.shapes[name] = tuple(handle.get_slice(name).get_shape())

    def _open(self, file: Path):
        if not file.is_file():
            raise CheckpointError(f"missing safetensors file {file}")
        try:
            return self._stack.enter_context(safe_open(str(file), framework="pt"))
        except Exception as exc:  # safetensors raises its own error type for corrupt headers
            raise CheckpointError(f"cannot read {file}: {exc}") from None

    def read(self, name: str) -> torch.Tensor:
        """One tensor as float32 (bf16/f16 upcast)."""
        tensor = self._handles[name].get_tensor(name)
        if not tensor.is_floating_point():
            raise CheckpointError(f"tensor {name!r} has dtype {tensor.dtype}; only float tensors can be quantized")
        return tensor.float()

    def close(self) -> None:
        self._stack.close()


class GGUFSource:
    """Tensors of an existing motif_video GGUF, dequantized on read (for requantizing).

    Opened like the runtime opens a GGUF (header walked and bounds-checked, every tensor's data present, the
    architecture and quant types known) and checked to hold the whole transformer its config describes, so a
    truncated or partial file is refused before anything is written.
    """

    is_gguf = True

    def __init__(self, path: Path):
        self.path = path
        try:
            self._checkpoint = read_gguf(path, expected_arch=ARCH)
        except CheckpointError as exc:
            raise CheckpointError(f"cannot read GGUF source: {exc}") from None
        self.config_json = self._checkpoint.metadata.get(CONFIG_KEY)
        self.shapes = {name: t.shape for name, t in self._checkpoint.tensors.items()}
        _check_whole_transformer(path, self.shapes, self.config_json)

    def read(self, name: str) -> torch.Tensor:
        return self._checkpoint.tensors[name].dequantize(torch.float32)

    def close(self) -> None:
        self._checkpoint = None


def _check_whole_transformer(path: Path, shapes: dict[str, tuple[int, ...]], config_json: str | None) -> None:
    """Raise a `MotifLiteError` unless `shapes` are exactly the transformer's tensors (as the runtime checks)."""
    shapes = {name: shape for name, shape in shapes.items() if 0 not in shape}  # exporters' placeholders
    layout = detect_layout(shapes)
    shapes = {to_model_name(name, layout): shape for name, shape in shapes.items()}
    if config_json is None:
        config = resolve_config(shapes, layout, None)  # inferred: fails naming the first missing tensor
    else:
        try:
            values = json.loads(config_json)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: metadata {CONFIG_KEY} is not valid JSON ({exc})") from None
        config = TransformerConfig.from_dict(values, source=f"{path} ({CONFIG_KEY})").replace(
            cross_attention_layout=layout
        )
    check_tensors(build_model(config), shapes, str(path))


def open_source(path: str | Path) -> SafetensorsSource | GGUFSource:
    """Open SRC: a checkpoint folder (uses `transformer/`), a folder of safetensors, a `.safetensors`
    file, a sharded `.safetensors.index.json`, or a `.gguf` file. Raises `CheckpointError` otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"source {path} does not exist")
    if path.is_dir():
        return _open_folder(path / "transformer" if (path / "transformer").is_dir() else path)
    if path.suffix == ".gguf":
        return GGUFSource(path)
    if path.name.endswith(".index.json"):
        return SafetensorsSource(_index_files(path), path.parent / "config.json")
    if path.suffix == ".safetensors":
        return SafetensorsSource([path], path.parent / "config.json")
    raise CheckpointError(
        f"unsupported source {path}: expected a folder, .safetensors, .safetensors.index.json or .gguf"
    )


def _open_folder(folder: Path) -> SafetensorsSource:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    files = sorted(folder.glob("*.safetensors"))
    config = folder / "config.json"
    if len(indexes) == 1:
        return SafetensorsSource(_index_files(indexes[0]), config)
    if len(files) == 1:
        return SafetensorsSource(files, config)
    if not files:
        raise CheckpointError(f"no .safetensors files in {folder}")
    raise CheckpointError(f"{folder} has {len(files)} .safetensors files and no single .index.json; pass one file")


def _index_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read shard index {index}: {exc!r}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"shard index {index} has an empty or invalid weight_map")
    return [index.parent / name for name in dict.fromkeys(weight_map.values())]
