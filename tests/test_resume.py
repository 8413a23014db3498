"""Nothing lost when sampling stops: a run stopped while sampling (Ctrl-C, out of memory, an error; or killed, after
a periodic save) keeps the sampling loop's state beside the output, and `motif-lite run --resume FILE` goes on from
it to the very latents an uninterrupted run reaches. Tiny checkpoint, CPU."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite import cli, load_pipeline
from motif_lite.errors import MotifLiteError
from motif_lite.io.latents import read_latents
from motif_lite.numerics import NonFiniteError
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.runtime import launcher
from motif_lite.units import file_size

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=48, height=32, frames=9, steps=4)  # guided by the official APG: momentum carries a state


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture(autouse=True)
def no_periodic_saves(pipe):
    pipe.save_state_every = float("inf")  # a test that wants them says so
    yield
    pipe.save_state_every = float("inf")


def request(folder: Path, name: str = "fox.mp4", **changes) -> GenerationRequest:
    return GenerationRequest(PROMPT, NEGATIVE, output=folder / name, **{"seed": 3, **SIZE, **changes})


def out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory (simulated)")


def stop_at(step: int, error: type[BaseException] = KeyboardInterrupt):
    """A progress callback that stops sampling as step `step` finishes."""

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == step:
            raise error

    return on_progress


def denoised(pipe, req: GenerationRequest, monkeypatch, **generate) -> torch.Tensor:
    """The run's denoised latents, as its failed decode saves them (and then removes the file)."""
    with monkeypatch.context() as patch:
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(req, **generate)
    path = Path(req.output).with_name("fox.latents.safetensors")
    saved = read_latents(path)
    assert saved.denoised
    path.unlink()
    return saved.latents


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ the pipeline


@pytest.mark.parametrize(
    ("sampler", "image"),
    [("euler", False), ("dpm++2m", False), ("unipc", False), ("euler", True)],
    ids=["euler", "dpm++2m", "unipc", "i2v"],
)
def test_a_stopped_run_resumed_reaches_the_uninterrupted_latents(pipe, tmp_path, monkeypatch, sampler, image):
    changes = dict(sampler=sampler)
    if image:
        PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(
            tmp_path / "first.png"
        )
        changes["image"] = tmp_path / "first.png"
    whole = denoised(pipe, request(tmp_path, **changes), monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, **changes), on_progress=stop_at(2))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert saved.progress == (2, 4) and saved.file == tmp_path / "fox.latents.safetensors"
    assert ("solver.prev_x0" in saved.state) == (sampler == "dpm++2m") and "apg_running" in saved.state
    assert ("solver.last_sample" in saved.state) == (sampler == "unipc")
    resumed = denoised(pipe, GenerationRequest(**saved.request), monkeypatch, resume=saved)
    assert torch.equal(resumed, whole)
    # Negative control: the latents alone, without the solver's and APG's state, go elsewhere.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, **changes), on_progress=stop_at(2))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    alone = denoised(pipe, GenerationRequest(**saved.request), monkeypatch, resume=dataclasses.replace(saved, state={}))
    assert not torch.equal(alone, whole)


def test_a_stopped_bf16_run_resumed_reaches_the_uninterrupted_latents(checkpoint, tmp_path, monkeypatch):
    # The multistep solvers' previous sigma stays float32 in a bf16 run, as in the uninterrupted one: taken in bf16
    # it rounds (0.97 to 0.96875), and the resumed steps go elsewhere.
    half = load_pipeline(checkpoint, dtype=torch.bfloat16, device="cpu", kernels="torch")
    half.save_state_every = float("inf")
    whole = denoised(half, request(tmp_path, sampler="dpm++2m"), monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        half.generate(request(tmp_path, sampler="dpm++2m"), on_progress=stop_at(2))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert saved.state["solver.prev_sigma"].dtype == torch.float32
    resumed = denoised(half, GenerationRequest(**saved.request), monkeypatch, resume=saved)
    assert torch.equal(resumed, whole)


def test_a_resumed_run_writes_the_video_and_removes_the_file(pipe, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    assert names(tmp_path) == ["fox.latents.safetensors"]  # no partial video
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    steps = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "denoise":
            steps.append(done)

    result = pipe.generate(GenerationRequest(**saved.request), resume=saved, on_progress=on_progress)
    assert names(tmp_path) == ["fox.mp4"] and result.resumed_at == 1 and len(result.step_seconds) == 3
    assert steps == [1, 2, 3, 4]  # the progress starts where the stopped run was


def test_a_file_without_the_model_and_version_keys_still_resumes(pipe, tmp_path):
    # The video's settings now name the model and motif-lite's version; a file saved before they existed (or by
    # another version, or with another model: a note, not a refusal) goes on all the same.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert {"model", "version"} <= set(saved.video_metadata)
    older = {k: v for k, v in saved.video_metadata.items() if k not in ("model", "version")}
    result = pipe.generate(GenerationRequest(**saved.request), resume=dataclasses.replace(saved, video_metadata=older))
    assert result.resumed_at == 1 and names(tmp_path) == ["fox.mp4"]


def test_a_resumed_run_that_stops_again_updates_its_file(pipe, tmp_path, monkeypatch):
    whole = denoised(pipe, request(tmp_path), monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    with pytest.raises(torch.OutOfMemoryError):
        pipe.generate(GenerationRequest(**saved.request), resume=saved, on_progress=stop_at(3, torch.OutOfMemoryError))
    assert names(tmp_path) == ["fox.latents.safetensors"]  # the same file, now further on
    again = read_latents(tmp_path / "fox.latents.safetensors")
    assert again.progress == (3, 4)
    assert torch.equal(denoised(pipe, GenerationRequest(**again.request), monkeypatch, resume=again), whole)


def test_the_error_says_how_to_go_on(pipe, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(2))
    path = tmp_path / "fox.latents.safetensors"
    assert f"sampling stopped after step 2 of 4; its state is saved in {path}" in caplog.text
    assert f"motif-lite run --resume {path}" in caplog.text
    python = caplog.text.split("(in Python: ")[1].split(")\n")[0]  # it named only `run --resume`, to Python too
    # The line runs as written after `import motif_lite` (it named read_latents, which the package did not export).
    import motif_lite

    code = python.replace("that file", repr(str(path))).replace("; ", "\n")
    exec(code, {"motif_lite": motif_lite, "pipe": pipe})  # noqa: S102
    assert (tmp_path / "fox.mp4").exists()


def test_the_api_notes_a_model_other_than_the_stopped_runs(pipe, checkpoint, tmp_path):
    # generate(resume=) went on with another dtype and a LoRA without a word (`run --resume` notes it): the rest of
    # the video was another model's.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    lora = a_lora(tmp_path)
    styled = load_pipeline(checkpoint, dtype=torch.bfloat16, device="cpu", kernels="torch", loras=[(lora, 0.5)])
    result = styled.generate(GenerationRequest(**saved.request), resume=saved, latents_file=tmp_path / "b.safetensors")
    assert result.resumed_at == 1
    rest = "the rest of the video is sampled with this pipeline's model"
    assert [note for note in result.notes if "resumed" in note] == [
        f"the run being resumed had --dtype fp32: {rest}",
        f"the run being resumed had no --lora: {rest}",
    ]
    same = pipe.generate(GenerationRequest(**saved.request), resume=saved, latents_file=tmp_path / "c.safetensors")
    assert same.resumed_at == 1 and not [note for note in same.notes if "resumed" in note]


def test_a_killed_run_goes_on_from_its_last_periodic_save(pipe, tmp_path, monkeypatch):
    """A crash no handler sees (power, the OOM killer) leaves the last periodic save: copied here mid-run."""
    whole = denoised(pipe, request(tmp_path), monkeypatch)
    pipe.save_state_every = 0.0  # every step
    kept = tmp_path / "kept"
    kept.mkdir()

    def copy_after_step_2(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 2:
            shutil.copy(tmp_path / "fox.latents.safetensors", kept / "fox.latents.safetensors")

    pipe.generate(request(tmp_path), on_progress=copy_after_step_2)
    assert names(tmp_path) == ["fox.mp4", "kept"]  # the run finished: its saved state is gone
    saved = read_latents(kept / "fox.latents.safetensors")
    assert saved.progress == (2, 4)
    resumed_request = dataclasses.replace(GenerationRequest(**saved.request), output=kept / "fox.mp4")
    assert torch.equal(denoised(pipe, resumed_request, monkeypatch, resume=saved), whole)


def test_a_failed_periodic_save_is_said_once_and_sampling_goes_on(pipe, tmp_path, monkeypatch, caplog):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    pipe.save_state_every = 0.0
    monkeypatch.setattr("motif_lite.io.latents_saving.save_latents", disk_full)
    with caplog.at_level(logging.WARNING, "motif_lite"):
        pipe.generate(request(tmp_path))
    assert names(tmp_path) == ["fox.mp4"]
    warnings = [r.getMessage() for r in caplog.records if "could not be saved" in r.getMessage()]
    assert len(warnings) == 1 and "No space left on device" in warnings[0] and "sampling goes on" in warnings[0]


def test_inf_while_sampling_saves_no_state(pipe, tmp_path, monkeypatch):
    forward = pipe.transformer.forward
    calls = []

    def overflowing(*args, **kwargs):
        calls.append(1)
        out = forward(*args, **kwargs)
        return out * torch.inf if len(calls) > 2 else out  # from the second step on

    monkeypatch.setattr(pipe.transformer, "forward", overflowing)
    with pytest.raises(NonFiniteError, match="after step 2"):
        pipe.generate(request(tmp_path))
    assert names(tmp_path) == []  # going on from there would overflow again


def test_resume_checks_the_request_before_any_work(pipe, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    encoded = []
    with pytest.raises(RequestError, match="steps: 4 then, 6 now"):
        pipe.generate(request(tmp_path, steps=6), resume=saved, on_progress=lambda *a: encoded.append(a))
    with pytest.raises(RequestError, match="seed"):
        pipe.generate(request(tmp_path, seed=4), resume=saved)
    with pytest.raises(RequestError, match=r"\(seed: \d+ then, 4 now; steps: 4 then, 6 now\)"):  # each one named
        pipe.generate(request(tmp_path, seed=4, steps=6), resume=saved)
    assert encoded == []


def test_a_schedule_the_checkpoint_changed_since_is_not_resumed(pipe, tmp_path, monkeypatch):
    # A run sampled with its scheduler config's Karras sigmas saves them; the same checkpoint without them (or the
    # other way round) samples another schedule, which the saved steps do not continue.
    import dataclasses

    from motif_lite.sampling import ScheduleOptions

    sources = pipe.sources
    karras = dataclasses.replace(sources.configs, schedule=ScheduleOptions(spacing="karras"))
    monkeypatch.setattr(pipe, "sources", dataclasses.replace(sources, configs=karras))
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert saved.video_metadata["schedule"]["spacing"] == "karras"
    monkeypatch.setattr(pipe, "sources", sources)
    with pytest.raises(RequestError, match=r"continues another video .*schedule: \{.*'karras'.*\} then, None now"):
        pipe.generate(request(tmp_path), resume=saved)


def test_resuming_denoised_latents_goes_straight_to_the_decode(pipe, tmp_path, monkeypatch):
    """A server job stopped while it decoded: the next run decodes the kept latents without sampling."""
    uninterrupted = tmp_path / "whole"
    uninterrupted.mkdir()
    pipe.generate(request(uninterrupted, "out_%03d.png"))
    with monkeypatch.context() as patch:
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(request(tmp_path, "out_%03d.png"))
    saved = read_latents(tmp_path / "out.latents.safetensors")
    denoising = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "denoise":
            denoising.append(done)

    result = pipe.generate(request(tmp_path, "out_%03d.png"), resume=saved, on_progress=on_progress)
    assert result.resumed_at == 4 and result.step_seconds == [] and denoising == [4]  # no step ran
    for i in range(9):
        assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / f"out_{i:03d}.png")),
                              np.asarray(PIL.Image.open(uninterrupted / f"out_{i:03d}.png"))), i  # fmt: skip


# ------------------------------------------------------------------------------ motif-lite run --resume


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", *args, "--device", "cpu", "--kernels", "torch", "--yes"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_resumes_with_the_file_alone(checkpoint, tmp_path, capsys, monkeypatch):
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32"]
    args = ["-m", str(checkpoint), "-p", PROMPT, "-n", NEGATIVE, "-s", "3", *size]
    code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "whole_%03d.png"))
    assert code == 0, err

    def stop(self, stage, done, total):
        if stage == "denoise" and done == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
        code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "out_%03d.png"))
    path = tmp_path / "out.latents.safetensors"
    assert code == cli.EXIT_INTERRUPTED and f"go on from there with motif-lite run --resume {path}" in err
    assert read_latents(path).progress == (2, 4)
    # No -m, no --dtype, no prompt: all from the file.
    code, out, err = run_cli(capsys, "--resume", str(path))
    assert code == 0, err
    assert "resumed: steps 3-4 sampled here, steps 1-2 by the run that stopped" in out
    assert not path.exists()
    for i in range(9):
        a = np.asarray(PIL.Image.open(tmp_path / f"whole_{i:03d}.png"))
        b = np.asarray(PIL.Image.open(tmp_path / f"out_{i:03d}.png"))
        assert np.array_equal(a, b), f"frame {i}"


@pytest.fixture
def stopped(pipe, tmp_path) -> Path:
    """The latents file of a run (of the `pipe` checkpoint, fp32) stopped after step 1 of 4."""
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(1))
    return tmp_path / "fox.latents.safetensors"


def test_a_crf_the_output_cannot_take_is_refused_before_sampling(pipe, tmp_path):
    stages = []
    with pytest.raises(MotifLiteError, match=r"crf has no meaning for a \.gif output"):
        pipe.generate(request(tmp_path, "fox.gif"), on_progress=lambda stage, *_: stages.append(stage), crf=20)
    assert "denoise" not in stages and names(tmp_path) == []


def test_a_resumed_run_writes_its_video_at_the_crf_given(stopped, tmp_path, capsys):
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--crf", "40")
    assert code == 0, err
    assert b"crf=40.0" in (tmp_path / "fox.mp4").read_bytes()  # x264 writes its options into the stream


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["-p", "a cat"], "--prompt"),
        (["--steps", "8", "-s", "1"], "--steps, --seed"),
        (["-b", "2"], "--batch-count"),
    ],  # fmt: skip
)
def test_flags_that_choose_the_video_are_refused_with_resume(stopped, capsys, flags, named):
    code, _, err = run_cli(capsys, "--resume", str(stopped), *flags)
    assert_user_error(code, err, f"leave out {named}")


def test_a_gif_the_resumed_run_cannot_play_names_another_format_not_fps(pipe, tmp_path, capsys):
    # --fps is refused with --resume (the file says the frame rate): the way out is another format.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, fps=60), on_progress=stop_at(1))
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"), "-o", str(tmp_path / "a.gif"))
    assert_user_error(code, err, "fps 60 does not fit a GIF", "--resume keeps the run's frame rate: give -o a .webp")
    assert "--fps" not in err


@pytest.mark.parametrize(("output", "refused"), [("", "is a directory"), ("fox.avi", "unsupported output format")])
def test_an_output_given_with_resume_is_refused_as_the_users_not_the_files(stopped, tmp_path, capsys, output, refused):
    # -o FOLDER (or a format no file can hold) with --resume blamed the latents file: "fox.latents.safetensors's
    # stored settings: output path ... is a directory ... (the file was edited or damaged; give --output to replace
    # the file's)", to a user who had given --output.
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-o", str(tmp_path / output))
    assert_user_error(code, err, refused)
    assert "stored settings" not in err and "damaged" not in err and stopped.exists()


def test_resume_of_denoised_latents_points_to_decode(pipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        pipe.generate(request(tmp_path))
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"))
    assert_user_error(
        code, err, "denoised latents", "sampling is done, so there is nothing to resume", "motif-lite decode"
    )
    assert "null" not in err  # the file's field, not the user's words


def test_decode_of_a_stopped_run_points_to_resume(stopped, capsys):
    code = cli.main(["decode", str(stopped), "--device", "cpu"])
    err = capsys.readouterr().err
    assert_user_error(code, err, "stopped after step 1 of 4", f"motif-lite run --resume {stopped}")


def test_resume_of_a_missing_file_is_named(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "nope.latents.safetensors"))
    assert_user_error(code, err, "no such latents file")
    (tmp_path / "fox.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # the video, given for its state
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.mp4"))
    assert_user_error(code, err, "is a video, not a latents file", "a stopped run saved")
    assert "failed decode" not in err  # --resume goes on from a stopped run
    (tmp_path / "fox.latents.safetensors").write_bytes(b"x")  # the output folder given: its latents files named
    code, _, err = run_cli(capsys, "--resume", str(tmp_path))
    assert_user_error(code, err, f"{tmp_path} is a folder: give the .latents.safetensors file (a stopped run of",
                      "in this folder: fox.latents.safetensors")  # fmt: skip
    assert "no such" not in err


def test_resume_dry_run_shows_the_files_settings_and_a_changed_model_flag(stopped, capsys):
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run", "--dtype", "bf16")
    assert code == 0, err
    assert f"resuming {stopped}: 1 of 4 steps sampled, 3 to go" in err
    assert "the run being resumed had --dtype fp32" in err  # --dtype bf16 given, though it is the default
    assert "48x32, 9 frames at 24 fps" in out and "'blurry, static'" in out


def test_a_resumed_run_keeps_its_dtype_whatever_the_devices_default(stopped, capsys):
    # The stopped run was fp32: without --dtype the rest is sampled in fp32 too, not in the device's default.
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "  dtype        file       fp32  (fox.latents.safetensors)" in out.splitlines(), out
    assert "the run being resumed had" not in err


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_a_resumed_runs_settings_table_names_its_latents_file_as_the_source(stopped, capsys, dtype):
    # Every row the latents file decided was labelled `flag`, as if given on this command line: the size, the steps,
    # the negative prompt and the dtype (which resume_args puts into the flags); the checkpoint's rows stay its own.
    given = ["--dtype", dtype] if dtype else []
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run", *given)
    assert code == 0, err
    table = [line for line in out.splitlines() if line.startswith("  ")]
    rows = {line[2:14].strip(): line[15:25].strip() for line in table}  # row name: source
    assert "file: fox.latents.safetensors;" in out
    assert (rows["size"], rows["steps"], rows["negative"]) == ("file", "file", "file")
    assert (rows["flow shift"], rows["guidance"]) == ("checkpoint", "checkpoint")  # the stopped run left them open
    assert rows["dtype"] == ("flag" if dtype else "file")


def a_lora(folder: Path) -> Path:
    """A LoRA (PEFT names) of one layer of the tiny checkpoint's transformer."""
    from safetensors.torch import save_file

    module = "transformer.transformer_blocks.0.attn.to_q"
    path = folder / "style.safetensors"
    save_file({f"{module}.lora_A.weight": torch.randn(2, 64), f"{module}.lora_B.weight": torch.randn(64, 2)}, path)
    return path


@pytest.mark.parametrize("lora_first", [False, True], ids=["lora-after", "lora-before"])
def test_a_lora_given_on_resume_is_checked_and_applied(stopped, capsys, lora_first):
    # --lora (the one `append` flag of run) crashed argparse in the check of which flags were given.
    lora = ["--lora", f"{a_lora(stopped.parent)}:0.5"]
    resume = ["--resume", str(stopped), "-o", str(stopped.with_name("styled.mp4"))]
    flags = [*lora, *resume] if lora_first else [*resume, *lora]
    code, out, err = run_cli(capsys, *flags, "--dry-run")
    assert code == 0, err
    assert "the run being resumed had no --lora:" in err
    assert "loras: style.safetensors x0.5 (peft, 1 layer)" in out
    code, out, err = run_cli(capsys, *flags)
    assert code == 0, err
    assert "loras: style.safetensors x0.5 (peft, 1 layer); 1 layer merged" in out
    assert "resumed: steps 2-4 sampled here, step 1 by the run that stopped" in out
    assert stopped.with_name("styled.mp4").is_file()


@pytest.mark.parametrize(
    ("flag", "file", "named"),
    [
        ("--vae", "vae/diffusion_pytorch_model.safetensors", "no --vae"),
        (
            "--diffusion-model",
            "transformer/diffusion_pytorch_model.safetensors",
            "no --gguf, --diffusion-model or --quantize",
        ),
    ],
)
def test_the_note_on_a_model_flag_the_stopped_run_left_out_names_it(stopped, checkpoint, capsys, flag, file, named):
    # It said "the run being resumed had the default", without saying of which flag.
    code, _, err = run_cli(capsys, "--resume", str(stopped), flag, str(checkpoint / file), "--dry-run")
    assert code == 0, err
    assert f"the run being resumed had {named}: the rest of the video is sampled with what this command gives" in err


def test_the_note_on_another_lora_names_the_stopped_runs(checkpoint, tmp_path, capsys, monkeypatch):
    lora = a_lora(tmp_path)
    (tmp_path / "second").mkdir()
    second = a_lora(tmp_path / "second")
    loras = [(lora, 0.8), (second, 0.5)]
    styled = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", loras=loras)
    with pytest.raises(KeyboardInterrupt):
        styled.generate(request(tmp_path), on_progress=stop_at(1))
    stopped = tmp_path / "fox.latents.safetensors"
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--lora", str(lora), "--dry-run")
    assert code == 0, err
    assert f"the run being resumed had --lora {lora}:0.8 --lora {second}:0.5: the rest of the video" in err
    # The same LoRAs typed another way (a relative path, a folder for its one file, the other order): no note.
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--lora", "second:0.5", "--lora", f"{lora.name}:0.8",
                           "--dry-run")  # fmt: skip
    assert code == 0, err
    assert "the run being resumed had" not in err


def test_a_resumed_run_compares_loras_by_file_and_strength(tmp_path, monkeypatch):
    # They were compared as text: `x.safetensors` typed again against the `/abs/x.safetensors:1` the file keeps was
    # "another LoRA", and so was a file written before strengths were stored exactly (`:g`, 6 digits).
    from motif_lite.io.model_stamps import other_model_notes
    from motif_lite.weights.lora_values import lora_flag

    lora = a_lora(tmp_path)
    monkeypatch.chdir(tmp_path)
    then = {"lora": [lora_flag(lora, 1.0), lora_flag(lora, 1 / 3)]}
    assert other_model_notes(then, {"lora": [lora.name, f"{lora}:{1 / 3:g}"]}, "this command") == []
    assert other_model_notes({"lora": [f"{lora}:{4 / 3:g}"]}, {"lora": [lora_flag(lora, 4 / 3)]}, "it") == []
    (note,) = other_model_notes(then, {"lora": [lora.name]}, "this command")
    assert note.startswith(f"the run being resumed had --lora {lora}:1 --lora {lora}:0.3333333333333333: ")


RETRAINED = 1_700_000_000  # seconds: 2023-11-14


def retrain(lora: Path) -> None:
    """`lora` written again in place, as a retrained LoRA is: other weights, another size (rank 4) and time."""
    from safetensors.torch import save_file

    module = "transformer.transformer_blocks.0.attn.to_q"
    save_file({f"{module}.lora_A.weight": torch.randn(4, 64), f"{module}.lora_B.weight": torch.randn(64, 4)}, lora)
    os.utime(lora, (RETRAINED, RETRAINED))  # another time, whatever the file system's clock resolution


def test_a_lora_changed_in_place_since_the_run_stopped_is_noted(checkpoint, tmp_path, capsys):
    # A LoRA retrained under the same name went on silently: only its path and strength were compared.
    lora = a_lora(tmp_path)
    styled = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", loras=[(lora, 0.5)])
    with pytest.raises(KeyboardInterrupt):
        styled.generate(request(tmp_path), on_progress=stop_at(1))
    stopped = tmp_path / "fox.latents.safetensors"
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "changed since the run stopped" not in err
    size = file_size(lora.stat().st_size)
    retrain(lora)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert f"{lora} changed since the run stopped ({size} then, {file_size(lora.stat().st_size)} now; modified " in err
    assert "the rest of the video is sampled with the file as it is now" in err
    assert "the run being resumed had" not in err  # the same path and strength: no other note
    saved = read_latents(stopped)
    result = styled.generate(GenerationRequest(**saved.request), resume=saved, latents_file=tmp_path / "b.safetensors")
    assert [note for note in result.notes if "changed since the run stopped" in note] == [
        f"{lora} changed since the run stopped ({size} then, {file_size(lora.stat().st_size)} now; modified "
        f"{datetime.fromtimestamp(RETRAINED):%Y-%m-%d %H:%M:%S}): the rest of the video is sampled with the file "
        "as it is now"
    ]
    drop_run_key(stopped, "file_stamps")  # a file of an older motif-lite: nothing to compare
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "changed since the run stopped" not in err


def random_image(path: Path, seed: int) -> Path:
    PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


def counted_hashes(monkeypatch) -> list[int]:
    """A list that grows by one at each SHA-256 `image_sha256` starts (of an input image, or a clip's file)."""
    import hashlib
    import types

    from motif_lite.io import image as image_module

    started = []
    counting = types.SimpleNamespace(sha256=lambda *data: started.append(1) or hashlib.sha256(*data))
    monkeypatch.setattr(image_module, "hashlib", counting)
    return started


def edit_description(path: Path, edit) -> None:
    """`path` with its description (the header's JSON) changed in place by `edit(info)`: as another motif-lite
    wrote it."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    edit(info)
    save_file(tensors, str(path), metadata={"motif_lite_latents": json.dumps(info)})


def drop_run_key(path: Path, key: str) -> None:
    """`path` as an older motif-lite wrote it: without `key` in what it keeps of the run (the input image's
    checksum, the weight files' stamps)."""
    edit_description(path, lambda info: info["run"].pop(key))


def as_stopped_at_cfg_scale_one(info: dict) -> None:
    """An unguided run's description as a motif-lite before 9bc82a3 wrote it for `--cfg-scale 1`, which then
    switched guidance off on any guider: cfg_scale 1 in its request and video settings, guidance_config null."""
    assert info["video_metadata"]["guidance_config"] is None and info["request"]["guidance"] is None
    info["request"]["cfg_scale"] = info["video_metadata"]["cfg_scale"] = 1.0
    info["video_metadata"]["version"] = "0.1.0"


def test_a_run_an_older_version_stopped_at_cfg_scale_one_goes_on_unguided(pipe, tmp_path, monkeypatch, capsys):
    # cfg_scale 1 guides the official guider now (as diffusers' does); such a file was refused ("guidance_config:
    # None then, {...} now"). Its partial latents were sampled unguided: the rest is too, to the unguided run's end.
    whole = denoised(pipe, request(tmp_path, cfg_scale=0.0), monkeypatch)  # 0: off on the official guider
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, cfg_scale=0.0), on_progress=stop_at(2))
    stopped = tmp_path / "fox.latents.safetensors"
    edit_description(stopped, as_stopped_at_cfg_scale_one)
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "guidance     file       off" in out, out
    assert "still guides" not in err  # no note on a scale of 1 that guides: it does not here
    saved = read_latents(stopped)
    assert saved.request["cfg_scale"] == 1.0 and saved.request["guidance"] == "cfg"
    # Only a guidance_config recorded null says the run was unguided: a description without one is read as stored.
    keyless = shutil.copy(stopped, tmp_path / "keyless.latents.safetensors")
    edit_description(keyless, lambda info: info["video_metadata"].pop("guidance_config"))
    assert read_latents(keyless).request["guidance"] is None
    resumed = denoised(pipe, GenerationRequest(**saved.request), monkeypatch, resume=saved)
    assert torch.equal(resumed, whole)


def test_a_moved_input_image_is_given_again_with_i(pipe, tmp_path, capsys, monkeypatch):
    # It could not be resumed: without -i the image was not found, with -i the flag was refused.
    first = random_image(tmp_path / "first.png", 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, image=first), on_progress=stop_at(1))
    stopped = tmp_path / "fox.latents.safetensors"
    moved = first.rename(tmp_path / "moved.png")
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert_user_error(code, err, f"the input image of the run being resumed, {first}, is no longer there: give it")
    other = random_image(tmp_path / "other.png", 1)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(other), "--dry-run")
    assert_user_error(code, err, f"{other} is not the image the run being resumed used ({first}, no longer there)")
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(tmp_path / "gone.png"), "--dry-run")
    assert_user_error(code, err, f"input image not found: {tmp_path / 'gone.png'}")
    monkeypatch.chdir(tmp_path)  # -i relative to the working folder: the note and the run name the file in full
    code, out, err = run_cli(capsys, "--resume", str(stopped), "-i", moved.name)
    assert code == 0, err
    assert f"input image {first} is no longer there: going on with {moved}, the same image (its checksum" in err
    assert (tmp_path / "fox.mp4").is_file() and not stopped.exists()


def test_a_moved_image_of_an_older_file_is_taken_with_a_note_and_one_still_there_is_refused(pipe, tmp_path, capsys):
    first = random_image(tmp_path / "first.png", 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, image=first), on_progress=stop_at(1))
    stopped = tmp_path / "fox.latents.safetensors"
    other = random_image(tmp_path / "other.png", 1)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(other), "--dry-run")
    assert_user_error(code, err, "leave out --image")  # the run's image is still there
    drop_run_key(stopped, "image_sha256")
    first.unlink()
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(other), "--dry-run")
    assert code == 0, err
    assert f"going on with {other}, it must be the same image (this file, saved by an older motif-lite, cannot" in err


def test_a_request_this_version_does_not_know_is_named(stopped, capsys):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["request"]["motion_bucket"] = 7
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, _, err = run_cli(capsys, "--resume", str(stopped))
    assert_user_error(code, err, "its request does not fit this motif-lite", "motion_bucket")


@pytest.mark.parametrize(("field", "value"), [("sampler", "dpm++3m"), ("guidance", "pag")])
def test_a_sampler_or_guidance_this_version_lacks_says_to_upgrade(stopped, capsys, field, value):
    # It was "unknown sampler 'dpm++3m'; choose one of ...", which --resume refuses to take.
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from motif_lite.version import VERSION

    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["request"][field] = value
    info["video_metadata"]["version"] = "9.0"
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, _, err = run_cli(capsys, "--resume", str(stopped))
    assert_user_error(code, err, f"its run samples with the {field} {value!r}, which motif-lite {VERSION} does not "
                      "have (the run was started by motif-lite 9.0): upgrade motif-lite to go on with it")  # fmt: skip


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_terminated_run_keeps_its_state(checkpoint, tmp_path, capsys, monkeypatch, signame):
    """kill, a scheduler's preemption or a closed terminal stop `run` as Ctrl-C does: the state is kept."""
    signum = getattr(signal, signame)

    def terminate(self, stage, done, total):
        if stage == "denoise" and done == 2:
            signal.raise_signal(signum)

    monkeypatch.setattr("motif_lite.progress.ProgressBars.__call__", terminate)
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32", "-s", "3"]
    # As from a terminal: pytest under nohup (or a job that ignores SIGHUP) passes the ignored SIGHUP on, and a run
    # rightly keeps it ignored (test_resume_signals.py's nohup test) and finishes.
    inherited = signal.signal(signum, signal.SIG_DFL)
    try:
        code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", PROMPT, *size, "-o", str(tmp_path / "fox.mp4"))
        assert signal.getsignal(signum) is signal.SIG_DFL  # put back after the command
    finally:
        signal.signal(signum, inherited)
    assert code == 128 + signum and f"terminated ({signame})" in err, err
    assert read_latents(tmp_path / "fox.latents.safetensors").progress == (2, 4)
    assert "motif-lite run --resume" in err


def test_a_new_run_of_the_same_output_points_to_the_stopped_one(stopped, checkpoint, capsys):
    """Run again instead of --resume: the note says how to go on, and the stopped run's file stays."""
    output = stopped.with_name("fox.mp4")
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2", "--dtype", "fp32"]
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", PROMPT, *size, "-o", str(output))
    assert code == 0, err
    assert f"holds an earlier run of {output} that stopped after step 1 of 4" in err
    assert f"motif-lite run --resume {stopped}" in err
    assert read_latents(stopped).progress == (1, 4)  # untouched


def test_a_stopped_batch_names_the_videos_it_did_not_start(checkpoint, tmp_path, capsys, monkeypatch):
    def stop_in_the_second(self, stage, done, total):
        if stage == "denoise" and done == 1 and (tmp_path / "fox-1.mp4").exists():
            raise KeyboardInterrupt

    monkeypatch.setattr("motif_lite.progress.ProgressBars.__call__", stop_in_the_second)
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2", "--dtype", "fp32", "-s", "10"]
    args = ["-m", str(checkpoint), "-p", PROMPT, *size, "-b", "4", "-o", str(tmp_path / "fox.mp4")]
    code, _, err = run_cli(capsys, *args)
    assert code == cli.EXIT_INTERRUPTED
    assert f"not started: {tmp_path / 'fox-3.mp4'} (seed 12), {tmp_path / 'fox-4.mp4'} (seed 13)" in err
    assert f"motif-lite run --resume {tmp_path / 'fox-2.latents.safetensors'}" in err
    assert "nothing saved" not in err  # its first step was saved


def test_a_resumed_run_never_reuses_on_the_last_step(checkpoint, tmp_path):
    """The step cache counts steps from the run's start: a resumed run computes its first step (empty cache) and
    the video's last step in full, as the uninterrupted run does."""
    cached = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", step_cache=1e9)
    cached.save_state_every = float("inf")
    assert cached.generate(request(tmp_path, "whole.mp4")).step_cache == (4, 8)  # the middle two steps, both branches
    with pytest.raises(KeyboardInterrupt):
        cached.generate(request(tmp_path), on_progress=stop_at(2))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert cached.generate(GenerationRequest(**saved.request), resume=saved).step_cache == (0, 4)


def test_resuming_a_run_that_finished_says_its_video_is_there(tmp_path, capsys):
    """The file is removed once the video is written: `--resume` of it again points to the video."""
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"))
    assert_user_error(code, err, "no such latents file")
    assert "fox.mp4 is there" not in err
    (tmp_path / "fox.mp4").touch()  # the empty file a run killed before its first save took its name with
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"))
    assert_user_error(code, err, "no such latents file")
    assert "fox.mp4 is there" not in err
    (tmp_path / "fox.mp4").write_bytes(b"a finished video")
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"))
    assert_user_error(code, err, "fox.mp4 is there: a run removes its latents file once its video is written")


def test_a_model_path_that_is_gone_is_named_with_its_flag(stopped, checkpoint, tmp_path, capsys):
    """A file from another machine, or a checkpoint that moved: the error names the flag to give again."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    gone = tmp_path / "elsewhere"
    info["run"] |= {"model": str(gone / "Motif-Video-2B"), "lora": [f"{gone / 'style.safetensors'}:0.8"]}
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert_user_error(code, err, f"had --model {gone / 'Motif-Video-2B'}, which is not there", "give --model again")
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-m", str(checkpoint), "--dry-run")
    assert_user_error(code, err, f"had --lora {gone / 'style.safetensors'}, which is not there", "give --lora again")


def test_a_run_that_gave_a_lora_twice_goes_on_with_it_once_at_the_sum(stopped, tmp_path, capsys):
    # A run could give one file twice until that was refused (it applied at the sum); its latents file keeps both
    # values, and --resume read them back as two --lora and was refused in words of a --lora nobody typed, with a
    # --lora that, given with --resume, would have dropped the run's other LoRA.
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    style = a_lora(tmp_path)
    other = tmp_path / "b.safetensors"
    other.write_bytes(style.read_bytes())
    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["run"]["lora"] = [f"{style}:0.25", f"{other}:1", f"{style}:0.25"]
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "loras: style.safetensors x0.5 (peft, 1 layer), b.safetensors x1 (peft, 1 layer)" in out, out
    assert f"the run being resumed gave --lora {style} twice (at 0.25 + 0.25), which applied it at the sum" in err
    assert "the run being resumed had" not in err  # the same LoRAs: no note of another model


@pytest.mark.parametrize(
    ("strengths", "said"),
    [((0.5, -0.5), "twice (at 0.5 + -0.5)"), ((0.1, 0.2, -0.3), "3 times (at 0.1 + 0.2 + -0.3)")],
    ids=["exactly", "float-residue"],
)
def test_a_run_that_gave_a_lora_twice_at_strengths_that_cancel_goes_on_without_it(
    stopped, tmp_path, capsys, strengths, said
):
    # Given at 0.5 and -0.5 it changed nothing: the resumed run leaves it out rather than load it at strength 0. So
    # at 0.1, 0.2 and -0.3, whose sum in floats is 5.6e-17, not 0: it was loaded at that.
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    style = a_lora(tmp_path)
    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["run"]["lora"] = [f"{style}:{strength}" for strength in strengths]
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "loras:" not in out, out
    assert f"gave --lora {style} {said}, which applied it at the sum: it goes on without it" in err
    # The file left out is the model the stopped run had: no note of another one (lora_totals kept it at 0 there).
    assert "the run being resumed had" not in err, err


def test_a_run_whose_lora_given_twice_cancels_goes_on_though_the_file_is_gone(stopped, tmp_path, capsys):
    # Left out, the file is not read: it was refused as "not there", with --lora to give again for a LoRA the run
    # goes on without (and --lora given with --resume cannot give none).
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    gone = tmp_path / "elsewhere" / "style.safetensors"
    info["run"]["lora"] = [f"{gone}:0.5", f"{gone}:-0.5"]
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "loras:" not in out, out
    assert f"gave --lora {gone} twice (at 0.5 + -0.5), which applied it at the sum: it goes on without it" in err


def test_a_second_ctrl_c_during_the_save_leaves_the_last_whole_state_and_says_so(pipe, tmp_path, monkeypatch, caplog):
    """Ctrl-C, then Ctrl-C again while the state is written: the file a periodic save wrote stays whole (no half
    file), and the warning names it and the step it holds."""
    from motif_lite.io import latents_saving

    save, saves = latents_saving.save_latents, []

    def second_ctrl_c_on_the_last(saved, path):
        saves.append(saved.progress)
        if saved.progress == (3, 4) and len(saves) > 2:  # the save after the first Ctrl-C
            raise KeyboardInterrupt
        return save(saved, path)

    def first_ctrl_c(stage, done, total):
        if stage == "denoise" and done == 3:
            pipe.save_state_every = float("inf")
            raise KeyboardInterrupt

    pipe.save_state_every = 0.0  # periodic saves after steps 1, 2 (and 3)
    monkeypatch.setattr(latents_saving, "save_latents", second_ctrl_c_on_the_last)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=first_ctrl_c)
    kept = tmp_path / "fox.latents.safetensors"
    assert names(tmp_path) == ["fox.latents.safetensors"]
    held = read_latents(kept).progress
    assert f"a second Ctrl-C stopped the save: {kept} holds the state after step {held[0]} of 4" in caplog.text


@pytest.mark.parametrize(
    "made",
    [
        "by the killed run",
        "after its last save",
        "by a run that may still run",
        "a video",
        "a video after its save",
        "a video, run without -o",
    ],
)
def test_a_stopped_runs_output_file_from_before_its_last_save_is_where_its_resumed_run_writes(
    pipe, stopped, tmp_path, capsys, monkeypatch, made
):
    """A run killed outright (kill -9) leaves the empty fox.mp4 it took its name with: its resumed run wrote
    fox-2.mp4 beside it and left it there. Likewise the video a run's -o was to replace (there as it began; its note
    said so): a resumed --extend link, say, wrote fox-2.mp4, not the file the chain goes on from. An empty file made
    after the run's last save is another run's claim, one of a run that may still be running is that run's, and a
    video written after it is one made since (the same command run again): each is kept, the video written beside.
    So is a video older than the save that the run did not begin over: its name was free (its claim released on
    Ctrl-C), another run wrote it, and its time came with it (cp -p, rsync -a) or the latents file is a copy."""
    output, other = stopped.with_name("fox.mp4"), stopped.with_name("fox-2.mp4")
    if made == "a video":  # the stopped run began over the video (-o named it, as the pipeline's output)
        output.write_bytes(b"an earlier video")
        stopped.unlink()  # the fixture's run, stopped the same way, began with nothing there
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(request(tmp_path), on_progress=stop_at(1))
    saved_at = time.time() - 600  # its last save, 10 minutes ago (its inode changed since: a copy, a chmod)
    os.utime(stopped, (saved_at, saved_at))
    earlier = b"an earlier video" if made.startswith("a video") else b""
    output.write_bytes(earlier)
    moment = saved_at + (60 if made in ("after its last save", "a video after its save") else -60)
    os.utime(output, (moment, moment))
    if made == "by a run that may still run":
        monkeypatch.setattr("motif_lite.io.latents_saving.still_running", lambda saved: 4321)
    taken = made in ("by the killed run", "a video")
    replaced = f"{output} is there already, older than the stopped run's last save: this run replaces it when its"
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert ("exists" not in err) if taken else (f"{output} exists: a run would write {other} instead" in err), err
    assert (replaced in err) == (made == "a video"), err
    code, out, err = run_cli(capsys, "--resume", str(stopped))
    assert code == 0, err
    written = output if taken else other
    assert f"output: {written}" in out and written.stat().st_size > 1000
    assert not other.exists() if taken else output.read_bytes() == earlier


def test_resuming_a_run_that_still_runs_says_so(stopped, tmp_path, capsys):
    """After an SSH drop the run may go on (nohup): resuming its periodic save beside it is worth a note."""
    import json
    import socket
    import subprocess
    import sys

    from safetensors import safe_open
    from safetensors.torch import save_file

    assert read_latents(stopped).writer == {"pid": os.getpid(), "host": socket.gethostname()}
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with safe_open(str(stopped), "pt") as file:
            info = json.loads(file.metadata()["motif_lite_latents"])
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        info["writer"]["pid"] = other.pid
        save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
        code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
        assert code == 0, err
        assert f"may still be running (process {other.pid} on this machine)" in err
        from motif_lite.cli.resume import earlier_runs

        again = GenerationRequest(**read_latents(stopped).request)  # the same command run again
        assert f"may still be running (process {other.pid}" in earlier_runs([again])[0]
    finally:
        other.kill()
        other.wait()
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0 and "may still be running" not in err, err


@pytest.mark.parametrize("cut", ["in the header", "in the data"])
def test_a_file_cut_short_says_so(stopped, tmp_path, capsys, cut):
    """A copy of the file (scp, a sync) that did not finish: the error says it is cut short, not "not latents"."""
    whole = stopped.read_bytes()
    header = 8 + int.from_bytes(whole[:8], "little")
    copy = tmp_path / "copied.latents.safetensors"
    copy.write_bytes(whole[: header // 2 if cut == "in the header" else len(whole) - 10])
    code, _, err = run_cli(capsys, "--resume", str(copy))
    assert_user_error(code, err, f"{copy} is cut short: {copy.stat().st_size} bytes where its header asks for")
    if cut == "in the data":
        assert f"asks for {len(whole)} or more" in err


def test_a_stopped_run_from_another_machine_asks_for_o_when_its_folder_is_not_here(
    stopped, tmp_path, capsys, monkeypatch
):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(stopped), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    elsewhere = str(tmp_path / "not-here" / "fox.mp4")
    info["output"] = info["request"]["output"] = elsewhere
    save_file(tensors, str(stopped), metadata={"motif_lite_latents": json.dumps(info)})
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert_user_error(code, err, f"wrote to {elsewhere}, and that folder is not here: give -o for the video")
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-o", str(tmp_path / "fox.mp4"), "--dry-run")
    assert code == 0, err
    # The same with --gpus: its launcher checked the file's own output, and refused what each rank would take.
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-o", str(tmp_path / "fox.mp4"), "--gpus", "2")
    assert code == 0 and launched == [2], err


def test_a_weight_file_changed_in_place_is_noted_and_an_unchanged_one_is_not(tmp_path):
    from motif_lite.io.model_stamps import changed_file_notes, file_stamps

    vae = tmp_path / "vae.safetensors"
    vae.write_bytes(b"x" * 10)
    flags = {"vae": str(vae), "gguf": None, "lora": []}
    then = {"file_stamps": file_stamps(flags)}
    assert changed_file_notes(then, flags) == []
    os.utime(vae, (RETRAINED, RETRAINED))  # the same size, another time
    assert changed_file_notes(then, flags) == [
        f"{vae} changed since the run stopped (the same size; modified "
        f"{datetime.fromtimestamp(RETRAINED):%Y-%m-%d %H:%M:%S}): the rest of the video is sampled with the file as "
        "it is now"
    ]
    assert changed_file_notes(then, {**flags, "vae": None}) == []  # the resumed run leaves it out: not its model


def test_a_run_that_gave_a_lora_three_times_is_said_to_have_given_it_three_times(tmp_path):
    # The note said "twice" of a file given twice alone; one given three times is named so, with its three strengths.
    from motif_lite.cli.resume import _each_lora_once

    style = tmp_path / "style.safetensors"
    style.write_bytes(b"a LoRA")
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"another LoRA")
    loras, notes = _each_lora_once([f"{style}:0.25", f"{other}:1", f"{style}:0.5", f"{style}:0.25"])
    assert loras == [f"{style}:1", f"{other}:1"]  # each once, where it was first, at its sum
    assert notes == [
        f"the run being resumed gave --lora {style} 3 times (at 0.25 + 0.5 + 0.25), which applied it at the sum: "
        "it goes on with it given once, at 1"
    ]


def test_a_run_that_gave_a_lora_at_strengths_whose_float_sum_is_0_goes_on_at_their_exact_sum(tmp_path):
    # 1e16, 1 and -1e16 do not cancel (`strengths_cancel` sums them exactly, to 1), but the run went on with the
    # file at their floats' sum, 0: loaded to change nothing, with a note saying "at 0".
    import math

    from motif_lite.cli.resume import _each_lora_once

    style = tmp_path / "style.safetensors"
    style.write_bytes(b"a LoRA")
    strengths = [1e16, 1.0, -1e16]
    loras, notes = _each_lora_once([f"{style}:{strength!r}" for strength in strengths])
    assert sum(strengths) == 0 and math.fsum(strengths) == 1  # the floats' sum and the exact one differ here
    assert loras == [f"{style}:1"]
    assert notes[0].endswith("it goes on with it given once, at 1"), notes


def test_a_resumed_run_stopped_in_its_encode_says_its_file_is_as_it_was(pipe, tmp_path, caplog):
    # It said nothing (the command only "interrupted"), and a user could not tell whether the state was still there.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(2))
    path = tmp_path / "fox.latents.safetensors"
    before = path.read_bytes()

    def stop_in_the_encode(stage: str, done: int, total: int) -> None:
        if stage == "encode":
            raise KeyboardInterrupt

    saved = read_latents(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(GenerationRequest(**saved.request), resume=saved, on_progress=stop_in_the_encode)
    assert path.read_bytes() == before
    assert f"{path} is as it was when this run began: go on from it with motif-lite run --resume {path}" in caplog.text


def test_a_resumed_run_keeping_its_work_in_another_file_stopped_in_its_encode_names_no_file_that_is_not_there(
    pipe, tmp_path, caplog
):
    # With latents_file= of its own, it said "other.latents.safetensors is as it was when this run began: go on from
    # it with motif-lite run --resume other.latents.safetensors", a file no save had written yet.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(2))
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    other = tmp_path / "other.latents.safetensors"

    def stop_in_the_encode(stage: str, done: int, total: int) -> None:
        if stage == "encode":
            raise KeyboardInterrupt

    caplog.clear()
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(
            GenerationRequest(**saved.request), resume=saved, latents_file=other, on_progress=stop_in_the_encode
        )
    assert not other.exists()
    assert str(other) not in caplog.text, caplog.text


# ------------------------------------------------------------------------------ a run killed in its decode

# `motif-lite run` whose decode is killed as the OOM killer kills it (no handler runs), its sampling counted as long
# enough to save its state after the last step (the tiny run samples in well under SAVE_FINAL_STATE_AFTER_SECONDS).
KILLED_IN_THE_DECODE = """
import os, signal, sys
import motif_lite.pipeline.generation as generation
generation.SAVE_FINAL_STATE_AFTER_SECONDS = 0.0
generation.decode_video = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from motif_lite import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def frames_equal(folder: Path, a: str, b: str) -> bool:
    """Whether the 9 PNG frames named by the patterns `a` and `b` in `folder` are equal, pixel for pixel."""

    def pixels(pattern: str, i: int) -> np.ndarray:
        return np.asarray(PIL.Image.open(folder / (pattern % i)))

    return all(np.array_equal(pixels(a, i), pixels(b, i)) for i in range(9))


def test_a_run_killed_in_its_decode_goes_on_from_its_finished_sampling(checkpoint, tmp_path, capsys):
    import subprocess
    import sys

    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32"]
    args = ["-m", str(checkpoint), "-p", PROMPT, "-n", NEGATIVE, "-s", "3", *size]
    code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "whole_%03d.png"))
    assert code == 0, err
    command = ["run", *args, "-o", str(tmp_path / "out_%03d.png"), "--device", "cpu", "--kernels", "torch", "--yes"]
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_THE_DECODE, *command], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    path = tmp_path / "out.latents.safetensors"
    assert read_latents(path).progress == (4, 4)  # the state after the last step, written before the decode
    # The same command again says that this sampling is done and how to make its video without sampling.
    code, out, err = run_cli(capsys, *args, "-o", str(tmp_path / "out_%03d.png"), "--dry-run")
    assert code == 0, err
    said = " ".join((out + err).split())
    assert f"{path} holds an earlier run of {tmp_path / 'out_%03d.png'} whose sampling finished" in said
    assert f"motif-lite run --resume {path} (or motif-lite decode {path}" in said
    code, out, err = run_cli(capsys, "--resume", str(path))
    assert code == 0, err
    assert f"resuming {path}: all 4 steps sampled, the decode only" in " ".join((out + err).split())
    assert "resumed: every step sampled by the run that stopped, only the decode ran here" in out
    assert not path.exists()  # the video is written: as a periodic save's, the file is removed
    assert frames_equal(tmp_path, "whole_%03d.png", "out_%03d.png")


def test_a_state_saved_before_the_decode_is_decoded_alone_to_the_runs_frames(pipe, tmp_path, monkeypatch, capsys):
    from motif_lite.pipeline import generation

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)
    kept, decode = tmp_path / "kept.safetensors", generation.decode_video

    def copied_then_decoded(*args, **kwargs):  # what a decode killed here leaves
        shutil.copy(tmp_path / "out.latents.safetensors", kept)
        return decode(*args, **kwargs)

    monkeypatch.setattr(generation, "decode_video", copied_then_decoded)
    pipe.generate(request(tmp_path, "out_%03d.png"))
    assert not (tmp_path / "out.latents.safetensors").exists()  # the decode went through: removed
    assert read_latents(kept).progress == (4, 4)
    code = cli.main(["decode", str(kept), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert frames_equal(tmp_path, "out_%03d.png", "decoded_%03d.png")


def test_a_failed_save_before_the_decode_is_said_once_and_the_decode_runs(pipe, tmp_path, monkeypatch, caplog):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)
    monkeypatch.setattr("motif_lite.io.latents_saving.save_latents", disk_full)
    with caplog.at_level(logging.WARNING, "motif_lite"):
        pipe.generate(request(tmp_path))
    assert names(tmp_path) == ["fox.mp4"]
    warnings = [r.getMessage() for r in caplog.records if "could not be saved" in r.getMessage()]
    assert len(warnings) == 1 and "No space left on device" in warnings[0] and "the decode goes on" in warnings[0]


class Keeper:
    """A `LatentsFile` that records what it was given to save."""

    moved = None

    def __init__(self) -> None:
        self.saved: list = []

    def save(self, saved) -> Path:
        self.saved.append(saved)
        return Path("kept.safetensors")


@pytest.mark.parametrize(
    ("final_after", "value", "written"),
    [(0.0, 1.0, True), (3600.0, 1.0, False), (0.0, torch.nan, False)],
    ids=["long-enough", "short", "nan"],
)
def test_the_state_after_the_last_step_is_saved_when_sampling_ran_long_and_is_finite(final_after, value, written):
    from motif_lite.keeping import StateSaver
    from motif_lite.sampling import SamplingState

    keeper = Keeper()
    saver = StateSaver(keeper, lambda state: state, float("inf"), steps=2, final_after=final_after)
    saver(SamplingState(1, torch.ones(1), {}, None))
    assert keeper.saved == []  # not the last step, no periodic save due
    last = SamplingState(2, torch.full((1,), value), {}, None)
    saver(last)
    assert keeper.saved == ([last] if written else [])


def test_a_python_run_of_an_output_whose_decode_was_killed_points_to_its_finished_sampling(
    pipe, tmp_path, monkeypatch, caplog
):
    from motif_lite.pipeline import generation

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)
    path, decode, kept = tmp_path / "fox.latents.safetensors", generation.decode_video, tmp_path / "kept"

    def copied_then_decoded(*args, **kwargs):  # what a decode killed here leaves
        shutil.copy(path, kept)
        return decode(*args, **kwargs)

    monkeypatch.setattr(generation, "decode_video", copied_then_decoded)
    pipe.generate(request(tmp_path))
    shutil.copy(kept, path)
    (tmp_path / "fox.mp4").unlink()  # a killed decode leaves no video (one there with its settings: made already)
    monkeypatch.setattr(pipe, "save_final_state_after", float("inf"))
    with caplog.at_level(logging.WARNING, "motif_lite"):
        pipe.generate(request(tmp_path))  # samples again, as the note says
    said = " ".join(caplog.text.split())
    assert f"{path} holds an earlier run of {tmp_path / 'fox.mp4'} whose sampling finished" in said
    assert f"motif_lite.read_latents({str(path)!r}); pipe.generate(" in said


def test_a_decode_whose_latents_cannot_be_saved_points_to_the_state_saved_before_it(
    pipe, tmp_path, monkeypatch, caplog
):
    # The video's write filled the disk (here: out of memory), and the save of the denoised latents failed too: the
    # message said only that they could not be saved, and out of memory the whole run's advice (sampling again),
    # though the file still held the state saved after the last step, which `motif-lite decode` makes the video of.
    from motif_lite.io import latents_saving
    from motif_lite.pipeline import generation

    save, saves = latents_saving.save_latents, []

    def full_after_the_first(*args, **kwargs):
        saves.append(1)
        if len(saves) > 1:
            raise OSError(28, "No space left on device")
        return save(*args, **kwargs)

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)
    monkeypatch.setattr(latents_saving, "save_latents", full_after_the_first)
    monkeypatch.setattr(generation, "decode_video", out_of_memory)
    path = tmp_path / "fox.latents.safetensors"
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(torch.OutOfMemoryError) as err:
        pipe.generate(request(tmp_path))
    assert read_latents(path).progress == (4, 4)  # the state after the last step, whole
    said = " ".join(caplog.text.split())
    assert "could not be saved" in said and f"{path} holds the state after the last step" in said, said
    assert f"motif-lite decode {path}" in " ".join(getattr(err.value, "__notes__", [])), err.value


def test_a_run_stopped_on_its_last_steps_report_says_its_sampling_is_done(pipe, tmp_path, caplog):
    # A Ctrl-C (or the server's stop) on the last step's progress report saves the state after the last step: it
    # was told "sampling stopped after step 4 of 4 ... go on from there", though only the decode was left to run.
    path = tmp_path / "fox.latents.safetensors"
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(SIZE["steps"]))
    assert read_latents(path).progress == (4, 4)
    said = " ".join(caplog.text.split())
    assert "all 4 steps are sampled" in said and f"motif-lite decode {path}" in said, said
    assert "stopped after step 4 of 4" not in said, said


def test_a_finished_image_to_video_sampling_whose_image_is_gone_is_decoded_without_it(pipe, tmp_path, capsys):
    # --resume of it asked for -i FILE, though its sampling is done and the decode it runs needs no image (the
    # request was resolved reading the image); one whose sampling is not done still asks for it.
    image = random_image(tmp_path / "first.png", 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png", image=image), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    assert read_latents(path).progress == (4, 4)
    image.unlink()
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"]) == 0
    code, out, err = run_cli(capsys, "--resume", str(path))
    said = " ".join((out + err).split())
    assert code == 0, err
    assert f"the run's input image {image} is no longer there: the decode needs none" in said, said
    assert not path.exists()  # the video is written: nothing left to resume
    assert frames_equal(tmp_path, "decoded_%03d.png", "out_%03d.png")
    # Stopped before its last step: the image is needed, and asked for as before.
    random_image(image, 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "half_%03d.png", image=image), on_progress=stop_at(1))
    image.unlink()
    half = tmp_path / "half.latents.safetensors"
    code, _, err = run_cli(capsys, "--resume", str(half), "--dry-run")
    assert_user_error(code, err, f"is no longer there: give it again with -i FILE (the image {half} names)")
    assert "decode needs none" not in err and "which needs no image" not in err, err


def test_the_state_after_the_last_step_is_saved_when_sampling_took_exactly_the_time(monkeypatch):
    """`final_after` is a floor: sampling of exactly 60 s saves the state after its last step (mutation pass 71)."""
    import motif_lite.keeping as keeping
    from motif_lite.sampling import SamplingState

    clock = iter([1000.0, 1000.0 + keeping.SAVE_FINAL_STATE_AFTER_SECONDS])
    monkeypatch.setattr(keeping.time, "monotonic", lambda: next(clock))
    keeper = Keeper()
    saver = keeping.StateSaver(keeper, lambda state: state, float("inf"), steps=1)
    last = SamplingState(1, torch.ones(1), {}, None)
    saver(last)
    assert keeper.saved == [last]


def test_the_last_step_of_a_short_sampling_gets_no_periodic_save_either():
    """After the last step only the final save may write: a periodic save then due is not made, the state of a short
    sampling being cheap to redo (mutation pass 71)."""
    from motif_lite.keeping import StateSaver
    from motif_lite.sampling import SamplingState

    keeper = Keeper()
    saver = StateSaver(keeper, lambda state: state, 0.0, steps=2, final_after=3600.0)
    first = SamplingState(1, torch.ones(1), {}, None)
    saver(first)
    saver(SamplingState(2, torch.ones(1), {}, None))
    assert keeper.saved == [first]


@pytest.mark.parametrize(("progress", "done"), [(None, True), ((4, 4), True), ((3, 4), False), ((0, 4), False)])
def test_sampling_is_done_only_for_denoised_latents_or_the_state_after_the_last_step(progress, done):
    """A state saved one step before the last is not a finished sampling (mutation pass 71)."""
    from motif_lite.io.latents import SavedLatents

    saved = SavedLatents(torch.zeros(1, 16, 3, 4, 6), Path("fox.mp4"), 48, 32, 9, 16.0, "float32", progress=progress)
    assert saved.sampling_done is done


def test_a_run_of_an_output_decoded_from_its_kept_file_says_the_video_is_made(
    pipe, checkpoint, tmp_path, monkeypatch, capsys
):
    # After `motif-lite decode FILE` (which keeps FILE) made the video, a later run of that output said the file's
    # "decode did not" finish, and offered to make that video again.
    from motif_lite.pipeline import generation
    from motif_lite.pipeline.resuming import earlier_run_note

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)
    path, decode, kept = tmp_path / "out.latents.safetensors", generation.decode_video, tmp_path / "kept"

    def copied_then_decoded(*args, **kwargs):  # what a decode killed here leaves
        shutil.copy(path, kept)
        return decode(*args, **kwargs)

    monkeypatch.setattr(generation, "decode_video", copied_then_decoded)
    pipe.generate(request(tmp_path, "out_%03d.png"))
    for frame in tmp_path.glob("out_*.png"):
        frame.unlink()
    shutil.move(kept, path)
    output = tmp_path / "out_%03d.png"
    assert "whose sampling finished but whose decode did not" in earlier_run_note(output)  # not decoded yet
    assert cli.main(["decode", str(path), "--device", "cpu"]) == 0, capsys.readouterr().err
    assert path.is_file() and (tmp_path / "out_008.png").is_file()
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32"]
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "-p", PROMPT, "-s", "3", *size, "-o", str(output),
                             "--dry-run")  # fmt: skip
    assert code == 0, err
    said = " ".join((out + err).split())
    assert f"{path} holds the latents of an earlier run of {output}, whose video is made already" in said, said
    assert "decode did not" not in said and "--resume" not in said, said
    note = earlier_run_note(output)
    assert "whose video is made already" in note and "decode did not" not in note, note


def test_a_resume_of_a_finished_sampling_loads_the_vae_alone_and_writes_the_runs_frames(
    pipe, tmp_path, capsys, monkeypatch
):
    # `run --resume` of a file holding all the sampling planned and loaded the transformer and the text encoder
    # (generate's resume path), though only the decode was left: on a small GPU far more memory than
    # `motif-lite decode FILE` needs, or a refusal by the planner. It now does what decode does.
    from motif_lite.cli import resume

    pipe.generate(request(tmp_path, "whole_%03d.png"))
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    assert read_latents(path).progress == (4, 4)
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"]) == 0

    def loads_the_model(*args, **kwargs):
        raise AssertionError("the transformer and text encoder were planned or loaded")

    monkeypatch.setattr("motif_lite.cli.run_videos.Run.generate", loads_the_model)
    monkeypatch.setattr("motif_lite.cli.run.dry_run", loads_the_model)
    # The flags that choose the video are refused, as for any resume.
    for flag, value, name in [
        ("-W", "64", "--width"),
        ("--video-frames", "17", "--video-frames"),
        ("-s", "5", "--seed"),
    ]:
        code, _, err = run_cli(capsys, "--resume", str(path), flag, value)
        assert_user_error(code, err, f"--resume goes on with the video {path} describes: leave out {name}")
    code, out, err = run_cli(capsys, "--resume", str(path), "--dry-run")
    said = " ".join((out + err).split())
    assert code == 0 and f"resuming {path}: all 4 steps sampled, the decode only, with the VAE alone" in said, said
    assert out.startswith(resume.DECODE_PLAN_NOTE + "\nno memory plan: on the CPU without --vram"), out
    assert f"would write: {tmp_path / 'out_%03d.png'}" in out and path.is_file()
    code, out, err = run_cli(capsys, "--resume", str(path))
    assert code == 0, err
    assert resume.DECODE_ONLY_LINE in out and "output: " in out, out
    assert not path.exists()  # the video is written: nothing left to resume
    assert frames_equal(tmp_path, "whole_%03d.png", "out_%03d.png")
    assert frames_equal(tmp_path, "decoded_%03d.png", "out_%03d.png")


def test_model_flags_given_with_a_resume_that_only_decodes_are_said_unused(pipe, tmp_path, capsys, monkeypatch):
    # They were told "the rest of the video is sampled with what this command gives", though nothing is sampled.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "fox.latents.safetensors"
    code, out, err = run_cli(capsys, "--resume", str(path), "--dry-run", "--step-cache", "0.1", "--attention", "int8")
    said = " ".join((out + err).split())
    assert code == 0, err
    assert (
        "every step is sampled, so --attention, --step-cache, --kernels, --yes are not used: the VAE alone makes "
        "the video (-m, --vae and --dtype choose it)"
    ) in said, said  # fmt: skip (run_cli gives --kernels torch and --yes)
    assert "is sampled with what this command gives" not in said, said
    # The transformer's speed flags went unused without a word.
    speed = ["--compile", "--attention-backend", "sdpa", "--batch-guidance"]
    code, out, err = run_cli(capsys, "--resume", str(path), "--dry-run", *speed)
    said = " ".join((out + err).split())
    assert code == 0, err
    assert ("every step is sampled, so --attention-backend, --batch-guidance, --compile, --kernels, --yes are not "
            "used: the VAE alone makes the video") in said, said  # fmt: skip
    # The host memory's budget (--ram) and the answer to a long CPU run's question (--yes) went unused without a word.
    code, out, err = run_cli(capsys, "--resume", str(path), "--dry-run", "--ram", "8")
    said = " ".join((out + err).split())
    assert code == 0, err
    assert "every step is sampled, so --kernels, --ram, --yes are not used: the VAE alone makes the video" in said, said


def test_a_resume_that_only_decodes_refuses_a_clip_changed_since(pipe, tmp_path, capsys):
    # `run --resume` of a finished extension decodes with the VAE alone: a clip whose frames were made again since
    # (a chain's earlier link) was joined to the new part without a word, where the resume through the pipeline
    # refused it.
    clip = tmp_path / "clip_%03d.png"
    pipe.generate(request(tmp_path, "clip_%03d.png"))
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "ext_%03d.png", extend=clip), on_progress=stop_at(SIZE["steps"]))
    path, last = tmp_path / "ext.latents.safetensors", tmp_path / "clip_008.png"
    assert read_latents(path).progress == (4, 4)
    shutil.copy(last, tmp_path / "kept.png")
    PIL.Image.new("RGB", (48, 32), "red").save(last)
    code, _, err = run_cli(capsys, "--resume", str(path))
    assert_user_error(code, err, f"{clip} is not the clip the run {path} went on from (its content differs since)")
    assert path.is_file() and not (tmp_path / "ext_000.png").exists()
    shutil.copy(tmp_path / "kept.png", last)  # the clip as it was: the decode goes on
    code, _, err = run_cli(capsys, "--resume", str(path))
    assert code == 0 and (tmp_path / "ext_016.png").is_file(), err


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", [out_of_memory, ctrl_c], ids=["out of memory", "Ctrl-C"])
def test_a_resume_that_only_decodes_and_fails_leaves_its_file_as_it_was(pipe, tmp_path, capsys, monkeypatch, failure):
    # What docs/usage.md, "Killed in the decode", says of it: unlike a run's own decode, which replaces the file by
    # the denoised latents, the decode-only resume leaves the state after the last step, to resume or decode again.
    from motif_lite.vae import WanVAE

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    before = path.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(WanVAE, "decode_frames", failure)
        code, _, err = run_cli(capsys, "--resume", str(path))
    assert code == (cli.EXIT_OUT_OF_MEMORY if failure is out_of_memory else cli.EXIT_INTERRUPTED), err
    assert f"the latents stay in {path}" in err and "Traceback" not in err, err
    assert names(tmp_path) == [path.name] and path.read_bytes() == before  # no frame, no claim, the file untouched
    code, out, err = run_cli(capsys, "--resume", str(path))
    assert code == 0 and not path.exists() and (tmp_path / "out_008.png").is_file(), err


def test_decode_of_a_finished_extension_whose_clip_was_made_again_writes_the_new_part_alone(pipe, tmp_path, capsys):
    # `motif-lite decode FILE` joined whatever clip of the run's size was at the clip's place: one made again since
    # (a chain's earlier link) began a video whose new part follows another picture.
    clip = tmp_path / "clip_%03d.png"
    pipe.generate(request(tmp_path, "clip_%03d.png"))
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "ext_%03d.png", extend=clip), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "ext.latents.safetensors"
    PIL.Image.new("RGB", (48, 32), "red").save(tmp_path / "clip_008.png")
    assert cli.main(["decode", str(path), "--device", "cpu"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "the clip this run went on from cannot be used (its last frame, the run's first, holds another" in err, err
    assert (tmp_path / "ext_008.png").is_file() and not (tmp_path / "ext_009.png").exists()  # the new part alone


def test_a_decode_only_resume_into_its_own_output_that_fails_names_that_output_in_the_decode_command(
    pipe, tmp_path, capsys, monkeypatch
):
    # `run --resume FILE -o other` out of memory was told "motif-lite decode FILE", which decodes into the stopped
    # run's output, not the one this command gave.
    import shlex

    from motif_lite.shell_syntax import quoted
    from motif_lite.vae import WanVAE

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path, other = tmp_path / "out.latents.safetensors", tmp_path / "other_%03d.png"
    with monkeypatch.context() as patch:
        patch.setattr(WanVAE, "decode_frames", out_of_memory)
        code, _, err = run_cli(capsys, "--resume", str(path), "-o", str(other))
    command = f"motif-lite decode {quoted(str(path))} -o {quoted(str(other))}"
    assert code == cli.EXIT_OUT_OF_MEMORY and f"decode them again with {command} (" in err, err
    assert cli.main([*shlex.split(command)[1:], "--device", "cpu"]) == 0  # as pasted
    assert (tmp_path / "other_008.png").is_file() and not (tmp_path / "out_000.png").exists()


def test_a_finished_sampling_resumed_on_several_processes_is_not_said_to_load_the_vae_alone(
    pipe, tmp_path, monkeypatch
):
    # Only in one process does --resume of a finished sampling decode with the VAE alone (`decode_finished_sampling`):
    # `resume_args` on several processes would load the whole model, and its note points to motif-lite decode for
    # less memory. The command never asks it so: --gpus N is set aside for such a file (`decode_in_one_process`), and
    # under torchrun rank 0 decodes it as one process, the others gone (`cli.run._decode_on_rank_0`).
    from motif_lite.cli.resume import resume_args

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out.mp4"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    for world, alone in [("1", True), ("2", False)]:
        monkeypatch.setenv("WORLD_SIZE", world)  # torchrun's
        argv = ["run", "--resume", str(path)]
        args = cli.build_parser().parse_args(argv)
        args.argv = argv  # as cli.main keeps it
        _, notes = resume_args(args)
        assert ("the decode only, with the VAE alone" in notes[0]) is alone, notes
        assert ("the decode only (motif-lite decode" in notes[0]) is not alone, notes


def test_a_clip_is_compared_by_checksum_only_where_the_file_keeps_one(tmp_path):
    # A file of an older motif-lite keeps no clip_sha256: its clip cannot be told changed, and is not refused as such.
    from types import SimpleNamespace

    from motif_lite.cli.resume import _clip_changed
    from motif_lite.io.image import image_sha256

    clip = tmp_path / "clip.png"
    PIL.Image.new("RGB", (32, 32), (200, 40, 40)).save(clip)
    kept = image_sha256(clip)
    for run, changed in [({}, False), ({"clip_sha256": kept}, False), ({"clip_sha256": "0" * 64}, True)]:
        assert _clip_changed(SimpleNamespace(request={"extend": str(clip)}, run=run)) is changed, run


def test_the_note_on_flags_unused_by_a_decode_says_is_of_one_and_are_of_several():
    from motif_lite.cli.resume import _unused_for_the_decode

    assert _unused_for_the_decode(frozenset()) == []
    assert _unused_for_the_decode(frozenset({"lora"}))[0].startswith("every step is sampled, so --lora is not used: ")
    said = _unused_for_the_decode(frozenset({"lora", "compile"}))[0]
    assert said.startswith("every step is sampled, so --lora, --compile are not used: the VAE alone"), said


def _with_run_flags(path: Path, **flags) -> None:
    """The latents file at `path` rewritten as if its run had had the model flags `flags` (by dest)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["run"].update(flags)
    save_file(tensors, str(path), metadata={"motif_lite_latents": json.dumps(info)})


def test_a_resume_that_only_decodes_needs_none_of_the_sampling_models_files(pipe, tmp_path, capsys):
    # `run --resume` of a finished sampling refused a --gguf or --lora file of the stopped run's that had moved ("give
    # --gguf again with where it is now"), though the VAE alone decodes it and reads neither.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"]) == 0
    gguf, lora = tmp_path / "moved" / "transformer-Q8_0.gguf", tmp_path / "moved" / "style.safetensors"
    _with_run_flags(path, gguf=str(gguf), lora=[f"{lora}:0.8"])
    code, _, err = run_cli(capsys, "--resume", str(path))
    said = " ".join(err.split())
    assert code == 0 and not path.exists() and frames_equal(tmp_path, "decoded_%03d.png", "out_%03d.png"), err
    assert (f"the run's --gguf {gguf}, --lora {lora} are no longer there: the decode needs none of the sampling "
            "model's files") in said, said  # fmt: skip
    # A file whose sampling is not done still asks for them: the rest of the video is sampled with them.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=stop_at(2))
    path = tmp_path / "fox.latents.safetensors"
    _with_run_flags(path, lora=[f"{lora}:0.8"])
    code, _, err = run_cli(capsys, "--resume", str(path))
    assert_user_error(code, err, f"the run being resumed had --lora {lora}, which is not there")
    assert path.is_file()


def test_a_resume_that_only_decodes_with_gpus_decodes_once_in_this_process(pipe, tmp_path, capsys, monkeypatch):
    # `run --resume FILE --gpus 2` of a finished sampling started 2 processes, each loading the transformer and the
    # text encoder for a decode the VAE alone makes (and a dry run planned them); it now decodes once, here.
    from motif_lite.cli import resume

    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"]) == 0
    capsys.readouterr()
    parallel = ["--gpus", "2", "--sp", "2", "--comm-timeout", "60"]
    code, out, err = run_cli(capsys, "--resume", str(path), *parallel, "--dry-run")
    said = " ".join((out + err).split())
    assert code == 0 and out.startswith(resume.DECODE_PLAN_NOTE), said
    assert f"resuming {path}: all 4 steps sampled, the decode only, with the VAE alone" in said, said
    assert "so --kernels, --yes, --gpus, --sp, --comm-timeout are not used: the VAE alone makes the video" in said
    code, out, err = run_cli(capsys, "--resume", str(path), "--gpus", "2")
    assert code == 0 and launched == [] and resume.DECODE_ONLY_LINE in out, err
    assert not path.exists() and frames_equal(tmp_path, "decoded_%03d.png", "out_%03d.png")
    # A file whose sampling is not done goes on with as many processes.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=stop_at(2))
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"), "--gpus", "2")
    assert code == 0 and launched == [2], err


def test_a_resume_that_only_decodes_says_nothing_of_how_the_sampling_flags_would_sample(pipe, tmp_path, capsys):
    # A decode-only resume said "--step-cache 1.5 reuses the cached work ... the video will be far from the uncached
    # one", and of a --lora changed since "the rest of the video is sampled with the file as it is now", beside the
    # note that neither is used: nothing is sampled.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"retrained since")
    _with_run_flags(path, file_stamps={str(lora): {"size": 1, "mtime_ns": 0}})  # as the stopped run found it
    code, out, err = run_cli(capsys, "--resume", str(path), "--step-cache", "1.5", "--lora", str(lora), "--dry-run")
    said = " ".join((out + err).split())
    assert code == 0 and "so --lora, --step-cache, --kernels, --yes are not used: the VAE alone" in said, said
    assert "reuses the cached work" not in said and "changed since the run stopped" not in said, said


def test_a_resume_that_only_decodes_takes_a_missing_lora_given_as_unused(pipe, tmp_path, capsys):
    # `run --resume FILE --lora MISSING` of a finished sampling was refused ("LoRA file not found"), though the VAE
    # alone decodes it and reads no LoRA; a moved --lora of the stopped run's was taken with a note already.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path, missing = tmp_path / "out.latents.safetensors", tmp_path / "moved" / "style.safetensors"
    code, out, err = run_cli(capsys, "--resume", str(path), "--lora", f"{missing}:0.8")
    said = " ".join((out + err).split())
    assert code == 0 and not path.exists() and (tmp_path / "out_008.png").is_file(), said
    assert "so --lora, --kernels, --yes are not used: the VAE alone makes the video" in said, said
    assert "LoRA file not found" not in said, said
    # A file whose sampling is not done still refuses it: the rest of the video is sampled with it.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=stop_at(2))
    path = tmp_path / "fox.latents.safetensors"
    code, _, err = run_cli(capsys, "--resume", str(path), "--lora", f"{missing}:0.8")
    assert_user_error(code, err, f"LoRA file not found: {missing}")
    assert path.is_file()


def test_a_resume_that_only_decodes_says_once_that_no_preview_comes(pipe, tmp_path, capsys):
    # `--preview` with a decode-only resume got the note that no preview comes, then a warning at the end that none
    # was written: one message, the note before any work.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path, preview = tmp_path / "out.latents.safetensors", tmp_path / "now.webp"
    code, out, err = run_cli(capsys, "--resume", str(path), "--preview", str(preview))
    said = " ".join((out + err).split())
    assert code == 0 and (tmp_path / "out_008.png").is_file(), said
    assert f"previews: none to {preview}: this run goes on after step 4 of 4" in said, said
    assert said.count(str(preview)) == 1 and not preview.exists(), said
    # A run resumed past the last preview step samples without a preview: its note alone says so too.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=stop_at(3))
    path = tmp_path / "fox.latents.safetensors"
    code, out, err = run_cli(capsys, "--resume", str(path), "--preview", str(preview), "--preview-every", "1")
    said = " ".join((out + err).split())
    assert code == 0 and (tmp_path / "fox.mp4").is_file(), said
    assert f"previews: none to {preview}: this run goes on after step 3 of 4" in said, said
    assert said.count(str(preview)) == 1 and not preview.exists(), said


def test_a_resume_with_flags_for_several_processes_reads_its_file_once(pipe, tmp_path, capsys, monkeypatch):
    # `decode_in_one_process` read the latents file (its tensors too) to see whether its sampling is done, then
    # `resume_args` read it all again.
    import motif_lite.io.latents as latents_io
    from motif_lite.cli import resume

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path, real_read = tmp_path / "out.latents.safetensors", latents_io.read_latents
    reads = []

    def counted_read(file, *args, **kwargs):
        reads.append(Path(file))
        return real_read(file, *args, **kwargs)

    monkeypatch.setattr(latents_io, "read_latents", counted_read)
    code, out, err = run_cli(capsys, "--resume", str(path), "--gpus", "2", "--dry-run")
    assert code == 0 and out.startswith(resume.DECODE_PLAN_NOTE), err
    assert reads.count(path) == 1, reads


def test_a_resume_on_several_processes_holds_no_latents_while_they_run(stopped, tmp_path, capsys, monkeypatch):
    # The launcher reads the file for its checks, then waits for the ranks all run long: what it read (a video's
    # latents, on the CPU) is let go before they start, each rank reading the file itself.
    import gc
    import weakref

    from motif_lite.io import latents as latents_module

    read = latents_module.read_latents
    kept = []

    def read_and_watch(*args, **kwargs):
        saved = read(*args, **kwargs)
        kept.append(weakref.ref(saved.latents))
        return saved

    def launch(nproc, argv):
        gc.collect()
        return sum(ref() is not None for ref in kept)  # the exit code: 0 where none is held

    monkeypatch.setattr(latents_module, "read_latents", read_and_watch)
    monkeypatch.setattr(launcher, "launch", launch)
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-o", str(tmp_path / "fox.mp4"), "--gpus", "2")
    assert kept and code == 0, err


def test_a_stopped_runs_file_records_the_machine_and_a_resume_elsewhere_is_noted_once(stopped, capsys):
    ran_on = read_latents(stopped).video_metadata["ran_on"]
    assert (ran_on["device"], ran_on["torch"], ran_on["processes"]) == ("cpu", torch.__version__, 1)
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    assert "frames may differ" not in out + err  # resumed on the machine that stopped it
    other = {"device": "cuda", "device_name": "NVIDIA H200", "torch": "2.5.1", "cuda": "12.4"}
    edit_description(stopped, lambda info: info["video_metadata"].update(ran_on=other))
    code, out, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert code == 0, err
    note = f"{stopped.name} was made on cuda (NVIDIA H200), torch 2.5.1, CUDA 12.4; this run is on cpu, torch "
    assert (out + err).count(note) == 1 and (out + err).count("frames may differ") == 1


def test_the_machines_record_counts_the_processes_of_a_parallel_run(pipe, monkeypatch):
    import types

    assert pipe._ran_on()["processes"] == 1
    monkeypatch.setattr(pipe, "parallel", types.SimpleNamespace(layout=types.SimpleNamespace(world=4)))  # --gpus 4
    assert pipe._ran_on()["processes"] == 4


# A rank of a torchrun job as the tests below start it (argv: its spy file, then the command): the spy file gets a
# line for each thing the rank does of joining and leaving the process group (its join gives up after 20 s where the
# other rank never joins, not after SETUP_TIMEOUT's 30 min), planning or loading the transformer and text encoder
# (then it ends) and decoding with the VAE alone. With SPY_CANNOT_READ set, the rank's machine has no --resume file.
SPIED_RANK = """
import os
import sys
from datetime import timedelta
from pathlib import Path

from motif_lite import cli
from motif_lite.cli import decode, run, run_videos
from motif_lite.io import latents
from motif_lite.runtime import parallel

spy, argv = Path(sys.argv[1]), sys.argv[2:]


def spied(what, then=None):
    def call(*args, **kwargs):
        with spy.open("a") as file:
            file.write(what + "\\n")
        if then is None:
            raise SystemExit(0)
        return then(*args, **kwargs)

    return call


def not_on_this_machine(path, *args, **kwargs):
    raise latents.LatentsFileError(f"{path} is not there")


if os.environ.get("SPY_CANNOT_READ"):
    parallel._readable = lambda path: False
    latents.read_latents = not_on_this_machine
parallel.SETUP_TIMEOUT = timedelta(seconds=20)
parallel.start = spied("joined", parallel.start)
parallel.stop = spied("left", parallel.stop)
run_videos.Run.generate = spied("model")
run.dry_run = spied("model")
decode.decode_with_progress = spied("decoded", decode.decode_with_progress)
sys.exit(cli.main(argv))
"""


def two_ranks(path: Path, folder: Path, cannot_read: int | None = None) -> list[tuple[int, str, str, list[str]]]:
    """(exit code, stdout, stderr, the spy file's lines) of each rank of `run --resume path` on 2 ranks started as
    torchrun starts them; `cannot_read`: the rank whose machine has no such file."""
    import socket
    import subprocess
    import sys

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    command = ["run", "--resume", str(path), "--device", "cpu", "--kernels", "torch", "--yes"]
    ranks = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
        if rank == cannot_read:
            env["SPY_CANNOT_READ"] = "1"
        spy = folder / f"spy-{path.stem}-{rank}.txt"
        spy.unlink(missing_ok=True)
        process = subprocess.Popen([sys.executable, "-c", SPIED_RANK, str(spy), *command], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        ranks.append((process, spy))
    try:
        ended = [process.communicate(timeout=240) for process, _ in ranks]
    finally:
        for process, _ in ranks:
            process.kill()
    spied = [spy.read_text().split() if spy.exists() else [] for _, spy in ranks]
    return [(process.returncode, *said, lines) for (process, _), said, lines in zip(ranks, ended, spied, strict=True)]


def test_a_finished_sampling_resumed_under_torchrun_is_decoded_by_rank_0_alone(pipe, tmp_path, capsys):
    # `torchrun --nproc-per-node 2 -m motif_lite run --resume FILE` of a finished sampling: each rank loaded the
    # whole model for a decode the VAE alone makes. The ranks now join the process group only to check that each
    # reads the file, leave it, and rank 0 decodes it as one process does, while rank 1 ends at once, silent; a file
    # whose sampling is not done still goes on with both ranks.
    from motif_lite.cli import resume

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "decoded_%03d.png"), "--device", "cpu"]) == 0
    capsys.readouterr()
    (code0, out0, err0, spied0), (code1, out1, err1, spied1) = two_ranks(path, tmp_path)
    assert (code0, spied0) == (0, ["joined", "left", "decoded"]), err0
    assert (code1, out1, err1, spied1) == (0, "", "", ["joined", "left"]), err1
    said = " ".join(err0.split())
    assert (
        said.count(
            f"note: every step of {path} is sampled: rank 0 alone decodes it, and the other process "
            "torchrun started ends without loading anything"
        )
        == 1
    ), said
    assert f"resuming {path}: all 4 steps sampled, the decode only, with the VAE alone" in said, said
    assert resume.DECODE_ONLY_LINE in out0, out0
    assert not path.exists() and frames_equal(tmp_path, "decoded_%03d.png", "out_%03d.png")
    # A file whose sampling is not done goes on with both ranks, in the process group.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=stop_at(2))
    ranks = two_ranks(tmp_path / "fox.latents.safetensors", tmp_path)
    assert [(code, spied) for code, _, _, spied in ranks] == [(0, ["joined", "model", "left"])] * 2, ranks


def test_under_torchrun_the_error_of_a_finished_samplings_resume_is_rank_0s_alone(pipe, tmp_path, capsys, monkeypatch):
    # Rank 0 decodes such a file alone (above): a flag --resume refuses is its error, said as rank 0's with the
    # user-error status, where each rank said it; rank 1 has ended, silent. Its dry run plans the VAE alone, and
    # joins no process group. (The group of two ranks here: each reads the file, and they take rank 0's answer.)
    from motif_lite.cli import resume
    from motif_lite.runtime import parallel

    joined = []

    def start(device: str) -> parallel.Session:
        joined.append(os.environ["RANK"])
        return parallel.Session(int(os.environ["RANK"]), 2, torch.device("cpu"))

    monkeypatch.setattr(parallel, "start", start)
    monkeypatch.setattr(parallel, "check_every_rank_reads", lambda inputs: None)
    monkeypatch.setattr(parallel, "rank_0s", lambda value: value)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # torchrun's
    assert run_cli(capsys, "--resume", str(path), "-p", "a cat") == (0, "", "")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, _, err = run_cli(capsys, "--resume", str(path), "-p", "a cat")
    refused = f"[rank 0] error: --resume goes on with the video {path} describes: leave out --prompt"
    assert_user_error(code, " ".join(err.split()), refused)
    assert joined == ["1", "0"]
    code, out, err = run_cli(capsys, "--resume", str(path), "--dry-run")
    assert code == 0 and out.startswith(resume.DECODE_PLAN_NOTE) and path.is_file() and len(joined) == 2, err


def test_under_torchrun_a_rank_that_cannot_read_a_finished_samplings_file_stops_every_rank(pipe, tmp_path):
    # Two machines, the file on rank 0's alone (docs/parallel.md, "Files on several machines"): rank 0 decoded it
    # alone while rank 1 waited in the process group for it (30 min, then a rendezvous timeout, the job failed
    # after the video was written). Every rank now says which one cannot read it, and none decodes it.
    import socket

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    refused = f"error: rank 1 on {socket.gethostname()} cannot read --resume {path}: every process"
    for rank, (code, _, err, spied) in enumerate(two_ranks(path, tmp_path, cannot_read=1)):
        assert (code, spied) == (cli.EXIT_USER_ERROR, ["joined", "left"]), err
        assert f"[rank {rank}] {refused}" in " ".join(err.split()), err
    assert path.is_file()


def test_under_torchrun_denoised_latents_are_refused_by_rank_0_without_a_note_that_it_decodes_them(
    pipe, tmp_path, capsys, monkeypatch
):
    # A failed decode's denoised latents count as a finished sampling, so rank 0 takes them alone; its note said
    # "rank 0 alone decodes it" just before the error that there is nothing to resume.
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        pipe.generate(request(tmp_path))
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # torchrun's
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"), "--dry-run")
    assert_user_error(
        code, " ".join(err.split()), "[rank 0] error: ", "sampling is done, so there is nothing to resume"
    )
    assert "decodes it" not in err, err


def test_under_torchrun_a_flag_resume_refuses_is_said_without_the_note_that_rank_0_decodes(
    pipe, tmp_path, capsys, monkeypatch
):
    # Rank 0 said "every step of FILE is sampled: rank 0 alone decodes it ..." before the checks, then the error of
    # a flag --resume refuses: the note now comes with the resume's notes, once the decode goes ahead (its dry run).
    from motif_lite.runtime import parallel

    monkeypatch.setattr(parallel, "start", lambda device: parallel.Session(0, 2, torch.device("cpu")))
    monkeypatch.setattr(parallel, "check_every_rank_reads", lambda inputs: None)
    monkeypatch.setattr(parallel, "rank_0s", lambda value: value)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "out_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    path = tmp_path / "out.latents.safetensors"
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # torchrun's
    code, _, err = run_cli(capsys, "--resume", str(path), "-p", "a cat")
    assert_user_error(code, " ".join(err.split()), "[rank 0] error: --resume goes on with the video")
    assert "decodes it" not in err, err
    code, _, err = run_cli(capsys, "--resume", str(path), "--dry-run")
    assert code == 0, err
    assert " ".join(err.split()).count(f"note: every step of {path} is sampled: rank 0 alone decodes it") == 1, err


# The machine that sampled the first steps of a stopped run, or its last ones before a decode elsewhere.
ELSEWHERE = {"device": "cuda", "device_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9",
             "torch": "2.5.1", "cuda": "12.4", "kernels": "triton", "processes": 1}  # fmt: skip


def test_a_video_resumed_on_another_machine_names_the_one_that_sampled_its_first_step(pipe, tmp_path, monkeypatch):
    # Its ran_on named the machine that finished it alone, as if it had sampled every step.
    from motif_lite.io.settings_file import read_settings

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "here_%03d.png"), on_progress=stop_at(1))
    same = read_latents(tmp_path / "here.latents.safetensors")
    pipe.generate(GenerationRequest(**same.request), resume=same)
    assert read_settings(tmp_path / "here_000.png").values["ran_on"] == pipe._ran_on()  # one machine: no more
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox_%03d.png"), on_progress=stop_at(1))
    path = tmp_path / "fox.latents.safetensors"
    edit_description(path, lambda info: info["video_metadata"].update(ran_on=ELSEWHERE))
    with pytest.raises(KeyboardInterrupt):  # stopped again, here: the file keeps the first machine
        pipe.generate(
            GenerationRequest(**read_latents(path).request), resume=read_latents(path), on_progress=stop_at(2)
        )
    assert read_latents(path).video_metadata["ran_on"] == {**pipe._ran_on(), "started_on": ELSEWHERE}
    pipe.generate(GenerationRequest(**read_latents(path).request), resume=read_latents(path))
    assert read_settings(tmp_path / "fox_000.png").values["ran_on"] == {**pipe._ran_on(), "started_on": ELSEWHERE}


def test_a_video_decoded_on_another_machine_names_the_one_that_sampled_it_and_the_decoder(pipe, tmp_path, capsys):
    # `motif-lite decode` wrote the sampling machine's record as the video's, and --resume of a finished sampling
    # this machine's alone: each says now which sampled it and which decoded it.
    from motif_lite.decoding import video_made
    from motif_lite.io.settings_file import read_settings

    decoder = {key: value for key, value in pipe._ran_on().items() if key not in ("kernels", "processes")}
    for how in ("decode", "resume", "generate"):
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(request(tmp_path, f"{how}_%03d.png"), on_progress=stop_at(SIZE["steps"]))
        path = tmp_path / f"{how}.latents.safetensors"
        edit_description(path, lambda info: info["video_metadata"].update(ran_on=ELSEWHERE))
        if how == "generate":
            pipe.generate(GenerationRequest(**read_latents(path).request), resume=read_latents(path))
        else:
            command = ["decode", str(path)] if how == "decode" else ["run", "--resume", str(path), "--kernels", "torch"]
            assert cli.main([*command, "--device", "cpu"]) == 0, capsys.readouterr().err
        assert read_settings(tmp_path / f"{how}_000.png").values["ran_on"] == {**ELSEWHERE, "decoded_on": decoder}, how
        if how == "decode":  # the file kept: the video it makes is there, its ran_on no setting
            assert video_made(read_latents(path))
    # Decoded on the machine that sampled it: no decoded_on.
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "here_%03d.png"), on_progress=stop_at(SIZE["steps"]))
    assert cli.main(["decode", str(tmp_path / "here.latents.safetensors"), "--device", "cpu"]) == 0
    assert read_settings(tmp_path / "here_000.png").values["ran_on"] == pipe._ran_on()


def test_a_video_resumed_twice_names_every_machine_that_sampled_it():
    # Only the first and the last machine were named: A, then B, then C lost B, and A, then B, then A again read as
    # A alone, though B sampled steps whose rounding the frames carry.
    from motif_lite.ran_on import resumed_record

    first, second, third = ({**ELSEWHERE, "device_name": name} for name in ("GPU A", "GPU B", "GPU C"))
    on_b = resumed_record(first, second)
    assert on_b == {**second, "started_on": first}
    assert resumed_record(on_b, third) == {**third, "started_on": first, "also_sampled_on": [second]}
    assert resumed_record(on_b, first) == {**first, "also_sampled_on": [second]}
    # Resumed once more on C: B named once, C (now the last) not among the others.
    on_c = resumed_record(on_b, third)
    assert resumed_record(resumed_record(on_c, second), third) == {
        **third,
        "started_on": first,
        "also_sampled_on": [second],
    }
