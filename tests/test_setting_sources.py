"""Where each setting came from, one provenance for every layer: the flag typed, else a file under the flags
(`--settings-from`'s video, `--resume`'s latents, `--extend`'s clip), else the checkpoint, else the official value.
`resolve_settings` takes it (`Given`) and every reader (the dry run's table, the run summary, `Settings`' own
sources) reads it there. Tiny checkpoint, CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from test_settings_from import SIZE, run_cli

from motif_lite import cli, load_pipeline
from motif_lite.checkpoint import locate_sources
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.cli.resume import resume_args
from motif_lite.cli.run_inputs import given_sources, run_inputs
from motif_lite.cli.run_request import request_from_args, take_clip_defaults
from motif_lite.cli.settings_from import settings_from_args
from motif_lite.io.video import write_video
from motif_lite.request import GenerationRequest
from motif_lite.settings import CHECKPOINT, DEFAULT, FILE, FLAG, Given, resolve_settings


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def rows(out: str) -> dict[str, tuple[str, str]]:
    """The settings table's rows of `out`: name -> (source, what follows it: the value and its origin)."""
    table = [line for line in out.splitlines() if line.startswith("  ") and len(line) > 25]
    return {line[2:14].strip(): (line[15:25].strip(), line[26:]) for line in table}


def parsed(*argv: str):
    """`motif-lite run`'s flags as the command parses them, with the command line they came from."""
    args = cli.build_parser().parse_args(["run", *argv])
    args.argv = ["run", *argv]
    return args


def settings_of(args, clip=None):
    """The settings a run of `args` resolves (on no checkpoint), with the sources the command knows."""
    request, _ = request_from_args(args).resolve(clip)
    return resolve_settings(request, CheckpointConfigs(), given=run_inputs(args).given())


# ------------------------------------------------------------------------------ the provenance itself


def test_a_value_a_file_gave_shows_as_from_the_file():
    request = GenerationRequest("fox", steps=8, sampler="dpm++2m").resolve()[0]
    given = Given(files={"steps": "settings.json", "sampler": "settings.json"})
    settings = resolve_settings(request, CheckpointConfigs(), given=given)
    # The Settings' own sources say so, not only the printed table: a file's sampler is not the user's flag.
    assert (settings.sampler.source, settings.sampler.origin) == (FILE, "settings.json")
    table = {name: setting for name, _, setting in settings.table()}
    assert (table["steps"].source, table["steps"].origin) == (FILE, "settings.json")
    assert settings.lines()[0].startswith("settings (flag: given by you; file: settings.json; checkpoint:")
    assert "  steps        file       8  (settings.json)" in settings.lines()


def test_a_flag_typed_over_a_file_value_shows_flag():
    request = GenerationRequest("fox", steps=50, cfg_scale=6.0, guidance="apg").resolve()[0]
    # The file held a scale and a method, and steps; the scale and the steps (at the official 50) were typed again.
    files = dict.fromkeys(["guidance", "cfg_scale", "steps"], "fox.mp4")
    given = Given(flags=frozenset({"steps", "cfg_scale"}), files=files)
    settings = resolve_settings(request, CheckpointConfigs(), given=given)
    table = {name: setting for name, _, setting in settings.table()}
    assert (table["steps"].source, table["steps"].origin) == (FLAG, "--steps over fox.mp4")
    assert (settings.guidance.source, settings.guidance.origin) == (FLAG, "--cfg-scale over fox.mp4")


def test_a_row_a_file_and_a_flag_gave_together_names_both():
    # An --extend clip gives the size and the rate, never the frames: the frames typed replace nothing of it.
    request = GenerationRequest("fox", width=64, height=48, frames=9, fps=12).resolve()[0]
    given = Given(flags=frozenset({"frames"}), files=dict.fromkeys(["width", "height", "fps"], "clip.mp4"))
    size = {name: s for name, _, s in resolve_settings(request, CheckpointConfigs(), given=given).table()}["size"]
    assert (size.source, size.origin) == (FILE, "clip.mp4; --video-frames")


def test_a_file_value_equal_to_the_default_still_shows_the_file():
    request = GenerationRequest("fox").resolve()[0]  # every value the official one
    settings = resolve_settings(request, CheckpointConfigs(), given=Given(files={"steps": "fox.mp4", "fps": "fox.mp4"}))
    table = {name: setting for name, _, setting in settings.table()}
    assert (table["steps"].source, table["size"].source, table["negative"].source) == (FILE, FILE, DEFAULT)


def test_without_what_the_command_knows_the_values_judge():
    # The Python API gives no `Given`: a field set is the caller's, an official value the default.
    settings = resolve_settings(GenerationRequest("fox", steps=8, sampler="unipc").resolve()[0], CheckpointConfigs())
    table = {name: setting.source for name, _, setting in settings.table()}
    assert (table["steps"], table["sampler"], table["negative"], table["guidance"]) == (FLAG, FLAG, DEFAULT, DEFAULT)


# ------------------------------------------------------------------------------ --settings-from


@pytest.fixture(scope="module")
def made(checkpoint, tmp_path_factory) -> Path:
    """The first frame of a 5-frame APG video of the tiny checkpoint, in PNG frames."""
    folder = tmp_path_factory.mktemp("made")
    flags = ["-p", "a red fox", "-s", "5", "--cfg-scale", "4", "--sampling-method", "unipc", *SIZE, "--dtype", "fp32"]
    code = cli.main(["run", "-m", str(checkpoint), *flags, "-o", str(folder / "a_%03d.png"), "--device", "cpu",
                     "--kernels", "torch", "--yes"])  # fmt: skip
    assert code == 0
    return folder / "a_000.png"


def test_settings_from_gives_its_file_as_the_source_of_what_it_gave(made):
    args = parsed("--settings-from", str(made), "--steps", "50")
    settings_from_args(args)
    settings = settings_of(args)
    table = {name: setting for name, _, setting in settings.table()}
    assert (settings.sampler.source, settings.sampler.origin) == (FILE, "a_000.png")
    assert (table["size"].source, table["size"].origin) == (FILE, "a_000.png")
    # --steps 50 typed over the file's 2: the user's, at the official value too.
    assert (table["steps"].source, table["steps"].origin) == (FLAG, "--steps over a_000.png")


def test_another_guidance_method_over_the_file_names_the_flag(checkpoint, made, capsys, no_weights):
    # --guidance cfg drops the file's APG parameters and keeps its scale: the row is the file's and the flag's. The
    # table said the file's alone (it named a flag only where it replaced a value the file kept).
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(made), "--guidance", "cfg",
                             "--dry-run")  # fmt: skip
    assert code == 0, err
    assert rows(out)["guidance"][0] == FILE
    assert rows(out)["guidance"][1].endswith("(a_000.png; --guidance)")


# ------------------------------------------------------------------------------ --extend


def make_clip(path: Path, width: int = 32, height: int = 32, fps: float = 24.0) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (9, height, width, 3), dtype=np.uint8)
    return write_video(pixels, path, fps)


def test_the_clip_is_the_source_of_the_size_it_gives(checkpoint, tmp_path, capsys, no_weights):
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=48, fps=12.0)
    dry_run = ["-m", str(checkpoint), "--extend", str(clip), "-o", str(tmp_path / "o.mp4"), "--dry-run"]
    code, out, err = run_cli(capsys, *dry_run)
    assert code == 0, err
    assert "file: clip.mp4;" in next(line for line in out.splitlines() if line.startswith("settings ("))
    assert rows(out)["size"] == (FILE, "64x48, 121 frames at 12 fps  (clip.mp4)")  # was "flag", judged by value
    code, out, err = run_cli(capsys, *dry_run, "--fps", "24")
    assert code == 0, err
    assert rows(out)["size"] == (FLAG, "64x48, 121 frames at 24 fps  (--fps over clip.mp4)")


def test_a_clip_of_the_official_size_and_rate_still_shows_the_clip(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", width=1280, height=736, fps=24.0)
    args = parsed("--extend", str(clip))
    clip = take_clip_defaults(args)
    size = {name: setting for name, _, setting in settings_of(args, clip).table()}["size"]
    assert (size.source, size.origin) == (FILE, "clip.mp4")  # was "default": the same values as the official ones


def test_the_settings_file_is_nearer_than_the_clip(made, tmp_path):
    # --settings-from's video fills the flags first: its size and rate are the ones used, and the source shown,
    # though the clip holds a size and rate too.
    clip = make_clip(tmp_path / "clip.mp4")
    args = parsed("--settings-from", str(made), "--extend", str(clip))
    settings_from_args(args)
    clip = take_clip_defaults(args)
    size = {name: setting for name, _, setting in settings_of(args, clip).table()}["size"]
    assert (size.source, size.origin) == (FILE, "a_000.png")


def test_the_run_summary_names_the_clip_too(checkpoint, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    code, out, err = run_cli(
        capsys,
        "-m",
        str(checkpoint),
        "-p",
        "the fox runs off",
        "--extend",
        str(clip),
        "--video-frames",
        "5",
        "--steps",
        "1",
        "--dtype",
        "fp32",
        "-o",
        str(tmp_path / "x.mp4"),
    )
    assert code == 0, err
    assert rows(out)["size"] == (FILE, "32x32, 5 frames at 24 fps  (clip.mp4; --video-frames)")  # the clip has none
    assert rows(out)["steps"][0] == FLAG and rows(out)["dtype"][0] == FLAG


# ------------------------------------------------------------------------------ --resume


@pytest.fixture(scope="module")
def stopped(checkpoint, tmp_path_factory) -> Path:
    """The latents file of a unipc run (fp32) stopped after step 1 of 3."""
    folder = tmp_path_factory.mktemp("stopped")
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    request = GenerationRequest("a fox", width=48, height=32, frames=9, steps=3, seed=3, sampler="unipc",
                                output=folder / "fox.mp4")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request, on_progress=stop)
    return folder / "fox.latents.safetensors"


def test_resume_gives_its_latents_file_as_the_source_of_what_it_gave(stopped, checkpoint):
    args = parsed("--resume", str(stopped))
    saved, _ = resume_args(args)
    request = GenerationRequest(**saved.request)
    settings = resolve_settings(request, locate_sources(args.model).configs, given=run_inputs(args).given())
    table = {name: setting for name, _, setting in settings.table()}
    assert (settings.sampler.source, settings.sampler.origin) == (FILE, "fox.latents.safetensors")
    assert (table["size"].source, table["steps"].source) == (FILE, FILE)
    assert settings.flow_shift.source in (CHECKPOINT, DEFAULT)  # the stopped run left it open: so does this one
    assert run_inputs(args).given().files["dtype"] == "fox.latents.safetensors"


def test_a_dtype_typed_again_on_resume_is_the_flags(stopped):
    args = parsed("--resume", str(stopped), "--dtype", "bf16")
    resume_args(args)
    given = run_inputs(args).given()
    assert "dtype" in given.flags and "dtype" not in given.files


def test_a_namespace_no_command_line_made_names_no_sources():
    # A caller's own Namespace (no argv: cli.main never saw it) typed no flags and named no files; asked for its
    # sources, RunInputs (which needs the command line to tell what was typed) raised a ValueError.
    assert given_sources(argparse.Namespace(flow_shift=30.0, steps=20)) == Given()
    typed = argparse.Namespace(flow_shift=30.0, steps=20, argv=["run", "--flow-shift", "30", "-p", "fox"])
    assert "flow_shift" in given_sources(typed).flags
