"""`load_transformer`: official checkpoint files -> a ready `MotifVideoTransformer`.

The model is built on the `meta` device, every tensor is checked against it before any data is read (one error
lists all missing, unexpected and wrongly shaped tensors), then the tensors are read from the memory-mapped
files and assigned in place: no random init, no second copy, never a silent partial load.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from motif_lite.config import TransformerConfig, assumed_note, config_from_weights
from motif_lite.devices import checked_device
from motif_lite.dtypes import checked_dtype
from motif_lite.errors import CheckpointError
from motif_lite.io.file_kinds import has_extension
from motif_lite.json_values import read_json_object
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.paths import user_path
from motif_lite.weights.float8 import float8_state, use_float8_linears, weight_scales
from motif_lite.weights.keymap import to_model_name, to_model_names
from motif_lite.weights.safetensors_files import (
    TensorFiles,
    TensorRef,
    check_floats,
    find_weight_files,
    shard_files,
)
from motif_lite.weights.shapes import (  # also imported from here
    TRANSFORMER_CLASS,
    assign_weights,
    build_model,
    check_tensors,
    other_model_in_config,
    read_transformer_refs,
)


def load_transformer(
    source: str | Path,
    dtype: torch.dtype | str = torch.bfloat16,
    device: torch.device | str = "cpu",
    *,
    config: TransformerConfig | None = None,
) -> MotifVideoTransformer:
    """Load the transformer from a checkpoint directory (uses `transformer/`), a `transformer/` folder, one
    `.safetensors` file, a sharded set's `.index.json`, or a `.gguf` file (weights stay packed; so do the fp8
    linear weights of ComfyUI's fp8 copies, `weights/float8.py`). `dtype`:
    torch.bfloat16, torch.float16 or torch.float32, or its name ("bf16", "float32", ...). `config`: the safetensors'
    config.json as a caller read it already (`CheckpointConfigs.transformer`), not read again: a file edited in
    between would have given the checks one config and the model another."""
    path = user_path(source)  # "~/..." from a config file or a notebook, where no shell expanded it
    device = checked_device(device)  # before any file is read
    dtype = checked_dtype(dtype)
    if has_extension(path, ".gguf"):
        from motif_lite.weights.gguf_loader import load_gguf_transformer

        return load_gguf_transformer(path, dtype=dtype, device=device)
    model, refs, scales = _build_safetensors(path, config)
    check_tensors(model, {name: ref.shape for name, ref in refs.items()}, str(path))
    check_floats(refs, str(path), "transformer")
    kept = use_float8_linears(model, refs, scales, str(path))  # ComfyUI's fp8 copies stay in 8 bits
    with TensorFiles() as files:
        # Weights read in `dtype` (cast as each is read: the bf16 file's pages do not stay resident under float32
        # weights); fp8 ones as stored, kept or widened with their scales, which are read as stored (float32).
        scale_refs = set(scales.values())

        def read(ref: TensorRef) -> torch.Tensor:
            return files.load(ref, cast_to=None if ref in scale_refs else dtype)

        state = float8_state(
            refs, scales, kept, read, lambda t: t.to(device=device, dtype=dtype), lambda t: t.to(device)
        )
    return assign_weights(model, state)


def meta_transformer(source: str | Path) -> MotifVideoTransformer:
    """The transformer `load_transformer(source)` would build, on the meta device: its config and layer shapes
    from the file headers, no tensor data read (for checks that must run before any weight is loaded)."""
    path = user_path(source)
    if has_extension(path, ".gguf"):
        from motif_lite.weights.gguf_loader import meta_gguf_transformer

        return meta_gguf_transformer(path)
    model, refs, scales = _build_safetensors(path)
    use_float8_linears(model, refs, scales, str(path))
    return model


def _build_safetensors(
    path: Path, read: TransformerConfig | None = None
) -> tuple[MotifVideoTransformer, dict[str, TensorRef], dict[str, TensorRef]]:
    """The meta model for a safetensors source, its tensors under our names and the scales of its scaled fp8
    weights under the weights' names (headers only, nothing read). Not yet checked against each other:
    `load_transformer` does that, `meta_transformer` leaves it to the load. `read`: the config as a caller read
    it (its config.json not read again)."""
    files, config_path = locate_safetensors(path)
    config = None if config_path is None or read is not None else read_json_object(config_path, "transformer config")
    if config is not None:  # another component's folder (vae/): say so, not the first field its config lacks
        _refuse_other_model(config, config_path)
    stored = read_transformer_refs(files, str(path))  # a file ComfyUI saved: read as it is
    scales = weight_scales({name: ref.dtype for name, ref in stored.items()}, str(path))
    refs, layout = to_model_names(stored)
    shapes = {name: ref.shape for name, ref in refs.items()}
    if read is not None:
        resolved = read.replace(cross_attention_layout=layout)
    else:  # stacklevel 4: the warning points at the caller of load_transformer / meta_transformer.
        resolved = resolve_config(shapes, layout, config, config_path, stacklevel=4)
    model = build_model(resolved)
    return model, refs, {to_model_name(weight, layout): stored[scale] for weight, scale in scales.items()}


def locate_safetensors(path: Path) -> tuple[list[Path], Path | None]:
    """The weight files and the config.json (if any) for a user-given source."""
    if not path.exists():
        raise CheckpointError(f"model path does not exist: {path}")
    if path.is_dir():
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        config = folder / "config.json"
        return find_weight_files(folder), config if config.is_file() else None
    if has_extension(path, ".index.json"):
        files = shard_files(path)
    elif has_extension(path, ".safetensors"):
        files = [path]
    else:
        raise CheckpointError(f"unsupported model file {path}: expected a folder, .safetensors, .index.json or .gguf")
    config = path.parent / "config.json"
    return files, config if config.is_file() else None


def _refuse_other_model(config: Mapping[str, object], config_path: Path) -> None:
    """`CheckpointError` when the config.json beside the weights (`config`, read from `config_path`) describes
    another model (`other_model_in_config`)."""
    kind = other_model_in_config(config)
    if kind is not None:
        raise CheckpointError(
            f"{config_path} describes {kind}, not the Motif-Video transformer ({TRANSFORMER_CLASS}); pass the "
            "checkpoint folder, its transformer/ folder or the transformer's weight file"
        )


def resolve_config(
    shapes: Mapping[str, tuple[int, ...]],
    layout: str,
    config: Mapping[str, object] | None,
    config_path: Path | None,
    stacklevel: int = 3,
) -> TransformerConfig:
    """The values of config.json (`config`, read from `config_path`) when there is one, with the detected
    layout; else the config inferred from the weights with a warning naming the values the weights cannot show
    (`assumed_values`); `stacklevel` as `warnings.warn` counts it here."""
    if config is None:
        inferred = config_from_weights(shapes, layout)
        warnings.warn(f"no transformer config.json: {assumed_note(inferred)}", stacklevel=stacklevel)
        return inferred
    return TransformerConfig.from_dict(config, source=str(config_path)).replace(cross_attention_layout=layout)
