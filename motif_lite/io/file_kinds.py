"""What a file holds, told from its first bytes (or its name's suffix), for errors about a file of the wrong kind
given where weights or latents belong: a failed download saves a web page or an error message under the name it was
asked for (a sign-in page of a model site, an API's JSON error), and an image or video lands in the wrong flag."""

from __future__ import annotations

from pathlib import Path

HEAD_BYTES = 64  # enough for every signature below and the first words of a text
MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"  # .mkv and .webm begin with the EBML header's ID
GGUF_MAGIC = b"GGUF"
# Weights saved with torch.save (other tools' checkpoints): not read, since unpickling one may run its code.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Image files by their names (-i's first frame, or a file given where another belongs); a .gif or .webp may
# also be an animation, which is a video to the readers that tell the two apart.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif")
_IMAGES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}
# ISO base media files (MP4, MOV, HEIF, AVIF) say what they hold in the brand after "ftyp" at byte 4.
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
AVIF_BRANDS = {b"avif", b"avis"}
_PHOTOS = {"HEIF": "a HEIF (HEIC) image", "AVIF": "an AVIF image"}


def has_extension(path: str | Path, *extensions: str) -> bool:
    """Whether the name of `path` ends in one of `extensions` (".safetensors", ".index.json"), in any case: a file
    saved as T.SAFETENSORS (as some Windows tools and cameras name files) is still a .safetensors file."""
    return Path(path).name.lower().endswith(extensions)


def ftyp_kind(head: bytes) -> str | None:
    """What an ISO base media file whose first bytes are `head` holds, from its brand: "HEIF" (a phone's HEIC photo),
    "AVIF", else "video" (MP4, MOV); None when `head` is no such file."""
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    return "HEIF" if brand in HEIF_BRANDS else "AVIF" if brand in AVIF_BRANDS else "video"


def is_video(head: bytes) -> bool:
    """Whether a file whose first bytes are `head` is a video: MP4/MOV (`ftyp_kind`), Matroska/WebM."""
    return ftyp_kind(head) == "video" or head.startswith(MATROSKA_MAGIC)


def is_web_page(head: bytes) -> bool:
    """Whether a file whose first bytes are `head` is HTML: what a download that failed or met a sign-in page
    saved under the name it asked for."""
    return head.lstrip().lower().startswith((b"<!doctype html", b"<html"))


def text_start(head: bytes) -> str | None:
    """The first words of `head` (a file's first bytes) when it is text, UTF-8 without control characters, else
    None."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut where the bytes end
            return None
        text = head[: exc.start].decode("utf-8")
    if not text.strip() or not all(char.isprintable() or char in "\t\r\n" for char in text):
        return None
    return text.strip().splitlines()[0][:40]


def other_kind(head: bytes) -> str | None:
    """What a file whose first bytes are `head` is, when it is something known that holds no weights ("a web page
    (HTML): ..."), else None."""
    if is_web_page(head):
        return ("a web page (HTML), not weights (a download that saved an error or a sign-in page instead of the "
                "file? open it to see)")  # fmt: skip
    for magic, kind in _IMAGES.items():
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if (photo := _PHOTOS.get(ftyp_kind(head))) is not None:
        return photo
    if is_video(head):
        return "a video"
    if (words := text_start(head)) is not None:
        return (f"text, not weights (it begins {words!r}; a download that saved an error message instead of the "
                "file?)")  # fmt: skip
    return None


def starts_as_gguf(path: Path) -> bool:
    """Whether the file at `path` starts with GGUF's magic bytes (False when it cannot be read)."""
    try:
        with path.open("rb") as file:
            return file.read(len(GGUF_MAGIC)) == GGUF_MAGIC
    except OSError:
        return False


def file_kind(path: str | Path) -> str | None:
    """`other_kind` of the file at `path`; None when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return other_kind(file.read(HEAD_BYTES))
    except OSError:
        return None
