"""NTSC frame rates (24000/1001, 30000/1001, ...) as users write them: `--fps 24000/1001`, `--fps 23.976` and the
server's `"fps": 23.976` are the exact rate, which the file is written at, its settings keep, and summaries and
notes say as "23.976 fps (24000/1001)"; every other rate is the number given."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from motif_lite import cli
from motif_lite.frame_rates import parse_rate, rate_flag_value, rate_said
from motif_lite.io.clip import clip_frames, read_clip
from motif_lite.io.ffmpeg import find_ffmpeg
from motif_lite.io.settings_file import read_settings
from motif_lite.io.video import write_video
from motif_lite.server.schema import parse_create

PROMPT = "the fox runs off"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def rate_ffmpeg_reads(video: Path) -> str:
    """The frame rate of `video` as a fraction, as ffmpeg's showinfo filter says it (its header rounds: 23.98)."""
    command = [find_ffmpeg(), "-nostdin", "-i", str(video), "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"]
    said = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    return re.search(r"config in time_base: \S+, frame_rate: (\d+/\d+)", said)[1]


def run(checkpoint: Path, output: Path, *flags: str) -> Path:
    command = ["run", "-m", str(checkpoint), "--device", "cpu", "-p", PROMPT, "-W", "32", "-H", "32"]
    assert cli.main([*command, "--video-frames", "5", "--steps", "1", "--seed", "3", *flags, "-o", str(output)]) == 0
    return output


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("24000/1001", Fraction(24000, 1001)),
        ("23.976", Fraction(24000, 1001)),  # not 2997/125
        ("23.98", Fraction(24000, 1001)),  # as ffmpeg's header rounds it
        ("ntsc-film", Fraction(24000, 1001)),
        ("29.97", Fraction(30000, 1001)),
        ("ntsc", Fraction(30000, 1001)),
        ("47.952", Fraction(48000, 1001)),
        ("59.94", Fraction(60000, 1001)),
        ("119.88", Fraction(120000, 1001)),
        (" 30000 / 1001 ", Fraction(30000, 1001)),
        ("25/2", Fraction(25, 2)),
        ("24", Fraction(24)),
        ("12.5", Fraction(25, 2)),
        ("23.9", Fraction(239, 10)),  # no NTSC name: the number given
        ("60", Fraction(60)),
    ],
)
def test_a_rate_is_read_as_written_and_ntsc_names_as_their_exact_rate(text, rate):
    assert parse_rate(text) == float(rate)


@pytest.mark.parametrize(
    ("fps", "said", "flag"),
    [
        (24000 / 1001, "23.976 fps (24000/1001)", "24000/1001"),
        (60000 / 1001, "59.94 fps (60000/1001)", "60000/1001"),  # :g said 59.9401
        (23.976, "23.976 fps", "2997/125"),  # an old file's rate: not NTSC's, which --fps 23.976 is now
        (1 / 3, "0.333333 fps", "1/3"),  # :g does not give it back
        (24.0, "24 fps", "24"),
        (12.5, "12.5 fps", "12.5"),
    ],
)
def test_a_rate_is_said_the_way_users_know_it(fps, said, flag):
    assert (rate_said(fps), rate_flag_value(fps)) == (said, flag)
    assert parse_rate(flag) == fps


@pytest.mark.parametrize("rate", ["24000/1001", "23.976"])
def test_an_ntsc_fps_writes_the_exact_rate_which_a_rerun_from_its_settings_keeps(checkpoint, tmp_path, capsys, rate):
    video = run(checkpoint, tmp_path / "ntsc.mp4", "--fps", rate)
    assert rate_ffmpeg_reads(video) == "24000/1001"
    assert read_settings(video).values["fps"] == 24000 / 1001
    assert "at 23.976 fps (24000/1001)" in capsys.readouterr().out
    # The rerun's file is not the same bytes at any rate (its settings name the guidance the first left to the
    # checkpoint): the same frames at the same rate.
    again = tmp_path / "again.mp4"
    code = cli.main(["run", "-m", str(checkpoint), "--device", "cpu", "--settings-from", str(video), "-o", str(again)])
    assert code == 0 and rate_ffmpeg_reads(again) == "24000/1001" and read_clip(again).fps == 24000 / 1001
    assert np.array_equal(np.stack(list(clip_frames(read_clip(again)))), np.stack(list(clip_frames(read_clip(video)))))


@pytest.mark.parametrize(("rate", "read"), [("24", "24/1"), ("12.5", "25/2")])
def test_other_rates_are_written_as_given(checkpoint, tmp_path, rate, read):
    video = run(checkpoint, tmp_path / "plain.mp4", "--fps", rate)
    assert rate_ffmpeg_reads(video) == read and read_settings(video).values["fps"] == float(rate)


@pytest.mark.parametrize("rate", ["1/0", "24/", "/1001", "24000/1001/2", "a/b"])
def test_a_wrong_fraction_is_a_one_line_error(capsys, rate):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", "--fps", rate])
    err = capsys.readouterr().err
    said = f"--fps: must be a number or a fraction such as 24000/1001, got {rate!r}"
    assert exit_info.value.code == 2 and said in err and "Traceback" not in err, err


def test_the_note_on_another_rate_gives_the_ntsc_clips_exact_rate(checkpoint, tmp_path, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    clip = write_video(pixels, tmp_path / "clip.mp4", 24000 / 1001)
    dry_run = ["run", "--dry-run", "-m", str(checkpoint), "--device", "cpu", "--extend", str(clip)]
    assert cli.main([*dry_run, "--fps", "24", "-o", str(tmp_path / "o.mp4")]) == 0
    err = capsys.readouterr().err
    assert "going on from clip.mp4 (9 frames, 32x32 at 23.976 fps (24000/1001))" in err, err
    assert "24 fps is not the clip's 23.976 fps (24000/1001)" in err, err
    assert "--fps 24000/1001 (in Python fps=24000/1001) keeps the clip's rate" in err, err


@pytest.mark.parametrize(
    ("fps", "rate"), [(23.976, 24000 / 1001), (59.94, 60000 / 1001), ("29.97", 30000 / 1001), (24, 24), (12.5, 12.5)]
)
def test_the_apis_fps_takes_ntsc_names_as_their_exact_rate(fps, rate):
    form = isinstance(fps, str)
    body = parse_create({"prompt": PROMPT, "fps": fps}, None, from_form=form)
    assert body.request_fields["fps"] == rate and type(body.request_fields["fps"]) is type(rate)


@pytest.mark.parametrize("form", [False, True])
@pytest.mark.parametrize(
    ("fps", "rate"),
    [("24000/1001", 24000 / 1001), (" 30000 / 1001 ", 30000 / 1001), ("ntsc-film", 24000 / 1001),
     ("NTSC", 30000 / 1001), ("23.976", 24000 / 1001), ("25/2", 12.5), ("24", 24.0)],
)  # fmt: skip
def test_the_apis_fps_takes_the_texts_run_fps_takes(fps, rate, form):
    # The server took 23.976 but refused "24000/1001", which --fps takes: JSON and form bodies now read it as --fps.
    body = parse_create({"prompt": PROMPT, "fps": fps}, None, from_form=form)
    assert body.request_fields["fps"] == rate and body.request_fields["fps"] == parse_rate(fps)


@pytest.mark.parametrize("fps", ["1/0", "24/", "/1001", "24000/1001/2", "a/b"])
def test_the_apis_wrong_fraction_is_a_400_with_runs_message(fps):
    from motif_lite.server.schema import ApiError

    with pytest.raises(ApiError) as error:
        parse_create({"prompt": PROMPT, "fps": fps}, None, from_form=False)
    said = f"fps must be a number or a fraction such as 24000/1001, got {fps!r}"
    assert (error.value.status, error.value.param, error.value.code, error.value.message) == (
        400, "fps", "invalid_value", said
    )  # fmt: skip


def test_the_apis_fps_text_that_is_no_rate_gets_the_range_message():
    # Text that is no number at all is refused as before, by the request's check, with the rate's whole range.
    from motif_lite.request import GenerationRequest, RequestError

    fields = parse_create({"prompt": PROMPT, "fps": "fast"}, None, from_form=False).request_fields
    with pytest.raises(RequestError, match=r"fps must be a number from 0.001 to 1000"):
        GenerationRequest(**fields, output="o.mp4").resolve()


def test_an_ntsc_clips_extension_is_summed_up_at_its_exact_rate(checkpoint, tmp_path, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    clip = write_video(pixels, tmp_path / "clip.mp4", 30000 / 1001)
    flags = ["--extend", str(clip), "--video-frames", "5", "--steps", "1", "-o", str(tmp_path / "longer.mp4")]
    assert cli.main(["run", "-m", str(checkpoint), "--device", "cpu", "-p", PROMPT, *flags]) == 0
    out = capsys.readouterr().out
    assert "extended: clip.mp4's 9 frames, then 4 new: 13 frames, 0.4 s at 29.97 fps (30000/1001)" in out, out


def test_a_python_result_says_an_ntsc_rate_as_users_know_it():
    from motif_lite.pipeline.result import GenerationResult
    from motif_lite.request import GenerationRequest

    request = GenerationRequest("a fox", width=832, height=480, frames=65, steps=25, seed=7, fps=60000 / 1001)
    result = GenerationResult(Path("fox.mp4"), request, 15.0, {}, 2**30, None)
    assert "832x480, 65 frames at 59.94 fps (60000/1001), seed 7" in repr(result)  # :g said 59.9401


def test_decode_of_an_ntsc_clips_extension_says_its_exact_rate(checkpoint, tmp_path, capsys):
    import torch

    from motif_lite import pipeline
    from motif_lite.request import GenerationRequest

    def cancel(stage, done, total):
        if stage == "decode":
            raise KeyboardInterrupt

    pipe = pipeline.load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    pixels = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    clip = write_video(pixels, tmp_path / "clip.mp4", 24000 / 1001)
    output = tmp_path / "longer.mp4"
    same = dict(width=32, height=32, frames=5, steps=1, seed=2, fps=24000 / 1001)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(GenerationRequest(PROMPT, extend=clip, output=output, **same), on_progress=cancel)
    latents = tmp_path / "longer.latents.safetensors"
    assert cli.main(["decode", str(latents), "--device", "cpu", "-o", str(tmp_path / "decoded.mp4")]) == 0
    out = capsys.readouterr().out
    assert "then 4 new: 13 frames, 0.5 s at 23.976 fps (24000/1001)" in out, out
    assert rate_ffmpeg_reads(tmp_path / "decoded.mp4") == "24000/1001"


@pytest.mark.parametrize(
    ("audience", "said"),
    [("RUN_OR_PYTHON", "--fps 60000/1001 (in Python fps=60000/1001) keeps"), ("API", "; fps 59.94 keeps")],
)
def test_the_note_names_the_ntsc_rate_a_client_can_send_back(tmp_path, audience, said):
    # The API's fps is a number: 59.94, which the server takes as 60000/1001 (:g said 59.9401, another rate).
    from motif_lite.errors import Audience
    from motif_lite.request import GenerationRequest

    pixels = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    clip = read_clip(write_video(pixels, tmp_path / "clip.mp4", 60000 / 1001))
    request = GenerationRequest(PROMPT, extend=clip.path, output="o.mp4", width=32, height=32, frames=5, fps=24)
    notes = request.resolve(clip, audience=Audience[audience])[1]
    assert any(said in note for note in notes), notes
