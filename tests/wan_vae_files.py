"""Wan 2.1's VAE under Wan's own tensor names (ComfyUI's models/vae/wan_2.1_vae.safetensors), made for tests.

The names are written out here from the structure of Wan's own modules (wan/modules/vae.py: flat lists of residual
blocks and resamplers, a numbered `residual` Sequential, `middle`, `head`, top-level `conv1` / `conv2`), without
motif-lite's renaming (motif_lite/vae/wan_names.py), which the tests check against diffusers' converter. Each
tensor's value is the random diffusers VAE's tensor that diffusers' converter maps its name to; `wan_file` checks
that the converter's output loads into `AutoencoderKLWan` strictly, so the file is a complete Wan layout.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import save_file
from tiny_pipeline import random_vae

# The official Wan 2.1 VAE with fewer channels: diffusers' converter numbers the decoder's flat list for exactly
# this structure (four levels of num_res_blocks=2), so the layout is the real one.
WAN_LAYOUT_VAE = dict(
    base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]
)


def _residual(prefix: str, in_dim: int, out_dim: int) -> list[str]:
    """Wan's ResidualBlock: residual = Sequential(RMS_norm, SiLU, CausalConv3d, RMS_norm, SiLU, Dropout,
    CausalConv3d), and a 1x1x1 `shortcut` conv when the channels change."""
    names = [f"{prefix}.residual.{i}.gamma" for i in (0, 3)]
    names += [f"{prefix}.residual.{i}.{p}" for i in (2, 6) for p in ("weight", "bias")]
    return names + ([f"{prefix}.shortcut.{p}" for p in ("weight", "bias")] if in_dim != out_dim else [])


def _resample(prefix: str, temporal: bool) -> list[str]:
    """Wan's Resample: resample = Sequential(pad or upsample, Conv2d), and a `time_conv` when it is 3-D."""
    layers = ["resample.1", "time_conv"] if temporal else ["resample.1"]
    return [f"{prefix}.{layer}.{p}" for layer in layers for p in ("weight", "bias")]


def _middle(side: str, dim: int) -> list[str]:
    attention = [f"{side}.middle.1.norm.gamma"] + [f"{side}.middle.1.{l}.{p}" for l in ("to_qkv", "proj")
                                                   for p in ("weight", "bias")]  # fmt: skip
    return [*_residual(f"{side}.middle.0", dim, dim), *attention, *_residual(f"{side}.middle.2", dim, dim)]


def wan_names(
    base_dim: int, dim_mult: list[int], num_res_blocks: int, temperal_downsample: list[bool], **_: object
) -> list[str]:
    """Every tensor name of Wan 2.1's VAE (WanVAE_ in Wan's code) of this structure."""
    levels = len(dim_mult)
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    # Encoder: per level num_res_blocks blocks, then a downsampler but after the last level.
    dims = [base_dim * m for m in [1, *dim_mult]]
    names += ["encoder.conv1.weight", "encoder.conv1.bias"]
    index = 0
    for level in range(levels):
        in_dim = dims[level]
        for _ in range(num_res_blocks):
            names += _residual(f"encoder.downsamples.{index}", in_dim, dims[level + 1])
            in_dim, index = dims[level + 1], index + 1
        if level < levels - 1:
            names += _resample(f"encoder.downsamples.{index}", temperal_downsample[level])
            index += 1
    names += _middle("encoder", dims[-1]) + ["encoder.head.0.gamma", "encoder.head.2.weight", "encoder.head.2.bias"]
    # Decoder: per level num_res_blocks + 1 blocks, then an upsampler that halves the channels the next level gets.
    dims = [base_dim * m for m in [dim_mult[-1], *dim_mult[::-1]]]
    names += ["decoder.conv1.weight", "decoder.conv1.bias", *_middle("decoder", dims[0])]
    index = 0
    for level in range(levels):
        in_dim = dims[level] if level == 0 else dims[level] // 2
        for _ in range(num_res_blocks + 1):
            names += _residual(f"decoder.upsamples.{index}", in_dim, dims[level + 1])
            in_dim, index = dims[level + 1], index + 1
        if level < levels - 1:
            names += _resample(f"decoder.upsamples.{index}", temperal_downsample[::-1][level])
            index += 1
    return names + ["decoder.head.0.gamma", "decoder.head.2.weight", "decoder.head.2.bias"]


def wan_tensors(vae: AutoencoderKLWan, config: dict) -> dict[str, torch.Tensor]:
    """`vae`'s tensors under Wan's names: each Wan name gets the tensor diffusers' converter maps it to."""
    names = wan_names(**config)
    converted = convert_wan_vae_to_diffusers({name: name for name in names})  # diffusers' name -> Wan's
    state = vae.state_dict()
    tensors = {wan: state[diffusers].clone() for diffusers, wan in converted.items()}
    check = AutoencoderKLWan(**config)
    check.load_state_dict(convert_wan_vae_to_diffusers(dict(tensors)), strict=True)  # every tensor, none more
    return tensors


def wan_file(path: Path, seed: int = 0, config: dict = WAN_LAYOUT_VAE) -> tuple[AutoencoderKLWan, dict]:
    """Save a random Wan 2.1 VAE of `config` under Wan's names to `path`; (the diffusers VAE, its Wan tensors)."""
    vae = random_vae(seed, **config)
    tensors = wan_tensors(vae, config)
    save_file(tensors, path)
    return vae, tensors
