"""Run inside an old worktree's venv: a stopped run's state and a failed decode's latents, via the Python API."""

import contextlib
import sys
from pathlib import Path

import torch

from motif_lite.io.latents import read_latents  # noqa: F401  (the module must exist)
from motif_lite.pipeline import load_pipeline
from motif_lite.request import GenerationRequest

ck, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
pipe = load_pipeline(ck, dtype=torch.float32, device="cpu")
common = dict(prompt="a red fox", width=64, height=64, frames=9, steps=4, seed=7)


class Stop(KeyboardInterrupt):
    pass


def stop_after_two(stage, done, total):
    if stage == "denoise" and done == 2:
        raise Stop


with contextlib.suppress(KeyboardInterrupt):  # a run stopped after 2 of 4 steps (older commits keep nothing)
    pipe.generate(GenerationRequest(**common, output=str(out / "stopped.mp4")), on_progress=stop_after_two)


def failing_decode(*args, **kwargs):
    raise RuntimeError("simulated decode failure")


if hasattr(pipe.vae, "decode_frames"):  # the decode fails: the denoised latents are kept
    pipe.vae.decode_frames = failing_decode
else:
    pipe.decode = failing_decode
with contextlib.suppress(RuntimeError):
    pipe.generate(GenerationRequest(**common, output=str(out / "denoised.mp4")))
print(sorted(p.name for p in out.iterdir()))
