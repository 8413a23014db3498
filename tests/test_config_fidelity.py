"""Every field of the checkpoint's config files that changes diffusers' video is honoured, or refused before any
weight loads. Each case writes one changed field into a copy of a tiny checkpoint that diffusers saved; diffusers
reads the copy itself (`from_pretrained`) and so do we (`load_pipeline`): the frames must agree (fp32, at most 1/255
apart), and the change must move the reference's frames far beyond that, or the case would prove nothing.

The fields that cannot change a video (versions, training-only keys, dynamic-shifting keys without it, dropout in
eval) and the ones transformers reads for us (text encoder, tokenizer, image processor: one case each shows we use
the file) are listed in docs/usage.md, "What the checkpoint's config files decide"."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import MotifVideoImage2VideoPipeline, MotifVideoPipeline
from tiny_pipeline import make_tiny_checkpoint, official_apg
from tiny_transformer import assert_close_to_reference, inputs, make_reference, reference_forward, save_official
from video_frames import diffusers_frames, read_png_frames

from motif_lite import cli, load_pipeline, load_transformer
from motif_lite.request import GenerationRequest
from motif_lite.vae.config import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD

PROMPT, NEGATIVE = "a red fox in snow", "blurry"
SIZE = dict(width=32, height=32, frames=5, steps=3)
SEED = 7
# The reference pads every prompt to max_sequence_length tokens and masks the pads (512 by default; we encode at the
# true length): 32 is longer than both prompts (one token per character) and the same video, much sooner.
REFERENCE_TOKENS = 32
# Text reaches the tiny transformer through its dual-stream blocks only, so that num_decoder_layers is a config
# value the weights cannot show (as in tests/test_checkpoint_settings.py).
TRANSFORMER = dict(enable_text_cross_attention_single=False, num_decoder_layers=1)

TRANSFORMER_CONFIG = "transformer/config.json"
SCHEDULER = "scheduler/scheduler_config.json"
GUIDER = "guider/guider_config.json"
VAE = "vae/config.json"
TEXT_ENCODER = "text_encoder/config.json"
IMAGE_PROCESSOR = "feature_extractor/preprocessor_config.json"
MODEL_INDEX = "model_index.json"
CFG = {"_class_name": "ClassifierFreeGuidance", "guidance_scale": 4.0}  # the other keys: the class defaults


@dataclass(frozen=True)
class Case:
    """`changes` merged into `file` of the base checkpoint (a "_class_name" in them replaces the whole file, and
    model_index.json then lists that class, as diffusers' save_pretrained writes it); compared against the case
    `against` (None: the base checkpoint)."""

    file: str
    changes: dict = field(default_factory=dict)
    against: str | None = None
    image: bool = False


CASES = {
    # transformer/config.json: the values its weights cannot show (the others are checked against the weights' shapes
    # before loading, and test_architecture_fields_equal_the_reference runs them)
    "transformer.rope_theta": Case(TRANSFORMER_CONFIG, {"rope_theta": 256.0}),
    "transformer.rope_axes_dim": Case(TRANSFORMER_CONFIG, {"rope_axes_dim": [12, 10, 10]}),
    "transformer.num_decoder_layers": Case(TRANSFORMER_CONFIG, {"num_decoder_layers": 2}),
    # any file: the keys its _use_default_values lists take the class default (here 0 decoder blocks), as diffusers
    # reads it (its save_config never writes that key; a config dumped from a model's .config has it)
    "_use_default_values": Case(
        TRANSFORMER_CONFIG, {"num_decoder_layers": 2, "_use_default_values": ["num_decoder_layers"]}
    ),
    # scheduler/scheduler_config.json (FlowMatchEulerDiscreteScheduler, the reference pipeline's)
    "scheduler.shift": Case(SCHEDULER, {"shift": 5.0}),
    "scheduler.num_train_timesteps": Case(SCHEDULER, {"num_train_timesteps": 500}),
    "scheduler.shift_terminal": Case(SCHEDULER, {"shift_terminal": 0.3}),
    "scheduler.use_dynamic_shifting": Case(SCHEDULER, {"use_dynamic_shifting": True, "max_shift": 3.0}),
    "scheduler.use_karras_sigmas": Case(SCHEDULER, {"use_karras_sigmas": True}),
    "scheduler.use_exponential_sigmas": Case(SCHEDULER, {"use_exponential_sigmas": True}),
    "scheduler UniPC": Case(
        SCHEDULER,
        {
            "_class_name": "UniPCMultistepScheduler",
            "flow_shift": 8.0,
            "use_flow_sigmas": True,
            "prediction_type": "flow_prediction",
        },
    ),
    # guider/guider_config.json: AdaptiveProjectedGuidance (the base checkpoint's, the official one)
    "apg.guidance_scale": Case(GUIDER, {"guidance_scale": 4.0}),
    "apg.eta": Case(GUIDER, {"eta": 0.0}),
    "apg.use_original_formulation": Case(GUIDER, {"use_original_formulation": False}),
    "apg.momentum": Case(GUIDER, {"adaptive_projected_guidance_momentum": -0.5}),
    "apg.rescale": Case(GUIDER, {"adaptive_projected_guidance_rescale": 0.5}),
    # the norm dims only matter where the projection does (eta 1 puts it back together) or the clipping bites
    "apg.norm_dim": Case(GUIDER, {"eta": 0.0, "adaptive_projected_guidance_norm_dim": None}, against="apg.eta"),
    "apg.guidance_rescale": Case(GUIDER, {"guidance_rescale": 0.7}),
    # (start > 0: diffusers' pipeline fails with an IndexError at the first guided step; tests/test_guidance.py
    # compares our guidance window with the guider itself)
    "apg.stop": Case(GUIDER, {"stop": 0.5}),
    "apg.enabled": Case(GUIDER, {"enabled": False}),
    # ... and ClassifierFreeGuidance
    "cfg": Case(GUIDER, CFG),
    "cfg.guidance_rescale": Case(GUIDER, {**CFG, "guidance_rescale": 0.7}, against="cfg"),
    "cfg.use_original_formulation": Case(GUIDER, {**CFG, "use_original_formulation": True}, against="cfg"),
    "cfg.stop": Case(GUIDER, {**CFG, "stop": 0.5}, against="cfg"),
    "cfg.enabled": Case(GUIDER, {**CFG, "enabled": False}, against="cfg"),
    # vae/config.json: the latent statistics (its other fields are the architecture, checked against the weights)
    "vae.latents_mean": Case(VAE, {"latents_mean": [m + 1.0 for m in WAN21_LATENTS_MEAN]}),
    "vae.latents_std": Case(VAE, {"latents_std": [s * 0.5 for s in WAN21_LATENTS_STD]}),
    # read by transformers for both: one field each shows that the checkpoint's file is the one used
    "text_encoder.sliding_window": Case(TEXT_ENCODER, {"text_config": {"sliding_window": 2}}),
    "image_processor": Case(IMAGE_PROCESSOR, {"image_mean": [0.2, 0.4, 0.6], "image_std": [0.3, 0.4, 0.6]}, image=True),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base")
    make_tiny_checkpoint(root, guider=official_apg(), transformer=TRANSFORMER, seed=5)
    return root


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "first.png"
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)  # resized to 32x32 by both
    PIL.Image.fromarray(pixels).save(path)
    return path


def write_case(base: Path, folder: Path, case: Case) -> Path:
    root = folder / "ckpt"
    shutil.copytree(base, root)
    path = root / case.file
    if "_class_name" in case.changes:
        config = case.changes
        index = json.loads((root / MODEL_INDEX).read_text())
        index[case.file.split("/")[0]][1] = config["_class_name"]
        (root / MODEL_INDEX).write_text(json.dumps(index))
    else:
        config = merged(json.loads(path.read_text()), case.changes)
    path.write_text(json.dumps(config))
    return root


def merged(config: dict, changes: dict) -> dict:
    out = dict(config)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def reference_frames(root: Path, image: Path | None = None) -> np.ndarray:
    """What diffusers makes of the checkpoint folder: every component and config loaded by diffusers itself."""
    cls = MotifVideoPipeline if image is None else MotifVideoImage2VideoPipeline
    pipe = cls.from_pretrained(root, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return diffusers_frames(
        pipe,
        SIZE,
        SEED,
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        max_sequence_length=REFERENCE_TOKENS,
        **({} if image is None else {"image": PIL.Image.open(image)}),
    )


def our_frames(root: Path, folder: Path, image: Path | None = None) -> np.ndarray:
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch")
    folder.mkdir()
    pipe.generate(
        GenerationRequest(
            PROMPT, negative_prompt=NEGATIVE, seed=SEED, output=folder / "out_%03d.png", image=image, **SIZE
        )  # fmt: skip
    )
    return read_png_frames(folder)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape == (SIZE["frames"], SIZE["height"], SIZE["width"], 3)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def references(base, first_frame, tmp_path_factory):
    """The reference frames of a case by name (None: the base checkpoint; "i2v": it with the first frame), each
    computed once."""
    done: dict[str | None, np.ndarray] = {}

    def get(name: str | None) -> np.ndarray:
        if name not in done:
            if name in (None, "i2v"):
                done[name] = reference_frames(base, first_frame if name else None)
            else:
                case = CASES[name]
                root = write_case(base, tmp_path_factory.mktemp(name), case)
                done[name] = reference_frames(root, first_frame if case.image else None)
        return done[name]

    return get


@pytest.mark.parametrize("name", CASES)
def test_each_config_field_gives_the_reference_video(name, base, first_frame, references, tmp_path):
    case = CASES[name]
    root = write_case(base, tmp_path, case)
    expected = references(name)
    assert expected.std() > 10, "degenerate reference video: the comparison would prove nothing"
    against = case.against or ("i2v" if case.image else None)
    moved = max_diff(expected, references(against))
    assert moved > 4, f"{case.file} {case.changes} moves diffusers' frames by {moved}/255 only: a weak case"
    ours = our_frames(root, tmp_path / "frames", first_frame if case.image else None)
    assert max_diff(ours, expected) <= 1


# ----------------------------------------------------------------------------------- values that are refused

REFUSED = {
    "qk_norm": (Case(TRANSFORMER_CONFIG, {"qk_norm": "layer_norm"}), "qk_norm 'layer_norm' is not supported"),
    "norm_type": (Case(TRANSFORMER_CONFIG, {"norm_type": "fp32_layer_norm"}), "norm_type 'fp32_layer_norm' is not"),
    "dpm linear use_dynamic_shifting": (
        Case(
            SCHEDULER,
            {"_class_name": "DPMSolverMultistepScheduler", "use_dynamic_shifting": True, "time_shift_type": "linear"},
        ),  # fmt: skip
        "shifts dynamically by exp(mu) only",
    ),
    "use_beta_sigmas": (Case(SCHEDULER, {"use_beta_sigmas": True}), "use_beta_sigmas: true"),
    "invert_sigmas": (Case(SCHEDULER, {"invert_sigmas": True}), "invert_sigmas: true"),
    "stochastic_sampling": (Case(SCHEDULER, {"stochastic_sampling": True}), "stochastic_sampling: true"),
    "two sigma spacings": (Case(SCHEDULER, {"use_karras_sigmas": True, "use_exponential_sigmas": True}), "only one"),
    "shift_terminal 1": (Case(SCHEDULER, {"shift_terminal": 1.0}), "shift_terminal must be"),
    "num_train_timesteps true": (Case(SCHEDULER, {"num_train_timesteps": True}), "num_train_timesteps must be"),
    "another scheduler": (Case(SCHEDULER, {"_class_name": "EulerDiscreteScheduler"}), "unsupported scheduler"),
    # UniPC as its class defaults (epsilon prediction, no flow sigmas): none of our samplers (--sampling-method chooses)
    "unipc epsilon": (
        Case(SCHEDULER, {"_class_name": "UniPCMultistepScheduler", "flow_shift": 8.0}),
        "--sampling-method",
    ),
    "another guider": (Case(GUIDER, {"_class_name": "SkipLayerGuidance"}), "unsupported guider 'SkipLayerGuidance'"),
    "unknown guider key": (Case(GUIDER, {"skip_layer_guidance_scale": 2.8}), "unknown AdaptiveProjectedGuidance keys"),
    "vae attn_scales": (Case(VAE, {"attn_scales": [0.5]}), "attn_scales"),
    "vae is_residual": (Case(VAE, {"is_residual": True}), "is_residual"),
    "vae patch_size": (Case(VAE, {"patch_size": 2}), "patch_size"),
    "vae scale_factor_spatial": (Case(VAE, {"scale_factor_spatial": 16}), "scale_factor_spatial"),
    # diffusers builds the class model_index.json lists, with the values of the file: another method than the file's
    "model_index scheduler": (Case(MODEL_INDEX, {"scheduler": ["diffusers", "UniPCMultistepScheduler"]}), "UniPC"),
    "model_index guider": (Case(MODEL_INDEX, {"guider": ["diffusers", "ClassifierFreeGuidance"]}), "ClassifierFree"),
}


def refused_by_run(root: Path, capsys, *extra: str) -> str:
    """`motif-lite run` on `root`: a user error (no traceback) before any weights load (`no_weights`)."""
    args = ["run", "-m", str(root), "-p", PROMPT, "-o", str(root / "out.mp4"), "-W", "32", "-H", "32"]
    args += ["--video-frames", "5", "--steps", "2", "--device", "cpu", "--dtype", "fp32", "--kernels", "torch", *extra]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", REFUSED)
def test_unsupported_config_values_are_refused_before_any_weight_loads(name, base, tmp_path, capsys, no_weights):
    case, message = REFUSED[name]
    err = refused_by_run(write_case(base, tmp_path, case), capsys)
    assert message in err and case.file in err


def test_an_image_for_a_transformer_without_image_input_is_refused(tmp_path, first_frame, capsys, no_weights):
    """image_embed_dim: null: both pipelines would fail inside the first step; refused before anything loads."""
    make_tiny_checkpoint(tmp_path, transformer=dict(image_embed_dim=None))
    err = refused_by_run(tmp_path, capsys, "--image", str(first_frame))
    assert "takes no image (image_embed_dim: null, transformer/config.json)" in err


# ------------------------------------------------------------- the architecture: read, and checked against weights

ARCHITECTURE = {
    "patch_size_t": dict(patch_size_t=2),
    "patch_size": dict(patch_size=1),
    "mlp_ratio": dict(mlp_ratio=2.5),
    "heads": dict(num_attention_heads=4, attention_head_dim=16, rope_axes_dim=(4, 6, 6)),
    "num_layers": dict(num_layers=0, num_single_layers=4, num_decoder_layers=2),
}


@pytest.mark.parametrize("name", ARCHITECTURE)
def test_architecture_fields_equal_the_reference(name, tmp_path):
    """The fields the weights' shapes show (tests/test_transformer.py runs the cross-attention and decoder ones): a
    transformer saved by diffusers with another value gives the reference's prediction."""
    reference = make_reference(**ARCHITECTURE[name])
    ours = load_transformer(save_official(reference, tmp_path), dtype=torch.float32)
    x = inputs(frames=4, image=5)
    with torch.no_grad():
        got = ours(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    assert_close_to_reference(got, reference_forward(reference, x))
