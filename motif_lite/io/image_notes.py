"""The notes on what reading an image changed or dropped that the user would want to know: an EXIF orientation that
turns it (or EXIF data that is damaged), one in memory used as stored though its orientation turns it, transparent
pixels, print (CMYK) colours, and the frames of an animation or a multi-picture photo after the first."""

from __future__ import annotations

import io
import struct

import PIL.ExifTags
import PIL.Image

from motif_lite.io.pillow_warnings import CORRUPT_EXIF, pillows_warnings


def frames_note(image_format: str | None, frames: int) -> str:
    """The note for an image file of several frames, of which the first is used, as the reference uses it. A JPEG
    that holds more than one picture (an MPO: a camera's stereo pair, or a phone photo with its depth map or a
    preview) is a photo, not an animation: its frames are named as pictures, the first the photo itself."""
    if image_format == "MPO":
        return (
            f"the photo is an MPO, a JPEG holding {frames} pictures (a stereo pair, or a depth map or preview): the "
            "first, the photo itself, is the video's first frame"
        )
    return f"the image has {frames} frames: the first one is the video's first frame"


def frame_count(image: PIL.Image.Image) -> int:
    """How many frames an image file holds (an animation's, a multi-page TIFF's), for a note; 1 where Pillow cannot
    count them for a damaged frame after the first: it seeks through them to count, and a TIFF whose second page is
    broken raised TypeError "Missing dimensions" out of a run (an animated GIF cut short in a later frame, an
    IndexError), where the reference, which never counts, reads the first frame. The image is back at its first frame
    either way."""
    try:
        return getattr(image, "n_frames", 1)
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, SyntaxError, struct.error):
        image.seek(0)  # counting left it at the broken frame
        return 1


TURNS = range(2, 9)  # EXIF orientations Pillow turns an image by: 1 is stored upright, anything else no turn


def exif_orientation(image: PIL.Image.Image) -> tuple[int | None, bool]:
    """The image's EXIF orientation tag (None where none is read), and whether its EXIF data is damaged (cut
    short by an editor or a transfer): Pillow then reads what it can, as it does for the reference, and warns
    "Corrupt EXIF data. Expecting to read 2 bytes but only got 0.", which a run printed as a warning pointing into
    Pillow's code (`open_image` keeps it quiet); `DAMAGED_EXIF` says it in the user's terms instead. EXIF data that
    is no EXIF at all makes Pillow raise SyntaxError for a PNG or WebP (the reference fails there; a JPEG's it
    skips): the image is used as stored, as for a JPEG, rather than the run failing over its camera notes."""
    with pillows_warnings() as caught:
        try:
            orientation = image.getexif().get(PIL.ExifTags.Base.Orientation)
            if (stored := image.info.get("exif")) is not None:  # again: a JPEG's was parsed, quietly, on opening
                PIL.Image.Exif().load(stored)
        except (SyntaxError, ValueError, struct.error):  # Pillow's "not a TIFF file", a bad offset or size
            return None, True
    return orientation, any(CORRUPT_EXIF.match(str(warning.message)) for warning in caught)


DAMAGED_EXIF = (
    "the image's EXIF data (the camera's notes stored in it) is damaged: no orientation is read from it, so the "
    "image is used as stored, as the reference pipeline does; if a photo viewer shows it turned, save a turned copy"
)


def damaged_exif_note(orientation: int | None) -> str:
    """The note for damaged EXIF data whose orientation tag read `orientation` (None: none was read). Damage after
    the tag (Pillow skips a tag that points past the file's end) leaves the tag read and used, as the reference uses
    it: the image is then not "used as stored"."""
    if orientation is None:
        return DAMAGED_EXIF
    used = "used upright" if orientation in TURNS else "used as stored"
    return (
        f"the image's EXIF data (the camera's notes stored in it) is damaged in part: its orientation ({orientation}) "
        f"was read all the same, so the image is {used}, as the reference pipeline does; the damaged notes are skipped"
    )


def orientation_notes(orientation: int | None, stored: tuple[int, int], upright: tuple[int, int]) -> list[str]:
    """A note when the EXIF `orientation` turned the image (`stored` size -> `upright` size): phone photos are stored
    sideways or upside down with a tag that says how to show them. Like the reference (diffusers' `load_image`:
    `exif_transpose`, then RGB) the image is used as viewers show it, which may not be how an editor that ignores the
    tag shows it."""
    if orientation not in TURNS:
        return []
    (width, height), (stored_width, stored_height) = upright, stored
    return [
        f"the image's EXIF orientation ({orientation}) turns it: it is used upright, {width}x{height} (stored "
        f"{stored_width}x{stored_height}), as photo viewers and the reference pipeline show it"
    ]


def stored_turned_notes(image: PIL.Image.Image) -> list[str]:
    """A note when a PIL image given in memory has an EXIF orientation that turns it (a phone photo opened with
    `PIL.Image.open`): its pixels are used as stored, as diffusers' pipeline uses an image given to it, whereas
    `-i` of its file (and diffusers' `load_image`) turns it upright; it was used sideways without a word."""
    orientation, _ = exif_orientation(image)
    if orientation not in TURNS:
        return []
    return [
        f"the image's EXIF orientation ({orientation}) says to show it turned, but an image given in memory is used "
        f"as its pixels are stored, {image.width}x{image.height}, as diffusers' pipeline uses it: give "
        "PIL.ImageOps.exif_transpose(image) for the upright photo (what its file, or diffusers' load_image, gives)"
    ]


def transparency_notes(image: PIL.Image.Image) -> list[str]:
    """A note when the image has transparent pixels: like the reference (diffusers' `load_image`), the alpha channel
    is dropped, so whatever colour is stored under them (often black) shows in the first frame."""
    if not image.has_transparency_data:
        return []
    alpha = image.convert("RGBA").getchannel("A")
    if alpha.getextrema()[0] == 255:  # an alpha channel, but every pixel opaque
        return []
    return [
        "the image has transparent pixels: its alpha channel is dropped (as the reference pipeline does), so the "
        "colours stored under them show in the first frame, often black; flatten it onto a background first"
    ]


def print_colour_notes(image: PIL.Image.Image) -> list[str]:
    """A note for a CMYK image (a JPEG or TIFF made for print): like the reference (diffusers' `load_image`), Pillow
    turns it into RGB by a plain formula that ignores its colour profile, where photo viewers use the profile, so the
    first frame's colours may be visibly off from what the user saw."""
    if image.mode != "CMYK":
        return []
    return [
        "the image is CMYK (print colours): it becomes RGB by a plain formula without its colour profile (as the "
        "reference pipeline does), so its colours may differ from what a photo viewer shows; save it as an RGB "
        "JPEG or PNG first"
    ]


def colour_profile_notes(image: PIL.Image.Image) -> list[str]:
    """A note for an RGB image whose colour profile has other primaries than sRGB (a phone's Display P3 photo, a
    camera's Adobe RGB, a still exported from a grading app in a wide gamut): like the reference (diffusers'
    `load_image`), its values are used as they are stored, as sRGB, where photo viewers and editors apply the
    profile, so the first frame's colours (saturated ones most) differ from the still the user saw. Primaries are
    compared, not names: compact sRGB profiles call themselves "c2" and the like. A profile that cannot be read gets
    no note: what it is, is unknown."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA"):  # CMYK has its own note
        return []
    from PIL import ImageCms  # littlecms, loaded only for an image with a profile

    try:
        read = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        name = ImageCms.getProfileDescription(read).strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return []
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).profile
    # Each primary's colorant as ((X, Y, Z), (x, y, Y)), beside sRGB's.
    colorants = [
        (getattr(read.profile, f"{c}_colorant"), getattr(srgb, f"{c}_colorant")) for c in ("red", "green", "blue")
    ]
    if any(given is None for given, _ in colorants):  # no colorants (a LUT-based profile): its name tells
        if "srgb" in name.lower():
            return []
    elif all(abs(given[1][i] - wanted[1][i]) < 0.005 for given, wanted in colorants for i in (0, 1)):
        return []  # sRGB's primaries (x, y), under whatever name
    named = repr(name) if name else "one without a name"
    return [
        f"the image's colour profile is {named}, not sRGB: its values are used as stored, as sRGB (as the reference "
        "pipeline does), without the profile photo viewers and editors apply, so its colours (saturated ones most) "
        "differ from what they show; export the still as sRGB first"
    ]
