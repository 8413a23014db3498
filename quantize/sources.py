"""Quantizer inputs: safetensors (single, sharded, diffusers folder) or an existing GGUF, read lazily.

Every source exposes the tensor names and shapes up front (from headers only) and reads one tensor
at a time as float32, so peak memory stays near the size of the largest tensor.
"""

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf import quants as gguf_quants
from safetensors import safe_open

from motif_lite.errors import CheckpointError

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
    """Tensors of an existing motif_video GGUF, dequantized on read (for requantizing)."""

    is_gguf = True

    def __init__(self, path: Path):
        self.path = path
        try:
            self._reader = GGUFReader(path)
        except Exception as exc:  # gguf-py raises ValueError/struct errors on bad magic or truncation
            raise CheckpointError(f"cannot read GGUF {path}: {exc}") from None
        arch = self._string("general.architecture")
        if arch != ARCH:
            raise CheckpointError(f"{path} is a GGUF for architecture {arch!r}, not {ARCH!r}")
        self.config_json = self._string(CONFIG_KEY)
        self._tensors = {t.name: t for t in self._reader.tensors}
        # GGUF stores dims fastest-first; PyTorch order is the reverse.
        self.shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in self._reader.tensors}

    def _string(self, key: str) -> str | None:
        field = self._reader.fields.get(key)
        return None if field is None else str(field.contents())

    def read(self, name: str) -> torch.Tensor:
        t = self._tensors[name]
        try:
            values = gguf_quants.dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise CheckpointError(f"tensor {name!r} has type {t.tensor_type.name}, which cannot be decoded") from None
        # A private copy: the reader's buffers are read-only memory maps.
        return torch.from_numpy(np.array(values, dtype=np.float32).reshape(self.shapes[name]))

    def close(self) -> None:
        self._reader = None


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
