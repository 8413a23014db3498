"""A scheduler config's `use_dynamic_shifting`: the schedule follows the video's size, bit for bit as diffusers'
Motif-Video pipeline samples it (its `calculate_shift` from the latent tokens, then `retrieve_timesteps(...,
mu=mu)`), unless the user gives a flow shift; a resumed run rebuilds the same schedule."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.pipelines.motif_video.pipeline_motif_video import calculate_shift, retrieve_timesteps

from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.io.latents import SavedLatents
from motif_lite.pipeline.metadata import effective_differences, jsonable, request_fields_of, stored_settings
from motif_lite.pipeline.resuming import resumed_state
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.sampling import SamplingSettingsError, ScheduleOptions, denoise, flow_schedule, schedule_for
from motif_lite.sampling.schedule import dynamic_shift, schedule_options
from motif_lite.settings import resolve_settings
from motif_lite.vae.config import WanVAEConfig
from motif_lite.verify import VerifyResult
from motif_lite.verify.settings import request_for

UNIPC = {"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": True, "prediction_type": "flow_prediction"}
EULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 15.0}
# The model card's DPMSolverMultistep config (the one `dpm++2m` samples).
DPM = {
    "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "solver_order": 2,
    "use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 15.0,
}  # fmt: skip
SIZES = [(1280, 736, 121), (640, 352, 49), (48, 32, 9)]  # width, height, frames


def reference_tokens(width: int, height: int, frames: int) -> int:
    """The pipeline's `video_sequence_length`, as its step 5 counts it (VAE 8x spatial, 4x temporal; patch 1x2x2)."""
    latent_frames = (frames - 1) // 4 + 1
    return (latent_frames // 1) * (height // 8 // 2) * (width // 8 // 2)


def reference_scheduler(config: dict, steps: int, seq_len: int):
    """diffusers' scheduler built from `config`, set up as the pipeline sets it up: its `calculate_shift` of the
    scheduler's config, then `retrieve_timesteps(..., sigmas=linspace, mu=mu)`. DPMSolverMultistep takes no
    `sigmas=` (so the 0.42.1 pipeline cannot run it): it gets the same mu through `set_timesteps` directly."""
    classes = {cls.__name__: cls for cls in (UniPCMultistepScheduler, DPMSolverMultistepScheduler)}
    scheduler = classes.get(config["_class_name"], FlowMatchEulerDiscreteScheduler).from_config(config)
    get = scheduler.config.get
    mu = calculate_shift(
        seq_len, get("base_image_seq_len", 256), get("max_image_seq_len", 4096), get("base_shift", 0.5),
        get("max_shift", 1.15),
    )  # fmt: skip
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        retrieve_timesteps(scheduler, steps, "cpu", None, mu=mu)
    else:
        retrieve_timesteps(scheduler, steps, "cpu", None, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
    return scheduler


def reference_schedule(config: dict, steps: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sigmas and timesteps of `reference_scheduler`."""
    scheduler = reference_scheduler(config, steps, seq_len)
    return scheduler.sigmas, scheduler.timesteps


def _stopped_at_step_2(request: GenerationRequest, settings) -> tuple[tuple[int, ...], SavedLatents]:
    """The latent shape of a 48x32x9 request and the state a run of it with `settings` keeps after step 2 of 4."""
    shape = (1, 16, 3, 4, 6)
    saved = SavedLatents(
        torch.zeros(shape), Path(request.output), 48, 32, 9, request.fps, "float32",
        video_metadata=jsonable(stored_settings(request, settings)), progress=(2, 4),
    )  # fmt: skip
    return shape, saved


def configs_of(scheduler: dict) -> CheckpointConfigs:
    return CheckpointConfigs(scheduler=scheduler, dynamic=dynamic_shift(scheduler), vae=WanVAEConfig())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["exponential", "linear"])
@pytest.mark.parametrize("base", [EULER, UNIPC], ids=["euler", "unipc"])
def test_dynamic_schedule_equals_the_pipeline_scheduler(base: dict, kind: str, size: tuple[int, int, int]) -> None:
    config = {**base, "use_dynamic_shifting": True, "time_shift_type": kind, "max_shift": 2.0, "base_shift": 0.7}
    width, height, frames = size
    request, _ = GenerationRequest("fox", width=width, height=height, frames=frames, steps=9).resolve()
    settings = resolve_settings(request, configs_of(config))
    assert settings.schedule.time_shift == kind
    ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
    sigmas, timesteps = reference_schedule(config, request.steps, reference_tokens(width, height, frames))
    assert torch.equal(ours.sigmas, sigmas)
    assert ours.timesteps.dtype == timesteps.dtype and torch.equal(ours.timesteps, timesteps)


@pytest.mark.parametrize("steps", [1, 2, 9, 50])
@pytest.mark.parametrize("size", SIZES)
def test_dpm_dynamic_schedule_equals_the_dpm_scheduler(size: tuple[int, int, int], steps: int) -> None:
    # DPMSolverMultistep's dynamic shifting was refused; diffusers sets its flow_shift to np.exp(mu) and builds its
    # own flow-sigma grid with it (the config's flow_shift 15 ignored). The line reaches the largest size (below:
    # the default line's mu there is one that diffusers cannot step).
    config = {**DPM, "use_dynamic_shifting": True, "max_image_seq_len": 120000, "max_shift": 2.0, "base_shift": 0.7}
    width, height, frames = size
    request, _ = GenerationRequest("fox", width=width, height=height, frames=frames, steps=steps).resolve()
    settings = resolve_settings(request, configs_of(config))
    assert (settings.sampler.value, settings.schedule.time_shift) == ("dpm++2m", "exponential")
    ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
    sigmas, timesteps = reference_schedule(config, request.steps, reference_tokens(width, height, frames))
    assert torch.equal(ours.sigmas, sigmas)
    assert ours.timesteps.dtype == timesteps.dtype and torch.equal(ours.timesteps, timesteps)


def test_a_dpm_dynamic_loop_equals_the_dpm_schedulers_in_fp32() -> None:
    """The whole loop: our `denoise` with dpm++2m on the resolved settings against diffusers' scheduler stepped on
    the same velocities (the pipeline's loop replayed by hand, as it cannot run DPMSolver)."""
    config = {**DPM, "use_dynamic_shifting": True}
    steps, (width, height, frames) = 6, (64, 48, 9)
    request, _ = GenerationRequest("fox", width=width, height=height, frames=frames, steps=steps).resolve()
    settings = resolve_settings(request, configs_of(config))
    schedule = schedule_for(settings.solver, steps, settings.flow_shift.value, settings.schedule)
    scheduler = reference_scheduler(config, steps, reference_tokens(width, height, frames))
    gen = torch.Generator().manual_seed(3)
    latents, weight = torch.randn(1, 4, 3, 6, 8, generator=gen), torch.randn(4, 3, 6, 8, generator=gen)

    def velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool = True) -> torch.Tensor:
        return torch.tanh(x * weight) * (1 + t.float() / 1000) - 0.5 * x

    expected = latents
    for t in scheduler.timesteps:
        expected = scheduler.step(velocity(expected, t), t, expected, return_dict=False)[0]
    got = denoise(velocity, latents, schedule, settings.solver)
    assert got.dtype == expected.dtype == torch.float32
    assert torch.equal(got, expected)
    fixed = denoise(velocity, latents, schedule_for(settings.solver, steps, 15.0), settings.solver)
    assert not torch.allclose(fixed, expected, rtol=1e-3, atol=1e-3)  # the dynamic shift is not the config's 15


@pytest.mark.parametrize(
    ("line", "size", "steps"),
    [
        ({}, (1280, 736, 121), 50),
        ({"max_shift": 2.0, "base_shift": 0.7}, (640, 352, 49), 50),
        ({"base_shift": -200.0, "max_shift": -200.0}, SIZES[2], 1),
    ],
    ids=["official size", "large mu", "sigma 0"],
)
def test_a_dpm_dynamic_schedule_diffusers_cannot_step_is_refused(line: dict, size: tuple, steps: int) -> None:
    # The default line's mu at the official size is 19.8: the first DPM++ timesteps are 999, 999, and diffusers'
    # DPMSolverMultistep, which finds its first step by the timestep's value, starts at its second and fails on the
    # last with an IndexError; a mu of -200 rounds every sigma to 0 (NaN). Refused before loading, not sampled.
    config = {**DPM, "use_dynamic_shifting": True, **line}
    width, height, frames = size
    scheduler = reference_scheduler(config, steps, reference_tokens(width, height, frames))
    x = torch.randn(1, 4, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    try:
        for t in scheduler.timesteps:
            x = scheduler.step(torch.tanh(x) - 0.5 * x, t, x, return_dict=False)[0]
    except IndexError:
        x = None
    assert x is None or not torch.isfinite(x).all()  # diffusers' loop fails, or gives NaN
    request, _ = GenerationRequest("fox", width=width, height=height, frames=frames, steps=steps).resolve()
    with pytest.raises(RequestError, match="DPM\\+\\+ schedule .*give a flow shift"):
        resolve_settings(request, configs_of(config))
    assert resolve_settings(dataclasses.replace(request, flow_shift=15.0), configs_of(config)).schedule.mu is None


def test_a_dpm_dynamic_check_takes_numpys_step_counts_and_leaves_bad_ones_to_the_request() -> None:
    # Its check builds the DPM++ table, whose own steps check once made np.int64(4) (which a run without dynamic
    # shifting takes) a refusal blamed on the flow shift.
    dynamic = configs_of({**DPM, "use_dynamic_shifting": True})
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    counted = resolve_settings(dataclasses.replace(request, steps=np.int64(4)), dynamic)
    assert counted.schedule == resolve_settings(request, dynamic).schedule
    official, _ = GenerationRequest("fox", steps=4).resolve()  # the default line's mu 19.8: still refused
    with pytest.raises(RequestError, match="timestep 999 twice"):
        resolve_settings(dataclasses.replace(official, steps=np.int64(4)), dynamic)
    for steps in (0, True, 2.5):
        try:
            resolve_settings(dataclasses.replace(request, steps=steps), dynamic)
        except RequestError as exc:
            assert exc.fields != ("flow_shift",), (steps, exc)


def test_dpm_schedule_refuses_a_dynamic_shift_its_scheduler_cannot_take() -> None:
    # ScheduleOptions given directly (the Python API's schedule_for): a linear shift is no DPM++ schedule.
    for options in (ScheduleOptions(time_shift="linear", mu=1.0), ScheduleOptions(time_shift="exponential")):
        with pytest.raises(SamplingSettingsError, match="exp\\(mu\\) only"):
            schedule_for("dpmpp_2m", 4, 15.0, options)


@pytest.mark.parametrize("steps", [2, 3])
def test_a_dpm_dynamic_shift_is_refused_for_few_steps_where_diffusers_repeats_the_first_timestep(steps: int) -> None:
    # At 2 steps too: a large mu puts the second sigma within 1/T of 1, as diffusers' own table shows.
    from motif_lite.sampling.schedule import check_dpm_options

    for mu in (2.0, 8.0):
        scheduler = DPMSolverMultistepScheduler.from_config({**DPM, "use_dynamic_shifting": True})
        scheduler.set_timesteps(steps, mu=mu)
        repeats = int(scheduler.timesteps[0]) == int(scheduler.timesteps[1])
        options = ScheduleOptions(time_shift="exponential", mu=mu)
        if repeats:
            with pytest.raises(SamplingSettingsError, match="starts at timestep 999 twice"):
                check_dpm_options(steps, options)
        else:
            check_dpm_options(steps, options)
        assert repeats == (mu == 8.0), (steps, mu)


def test_a_flow_shift_flag_turns_dpm_dynamic_shifting_off_and_resume_compares_its_mu() -> None:
    dynamic = configs_of({**DPM, "use_dynamic_shifting": True})
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    flagged = resolve_settings(dataclasses.replace(request, flow_shift=5.0), dynamic)
    assert flagged.schedule.time_shift is None and any("turns off the use_dynamic_shifting" in n for n in flagged.notes)
    assert torch.equal(schedule_for("dpmpp_2m", 4, 5.0, flagged.schedule).sigmas, reference_dpm_sigmas(4, 5.0))
    settings = resolve_settings(request, dynamic)
    shape, saved = _stopped_at_step_2(request, settings)
    assert resumed_state(saved, request, settings, shape, torch.device("cpu"), torch.float32, None).done == 2
    other_mu = resolve_settings(request, configs_of({**DPM, "use_dynamic_shifting": True, "max_shift": 3.0}))
    with pytest.raises(RequestError, match="schedule"):
        resumed_state(saved, request, other_mu, shape, torch.device("cpu"), torch.float32, None)


def reference_dpm_sigmas(steps: int, shift: float) -> torch.Tensor:
    scheduler = DPMSolverMultistepScheduler.from_config({**DPM, "flow_shift": shift})
    scheduler.set_timesteps(steps)
    return scheduler.sigmas


class MuDPMSolver(DPMSolverMultistepScheduler):
    """DPMSolverMultistep minus 0.42.1's refusal of the pipeline's `sigmas=` (as tests/test_pipeline.py's
    FlowDPMSolver): it builds its own flow-sigma grid, with the mu the pipeline computed."""

    def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None, mu=None, timesteps=None):
        super().set_timesteps(len(sigmas), device=device, mu=mu)


def test_a_dpm_dynamic_run_equals_the_pipeline_loop_with_its_mu() -> None:
    """The real MotifVideoPipeline loop (its own latent token count and calculate_shift) with a DPM++ scheduler that
    shifts dynamically, against our denoise on the settings resolved for the same size."""
    from test_sampling import GUIDES, B, C, F, FakeTransformer, H, W, run_reference

    guidance, make_guider = GUIDES["cfg"]
    steps, gen = 5, torch.Generator().manual_seed(5)
    latents = torch.randn(B, C, F, H, W, generator=gen)
    pos, neg = torch.randn(B, 7, 8, generator=gen), torch.randn(B, 7, 8, generator=gen)
    config = {**DPM, "use_dynamic_shifting": True, "base_image_seq_len": 2, "max_image_seq_len": 40}
    scheduler = MuDPMSolver.from_config(config)
    expected = run_reference(make_guider(), steps, 15.0, latents, (pos, neg), FakeTransformer(), scheduler)
    request, _ = GenerationRequest("fox", width=W * 8, height=H * 8, frames=(F - 1) * 4 + 1, steps=steps).resolve()
    settings = resolve_settings(request, configs_of(config))
    schedule = schedule_for(settings.solver, steps, settings.flow_shift.value, settings.schedule)
    model, condition = FakeTransformer(), torch.zeros(B, C + 1, F, H, W)

    def velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool) -> torch.Tensor:
        return model(torch.cat([x, condition], dim=1), t, pos if conditional else neg, None)[0]

    got = denoise(velocity, latents, schedule, settings.solver, guidance)
    assert torch.equal(got, expected)
    assert torch.equal(scheduler.sigmas, schedule.sigmas)
    fixed = denoise(velocity, latents, schedule_for(settings.solver, steps, 15.0), settings.solver, guidance)
    assert not torch.allclose(fixed, expected, rtol=1e-3, atol=1e-3)  # the config's flow_shift is not what ran


def test_dynamic_shift_counts_the_transformer_patch() -> None:
    """A checkpoint with a temporal patch of 2 and a spatial one of 4 has 8 times fewer tokens: a smaller mu."""
    config = {**EULER, "use_dynamic_shifting": True}
    request, _ = GenerationRequest("fox", width=640, height=352, frames=49).resolve()
    plain = resolve_settings(request, configs_of(config)).schedule.mu
    coarse = TransformerConfig(patch_size=4, patch_size_t=2)
    configs = dataclasses.replace(configs_of(config), transformer=coarse)
    assert resolve_settings(request, configs).schedule.mu == dynamic_shift(config).mu(13 // 2 * 11 * 20)
    assert plain == dynamic_shift(config).mu(13 * 22 * 40)


def test_a_flow_shift_flag_wins_over_dynamic_shifting() -> None:
    configs = configs_of({**EULER, "use_dynamic_shifting": True})
    request, _ = GenerationRequest("fox", flow_shift=5.0, steps=4).resolve()
    settings = resolve_settings(request, configs)
    assert settings.schedule == ScheduleOptions()
    assert any("turns off the use_dynamic_shifting" in note for note in settings.notes)
    assert torch.equal(schedule_for("euler", 4, 5.0, settings.schedule).sigmas, flow_schedule(4, 5.0).sigmas)
    row = dict((name, (value, s)) for name, value, s in settings.table())["flow shift"]
    assert row[0] == "5" and row[1].source == "flag"
    dynamic = resolve_settings(GenerationRequest("fox", steps=4).resolve()[0], configs)
    row = dict((name, (value, s)) for name, value, s in dynamic.table())["flow shift"]
    assert row[0].startswith("dynamic (exponential, mu ") and row[1].source == "checkpoint"


def test_dpm_chosen_on_a_dynamic_config_shifts_by_exp_mu_unless_the_shift_is_linear() -> None:
    """dpm++2m by its flag on a FlowMatchEuler config's dynamic shifting: an exponential one is DPMSolverMultistep's
    (the flow shift exp(mu)); a linear one, which that scheduler cannot take, leaves the fixed shift, with a note."""
    request, _ = GenerationRequest("fox", width=640, height=352, frames=49, sampler="dpm++2m", steps=4).resolve()
    exponential = resolve_settings(request, configs_of({**EULER, "use_dynamic_shifting": True}))
    assert exponential.schedule.time_shift == "exponential" and not exponential.notes
    linear = resolve_settings(request, configs_of({**EULER, "use_dynamic_shifting": True, "time_shift_type": "linear"}))
    assert linear.schedule.time_shift is None
    assert any("dpm++2m samples a fixed shift" in note for note in linear.notes)


def test_unsupported_dynamic_shifting_is_refused() -> None:
    linear_dpm = {**DPM, "use_dynamic_shifting": True, "time_shift_type": "linear"}
    with pytest.raises(AssertionError):  # diffusers' own answer
        reference_scheduler(linear_dpm, 4, 100)
    with pytest.raises(ConfigError, match="exp\\(mu\\) only .* set time_shift_type to 'exponential'"):
        dynamic_shift(linear_dpm)
    with pytest.raises(ConfigError, match="time_shift_type"):
        dynamic_shift({**EULER, "use_dynamic_shifting": True, "time_shift_type": "cosine"})
    with pytest.raises(ConfigError, match="must differ"):
        dynamic_shift({**EULER, "use_dynamic_shifting": True, "base_image_seq_len": 7, "max_image_seq_len": 7})
    linear_below_zero = {**EULER, "use_dynamic_shifting": True, "time_shift_type": "linear", "base_shift": -5.0}
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9).resolve()
    with pytest.raises(RequestError, match="give a flow shift"):
        resolve_settings(request, configs_of(linear_below_zero))


def test_a_resumed_run_rebuilds_the_same_dynamic_schedule() -> None:
    """The file keeps no flow shift (which would come back as the user's and turn dynamic shifting off) and the
    schedule that ran; reading it back on the same checkpoint gives the same schedule, at another size it differs."""
    configs = configs_of({**EULER, "use_dynamic_shifting": True})
    request, _ = GenerationRequest("fox", width=640, height=352, frames=49, steps=5).resolve()
    settings = resolve_settings(request, configs)
    stored = stored_settings(request, settings)
    assert stored["flow_shift"] is None and stored["schedule"]["mu"] == settings.schedule.mu
    fields = request_fields_of(stored)
    assert "flow_shift" not in fields
    again = resolve_settings(dataclasses.replace(request, **fields), configs)
    assert again.schedule == settings.schedule
    assert effective_differences(stored, again, ["schedule"]) == {}
    other = resolve_settings(dataclasses.replace(request, width=1280, height=736), configs)
    assert "mu" in effective_differences(stored, other, ["schedule"])["schedule"]


@pytest.mark.parametrize("base", [{"_class_name": "FlowMatchEulerDiscreteScheduler"}, DPM], ids=["euler", "dpm"])
def test_verify_keeps_dynamic_shifting_on_both_sides(base: dict) -> None:
    """`verify` gives our side the reference's shift when they differ: under dynamic shifting that flow shift would
    turn ours off while diffusers ignores it, so no shift is given then (here the reference's would be 1.0, its class
    default, or the DPM config's 15, and ours the official 15)."""
    config = {**base, "use_dynamic_shifting": True}
    configs = configs_of(config)
    ours = SimpleNamespace(settings_for=lambda request: resolve_settings(request, configs))
    reference = SimpleNamespace(scheduler=SimpleNamespace(config=config))
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=3).resolve()
    given = request_for(ours, reference, request, VerifyResult("verify"))
    assert given.flow_shift is None and resolve_settings(given, configs).schedule.time_shift == "exponential"


def test_resume_takes_the_dynamic_schedule_and_refuses_another() -> None:
    """`resumed_state` compares what the stopped run stored, its schedule included: the same checkpoint goes on; one
    whose scheduler config no longer shifts dynamically, or along another line (or a flow shift given) samples
    another schedule: refused."""
    dynamic = configs_of({**EULER, "use_dynamic_shifting": True})
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    settings = resolve_settings(request, dynamic)
    shape, saved = _stopped_at_step_2(request, settings)
    state = resumed_state(saved, request, settings, shape, torch.device("cpu"), torch.float32, None)
    assert state.done == 2
    for other in (
        resolve_settings(request, configs_of(EULER)),
        resolve_settings(dataclasses.replace(request, flow_shift=15.0), dynamic),
        resolve_settings(request, configs_of({**EULER, "use_dynamic_shifting": True, "max_shift": 3.0})),  # mu
    ):
        with pytest.raises(RequestError, match="schedule|flow_shift"):
            resumed_state(saved, request, other, shape, torch.device("cpu"), torch.float32, None)


def test_a_very_negative_exponential_mu_is_refused_not_sampled_as_nan() -> None:
    # math.exp(mu) is 0 below about -745: sigma 1 shifted to 0/0, a NaN first sigma, once let through.
    underflow = {**EULER, "use_dynamic_shifting": True, "base_shift": -800.0, "max_shift": -800.0}
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9).resolve()
    with pytest.raises(RequestError, match="makes no exponential shift"):
        resolve_settings(request, configs_of(underflow))


def test_the_servers_settings_and_the_run_summary_give_no_flow_shift_under_dynamic_shifting(tmp_path) -> None:
    # The server answered flow_shift 15 (which, sent back, turns dynamic shifting off) where a video stores null,
    # and the run's summary said "shift 15" for a schedule that shifted dynamically.
    from motif_lite.cli.run_summary import summary
    from motif_lite.pipeline.result import GenerationResult
    from motif_lite.server.schema import effective_settings

    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=2, seed=1).resolve()
    dynamic = resolve_settings(request, configs_of({**EULER, "use_dynamic_shifting": True}))
    fixed = resolve_settings(request, configs_of(EULER))
    assert effective_settings(dynamic)["flow_shift"] is None and effective_settings(fixed)["flow_shift"] == 15.0
    assert dynamic.flow_shift_used is None and fixed.flow_shift_used == 15.0
    result = GenerationResult(
        output=tmp_path / "fox.mp4", request=request, shift=dynamic.flow_shift_used, timings=dict.fromkeys(
            ("encode", "denoise", "decode", "total"), 0.0), peak_rss_bytes=None, peak_device_bytes=None,
    )  # fmt: skip
    done = next(line for line in summary(result, 0.0, with_settings=False).splitlines() if line.startswith("done: "))
    assert done.endswith("shift dynamic"), done


@pytest.mark.parametrize(
    "line", [{}, {"base_shift": 0.5, "max_shift": 3.0}, {"base_image_seq_len": 1024, "max_image_seq_len": 9000}]
)
def test_mu_is_diffusers_calculate_shift_on_the_schedulers_line(line: dict) -> None:
    # Bit for bit: where the config names no line, on FlowMatchEuler's own registered defaults (ours are copies of
    # the pipeline's); on (0.5, 3.0) the intercept through the other end rounds otherwise.
    config = {**EULER, "use_dynamic_shifting": True, **line}
    values = FlowMatchEulerDiscreteScheduler.from_config(config).config
    ends = (values.base_image_seq_len, values.max_image_seq_len, values.base_shift, values.max_shift)
    for seq_len in (256, 300, 4096, 12000):
        assert dynamic_shift(config).mu(seq_len) == calculate_shift(seq_len, *ends)


def test_dynamic_shifting_values_that_are_no_numbers_are_refused() -> None:
    for bad in (float("inf"), float("nan"), True):
        with pytest.raises(ConfigError, match="max_shift must be a number"):
            dynamic_shift({**EULER, "use_dynamic_shifting": True, "max_shift": bad})


def test_a_use_dynamic_shifting_of_1_shifts_dynamically_as_diffusers_does() -> None:
    # diffusers tests the flag's truth (`if self.config.use_dynamic_shifting`), not `is True`
    config = {**EULER, "use_dynamic_shifting": 1}
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    settings = resolve_settings(request, configs_of(config))
    ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
    sigmas, _ = reference_schedule(config, request.steps, reference_tokens(48, 32, 9))
    assert settings.schedule.time_shift == "exponential" and torch.equal(ours.sigmas, sigmas)


@pytest.mark.parametrize(
    "kind, mu", [("exponential", 89.0), ("exponential", -104.0), ("exponential", 709.9), ("exponential", -745.5),
                 ("linear", 0.0), ("exponential", 80.0)]
)  # fmt: skip
@pytest.mark.parametrize("base", [EULER, UNIPC], ids=["euler", "unipc"])
def test_a_mu_is_refused_exactly_where_the_schedulers_table_holds_nan(base: dict, kind: str, mu: float) -> None:
    # FlowMatchEuler shifts in float32, where exp(mu) overflows past about 88.7 and is 0 below about -103.3; UniPC
    # in float64 (709.8, -745.1). The refusal once took float64's bounds for both: Euler sampled a NaN table at mu
    # 89 or -104. A mu of 0 makes the linear shift's σ = 1 0/0 in both.
    config = {**base, "use_dynamic_shifting": True, "time_shift_type": kind, "base_shift": mu, "max_shift": mu}
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    try:
        with np.errstate(all="ignore"):
            sigmas, _ = reference_schedule(config, request.steps, reference_tokens(48, 32, 9))
        nan = bool(sigmas.isnan().any())
    except OverflowError:  # diffusers' math.exp(mu) past 709.8
        nan = True
    assert nan == (mu != 80.0 and (base is EULER or mu in (709.9, -745.5, 0.0)))
    if not nan:
        settings = resolve_settings(request, configs_of(config))
        ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        assert torch.equal(ours.sigmas, sigmas)
        return
    with pytest.raises(RequestError, match=f"makes no {kind} shift") as refused:
        resolve_settings(request, configs_of(config))
    assert refused.value.fields == ("flow_shift",)  # the server names the parameter that mends it


@pytest.mark.parametrize("mu", [5.0, 15.0, 16.5, 17.5, 20.0, 60.0])
def test_a_dynamic_mu_that_shifts_the_last_sigma_to_1_under_shift_terminal_is_refused_where_diffusers_is_nan(
    mu: float,
) -> None:
    # shift_terminal stretches by 1 − σ_last: a mu that puts σ_last (1/steps) at 1 in float32 divides by 0, every
    # sigma NaN in diffusers' table too; the run once sampled it and stopped after step 1 blaming the weights.
    config = {**EULER, "use_dynamic_shifting": True, "shift_terminal": 0.1, "base_shift": mu, "max_shift": mu}
    configs = dataclasses.replace(configs_of(config), schedule=schedule_options(config))  # as CheckpointConfigs.read
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    with np.errstate(all="ignore"):
        sigmas, _ = reference_schedule(config, request.steps, reference_tokens(48, 32, 9))
    if not sigmas.isnan().any():
        settings = resolve_settings(request, configs)
        ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        assert torch.equal(ours.sigmas, sigmas)
        return
    assert mu >= 18.5  # exp(mu) past about 3 x 2^25: 1/steps shifts to 1 in float32 (16.5 and 17.5 do not)
    with pytest.raises(RequestError, match="shifts the last of 4 sigmas to 1") as refused:
        resolve_settings(request, configs)
    assert refused.value.fields == ("flow_shift",)


@pytest.mark.parametrize("shift", [15.0, 1e6, 1e8])
def test_a_fixed_shift_that_shifts_the_last_sigma_to_1_under_shift_terminal_is_refused_where_diffusers_is_nan(
    shift: float,
) -> None:
    # The same stretch by 1 − σ_last with a checkpoint's fixed shift, which has no upper bound: 1e8 at 4 steps puts
    # σ_last at 1 in float32.
    config = {**EULER, "shift": shift, "shift_terminal": 0.1}
    configs = dataclasses.replace(configs_of(config), schedule=schedule_options(config), scheduler_shift=shift)
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9, steps=4).resolve()
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
    with np.errstate(all="ignore"):
        retrieve_timesteps(scheduler, 4, "cpu", sigmas=np.linspace(1.0, 1 / 4, 4))
    if not scheduler.sigmas.isnan().any():
        settings = resolve_settings(request, configs)
        ours = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        assert torch.equal(ours.sigmas, scheduler.sigmas)
        return
    assert shift == 1e8
    with pytest.raises(RequestError, match=r"flow shift 1e\+08 shifts the last of 4 sigmas to 1") as refused:
        resolve_settings(request, configs)
    assert refused.value.fields == ("flow_shift",)


def test_a_dynamic_mu_of_0_still_stores_no_flow_shift() -> None:
    # exp(0) shifts by 1; the stored settings must still hold no flow shift, or a resume turns dynamic shifting off
    config = {**EULER, "use_dynamic_shifting": True, "base_shift": 0.0, "max_shift": 0.0}
    request, _ = GenerationRequest("fox", width=48, height=32, frames=9).resolve()
    settings = resolve_settings(request, configs_of(config))
    assert settings.schedule.mu == 0 and settings.flow_shift_used is None
    assert stored_settings(request, settings)["flow_shift"] is None


def test_a_run_under_dynamic_shifting_gives_no_flow_shift_in_its_result(shared_checkpoint, tmp_path) -> None:
    # GenerationResult.shift is what the summary says ("shift dynamic") and a script reads: not the unused 15
    import json
    import shutil

    from motif_lite import load_pipeline

    root = shutil.copytree(shared_checkpoint[0], tmp_path / "ckpt")
    scheduler = root / "scheduler/scheduler_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "use_dynamic_shifting": True}))
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch")
    request = GenerationRequest("fox", width=32, height=32, frames=1, steps=1, output=tmp_path / "fox_%03d.png")
    assert pipe.generate(request).shift is None


def test_the_token_counts_and_mus_docs_sampling_gives_are_the_codes() -> None:
    # docs/sampling.md, "Dynamic shifting": the latent tokens at 640x352x49 and 1280x736x121, the default line's mu
    # at the official size (19.8: the one that makes DPM++'s first two timesteps equal) and the flow shift row the
    # settings table shows at 640x352x49, as the pipeline's own count and the settings give them.
    from motif_lite.runtime.generation_sizes import video_tokens

    doc = " ".join((Path(__file__).resolve().parent.parent / "docs/sampling.md").read_text().split())
    counts = re.search(r"\((\d+) at 640x352, 49 frames; (\d+) at 1280x736, 121 frames\)", doc)
    official_mu = re.search(r"at 1280x736, 121 frames, where `mu` is (\d+\.\d)\)", doc)
    row = re.search(r"flow shift row \(`(dynamic [^`]+)` at 640x352, 49 frames, with the default line\)", doc)
    assert counts and official_mu and row, "docs/sampling.md no longer gives the token counts and mus"
    configs = configs_of({**EULER, "use_dynamic_shifting": True})
    sizes = [(640, 352, 49), (1280, 736, 121)]
    tokens = [video_tokens(*size, TransformerConfig(), WanVAEConfig()) for size in sizes]
    assert tokens == [int(counts[1]), int(counts[2])] == [reference_tokens(*size) for size in sizes]
    assert round(configs.dynamic.mu(tokens[1]), 1) == float(official_mu[1])
    request, _ = GenerationRequest("fox", width=640, height=352, frames=49, steps=4).resolve()
    shown = dict((name, value) for name, value, _ in resolve_settings(request, configs).table())["flow shift"]
    assert shown == row[1]
