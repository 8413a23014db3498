"""ComfyUI's fp8 copies of a transformer file, written as ComfyUI writes them, and for each the same values widened to
float32 (what a loader that reads the copy right must compute with).

- "e4m3", "e5m2": a plain cast of every linear weight;
- "scaled": the older fp8_scaled naming (`scaled_fp8` marker, one `scale_weight` per tensor, `scale_input`);
- "scaled_rows": the newer naming (`weight_scale` one per output row, `input_scale`, a `comfy_quant` JSON tensor).

And files of the official sizes whose data is a hole (`header_only_file`), for the checks that read headers only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

KINDS = ("e4m3", "e5m2", "scaled", "scaled_rows")


def fp8_copy(source: Path, folder: Path, kind: str) -> tuple[Path, Path]:
    """(the fp8 copy of the transformer file `source`, the file of its values in float32), written in `folder`."""
    tensors = load_file(source)
    copy, widened = {}, {}
    for name, tensor in tensors.items():
        if tensor.ndim != 2 or not name.endswith(".weight"):  # linear weights only, as ComfyUI converts them
            copy[name] = widened[name] = tensor
            continue
        layer = name.removesuffix(".weight")
        if kind in ("e4m3", "e5m2"):
            copy[name] = tensor.to(torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2)
            widened[name] = copy[name].float()
            continue
        per_row = kind == "scaled_rows"
        amax = tensor.abs().amax(dim=1, keepdim=True) if per_row else tensor.abs().amax()
        scale = (amax.float() / 448).clamp(min=1e-12)
        copy[name] = (tensor.float() / scale).to(torch.float8_e4m3fn)
        widened[name] = copy[name].float() * scale
        if per_row:
            copy[f"{layer}.weight_scale"] = scale.reshape(-1)
            copy[f"{layer}.input_scale"] = torch.tensor(0.5)
            copy[f"{layer}.comfy_quant"] = torch.tensor(list(json.dumps({"format": "float8_e4m3fn"}).encode()),
                                                        dtype=torch.uint8)  # fmt: skip
        else:
            copy[f"{layer}.scale_weight"] = scale
            copy[f"{layer}.scale_input"] = torch.tensor(0.5)
    if kind == "scaled":
        copy["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    paths = folder / f"motifvideo_2b_fp8_{kind}.safetensors", folder / f"motifvideo_2b_fp8_{kind}_widened.safetensors"
    save_file(copy, paths[0])
    save_file(widened, paths[1])
    return paths


def header_only_file(path: Path, shapes: dict[str, tuple[int, ...]], float8: Collection[str] = ()) -> Path:
    """A complete-looking bf16 safetensors file of `shapes` whose data is a hole in the file (sparse: no disk space),
    for the checks that read headers only; the tensors `float8` in F8_E4M3, as a ComfyUI fp8 file keeps them."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        dtype, itemsize = ("F8_E4M3", 1) if name in float8 else ("BF16", 2)
        size = itemsize * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    with open(path, "wb") as file:
        file.write(len(text).to_bytes(8, "little") + text)
        file.truncate(8 + len(text) + offset)
    return path


def official_transformer_file(path: Path, float8: bool = False) -> Path:
    """A header-only file of the official transformer's tensors (`header_only_file`), in bf16, or with its linear
    weights in fp8 (`float8`), as ComfyUI's plain fp8 copy keeps them."""
    from motif_lite.config import TransformerConfig
    from motif_lite.weights.loader import build_model
    from motif_lite.weights.shapes import expected_shapes

    shapes = expected_shapes(build_model(TransformerConfig()))
    linears = {name for name, shape in shapes.items() if name.endswith(".weight") and len(shape) == 2}
    return header_only_file(path, shapes, float8=linears if float8 else ())
