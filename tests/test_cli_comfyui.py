"""A ComfyUI or Wan2GP user's names for their settings, typed to `motif-lite run`: each is ours, or refused with a
line that names what to type here (and says so truly), never taken for words of the prompt."""

from __future__ import annotations

import dataclasses
import re
import shlex

import numpy as np
import pytest

from motif_lite import cli
from motif_lite.cli.command_hints import subcommands
from motif_lite.sampling.schedule import SamplingSettingsError
from motif_lite.sampling.solvers import schedule_for


def _refusal(capsys, argv: list[str]) -> str:
    """The error line `motif-lite run -p x ARGV` exits with (code 2, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    return err


def _hint(err: str, word: str) -> str:
    """The hint the error line gives `word` (an unknown argument as typed)."""
    assert f"({word}: " in err or f"; {word}: " in err, err
    return re.split(rf"[(;] {re.escape(word)}: |\({re.escape(word)}: ", err, maxsplit=1)[1]


def _run_flags() -> set[str]:
    run = subcommands(cli.build_parser())["run"]
    return set(run._option_string_actions)  # argparse keeps no public map


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        # ComfyUI's seed widget: fixed is a given seed, randomize the default -1, increment a batch's seeds
        (["--control_after_generate", "fixed"], ["-s", "-b"]),
        (["--control-after-generate=randomize"], ["-s"]),
        # Video Combine's settings: the format is -o's extension, the quality --crf
        (["--format", "video/h264-mp4"], ["-o", "--crf"]),
        (["--pingpong"], []),
        (["--loop_count", "0"], []),
        # ComfyUI's launch flags
        (["--fast"], ["--compile", "--attention", "--step-cache", "--steps"]),
        (["--preview-method", "auto"], ["--preview"]),  # was "did you mean --preview?", which takes a file
        (["--disable-smart-memory"], ["--vram"]),
        (["--fp8_e5m2-unet"], ["--gguf", "--diffusion-model"]),
        (["--fp8_e4m3fn-text-enc"], ["--text-encoder-quantize", "--text-encoder-gguf"]),
        (["--bf16-vae"], ["--dtype"]),
        (["--use-pytorch-cross-attention"], ["--attention-backend"]),
        # TeaCache's and MagCache's thresholds, WanVideoWrapper's block swap, Wan2GP's VAE tiling
        (["--rel_l1_thresh", "0.2"], ["--step-cache"]),
        (["--magcache_thresh", "0.1"], ["--step-cache"]),  # was "did you mean --step-cache?": not the same threshold
        (["--blocks_to_swap", "20"], ["--vram"]),
        (["--vae-config", "1"], ["--vram"]),
    ],
)
def test_comfyui_and_wan2gp_settings_without_a_flag_here_are_told_what_to_use(capsys, argv, named):
    err = _refusal(capsys, argv)
    hint = _hint(err, argv[0])
    assert "did you mean" not in hint, hint
    for flag in named:
        assert flag in _run_flags(), flag
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", hint), (flag, hint)


_BARE_SETTINGS = [
    ("seed=42", "--seed", "42"),
    ("length=81", "--video-frames", "81"),  # EmptyHunyuanLatentVideo's length: the frame count
    ("cfg=6", "--cfg-scale", "6"),
    ("shift=8", "--flow-shift", "8"),  # ModelSamplingSD3's
    ("sampler_name=dpmpp_2m", "--sampling-method", "dpmpp_2m"),
    ("batch_size=2", "--batch-count", "2"),
    ("Steps=20", "--steps", "20"),
]


@pytest.mark.parametrize(
    ("typed", "flag", "value"),
    [([word], flag, value) for word, flag, value in _BARE_SETTINGS]
    # NAME and a number as two words where NAME is no word of prose (`cfg 6`, `batch_size 2`); `steps 20` is the
    # prompt's (below)
    + [(word.split("="), flag, value) for word, flag, value in _BARE_SETTINGS if word.startswith(("cfg", "batch_"))],
)
def test_a_setting_typed_without_dashes_gets_the_flag_not_the_prompt(capsys, typed, flag, value):
    # `run -p "a fox" seed=42` (or `cfg 6`) said: a prompt goes after -p, in quotes: -p "a fox seed=42", the
    # setting as text of the prompt
    err = _refusal(capsys, typed)
    assert "a prompt goes after -p" not in err, err
    hint = _hint(err, " ".join(typed))
    assert f"{flag} {value}" in hint, hint
    # ... and the line it gives parses as the flag with that value does
    given = shlex.split(hint.split("settings are flags here: ", 1)[1].rsplit(")", 1)[0])
    run = subcommands(cli.build_parser())["run"]
    assert vars(run.parse_args(["-p", "x", *given])) == vars(run.parse_args(["-p", "x", flag, value]))


def test_an_unquoted_prompt_beside_a_setting_gets_both_hints_and_the_setting_stays_out_of_the_prompt(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "a", "fox", "steps=20", "cfg", "6"])
    err = capsys.readouterr().err
    assert "steps=20: settings are flags here: --steps 20" in err and '-p "a fox")' in err, err
    assert "cfg 6: settings are flags here: --cfg-scale 6" in err, err


@pytest.mark.parametrize(
    "words",
    [
        ["mood=calm"],
        ["runs", "3", "laps"],
        ["steps", "up"],
        # a word that names a flag, then a number, is prose too: "model 3" was cut out as --model 3
        ["a", "tesla", "model", "3", "driving"],
        ["a", "red", "tesla", "model", "3"],
        ["a", "type", "2", "diabetes", "patient"],
        ["a", "cat", "steps", "3", "times"],
        ["call", "for", "help", "911", "now"],
        ["a", "rope", "of", "length", "81"],
        ["the", "seed", "42", "sprouts"],
        ["ein", "Tesla", "Model", "3", "auf", "der", "Autobahn"],
        ["une", "image", "2", "fois", "plus", "belle"],
        ["un", "coche", "model", "3", "rojo"],
        # an acronym in capitals is prose, though its letters name a flag: "LLM 3" was cut out as --text-encoder 3
        ["a", "LLM", "3", "robot"],
        ["an", "FPS", "2", "game"],
        ["a", "sign", "that", "says", "SP", "3"],
    ],
)
def test_words_that_name_no_setting_are_still_part_of_the_prompt(capsys, words):
    err = _refusal(capsys, words)
    assert f'a prompt goes after -p, in quotes: -p "x {" ".join(words)}")' in err, err


@pytest.mark.parametrize(
    ("typed", "flag"),
    [("compile=1", "--compile"), ("yes=1", "--yes"), ("dry_run=true", "--dry-run"), ("torch_compile=1", "--compile")],
)
def test_a_switch_typed_as_a_setting_is_named_alone(capsys, typed, flag):
    # `compile=1` was told `--compile 1`, which is refused again: its 1 is taken for a word of the prompt
    hint = _hint(_refusal(capsys, [typed]), typed)
    assert hint.rstrip(")\n").endswith(f"take no value: {flag}"), hint
    given = shlex.split(hint.split("take no value: ", 1)[1].rsplit(")", 1)[0])
    run = subcommands(cli.build_parser())["run"]
    assert vars(run.parse_args(["-p", "x", *given])) == vars(run.parse_args(["-p", "x", flag]))


@pytest.mark.parametrize(
    ("typed", "flag"), [("compile=0", "--compile"), ("compile=false", "--compile"), ("yes=off", "--yes")]
)
def test_a_switch_given_an_off_value_is_told_to_leave_it_out(capsys, typed, flag):
    hint = _hint(_refusal(capsys, [typed]), typed)
    assert hint.startswith(f"{flag} is a switch that takes no value, and off unless given: leave it out"), hint


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("batch_guidance=0", False), ("batch_guidance=off", False), ("no_batch_guidance=0", True)],
)
def test_a_switch_with_a_no_form_given_an_off_value_is_told_the_flag_that_turns_it(capsys, typed, meant):
    # --batch-guidance is on by default where the memory plan allows: `batch_guidance=0` was told to leave it out,
    # which left it on. The flag named sets what the value meant.
    hint = _hint(_refusal(capsys, [typed]), typed)
    assert "leave it out" not in hint, hint
    given = shlex.split(hint.split("take no value: ", 1)[1].rsplit(")", 1)[0])
    run = subcommands(cli.build_parser())["run"]
    assert run.parse_args(["-p", "x", *given]).batch_guidance is meant, hint


def test_help_typed_as_a_setting_is_named_alone(capsys):
    hint = _hint(_refusal(capsys, ["help=1"]), "help=1")
    assert "--help 1" not in hint and "take no value: --help" in hint, hint


def _comfyui_simple(steps: int, shift: float) -> np.ndarray:
    """ComfyUI's `simple_scheduler` (comfy/samplers.py) over ModelSamplingSD3's table (comfy/model_sampling.py,
    ModelSamplingDiscreteFlow, multiplier 1000): sigmas[i] = shift·t / (1 + (shift − 1)·t), t = (i + 1) / 1000; the
    steps pick entries `sigs[-(1 + int(x * ss))]`, ss = len(sigs) / steps, then 0. Written as ComfyUI writes it."""
    t = np.arange(1, 1001, dtype=np.float64) / 1000
    sigs = shift * t / (1 + (shift - 1) * t)
    ss = len(sigs) / steps
    return np.array([*(sigs[-(1 + int(x * ss))] for x in range(steps)), 0.0])


def _flow_time(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """Sigmas with the shift undone: t = σ / (shift − (shift − 1)·σ)."""
    return sigmas / (shift - (shift - 1) * sigmas)


# Step counts: every one to 100, then some above (those that divide 1000 among them) and the worst case, 999.
_STEP_COUNTS = [*range(1, 101), 125, 150, 199, 200, 250, 333, 500, 667, 999, 1000]


@pytest.mark.parametrize(("sampler", "within"), [("euler", 1 / 1000), ("unipc", 1 / 1000), ("dpmpp_2m", 2 / 1000)])
@pytest.mark.parametrize("shift", [0.5, 1.0, 8.0, 15.0])
def test_comfyuis_simple_schedule_is_what_the_hints_say_it_is(sampler, within, shift):
    # --scheduler simple was "the schedule here" at any step count; ComfyUI's simple rounds its picks to its table's
    # 1000 entries. What the hints say now (SIMPLE_SIGMAS, DPM_SIMPLE_SIGMAS): with euler or unipc the same sigmas
    # where the step count divides 1000 and within 1/1000 in flow time at other counts (up to 0.015 in sigma at
    # shift 15); with dpm++2m within 1/500 at any count.
    apart_at_other_counts = 0.0
    for steps in _STEP_COUNTS:
        try:
            ours = schedule_for(sampler, steps, shift).sigmas.double().numpy()
        except SamplingSettingsError:  # a DPM++ table diffusers cannot step: refused, nothing to compare
            continue
        theirs = _comfyui_simple(steps, shift)
        apart = np.abs(_flow_time(ours, shift) - _flow_time(theirs, shift)).max()
        assert apart <= within + 1e-6, (steps, apart)
        if sampler == "dpmpp_2m":
            continue
        if 1000 % steps == 0:  # unipc moves a first sigma of 1 down by 1e-6 (UNIPC_EPS)
            np.testing.assert_allclose(ours, theirs, atol=2e-6, err_msg=f"{steps} steps")
        else:
            apart_at_other_counts = max(apart_at_other_counts, apart)
        if shift == 15:
            assert np.abs(ours - theirs).max() <= 0.015, steps
    if sampler != "dpmpp_2m":  # the "within" is needed: the schedules do differ at other counts
        assert apart_at_other_counts > within / 2, apart_at_other_counts


@pytest.mark.parametrize(
    ("argv", "word", "said"),
    [
        (["--scheduler", "simple"], "--scheduler", "with euler or unipc its sigmas are simple's where the step count "
         "divides 1000, else within 1/1000 of them in flow time (up to 0.015 in sigma at shift 15)"),
        (["scheduler=simple"], "scheduler=simple", "divides 1000, else within 1/1000"),
        (["--sampling-method", "euler_simple"], "--sampling-method", "divides 1000, else within 1/1000"),
        (["--sampling-method", "unipc_simple"], "--sampling-method", "divides 1000, else within 1/1000"),
        (["--sampling-method", "euler_ancestral_simple"], "--sampling-method", "divides 1000, else within 1/1000"),
        (["--sampling-method", "dpmpp_2m_simple"], "--sampling-method", "within 1/500 of simple's in flow time"),
    ],
)  # fmt: skip
def test_comfyuis_simple_schedule_is_said_to_be_the_same_only_where_it_is(capsys, argv, word, said):
    # --scheduler simple was "the schedule here" and euler_simple's was "is simple" at every step count: the
    # bounds are those test_comfyuis_simple_schedule_is_what_the_hints_say_it_is computes
    err = _refusal(capsys, argv)
    hint = err if word == "--sampling-method" else _hint(err, word)
    assert said in hint and "is the schedule here" not in hint and not hint.rstrip(")\n").endswith("is simple"), hint


@pytest.mark.parametrize(
    ("schedule", "offered"),
    [("simple", True), ("normal", False), ("sgm_uniform", False), ("karras", False), ("beta", False)],
)
def test_a_comfyui_scheduler_is_said_to_be_the_schedule_here_only_when_it_is(capsys, schedule, offered):
    # --scheduler simple was "sigma schedules such as karras are not offered", of the schedule every run uses
    for argv, word in (
        (["--scheduler", schedule], "--scheduler"),
        ([f"scheduler={schedule}"], f"scheduler={schedule}"),
    ):
        hint = _hint(_refusal(capsys, argv), word)
        assert ("not offered" not in hint) == offered, hint
        assert "--flow-shift" in hint, hint


def test_a_scheduler_value_that_names_no_schedule_gets_the_general_line(capsys):
    # `--scheduler 2` said "a 2 schedule is not offered"
    hint = _hint(_refusal(capsys, ["--scheduler", "2"]), "--scheduler")
    assert "2 schedule" not in hint and "--flow-shift" in hint, hint


@pytest.mark.parametrize(
    ("typed", "word"),
    [
        (["--cfg", "1"], "--cfg"),
        (["--cfg=1.0"], "--cfg=1.0"),
        (["--guidance_scale", "1"], "--guidance_scale"),
        (["cfg=1"], "cfg=1"),
        (["cfg", "1"], "cfg 1"),
    ],
)
def test_their_cfg_of_one_is_told_that_no_guidance_is_a_scale_of_zero_here(capsys, typed, word):
    # `--cfg 1` (ComfyUI's no guidance) said only "did you mean --cfg-scale?": --cfg-scale 1 guides on the official
    # guider, a run at twice the cost of the unguided one they meant
    assert "--cfg-scale 0" in _hint(_refusal(capsys, typed), word)


@pytest.mark.parametrize(
    ("typed", "word"), [(["--cfg", "1"], "--cfg"), (["cfg=1"], "cfg=1"), (["--guidance_scale=1"], "--guidance_scale=1")]
)
def test_with_classic_cfg_their_cfg_of_one_is_told_that_one_is_no_guidance_here_too(capsys, typed, word):
    # `--guidance cfg --cfg 1` was told "--cfg-scale 0": on classic CFG that is the negative prompt's prediction alone
    hint = _hint(_refusal(capsys, ["--guidance", "cfg", *typed]), word)
    assert "--cfg-scale 1 is no guidance" in hint and "--cfg-scale 0 " not in hint, hint


@pytest.mark.parametrize(("scale", "kept"), [(1.0, "cond"), (0.0, "uncond")])
def test_on_classic_cfg_a_scale_of_one_is_no_guidance_and_zero_keeps_the_negative_prediction_as_in_diffusers(
    scale, kept
):
    # what the classic-CFG hint says, with diffusers' CFG guider as the oracle
    import torch
    from diffusers.guiders import ClassifierFreeGuidance

    from motif_lite.sampling.guidance import CFGConfig, is_neutral

    guider = ClassifierFreeGuidance(guidance_scale=scale, use_original_formulation=CFGConfig().original_formulation)
    guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(999))
    cond, uncond = torch.randn(2, 1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(guider.forward(cond, uncond).pred, {"cond": cond, "uncond": uncond}[kept])
    assert is_neutral(CFGConfig(scale=scale)) == (kept == "cond")


def test_a_cfg_scale_other_than_one_is_sent_to_cfg_scale_alone(capsys):
    hint = _hint(_refusal(capsys, ["--cfg", "6"]), "--cfg")
    assert hint.startswith("did you mean --cfg-scale?") and "--cfg-scale 0" not in hint, hint


@pytest.mark.parametrize(("scale", "guides"), [(0.0, False), (1.0, True)])
def test_on_the_official_guider_a_scale_of_zero_is_no_guidance_and_one_still_guides_as_in_diffusers(scale, guides):
    # what the cfg-1 hint says, with diffusers' guider as the oracle: the official APG (original formulation)
    import torch
    from diffusers.guiders import AdaptiveProjectedGuidance

    from motif_lite.sampling.guidance import RECOMMENDED_APG, is_neutral

    guider = AdaptiveProjectedGuidance(
        guidance_scale=scale,
        adaptive_projected_guidance_rescale=RECOMMENDED_APG.norm_threshold,
        adaptive_projected_guidance_momentum=RECOMMENDED_APG.momentum,
        use_original_formulation=RECOMMENDED_APG.original_formulation,
    )
    guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(999))
    cond, uncond = torch.randn(2, 1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    assert (not torch.allclose(guider.forward(cond, uncond).pred, cond)) == guides
    assert is_neutral(dataclasses.replace(RECOMMENDED_APG, scale=scale)) == (not guides)


def test_run_help_points_a_comfyui_user_to_their_names_and_its_examples_are_answered(capsys):
    # `run --help` named none of ComfyUI's settings: its pointer gives examples, each refused with a hint naming ours,
    # and the docs section it names
    from pathlib import Path

    text = " ".join(subcommands(cli.build_parser())["run"].format_help().split())
    found = re.search(r"type their setting as they name it \(([^)]*)\) and the error names ours; docs/usage.md, "
                      r'"([^"]+)", has the table', text)  # fmt: skip
    assert found, text
    examples, section = found.groups()
    assert f"\n## {section}\n" in (Path(__file__).parents[1] / "docs/usage.md").read_text()
    for example in examples.split(", "):
        err = _refusal(capsys, shlex.split(example))
        assert f"({example.split()[0]}: " in err or f"({example}: " in err, (example, err)


@pytest.mark.parametrize(
    ("typed", "word", "ours"),
    [
        (["--sampler_name", "euler_ancestral"], "--sampler_name", "euler"),
        (["--sampler=dpmpp_2m_sde"], "--sampler=dpmpp_2m_sde", "dpm++2m"),
        (["sampler_name=euler_ancestral"], "sampler_name=euler_ancestral", "euler"),
    ],
)
def test_their_sampler_that_is_not_here_gets_the_one_to_type_with_the_flag(capsys, typed, word, ours):
    # `--sampler_name euler_ancestral` said "did you mean --sampling-method?", and --sampling-method euler_ancestral
    # then was refused with the closest sampler: two tries for one answer. The hint now names both, as the
    # refusal of --sampling-method itself does.
    value = (typed[1] if len(typed) > 1 else typed[0].split("=", 1)[1]).strip()
    hint = _hint(_refusal(capsys, typed), word)
    refusal = _refusal(capsys, ["--sampling-method", value]).strip().split(": ", 2)[-1]
    assert "--sampling-method" in hint and f"here: {ours}" in hint and f"here: {ours}" in refusal, (hint, refusal)


@pytest.mark.parametrize(
    ("typed", "simple"), [("euler_simple", True), ("dpmpp_2m_simple", True), ("euler_karras", False)]
)
def test_a_sampler_named_with_comfyuis_simple_schedule_is_not_told_simple_is_missing(capsys, typed, simple):
    # --sampling-method euler_simple ended "(no simple schedule here)", of the schedule every run samples on
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a fox", "--sampling-method", typed, "--dry-run"])
    error = capsys.readouterr().err
    assert ("no simple schedule" not in error) and (("simple's" in error) == simple), error
    assert "--flow-shift" in error, error


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("euler_simple", "euler_simple here is euler, on the flow-matching schedule"),
        ("euler_ancestral_simple", "closest to euler_ancestral_simple here: euler, on the flow-matching schedule"),
        ("dpmpp_2m_sde_simple", "closest to dpmpp_2m_sde_simple here: dpm++2m, on the flow-matching schedule"),
    ],
)
def test_another_tools_sampler_on_comfyuis_simple_schedule_is_the_closest_not_ours(capsys, typed, said):
    # --sampling-method euler_ancestral_simple was told "euler_ancestral_simple here is euler": an ancestral sampler
    # adds fresh noise at each step, which euler does not, so euler is only the closest (as for euler_ancestral)
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a fox", "--sampling-method", typed, "--dry-run"])
    error = capsys.readouterr().err
    assert said in error and "--flow-shift" in error, error


@pytest.mark.parametrize("typed", ["compile=False", "compile=None", "yes=OFF", "compile=Disabled"])
def test_a_switch_given_an_off_value_in_capitals_is_told_to_leave_it_out(capsys, typed):
    # A config file or Python's repr writes False and None: off values as much as false and none; told the switch
    # (`--compile`), the user would turn on what was meant off.
    hint = _hint(_refusal(capsys, [typed]), typed)
    flag = "--" + typed.split("=")[0]
    assert hint.startswith(f"{flag} is a switch that takes no value, and off unless given: leave it out"), hint


@pytest.mark.parametrize(
    "argv",
    [
        ["--high-noise-steps", "10"],
        ["--high-noise-cfg-scale", "3.5"],
        ["--high-noise-sampling-method", "euler"],
        ["--high_noise_scheduler", "simple"],
    ],
)
def test_stable_diffusion_cpps_high_noise_settings_are_told_the_one_set_of_settings_here(capsys, argv):
    # A Wan 2.2 command of stable-diffusion.cpp's: these got "unrecognized arguments" and nothing to type instead.
    hint = _hint(_refusal(capsys, argv), argv[0])
    assert hint.startswith("Motif-Video has one transformer, so the high-noise steps have no settings apart"), hint
    assert all(flag in hint for flag in ("--steps", "--cfg-scale", "--sampling-method")), hint


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--qwen2vl", "q.safetensors"], "did you mean --text-encoder?"),
        (["--llm_vision", "v.safetensors"], "the image encoder (SigLIP) is part of Motif-Video's text encoder"),
        (["--qwen2vl_vision", "v.safetensors"], "the image encoder (SigLIP) is part of Motif-Video's text encoder"),
        (["--control-net-cpu"], "no ControlNet or reference images"),
        (["--increase-ref-index"], "no ControlNet or reference images"),
        (["--disable-auto-resize-ref-image"], "no ControlNet or reference images"),
    ],
)
def test_more_of_stable_diffusion_cpps_encoder_and_reference_flags_are_told_what_to_use(capsys, argv, said):
    # They got "unrecognized arguments" and nothing to type instead.
    hint = _hint(_refusal(capsys, argv), argv[0])
    assert hint.startswith(said), hint


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # VAE Decode (Tiled)'s widgets: the VAE here tiles by itself, as the plan needs
        (["--tile_size", "256"], "memory is planned here, not switched: a run streams, offloads to the CPU and tiles"),
        (["temporal_overlap=8"], "memory is planned here, not switched: a run streams, offloads to the CPU and tiles"),
        # LoraLoader's strength_clip, KSamplerAdvanced's partial sampling, SaveWEBM's codec
        (["--strength_clip", "1.0"], "a LoRA changes the transformer only: its strength goes after its file"),
        (["--start_at_step", "0"], "a run samples all --steps steps, from noise to the video"),
        (["return_with_leftover_noise=disable"], "a run samples all --steps steps, from noise to the video"),
        (["--codec", "vp9"], "the format is the extension of -o"),
    ],
)
def test_comfyuis_tiled_decode_lora_advanced_sampler_and_save_widgets_are_told_what_to_use(capsys, argv, said):
    # They got "unrecognized arguments" alone, or, typed without dashes, "a prompt goes after -p, in quotes".
    hint = _hint(_refusal(capsys, argv), argv[0])  # typed without dashes, the hint names it with its value
    assert hint.startswith(said), hint
