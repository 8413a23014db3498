"""Quantizing a component as it loads (`motif-lite run --quantize Q4_K_M`, `--text-encoder-quantize Q8_0`;
stable-diffusion.cpp's `--type`).

The quantizer's recipe runs over the checkpoint's safetensors (or the user's file of that component) tensor by
tensor, as `python -m motif_lite.quantize [--component text_encoder] --type Q4_K_M` does, into packed blocks in
memory instead of a file: the model is then the one that command's GGUF file loads into, byte for byte. Nothing is
written to disk; each run quantizes again (a file made once with the quantizer is for runs that should not wait).
One code path for every component (`quantize_tensors`); only the component's recipes and names differ.

    packed = quantize_transformer_tensors(checkpoint_folder, "Q4_K_M")   # {checkpoint name: PackedTensor}
    model = load_packed_transformer(packed, config, torch.bfloat16, "cuda")
    packed = quantize_text_encoder_tensors(checkpoint_folder, "Q8_0")    # {T5Gemma2Encoder key: PackedTensor}
    encoder = load_text_encoder_gguf(packed_text_encoder(packed, config_path, "Q8_0", folder))
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType
from tqdm.auto import tqdm

from motif_lite.weights.dequant import FLOAT_TYPES
from motif_lite.weights.gguf_file import PackedTensor

from .components import TEXT_ENCODER, TRANSFORMER, Component
from .convert import encode_checked, row_slices
from .recipes import Recipe, plan_bytes
from .sources import open_source
from .tensor import K_QUANTIZERS, byte_shape
from .text_recipes import TextRecipe


def quantize_transformer_tensors(
    source: str | Path, recipe: str | Recipe, device: str | torch.device = "cpu", progress: bool = True
) -> dict[str, PackedTensor]:
    """Every tensor of the transformer at `source` (what `open_source` takes: a checkpoint folder, a `transformer/`
    folder, a `.safetensors` file) as `recipe` plans it, packed in memory under the checkpoint's names, as the
    quantizer's GGUF file would hold it. `device`: where the K-quants' search runs ("cuda" is much faster)."""
    return quantize_tensors(source, recipe, TRANSFORMER, device, progress)


def quantize_text_encoder_tensors(
    source: str | Path,
    recipe: str | TextRecipe,
    device: str | torch.device = "cpu",
    progress: bool = True,
    config_values: dict | None = None,
) -> dict[str, PackedTensor]:
    """Every tensor of the T5Gemma2 text encoder at `source` (a checkpoint folder, its `text_encoder/` folder, a
    `.safetensors` file with a `config.json` beside it) as the text-encoder recipe `recipe` plans it, packed in
    memory under the `T5Gemma2Encoder` names, as `python -m motif_lite.quantize --component text_encoder` would write
    it (`encoders.text_gguf.packed_text_encoder` makes the encoder's file of them). `config_values`: that
    config.json as the caller read it already (`CheckpointConfigs.text_encoder_config`), not read again."""
    return quantize_tensors(source, recipe, TEXT_ENCODER, device, progress, config_values)


def quantize_tensors(
    source: str | Path,
    recipe: str | Recipe | TextRecipe,
    component: Component = TRANSFORMER,
    device: str | torch.device = "cpu",
    progress: bool = True,
    config_values: dict | None = None,
) -> dict[str, PackedTensor]:
    """Every tensor of `component` at `source` as its recipe `recipe` plans it (`convert.quantize_checkpoint`'s
    plan and encoding, slice by slice), packed in memory under the names its GGUF file would give them.
    `config_values`: the component's config.json as the caller read it already (`open_source`)."""
    recipe = component.get_recipe(recipe) if isinstance(recipe, str) else recipe
    with contextlib.closing(open_source(source, component, config_values)) as tensors_source:
        plan = component.plan(tensors_source.shapes, recipe, [])
        total = sum(math.prod(tensors_source.shapes[name]) for name in plan)
        packed = {}
        desc = f"quantize {component.name.replace('_', ' ')}"  # two bars when both components quantize
        with tqdm(total=total, desc=desc, unit="weight", unit_scale=True, disable=not progress) as bar:
            for name, qtype in plan.items():
                shape = tensors_source.shapes[name]
                blocks = np.empty(byte_shape(shape, qtype), dtype=np.uint8)
                for rows in row_slices(shape):
                    values = tensors_source.read(name, rows)
                    blocks[rows] = encode_checked(values, qtype, name, str(device))
                    bar.update(values.numel())
                data = torch.from_numpy(blocks)
                if qtype in FLOAT_TYPES:  # a float tensor is held as one, as `read_gguf` gives it
                    data = data.view(FLOAT_TYPES[qtype]).reshape(shape)
                packed[name] = PackedTensor(data=data, qtype=qtype, shape=shape, name=name)
    return packed


# Weights quantized per second as they load on a CPU, measured on 2 idle cores (docs/benchmarks.md, "Quantizing as
# it loads"): rounding to nearest (Q8_0: the 2.04B transformer in about 55 s, the text encoder at 40-60 M/s) and the
# K-quants' search (Q4_K_M: the transformer in 210 s). A busy machine is slower; more cores speed up the search.
ROUNDING_WEIGHTS_PER_SECOND = 40e6
SEARCH_WEIGHTS_PER_SECOND = 10e6


def cpu_seconds(weights: int, recipe: str | Recipe | TextRecipe, component: Component = TRANSFORMER) -> float:
    """About how long quantizing `weights` weights of `component` to `recipe` as they load takes on a CPU: an
    approximate figure, from the rates measured on 2 cores (`ROUNDING_WEIGHTS_PER_SECOND`, `SEARCH_...`)."""
    slow = is_slow_on_cpu(recipe, component)
    return weights / (SEARCH_WEIGHTS_PER_SECOND if slow else ROUNDING_WEIGHTS_PER_SECOND)


def is_slow_on_cpu(recipe: str | Recipe | TextRecipe, component: Component = TRANSFORMER) -> bool:
    """Whether the recipe's types need the K-quants' search (minutes for the 2B transformer on a few CPU cores),
    rather than round-to-nearest (about a minute there: docs/benchmarks.md, "Quantizing as it loads")."""
    recipe = component.get_recipe(recipe) if isinstance(recipe, str) else recipe
    used = {getattr(recipe, f.name) for f in dataclasses.fields(recipe)}
    return any(isinstance(qtype, GGMLQuantizationType) and qtype in K_QUANTIZERS for qtype in used)


def planned_split(
    shapes: dict[str, tuple[int, ...]], recipe: str | Recipe | TextRecipe, component: Component = TEXT_ENCODER
) -> tuple[int, int]:
    """(the packed bytes of the tensors `quantize_tensors` gives a block type, the values of those it keeps as
    floats), counted from the plan alone: a model loaded from them holds the packed bytes and the float values in
    the run's dtype (`load_text_encoder_gguf` casts them), whatever float type the file stores."""
    recipe = component.get_recipe(recipe) if isinstance(recipe, str) else recipe
    types = component.plan(shapes, recipe, [])
    packed = {name: qtype for name, qtype in types.items() if qtype not in FLOAT_TYPES}
    floats = sum(math.prod(shapes[name] or (1,)) for name, qtype in types.items() if qtype in FLOAT_TYPES)
    return plan_bytes(shapes, packed), floats
