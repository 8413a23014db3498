"""Finding and reading the transformer's safetensors files (single file, folder, or sharded with an index)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from motif_lite.errors import CheckpointError

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class TensorRef:
    """A tensor in a safetensors file, read only when asked."""

    file: Path
    name: str
    shape: tuple[int, ...]

    def load(self) -> torch.Tensor:
        try:
            with safe_open(self.file, framework="pt") as f:
                return f.get_tensor(self.name)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read tensor {self.name!r} from {self.file}: {exc}") from None


def find_weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder: the index's shards, else the single weights file."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        return shard_files(indexes[0])
    single = folder / WEIGHTS_NAME
    if single.is_file():
        return [single]
    candidates = sorted(folder.glob("*.safetensors"))
    if len(candidates) == 1:
        return candidates
    if not candidates:
        raise CheckpointError(f"no {WEIGHTS_NAME} (or *.safetensors) in {folder}")
    raise CheckpointError(f"{folder} holds several .safetensors files and no .index.json saying how they fit")


def shard_files(index_path: Path) -> list[Path]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        files = sorted({index_path.parent / name for name in weight_map.values()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{index_path} is not a valid safetensors index: {exc}") from None
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{index_path} lists shards that do not exist: {missing}")
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
                    refs[name] = TensorRef(file, name, tuple(f.get_slice(name).get_shape()))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    return refs
