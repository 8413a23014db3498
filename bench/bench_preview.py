"""The cost of one preview at the official size (1280x736x121: 31 x 92 x 160 latents), projection + file write.

    pytest bench/bench_preview.py --benchmark-enable -s

A preview replaces no VAE call: the clean-latent estimate goes through a 16 -> 3 linear map (vae/preview.py) and
is written as an animated WebP (every latent frame) or a PNG (the middle frame). Compare with a 720p step (about
18 s with guidance on an H200, docs/benchmarks.md): previews come every ~steps/4 steps by default.
"""

from __future__ import annotations

import pytest
import torch

from motif_lite.io.preview import write_preview
from motif_lite.vae.preview import LatentRGB

LATENTS_720P = (1, 16, 31, 92, 160)


@pytest.fixture(scope="module")
def projection() -> LatentRGB:
    g = torch.Generator().manual_seed(0)
    return LatentRGB(torch.randn(3, 16, generator=g) * 0.1, torch.zeros(3))


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_preview_cost_at_720p(benchmark, projection, tmp_path, suffix):
    latents = torch.randn(LATENTS_720P, dtype=torch.bfloat16)

    def one_preview() -> None:
        write_preview(projection.preview(latents), tmp_path / f"preview{suffix}", fps=6.0)

    benchmark.pedantic(one_preview, rounds=5, warmup_rounds=1)
    assert (tmp_path / f"preview{suffix}").is_file()
