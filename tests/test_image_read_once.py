"""The input image is decoded once per `generate`: the request check reads it for its notes (`read_image`) and hands
the pixels on to the first frame, which used to decode the file again (a 95-megapixel photo: a second of CPU and
300 MB more each time); the read keeps no copy Pillow would make of an image it does not turn or convert. The first
frame must be the image the reference reads (diffusers' `load_image`: EXIF turn, then RGB), bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from diffusers.utils import load_image as reference_load_image

from motif_lite import load_pipeline
from motif_lite.io.image import load_image
from motif_lite.pipeline import encode_stage
from motif_lite.request import GenerationRequest


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu")


def saved(tmp_path, kind: str):
    """An image file of `kind`: a JPEG stored sideways with an EXIF turn (as phones save portrait photos), an upright
    JPEG (neither turned nor converted: no copy), a palette PNG and a grayscale one (converted to RGB)."""
    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image, path = PIL.Image.fromarray(pixels), tmp_path / f"{kind}.{'jpg' if 'jpeg' in kind else 'png'}"
    if kind == "turned jpeg":
        exif = PIL.Image.Exif()
        exif[0x0112] = 6
        image.save(path, exif=exif.tobytes())
    else:
        {"jpeg": image, "palette": image.quantize(16), "gray": image.convert("L")}[kind].save(path)
    return path


KINDS = ["turned jpeg", "jpeg", "palette", "gray"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_read_image_is_the_references_bit_for_bit(tmp_path, kind):
    path = saved(tmp_path, kind)
    ours, theirs = load_image(path), reference_load_image(str(path))
    assert (ours.mode, ours.size) == (theirs.mode, theirs.size) == ("RGB", theirs.size)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.fixture()
def phone_photo(tmp_path):
    return saved(tmp_path, "turned jpeg")


def test_generate_decodes_the_image_once_and_uses_load_images_pixels(pipe, phone_photo, tmp_path, monkeypatch):
    decodes, first_frames = [], []
    transpose, preprocess = PIL.ImageOps.exif_transpose, encode_stage.preprocess_image

    def counted(image, *args, **kwargs):  # io/image.py decodes every pixel here, once per read of the file
        decodes.append(image.size)
        return transpose(image, *args, **kwargs)

    def kept(image, *args, **kwargs):
        first_frames.append(image)
        return preprocess(image, *args, **kwargs)

    expected = reference_load_image(str(phone_photo))  # before the spies
    monkeypatch.setattr(PIL.ImageOps, "exif_transpose", counted)
    monkeypatch.setattr(encode_stage, "preprocess_image", kept)
    request = GenerationRequest("x", width=32, height=16, frames=5, steps=1, seed=0, image=phone_photo,
                                output=tmp_path / "v.gif")  # fmt: skip
    result = pipe.generate(request)
    assert decodes == [(40, 30)]  # one read of the stored (sideways) image
    (image,) = first_frames
    assert (image.mode, image.size) == (expected.mode, expected.size) == ("RGB", (30, 40))
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    assert any("EXIF orientation (6) turns it" in note for note in result.notes)  # the notes as the check says them


def test_an_upright_rgb_photo_is_read_without_a_copy(tmp_path, monkeypatch):
    # Pillow's exif_transpose copies an image it does not turn, and convert("RGB") one already RGB: three images of a
    # 95-megapixel photo at once (1.3 GB in a dry run, 0.6 GB without the copies).
    copies = []
    copy = PIL.Image.Image.copy
    monkeypatch.setattr(PIL.Image.Image, "copy", lambda self: copies.append(self.size) or copy(self))
    load_image(saved(tmp_path, "jpeg"))
    assert copies == []
