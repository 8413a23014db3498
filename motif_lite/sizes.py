"""How big each component is as it will be loaded: from file headers when the files are at hand, else from the
configs (the official built-ins when those are absent). Plans and dry runs use these; no weights are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from motif_lite import dtypes
from motif_lite.checkpoint import ModelSources
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, both_spellings
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.units import memory_size
from motif_lite.vae import WanVAEConfig
from motif_lite.weights.float8 import FLOAT8_DTYPES, is_companion
from motif_lite.weights.gguf_file import tensor_bytes
from motif_lite.weights.safetensors_files import SAFETENSORS_DTYPES
from motif_lite.weights.safetensors_header import read_header
from motif_lite.weights.shapes import build_model, expected_shapes, without_comfy_prefix

# The T5Gemma2 encoder of the official checkpoint (with its SigLIP tower), counted by building transformers'
# T5Gemma2Encoder from the official text_encoder/config.json on the meta device; used only to plan a dry run
# when the encoder's safetensors are not at hand (docs/usage.md).
OFFICIAL_TEXT_ENCODER_PARAMS = 4_299_918_192


@dataclass(frozen=True)
class ModelSizes:
    """The sizes a memory plan needs, and where each came from (printed by `--dry-run`)."""

    transformer_bytes: int
    text_encoder_bytes: int
    vae_config: WanVAEConfig
    origins: dict[str, str]  # "transformer", "text encoder", "vae" -> where the size came from
    # The text encoder's linears run on packed blocks (a GGUF or a recipe that quantizes them; not F32/F16/BF16 ones)
    text_encoder_quantized: bool = False
    # The transformer's weights (values), where counting its size built it on the meta device (--quantize, or no
    # GGUF): a quantizing time estimate takes them instead of building it again (`transformer_weights`).
    transformer_values: int | None = None

    def lines(self) -> list[str]:
        sizes = {"transformer": self.transformer_bytes, "text encoder": self.text_encoder_bytes}
        return ["sizes:"] + [
            f"  {name:<12} {memory_size(sizes[name]) if name in sizes else 'Wan2.1':>10}  ({origin})"
            for name, origin in self.origins.items()
        ]


def model_sizes(sources: ModelSources, dtype: torch.dtype, text_encoder_dtype: torch.dtype | None = None) -> ModelSizes:
    """Weight sizes from file headers when the files are at hand, else from the configs (official built-ins when
    those are absent): an official GGUF variant's size is counted from our quantizer's recipe for it. The text
    encoder counts as loaded (`stored_bytes`), in `text_encoder_dtype` (default: `dtypes.text_encoder_dtype`)."""
    config = sources.transformer.value
    origins = {}
    values = None
    if sources.gguf is not None:
        # Packed bytes, from the header alone: as `locate_sources` counted them, else read now (sources made by hand)
        transformer_bytes = sources.gguf_bytes if sources.gguf_bytes is not None else tensor_bytes(sources.gguf)
        origins["transformer"] = f"{sources.gguf.name}, packed"
    elif sources.gguf_variant is not None:
        from motif_lite.quantize.recipes import size_stand_in

        _, stand_in = size_stand_in(sources.gguf_variant)
        transformer_bytes, recipe = estimated_gguf_bytes(config, sources.gguf_variant)
        recipe += f" recipe ({stand_in})" if stand_in else " recipe"
        origins["transformer"] = (
            f"estimated from our quantizer's {recipe} over this architecture; the official file may differ"
        )
    elif sources.quantize is not None:  # what quantize/on_load.py makes: the quantizer's file, byte for byte
        model = build_model(config)  # once, for the recipe's bytes and the weights the quantizing time counts
        transformer_bytes, recipe = estimated_gguf_bytes(config, sources.quantize, model)
        values = _numel_of(model)
        origins["transformer"] = f"quantized to {recipe} as it loads: our quantizer's recipe over this architecture"
    else:
        values = _numel(config)
        transformer_bytes = values * dtype.itemsize
        origins["transformer"] = f"transformer config, {str(dtype).removeprefix('torch.')}"
        kept = _float8_linear_numel(sources.root)
        if kept:  # ComfyUI's fp8 copy: its linear weights stay one byte each (weights/float8.py)
            transformer_bytes -= kept * (dtype.itemsize - 1)
            origins["transformer"] += f"; its {kept / 1e9:.2f}B fp8 linear weights kept in 8 bits (file headers)"
    text_dtype = dtypes.text_encoder_dtype(dtype, text_encoder_dtype)
    files = sorted(sources.root.glob("text_encoder/*.safetensors")) if sources.root is not None else []
    text_quantized = False
    # A GGUF's packed tensors count as stored, its float tensors in the dtype the encoder runs in (the loader casts
    # them): an F32 file in a bf16 run holds half its size.
    if sources.text_encoder_gguf is not None:
        text_bytes = sources.text_encoder_gguf.loaded_bytes(text_dtype)
        text_quantized = sources.text_encoder_gguf.quantized_linears
        origins["text encoder"] = f"{sources.text_encoder_gguf.path.name}, packed"
    elif sources.text_encoder_quantize is not None:  # quantize/on_load.py makes the quantizer's file, byte for byte
        from motif_lite.quantize.text_recipes import get_text_recipe

        recipe = sources.text_encoder_quantize
        text_bytes, counted = quantized_text_encoder_bytes(files, recipe, text_dtype)
        text_quantized = get_text_recipe(recipe).quantizes_linears
        origins["text encoder"] = f"quantized to {recipe} as it loads: our quantizer's recipe over {counted}"
    elif files:
        text_bytes = stored_bytes(files, text_dtype)
        origins["text encoder"] = "text_encoder/*.safetensors headers"
    else:
        text_bytes = OFFICIAL_TEXT_ENCODER_PARAMS * text_dtype.itemsize
        origins["text encoder"] = "official T5Gemma2 size (built-in), weights not at hand"
    vae = sources.configs.vae
    origins["vae"] = "vae/config.json" if vae is not None else "official Wan2.1 config (built-in)"
    return ModelSizes(transformer_bytes, text_bytes, vae or WanVAEConfig(), origins, text_quantized, values)


def packed_weight_names(sources: ModelSources, model: MotifVideoTransformer | None = None) -> frozenset[str]:
    """The transformer's weights that load packed, so that a LoRA on their linear keeps its adapter beside them and a
    full difference cannot change them: a GGUF's quantized tensors (its header; one it keeps in F16 or F32 loads as
    a float layer), the tensors a quantizer recipe quantizes (--quantize, an official variant not at hand: none for
    F32/F16/BF16, and not the rows its blocks do not divide), a ComfyUI fp8 file's linear weights (kept in 8 bits);
    none for float safetensors. `model`: the architecture built already (meta device)."""
    if sources.gguf is not None:
        from motif_lite.weights.gguf_file import read_gguf
        from motif_lite.weights.gguf_loader import model_tensors

        tensors, _ = model_tensors(sources.gguf_header if sources.gguf_header is not None else read_gguf(sources.gguf))
        return frozenset(name for name, tensor in tensors.items() if tensor.is_quantized)
    recipe_name = sources.quantize or sources.gguf_variant
    if recipe_name is None:
        return frozenset(_float8_linear_weights(sources.root))
    from gguf import GGMLQuantizationType as Q

    from motif_lite.quantize.recipes import plan_types, size_stand_in

    recipe, _ = size_stand_in(recipe_name)
    types = plan_types(expected_shapes(model or build_model(sources.transformer.value)), recipe)
    return frozenset(name for name, qtype in types.items() if qtype not in (Q.F32, Q.F16, Q.BF16))


def packed_by(sources: ModelSources) -> tuple[str, str]:
    """What packs the weights `packed_weight_names` names, as a clause ("which ...") true of these `sources`, and
    what to do for a LoRA's full difference of one (`PackedDiffError.packed_by`). An official variant not at hand
    is told by our quantizer's recipe for it: its file's own tensor table is not here to read. The way out is named
    as `run` and the Python API each give it (`pipe.set_loras` and `load_pipeline` refuse it too)."""
    bf16 = "the bf16 safetensors transformer takes it"
    without_gguf = f"leave out {both_spellings('--gguf', 'gguf=None')}: {bf16}"
    if sources.gguf is not None:
        return f"which the GGUF file {sources.gguf.name} holds quantized", without_gguf
    if sources.quantize is not None:
        return (
            f"which --quantize {sources.quantize} packs as it loads",
            f"leave out {both_spellings('--quantize', 'quantize=None')}: {bf16}",
        )
    if sources.gguf_variant is not None:
        from motif_lite.quantize.recipes import size_stand_in

        recipe, _ = size_stand_in(sources.gguf_variant)
        return (
            f"which a {sources.gguf_variant} GGUF holds quantized: our quantizer's {recipe.name} recipe packs it "
            "(the official file is not downloaded yet: judged by that recipe)",
            without_gguf,
        )
    return FLOAT8_PACKING


# What keeps an fp8 transformer file's linear weights packed, and the way out for a full difference of one
# (`packed_by`).
FLOAT8_PACKING = ("which the fp8 transformer file keeps in 8 bits", "use a bf16 or fp16 transformer file")


def estimated_gguf_bytes(
    config: TransformerConfig, variant: str, model: MotifVideoTransformer | None = None
) -> tuple[int, str]:
    """Packed bytes of a GGUF file that `python -m motif_lite.quantize --type VARIANT` makes of this architecture,
    counted tensor by tensor on the meta device (no weights; `model`: that architecture built already); and the
    recipe's name. A type motif-lite runs that the quantizer does not make (IQ4_XS) is counted with the nearest
    recipe (`size_stand_in`)."""
    from motif_lite.quantize.recipes import packed_bytes, size_stand_in

    recipe, _ = size_stand_in(variant)
    return packed_bytes(expected_shapes(model or build_model(config)), recipe), recipe.name


def quantized_text_encoder_bytes(files: list[Path], recipe: str, dtype: torch.dtype) -> tuple[int, str]:
    """Bytes of the text encoder loaded in `dtype` from the file that `python -m motif_lite.quantize --component
    text_encoder --type RECIPE` makes of the safetensors `files` (their headers), or of the official encoder when
    there are none (the built-in `OFFICIAL_TEXT_ENCODER_SPLIT`): its packed tensors as stored, its float tensors in
    `dtype`; and what was counted."""
    from motif_lite.encoders.text_config import model_key
    from motif_lite.quantize.components import TEXT_ENCODER
    from motif_lite.quantize.on_load import planned_split
    from motif_lite.quantize.text_recipes import get_text_recipe

    name = get_text_recipe(recipe).name
    if not files:
        packed, floats = OFFICIAL_TEXT_ENCODER_SPLIT[name]
        return packed + floats * dtype.itemsize, "the official T5Gemma2 (built-in), weights not at hand"
    shapes = {}
    for path in files:
        try:
            tensors = read_header(path).tensors
        except CheckpointError as exc:
            raise CheckpointError(f"cannot read {path} (corrupt or truncated safetensors?): {exc}") from None
        shapes.update({model_key(key): tuple(t.shape) for key, t in tensors.items() if not is_companion(key)})
    packed, floats = planned_split(shapes, name, TEXT_ENCODER)
    return packed + floats * dtype.itemsize, "text_encoder/*.safetensors headers"


# Each text encoder recipe over the official T5Gemma2 encoder: (the packed bytes of its block-typed tensors, the
# values of its float ones), from its shapes on the meta device as `quantized_text_encoder_bytes` counts files
# (tests/test_quantize_on_load_text.py checks them): dry runs without weights.
OFFICIAL_TEXT_ENCODER_SPLIT = {
    "F32": (0, 4_299_918_192), "F16": (0, 4_299_918_192), "BF16": (0, 4_299_918_192),
    "Q8_0": (4_416_738_176, 142_988_144), "Q6_K": (3_477_115_776, 142_988_144),
    "Q5_K_M": (3_116_073_856, 142_988_144), "Q4_K_M": (2_776_269_696, 142_988_144),
}  # fmt: skip


def transformer_weights(config: TransformerConfig) -> int:
    """The transformer's weights (values) by its config, counted on the meta device."""
    return _numel(config)


def text_encoder_weights(root: Path | None) -> int:
    """The text encoder's weights (values) in the checkpoint at `root`: from its `text_encoder/*.safetensors` headers
    (a scaled fp8 file's scales left out), else the official encoder's when they are not at hand."""
    files = sorted(root.glob("text_encoder/*.safetensors")) if root is not None else []
    if not files:
        return OFFICIAL_TEXT_ENCODER_PARAMS
    return sum(
        math.prod(t.shape) for path in files for name, t in read_header(path).tensors.items() if not is_companion(name)
    )


def _float8_linear_numel(root: Path | None) -> int:
    """The elements of the fp8 linear weights of the checkpoint's `transformer/` safetensors (0 when none, or not
    at hand), which the loader keeps in 8 bits, from the headers."""
    return sum(_float8_linear_weights(root).values())


def _float8_linear_weights(root: Path | None) -> dict[str, int]:
    """{name: elements} of the fp8 linear weights of the checkpoint's `transformer/` safetensors, under the names
    motif-lite reads (a ComfyUI prefix taken off); none when there are none, or not at hand, or a file is damaged
    (the checks before the run name it)."""
    return float8_linear_weights(sorted(root.glob("transformer/*.safetensors")) if root is not None else [])


def float8_linear_weights(files: Sequence[Path]) -> dict[str, int]:
    """{name: elements} of the fp8 linear weights of the transformer's safetensors `files` (read from their headers
    alone), as `_float8_linear_weights` reads a checkpoint's; none where a file is damaged."""
    found = {}
    for path in files:
        try:
            tensors = without_comfy_prefix(read_header(path).tensors, str(path))
        except CheckpointError:
            return {}
        found.update(
            (name, math.prod(t.shape)) for name, t in tensors.items()
            if t.dtype in FLOAT8_DTYPES and name.endswith(".weight") and len(t.shape) == 2
        )  # fmt: skip
    return found


def _numel(config: TransformerConfig) -> int:
    return _numel_of(build_model(config))


def _numel_of(model: MotifVideoTransformer) -> int:
    return sum(t.numel() for t in model.state_dict().values())


def stored_bytes(files: list[Path], dtype: torch.dtype) -> int:
    """Bytes of safetensors files as they will be loaded, from their headers: floating-point tensors in `dtype`,
    the others as stored. (A GGUF file counts as stored: its header's `nbytes`.) A file that is no safetensors one
    (a Git LFS pointer, one cut short) is `read_header`'s `CheckpointError` naming it."""
    total = 0
    for path in files:
        for tensor in read_header(path).tensors.values():
            stored = SAFETENSORS_DTYPES.get(tensor.dtype)
            itemsize = dtype.itemsize if stored is None or stored.is_floating_point else stored.itemsize
            total += math.prod(tensor.shape) * itemsize
    return total
