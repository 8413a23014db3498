"""`motif-lite run --extend CLIP` and `GenerationRequest(extend=...)`: going on from a clip's last frame, the clip's
frames and the new ones in one file, and the clip's mistakes refused before anything loads."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from stopped_runs import stop_after_first_step, stopped_run

from motif_lite import cli, pipeline
from motif_lite.io.clip import ClipError, clip_frames, read_clip
from motif_lite.io.ffmpeg import find_ffmpeg
from motif_lite.io.settings_file import read_settings
from motif_lite.io.video import write_video
from motif_lite.pipeline.metadata import unknown_stored_keys
from motif_lite.request import GenerationRequest, RequestError

PROMPT = "the fox runs off"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def make_clip(path: Path, frames: int = 9, width: int = 32, height: int = 32, fps: float = 24.0) -> Path:
    """A clip of random frames (written by motif-lite, as a clip to extend usually is)."""
    pixels = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return write_video(pixels, path, fps)


def png_frames(pattern: Path) -> list[np.ndarray]:
    files = sorted(pattern.parent.glob(pattern.name.replace("%03d", "[0-9][0-9][0-9]")))
    return [np.asarray(PIL.Image.open(file).convert("RGB")) for file in files]


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return pipeline.load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


def test_new_frames_are_those_of_image_to_video_from_the_last_frame(pipe, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    # The last frame as docs/usage.md's manual recipe extracts it.
    last = tmp_path / "last.png"
    command = [find_ffmpeg(), "-v", "error", "-sseof", "-1", "-i", str(clip), "-update", "1", "-y", str(last)]
    subprocess.run(command, check=True)
    same = dict(width=32, height=32, frames=5, steps=1, seed=5)
    pipe.generate(GenerationRequest(PROMPT, image=last, output=tmp_path / "i2v_%03d.png", **same))
    result = pipe.generate(GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer_%03d.png", **same))

    longer, i2v = png_frames(tmp_path / "longer_%03d.png"), png_frames(tmp_path / "i2v_%03d.png")
    clip_pixels = list(clip_frames(read_clip(clip)))
    assert len(longer) == result.frames_written == 9 + 5 - 1
    np.testing.assert_array_equal(np.stack(longer[:9]), np.stack(clip_pixels))  # the clip's frames, lossless here
    np.testing.assert_array_equal(np.stack(longer[9:]), np.stack(i2v[1:]))  # then the new ones after the first
    stored = read_settings(tmp_path / "longer_000.png").values
    assert (stored["extend"], stored["frames"], stored["image"]) == ("clip.mp4", 5, None)


def test_a_png_sequence_clip_and_an_mp4_output(pipe, tmp_path, clip_reads):
    make_clip(tmp_path / "clip_%03d.png", frames=6)
    request = GenerationRequest(PROMPT, extend=tmp_path / "clip_%03d.png", output=tmp_path / "longer.mp4",
                                width=32, height=32, frames=5, steps=1, seed=1)  # fmt: skip
    pipe.generate(request)
    assert read_clip(tmp_path / "longer.mp4").frames == 6 + 5 - 1
    assert clip_reads == [tmp_path / "clip_%03d.png"]  # once: checked, then its last frame and its frames again


def test_the_clip_decides_size_and_fps_unless_a_flag_does(checkpoint, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=48, fps=12.0)
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip)]
    assert cli.main([*dry_run, "-o", str(tmp_path / "o.mp4")]) == 0
    out = capsys.readouterr()
    assert "64x48, 121 frames at 12 fps" in out.out
    assert "holds its 9 frames and 120 new ones, 129 in all" in out.err
    assert cli.main([*dry_run, "--fps", "24", "-o", str(tmp_path / "o.mp4")]) == 0
    out = capsys.readouterr()
    assert "64x48, 121 frames at 24 fps" in out.out and "24 fps is not the clip's 12" in out.err
    assert "--fps 12 (in Python fps=12) keeps the clip's rate" in out.err


def rate_ffmpeg_reads(video: Path) -> str:
    """The frame rate of `video` as a fraction, as ffmpeg's showinfo filter says it (its header rounds: 23.98)."""
    command = [find_ffmpeg(), "-nostdin", "-i", str(video), "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"]
    said = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    return re.search(r"config in time_base: \S+, frame_rate: (\d+/\d+)", said)[1]


@pytest.mark.parametrize("rate", [24000 / 1001, 30000 / 1001])
def test_an_ntsc_clip_is_extended_at_its_exact_rate(checkpoint, tmp_path, rate):
    # ffmpeg's header says 23.98 fps; taken as the rate, the longer video would play at 1199/50 fps, not NTSC's.
    clip = make_clip(tmp_path / "clip.mp4", fps=rate)
    longer = tmp_path / "longer.mp4"
    run = ["run", "-m", str(checkpoint), "--device", "cpu", "-p", PROMPT, "--extend", str(clip)]
    assert cli.main([*run, "--video-frames", "5", "--steps", "1", "-o", str(longer)]) == 0
    assert rate_ffmpeg_reads(longer) == rate_ffmpeg_reads(clip) == f"{round(rate * 1001)}/1001"
    assert read_settings(longer).values["fps"] == rate


def refused(tmp_path, capsys, monkeypatch, *flags: str) -> str:
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    code = cli.main(["run", "-m", str(tmp_path / "no-model"), "-p", PROMPT, "--device", "cpu", *flags])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    return err


def test_clip_mistakes_are_refused_before_loading(tmp_path, capsys, monkeypatch):
    out = ("-o", str(tmp_path / "longer.mp4"))
    err = refused(tmp_path, capsys, monkeypatch, "--extend", str(tmp_path / "gone.mp4"), *out)
    assert "the clip to extend was not found" in err
    (tmp_path / "notes.txt").write_text("not a video")
    assert "has no video that ffmpeg can read" in refused(tmp_path, capsys, monkeypatch, "--extend",
                                                          str(tmp_path / "notes.txt"), *out)  # fmt: skip
    one = make_clip(tmp_path / "one.mp4", frames=1)
    assert "one.mp4 has 1 frame: " in refused(tmp_path, capsys, monkeypatch, "--extend", str(one), *out)
    clip = make_clip(tmp_path / "clip.mp4")
    err = refused(tmp_path, capsys, monkeypatch, "--extend", str(clip), "-i", str(tmp_path / "first.png"), *out)
    assert "give -i (in Python image=) to start from an image, or --extend (in Python extend=)" in err
    err = refused(tmp_path, capsys, monkeypatch, "--extend", str(clip), "-o", str(clip))
    assert "would replace the clip" in err and clip.stat().st_size > 0
    err = refused(tmp_path, capsys, monkeypatch, "--extend", str(clip), "-W", "48", *out)
    assert "clip.mp4 is 32x32 and the new frames would be 48x32" in err
    assert not (tmp_path / "longer.mp4").exists()


def test_the_clip_checks_name_the_setting_as_each_caller_gives_it(tmp_path, capsys, monkeypatch):
    # They named only run's flags (-i, --extend, --video-frames 5), which a Python caller of GenerationRequest or
    # generate(...) does not type: each now names the flag and the keyword.
    clip, image = make_clip(tmp_path / "clip.mp4"), tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32)).save(image)
    same = dict(width=32, height=32, output=tmp_path / "longer.mp4")
    with pytest.raises(RequestError, match=r"give -i \(in Python image=\) to start from an image, or --extend "
                       r"\(in Python extend=\) to go on from a clip's last frame, not both"):  # fmt: skip
        GenerationRequest(PROMPT, extend=clip, image=image, **same).resolve()
    with pytest.raises(RequestError, match=r"going on from a clip needs --video-frames 5 \(in Python frames=5\) or "):
        GenerationRequest(PROMPT, extend=clip, frames=1, **same).resolve()
    with pytest.raises(RequestError, match=r"give the longer video another name with -o \(in Python output=\)"):
        GenerationRequest(PROMPT, extend=clip, width=32, height=32, output=clip).resolve()
    # The same checks as `motif-lite run` meets them.
    err = refused(tmp_path, capsys, monkeypatch, "--extend", str(clip), "--video-frames", "1", "-W", "32", "-H", "32")
    assert "going on from a clip needs --video-frames 5 (in Python frames=5) or more: with 1" in err


@pytest.mark.parametrize(
    ("given", "fix"),
    [("https://example.com/v/fox.mp4?dl=1", "download it first, e.g. curl -L -o fox.mp4 "
      "'https://example.com/v/fox.mp4?dl=1', then give --extend fox.mp4"),
     ("file:///videos/my%20fox.mp4", "give its path, --extend '/videos/my fox.mp4'")],
)  # fmt: skip
def test_a_url_given_as_the_clip_says_what_to_give(given, fix):
    # It was "the clip to extend was not found: https:/example.com/..." (read as a path, one slash dropped).
    with pytest.raises(ClipError, match=re.escape(f"{given}, is a URL; motif-lite reads local files only: {fix}")):
        read_clip(given)


def test_a_clip_this_user_cannot_read_is_a_clip_error(tmp_path, capsys, monkeypatch):
    # Before: a PermissionError's traceback (root reads any file: the refusal is made up here).
    clip = make_clip(tmp_path / "clip.mp4")
    opened = Path.open

    def unreadable(path, *args, **kwargs):
        if path.name == clip.name:
            raise PermissionError(13, "Permission denied", str(path))
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", unreadable)
    with pytest.raises(ClipError, match=f"cannot read the clip to extend, {clip}: Permission denied"):
        read_clip(clip)


def test_a_clip_of_a_size_the_model_cannot_make_gets_the_resize_command(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", width=42, height=30)  # 42 / 16 = 2.6 -> 48
    with pytest.raises(Exception, match=r"scale=48:32"):
        GenerationRequest(PROMPT, extend=clip, width=48, height=32, output=tmp_path / "o.mp4").resolve()


def test_settings_from_an_extended_video_needs_the_clip_again(pipe, checkpoint, tmp_path, capsys, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    longer = tmp_path / "longer.mp4"
    pipe.generate(GenerationRequest(PROMPT, extend=clip, output=longer, width=32, height=32, frames=5, steps=1))
    err = refused(tmp_path, capsys, monkeypatch, "--settings-from", str(longer), "-o", str(tmp_path / "again.mp4"))
    assert "goes on from the clip clip.mp4" in err and "--extend PATH" in err
    # A server's extension of an upload stores the upload's name and checksum instead of its copy's name.
    served = tmp_path / "served.mp4"
    request = GenerationRequest(PROMPT, extend=clip, output=served, width=32, height=32, frames=5, steps=1)
    pipe.generate(request, stored_clip={"extend": "their clip.mp4", "extend_sha256": "ab" * 32})
    stored = read_settings(served).values
    assert (stored["extend"], stored["extend_sha256"]) == ("their clip.mp4", "ab" * 32)
    err = refused(tmp_path, capsys, monkeypatch, "--settings-from", str(served), "-o", str(tmp_path / "again.mp4"))
    assert (
        f"goes on from the clip their clip.mp4 (its first frames), and the file keeps the clip's name and SHA-256 "
        f"({'ab' * 32}) only: give it again with --extend PATH" in err
    )
    assert unknown_stored_keys(stored) == []  # a key of this version's
    # Another clip given: taken, with a note (the same clip, by its checksum: none).
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "-o", str(tmp_path / "again.mp4")]
    assert cli.main([*dry_run, "--settings-from", str(served), "--extend", str(clip)]) == 0
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert (
        f"note: served.mp4 went on from their clip.mp4 (sha256 {'ab' * 32}), and --extend clip.mp4 is another "
        f"file (sha256 {sha}): the new part goes on from it" in capsys.readouterr().err
    )
    pipe.generate(request, stored_clip={"extend": "their clip.mp4", "extend_sha256": sha})
    assert cli.main([*dry_run, "--settings-from", str(served), "--extend", str(clip)]) == 0
    assert "is another file" not in capsys.readouterr().err
    # A file the run made keeps no checksum: no note. A clip the note cannot read (its first reader, before the
    # clip's own checks, which say what is wrong with it): no note.
    assert cli.main([*dry_run, "--settings-from", str(longer), "--extend", str(clip)]) == 0
    assert "went on from" not in capsys.readouterr().err
    opened, denied = Path.open, []

    def unreadable(path, *args, **kwargs):
        if path.name == clip.name and not denied:
            denied.append(path)
            raise PermissionError(13, "Permission denied", str(path))
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", unreadable)
    assert cli.main([*dry_run, "--settings-from", str(served), "--extend", str(clip)]) == 0
    assert denied and "went on from" not in capsys.readouterr().err


def test_decode_of_an_extension_joins_the_clip_again_or_says_it_cannot(pipe, tmp_path, capsys, monkeypatch):
    """A failed decode of an extended run keeps the clip's path with its latents: `motif-lite decode` writes what the
    run would have written (the clip first); with the clip gone, the new part alone, with a note."""
    clip = make_clip(tmp_path / "clip_%03d.png", frames=6)
    same = dict(width=32, height=32, frames=5, steps=1, seed=2)
    whole = pipe.generate(GenerationRequest(PROMPT, extend=clip, output=tmp_path / "whole_%03d.png", **same))

    def cancel(stage, done, total):
        if stage == "decode":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(
            GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", **same), on_progress=cancel
        )
    latents = tmp_path / "longer.latents.safetensors"
    argv = ["decode", str(latents), "--device", "cpu", "-o"]
    assert cli.main([*argv, str(tmp_path / "decoded_%03d.png")]) == 0
    out = capsys.readouterr().out
    # The length as the run's note said it, (10 - 1) / 24 s (decode said 0.42 s, 10 / 24, where the note said 0.38).
    assert "extended: clip_%03d.png's 6 frames, then 4 new: 10 frames, 0.38 s at 24 fps" in out, out
    assert "10 in all (0.38 s at 24 fps)" in whole.notes[0], whole.notes
    np.testing.assert_array_equal(np.stack(png_frames(tmp_path / "decoded_%03d.png")),
                                  np.stack(png_frames(tmp_path / "whole_%03d.png")))  # fmt: skip
    assert cli.main([*argv, str(tmp_path / "clip_%03d.png")]) == 2  # never over the clip's own frames
    assert "would replace the clip" in capsys.readouterr().err
    for file in tmp_path.glob("clip_*.png"):
        file.unlink()
    assert cli.main([*argv, str(tmp_path / "alone_%03d.png")]) == 0
    assert "the clip this run went on from cannot be used" in capsys.readouterr().err
    assert len(png_frames(tmp_path / "alone_%03d.png")) == 5


@pytest.mark.parametrize("name", ["clip.mp4", "clip_%03d.png"])
def test_a_clip_deleted_during_the_run_is_said_moved_or_deleted(pipe, tmp_path, name):
    # Its frames are read again for the output after the sampling: a clip gone by then was said to be one ffmpeg
    # "could not decode" ("give a video that plays"), which sent the user to look for damage in a file not there.
    clip = make_clip(tmp_path / name, frames=6)

    def delete(stage, done, total):
        if stage == "denoise" and done == total:  # its frames are read again as the decode starts
            for file in tmp_path.glob("clip*"):
                file.unlink()

    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", width=32, height=32, frames=5,
                                steps=1, seed=2)  # fmt: skip
    with pytest.raises(ClipError) as error:
        pipe.generate(request, on_progress=delete)
    said = str(error.value)
    assert re.match(r".*clip(\.mp4|_000\.png) was moved or deleted since the run read it: put it back there\n", said)
    assert "ffmpeg" not in said and "run_decode(prepare_decode(" in said, said  # how to finish it, the clip back
    assert (tmp_path / "longer.latents.safetensors").is_file()


def test_a_stopped_extension_resumes_to_the_same_video_and_refuses_a_changed_clip(pipe, tmp_path, capsys):
    """`run --resume` of a stopped extension goes on with the clip the file names and makes the uninterrupted video;
    a clip overwritten since (its last frame, the run's first, another) is refused, as a changed input image is."""
    clip = make_clip(tmp_path / "clip_%03d.png", frames=6)
    same = dict(width=32, height=32, frames=5, steps=2, seed=4)
    pipe.generate(GenerationRequest(PROMPT, extend=clip, output=tmp_path / "whole_%03d.png", **same))

    for name in ("a", "b"):
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(GenerationRequest(PROMPT, extend=clip, output=tmp_path / f"{name}_%03d.png", **same),
                          on_progress=stop_after_first_step)  # fmt: skip
    argv = ["run", "--device", "cpu", "--kernels", "torch", "--resume"]
    assert cli.main([*argv, str(tmp_path / "a.latents.safetensors")]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.stack(png_frames(tmp_path / "a_%03d.png")),
                                  np.stack(png_frames(tmp_path / "whole_%03d.png")))  # fmt: skip
    make_clip(tmp_path / "clip_%03d.png", frames=6, fps=12.0)  # other frames under the same names
    PIL.Image.new("RGB", (32, 32), "red").save(tmp_path / "clip_005.png")
    assert cli.main([*argv, str(tmp_path / "b.latents.safetensors")]) == 2
    assert "is not the clip the run" in capsys.readouterr().err and (tmp_path / "b.latents.safetensors").exists()


def test_a_stopped_or_failed_extension_keeps_the_clip_as_its_user_knows_it(pipe, tmp_path, monkeypatch):
    """`stored_clip` (the server's upload, by the name it was sent under and its checksum) is what a stopped run's
    latents file says too, and what a failed decode's; the run resumed from the file goes on to that video."""
    from motif_lite.io.latents import read_latents
    from motif_lite.pipeline import generation

    clip = make_clip(tmp_path / "clip.mp4")
    stored = {"extend": "their clip.mp4", "extend_sha256": "ab" * 32}
    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "fox.mp4", width=32, height=32, frames=5,
                                steps=2, seed=4)  # fmt: skip

    saved = stopped_run(pipe, request, stored_clip=stored)
    assert {key: saved.video_metadata[key] for key in stored} == stored
    pipe.generate(request, resume=saved, stored_clip=stored)  # the clip by another name: the same video
    assert {key: read_settings(tmp_path / "fox.mp4").values[key] for key in stored} == stored

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generation, "decode_video", full_disk)
    with pytest.raises(OSError, match="No space left"):
        pipe.generate(dataclasses.replace(request, output=tmp_path / "failed.mp4"), stored_clip=stored)
    kept = read_latents(tmp_path / "failed.latents.safetensors").video_metadata
    assert {key: kept[key] for key in stored} == stored


def test_a_stopped_extension_is_not_resumed_by_a_request_without_its_clip(pipe, tmp_path):
    # Whether there is a clip is compared (its name is not: the server stores its upload's); named first, as the
    # message shows four differences at most.
    from motif_lite.request import RequestError

    clip = make_clip(tmp_path / "clip.mp4")
    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "fox.mp4", width=32, height=32, frames=5,
                                steps=2, seed=4)  # fmt: skip

    saved = stopped_run(pipe, request)
    without = dataclasses.replace(request, extend=None)
    with pytest.raises(RequestError, match=r"makes \(extend: 'clip.mp4' then, None now\): resume it"):
        pipe.generate(without, resume=saved)
    others = dataclasses.replace(without, prompt="another", negative_prompt="blur", seed=5, steps=3)
    with pytest.raises(RequestError, match=r"makes \(extend: 'clip.mp4' then, None now; "):
        pipe.generate(others, resume=saved)


def test_a_run_reads_its_clip_once(pipe, checkpoint, tmp_path, capsys, monkeypatch, clip_reads):
    # For its size and rate, the request's checks (twice), the first frame and the file: one read (it was 5).
    clip = make_clip(tmp_path / "clip_%03d.png", frames=6)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pipe)  # loaded once for the module
    run = ["run", "-m", str(checkpoint), "-p", PROMPT, "--device", "cpu", "--video-frames", "5", "--steps", "1"]
    assert cli.main([*run, "--extend", str(clip), "-o", str(tmp_path / "longer.mp4")]) == 0
    assert clip_reads == [clip], capsys.readouterr().err
    assert read_clip(tmp_path / "longer.mp4").frames == 6 + 5 - 1


def test_a_resumed_extension_reads_its_clip_once(pipe, tmp_path, capsys, monkeypatch, clip_reads):
    # Its latents file names the clip: the request's checks read it, then the pipeline again (2 reads).
    clip = make_clip(tmp_path / "clip_%03d.png", frames=6)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pipe)  # loaded once for the module

    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", width=32, height=32, frames=5,
                                steps=2, seed=4)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request, on_progress=stop_after_first_step)
    clip_reads.clear()
    argv = ["run", "--device", "cpu", "--kernels", "torch", "--resume", str(tmp_path / "longer.latents.safetensors")]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert clip_reads == [clip]
    assert read_clip(tmp_path / "longer.mp4").frames == 6 + 5 - 1


def test_a_clip_read_already_is_read_again_only_when_extend_names_another(tmp_path, clip_reads):
    clip, other = make_clip(tmp_path / "clip.mp4"), make_clip(tmp_path / "other.mp4", frames=6)
    request = GenerationRequest(PROMPT, extend=clip, width=32, height=32, frames=5, output=tmp_path / "o.mp4")
    given = request.resolve_with_inputs(read_clip(clip)).clip
    assert clip_reads == [] and given.frames == 9
    named = request.resolve_with_inputs(read_clip(other)).clip
    assert clip_reads == [clip] and (named.path, named.frames) == (clip, 9)


def test_a_clip_read_already_from_a_quoted_tilde_is_not_read_again(tmp_path, clip_reads, monkeypatch):
    # `--extend "~/clip.mp4"` (quoted, so the shell leaves the tilde) names the clip read from the home folder.
    monkeypatch.setenv("HOME", str(tmp_path))
    make_clip(tmp_path / "clip.mp4")
    request = GenerationRequest(PROMPT, extend="~/clip.mp4", width=32, height=32, frames=5, output=tmp_path / "o.mp4")
    given = request.resolve_with_inputs(read_clip("~/clip.mp4")).clip
    assert clip_reads == [] and given.path == tmp_path / "clip.mp4"


def test_a_clip_of_exactly_the_trained_pixels_goes_to_its_nearest_sides_without_a_note(tmp_path):
    # 460x2048 holds 1280x736's pixels exactly: not more than the model makes well (no note of it), so its sides go to
    # their nearest multiples of 16 (460 is 4 under 464, 12 over 448), not down to the multiples within the pixels.
    from motif_lite.errors import Audience
    from motif_lite.io.clip import Clip
    from motif_lite.request.clip_checks import _clip_size_fix
    from motif_lite.request.terms import TRAINED_PIXELS

    assert TRAINED_PIXELS == 460 * 2048
    fix = _clip_size_fix(Clip(tmp_path / "tall.mp4", 9, 460, 2048, 24.0), Audience.FLAGS)
    assert fix.startswith("the model makes sides in multiples of 16: resize the clip first"), fix
    assert "-vf scale=464:2048 " in fix, fix


def test_a_clip_narrower_than_a_multiple_is_resized_to_the_smallest_side_not_to_nothing(tmp_path):
    # A 6 px side rounds to 0 multiples of 16: the command would scale to 0 (ffmpeg refuses it); 16 is the smallest.
    from motif_lite.io.clip import Clip
    from motif_lite.request.clip_checks import clip_resize_command

    command = clip_resize_command(Clip(tmp_path / "thin.mp4", 9, 6, 42, 24.0))
    assert "-vf scale=16:48 " in command, command


def test_frames_in_memory_given_as_the_clip_are_told_the_image_or_the_file_to_give(tmp_path):
    # A diffusers user's `extend=output.frames[0]` (a list of PIL images), an array or one image was refused with
    # its type alone; the message names image= of the last frame (the same new frames) and a file of them.
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    for given in (
        [PIL.Image.fromarray(frame) for frame in frames],
        frames,
        torch.from_numpy(frames),
    ):
        request = GenerationRequest(PROMPT, extend=given, width=32, height=32, frames=5, output=tmp_path / "x.mp4")
        with pytest.raises(RequestError, match=r"frames in memory are no clip; give image= the last of them") as err:
            request.resolve()
        assert "extend='clip.mp4'" in str(err.value)
    with pytest.raises(RequestError, match=r"got int$"):  # no frames: the type alone
        GenerationRequest(PROMPT, extend=3, width=32, height=32, frames=5, output=tmp_path / "x.mp4").resolve()


def test_a_clip_from_standard_input_or_a_pipe_says_to_save_it_to_a_file(tmp_path):
    # `--extend -` and a pipe (`--extend /dev/stdin` piped, `--extend <(curl ...)`) were "not found", the pipe a
    # file that is there; the clip is read twice, which a pipe cannot give.
    with pytest.raises(ClipError, match=r"no clip is read from standard input; save it to a file"):
        read_clip("-")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(ClipError, match=r"pipe, is not a regular file \(a pipe, .*save it to a file first"):
        read_clip(pipe)  # never opened: a pipe's reader would wait for a writer
    with pytest.raises(ClipError, match=r"the clip to extend was not found: .*gone\.mp4$"):
        read_clip(tmp_path / "gone.mp4")


def test_one_image_or_8_bit_frames_given_as_the_clip_are_told_what_works_for_them(tmp_path):
    # One image was told image=frames[-1] (a PIL image has no [-1]; an array's is its last row), and 8-bit frames
    # diffusers' export_to_video, which multiplies an array by 255: their pixels wrapped in the file it wrote.
    def refusal(given: object) -> str:
        request = GenerationRequest(PROMPT, extend=given, width=32, height=32, frames=5, output=tmp_path / "x.mp4")
        with pytest.raises(RequestError) as err:
            request.resolve()
        return str(err.value)

    frames = np.zeros((9, 32, 32, 3), np.uint8)
    for one in (PIL.Image.new("RGB", (32, 32)), frames[0], torch.from_numpy(frames[:1])):
        said = refusal(one)
        assert said.endswith("one image is no clip; give it as image= for a video that starts from it"), said
    for eight_bit in (frames, torch.from_numpy(frames)):
        said = refusal(eight_bit)
        assert "write_video(frames, 'clip.mp4', fps=24)" in said and "export_to_video" not in said, said
    for diffusers_kind in ([PIL.Image.fromarray(frame) for frame in frames], frames.astype(np.float32) / 255):
        assert "export_to_video(frames, 'clip.mp4', fps=24)" in refusal(diffusers_kind)


def test_a_float_tensor_of_frames_given_as_the_clip_is_told_a_call_that_writes_it(tmp_path):
    # diffusers' output_type="pt" gives [F, 3, H, W] floats in 0..1: they were told write_video, which refuses them
    # ("float frames must be [3, F, H, W] in [-1, 1]"), and export_to_video takes no tensor either: it takes 0..1
    # float arrays of [H, W, 3] frames (imageio is not installed here, so the call's argument is what is checked).
    pixels = torch.rand(9, 32, 48, 3)  # [F, H, W, 3]: a swapped height and width would show
    for frames in (pixels.permute(0, 3, 1, 2), pixels):  # diffusers' layout, and channels last
        request = GenerationRequest(PROMPT, extend=frames, width=32, height=32, frames=5, output=tmp_path / "x.mp4")
        with pytest.raises(RequestError) as err:
            request.resolve()
        said = str(err.value)
        call = re.search(r"diffusers' export_to_video\((.*), 'clip\.mp4', fps=24\)", said)
        assert call is not None and "write_video" not in said, said
        given = eval(call.group(1), {"frames": frames})  # the argument as pasted
        assert isinstance(given, np.ndarray) and np.array_equal(given, pixels.numpy()), said


def test_a_list_of_8_bit_frames_given_as_the_clip_is_told_write_video_of_them_stacked(tmp_path):
    # A list of uint8 [H, W, 3] arrays (frames read one by one) was told diffusers' export_to_video, which multiplies
    # each array by 255: the file's pixels wrapped. write_video takes them stacked into [F, H, W, 3].
    frames = [np.full((32, 48, 3), 200, np.uint8) for _ in range(9)]
    request = GenerationRequest(PROMPT, extend=frames, width=32, height=32, frames=5, output=tmp_path / "x.mp4")
    with pytest.raises(RequestError) as err:
        request.resolve()
    said = str(err.value)
    call = re.search(r"motif_lite\.io\.video\.(write_video\((.*), 'clip\.mp4', fps=24\))", said)
    assert call is not None and "export_to_video" not in said, said
    written = eval(call.group(1).replace("'clip.mp4'", repr(str(tmp_path / "clip.mp4"))), {
        "write_video": write_video, "np": np, "frames": frames,
    })  # fmt: skip
    clip = read_clip(written)
    assert (clip.frames, clip.width, clip.height) == (9, 48, 32)
    assert abs(int(next(iter(clip_frames(clip)))[0].mean()) - 200) <= 2  # not wrapped (200 * 255 % 256 = 56)


def test_the_frames_an_extension_writes_again_are_not_called_stale(checkpoint, tmp_path, capsys):
    # An extension written to a PNG sequence a second time (the same link of a chain made again): the note took the
    # new frames alone for the video, so the clip's 9 + 4 new frames' names after the 5th were called stale, left from
    # an earlier sequence, and to be deleted, though the run writes them all again.
    clip = make_clip(tmp_path / "clip_%03d.png")
    output = tmp_path / "longer_%03d.png"
    write_video(np.zeros((15, 32, 32, 3), np.uint8), output, fps=24)  # an earlier, longer sequence: 2 frames stay
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip)]
    assert cli.main([*dry_run, "-p", PROMPT, "--video-frames", "5", "-o", str(output)]) == 0
    said = capsys.readouterr().err
    assert "note: longer_013.png to longer_014.png in " in said, said
    assert said.count("earlier, longer sequence") == 1, said


def test_a_preview_named_as_a_frame_an_extension_writes_is_refused(checkpoint, tmp_path, capsys):
    # Frame 10 of 13 (the clip's 9, then 4 new): only the new frames' 5 names were checked, so the video replaced it.
    clip = make_clip(tmp_path / "clip_%03d.png")
    output, preview = tmp_path / "longer_%03d.png", tmp_path / "longer_010.png"
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip), "-p", PROMPT]
    assert cli.main([*dry_run, "--video-frames", "5", "--preview", str(preview), "-o", str(output)]) == 2
    assert "is one of the frames of the video" in capsys.readouterr().err


def test_a_clip_of_non_square_pixels_gets_a_note_with_a_square_pixel_copy(checkpoint, tmp_path, capsys):
    # A PAL DV or DVD clip, 720x576 shown 16:9 (pixels 64:45): the longer video was written with square pixels, so
    # all of it showed squeezed to 5:4, without a word.
    clip = tmp_path / "pal.mp4"
    source = ["-f", "lavfi", "-i", "color=gray:s=720x576:r=25", "-frames:v", "2", "-vf", "setsar=64/45"]
    subprocess.run(
        [find_ffmpeg(), "-v", "error", *source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True
    )
    assert read_clip(clip).pixel_aspect == Fraction(64, 45)
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip), "-p", PROMPT]
    assert cli.main([*dry_run, "--video-frames", "5", "-o", str(tmp_path / "o.mp4")]) == 0
    said = capsys.readouterr().err
    assert "pal.mp4 has non-square pixels (aspect 64:45: its 720x576 is shown as 1024x576)" in said, said
    assert f"-vf scale=1024:576,setsar=1 -crf 18 {tmp_path / 'pal-1024x576.mp4'}, and extend that" in said, said
    assert read_clip(make_clip(tmp_path / "square.mp4")).pixel_aspect == 1


def test_the_square_pixel_copy_of_a_dv_clip_is_made_by_the_command_its_note_gives(checkpoint, tmp_path, capsys):
    # A PAL DV clip in its own container: the note's copy kept the suffix, and ffmpeg's DV muxer takes no 1024x576
    # ("Found no DV profile"), so the command given failed (an .avi's encoder ignored -crf 18).
    clip = tmp_path / "pal.dv"
    source = ["-f", "lavfi", "-i", "color=gray:s=720x576:r=25", "-frames:v", "2", "-vf", "setsar=64/45"]
    subprocess.run([find_ffmpeg(), "-v", "error", *source, "-pix_fmt", "yuv420p", str(clip)], check=True)
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip), "-p", PROMPT]
    assert cli.main([*dry_run, "--video-frames", "5", "-o", str(tmp_path / "o.mp4")]) == 0
    command = re.search(r"make a square-pixel copy first, (ffmpeg .*?), and extend that", capsys.readouterr().err)
    assert command is not None
    subprocess.run([find_ffmpeg(), "-v", "error", *shlex.split(command[1])[1:]], check=True)
    copy = read_clip(tmp_path / "pal-1024x576.mp4")
    assert (copy.size, copy.pixel_aspect) == ((1024, 576), 1)
