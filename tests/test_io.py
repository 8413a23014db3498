"""Video/image I/O and Hub resolution: round trips, parity with diffusers' processors, error paths."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import PIL.features
import PIL.Image
import pytest
import torch
from another_user import as_another_user as _as_another_user
from another_user import folder_closed_to_others
from huggingface_hub import constants

from motif_lite import cli
from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.cli import run_request as run_command
from motif_lite.errors import Audience, CheckpointError, ConfigError, MotifLiteError
from motif_lite.io import checkpoint_source, ffmpeg_writer, gguf_source, hub, staging
from motif_lite.io.checkpoint_source import find_checkpoint
from motif_lite.io.gguf_source import find_gguf, single_gguf
from motif_lite.io.image import DAMAGED, load_image, not_an_image, preprocess_image, read_image
from motif_lite.io.user_cache import user_cache_folder
from motif_lite.io.video import check_output_path, stale_frames_note, to_uint8_frames, write_video
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.server import schema  # no third-party imports: runs without the server extra

F, H, W = 5, 32, 48
META = {"prompt": 'a "quoted" fox\nsecond line', "seed": 42, "steps": 50}


def _video(seed: int = 0) -> torch.Tensor:
    """A float [3, F, H, W] video in [-1, 1] with smooth content (lossy codecs keep it close) and overshoot."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.linspace(-1, 1, H).view(1, 1, H, 1)
    x = torch.linspace(-1, 1, W).view(1, 1, 1, W)
    t = torch.arange(F).view(1, F, 1, 1) / F
    phase = torch.rand(3, 1, 1, 1, generator=gen) * 6
    return (0.3 * torch.sin(x + 1.5 * y + 2 * t + phase) + 0.8 * torch.sin(3 * x - 2 * y + 5 * t)).float()


def _chunks(video: torch.Tensor, size: int = 2):
    for start in range(0, video.shape[1], size):
        yield video[:, start : start + size]


# ---------------------------------------------------------------- frame conversion


def test_uint8_conversion_matches_diffusers_postprocess():
    from diffusers.video_processor import VideoProcessor

    video = _video()
    # Include exact half-steps so the rounding rule is exercised.
    video[0, 0, 0, :4] = torch.tensor([2 * (k + 0.5) / 255 - 1 for k in (10, 11, 100, 201)])
    for dtype in (torch.float32, torch.bfloat16):
        ours = to_uint8_frames(video.to(dtype))
        pil = VideoProcessor(vae_scale_factor=8).postprocess_video(video.to(dtype)[None], output_type="pil")[0]
        ref = np.stack([np.asarray(img) for img in pil])
        assert ours.dtype == np.uint8 and ours.shape == (F, H, W, 3)
        np.testing.assert_array_equal(ours, ref)


def test_uint8_input_passes_through_and_bad_shapes_fail():
    frames = np.random.default_rng(0).integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8_frames(frames), frames)
    np.testing.assert_array_equal(to_uint8_frames(torch.from_numpy(frames)), frames)
    np.testing.assert_array_equal(to_uint8_frames(_video()[None]), to_uint8_frames(_video()))
    with pytest.raises(ConfigError, match=r"\[F, H, W, 3\]"):
        to_uint8_frames(frames[..., :2])
    with pytest.raises(ConfigError, match=r"\[3, F, H, W\]"):
        to_uint8_frames(torch.zeros(F, H, W, 3))
    with pytest.raises(ConfigError, match="tensors or numpy"):
        to_uint8_frames([1, 2, 3])


# ---------------------------------------------------------------- writing and reading back


def _ffprobe_comment(path) -> str:
    # imageio-ffmpeg ships ffmpeg but not ffprobe; `ffmpeg -i` prints the container metadata on stderr.
    result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True)
    return result.stderr.decode()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm"])
def test_ffmpeg_formats_round_trip(tmp_path, suffix):
    video = _video()
    path = write_video(_chunks(video), tmp_path / f"out{suffix}", fps=24, metadata=META)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(H, W, 3) for f in reader]
    assert len(frames) == F and tuple(meta["size"]) == (W, H) and meta["fps"] == pytest.approx(24)
    assert np.abs(np.stack(frames).astype(int) - to_uint8_frames(video).astype(int)).mean() < 4  # lossy
    info = _ffprobe_comment(path)
    assert ("vp9" if suffix == ".webm" else "h264") in info and "yuv420p" in info
    assert '"seed": 42' in info and "quoted" in info
    if suffix in (".mp4", ".mov"):  # the index before the frames, so that a player starts before the end
        data = path.read_bytes()
        assert data.index(b"moov") < data.index(b"mdat")


def _decoded_as_bt709(path, width: int, height: int) -> np.ndarray:
    """The first frame as a browser, QuickTime or a phone shows an HD video: decoded with the BT.709 matrix."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1"]
    command += ["-vf", "scale=in_color_matrix=bt709:in_range=tv", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm"])
def test_ffmpeg_formats_keep_their_colours_in_players_that_decode_bt709(tmp_path, suffix):
    # ffmpeg's default RGB -> YUV matrix is BT.601, untagged; browsers and QuickTime decode HD video as BT.709, so
    # pure red played as (255, 23, 0) and pure green as (0, 215, 0).
    bars = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 100)], np.uint8)
    frames = np.repeat(np.repeat(bars[None, None], 16, axis=2), 16, axis=1).repeat(2, axis=0)  # [2, 16, 64, 3]
    path = write_video(frames, tmp_path / f"bars{suffix}", fps=24)
    shown = _decoded_as_bt709(path, 64, 16)[8, 8::16].astype(int)  # the middle of each bar
    assert np.abs(shown - bars).max() <= 3
    assert "bt709" in _ffprobe_comment(path)  # tagged, so that players need not guess


def _documented_ffmpeg(starting: str) -> list[str]:
    """The ffmpeg command of docs/usage.md ("Output files") that starts with `starting`, with our ffmpeg."""
    docs = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    command = re.search(rf"`(ffmpeg\s+{re.escape(starting)}[^`]*)`", docs).group(1)  # wrapped anywhere
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *shlex.split(command)[1:]]


def test_the_documented_last_frame_command_gives_the_last_frame(tmp_path, monkeypatch):
    # The way docs/usage.md gives to go on from a video's last frame (image-to-video of the next shot).
    frames = np.stack([np.full((16, 32, 3), 25 * i, np.uint8) for i in range(9)])  # each frame a grey of its own
    monkeypatch.chdir(tmp_path)
    write_video(frames, "fox.mp4", fps=24)
    subprocess.run(_documented_ffmpeg("-sseof"), check=True)
    with PIL.Image.open("fox-last.png") as last:
        assert np.abs(np.asarray(last).astype(int) - 200).max() <= 3  # the last grey, not its neighbour's 175


def test_the_documented_reencoding_of_png_frames_keeps_the_colours(tmp_path, monkeypatch):
    bars = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 100)], np.uint8)
    frames = np.repeat(np.repeat(bars[None, None], 16, axis=2), 16, axis=1).repeat(2, axis=0)  # [2, 16, 64, 3]
    monkeypatch.chdir(tmp_path)
    Path("frames").mkdir()
    write_video(frames, "frames/fox_%03d.png", fps=24)
    subprocess.run(_documented_ffmpeg("-framerate"), check=True)
    shown = _decoded_as_bt709("fox-small.mp4", 64, 16)[8, 8::16].astype(int)
    assert np.abs(shown - bars).max() <= 3 and "bt709" in _ffprobe_comment("fox-small.mp4")


def _stored_comment(path) -> str:
    """The container's comment exactly as stored: ffmpeg's FFMETADATA dump, unescaped (`ffmpeg -i` prints long
    values cut into lines)."""
    dump = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"], capture_output=True
    ).stdout.decode()
    line = next(line for line in dump.splitlines() if line.lower().startswith("comment="))  # mkv/webm: COMMENT
    return re.sub(r"\\(.)", r"\1", line.partition("=")[2])  # FFMETADATA escapes = ; # \ with a backslash


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm"])
def test_a_comment_longer_than_one_command_line_argument_is_stored_whole(tmp_path, suffix):
    # A 160 kB prompt went into ffmpeg's command line, which Linux refuses over 128 KiB per argument: the write
    # failed after all the sampling ("ffmpeg stopped", nothing said). .mov also cut a comment over 64 KiB.
    metadata = {**META, "prompt": "a fox = a; fox # \\ " * 10_000}  # ~200 kB, with FFMETADATA's special characters
    path = write_video(_video(), tmp_path / f"out{suffix}", fps=24, metadata=metadata)
    assert json.loads(_stored_comment(path)) == metadata
    assert list(tmp_path.iterdir()) == [path]  # nothing beside it: the metadata file is removed


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_pillow_formats_round_trip(tmp_path, suffix):
    video = _video()
    path = write_video(_chunks(video), tmp_path / f"out{suffix}", fps=25, metadata=META)
    with PIL.Image.open(path) as image:
        assert image.n_frames == F and image.size == (W, H) and image.is_animated
        stored = image.info["comment"].decode() if suffix == ".gif" else image.getexif()[0x010E]  # description
        image.seek(F - 1)
        last = np.asarray(image.convert("RGB")).astype(int)
        assert image.info["duration"] == pytest.approx(40, abs=1)  # 25 fps
    assert json.loads(stored) == META
    assert np.abs(last - to_uint8_frames(video)[-1].astype(int)).mean() < 8  # palette / lossy


def test_png_sequence_is_lossless(tmp_path):
    video = _video()
    write_video(_chunks(video, 3), tmp_path / "out_%03d.png", fps=12.5, metadata=META)  # not the default 24
    files = sorted(tmp_path.glob("out_*.png"))
    assert [f.name for f in files] == [f"out_{i:03d}.png" for i in range(F)]
    expected = to_uint8_frames(video)
    for index, file in enumerate(files):
        with PIL.Image.open(file) as image:
            np.testing.assert_array_equal(np.asarray(image), expected[index])
            assert json.loads(image.text["comment"]) == META and float(image.text["fps"]) == 12.5


def test_a_one_frame_video_is_written_as_one_png_image(tmp_path):
    # Before: a plain out.png was refused for every video ("PNG output is a frame sequence"), a one-frame one too.
    one = _video()[:, :1]
    write_video(one, tmp_path / "out.png", fps=12.5, metadata=META)
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]
    with PIL.Image.open(tmp_path / "out.png") as image:
        np.testing.assert_array_equal(np.asarray(image), to_uint8_frames(one)[0])
        assert json.loads(image.text["comment"]) == META and float(image.text["fps"]) == 12.5
    with pytest.raises(ConfigError, match="out2.png is one image, but the video has more than one frame"):
        write_video(_video(), tmp_path / "out2.png", fps=24)
    assert check_output_path(tmp_path / "out.png", 1)
    with pytest.raises(MotifLiteError) as refused:  # before the video is made, with the name that would do
        check_output_path(tmp_path / "out.png", 9)
    assert "out.png is one image, and this video has 9 frames: for a PNG per frame put a frame-number " in str(
        refused.value
    ) and f"e.g. {tmp_path / 'out_%03d.png'} (or ask for one frame: --video-frames 1)" in str(refused.value)
    for frames, refused_request in ((1, False), (5, True)):
        request = GenerationRequest("x", width=16, height=16, frames=frames, output=tmp_path / "a.png")
        if refused_request:
            with pytest.raises(RequestError, match="a.png is one image, and this video has 5 frames"):
                request.resolve()
        else:
            request.resolve()


def test_uint8_frames_and_single_tensor_accepted(tmp_path):
    frames = to_uint8_frames(_video())
    write_video(frames, tmp_path / "a_%d.png", fps=8)
    assert len(list(tmp_path.glob("a_*.png"))) == F


def test_write_errors(tmp_path):
    with pytest.raises(ConfigError, match="no frames"):
        write_video(iter([]), tmp_path / "x.mp4", fps=24)
    with pytest.raises(ConfigError, match="fps"):
        write_video(_video(), tmp_path / "x.mp4", fps=0)
    with pytest.raises(ConfigError, match="even"):
        write_video(_video()[:, :, :31], tmp_path / "x.mp4", fps=24)
    with pytest.raises(ConfigError, match="changed"):
        write_video([_video()[:, :2], _video()[:, :2, :16]], tmp_path / "x.mp4", fps=24)


@pytest.mark.parametrize("fps", [float("inf"), float("nan")])
@pytest.mark.parametrize("suffix", [".mp4", ".webp", "_%03d.png"])
def test_a_frame_rate_that_is_no_finite_number_is_refused_before_writing(tmp_path, fps, suffix):
    # The Python API's own check (the CLI and the server bound --fps themselves): inf made a traceback after the
    # frames were made (.mp4) or a .webp of 0 ms frames.
    with pytest.raises(ConfigError, match=f"^fps must be a finite number > 0, got {fps}$"):
        write_video(_video(), tmp_path / f"x{suffix}", fps=fps)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("out.avi", "unsupported output format"),
        # stable-diffusion.cpp's outputs: its MJPEG .avi for a video, JPEG frames; the same output here, named
        ("fox.avi", r"'\.avi' for .*fox\.avi; use .*fox\.mp4 \(or \.mkv\): H\.264, smaller than stable-diffusion"),
        ("fox_%03d.jpg", r"'\.jpg' for .*; for a file per frame use PNG, lossless: .*fox_%03d\.png; or a video: "),
        ("fox.JPEG", r"'\.jpeg' for .* use PNG, lossless: .*fox_%03d\.png \(.*fox\.png for a one-frame video\); or a"),
        ("out", r"output .*out has no extension to say its format: e\.g\. .*out\.mp4 \(\.mp4, \.mkv, \.mov, "),
        ("out_%d_%d.png", "one frame-number pattern and no other %"),
        ("50%_%d.png", "one frame-number pattern and no other %"),
        ("50%.png", "one frame-number pattern and no other %"),
        ("out_%03d.mp4", "only for .png"),
        ("missing/out.mp4", r"does not exist; create it first \(mkdir -p .*missing\)"),
    ],
)
def test_check_output_path_errors(tmp_path, name, message):
    with pytest.raises(MotifLiteError, match=message):
        check_output_path(tmp_path / name)


@pytest.mark.parametrize(
    ("name", "placeholder", "ours"),
    [
        ("f_####.png", "####", "f_%04d.png"),  # Blender's, Nuke's: one digit per #
        ("f_#.png", "#", "f_%d.png"),
        ("f_{:05d}.png", "{:05d}", "f_%05d.png"),  # Python's format
        ("f_{}.png", "{}", "f_%03d.png"),  # no width stated: three digits, as out_%03d.png
        ("f_%04i.png", "%04i", "f_%04d.png"),  # printf's too, but ffmpeg's image names take only %d
        ("f_%i.png", "%i", "f_%d.png"),  # printf's of no width: no padding, as printf's own
        ("f_%02u.png", "%02u", "f_%02d.png"),
        ("f_*.png", "*", "f_%03d.png"),  # how a folder of frames is listed
    ],
)
def test_another_tools_frame_number_is_told_ours(tmp_path, name, placeholder, ours):
    # `-o f_####.png` was "one image, and this video has 9 frames ... e.g. f_####_%03d.png": the placeholder kept,
    # and a second frame number added after it.
    with pytest.raises(MotifLiteError) as refused:
        check_output_path(tmp_path / name, 9)
    assert str(refused.value) == (
        f"{name} writes its frame number as another tool does ({placeholder}); motif-lite's PNG sequences write it "
        f"as printf's {ours.removeprefix('f_').removesuffix('.png')}: -o {tmp_path / ours}"
    )
    if "%" not in name:  # a one-frame video may have a # or * in its one image's name
        assert check_output_path(tmp_path / name, 1)


@pytest.mark.parametrize("pattern", ["%5d", "%3d", "%12d"])
def test_a_space_padded_frame_number_is_refused_with_ffmpegs_meaning_of_it(tmp_path, pattern):
    # `-o f_%5d.png` wrote 'f_    0.png', ...: Python's % pads with spaces, ffmpeg's image names with zeros, so
    # `ffmpeg -i f_%5d.png` read none of them. The name advised is the one ffmpeg gives the same pattern.
    with pytest.raises(MotifLiteError) as refused:
        check_output_path(tmp_path / f"f_{pattern}.png", 9)
    advised = Path(re.search(r"for zeros give -o (\S+)", str(refused.value)).group(1))
    assert f"pads the frame number with spaces ({pattern}:" in str(refused.value) and not list(tmp_path.iterdir())
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=red:s=16x16"]
    subprocess.run([*ffmpeg, "-frames:v", "3", "-start_number", "0", str(tmp_path / f"f_{pattern}.png")], check=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == [advised.name % i for i in range(3)]
    assert check_output_path(advised, 9)


@pytest.mark.parametrize("name", ["f_%d.png", "f_%1d.png", "f_%05d.png"])
def test_a_frame_number_of_no_padding_or_zeros_is_taken(tmp_path, name):
    assert check_output_path(tmp_path / name, 9)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "https://example.com/v/fox.mp4?x=1",
            "output https://example.com/v/fox.mp4?x=1 is a URL; motif-lite writes a file here: give its name, e.g. "
            "-o fox.mp4, and upload that file",
        ),
        ("file:///tmp/my%20fox.mp4", "output file:///tmp/my%20fox.mp4 is a URL: give its path, -o '/tmp/my fox.mp4'"),
        ("fox.mp4 ", "output 'fox.mp4 ' ends in a space (pasted with the name?): -o fox.mp4"),
        ("fox.mp4.", "output fox.mp4. ends in a dot: -o fox.mp4"),  # was "no extension ... e.g. fox.mp4..mp4"
        (".mp4", "output .mp4 is only an extension: give the file a name too, e.g. output.mp4"),
        # the whole name quoted, extension inside: 'my renders/output'.mp4 split in two in PowerShell
        (
            "my renders/.mp4",
            "output my renders/.mp4 is only an extension: give the file a name too, e.g. 'my renders/output.mp4'",
        ),  # fmt: skip
    ],
)
def test_an_output_as_typed_that_names_no_file_says_which_to_give(tmp_path, monkeypatch, typed, message):
    # Were: "output directory https:/example.com/v does not exist; create it first (mkdir -p ...)", "unsupported
    # output format '.mp4 '" and "e.g. .mp4.mp4".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MotifLiteError) as error:
        check_output_path(typed)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "nul.mp4",
            "output nul.mp4 is the name of Windows' NUL device, not of a file: give another, e.g. -o video-nul.mp4",
        ),
        (
            "renders\\Com1 .webm",
            "output Com1 .webm is the name of Windows' COM1 device, not of a file: give another, "
            'e.g. -o "renders\\video-Com1 .webm"',
        ),
        (  # Microsoft's list names COM0 and LPT0 too
            "com0.mp4",
            "output com0.mp4 is the name of Windows' COM0 device, not of a file: give another, e.g. -o video-com0.mp4",
        ),
        (
            "fox_12:30:45.67.mp4",
            "output fox_12:30:45.67.mp4 has :, which Windows does not allow in a file name: give "
            "another, e.g. -o fox_12-30-45.67.mp4",
        ),
        (
            'out\\"fox?".gif',
            'output "fox?".gif has " ?, which Windows does not allow in a file name: give '
            "another, e.g. -o out\\-fox--.gif",
        ),
    ],
)
def test_an_output_name_windows_refuses_is_refused_there_before_the_run(monkeypatch, typed, message):
    # On Windows `-o nul.mp4` wrote the video to the NUL device (Windows 10), and a colon (cmd's %TIME% in the name)
    # failed only as the finished video was written, after the whole run.
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError) as error:
        check_output_path(typed)
    assert str(error.value) == message


@pytest.mark.parametrize("name", ["nul.mp4", "fox_12:30.mp4", "console.mp4"])
def test_names_windows_refuses_are_files_elsewhere(tmp_path, name):
    assert check_output_path(str(tmp_path / name))


def test_a_file_where_the_output_folder_would_be_is_named_not_made_with_mkdir(tmp_path):
    """`-o fox.mp4/out.mp4` with fox.mp4 a video: `mkdir -p fox.mp4` would fail, so the message says what is in the
    way (also a level up), not to create the folder."""
    (tmp_path / "fox.mp4").write_bytes(b"a video")
    for output in ("fox.mp4/out.mp4", "fox.mp4/frames/out_%03d.png"):
        with pytest.raises(MotifLiteError) as error:
            check_output_path(tmp_path / output)
        assert f"{tmp_path / 'fox.mp4'} is a file, not a folder: write to another folder" in str(error.value)
        assert "mkdir" not in str(error.value)


def test_output_path_suggestions_survive_copy_and_paste(tmp_path):
    # Before: "create it first (mkdir -p .../dir with space)", which a shell runs as three folders, and for `-o -`
    # (standard output to ffmpeg) "e.g. -.mp4".
    folder = tmp_path / "dir with space"
    with pytest.raises(MotifLiteError) as error:
        check_output_path(folder / "x.mp4")
    assert str(error.value).endswith(f"create it first (mkdir -p '{folder}')")
    with pytest.raises(MotifLiteError) as error:
        check_output_path(f"{folder}/")
    assert f"(mkdir -p '{folder}') and give a file in it, e.g. '{folder}/output.mp4'" in str(error.value)
    with pytest.raises(MotifLiteError, match=r"e\.g\. '.*dir with space\.mp4' \(\.mp4, "):
        check_output_path(folder)
    folder.mkdir()
    with pytest.raises(MotifLiteError) as error:
        check_output_path(folder)
    assert str(error.value).endswith(
        f"is a directory; give a file name, e.g. '{folder}/output.mp4' (or '{folder}/output_%03d.png' for a PNG per "
        "frame)"
    )
    with pytest.raises(MotifLiteError) as error:
        check_output_path("-")
    assert str(error.value) == (
        "output - (standard output) is not supported: the video is written to a file (under a temporary name, "
        "renamed when it is complete); give a file name, e.g. fox.mp4"
    )


def test_check_output_path_directory_cases(tmp_path, monkeypatch):
    (tmp_path / "clip.mp4").mkdir()
    with pytest.raises(MotifLiteError, match="is a directory"):
        check_output_path(tmp_path / "clip.mp4")
    (tmp_path / "renders").mkdir()  # no suffix: still the folder that is named, with a file name to use
    with pytest.raises(MotifLiteError, match="renders is a directory; give a file name, e.g. .*renders/output.mp4"):
        check_output_path(tmp_path / "renders")

    # A read-only folder: creating a file there is what fails (permission bits do not bind root, as in CI).
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(staging.tempfile, "mkstemp", read_only)
    with pytest.raises(MotifLiteError, match=f"{tmp_path} is not writable: no file can be created there .Permission"):
        check_output_path(tmp_path / "out.mp4")


LINUX_PSEUDO_FILE_SYSTEMS = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc and /sys")


@LINUX_PSEUDO_FILE_SYSTEMS
@pytest.mark.parametrize("folder", ["/sys", "/proc"])
def test_a_folder_no_file_can_be_created_in_is_refused_also_for_root(folder):
    # Root passes os.access(W_OK) on /sys and /proc, and the run failed only once ffmpeg tried to write there.
    with pytest.raises(MotifLiteError, match=f"output directory {folder} is not writable: no file can be created"):
        check_output_path(f"{folder}/x.mp4")


def test_the_write_check_leaves_nothing_behind(tmp_path):
    assert check_output_path(tmp_path / "x.mp4") and list(tmp_path.iterdir()) == []


@LINUX_PSEUDO_FILE_SYSTEMS
@pytest.mark.parametrize("count", [2, 100])  # within the pipe's buffer (no broken pipe), and past it
def test_ffmpeg_failing_to_write_is_one_readable_line(count):
    # It was "ffmpeg could not write /sys/.partial-23862-x.mp4: [Errno 32] Broken pipe" and ffmpeg's whole command
    # line with the metadata JSON. Called past the checks, as a folder that turned unwritable while sampling.
    frames = np.zeros((count, 32, 48, 3), np.uint8)
    with pytest.raises(MotifLiteError) as error:
        ffmpeg_writer.write_ffmpeg(iter(frames), Path("/sys/.partial-23862-x.mp4"), 24.0, "{}", frames[0].shape)
    assert str(error.value) == "ffmpeg could not write /sys/x.mp4: Permission denied"


@pytest.mark.skipif(os.name == "nt", reason="a shell script as ffmpeg")
def test_ffmpeg_stopping_for_another_reason_says_ffmpegs_message(tmp_path, monkeypatch):
    # ffmpeg's own message went to the terminal only, and the error said "(its own message, if any, is above)": a
    # server's client, or a log of stdout alone, got nothing to act on.
    fake = tmp_path / "ffmpeg"
    fake.write_text('#!/bin/sh\n[ "$1" = -version ] && exit 0\necho "Unknown encoder \'libx264\'" >&2\nexit 8\n')
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / ".partial-7-x.mp4", 24.0, META)
    assert str(error.value) == (
        f"ffmpeg could not write {tmp_path / 'x.mp4'}: ffmpeg said: Unknown encoder 'libx264' (.webp, .gif and PNG "
        "frames need no ffmpeg: -o x.webp, or x_%03d.png)"  # the same ffmpeg fails the same way again
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file on which every write fails")
def test_ffmpeg_stopping_on_a_full_disk_says_so(tmp_path):
    # ffmpeg says "No space left on device" on a line before its last ("Nothing was written into output file ..."),
    # and the disk, here /dev/full, has room left by shutil's measure: the error gave that last line and offered
    # .webp, which would fail the same way.
    (tmp_path / ".partial-7-x.mp4").symlink_to("/dev/full")
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / ".partial-7-x.mp4", 24.0, META)
    assert str(error.value) == f"ffmpeg could not write {tmp_path / 'x.mp4'}: no space left on the disk of {tmp_path}"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file on which every write fails")
def test_a_full_temporary_folder_is_named_with_tmpdir_as_its_fix(tmp_path, monkeypatch):
    # A small /tmp filled by something else: the video's metadata file (its only file there) could not be written.
    # The folder's error was a bare OSError (a traceback, or the output disk's "no space left"), and the file's
    # named a random folder: neither said that TMPDIR moves it.
    import tempfile

    full = tmp_path / "tmp-full"
    full.mkdir()
    (full / "comment.ffmetadata").symlink_to("/dev/full")  # every write fails: No space left on device
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *args, **kwargs: str(full))
    expected = (
        f"cannot write the video's metadata (a small file) to the temporary folder {tmp_path}: No space left on "
        "device; free space there, or set TMPDIR to a folder with room (TMPDIR=/data/tmp)"
    )
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / "x.mp4", 24.0, META)
    assert str(error.value) == expected and not full.exists()  # its folder removed
    monkeypatch.setattr(tempfile, "mkdtemp", _raises(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / "x.mp4", 24.0, META)
    assert str(error.value) == expected


def _raises(error: Exception):
    def raising(*args, **kwargs):
        raise error

    return raising


@pytest.mark.skipif(os.name == "nt", reason="a shell script as ffmpeg")
def test_ffmpeg_stopping_on_a_used_up_disk_quota_says_so(tmp_path, monkeypatch):
    # A quota leaves the disk's free space as it was: only ffmpeg's words tell, and it was "ffmpeg said: Conversion
    # failed!" with the formats that need no ffmpeg, which the quota stops as well.
    script = 'echo "[out#0/mp4] Error muxing a packet: Disk quota exceeded" >&2; echo "Conversion failed!" >&2; exit 1'
    fake = _fake_ffmpeg(tmp_path / "ffmpeg", f'[ "$1" = -version ] && exit 0\n{script}')
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / ".partial-7-x.mp4", 24.0, META)
    assert str(error.value) == f"ffmpeg could not write {tmp_path / 'x.mp4'}: your disk quota in {tmp_path} is used up"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_an_ffmpeg_that_is_not_there_is_refused_before_any_work(tmp_path, monkeypatch, suffix):
    # IMAGEIO_FFMPEG_EXE naming no file passed every check; the run sampled, then failed to write with nothing said.
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/nonexistent/ffmpeg")
    with pytest.raises(MotifLiteError) as error:
        check_output_path(tmp_path / f"x{suffix}")
    assert str(error.value) == (
        "ffmpeg not found at /nonexistent/ffmpeg (IMAGEIO_FFMPEG_EXE): fix or unset IMAGEIO_FFMPEG_EXE; or write "
        ".webp, .gif or PNG frames (out_%03d.png), which need no ffmpeg"
    )
    for name in ["x.webp", "x.gif", "x_%03d.png"]:  # the formats that need no ffmpeg
        assert check_output_path(tmp_path / name)


def _fake_ffmpeg(path: Path, script: str) -> Path:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("script", "reason"),
    [  # the last line of its stderr says why
        ("echo 'ffmpeg version n7' >&2; echo 'libavcodec.so.58: cannot open' >&2; exit 127",
         "-version exited with code 127: libavcodec.so.58: cannot open"),
        ("exec sleep 5", "no answer to -version within 0.2 s"),
    ],
)  # fmt: skip
def test_an_ffmpeg_that_does_not_run_is_refused(tmp_path, monkeypatch, script, reason):
    from motif_lite.io import ffmpeg

    monkeypatch.setattr(ffmpeg, "PROBE_TIMEOUT_S", 0.2)
    exe = _fake_ffmpeg(tmp_path / "ffmpeg", script)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    with pytest.raises(MotifLiteError) as error:
        check_output_path(tmp_path / "x.mp4")
    said = f"ffmpeg at {exe} (IMAGEIO_FFMPEG_EXE) does not run ({reason}): fix or unset IMAGEIO_FFMPEG_EXE; or write"
    assert str(error.value).startswith(said)


def test_an_ffmpeg_named_by_its_command_is_looked_up_on_path(tmp_path, monkeypatch):
    # IMAGEIO_FFMPEG_EXE=ffmpeg (a command name, as imageio-ffmpeg takes it): found on PATH, not "not found".
    _fake_ffmpeg(tmp_path / "my-ffmpeg", "echo 'ffmpeg version 7'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "my-ffmpeg")
    assert check_output_path(tmp_path / "x.mp4")


def test_ffmpeg_is_tried_once_per_process(tmp_path, monkeypatch):
    # A request is resolved for each run and each server submission: `ffmpeg -version` runs the first time only.
    calls = tmp_path / "calls"
    exe = _fake_ffmpeg(tmp_path / "ffmpeg", f"echo called >> {calls}; echo 'ffmpeg version 7'")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    for name in ["a.mp4", "b.webm", "c.mp4"]:
        assert check_output_path(tmp_path / name)
    assert calls.read_text() == "called\n"


def test_an_ffmpeg_that_answered_late_once_is_asked_again(tmp_path, monkeypatch):
    # A busy machine: the first `-version` took longer than the probe waits. The timeout was remembered for the
    # process, so a server refused every later .mp4 submission (and a test session every later .mp4) until restart.
    from motif_lite.io import ffmpeg

    monkeypatch.setattr(ffmpeg, "PROBE_TIMEOUT_S", 0.5)
    slow_once = tmp_path / "slow-once"
    exe = _fake_ffmpeg(
        tmp_path / "ffmpeg", f"[ -e {slow_once} ] || {{ touch {slow_once}; sleep 3; }}; echo 'ffmpeg version 7'"
    )
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    with pytest.raises(MotifLiteError, match="no answer to -version within 0.5 s"):
        check_output_path(tmp_path / "a.mp4")
    assert check_output_path(tmp_path / "b.mp4")
    assert ffmpeg.each_frame_once(str(exe)) == ["-fps_mode", "passthrough"]


def test_each_frame_once_reads_the_answer_the_check_had(tmp_path, monkeypatch):
    # One `-version` per process for both questions; one with no answer in time gives the recent option, not a
    # traceback.
    from motif_lite.io import ffmpeg

    calls = tmp_path / "calls"
    exe = _fake_ffmpeg(tmp_path / "ffmpeg", f"echo called >> {calls}; echo 'ffmpeg version 4.4.2'")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    assert check_output_path(tmp_path / "a.mp4")
    assert ffmpeg.each_frame_once(str(exe)) == ["-vsync", "passthrough"] and calls.read_text() == "called\n"
    monkeypatch.setattr(ffmpeg, "PROBE_TIMEOUT_S", 0.2)
    hung = _fake_ffmpeg(tmp_path / "hung", "exec sleep 5")
    assert ffmpeg.each_frame_once(str(hung)) == ["-fps_mode", "passthrough"]


def test_a_run_to_mp4_without_ffmpeg_stops_before_loading(tmp_path, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded without an ffmpeg to write"))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/nonexistent/ffmpeg")
    code = cli.main(["run", "-m", str(tmp_path / "no-model"), "-p", "fox", "-o", str(tmp_path / "nf.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert "error: ffmpeg not found at /nonexistent/ffmpeg (IMAGEIO_FFMPEG_EXE): " in err


def test_output_naming_a_folder_that_is_not_there(tmp_path):
    # `-o renders/` (a folder, as ComfyUI's output folder) that does not exist: not "unsupported format '(none)'".
    message = (
        f"output {tmp_path}/renders/ names a folder, and that folder does not exist; -o takes a file name: create the "
        f"folder (mkdir -p {tmp_path}/renders) and give a file in it, e.g. {tmp_path}/renders/output.mp4 (or "
        f"{tmp_path}/renders/output_%03d.png for a PNG per frame)"
    )
    with pytest.raises(MotifLiteError) as error:
        check_output_path(f"{tmp_path}/renders/")
    assert str(error.value) == message
    (tmp_path / "renders").mkdir()  # once it is there: the directory case, with the same file name to use
    with pytest.raises(MotifLiteError, match="renders is a directory; give a file name, e.g. .*renders/output.mp4"):
        check_output_path(f"{tmp_path}/renders/")


def test_check_output_path_accepts_supported(tmp_path):
    for name in ["a.mp4", "a.MP4", "a.webm", "a.webp", "a.gif", "a_%05d.png"]:
        check_output_path(tmp_path / name)


# ---------------------------------------------------------------- input images


def test_load_image_converts_to_rgb(tmp_path):
    rgba = PIL.Image.new("RGBA", (7, 5), (10, 20, 30, 128))
    rgba.save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.mode == "RGB" and image.size == (7, 5) and image.getpixel((0, 0)) == (10, 20, 30)


def test_a_16_bit_grayscale_image_keeps_its_levels(tmp_path):
    # Pillow's own conversion clips 16-bit levels at 255: a mid-gray 16-bit PNG became a white first frame.
    levels = np.random.default_rng(0).integers(0, 65536, (5, 7), dtype=np.uint16)
    PIL.Image.fromarray(levels).save(tmp_path / "gray16.png")
    with PIL.Image.open(tmp_path / "gray16.png") as opened:
        assert opened.mode.startswith("I")  # what Pillow makes of it
    image = np.asarray(load_image(tmp_path / "gray16.png")).astype(int)
    expected = np.round(levels / 257.0).astype(int)
    assert (
        image.shape == (5, 7, 3) and np.array_equal(image[..., 0], expected) and np.array_equal(image[..., 2], expected)
    )


def test_a_float_image_of_levels_0_to_1_keeps_them(tmp_path):
    # Pillow's own conversion clips float levels to 0..255 as they are: a 0..1 float TIFF became a black first frame.
    levels = np.random.default_rng(0).random((5, 7), dtype=np.float32)
    levels[0, 0] = 1.0  # white reaches 1.0 exactly: still a 0..1 image
    PIL.Image.fromarray(levels, "F").save(tmp_path / "float.tiff")
    image = np.asarray(load_image(tmp_path / "float.tiff")).astype(int)
    assert image.shape == (5, 7, 3) and np.array_equal(image[..., 1], np.round(levels * 255.0).astype(int))
    PIL.Image.fromarray(levels * 255, "F").save(tmp_path / "float255.tiff")  # levels 0..255: as Pillow reads them
    assert np.abs(np.asarray(load_image(tmp_path / "float255.tiff"))[..., 0] - levels * 255).max() <= 1


def test_what_the_conversion_drops_is_noted(tmp_path):
    transparent = PIL.Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    transparent.putpixel((0, 0), (0, 0, 0, 0))
    transparent.save(tmp_path / "cutout.png")
    PIL.Image.new("RGBA", (8, 8), (10, 20, 30, 255)).save(tmp_path / "opaque.png")
    frame = PIL.Image.new("RGB", (8, 8), (200, 0, 0))
    frame.save(tmp_path / "anim.gif", save_all=True, append_images=[PIL.Image.new("RGB", (8, 8), (0, 0, 200))])
    assert read_image(tmp_path / "opaque.png")[1] == []  # an alpha channel, but nothing transparent
    (note,) = read_image(tmp_path / "cutout.png")[1]
    assert note.startswith("the image has transparent pixels: its alpha channel is dropped")
    (note,) = read_image(tmp_path / "anim.gif")[1]
    assert note == "the image has 2 frames: the first one is the video's first frame"
    # A CMYK JPEG (made for print) was converted without a word, its colours off from a viewer's (profile ignored).
    PIL.Image.new("CMYK", (8, 8), (0, 200, 200, 0)).save(tmp_path / "print.jpg")
    (note,) = read_image(tmp_path / "print.jpg")[1]
    assert note.startswith("the image is CMYK (print colours): it becomes RGB by a plain formula without its colour")
    PIL.Image.new("RGB", (8, 8), (255, 55, 55)).save(tmp_path / "screen.jpg")
    assert read_image(tmp_path / "screen.jpg")[1] == []
    _, notes = GenerationRequest("x", width=16, height=16, frames=5, image=tmp_path / "cutout.png",
                                 output=tmp_path / "a.mp4").resolve()  # fmt: skip
    assert any(n.startswith("the image has transparent pixels") for n in notes)


@pytest.mark.parametrize(("image", "output"), [("first.webp", "first.webp"), ("f_002.png", "f_%03d.png")])
def test_an_output_that_would_replace_the_input_image_is_refused(tmp_path, image, output):
    # The video is written after the image is read: the user's image was silently replaced by the video.
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / image)
    request = GenerationRequest("x", width=16, height=16, frames=5, image=tmp_path / image, output=tmp_path / output)
    with pytest.raises(RequestError, match=f"the output .*{output} would replace the input image .*{image}"):
        request.resolve()
    request = GenerationRequest("x", width=16, height=16, frames=5, image=tmp_path / image, output=tmp_path / "v.mp4")
    request.resolve()


@pytest.mark.parametrize("given", ["relative", "home"])
def test_an_output_that_names_the_input_image_another_way_is_refused_too(tmp_path, monkeypatch, given):
    # The same file under a relative path or ~ (the Python API takes both as given) is still the input image.
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "first.webp")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    image, output = ("first.webp", "first.webp") if given == "relative" else (tmp_path / "first.webp", "~/first.webp")
    request = GenerationRequest("x", width=16, height=16, frames=5, image=image, output=output)
    with pytest.raises(RequestError, match="would replace the input image"):
        request.resolve()


def test_a_percent_sign_in_a_videos_name_is_no_frame_pattern(tmp_path):
    # "100%.mp4" cannot be filled in as a pattern of PNG frames: it is one file, not the input image.
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "first.png")
    request = GenerationRequest(
        "x", width=16, height=16, frames=5, image=tmp_path / "first.png", output=tmp_path / "100%.mp4"
    )
    request.resolve()


def test_a_png_sequence_of_one_frame_is_said_as_its_one_file(tmp_path):
    # "f_%03d.png (f_000.png ... f_000.png)" for a one-frame video: the file itself says it better.
    assert staging.described_output(tmp_path / "f_%03d.png", 1) == str(tmp_path / "f_000.png")
    pattern = tmp_path / "f_%03d.png"
    assert staging.described_output(pattern, 3) == f"{pattern} (f_000.png ... f_002.png)"


@pytest.mark.parametrize(
    ("image", "size"), [((1000, 900), (48, 32)), ((1080, 1920), (1280, 736)), ((4, 3), (832, 480))]
)
def test_the_size_the_stretch_note_suggests_keeps_the_shape_better(tmp_path, image, size):
    # Each side rounded to 16 on its own suggested "-W 48 -H 32" for this image at 48x32: the stretched size itself.
    PIL.Image.new("RGB", image).save(tmp_path / "first.png")
    width, height = size
    request = GenerationRequest("x", width=width, height=height, frames=5, image=tmp_path / "first.png",
                                output=tmp_path / "a.mp4")  # fmt: skip
    note = next(note for note in request.resolve()[1] if "stretched" in note)  # a 4x3 image is also noted as tiny
    suggested = note.split("; -W ")[1].split(" (in Python")[0].split(" -H ")
    w, h = int(suggested[0]), int(suggested[1])
    error = lambda a, b: abs(np.log(a / b / (image[0] / image[1])))  # noqa: E731
    assert (w, h) != size and w % 16 == 0 and h % 16 == 0 and 0.5 < w * h / (width * height) < 2
    pixels, aspect = width * height, image[0] / image[1]
    each_side = [round(x / 16) * 16 for x in ((pixels * aspect) ** 0.5, (pixels / aspect) ** 0.5)]
    assert error(w, h) < error(width, height) and error(w, h) <= error(*each_side)


def test_an_exif_rotated_photo_is_used_upright_as_diffusers_loads_it(tmp_path):
    # A phone photo stored sideways (128x64, EXIF Orientation 6: turn it 90 degrees clockwise to show it) was used as
    # stored, while diffusers' load_image turns it upright first.
    from diffusers.utils import load_image as diffusers_load_image

    pixels = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    image, notes = read_image(tmp_path / "phone.jpg")
    reference = diffusers_load_image(str(tmp_path / "phone.jpg"))
    assert image.size == reference.size == (64, 128)
    assert np.array_equal(np.asarray(image), np.asarray(reference))
    assert notes == [
        "the image's EXIF orientation (6) turns it: it is used upright, 64x128 (stored 128x64), as photo viewers and "
        "the reference pipeline show it"
    ]
    exif[0x0112] = 2  # mirrored, not turned: still not the stored image, so still a note
    PIL.Image.fromarray(pixels).save(tmp_path / "mirrored.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "mirrored.jpg")[1][0].startswith("the image's EXIF orientation (2) turns it")
    PIL.Image.fromarray(pixels).save(tmp_path / "upright.jpg")  # no tag: as stored, without a note
    assert read_image(tmp_path / "upright.jpg")[1] == [] and load_image(tmp_path / "upright.jpg").size == (128, 64)


def test_load_image_errors(tmp_path):
    with pytest.raises(MotifLiteError, match="not found.*nope.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(MotifLiteError, match="cannot read image.*bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(MotifLiteError, match="is a directory; give the image file in it"):  # not "not found"
        load_image(tmp_path)
    (tmp_path / "empty.png").touch()  # it was "cannot identify image file"
    with pytest.raises(MotifLiteError, match=r"input image .*empty.png is empty \(0 bytes\)"):
        load_image(tmp_path / "empty.png")


@pytest.mark.parametrize(("suffix", "kept"), [(".jpg", 0.5), (".jpg", 0.05), (".png", 0.5), (".png", 0.001),
                                             (".webp", 0.5), (".gif", 0.01), (".tiff", 0.5),
                                             (".tiff", 0.001)])  # fmt: skip
def test_an_image_cut_short_is_said_to_be_damaged_with_what_to_do(tmp_path, suffix, kept):
    # An interrupted download or copy: Pillow's "image file is truncated", "Truncated File Read", "could not create
    # decoder object" or "cannot identify image file" said nothing of the cause nor what to do.
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    whole = tmp_path / f"whole{suffix}"
    PIL.Image.fromarray(pixels).save(whole)
    data = whole.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: max(12, int(len(data) * kept))])
    with pytest.raises(MotifLiteError, match=re.escape(DAMAGED)):
        load_image(tmp_path / f"cut{suffix}")
    assert load_image(whole).size == (128, 96)


def test_a_folder_a_frame_pattern_or_a_pasted_space_given_as_the_image_says_which_file_to_give(tmp_path):
    frames = tmp_path / "comfy"
    frames.mkdir()
    for index in (1, 2, 3):  # ComfyUI's names
        PIL.Image.new("RGB", (8, 8)).save(frames / f"ComfyUI_{index:05d}_.png")
    (frames / "notes.txt").write_text("prompt")
    with pytest.raises(MotifLiteError, match=re.escape(f"in it, e.g. {frames}/ComfyUI_00001_.png")):
        load_image(frames)  # was "e.g. comfy/first.png", a file that is not there
    pattern = frames / "ComfyUI_%05d_.png"  # was "input image not found"
    said = (f"{pattern} is a PNG sequence's pattern, and -i (in Python image=) takes one image: give one frame, "
            "e.g. its last, "
            f"{frames}/ComfyUI_00003_.png, or go on from the sequence with --extend {pattern}")  # fmt: skip
    with pytest.raises(MotifLiteError, match=re.escape(said)):
        load_image(pattern)
    pasted = f"{frames}/ComfyUI_00001_.png "  # was "not found", the space unseen at the end of the message
    with pytest.raises(MotifLiteError, match=re.escape(f"not found: '{pasted}'; the name has a space at an end, and ")):
        load_image(pasted)
    # Nothing left once trimmed: was pathlib's ValueError "Invalid name ''"; a name of blanks alone is an empty path.
    with pytest.raises(MotifLiteError, match="input image not found"):
        load_image(f"{frames}/  ")
    with pytest.raises(MotifLiteError, match=re.escape("the input image is empty (' '): give the path of an image")):
        load_image(" ")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".mov"])
def test_a_video_given_as_the_image_gives_the_command_that_takes_its_last_frame(tmp_path, monkeypatch, suffix):
    # It was Pillow's "cannot identify image file": a user going on from a clip passed the clip itself.
    frames = np.zeros((9, 32, 48, 3), np.uint8)
    frames[-1] = (200, 40, 90)  # the last frame differs from the others: the command must take that one
    write_video(frames, tmp_path / f"clip{suffix}", fps=24)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MotifLiteError, match="it is a video, not an image") as error:
        load_image(f"clip{suffix}")
    command = re.search(r"(ffmpeg -sseof .*?), and give that", str(error.value)).group(1)
    argv = shlex.split(command)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *argv[1:]], check=True)
    last = np.asarray(load_image(argv[-1]), dtype=int)
    assert np.abs(last - (200, 40, 90)).max() <= 12  # the last frame, through lossy video compression


def test_a_phone_photo_a_drawing_and_unknown_bytes_are_named(tmp_path, monkeypatch):
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)  # an iPhone photo's first bytes
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)
    files = {"IMG_0001.HEIC": heic, "logo.svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
             "page.pdf": b"%PDF-1.7\n", "cat.avif": avif, "noise.png": bytes(range(256))}  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected = {"IMG_0001.HEIC": "it is a HEIF (HEIC) photo", "logo.svg": "it is an SVG drawing",
                "page.pdf": "it is a PDF", "noise.png": "cannot identify image file"}  # fmt: skip
    for name, words in expected.items():
        with pytest.raises(MotifLiteError, match=re.escape(words)):
            load_image(tmp_path / name)
    with pytest.raises(MotifLiteError) as error:  # this Pillow reads AVIF: a damaged one keeps Pillow's words
        load_image(tmp_path / "cat.avif")
    assert "it is a" not in str(error.value)
    monkeypatch.setattr(PIL.features, "check", lambda feature: feature != "avif")  # a Pillow built without it
    with pytest.raises(MotifLiteError, match="it is an AVIF image, which this Pillow does not read") as error:
        load_image(tmp_path / "cat.avif")
    assert "a Pillow that does (its wheels from 11.3 on: pip install -U pillow)" in str(error.value)  # what adds it


def test_a_model_file_given_as_the_image_is_named_a_model_file(tmp_path):
    # -i model.gguf was Pillow's "cannot identify image file"; the server's upload says the same words.
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "lora.safetensors")
    (tmp_path / "model.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(64))
    for name, kind in (("lora.safetensors", "safetensors"), ("model.gguf", "GGUF")):
        words = f"it is a {kind} model file (weights), not an image: give the first frame as a PNG, JPEG or WebP"
        with pytest.raises(MotifLiteError, match=re.escape(f"{tmp_path / name}: {words}")):
            load_image(tmp_path / name)
        sent = not_an_image((tmp_path / name).read_bytes()[:1024], None)
        assert sent == f"it is a {kind} model file (weights), not an image: send the first frame as a PNG, JPEG or WebP"
    assert not_an_image(b"\x07\x00\x00\x00\x00\x00\x00\x00[1, 2]", None) is None  # no JSON object: nothing known
    with pytest.raises(schema.ApiError, match=re.escape("input_reference is not a readable image (it is a GGUF")):
        schema.check_image((tmp_path / "model.gguf").read_bytes(), 2**20, 10**6)


def test_a_runs_saved_latents_given_as_the_image_names_the_commands_that_take_them(tmp_path):
    # -i fox.latents.safetensors was "a safetensors model file (weights)": it is a run's own file, for --resume.
    from safetensors.torch import save_file

    save_file({"latents": torch.zeros(2)}, tmp_path / "fox.latents.safetensors")
    with pytest.raises(MotifLiteError) as error:
        load_image(tmp_path / "fox.latents.safetensors")
    assert "fox.latents.safetensors: it is the latents a run saved, not an image: motif-lite run --resume " in str(
        error.value
    ) and "motif-lite decode " in str(error.value)


def test_staged_output_says_where_the_file_went_and_keeps_other_errors(tmp_path, monkeypatch):
    """`written` is the path asked for when the move succeeds; only Windows' "in use" (PermissionError) takes the
    fallback: another error (an I/O error, a vanished folder) is no name's fault and must not become a file with
    another name, so it goes on."""
    beside = tmp_path / "fox-new.mp4"
    with staging.staged_output(tmp_path / "fox.mp4", 1, fallback=lambda path: beside) as staged:
        staged.partial.write_bytes(b"video")
    assert staged.written == tmp_path / "fox.mp4" and not beside.exists()

    replace = os.replace

    def failing(source, target):  # only the asked-for name fails: the fallback's move would succeed
        if Path(target).name == "cat.mp4":
            raise OSError(5, "Input/output error")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    cat = tmp_path / "cat.mp4"
    with pytest.raises(OSError, match="Input/output error"), staging.staged_output(cat, 1, lambda _: beside) as staged:
        staged.partial.write_bytes(b"video")
    assert not beside.exists()


@pytest.mark.parametrize(
    "head, words",
    [
        (b"RIFF\x00\x10\x00\x00AVI LIST", "it is a video"),  # AVI: RIFF, then the form type at byte 8
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "it is a HEIF (HEIC) photo"),  # the generic HEIF brand
        (b'\n  <svg xmlns="http://www.w3.org/2000/svg"/>', "it is an SVG drawing"),  # no XML prolog, indented
        (b'<?xml version="1.0"?>\n<note>a list</note>', None),  # XML that is no drawing: nothing known to say
        (b"RIFF\x00\x10\x00\x00WAVEfmt ", None),  # RIFF of another kind (a sound) is no video
        # a failed download's error page, a prompt's file: were Pillow's "cannot identify image file"
        (b"<!DOCTYPE html>\n<html><head><title>404 Not Found", "it is a web page (HTML), not an image: a download"),
        (b"<html>\r\n<head>", "it is a web page (HTML)"),
        (b"a red fox runs through snow\nat dawn\n", "it holds text, not an image (it begins 'a red fox runs through"),
        (b"caf\xc3\xa9 " * 200 + b"\xc3", "it holds text, not an image (it begins 'caf\xe9 caf"),  # a cut character
        (b"fox\x00\x01\x02", None),  # control characters: no text
        (b"\xff\xd8\xff" + bytes(range(256)), None),  # not UTF-8: nothing known
    ],
)
def test_first_bytes_of_other_kinds_are_named(head, words):
    why = not_an_image(head, Path("x"))
    assert (why is None) if words is None else why.startswith(words)


def test_the_commands_for_a_video_or_a_phone_photo_keep_a_name_with_spaces_together():
    """The commands are pasted into a shell: a file name with a space is quoted, and the file they write is named
    after the input (its stem, not stem and extension)."""
    video = Path("holiday clips/day 1.mov")
    argv = shlex.split(re.search(r"(ffmpeg .*?), and give that", not_an_image(b"\x00\x00\x00\x14ftypqt  ", video))[1])
    assert argv[argv.index("-i") + 1] == str(video) and argv[-1] == "day 1-last.png"
    photo = Path("My Photos/IMG 0001.HEIC")
    argv = shlex.split(re.search(r"\(on a Mac: (.*)\)", not_an_image(b"\x00\x00\x00\x18ftypheic", photo))[1])
    assert argv[argv.index("png") + 1] == str(photo) and argv[argv.index("--out") + 1] == "IMG 0001.png"


@pytest.mark.parametrize(
    "url", ["https://example.com/photos/fox.png?size=large", "http://example.com/fox.jpg", "s3://bucket/fox.png"]
)
def test_an_image_url_is_refused_with_the_command_that_downloads_it(url):
    # It was "input image not found: https:/example.com/..." (the URL read as a path, one slash dropped); diffusers'
    # load_image downloads it, so a user coming from there expects a word on URLs.
    with pytest.raises(MotifLiteError, match="is a URL; motif-lite reads image files only: download it first") as err:
        load_image(url)
    name = url.split("?")[0].rsplit("/", 1)[1]
    assert f"curl -L -o {name} {shlex.quote(url)}, then give -i {name}" in str(err.value)


def test_a_file_url_given_as_the_image_names_its_path(tmp_path):
    # A path pasted from a browser's address bar: curl's command was given, for a file on this disk.
    image = tmp_path / "my fox.png"
    with pytest.raises(MotifLiteError, match=re.escape(f"reads image files only: give its path, -i '{image}'")):
        load_image(f"file://{tmp_path}/my%20fox.png")


def test_a_large_photo_is_read_without_pillows_bomb_warning_and_a_too_large_one_says_what_to_do(tmp_path, monkeypatch):
    # Pillow's limits scaled down (89 and 179 megapixels by default): a 108-megapixel phone photo warned of a
    # "decompression bomb DOS attack", a 200-megapixel one was refused in Pillow's words alone.
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1_000_000)
    PIL.Image.new("RGB", (1100, 1000), (1, 2, 3)).save(tmp_path / "large.png")  # 1.1 MP: over the warning's limit
    PIL.Image.new("RGB", (1500, 1500)).save(tmp_path / "huge.png")  # 2.25 MP: over the error's (2 MP)
    with warnings.catch_warnings(record=True) as caught:  # recorded: a filter set inside would beat "error"
        warnings.simplefilter("always")
        image, notes = read_image(tmp_path / "large.png")
    assert not caught, [str(w.message) for w in caught]
    assert image.size == (1100, 1000) and image.getpixel((0, 0)) == (1, 2, 3) and notes == []
    with pytest.raises(MotifLiteError, match=r"huge.png has more than 2 megapixels, .*save a smaller copy first"):
        load_image(tmp_path / "huge.png")


def test_preprocess_matches_diffusers_video_processor():
    from diffusers.video_processor import VideoProcessor

    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    ours = preprocess_image(image, height=48, width=64)
    # As the I2V pipeline does it: a one-frame video, then [B, C, T, H, W] -> frame 0.
    ref = VideoProcessor(vae_scale_factor=8).preprocess_video([image], height=48, width=64)[:, :, 0]
    assert ours.shape == (1, 3, 48, 64) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    with pytest.raises(ConfigError):
        preprocess_image(image, 0, 64)


# ---------------------------------------------------------------- hub resolution (offline)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF offline mode with an empty private cache: nothing can be found, nothing is fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read once at import by huggingface_hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "hf-cache"


def test_local_directory_returned_as_is(tmp_path, offline):
    assert find_checkpoint(str(tmp_path)) == tmp_path


def test_missing_local_path_and_file(tmp_path, offline):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        find_checkpoint(str(tmp_path / "nope"))
    (tmp_path / "f.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a file"):
        find_checkpoint(str(tmp_path / "f.bin"))


def test_offline_repo_names_repo_files_and_command(offline):
    with pytest.raises(CheckpointError) as err:
        find_checkpoint(MOTIF_REPO, download=["text_encoder/*", "tokenizer/*"])
    message = str(err.value)
    assert MOTIF_REPO in message and "HF_HUB_OFFLINE" in message
    assert f"hf download {MOTIF_REPO} --include 'text_encoder/*' --include 'tokenizer/*'" in message
    assert "huggingface-cli download" in message and str(offline) in message


def test_cached_snapshot_is_used_offline(offline):
    repo_dir = offline / "models--Motif-Technologies--Motif-Video-2B"
    commit = "0" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    (snapshot / "text_encoder").mkdir(parents=True)
    (snapshot / "text_encoder" / "config.json").write_text("{}")
    assert find_checkpoint(MOTIF_REPO) == snapshot


def test_gguf_path_and_variant(tmp_path, offline):
    gguf = tmp_path / "model-Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    assert find_gguf(str(gguf)) == gguf
    with pytest.raises(CheckpointError, match="no such GGUF file"):
        find_gguf(str(tmp_path / "other.gguf"))
    with pytest.raises(CheckpointError) as err:
        find_gguf("Q4_K_M")
    assert GGUF_REPO in str(err.value) and "--include '*Q4_K_M*.gguf'" in str(err.value)


def test_variant_matching_is_whole_token():
    names = ["motif-video-2b-Q4_K_M.gguf", "motif-video-2b-Q4_K.gguf", "motif-video-2b-Q8_0.gguf"]
    assert gguf_source._pick_variant(names, "Q4_K") == "motif-video-2b-Q4_K.gguf"
    assert gguf_source._pick_variant(names, "q8_0") == "motif-video-2b-Q8_0.gguf"
    with pytest.raises(CheckpointError, match="available: motif-video-2b-Q4_K.gguf"):
        gguf_source._pick_variant(names, "Q5_K_S")


@pytest.fixture
def online_without_network(monkeypatch, tmp_path):
    """Offline mode off, empty cache, and every Hub request fails as it does without a network."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    real_snapshot_download = checkpoint_source.snapshot_download

    def snapshot_download(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            return real_snapshot_download(repo_id, **kwargs)  # a real cache miss
        raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    class NoNetworkApi:
        def model_info(self, repo_id, **kwargs):
            raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(checkpoint_source, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hub, "HfApi", NoNetworkApi)


def test_download_failure_is_a_checkpoint_error(online_without_network):
    with pytest.raises(CheckpointError, match=r"(?s)download failed: ConnectionError.*hf download Motif-Tech"):
        find_checkpoint(MOTIF_REPO, download=["vae/*"])


def test_gguf_variant_found_by_listing_the_repo(online_without_network, monkeypatch, tmp_path):
    names = ["README.md", "motif-video-2b-Q4_K_M.gguf", "motif-video-2b-Q8_0.gguf"]
    downloads = []

    class FakeApi:
        def model_info(self, repo_id, files_metadata=False):
            assert repo_id == GGUF_REPO
            return SimpleNamespace(siblings=[SimpleNamespace(rfilename=name, size=1) for name in names])

    def fake_download(repo_id, filename):
        downloads.append((repo_id, filename))
        return str(tmp_path / filename)

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    monkeypatch.setattr(gguf_source, "hf_hub_download", fake_download)
    assert find_gguf("Q8_0") == tmp_path / "motif-video-2b-Q8_0.gguf"
    assert downloads == [(GGUF_REPO, "motif-video-2b-Q8_0.gguf")]
    with pytest.raises(CheckpointError, match="no file in .* match variant 'Q5_K_M'"):
        find_gguf("Q5_K_M")


def test_an_earlier_longer_png_sequence_is_named(tmp_path, monkeypatch):
    # `-o f_%03d.png` replaces frames 0..4 of an earlier 9-frame run; f_005..f_008 stay and would play after them.
    for i in range(9):
        (tmp_path / f"f_{i:03d}.png").touch()
    pattern = tmp_path / "f_%03d.png"
    assert stale_frames_note(pattern, 5) == (
        f"f_005.png to f_008.png in {tmp_path}, from an earlier, longer sequence, stay after this video's 5 frames "
        "and would play as part of it: delete them, or give -o another name"
    )
    assert stale_frames_note(pattern, 7).startswith("f_007.png to f_008.png in ")
    assert stale_frames_note(pattern, 8).startswith("f_008.png in ")
    monkeypatch.setenv("HOME", str(tmp_path))  # `-o ~/f_%03d.png` from the Python API (no shell to expand it)
    assert stale_frames_note("~/f_%03d.png", 8) == stale_frames_note(pattern, 8)
    assert stale_frames_note(pattern, 9) is None and stale_frames_note(tmp_path / "f.mp4", 5) is None
    # What `motif-lite run` prints, for each file of a batch (here the second video's earlier frames).
    for i in range(6):
        (tmp_path / f"g-2_{i:03d}.png").touch()
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", "2", "-s", "1"])
    args.output = str(tmp_path / "g_%03d.png")
    _, notes = run_command.resolve_requests(args, run_command.request_from_args(args))
    assert [note.split(" in ")[0] for note in notes] == ["g-2_005.png"]


@pytest.mark.parametrize(
    ("name", "outputs"),
    [
        ("fox.mp4", ["fox-1.mp4", "fox-2.mp4"]),
        ("f_%03d.png", ["f-1_%03d.png", "f-2_%03d.png"]),
        ("out%03d.png", ["out-1_%03d.png", "out-2_%03d.png"]),
        ("%04d.png", ["1_%04d.png", "2_%04d.png"]),
        ("F_%03d.PNG", ["F-1_%03d.PNG", "F-2_%03d.PNG"]),
    ],
)
def test_the_videos_of_a_batch_keep_their_frames_together(tmp_path, name, outputs):
    # A PNG sequence's number goes before the frame pattern: f_000-1.png, f_000-2.png, f_001-1.png, ... would
    # interleave the videos' frames in a folder listing.
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", "2", "-s", "1"])
    args.output = str(tmp_path / name)
    requests, _ = run_command.resolve_requests(args, run_command.request_from_args(args))
    assert [Path(r.output).name for r in requests] == outputs


@pytest.mark.parametrize("fps", [5.9e-5, 1e-5, 1e-7])
def test_a_webp_refuses_frame_times_it_cannot_store(tmp_path, fps):
    # Pillow raised a bare RuntimeError ("timestamps must be non-decreasing") or OverflowError after the run. Only
    # library callers and a decode of a hand-edited latents file get there: --fps starts at 0.001.
    with pytest.raises(MotifLiteError, match=rf"^fps {fps:g} does not fit a WebP, whose frames last under 2\^24 ms"):
        write_video(_video(), tmp_path / "fox.webp", fps=fps)
    write_video(_video(), tmp_path / "fox.webp", fps=6e-5)  # 16.7 million ms frames: the longest it stores
    assert list(tmp_path.iterdir()) == [tmp_path / "fox.webp"]


def test_a_webp_refuses_a_video_longer_than_its_running_time_counts(tmp_path):
    frames = np.zeros((2148, 2, 2, 3), dtype=np.uint8)  # 2,148 s of frames at 0.001 fps pass 2^31 ms
    with pytest.raises(MotifLiteError, match=r"2148 frames at 0\.001 fps last longer than a WebP can"):
        write_video(frames, tmp_path / "fox.webp", fps=0.001)
    write_video(frames[:2147], tmp_path / "fox.webp", fps=0.001)


def test_a_run_too_long_for_a_webp_is_refused_before_sampling(tmp_path):
    # The frame count and --fps are both known when the request resolves: not only once the frames are written.
    def resolved(frames: int) -> GenerationRequest:
        fields = dict(width=64, height=64, frames=frames, fps=0.001, output=str(tmp_path / "fox.webp"))
        return GenerationRequest("fox", **fields).resolve()[0]

    with pytest.raises(RequestError) as error:
        resolved(2149)  # 2,149 s of frames at 0.001 fps pass 2^31 ms
    said = "2149 frames at 0.001 fps last longer than a WebP can (2^31 ms, 24.9 days): write an .mp4"
    assert str(error.value) == said
    assert error.value.fields == ("fps",)
    assert resolved(2145).frames == 2145  # under it


@pytest.mark.parametrize("fps", [60.0, 0.001])
def test_a_gif_refuses_a_frame_rate_it_cannot_play(tmp_path, fps):
    # GIF frame times are 10 ms units: 60 fps would be stored as 10 ms frames, which browsers show for 100 ms (a
    # 10 fps GIF), and 0.001 fps overflows the 16-bit field (a traceback after the whole run).
    message = (
        f"fps {fps:g} does not fit a GIF, which plays 0.0015 to 50 fps (frame times in 10 ms steps; browsers show "
        "shorter frames for 100 ms): give --fps in that range, or use .webp or .mp4"
    )
    with pytest.raises(RequestError) as error:
        GenerationRequest("fox", fps=fps, output=str(tmp_path / "fox.gif")).resolve()
    assert str(error.value) == message
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / "fox.gif", fps=fps)
    assert str(error.value) == message and list(tmp_path.iterdir()) == []
    with pytest.raises(RequestError, match="does not fit a GIF"):
        GenerationRequest("fox", fps=fps, output=str(tmp_path / "FOX.GIF")).resolve()
    GenerationRequest("fox", fps=fps, output=str(tmp_path / "fox.webp")).resolve()  # others play any rate
    write_video(_video(), tmp_path / "fox.gif", fps=50)  # the fastest a GIF plays: 20 ms frames
    assert PIL.Image.open(tmp_path / "fox.gif").info["duration"] == 20


@pytest.mark.parametrize(("fps", "shown"), [("fast", "'fast'"), (-1.0, "-1.0")])
def test_a_bad_fps_for_a_gif_is_named_as_a_bad_fps(tmp_path, fps, shown):
    # Not a GIF's frame-rate range too (a second message), nor a TypeError from comparing "fast" with it.
    with pytest.raises(RequestError) as error:
        GenerationRequest("fox", fps=fps, output=str(tmp_path / "fox.gif")).resolve()
    assert str(error.value).startswith("--fps must be a number from 0.001 to 1000 (")
    assert str(error.value).endswith(f"), got {shown}")


@pytest.fixture
def pids():
    """(the PID of a process that has ended, the PID of one that runs)."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    running = subprocess.Popen(["sleep", "60"])
    yield ended.pid, running.pid
    running.kill()
    running.wait()


def test_stale_partial_files_are_those_of_the_same_output_whose_process_ended(tmp_path, pids):
    ended, running = pids
    for name in (
        f".partial-{ended}-k.mp4",  # a `kill -9` during writing left it
        f".partial-{running}-k.mp4",  # another process writing k.mp4 now
        f".partial-{os.getpid()}-k.mp4",  # this process's own
        f".partial-{ended}-other.mp4",  # another output's
        f".partial-{ended}-k.mp4.bak",  # not the pattern
        f".partial-{ended}-f_000.png",  # a PNG sequence's frames
        f".partial-{ended}-f_001.png",
        f".partial-{ended}-b\\000.png",  # a frame of b\%03d.png: a backslash is a character of a Linux name
    ):
        (tmp_path / name).write_bytes(b"x")
    assert staging.stale_partials(tmp_path / "k.mp4") == [tmp_path / f".partial-{ended}-k.mp4"]
    assert staging.stale_partials(tmp_path / "f_%03d.png") == [
        tmp_path / f".partial-{ended}-f_00{i}.png" for i in (0, 1)
    ]
    assert staging.stale_partials(tmp_path / "g_%03d.png") == []
    assert staging.stale_partials(tmp_path / "b\\%03d.png") == [tmp_path / f".partial-{ended}-b\\000.png"]


def test_a_gguf_folder_without_a_gguf_file_says_so(tmp_path):
    with pytest.raises(CheckpointError, match=r"--gguf folder .* must hold exactly one .gguf file \(found: none\)"):
        single_gguf(tmp_path)


@pytest.mark.parametrize("order", ["first", "second"])
def test_each_test_has_a_temporary_user_cache_of_its_own(order, tmp_path_factory):
    # tests/conftest.py's `own_user_cache`: before it, tests that link weight files (test_float8.py, test_hub_lfs.py)
    # left folders in the contributor's ~/.cache/motif-lite/linked, and every test shared what was there.
    folder = user_cache_folder()
    assert folder.is_relative_to(tmp_path_factory.getbasetemp()), folder
    assert not folder.exists(), f"the {order} case found another test's {folder}"
    folder.mkdir(parents=True)


def test_an_empty_xdg_cache_home_is_taken_as_unset(tmp_path, monkeypatch):
    # The XDG spec treats an empty variable as unset: it must not put the cache in the current folder.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.chdir(tmp_path)
    assert user_cache_folder() == tmp_path / "home" / ".cache" / "motif-lite"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX user ids")
def test_a_container_user_without_a_home_gets_a_cache_folder_in_the_temporary_directory(tmp_path, monkeypatch):
    # `docker run -u 12345` with HOME unset and no /etc/passwd entry: pathlib's Path.home() raised a bare
    # RuntimeError ("Could not determine home directory."), and every `motif-lite run` ended in that traceback.
    import pwd

    uid = next(u for u in range(54321, 60000) if not _has_passwd_entry(pwd, u))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    assert user_cache_folder({}, uid) == tmp_path / f"motif-lite-cache-{uid}"
    assert user_cache_folder({"HOME": str(tmp_path / "data")}, uid) == tmp_path / "data" / ".cache" / "motif-lite"
    assert user_cache_folder({"XDG_CACHE_HOME": "/cache"}, uid) == Path("/cache/motif-lite")
    # This user's home from the password database: one of this test's own, since the real one may not be writable
    # (nobody's /nonexistent, a CI service user's), where the temporary directory would be the answer.
    own_home, entry_of = tmp_path / "own-home", pwd.getpwuid
    monkeypatch.setattr(
        pwd, "getpwuid", lambda u: SimpleNamespace(pw_dir=str(own_home)) if u == os.getuid() else entry_of(u)
    )
    assert user_cache_folder({}, os.getuid()) == own_home / ".cache" / "motif-lite"


def _has_passwd_entry(pwd, uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_every_frame_of_a_staged_png_sequence_is_moved_to_its_name(tmp_path):
    # The first frame too: it was left under its hidden partial name, and the sequence started at frame 1.
    from motif_lite.io.staging import frame_file

    pattern = tmp_path / "f_%03d.png"
    with staging.staged_output(pattern, 3) as staged:
        for index in range(3):
            frame_file(staged.partial, index).write_bytes(b"png")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["f_000.png", "f_001.png", "f_002.png"]


def test_a_percent_sign_in_a_sequences_folder_is_no_part_of_its_pattern(tmp_path):
    # Only the file's name is the pattern: "100% done/f_%03d.png" as one string is no format Python can fill.
    from motif_lite.io.staging import frame_file

    folder = tmp_path / "100% done"
    assert frame_file(folder / "f_%03d.png", 7) == folder / "f_007.png"


def test_a_png_sequence_whose_first_frame_is_there_is_taken(tmp_path):
    # The pattern itself is never a file: its first frame says whether an earlier sequence would be overwritten.
    from motif_lite.io.output_claims import unused_path

    pattern = tmp_path / "f_%03d.png"
    assert unused_path(pattern) == pattern
    (tmp_path / "f_000.png").write_bytes(b"png")
    assert unused_path(pattern) == tmp_path / "f-2_%03d.png"


def test_a_png_sequence_whose_move_fails_midway_keeps_no_frame_and_no_partial(tmp_path, monkeypatch):
    """A frame that cannot be put in place (its name taken, a file in use) after two were: the sequence is all or
    nothing like a single file, so the two moved frames and every partial frame are removed (not left hidden for
    the next run), and the error says so; the caller's saved latents keep the work."""
    replace = os.replace

    def failing_third(source, target):
        if Path(target).name == "f_002.png":
            raise OSError(5, "Input/output error")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", failing_third)
    said = r"f_%03d.png: frame f_002.png could not be put in place \(Input/output error\); no frame was kept "
    sequence = tmp_path / "f_%03d.png"
    with pytest.raises(MotifLiteError, match=said) as error, staging.staged_output(sequence, 5) as staged:
        for i in range(5):
            staging.frame_file(staged.partial, i).write_bytes(b"png")
    assert "(the 2 moved before it were removed, the other 2 not moved)" in str(error.value)
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("long_paths", [False, True])
def test_an_output_path_over_windows_limit_is_refused_there_unless_long_paths_are_on(tmp_path, monkeypatch, long_paths):
    # Windows writes no path over 260 characters unless long paths are turned on: the video's staged file failed to
    # be created after the whole run.
    from motif_lite import paths

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(paths, "windows_long_paths", lambda: long_paths)
    folder = tmp_path / ("a" * 120) / ("b" * 120)
    folder.mkdir(parents=True)
    output = folder / "fox.webp"  # not .mp4: finding ffmpeg would take this machine for Windows too
    if long_paths:
        assert check_output_path(str(output))
        return
    with pytest.raises(MotifLiteError) as error:
        check_output_path(str(output))
    assert str(error.value).startswith(f"output {output} is {len(str(output))} characters long (")
    said = str(error.value)
    assert "over Windows' limit of 260 for a path" in said and "Disable path length limit" in said
    assert check_output_path(str(tmp_path / "fox.webp"))  # a short one passes


def test_an_output_path_that_only_its_staged_name_takes_past_windows_limit_is_refused_there(tmp_path, monkeypatch):
    # The video is first written under a longer name (.partial-PID-NAME): a path of 257 characters fits, that does not.
    from motif_lite import paths

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(paths, "windows_long_paths", lambda: False)
    output = tmp_path / ("f" * (paths.WINDOWS_MAX_PATH - 2 - len(str(tmp_path)) - len("/.webp")) + ".webp")
    assert len(str(output)) == paths.WINDOWS_MAX_PATH - 2
    with pytest.raises(MotifLiteError, match=r"more for the name it is written under first\), over Windows' limit"):
        check_output_path(str(output))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX users")
def test_a_home_this_user_cannot_write_counts_as_none_for_the_cache(monkeypatch):
    # Docker and Kubernetes set HOME=/ for a UID /etc/passwd lacks: the cache was /.cache/motif-lite, which that
    # user cannot write, so the links and kept states failed instead of going to the temporary directory.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter.
    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir()
        home.chmod(0o555)  # not mkdir's mode, which the umask narrows (077: a home this user may not even enter)
        temp = base / "temp"
        temp.mkdir()
        temp.chmod(0o777)
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        said = _as_another_user(lambda: user_cache_folder({"HOME": str(home)}, 54321))
        assert said == repr(temp / "motif-lite-cache-54321"), said
        said = _as_another_user(lambda: user_cache_folder({"HOME": "/"}, 54321))
        assert said == repr(temp / "motif-lite-cache-54321"), said
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_the_temporary_cache_folder_is_private_and_refused_when_it_is_not_this_users(tmp_path, monkeypatch):
    # Its name is predictable: another user of a shared /tmp could make it first (or a link by that name) and
    # read or swap the links and states kept there.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.user_cache import private_temp_folder

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    folder = private_temp_folder("mine", "set X")
    assert folder == tmp_path / "mine" and folder.stat().st_mode & 0o777 == 0o700
    assert private_temp_folder("mine", "set X") == folder  # made before by this user: taken
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(MotifLiteError, match=r"linked is not a folder of this user .*: remove it, or set X$"):
        private_temp_folder("linked", "set X")
    (tmp_path / "theirs").mkdir()
    os.chown(tmp_path / "theirs", 54321, 54321) if os.getuid() == 0 else pytest.skip("chown needs root")
    with pytest.raises(MotifLiteError, match=r"theirs is not a folder of this user"):
        private_temp_folder("theirs", "set X")


def test_an_image_url_or_a_video_given_as_the_image_names_pythons_keyword_too(tmp_path):
    # The Python API reaches these messages too (pipe.generate with image=...): they named only run's -i and
    # --extend, where the request's checks name both ("--video-frames 5 (in Python frames=5)").
    from motif_lite.io.clip import read_clip

    with pytest.raises(MotifLiteError, match=r"then give -i fox\.png \(in Python image= that file\)$"):
        load_image("https://example.com/fox.png")
    with pytest.raises(MotifLiteError, match=r"then give --extend fox\.mp4 \(in Python extend= that file\)$"):
        read_clip("https://example.com/fox.mp4")
    write_video(np.zeros((5, 16, 16, 3), np.uint8), tmp_path / "clip.mp4", fps=24)
    with pytest.raises(MotifLiteError, match=r"instead of -i \(in Python extend= instead of image=\); or take"):
        load_image(tmp_path / "clip.mp4")


def test_an_image_named_in_other_letter_case_or_read_from_a_pipe_is_told_what_to_give(tmp_path):
    # `-i Photo.JPG` for photo.jpg (a case-blind folder's habit), `-i photo` for photo.png, `-i -` and a pipe
    # (`-i /dev/stdin` piped, `-i <(curl ...)`) were all "input image not found", the pipe's a file that is there.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.image import load_image

    PIL.Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    said = f"not found: {tmp_path}/Photo.JPG; {tmp_path}/photo.jpg is there (letter case counts in file names here)"
    with pytest.raises(MotifLiteError, match=re.escape(said)):
        load_image(tmp_path / "Photo.JPG")
    with pytest.raises(MotifLiteError, match=re.escape(f"not found: {tmp_path}/photo; {tmp_path}/photo.jpg is there")):
        load_image(tmp_path / "photo")
    PIL.Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")  # two images of that name: no guess
    with pytest.raises(MotifLiteError, match=re.escape(f"input image not found: {tmp_path}/photo") + "$"):
        load_image(tmp_path / "photo")
    with pytest.raises(MotifLiteError, match="no image is read from standard input; save it to a file"):
        load_image("-")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(MotifLiteError, match=r"pipe is not a regular file \(a pipe, .*save it to a file first"):
        load_image(tmp_path / "pipe")  # never opened: a pipe's reader would wait for a writer


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX's file size limit")
def test_ffmpeg_stopped_by_the_file_size_limit_says_to_raise_it(tmp_path, monkeypatch):
    # A video over the shell's `ulimit -f` kills ffmpeg by SIGXFSZ, without a word: the error said "ffmpeg stopped
    # without saying why" and offered .webp and PNG frames, which the same limit stops.
    fake = _fake_ffmpeg(tmp_path / "ffmpeg", '[ "$1" = -version ] && exit 0\ncat > /dev/null\nkill -XFSZ $$')
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(MotifLiteError) as error:
        write_video(_video(), tmp_path / ".partial-7-x.mp4", 24.0, META)
    # The limit may be a systemd service's LimitFSIZE or a container's, not the shell's: the text names each.
    assert str(error.value) == (
        f"ffmpeg could not write {tmp_path / 'x.mp4'}: ffmpeg was stopped at the file size limit: raise the file "
        "size limit where it is set: ulimit -f unlimited in the shell that starts motif-lite, LimitFSIZE=infinity "
        "for a systemd service, or the container's fsize ulimit"
    )


def test_a_folder_of_whole_gguf_files_named_like_parts_is_a_choice_between_them(tmp_path):
    # The quantizer's -o is the user's to name: two whole files named as gguf-split names its parts were read as one
    # split file, and the first loaded without a word. Only a first part's header records split.count.
    import gguf

    names = ["mv-00001-of-00002.gguf", "mv-00002-of-00002.gguf"]
    for name in names:
        writer = gguf.GGUFWriter(tmp_path / name, "motif_video")
        writer.add_tensor("proj_out.weight", np.ones((2, 32), np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    with pytest.raises(
        CheckpointError, match=re.escape(f"must hold exactly one .gguf file (found: {', '.join(names)})")
    ):
        single_gguf(tmp_path)


def test_a_png_sequences_pattern_given_as_the_image_names_the_python_keywords_too(tmp_path):
    # The Python API reaches this check: it named run's -i and --extend alone, as a clip given as the image does not.
    for index in range(2):
        PIL.Image.new("RGB", (8, 8)).save(tmp_path / f"fox_{index:03d}.png")
    pattern = tmp_path / "fox_%03d.png"
    with pytest.raises(MotifLiteError) as refused:
        load_image(pattern)
    said = str(refused.value)
    assert "-i (in Python image=) takes one image" in said, said
    assert f"--extend {pattern} in place of -i (in Python extend= instead of image=)" in said, said
    with pytest.raises(MotifLiteError) as refused:  # verify has no Python caller: its words name -i alone
        read_image(pattern, Audience.VERIFY)
    assert "Python" not in str(refused.value) and "and -i takes one image" in str(refused.value), refused.value


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_an_output_folder_that_lost_its_permissions_is_not_said_to_be_removed():
    # A folder above the output's that may no longer be entered makes `is_dir` False, as for a removed folder: the
    # video's failure said "its folder ... is no longer there (removed or unmounted ...)" of a folder still there.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    with folder_closed_to_others("out") as (base, closed):  # an ancestor of the output's folder, taken away midway
        writable_once = base / "kept"
        writable_once.mkdir()
        writable_once.chmod(0o555)  # the output's folder itself, now read-only (chmod: mkdir's mode obeys the umask)
        said = _as_another_user(lambda: ffmpeg_writer._write_failure(closed / "out" / "x.mp4", None))
        assert said == repr(
            f"its folder {closed / 'out'} cannot be reached: this process may no longer enter {closed} (its "
            "permissions changed since the run began; it needs x, search permission): give it back, or write to "
            "another folder"
        ), said
        said = _as_another_user(lambda: ffmpeg_writer._write_failure(writable_once / "x.mp4", None))
        assert "Permission denied" in said and "no longer there" not in said, said
        said = _as_another_user(lambda: ffmpeg_writer._write_failure(base / "gone" / "x.mp4", None))
        assert said == repr(f"its folder {base / 'gone'} is no longer there (removed or unmounted since the run began)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_an_output_in_a_folder_this_process_may_not_enter_is_refused_with_that_folder():
    # `-o` under a folder this user may not enter was a PermissionError traceback from check_output_path's is_dir
    # (Python 3.10-3.13): at the start, and at the decode once the permissions changed as the run went on, where
    # write_video checks its partial file's path before ffmpeg runs (`_write_failure` came too late to say it).
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    with folder_closed_to_others("out") as (base, closed):
        for output in (closed / "out" / "fox.mp4", closed / "fox.webp"):  # under it, or in it
            said = _as_another_user(lambda output=output: check_output_path(output))
            expected = (
                f"the output's folder {output.parent} cannot be reached: this process may not enter {closed} (it "
                "needs x, search permission there): write the video to another folder (-o (in Python output=))"
            )
            assert said == repr(MotifLiteError(expected)), said
        partial = closed / "out" / f"{staging.PARTIAL_PREFIX}7-fox.mp4"  # as the decode writes it
        frames = np.zeros((1, 16, 16, 3), np.uint8)
        said = _as_another_user(lambda: write_video(frames, partial, 24.0, META))
        assert said.startswith("MotifLiteError(") and f"may not enter {closed} " in said, said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_latents_whose_output_folder_may_no_longer_be_entered_go_to_the_fallback_folder():
    # The first save looks for a free name beside the output (Path.exists): a folder on its way closed while the run
    # went on made that a PermissionError outside the save's try, so the fallback folder was never tried and the
    # run's sampling was said to be saved nowhere.
    from motif_lite.io.latents import SavedLatents
    from motif_lite.io.latents_saving import LatentsFile

    # The other user makes the fallback folder in base.
    with folder_closed_to_others("out", base_mode=0o777) as (base, closed):
        fallback = base / "fallback"
        output = closed / "out" / "fox.mp4"
        saved = SavedLatents(torch.zeros(1, 16, 2, 4, 4), output, 32, 32, 5, 24.0, "float32")

        def save() -> tuple[str, str]:
            keeper = LatentsFile(output, None, fallback)
            return str(keeper.save(saved)), str(keeper.moved)

        said = _as_another_user(save)
        assert said.startswith(f"('{fallback / 'fox.latents.safetensors'}', "), said
        assert "Permission denied" in said, said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_decode_into_a_folder_that_may_no_longer_be_entered_tells_why_not_the_partials_removal():
    # The decode writes its partial file within staged_output, which removes it on a failure: that removal's own
    # PermissionError (the folder closed as the run went on) took the place of write_video's refusal, a traceback.
    from motif_lite.io.staging import staged_output

    with folder_closed_to_others("out") as (base, closed):

        def decode() -> None:
            with staged_output(closed / "out" / "fox.mp4", 1) as staged:
                write_video(np.zeros((1, 16, 16, 3), np.uint8), staged.partial, 24.0, META)

        said = _as_another_user(decode)
        assert said.startswith("MotifLiteError(") and f"may not enter {closed} " in said, said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_preview_in_a_folder_this_process_may_not_enter_is_refused_with_that_folder():
    # --preview under a folder this user may not enter was a PermissionError traceback from check_preview_path's
    # is_dir (Python 3.10-3.13), as -o's was.
    from motif_lite.io.preview import check_preview_path

    with folder_closed_to_others("out") as (base, closed):
        preview = closed / "out" / "preview.webp"
        said = _as_another_user(lambda: check_preview_path(preview))
        expected = (
            f"preview {preview}: this process may not enter {closed} (it needs x, search permission there): write "
            "the preview to another folder"
        )
        assert said == repr(MotifLiteError(expected)), said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_the_closed_folder_named_is_the_first_that_may_not_be_entered_not_one_that_may_not_be_read(tmp_path):
    # A folder of mode 711 may be entered (x), not listed (r): the way goes on through it, so the folder named is
    # the closed one below it; and where every folder may be entered, none is named.
    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    unlisted, closed = base / "unlisted", base / "unlisted" / "closed"
    try:
        base.chmod(0o755)
        (closed / "out").mkdir(parents=True)
        closed.chmod(0o000)
        unlisted.chmod(0o711)
        said = _as_another_user(lambda: staging.closed_on_the_way(closed / "out" / "fox.mp4"))
        assert said == repr(str(closed)), said
    finally:
        unlisted.chmod(0o755)
        closed.chmod(0o755)
        shutil.rmtree(base)
    assert staging.closed_on_the_way(tmp_path / "fox.mp4") == "a folder above it"  # root enters them all


def test_the_fallbacks_warning_names_what_holds_a_file_open_on_windows(tmp_path, monkeypatch, caplog):
    # It said "open in a player" alone; a sync client (OneDrive, Dropbox) or an antivirus scan holds a new video
    # open as often, and a user with no player open was left guessing.
    replace = os.replace

    def in_use(source, target):
        if Path(target).name == "fox.mp4":
            raise PermissionError(13, "The process cannot access the file", str(target))
        return replace(source, target)

    monkeypatch.setattr(os, "replace", in_use)
    beside = tmp_path / "fox-new.mp4"
    with staging.staged_output(tmp_path / "fox.mp4", 1, fallback=lambda path: beside) as staged:
        staged.partial.write_bytes(b"video")
    assert staged.written == beside
    assert "a player, a sync client (OneDrive, Dropbox) or an antivirus scan" in caplog.text, caplog.text


def test_text_whose_ninth_character_opens_a_brace_is_text_not_a_safetensors_file():
    # A safetensors file starts with its header's length (8 bytes, little-endian), then the header's "{": eight
    # letters read as that length give a number far past any header, so this is text.
    why = not_an_image(b'settings{"prompt": "a fox in the snow"}\n', None)
    assert why is not None and why.startswith("it holds text, not an image"), why


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_home_this_user_may_not_enter_counts_as_none_for_the_cache(monkeypatch):
    # Another user's home left in HOME (`su -m`, `sudo -E`): looking for ~/.cache/motif-lite under it raised
    # PermissionError, a traceback from every command that finds the cache, instead of the temporary directory.
    with folder_closed_to_others("home") as (base, closed):
        temp = base / "temp"
        temp.mkdir()
        temp.chmod(0o777)
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        said = _as_another_user(lambda: user_cache_folder({"HOME": str(closed / "home")}, 54321))
        assert said == repr(temp / "motif-lite-cache-54321"), said


def test_the_narrowest_space_padding_is_refused_too(tmp_path):
    # %2d is the least padding there is (%1d and %d pad nothing): `f_ 7.png` is a space-padded name as `f_    7.png` is.
    with pytest.raises(MotifLiteError, match=re.escape("pads the frame number with spaces (%2d: 'f_ 7.png')")):
        check_output_path(tmp_path / "f_%2d.png", 9)


def test_a_printf_placeholder_of_another_letter_is_told_ours_for_one_frame_too(tmp_path):
    # f_#.png may be one image's plain name, but f_%04i.png holds a %: it is a pattern for any frame count, and is
    # told %04d, not the vaguer "one frame-number pattern and no other %".
    with pytest.raises(MotifLiteError) as refused:
        check_output_path(tmp_path / "f_%04i.png", 1)
    assert "writes its frame number as another tool does (%04i)" in str(refused.value), refused.value
    assert str(refused.value).endswith(f"-o {tmp_path / 'f_%04d.png'}"), refused.value


def test_an_output_folder_with_exactly_the_full_disks_bytes_free_is_not_full(tmp_path, monkeypatch):
    # Full is under FULL_DISK_BYTES free, as io.staging's out_of_space counts it for a write that failed.
    real = shutil.disk_usage
    free = {"bytes": staging.FULL_DISK_BYTES}
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=free["bytes"]))
    assert check_output_path(tmp_path / "fox.mp4")
    free["bytes"] -= 1
    with pytest.raises(MotifLiteError, match=r"the disk of output directory .* is full"):
        check_output_path(tmp_path / "fox.mp4")


def test_a_folder_typed_with_a_trailing_dot_is_said_a_folder_not_a_name_ending_in_a_dot(tmp_path, monkeypatch):
    # `-o renders/.` names the folder itself: "ends in a dot: -o renders/" would send the user to another refusal.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "renders").mkdir()
    with pytest.raises(MotifLiteError, match=r"output path renders is a directory; give a file name, e\.g\. "):
        check_output_path("renders/.")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm"])
def test_ffmpeg_formats_tag_primaries_and_transfer_bt709_too(tmp_path, suffix):
    # The encoder options alone left primaries and transfer "unknown" with imageio-ffmpeg's ffmpeg (the stream read
    # "yuv420p(tv, bt709/unknown/unknown, progressive)"), for an editor to guess; ffmpeg writes "bt709" once when the
    # matrix, primaries and transfer are all BT.709.
    path = write_video(np.zeros((2, 16, 32, 3), np.uint8), tmp_path / f"black{suffix}", fps=24)
    stream = re.search(r"Video: .*", _ffprobe_comment(path)).group(0)
    assert "yuv420p(tv, bt709, progressive)" in stream, stream


def test_the_documented_reencoding_of_png_frames_tags_primaries_and_transfer_too(tmp_path, monkeypatch):
    # docs/usage.md's command gave "bt709/unknown/unknown" with imageio-ffmpeg's ffmpeg, as the writer did.
    monkeypatch.chdir(tmp_path)
    Path("frames").mkdir()
    write_video(np.zeros((2, 16, 32, 3), np.uint8), "frames/fox_%03d.png", fps=24)
    subprocess.run(_documented_ffmpeg("-framerate"), check=True)
    stream = re.search(r"Video: .*", _ffprobe_comment("fox-small.mp4")).group(0)
    assert "yuv420p(tv, bt709, progressive)" in stream, stream


def test_a_frame_pattern_too_narrow_for_the_last_frame_number_gets_a_note_naming_a_wider_one(tmp_path):
    # 1001 frames in f_%03d.png end at f_1000.png, which name-sorting puts between f_100.png and f_101.png: a long
    # chain of extensions reaches it, and nothing said so.
    from motif_lite.io.output_checks import narrow_frame_numbers_note

    pattern = tmp_path / "f_%03d.png"
    note = narrow_frame_numbers_note(pattern, 1001)
    assert note is not None and note.startswith("f_%03d.png pads frame numbers to 3 digits, but this video's 1001 ")
    assert "between f_100.png and f_101.png" in note and f"-o {tmp_path / 'f_%04d.png'} keeps" in note, note
    assert narrow_frame_numbers_note(pattern, 1000) is None  # f_999.png is the last
    assert narrow_frame_numbers_note(tmp_path / "f_%d.png", 5000) is None  # no padding asked for
    assert narrow_frame_numbers_note(tmp_path / "f.mp4", 5000) is None
    # With --batch-count the note came once per video, each naming its numbered pattern (f-1_%03d.png ...) and an
    # -o (f-1_%04d.png) that the batch would number again: once per run, for the pattern given.
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "1001", "-b", "3", "-s", "1"])
    args.output = str(pattern)
    _, notes = run_command.resolve_requests(args, run_command.request_from_args(args))
    narrow = [note for note in notes if "pads frame numbers" in note]
    assert narrow == [narrow_frame_numbers_note(pattern, 1001)], narrow


def test_an_ffmpeg_before_4_3_writes_mp4_without_setparams_colour_options(tmp_path, monkeypatch):
    # setparams takes color_primaries, color_trc and colorspace from ffmpeg 4.3 on: Ubuntu 20.04's 4.2 (named by
    # IMAGEIO_FFMPEG_EXE) refused the filter, which failed every .mp4 write after the whole sampling.
    real = imageio_ffmpeg.get_ffmpeg_exe()
    old = _fake_ffmpeg(
        tmp_path / "ffmpeg-4.2",
        "case \"$1\" in -version) echo 'ffmpeg version 4.2.7-0ubuntu0.1 Copyright (c) 2000-2022'; exit 0;; esac\n"
        'for a in "$@"; do case "$a" in *setparams=*color_primaries*) '
        "echo \"[setparams] Option 'color_primaries' not found\" >&2; exit 1;; esac; done\n"
        f'exec {shlex.quote(real)} "$@"',
    )
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(old))
    path = write_video(np.zeros((2, 16, 32, 3), np.uint8), tmp_path / "old.mp4", fps=24)
    stream = re.search(r"Video: .*", _ffprobe_comment(path)).group(0)
    assert "yuv420p(tv, bt709" in stream, stream  # the matrix tag, from the encoder options
