"""Where `--extend` meets the other features of `run`: a batch, previews, `--resume`, `--settings-from`, `--gpus N`,
each output format and clips from other tools (each test names what it combines). Tiny checkpoint, fp32 on the
CPU, clips of a few 32x32 frames."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from stopped_runs import stopped_run
from test_extend import PROMPT, make_clip
from test_resume import assert_user_error, run_cli

from motif_lite import load_pipeline
from motif_lite.io.clip import ClipError, clip_frames, is_clip_file, last_frame_file, read_clip
from motif_lite.io.ffmpeg import each_frame_once, find_ffmpeg
from motif_lite.io.video import write_video
from motif_lite.request import GenerationRequest
from motif_lite.runtime import launcher

NEW_PART = dict(width=32, height=32, frames=5, steps=1)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    pipe.save_state_every = float("inf")
    return pipe


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(clip_frames(read_clip(path))))


def extended(pipe, clip: Path, output: Path, seed: int = 1) -> Path:
    pipe.generate(GenerationRequest(PROMPT, extend=clip, output=output, seed=seed, **NEW_PART))
    return output


def dry_run(capsys, checkpoint: Path, *flags: str) -> tuple[int, str, str]:
    return run_cli(capsys, "-m", str(checkpoint), "-p", PROMPT, "--video-frames", "5", "--dry-run", *flags)


# Batches (-b)


def test_each_video_of_a_batch_is_the_single_run_of_its_seed_and_the_note_names_no_unwritten_file(
    checkpoint, tmp_path, capsys
):
    clip = make_clip(tmp_path / "clip.mp4")
    run = ["-m", str(checkpoint), "-p", PROMPT, "--extend", str(clip), "--video-frames", "5", "--steps", "1"]
    code, _, err = run_cli(capsys, *run, "-b", "2", "-s", "5", "-o", str(tmp_path / "b.mp4"))
    assert code == 0, err
    # The batch's files are b-1.mp4 and b-2.mp4: the note says "the video", not b.mp4, which is never written.
    assert "the video holds its 9 frames and 4 new ones, 13 in all" in err and "b.mp4 holds" not in err
    code, _, err = run_cli(capsys, *run, "-s", "6", "-o", str(tmp_path / "alone.mp4"))
    assert code == 0, err
    np.testing.assert_array_equal(frames_of(tmp_path / "b-2.mp4"), frames_of(tmp_path / "alone.mp4"))
    assert not np.array_equal(frames_of(tmp_path / "b-1.mp4")[9:], frames_of(tmp_path / "b-2.mp4")[9:])


# Previews (--preview)


@pytest.mark.parametrize(("clip_name", "preview_name"), [
    ("clip.webp", "clip.webp"),  # the clip itself, a .webp motif-lite wrote
    ("clip_%03d.png", "clip_005.png"),  # a frame of a PNG sequence
    ("clip_%03d.png", "clip_006.png"),  # the frame after its last, which would join the clip as it is read again
])  # fmt: skip
def test_a_preview_that_would_replace_the_clip_or_join_it_is_refused(checkpoint, tmp_path, capsys, clip_name,
                                                                      preview_name):  # fmt: skip
    make_clip(tmp_path / clip_name, frames=6)
    before = {file: file.read_bytes() for file in tmp_path.iterdir()}
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(tmp_path / clip_name), "--preview",
                           str(tmp_path / "." / preview_name), "-o", str(tmp_path / "longer.mp4"))  # fmt: skip
    assert_user_error(code, err, f"is the clip {tmp_path / clip_name} the run goes on from")
    assert {file: file.read_bytes() for file in tmp_path.iterdir()} == before


def test_the_preview_of_an_extension_shows_the_new_part_alone(pipe, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    shapes = []
    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", **{**NEW_PART, "steps": 2})
    pipe.generate(request, on_preview=lambda done, steps, frames: shapes.append(tuple(frames.shape)), preview_every=1)
    assert shapes == [(2, 8, 8, 3)]  # the 5 new frames' 2 latent frames (not the clip's 9), at twice 32 / 8


def test_a_resumed_extension_refuses_its_clip_as_preview_says_to_put_a_moved_clip_back_and_takes_a_new_output(
    pipe, tmp_path, capsys
):
    clip = make_clip(tmp_path / "clip.webp")
    stopped_run(pipe, GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", seed=1,
                                        **{**NEW_PART, "steps": 2}))  # fmt: skip
    stopped = str(tmp_path / "longer.latents.safetensors")
    code, _, err = run_cli(capsys, "--resume", stopped, "--preview", str(clip), "--dry-run")
    assert_user_error(code, err, f"is the clip {clip} the run goes on from")
    moved = clip.rename(tmp_path / "moved.webp")
    for given_again in ([], ["--extend", str(moved)]):  # --extend cannot stand in for it: the message says so first
        code, _, err = run_cli(capsys, "--resume", stopped, *given_again, "--dry-run")
        assert_user_error(code, err, f"the clip the run being resumed goes on from, {clip}, is no longer there: put "
                                     "it back there to resume")  # fmt: skip
    moved.rename(clip)
    code, _, err = run_cli(capsys, "--resume", stopped, "-o", str(tmp_path / "again.mp4"))
    assert code == 0, err
    assert read_clip(tmp_path / "again.mp4").frames == 9 + 5 - 1 and not (tmp_path / "longer.mp4").exists()


# --settings-from


def test_settings_from_a_text_to_video_file_with_extend_leaves_its_flow_shift_to_the_checkpoint(
    pipe, checkpoint, tmp_path, capsys
):
    # As with -i: the file's flow shift was chosen for text-to-video, and going on from a clip is image-to-video.
    plain = pipe.generate(GenerationRequest(PROMPT, output=tmp_path / "plain.mp4", seed=1, **NEW_PART)).output
    clip = make_clip(tmp_path / "clip.mp4")
    code, _, err = dry_run(capsys, checkpoint, "--settings-from", str(plain), "--extend", str(clip),
                           "-o", str(tmp_path / "o.mp4"))  # fmt: skip
    assert code == 0, err
    taken = next(line for line in err.splitlines() if "settings from plain.mp4" in line)
    assert "flow shift" not in taken and "size" in taken, taken


def test_settings_from_an_image_to_video_file_goes_on_from_a_clip_and_an_extended_one_from_an_image(
    pipe, checkpoint, tmp_path, capsys
):
    clip = make_clip(tmp_path / "clip.mp4")
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32), "red").save(image)
    i2v = pipe.generate(GenerationRequest(PROMPT, image=image, output=tmp_path / "i2v.mp4", **NEW_PART)).output
    longer = extended(pipe, clip, tmp_path / "longer.mp4")
    for file, first_frame in ((i2v, ["--extend", str(clip)]), (longer, ["-i", str(image)])):
        code, _, err = dry_run(capsys, checkpoint, "--settings-from", str(file), *first_frame,
                               "-o", str(tmp_path / "o.mp4"))  # fmt: skip
        assert code == 0, err
        assert f"settings from {file.name}" in err and "flow shift" in err


def test_settings_from_a_file_of_another_size_than_the_clip_says_which_flags_to_give(pipe, checkpoint, tmp_path,
                                                                                     capsys):  # fmt: skip
    other = pipe.generate(GenerationRequest(PROMPT, output=tmp_path / "other.mp4", **NEW_PART)).output
    clip = make_clip(tmp_path / "wide.mp4", width=48)
    code, _, err = dry_run(capsys, checkpoint, "--settings-from", str(other), "--extend", str(clip),
                           "-o", str(tmp_path / "o.mp4"))  # fmt: skip
    assert_user_error(code, err, "other.mp4 is 32x32 and the clip wide.mp4 48x32: one video has one size; give -W "
                                 "48 -H 32 to go on from the clip with other.mp4's other settings")  # fmt: skip
    code, _, err = dry_run(capsys, checkpoint, "--settings-from", str(other), "--extend", str(clip), "-W", "48",
                           "-o", str(tmp_path / "o.mp4"))  # fmt: skip
    assert code == 0, err


# Several processes (--gpus N)


def test_gpus_n_takes_the_clips_size_before_starting_its_processes(checkpoint, tmp_path, capsys, monkeypatch,
                                                                    clip_reads):  # fmt: skip
    # The launcher checks the request before starting the ranks: it must see the clip's size, as each rank does.
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    clip = make_clip(tmp_path / "clip.mp4", width=48)
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", PROMPT, "--extend", str(clip), "--video-frames", "5",
                           "--gpus", "2", "-o", str(tmp_path / "o.mp4"))  # fmt: skip
    assert code == 0 and launched == [2], err
    assert clip_reads == [clip]  # for its size, then its checks (each rank reads it once more)


# Outputs


@pytest.mark.parametrize("name", ["longer.gif", "longer.webp", "longer.webm", "longer.mkv", "longer_%03d.png"])
def test_each_output_format_holds_the_clip_then_the_new_frames(pipe, tmp_path, name):
    clip = make_clip(tmp_path / "clip_%03d.png")
    assert read_clip(extended(pipe, clip, tmp_path / name)).frames == 9 + 5 - 1


def test_the_clip_under_another_spelling_or_through_a_symlink_is_never_the_output(pipe, checkpoint, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    for given, output in ((clip, tmp_path / "." / "clip.mp4"), (clip, link), (link, clip)):
        code, _, err = dry_run(capsys, checkpoint, "--extend", str(given), "-o", str(output))
        assert_user_error(code, err, "would replace the clip")
    assert read_clip(extended(pipe, link, tmp_path / "from-link.mp4")).frames == 13
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip), "-o", str(tmp_path / "from-link.mp4"))
    assert code == 0 and "the video holds its 9 frames" in err, err  # a taken name is replaced, as -o always does


# Clips


@pytest.mark.parametrize("name", ["clip.mov", "clip.webm", "clip.mkv"])
def test_a_clip_of_an_odd_frame_count_at_12_fps_goes_on_at_its_rate(pipe, tmp_path, name):
    clip = make_clip(tmp_path / name, frames=7, fps=12.0)
    request = GenerationRequest(PROMPT, extend=clip, output=tmp_path / "longer.mp4", fps=12.0, **NEW_PART)
    longer = read_clip(pipe.generate(request).output)
    assert (longer.frames, longer.fps) == (7 + 5 - 1, 12.0)


def test_a_gif_or_webp_motif_lite_wrote_goes_on_at_the_rate_it_was_written_at(pipe, tmp_path):
    # Their frame times are whole milliseconds (a GIF's tens): ffmpeg reads a 24 fps GIF as 25 fps, and the settings
    # motif-lite keeps in the file say 24.
    for name in ("clip.gif", "clip.webp"):
        clip = pipe.generate(GenerationRequest(PROMPT, output=tmp_path / name, fps=24.0, **NEW_PART)).output
        assert read_clip(clip).fps == 24.0
    assert read_clip(make_clip(tmp_path / "other.gif", fps=24.0)).fps == 25.0  # another tool's: ffmpeg's rate


def ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", *args], check=True)


def test_a_clip_from_another_tool_with_sound_gets_a_note_that_the_sound_is_left_out(checkpoint, tmp_path, capsys):
    clip = tmp_path / "with sound.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=24", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.5",
           "-shortest", str(clip))  # fmt: skip
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip), "-o", str(tmp_path / "o.mp4"))
    assert code == 0, err
    assert (
        f"with sound.mp4 has sound, which the longer video leaves out (motif-lite writes pictures only); put it "
        f"back with ffmpeg -i {tmp_path / 'o.mp4'} -i '{clip}' -map 0:v -map 1:a -c:v copy with-sound.mp4" in err
    )
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(make_clip(tmp_path / "silent.mp4")))
    assert code == 0 and "has sound" not in err, err


def test_an_hdr_phone_clip_gets_a_note_with_the_command_that_makes_an_sdr_copy(checkpoint, tmp_path, capsys):
    # A phone's HLG clip was read without a word: its frames, not tone-mapped, went washed out into the SDR video.
    clip = tmp_path / "phone.mov"
    hlg = "setparams=color_primaries=bt2020:color_trc=arib-std-b67:colorspace=bt2020nc"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=24", "-frames:v", "7", "-vf", hlg, "-pix_fmt", "yuv420p10le",
           str(clip))  # fmt: skip
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip), "-o", str(tmp_path / "o.mp4"))
    assert code == 0 and "phone.mov is HDR video (HLG, as phones often record): its frames are read without" in err
    command = re.search(r"convert it to SDR first, ffmpeg (-i .*?), and extend that", err)
    assert command is not None, err
    ffmpeg(*shlex.split(command[1]))  # the command given works, and its copy is SDR
    output = str(tmp_path / "o.mp4")
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(tmp_path / "phone-sdr.mp4"), "-o", output)
    assert code == 0 and "(7 frames, 32x32 at 24 fps)" in err and "HDR" not in err, err


def test_a_phone_clip_stored_sideways_goes_on_upright_without_imageio_ffmpegs_warnings(checkpoint, tmp_path, capsys,
                                                                                         caplog):  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=48x32:rate=24", "-frames:v", "7", str(tmp_path / "stored.mp4"))
    clip = tmp_path / "portrait.mp4"  # the same frames with a rotation, as a phone stores a portrait video
    ffmpeg("-display_rotation", "90", "-i", str(tmp_path / "stored.mp4"), "-c", "copy", str(clip))
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip), "-o", str(tmp_path / "o.mp4"))
    assert code == 0 and "portrait.mp4 (7 frames, 32x48 at 24 fps)" in err, err
    assert next(clip_frames(read_clip(clip))).shape == (48, 32, 3)
    assert not [record for record in caplog.records if "source frame size" in record.getMessage()]


def test_a_variable_rate_clip_gives_each_of_its_frames_once(pipe, tmp_path):
    # A screen or phone recording: frames 3 to 5 come 4 frame times apart. By default ffmpeg's pipe of frames
    # repeats them to a constant rate (28 frames here), which the clip's count (6) and rate did not say.
    clip = tmp_path / "screen.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=24,trim=end_frame=6,setpts='if(lt(N,3),N,N*4)/24/TB'",
           "-fps_mode", "passthrough", str(clip))  # fmt: skip
    assert read_clip(clip).frames == len(list(clip_frames(read_clip(clip)))) == 6
    result = pipe.generate(GenerationRequest(PROMPT, extend=clip, output=tmp_path / "o.mp4", **NEW_PART))
    assert result.frames_written == len(frames_of(result.output)) == 6 + 5 - 1


@pytest.mark.parametrize(("said", "option"), [("4.4.2-0ubuntu0.22.04.1", "-vsync"), ("n9.0.2-17-g2a5", "-fps_mode"),
                                              ("N-117043-g8707c8660d", "-fps_mode")])  # fmt: skip
def test_each_frame_once_takes_the_option_of_the_ffmpeg_found(tmp_path, said, option):
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\necho 'ffmpeg version {said} Copyright (c) 2000-2024 the FFmpeg developers'\n")
    fake.chmod(0o755)
    assert each_frame_once(str(fake)) == [option, "passthrough"]


@pytest.mark.parametrize(("name", "encoding"), [("odd.mov", "-crf 18"), ("odd_%03d.png", "-start_number 0")])
def test_a_clip_whose_size_the_model_cannot_make_gets_a_resize_command_that_works(
    checkpoint, tmp_path, capsys, monkeypatch, name, encoding
):
    monkeypatch.chdir(tmp_path)  # where the command writes the resized clip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=40x30:rate=24", "-frames:v", "7", "-start_number", "0", name)
    code, _, err = dry_run(capsys, checkpoint, "--extend", name, "-o", "o.mp4")  # no -W/-H: the clip's size
    resized = name.replace(".", "-32x32.")
    command = f"ffmpeg -i {name} -vf scale=32:32 {encoding} {resized}"
    assert_user_error(code, err, f"{name} is 40x30: the model makes sides in multiples of 16: resize the clip first, "
                                 f"e.g. {command}, and extend that")  # fmt: skip
    assert "nearest valid" not in err, err  # the clip's line alone: -W 48 -H 32 would not fit the clip either
    ffmpeg(*command.split()[1:])
    code, _, err = dry_run(capsys, checkpoint, "--extend", resized, "-o", "o.mp4")
    assert code == 0 and "(7 frames, 32x32 at 24 fps)" in err, err


def test_a_phones_clip_is_resized_to_a_size_the_model_makes_well(checkpoint, tmp_path, capsys, monkeypatch):
    # 1920x1080 went to 1920x1088 (multiples of 16), whose run then noted it is more pixels than the model was
    # trained at: one resize to the clip's shape within 1280x736 pixels does both.
    monkeypatch.chdir(tmp_path)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=1920x1080:rate=30", "-frames:v", "2", "phone.mp4")
    code, _, err = dry_run(capsys, checkpoint, "--extend", "phone.mp4", "-o", "o.mp4")
    command = "ffmpeg -i phone.mp4 -vf scale=1280:720 -crf 18 phone-1280x720.mp4"
    said = "phone.mp4 is 1920x1080: the model makes sides in multiples of 16, and at most 1280x736 pixels well"
    assert_user_error(code, err, f"{said}: resize the clip first, e.g. {command}, and extend that")
    ffmpeg(*command.split()[1:])
    code, _, err = dry_run(capsys, checkpoint, "--extend", "phone-1280x720.mp4", "-o", "o.mp4")
    assert code == 0 and "(2 frames, 1280x720 at 30 fps)" in err and "more pixels than" not in err, err


def test_a_clip_larger_than_the_model_makes_well_is_told_to_be_resized(checkpoint, tmp_path, capsys, monkeypatch):
    # A run sized by its clip cannot be "made at 1280x736" (another -W/-H than the clip's is refused): the note
    # gives the command that resizes the clip to its shape within those pixels.
    monkeypatch.chdir(tmp_path)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=2560x1440:rate=30", "-frames:v", "2", "qhd.mp4")
    code, _, err = dry_run(capsys, checkpoint, "--extend", "qhd.mp4", "-o", "o.mp4")
    command = "ffmpeg -i qhd.mp4 -vf scale=1280:720 -crf 18 qhd-1280x720.mp4"
    assert code == 0 and f"distort; resize the clip first, e.g. {command}, and extend that" in err, err
    assert "make it at 1280x736" not in err, err


def test_a_png_sequence_numbered_from_1_goes_on_from_its_last_frame(pipe, tmp_path):
    # As ffmpeg, Blender and ComfyUI number the frames they write, and ffmpeg reads them: it was refused, and the
    # user had to write every frame again numbered from 0.
    frames = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for index, frame in enumerate(frames, start=1):
        PIL.Image.fromarray(frame).save(tmp_path / f"from1_{index:03d}.png")
    pattern = tmp_path / "from1_%03d.png"
    clip = read_clip(pattern)
    assert (clip.frames, clip.files[0].name, last_frame_file(pattern).name) == (4, "from1_001.png", "from1_004.png")
    np.testing.assert_array_equal(np.stack(list(clip_frames(clip))), frames)
    # Frame 0 written now would join the clip as it is read again, as the frame after its last would.
    assert is_clip_file(pattern, tmp_path / "from1_000.png") and is_clip_file(pattern, tmp_path / "from1_005.png")
    assert not is_clip_file(pattern, tmp_path / "from1_006.png")
    result = extended(pipe, pattern, tmp_path / "o_%03d.png")
    assert result.name == "o_%03d.png" and len(frames_of(result)) == 4 + 5 - 1
    np.testing.assert_array_equal(frames_of(result)[:4], frames)


def test_a_png_sequence_is_looked_for_from_frame_0_to_4_as_ffmpeg_does(tmp_path):
    # ffmpeg's image2 reader takes a first frame numbered up to 4 (-start_number_range 5), and so does --extend.
    for index in (3, 4, 5):
        PIL.Image.new("RGB", (32, 32)).save(tmp_path / f"from3_{index:03d}.png")
    clip = read_clip(tmp_path / "from3_%03d.png")
    assert (clip.frames, clip.files[0].name, last_frame_file(tmp_path / "from3_%03d.png").name) == (
        3,
        "from3_003.png",
        "from3_005.png",
    )
    assert is_clip_file(tmp_path / "from3_%03d.png", tmp_path / "from3_002.png")  # it would join the clip
    assert not is_clip_file(tmp_path / "from3_%03d.png", tmp_path / "from3_007.png")
    for index in (5, 6):
        PIL.Image.new("RGB", (32, 32)).save(tmp_path / f"from5_{index:03d}.png")
    with pytest.raises(ClipError, match=r"has no frame from5_000.png \(nor any up to from5_004.png, where a sequence"):
        read_clip(tmp_path / "from5_%03d.png")


def test_a_folder_of_frames_or_one_frame_given_as_the_clip_gets_the_pattern_to_give(tmp_path):
    (tmp_path / "comfy").mkdir()
    for index in (1, 2, 3):  # ComfyUI's names: a counter from 1, then "_"
        PIL.Image.new("RGB", (32, 32)).save(tmp_path / "comfy" / f"ComfyUI_{index:05d}_.png")
    PIL.Image.new("RGB", (32, 32)).save(tmp_path / "comfy" / "cover.png")
    with pytest.raises(ClipError, match=r"comfy, is a folder of PNG frames: give their pattern, --extend "
                                        r"\S*/comfy/ComfyUI_%05d_.png$"):  # fmt: skip
        read_clip(tmp_path / "comfy")  # was: "give ... a PNG sequence's pattern, e.g. frames/fox_%03d.png"
    frame_of = r"one image, not a clip: .*; for the PNG sequence it is a frame of, give its pattern, --extend "
    with pytest.raises(ClipError, match=frame_of + r"\S*/ComfyUI_%05d_.png$"):
        read_clip(tmp_path / "comfy" / "ComfyUI_00002_.png")
    (tmp_path / "one").mkdir()  # a numbered image alone is no sequence to name
    PIL.Image.new("RGB", (32, 32)).save(tmp_path / "one" / "shot_001.png")
    with pytest.raises(ClipError, match=r"one image, not a clip: .*; for a PNG sequence give its pattern \(e\.g\. "):
        read_clip(tmp_path / "one" / "shot_001.png")
    (tmp_path / "plain").mkdir()
    for index in (1, 2, 10):  # numbers not padded: %d, as a user would write it (not %01d)
        PIL.Image.new("RGB", (32, 32)).save(tmp_path / "plain" / f"f{index}.png")
    with pytest.raises(ClipError, match=r"give their pattern, --extend \S*/plain/f%d.png$"):
        read_clip(tmp_path / "plain")
    (tmp_path / "jpeg").mkdir()
    for index in range(3):
        PIL.Image.new("RGB", (32, 32)).save(tmp_path / "jpeg" / f"f_{index:03d}.jpg")
    pattern, png = tmp_path / "jpeg" / "f_%03d.jpg", tmp_path / "jpeg" / "f_%03d.png"
    fix = f"convert them first, ffmpeg -i {pattern} -start_number 0 {png}, then give --extend {png}"
    for given in (tmp_path / "jpeg", pattern):  # the pattern was "not found"
        with pytest.raises(ClipError, match=re.escape(f"f_%03d.jpg names .jpg files: {fix}")):
            read_clip(given)
    with pytest.raises(ClipError, match="the clip to extend was not found: .*clip_%d.mp4$"):  # a video's name
        read_clip(tmp_path / "clip_%d.mp4")
    ffmpeg("-i", str(pattern), "-start_number", "0", str(png))  # the command given makes a clip that is read
    assert read_clip(png).frames == 3


def test_png_sequence_clips_of_two_sizes_are_refused_with_the_reason(checkpoint, tmp_path, capsys):
    make_clip(tmp_path / "mixed_%03d.png", frames=4)
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "mixed_003.png")  # its last frame: the next video's first
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(tmp_path / "mixed_%03d.png"))
    assert_user_error(code, err, "mixed_003.png is 16x16 and mixed_000.png 32x32: the frames of mixed_%03d.png must "
                                 "be of one size")  # fmt: skip


# Python


def test_generate_twice_from_a_clip_that_changed_between_calls_goes_on_from_its_new_last_frame(
    pipe, checkpoint, tmp_path
):
    # The first frame's encodings are kept between calls (`first_frame_key`): they must follow the clip's file.
    for name in ("clip.mp4", "clip_%03d.png"):
        clip = tmp_path / name
        pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
        write_video(pixels, clip, 24.0)
        extended(pipe, clip, tmp_path / "first.mp4")
        pixels[-1] = 255 - pixels[-1]
        write_video(pixels, clip, 24.0)
        again = frames_of(extended(pipe, clip, tmp_path / "again.mp4"))
        fresh = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
        np.testing.assert_array_equal(again, frames_of(extended(fresh, clip, tmp_path / "fresh.mp4")))


def test_a_clip_at_another_rate_than_the_models_gets_one_note_on_the_pace_of_the_new_frames(
    checkpoint, tmp_path, capsys
):
    # A 30 fps clip went on at 30 fps without a word: the model makes motion at the pace of its 24 fps training
    # clips, so the new frames move 30/24 times as fast as it made them.
    from motif_lite.errors import Audience
    from motif_lite.io.clip import read_clip
    from motif_lite.request.clip_checks import extension_notes

    clip = make_clip(tmp_path / "fast.mp4", fps=30.0)
    pace = ("the longer video keeps the clip's 30 fps, but the model makes motion at the pace of the 24 fps clips it "
            "was trained on: its new frames move 1.25x faster than it made them; --fps 24 (in Python fps=24) plays "
            "them at the model's pace")  # fmt: skip
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip))
    assert code == 0 and err.count(pace) == 1, err
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(clip), "--fps", "24")  # the clip's rate note instead
    assert code == 0 and "the model's pace" not in err and "24 fps is not the clip's 30 fps" in err, err
    code, _, err = dry_run(capsys, checkpoint, "--extend", str(make_clip(tmp_path / "model.mp4")))
    assert code == 0 and "the model's pace" not in err, err
    slow = read_clip(make_clip(tmp_path / "slow.mp4", fps=12.0))
    (note,) = [note for note in extension_notes(slow, 5, 12.0, "o.mp4", Audience.API) if "pace" in note]
    assert "move 2x slower than it made them; fps 24 plays them" in note, note  # the server's field


@pytest.mark.parametrize(("fps", "noted"), [(24.36, True), (23.64, True), (24000 / 1001, False), (24.2, False)])
def test_the_models_pace_note_comes_past_one_percent_of_24_fps(fps, noted):
    # Mutation pass 71: 1.5% off the model's 24 fps is a pace one sees; NTSC film's 0.1% and 0.8% are not.
    from motif_lite.errors import Audience
    from motif_lite.request.clip_checks import _model_pace_note

    assert (_model_pace_note(fps, Audience.RUN_OR_PYTHON) is not None) is noted


def _extensions_as_png_sequences(checkpoint, tmp_path) -> list[str]:
    """`run`'s arguments for a batch of two 4-frame extensions of a 9-frame clip, each written as a PNG sequence
    (fox-1_000.png to fox-1_012.png, fox-2_...)."""
    clip = make_clip(tmp_path / "clip.mp4")
    return ["-m", str(checkpoint), "-p", PROMPT, "--extend", str(clip), "--video-frames", "5", "--steps", "1", "-b",
            "2", "-s", "5", "-o", str(tmp_path / "fox_%03d.png")]  # fmt: skip


def test_a_batch_of_extensions_run_again_says_each_skipped_png_sequences_last_frame_as_it_was_made(
    checkpoint, tmp_path, capsys
):
    # The skipped video's `output:` line counts its frames as the run that made it did: the clip's and the new part's
    # (9 and 4 new: fox-1_000.png to fox-1_012.png), not the new part's 5 alone (to fox-1_004.png).
    run = _extensions_as_png_sequences(checkpoint, tmp_path)
    code, out, err = run_cli(capsys, *run)
    assert code == 0, err
    made = [line for line in out.splitlines() if line.startswith("output: ")]
    assert len(made) == 2 and "fox-1_012.png" in made[0], made
    code, out, err = run_cli(capsys, *run)
    assert code == 0 and err.count("already made with these settings") == 2, err
    assert [line for line in out.splitlines() if line.startswith("output: ")] == made, out


def test_an_extensions_png_sequence_killed_before_its_last_frame_moved_into_place_is_made_again(
    checkpoint, tmp_path, capsys
):
    # Its frames are the clip's and the new part's (fox-2_000.png to fox-2_012.png): counted to the new part's
    # frames alone, a sequence whose last frames were missing was skipped as made.
    run = _extensions_as_png_sequences(checkpoint, tmp_path)
    code, _, err = run_cli(capsys, *run)
    assert code == 0, err
    (tmp_path / "fox-2_012.png").unlink()
    code, _, err = run_cli(capsys, *run)
    assert code == 0 and err.count("already made with these settings") == 1, err
    assert (tmp_path / "fox-2_012.png").is_file()
