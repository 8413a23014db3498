"""`unipc` vs diffusers 0.42.1's UniPCMultistepScheduler with flow sigmas, as MotifVideoPipeline runs it: the schedule,
each step, the whole loop (a fake transformer) and the whole pipeline (a tiny checkpoint whose scheduler config is
UniPC); how a checkpoint's UniPC config and the flag choose it."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UniPCMultistepScheduler
from diffusers.pipelines.motif_video.pipeline_motif_video import calculate_shift, retrieve_timesteps
from test_sampling import (
    GUIDES,
    B,
    C,
    F,
    FakeTransformer,
    H,
    W,
    run_ours,
    run_reference,
    run_stopping_after,
)

from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.sampling import SamplingSettingsError, UniPC, schedule_for, schedule_options, unipc_schedule
from motif_lite.settings import CHECKPOINT, FLAG, resolve_settings

FLOW = dict(use_flow_sigmas=True, prediction_type="flow_prediction")  # what a flow model's UniPC config sets


def reference_unipc(steps: int, shift: float, **config) -> UniPCMultistepScheduler:
    """The scheduler after MotifVideoPipeline's step 5: given the pipeline's sigmas (and its mu, which it ignores)."""
    scheduler = UniPCMultistepScheduler(**FLOW, flow_shift=shift, **config)
    sigmas = np.linspace(1.0, 1 / steps, steps)
    retrieve_timesteps(scheduler, steps, "cpu", None, sigmas=sigmas, mu=calculate_shift(1000, 256, 4096, 0.5, 1.15))
    return scheduler


# -------------------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("steps", [1, 2, 7, 30, 50])
@pytest.mark.parametrize("shift", [0.3, 1.0, 8.0, 15.0])
def test_unipc_schedule_equals_the_pipelines_unipc_scheduler(steps: int, shift: float) -> None:
    ref = reference_unipc(steps, shift)
    ours = schedule_for("unipc", steps, shift)
    assert ours.sigmas.dtype == ref.sigmas.dtype == torch.float32 and torch.equal(ours.sigmas, ref.sigmas)
    assert ours.timesteps.dtype == ref.timesteps.dtype == torch.int64 and torch.equal(ours.timesteps, ref.timesteps)
    assert ours.sigmas[0] < 1 and ours.timesteps[0] == 999 and ours.sigmas[-1] == 0  # 1 − 1e-6, truncated


def test_unipc_schedule_with_other_train_timesteps_equals_the_scheduler() -> None:
    ref = reference_unipc(9, 8.0, num_train_timesteps=500)
    options = schedule_options({"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 500})
    ours = unipc_schedule(9, 8.0, options)
    assert torch.equal(ours.sigmas, ref.sigmas) and torch.equal(ours.timesteps, ref.timesteps)


@pytest.mark.parametrize(("steps", "shift"), [(0, 8.0), (4, 0.0), (4, float("nan"))])
def test_unipc_schedule_refuses_what_the_other_schedules_refuse(steps: int, shift: float) -> None:
    # Called by a library user: an error naming the setting (it was a ZeroDivisionError, or a table of NaN or 0).
    with pytest.raises(SamplingSettingsError) as ours:
        unipc_schedule(steps, shift)
    with pytest.raises(SamplingSettingsError) as dpm:
        schedule_for("dpmpp_2m", steps, shift)
    assert str(ours.value) == str(dpm.value)


# ------------------------------------------------------------------------------------------------- each step


def run_steps(ref: UniPCMultistepScheduler, steps: int, shift: float, dtype: torch.dtype) -> tuple[list, list]:
    """The same random velocities through `ref.step` and `UniPC.step`: the samples after each step, both ways."""
    gen = torch.Generator().manual_seed(steps)
    schedule, solver = unipc_schedule(steps, shift), UniPC()
    x_ref = x_ours = torch.randn(2, 4, 3, 4, 6, generator=gen).to(dtype)
    refs, ours = [], []
    for i, t in enumerate(ref.timesteps):
        v = torch.randn(x_ref.shape, generator=gen).to(dtype)
        x_ref = ref.step(v, t, x_ref, return_dict=False)[0]
        x_ours = solver.step(x_ours, v, schedule.sigmas[i], schedule.sigmas[i + 1])
        refs.append(x_ref), ours.append(x_ours)
    return refs, ours


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 10])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_unipc_steps_equal_the_scheduler_bit_for_bit(steps: int, dtype: torch.dtype) -> None:
    refs, ours = run_steps(reference_unipc(steps, 15.0), steps, 15.0, dtype)
    for i, (x_ref, x_ours) in enumerate(zip(refs, ours, strict=True)):
        assert x_ours.dtype == x_ref.dtype == dtype  # no upcast: UniPC keeps the model's dtype
        assert torch.equal(x_ours, x_ref), f"step {i}"


def test_unipc_steps_at_a_small_shift_equal_the_scheduler() -> None:
    # Only the step into σ = 0 is first order: the one before it (σ ≈ 0.006 here) is second order like the others.
    refs, ours = run_steps(reference_unipc(50, 0.3), 50, 0.3, torch.float32)
    for i, (x_ref, x_ours) in enumerate(zip(refs, ours, strict=True)):
        assert torch.equal(x_ours, x_ref), f"step {i}"


@pytest.mark.parametrize(
    "other",
    [
        dict(disable_corrector=list(range(10))),
        dict(solver_order=1),
        dict(solver_order=3),
        dict(lower_order_final=False),
    ],
    ids=["no corrector", "order 1", "order 3", "second order into 0"],
)
def test_another_unipc_differs_from_ours(other: dict) -> None:
    """Negative controls: the step test above tells the corrector, the order and the last step's order apart."""
    refs, ours = run_steps(reference_unipc(10, 15.0, **other), 10, 15.0, torch.float32)
    assert not torch.equal(refs[-1], ours[-1])


def test_diffusers_bh1_ends_in_nan_with_flow_sigmas() -> None:
    # Why solver_type "bh1" is refused rather than offered: its B(h) = −h is −inf into σ = 0, times a zero residual.
    refs, ours = run_steps(reference_unipc(4, 15.0, solver_type="bh1"), 4, 15.0, torch.float32)
    assert refs[-2].isfinite().all() and refs[-1].isnan().all() and ours[-1].isfinite().all()


# ------------------------------------------------------------------------------ the loop of the real pipeline


@pytest.mark.parametrize("name", ["apg_recommended", "apg_eta0_stop", "cfg"])
def test_denoise_equals_the_pipeline_with_a_unipc_scheduler(name: str) -> None:
    ours_guidance, make_guider = GUIDES[name]
    steps, shift, gen = 6, 8.0, torch.Generator().manual_seed(4)
    latents = torch.randn(B, C, F, H, W, generator=gen)
    embeds = (torch.randn(B, 7, 8, generator=gen), torch.randn(B, 7, 8, generator=gen))
    ref_model, our_model = FakeTransformer(), FakeTransformer()
    scheduler = UniPCMultistepScheduler(**FLOW, flow_shift=shift)
    expected = run_reference(make_guider(), steps, shift, latents, embeds, ref_model, scheduler)
    got = run_ours(ours_guidance, "unipc", steps, shift, latents, embeds, our_model)
    assert torch.equal(got, expected)
    # One transformer call per step (two when guided), with the same int64 timesteps in the same order.
    assert len(our_model.calls) == len(ref_model.calls) <= 2 * steps
    for (t_ours, text_ours), (t_ref, text_ref) in zip(our_model.calls, ref_model.calls, strict=True):
        assert t_ours.dtype == t_ref.dtype == torch.int64 and torch.equal(t_ours, t_ref)
        assert torch.equal(text_ours, text_ref)
    # Negative control: the same loop with DPM++ 2M (its own schedule, no corrector) is another result.
    assert not torch.equal(run_ours(ours_guidance, "dpmpp_2m", steps, shift, latents, embeds, our_model), expected)


@pytest.mark.parametrize("guidance", [None, GUIDES["apg_recommended"][0]], ids=["unguided", "apg"])
def test_a_unipc_loop_stopped_midway_goes_on_to_the_same_bits(guidance) -> None:
    whole, _ = run_stopping_after(None, "unipc", guidance)
    for stop in (1, 2, 7, 15):  # before the corrector has a step behind it, at first and at second order, last
        _, states = run_stopping_after(stop, "unipc", guidance)
        resumed, _ = run_stopping_after(None, "unipc", guidance, start=states[-1])
        assert torch.equal(resumed, whole), f"stopped after step {stop}"
    # (test_sampling.py's negative control goes on without the solver's state: another result)


# ------------------------------------------------------------------------------ the checkpoint and the flag


def settings_for(scheduler: dict, **request) -> object:
    return resolve_settings(GenerationRequest("fox", **request), CheckpointConfigs(scheduler=scheduler))


def unipc_config(**changes) -> dict:
    config = UniPCMultistepScheduler(**FLOW, flow_shift=11.0).config
    return {"_class_name": "UniPCMultistepScheduler", **config, **changes}


def test_a_unipc_checkpoint_samples_with_unipc_unless_a_flag_says_otherwise() -> None:
    chosen = settings_for(unipc_config())
    assert (chosen.sampler.value, chosen.sampler.source, chosen.solver) == ("unipc", CHECKPOINT, "unipc")
    assert chosen.sampler.origin == "scheduler/scheduler_config.json: UniPCMultistepScheduler"
    # diffusers takes a shift_terminal of 0 for none: still ours
    assert settings_for(unipc_config(shift_terminal=0)).sampler.value == "unipc"
    flag = settings_for(unipc_config(), sampler="euler")
    assert (flag.sampler.value, flag.sampler.source) == ("euler", FLAG)


@pytest.mark.parametrize("solver_type", ["midpoint", "heun", "logrho"])
def test_a_unipc_config_with_one_of_dpms_solver_types_samples_as_ours(solver_type: str) -> None:
    assert UniPCMultistepScheduler(**FLOW, solver_type=solver_type).config.solver_type == "bh2"  # diffusers reads it so
    assert settings_for(unipc_config(solver_type=solver_type)).sampler.value == "unipc"


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("solver_type", "bh1", '"bh1"'),
        ("solver_order", 3, "3"),
        ("predict_x0", False, "false"),
        ("disable_corrector", [0, 1], "[0, 1]"),
        ("lower_order_final", False, "false"),
        ("final_sigmas_type", "sigma_min", '"sigma_min"'),
        ("thresholding", True, "true"),
        ("use_karras_sigmas", True, "true"),
        ("use_exponential_sigmas", True, "true"),
        ("use_beta_sigmas", True, "true"),
        ("shift_terminal", 0.1, "0.1"),
        ("use_flow_sigmas", False, "false"),
        ("prediction_type", "epsilon", '"epsilon"'),
    ],
)
def test_each_unipc_option_that_samples_otherwise_needs_a_sampler_flag(option, value, shown) -> None:
    with pytest.raises(RequestError) as error:
        settings_for(unipc_config(**{option: value}))
    assert str(error.value) == (
        f"scheduler/scheduler_config.json holds a UniPCMultistepScheduler with {option}: {shown}, which none of "
        "motif-lite's samplers is: choose one with --sampling-method (in Python sampler=): euler, dpm++2m or unipc"
    )
    assert settings_for(unipc_config(**{option: value}), sampler="unipc").sampler.source == FLAG


def test_a_unipc_config_without_flow_settings_has_the_class_defaults_and_is_refused() -> None:
    # diffusers' UniPC predicts epsilon on a VP schedule unless told; the reference pipeline's sigmas= needs flow ones.
    with pytest.raises(RequestError, match='with prediction_type: "epsilon", use_flow_sigmas: false, which'):
        settings_for({"_class_name": "UniPCMultistepScheduler", "flow_shift": 8.0})


@pytest.mark.parametrize("given", ["unipc", "UniPC", "uni_pc", "uni_pc_bh2", "UNI-PC-BH2"])
def test_other_tools_spellings_of_unipc_name_it(given: str, tmp_path) -> None:
    from motif_lite import cli
    from motif_lite.cli import run_request

    args = cli.build_parser().parse_args(["run", "-p", "fox", "--sampling-method", given])
    assert run_request.request_from_args(args).sampler == "unipc"
    request, _ = GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()
    assert request.sampler == "unipc"


# ------------------------------------------------------------------- the whole pipeline on a tiny checkpoint


@pytest.fixture(scope="module")
def unipc_checkpoint(tmp_path_factory):
    """The tiny checkpoint with a UniPC scheduler config (shift 11) in place of FlowMatchEuler's; its reference."""
    from tiny_pipeline import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    pipe = make_tiny_checkpoint(root)
    scheduler = UniPCMultistepScheduler(**FLOW, flow_shift=11.0)
    scheduler.save_config(root / "scheduler")
    index = json.loads((root / "model_index.json").read_text())
    index["scheduler"][1] = "UniPCMultistepScheduler"
    (root / "model_index.json").write_text(json.dumps(index))
    reference = type(pipe)(**{**pipe.components, "scheduler": scheduler})
    reference.set_progress_bar_config(disable=True)
    return root, reference


@pytest.fixture(scope="module")
def unipc_pipe(unipc_checkpoint):
    from motif_lite import load_pipeline

    return load_pipeline(unipc_checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")


def test_a_unipc_checkpoint_makes_the_reference_pipelines_video(unipc_checkpoint, unipc_pipe, tmp_path) -> None:
    from test_pipeline import assert_same_video, ours, reference_frames

    (tmp_path / "euler").mkdir()
    frames = ours(unipc_pipe, tmp_path, seed=3)  # no sampler given: the checkpoint's UniPC, at its shift 11
    assert_same_video(frames, reference_frames(unipc_checkpoint[1], seed=3))
    euler = ours(unipc_pipe, tmp_path / "euler", seed=3, sampler="euler")  # negative control: the sampler matters
    assert np.abs(frames.astype(int) - euler.astype(int)).max() > 1


def test_a_unipc_checkpoint_makes_the_reference_image_to_video(unipc_checkpoint, unipc_pipe, tmp_path) -> None:
    # The I2V pipeline sets up and steps the scheduler as the T2V one does; the conditioning is what differs.
    from test_pipeline import assert_same_video, ours, reference_frames
    from tiny_pipeline import image_to_video

    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    image.save(tmp_path / "first.png")
    expected = reference_frames(image_to_video(unipc_checkpoint[1]), seed=5, image=image)
    assert_same_video(ours(unipc_pipe, tmp_path, image=tmp_path / "first.png", seed=5), expected)
