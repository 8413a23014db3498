"""The full Motif-Video 2B architecture with random weights, shared between our model and the reference."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import MotifVideoTransformer3DModel
from safetensors.torch import save_file

OFFICIAL = dict(
    in_channels=33,
    out_channels=16,
    num_attention_heads=12,
    attention_head_dim=128,
    num_layers=12,
    num_single_layers=24,
    num_decoder_layers=8,
    text_embed_dim=2560,
    image_embed_dim=1152,
    rope_theta=10000.0,
    rope_axes_dim=(16, 56, 56),
    enable_text_cross_attention_dual=False,
    enable_text_cross_attention_single=True,
)


def reference_on_meta() -> MotifVideoTransformer3DModel:
    with torch.device("meta"):
        return MotifVideoTransformer3DModel(**OFFICIAL)


def random_tensor(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    values = torch.randn(shape, generator=generator)
    if len(shape) == 1 and ("norm" in name):
        return 1 + 0.02 * values
    return 0.02 * values


def write_random_checkpoint(root: Path, shard_bytes: int = 1 << 30, seed: int = 0) -> Path:
    """Random bf16 weights in the official layout, sharded with an index (bounded memory while writing)."""
    folder = root / "transformer"
    folder.mkdir(parents=True)
    meta = reference_on_meta()
    generator = torch.Generator().manual_seed(seed)
    weight_map, shard, size, count = {}, {}, 0, 0

    def flush():
        nonlocal shard, size, count
        count += 1
        name = f"diffusion_pytorch_model-{count:05d}.safetensors"
        save_file(shard, folder / name)
        weight_map.update(dict.fromkeys(shard, name))
        shard, size = {}, 0

    for name, tensor in meta.state_dict().items():
        shard[name] = random_tensor(name, tensor.shape, generator).to(torch.bfloat16)
        size += shard[name].nbytes
        if size >= shard_bytes:
            flush()
    if shard:
        flush()
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps(dict(meta.config)))
    return root


def reference_sharing(state: dict[str, torch.Tensor]) -> MotifVideoTransformer3DModel:
    """The diffusers model holding the very same tensors (no second copy of 2B parameters)."""
    model = reference_on_meta()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
