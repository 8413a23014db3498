"""A fixed DPM++ flow shift that diffusers' DPMSolverMultistepScheduler cannot step is refused before loading.

A large shift puts the first two sigmas of its table within 1/T of 1 (a tiny one rounds them to timestep 0): the
table starts at one timestep twice, the scheduler (which finds its first step by the timestep's value) starts at
its second step and fails with an IndexError on its last. The edge is found by running diffusers itself."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from safetensors import safe_open
from safetensors.torch import save_file

from motif_lite import cli
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.choices import MOTIF_REPO
from motif_lite.cli import run_prepare
from motif_lite.errors import Audience
from motif_lite.io.hub import DownloadPlan
from motif_lite.pipeline import load_pipeline
from motif_lite.request import OFFICIAL_STEPS, GenerationRequest, RequestError
from motif_lite.sampling import SamplingSettingsError, schedule_for
from motif_lite.sampling.schedule import schedule_options
from motif_lite.settings import Given, resolve_settings
from motif_lite.verify import VerifyResult
from motif_lite.verify.refusals import refuse_settings_verify_runs
from motif_lite.verify.settings import request_for

# The model card's DPMSolverMultistep config (the one `dpm++2m` samples), less its flow shift.
DPM = {
    "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "solver_order": 2,
    "use_flow_sigmas": True, "prediction_type": "flow_prediction",
}  # fmt: skip


def diffusers_steps(steps: int, shift: float) -> bool:
    """Whether diffusers' scheduler with flow shift `shift` runs a whole loop of `steps` to finite latents."""
    scheduler = DPMSolverMultistepScheduler.from_config({**DPM, "flow_shift": shift})
    scheduler.set_timesteps(steps)
    x = torch.linspace(-1, 1, 8)
    try:
        for t in scheduler.timesteps:
            x = scheduler.step(torch.tanh(x) - 0.5 * x, t, x, return_dict=False)[0]
    except IndexError:
        return False
    return bool(torch.isfinite(x).all())


def diffusers_edge(steps: int, good: float, bad: float) -> tuple[float, float]:
    """Neighbouring shifts (to float rounding of a bisection) between which diffusers stops stepping `steps`."""
    assert diffusers_steps(steps, good) and not diffusers_steps(steps, bad)
    for _ in range(80):
        middle = (good * bad) ** 0.5
        if middle in (good, bad):
            break
        good, bad = (middle, bad) if diffusers_steps(steps, middle) else (good, middle)
    return good, bad


def configs_with_shift(shift: float) -> CheckpointConfigs:
    """The configs of a checkpoint whose scheduler config is DPM with `flow_shift` `shift` (no limit there)."""
    config = {**DPM, "flow_shift": shift}
    return CheckpointConfigs(scheduler=config, scheduler_shift=shift, schedule=schedule_options(config))


def accepts(steps: int, shift: float) -> bool:
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=steps).resolve()
    try:
        resolve_settings(request, configs_with_shift(shift))
    except RequestError as exc:
        assert exc.fields == ("flow_shift",) and "scheduler/scheduler_config.json" in str(exc), exc
        return False
    return True


@pytest.mark.parametrize("steps", [100, OFFICIAL_STEPS, 25, 10, 3, 2])
def test_a_large_fixed_shift_is_refused_exactly_where_diffusers_fails(steps: int) -> None:
    # At 100 steps the edge (about 11.1) is below the official shift 15: diffusers fails there too.
    good, bad = diffusers_edge(steps, 1.0, 1e4)
    assert accepts(steps, good) and not accepts(steps, bad), (steps, good, bad)


@pytest.mark.parametrize("steps", [OFFICIAL_STEPS, 4])
def test_a_tiny_fixed_shift_is_refused_exactly_where_diffusers_fails(steps: int) -> None:
    good, bad = diffusers_edge(steps, 0.01, 1e-12)
    assert accepts(steps, good) and not accepts(steps, bad), (steps, good, bad)


def test_one_step_takes_any_shift_as_diffusers_does() -> None:
    assert diffusers_steps(1, 1e6) and accepts(1, 1e6)


def test_the_refusal_names_the_flag_or_the_config_and_comes_before_loading(checkpoint, no_weights, capsys) -> None:
    # 30 is within --flow-shift's range, and past diffusers' edge at the official 50 steps.
    assert not diffusers_steps(OFFICIAL_STEPS, 30.0)
    index = checkpoint / "model_index.json"
    index.write_text(
        json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]})
    )
    (checkpoint / "scheduler/scheduler_config.json").write_text(json.dumps({**DPM, "flow_shift": 200.0}))
    output = checkpoint.parent / "fox.mp4"
    base = ["run", "-m", str(checkpoint), "-p", "fox", "-o", str(output), "-W", "48", "-H", "32"]
    base += ["--device", "cpu", "--steps", str(OFFICIAL_STEPS)]
    for extra, named in (
        (["--flow-shift", "30"], "error: --flow-shift 30 "),
        ([], "error: the flow shift 200 of scheduler/scheduler_config.json gives"),
    ):
        code = cli.main([*base, *extra])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
        assert named in err and "starts at timestep 999 twice" in err, err
    assert not output.exists()


def test_the_refusal_names_an_official_shift_and_a_settings_files() -> None:
    # At 100 steps diffusers cannot step the official text-to-video shift 15 either.
    assert not diffusers_steps(100, 15.0)
    request, _ = GenerationRequest("fox", steps=100, sampler="dpm++2m").resolve()
    with pytest.raises(RequestError, match="^the official text-to-video shift 15 gives a DPM\\+\\+ schedule of 100"):
        resolve_settings(request, CheckpointConfigs())
    from_file = dataclasses.replace(request, flow_shift=30.0)
    with pytest.raises(RequestError, match="^the flow shift 30 of fox.mp4 gives"):
        resolve_settings(from_file, CheckpointConfigs(), given=Given(files={"flow_shift": "fox.mp4"}))
    with pytest.raises(RequestError, match="^flow_shift 30 gives .*or the euler or unipc sampler$"):
        resolve_settings(from_file, CheckpointConfigs(), audience=Audience.API)


def test_the_official_shift_in_place_of_a_config_shift_of_one_is_named_plainly() -> None:
    # A config shift of 1.0 is diffusers' "no shift" and counts as unset: the official 15 runs, and is named so.
    assert not diffusers_steps(100, 15.0)
    request, _ = GenerationRequest("fox", steps=100, sampler="dpm++2m").resolve()
    with pytest.raises(RequestError) as refused:
        resolve_settings(request, configs_with_shift(1.0))
    assert str(refused.value) == (
        "the official text-to-video shift 15 gives a DPM++ schedule of 100 steps that starts at timestep 999 twice, "
        "which diffusers' DPMSolverMultistepScheduler cannot step: give a smaller flow shift or fewer steps, or the "
        "euler or unipc sampler"
    )


def test_schedule_for_refuses_the_dpm_tables_diffusers_cannot_step() -> None:
    good, bad = diffusers_edge(OFFICIAL_STEPS, 1.0, 1e4)
    assert schedule_for("dpmpp_2m", OFFICIAL_STEPS, good).steps == OFFICIAL_STEPS
    with pytest.raises(SamplingSettingsError, match=f"^flow_shift={bad:g} gives a DPM\\+\\+ schedule of 50 steps"):
        schedule_for("dpmpp_2m", OFFICIAL_STEPS, bad)
    assert schedule_for("euler", OFFICIAL_STEPS, bad).steps == OFFICIAL_STEPS  # the rule is DPM++'s only


# A tiny run at 32x32, 5 frames: its settings file and its stopped state.
TINY = ["--device", "cpu", "--kernels", "torch", "--yes", "--dtype", "fp32"]


@pytest.fixture(scope="module")
def made_at_shift_30(shared_checkpoint, tmp_path_factory) -> Path:
    """A video made with DPM++ at flow shift 30 in 2 steps (which diffusers steps), to take the settings of."""
    output = tmp_path_factory.mktemp("s30") / "s30.mp4"
    flags = ["-W", "32", "-H", "32", "--video-frames", "5", "--steps", "2"]
    flags += ["--sampling-method", "dpm++2m", "--flow-shift", "30"]
    code = cli.main(["run", "-m", str(shared_checkpoint[0]), "-p", "fox", "-o", str(output), *flags, *TINY])
    assert code == 0 and output.exists()
    return output


@pytest.fixture(scope="module")
def stopped_at_shift_30(shared_checkpoint, tmp_path_factory) -> Path:
    """The latents file of a DPM++ run of 50 steps stopped after its first, whose flow shift reads 30: as a version
    that did not refuse that table (which diffusers cannot step) left it. Run at 15, which it can, then edited."""
    pipe = load_pipeline(shared_checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")
    output = tmp_path_factory.mktemp("stopped") / "fox.mp4"
    request = GenerationRequest("fox", output=output, width=32, height=32, frames=5, sampler="dpm++2m", flow_shift=15)

    def stop_after_one(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(dataclasses.replace(request, steps=OFFICIAL_STEPS), on_progress=stop_after_one)
    path = output.with_name("fox.latents.safetensors")
    with safe_open(str(path), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["request"]["flow_shift"] = 30.0
    save_file(tensors, str(path), metadata={"motif_lite_latents": json.dumps(info)})
    return path


def refusals(capsys, *args: str) -> list[str]:
    """The errors of `run *args` and of its dry run, each refused as a user error."""
    errors = []
    for dry_run in (["--dry-run"], []):
        code = cli.main(["run", *args, *TINY, *dry_run])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
        errors.append(next(line for line in err.splitlines() if line.startswith("error: ")))
    return errors


def test_a_run_names_the_settings_file_its_shift_came_from_as_its_dry_run_does(
    made_at_shift_30, shared_checkpoint, no_weights, capsys
) -> None:
    assert not diffusers_steps(OFFICIAL_STEPS, 30.0)
    args = ["-m", str(shared_checkpoint[0]), "-p", "fox", "--settings-from", str(made_at_shift_30), "--steps", "50"]
    dry_run, run = refusals(capsys, *args)
    assert run == dry_run and run.startswith("error: the flow shift 30 of s30.mp4 gives a DPM++ schedule of 50 steps")


def test_a_resumed_run_whose_shift_is_refused_says_to_start_a_new_one(stopped_at_shift_30, no_weights, capsys) -> None:
    dry_run, run = refusals(capsys, "--resume", str(stopped_at_shift_30))
    assert run == dry_run and run.startswith("error: the flow shift 30 of fox.latents.safetensors gives"), run
    # Its advice names flags --resume refuses: the way left is a new run.
    assert run.endswith("so this run cannot go on: start a new one without --resume, with that change"), run
    code = cli.main(["run", "--resume", str(stopped_at_shift_30), "--flow-shift", "10", *TINY])
    assert code == cli.EXIT_USER_ERROR and "leave out --flow-shift" in capsys.readouterr().err


def pretend_a_download(monkeypatch) -> None:
    """Make a run's checks call what they call just before a download (a Hub model not cached yet), as they do
    before fetching the checkpoint: the memory plan and its refusals come then, not after the download."""
    checks = run_prepare.preflight_flags

    def with_a_download(args, device, before_download, *rest):
        if before_download is not None:
            before_download(DownloadPlan(MOTIF_REPO, {}))
        return checks(args, device, before_download, *rest)

    monkeypatch.setattr(run_prepare, "preflight_flags", with_a_download)


@pytest.mark.parametrize("source", ["settings-from", "resume"])
def test_a_run_that_downloads_first_names_the_file_its_shift_came_from(
    source, made_at_shift_30, stopped_at_shift_30, shared_checkpoint, no_weights, capsys, monkeypatch
) -> None:
    if source == "settings-from":
        args = ["-m", str(shared_checkpoint[0]), "-p", "fox", "-W", "32", "-H", "32", "--video-frames", "5"]
        args += ["--settings-from", str(made_at_shift_30), "--steps", "50"]
    else:
        args = ["--resume", str(stopped_at_shift_30)]
    args += ["--ram", "100G"]  # a budget: the run plans its memory before the download
    dry_run, _ = refusals(capsys, *args)
    pretend_a_download(monkeypatch)
    code = cli.main(["run", *args, *TINY])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [dry_run], err
    assert "--flow-shift 30" not in dry_run, dry_run


def dpm_checkpoint(checkpoint: Path, folder: Path, shift: float) -> Path:
    """A copy of `checkpoint` whose scheduler is DPM++ with flow shift `shift`."""
    copy = shutil.copytree(checkpoint, folder)
    index = copy / "model_index.json"
    index.write_text(
        json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]})
    )
    (copy / "scheduler/scheduler_config.json").write_text(json.dumps({**DPM, "flow_shift": shift}))
    return copy


def test_a_resumed_run_on_another_checkpoint_whose_shift_is_refused_says_to_leave_out_m(
    stopped_at_shift_30, shared_checkpoint, tmp_path, no_weights, capsys
) -> None:
    # A stopped run that left the shift and sampler to its checkpoint takes them from the one -m gives now.
    with safe_open(str(stopped_at_shift_30), "pt") as file:
        info = json.loads(file.metadata()["motif_lite_latents"])
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info["request"].update(flow_shift=None, sampler=None)
    plain = tmp_path / "plain.latents.safetensors"
    save_file(tensors, str(plain), metadata={"motif_lite_latents": json.dumps(info)})
    dpm30 = dpm_checkpoint(shared_checkpoint[0], tmp_path / "dpm30", 30.0)
    dry_run, run = refusals(capsys, "--resume", str(plain), "-m", str(dpm30))
    assert run == dry_run and run.startswith("error: the flow shift 30 of scheduler/scheduler_config.json"), run
    assert run.endswith("leave out -m to go on with the model plain.latents.safetensors names, and its settings"), run
    assert "start a new one" not in run, run
    # As it says: without -m, the stopped run's model and settings go on.
    assert cli.main(["run", "--resume", str(plain), *TINY, "--dry-run"]) == 0
    capsys.readouterr()
    # A shift the file holds stays the file's to refuse, -m given or not: the way left is a new run.
    dry_run, run = refusals(capsys, "--resume", str(stopped_at_shift_30), "-m", str(dpm30))
    assert run.startswith("error: the flow shift 30 of fox.latents.safetensors gives"), run
    assert run.endswith("so this run cannot go on: start a new one without --resume, with that change"), run


def test_verify_refuses_before_loading(shared_checkpoint, tmp_path, no_weights, capsys) -> None:
    checkpoint = shutil.copytree(shared_checkpoint[0], tmp_path / "dpm30")
    index = checkpoint / "model_index.json"
    index.write_text(
        json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]})
    )
    (checkpoint / "scheduler/scheduler_config.json").write_text(json.dumps({**DPM, "flow_shift": 30.0}))
    size = ["-W", "32", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    code = cli.main(["verify", "-m", str(checkpoint), "--steps", str(OFFICIAL_STEPS), *size])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "loading both pipelines" not in err, err
    # Its whole pipeline cannot sample a DPM++ config at any steps (below): that refusal comes first, not advice to
    # give fewer --steps that would only lead to it.
    assert "cannot sample with this checkpoint's DPMSolverMultistepScheduler" in err, err
    assert "--flow-shift" not in err and "fewer --steps" not in err, err


def test_verify_checks_the_shift_both_sides_sample() -> None:
    # A DPM config shift of 1.0, diffusers' no-shift default: ours alone would take the official 15 in its place,
    # whose 80-step table diffusers cannot step; verify samples 1.0 on both sides, which it can.
    assert diffusers_steps(80, 1.0) and not diffusers_steps(80, 15.0)
    configs = configs_with_shift(1.0)
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=80).resolve()
    refuse_settings_verify_runs(request, SimpleNamespace(configs=configs, transformer=None))
    ours = SimpleNamespace(
        sources=SimpleNamespace(configs=configs), settings_for=lambda request: resolve_settings(request, configs)
    )
    reference = SimpleNamespace(scheduler=SimpleNamespace(config=configs.scheduler))
    result = VerifyResult("verify")
    assert request_for(ours, reference, request, result).flow_shift == 1.0
    assert any("both sides use 1" in note for note in result.notes), result.notes


def test_verify_refuses_a_scheduler_diffusers_pipeline_cannot_sample_before_loading(
    shared_checkpoint, tmp_path, no_weights, capsys
) -> None:
    # A DPM++ table diffusers can step, but its MotifVideoPipeline hands set_timesteps sigmas, which
    # DPMSolverMultistepScheduler does not take: verify loaded both pipelines and compared four stages, then the
    # frames stage ended in diffusers' ValueError traceback.
    import inspect

    import diffusers

    assert "sigmas" not in inspect.signature(diffusers.DPMSolverMultistepScheduler.set_timesteps).parameters
    checkpoint = shutil.copytree(shared_checkpoint[0], tmp_path / "dpm")
    index = checkpoint / "model_index.json"
    index.write_text(
        json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]})
    )
    (checkpoint / "scheduler/scheduler_config.json").write_text(json.dumps(DPM))
    size = ["-W", "32", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    code = cli.main(["verify", "-m", str(checkpoint), "--steps", "10", *size])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "loading both pipelines" not in err, err
    assert "cannot sample with this checkpoint's DPMSolverMultistepScheduler" in err, err


def test_verify_gives_no_steps_advice_where_fewer_steps_would_not_help() -> None:
    # A shift_terminal whose stretch divides by 0 (the last sigma at 1 in float32) is refused at any steps: verify
    # said "give fewer --steps" there too.
    config = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1e9, "shift_terminal": 0.1}
    configs = CheckpointConfigs(scheduler=config, scheduler_shift=1e9, schedule=schedule_options(config))
    for steps in (2, 4):
        request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=steps).resolve()
        with pytest.raises(RequestError) as refused:
            refuse_settings_verify_runs(request, SimpleNamespace(configs=configs, transformer=None))
        message = str(refused.value)
        assert "steps" not in message.rsplit(": verify", 1)[1] and "--flow-shift" not in message, message
        assert message.endswith("so it cannot compare at this config's shift"), message


def test_the_advice_names_fewer_steps_only_where_diffusers_then_steps_the_shift() -> None:
    # A large shift's table steps with fewer steps (its edge rises as the steps fall); a tiny shift's does not
    # (its first sigmas round to timestep 0 at any count): only a larger shift helps there.
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=OFFICIAL_STEPS).resolve()
    for _, bad in (diffusers_edge(OFFICIAL_STEPS, 1.0, 1e4), diffusers_edge(OFFICIAL_STEPS, 0.01, 1e-12)):
        fewer_help = any(diffusers_steps(steps, bad) for steps in range(2, OFFICIAL_STEPS))
        with pytest.raises(RequestError) as refused:
            resolve_settings(request, configs_with_shift(bad))
        assert ("fewer steps" in str(refused.value)) == fewer_help, (bad, str(refused.value))
        assert ("a smaller flow shift" if bad > 1 else "a larger flow shift") in str(refused.value), refused.value


def test_verify_reads_the_scheduler_config_as_the_configs_hold_it_even_none() -> None:
    # CheckpointConfigs holds None for a checkpoint without a scheduler config: nothing for this check to refuse (the
    # listed configs are checked before it), not an AttributeError traceback.
    import diffusers

    from motif_lite.verify import VerifyError
    from motif_lite.verify.refusals import refuse_a_scheduler_the_reference_cannot_sample

    refuse_a_scheduler_the_reference_cannot_sample(diffusers, None)
    refuse_a_scheduler_the_reference_cannot_sample(diffusers, {"_class_name": "FlowMatchEulerDiscreteScheduler"})
    with pytest.raises(VerifyError, match="cannot sample with this checkpoint's DPMSolverMultistepScheduler"):
        refuse_a_scheduler_the_reference_cannot_sample(diffusers, DPM)
