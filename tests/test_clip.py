"""motif_lite/io/clip.py's facts about video files, shared with the other readers of the io layer."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import motif_lite
from motif_lite.io.file_kinds import MATROSKA_MAGIC
from motif_lite.io.image import not_an_image

PACKAGE = Path(motif_lite.__file__).parent


def test_the_matroska_magic_bytes_are_spelled_once_in_the_package():
    # A second spelling of the EBML header's ID could drift from the one the clip checks use.
    spellings = re.compile(r"\\x1a(?:\\x45|E)\\xdf\\xa3|0x1a45dfa3", re.IGNORECASE)
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if spellings.search(line)
    ]
    assert len(found) == 1 and found[0].startswith("io/file_kinds.py:"), found


def test_a_matroska_file_given_as_an_image_is_named_a_video():
    why = not_an_image(MATROSKA_MAGIC + b"\x9f\x42\x86\x81\x01webm", Path("fox.webm"))
    assert why is not None and why.startswith("it is a video, not an image") and "--extend fox.webm" in why


def test_a_video_whose_frames_are_known_is_checked_without_counting_them(tmp_path, monkeypatch):
    import imageio_ffmpeg

    from motif_lite.io.clip import ClipError, read_clip
    from motif_lite.io.video import write_video

    pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    video = write_video(pixels, tmp_path / "fox.mp4", 12.0)
    counted = read_clip(video)  # the whole video decoded to count its frames
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda *a, **k: pytest.fail("frames counted"))
    assert read_clip(video, frames=5) == counted and counted.frames == 5
    video.write_bytes(video.read_bytes()[:-100])
    with pytest.raises(ClipError, match="is cut short"):  # the checks that need no decode stay
        read_clip(video, frames=5)


def test_a_video_of_one_frame_known_is_refused_as_one_counted(tmp_path):
    # The server's count of a 1-frame video it wrote stands in for ffmpeg's: the same refusal.
    from motif_lite.io.clip import ClipError, read_clip
    from motif_lite.io.video import write_video

    video = write_video(np.zeros((1, 32, 48, 3), dtype=np.uint8), tmp_path / "still.mp4", 12.0)
    for frames in (None, 1):
        with pytest.raises(ClipError, match="still.mp4 has 1 frame: there is nothing to go on from"):
            read_clip(video, frames=frames)


def test_a_clip_of_one_frame_gets_a_first_frame_that_i_takes(tmp_path, monkeypatch):
    # -i reads images only: "use -i instead" for a one-frame video sent the user to -i's "it is a video" error. The
    # video's refusal gives the ffmpeg command that takes its frame as a PNG, and a PNG sequence's names its file.
    import shlex
    import subprocess

    from motif_lite.io.clip import ClipError, read_clip
    from motif_lite.io.ffmpeg import find_ffmpeg
    from motif_lite.io.image import load_image
    from motif_lite.io.video import write_video

    monkeypatch.chdir(tmp_path)
    frame = np.full((1, 32, 48, 3), 200, dtype=np.uint8)
    write_video(frame, tmp_path / "still.mp4", 12.0)
    with pytest.raises(ClipError) as refused:
        read_clip("still.mp4")
    command = re.search(r"ffmpeg (.*), then -i (\S+)$", str(refused.value))
    assert command is not None, refused.value
    subprocess.run([find_ffmpeg(), "-v", "error", *shlex.split(command[1])], check=True)
    assert load_image(command[2]).size == (48, 32)

    write_video(frame, tmp_path / "f_%03d.png", 12.0)
    with pytest.raises(ClipError, match=r"with -i f_000\.png instead$"):
        read_clip("f_%03d.png")
    (tmp_path / "f_000.png").rename(tmp_path / "g_001.png")  # numbered from 1, as ffmpeg's -start_number 1 writes
    with pytest.raises(ClipError, match=r"with -i g_001\.png instead$"):
        read_clip("g_%03d.png")


def test_the_clip_messages_say_what_to_do_in_run_words_by_default_and_in_api_words_for_the_server(tmp_path):
    # The server asks for the API's words (`audience=`): its client uploaded the file, and has no -i nor --extend.
    from motif_lite.errors import Audience
    from motif_lite.io.clip import Clip, ClipError, hdr_note, read_clip
    from motif_lite.io.video import write_video

    image = tmp_path / "fox.jpg"
    PIL.Image.new("RGB", (48, 32)).save(image)
    still = write_video(np.zeros((1, 32, 48, 3), dtype=np.uint8), tmp_path / "still.mp4", 12.0)
    hdr = Clip(tmp_path / "phone.mov", 5, 48, 32, 30.0, hdr="HLG")
    run_words = ["fox.jpg is one image, not a clip: to start a video from it use -i", "start image-to-video from it "
                 f"with -i instead, as a PNG: ffmpeg -i {still} -frames:v 1 -y {tmp_path / 'still.png'}, then -i "
                 f"{tmp_path / 'still.png'}", ", and extend that"]  # fmt: skip
    api_words = ["fox.jpg is one image, not a clip: to start a video from it, send it as input_reference",
                 "start image-to-video from such a frame with input_reference instead", ", and send that"]  # fmt: skip
    for audience, (one_image, one_frame, go_on) in [(None, run_words), (Audience.API, api_words)]:
        given = {} if audience is None else {"audience": audience}
        with pytest.raises(ClipError) as refused:
            read_clip(image, **given)
        assert str(refused.value).startswith(one_image)
        assert ("-i " in str(refused.value)) is (audience is None)  # nor a path of the server's disk
        with pytest.raises(ClipError) as refused:
            read_clip(still, **given)
        assert str(refused.value).endswith(one_frame)
        assert hdr_note(hdr, **given).endswith(go_on)


def test_a_clip_read_to_its_end_or_stopped_early_leaves_no_pipe_to_the_garbage_collector(tmp_path):
    # imageio-ffmpeg's reader left a finished ffmpeg's pipes to be collected: a ResourceWarning (`python -X dev`)
    # for each clip read to its end, i.e. twice in each run of --extend.
    import gc
    import warnings

    from motif_lite.io.clip import clip_frames, last_frame, read_clip
    from motif_lite.io.video import write_video

    # 48 KiB of RGB a frame: ffmpeg cannot finish before read_clip stops it (imageio's reader closes pipes then)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    clip = read_clip(write_video(pixels, tmp_path / "fox.mp4", 24.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        frames = list(clip_frames(clip))
        last = last_frame(clip)
        stopped = clip_frames(clip)
        next(stopped)
        stopped.close()  # as a failed write stops reading the clip
        gc.collect()
    assert len(frames) == 4 and last.size == (128, 128) and frames[0].flags.writeable
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []


def test_a_tiny_clip_whose_frames_fit_in_a_pipe_leaves_no_pipe_to_the_garbage_collector(tmp_path):
    # Its header was read through imageio-ffmpeg's reader, whose ffmpeg had decoded the whole clip into the pipe and
    # finished by the time it was stopped: the reader then left its pipes to be collected, one ResourceWarning
    # (`python -W error::ResourceWarning`) per clip checked.
    import gc
    import warnings

    from motif_lite.io.clip import read_clip
    from motif_lite.io.video import write_video

    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    video = write_video(pixels, tmp_path / "fox.mp4", 24.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        clips = [read_clip(video), read_clip(video, frames=4)]
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []
    assert clips[0] == clips[1] and (clips[0].frames, clips[0].size, clips[0].fps) == (4, (16, 16), 24.0)


@pytest.mark.parametrize(("rate", "fps"), [("30000/1001", 30000 / 1001), ("25", 25.0), ("25/2", 12.5)])
def test_a_clip_another_tool_made_is_read_at_its_exact_rate(tmp_path, rate, fps):
    # No motif-lite settings to say the rate: ffmpeg's header says 29.97, its showinfo filter 30000/1001.
    import subprocess

    from motif_lite.io.clip import read_clip
    from motif_lite.io.ffmpeg import find_ffmpeg

    clip = tmp_path / "camera.mp4"
    source = ["-f", "lavfi", "-i", f"testsrc=size=32x32:rate={rate}:duration=0.5"]
    subprocess.run([find_ffmpeg(), "-v", "error", *source, "-pix_fmt", "yuv420p", str(clip)], check=True)
    assert read_clip(clip).fps == fps


def test_a_video_that_ends_in_the_middle_of_a_frame_is_refused_not_cut_short(tmp_path):
    # The frames are read at the size read_clip found: a stream that stops within a frame (the file changed since)
    # is an error, not a clip one frame shorter than counted.
    import dataclasses

    from motif_lite.io.clip import ClipError, clip_frames, read_clip
    from motif_lite.io.video import write_video

    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    clip = read_clip(write_video(pixels, tmp_path / "fox.mp4", 24.0))
    taller = dataclasses.replace(clip, height=33)  # 3 frames of 32 rows are 2.9 frames of 33
    with pytest.raises(ClipError, match=r"fox\.mp4 ended in the middle of a frame: it changed since it was read"):
        list(clip_frames(taller))
    # One ffmpeg cannot decode (replaced since it was read) is an error too, not a clip of no frames.
    (tmp_path / "fox.mp4").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(ClipError, match=r"ffmpeg could not decode \S*fox\.mp4: .*; give a video that plays"):
        list(clip_frames(clip))


@pytest.mark.parametrize("name", ["take:2.mp4", "12:30.webm"])
def test_a_video_with_a_colon_in_its_name_is_written_and_read_back(tmp_path, monkeypatch, name):
    # ffmpeg reads `take:` as a protocol, so a name in the current folder with a colon failed with "Protocol not
    # found" after the whole run (and again in `decode`, --extend and --settings-from): ffmpeg is given file: paths.
    from motif_lite.io.clip import clip_frames, read_clip
    from motif_lite.io.settings_file import read_settings
    from motif_lite.io.video import write_video

    monkeypatch.chdir(tmp_path)  # the colon then comes before any slash, as in `-o take:2.mp4`
    pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    video = write_video(pixels, name, 12.0, {"software": "motif-lite", "prompt": "a fox"})
    assert video == Path(name) and (tmp_path / name).stat().st_size > 0
    clip = read_clip(name)
    assert (clip.frames, clip.width, clip.height) == (5, 48, 32)
    assert len(list(clip_frames(clip))) == 5
    assert read_settings(name).values["prompt"] == "a fox"


def test_a_16_bit_grayscale_png_sequence_keeps_its_levels(tmp_path):
    # Pillow's own conversion clips 16-bit levels at 255: every frame of a mid-gray 16-bit sequence became white,
    # where -i of the same file (io/image.py) read its levels.
    from motif_lite.io.clip import clip_frames, last_frame, read_clip

    levels = np.random.default_rng(0).integers(0, 65536, (3, 5, 7), dtype=np.uint16)
    for number, frame in enumerate(levels):
        PIL.Image.fromarray(frame).save(tmp_path / f"gray16_{number:03d}.png")
    with PIL.Image.open(tmp_path / "gray16_000.png") as opened:
        assert opened.mode.startswith("I")  # what Pillow makes of it
    clip = read_clip(tmp_path / "gray16_%03d.png")
    expected = np.repeat(np.round(levels / 257.0).astype(np.uint8)[..., None], 3, axis=-1)  # [F, H, W, 3]
    assert np.array_equal(np.stack(list(clip_frames(clip))), expected)
    assert np.array_equal(np.asarray(last_frame(clip)), expected[-1])


def write_apng(path: Path, frames: np.ndarray, durations_ms: list[float]) -> Path:
    """An animated PNG as Pillow writes one (`acTL` before its first `IDAT`, an `fcTL` delay before each frame)."""
    first, *rest = (PIL.Image.fromarray(frame) for frame in frames)
    first.save(path, save_all=True, append_images=rest, duration=durations_ms, loop=0, format="PNG")
    return path


@pytest.mark.parametrize(
    ("count", "durations_ms", "fps"),
    [
        (5, [1000 / 12] * 5, 12.0),  # ffmpeg's header gives the rate the delays make
        (2, [100, 100], 10.0),  # ffmpeg's header gives none: the frames' delays do
        (2, [100, 300], 5.0),  # delays that differ: their average rate, 2 frames in 0.4 s
        # ffmpeg's header says 8.17 fps: the clip would play 0.61 s, not the 0.53 s its 5 frames show for
        (5, [1000 / 12] * 4 + [200], 5 / (4 / 12 + 0.2)),
    ],
)
def test_an_animated_png_is_a_clip_with_its_frames_and_rate(tmp_path, count, durations_ms, fps):
    # It was refused as "one image, not a clip", though ffmpeg decodes it as it does a GIF.
    from motif_lite.io.clip import clip_frames, last_frame, read_clip

    pixels = np.random.default_rng(count).integers(0, 256, (count, 32, 48, 3), dtype=np.uint8)
    clip = read_clip(write_apng(tmp_path / "anim.png", pixels, durations_ms))
    assert (clip.frames, clip.size) == (count, (48, 32)) and clip.fps == pytest.approx(fps)
    assert np.array_equal(np.stack(list(clip_frames(clip))), pixels)  # lossless, each frame once
    assert np.array_equal(np.asarray(last_frame(clip)), pixels[-1])


def test_run_extends_an_animated_png_at_its_size_and_rate(shared_checkpoint, tmp_path, capsys):
    # `motif-lite run --extend anim.png` stopped at "anim.png is one image, not a clip: ... use -i".
    from motif_lite import cli

    pixels = np.random.default_rng(1).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    anim = write_apng(tmp_path / "anim.png", pixels, [100] * 3)
    dry_run = ["run", "--dry-run", "-m", str(shared_checkpoint[0]), "--device", "cpu", "--extend", str(anim)]
    assert cli.main([*dry_run, "-o", str(tmp_path / "longer.mp4")]) == 0
    out = capsys.readouterr()
    assert "64x48, 121 frames at 10 fps" in out.out and "holds its 3 frames and 120 new ones" in out.err


def test_an_animated_png_uploaded_under_a_video_name_has_its_rate_and_is_checked_for_its_end(tmp_path):
    # The server keeps an upload as ID.mp4: read as the APNG it is, at its delays' rate (not the 24 fps default),
    # and refused when cut short (ffmpeg reads the frames up to the cut without an error).
    from motif_lite.io.clip import ClipError, read_clip

    pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    data = write_apng(tmp_path / "anim.png", pixels[:2], [125, 125]).read_bytes()
    (tmp_path / "upload.mp4").write_bytes(data)
    assert read_clip(tmp_path / "upload.mp4").fps == 8.0
    long = write_apng(tmp_path / "long.png", pixels, [125] * 6).read_bytes()
    for name in ("cut.png", "cut.mp4"):
        (tmp_path / name).write_bytes(long[: len(long) * 2 // 3])
        with pytest.raises(ClipError, match=rf"{name} is cut short \(.*\): it lacks a PNG's end; copy or write it"):
            read_clip(tmp_path / name)


def with_chunk(png: bytes, kind: bytes, payload: bytes, before: bytes) -> bytes:
    """`png` with a chunk of `kind` added before its first chunk of type `before`."""
    at = png.index(before) - 4  # the length in front of the chunk's type
    chunk = kind + payload
    return png[:at] + len(payload).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + png[at:]


@pytest.mark.parametrize("kind", ["still", "animation of one frame", "damaged", "animation chunk after the image"])
def test_a_png_that_is_no_animation_is_still_one_image(tmp_path, kind):
    from motif_lite.io.clip import ClipError, read_clip
    from motif_lite.io.png_chunks import is_animated_png

    image = tmp_path / "shot.png"
    PIL.Image.new("RGB", (48, 32)).save(image)
    still = image.read_bytes()

    def animation(frames: int) -> bytes:  # an acTL chunk's data: its frame count, played forever
        return frames.to_bytes(4, "big") + (0).to_bytes(4, "big")

    if kind == "animation of one frame":  # an APNG, whose one frame (fcTL: 48x32 at 0,0 for 1/10 s) is an image
        frame = b"".join(n.to_bytes(4, "big") for n in (0, 48, 32, 0, 0)) + bytes([0, 1, 0, 10, 0, 0])
        image.write_bytes(with_chunk(with_chunk(still, b"acTL", animation(1), b"IDAT"), b"fcTL", frame, b"IDAT"))
        assert is_animated_png(image)
    elif kind == "damaged":  # its header cut short: Pillow cannot open it
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 20)
    elif kind == "animation chunk after the image":  # no APNG: its spec puts acTL before the first IDAT
        image.write_bytes(with_chunk(still, b"acTL", animation(2), b"IEND"))
        assert not is_animated_png(image)
    with pytest.raises(ClipError, match="^shot.png is one image, not a clip: to start a video from it use -i "):
        read_clip(image)


def test_an_animation_chunk_after_more_chunks_than_are_read_is_not_looked_for(tmp_path, monkeypatch):
    # A PNG of a million empty chunks (an upload of 12 MB) was walked to its end: a second in Python.
    from motif_lite.io import png_chunks

    monkeypatch.setattr(png_chunks, "MAX_CHUNKS", 50)  # as many ancillary chunks as a real PNG has before its image
    image = tmp_path / "shot.png"
    PIL.Image.new("RGB", (48, 32)).save(image)
    animated = with_chunk(image.read_bytes(), b"acTL", (2).to_bytes(4, "big") + bytes(4), b"IDAT")
    # IHDR, the comments, then acTL: the last chunk read, or the first one not read.
    for comments, found in ((png_chunks.MAX_CHUNKS - 2, True), (png_chunks.MAX_CHUNKS - 1, False)):
        padded = animated
        for _ in range(comments):
            padded = with_chunk(padded, b"tEXt", b"", b"acTL")
        image.write_bytes(padded)
        assert png_chunks.is_animated_png(image) is found


def test_a_png_cut_right_after_its_animation_chunk_is_an_animation_cut_short(tmp_path):
    # A chunk that ends at the file's last byte is read: a file cut just after its acTL is an APNG cut short, not a
    # still image (an APNG cut at the end of any chunk lacks its last one otherwise).
    from motif_lite.io.clip import ClipError, read_clip
    from motif_lite.io.png_chunks import is_animated_png

    image = tmp_path / "anim.png"
    PIL.Image.new("RGB", (48, 32)).save(image)
    animated = with_chunk(image.read_bytes(), b"acTL", (2).to_bytes(4, "big") + bytes(4), b"IDAT")
    image.write_bytes(animated[: animated.index(b"IDAT") - 4])  # up to acTL's CRC, its last byte the file's last
    assert is_animated_png(image)
    with pytest.raises(ClipError, match=r"anim.png is cut short \(.*\): it lacks a PNG's end"):
        read_clip(image)


def test_an_animated_png_whose_frames_show_for_no_time_has_no_rate_of_its_own(tmp_path):
    # Delays of 0 (Pillow's duration=0) sum to no time: no rate from them (not a ZeroDivisionError), and the clip is
    # read at the rate ffmpeg or the default gives.
    from motif_lite.io.clip import read_clip
    from motif_lite.io.png_chunks import animated_png_rate

    pixels = np.random.default_rng(2).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    anim = write_apng(tmp_path / "anim.png", pixels, [0, 0])
    assert animated_png_rate(anim) is None
    clip = read_clip(anim)
    assert clip.frames == 2 and clip.fps > 0


def test_an_animated_png_with_stray_bytes_after_its_end_is_whole(tmp_path):
    # Pillow ignores bytes after IEND (a tool's padding): the PNG's end is looked for in the file's last bytes, not
    # only at its very end, so such a file is not told it is cut short.
    from motif_lite.io.clip import read_clip

    pixels = np.random.default_rng(3).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    anim = write_apng(tmp_path / "anim.png", pixels, [100, 100])
    anim.write_bytes(anim.read_bytes() + bytes(16))
    clip = read_clip(anim)
    assert (clip.frames, clip.fps) == (2, 10.0)


@pytest.mark.parametrize(
    ("size", "matrix", "tag", "pixels"),
    [
        ("1280x720", "bt709", "unknown", "yuv420p"),  # HD with no tag: players show it as BT.709
        ("640x480", "bt601", "unknown", "yuv420p"),  # SD with no tag: players show it as BT.601, as ffmpeg decodes it
        ("1280x720", "bt601", "smpte170m", "yuv420p"),  # a tag says the matrix, whatever the size
        ("1280x720", "bt601", "unknown", "yuvj420p"),  # JPEG's full range (a camera's MJPEG) is BT.601 by its standard
    ],
)
def test_a_clips_frames_have_the_colours_players_show(tmp_path, size, matrix, tag, pixels):
    # ffmpeg decodes every untagged video with the BT.601 matrix: an untagged HD clip (ffmpeg's own default output, a
    # screen recorder's) gave its pure red as (229, 0, 0), where players show (255, 0, 0), to the longer video and to
    # the first frame of the new ones.
    import subprocess

    import imageio_ffmpeg

    from motif_lite.io.clip import clip_frames, read_clip

    path = tmp_path / "red.mp4"
    full = pixels.startswith("yuvj")
    encode = (
        f"scale=out_color_matrix={matrix}:out_range={'pc' if full else 'tv'},format={pixels},setparams=colorspace={tag}"
    )
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"color=red:s={size}:r=24"]
    subprocess.run([*command, "-frames:v", "2", "-vf", encode, "-c:v", "libx264", str(path)], check=True)
    first = next(clip_frames(read_clip(path)))
    assert np.abs(first[8, 8].astype(int) - (255, 0, 0)).max() <= 6, first[8, 8]


def test_an_untagged_hd_video_an_older_motif_lite_wrote_gives_back_the_frames_its_run_made(tmp_path, monkeypatch):
    # Before 2026-12-02 motif-lite converted with ffmpeg's default, BT.601, and tagged nothing: read as BT.709 (as an
    # untagged HD clip from another tool is), such a video's pure red came back as (255, 23, 0) to the extension.
    from motif_lite.io import ffmpeg_writer
    from motif_lite.io.clip import clip_frames, read_clip
    from motif_lite.io.video import write_video

    red = np.zeros((2, 720, 1280, 3), np.uint8)
    red[..., 0] = 255
    monkeypatch.setattr(ffmpeg_writer, "_bt709_options", lambda exe: [])  # the writer as it was then
    ours = write_video(red, tmp_path / "ours.mp4", fps=24, metadata={"software": "motif-lite", "seed": 1})
    other = write_video(red, tmp_path / "other.mp4", fps=24)  # another tool's untagged BT.601 video
    first = next(clip_frames(read_clip(ours)))
    assert np.abs(first[8, 8].astype(int) - (255, 0, 0)).max() <= 3, first[8, 8]
    assert next(clip_frames(read_clip(other)))[8, 8, 1] > 15  # as players show it: BT.709
