"""Extra convolution work of exact VAE bands (not a pytest file): python bench/vae_band_work.py [H W [frames]]

Runs the full Wan2.1 decoder on the meta device (shapes only, no memory, no arithmetic) and counts the
multiply-accumulates of every convolution from its output shape and weight, for the whole-frame decode and for
2-4 bands, and prints the largest band's share of each up level's rows. Default 736 x 1280 x 9 pixels.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE


def conv_macs(vae: WanVAE, z: torch.Tensor, bands: int) -> int:
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.weight[0].numel()  # each output value: C_in x kernel MACs

    hooks = [m.register_forward_hook(count) for m in vae.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
    vae.decode(z, bands=bands)
    for hook in hooks:
        hook.remove()
    return total


def main(height: int, width: int, frames: int) -> None:
    with torch.device("meta"):
        vae = WanVAE(WanVAEConfig()).eval()
        vae.drop_encoder()
        z = torch.empty(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    whole = conv_macs(vae, z, 1)
    print(f"{width}x{height}x{frames}: whole-frame decode {whole / 1e12:.2f} T conv MACs")
    for bands in (2, 3, 4):
        shares = vae.decoder.band_shares(z.shape[3:], bands)
        extra = conv_macs(vae, z, bands) / whole - 1
        print(f"{bands} bands: +{100 * extra:.1f} % work; largest band's share of the rows of up levels 0-3:",
              " / ".join(f"{s:.2f}" for s in shares))  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [736, 1280, 9][len(args) :]))
