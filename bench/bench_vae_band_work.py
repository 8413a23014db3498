"""Extra convolution work of exact VAE bands (counted, not timed; ~40 s per size on 2 cores):

    pytest bench/bench_vae_band_work.py -s                # 736x1280x9 (and 256x256x17, marked slow)
    python bench/bench_vae_band_work.py [H W [frames]]    # one size

Runs the full Wan2.1 decoder on the meta device (shapes only, no memory, no arithmetic) and counts the
multiply-accumulates of every convolution from its output shape and weight, for the whole-frame decode and for
2-4 bands, and gives the largest band's share of each up level's rows (report table "Exact VAE bands: extra
work"). Default 736 x 1280 x 9 pixels.
"""

from __future__ import annotations

import sys

import pytest
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


def band_work(height: int, width: int, frames: int) -> list[dict]:
    """One row per band count (1 = the whole-frame decode): conv MACs, extra work, largest band's row shares."""
    with torch.device("meta"):
        vae = WanVAE(WanVAEConfig()).eval()
        vae.drop_encoder()
        z = torch.empty(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    whole = conv_macs(vae, z, 1)
    rows = [dict(size=f"{width}x{height}x{frames}", bands=1, tera_macs=whole / 1e12, extra_work_pct=0.0)]
    for bands in (2, 3, 4):
        shares = vae.decoder.band_shares(z.shape[3:], bands)
        macs = conv_macs(vae, z, bands)
        rows.append(dict(size=f"{width}x{height}x{frames}", bands=bands, tera_macs=macs / 1e12,
                         extra_work_pct=100 * (macs / whole - 1),
                         largest_band_share_up_levels_0_3=" / ".join(f"{s:.2f}" for s in shares)))  # fmt: skip
    return rows


@pytest.mark.parametrize(
    "size", [(736, 1280, 9), pytest.param((256, 256, 17), marks=pytest.mark.slow)], ids=lambda s: "x".join(map(str, s))
)
def test_band_work(bench_report, size: tuple[int, int, int]) -> None:
    rows = band_work(*size)
    for row in rows:
        bench_report.add("Exact VAE bands: extra convolution work", **row)
    extra = [row["extra_work_pct"] for row in rows]
    assert extra == sorted(extra) and extra[1] > 0  # more bands, more halo work


def main(height: int, width: int, frames: int) -> None:
    for row in band_work(height, width, frames):
        print(row)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [736, 1280, 9][len(args) :]))
