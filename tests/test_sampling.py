"""Parity of motif_lite.sampling schedules, solvers and the denoise loop with diffusers 0.42.1."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance
from diffusers.pipelines.motif_video.pipeline_motif_video import (
    MotifVideoPipeline,
    calculate_shift,
    retrieve_timesteps,
)

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.sampling import (
    RECOMMENDED_APG,
    APGConfig,
    CFGConfig,
    DPMpp2M,
    Euler,
    SamplingSettingsError,
    denoise,
    dpm_schedule,
    flow_schedule,
    flow_sigmas,
    schedule_for,
    schedule_options,
    shift_from_scheduler_config,
)


def reference_flow_scheduler(
    steps: int, shift: float, seq_len: int = 1000, **config
) -> FlowMatchEulerDiscreteScheduler:
    """The scheduler after MotifVideoPipeline's set-up of step 5 ("Prepare timesteps"); `config`: other values of
    its scheduler_config.json."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift, **config)
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift(seq_len, 256, 4096, 0.5, 1.15)
    retrieve_timesteps(scheduler, steps, "cpu", None, sigmas=sigmas, mu=mu)
    return scheduler


def reference_dpm_scheduler(steps: int, shift: float, **config) -> DPMSolverMultistepScheduler:
    scheduler = DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
        **config,
    )
    scheduler.set_timesteps(steps)
    return scheduler


@pytest.mark.parametrize("steps", [1, 2, 7, 30, 50])
@pytest.mark.parametrize("shift", [1.0, 2.5, 8.0, 15.0])
def test_flow_schedule_equals_pipeline_scheduler(steps: int, shift: float) -> None:
    ref = reference_flow_scheduler(steps, shift)
    ours = flow_schedule(steps, shift)
    assert ours.sigmas.dtype == ref.sigmas.dtype == torch.float32
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert torch.equal(flow_sigmas(steps, shift), ref.sigmas)
    assert ours.timesteps.dtype == ref.timesteps.dtype
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert ours.steps == steps and ours.sigmas[-1] == 0


@pytest.mark.parametrize("steps", [1, 2, 5, 14, 15, 30, 50])
@pytest.mark.parametrize("shift", [1.0, 5.0, 15.0])
def test_dpm_schedule_equals_dpm_scheduler(steps: int, shift: float) -> None:
    ref = reference_dpm_scheduler(steps, shift)
    ours = dpm_schedule(steps, shift)
    assert ours.sigmas.dtype == ref.sigmas.dtype
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert ours.timesteps.dtype == ref.timesteps.dtype == torch.int64
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert torch.equal(schedule_for("dpmpp_2m", steps, shift).sigmas, ref.sigmas)


SCHEDULE_CONFIGS = [
    dict(num_train_timesteps=500),
    dict(shift_terminal=0.1),
    dict(use_karras_sigmas=True),
    dict(use_exponential_sigmas=True),
    dict(shift_terminal=0.25, use_karras_sigmas=True, num_train_timesteps=2000),
]


@pytest.mark.parametrize("config", SCHEDULE_CONFIGS, ids=str)
@pytest.mark.parametrize(("steps", "shift"), [(1, 15.0), (4, 1.0), (7, 8.0), (50, 15.0)])
def test_flow_schedule_with_scheduler_options_equals_pipeline_scheduler(config: dict, steps: int, shift: float):
    """A checkpoint's FlowMatchEuler config read by `schedule_options` gives the scheduler's table, bit for bit."""
    ref = reference_flow_scheduler(steps, shift, **config)
    options = schedule_options({"_class_name": "FlowMatchEulerDiscreteScheduler", **config})
    if options.shift_terminal and steps == 1:
        # one step ends the stretch at σ = 1, which shift_terminal divides by 1 − 1: diffusers' table is all NaN,
        # ours is refused, once, for library callers as for the run (settings.py words it for the user)
        assert ref.sigmas[:-1].isnan().all()  # all but the 0 appended
        with pytest.raises(SamplingSettingsError, match="with 1 step the shift_terminal .* makes every sigma NaN"):
            schedule_for("euler", steps, shift, options)
        return
    ours = schedule_for("euler", steps, shift, options)
    assert torch.equal(ours.sigmas, ref.sigmas) and torch.equal(ours.timesteps, ref.timesteps)  # bit for bit


@pytest.mark.parametrize("steps", [1, 5, 30])
def test_dpm_schedule_with_other_train_timesteps_equals_dpm_scheduler(steps: int) -> None:
    ref = reference_dpm_scheduler(steps, 8.0, num_train_timesteps=500)
    ours = schedule_for("dpmpp_2m", steps, 8.0, schedule_options({"num_train_timesteps": 500}))
    assert torch.equal(ours.sigmas, ref.sigmas) and torch.equal(ours.timesteps, ref.timesteps)
    # read from a DPMSolverMultistep config too (every class has it), not only from FlowMatchEuler's
    dpm_config = {"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 500}
    ours = schedule_for("dpmpp_2m", steps, 8.0, schedule_options(dpm_config))
    assert torch.equal(ours.sigmas, ref.sigmas) and torch.equal(ours.timesteps, ref.timesteps)


def test_scheduler_keys_listed_in_use_default_values_are_read_as_the_class_default(tmp_path):
    # A config dumped from a scheduler's `.config` lists them; diffusers gives those keys the class default.
    from motif_lite.sampling.schedule import ScheduleOptions

    dumped = {"shift": 3.0, "use_beta_sigmas": True, "_use_default_values": ["shift", "use_beta_sigmas"]}
    assert schedule_options(dumped) == ScheduleOptions()  # not refused: diffusers samples without beta sigmas
    (tmp_path / "scheduler_config.json").write_text(json.dumps(dumped))
    assert shift_from_scheduler_config(tmp_path) is None  # not 3.0


@pytest.mark.parametrize("class_name", ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_the_sigma_options_of_the_multistep_classes_are_not_read_as_flow_match_eulers(class_name):
    # Their configs have keys of the same names, which settings.py judges for their own sampler (a sampler chosen
    # over such a config samples its own schedule): a sampler chosen over a DPM config with beta sigmas was refused
    # as the checkpoint loaded, and `--sampling-method euler` over a UniPC config took its shift_terminal.
    from motif_lite.sampling.schedule import ScheduleOptions

    config = {"_class_name": class_name, "num_train_timesteps": 500, "use_beta_sigmas": True}
    assert schedule_options(config) == ScheduleOptions(500)
    config = {"_class_name": class_name, "use_karras_sigmas": True, "shift_terminal": 0.1}
    assert schedule_options(config) == ScheduleOptions()
    assert torch.equal(schedule_for("euler", 4, 15.0, schedule_options(config)).sigmas, flow_schedule(4, 15.0).sigmas)


def test_schedule_options_in_the_settings_table_words():
    from motif_lite.sampling.schedule import ScheduleOptions

    assert ScheduleOptions().describe() == []
    words = ["karras sigmas", "shift_terminal 0.25", "2000 training timesteps"]
    assert ScheduleOptions(2000, 0.25, "karras").describe() == words


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_euler_steps_equal_flow_match_scheduler(dtype: torch.dtype) -> None:
    steps, gen = 6, torch.Generator().manual_seed(0)
    ref = reference_flow_scheduler(steps, 15.0)
    schedule = flow_schedule(steps, 15.0)
    x_ref = x_ours = torch.randn(2, 4, 3, 4, 6, generator=gen).to(dtype)
    for i, t in enumerate(ref.timesteps):
        v = torch.randn(x_ref.shape, generator=gen).to(dtype)
        x_ref = ref.step(v, t, x_ref, return_dict=False)[0]
        x_ours = Euler().step(x_ours, v, schedule.sigmas[i], schedule.sigmas[i + 1])
        assert x_ours.dtype == x_ref.dtype == dtype
        assert torch.equal(x_ours, x_ref), f"step {i}"


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dpmpp_2m_steps_equal_dpm_scheduler(steps: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(steps)
    ref = reference_dpm_scheduler(steps, 15.0)
    schedule = dpm_schedule(steps, 15.0)
    solver = DPMpp2M()
    x_ref = x_ours = torch.randn(2, 4, 3, 4, 6, generator=gen).to(dtype)
    for i, t in enumerate(ref.timesteps):
        v = torch.randn(x_ref.shape, generator=gen).to(dtype)
        x_ref = ref.step(v, t, x_ref, return_dict=False)[0]
        x_ours = solver.step(x_ours, v, schedule.sigmas[i], schedule.sigmas[i + 1])
        assert x_ours.dtype == x_ref.dtype
        torch.testing.assert_close(x_ours, x_ref, rtol=1e-6, atol=1e-6, msg=f"step {i}")


def test_dpmpp_2m_last_step_returns_denoised_estimate() -> None:
    # Into σ = 0 the update is first order and lands exactly on x0 = x − σ·v.
    x, v = torch.randn(1, 2, 1, 2, 2), torch.randn(1, 2, 1, 2, 2)
    sigma = torch.tensor(0.3)
    torch.testing.assert_close(DPMpp2M().step(x, v, sigma, torch.tensor(0.0)), x - sigma * v)


def test_bad_settings_raise_user_errors() -> None:
    for bad in [lambda: flow_sigmas(0, 15.0), lambda: dpm_schedule(3, -1.0), lambda: schedule_for("heun", 5, 1.0)]:
        with pytest.raises(MotifLiteError):
            bad()
    with pytest.raises(MotifLiteError, match="latents"):
        denoise(lambda x, t, c: x, torch.zeros(2, 3), flow_schedule(2, 1.0))


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 15.0, "flow_shift": 3.0}, "shift"),
        ({"_class_name": "DPMSolverMultistepScheduler", "shift": 3.0, "flow_shift": 15.0}, "flow_shift"),
    ],
)
def test_shift_from_scheduler_config_reads_the_active_key(tmp_path, config: dict, key: str) -> None:
    (tmp_path / "scheduler_config.json").write_text(json.dumps(config))
    cls = FlowMatchEulerDiscreteScheduler if key == "shift" else DPMSolverMultistepScheduler
    active = getattr(cls.from_config(config).config, key)
    assert shift_from_scheduler_config(tmp_path) == active
    assert shift_from_scheduler_config(tmp_path / "scheduler_config.json") == active


def test_shift_from_scheduler_config_absent_and_invalid(tmp_path) -> None:
    assert shift_from_scheduler_config(tmp_path / "nope") is None
    path = tmp_path / "scheduler_config.json"
    path.write_text(json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler"}))
    assert shift_from_scheduler_config(path) is None
    for bad in [
        "{",
        "[]",
        json.dumps(
            {"_class_name": "DPMSolverMultistepScheduler", "use_dynamic_shifting": True, "time_shift_type": "linear"}
        ),  # fmt: skip
        json.dumps({"shift": "x"}),
    ]:
        path.write_text(bad)
        with pytest.raises(ConfigError):
            shift_from_scheduler_config(path)


# --- whole loops: the real MotifVideoPipeline with a fake transformer vs motif_lite.sampling.denoise ---

C, F, H, W, B = 4, 3, 4, 6, 2  # latent channels/frames/height/width and batch


class FakeTransformer(torch.nn.Module):
    """A cheap nonlinear velocity model with the reference transformer's call signature; logs its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(patch_size=2, patch_size_t=1)
        self.weight = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 2 * C + 1), requires_grad=False)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def device(self) -> torch.device:
        return self.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    def cache_context(self, name: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask, **kwargs):
        self.calls.append((timestep.clone(), encoder_hidden_states[:, 0, 0].clone()))
        mixed = torch.einsum("bcfhw,c->bfhw", hidden_states, self.weight)[:, None]
        text = encoder_hidden_states.mean(dim=(1, 2))[:, None, None, None, None]
        t = (timestep[:, None, None, None, None] / 1000).to(hidden_states.dtype)
        return (torch.tanh(hidden_states[:, :C] * (1 + t) + mixed * text) - t * hidden_states[:, :C],)


class FakeVae(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(z_dim=C, scale_factor_temporal=4, scale_factor_spatial=8)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def run_reference(guider, steps: int, shift: float, latents, embeds, transformer, scheduler=None) -> torch.Tensor:
    """The real pipeline's loop; `scheduler`: another than FlowMatchEuler at `shift` (e.g. UniPC)."""
    pipe = MotifVideoPipeline(
        scheduler=scheduler or FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=FakeVae(),
        text_encoder=None,
        tokenizer=None,
        transformer=transformer,
        guider=guider,
    )
    pipe.set_progress_bar_config(disable=True)
    pos, neg = embeds
    mask = torch.ones(pos.shape[:2], dtype=torch.long)
    out = pipe(
        prompt_embeds=pos,
        prompt_attention_mask=mask,
        negative_prompt_embeds=neg,
        negative_prompt_attention_mask=mask,
        height=H * 8,
        width=W * 8,
        num_frames=(F - 1) * 4 + 1,
        num_inference_steps=steps,
        latents=latents,
        output_type="latent",
        return_dict=False,
    )
    return out[0]


def run_ours(guidance, solver: str, steps: int, shift: float, latents, embeds, transformer) -> torch.Tensor:
    pos, neg = embeds
    condition = torch.zeros(B, C, F, H, W, dtype=latents.dtype)  # T2V: no first-frame latents, mask all zero
    mask = torch.zeros(B, 1, F, H, W, dtype=latents.dtype)

    def predict_velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool) -> torch.Tensor:
        text = pos if conditional else neg
        return transformer(torch.cat([x, condition, mask], dim=1), t, text, None)[0]

    return denoise(predict_velocity, latents, schedule_for(solver, steps, shift), solver, guidance)


GUIDES = {
    "apg_recommended": (
        RECOMMENDED_APG,
        lambda: AdaptiveProjectedGuidance(
            guidance_scale=8.0,
            adaptive_projected_guidance_rescale=12.0,
            adaptive_projected_guidance_momentum=0.1,
            use_original_formulation=True,
            adaptive_projected_guidance_norm_dim=[-1, -2, -4],
        ),
    ),
    "apg_eta0_stop": (
        APGConfig(scale=5.0, norm_threshold=0.5, momentum=-0.5, eta=0.0, stop=0.6),
        lambda: AdaptiveProjectedGuidance(
            guidance_scale=5.0,
            adaptive_projected_guidance_rescale=0.5,
            adaptive_projected_guidance_momentum=-0.5,
            eta=0.0,
            stop=0.6,
        ),
    ),
    "cfg": (CFGConfig(scale=4.0), lambda: ClassifierFreeGuidance(guidance_scale=4.0)),
    "cfg_scale1": (CFGConfig(scale=1.0), lambda: ClassifierFreeGuidance(guidance_scale=1.0)),
}


@pytest.mark.parametrize("name", sorted(GUIDES))
def test_denoise_equals_reference_pipeline_loop(name: str) -> None:
    ours_guidance, make_guider = GUIDES[name]
    steps, shift, gen = 5, 8.0, torch.Generator().manual_seed(1)
    latents = torch.randn(B, C, F, H, W, generator=gen)
    embeds = (torch.randn(B, 7, 8, generator=gen), torch.randn(B, 7, 8, generator=gen))
    ref_model, our_model = FakeTransformer(), FakeTransformer()
    expected = run_reference(make_guider(), steps, shift, latents, embeds, ref_model)
    got = run_ours(ours_guidance, "euler", steps, shift, latents, embeds, our_model)
    assert torch.equal(got, expected)
    # Same transformer calls in the same order (cond first, then uncond), same timestep dtype and values.
    assert len(our_model.calls) == len(ref_model.calls)
    for (t_ours, text_ours), (t_ref, text_ref) in zip(our_model.calls, ref_model.calls, strict=True):
        assert t_ours.dtype == t_ref.dtype and t_ours.shape == t_ref.shape == (B,)
        assert torch.equal(t_ours, t_ref) and torch.equal(text_ours, text_ref)
    if name == "cfg_scale1":
        assert len(our_model.calls) == steps  # scale 1: no unconditional pass at all


def test_dpmpp_2m_denoise_equals_scheduler_guider_loop() -> None:
    # The 0.42.1 pipeline refuses DPMSolver (it always passes sigmas=), so replay its loop by hand.
    steps, shift, gen = 6, 15.0, torch.Generator().manual_seed(2)
    latents = torch.randn(B, C, F, H, W, generator=gen)
    embeds = (torch.randn(B, 7, 8, generator=gen), torch.randn(B, 7, 8, generator=gen))
    model = FakeTransformer()
    scheduler, guider = reference_dpm_scheduler(steps, shift), GUIDES["apg_recommended"][1]()
    zeros, x = torch.zeros(B, C + 1, F, H, W), latents
    for i, t in enumerate(scheduler.timesteps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=t)
        batches = guider.prepare_inputs({"encoder_hidden_states": embeds})
        for batch in batches:
            inputs = torch.cat([x, zeros], dim=1)
            batch.noise_pred = model(inputs, t.expand(B), batch.encoder_hidden_states, None)[0]
        x = scheduler.step(guider(batches)[0], t, x, return_dict=False)[0]
    got = run_ours(RECOMMENDED_APG, "dpmpp_2m", steps, shift, latents, embeds, FakeTransformer())
    torch.testing.assert_close(got, x, rtol=1e-6, atol=1e-6)


def test_denoise_equals_reference_pipeline_loop_in_bfloat16() -> None:
    # The reference keeps latents, velocity and guidance in the transformer dtype; so must we, bit for bit.
    steps, shift, gen = 4, 15.0, torch.Generator().manual_seed(3)
    latents = torch.randn(B, C, F, H, W, generator=gen).to(torch.bfloat16)
    embeds = tuple(torch.randn(B, 7, 8, generator=gen).to(torch.bfloat16) for _ in range(2))
    ref_model, our_model = FakeTransformer().to(torch.bfloat16), FakeTransformer().to(torch.bfloat16)
    expected = run_reference(GUIDES["apg_recommended"][1](), steps, shift, latents, embeds, ref_model)
    got = run_ours(RECOMMENDED_APG, "euler", steps, shift, latents, embeds, our_model)
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)


# ------------------------------------------------------------------------------------------ stopping and going on


class Stop(Exception):
    """Raised by a step callback to stop a sampling loop midway, as Ctrl-C or out of memory would."""


def toy_velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool) -> torch.Tensor:
    """A velocity that depends on the sample, the time and the branch, nonlinearly: each step's state matters."""
    return torch.tanh(x * (1.3 if conditional else 0.7)) + t.float().view(-1, 1, 1, 1, 1) / 1000


def run_stopping_after(stop: int | None, solver: str, guidance, start=None) -> tuple[torch.Tensor | None, list]:
    """The toy loop (16 steps, bf16 latents), stopped after step `stop` (None: run to the end); -> (its result or
    None, every state it reported)."""
    states = []

    def on_step(i: int, latents: torch.Tensor) -> None:
        if stop is not None and i + 1 == stop:
            raise Stop

    latents = torch.randn(1, 4, 3, 4, 6, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    schedule = schedule_for(solver, 16, 5.0)
    try:
        result = denoise(toy_velocity, latents, schedule, solver, guidance, on_step, start=start,
                         on_state=states.append)  # fmt: skip
    except Stop:
        result = None
    return result, states


MOMENTUM_APG = APGConfig(scale=4.0, norm_threshold=2.0, momentum=0.5, norm_dims=(-1, -2, -4))


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m", "unipc"])
@pytest.mark.parametrize("guidance", [None, MOMENTUM_APG], ids=["unguided", "apg-momentum"])
def test_a_loop_stopped_midway_goes_on_to_the_same_bits(solver: str, guidance) -> None:
    whole, _ = run_stopping_after(None, solver, guidance)
    for stop in (1, 7, 15):
        stopped, states = run_stopping_after(stop, solver, guidance)
        assert stopped is None and states[-1].done == stop
        resumed, _ = run_stopping_after(None, solver, guidance, start=states[-1])
        assert torch.equal(resumed, whole), f"stopped after step {stop}"


@pytest.mark.parametrize(
    ("solver", "guidance", "lost"),
    [("dpmpp_2m", None, "solver"), ("unipc", None, "solver"), ("euler", MOMENTUM_APG, "apg_running")],
)
def test_going_on_without_the_solver_or_guidance_state_differs(solver: str, guidance, lost: str) -> None:
    """Negative control: the latents alone do not continue a multistep solver or APG's momentum."""
    whole, _ = run_stopping_after(None, solver, guidance)
    _, states = run_stopping_after(7, solver, guidance)
    emptied = dataclasses.replace(states[-1], **{lost: {} if lost == "solver" else None})
    resumed, _ = run_stopping_after(None, solver, guidance, start=emptied)
    assert not torch.equal(resumed, whole)


def test_a_solvers_state_holds_the_fields_it_has_set() -> None:
    # What a stopped run saves: tensors only (a fresh DPM++ solver has no previous estimate yet; Euler keeps none).
    from motif_lite.sampling.solvers import make_solver, solver_state, with_solver_state

    dpm = make_solver("dpmpp_2m")
    assert solver_state(dpm) == {} and solver_state(make_solver("euler")) == {}
    x0, sigma = torch.ones(2), torch.tensor(0.5)
    restored = with_solver_state(make_solver("dpmpp_2m"), {"prev_x0": x0, "prev_sigma": sigma})
    assert solver_state(restored) == {"prev_x0": x0, "prev_sigma": sigma}
    assert solver_state(dpm) == {}  # the solver it was made from is not changed


def test_a_state_from_another_solver_or_past_the_end_is_refused() -> None:
    _, states = run_stopping_after(7, "dpmpp_2m", None)
    with pytest.raises(SamplingSettingsError, match="another sampler"):
        run_stopping_after(None, "euler", None, start=states[-1])
    with pytest.raises(SamplingSettingsError, match="after step 17"):
        run_stopping_after(None, "euler", None, start=dataclasses.replace(states[-1], done=17, solver={}))
    done = dataclasses.replace(states[-1], done=16, solver={})  # after the last step: nothing left to do
    assert run_stopping_after(None, "euler", None, start=done)[0] is done.latents


@pytest.mark.parametrize("spacing", ["use_karras_sigmas", "use_exponential_sigmas"])
@pytest.mark.parametrize(
    "ends",
    [dict(sigma_min=0.05), dict(sigma_max=0.9), dict(sigma_min=0.02, sigma_max=0.95), dict(sigma_min=0)],
    ids=str,
)
@pytest.mark.parametrize("steps", [1, 3, 12])
def test_sigma_spacing_between_the_configs_sigma_min_and_max_equals_the_scheduler(spacing, ends, steps):
    if spacing == "use_exponential_sigmas" and ends.get("sigma_min") == 0:
        pytest.skip("log(0): refused, as the next test shows")
    # diffusers warns that FlowMatchEuler ignores sigma_min / sigma_max, yet its Karras and exponential spacing read
    # them from the config as the ends of the table: a checkpoint's config with them samples another schedule.
    config = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 5.0, spacing: True, **ends}
    ref = FlowMatchEulerDiscreteScheduler.from_config(config)
    retrieve_timesteps(ref, steps, "cpu", None, sigmas=np.linspace(1.0, 1 / steps, steps), mu=0.7)
    ours = schedule_for("euler", steps, 5.0, schedule_options(config))
    assert torch.equal(ours.sigmas, ref.sigmas) and torch.equal(ours.timesteps, ref.timesteps)


def test_sigma_min_and_max_without_a_spacing_change_nothing_and_bad_ones_are_refused():
    from motif_lite.sampling.schedule import ScheduleOptions

    # without Karras or exponential spacing diffusers reads neither
    assert schedule_options({"shift": 5.0, "sigma_min": 0.05, "sigma_max": 0.9}) == ScheduleOptions()
    assert schedule_options({"use_karras_sigmas": True, "sigma_max": 0.9}).describe() == [
        "karras sigmas",
        "sigma_max 0.9",
    ]
    for bad in (0, -0.1, "0.1", True, float("inf")):
        with pytest.raises(ConfigError, match="sigma_min must be a positive number with exponential sigmas"):
            schedule_options({"use_exponential_sigmas": True, "sigma_min": bad})
    for bad in (-0.1, "0.1", True, float("inf")):  # Karras spacing takes 0, as diffusers samples it
        with pytest.raises(ConfigError, match="sigma_min must be a number of 0 or more with karras sigmas"):
            schedule_options({"use_karras_sigmas": True, "sigma_min": bad})
    with pytest.raises(ConfigError, match="sigma_max must be a positive number with karras sigmas"):
        schedule_options({"use_karras_sigmas": True, "sigma_max": 0})
    assert schedule_options({"use_karras_sigmas": True, "sigma_min": 0}).describe() == ["karras sigmas", "sigma_min 0"]


@pytest.mark.parametrize(
    "option", [dict(euler_at_final=True), dict(solver_type="bh2"), dict(solver_type="logrho"), dict(solver_type="bh1")]
)
def test_a_dpm_config_that_diffusers_samples_as_the_model_cards_runs_as_dpmpp_2m(option: dict) -> None:
    # DPMSolverMultistep reads UniPC's solver types as midpoint, and euler_at_final only makes the last step first
    # order, which final_sigmas_type "zero" does already: diffusers samples these configs as dpm++2m samples.
    from motif_lite.request import GenerationRequest
    from motif_lite.settings import resolve_sampler

    config = dict(algorithm_type="dpmsolver++", prediction_type="flow_prediction", use_flow_sigmas=True, **option)
    gen = torch.Generator().manual_seed(4)
    for steps in (1, 2, 3, 5):
        ref, schedule, solver = reference_dpm_scheduler(steps, 15.0, **option), dpm_schedule(steps, 15.0), DPMpp2M()
        x_ref = x_ours = torch.randn(1, 4, 2, 4, 4, generator=gen)
        for i, t in enumerate(ref.timesteps):
            v = torch.randn(x_ref.shape, generator=gen)
            x_ref = ref.step(v, t, x_ref, return_dict=False)[0]
            x_ours = solver.step(x_ours, v, schedule.sigmas[i], schedule.sigmas[i + 1])
        torch.testing.assert_close(x_ours, x_ref, rtol=1e-6, atol=1e-6)
    scheduler = {"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 15.0, **config}
    assert resolve_sampler(GenerationRequest("fox"), scheduler).value == "dpm++2m"


@pytest.mark.parametrize("steps", [4, 50])
def test_set_timesteps_without_sigmas_shifts_twice_and_ends_where_docs_sampling_says(steps: int) -> None:
    # docs/sampling.md, "Schedules": "`set_timesteps(N)` without sigmas would shift twice and end at σ≈0.18; the
    # pipeline never does that and neither do we": diffusers' FlowMatchEuler with the official shift 15 ends there
    # whatever N, where `flow_schedule` (the pipeline's `sigmas=` linspace, shifted once) ends at shift(1/N).
    doc = " ".join((Path(__file__).resolve().parent.parent / "docs/sampling.md").read_text().split())
    found = re.search(r"would shift twice and end at σ≈(\d\.\d+);", doc)
    assert found is not None, "docs/sampling.md no longer says where a double shift ends"
    shift, last = 15.0, 1 / steps
    twice = FlowMatchEulerDiscreteScheduler(shift=shift)
    twice.set_timesteps(steps)
    assert round(twice.sigmas[-2].item(), 2) == float(found[1]) and twice.sigmas[-1] == 0
    ours = flow_schedule(steps, shift).sigmas
    assert ours[-2].item() == pytest.approx(shift * last / (1 + (shift - 1) * last)) and ours[-1] == 0
    assert round(ours[-2].item(), 2) != float(found[1])
