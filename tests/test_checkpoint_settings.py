"""The checkpoint decides: a tiny checkpoint saved by diffusers with a non-default guider (APG eta 0, diffusers
formulation, scale 6), non-default rope_theta and decoder depth gives the reference pipeline's frames (fp32, at most
1/255 apart) through `motif-lite run`, through `run --gguf` with the GGUF file in another folder and no config beside
it, and through the Python API; CFG and disabled guiders too; flags override the checkpoint as documented. Negative
controls measure that ignoring the guider or the transformer config moves the frames far beyond the tolerance."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf_helpers import write_test_gguf
from tiny_pipeline import cfg_guider, make_tiny_checkpoint, official_apg
from video_frames import diffusers_frames, read_png_frames

from motif_lite import cli, load_pipeline
from motif_lite.checkpoint import locate_sources
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.sampling import APGConfig, CFGConfig, read_guider_config
from motif_lite.settings import CHECKPOINT, DEFAULT, FLAG, resolve_settings

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=48, height=32, frames=9, steps=3)
SEED = 11
# Everything an inferred config would get wrong: rope_theta (10000 assumed), the RoPE split (4, 14, 14 assumed for
# head dim 32) and, with no cross-attention to tell the decoder blocks apart, the decoder depth (all 3 assumed).
TRANSFORMER = dict(
    rope_theta=256.0, num_single_layers=3, num_decoder_layers=2, enable_text_cross_attention_single=False
)
GUIDER = dict(guidance_scale=6.0, eta=0.0, use_original_formulation=False)  # the official APG, otherwise


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("ckpt")
    return root, make_tiny_checkpoint(root, guider=official_apg(**GUIDER), transformer=TRANSFORMER, seed=3)


def reference_frames(reference, **replace) -> np.ndarray:
    if replace:
        reference = type(reference)(**{**reference.components, **replace})
        reference.set_progress_bar_config(disable=True)
    return diffusers_frames(reference, SIZE, SEED, prompt=PROMPT, negative_prompt=NEGATIVE)


@pytest.fixture(scope="module")
def reference(checkpoint) -> np.ndarray:
    return reference_frames(checkpoint[1])


@pytest.fixture(scope="module")
def gguf_file(checkpoint, tmp_path_factory) -> Path:
    """The reference transformer's weights as an F32 GGUF (exact), alone in a folder: no config beside it."""
    folder = tmp_path_factory.mktemp("elsewhere")
    state = checkpoint[1].transformer.state_dict()
    spec = {name: (t.numpy(), GGMLQuantizationType.F32, tuple(t.shape)) for name, t in state.items()}
    return write_test_gguf(folder / "tiny-F32.gguf", spec)


@pytest.fixture(scope="module")
def weightless(checkpoint, tmp_path_factory) -> Path:
    """The checkpoint without the transformer's weights: with --gguf only its transformer/config.json is needed."""
    root = tmp_path_factory.mktemp("weightless") / "ckpt"
    shutil.copytree(checkpoint[0], root)
    for file in (root / "transformer").glob("*.safetensors"):
        file.unlink()
    return root


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")


def generate(pipe, folder: Path, **overrides):
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, **SIZE, **overrides)
    result = pipe.generate(GenerationRequest(output=folder / "out_%03d.png", **settings))
    return read_png_frames(folder), result


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape == (SIZE["frames"], SIZE["height"], SIZE["width"], 3)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def assert_same_video(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ref.std() > 10, "degenerate reference video: the comparison would prove nothing"
    assert max_diff(ours, ref) <= 1  # 1/255


def run_cli(capsys, model: Path, output: Path, *extra: str) -> str:
    args = ["run", "-m", str(model), "-p", PROMPT, "-n", NEGATIVE, "-o", str(output), "-W", str(SIZE["width"])]
    args += ["-H", str(SIZE["height"]), "--video-frames", str(SIZE["frames"]), "--steps", str(SIZE["steps"])]
    args += ["-s", str(SEED), "--dtype", "fp32", "--device", "cpu", "--kernels", "torch", *extra]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def setting_line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


# ------------------------------------------------------------------------------ the reference's frames, three ways


def test_run_follows_the_checkpoint_guider_and_transformer_config(checkpoint, reference, tmp_path, capsys):
    out = run_cli(capsys, checkpoint[0], tmp_path / "out_%03d.png")
    assert_same_video(read_png_frames(tmp_path), reference)
    guidance = setting_line(out, "guidance")
    assert "checkpoint" in guidance and "eta 0" in guidance and "base uncond" in guidance and "scale 6" in guidance
    assert "guider/guider_config.json" in guidance
    assert "rope_theta 256" in setting_line(out, "transformer") and "2 decoder" in setting_line(out, "transformer")


def test_run_gguf_takes_the_transformer_config_from_the_checkpoint(weightless, gguf_file, reference, tmp_path, capsys):
    assert not (gguf_file.parent / "config.json").exists() and not list((weightless / "transformer").glob("*.st*"))
    out = run_cli(capsys, weightless, tmp_path / "out_%03d.png", "--gguf", str(gguf_file))
    assert_same_video(read_png_frames(tmp_path), reference)
    transformer = setting_line(out, "transformer")
    assert "checkpoint" in transformer and "transformer/config.json of the checkpoint" in transformer
    assert "rope_theta 256" in transformer and "eta 0" in setting_line(out, "guidance")
    assert f"\nran on: cpu, float32, transformer {gguf_file.name}\n" in out


def test_python_api_follows_the_checkpoint(pipe, reference, tmp_path):
    frames, result = generate(pipe, tmp_path)
    assert_same_video(frames, reference)
    guidance = result.settings.guidance
    assert guidance.source == CHECKPOINT and isinstance(guidance.value, APGConfig)
    assert (guidance.value.eta, guidance.value.original_formulation, guidance.value.scale) == (0.0, False, 6.0)
    assert result.settings.transformer.source == CHECKPOINT and result.settings.transformer.value.rope_theta == 256


# ------------------------------------------------------------------------------------------- negative controls


def test_ignoring_the_guider_config_changes_the_video_far_beyond_the_tolerance(checkpoint, reference, tmp_path):
    # The same checkpoint without guider/: the official APG (eta 1, original formulation, scale 8) runs instead.
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root, ignore=shutil.ignore_patterns("guider"))
    index = json.loads((root / "model_index.json").read_text())
    del index["guider"]  # model_index.json lists the guider: without this its absence is an incomplete checkpoint
    (root / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "frames").mkdir()
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch")
    frames, result = generate(pipe, tmp_path / "frames")
    assert result.settings.guidance.source == DEFAULT
    assert max_diff(frames, reference) > 20  # measured 39/255: the tests above would fail if the guider were ignored


def test_ignoring_the_transformer_config_changes_the_video_far_beyond_the_tolerance(
    weightless, gguf_file, reference, tmp_path
):
    # The GGUF with no config anywhere: the architecture is read from the shapes and the rest assumed (one note).
    root = tmp_path / "ckpt"
    shutil.copytree(weightless, root)
    (root / "transformer" / "config.json").unlink()
    pipe = load_pipeline(root, gguf=gguf_file, dtype=torch.float32, device="cpu", kernels="torch")
    assert pipe.sources.transformer.source == DEFAULT
    (note,) = pipe.notes
    assert "rope_theta=10000.0" in note and "rope_axes_dim=[4, 14, 14]" in note and "num_decoder_layers=3" in note
    (tmp_path / "frames").mkdir()
    frames, _ = generate(pipe, tmp_path / "frames")
    assert max_diff(frames, reference) > 20  # measured 121/255: the GGUF test would fail if the config were ignored


# ------------------------------------------------------------------------------- other guiders, flags over them


def with_guider(checkpoint, folder: Path, guider) -> Path:
    """The checkpoint with another guider, listed in model_index.json as save_pretrained lists it (diffusers builds
    the listed class: a CFG file under an APG entry would be APG there, and is refused here)."""
    root = folder / "ckpt"
    shutil.copytree(checkpoint[0], root)
    shutil.rmtree(root / "guider")
    guider.save_config(root / "guider")
    index = json.loads((root / "model_index.json").read_text())
    index["guider"] = ["diffusers", type(guider).__name__]
    (root / "model_index.json").write_text(json.dumps(index))
    (folder / "frames").mkdir()
    return root


def test_cfg_guider_checkpoint_equals_reference(checkpoint, tmp_path):
    guider = cfg_guider(4.0)
    root = with_guider(checkpoint, tmp_path, guider)
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch")
    frames, result = generate(pipe, tmp_path / "frames")
    assert isinstance(result.settings.guidance.value, CFGConfig) and result.settings.guidance.source == CHECKPOINT
    assert_same_video(frames, reference_frames(checkpoint[1], guider=guider))


def test_disabled_guider_is_unguided_like_diffusers(checkpoint, tmp_path, monkeypatch):
    guider = official_apg(**GUIDER, enabled=False)
    root = with_guider(checkpoint, tmp_path, guider)
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch")
    prompts = []
    encode = pipe.text_encoder.encode
    monkeypatch.setattr(pipe.text_encoder, "encode", lambda p, **kw: prompts.append(p) or encode(p, **kw))
    frames, result = generate(pipe, tmp_path / "frames")
    assert result.settings.guidance.value is None and prompts == [[PROMPT]]  # no negative-prompt pass
    assert_same_video(frames, reference_frames(checkpoint[1], guider=guider))


def test_cfg_scale_flag_keeps_the_checkpoint_method_and_parameters(pipe, checkpoint, tmp_path):
    frames, result = generate(pipe, tmp_path, cfg_scale=3.0)
    assert result.settings.guidance.source == FLAG and result.settings.guidance.value.eta == 0.0
    assert_same_video(frames, reference_frames(checkpoint[1], guider=official_apg(**{**GUIDER, "guidance_scale": 3.0})))


def test_guidance_flags_combine_with_the_checkpoint_guider():
    official = CheckpointConfigs.read(None)  # no checkpoint: the official APG is the base
    guider = official_apg(**GUIDER)
    configs = CheckpointConfigs(guider=_guider_config(guider))
    settings = resolve_settings(GenerationRequest("x"), configs)
    assert settings.guidance.value == APGConfig(6.0, 12.0, 0.1, 0.0, (-1, -2, -4), False)
    # --guidance cfg: classic CFG at the guider's scale; --guidance apg on a CFG guider: the official APG.
    cfg = resolve_settings(GenerationRequest("x", guidance="cfg"), configs).guidance
    assert cfg.value == CFGConfig(scale=6.0) and cfg.source == FLAG and "guider/guider_config.json" in cfg.origin
    on_cfg = CheckpointConfigs(guider=_guider_config(cfg_guider(4.0)))
    to_apg = resolve_settings(GenerationRequest("x", guidance="apg"), on_cfg).guidance.value
    assert to_apg.scale == 4.0 and to_apg.eta == 1.0 and to_apg.original_formulation
    # One APG parameter; scale 1 = off; APG parameters refused for CFG.
    eta = resolve_settings(GenerationRequest("x", apg_eta=0.5), official).guidance.value
    assert eta.eta == 0.5 and eta.scale == 8.0 and eta.original_formulation
    assert resolve_settings(GenerationRequest("x", cfg_scale=1.0), configs).guidance.value is None
    with pytest.raises(RequestError, match="apply to APG"):
        resolve_settings(GenerationRequest("x", guidance="cfg", apg_eta=0.0), configs)
    # A disabled guider is unguided; any guidance flag turns it back on with its parameters.
    off = CheckpointConfigs(guider=_guider_config(official_apg(**GUIDER, enabled=False)))
    assert resolve_settings(GenerationRequest("x"), off).guidance.value is None
    assert resolve_settings(GenerationRequest("x", cfg_scale=2.0), off).guidance.value.eta == 0.0


@pytest.mark.parametrize(
    ("flag", "value", "guider_key"),
    [
        ("cfg_scale", 3.0, "guidance_scale"),
        ("apg_eta", 0.5, "eta"),
        ("apg_norm_threshold", 5.0, "adaptive_projected_guidance_rescale"),
        ("apg_momentum", 0.3, "adaptive_projected_guidance_momentum"),
    ],
)
def test_each_guidance_flag_equals_the_guider_file_with_that_value(flag, value, guider_key):
    """A flag over the checkpoint's guider gives what a guider_config.json holding that value would give."""
    configs = CheckpointConfigs(guider=_guider_config(official_apg(**GUIDER)))
    given = resolve_settings(GenerationRequest("x", **{flag: value}), configs).guidance
    expected = _guider_config(official_apg(**{**GUIDER, guider_key: value})).guidance
    assert given.value == expected and given.source == FLAG
    assert given.value != configs.guider.guidance  # the flag changed something


def _guider_config(guider):
    with tempfile.TemporaryDirectory() as folder:
        guider.save_config(folder)
        return read_guider_config(folder)


# ------------------------------------------------------------------------- GGUF configs reported and checked


def test_embedded_config_that_disagrees_with_the_checkpoint_is_reported(checkpoint, weightless, tmp_path):
    state = checkpoint[1].transformer.state_dict()
    spec = {name: (t.numpy(), GGMLQuantizationType.F32, tuple(t.shape)) for name, t in state.items()}
    embedded = {**dict(checkpoint[1].transformer.config), "rope_theta": 10000.0}
    meta = {"motif_video.config_json": json.dumps(embedded)}
    path = write_test_gguf(tmp_path / "ours.gguf", spec, extra_metadata=meta)
    sources = locate_sources(weightless, path)
    assert sources.transformer.value.rope_theta == 256.0  # the checkpoint decides
    (note,) = sources.notes
    assert "disagrees" in note and "rope_theta 10000.0 there vs 256.0" in note and "ours.gguf" in note
    # Without a checkpoint config, the embedded one is used, silently.
    root = tmp_path / "ckpt"
    shutil.copytree(weightless, root)
    (root / "transformer" / "config.json").unlink()
    sources = locate_sources(root, path)
    assert sources.transformer.value.rope_theta == 10000.0 and sources.notes == ()
    assert "embedded in ours.gguf" in sources.transformer.origin


def test_gguf_tensor_that_does_not_fit_the_checkpoint_config_fails_before_loading(
    checkpoint, weightless, tmp_path, capsys, monkeypatch
):
    state = dict(checkpoint[1].transformer.state_dict())
    state["proj_out.bias"] = torch.zeros(8)
    spec = {name: (t.numpy(), GGMLQuantizationType.F32, tuple(t.shape)) for name, t in state.items()}
    path = write_test_gguf(tmp_path / "bad.gguf", spec)
    monkeypatch.setattr("motif_lite.encoders.text.load_text_encoder", lambda *a, **k: pytest.fail("loaded weights"))
    code = cli.main(["run", "-m", str(weightless), "--gguf", str(path), "-p", "x", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert "proj_out.bias: checkpoint [8], model [64]" in err and "bad.gguf" in err


def test_settings_table_gives_each_setting_its_own_source(tmp_path):
    """What --dry-run and the run summary print: a flag, a checkpoint value and a default side by side."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    FlowMatchEulerDiscreteScheduler(shift=8.0).save_config(tmp_path / "scheduler")
    settings = resolve_settings(GenerationRequest("x", flow_shift=5.0), CheckpointConfigs.read(tmp_path))
    lines = settings.lines()
    assert setting_line("\n".join(lines), "flow shift").split() == ["flow", "shift", FLAG, "5", "(--flow-shift)"]
    sampler = setting_line("\n".join(lines), "sampler")
    assert sampler.split()[:3] == ["sampler", CHECKPOINT, "euler"] and "(scheduler/scheduler_config.json:" in sampler
    assert setting_line("\n".join(lines), "guidance").split()[:3] == ["guidance", DEFAULT, "APG"]


def test_a_scheduler_config_made_while_the_configs_are_read_is_not_a_traceback(tmp_path, monkeypatch):
    # The check of the class model_index.json lists asked whether the file was there again, after it was read: one
    # made in between (an `hf download` under way) was taken as read, and its values (None) gave an AttributeError.
    from motif_lite import checkpoint_configs

    index = {"scheduler": ["diffusers", "UniPCMultistepScheduler"], "guider": ["diffusers", "ClassifierFreeGuidance"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    scheduler = tmp_path / "scheduler" / "scheduler_config.json"
    guider_config_file = checkpoint_configs.guider_config_file

    def made_meanwhile(path):  # called between the scheduler's read and the check of the classes
        scheduler.parent.mkdir()
        scheduler.write_text(json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 8.0}))
        return guider_config_file(path)

    monkeypatch.setattr(checkpoint_configs, "guider_config_file", made_meanwhile)
    configs = CheckpointConfigs.read(tmp_path)
    assert scheduler.is_file() and (configs.scheduler, configs.guider) == (None, None)  # as they were read


def test_scheduler_config_sets_sampler_and_shift_unless_a_flag_does(tmp_path):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    def settings(scheduler, **request):
        scheduler.save_config(tmp_path / "scheduler")
        return resolve_settings(GenerationRequest("x", **request), CheckpointConfigs.read(tmp_path))

    dpm = settings(DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=8.0, prediction_type="flow_prediction"))
    assert (dpm.sampler.value, dpm.sampler.source, dpm.flow_shift.value, dpm.flow_shift.source) == (
        "dpm++2m", CHECKPOINT, 8.0, CHECKPOINT,
    )  # fmt: skip
    flags = settings(DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=8.0), sampler="euler", flow_shift=5)
    assert (flags.sampler.value, flags.flow_shift.value, flags.sampler.source, flags.flow_shift.source) == (
        "euler", 5.0, FLAG, FLAG,
    )  # fmt: skip
    unshifted = settings(FlowMatchEulerDiscreteScheduler())  # diffusers' class default 1.0: a known pitfall
    assert unshifted.flow_shift.value == 15.0 and unshifted.flow_shift.source == DEFAULT
    assert any("ignoring shift 1.0" in note for note in unshifted.notes)
    # UniPC with flow sigmas and flow prediction (what the reference pipeline runs) is `unipc`; as epsilon prediction
    # (the class default) none of our samplers is it: refused unless a flag chooses one.
    unipc = settings(UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=8.0, prediction_type="flow_prediction"))
    assert (unipc.sampler.value, unipc.sampler.source, unipc.flow_shift.value) == ("unipc", CHECKPOINT, 8.0)
    said = r"holds a UniPCMultistepScheduler with .* --sampling-method \(in Python sampler=\): euler, dpm"
    with pytest.raises(RequestError, match=said):
        settings(UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=8.0))
    unipc = settings(UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=8.0), sampler="euler")
    assert (unipc.sampler.value, unipc.flow_shift.value, unipc.notes) == ("euler", 8.0, ())
    assert settings(FlowMatchEulerDiscreteScheduler(shift=8.0), image="a.png").flow_shift.value == 8.0
    # A DPMSolver configured otherwise than the model card's dpmsolver++ order 2 on flow sigmas is not our DPM++ 2M.
    card = dict(use_flow_sigmas=True, flow_shift=8.0, prediction_type="flow_prediction")
    for other, shown in [
        (dict(solver_order=3), "solver_order: 3"),
        (dict(algorithm_type="sde-dpmsolver++"), 'algorithm_type: "sde-dpmsolver++"'),
        (dict(use_flow_sigmas=False), "use_flow_sigmas: false"),
        (dict(prediction_type="epsilon"), 'prediction_type: "epsilon"'),  # also the class default
        (dict(solver_type="heun"), 'solver_type: "heun"'),
        (dict(use_karras_sigmas=True), "use_karras_sigmas: true"),
        (dict(final_sigmas_type="sigma_min"), 'final_sigmas_type: "sigma_min"'),
    ]:
        with pytest.raises(RequestError, match=f"DPMSolverMultistepScheduler with {re.escape(shown)}, which"):
            settings(DPMSolverMultistepScheduler(**{**card, **other}))
        assert settings(DPMSolverMultistepScheduler(**{**card, **other}), sampler="dpm++2m").flow_shift.value == 8.0


def test_a_scheduler_config_that_names_no_class_is_the_reference_schedulers_against_the_index(tmp_path):
    # A scheduler file without _class_name is read here as the reference's FlowMatchEulerDiscreteScheduler, while
    # diffusers builds the class model_index.json lists with its values: listed as another, the two disagree.
    from motif_lite.errors import ConfigError

    (tmp_path / "model_index.json").write_text(json.dumps({"scheduler": ["diffusers", "UniPCMultistepScheduler"]}))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(json.dumps({"shift": 8.0}))
    said = "lists the scheduler as UniPCMultistepScheduler, but .* is a FlowMatchEulerDiscreteScheduler config"
    with pytest.raises(ConfigError, match=said):
        CheckpointConfigs.read(tmp_path)


def test_a_guider_config_that_names_no_class_is_refused_as_naming_none_not_as_a_none_config(tmp_path):
    # A guider file has no class of its own to stand for a missing _class_name: the index's check has nothing to
    # compare, and the guider's own check says what is wrong (not "... is a None config").
    from motif_lite.errors import ConfigError

    (tmp_path / "model_index.json").write_text(json.dumps({"guider": ["diffusers", "ClassifierFreeGuidance"]}))
    (tmp_path / "guider").mkdir()
    (tmp_path / "guider" / "guider_config.json").write_text(json.dumps({"guidance_scale": 5.0}))
    with pytest.raises(ConfigError, match="unsupported guider None") as refused:
        CheckpointConfigs.read(tmp_path)
    assert "a None config" not in str(refused.value)
