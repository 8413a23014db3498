"""The forty-second mutation pass's tests (docs/testing.md) of sampling/schedule.py, sampling/solvers.py,
io/staging.py, decoding.py and checkpoint.py: behaviours no test reached, each failing with the mutant that showed
the gap. Where a refused setting is a scheduler's, diffusers shows why: it builds no usable table from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.sampling import schedule_options, shift_from_scheduler_config


def test_a_shift_of_zero_in_the_scheduler_config_is_refused(tmp_path):
    # diffusers' FlowMatchEuler with shift 0 shifts every sigma to 0 (the first to NaN): no schedule to sample.
    reference = FlowMatchEulerDiscreteScheduler(shift=0.0)
    with np.errstate(invalid="ignore"):
        reference.set_timesteps(sigmas=np.linspace(1.0, 1 / 4, 4))
    assert not (reference.sigmas[:-1] > 0).any()
    path = tmp_path / "scheduler_config.json"
    for config in [{"shift": 0}, {"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 0.0}]:
        path.write_text(json.dumps(config))
        with pytest.raises(ConfigError, match="must be a positive number, got 0"):
            shift_from_scheduler_config(path)


def test_zero_training_timesteps_in_the_scheduler_config_are_refused():
    # diffusers cannot even build FlowMatchEuler with num_train_timesteps 0 (an empty table it indexes).
    with pytest.raises(IndexError):
        FlowMatchEulerDiscreteScheduler(num_train_timesteps=0)
    for class_name in ["FlowMatchEulerDiscreteScheduler", "UniPCMultistepScheduler"]:
        with pytest.raises(ConfigError, match="num_train_timesteps must be a positive integer, got 0"):
            schedule_options({"_class_name": class_name, "num_train_timesteps": 0})


def test_karras_and_exponential_sigmas_together_are_refused():
    # diffusers refuses the pair as it builds the scheduler: which spacing would apply is no one's guess.
    config = {"use_karras_sigmas": True, "use_exponential_sigmas": True}
    with pytest.raises(ValueError, match="Only one of"):
        FlowMatchEulerDiscreteScheduler(**config)
    with pytest.raises(ConfigError, match="only one of use_karras_sigmas and use_exponential_sigmas"):
        schedule_options(config)


def test_a_shift_terminal_of_one_is_refused():
    # diffusers stretches the sigmas so that the last is shift_terminal: at 1 every step stays at σ = 1 and the
    # last one jumps to 0, a single Euler step in disguise.
    reference = FlowMatchEulerDiscreteScheduler(shift=3.0, shift_terminal=1.0)
    with np.errstate(divide="ignore"):
        reference.set_timesteps(sigmas=np.linspace(1.0, 1 / 4, 4))
    assert torch.equal(reference.sigmas[:-1], torch.ones(4))
    with pytest.raises(ConfigError, match="shift_terminal must be a number between 0 and 1, got 1"):
        schedule_options({"shift_terminal": 1.0})
    assert schedule_options({"shift_terminal": 0.5}).shift_terminal == 0.5


@pytest.mark.parametrize("name", ["fox.mp4", "f_%03d.png"])
def test_a_write_that_fails_midway_leaves_no_partial_file_and_no_output(tmp_path, name):
    # A crash or Ctrl-C while writing: every staged file goes, and nothing stands under the name asked for.
    from motif_lite.io.staging import frame_file, is_frame_sequence, staged_output

    output = tmp_path / name
    with pytest.raises(KeyboardInterrupt), staged_output(output, 3) as staged:
        files = [frame_file(staged.partial, i) for i in range(3)] if is_frame_sequence(output) else [staged.partial]
        for file in files[:2]:  # stopped before the last frame
            file.write_bytes(b"part")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_png_sequence_that_cannot_be_moved_takes_no_fallback_name(tmp_path, monkeypatch):
    # The fallback (fox-new.mp4 beside a video open in a player) is for one file: a sequence's frames keep the
    # OS's error (in the one error that names the frame), not a FileNotFoundError about a `.partial-` pattern that
    # names no file.
    import os

    from motif_lite.io.staging import frame_file, staged_output

    replace = os.replace

    def in_use(source, target):  # the frames' names are in use; the fallback's move would go ahead
        if Path(target).name.startswith("f_"):
            raise PermissionError(13, "The process cannot access the file")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", in_use)
    with (
        pytest.raises(MotifLiteError, match=r"frame f_000\.png could not be put in place \(The process") as refused,
        staged_output(tmp_path / "f_%03d.png", 2, lambda p: tmp_path / "x") as staged,
    ):
        for i in range(2):
            frame_file(staged.partial, i).write_bytes(b"png")
    assert isinstance(refused.value.__cause__, PermissionError)
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []  # no fallback, no frame, no partial


def test_an_error_raised_while_handling_a_want_of_space_is_out_of_space(tmp_path):
    # Not `raise ... from`: a writer's own error raised in its `except` block keeps the OS's as its context only.
    import errno

    from motif_lite.io.staging import out_of_space

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("the encoder stopped")  # noqa: B904 (the context is what is tested)
    except RuntimeError as wrapped:
        assert wrapped.__cause__ is None and wrapped.__context__ is not None
        assert out_of_space(wrapped, tmp_path, lambda folder: 10**12)


def test_the_latents_of_a_run_stopped_while_sampling_are_sent_to_resume_not_decoded(tmp_path):
    # Decoding half-denoised latents would make a video of noise: the run has to go on first.
    from motif_lite.decoding import prepare_decode
    from motif_lite.io.latents import LatentsFileError, SavedLatents

    file = tmp_path / "fox.latents.safetensors"
    saved = SavedLatents(
        torch.zeros(1, 16, 3, 4, 6), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32", file=file, progress=(3, 9)
    )
    said = f"{re.escape(str(file))}: a run that stopped after step 3 of 9, not denoised yet: sample the rest with "
    said += re.escape("pipe.generate(GenerationRequest(**saved.request), resume=saved), which then writes the video")
    with pytest.raises(LatentsFileError, match=said) as refused:
        prepare_decode(saved, model=tmp_path / "no-checkpoint", download=False)
    assert "--resume" not in str(refused.value)  # a Python caller is told the Python way, not a command's flag


def test_decode_sends_a_stopped_runs_latents_to_run_resume_in_flags(tmp_path, capsys):
    # `motif-lite decode`'s user writes no Python: the way on is run's --resume, with the file, and nothing else.
    from motif_lite.cli import main as cli_main
    from motif_lite.io.latents import SavedLatents, save_latents

    file = save_latents(
        SavedLatents(torch.zeros(1, 16, 3, 4, 6), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32", progress=(3, 9)),
        tmp_path / "fox.latents.safetensors",
    )
    assert cli_main(["decode", str(file), "--device", "cpu", "-m", str(tmp_path / "no-checkpoint")]) == 2
    err = capsys.readouterr().err
    said = (
        f"a run that stopped after step 3 of 9, not denoised yet: sample the rest with motif-lite run --resume {file}"
    )
    assert said + ", which then writes the video" in err and "pipe.generate" not in err


@pytest.mark.parametrize("channels", [4, 48])
def test_latents_with_fewer_or_more_channels_than_the_vae_takes_are_refused(tmp_path, channels):
    # A VAE of 16 latent channels given another model's latents: more of them, or fewer, neither decodes.
    from motif_lite.decoding import check_latents_fit
    from motif_lite.io.latents import LatentsFileError, SavedLatents
    from motif_lite.vae.config import WanVAEConfig

    config = WanVAEConfig()
    shape = list(config.latent_shape(48, 32, 9))
    saved = SavedLatents(torch.zeros(shape), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32")
    check_latents_fit(saved, config)
    shape[1] = channels
    other = SavedLatents(torch.zeros(shape), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32")
    said = f"the latents have {channels} channels, but this VAE takes 16: .* checkpoint \\(-m, in Python model=\\)"
    with pytest.raises(LatentsFileError, match=said):
        check_latents_fit(other, config)


def test_the_clip_of_an_extension_is_joined_when_its_size_is_the_runs(tmp_path):
    # A 48x32 run from a 48x32 clip: the clip is used, not set aside as one of another size (its height and width
    # are not the run's width and height).
    import PIL.Image

    from motif_lite.decoding import _extended_clip
    from motif_lite.io.latents import SavedLatents

    for i in range(2):
        PIL.Image.new("RGB", (48, 32)).save(tmp_path / f"clip_{i:03d}.png")
    latents = torch.zeros(1, 16, 3, 4, 6)
    pattern = str(tmp_path / "clip_%03d.png")
    saved = SavedLatents(latents, tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32", clip=pattern)
    clip, notes = _extended_clip(saved)
    assert clip is not None and clip.size == (48, 32) and notes == ()
    tall = SavedLatents(latents, tmp_path / "fox.mp4", 32, 48, 9, 16.0, "float32", clip=saved.clip)
    clip, notes = _extended_clip(tall)
    assert clip is None and "it is 48x32 now, the run 32x48" in notes[0]


@pytest.mark.parametrize("vram", [0, -2.0, float("nan")])
def test_a_decode_from_python_with_no_positive_vram_is_refused_first(tmp_path, vram):
    # The CLI's parser refuses these; `prepare_decode` called from Python says so too, before the VAE is looked for,
    # in both spellings (it said only --vram, a flag a Python caller does not give).
    from motif_lite.decoding import prepare_decode
    from motif_lite.io.latents import SavedLatents

    saved = SavedLatents(torch.zeros(1, 16, 3, 4, 6), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32")
    with pytest.raises(ConfigError, match=r"--vram \(in Python vram_gib\) must be a positive number of GiB"):
        prepare_decode(saved, model=tmp_path / "no-checkpoint", device="cpu", vram_gib=vram, download=False)


def test_a_wrong_checkpoint_given_to_decode_is_not_said_to_be_the_runs(tmp_path):
    # -m given: its error is the user's folder's, not "the checkpoint ... of the run, as the latents file says".
    from motif_lite.decoding import prepare_decode
    from motif_lite.errors import CheckpointError
    from motif_lite.io.latents import SavedLatents

    saved = SavedLatents(
        torch.zeros(1, 16, 3, 4, 6), tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32", model=str(tmp_path / "gone")
    )
    with pytest.raises(CheckpointError) as given:
        prepare_decode(saved, model=tmp_path / "typo", device="cpu", download=False)
    assert str(tmp_path / "typo") in str(given.value) and "as the latents file says" not in str(given.value)
    with pytest.raises(CheckpointError, match=r"give its place now with -m or --vae \(in Python model= or vae_file=\)"):
        prepare_decode(saved, device="cpu", download=False)


def test_a_decode_over_the_clip_its_run_went_on_from_is_refused_first(tmp_path):
    # The clip's frames are read as the video is written: writing over them would lose the clip and the video.
    import PIL.Image

    from motif_lite.decoding import prepare_decode
    from motif_lite.io.latents import SavedLatents

    for i in range(2):
        PIL.Image.new("RGB", (48, 32)).save(tmp_path / f"clip_{i:03d}.png")
    pattern = tmp_path / "clip_%03d.png"
    latents = torch.zeros(1, 16, 3, 4, 6)
    saved = SavedLatents(latents, tmp_path / "fox.mp4", 48, 32, 9, 16.0, "float32", clip=str(pattern))
    with pytest.raises(ConfigError, match=r"the run went on from; give -o \(in Python output=\) another name"):
        prepare_decode(saved, pattern, model=tmp_path / "no-checkpoint", device="cpu", download=False)


def test_a_local_folder_needs_no_transformer_config_beside_a_transformer_file_of_yours():
    # Your transformer file with a local folder: the config is the official architecture's where the folder has
    # none (as with a GGUF); the text encoder's and the VAE's configs are still needed to read your files by.
    from motif_lite.checkpoint import required_files

    needed = required_files(linked={"transformer", "text_encoder", "vae"})
    assert not any(file.startswith("transformer/") for file in needed)
    assert {"text_encoder/config.json", "vae/config.json"} <= set(needed)


def test_the_configs_model_index_lists_are_those_of_components_it_sets(tmp_path):
    # diffusers' model_index.json writes [null, null] for a component a pipeline was saved without: no config to
    # ask for. One listed whose config is here is not missing either.
    from motif_lite.checkpoint import listed_configs

    index = {
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "guider": [None, None],
        "feature_extractor": ["transformers", "SiglipImageProcessor"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text("{}")
    assert listed_configs(tmp_path) == ["feature_extractor/preprocessor_config.json"]


def test_a_partly_prefixed_transformer_file_is_named_before_the_checkpoint_is_looked_for(tmp_path):
    # Read from its header with the user's other files, so that its one-line problem comes with the checkpoint's
    # problems (here: a folder that is not there), not after the checkpoint has downloaded. (A file whose every name
    # carries ComfyUI's prefix loads as it is: test_weight_files; one where only some do is neither layout.)
    from safetensors.torch import save_file

    from motif_lite.checkpoint import locate_sources
    from motif_lite.errors import CheckpointError

    prefixed = tmp_path / "merged.safetensors"
    save_file({"model.diffusion_model.proj_out.weight": torch.zeros(2, 2), "proj_out.bias": torch.zeros(2)}, prefixed)
    with pytest.raises(CheckpointError) as error:
        locate_sources(tmp_path / "no-checkpoint", weights={"transformer": prefixed}, download=False)
    assert f"{prefixed.resolve()}: 1 of its 2 weights' names start with 'model.diffusion_model.'" in str(error.value)
    assert "no-checkpoint" in str(error.value)


def test_a_truncated_vae_of_the_checkpoint_is_named_before_a_decode_loads_it(tmp_path):
    # `motif-lite decode` reads the VAE alone: its cut-short download is named with the fix, as a run names it.
    import os

    from safetensors.torch import save_file

    from motif_lite.checkpoint import locate_vae
    from motif_lite.errors import CheckpointError

    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan", "z_dim": 16}))
    weights = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    save_file({"decoder.conv_out.weight": torch.zeros(64, 64)}, weights)
    assert locate_vae(tmp_path, download=False) == tmp_path
    os.truncate(weights, weights.stat().st_size - 1000)
    with pytest.raises(CheckpointError, match="truncated.*download it again"):
        locate_vae(tmp_path, download=False)


def test_a_truncated_transformer_of_the_checkpoint_is_named_with_its_fix(tmp_path):
    # The transformer's safetensors are read tensor by tensor against the config: a cut-short download among them
    # is named as the other components' are, with how to download it again.
    import os

    from safetensors.torch import save_file

    from motif_lite.config import TransformerConfig
    from motif_lite.errors import CheckpointError
    from motif_lite.weight_checks import check_safetensors

    (tmp_path / "transformer").mkdir()
    weights = tmp_path / "transformer" / "diffusion_pytorch_model.safetensors"
    save_file({"proj_out.weight": torch.zeros(64, 64)}, weights)
    os.truncate(weights, weights.stat().st_size - 1000)
    with pytest.raises(CheckpointError, match="truncated.*; download it again"):
        check_safetensors(tmp_path, TransformerConfig())


def test_a_weight_file_beside_a_gguf_for_its_component_is_refused_from_python(tmp_path):
    # As the CLI refuses --diffusion-model with --gguf: the GGUF gives the transformer, so the file would go unread
    # without a word. Refused in Python's words before any file is read (neither exists here), for each component
    # a GGUF can give, and by `check_setup` too.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.checkup import check_setup
    from motif_lite.errors import CheckpointError
    from motif_lite.pipeline import load_pipeline

    file = tmp_path / "transformer.safetensors"
    with pytest.raises(ConfigError, match=r"^weights\['transformer'\] and gguf both give the transformer; keep one$"):
        load_pipeline(tmp_path / "no-checkpoint", tmp_path / "no.gguf", weights={"transformer": file}, device="cpu")
    with pytest.raises(ConfigError, match=r"^weights\['text_encoder'\] and text_encoder_gguf both give the text enc"):
        locate_sources(tmp_path, text_encoder_gguf=tmp_path / "te.gguf", weights={"text_encoder": file})
    with pytest.raises(ConfigError, match=r"^weights\['transformer'\] and gguf both"):
        check_setup(tmp_path, "Q4_K_M", weights={"transformer": file})
    # One component's file beside the other's GGUF is no pair: the checks go on (to the missing checkpoint).
    with pytest.raises(CheckpointError):
        locate_sources(tmp_path / "no-checkpoint", "Q4_K_M", weights={"vae": file}, download=False)
