"""The image files an image-to-video user gives `-i`, against the reference: for each format Pillow reads, the first
frame's tensor must be the one diffusers' MotifVideoImage2VideoPipeline makes of the same file loaded the way its
docs load it (`diffusers.utils.load_image`: EXIF turn, then RGB; then its `VideoProcessor`), bit for bit. The one
deliberate difference, 16-bit grayscale, is `test_io.py`'s (`test_a_16_bit_grayscale_image_keeps_its_levels`).
Files Pillow cannot read are named as what they are, with what to do, rather than called damaged."""

from __future__ import annotations

import re
import shutil
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.features
import PIL.Image
import pytest
import torch
from diffusers.utils import load_image as reference_load_image
from diffusers.video_processor import VideoProcessor

from motif_lite.errors import MotifLiteError
from motif_lite.io.image import DAMAGED, DAMAGED_EXIF, preprocess_image, read_image, upright_size

PIXELS = np.random.default_rng(7).integers(0, 256, (36, 52, 3), dtype=np.uint8)
ALPHA = np.random.default_rng(8).integers(0, 256, (36, 52), dtype=np.uint8)  # every level, 0 (clear) included


def _rgb() -> PIL.Image.Image:
    return PIL.Image.fromarray(PIXELS)


def _rgba() -> PIL.Image.Image:
    image = _rgb()
    image.putalpha(PIL.Image.fromarray(ALPHA))
    return image


def _turned(orientation: int) -> bytes:
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _png16(path: Path, channels: int) -> None:
    """A 16-bit RGB (or RGBA) PNG, which Pillow cannot write: its chunks by hand."""
    levels = np.random.default_rng(9).integers(0, 65536, (*PIXELS.shape[:2], channels)).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in levels)  # filter type 0 on each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", levels.shape[1], levels.shape[0], 16, {3: 2, 4: 6}[channels], 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _phone_photo(orientation: int) -> Callable[[Path], None]:
    """A JPEG stored as phones store one, with an EXIF tag saying how to turn (or mirror) it to show it."""
    return lambda path: _rgb().save(path, exif=_turned(orientation))


def _animation(path: Path) -> None:
    second = PIL.Image.fromarray(255 - PIXELS)
    _rgb().save(path, save_all=True, append_images=[second])


# Each file a user may give, and how it is made. The reference's pixels are whatever Pillow makes of it through
# `load_image`: alpha dropped (not composited onto black or white), palette transparency dropped with it, the
# first frame of an animation, CMYK by Pillow's plain formula, 16-bit RGB by its high byte.
FILES: dict[str, Callable[[Path], None]] = {
    "rgba.png": lambda path: _rgba().save(path),
    "la.png": lambda path: PIL.Image.merge("LA", (_rgb().convert("L"), PIL.Image.fromarray(ALPHA))).save(path),
    "palette-transparent.png": lambda path: _rgb().quantize(16).save(path, transparency=3),
    "palette-rgba.png": lambda path: _rgba().quantize(16).save(path),
    "gray.png": lambda path: _rgb().convert("L").save(path),
    "bilevel.png": lambda path: _rgb().convert("1").save(path),
    "rgb16.png": lambda path: _png16(path, 3),
    "rgba16.png": lambda path: _png16(path, 4),
    "one-pixel.png": lambda path: PIL.Image.new("RGB", (1, 1), (10, 200, 30)).save(path),
    "turned-png.png": lambda path: _rgb().save(path, exif=_turned(6)),
    "progressive.jpg": lambda path: _rgb().save(path, progressive=True),
    "cmyk.jpg": lambda path: _rgb().convert("CMYK").save(path),
    "jpeg-named.png": lambda path: _rgb().save(path, format="JPEG"),  # the wrong extension: read by its bytes
    "lossy.webp": lambda path: _rgb().save(path, quality=60),
    "lossless.webp": lambda path: _rgb().save(path, lossless=True),
    "cutout.webp": lambda path: _rgba().save(path, lossless=True),
    "turned.webp": lambda path: _rgb().save(path, exif=_turned(8)),
    "animated.webp": _animation,
    "animated.gif": _animation,
    "animated.png": _animation,  # APNG
    "transparent.gif": lambda path: _rgb().quantize(16).save(path, transparency=3),
    "rgb.tiff": lambda path: _rgb().save(path),
    "cmyk.tiff": lambda path: _rgb().convert("CMYK").save(path),
    "rgba.tiff": lambda path: _rgba().save(path),
    "pages.tiff": _animation,
    "lab.tiff": lambda path: _rgb().convert("LAB").save(path),
    "bitmap.bmp": lambda path: _rgb().save(path),
    **{f"phone-{turn}.jpg": _phone_photo(turn) for turn in range(1, 9)},  # each EXIF orientation
}  # fmt: skip


def _made(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    FILES[name](path)
    return path


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_first_frame_is_the_references_for_each_image_format(tmp_path, name):
    path = _made(tmp_path, name)
    image, _ = read_image(path)
    reference = reference_load_image(str(path))
    assert (image.mode, image.size) == (reference.mode, reference.size)
    assert np.array_equal(np.asarray(image), np.asarray(reference))
    # The tensor the VAE encodes, as the reference pipeline's `video_processor` makes it (its default config).
    height, width = 48, 64
    expected = VideoProcessor(vae_scale_factor=8).preprocess_video(reference, height=height, width=width)
    assert torch.equal(preprocess_image(image, height, width), expected[:, :, 0])


@pytest.mark.skipif(not PIL.features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_avif_image_is_the_references_too(tmp_path):
    _rgb().save(tmp_path / "photo.avif")
    image, reference = read_image(tmp_path / "photo.avif")[0], reference_load_image(str(tmp_path / "photo.avif"))
    assert np.array_equal(np.asarray(image), np.asarray(reference))


@pytest.mark.parametrize(("name", "said"), [("rgba.png", "transparent pixels"), ("animated.gif", "has 2 frames"),
                                            ("phone-6.jpg", "EXIF orientation (6)"), ("cmyk.jpg", "CMYK")])  # fmt: skip
def test_what_differs_from_the_file_as_viewers_show_it_is_noted(tmp_path, name, said):
    assert any(said in note for note in read_image(_made(tmp_path, name))[1])


def _eps(path: Path) -> None:
    _rgb().save(path, format="EPS")


def _wmf(path: Path) -> None:
    """A placeable Windows metafile's header (its checksum: the XOR of its first ten 16-bit words), then a record."""
    words = struct.pack("<IHhhhhHI", 0x9AC6CDD7, 0, 0, 0, 100, 100, 1440, 0)
    checksum = 0
    for (word,) in struct.iter_unpack("<H", words):
        checksum ^= word
    path.write_bytes(words + struct.pack("<H", checksum) + b"\x01\x00\x09\x00\x00\x03" + bytes(40))


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_eps, "it is an EPS (PostScript) drawing, which Pillow draws only with Ghostscript's gs command"),
        (_wmf, "it is a Windows metafile (WMF/EMF) drawing, which Pillow draws only on Windows"),
    ],
)
def test_a_drawing_pillow_needs_a_helper_for_is_not_called_damaged(tmp_path, make, said):
    # Pillow opens an EPS or WMF file, then fails to draw it without Ghostscript (or off Windows): an OSError without
    # an errno, which was reported as a damaged file to save or copy again.
    if make is _eps and shutil.which("gs") is not None:
        pytest.skip("Ghostscript is installed: Pillow draws the EPS")
    make(tmp_path / "drawing")
    with pytest.raises(MotifLiteError, match=re.escape(said)) as raised:
        read_image(tmp_path / "drawing")
    assert DAMAGED not in str(raised.value)


CANON_CR2 = b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(500)


def _cr2_pillow_opens() -> bytes:
    """A CR2's start that Pillow opens as the TIFF it is (an 8x8 gray image at IFD 16), whose pixels are not there:
    Pillow's "image file is truncated", which is no damage here but a RAW photo's data Pillow does not develop."""
    entries = [(256, 3, 1, 8), (257, 3, 1, 8), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 200),
               (277, 3, 1, 1), (278, 3, 1, 8), (279, 4, 1, 64)]  # fmt: skip
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries) + bytes(4)
    return b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(4) + ifd


CANON_CR3 = b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(500)
FUJIFILM_RAF = b"FUJIFILMCCD-RAW 0201FF383501" + bytes(500)
JPEG_XL_CODESTREAM = b"\xff\x0a\xfa\x7f\x01\x90\x08" + bytes(500)
JPEG_XL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00\x00\x00\x14ftypjxl " + bytes(500)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (CANON_CR2, "it is a camera RAW photo (CR2), which Pillow does not develop: export it as JPEG or PNG"),
        (_cr2_pillow_opens(), "it is a camera RAW photo (CR2)"),  # was "damaged or cut short"
        (CANON_CR3, "it is a camera RAW photo (CR3)"),  # an ISO media file, as an MP4 is: was "it is a video"
        (FUJIFILM_RAF, "it is a camera RAW photo (RAF)"),
        (b"IIRO\x08\x00\x00\x00" + bytes(500), "it is a camera RAW photo (ORF)"),
        (b"IIU\x00\x18\x00\x00\x00" + bytes(500), "it is a camera RAW photo (RW2)"),
        (JPEG_XL_CODESTREAM, "it is a JPEG XL image, which Pillow does not read: save it as PNG or JPEG first"),
        (JPEG_XL_CONTAINER, "it is a JPEG XL image"),
    ],
)
def test_a_photo_format_pillow_does_not_read_is_named(tmp_path, data, said):
    # Was Pillow's "cannot identify image file", and a Canon CR3 was taken for a video to go on from with --extend.
    (tmp_path / "photo").write_bytes(data)
    with pytest.raises(MotifLiteError, match=re.escape(said)) as raised:
        read_image(tmp_path / "photo")
    assert "video" not in str(raised.value)


@pytest.mark.parametrize("name", ["palette-rgba.png", "palette-transparent.png", "transparent.gif"])
def test_a_palette_with_transparency_is_read_without_pillows_warning(tmp_path, name):
    # Pillow's convert("RGB") warned "Palette images with Transparency expressed in bytes should be converted to RGBA
    # images", which a run printed as a warning its user could do nothing about; the pixels stay the reference's
    # (`test_the_first_frame_is_the_references_for_each_image_format`).
    # Pillow's warnings inside a read become notes whatever the filters: the fix shows as no "Pillow says" note.
    path = _made(tmp_path, name)
    image, notes = read_image(path)
    assert any("transparent pixels" in note for note in notes)
    assert not any(note.startswith("Pillow says") for note in notes), notes
    assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))


CUT_SHORT_EXIF = b"II*\x00\xff\xff\x00\x00"  # a TIFF header whose first directory lies past the end
NOT_EXIF = b"\x13\x37" * 20  # no TIFF header at all


def _with_exif(path: Path, exif: bytes) -> None:
    """A photo whose EXIF block (APP1 in a JPEG) holds `exif`, as an editor or a transfer that cut it leaves it."""
    if path.suffix == ".jpg":
        _rgb().save(path)
        data, payload = path.read_bytes(), b"Exif\x00\x00" + exif
        path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:])
    else:
        _rgb().save(path, exif=exif)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_damaged_exif_data_is_a_note_not_pillows_warning(tmp_path, suffix):
    # Pillow warned "Corrupt EXIF data. Expecting to read 2 bytes but only got 0.", which a run printed as a warning
    # pointing into Pillow's code; the image is used as stored, as the reference uses it.
    path = tmp_path / f"photo{suffix}"
    _with_exif(path, CUT_SHORT_EXIF)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, notes = read_image(path)
        assert upright_size(path) == image.size
    assert DAMAGED_EXIF in notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference's own warning
        assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_exif_data_that_is_no_exif_leaves_the_image_as_stored(tmp_path, suffix):
    # A PNG's or WebP's was Pillow's SyntaxError "not a TIFF file" out of a run, a traceback (the reference fails
    # there too); a JPEG's Pillow skips, and the reference uses that image as stored: so are all three.
    path = tmp_path / f"photo{suffix}"
    _with_exif(path, NOT_EXIF)
    image, notes = read_image(path)
    assert DAMAGED_EXIF in notes and upright_size(path) == image.size == PIXELS.shape[1::-1]
    with PIL.Image.open(path) as stored:
        assert np.array_equal(np.asarray(image), np.asarray(stored.convert("RGB")))


def _second_page_without_a_width(path: Path) -> None:
    """A two-page TIFF whose second page lost its width tag (256), as a damaged scan leaves it: its first page,
    which the reference reads, is whole."""
    _animation(path)  # two pages
    data = bytearray(path.read_bytes())
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * count)[0]
    for entry in range(struct.unpack_from("<H", data, second)[0]):
        at = second + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == 256:
            struct.pack_into("<H", data, at, 65000)  # a tag no reader knows
    path.write_bytes(bytes(data))


def test_a_broken_later_page_leaves_the_first_the_references(tmp_path):
    # Counting the pages for the note seeks through them: Pillow's TypeError "Missing dimensions" for the second came
    # out of a run as a traceback, where the reference, which never counts, reads the first page.
    path = tmp_path / "scan.tiff"
    _second_page_without_a_width(path)
    image, notes = read_image(path)
    assert notes == [] and upright_size(path) == image.size
    assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))


def test_an_animated_gif_cut_short_in_a_later_frame_gives_its_first_as_the_reference_does(tmp_path):
    # An interrupted download of an animation: counting its frames for the note met the second frame's header cut
    # short, and Pillow's IndexError came out of a run as a traceback; the reference reads the whole first frame.
    whole = tmp_path / "whole.gif"
    _rgb().save(whole, save_all=True, append_images=[PIL.Image.fromarray(255 - PIXELS)], duration=100)
    data = whole.read_bytes()
    second_frame = data.index(b"\x21\xf9\x04", data.index(b"\x21\xf9\x04") + 1)  # its graphic control extension
    path = tmp_path / "cut.gif"
    path.write_bytes(data[: second_frame + 3])  # its data missing
    image, _ = read_image(path)
    assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))
    assert np.array_equal(np.asarray(image), np.asarray(read_image(whole)[0]))


def test_a_jpeg_of_several_pictures_is_noted_as_a_photo_not_an_animation(tmp_path):
    # A camera's or phone's MPO (a JPEG with a second picture: the other eye, a depth map) was noted as "the image has
    # 2 frames", as if it were an animation; its first picture is the photo, as the reference reads it.
    path = tmp_path / "DSCF0001.JPG"
    _rgb().save(path, "MPO", save_all=True, append_images=[PIL.Image.fromarray(255 - PIXELS)])
    image, notes = read_image(path)
    assert notes == [
        "the photo is an MPO, a JPEG holding 2 pictures (a stereo pair, or a depth map or preview): the first, the "
        "photo itself, is the video's first frame"
    ]
    assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))


def _orientation_past_the_end(path: Path) -> None:
    """A JPEG whose EXIF orientation entry claims 1000 values, which would lie past the end of its EXIF block."""
    exif = bytearray(_turned(6))  # big-endian ("MM"): the entry is tag 0x0112, type 3 (SHORT), then its count
    struct.pack_into(">I", exif, exif.index(b"\x01\x12\x00\x03") + 4, 1000)
    _rgb().save(path, exif=bytes(exif))


def _malformed_mpo(path: Path) -> None:
    """An MPO whose picture index (its APP2 "MPF" block) has no valid byte order: Pillow reads it as a plain JPEG."""
    _rgb().save(path, "MPO", save_all=True, append_images=[PIL.Image.fromarray(255 - PIXELS)])
    data = path.read_bytes()
    at = data.index(b"MPF\x00") + 4
    path.write_bytes(data[:at] + b"XX" + data[at + 2 :])


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_orientation_past_the_end, DAMAGED_EXIF),
        (_malformed_mpo, "Pillow says of the image file: Image appears to be a malformed MPO file, it will be "
                         "interpreted as a base JPEG file; it is used as Pillow reads it, as the reference pipeline "
                         "uses it"),
    ],
)  # fmt: skip
def test_pillows_warnings_on_reading_a_file_are_notes(tmp_path, make, said):
    # Pillow's "Tag data larger than file. Skipping tag 274" and "Image appears to be a malformed MPO file" were
    # printed as warnings pointing into Pillow's code; the image is the reference's all the same.
    path = tmp_path / "photo.jpg"
    make(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, notes = read_image(path)
        assert upright_size(path) == image.size
    assert said in notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference's own warnings
        assert np.array_equal(np.asarray(image), np.asarray(reference_load_image(str(path))))


def test_an_upload_checked_while_the_worker_reads_an_image_leaves_the_warnings_state_as_it_was(tmp_path, monkeypatch):
    # The server checks an upload (`open_image`, an HTTP thread) while its worker reads a job's image (`read_image`).
    # Forced order: the upload's open begins inside the worker's read and ends after it. Each restored on exit what
    # it found on entry, so the upload's put back the worker's "always" and recorder: every later warning of the
    # process was swallowed.
    import io
    import threading

    import motif_lite.io.image as image_module

    path = tmp_path / "frame.png"
    _rgb().save(path)
    upload = io.BytesIO(path.read_bytes())
    worker_in, worker_go, upload_in, upload_go = (threading.Event() for _ in range(4))
    real_to_rgb8, real_open = image_module.to_rgb8, PIL.Image.open

    def slow_to_rgb8(image):  # the worker, decoding a large photo
        worker_in.set()
        worker_go.wait(10)
        return real_to_rgb8(image)

    def slow_open(*args, **kwargs):  # the HTTP thread, opening the upload's header
        if threading.current_thread().name == "http":
            upload_in.set()
            upload_go.wait(10)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(image_module, "to_rgb8", slow_to_rgb8)
    monkeypatch.setattr(PIL.Image, "open", slow_open)
    with warnings.catch_warnings():
        before = (list(warnings.filters), warnings.showwarning)
        worker = threading.Thread(target=read_image, args=(path,), name="worker")
        http = threading.Thread(target=lambda: image_module.open_image(upload, "input_reference").close(), name="http")
        worker.start()
        assert worker_in.wait(10)
        http.start()
        upload_in.wait(0.5)  # set unless the upload waits for the worker's read to end
        worker_go.set()
        worker.join(10)
        upload_go.set()
        http.join(10)
        assert (list(warnings.filters), warnings.showwarning) == before, warnings.filters[:3]
        with pytest.warns(UserWarning, match="still shown"):
            warnings.warn("still shown", UserWarning, stacklevel=1)


def test_other_codes_warnings_during_a_read_follow_the_hosts_filters(tmp_path, monkeypatch):
    # They were recorded under "always", then given again with warnings.warn_explicit from their file's name: a host's
    # filter by module (its own module's name) no longer matched, and each read showed them again.
    import motif_lite.io.image as image_module

    path = tmp_path / "frame.png"
    _rgb().save(path)
    real = image_module.print_colour_notes

    def noisy(image):  # stands for any warning not Pillow's given during a read (numpy's, another thread's)
        warnings.warn("not Pillow's", RuntimeWarning, stacklevel=1)  # given here
        return real(image)

    monkeypatch.setattr(image_module, "print_colour_notes", noisy)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module=re.escape(__name__) + "$")  # the host silences its own module
        read_image(path)
        assert not shown, [str(warning.message) for warning in shown]
        warnings.filterwarnings("always", module=re.escape(__name__) + "$")
        read_image(path)
    assert [str(warning.message) for warning in shown] == ["not Pillow's"]
    assert shown[0].filename == __file__  # where it was given, not inside io/image.py


def test_exif_damaged_after_its_orientation_turns_the_photo_and_says_so(tmp_path):
    # Orientation 6, then a tag whose data lies past the file's end (Pillow: "Tag data larger than file. Skipping tag
    # 270"). The photo was turned, as the reference turns it, yet noted "no orientation is read from it, so the image
    # is used as stored".
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">HHII", 0x010E, 2, 1000, 5000)
    exif = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + struct.pack(">I", 0)
    path = tmp_path / "photo.jpg"
    _rgb().save(path, exif=b"Exif\x00\x00" + exif)
    image, notes = read_image(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference's own warning
        reference = reference_load_image(str(path))
    assert image.size == reference.size == upright_size(path) == PIXELS.shape[:2]  # turned a quarter
    assert np.array_equal(np.asarray(image), np.asarray(reference))
    assert DAMAGED_EXIF not in notes, notes
    assert any("damaged in part: its orientation (6) was read" in note and "used upright" in note for note in notes)


def _float_tiff(path: Path, pixels: np.ndarray, order: str = "<", compression: int = 1) -> None:
    """A whole TIFF of `pixels`' samples ([H, W], [H, W, 2] or [H, W, 3]; float as numpy-based tools and renderers
    write them, or integer), little-endian ("<") or big-endian (">"), as `compression` says its one strip is
    stored: the directory before it."""
    height, width = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    bits, data = pixels.dtype.itemsize * 8, pixels.astype(pixels.dtype.newbyteorder(order)).tobytes()
    sample_format = {"u": 1, "i": 2, "f": 3}[pixels.dtype.kind]
    tags = [(256, width), (257, height), (258, bits), (259, compression), (262, 2 if samples == 3 else 1), (273, 0),
            (277, samples), (278, height), (279, len(data)), (284, 1), (339, sample_format)]  # fmt: skip
    extra_at = 8 + 2 + 12 * len(tags) + 4  # per-sample values (3 SHORTs do not fit in an entry) after the directory
    data_at = extra_at + 4 * samples
    entries = b""
    for tag, value in tags:
        if tag in (258, 339) and samples > 2:
            entries += struct.pack(order + "HHII", tag, 3, samples, extra_at + (0 if tag == 258 else 2 * samples))
        elif tag in (258, 339) and samples == 2:  # two SHORTs fill the entry's 4 bytes: held there
            entries += struct.pack(order + "HHIHH", tag, 3, 2, value, value)
        else:
            entries += struct.pack(order + "HHIHH", tag, 3, 1, data_at if tag == 273 else value, 0)
    per_sample = struct.pack(f"{order}{samples}H", *[bits] * samples) + struct.pack(
        f"{order}{samples}H", *[sample_format] * samples
    )
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    head = magic + struct.pack(order + "IH", 8, len(tags)) + entries + b"\x00" * 4
    path.write_bytes(head + (per_sample if samples > 2 else b"\x00" * 4 * samples) + data)


@pytest.mark.parametrize(
    ("dtype", "shape", "said"),
    [(np.float32, (8, 8, 3), "32-bit float RGB"), (np.float64, (8, 8), "64-bit float grayscale")],
)
def test_a_whole_float_tiff_pillow_does_not_read_is_named_not_called_damaged(tmp_path, dtype, shape, said):
    # Since TIFF joined the formats a cut-short file is told by, these whole files were "damaged or cut short: save
    # or copy the image again", which cannot help.
    path = tmp_path / "render.tif"
    _float_tiff(path, np.random.default_rng(0).random(shape).astype(dtype))
    with pytest.raises(PIL.UnidentifiedImageError):
        reference_load_image(str(path))  # the reference fails on it too
    with pytest.raises(
        MotifLiteError, match=re.escape(f"it is a TIFF of {said} samples, a layout Pillow does not read")
    ) as raised:
        read_image(path)
    assert "damaged" not in str(raised.value) and "-depth 16 render.png" in str(raised.value)
    # The same file cut inside its first directory is cut short.
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(MotifLiteError, match=re.escape(DAMAGED)):
        read_image(path)


@pytest.mark.parametrize("make", [_eps, _wmf, lambda path: path.write_bytes(_cr2_pillow_opens())])
def test_the_servers_upload_check_names_a_file_pillow_opens_but_cannot_draw_as_run_does(tmp_path, make):
    # The server gave Pillow's own words ("Unable to locate Ghostscript on paths", "cannot find loader for this WMF
    # file", "image file is truncated") where `run -i` names the kind of file and what to do.
    from motif_lite.server.schema import ApiError, check_image

    path = tmp_path / "drawing"
    make(path)
    if path.read_bytes().startswith(b"%!PS") and shutil.which("gs") is not None:
        pytest.skip("Ghostscript is installed: Pillow draws the EPS")
    with pytest.raises(MotifLiteError) as by_run:
        read_image(path)
    why = str(by_run.value).split(f"cannot read image {path}: ", 1)[1]
    with pytest.raises(ApiError) as by_server:
        check_image(path.read_bytes(), 2**20, 10**6)
    assert f"input_reference is not a readable image ({why})" in str(by_server.value), str(by_server.value)
    assert DAMAGED not in why and "Pillow" in why


def test_a_whole_tiff_of_a_compression_pillow_lacks_is_not_called_damaged(tmp_path):
    # 8-bit RGB samples, compressed as JPEG 2000 (34712), which Pillow's TIFF reader does not decode: it cannot
    # identify the file, which was "damaged or cut short: save or copy the image again".
    path = tmp_path / "scan.tif"
    _rgb().save(path)
    data = bytearray(path.read_bytes())
    (directory_at,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[directory_at : directory_at + 2])
    for entry in range(directory_at + 2, directory_at + 2 + 12 * count, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 259:  # Compression, a SHORT held in the entry
            data[entry + 8 : entry + 10] = struct.pack("<H", 34712)
    path.write_bytes(bytes(data))
    with pytest.raises(MotifLiteError, match="it is a TIFF of 8-bit RGB samples stored in a way Pillow does not read"):
        read_image(path)


def test_a_tiff_cut_short_whose_directory_follows_its_header_is_not_called_a_raw_photo(tmp_path):
    # A CR2 is a TIFF whose first directory is at byte 16, with "CR" at byte 8; a plain TIFF may put its directory
    # there too. Cut short, it is damaged, not a RAW photo to export.
    path = tmp_path / "scan.tif"
    path.write_bytes(_cr2_pillow_opens().replace(b"CR\x02\x00", bytes(4), 1))
    with pytest.raises(MotifLiteError, match=re.escape(DAMAGED)) as raised:
        read_image(path)
    assert "RAW" not in str(raised.value) and "image file is truncated" in str(raised.value)  # Pillow's words too


@pytest.mark.parametrize(
    ("order", "shape", "said"),
    [(">", (8, 8, 3), "32-bit float RGB"), ("<", (8, 8, 2), "32-bit float grayscale and alpha")],
)
def test_a_whole_float_tiff_is_named_from_its_own_byte_order_and_values_held_in_its_entries(
    tmp_path, order, shape, said
):
    # A big-endian ("MM") TIFF's directory read as little-endian lies past the end: it was called cut short. Two
    # samples' SHORTs fit in their directory entry (4 bytes), not at an offset elsewhere.
    path = tmp_path / "render.tif"
    _float_tiff(path, np.random.default_rng(0).random(shape).astype(np.float32), order)
    with pytest.raises(
        MotifLiteError, match=re.escape(f"it is a TIFF of {said} samples, a layout Pillow does not read")
    ):
        read_image(path)


def test_a_whole_tiff_of_signed_samples_pillow_reads_but_not_so_compressed_is_not_told_to_change_its_depth(tmp_path):
    # 16-bit signed integers Pillow reads (I;16S): only the compression (JPEG 2000) is what it lacks, so the advice
    # is to save it uncompressed, not to give it another bit depth.
    path = tmp_path / "scan.tif"
    _float_tiff(path, np.arange(64, dtype=np.int16).reshape(8, 8), compression=34712)
    with pytest.raises(
        MotifLiteError, match="it is a TIFF of 16-bit grayscale samples stored in a way Pillow does not"
    ):
        read_image(path)


def test_a_riff_file_of_another_kind_is_not_called_a_webp_cut_short(tmp_path):
    # A sound (RIFF, then WAVE at byte 8) given as the first frame: a WebP is RIFF with WEBP there, and this is none.
    sound = tmp_path / "take.wav"
    sound.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    with pytest.raises(MotifLiteError, match="cannot read image") as refused:
        read_image(sound)
    assert "WebP" not in str(refused.value) and "damaged" not in str(refused.value), str(refused.value)


def test_a_tiff_cut_after_its_first_directorys_entries_is_called_cut_short(tmp_path):
    # The entries are whole, the next directory's offset (4 bytes) that ends them is not: the file is cut short,
    # not a whole file of a layout Pillow does not read.
    path = tmp_path / "render.tif"
    _float_tiff(path, np.random.default_rng(0).random((8, 8)))  # float64 grayscale: every value held in its entry
    entries_end = 8 + 2 + 12 * struct.unpack("<H", path.read_bytes()[8:10])[0]
    path.write_bytes(path.read_bytes()[:entries_end])
    with pytest.raises(MotifLiteError, match=re.escape(DAMAGED)) as raised:
        read_image(path)
    assert "a layout Pillow does not read" not in str(raised.value)


def _profile(name: str, red_xyz: tuple[float, float, float] | None = None) -> bytes:
    """An RGB colour profile that calls itself `name` (13 characters): littlecms' sRGB with its description changed,
    and its red primary's colorant (D50 XYZ) where `red_xyz` is given."""
    import struct

    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc = icc.replace("sRGB built-in".encode("utf-16-be"), name.encode("utf-16-be"))
    if red_xyz is not None:
        (count,) = struct.unpack_from(">I", icc, 128)
        for entry in range(count):
            signature, offset, _ = struct.unpack_from(">4sII", icc, 132 + 12 * entry)
            if signature == b"rXYZ":  # 'XYZ ', 4 reserved bytes, then X, Y, Z as s15Fixed16
                struct.pack_into(">3i", icc, offset + 8, *(round(v * 65536) for v in red_xyz))
    return bytes(icc)


DISPLAY_P3_RED = (0.5151, 0.2412, -0.0011)  # Display P3's red, D50-adapted as in Apple's profile


@pytest.mark.parametrize(
    ("profile", "noted"),
    [
        (_profile("Display P3 v4", DISPLAY_P3_RED), True),
        (_profile("sRGB built-in"), False),
        (_profile("c2 compact v4"), False),  # sRGB's primaries under another name (compact profiles call it "c2")
        (None, False),
    ],
)
def test_a_still_whose_colour_profile_is_not_srgb_gets_a_note(tmp_path, profile, noted):
    # A phone's Display P3 photo or a still exported from a grading app: its values are used as stored, as sRGB (as
    # diffusers' load_image does), so its saturated colours came out duller than the still shown, without a word.
    from motif_lite.io.memory_images import image_from_memory

    path = tmp_path / "still.jpg"
    PIL.Image.new("RGB", (32, 32), (255, 0, 0)).save(path, **({} if profile is None else {"icc_profile": profile}))
    image, notes = read_image(path)
    said = [note for note in notes if "colour profile" in note]
    assert np.asarray(image)[0, 0].tolist() == np.asarray(PIL.Image.open(path).convert("RGB"))[0, 0].tolist()
    assert len(said) == noted and (not noted or "'Display P3 v4', not sRGB" in said[0]), notes
    with PIL.Image.open(path) as opened:  # given from Python as a PIL image: the same note
        assert [note for note in image_from_memory(opened)[1] if "colour profile" in note] == said


def test_a_wide_gamut_profile_without_a_name_is_called_so_in_the_note(tmp_path):
    # A profile whose description is blank was named '' in the note ("the image's colour profile is '', not sRGB").
    path = tmp_path / "still.png"
    PIL.Image.new("RGB", (8, 8), (255, 0, 0)).save(path, icc_profile=_profile(" " * 13, DISPLAY_P3_RED))
    said = [note for note in read_image(path)[1] if "colour profile" in note]
    assert len(said) == 1 and said[0].startswith("the image's colour profile is one without a name, not sRGB"), said
