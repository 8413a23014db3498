"""Images as the model takes them, RGB with 8 bits per channel: shared by the first frame's reader (io/image.py,
-i) and the clip's (io/clip.py, a PNG sequence given to --extend), which image.py imports."""

from __future__ import annotations

import numpy as np
import PIL.Image


def to_rgb8(image: PIL.Image.Image) -> PIL.Image.Image:
    """RGB, 8 bits per channel. Pillow converts 16- and 32-bit integer grayscale ("I;16", "I": 16-bit PNGs and
    TIFFs) by clipping at 255, which makes a mid-gray 16-bit image white: scale 0..65535 to 0..255 instead. It
    converts a float image ("F": a 32-bit float TIFF, as numpy and renderers save one) the same way, which makes
    one of levels 0..1 black: scale those to 0..255."""
    if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255):
        levels = np.asarray(image).astype(np.float64).clip(0, 65535) / 257.0
        return PIL.Image.fromarray(levels.round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "F" and image.getextrema()[1] <= 1.0:
        levels = np.nan_to_num(np.asarray(image, dtype=np.float64)).clip(0, 1) * 255.0
        return PIL.Image.fromarray(levels.round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and isinstance(image.info.get("transparency"), bytes):
        # A palette with an alpha per colour (a PNG's tRNS chunk): Pillow's convert("RGB") warns "Palette images with
        # Transparency expressed in bytes should be converted to RGBA images", advice to a programmer that a run
        # printed to its user, beside its own note on the dropped transparency. Through RGBA, as the warning says:
        # the same colours as the reference's convert("RGB") gives, alpha dropped all the same.
        return image.convert("RGBA").convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # Pillow's convert would copy an RGB image
