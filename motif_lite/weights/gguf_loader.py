"""`load_gguf_transformer`: a Motif-Video GGUF file -> a `MotifVideoTransformer` whose linears stay packed.

The same steps as the safetensors path in loader.py (build on meta, check every tensor, assign strictly), with
one extra step: `replace_linears` swaps each linear whose weight is quantized for a `QuantizedLinear`, so the
GGUF blocks are assigned as they are (memory-mapped on CPU, copied once to an accelerator) and dequantized on
the fly in `forward`. Float tensors (biases, norms, unquantized weights) are cast to `dtype`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from motif_lite.config import TransformerConfig
from motif_lite.devices import checked_device
from motif_lite.errors import CheckpointError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.weights.gguf_file import PackedTensor, read_gguf
from motif_lite.weights.keymap import detect_layout, to_model_name
from motif_lite.weights.loader import assign_weights, build_model, check_tensors, resolve_config
from motif_lite.weights.quant_linear import quantized_state_dict, replace_linears

# The transformer's config.json, stored as a string by `python -m motif_lite.quantize`.
CONFIG_KEY = "motif_video.config_json"


def load_gguf_transformer(
    path: str | Path, dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu"
) -> MotifVideoTransformer:
    """Load the transformer from a `.gguf` file; quantized linear weights stay packed.

    The config comes from the file's `motif_video.config_json` metadata, else from a `config.json` next to the
    file, else it is inferred from the tensor shapes (weights cannot tell `rope_theta`; see motif_lite/config.py).
    """
    device = checked_device(device)  # before any file is read
    model, tensors = _build(Path(path))
    replace_linears(model, tensors)
    state = quantized_state_dict(model, tensors, float_dtype=dtype)
    return assign_weights(model, {name: t.to(device) for name, t in state.items()})


def meta_gguf_transformer(path: str | Path) -> MotifVideoTransformer:
    """The model `load_gguf_transformer(path)` builds, on the meta device, before any packed tensor is assigned."""
    model, tensors = _build(Path(path))
    replace_linears(model, tensors)
    return model


def _build(path: Path) -> tuple[MotifVideoTransformer, dict[str, PackedTensor]]:
    """The checked meta model and the file's tensors under our names (memory-mapped, not read)."""
    ckpt = read_gguf(path)
    # Zero-size tensors are placeholders some exporters write for absent layers.
    tensors = {name: t for name, t in ckpt.tensors.items() if 0 not in t.shape}
    layout = detect_layout(tensors)
    tensors = {to_model_name(name, layout): _renamed(t, to_model_name(name, layout)) for name, t in tensors.items()}
    shapes = {name: t.shape for name, t in tensors.items()}
    model = build_model(_config(ckpt.metadata, shapes, layout, path))
    check_tensors(model, shapes, str(path))
    return model, tensors


def _config(metadata: dict, shapes: dict[str, tuple[int, ...]], layout: str, path: Path) -> TransformerConfig:
    """The config embedded in the file (motif-lite's quantize tool writes one), else a config.json next to
    the file, else inferred from the shapes."""
    embedded = metadata.get(CONFIG_KEY)
    if embedded is None:
        sidecar = path.parent / "config.json"
        return resolve_config(shapes, layout, sidecar if sidecar.is_file() else None)
    try:
        values = json.loads(embedded)
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: metadata {CONFIG_KEY} is not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: metadata {CONFIG_KEY} must hold a JSON object")
    config = TransformerConfig.from_dict(values, source=f"{path} ({CONFIG_KEY})")
    return config.replace(cross_attention_layout=layout)


def _renamed(t: PackedTensor, name: str) -> PackedTensor:
    return t if t.name == name else PackedTensor(data=t.data, qtype=t.qtype, shape=t.shape, name=name)
