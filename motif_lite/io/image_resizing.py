"""An input image made the video's size: the reference's preprocessing (`preprocess_image`), the words a run's
summary says it in, and the note for a tiny image enlarged."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from motif_lite.errors import ConfigError

TINY_IMAGE_SIDE = 64  # pixels: an image with a side below this, enlarged, is worth a note (a thumbnail, an icon)


def enlargement_notes(image_size: tuple[int, int], width: int, height: int) -> list[str]:
    """A note when a tiny image (a side under TINY_IMAGE_SIDE pixels) is enlarged to the video's `width` x `height`:
    resized as the reference does, it becomes a blur of its few pixels (a 1x1 image, one flat colour), which is
    likely not the first frame the user meant."""
    image_width, image_height = image_size
    tiny = min(image_width, image_height) < TINY_IMAGE_SIDE
    if not tiny or (image_width >= width and image_height >= height):  # not tiny, or not enlarged
        return []
    return [
        f"the image is only {image_width}x{image_height} pixels and is enlarged to {width}x{height}: the first "
        "frame is a blur of its few pixels; give a larger image (the video's size, or near it)"
    ]


ASPECT_KEPT = 0.01  # relative aspect-ratio change below which a resize reads as keeping the shape


def resize_description(image_size: tuple[int, int], width: int, height: int) -> str:
    """What `preprocess_image` does to an image of `image_size` (width, height) for a `width` x `height` video, in
    words for a run's summary: "3024x4032 stretched to 1280x736 (...)", "1920x1104 resized to 1280x736"."""
    image_width, image_height = image_size
    if (image_width, image_height) == (width, height):
        return f"{width}x{height}, used as is"
    image_aspect, video_aspect = image_width / image_height, width / height
    if abs(image_aspect / video_aspect - 1) <= ASPECT_KEPT:
        return f"{image_width}x{image_height} resized to {width}x{height} (Lanczos)"
    return (
        f"{image_width}x{image_height} stretched to {width}x{height} (Lanczos, no crop or padding, as the reference "
        f"pipeline does: aspect {image_aspect:.2f} -> {video_aspect:.2f})"
    )


def preprocess_image(image: PIL.Image.Image, height: int, width: int) -> torch.Tensor:
    """Resize and scale an RGB image to `[1, 3, height, width]` float32 in [-1, 1], like the reference I2V pipeline.

    diffusers' `VideoProcessor.preprocess_video` (default config) resizes PIL images straight to the target size
    with Lanczos (aspect ratio not kept, no crop), divides by 255 in float32, and maps [0, 1] to [-1, 1].
    """
    if height < 1 or width < 1:
        raise ConfigError(f"image size must be positive, got {height}x{width}")
    resized = image.convert("RGB").resize((width, height), resample=PIL.Image.Resampling.LANCZOS)
    pixels = np.asarray(resized).astype(np.float32) / 255.0  # [H, W, 3]
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    return 2.0 * tensor - 1.0
