"""Input images for image-to-video: loading, with notes on what it changed and the reason a file is no image it
reads (also for the server's uploads: `open_image`, `not_an_image`), and the reference's VAE preprocessing."""

from __future__ import annotations

import contextlib
import hashlib
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import PIL.ExifTags
import PIL.features
import PIL.Image
import PIL.ImageOps
import torch

from motif_lite.errors import Audience, ConfigError, MotifLiteError
from motif_lite.io.clip import last_frame_file
from motif_lite.io.file_kinds import IMAGE_SUFFIXES, ftyp_kind, is_video, is_web_page, text_start
from motif_lite.io.latents import latents_given_as
from motif_lite.io.rgb import to_rgb8
from motif_lite.io.staging import FRAME_PATTERN, is_frame_sequence
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


IN_MEMORY = "a PIL image, a numpy array or a torch tensor"


def is_in_memory(image: object) -> bool:
    """Whether `image` is a first frame made in memory (a PIL image, a numpy array, a torch tensor), as diffusers'
    pipelines take them, rather than the path of a file."""
    return isinstance(image, PIL.Image.Image | np.ndarray | torch.Tensor)


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


def image_from_memory(image: PIL.Image.Image | np.ndarray | torch.Tensor) -> tuple[PIL.Image.Image, list[str]]:
    """A first frame made in memory as the RGB image written for it, with `read_image`'s notes, as diffusers' image
    processors read one: a PIL image as it is (made RGB); an array or a tensor channels last ([H, W, 3]) or first
    ([3, H, W]), or a grayscale one (1 channel, or none: [H, W]), batched as [1, ...] or not, uint8 (0..255) or
    floats (0..1, bf16 included). What cannot be such an image is a `MotifLiteError` that says what it got."""
    if isinstance(image, PIL.Image.Image):
        notes = _stored_turned_notes(image) + _transparency_notes(image) + _print_colour_notes(image)
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
        with _pillows_warnings() as said, open_image(path, f"input image {path}") as image:
            notes = _transparency_notes(image) + _print_colour_notes(image)
            if (frames := _frame_count(image)) > 1:  # an animated GIF, WebP or PNG, a multi-page TIFF, an MPO
                notes.append(_frames_note(image.format, frames))
            image.load()  # every pixel, before the file is closed
            # Pillow's exif_transpose copies an image it does not turn: a 95-megapixel photo's 300 MB once more.
            orientation, exif_damaged = _orientation(image)
            upright = PIL.ImageOps.exif_transpose(image) if orientation in TURNS else image
            notes += _orientation_notes(orientation, image.size, upright.size)
            exif_note = _damaged_exif_note(orientation)
            notes += [exif_note] if exif_damaged else []
            rgb = to_rgb8(upright)
        return rgb, list(dict.fromkeys(notes + _pillow_notes(said, exif_note)))  # once each, in order
    except PIL.UnidentifiedImageError as exc:
        with path.open("rb") as file:
            head = file.read(1024)
        why = not_an_image(head, path, audience) or _cut_short(head, path)
        raise MotifLiteError(f"cannot read image {path}: {why or exc}") from exc
    except OSError as exc:
        head = b""
        with contextlib.suppress(OSError), path.open("rb") as file:
            head = file.read(64)
        raise MotifLiteError(f"cannot read image {path}: {undecoded(exc, head)}") from exc
    except ValueError as exc:
        raise MotifLiteError(f"cannot read image {path}: {exc}") from exc


DAMAGED = (
    "the file is damaged or cut short (an interrupted download or copy?): save or copy the image again, then give it"
)
# Pillow's errors for a drawing it identifies but draws only with a program or system part this machine lacks: no
# sign of a damaged file, nor something copying it again would mend.
NEEDS_MORE_THAN_PILLOW = {
    "Unable to locate Ghostscript": (
        "it is an EPS (PostScript) drawing, which Pillow draws only with Ghostscript's gs command, not found here: "
        "install Ghostscript (e.g. apt install ghostscript, brew install ghostscript), or export it as PNG at the "
        "video's size first"
    ),
    "cannot find loader for this WMF file": (
        "it is a Windows metafile (WMF/EMF) drawing, which Pillow draws only on Windows: export it as PNG at the "
        "video's size first"
    ),
}


def undecoded(exc: OSError, head: bytes) -> str:
    """Why Pillow opened an image file (an input image, or a server's upload) but could not read its pixels
    (`exc`), with what to do; `head`: the file's first bytes. Pillow's decoding errors ("image file is truncated",
    "Truncated File Read") are OSErrors without an errno: a damaged file, unless Pillow says it lacks a helper (an
    EPS, a WMF), or the file is a camera's RAW photo (a CR2 opens as a TIFF); the system's errors (permission
    denied, ...) have an errno and say enough."""
    if exc.errno is not None:
        return str(exc)
    if (lacking := next((why for said, why in NEEDS_MORE_THAN_PILLOW.items() if said in str(exc)), None)) is not None:
        return lacking
    if (raw := _camera_raw(head)) is not None:
        return raw
    return f"{exc}; {DAMAGED}"


# The first bytes of the formats a first frame usually comes in: a file that starts as one of them but that Pillow
# cannot identify is that format cut short, not some other kind of file.
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"II*\x00": "TIFF",
                    b"MM\x00*": "TIFF"}  # fmt: skip


def _cut_short(head: bytes, path: Path) -> str | None:
    """Why a file that begins as a PNG, JPEG, GIF, TIFF or WebP is not read (Pillow said only "cannot identify image
    file"), or None. A whole TIFF may hold samples Pillow does not read (`_tiff_layout_unread`): not damage."""
    kind = next((kind for magic, kind in IMAGE_SIGNATURES.items() if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "WebP"
    if kind == "TIFF" and (layout := _tiff_layout_unread(path)) is not None:
        return layout
    return f"it begins as a {kind} image, but {DAMAGED}" if kind else None


TIFF_SAMPLE_FORMATS = {1: "integer", 2: "signed integer", 3: "float"}  # tag 339's values
TIFF_CHANNELS = {1: "grayscale", 2: "grayscale and alpha", 3: "RGB", 4: "RGBA or CMYK"}  # by samples per pixel


def _tiff_layout_unread(path: Path) -> str | None:
    """Why a TIFF whose first directory (IFD) is whole is not read, from its tags: Pillow does not read some sample
    layouts (32-bit float RGB, as renderers and HDR exports write it; 64-bit floats), and neither does the reference.
    None where the directory lies past the file's end, or cannot be read: the file is cut short."""
    try:
        with path.open("rb") as file:
            tags = _tiff_first_directory(file, (258, 277, 339))  # bits per sample, samples per pixel, sample format
    except (OSError, struct.error):  # a directory past the end, or cut inside
        return None
    bits, samples, sample_format = tags.get(258, 1), tags.get(277, 1), tags.get(339, 1)
    kind = TIFF_SAMPLE_FORMATS.get(sample_format, f"format-{sample_format}")
    channels = TIFF_CHANNELS.get(samples, f"{samples}-channel")
    if sample_format in (1, 2) and bits in (1, 2, 4, 8, 16):  # samples Pillow reads: stored in a way it does not
        return (
            f"it is a TIFF of {bits}-bit {channels} samples stored in a way Pillow does not read (a compression or "
            "layout it lacks): save it again as PNG, or as an uncompressed TIFF, first"
        )
    return (
        f"it is a TIFF of {bits}-bit {kind} {channels} samples, a layout Pillow does not read (nor the reference "
        f"pipeline): save it as an 8- or 16-bit PNG or TIFF first (ImageMagick: magick {quoted(path)} -depth 16 "
        f"{quoted(path.stem + '.png')})"
    )


def _tiff_first_directory(file: BinaryIO, wanted: tuple[int, ...]) -> dict[int, int]:
    """The first value of each `wanted` tag (SHORT or LONG) of a TIFF's first directory. `struct.error` where the
    directory, or a value it points to, lies past the file's end."""
    header = file.read(8)
    order = "<" if header[:2] == b"II" else ">"
    (directory_at,) = struct.unpack(order + "I", header[4:8])
    file.seek(directory_at)
    (count,) = struct.unpack(order + "H", file.read(2))
    entries = file.read(12 * count + 4)  # and the next directory's offset, which ends it
    if len(entries) < 12 * count + 4:
        raise struct.error("the first directory is cut short")
    values = {}
    for at in range(0, 12 * count, 12):
        tag, kind, number, value = struct.unpack(order + "HHI4s", entries[at : at + 12])
        if tag not in wanted or kind not in (3, 4):
            continue
        size = 2 if kind == 3 else 4
        if size * number > 4:  # the values lie elsewhere, at the offset given
            file.seek(struct.unpack(order + "I", value)[0])
            value = file.read(size)
        values[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:size])[0]
    return values


def upright_size(path: str | Path) -> tuple[int, int]:
    """The (width, height) a readable image is used at, upright as its EXIF orientation says (5 to 8 turn it a
    quarter), from its header alone: `read_image` decodes every pixel, which a huge photo makes slow."""
    with WARNINGS_STATE, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=PILLOW)  # `read_image` notes Pillow's
        with open_image(user_path(path), f"input image {path}") as image:
            width, height = image.size
            quarter_turn = _orientation(image)[0] in range(5, 9)
    return (height, width) if quarter_turn else (width, height)


# Pillow's warnings can only be caught through the process's warnings state: every block here that changes it
# holds log_filters.WARNINGS_STATE, as the other modules' blocks do, so that blocks of two threads take turns.
PILLOW = r"PIL\."  # the modules of Pillow's warnings, for a filter


@contextlib.contextmanager
def _pillows_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Pillow's UserWarnings given inside (about the image file read), recorded in the list it yields, whatever the
    host's filters say of them. Other warnings are left to the host's filters (only Pillow's are let through here),
    and those that pass are shown once the block ends, as they would have been: not recorded for good."""
    with WARNINGS_STATE:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.filterwarnings("always", category=UserWarning, module=PILLOW)
                yield caught
        finally:  # also when reading failed: the others are not lost
            others = [warning for warning in caught if not _is_pillows(warning)]
            caught[:] = [warning for warning in caught if _is_pillows(warning)]
            for warning in others:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno,
                                     warning.file, warning.line)  # fmt: skip


def _is_pillows(warning: warnings.WarningMessage) -> bool:
    """Whether a recorded warning is one of Pillow's UserWarnings (given by Pillow's code)."""
    return issubclass(warning.category, UserWarning) and "PIL" in Path(warning.filename).parts


# Pillow's warnings about an image file's metadata (its EXIF data, a TIFF's tags), not its pixels.
METADATA_WARNING = re.compile(r"exif|tag|metadata", re.IGNORECASE)


def _pillow_notes(caught: list[warnings.WarningMessage], exif_note: str) -> list[str]:
    """Notes for the warnings Pillow gave while reading an image file ("Image appears to be a malformed MPO file",
    "Tag data larger than file. Skipping tag 274"), which a run printed as warnings pointing into Pillow's code: the
    image is used as Pillow reads it, as the reference uses it (`_pillows_warnings` records Pillow's only)."""
    notes = []
    for warning in caught:
        if METADATA_WARNING.search(str(warning.message)):
            notes.append(exif_note)
        else:
            notes.append(f"Pillow says of the image file: {str(warning.message).strip()}; it is used as Pillow reads "
                         "it, as the reference pipeline uses it")  # fmt: skip
    return notes


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


def not_an_image(head: bytes, path: Path | None, audience: Audience = Audience.RUN_OR_PYTHON) -> str | None:
    """Why a file Pillow cannot identify is no image it reads, from its first bytes, with what to do: a video (to go
    on from one, its last frame is what image-to-video takes), a phone's HEIF photo, AVIF without Pillow's AVIF
    support, a vector or PDF drawing. None when the bytes say nothing known. `path`: the file, named in the commands
    it gives (None: an upload, named by placeholders). `audience`: verify's user is not told to go on from a video
    with --extend, which verify lacks."""
    name = "FILE" if path is None else quoted(path)
    stem = "frame" if path is None else path.stem
    container = ftyp_kind(head)
    if container == "HEIF":
        return (
            "it is a HEIF (HEIC) photo, the format phones save, which Pillow does not read: save it as JPEG or PNG "
            f"first (on a Mac: sips -s format png {name} --out {quoted(stem + '.png')})"
        )
    if container == "AVIF" and not PIL.features.check("avif"):  # with it, a damaged one: Pillow's words say more
        return (  # Pillow's wheels bring libavif from 11.3 on; a Pillow built by a distribution may lack it still
            "it is an AVIF image, which this Pillow does not read: save it as PNG or JPEG, or install a Pillow that "
            "does (its wheels from 11.3 on: pip install -U pillow)"
        )
    if container == "AVIF":
        return None
    if (unread := _camera_raw(head) or _jpeg_xl(head)) is not None:  # a CR3 is an ISO media file, as MP4 is
        return unread
    if is_video(head) or head[8:12] == b"AVI ":
        last = quoted(f"{stem}-last.png")
        if path is None:  # an upload is the server's: its field for a clip to go on from is `extend`
            extend = "to go on from the clip, send it as extend instead of input_reference; or "
        elif audience is Audience.VERIFY:  # taking the frame out is verify's one way
            extend = ""
        else:
            extend = (
                f"to go on from the clip, give --extend {name} instead of -i (in Python extend= instead of image=); or "
            )
        return (
            f"it is a video, not an image; image-to-video starts from one frame: {extend}take the one to go on "
            f"from, e.g. the last, ffmpeg -sseof -1 -i {name} -update 1 -y {last}, and give that"
        )
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "it is an SVG drawing, which is not rasterized here: export it as PNG at the video's size first"
    if head.startswith(b"%PDF"):
        return "it is a PDF: export the page as PNG or JPEG first"
    picture = "give" if path is not None else "send"
    if _model_file_kind(head) == "safetensors" and path is not None and (saved := latents_given_as(path, "an image")):
        return saved
    if (kind := _model_file_kind(head)) is not None:
        return f"it is a {kind} model file (weights), not an image: {picture} the first frame as a PNG, JPEG or WebP"
    if is_web_page(head):
        return ("it is a web page (HTML), not an image: a download that got an error or a sign-in page instead of "
                "the picture? open it to see, and download the image itself")  # fmt: skip
    if not text.startswith(b"<") and (words := text_start(head)) is not None:  # markup other than HTML: unknown
        return f"it holds text, not an image (it begins {words!r}): {picture} the first frame as a PNG, JPEG or WebP"
    return None


# The first bytes of camera RAW photos (Canon's CR2, a TIFF with "CR" at byte 8, and CR3, an ISO media file of
# brand "crx "; Fujifilm's RAF; Olympus's ORF; Panasonic's RW2), which Pillow does not develop.
CAMERA_RAW = {"CR2": (0, b"II*\x00\x10\x00\x00\x00CR"), "CR3": (4, b"ftypcrx "), "RAF": (0, b"FUJIFILMCCD-RAW"),
              "ORF": (0, (b"IIRO", b"IIRS", b"MMOR")), "RW2": (0, b"IIU\x00")}  # fmt: skip
JPEG_XL = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")  # a bare codestream, or the ISO container


def _camera_raw(head: bytes) -> str | None:
    """Why a camera's RAW photo is not read, from its first bytes, or None for another file."""
    kind = next((kind for kind, (at, magic) in CAMERA_RAW.items() if head[at:].startswith(magic)), None)
    if kind is None:
        return None
    return (
        f"it is a camera RAW photo ({kind}), which Pillow does not develop: export it as JPEG or PNG first (from the "
        "camera's software, darktable or Lightroom)"
    )


def _jpeg_xl(head: bytes) -> str | None:
    """Why a JPEG XL image is not read, from its first bytes, or None for another file."""
    if not head.startswith(JPEG_XL):
        return None
    return "it is a JPEG XL image, which Pillow does not read: save it as PNG or JPEG first (libjxl's djxl does)"


def _model_file_kind(head: bytes) -> str | None:
    """ "GGUF" or "safetensors" when the first bytes are those of such a model file, a common slip for -i among the
    model's files: GGUF starts with its magic, safetensors with its header's length (8 bytes, little-endian), then
    the header's JSON object."""
    if head.startswith(b"GGUF"):
        return "GGUF"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100 * 2**20:
        return "safetensors"
    return None


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
    if _model_file_kind(head) is not None:  # Pillow may take one for a BMP of a wrong depth: `not_an_image` names it
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


def _frames_note(image_format: str | None, frames: int) -> str:
    """The note for an image file of several frames, of which the first is used, as the reference uses it. A JPEG
    that holds more than one picture (an MPO: a camera's stereo pair, or a phone photo with its depth map or a
    preview) is a photo, not an animation: its frames are named as pictures, the first the photo itself."""
    if image_format == "MPO":
        return (
            f"the photo is an MPO, a JPEG holding {frames} pictures (a stereo pair, or a depth map or preview): the "
            "first, the photo itself, is the video's first frame"
        )
    return f"the image has {frames} frames: the first one is the video's first frame"


def _frame_count(image: PIL.Image.Image) -> int:
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


def _orientation(image: PIL.Image.Image) -> tuple[int | None, bool]:
    """The image's EXIF orientation tag (None where none is read), and whether its EXIF data is damaged (cut
    short by an editor or a transfer): Pillow then reads what it can, as it does for the reference, and warns
    "Corrupt EXIF data. Expecting to read 2 bytes but only got 0.", which a run printed as a warning pointing into
    Pillow's code (`open_image` keeps it quiet); `DAMAGED_EXIF` says it in the user's terms instead. EXIF data that
    is no EXIF at all makes Pillow raise SyntaxError for a PNG or WebP (the reference fails there; a JPEG's it
    skips): the image is used as stored, as for a JPEG, rather than the run failing over its camera notes."""
    with _pillows_warnings() as caught:
        try:
            orientation = image.getexif().get(PIL.ExifTags.Base.Orientation)
            if (stored := image.info.get("exif")) is not None:  # again: a JPEG's was parsed, quietly, on opening
                PIL.Image.Exif().load(stored)
        except (SyntaxError, ValueError, struct.error):  # Pillow's "not a TIFF file", a bad offset or size
            return None, True
    return orientation, any(CORRUPT_EXIF.match(str(warning.message)) for warning in caught)


CORRUPT_EXIF = re.compile(r"(possibly )?corrupt exif", re.IGNORECASE)  # Pillow's warnings for damaged EXIF data
DAMAGED_EXIF = (
    "the image's EXIF data (the camera's notes stored in it) is damaged: no orientation is read from it, so the "
    "image is used as stored, as the reference pipeline does; if a photo viewer shows it turned, save a turned copy"
)


def _damaged_exif_note(orientation: int | None) -> str:
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


def _orientation_notes(orientation: int | None, stored: tuple[int, int], upright: tuple[int, int]) -> list[str]:
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


def _stored_turned_notes(image: PIL.Image.Image) -> list[str]:
    """A note when a PIL image given in memory has an EXIF orientation that turns it (a phone photo opened with
    `PIL.Image.open`): its pixels are used as stored, as diffusers' pipeline uses an image given to it, whereas
    `-i` of its file (and diffusers' `load_image`) turns it upright; it was used sideways without a word."""
    orientation, _ = _orientation(image)
    if orientation not in TURNS:
        return []
    return [
        f"the image's EXIF orientation ({orientation}) says to show it turned, but an image given in memory is used "
        f"as its pixels are stored, {image.width}x{image.height}, as diffusers' pipeline uses it: give "
        "PIL.ImageOps.exif_transpose(image) for the upright photo (what its file, or diffusers' load_image, gives)"
    ]


def _transparency_notes(image: PIL.Image.Image) -> list[str]:
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


def _print_colour_notes(image: PIL.Image.Image) -> list[str]:
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
