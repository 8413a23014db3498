"""Why a file given as an image is not read, with what to do, from Pillow's error and the file's first bytes: a
damaged or cut-short file, a TIFF layout or a drawing Pillow does not read alone, a camera RAW, JPEG XL, HEIF or
AVIF photo, a video, a model file, a web page. For an input image and for a server's upload alike."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import PIL.features

from motif_lite.errors import Audience
from motif_lite.io.file_kinds import ftyp_kind, is_video, is_web_page, text_start
from motif_lite.io.latents import latents_given_as
from motif_lite.shell_syntax import quoted

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


def cut_short(head: bytes, path: Path) -> str | None:
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
    if model_file_kind(head) == "safetensors" and path is not None and (saved := latents_given_as(path, "an image")):
        return saved
    if (kind := model_file_kind(head)) is not None:
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


def model_file_kind(head: bytes) -> str | None:
    """ "GGUF" or "safetensors" when the first bytes are those of such a model file, a common slip for -i among the
    model's files: GGUF starts with its magic, safetensors with its header's length (8 bytes, little-endian), then
    the header's JSON object."""
    if head.startswith(b"GGUF"):
        return "GGUF"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100 * 2**20:
        return "safetensors"
    return None
