"""The cost of a preview at the official size (1280x736x121: 31 x 92 x 160 latents).

    pytest bench/bench_preview.py -s

A preview replaces no VAE call: the clean-latent estimate goes through a 16 -> 3 linear map (vae/preview.py), and
`PreviewFile` writes it (an animated WebP of every latent frame, or the middle frame as PNG) on a background thread.
What the sampling loop waits for is the projection and the hand-over; the file write overlaps the next steps.
Both are measured here on the CPU (on a GPU the projection runs there, in well under a millisecond); compare with
a 720p step, about 20 s with guidance on an H200 (docs/benchmarks.md, "Whole text-to-video").
"""

from __future__ import annotations

import pytest
import torch
from helpers import median_seconds

from motif_lite.io.preview import PreviewFile, write_preview
from motif_lite.vae.preview import LatentRGB

LATENTS_720P = (1, 16, 31, 92, 160)
H200_STEP_SECONDS = 20.1  # the fastest measured 720p step with guidance (docs/benchmarks.md)
ROUNDS = 5


@pytest.fixture(scope="module")
def projection() -> LatentRGB:
    g = torch.Generator().manual_seed(0)
    return LatentRGB(torch.randn(3, 16, generator=g) * 0.1, torch.zeros(3))


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_preview_cost_at_720p(projection, tmp_path, suffix, bench_report):
    latents = torch.randn(LATENTS_720P, dtype=torch.bfloat16)
    frames = projection.preview(latents)
    project = median_seconds(lambda: projection.preview(latents), reps=ROUNDS)
    write = median_seconds(lambda: write_preview(frames, tmp_path / f"written{suffix}", fps=6.0), reps=ROUNDS)
    previews = PreviewFile(tmp_path / f"preview{suffix}", fps=6.0)
    hand_over = median_seconds(
        lambda: previews(1, 50, frames), reps=ROUNDS
    )  # returns at once; the write runs behind it
    previews.close()
    assert (tmp_path / f"preview{suffix}").is_file()
    waited = project + hand_over
    bench_report.add(
        "Preview cost at 1280x736x121 (CPU)",
        file=suffix,
        projection_ms=round(project * 1000, 1),
        background_write_ms=round(write * 1000, 1),
        sampling_waits_ms=round(waited * 1000, 1),
        share_of_h200_step=f"{waited / H200_STEP_SECONDS:.2%}",
    )
    print(f"\n{suffix}: projection {project * 1000:.0f} ms, write {write * 1000:.0f} ms (background), "
          f"sampling waits {waited * 1000:.0f} ms = {waited / H200_STEP_SECONDS:.2%} of an H200 720p step")  # fmt: skip
