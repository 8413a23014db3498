"""`load_gguf_transformer`: a Motif-Video GGUF file -> a `MotifVideoTransformer` whose linears stay packed.

The same steps as the safetensors path in loader.py (build on meta, check every tensor, assign strictly), with
one extra step: `replace_linears` swaps each linear whose weight is quantized for a `QuantizedLinear`, so the
GGUF blocks are assigned as they are (memory-mapped on CPU, copied once to an accelerator) and dequantized on
the fly in `forward`. Float tensors (biases, norms, unquantized weights) are cast to `dtype`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from motif_lite.config import TransformerConfig, assumed_note, config_differences, config_from_weights
from motif_lite.devices import checked_device
from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.json_values import NotAJSONObject, parse_json_object, read_json_object
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.weights.gguf_file import EXPECTED_ARCH, GGUFCheckpoint, PackedTensor, read_gguf
from motif_lite.weights.keymap import to_model_names
from motif_lite.weights.quant_linear import quantized_state_dict, replace_linears
from motif_lite.weights.shapes import (
    TRANSFORMER_CLASS,
    ShapeMismatch,
    assign_weights,
    build_model,
    check_tensors,
    compare_shapes,
    expected_shapes,
    other_model_in_config,
)

# The transformer's config.json, stored as a string by `python -m motif_lite.quantize`.
CONFIG_KEY = f"{EXPECTED_ARCH}.config_json"


@dataclass(frozen=True)
class ConfigChoice:
    """The transformer config a GGUF file is built with, where it came from, and what the user should know."""

    config: TransformerConfig
    origin: str  # in words: "transformer/config.json of the checkpoint", "X.gguf (motif_video.config_json)", ...
    inferred: bool  # no config anywhere: read from the tensor shapes, with assumed values
    notes: tuple[str, ...] = ()


def load_gguf_transformer(
    path: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    config: TransformerConfig | None = None,
    header: GGUFCheckpoint | None = None,
) -> MotifVideoTransformer:
    """Load the transformer from a `.gguf` file; quantized linear weights stay packed.

    `config`: the config to build (`load_pipeline` passes the checkpoint's `transformer/config.json`). Without it:
    the file's `motif_video.config_json` metadata, else a `config.json` next to the file, else inferred from the
    tensor shapes with a warning naming every assumed value (`choose_gguf_config`). Every tensor is checked
    against the config before any is read. `header`: the file as `read_gguf(path)` read it already (its header
    checked, its tensors mapped): not read again.
    """
    device = checked_device(device)  # before any file is read
    model, tensors = _build(Path(path), config, header)
    return _assigned(model, tensors, dtype, device)


def load_packed_transformer(
    tensors: Mapping[str, PackedTensor],
    config: TransformerConfig,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    source: str = "the quantized weights",
) -> MotifVideoTransformer:
    """The transformer of packed tensors already in memory, under the checkpoint's names (what a GGUF file holds:
    `quantize/on_load.py` makes them as the checkpoint loads), checked against `config` and loaded as
    `load_gguf_transformer` loads a file's; `source` names them in errors."""
    device = checked_device(device)
    tensors, layout = _under_model_names(tensors)
    model = build_model(config.replace(cross_attention_layout=layout))
    check_tensors(model, {name: t.shape for name, t in tensors.items()}, source)
    return _assigned(model, tensors, dtype, device)


def _assigned(
    model: MotifVideoTransformer, tensors: dict[str, PackedTensor], dtype: torch.dtype, device: torch.device
) -> MotifVideoTransformer:
    """`model` (checked against `tensors`, on the meta device) with its quantized linears packed and every tensor
    assigned on `device`, floats in `dtype`."""
    replace_linears(model, tensors)
    state = quantized_state_dict(model, tensors, float_dtype=dtype)
    return assign_weights(model, {name: t.to(device) for name, t in state.items()})


def meta_gguf_transformer(
    path: str | Path, config: TransformerConfig | None = None, header: GGUFCheckpoint | None = None
) -> MotifVideoTransformer:
    """The model `load_gguf_transformer(path, config=config)` builds, on the meta device, before any packed tensor
    is assigned (`header`: the file as `read_gguf` read it already, not read again)."""
    model, tensors = _build(Path(path), config, header)
    replace_linears(model, tensors)
    return model


def _build(
    path: Path, config: TransformerConfig | None, header: GGUFCheckpoint | None = None
) -> tuple[MotifVideoTransformer, dict[str, PackedTensor]]:
    """The checked meta model and the file's tensors under our names (memory-mapped, not read; `header`: the file
    read already)."""
    ckpt = read_gguf(path) if header is None else header
    tensors, layout = model_tensors(ckpt)
    shapes = {name: t.shape for name, t in tensors.items()}
    if config is None:
        choice = choose_gguf_config(ckpt, shapes, layout)
        for note in choice.notes:
            warnings.warn(note, UserWarning, stacklevel=3)
        config = choice.config
    model = build_model(config.replace(cross_attention_layout=layout))
    check_tensors(model, shapes, str(path))
    return model, tensors


def model_tensors(ckpt: GGUFCheckpoint) -> tuple[dict[str, PackedTensor], str]:
    """The file's tensors under our parameter names, and the cross-attention layout they were stored in."""
    return _under_model_names(ckpt.tensors)


def _under_model_names(tensors: Mapping[str, PackedTensor]) -> tuple[dict[str, PackedTensor], str]:
    """`tensors` (checkpoint names) under our parameter names, each renamed too, and the cross-attention layout
    they were stored in."""
    renamed, layout = to_model_names(tensors)
    return {name: _renamed(t, name) for name, t in renamed.items()}, layout


def check_gguf_config(
    ckpt: GGUFCheckpoint, checkpoint: tuple[TransformerConfig, str] | None = None
) -> tuple[ConfigChoice, ShapeMismatch]:
    """The config `choose_gguf_config` chooses for the file (`checkpoint`: the checkpoint's config and where it
    is), and the file's tensors against the model it builds; nothing raised for tensors that do not fit (a run
    raises, `motif-lite check` reports them)."""
    tensors, layout = model_tensors(ckpt)
    shapes = {name: t.shape for name, t in tensors.items()}
    choice = choose_gguf_config(ckpt, shapes, layout, checkpoint)
    return choice, compare_shapes(expected_shapes(build_model(choice.config)), shapes)


def choose_gguf_config(
    ckpt: GGUFCheckpoint,
    shapes: dict[str, tuple[int, ...]],
    layout: str,
    checkpoint: tuple[TransformerConfig, str] | None = None,
) -> ConfigChoice:
    """The config for a GGUF file: the first found, in this order, of `checkpoint` (the checkpoint's config and
    where it is), the config embedded by our quantizer, a `config.json` beside the file; else inferred from the
    tensor shapes.

    The configs ranked below the chosen one are read only for the notes: one that disagrees is reported key by
    key, one that cannot be read is reported and left unused. One of another model (a VAE's config.json beside the
    file, in a shared models folder) is not the transformer's at all: it goes unsaid. An inferred config gets one
    note naming every assumed value.
    """
    readers = (lambda: checkpoint, lambda: embedded_config(ckpt), lambda: sidecar_config(ckpt.path))
    for rank, read in enumerate(readers):
        found = read()
        if found is not None:
            config, origin = found
            notes = [_lower_config_note(lower, config, origin) for lower in readers[rank + 1 :]]
            chosen = config.replace(cross_attention_layout=layout)
            return ConfigChoice(chosen, origin, False, tuple(note for note in notes if note))
    config = config_from_weights(shapes, layout)
    note = (
        f"no transformer config for {ckpt.path.name} (no transformer/config.json in the checkpoint, none "
        f"embedded in the file, no config.json beside it): the architecture is read from the tensor shapes and "
        f"{assumed_note(config)}; give the checkpoint's transformer/config.json "
        "(-m FOLDER) if the video looks wrong"
    )
    return ConfigChoice(config, "inferred from the GGUF tensor shapes", True, (note,))


def _lower_config_note(
    read: Callable[[], tuple[TransformerConfig, str] | None], chosen: TransformerConfig, origin: str
) -> str | None:
    """What the user should know of a config ranked below the chosen one (`chosen`, from `origin`): where it
    disagrees, or why it is not used when it cannot be read; None when there is none or it agrees."""
    try:
        found = read()
    except AnotherModelsConfig:  # a valid layout, and no transformer config: nothing to know
        return None
    except MotifLiteError as exc:  # it would not be used anyway: said, not raised
        return f"{exc}; not used: the transformer config is {origin}"
    if found is None:
        return None
    other, other_origin = found
    diff = config_differences(other, chosen)
    if not diff:
        return None
    listed = ", ".join(f"{k} {a!r} there vs {b!r}" for k, (a, b) in diff.items())
    return f"the transformer config {other_origin} disagrees with {origin}: {listed}; using {origin}"


class AnotherModelsConfig(CheckpointError):
    """The `config.json` beside a GGUF describes another model: refused when nothing ranks above it, unsaid when
    something does."""


def sidecar_config(gguf: Path) -> tuple[TransformerConfig, str] | None:
    """The transformer config in the `config.json` beside the file `gguf` and where it is, or None. One of another
    model (a VAE's, in a shared models folder) is an `AnotherModelsConfig` naming that model, not its first field that
    our config lacks."""
    path = gguf.parent / "config.json"
    if not path.is_file():
        return None
    values = read_json_object(path, "transformer config")
    kind = other_model_in_config(values)
    if kind is not None:
        raise AnotherModelsConfig(
            f"{path} describes {kind}, not the Motif-Video transformer ({TRANSFORMER_CLASS}): a config.json beside "
            f"{gguf.name} must be the transformer's"
        )
    return TransformerConfig.from_dict(values, source=str(path)), str(path)


def embedded_config(ckpt: GGUFCheckpoint) -> tuple[TransformerConfig, str] | None:
    """The transformer config our quantizer embeds in the file (`CONFIG_KEY`) and where it is, or None."""
    embedded = ckpt.metadata.get(CONFIG_KEY)
    if embedded is None:
        return None
    try:
        values = parse_json_object(embedded)
    except NotAJSONObject as exc:
        raise CheckpointError(f"{ckpt.path}: the transformer config in its metadata {CONFIG_KEY} is {exc}") from None
    origin = f"embedded in {ckpt.path.name} ({CONFIG_KEY})"
    return TransformerConfig.from_dict(values, source=origin), origin


def _renamed(t: PackedTensor, name: str) -> PackedTensor:
    return t if t.name == name else PackedTensor(data=t.data, qtype=t.qtype, shape=t.shape, name=name)
