"""Damaged and hand-edited clips to extend (`run --extend CLIP`): every video format motif-lite writes cut short or
with flipped bytes, and PNG sequences with a frame damaged, empty or of another size or with a hand-edited frame
rate, are either read (every frame the clip counts decodes) or refused with `ClipError` before any weights load.
CPU."""

from __future__ import annotations

import io
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import pytest
from fuzz_checks import read_or_refused_naming

from motif_lite import cli
from motif_lite.errors import MotifLiteError
from motif_lite.io.clip import Clip, ClipError, clip_frames, read_clip
from motif_lite.io.ffmpeg import find_ffmpeg
from motif_lite.io.gif_blocks import gif_cut_short
from motif_lite.io.video import write_video

FRAMES = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def read_whole_or_refused(path: Path, unedited: Clip) -> None:
    """Read the clip as `--extend` does, and every frame it counts: refused with `MotifLiteError` naming the file,
    or read as the unedited clip (its frame count, size and rate; a flipped byte may change a frame's colors), every
    frame of its size."""
    with read_or_refused_naming(MotifLiteError, path.name):
        clip = read_clip(path)
        assert (clip.frames, clip.size, clip.fps) == (unedited.frames, unedited.size, unedited.fps), clip
        assert [frame.shape for frame in clip_frames(clip)] == [(clip.height, clip.width, 3)] * clip.frames


@pytest.mark.parametrize("suffix", ["mp4", "webp", "gif", "mkv", "webm"])
def test_a_video_cut_short_or_with_flipped_bytes_is_read_or_refused(tmp_path, suffix):
    path = write_video(FRAMES, tmp_path / f"clip.{suffix}", 24)
    unedited = read_clip(path)
    whole = path.read_bytes()
    cuts = [whole[:n] for n in (0, 4, 10, 100, len(whole) // 2, len(whole) - 10)]  # 4: a Matroska ID alone
    flips = [whole[:i] + bytes([whole[i] ^ 0xFF]) + whole[i + 1 :] for i in (4, 20, 60, len(whole) // 3)]
    for damaged in [*cuts, *flips]:
        path.write_bytes(damaged)
        read_whole_or_refused(path, unedited)


def test_a_gif_cut_just_after_a_byte_that_is_the_trailers_is_refused(tmp_path):
    """A GIF's one sign of its end is its trailer byte, ';': the file cut after another ';' (inside a frame) read
    as a clip of the frames before the cut."""
    path = write_video(FRAMES, tmp_path / "clip.gif", 24)
    whole = path.read_bytes()
    cut = whole.rindex(b";", 0, len(whole) - 1) + 1
    path.write_bytes(whole[:cut])
    with pytest.raises(ClipError, match=f"^{re.escape(str(path))} is cut short .*its blocks run past the file's end"):
        read_clip(path)


# A 1x1 GIF byte by byte: header, screen descriptor with a 2-color table (6 bytes), the image descriptor at byte
# 19 (10 bytes: ',', left, top, width, height, packed), the LZW code size, one 2-byte sub-block, its end, ';'.
TINY_GIF = (b"GIF89a" + bytes([1, 0, 1, 0, 0x80, 0, 0]) + bytes(6) + b"," + bytes([0, 0, 0, 0, 1, 0, 1, 0, 0])
            + bytes([2, 2, 0x44, 0x01, 0]) + b";")  # fmt: skip


@pytest.mark.parametrize(
    ("cut", "says"),
    [(None, None), (-1, "a GIF's blocks end with its trailer, ';', and this one has none"),
     (28, "its blocks run past the file's end at byte 28"), (31, "its blocks run past the file's end at byte 31")],
)  # fmt: skip
def test_a_gif_cut_short_is_told_by_where_its_blocks_end(cut, says):
    """Cut before its trailer (its last block whole), in the image descriptor (before the packed byte, 28) or in a
    sub-block (31): what `gif_cut_short` says of each, and nothing of the whole file."""
    data = TINY_GIF[:cut]
    assert gif_cut_short(io.BytesIO(data), len(data)) == says


@pytest.mark.parametrize("suffix", ["mp4", "mov", "mkv", "webm", "gif", "webp"])
def test_a_video_cut_short_anywhere_is_refused_saying_so(tmp_path, suffix):
    """ffmpeg reads a video cut short without an error, up to the cut: the run went on from a frame in its middle
    (or said the clip had one frame). The container's own sizes show it (an MP4 box, a Matroska segment, a RIFF
    header running past the file's end; a GIF's trailer byte)."""
    path = write_video(FRAMES, tmp_path / f"clip.{suffix}", 24)
    whole = path.read_bytes()
    assert read_clip(path).frames == len(FRAMES)
    # Pillow raised IndexError counting the frames of a GIF cut at a quarter; the last few bytes say the sizes' end.
    for cut in (len(whole) // 4, int(len(whole) * 0.6), int(len(whole) * 0.9), int(len(whole) * 0.98), -7, -1):
        path.write_bytes(whole[:cut])
        with pytest.raises(ClipError, match=f"^{re.escape(str(path))} is cut short"):
            read_clip(path)
    if suffix != "gif":  # a GIF's end is its last byte (the trailer)
        path.write_bytes(whole + b"\0" * 8)  # bytes after the end, which readers ignore: still whole
        assert read_clip(path).frames == len(FRAMES)


def ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", *args], check=True)


TEST_PICTURE = ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=24"]
SINE = ["-f", "lavfi", "-i", "sine=frequency=440"]


@pytest.mark.parametrize(
    ("name", "options"),
    [("faststart.mp4", ["-t", "1", "-movflags", "+faststart"]), ("sound.mov", [*SINE, "-t", "1", "-shortest"]),
     ("clip.avi", ["-t", "1"]), ("sound.mkv", [*SINE, "-t", "1", "-shortest"])],
)  # fmt: skip
def test_another_tools_video_cut_short_is_refused_saying_so(tmp_path, name, options):
    """Files motif-lite does not write: the index before the pictures (an MP4 made for streaming), sound, AVI."""
    path = tmp_path / name
    ffmpeg(*TEST_PICTURE, *options, str(path))
    whole = path.read_bytes()
    assert read_clip(path).frames == 24
    for cut in (0.3, 0.7, 0.99):
        path.write_bytes(whole[: int(len(whole) * cut)])
        with pytest.raises(ClipError, match=f"^{re.escape(str(path))} is cut short"):
            read_clip(path)


def test_a_whole_video_whose_sound_or_timing_runs_past_its_pictures_is_read(tmp_path):
    """What a duration check would take for a cut: sound 2 s longer than the pictures, frames at a variable rate (a
    screen recording: 6 frames over 0.9 s). Only the containers' sizes say a file is cut short."""
    sound = tmp_path / "sound.mp4"
    ffmpeg("-f", "lavfi", "-t", "1", "-i", "testsrc=size=32x32:rate=24", "-f", "lavfi", "-t", "3", "-i", "sine",
           str(sound))  # fmt: skip
    screen = tmp_path / "screen.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=24,trim=end_frame=6,setpts='if(lt(N,3),N,N*4)/24/TB'",
           "-fps_mode", "passthrough", str(screen))  # fmt: skip
    assert (read_clip(sound).frames, read_clip(screen).frames) == (24, 6)


def test_an_mp4_box_with_a_64_bit_size_is_read_and_checked(tmp_path):
    """A box over 4 GiB (a long video's mdat) gives its size in the 64 bits after its type, in place of the 8-byte
    free box ffmpeg leaves before mdat for that: the file reads whole, and a cut in that size or the box is found."""
    path = write_video(FRAMES, tmp_path / "clip.mp4", 24)
    whole = path.read_bytes()
    free = whole.index(b"\0\0\0\x08free")
    mdat = whole[free + 8 :]
    assert mdat[4:8] == b"mdat"
    wide = whole[:free] + struct.pack(">I4sQ", 1, b"mdat", int.from_bytes(mdat[:4], "big") + 8) + mdat[8:]
    path.write_bytes(wide)
    assert read_clip(path).frames == len(FRAMES)
    for cut in (free + 12, len(wide) - 1):  # in the 64-bit size; in the box
        path.write_bytes(wide[:cut])
        with pytest.raises(ClipError, match=f"^{re.escape(str(path))} is cut short"):
            read_clip(path)


@pytest.mark.parametrize("suffix", ["mkv", "webm"])
def test_a_matroska_file_cut_just_after_its_segments_size_is_refused(tmp_path, suffix):
    """The segment's size is all there is to check: a file that ends with it is cut short."""
    path = write_video(FRAMES, tmp_path / f"clip.{suffix}", 24)
    whole = path.read_bytes()
    segment = whole.index(bytes.fromhex("18538067"))  # the segment's ID; its size's first byte says its width
    path.write_bytes(whole[: segment + 4 + 9 - whole[segment + 4].bit_length()])
    with pytest.raises(ClipError, match=f"^{re.escape(str(path))} is cut short .*: its segment ends at byte"):
        read_clip(path)


def test_a_matroska_file_written_as_a_stream_is_read(tmp_path):
    """Written to a pipe, a Matroska segment's size is unknown (every bit of it set): it says nothing of a cut."""
    stream = [find_ffmpeg(), "-v", "error", *TEST_PICTURE, "-t", "1", "-f", "matroska", "pipe:1"]
    path = tmp_path / "stream.mkv"
    path.write_bytes(subprocess.run(stream, capture_output=True, check=True).stdout)
    assert read_clip(path).frames == 24


def png_sequence(folder: Path, fps: str | None = None) -> Path:
    """The clip as PNG frames f_000.png ... (with an `fps` text where given, as a hand edit leaves it); its pattern."""
    for index, frame in enumerate(FRAMES):
        info = PIL.PngImagePlugin.PngInfo()
        if fps is not None:
            info.add_text("fps", fps)
        PIL.Image.fromarray(frame).save(folder / f"f_{index:03d}.png", pnginfo=info)
    return folder / "f_%03d.png"


@pytest.mark.parametrize("fps", ["x", "nan", "inf", "0", "-5", "1e400", ""])
def test_a_frame_rate_that_is_no_rate_is_the_default(tmp_path, fps):
    assert read_clip(png_sequence(tmp_path, fps)).fps == 24.0


@pytest.mark.parametrize("index", [0, 1, 2, 4])
@pytest.mark.parametrize("damage", ["empty", "not a png", "another size"])
def test_a_damaged_frame_anywhere_is_refused_before_sampling(tmp_path, index, damage):
    pattern = png_sequence(tmp_path)
    frame = tmp_path / f"f_{index:03d}.png"
    if damage == "another size":
        PIL.Image.new("RGB", (16, 16)).save(frame)
    else:
        frame.write_bytes(b"" if damage == "empty" else b"GIF89a not really")
    with pytest.raises(ClipError, match="must be of one size" if damage == "another size" else f"cannot read {frame}"):
        read_clip(pattern)


@pytest.mark.parametrize("index", [0, 2, 4])
def test_a_frame_cut_short_after_its_header_is_refused_before_sampling(tmp_path, index):
    """Its header reads: it failed only as the longer video was written, after all the sampling."""
    pattern = png_sequence(tmp_path)
    frame = tmp_path / f"f_{index:03d}.png"
    whole = frame.read_bytes()
    for cut in (100, len(whole) // 2, len(whole) - 1):
        frame.write_bytes(whole[:cut])
        with pytest.raises(ClipError, match=f"^{re.escape(str(frame))} is cut short .*a frame of the clip to extend"):
            read_clip(pattern)
    frame.write_bytes(whole + b"\0" * 8)  # bytes after its end, which Pillow ignores: whole
    assert read_clip(pattern).frames == len(FRAMES)


def test_a_frame_that_is_not_a_png_inside_is_read(tmp_path):
    """Only a PNG has a PNG's end to look for: a JPEG saved under a frame's .png name (an editor's export) reads."""
    pattern = png_sequence(tmp_path)
    PIL.Image.fromarray(FRAMES[2]).save(tmp_path / "f_002.png", format="JPEG")
    assert read_clip(pattern).frames == len(FRAMES)


def test_a_still_image_given_as_the_clip_is_named_one(tmp_path):
    """A JPEG (which has no frame count) is one image: -i starts a video from it."""
    path = tmp_path / "fox.jpg"
    PIL.Image.fromarray(FRAMES[0]).save(path)
    with pytest.raises(ClipError, match="^fox.jpg is one image, not a clip"):
        read_clip(path)


def test_a_frame_of_another_height_only_is_refused(tmp_path):
    pattern = png_sequence(tmp_path)
    PIL.Image.new("RGB", (32, 16)).save(tmp_path / "f_002.png")
    with pytest.raises(ClipError, match="f_002.png is 32x16 and f_000.png 32x32"):
        read_clip(pattern)


def test_a_frame_too_large_for_pillow_is_refused(tmp_path):
    # The header alone says 100000x100000: Pillow refuses to open it (its bomb check), before reading any pixel.
    pattern = png_sequence(tmp_path)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    (tmp_path / "f_003.png").write_bytes(png)
    with pytest.raises(ClipError, match="f_003.png, a frame of the clip to extend: Image size .* exceeds limit"):
        read_clip(pattern)


def test_the_command_refuses_an_empty_first_frame_in_one_line(tmp_path, capsys):
    pattern = png_sequence(tmp_path)
    (tmp_path / "f_000.png").write_bytes(b"")
    code = cli.main(["run", "-m", str(tmp_path / "no-model"), "-p", "a fox", "--device", "cpu", "--extend",
                     str(pattern), "-o", str(tmp_path / "longer.mp4")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "cannot read" in err and "f_000.png, a frame of the clip to extend" in err
