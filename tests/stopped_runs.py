"""Runs stopped as Ctrl-C stops one, once their first denoising step is done: for the tests of what a stopped run
keeps and of resuming it."""

from __future__ import annotations

from typing import Any

import pytest

from motif_lite.io.latents import SavedLatents, latents_path, read_latents
from motif_lite.request import GenerationRequest


def stop_after_first_step(stage: str, done: int, total: int) -> None:
    """An `on_progress` that stops the run as Ctrl-C does once its first denoising step is done: its state is kept."""
    if stage == "denoise" and done == 1:
        raise KeyboardInterrupt


def stopped_run(pipe: Any, request: GenerationRequest, **keywords: Any) -> SavedLatents:
    """`pipe.generate(request, **keywords)` stopped after its first denoising step: the state it kept beside its
    output (`fox.mp4` -> `fox.latents.safetensors`)."""
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request, on_progress=stop_after_first_step, **keywords)
    return read_latents(latents_path(request.output))
