"""ComfyUI's fp8 copies of a transformer file, written as ComfyUI writes them, and for each the same values widened to
float32 (what a loader that reads the copy right must compute with).

- "e4m3", "e5m2": a plain cast of every linear weight;
- "scaled": the older fp8_scaled naming (`scaled_fp8` marker, one `scale_weight` per tensor, `scale_input`);
- "scaled_rows": the newer naming (`weight_scale` one per output row, `input_scale`, a `comfy_quant` JSON tensor).
"""

from __future__ import annotations

import json
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
