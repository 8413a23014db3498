"""Videos as uint8 frame arrays [F, H, W, 3]: what a diffusers reference pipeline makes, and what our runs wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import torch


def diffusers_frames(pipe, size: dict, seed: int, **call) -> np.ndarray:
    """The frames a diffusers Motif-Video pipeline makes at `size` (width, height, frames, steps, as in our
    GenerationRequest) from `seed`. call: its other arguments (prompt, negative_prompt, image, ...)."""
    video = pipe(
        height=size["height"],
        width=size["width"],
        num_frames=size["frames"],
        num_inference_steps=size["steps"],
        generator=torch.Generator().manual_seed(seed),
        **call,
    ).frames[0]
    return np.stack([np.asarray(frame) for frame in video])


def read_png_frames(folder: Path, stem: str = "out") -> np.ndarray:
    """The frames of a run that wrote `folder/{stem}_000.png`, `..._001.png`, ..."""
    files = sorted(folder.glob(f"{stem}_*.png"))
    return np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in files])
