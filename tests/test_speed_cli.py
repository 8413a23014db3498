"""The speed flags of `motif-lite run`: passed through to the pipeline, reported in the summary, checked before
anything loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from motif_lite import cli, pipeline  # noqa: E402
from motif_lite.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def run_args(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        "run",
        *("-m", str(root), "-p", "a red fox runs through snow", "-n", "blurry", "-o", str(output)),
        *("-W", "48", "-H", "32", "--video-frames", "5", "--steps", "4", "-s", "7"),
        *("--dtype", "fp32", "--device", "cpu", "--kernels", "torch"),
        *extra,
    ]


def test_speed_flags_reach_the_pipeline_and_the_summary(checkpoint, tmp_path, capsys):
    extra = ("--step-cache", "1e9", "--attention-backend", "flash", "--batch-guidance")
    code = cli.main(run_args(checkpoint, tmp_path / "fox.gif", *extra))
    out = capsys.readouterr().out
    assert code == 0
    assert "step cache: 4 of 8 transformer calls reused" in out  # steps 1 and 2 of 0..3, both branches
    assert "attention: exact, flash" in out and "one batch-2 forward" in out and "compile:" not in out
    code = cli.main(run_args(checkpoint, tmp_path / "plain.gif"))  # on the CPU: two calls per guided step
    out = capsys.readouterr().out
    assert code == 0 and "batch-2" not in out and "step cache" not in out and "attention: exact, sdpa" in out


def test_load_pipeline_gets_the_speed_settings(checkpoint, tmp_path, monkeypatch):
    seen = {}

    def fake_load(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop right there

    monkeypatch.setattr(pipeline, "load_pipeline", fake_load)
    # flash: a kernel the CPU has (cudnn would be refused here before loading)
    extra = ("--compile", "--attention-backend", "flash", "--step-cache", "0.05", "--no-batch-guidance")
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", *extra)) == cli.EXIT_INTERRUPTED
    assert seen["compile"] is True and seen["attention_backend"] == "flash"
    assert seen["step_cache"] == 0.05 and seen["batch_guidance"] is False


def test_serve_loads_with_the_speed_flags_as_run_does(checkpoint, monkeypatch):
    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import ServerConfig

    seen = {}

    def fake_load(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop right there

    monkeypatch.setattr(pipeline, "load_pipeline", fake_load)
    flags = ("-m", str(checkpoint), "--dtype", "fp32", "--device", "cpu", "--kernels", "torch")
    extra = ("--compile", "--attention-backend", "flash", "--step-cache", "0.05", "--no-batch-guidance")
    args = cli.build_parser().parse_args(["serve", *flags, *extra])
    args.weights = {}  # what serve.main reads from --weights
    with pytest.raises(KeyboardInterrupt):
        load_served_pipeline(args, ServerConfig(model_name="tiny"), [])
    assert seen["compile"] is True and seen["attention_backend"] == "flash"
    assert seen["step_cache"] == 0.05 and seen["batch_guidance"] is False and seen["plan"] is None


@pytest.mark.parametrize("threshold", ["-0.1", "nan", "inf", "0.05x"])
def test_bad_step_cache_is_refused_as_the_flags_are_read(tmp_path, capsys, monkeypatch, threshold):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model"))
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error: nothing has started
        cli.main(run_args(tmp_path / "no-model", tmp_path / "fox.mp4", "--step-cache", threshold))
    err = capsys.readouterr().err
    assert exit_info.value.code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert f"argument --step-cache: must be a finite number >= 0 (e.g. 0.05), got {threshold}" in err, err


def test_help_lists_the_speed_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--compile", "--attention-backend", "--step-cache", "--batch-guidance", "--no-batch-guidance"):
        assert flag in out


def test_summary_has_one_line_per_feature_in_use(tmp_path):
    from motif_lite.cli.run_summary import speed_lines
    from motif_lite.pipeline import GenerationResult
    from motif_lite.request import GenerationRequest

    def result(**speed) -> GenerationResult:
        return GenerationResult(tmp_path / "v.mp4", GenerationRequest("fox"), 15.0, {}, 0, None, **speed)

    assert speed_lines(result()) == []
    lines = speed_lines(result(guidance_batch=2, step_cache=(37, 100), compile_seconds=84.2, attention_backend="flash"))
    assert lines == [  # the attention backend is on the summary's attention line, not here
        "guidance: conditional + unconditional predictions in one batch-2 forward per guided step",
        "compile: ~84.2s, the first step's extra time (compiling the blocks)",
        "step cache: 37 of 100 transformer calls reused",
    ]


def test_summary_total_time_includes_loading(tmp_path):
    from motif_lite.cli.run_summary import summary
    from motif_lite.pipeline import GenerationResult
    from motif_lite.request import GenerationRequest

    timings = {"encode": 1.0, "denoise": 8.0, "decode": 2.0, "total": 11.5}
    result = GenerationResult(tmp_path / "v.mp4", GenerationRequest("fox", steps=4), 15.0, timings, 0, None)
    time_line = next(line for line in summary(result, load_seconds=3.0).splitlines() if line.startswith("time:"))
    assert time_line == "time: load 3.0s | encode 1.0s | denoise 8.0s (2.00 s/step) | decode 2.0s | total 14.5s"


@pytest.mark.parametrize("backend", ["cudnn", "triton"])
def test_a_fixed_attention_kernel_this_device_lacks_fails_before_loading(
    checkpoint, tmp_path, capsys, monkeypatch, backend
):
    # Before: the model loaded, the prompts were encoded, and the first step ended in PyTorch's RuntimeError
    # (cudnn), or every call fell back to SDPA while the summary named triton as the attention that ran.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model"))
    code = cli.main(run_args(checkpoint, tmp_path / "fox.gif", "--attention-backend", backend))
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert f"error: --attention-backend {backend} is a CUDA kernel: on the CPU PyTorch has sdpa and flash" in err
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=f"--attention-backend {backend} is a CUDA kernel"):  # Python: one rule
        pipeline.load_pipeline(checkpoint, dtype="fp32", device="cpu", attention_backend=backend)


def test_the_attention_kernel_is_checked_in_the_runs_dtype(checkpoint, tmp_path, monkeypatch):
    # FlashAttention on a GPU runs in fp16/bf16 but not in fp32: the check must use --dtype, not a guess.
    import torch

    from motif_lite import preflight

    checked = []
    monkeypatch.setattr(preflight, "check_backend_runs", lambda *args: checked.append(args))
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt))
    # fp32, not the default bf16: a check that left --dtype out would probe bf16.
    args = [*run_args(checkpoint, tmp_path / "fox.gif", "--attention-backend", "flash"), "--dtype", "fp32"]
    assert cli.main(args) == cli.EXIT_INTERRUPTED
    assert checked == [("flash", torch.device("cpu"), torch.float32)]


def test_batch_guidance_that_the_memory_plan_has_no_room_for_is_turned_off_with_a_note(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # Before: the plan fell back to one row per forward, but --batch-guidance still ran batch-2 forwards, with twice
    # the activation memory the plan had counted (out of memory on a GPU), and nothing said so.
    seen = {}

    def fake_load(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "load_pipeline", fake_load)
    size = ("-W", "512", "-H", "512", "--video-frames", "33", "--steps", "2")
    code = cli.main([*run_args(checkpoint, tmp_path / "fox.gif", "--batch-guidance", "--vram", "0.15"), *size])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "1 row per transformer forward" in err  # batch 2 does not fit 0.15 GiB
    assert seen["batch_guidance"] is False
    assert (
        "note: --batch-guidance does not fit the memory plan (room for one prediction per transformer forward)" in err
    )
    code = cli.main([*run_args(checkpoint, tmp_path / "fox.gif", "--batch-guidance", "--vram", "0.5"), *size])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "2 rows per transformer forward" in err and "note: --batch" not in err
    assert seen["batch_guidance"] is True
    code = cli.main(
        [*run_args(checkpoint, tmp_path / "fox.gif", "--batch-guidance", "--vram", "0.15"), *size, "--dry-run"]
    )
    err = capsys.readouterr().err
    assert code == 0 and "note: --batch-guidance does not fit the memory plan" in err
    # Not "allow more memory (--vram)", which on a GPU whose free memory is the budget already plans past it.
    said = re.search(
        r"batching them needs more than this plan's 0\.15 GiB budget: a smaller video, or --vram (\d+\.\d\d) \(the "
        r"least budget that batches them\) where the GPU has (\d+\.\d\d) GiB free",
        err,
    )
    assert said is not None, err  # the figure, not "a higher --vram": it plans the two rows
    from motif_lite.runtime.budget_advice import free_for

    assert float(said[2]) == free_for(float(said[1])) > float(said[1])  # the free memory, reserve included
    code = cli.main(
        [*run_args(checkpoint, tmp_path / "fox.gif", "--batch-guidance", "--vram", said[1]), *size, "--dry-run"]
    )
    captured = capsys.readouterr()
    assert code == 0 and "2 rows per transformer forward" in captured.out and "note: --batch" not in captured.err
    # Unguided (--cfg-scale 0 on the official guider): one prediction per step, nothing to batch or refuse;
    # load_pipeline gets False, not the True it would warn about.
    unguided = [*run_args(checkpoint, tmp_path / "fox.gif", "--batch-guidance", "--vram", "0.15"), *size]
    code = cli.main([*unguided, "--cfg-scale", "0"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "1 row per transformer forward" in err and "note: --batch" not in err
    assert seen["batch_guidance"] is False


def test_a_step_cache_threshold_of_one_or_more_gets_a_note(checkpoint, tmp_path, capsys, monkeypatch):
    # Before: --step-cache 5 (5 %? TeaCache's scale?) silently reused nearly every step.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt))
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", "--step-cache", "5")) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert (
        "note: --step-cache 5 reuses the cached work whenever the first block's output changed by less than 500%" in err
    )
    assert "The threshold is a fraction (0.05 = 5 %)" in err
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", "--step-cache", "0.3")) == cli.EXIT_INTERRUPTED
    assert "--step-cache" not in capsys.readouterr().err


def test_an_attention_backend_that_int8_leaves_unused_gets_a_note(checkpoint, tmp_path, capsys, monkeypatch):
    # Before: --attention-backend cudnn was silently unused with --attention int8 (and, on the CPU, now refused).
    seen, real_load = {}, pipeline.load_pipeline

    def fake_load(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "load_pipeline", fake_load)
    extra = ("--attention", "int8", "--attention-backend", "cudnn")
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", *extra)) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert (
        "note: --attention-backend cudnn chooses the exact attention kernel: with --attention int8 every attention "
        "runs the 8-bit kernel (where it cannot run, PyTorch's SDPA), so cudnn is not used" in err
    )
    assert seen["attention"] == "int8" and seen["attention_backend"] == "cudnn"  # as given: the pipeline ignores it
    pipe = real_load(checkpoint, dtype="fp32", device="cpu", attention="int8", attention_backend="cudnn")
    assert pipe.attention_backend is None  # not refused as a CUDA kernel on the CPU, and not installed
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", "--attention", "int8")) == cli.EXIT_INTERRUPTED
    assert "--attention-backend" not in capsys.readouterr().err  # the default: nothing was given to ignore


def test_a_dry_run_checks_the_speed_flags_as_a_run_would(checkpoint, tmp_path, capsys, monkeypatch):
    # Before: the dry run passed, and the run itself then failed at its first step (cudnn) or after planning.
    dry = [*run_args(checkpoint, tmp_path / "fox.gif"), "--dry-run"]
    for backend in ("cudnn", "triton"):
        assert cli.main([*dry, "--attention-backend", backend]) == cli.EXIT_USER_ERROR
        assert f"error: --attention-backend {backend} is a CUDA kernel" in capsys.readouterr().err
    monkeypatch.setattr("shutil.which", lambda name: None)  # no C++ compiler on this machine
    assert cli.main([*dry, "--compile"]) == cli.EXIT_USER_ERROR
    assert "error: --compile on the CPU needs a C++ compiler" in capsys.readouterr().err
    assert cli.main([*dry, "--kernels", "triton"]) == cli.EXIT_USER_ERROR
    assert "error: --kernels triton needs a CUDA device, but the device is cpu" in capsys.readouterr().err
    assert cli.main([*dry, "--attention", "int8", "--attention-backend", "cudnn"]) == 0  # unused with int8: a note


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--attention", "sage"], "argument --attention: sage: 8-bit attention (SageAttention's scheme, in "),
        (["--attention", "SageAttention2"], "SageAttention2: 8-bit attention (SageAttention's scheme"),
        (["--attention-backend", "sage"], "is --attention int8; --attention-backend chooses among exact kernels"),
        (["--attention-backend", "int8"], "argument --attention-backend: int8: 8-bit attention (SageAttention's"),
        (["--attention", "flash"], "flash is an exact attention kernel: --attention-backend flash (--attention is "),
    ],
)
def test_other_tools_attention_names_get_the_flag_they_mean(capsys, flags, message):
    # Before: "invalid choice: 'sage' (choose from 'exact', 'int8')", which does not say that int8 is Sage's scheme.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--dry-run", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "invalid choice" not in err


def test_a_dry_run_says_what_the_speed_flags_would_do(checkpoint, tmp_path, capsys):
    # Before: a dry run printed none of them (--attention int8 on the CPU, --compile, --step-cache: not a word).
    def speed_line(*flags: str) -> str:
        assert cli.main([*run_args(checkpoint, tmp_path / "fox.gif"), "--dry-run", *flags]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("speed:"))

    assert speed_line() == "speed: attention exact, sdpa (auto)"
    assert speed_line("--attention", "int8", "--compile", "--step-cache", "0.05") == (
        "speed: attention int8, which falls back to exact on the CPU; compiled blocks (the first step compiles); "
        "step cache 0.05 (lossy)"
    )
    gpu = ("--device", "cuda", "--vram", "8", "--kernels", "auto")
    assert speed_line(*gpu, "--attention", "int8") == "speed: attention int8 (lossy)"
    assert speed_line(*gpu, "--attention", "int8", "--kernels", "torch") == (
        "speed: attention int8, which falls back to exact with --kernels torch"
    )
    assert speed_line(*gpu) == "speed: attention exact, auto (timed at the first step, or as an earlier run chose)"


@pytest.mark.parametrize(("frames", "steps", "said"), [(1, 1, "1 frame, 1 step,"), (49, 30, "49 frames, 30 steps,")])
def test_summary_counts_frames_and_steps_in_words(tmp_path, frames, steps, said):
    from motif_lite.cli.run_summary import summary
    from motif_lite.pipeline import GenerationResult
    from motif_lite.request import GenerationRequest

    timings = {"encode": 1.0, "denoise": 8.0, "decode": 2.0, "total": 11.5}
    request = GenerationRequest("fox", frames=frames, steps=steps)
    lines = summary(GenerationResult(tmp_path / "v.png", request, 15.0, timings, 0, None), 0.0).splitlines()
    assert lines[0] == "prompt: 'fox'"  # then the settings table (none here), then what was done
    assert lines[1].startswith(f"done: {request.width}x{request.height}, {said} seed")


def test_a_dry_run_refuses_strict_int8_attention_on_a_gpu_without_int8_tensor_cores(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # As the run would, before it loads: --kernels triton never falls back to exact attention.
    import torch

    pytest.importorskip("triton")  # else --kernels triton is refused first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a T4 here
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    flags = ("--dry-run", "--device", "cuda", "--vram", "8", "--kernels", "triton", "--attention", "int8")
    assert cli.main([*run_args(checkpoint, tmp_path / "fox.gif"), *flags]) == cli.EXIT_USER_ERROR
    assert "--attention int8 needs INT8 tensor cores" in capsys.readouterr().err


@pytest.mark.parametrize("speed", [("--step-cache", "0.05", "--attention", "int8"), ("--step-cache", "0")])
def test_run_and_serve_make_their_plan_for_the_options_they_load_with(checkpoint, tmp_path, monkeypatch, speed):
    # load_pipeline refuses a plan made for another step cache or attention: run and serve make theirs from the
    # same flags they load with.
    import torch

    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.pipeline.loading import _check_plan_matches
    from motif_lite.preflight import step_cache_setting
    from motif_lite.server.app import ServerConfig

    plans = []

    def checking_load(*args, **kwargs):
        plans.append(kwargs["plan"])
        cache = step_cache_setting(kwargs["step_cache"])
        _check_plan_matches(kwargs["plan"], torch.device("cpu"), cache, kwargs["attention"])
        raise KeyboardInterrupt  # stop right there: the plan matched

    monkeypatch.setattr(pipeline, "load_pipeline", checking_load)
    assert cli.main(run_args(checkpoint, tmp_path / "fox.gif", "--vram", "64", *speed)) == cli.EXIT_INTERRUPTED
    flags = ("-m", str(checkpoint), "--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "--vram", "64")
    args = cli.build_parser().parse_args(["serve", *flags, *speed])
    args.weights = {}  # what serve.main reads from --weights
    with pytest.raises(KeyboardInterrupt):
        load_served_pipeline(args, ServerConfig(model_name="tiny"), [])
    assert len(plans) == 2 and None not in plans
