"""The Python API as a researcher scripting many runs meets it: one pipeline for a sweep of prompts, seeds, scales
and sizes, and a log of each run's settings (first frames made in memory: test_python_api_first_frame.py)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageSequence
import pytest

from motif_lite.io.output_claims import WRITING_PREFIX
from motif_lite.request import GenerationRequest

TINY = dict(width=48, height=32, frames=5, steps=2, seed=3)
_PIXELS = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)


def _sweep_example() -> str:
    """docs/usage.md's sweep example, the one ```python block of its section."""
    usage = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text(encoding="utf-8")
    section = usage.split("### Many runs from one script: a sweep\n", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the sweep section has one Python example"
    return blocks[0]


def _on_the_tiny_checkpoint(example: str, checkpoint: Path) -> str:
    """The example with the tiny checkpoint on the CPU and a tiny draft size, its loop and logging as written."""
    load = re.compile(r"^pipe = load_pipeline\(.*$", re.MULTILINE)
    draft = re.compile(r"^draft = dict\(.*$", re.MULTILINE)
    assert len(load.findall(example)) == 1 and len(draft.findall(example)) == 1
    tiny_load = f'pipe = load_pipeline({str(checkpoint)!r}, device="cpu", dtype="fp32", kernels="torch")'
    return draft.sub("draft = dict(width=32, height=32, frames=5, steps=2)", load.sub(tiny_load, example))


def test_the_docs_sweep_runs_and_its_log_remakes_each_video(shared_checkpoint, tmp_path, monkeypatch):
    from motif_lite.io.settings_file import read_settings
    from motif_lite.pipeline.metadata import request_fields_of

    monkeypatch.chdir(tmp_path)
    exec(_on_the_tiny_checkpoint(_sweep_example(), shared_checkpoint[0]), {})  # noqa: S102
    rows = [json.loads(line) for line in (tmp_path / "sweep" / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len({(row["prompt"], row["seed"], row["cfg_scale"]) for row in rows}) == 8
    for row in rows:
        fields = {name: value for name, value in row.items() if name != "seconds"}
        request = GenerationRequest(**fields)  # the log's line is a request again, as the docs say
        stored = request_fields_of(read_settings(tmp_path / request.output).values)  # what --settings-from takes
        given = {name: value for name, value in fields.items() if value is not None and name != "output"}
        assert {name: stored[name] for name in given} == given


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    from motif_lite import load_pipeline

    return load_pipeline(shared_checkpoint[0], dtype="fp32", device="cpu", kernels="torch")


def _png_frames(files: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(file).convert("RGB")) for file in files])


def _ffmpeg_frames(video: Path, width: int, height: int) -> np.ndarray:
    """docs/usage.md's "Frames" recipe: ffmpeg's RGB frames of a video."""
    import subprocess

    import imageio_ffmpeg

    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video)]
    raw = subprocess.run([*ffmpeg, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("frames", [5, 1])
def test_a_result_reads_its_frames_back(pipe, tmp_path, frames):
    # There was no way to get a run's frames but decoding its file by hand (docs/usage.md's ffmpeg recipe).
    tiny = {**TINY, "frames": frames}
    pngs = pipe.generate(GenerationRequest("a fox", **tiny, output=tmp_path / "fox_%03d.png"))
    files = sorted(tmp_path.glob("fox_*.png"))
    assert pngs.read_frames().dtype == np.uint8 and len(files) == frames
    np.testing.assert_array_equal(pngs.read_frames(), _png_frames(files))  # the exact pixels
    mp4 = pipe.generate(GenerationRequest("a fox", **tiny, output=tmp_path / "fox.mp4"))
    np.testing.assert_array_equal(mp4.read_frames(), _ffmpeg_frames(mp4.output, TINY["width"], TINY["height"]))
    gif = pipe.generate(GenerationRequest("a fox", **tiny, output=tmp_path / "fox.gif"))
    with PIL.Image.open(gif.output) as opened:
        pillows = [np.asarray(frame.convert("RGB")) for frame in PIL.ImageSequence.Iterator(opened)]
    np.testing.assert_array_equal(gif.read_frames(), np.stack(pillows))
    if frames == 1:  # one image, not a sequence
        one = pipe.generate(GenerationRequest("a fox", **tiny, output=tmp_path / "fox.png"))
        np.testing.assert_array_equal(one.read_frames(), _png_frames([one.output]))


class _Stop(Exception):
    pass


def _stop_after_step_2(pipe, request: GenerationRequest) -> None:
    """Run `request` and stop it (as Ctrl-C would) after its second denoising step."""

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 2:
            raise _Stop

    with pytest.raises(_Stop):
        pipe.generate(request, on_progress=stop)


def test_running_a_stopped_request_again_says_that_its_saved_state_is_there(pipe, tmp_path, caplog):
    # A notebook's cell stopped part way, then run again, started over without a word (`motif-lite run` says it):
    # the stopped run's state file stayed beside the output, unmentioned, after the new video was made.
    import motif_lite

    request = GenerationRequest("a fox", **{**TINY, "steps": 3}, output=tmp_path / "fox.mp4")

    _stop_after_step_2(pipe, request)
    saved_path = tmp_path / "fox.latents.safetensors"
    with caplog.at_level("WARNING"):
        again = pipe.generate(request)
    (note,) = [note for note in again.notes if str(saved_path) in note]
    assert "stopped after step 2 of 3" in note and note in caplog.text
    # The note's Python line goes on with the stopped run, and makes the video that run would have made (into the
    # same file: the frames of the run made again are read first).
    made_again = again.read_frames()
    line = note.split("To go on with that one instead: ")[1]
    scope = {"motif_lite": motif_lite, "pipe": pipe}
    exec(line.replace("pipe.generate(", "resumed = pipe.generate("), scope)  # noqa: S102
    assert scope["resumed"].resumed_at == 2
    np.testing.assert_array_equal(scope["resumed"].read_frames(), made_again)


def test_running_a_request_whose_decode_stopped_again_says_its_denoised_latents_are_there(pipe, tmp_path, caplog):
    import motif_lite

    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox_%03d.png")

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "decode" and done == 1:
            raise _Stop

    with pytest.raises(_Stop):
        pipe.generate(request, on_progress=stop)
    with caplog.at_level("WARNING"):
        again = pipe.generate(request)
    (note,) = [note for note in again.notes if "denoised latents" in note]
    assert note in caplog.text
    made_again = again.read_frames()
    for frame in tmp_path.glob("fox_*.png"):
        frame.unlink()
    exec(note.split("Without sampling: ")[1].replace("; ", "\n"), {"motif_lite": motif_lite})  # noqa: S102
    np.testing.assert_array_equal(again.read_frames(), made_again)  # the stopped run's latents, decoded


def test_a_state_file_of_another_output_with_the_same_stem_is_not_said_to_be_this_runs(pipe, tmp_path):
    # fox.mp4 and fox_%03d.png share fox.latents.safetensors: a stopped fox.mp4 is no earlier run of the frames.
    from motif_lite.pipeline.resuming import earlier_run_note

    request = GenerationRequest("a fox", **{**TINY, "steps": 3}, output=tmp_path / "fox.mp4")

    _stop_after_step_2(pipe, request)
    assert "stopped after step 2 of 3" in earlier_run_note(tmp_path / "fox.mp4")
    assert earlier_run_note(tmp_path / "fox_%03d.png") is None


def test_generate_takes_no_claim_of_its_output_that_another_process_holds(pipe, tmp_path):
    # docs/usage.md ("Many runs from one script") says so: only the command line refuses a second writer of one
    # -o; two scripts given the same output= both write it, so each needs names of its own.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f"{WRITING_PREFIX}fox.mp4").write_text(f"{holder.pid} {socket.gethostname()}\n")
        result = pipe.generate(GenerationRequest("a red fox", **TINY, output=str(tmp_path / "fox.mp4")))
        assert Path(result.output).stat().st_size > 0 and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
