"""Exact bands for the VAE encoder (image-to-video's first frame): the same latents as the whole-frame encode,
one band's full-resolution tensors at a time."""

from __future__ import annotations

import pytest
import torch

from motif_lite.errors import ConfigError
from motif_lite.vae.bands import DownLevel, plan_encoder_bands, spoiled_rows
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.layers import CausalState
from motif_lite.vae.model import WanVAE

TINY = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True])
WAN21_LEVELS = [DownLevel(5, True), DownLevel(4, True), DownLevel(4, True), DownLevel(4, False)]


@pytest.fixture(scope="module")
def vae64() -> WanVAE:
    # float64: banded and whole-frame convolutions then agree to the last bits, far below any halo error.
    torch.manual_seed(0)
    vae = WanVAE(WanVAEConfig(**TINY)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            p.copy_(torch.rand_like(p) + 0.5 if name.endswith("gamma") else torch.randn_like(p) * 0.3)
    return vae.to(torch.float64)


def agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float64 rounding (a conv over a different shape may round the last bit differently); a wrong
    row next to a cut is off by far more."""
    return (a - b).abs().max().item() <= 1e-12 * b.abs().max().item()


def pixels(frames: int, height: int, width: int, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("shape", [(1, 160, 72), (1, 64, 136), (5, 96, 56)])  # rows, columns, a clip
def test_encoder_bands_are_exact(vae64, shape):
    video = pixels(*shape)
    whole = vae64.encode(video)
    latent_side = max(shape[1:]) // 8
    for count in (2, 3, 4, latent_side):
        banded = vae64.encode(video, bands=count)
        assert agree(banded.mean, whole.mean) and agree(banded.logvar, whole.logvar), count


def test_encoder_margin_is_needed(vae64):
    # The margin is not slack: one latent row less on either side of the cut gives wrong latents next to it.
    video = pixels(1, 160, 72)
    with torch.no_grad():
        whole = vae64.encoder.down(video, CausalState())
    levels = vae64.encoder.level_shapes()
    top, bottom = spoiled_rows(levels)
    for reach, exact in (((top, bottom), True), ((top - 1, bottom), False), ((top, bottom - 1), False)):
        results = []
        for band in plan_encoder_bands(levels, 20, 2, reach=reach):
            with torch.no_grad():
                part = vae64.encoder.down(video[..., band.in_rows[0] : band.in_rows[1], :], CausalState())
            offset = band.in_rows[0] // 8
            results.append(part[..., band.out_rows[0] - offset : band.out_rows[1] - offset, :])
        banded = torch.cat(results, dim=-2)
        assert agree(banded, whole) == exact, reach
        if not exact:
            assert (banded - whole).abs().max() > 1e-6 * whole.abs().max()  # far above rounding


def test_encoder_band_plan():
    assert spoiled_rows(WAN21_LEVELS) == (8, 9)  # the Wan2.1 encoder: conv_in + 2 residual blocks per level
    bands = plan_encoder_bands(WAN21_LEVELS, 160, 2, dim=-1)  # a 1280-wide frame: columns
    assert [b.out_rows for b in bands] == [(0, 80), (80, 160)]
    assert [b.in_rows for b in bands] == [(0, 89 * 8), (72 * 8, 1280)]
    assert all(b.in_rows[0] % 8 == 0 and b.in_rows[1] % 8 == 0 for b in bands)  # the stride-2 grids line up
    for count, message in ((0, "integer >= 1"), (True, "integer >= 1"), (161, "more than the 160")):
        with pytest.raises(ConfigError, match=message):
            plan_encoder_bands(WAN21_LEVELS, 160, count)


def test_wan21_encoder_band_shares():
    # What one band's full-resolution tensors cost at 1280x736 (the planner's encode estimate uses these).
    with torch.device("meta"):
        encoder = WanVAE(WanVAEConfig()).encoder
    assert encoder.level_shapes() == WAN21_LEVELS
    shares = [encoder.band_share((92, 160), count) for count in (1, 2, 3, 4)]
    assert shares[0] == 1 and shares == sorted(shares, reverse=True)
    assert shares[1] == pytest.approx(89 / 160) and shares[3] < 0.4
