"""Wan 2.1's own tensor names for its VAE, which Motif-Video uses unchanged.

Wan's release (Wan2.1_VAE.pth) and ComfyUI's `models/vae/wan_2.1_vae.safetensors` hold the same weights as the
checkpoint's `vae/diffusion_pytorch_model.safetensors`, under the names of Wan's own modules: `encoder.conv1`,
`decoder.upsamples.4.residual.2.weight`, `conv1` for diffusers' `quant_conv`... Our `WanVAE` is named like diffusers',
so a Wan-named file is read through `wan_name`, which gives each of our tensor names the name Wan's file stores it
under. Only that direction is needed: the loader asks for every tensor it expects by its Wan name, so what a file
lacks or has in excess is said in the file's own names.

Wan's modules, and how diffusers' differ:
- a residual block is one `residual` nn.Sequential (RMS norm, SiLU, conv, RMS norm, SiLU, dropout, conv): its layers
  are numbered, where diffusers names them (`RESIDUAL`);
- the decoder's up blocks are one flat list (`upsamples`): each level's num_res_blocks + 1 residual blocks, then its
  upsampler (none after the last level), where diffusers nests them (`up_blocks.L.resnets.R`,
  `up_blocks.L.upsamplers.0`). The encoder's list is flat in both, only renamed (`downsamples`);
- the middle block is a list of three (residual, attention, residual), and the head a Sequential (norm, SiLU, conv).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from motif_lite.vae.config import WanVAEConfig

# Inside a residual block: diffusers' layer -> its index in Wan's `residual` Sequential (or Wan's name).
RESIDUAL = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
            "conv_shortcut": "shortcut"}  # fmt: skip
# Outside the numbered blocks: diffusers' layer -> Wan's, the same for the encoder and the decoder.
_LAYERS = {
    "quant_conv": "conv1",
    "post_quant_conv": "conv2",
    **{
        f"{side}.{diffusers}": f"{side}.{wan}"
        for side in ("encoder", "decoder")
        for diffusers, wan in {
            "conv_in": "conv1",
            "mid_block.resnets.0": "middle.0",
            "mid_block.attentions.0": "middle.1",
            "mid_block.resnets.1": "middle.2",
            "norm_out": "head.0",
            "conv_out": "head.2",
        }.items()
    },
}
# Names only Wan's layout has: a file holding any of them is read through `wan_name`.
_WAN_ONLY = re.compile(r"^((en|de)coder\.(conv1|downsamples|upsamples|middle|head)|conv[12])\.")
_LAST_LAYER = re.compile(r"\.(\w+)\.(weight|bias|gamma)$")
_UP_BLOCK = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.")


def is_wan_named(names: Iterable[str]) -> bool:
    """Whether the tensor `names` are Wan's own (`wan_name`), not diffusers'."""
    return any(_WAN_ONLY.match(name) for name in names)


def wan_name(name: str, config: WanVAEConfig, residual: Mapping[str, str] = RESIDUAL) -> str:
    """The name Wan's own VAE file stores our (diffusers') tensor `name` under, for a VAE of `config` (whose
    num_res_blocks numbers the decoder's flat list). `residual`: the layers of a residual block (`RESIDUAL`)."""
    parameter = _LAST_LAYER.search(name)
    if parameter is not None and parameter[1] in residual:  # attention and resampler layers keep their names
        name = f"{name[: parameter.start()]}.{residual[parameter[1]]}.{parameter[2]}"
    for diffusers, wan in _LAYERS.items():
        if name.startswith(f"{diffusers}."):
            return wan + name[len(diffusers) :]
    if name.startswith("encoder.down_blocks."):
        return "encoder.downsamples." + name[len("encoder.down_blocks.") :]
    block = _UP_BLOCK.match(name)
    if block is None:
        return name
    per_level = config.num_res_blocks + 2  # its residual blocks, then its upsampler
    level, resnet = int(block[1]), block[3]
    index = level * per_level + (int(resnet) if resnet is not None else per_level - 1)
    return f"decoder.upsamples.{index}.{name[block.end() :]}"


def file_names(expected: Iterable[str], found: Iterable[str], config: WanVAEConfig) -> dict[str, str]:
    """Each of our `expected` tensor names -> the name a file whose tensors are named `found` holds it under:
    Wan's (`wan_name`) for a Wan-named file, else the same name."""
    expected = list(expected)
    if not is_wan_named(found):
        return {name: name for name in expected}
    return {name: wan_name(name, config) for name in expected}
