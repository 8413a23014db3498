"""Input images for image-to-video: read as the first frame, with notes on what reading changed (`read_image`), opened
for a server's upload too (`open_image`), hashed, and written as a PNG beside the video when made in memory.

Its parts: `memory_images` (a first frame made in memory), `unreadable_images` (why a file is no image read here),
`image_notes` and `pillow_warnings` (the notes on what reading changed, Pillow's warnings among them) and
`image_resizing` (the reference's preprocessing to the video's size). The names imported from them `as` themselves
are this module's too, as they were before it was split.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from motif_lite.errors import Audience, MotifLiteError
from motif_lite.io.clip import last_frame_file
from motif_lite.io.file_kinds import IMAGE_SUFFIXES
from motif_lite.io.image_notes import DAMAGED_EXIF as DAMAGED_EXIF
from motif_lite.io.image_notes import (
    TURNS,
    colour_profile_notes,
    damaged_exif_note,
    exif_orientation,
    frame_count,
    frames_note,
    orientation_notes,
    print_colour_notes,
    transparency_notes,
)
from motif_lite.io.image_resizing import TINY_IMAGE_SIDE as TINY_IMAGE_SIDE
from motif_lite.io.image_resizing import enlargement_notes as enlargement_notes
from motif_lite.io.image_resizing import preprocess_image as preprocess_image
from motif_lite.io.image_resizing import resize_description as resize_description
from motif_lite.io.memory_images import IN_MEMORY, image_from_memory, is_in_memory
from motif_lite.io.pillow_warnings import CORRUPT_EXIF, PILLOW, pillow_notes, pillows_warnings
from motif_lite.io.rgb import to_rgb8
from motif_lite.io.staging import FRAME_PATTERN, is_frame_sequence
from motif_lite.io.unreadable_images import DAMAGED as DAMAGED
from motif_lite.io.unreadable_images import cut_short, model_file_kind, not_an_image, undecoded
from motif_lite.log_filters import WARNINGS_STATE
from motif_lite.paths import blank_path_problem, url_fix, user_path, windows_path_problem
from motif_lite.shell_syntax import quoted


def image_sha256(path: str | Path) -> str | None:
    """The SHA-256 of the bytes of the file a first frame comes from (an input image, a clip's file holding its last
    frame): what a stopped run keeps to recognise its image moved, and what a pipeline keeps its encodings of a first
    frame by. None if it cannot be read (gone while sampling): the state is saved all the same."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as file:  # in pieces: a clip's video file may be hundreds of MB
            for piece in iter(lambda: file.read(1 << 20), b""):
                digest.update(piece)
    except OSError:
        return None
    return digest.hexdigest()


def first_frame_file(output: str | Path) -> Path:
    """Where a first frame given in memory is written, beside the video: `fox.mp4` -> `fox.first-frame.png`; a PNG
    sequence's pattern (`out_%03d.png`) drops its frame number (`out.first-frame.png`), so that the file is not read
    as one of its frames or as a pattern. A leading ~ is expanded, as for the output itself."""
    output = user_path(output)
    stem = FRAME_PATTERN.sub("", output.stem).rstrip("_-. ") if is_frame_sequence(output) else output.stem
    return output.with_name(f"{stem or 'output'}.first-frame.png")


@dataclass(frozen=True)
class WrittenFirstFrame:
    """The PNG `write_first_frame` wrote for a first frame made in memory, and the bytes of the file it replaced
    (None: none was there), so that a run refused before its work leaves the folder as it found it (`undo`)."""

    path: Path
    replaced: bytes | None

    def undo(self) -> None:
        """The file as it was before it was written: gone, or the file it replaced back."""
        with contextlib.suppress(OSError):  # the refusal under way says more than a file that could not be undone
            if self.replaced is None:
                self.path.unlink(missing_ok=True)
            else:
                self.path.write_bytes(self.replaced)


def write_first_frame(image: PIL.Image.Image, path: Path) -> tuple[WrittenFirstFrame | None, list[str]]:
    """Write a first frame made in memory (`image`, RGB) as the PNG `path` (`first_frame_file`), and a note where a
    file of other pixels was there: it is replaced, as `output=` replaces a video. A file of these very pixels is
    left as it is, without a word (None): its checksum, which a stopped run of them keeps, stays. An `OSError` where
    it cannot be written, with the file as it was."""
    replaced = path.read_bytes() if path.is_file() else None
    if replaced is not None and _holds_pixels(path, image):
        return None, []
    written = WrittenFirstFrame(path, replaced)
    try:
        image.save(path, format="PNG")
    except OSError:
        written.undo()  # no half-written PNG, nor a lost earlier one
        raise
    notes = [] if replaced is None else [
        f"{path} held another image: it now holds the first frame given in memory, which the video's settings name "
        "(give output= another name to keep such a file)"
    ]  # fmt: skip
    return written, notes


def _holds_pixels(path: Path, image: PIL.Image.Image) -> bool:
    """Whether the image file `path` holds the pixels of `image` (RGB) as a first frame read from it (`read_image`,
    which turns it by its EXIF orientation, makes print colours RGB, ...) would: its raw pixels are not enough."""
    try:
        held, _ = read_image(path)
    except (MotifLiteError, OSError, ValueError, PIL.Image.DecompressionBombError):  # no image read: not these pixels
        return False
    return held.size == image.size and np.array_equal(np.asarray(held), np.asarray(image))


def load_image(path: str | Path) -> PIL.Image.Image:
    """Open an image file as an RGB `PIL.Image`, upright as its EXIF orientation says (alpha is dropped, palettes
    and grayscale are expanded, 16-bit grayscale scaled to 8 bits)."""
    return read_image(path)[0]


def read_image(
    path: str | Path | PIL.Image.Image | np.ndarray | torch.Tensor, audience: Audience = Audience.RUN_OR_PYTHON
) -> tuple[PIL.Image.Image, list[str]]:
    """`load_image`, and notes on what it changed or dropped that the user would want to know (an EXIF rotation,
    transparent pixels, the frames of an animation after the first). An image made in memory (`is_in_memory`) is
    `image_from_memory`'s. `audience`: whom the refusal of a clip given as the image speaks to (verify's user is
    not told to give it to --extend, which verify lacks)."""
    if is_in_memory(path):  # as diffusers' pipelines take it (`GenerationRequest` writes it to a file)
        return image_from_memory(path)
    if isinstance(path, list | tuple) and not path:  # `image[0]` would be an IndexError
        raise MotifLiteError(f"the input image is an empty {type(path).__name__}; give one image, e.g. image=[frame]")
    if isinstance(path, list | tuple):  # a list of one is taken as its image (`GenerationRequest.resolve`)
        raise MotifLiteError(f"the input image is a {type(path).__name__} of {len(path)} images, and a video has one "
                             "first frame; give one, e.g. image[0]")  # fmt: skip
    if not isinstance(path, str | Path):
        kind = type(path)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        raise MotifLiteError(f"the input image must be the path of an image file (str or Path) or {IN_MEMORY}, "
                             f"got {name}")  # fmt: skip
    if (blank := blank_path_problem(path, "the input image", NO_IMAGE)) is not None:
        raise MotifLiteError(blank)
    _check_not_url(str(path))
    path = user_path(path)
    if path.is_dir():
        example = _an_image_in(path) or path / "first.png"
        raise MotifLiteError(f"input image {path} is a directory; give the image file in it, e.g. {quoted(example)}")
    if not path.is_file():
        raise MotifLiteError(_missing_image(path, audience))
    if path.stat().st_size == 0:  # Pillow would say only "cannot identify image file"
        raise MotifLiteError(f"input image {path} is empty (0 bytes): save or copy the image again, then give it")
    try:
        # Pillow's warnings recorded from before opening: a JPEG's EXIF data is read then.
        with pillows_warnings() as said, open_image(path, f"input image {path}") as image:
            notes = transparency_notes(image) + print_colour_notes(image) + colour_profile_notes(image)
            if (frames := frame_count(image)) > 1:  # an animated GIF, WebP or PNG, a multi-page TIFF, an MPO
                notes.append(frames_note(image.format, frames))
            image.load()  # every pixel, before the file is closed
            # Pillow's exif_transpose copies an image it does not turn: a 95-megapixel photo's 300 MB once more.
            orientation, exif_damaged = exif_orientation(image)
            upright = PIL.ImageOps.exif_transpose(image) if orientation in TURNS else image
            notes += orientation_notes(orientation, image.size, upright.size)
            exif_note = damaged_exif_note(orientation)
            notes += [exif_note] if exif_damaged else []
            rgb = to_rgb8(upright)
        return rgb, list(dict.fromkeys(notes + pillow_notes(said, exif_note)))  # once each, in order
    except PIL.UnidentifiedImageError as exc:
        with path.open("rb") as file:
            head = file.read(1024)
        why = not_an_image(head, path, audience) or cut_short(head, path)
        raise MotifLiteError(f"cannot read image {path}: {why or exc}") from exc
    except OSError as exc:
        head = b""
        with contextlib.suppress(OSError), path.open("rb") as file:
            head = file.read(64)
        raise MotifLiteError(f"cannot read image {path}: {undecoded(exc, head)}") from exc
    except ValueError as exc:
        raise MotifLiteError(f"cannot read image {path}: {exc}") from exc


def upright_size(path: str | Path) -> tuple[int, int]:
    """The (width, height) a readable image is used at, upright as its EXIF orientation says (5 to 8 turn it a
    quarter), from its header alone: `read_image` decodes every pixel, which a huge photo makes slow."""
    with WARNINGS_STATE, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=PILLOW)  # `read_image` notes Pillow's
        with open_image(user_path(path), f"input image {path}") as image:
            width, height = image.size
            quarter_turn = exif_orientation(image)[0] in range(5, 9)
    return (height, width) if quarter_turn else (width, height)


NO_IMAGE = "give the path of an image file, or leave image out (None) for a video from the prompt alone"


def _an_image_in(folder: Path) -> Path | None:
    """The first image file in `folder` by name (for an example to give), None if it holds none or cannot be read."""
    try:
        return min((file for file in folder.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES), default=None)
    except OSError:
        return None


def _missing_image(path: Path, audience: Audience) -> str:
    """The error for an -i that is no file, with what it most likely meant: a PNG sequence's pattern (a clip: -i
    takes one frame of it), or a name with a stray space at an end (pasted) whose trimmed name is a file."""
    if is_frame_sequence(path) and (last := last_frame_file(path)).is_file():
        verify = audience is Audience.VERIFY  # verify has no --extend, nor a Python caller: a frame is its one way
        extend = (
            ""
            if verify
            else f", or go on from the sequence with --extend {quoted(path)} in place of -i (in Python extend= "
            "instead of image=)"
        )
        image = "-i" if verify else "-i (in Python image=)"
        return (
            f"input image {path} is a PNG sequence's pattern, and {image} takes one image: give one frame, e.g. its "
            f"last, {quoted(last)}{extend}"
        )
    if (windows := windows_path_problem(str(path))) is not None:
        return f"input image {windows}"
    name = path.name.strip()  # all spaces, or no name (`/`): nothing to trim to
    trimmed = path.with_name(name) if name and name != path.name else None
    if trimmed is not None and trimmed.is_file():
        return f"input image not found: {quoted(path)}; the name has a space at an end, and {quoted(trimmed)} is there"
    if str(path) == "-":  # many tools' standard input
        return "input image -: no image is read from standard input; save it to a file and give its path"
    if path.exists():  # a pipe (standard input, a shell's <(curl ...)) or a device: read once, and -i reads twice
        return (
            f"input image {path} is not a regular file (a pipe, such as piped standard input or a shell's <(...)): the "
            "image is read more than once (checked before the model loads, then used), so save it to a file first "
            "and give that"
        )
    if (near := _same_image_named_otherwise(path)) is not None:
        case = " (letter case counts in file names here)" if near.name.lower() == path.name.lower() else ""
        return f"input image not found: {path}; {quoted(near)} is there{case}"
    return f"input image not found: {path}"


def _same_image_named_otherwise(path: Path) -> Path | None:
    """The image file in `path`'s folder that `path` most likely meant: its name in other letter case (a name typed
    as a case-blind Windows or macOS folder shows it, `Photo.JPG` for `photo.jpg`), or, for a name without an
    extension, that name with an image's (`photo` for `photo.png`). None where there is none, or several."""
    try:
        entries = [entry for entry in path.parent.iterdir() if entry.is_file()] if path.parent.is_dir() else []
    except OSError:  # a folder that cannot be listed: nothing to suggest
        return None
    wanted = path.name.lower()
    found = [entry for entry in entries if entry.name.lower() == wanted]
    if not found and not path.suffix:
        found = [entry for entry in entries if entry.stem.lower() == wanted and entry.suffix.lower() in IMAGE_SUFFIXES]
    return found[0] if len(found) == 1 else None


def _check_not_url(path: str) -> None:
    """diffusers' `load_image` downloads an http(s) URL; motif-lite reads local files only (a run keeps the image's
    path and checksum to resume with), so a URL is refused with the command that fetches it (a file:// URL with its
    path), rather than being looked up as a file named "https:/..." and reported missing."""
    if (fix := url_fix(path, "-i", "first.png")) is not None:
        # The Python API reaches this too: its keyword named, as the request's checks name it.
        raise MotifLiteError(f"input image {path} is a URL; motif-lite reads image files only: {fix} (in Python "
                             "image= that file)")  # fmt: skip


class ImageTooLarge(MotifLiteError):
    """An image over Pillow's pixel limit, which Pillow refuses to open (`open_image`)."""


def open_image(source: Path | BinaryIO, name: str) -> PIL.Image.Image:
    """`PIL.Image.open` for an image a user gave (a file, or an upload's bytes in a `BytesIO`), without its
    DecompressionBombWarning: above 89 megapixels Pillow warns of a "decompression bomb DOS attack", which reads as an
    alarm about a large photo the user chose (108-megapixel phone cameras exist); the image is read as given. Above
    179 megapixels Pillow refuses it: `ImageTooLarge`, with what to do, naming the image as `name`."""
    if not hasattr(source, "read"):
        with open(source, "rb") as file:
            head = file.read(16)
    else:
        head = source.read(16)
        source.seek(-len(head), 1)
    if model_file_kind(head) is not None:  # Pillow may take one for a BMP of a wrong depth: `not_an_image` names it
        raise PIL.UnidentifiedImageError(f"cannot identify image file {name}")
    with WARNINGS_STATE, warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", CORRUPT_EXIF.pattern, UserWarning)  # a JPEG's, read for its DPI: a note
        try:
            return PIL.Image.open(source)
        except PIL.Image.DecompressionBombError:
            raise ImageTooLarge(_too_large_message(name)) from None


def _too_large_message(name: str) -> str:
    """The error for an image over Pillow's limit (twice `PIL.Image.MAX_IMAGE_PIXELS`, 179 megapixels; a
    200-megapixel phone photo), with the fix: Pillow refuses such an image when it opens the file."""
    limit = 2 * PIL.Image.MAX_IMAGE_PIXELS / 1e6
    return (
        f"{name} has more than {limit:.0f} megapixels, more than Pillow reads (its guard against decompression "
        "bombs); save a smaller copy first (a few thousand pixels a side is plenty for a video frame) and use that"
    )
