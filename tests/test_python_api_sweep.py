"""The Python API as a researcher scripting many runs meets it: one pipeline for a sweep of prompts, seeds, scales
and sizes, a log of each run's settings, and first frames made in memory (an array, a tensor)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite.request import GenerationRequest, RequestError

TINY = dict(width=48, height=32, frames=5, steps=2, seed=3)
_PIXELS = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        _PIXELS,  # uint8 [H, W, 3], as PIL gives it
        _PIXELS / 255.0,  # floats from 0..1, as diffusers' numpy images are
        torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1).float(),  # [3, H, W] from 0..1, as diffusers' tensors
        torch.from_numpy(_PIXELS),  # uint8 [H, W, 3] tensor
    ],
    ids=["uint8 array", "float array", "CHW float tensor", "uint8 tensor"],
)
def test_the_line_that_saves_an_image_made_in_memory_saves_it(image, tmp_path, monkeypatch):
    # The refusal told an array or a tensor to call image.save(...), which they lack (an AttributeError).
    request = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=r"save it to a file first \((.+)\) and give that path") as refused:
        request.resolve()
    line = refused.value.args[0].split("save it to a file first (e.g. ")[1].rsplit(") and give that path")[0]
    monkeypatch.chdir(tmp_path)
    exec(line, {"PIL": PIL, "image": image})  # noqa: S102
    saved = np.asarray(PIL.Image.open(tmp_path / "first.png"))
    np.testing.assert_array_equal(saved, _PIXELS)
    GenerationRequest("a fox", **TINY, image=tmp_path / "first.png", output=tmp_path / "fox.mp4").resolve()
