"""`motif-lite verify` on a tiny checkpoint saved by diffusers: ours and the reference match at every stage
(safetensors and a GGUF made by our quantizer); one of our settings forced wrong is named at its stage; without
diffusers the command says how to install it."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
from help_text import examples, help_text  # noqa: E402
from tiny_pipeline import make_tiny_checkpoint, official_apg  # noqa: E402

from motif_lite import cli  # noqa: E402

SMALL = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2", "-n", "blurry, static", "--device", "cpu"]
STAGES = ("text", "transformer", "guidance", "vae", "frames")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def tiny(shared_checkpoint_and_gguf) -> tuple[Path, Path]:
    return shared_checkpoint_and_gguf  # read only, as conftest's shared_checkpoint_and_gguf says


def run_verify(capsys, *args: str) -> tuple[int, list[str]]:
    code = cli.main(["verify", *args, *SMALL])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out.splitlines()


def test_help_has_examples_and_says_the_exit_codes_and_memory(capsys, monkeypatch):
    # It had no example, and a description of one line of 196 columns (the weight files' paragraph: 292); that
    # every command's help fits and its examples parse: tests/test_cli.py.
    out = help_text(capsys, monkeypatch, cli.main, ["verify"])
    found = examples(out, "motif-lite verify")
    assert len(found) >= 3 and any("--gguf" in example for example in found), out
    assert "Exit code 0: every stage matches; 1: a mismatch" in out and "35 GB of RAM in fp32 on the CPU" in out


def test_help_offers_no_text_encoder_gguf_verify_refuses(capsys, monkeypatch):
    # --text-encoder's help said "or a .gguf file (as --text-encoder-gguf)", as run's does; verify refuses one.
    out = " ".join(help_text(capsys, monkeypatch, cli.main, ["verify"]).split())
    assert "--text-encoder-gguf" not in out and "model.safetensors), not a .gguf file (diffusers reads none)" in out


def stage_lines(lines: list[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in lines if line.split() and line.split()[0] in STAGES}


def test_tiny_checkpoint_matches_at_every_stage(tiny, capsys):
    code, lines = run_verify(capsys, "-m", str(tiny[0]))
    stages = stage_lines(lines)
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert list(stages) == list(STAGES) and all(" match " in line for line in stages.values())
    assert "max difference" in stages["frames"]


def test_each_stage_is_reported_on_stderr_as_it_ends(tiny, capsys):
    # On the real weights the comparison takes minutes: the user sees where it is before the final table.
    assert cli.main(["verify", "-m", str(tiny[0]), "--force", "apg_eta=0", *SMALL]) == 1
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("verify: ")]
    assert progress == [
        f"verify: loading both pipelines from {tiny[0]} ...",
        "verify: stage 1/5 text: match; next: transformer",
        "verify: stage 2/5 transformer: match; next: guidance",
        "verify: stage 3/5 guidance: MISMATCH; next: vae",
        "verify: stage 4/5 vae: match; next: frames",
        "verify: stage 5/5 frames: MISMATCH",
    ], progress


def test_a_mistake_in_the_flags_or_files_is_said_before_loading_is(tiny, tmp_path, capsys):
    # "verify: loading both pipelines ..." came first: the user waited for the loads, then read the error.
    for flags in (["-m", str(tmp_path / "nothere")], ["-m", str(tiny[0]), "--gguf", str(tmp_path / "none.gguf")]):
        assert cli.main(["verify", *flags, *SMALL]) == cli.EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert err.startswith("error: no such ") and "loading" not in err, err


def test_the_checkpoints_own_guider_matches(tmp_path, capsys):
    # A guider unlike the built-in APG (eta 0, base uncond): ours reads it from guider/guider_config.json.
    make_tiny_checkpoint(tmp_path, guider=official_apg(eta=0.0, use_original_formulation=False, guidance_scale=5.0))
    code, lines = run_verify(capsys, "-m", str(tmp_path))
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert "eta 0" in stage_lines(lines)["guidance"]


@pytest.mark.parametrize(
    ("force", "stage"),
    [
        ("max_prompt_tokens=4", "text"),
        ("rope_theta=1", "transformer"),
        ("apg_eta=0", "guidance"),
        ("latents_mean_shift=0.5", "vae"),
    ],
)
def test_a_setting_forced_wrong_is_named_at_its_stage(tiny, capsys, force, stage):
    code, lines = run_verify(capsys, "-m", str(tiny[0]), "--force", force)
    stages = stage_lines(lines)
    assert code == 1 and lines[-1] == f"verdict: mismatch at {stage}", lines
    assert "MISMATCH" in stages[stage]
    assert all(" match " in stages[earlier] for earlier in STAGES[: STAGES.index(stage)])


def test_the_bf16_limits_catch_errors_of_realistic_size(tiny, capsys):
    # In bf16 on the CPU the transformer, guidance and VAE stages match diffusers exactly (difference 0), so the
    # controls above, fp32 and gross, never show that the bf16 limits (kept wide for GPU kernels, which sum in
    # other orders) catch anything. APG without its eta term measured 0.042 at guidance (limit 3e-2) and a latents
    # mean off by 0.05 measured 0.052 at the VAE (limit 2e-2). The transformer's limit is not shown to catch a
    # realistic error on this tiny model: even rope_theta=100 (the official 10000) moved it by only 0.02.
    forces = ["--force", "apg_eta=0", "--force", "latents_mean_shift=0.05"]
    code, lines = run_verify(capsys, "-m", str(tiny[0]), "--dtype", "bf16", *forces)
    stages = stage_lines(lines)
    assert code == 1 and lines[-1] == "verdict: mismatch at guidance", lines
    assert "MISMATCH" in stages["guidance"] and "MISMATCH" in stages["vae"], lines
    assert " match " in stages["text"] and " match " in stages["transformer"], lines


def test_gguf_transformer_matches_diffusers_gguf_loader(tiny, capsys):
    pytest.importorskip("accelerate")  # diffusers' GGUF loader needs it (the verify extra installs it)
    root, gguf = tiny
    code, lines = run_verify(capsys, "-m", str(root), "--gguf", str(gguf))
    assert code == 0 and lines[-1] == "verdict: match", lines
    code, lines = run_verify(capsys, "-m", str(root), "--gguf", str(gguf), "--force", "rope_theta=1")
    assert code == 1 and lines[-1] == "verdict: mismatch at transformer", lines


def test_a_reference_scheduler_without_shift_is_followed_with_a_note(tmp_path, capsys):
    # diffusers' default shift 1.0 in scheduler_config.json: motif-lite would use 15. Both sides use the reference's
    # shift (a different default is a choice, not a bug) and a note says so; the stages match.
    make_tiny_checkpoint(tmp_path, shift=1.0)
    code, lines = run_verify(capsys, "-m", str(tmp_path))
    assert code == 0 and lines[-1] == "verdict: match", lines
    notes = [line for line in lines if line.startswith("note: the reference's scheduler shifts by 1")]
    assert len(notes) == 1 and "motif-lite by 15" in notes[0] and notes[0].endswith("both sides use 1"), lines


def test_the_dtype_flag_runs_both_pipelines_in_it(tiny, capsys):
    code, lines = run_verify(capsys, "-m", str(tiny[0]), "--dtype", "bf16")
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert lines[0].endswith("; cpu, bfloat16, 48x32x9, 2 steps, seed 0"), lines[0]
    assert " 2e-02 " in stage_lines(lines)["text"]  # the bfloat16 tolerances


def test_relative_difference_is_relative_to_the_reference():
    from motif_lite.verify import relative_difference

    reference = torch.tensor([3.0, 4.0])  # norm 5
    assert relative_difference(reference + torch.tensor([0.0, 1.0]), reference) == pytest.approx(0.2)
    assert relative_difference(reference * 2, reference) == pytest.approx(1.0)
    assert relative_difference(reference[:1], reference) == math.inf  # shapes differ


def test_without_diffusers_it_says_how_to_install(tiny, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers now raises ImportError
    assert cli.main(["verify", "-m", str(tiny[0]), *SMALL]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "diffusers, which is not installed" in err and 'pip install -e ".[verify]"' in err


class _BrokenDiffusers(types.ModuleType):
    """A diffusers whose pipeline import fails, as diffusers reports it (a RuntimeError from its lazy module)."""

    __version__ = "0.42.1"

    def __getattr__(self, name):
        raise RuntimeError(f"Failed to import diffusers.pipelines.{name}:\nNo module named 'accelerate.utils'")


def _old_diffusers() -> types.ModuleType:
    old = types.ModuleType("diffusers")  # imports, but from before MotifVideoPipeline
    old.__version__ = "0.35.2"
    return old


@pytest.mark.parametrize(
    "diffusers, message",
    [
        (_old_diffusers, "the installed diffusers 0.35.2 has no MotifVideoPipeline; verify needs diffusers >= 0.42.1"),
        (lambda: _BrokenDiffusers("diffusers"), "diffusers 0.42.1 cannot import its MotifVideoPipeline (No module"),
    ],
)
def test_an_unusable_diffusers_is_named_before_anything_loads(tiny, capsys, monkeypatch, diffusers, message):
    """It used to surface after our pipeline had loaded (minutes on the real weights): an old diffusers as
    "diffusers cannot load the checkpoint", a broken one as a traceback."""
    from motif_lite import pipeline

    monkeypatch.setitem(sys.modules, "diffusers", diffusers())
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    assert cli.main(["verify", "-m", str(tiny[0]), *SMALL]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_gguf_without_accelerate_is_named_before_anything_loads(tiny, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setitem(sys.modules, "accelerate", None)  # import accelerate now raises ImportError
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    for flag in ("--gguf", "--diffusion-model"):  # a transformer GGUF given either way
        assert cli.main(["verify", "-m", str(tiny[0]), flag, str(tiny[1]), *SMALL]) == cli.EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert "diffusers' GGUF loader, which needs accelerate: pip install" in err, err


def test_a_text_encoder_gguf_is_refused_with_the_reason(tiny, tmp_path, capsys):
    """--text-encoder-gguf (as in run and check) was "unrecognized: did you mean --text-encoder?", which refuses a
    GGUF in turn: the user went in a circle."""
    for flag in ("--text-encoder-gguf", "--text-encoder"):
        assert cli.main(["verify", "-m", str(tiny[0]), flag, str(tmp_path / "te.gguf"), *SMALL]) == 2
        err = capsys.readouterr().err
        assert "diffusers, which cannot read a text encoder GGUF" in err and "did you mean" not in err, err


def test_bad_force_is_a_user_error(tiny, capsys):
    assert cli.main(["verify", "-m", str(tiny[0]), "--force", "theta=1", *SMALL]) == cli.EXIT_USER_ERROR
    assert "use NAME=VALUE with NAME one of rope_theta" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("force", "said"),
    [
        ("rope_theta=-1", "--force 'rope_theta=-1': rope_theta must be > 0"),
        ("rope_theta=0", "--force 'rope_theta=0': rope_theta must be > 0"),
        ("rope_theta=nan", "--force 'rope_theta=nan': 'nan' is not a finite number"),
        ("latents_mean_shift=inf", "--force 'latents_mean_shift=inf': 'inf' is not a finite number"),
        ("max_prompt_tokens=0", "--force 'max_prompt_tokens=0': max_prompt_tokens must be > 0"),
    ],
)
def test_a_forced_value_no_run_can_take_is_a_user_error_before_anything_loads(tiny, capsys, monkeypatch, force, said):
    # rope_theta=-1 was refused by the transformer's config only after both pipelines had loaded (minutes on the
    # real weights); max_prompt_tokens=0 ran with the official limit, so the negative control controlled nothing.
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    assert cli.main(["verify", "-m", str(tiny[0]), "--force", force, *SMALL]) == cli.EXIT_USER_ERROR
    assert said in capsys.readouterr().err


class _Loaded(Exception):
    pass


def _stop_at_load(*args, **kwargs):
    raise _Loaded


@pytest.mark.parametrize(("available", "warned"), [(1 << 20, True), (1 << 40, False)])
def test_ram_short_of_both_pipelines_on_the_cpu_is_said_before_they_load(tiny, capsys, monkeypatch, available, warned):
    """35 GB in float32 on the real weights: on a 16 GB machine the system killed verify part-way through loading,
    with no word of why."""
    from motif_lite import pipeline
    from motif_lite.runtime import host_memory

    monkeypatch.setattr(host_memory, "available_ram", lambda: available)
    monkeypatch.setattr(pipeline, "load_pipeline", _stop_at_load)
    with pytest.raises(_Loaded):
        cli.main(["verify", "-m", str(tiny[0]), *SMALL])
    err = capsys.readouterr().err
    said = (
        "warning: verify holds both pipelines in RAM on the CPU: about ",
        " of weights in float32 (the text encoder once, the transformer twice), more than the 1.0 MiB available now, "
        "so the system may stop it part-way without a word: --dtype bf16 about halves it; close other programs, or ",
    )
    assert all(part in err for part in said) == warned, err


def test_on_windows_the_ram_note_says_what_windows_does_when_memory_runs_out(tiny, monkeypatch):
    # Windows reads the memory available too (GlobalMemoryStatusEx) and kills no process for want of it: it pages
    # to disk and then refuses allocations, so "the system may stop it part-way without a word" was Linux' story.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.runtime import host_memory
    from motif_lite.verify import refusals

    monkeypatch.setattr(host_memory, "available_ram", lambda: 1 << 20)
    monkeypatch.setattr(sys, "platform", "win32")
    note = refusals.over_available_ram(locate_sources(tiny[0]), torch.float32)
    assert "so Windows may move it to the page file, where it crawls, or stop it part-way for want of memory" in note
    assert "without a word" not in note


def test_the_ram_note_counts_the_transformer_twice_in_the_dtype_asked_for_on_the_cpu_only(tiny, capsys, monkeypatch):
    # Just below the text encoder and two transformers in fp32: said, with their size. In bf16 (any spelling --dtype
    # takes) no advice to use bf16. On a GPU the weights are not held in RAM: nothing said.
    from motif_lite import pipeline, preflight
    from motif_lite.checkpoint import locate_sources
    from motif_lite.runtime import host_memory
    from motif_lite.sizes import model_sizes
    from motif_lite.units import memory_size

    sizes = model_sizes(locate_sources(tiny[0]), torch.float32)
    needed = sizes.text_encoder_bytes + 2 * sizes.transformer_bytes
    monkeypatch.setattr(host_memory, "available_ram", lambda: needed - 1)
    monkeypatch.setattr(pipeline, "load_pipeline", _stop_at_load)
    with pytest.raises(_Loaded):
        cli.main(["verify", "-m", str(tiny[0]), *SMALL])
    assert f"about {memory_size(needed)} of weights in float32" in capsys.readouterr().err
    monkeypatch.setattr(host_memory, "available_ram", lambda: 1 << 20)
    with pytest.raises(_Loaded):
        cli.main(["verify", "-m", str(tiny[0]), *SMALL, "--dtype", "BFloat16"])
    err = capsys.readouterr().err
    assert "of weights in bfloat16" in err and "--dtype bf16 about halves it" not in err, err
    monkeypatch.setattr(preflight, "preflight", lambda *a, **kw: (locate_sources(tiny[0]), torch.device("cuda")))
    with pytest.raises(_Loaded):
        cli.main(["verify", "-m", str(tiny[0]), *SMALL])
    assert "verify holds both pipelines in RAM" not in capsys.readouterr().err


def test_a_bad_size_is_a_user_error_before_anything_loads(tiny, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    for flags, message in (
        (["-W", "100"], "--width (in Python width) 100 is not a multiple of 16"),
        (["--steps", "0"], "steps must"),
    ):
        assert cli.main(["verify", "-m", str(tiny[0]), *SMALL, *flags]) == cli.EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_the_device_asked_for_is_checked_before_anything_loads(tiny, capsys, monkeypatch):
    from motif_lite import pipeline

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    assert cli.main(["verify", "-m", str(tiny[0]), *SMALL, "--device", "cuda"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err, err


def test_missing_files_hint_repeats_the_verify_command(tiny, tmp_path, capsys):
    import shutil

    root = tmp_path / "ckpt"
    shutil.copytree(tiny[0], root)
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    assert cli.main(["verify", "-m", str(root), *SMALL]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"--include 'vae/*' --local-dir {root}" in err
    assert f"then run:\n  motif-lite verify -m {root} -W 48" in err and "motif-lite run" not in err, err


def test_a_truncated_prompt_is_warned_about_once(tiny, capsys):
    # The text and frames stages both encode the prompts; the user hears about the truncation once.
    code = cli.main(["verify", "-m", str(tiny[0]), *SMALL, "-p", "a red fox " * 300])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "dropped the last" in line]
    assert code == 0 and captured.out.splitlines()[-1] == "verdict: match", captured.out
    assert len(warnings) == 1 and warnings[0].startswith("warning: prompt is "), warnings


def test_the_frame_count_is_rounded_as_run_rounds_it(tiny, capsys):
    # The user's case: --video-frames 8 ran as "8" with no note (run says: frames 8 is not 4k+1; using 9).
    flags = ["-W", "32", "-H", "32", "--video-frames", "8", "--steps", "1", "-n", "blurry", "--device", "cpu"]
    code = cli.main(["verify", "-m", str(tiny[0]), *flags])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.splitlines()[-1] == "verdict: match", captured.out
    note = "note: --video-frames (in Python frames) 8 is not 4k+1; using 9"
    assert captured.err.startswith(f"{note}\nverify: loading"), captured.err
    assert ", 32x32x9, 1 steps," in captured.out.splitlines()[0], captured.out


def test_seed_minus_one_is_a_random_seed_both_pipelines_use(tiny, capsys):
    # As `run -s -1` (stable-diffusion.cpp's -1): a seed is drawn and named. Our side drew one and the reference
    # seeded its generator with -1, so the frames stage told a mismatch that was no bug.
    from motif_lite.request import MAX_SEED

    flags = ["-W", "32", "-H", "32", "--video-frames", "9", "--steps", "1", "--device", "cpu", "-s", "-1"]
    code = cli.main(["verify", "-m", str(tiny[0]), *flags])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[-1] == "verdict: match", out
    seed = int(out[0].rsplit(", seed ", 1)[1])
    assert 0 <= seed <= MAX_SEED


def test_a_seed_run_refuses_is_refused_as_run_refuses_it(capsys):
    errors = []
    for argv in (["run", "-p", "a fox"], ["verify"]):
        with pytest.raises(SystemExit):
            cli.main([*argv, "-s", "randomize"])
        errors.append(capsys.readouterr().err.splitlines()[-1].split(": error: ", 1)[1])
    assert errors[0] == errors[1] and "-1 for a random seed" in errors[0], errors


def test_the_settings_resolve_as_a_runs_request_does():
    from motif_lite.request import RequestError
    from motif_lite.verify import VerifySettings, resolve_verify_settings

    rounded = (VerifySettings(frames=13), ["--video-frames (in Python frames) 11 is not 4k+1; using 13"])
    assert resolve_verify_settings(VerifySettings(frames=11)) == rounded
    with pytest.raises(RequestError, match="--height \\(in Python height\\) 40 is not a multiple of 16"):
        resolve_verify_settings(VerifySettings(height=40))


def test_a_local_folder_without_a_config_diffusers_needs_is_refused_before_loading(tiny, tmp_path, capsys, monkeypatch):
    # A run takes the official values for a missing guider config; diffusers' pipeline cannot load without it.
    import shutil

    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    root = tmp_path / "ckpt"
    shutil.copytree(tiny[0], root, ignore=shutil.ignore_patterns("guider"))
    assert cli.main(["verify", "-m", str(root), *SMALL]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "diffusers' MotifVideoPipeline, which loads every component model_index.json lists" in err, err
    assert f"hf download Motif-Technologies/Motif-Video-2B --include 'guider/*' --local-dir {root}" in err


def _damage(checkpoint: Path, component: str, tensor: str) -> None:
    """Fill one tensor of `component`'s weights with NaN, as a damaged download can (the file stays readable)."""
    from safetensors.torch import load_file, save_file

    (file,) = (checkpoint / component).glob("*.safetensors")
    weights = load_file(file)
    weights[tensor] = torch.full_like(weights[tensor], math.nan)
    save_file(weights, file, metadata={"format": "pt"})


def test_damaged_weights_give_a_verdict_that_blames_the_files_not_motif_lite(tmp_path, capsys):
    # The user's case: a damaged transformer file ended verify with an error and no table, telling them to run
    # verify; the stages said MISMATCH although the reference read the same bad weights.
    make_tiny_checkpoint(tmp_path)
    _damage(tmp_path, "transformer", "proj_out.bias")
    code = cli.main(["verify", "-m", str(tmp_path), *SMALL])
    captured = capsys.readouterr()
    lines, stages = captured.out.splitlines(), stage_lines(captured.out.splitlines())
    assert code == 1 and list(stages) == list(STAGES), captured.out  # the whole table, the documented code
    assert lines[-1] == (
        "verdict: inf/NaN at transformer, in the reference too: both sides read the same files, so the "
        "transformer's weight file is likely damaged (not motif-lite): download it again"
    ), lines[-1]
    assert " match " in stages["text"] and " match " in stages["vae"]  # what the damage does not reach
    for stage in ("transformer", "guidance", "frames"):
        assert " inf/NaN " in stages[stage] and "(inf/NaN on both sides" in stages[stage], stages[stage]
    assert "ours: the latents after step 1 of 2 hold inf or NaN" in stages["frames"]
    assert "verify: stage 2/5 transformer: inf/NaN on both sides; next: guidance" in captured.err
    assert "error:" not in captured.err and "Traceback" not in captured.err and "RuntimeWarning" not in captured.err


def test_inf_or_nan_on_one_side_is_a_mismatch_and_in_float16_points_at_its_range():
    from motif_lite.verify import StageResult, VerifyResult

    ours_only = StageResult("transformer", math.nan, 1e-4, "t = 1000.0", "ours")
    result = VerifyResult("header", [StageResult("text", 0.0, 1e-4), ours_only])
    assert result.lines()[-1] == "verdict: mismatch at transformer" and result.mismatch == "transformer"
    assert "MISMATCH  " in ours_only.line() and "(inf/NaN in motif-lite's output only; t = 1000.0)" in ours_only.line()
    assert ours_only.outcome == "MISMATCH (inf/NaN in motif-lite's output only)"
    # Both sides overflowing in float16 is its range, not damaged files.
    both = StageResult("transformer", math.nan, 3e-2, "", "both")
    verdict = VerifyResult("header", [both], dtype=torch.float16).lines()[-1]
    assert verdict.startswith("verdict: inf/NaN at transformer, in the reference too: float16's range"), verdict


def test_float16_runs_both_transformers_on_the_same_embeddings(tiny, capsys):
    # It stopped with a traceback at the transformer stage: a float16 run's text encoder stays in bfloat16, and
    # diffusers' float16 transformer was given its bfloat16 embeddings as they came.
    code, lines = run_verify(capsys, "-m", str(tiny[0]), "--dtype", "fp16")
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert lines[0].endswith("; cpu, float16, 48x32x9, 2 steps, seed 0"), lines[0]


def test_inf_or_nan_on_both_sides_in_float16_points_at_its_range(tmp_path, capsys):
    # The verdict's advice follows the dtype verify ran in (a float16 overflow is not a damaged file).
    make_tiny_checkpoint(tmp_path)
    _damage(tmp_path, "transformer", "proj_out.bias")
    code, lines = run_verify(capsys, "-m", str(tmp_path), "--dtype", "fp16")
    assert code == 1 and lines[-1].startswith("verdict: inf/NaN at transformer, in the reference too: float16's"), lines


def test_a_stage_names_the_side_whose_output_is_not_finite():
    from motif_lite.verify import TOLERANCES
    from motif_lite.verify.comparison import Comparison

    comparison = Comparison(None, None, None, None, torch.device("cpu"), TOLERANCES[torch.float32])
    finite, nan = torch.ones(3), torch.tensor([1.0, math.nan, 1.0])
    said = {"ours": "in motif-lite's output only", "reference": "in the reference's output only", "both": "both sides"}
    for ours, reference, side in ((nan, finite, "ours"), (finite, nan, "reference"), (nan, nan, "both")):
        stage = comparison.stage("vae", ours, reference)
        assert stage.not_finite == side and said[side] in stage.line() and not stage.matches, stage.line()
    assert comparison.stage("vae", finite, finite).not_finite == ""


def test_frames_the_reference_gives_as_inf_or_nan_are_said_as_its_side(monkeypatch):
    # Converted to uint8 as they were, NaN frames became a picture, and the stage did not say where they came from.
    import numpy as np
    from diffusers.video_processor import VideoProcessor

    from motif_lite.verify import TOLERANCES
    from motif_lite.verify.comparison import Comparison

    frames = np.full((9, 32, 48, 3), math.nan, dtype=np.float32)

    class Reference:  # diffusers' pipeline as `frames` calls it, with output_type="np"
        video_processor = VideoProcessor()

        def __call__(self, **kwargs) -> types.SimpleNamespace:
            return types.SimpleNamespace(frames=[frames])

    request = types.SimpleNamespace(height=32, width=48, frames=9, steps=2, seed=0)
    embeds = dict.fromkeys(("pe", "npe", "pm", "npm"))
    comparison = Comparison(None, Reference(), request, None, torch.device("cpu"), TOLERANCES[torch.float32], embeds)
    monkeypatch.setattr(Comparison, "_our_frames", lambda self: torch.zeros(9, 32, 48, 3, dtype=torch.float64))
    stage = comparison.frames()
    assert stage.not_finite == "reference" and not stage.matches, stage.line()
    assert "(inf/NaN in the reference's output only)" in stage.line(), stage.line()


class _Collecting(logging.Handler):
    """What a logger passes on (after its filters), as messages."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def passed_on(request) -> _Collecting:
    """Collects what the loggers of the reference's notices (transformers' import fallback, diffusers' guiders) pass
    on to their handlers, i.e. what the user would see."""
    collecting = _Collecting()
    for name in ("transformers.utils.import_utils", "diffusers.guiders.guider_utils"):
        logging.getLogger(name).addHandler(collecting)
        request.addfinalizer(lambda name=name: logging.getLogger(name).removeHandler(collecting))
    return collecting


def test_the_guiders_experimental_notice_is_not_shown(tiny, capsys, passed_on):
    # diffusers says it each time a guider is made: verify printed it, where a run prints no notice of diffusers.
    code, lines = run_verify(capsys, "-m", str(tiny[0]))
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert not any("Guiders are" in message for message in passed_on.messages), passed_on.messages


class _DiffusersImportingSiglip(types.ModuleType):
    """A diffusers whose pipeline import logs what transformers logs without torchvision (once per process, so the
    real one has been said before this test runs), and a message of its own that must still be shown."""

    __version__ = "0.42.1"

    def __getattr__(self, name):
        log = logging.getLogger("transformers.utils.import_utils")
        log.warning("`SiglipImageProcessor` requires torchvision (not installed); falling back to `...Pil`")
        log.warning("something else transformers says")
        return object()


def test_the_torchvision_fallback_notice_is_not_shown_and_other_messages_are(monkeypatch, passed_on):
    from motif_lite.verify.reference import import_diffusers

    monkeypatch.setitem(sys.modules, "diffusers", _DiffusersImportingSiglip("diffusers"))
    import_diffusers()
    assert passed_on.messages == ["something else transformers says"]


@pytest.mark.parametrize("name", ["comfy", 'it\'s $HOME `x` "y"'])  # the command is one the shell reads as is
def test_a_transformer_file_comfyui_saved_is_refused_before_anything_loads_with_the_command_that_strips_it(
    tiny, tmp_path, capsys, monkeypatch, name
):
    # motif-lite reads such a file, diffusers' from_pretrained does not: our pipeline loaded (minutes on the real
    # weights), then the reference's meta tensors ended it in a Traceback. The command's copy verifies.
    import shlex
    import subprocess

    from safetensors.torch import load_file, save_file

    from motif_lite import pipeline

    prefixed = tmp_path / f"{name}.safetensors"
    weights = load_file(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors")
    save_file({f"model.diffusion_model.{k}": v for k, v in weights.items()}, prefixed)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
        assert cli.main(["verify", "-m", str(tiny[0]), "--diffusion-model", str(prefixed), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{prefixed.resolve()}: every tensor name starts with 'model.diffusion_model.'" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    command = shlex.split(err.split("verify an unprefixed copy: ", 1)[1])
    assert command[0] == "python", command
    subprocess.run([sys.executable, *command[1:]], check=True)
    code, lines = run_verify(
        capsys, "-m", str(tiny[0]), "--diffusion-model", str(tmp_path / f"{name}-unprefixed.safetensors")
    )
    assert code == 0, lines


def test_a_reference_left_on_the_meta_device_is_a_verify_error_not_a_traceback(tiny, tmp_path, capsys, monkeypatch):
    # Weights diffusers does not take stay on the meta device; moving them to the device raised outside the try.
    from safetensors.torch import load_file, save_file

    from motif_lite import verify

    prefixed = tmp_path / "comfy.safetensors"
    weights = load_file(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors")
    save_file({f"model.diffusion_model.{k}": v for k, v in weights.items()}, prefixed)
    monkeypatch.setattr(verify, "refuse_comfy_prefixed", lambda transformer: None)  # reach diffusers' load
    code = cli.main(["verify", "-m", str(tiny[0]), "--diffusion-model", str(prefixed), *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "error: diffusers cannot load the checkpoint" in err and "meta tensor" in err, err


def test_running_out_of_device_memory_moving_the_reference_is_no_fault_of_the_checkpoint(tiny, capsys, monkeypatch):
    # Verify holds both pipelines: on a small GPU the reference's move runs out of memory, and that must not read
    # "diffusers cannot load the checkpoint" (the user would download good files again).
    import diffusers

    loaded = diffusers.MotifVideoPipeline.from_pretrained

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def reference_that_runs_out(*args, **kwargs):
        reference = loaded(*args, **kwargs)
        reference.transformer.to = out_of_memory
        return reference

    monkeypatch.setattr(diffusers.MotifVideoPipeline, "from_pretrained", reference_that_runs_out)
    code = cli.main(["verify", "-m", str(tiny[0]), *SMALL])
    err = capsys.readouterr().err
    assert code == cli.EXIT_OUT_OF_MEMORY and "Traceback" not in err, err
    assert "error: out of device memory: CUDA out of memory" in err and "cannot load the checkpoint" not in err, err


def test_a_scaled_fp8_file_comfyui_saved_is_refused_though_its_marker_has_no_prefix(
    tiny, tmp_path, capsys, monkeypatch
):
    # ComfyUI's scaled fp8 saves keep the older naming's `scaled_fp8` marker unprefixed: it is no weight, and with it
    # counted the file read as unprefixed, went on to load our pipeline, and diffusers then left every weight unloaded.
    import torch
    from safetensors.torch import load_file, save_file

    from motif_lite import pipeline

    prefixed = tmp_path / "comfy_fp8.safetensors"
    weights = load_file(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors")
    marker = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    save_file({**{f"model.diffusion_model.{k}": v for k, v in weights.items()}, **marker}, prefixed)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before checking"))
    assert cli.main(["verify", "-m", str(tiny[0]), "--diffusion-model", str(prefixed), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{prefixed.resolve()}: every tensor name starts with 'model.diffusion_model.'" in err, err


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # diffusers, on its NaN sigmas
def test_one_step_with_shift_terminal_is_told_the_steps_verify_takes(checkpoint, tmp_path, capsys, monkeypatch):
    # One step with the scheduler config's shift_terminal: every sigma NaN, diffusers' too. The refusal ended with
    # run's advice, "or --sampling-method dpm++2m", a flag verify does not have (it samples the config's scheduler).
    checkpoint = shutil.copytree(checkpoint, tmp_path / "terminal")
    config = checkpoint / "scheduler/scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "shift_terminal": 0.1}))
    from diffusers import FlowMatchEulerDiscreteScheduler

    reference = FlowMatchEulerDiscreteScheduler.from_pretrained(checkpoint / "scheduler")
    reference.set_timesteps(sigmas=[1.0])  # the pipeline's sigma table for one step
    assert torch.isnan(reference.sigmas[0])
    from motif_lite import pipeline

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before refusing"))
        code = cli.main(["verify", "-m", str(checkpoint), *SMALL, "--steps", "1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "shift_terminal" in err and "give --steps 2 or more" in err and "--sampling-method" not in err, err
    code, lines = run_verify(capsys, "-m", str(checkpoint))  # SMALL's --steps 2, the advice
    assert code == 0 and lines[-1] == "verdict: match", lines


def test_help_says_the_frame_count_is_4k_plus_1_and_rounded(capsys, monkeypatch):
    # It said "frames (default 9)", where run's says 4k+1: a user learnt of the rounding only from the note.
    out = " ".join(help_text(capsys, monkeypatch, cli.main, ["verify"]).split())
    assert "--video-frames VIDEO_FRAMES frames, 4k+1 (others are rounded as by run; default 9)" in out, out


# ------------------------------------------------------------------------------ verify --settings-from


MADE = ["-p", "a red fox", "-n", "blurry", "-s", "5", "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "2"]


def made_by_run(checkpoint: Path, folder: Path, *flags: str) -> Path:
    """The first frame of a video `run` made of the tiny checkpoint with MADE's settings and `flags`."""
    folder.mkdir()
    argv = ["run", "-m", str(checkpoint), *MADE, *flags, "--dtype", "fp32", "-o", str(folder / "a_%03d.png")]
    assert cli.main([*argv, "--device", "cpu", "--kernels", "torch", "--yes"]) == 0
    return folder / "a_000.png"


@pytest.fixture(scope="module")
def made(checkpoint, tmp_path_factory) -> Path:
    """A video of run's defaults but its flags (APG at the checkpoint's settings, euler at its shift)."""
    return made_by_run(checkpoint, tmp_path_factory.mktemp("made") / "plain")


def verify_args(*argv: str):
    args = cli.build_parser().parse_args(["verify", *argv])
    args.argv = ["verify", *argv]
    return args


def resolved_verify(checkpoint: Path, *argv: str):
    """What verify runs for `argv`: (its settings, its notes, the settings our pipeline resolves on both sides)."""
    from motif_lite.cli.verify import verify_settings
    from motif_lite.io.settings_file import read_settings
    from motif_lite.preflight import preflight
    from motif_lite.settings import resolve_settings
    from motif_lite.verify.file_settings import file_sampling
    from motif_lite.verify.settings import resolved

    args = verify_args("-m", str(checkpoint), *argv)
    stored = None if args.settings_from is None else read_settings(args.settings_from)
    settings, notes = verify_settings(args, stored)
    request, _ = resolved(settings)
    sources, _ = preflight(checkpoint, None, "cpu")
    if stored is not None:
        sources = file_sampling(stored, sources, request).sources(sources)
    return settings, notes, resolve_settings(request, sources.configs, sources.transformer)


def test_settings_from_resolves_as_the_same_flags_spelled_out(checkpoint, made):
    from motif_lite.version import VERSION

    # verify took -W -H --video-frames --steps -s -p -n but no --settings-from: a video's settings were retyped.
    from_file = resolved_verify(checkpoint, "--settings-from", str(made))
    spelled = resolved_verify(checkpoint, *MADE)
    assert from_file[0] == spelled[0] and from_file[0].seed == 5 and from_file[0].prompt == "a red fox"
    assert from_file[2].table() == spelled[2].table() and from_file[2].guidance == spelled[2].guidance
    assert from_file[1] == [
        f"settings from a_000.png (made by motif-lite {VERSION}): prompt, seed 5, size, steps, sampler, flow shift, "
        "guidance, negative prompt"
    ]


def test_a_flag_beside_settings_from_wins(checkpoint, made):
    settings, notes, _ = resolved_verify(checkpoint, "--settings-from", str(made), "--steps", "3", "-s", "7")
    assert (settings.steps, settings.seed, settings.width, settings.prompt) == (3, 7, 48, "a red fox")
    assert notes[0].endswith("; your flags instead of the file's: --seed, --steps"), notes


def test_the_files_guidance_and_sampler_are_both_sides(checkpoint, tmp_path):
    # Not the checkpoint's (APG at 8, euler at its shift 15): the file's UniPC at shift 3 and CFG at 4, on our side
    # through the configs and on diffusers' as the scheduler and guider classes built from them.
    file = made_by_run(checkpoint, tmp_path / "unipc", "--sampling-method", "unipc", "--flow-shift", "3",
                       "--guidance", "cfg", "--cfg-scale", "4")  # fmt: skip
    _, _, settings = resolved_verify(checkpoint, "--settings-from", str(file))
    assert (settings.sampler.value, settings.flow_shift.value) == ("unipc", 3.0)
    assert settings.guidance.value.scale == 4.0 and type(settings.guidance.value).__name__ == "CFGConfig"
    from diffusers import ClassifierFreeGuidance, UniPCMultistepScheduler

    from motif_lite.io.settings_file import read_settings
    from motif_lite.preflight import preflight
    from motif_lite.verify.file_settings import file_sampling
    from motif_lite.verify.settings import resolved

    stored = read_settings(file)
    request, _ = resolved(resolved_verify(checkpoint, "--settings-from", str(file))[0])
    reference = types.SimpleNamespace(register_modules=lambda **kw: reference.__dict__.update(kw))
    import diffusers

    file_sampling(stored, preflight(checkpoint, None, "cpu")[0], request).apply_to_reference(diffusers, reference)
    assert isinstance(reference.scheduler, UniPCMultistepScheduler) and reference.scheduler.config.flow_shift == 3
    assert isinstance(reference.guider, ClassifierFreeGuidance) and reference.guider.guidance_scale == 4


def test_a_file_made_by_run_verifies_end_to_end(checkpoint, tmp_path, capsys):
    file = made_by_run(checkpoint, tmp_path / "cfg4", "--cfg-scale", "4")
    capsys.readouterr()  # run's own output
    code = cli.main(["verify", "-m", str(checkpoint), "--settings-from", str(file), "--device", "cpu"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 0 and lines[-1] == "verdict: match" and "Traceback" not in captured.err, captured
    assert lines[0].endswith("; cpu, float32, 48x32x5, 2 steps, seed 5"), lines[0]
    assert "ours: APG scale 4," in stage_lines(lines)["guidance"]
    assert "Guiders are currently an experimental feature" not in captured.err


def edited(made: Path, folder: Path, **changes: object) -> Path:
    """A file motif-lite's writer wrote with `made`'s stored settings, `changes` made to them."""
    import numpy as np

    from motif_lite.io.settings_file import read_settings
    from motif_lite.io.video import write_video

    values = {**read_settings(made).values, **changes}
    return write_video(np.zeros((2, 16, 16, 3), np.uint8), folder / "edited.webp", 24, values)


def refused(capsys, checkpoint: Path, file: Path | str, monkeypatch) -> str:
    """verify --settings-from `file`'s one-line refusal, said before anything loads."""
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("verify loaded before refusing"))
    code = cli.main(["verify", "-m", str(checkpoint), "--settings-from", str(file), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in captured.err and not captured.out, captured
    lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "loading both pipelines" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"sampler": "dpm++2m"}, "sampled with dpm++2m (DPMSolverMultistepScheduler), which diffusers'"),
        (
            {"model": {"lora": ["style.safetensors:0.8"]}},
            "made with --lora style.safetensors:0.8 (verify takes no LoRA",
        ),
        ({"model": {"lora": [], "step_cache": 0.1}}, "made with --step-cache 0.1 (it skips transformer forwards"),
        ({"model": {"lora": [], "attention": "int8"}}, "made with --attention int8 (8-bit attention"),
        ({"extend": "clip.mp4"}, "goes on from the clip clip.mp4"),
        (  # the tiny checkpoint's scheduler shifts by a fixed 15: it cannot give the file's mu again
            {"flow_shift": None, "schedule": {"time_shift": "exponential", "mu": 0.5}},
            "sampled with dynamic shifting (exponential, mu 0.5) and this checkpoint's scheduler",
        ),
    ],
)
def test_what_diffusers_has_no_equivalent_of_is_refused_in_one_line(
    checkpoint, made, tmp_path, capsys, monkeypatch, changes, said
):
    line = refused(capsys, checkpoint, edited(made, tmp_path, **changes), monkeypatch)
    assert said in line, line
    if (
        "extend" not in changes and "schedule" not in changes
    ):  # what to type instead: the file's other settings as verify's flags
        assert line.endswith(f"motif-lite verify -m {checkpoint} --device cpu -W 48 -H 32 --video-frames 5 "
                             "--steps 2 -s 5 -p 'a red fox' -n 'blurry'"), line  # fmt: skip


def test_an_image_to_video_file_needs_its_first_frame(checkpoint, made, tmp_path, capsys, monkeypatch):
    line = refused(capsys, checkpoint, edited(made, tmp_path, image="first.png"), monkeypatch)
    assert "made image-to-video from first.png" in line and "give it again with -i PATH" in line, line


@pytest.mark.parametrize(("name", "said"), [("nothing.mp4", "no such file"), ("notes.txt", "no format motif-lite")])
def test_a_missing_or_unreadable_file_is_one_line(checkpoint, tmp_path, capsys, monkeypatch, name, said):
    (tmp_path / "notes.txt").write_text("a prompt")
    line = refused(capsys, checkpoint, tmp_path / name, monkeypatch)
    assert said in line, line


def test_an_unguided_file_is_unguided_on_both_sides(checkpoint, made, tmp_path):
    # guidance_config null (a run at a scale that changes nothing): the checkpoint's guider, disabled, on both sides.
    import diffusers

    from motif_lite.io.settings_file import read_settings
    from motif_lite.preflight import preflight
    from motif_lite.verify.file_settings import file_sampling
    from motif_lite.verify.settings import resolved

    file = edited(made, tmp_path, guidance_config=None)
    settings, _, ours = resolved_verify(checkpoint, "--settings-from", str(file))
    assert ours.guidance.value is None
    reference = types.SimpleNamespace(register_modules=lambda **kw: reference.__dict__.update(kw))
    sampling = file_sampling(read_settings(file), preflight(checkpoint, None, "cpu")[0], resolved(settings)[0])
    sampling.apply_to_reference(diffusers, reference)
    assert not reference.guider._enabled and type(reference.guider).__name__ == "AdaptiveProjectedGuidance"


def dynamic_sources(checkpoint: Path):
    """The tiny checkpoint's sources with a FlowMatchEuler scheduler config that shifts dynamically (its line's
    max_shift not diffusers' default, so that a config without it gives another mu)."""
    import dataclasses

    from motif_lite.preflight import preflight
    from motif_lite.sampling.schedule import dynamic_shift

    scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": True, "max_shift": 2.0}
    sources, _ = preflight(checkpoint, None, "cpu")
    configs = dataclasses.replace(
        sources.configs, scheduler=scheduler, dynamic=dynamic_shift(scheduler), scheduler_shift=None
    )
    return dataclasses.replace(sources, configs=configs)


def test_a_file_of_another_sampler_keeps_the_checkpoints_dynamic_shifting(checkpoint, made, tmp_path):
    # run applies the checkpoint's dynamic shifting to euler and unipc alike; verify built the file's unipc config
    # without it, and refused: "this checkpoint's scheduler/scheduler_config.json gives no dynamic shifting".
    import dataclasses

    import diffusers

    from motif_lite.io.settings_file import read_settings
    from motif_lite.pipeline.metadata import jsonable, stored_settings
    from motif_lite.settings import resolve_settings
    from motif_lite.verify.file_settings import file_sampling
    from motif_lite.verify.settings import resolved

    sources = dynamic_sources(checkpoint)
    settings, _, _ = resolved_verify(checkpoint, "--settings-from", str(made))
    request, _ = resolved(settings)
    ran = resolve_settings(dataclasses.replace(request, sampler="unipc"), sources.configs, sources.transformer)
    assert ran.schedule.time_shift == "exponential"  # the run the file records shifted dynamically
    file = edited(made, tmp_path, **jsonable(stored_settings(dataclasses.replace(request, sampler="unipc"), ran)))
    sampling = file_sampling(read_settings(file), sources, request)
    ours = resolve_settings(request, sampling.sources(sources).configs, sources.transformer)
    assert (ours.sampler.value, ours.schedule) == ("unipc", ran.schedule)
    reference = types.SimpleNamespace(register_modules=lambda **kw: reference.__dict__.update(kw))
    sampling.apply_to_reference(diffusers, reference)
    config = reference.scheduler.config  # the pipeline reads mu's line from its scheduler's config
    assert isinstance(reference.scheduler, diffusers.UniPCMultistepScheduler) and config.use_dynamic_shifting
    assert config.get("max_shift") == 2.0, config


def test_force_apg_eta_stays_on_our_side_with_a_file_older_than_guidance_config(checkpoint, made, tmp_path):
    # A file without guidance_config is guided by its guidance fields on the checkpoint's guider, which verify
    # resolved from the request carrying --force apg_eta: the forced eta went into diffusers' guider too, and the
    # negative control matched.
    import numpy as np

    from motif_lite.io.settings_file import read_settings
    from motif_lite.io.video import write_video
    from motif_lite.preflight import preflight
    from motif_lite.verify.file_settings import file_sampling
    from motif_lite.verify.settings import resolved

    without = {key: value for key, value in read_settings(made).values.items() if key != "guidance_config"}
    older = write_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "older.webp", 24, without)
    settings, _, _ = resolved_verify(checkpoint, "--settings-from", str(older))
    sources, _ = preflight(checkpoint, None, "cpu")
    forced, _ = resolved(settings, apg_eta=0.0)
    guider = file_sampling(read_settings(older), sources, forced).guider
    assert guider["eta"] == sources.configs.guider.guidance.eta != 0.0, guider


def test_a_refusals_command_keeps_the_weights_device_dtype_and_first_frame(checkpoint, made, tmp_path):
    # The command a refusal prints took -m and the file's size, steps, seed and prompts only: typed as printed, it
    # compared the checkpoint's own transformer for the --gguf given, on another device, or text-to-video for -i.
    import shlex

    from motif_lite.cli.verify import verify_settings
    from motif_lite.io.settings_file import read_settings
    from motif_lite.verify.reference import VerifyError

    file = edited(made, tmp_path, model={"lora": ["style.safetensors:0.8"]}, image="first.png")
    typed = ["-m", str(checkpoint), "--gguf", str(tmp_path / "my q4.gguf"), "--vae", "vae.safetensors",
             "--text-encoder", "te.safetensors", "--device", "cpu", "--dtype", "fp32", "-i", "first.png"]  # fmt: skip
    with pytest.raises(VerifyError) as refusal:
        verify_settings(verify_args(*typed, "--settings-from", str(file)), read_settings(file))
    said, _, command = str(refusal.value).rpartition(": motif-lite ")
    assert said.endswith("on the checkpoint's sampler and guidance without it"), said
    again, expected = cli.build_parser().parse_args(shlex.split(command)), verify_args(*typed)
    for dest in ("model", "gguf", "diffusion_model", "text_encoder", "vae", "device", "dtype", "image"):
        assert getattr(again, dest) == getattr(expected, dest), (dest, command)
    assert (again.width, again.video_frames, again.seed, again.prompt) == (48, 5, 5, "a red fox"), command


def test_an_image_to_video_file_of_the_server_names_its_first_frames_checksum(
    checkpoint, made, tmp_path, capsys, monkeypatch
):
    # A server's file keeps its upload's SHA-256 too: run names it, verify said only "the file keeps the image's
    # name only", which was not so.
    line = refused(capsys, checkpoint, edited(made, tmp_path, image="upload.png", image_sha256="ab" * 32), monkeypatch)
    assert line.endswith(f"give the first frame again with -i PATH (upload.png, sha256 {'ab' * 32})"), line


def test_a_files_shift_of_1_is_the_files_on_both_sides_without_a_note(checkpoint, tmp_path, capsys):
    # A file made with --flow-shift 1 reached our side as a scheduler config's shift 1.0, read as diffusers'
    # no-shift default: "ignoring shift 1.0 ... using 15", then "both sides use 1", two notes that contradict.
    file = made_by_run(checkpoint, tmp_path / "shift1", "--flow-shift", "1")
    capsys.readouterr()  # run's own output
    code = cli.main(["verify", "-m", str(checkpoint), "--settings-from", str(file), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.splitlines()[-1] == "verdict: match", captured
    said = captured.out + captured.err
    assert "ignoring shift 1.0" not in said and "both sides use" not in said, said


def test_a_refusals_command_keeps_a_prompt_with_line_ends_on_its_one_line(checkpoint, made, tmp_path, capsys,
                                                                         monkeypatch):  # fmt: skip
    # A prompt read from a file keeps its line ends: quoted as it was, the command broke the refusal into lines.
    file = edited(made, tmp_path, prompt="a red fox\nin the snow", model={"lora": ["style.safetensors:0.8"]})
    line = refused(capsys, checkpoint, file, monkeypatch)
    assert line.endswith("-p $'a red fox\\nin the snow' -n 'blurry'"), line  # bash's $'...' reads \n as the line end
