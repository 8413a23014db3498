"""Quantizing the transformer as it loads (`motif-lite run --quantize Q4_K_M`; stable-diffusion.cpp's `--type`).

The quantizer's recipe runs over the checkpoint's safetensors (or the user's transformer file) tensor by tensor, as
`python -m motif_lite.quantize --type Q4_K_M` does, into packed blocks in memory instead of a file: the model is
then the one that command's GGUF file loads into, byte for byte. Nothing is written to disk; each run quantizes again
(a file made once with the quantizer is for runs that should not wait).

    packed = quantize_transformer_tensors(checkpoint_folder, "Q4_K_M")   # {checkpoint name: PackedTensor}
    model = load_packed_transformer(packed, config, torch.bfloat16, "cuda")
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from motif_lite.weights.dequant import FLOAT_TYPES
from motif_lite.weights.gguf_file import PackedTensor

from .components import TRANSFORMER
from .convert import encode_checked, row_slices
from .recipes import Recipe, get_recipe
from .sources import open_source
from .tensor import K_QUANTIZERS, byte_shape


def quantize_transformer_tensors(
    source: str | Path, recipe: str | Recipe, device: str | torch.device = "cpu", progress: bool = True
) -> dict[str, PackedTensor]:
    """Every tensor of the transformer at `source` (what `open_source` takes: a checkpoint folder, a `transformer/`
    folder, a `.safetensors` file) as `recipe` plans it, packed in memory under the checkpoint's names, as the
    quantizer's GGUF file would hold it. `device`: where the K-quants' search runs ("cuda" is much faster)."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    with contextlib.closing(open_source(source)) as tensors_source:
        plan = TRANSFORMER.plan(tensors_source.shapes, recipe, [])
        total = sum(math.prod(tensors_source.shapes[name]) for name in plan)
        packed = {}
        with tqdm(total=total, desc="quantize", unit="weight", unit_scale=True, disable=not progress) as bar:
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


def is_slow_on_cpu(recipe: str | Recipe) -> bool:
    """Whether the recipe's types need the K-quants' search (minutes for the 2B transformer on a few CPU cores),
    rather than round-to-nearest (about a minute there: docs/benchmarks.md, "Quantizing as it loads")."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    used = {recipe.base, recipe.sensitive, recipe.modulation, recipe.edge, recipe.embed}
    return any(qtype in K_QUANTIZERS for qtype in used)
