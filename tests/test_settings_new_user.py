"""Sampling settings as a user from diffusers, ComfyUI or stable-diffusion.cpp gives them: other tools' spellings,
settings that change nothing, checkpoint options motif-lite does not implement. No weights: requests, configs and
the command-line parser only."""

from __future__ import annotations

import dataclasses
import re

import PIL.Image
import pytest

from motif_lite import cli, run_estimates
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.cli import run_request as run_command
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.sampling import RECOMMENDED_APG, CFGConfig, GuiderConfig, ScheduleOptions, needs_uncond
from motif_lite.settings import describe_guidance, resolve_settings


def parse_run(*flags: str) -> GenerationRequest:
    return run_command.request_from_args(cli.build_parser().parse_args(["run", "-p", "fox", *flags]))


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("dpmpp_2m", "dpm++2m"),
        ("DPM++ 2M", "dpm++2m"),
        ("dpmpp-2m", "dpm++2m"),
        ("Euler", "euler"),
        # diffusers' scheduler classes, as the settings table names them (pipe.scheduler = UniPCMultistepScheduler)
        ("UniPCMultistepScheduler", "unipc"),
        ("DPMSolverMultistepScheduler", "dpm++2m"),
        ("FlowMatchEulerDiscreteScheduler", "euler"),
    ],
)
def test_other_tools_spellings_of_a_sampler_name_it(given, meant, tmp_path):
    # ComfyUI's KSampler calls DPM++ 2M `dpmpp_2m` (and so does motif_lite.sampling); it is the same sampler.
    assert parse_run("--sampling-method", given).sampler == meant
    request, _ = GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()
    assert request.sampler == meant


def test_guidance_method_in_capitals(tmp_path):
    assert parse_run("--guidance", "CFG").guidance == "cfg"
    request, _ = GenerationRequest("fox", guidance="APG", output=str(tmp_path / "a.mp4")).resolve()
    assert request.guidance == "apg"


def test_a_sampler_that_is_not_there_is_still_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", "euler_ancestral")
    said = "invalid choice: 'euler_ancestral' (choose from 'euler', 'dpm++2m', 'unipc'); closest to euler_ancestral"
    assert said + " here: euler" in capsys.readouterr().err
    said = r"unknown --sampling-method \(in Python sampler\) 'ddim'; choose one of euler, dpm\+\+2m, unipc; closest"
    with pytest.raises(RequestError, match=said + " to ddim here: euler$"):
        GenerationRequest("fox", sampler="ddim", output=str(tmp_path / "a.mp4")).resolve()


@pytest.mark.parametrize(("given", "meant"), [("eulr", "euler"), ("unipcc", "unipc"), ("dpm2m", "dpm++2m")])
def test_a_misspelled_sampler_is_told_the_one_meant(given, meant, capsys, tmp_path):
    # The bare list of choices left the reader to spot the typo; the server and the Python API say the same.
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", given)
    assert f"invalid choice: {given!r} (choose from 'euler', 'dpm++2m', 'unipc'); did you mean {meant}?\n" in (
        capsys.readouterr().err
    )
    with pytest.raises(RequestError, match=re.escape(f"choose one of euler, dpm++2m, unipc; did you mean {meant}?")):
        GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()


def test_a_misspelled_guidance_method_is_told_the_one_meant(capsys, tmp_path):
    # As a misspelled sampler is: the bare "choose from 'apg', 'cfg'" left the reader to spot the typo.
    with pytest.raises(SystemExit):
        parse_run("--guidance", "ap")
    assert "invalid choice: 'ap' (choose from 'apg', 'cfg'); did you mean apg?\n" in capsys.readouterr().err
    with pytest.raises(
        RequestError, match=re.escape("unknown --guidance 'ap'; choose one of apg, cfg; did you mean apg?")
    ):
        GenerationRequest("fox", guidance="ap", output=str(tmp_path / "a.mp4")).resolve()
    # Nothing close, or another tool's method spelled close to ours (perturbed-attention guidance): no guess.
    for other in ("zzz", "pag", "PAG", "cfg-zero"):
        with pytest.raises(RequestError, match=re.escape("choose one of apg, cfg") + "$"):
            GenerationRequest("fox", guidance=other, output=str(tmp_path / "a.mp4")).resolve()
    with pytest.raises(SystemExit):
        parse_run("--guidance", "pag")
    assert "invalid choice: 'pag' (choose from 'apg', 'cfg')\n" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "closest"),
    [("euler_a", "euler"), ("dpmpp_2m_sde", "dpm++2m"), ("DPM++ 2M SDE", "dpm++2m"), ("ipndm", "unipc")],
)
def test_another_tools_sampler_is_refused_with_ours_closest_to_it(given, closest, capsys, tmp_path):
    # stable-diffusion.cpp's and ComfyUI's samplers that are not here: the bare list of choices does not say which
    # of ours to take instead.
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", given)
    assert f"closest to {given} here: {closest}\n" in capsys.readouterr().err
    with pytest.raises(RequestError, match=re.escape(f"closest to {given} here: {closest}")):
        GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()


@pytest.mark.parametrize(
    ("given", "closest", "schedule"),
    [
        ("DPM++ 2M Karras", "dpm++2m", "karras"),  # AUTOMATIC1111's and Forge's names
        ("DPM++ 2M SDE Karras", "dpm++2m", "karras"),
        ("dpmpp_2m_sgm_uniform", "dpm++2m", "sgm_uniform"),
        ("Euler a Exponential", "euler", "exponential"),
    ],
)
def test_a_sampler_named_with_a_sigma_schedule_is_refused_with_the_sampler_it_names(given, closest, schedule, capsys,
                                                                                      tmp_path):  # fmt: skip
    # The list of choices alone did not say that "DPM++ 2M Karras" is dpm++2m with a schedule there is not here.
    said = (f"closest to {given} here: {closest}, on the flow-matching schedule that --flow-shift shapes (no "
            f"{schedule} schedule here)")  # fmt: skip
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", given)
    assert said + "\n" in capsys.readouterr().err
    with pytest.raises(RequestError, match=re.escape(said)):
        GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()


def test_an_unknown_sampler_of_no_other_tool_gets_the_choices_alone(capsys):
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", "xyz")  # close to none of ours (a typo of one: did you mean, above)
    assert "(choose from 'euler', 'dpm++2m', 'unipc')\n" in capsys.readouterr().err


@pytest.mark.parametrize(("frames", "said"), [(1, "1 frame at"), (49, "49 frames at")])
def test_the_settings_table_counts_frames_in_words(frames, said):
    settings = resolve_settings(GenerationRequest("fox", frames=frames, fps=24), CheckpointConfigs())
    rows = {name: value for name, value, _ in settings.table()}
    assert rows["size"] == f"{settings.request.width}x{settings.request.height}, {said} 24 fps"


def test_guidance_that_changes_nothing_reads_as_off():
    # The official guider adds s·update to the prompt's own prediction (original formulation), so scale 0 is no
    # guidance at all: the run skips the negative prompt, and the summary must not claim APG and a negative prompt.
    settings = resolve_settings(GenerationRequest("fox", cfg_scale=0.0), CheckpointConfigs())
    rows = {name: value for name, value, _ in settings.table()}
    assert rows["guidance"] == "off (no negative-prompt pass)" and settings.guidance.value is None
    assert settings.guidance.origin == "--cfg-scale 0: no guidance"
    assert rows["negative"] == "unused (no guidance)"
    assert not needs_uncond(settings.guidance.value, settings.request.steps)
    # Scale 0 of classic CFG is the negative prompt's prediction alone: guided, and said as such.
    settings = resolve_settings(GenerationRequest("fox", guidance="cfg", cfg_scale=0.0), CheckpointConfigs())
    rows = {name: value for name, value, _ in settings.table()}
    assert rows["guidance"] == "CFG scale 0, base uncond" and rows["negative"] == "the official negative prompt"
    window = dataclasses.replace(RECOMMENDED_APG, start=0.5, stop=0.5)
    assert (
        describe_guidance(window, 50) == "off: APG with an empty step range changes nothing (no negative-prompt pass)"
    )
    # A window that holds no step of this run (int(0.5·10) = int(0.55·10) = 5): off too, and said why.
    narrow = dataclasses.replace(RECOMMENDED_APG, start=0.5, stop=0.55)
    assert describe_guidance(narrow, 10) == (
        "off: APG with a 0.5-0.55 window that holds none of the 10 steps changes nothing (no negative-prompt pass)"
    )
    assert describe_guidance(narrow, 50).startswith("APG scale 8")  # 25 <= i < 27: two guided steps


def test_the_time_estimate_counts_no_negative_prompt_for_guidance_that_changes_nothing():
    def flops(**fields) -> float:
        request, _ = GenerationRequest("fox", width=256, height=256, frames=9, steps=4, **fields).resolve()
        return run_estimates.run_flops(request, resolve_settings(request, CheckpointConfigs()), CheckpointConfigs())

    unguided = flops(cfg_scale=0.0)  # scale 0 on base cond: no negative-prompt pass
    assert unguided < flops(cfg_scale=1.0) == flops(cfg_scale=8.0)  # 1 still guides there, as in diffusers


def test_flow_match_schedule_options_are_applied_and_shown(tmp_path):
    # ComfyUI's "karras" and friends, set in a checkpoint's FlowMatchEuler config: sampled as diffusers samples them
    # (tests/test_config_fidelity.py compares the videos), and the settings table says so.
    from diffusers import FlowMatchEulerDiscreteScheduler

    def settings(scheduler, **request):
        scheduler.save_config(tmp_path / "scheduler")
        return resolve_settings(GenerationRequest("fox", **request), CheckpointConfigs.read(tmp_path))

    official = settings(FlowMatchEulerDiscreteScheduler(shift=15.0))  # as diffusers saves it
    assert official.notes == () and official.schedule == ScheduleOptions()
    karras = settings(FlowMatchEulerDiscreteScheduler(shift=15.0, use_karras_sigmas=True, shift_terminal=0.1))
    assert karras.notes == () and karras.schedule == ScheduleOptions(1000, 0.1, "karras")
    rows = {name: value for name, value, _ in karras.table()}
    assert rows["sampler"] == "euler, karras sigmas, shift_terminal 0.1"
    # Another sampler by flag samples its own schedule: said, since the checkpoint asked for these sigmas.
    dpm = settings(FlowMatchEulerDiscreteScheduler(shift=15.0, use_exponential_sigmas=True), sampler="dpm++2m")
    assert dpm.notes == (
        "the shift_terminal and sigma spacing of scheduler/scheduler_config.json are FlowMatchEuler's: they apply to "
        "the euler sampler; dpm++2m samples its own schedule",
    )
    assert dpm.schedule == ScheduleOptions() and {n: v for n, v, _ in dpm.table()}["sampler"] == "dpm++2m"
    # 20 steps: at 500 training timesteps, 50 steps of shift 15 start DPM++'s table at timestep 499 twice, which
    # diffusers cannot step (refused: tests/test_dpm_shift_edge.py).
    trained = settings(
        FlowMatchEulerDiscreteScheduler(shift=15.0, num_train_timesteps=500), sampler="dpm++2m", steps=20
    )
    assert trained.notes == () and trained.schedule.train_timesteps == 500  # both samplers scale timesteps by it
    stretched = FlowMatchEulerDiscreteScheduler(shift=15.0, shift_terminal=0.1, num_train_timesteps=500)
    dpm = settings(stretched, sampler="dpm++2m", steps=20)  # the stretch is Euler's and dropped; the training
    # timesteps stay
    assert len(dpm.notes) == 1 and dpm.schedule == ScheduleOptions(500)


def test_one_step_with_shift_terminal_is_refused_before_loading():
    # One step ends the stretch at σ = 1: 1 − σ_last = 0 divides every sigma into NaN (the reference does the same),
    # which a run would only find as non-finite latents after loading everything.
    configs = CheckpointConfigs(schedule=ScheduleOptions(shift_terminal=0.1))
    said = r"with 1 step the shift_terminal .* give --steps 2 \(in Python steps=2\) or more"
    with pytest.raises(RequestError, match=said) as error:
        resolve_settings(GenerationRequest("fox", steps=1), configs)
    assert error.value.fields == ("steps",)
    resolve_settings(GenerationRequest("fox", steps=2), configs)
    resolve_settings(GenerationRequest("fox", steps=1, sampler="dpm++2m"), configs)  # its own schedule


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("use_karras_sigmas", True, "true"),
        ("use_exponential_sigmas", True, "true"),
        ("use_beta_sigmas", True, "true"),
        ("use_lu_lambdas", True, "true"),
        ("thresholding", True, "true"),
        ("final_sigmas_type", "sigma_min", '"sigma_min"'),
        ("solver_type", "heun", '"heun"'),
    ],
)
def test_each_dpm_option_that_changes_the_sigmas_needs_a_sampler_flag(option, value, shown):
    # A DPMSolverMultistepScheduler config runs as the model card's DPM++ 2M (the reference pipeline cannot run that
    # class at all); one that changes the sigmas or the steps otherwise is none of our samplers: the user chooses.
    scheduler = {"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 15.0, "use_flow_sigmas": True,
                 "prediction_type": "flow_prediction", option: value}  # fmt: skip
    with pytest.raises(RequestError) as error:
        resolve_settings(GenerationRequest("fox"), CheckpointConfigs(scheduler=scheduler))
    assert str(error.value) == (
        f"scheduler/scheduler_config.json holds a DPMSolverMultistepScheduler with {option}: {shown}, which none of "
        "motif-lite's samplers is: choose one with --sampling-method (in Python sampler=): euler, dpm++2m or unipc"
    )
    chosen = resolve_settings(GenerationRequest("fox", sampler="dpm++2m"), CheckpointConfigs(scheduler=scheduler))
    assert chosen.sampler.source == "flag" and chosen.notes == ()


def test_a_dpm_config_without_prediction_type_has_the_class_default_and_is_refused():
    # diffusers' DPMSolverMultistepScheduler predicts epsilon unless told: not the model card's flow prediction.
    scheduler = {"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 15.0, "use_flow_sigmas": True}
    with pytest.raises(RequestError, match='with prediction_type: "epsilon", which none'):
        resolve_settings(GenerationRequest("fox"), CheckpointConfigs(scheduler=scheduler))


def test_an_image_a_one_frame_video_ignores_needs_no_image_input(tmp_path):
    # One frame is text-to-image (the image is ignored, a note says so): a transformer without image input makes it.
    from motif_lite.config import TransformerConfig

    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (64, 64)).save(image)
    request, _ = GenerationRequest("fox", image=str(image), frames=1).resolve()
    configs = CheckpointConfigs(transformer=TransformerConfig(image_embed_dim=None))
    assert resolve_settings(request, configs).request.image is not None


def test_apg_flags_on_a_cfg_guider_say_where_cfg_comes_from():
    guider = GuiderConfig(CFGConfig(scale=5.0))
    with pytest.raises(RequestError) as error:
        resolve_settings(GenerationRequest("fox", apg_eta=0.5), CheckpointConfigs(guider=guider))
    assert str(error.value) == (
        "--apg-eta, --apg-norm-threshold and --apg-momentum apply to APG guidance, not CFG (the method of "
        'guider/guider_config.json); add --guidance apg (in Python guidance="apg") to guide with APG'
    )
    said = r'not CFG \(--guidance cfg \(in Python guidance="cfg"\)\); add --guidance apg'
    with pytest.raises(RequestError, match=said):
        resolve_settings(GenerationRequest("fox", guidance="cfg", apg_momentum=0.2), CheckpointConfigs())
    settings = resolve_settings(GenerationRequest("fox", guidance="apg", apg_eta=0.5), CheckpointConfigs(guider=guider))
    assert settings.guidance.value == dataclasses.replace(RECOMMENDED_APG, scale=5.0, eta=0.5)


def test_a_number_for_guidance_points_at_cfg_scale(capsys):
    # stable-diffusion.cpp's --guidance is a scale (Flux's distilled guidance); here it is the method.
    with pytest.raises(SystemExit):
        parse_run("--guidance", "3.5")
    err = capsys.readouterr().err
    assert "argument --guidance: takes the method, apg or cfg; the guidance scale is --cfg-scale 3.5" in err


def test_negative_apg_momentum_is_taken(tmp_path):
    # The APG paper's reverse momentum (ComfyUI's APG nodes offer it; diffusers' guider takes it and
    # tests/test_guidance.py compares ours at -0.5): no reason to refuse it.
    request, _ = GenerationRequest("fox", apg_momentum=-0.5, output=str(tmp_path / "a.mp4")).resolve()
    settings = resolve_settings(request, CheckpointConfigs())
    assert settings.guidance.value == dataclasses.replace(RECOMMENDED_APG, momentum=-0.5)
    assert not settings.notes
    assert parse_run("--apg-momentum", "-0.5").apg_momentum == -0.5


@pytest.mark.parametrize(("momentum", "noted"), [(0.99, False), (1.0, True), (2.0, True), (-1.0, True)])
def test_an_apg_momentum_that_never_fades_gets_a_note(tmp_path, momentum, noted):
    # Taken, as diffusers takes it, but at 1 or more in size the running average keeps every step's guidance.
    request, _ = GenerationRequest("fox", apg_momentum=momentum, output=str(tmp_path / "a.mp4")).resolve()
    notes = resolve_settings(request, CheckpointConfigs()).notes
    assert any(f"APG momentum {momentum:g}: at 1 or more in size" in note for note in notes) == noted, notes
    said = r"^--apg-momentum must be a finite number, got nan$"
    with pytest.raises(RequestError, match=said):
        GenerationRequest("fox", apg_momentum=float("nan"), output=str(tmp_path / "a.mp4")).resolve()
