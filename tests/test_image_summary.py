"""What a run's summary says about its input image: its size as used and what the resize did to it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite import load_pipeline
from motif_lite.cli.run_summary import summary
from motif_lite.io.image import resize_description
from motif_lite.request import GenerationRequest


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu")


def test_the_summary_says_how_a_sideways_phone_photo_was_fitted_to_the_video(pipe, tmp_path):
    # Stored landscape with an EXIF turn, as phones save portrait photos: used upright (30x40), then stretched.
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    request = GenerationRequest("x", width=32, height=16, frames=5, steps=1, seed=0, image=tmp_path / "phone.jpg",
                                output=tmp_path / "v.gif")  # fmt: skip
    result = pipe.generate(request)
    assert result.image_size == (30, 40)
    lines = summary(result, 0.0).splitlines()
    done = next(i for i, line in enumerate(lines) if line.startswith("done: "))
    said = "30x40 stretched to 32x16 (Lanczos, no crop or padding, as the reference pipeline does: aspect 0.75 -> 2.00)"
    assert lines[done + 1] == f"image: {tmp_path / 'phone.jpg'}, {said}"


def test_an_image_a_one_frame_video_ignores_is_said_to_be_unused(pipe, tmp_path):
    PIL.Image.new("RGB", (32, 16)).save(tmp_path / "first.png")
    request = GenerationRequest("x", width=32, height=16, frames=1, steps=1, seed=0, image=tmp_path / "first.png",
                                output=tmp_path / "v.png")  # fmt: skip
    result = pipe.generate(request)
    assert result.image_size is None
    assert f"image: {tmp_path / 'first.png'} not used: a 1-frame video is one latent frame" in summary(result, 0.0)
    text_only = dataclasses.replace(result, request=dataclasses.replace(result.request, image=None))
    assert "image:" not in summary(text_only, 0.0)


@pytest.mark.parametrize(
    ("image", "says"),
    [((1280, 736), "1280x736, used as is"), ((1920, 1104), "1920x1104 resized to 1280x736 (Lanczos)"),
     ((3024, 4032), "3024x4032 stretched to 1280x736"), ((1280, 800), "1280x800 stretched to 1280x736"),
     ((1282, 736), "1282x736 resized to 1280x736")],
)  # fmt: skip
def test_a_resize_is_called_a_stretch_only_when_it_changes_the_shape(image, says):
    assert resize_description(image, 1280, 736).startswith(says)


def test_a_dry_run_says_how_the_image_will_be_fitted(checkpoint, tmp_path, capsys):
    # A dry run of an image-to-video said nothing of the image where its shape fitted the video: not even that -i
    # was taken. It now says what a run's summary says, before the settings.
    from motif_lite import cli

    PIL.Image.new("RGB", (64, 64)).save(tmp_path / "first.png")
    args = ["run", "-m", str(checkpoint), "-p", "x", "--dry-run", "-W", "64", "-H", "32", "-o", str(tmp_path / "v.gif")]
    assert cli.main([*args, "--video-frames", "9", "-i", str(tmp_path / "first.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = "64x64 stretched to 64x32 (Lanczos, no crop or padding, as the reference pipeline does: aspect 1.00 -> 2.00)"
    assert lines[1] == f"image: {tmp_path / 'first.png'}, {said}", lines
    assert cli.main([*args, "--video-frames", "1", "-i", str(tmp_path / "first.png")]) == 0
    assert "not used: a 1-frame video is one latent frame" in capsys.readouterr().out
    assert cli.main([*args, "--video-frames", "9"]) == 0
    assert "image:" not in capsys.readouterr().out
