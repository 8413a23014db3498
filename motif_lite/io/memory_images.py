"""First frames made in memory, as diffusers' pipelines take them (a PIL image, a numpy array, a torch tensor):
told from a file's path, and made the RGB image written for them, or refused with what was given."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from motif_lite.errors import MotifLiteError
from motif_lite.io.image_notes import (
    colour_profile_notes,
    print_colour_notes,
    stored_turned_notes,
    transparency_notes,
)
from motif_lite.io.rgb import to_rgb8

IN_MEMORY = "a PIL image, a numpy array or a torch tensor"


def is_in_memory(image: object) -> bool:
    """Whether `image` is a first frame made in memory (a PIL image, a numpy array, a torch tensor), as diffusers'
    pipelines take them, rather than the path of a file."""
    return isinstance(image, PIL.Image.Image | np.ndarray | torch.Tensor)


def image_from_memory(image: PIL.Image.Image | np.ndarray | torch.Tensor) -> tuple[PIL.Image.Image, list[str]]:
    """A first frame made in memory as the RGB image written for it, with `read_image`'s notes, as diffusers' image
    processors read one: a PIL image as it is (made RGB); an array or a tensor channels last ([H, W, 3]) or first
    ([3, H, W]), or a grayscale one (1 channel, or none: [H, W]), batched as [1, ...] or not, uint8 (0..255) or
    floats (0..1, bf16 included). What cannot be such an image is a `MotifLiteError` that says what it got."""
    if isinstance(image, PIL.Image.Image):
        notes = stored_turned_notes(image) + transparency_notes(image) + print_colour_notes(image)
        notes += colour_profile_notes(image)
        return to_rgb8(image), notes
    return PIL.Image.fromarray(_rgb8_pixels(image)).convert("RGB"), []


def _rgb8_pixels(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """An array's or a tensor's pixels as uint8 [H, W] or [H, W, 3] (`image_from_memory`)."""
    is_tensor = isinstance(image, torch.Tensor)
    kind = "torch tensor" if is_tensor else "numpy array"
    shape = tuple(image.shape)
    given = f"the input image is a {kind} of shape {list(shape) if is_tensor else shape}"
    if is_tensor:  # numpy has no bf16: floats as float32, which holds every bf16 and fp16 value
        image = image.detach().cpu()
        image = (image.float() if image.is_floating_point() else image).numpy()
    if image.ndim == 4 and shape[0] != 1:
        raise MotifLiteError(f"{given}: a batch of {shape[0]} images, and a video has one first frame; give one, "
                             "e.g. image[0]")  # fmt: skip
    pixels = image[0] if image.ndim == 4 else image
    if pixels.ndim not in (2, 3):
        raise MotifLiteError(f"{given}, which is no image: give one as [H, W, 3] or [3, H, W] (or [1, ...] of one)")
    if pixels.ndim == 3:
        pixels = _channels_last(pixels, is_tensor, given)
    if 0 in pixels.shape:
        raise MotifLiteError(f"{given}, which has no pixels")
    return _as_uint8(pixels, given)


def _channels_last(pixels: np.ndarray, is_tensor: bool, given: str) -> np.ndarray:
    """[H, W, C] from [H, W, C] or [C, H, W] (1 or 3 channels; [H, W] for one); where both ends could be channels,
    a tensor's are first and an array's last, as in diffusers."""
    first, last = pixels.shape[0] in (1, 3), pixels.shape[-1] in (1, 3)
    if not first and not last:
        rgba = 4 in (pixels.shape[0], pixels.shape[-1])
        alpha = " (RGBA? drop its alpha channel, e.g. image[..., :3] or image[:3])" if rgba else ""
        raise MotifLiteError(f"{given}: neither its first nor its last axis holds 3 colour channels (RGB) or 1 "
                             f"(grayscale){alpha}")  # fmt: skip
    if first and (is_tensor or not last):
        pixels = pixels.transpose(1, 2, 0)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _as_uint8(pixels: np.ndarray, given: str) -> np.ndarray:
    """uint8 pixels from uint8 ones, or from floats in 0..1 (rounded, as diffusers' `numpy_to_pil`)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind != "f":
        raise MotifLiteError(f"{given} and dtype {pixels.dtype}: give uint8 (0..255) or floats (0..1), e.g. "
                             "image.astype('uint8') for levels 0..255")  # fmt: skip
    if not np.isfinite(pixels).all():
        raise MotifLiteError(f"{given} that holds NaN or infinite values, which are no colours")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        hint = " (from -1..1, as a VAE's input? give (image + 1) / 2)" if low >= -1 and high <= 1 else ""
        hint = hint or (" (levels 0..255? give image / 255)" if low >= 0 and high <= 255 else "")
        raise MotifLiteError(f"{given} with values from {low:g} to {high:g}: floats are read as 0..1{hint}")
    return (pixels * 255).round().astype(np.uint8)
