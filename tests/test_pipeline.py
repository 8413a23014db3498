"""The whole pipeline vs diffusers' MotifVideoPipeline / MotifVideoImage2VideoPipeline on a tiny checkpoint that
diffusers itself saved: same seed and settings -> the same frames (fp32, at most 1/255 apart), for Euler + APG,
Euler + CFG, image-to-video and DPM++ 2M; plus request validation, output formats and failure clean-up."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import os
import re
import shutil
import weakref
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from tiny_pipeline import cfg_guider, image_to_video, official_apg
from video_frames import diffusers_frames, read_png_frames

from motif_lite import load_pipeline
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.cli.run_summary import summary
from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.io.image import image_sha256
from motif_lite.memory_plan import plan_generation
from motif_lite.model.ops import TORCH_OPS
from motif_lite.numerics import NonFiniteError, advice, check_finite
from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT, GenerationRequest
from motif_lite.runtime.kernels import FallbackOp
from motif_lite.runtime.streaming import TextEncoderPlacement
from motif_lite.sampling import CFGConfig, GuiderConfig
from motif_lite.settings import resolve_settings
from motif_lite.shell_syntax import quoted_text
from motif_lite.sizes import model_sizes
from motif_lite.units import memory_size
from motif_lite.vae import DiagonalGaussian
from motif_lite.vae.tiling import VAEMode

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=48, height=32, frames=9, steps=3)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> tuple[Path, object]:
    return shared_checkpoint  # (root, reference): official APG guider, FlowMatchEuler shift 15; read only


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")


def reference_frames(reference, seed: int = 0, **kwargs) -> np.ndarray:
    return diffusers_frames(reference, SIZE, seed, **{"prompt": PROMPT, "negative_prompt": NEGATIVE, **kwargs})


def ours(pipe, tmp_path: Path, **overrides) -> np.ndarray:
    settings = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": 0, **SIZE, **overrides}
    pipe.generate(GenerationRequest(output=tmp_path / "out_%03d.png", **settings))
    return read_png_frames(tmp_path)


def subdir(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


def assert_same_video(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape == (SIZE["frames"], SIZE["height"], SIZE["width"], 3)
    assert ref.std() > 10, "degenerate reference video: the comparison would prove nothing"
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1  # 1/255 on [0, 1] frames


# ------------------------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def reference_apg(checkpoint) -> np.ndarray:
    return reference_frames(checkpoint[1])


def test_euler_apg_equals_reference(pipe, reference_apg, tmp_path):
    assert_same_video(ours(pipe, tmp_path), reference_apg)


@pytest.mark.parametrize("num_frames", [SIZE["frames"], 12])
def test_a_diffusers_style_call_gives_the_line_that_makes_the_references_video(pipe, checkpoint, tmp_path, num_frames):
    """`pipe(...)` as a diffusers user calls it is refused with a generate line: run as written, with only the
    output changed, it makes the frames diffusers made for that call. num_frames=12 is not 4k+1: diffusers floors it
    to 9 frames (3 latent frames), where a request rounds to the nearest, 13 (another noise, another video)."""
    call = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=SIZE["height"], width=SIZE["width"],
                num_frames=num_frames, num_inference_steps=SIZE["steps"], output_type="np",
                generator=torch.Generator().manual_seed(0))  # fmt: skip
    size = {**SIZE, "frames": num_frames}
    expected = diffusers_frames(checkpoint[1], size, 0, prompt=PROMPT, negative_prompt=NEGATIVE)
    with pytest.raises(MotifLiteError) as error:
        pipe(**call)
    line = re.search(r"pipe\.generate\((GenerationRequest\(.*\))\), with GenerationRequest", str(error.value))
    request = eval(line.group(1), {"GenerationRequest": GenerationRequest})  # as the user would paste it
    pipe.generate(dataclasses.replace(request, output=tmp_path / "out_%03d.png"))
    assert_same_video(read_png_frames(tmp_path), expected)


@pytest.mark.parametrize("change", [dict(cfg_scale=7.5), dict(flow_shift=12.0), dict(negative_prompt="")], ids=str)
def test_parity_check_rejects_a_wrong_setting(pipe, reference_apg, tmp_path, change):
    """Negative controls: one setting off (guidance scale, shift, negative prompt) and the parity check fails."""
    with pytest.raises(AssertionError):
        assert_same_video(ours(pipe, tmp_path, **change), reference_apg)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_bf16_pipeline_error_is_no_larger_than_the_references(checkpoint, tmp_path):
    """bf16 end to end over three seeds: our bf16 video and diffusers' bf16 video, each against diffusers' fp32
    video (mean |difference| in uint8 levels). Ours may not be worse (5 % slack for bf16 CPU kernels of other torch
    builds; measured 1.74 vs 1.79). Negative control: a bf16 run with a wrong shift fails the same check."""
    reference = checkpoint[1]
    reference_bf16 = copy.deepcopy(reference).to(torch.bfloat16)
    pipe_bf16 = load_pipeline(checkpoint[0], dtype=torch.bfloat16, device="cpu", kernels="torch")
    exact = {seed: reference_frames(reference, seed) for seed in (0, 1, 2)}
    ref_error = np.mean([mean_abs(reference_frames(reference_bf16, seed), exact[seed]) for seed in exact])
    our_error = np.mean(
        [mean_abs(ours(pipe_bf16, subdir(tmp_path, f"s{seed}"), seed=seed), exact[seed]) for seed in exact]
    )
    assert 0 < our_error <= 1.05 * ref_error, (our_error, ref_error)
    wrong = mean_abs(ours(pipe_bf16, subdir(tmp_path, "shift"), seed=0, flow_shift=12.0), exact[0])
    assert wrong > 1.05 * ref_error, (wrong, ref_error)


def test_memory_plan_streams_and_gives_the_same_video(checkpoint, reference_apg, tmp_path):
    request, _ = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "a.mp4", **SIZE).resolve()
    with pytest.raises(MotifLiteError, match="needs at least") as err:
        plan_generation(request, checkpoint[0], dtype=torch.float32, device="cpu", vram_gib=0.01)
    number, unit = re.search(r"needs at least ([\d.]+) (MiB|GiB)", str(err.value)).groups()  # MiB below 0.1 GiB
    smallest = float(number) / (1024 if unit == "MiB" else 1)
    plan = plan_generation(request, checkpoint[0], dtype=torch.float32, device="cpu", vram_gib=smallest + 0.005)
    # The tightest plan: text encoder on the CPU, every transformer block streamed, token chunks, no prefetch.
    assert plan.text_placement is TextEncoderPlacement.CPU and plan.resident_blocks == 0 and plan.token_chunk
    assert not plan.prefetch
    streamed = load_pipeline(checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch", plan=plan)
    assert streamed.plan_handle is not None and streamed.text_placement is TextEncoderPlacement.CPU
    assert_same_video(ours(streamed, tmp_path), reference_apg)


def test_streamed_text_encoder_gives_the_same_video_and_unhooks(pipe, reference_apg, tmp_path):
    # STREAMED placement is installed for the encoding only: same frames, and no hooks left on the encoder after.
    pipe.text_placement = TextEncoderPlacement.STREAMED
    try:
        assert_same_video(ours(pipe, tmp_path), reference_apg)
    finally:
        pipe.text_placement = TextEncoderPlacement.DEVICE
    layers = [m for m in pipe.text_encoder.model.modules() if isinstance(m, torch.nn.ModuleList)]
    assert layers and all(not m._forward_hooks and not m._forward_pre_hooks for ml in layers for m in ml)


def test_vae_bands_give_the_same_video_with_progress(pipe, reference_apg, tmp_path):
    # A plan may decode in exact bands: the frames reach the file only after the last band, progress runs per
    # band and latent frame.
    steps = []
    pipe.vae_mode = VAEMode(bands=2)
    try:
        settings = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": 0, **SIZE}
        request = GenerationRequest(output=tmp_path / "out_%03d.png", **settings)
        pipe.generate(request, on_progress=lambda stage, done, total: steps.append((stage, done, total)))
    finally:
        pipe.vae_mode = VAEMode()
    assert_same_video(read_png_frames(tmp_path), reference_apg)
    latent_frames = (SIZE["frames"] - 1) // 4 + 1
    decode = [(done, total) for stage, done, total in steps if stage == "decode"]
    assert decode == [(i, 2 * latent_frames) for i in range(2 * latent_frames + 1)]


def test_bf16_text_encoder_next_to_a_float32_transformer(checkpoint, reference_apg, tmp_path):
    # The checkpoint's own dtype for the 4.3B encoder halves its CPU memory; its outputs are cast to float32.
    mixed = load_pipeline(checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch",
                          text_encoder_dtype=torch.bfloat16)  # fmt: skip
    assert mixed.text_encoder.dtype == torch.bfloat16 and mixed.dtype == torch.float32
    frames = ours(mixed, tmp_path)
    # Mean |difference| to the float32 video in uint8 levels: ours may be at most 1.5x diffusers' own with the
    # encoder in bf16 (measured 0.29 vs 0.32; embeddings rounded to fp8 measured 0.48, a one-character prompt
    # change 5.9). diffusers' pipeline would hand bf16 embeddings to its float32 transformer: it gets them cast.
    reference = checkpoint[1]
    encoder_bf16 = copy.deepcopy(reference.text_encoder).to(torch.bfloat16)
    with_bf16_encoder = type(reference)(**{**reference.components, "text_encoder": encoder_bf16})
    embeds = with_bf16_encoder.encode_prompt(PROMPT, NEGATIVE, device="cpu", dtype=torch.float32)
    names = ("prompt_embeds", "negative_prompt_embeds", "prompt_attention_mask", "negative_prompt_attention_mask")
    given = dict(zip(names, embeds, strict=True))
    ref_error = mean_abs(reference_frames(reference, prompt=None, negative_prompt=None, **given), reference_apg)
    assert frames.shape == reference_apg.shape and 0 < mean_abs(frames, reference_apg) <= 1.5 * ref_error


def test_euler_cfg_equals_reference(pipe, checkpoint, tmp_path):
    reference = type(checkpoint[1])(**{**checkpoint[1].components, "guider": cfg_guider(4.0)})
    reference.set_progress_bar_config(disable=True)
    frames = ours(pipe, tmp_path, guidance="cfg", cfg_scale=4.0, seed=3)
    assert_same_video(frames, reference_frames(reference, seed=3))


def test_cfg_scale_one_on_the_official_guider_guides_as_diffusers_does(pipe, checkpoint, tmp_path):
    # The official guider's original formulation makes cond + s·update: scale 1 still guides there (diffusers does),
    # and 0 is the scale that changes nothing. 1 switched guidance off whatever the formulation.
    reference = type(checkpoint[1])(**{**checkpoint[1].components, "guider": official_apg(guidance_scale=1.0)})
    reference.set_progress_bar_config(disable=True)
    expected = reference_frames(reference, seed=4)
    assert_same_video(ours(pipe, subdir(tmp_path, "one"), cfg_scale=1.0, seed=4), expected)
    unguided = ours(pipe, subdir(tmp_path, "zero"), cfg_scale=0.0, seed=4)
    with pytest.raises(AssertionError):  # negative control: without guidance it is another video
        assert_same_video(unguided, expected)
    # A guider of the standard formulation (uncond + s·(cond - uncond)): there 1 is the no-op, and off.
    standard = CheckpointConfigs(guider=GuiderConfig(CFGConfig(scale=4.0)))
    assert resolve_settings(GenerationRequest("x", cfg_scale=1.0), standard).guidance.value is None
    # A ComfyUI or stable-diffusion.cpp user means "no guidance" by cfg 1: told once where it still guides.
    official = resolve_settings(GenerationRequest("x", cfg_scale=1.0), CheckpointConfigs.read(checkpoint[0]))
    assert [note for note in official.notes if "still guides" in note] == [
        "--cfg-scale 1 (in Python cfg_scale=1) still guides: the guider's original formulation makes cond + 1 x "
        "(cond - uncond), as diffusers does; no guidance is --cfg-scale 0 (in Python cfg_scale=0)"
    ]


def test_image_to_video_equals_reference(pipe, checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))  # resized to 48x32 by both
    image.save(tmp_path / "first.png")
    expected = reference_frames(image_to_video(checkpoint[1]), seed=5, image=image)
    assert_same_video(ours(pipe, tmp_path, image=tmp_path / "first.png", seed=5), expected)
    # The conditioning matters: the same seed without the image gives another video.
    assert np.abs(expected.astype(int) - reference_frames(checkpoint[1], seed=5).astype(int)).max() > 10


def test_bf16_image_to_video_conditioning_equals_the_references(checkpoint, tmp_path):
    # The first frame's conditioning in bf16, no denoising: the initial noise, the pixels SigLIP sees, its embeddings,
    # the first-frame latents (the VAE posterior's sample, drawn after the noise) and the mask, bit for bit against
    # diffusers' `_prepare_first_frame_conditioning` (the end-to-end I2V parity tests run in float32 only).
    from diffusers.utils import load_image

    width, height, frames = 64, 48, 9
    pixels = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # resized by both
    PIL.Image.fromarray(pixels).save(tmp_path / "first.png")
    reference = image_to_video(copy.deepcopy(checkpoint[1]).to(torch.bfloat16))
    pipe = load_pipeline(checkpoint[0], dtype=torch.bfloat16, device="cpu", kernels="torch")
    seen = {}

    def record(name: str, tower: torch.nn.Module) -> object:
        return tower.register_forward_pre_hook(
            lambda module, args, kwargs: seen.__setitem__(name, kwargs.get("pixel_values", args[0] if args else None)),
            with_kwargs=True,
        )

    video = reference.video_processor.preprocess_video([load_image(str(tmp_path / "first.png"))], height, width)
    video = video.permute(0, 2, 1, 3, 4).to(torch.bfloat16)  # [B, C, F, H, W], as the reference's __call__
    generator = torch.Generator().manual_seed(5)
    noise = reference.prepare_latents(1, 16, height, width, frames, torch.bfloat16, "cpu", generator, None)
    hook = record("reference", reference.text_encoder.vision_tower)
    with torch.no_grad():
        latents, mask, embeds = reference._prepare_first_frame_conditioning(video, noise, True, generator)
    hook.remove()

    request, _ = GenerationRequest(PROMPT, NEGATIVE, image=tmp_path / "first.png", width=width, height=height,
                                   frames=frames).resolve()  # fmt: skip
    generator = torch.Generator().manual_seed(5)
    our_noise = pipe.initial_noise(request, generator)
    hook = record("ours", pipe.text_encoder.model.vision_tower)
    with torch.no_grad():
        conditioning = pipe.encode(request, our_noise, generator, lambda *a: None)
    hook.remove()
    exactly = dict(rtol=0, atol=0)
    assert our_noise.dtype == conditioning.latents.dtype == conditioning.image_embeds.dtype == torch.bfloat16
    torch.testing.assert_close(our_noise, noise, **exactly)
    torch.testing.assert_close(seen["ours"], seen["reference"], **exactly)
    torch.testing.assert_close(conditioning.image_embeds, embeds, **exactly)
    torch.testing.assert_close(conditioning.latents, latents, **exactly)
    torch.testing.assert_close(conditioning.mask, mask, **exactly)
    first, rest = conditioning.latents[:, :, :1], conditioning.latents[:, :, 1:]
    assert first.abs().max() > 0 and not rest.any()  # the first frame's latents only


def test_image_to_video_with_an_empty_prompt_equals_reference(pipe, checkpoint, tmp_path):
    # "Animate this image": diffusers encodes "" as <bos> alone, a condition the model was trained on (captions were
    # dropped); it was refused. Text-to-video still refuses it (test_bad_requests_fail_before_loading).
    image = PIL.Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    image.save(tmp_path / "first.png")
    expected = reference_frames(image_to_video(checkpoint[1]), seed=6, image=image, prompt="")
    empty = ours(pipe, subdir(tmp_path, "empty"), prompt="", image=tmp_path / "first.png", seed=6)
    assert_same_video(empty, expected)
    with pytest.raises(AssertionError):  # negative control: the prompt matters, with it it is another video
        assert_same_video(ours(pipe, subdir(tmp_path, "fox"), image=tmp_path / "first.png", seed=6), expected)


def test_an_image_encoded_once_is_kept_for_the_next_videos(pipe, checkpoint, tmp_path, monkeypatch):
    # A batch of image-to-video (-b N): the first frame is read and encoded once (SigLIP, the VAE), the text encoder
    # not placed for it again, and each video still draws its own posterior sample: the reference's video per seed.
    image = PIL.Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    image.save(tmp_path / "first.png")
    calls = []
    for owner, name in [(pipe.text_encoder, "encode_image"), (pipe.text_encoder, "offload"), (pipe.vae, "encode")]:
        method = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, m=method, n=name, **kw: calls.append(n) or m(*a, **kw))
    pipe.kept_encodings.clear()
    first = ours(pipe, subdir(tmp_path, "first"), image=tmp_path / "first.png", seed=5)
    assert calls == ["encode_image", "offload", "encode"]
    second = ours(pipe, subdir(tmp_path, "second"), image=tmp_path / "first.png", seed=7)
    assert calls == ["encode_image", "offload", "encode"]  # nothing encoded again, the encoder left alone
    assert_same_video(second, reference_frames(image_to_video(checkpoint[1]), seed=7, image=image))
    assert np.abs(first.astype(int) - second.astype(int)).max() > 10  # the seed still changes the video
    # The same file edited, or another size: encoded again.
    PIL.Image.fromarray(np.asarray(image)[::-1].copy()).save(tmp_path / "first.png")
    ours(pipe, subdir(tmp_path, "edited"), image=tmp_path / "first.png", seed=7, steps=1)
    ours(pipe, subdir(tmp_path, "wider"), image=tmp_path / "first.png", seed=7, steps=1, width=64)
    ours(pipe, subdir(tmp_path, "taller"), image=tmp_path / "first.png", seed=7, steps=1, width=64, height=48)
    # Each placed the text encoder for SigLIP although its texts were all kept (the encoder leaves the device after).
    assert calls.count("encode_image") == calls.count("encode") == calls.count("offload") == 4


def test_encode_from_python_keeps_the_first_frame_without_its_checksum(pipe, tmp_path, monkeypatch):
    # A Python caller of encode passes no checksum: the first frame's encodings were then neither kept nor reused
    # (encoded again for each video); encode hashes the file itself, as generate hashes it once.
    for name, seed in [("f.png", 4), ("g.png", 5)]:
        pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(tmp_path / name)
    encodes = []
    monkeypatch.setattr(pipe.vae, "encode", _counting(pipe.vae.encode, encodes))
    pipe.kept_encodings.clear()
    for name, seed in [("f.png", 1), ("f.png", 2), ("g.png", 3)]:
        request = GenerationRequest(prompt=PROMPT, image=tmp_path / name, width=48, height=32, frames=5)
        generator = torch.Generator().manual_seed(seed)
        pipe.encode(request, pipe.initial_noise(request, generator), generator, lambda *a: None)
        # Kept under the file's own checksum: another image of the same size (g.png) must not take f.png's.
        key = (image_sha256(tmp_path / name), "image", 48, 32)
        assert pipe.kept_encodings.image(key, pipe.text_encoder, pipe.vae) is not None
    assert len(encodes) == 2  # f.png once, g.png once


def test_one_animated_file_as_image_then_as_clip_to_extend_is_encoded_again(pipe, tmp_path):
    # `image=` starts from an animated file's first frame, `extend=` goes on from its last: both hash the same
    # bytes, and the clip to extend took the kept encodings of the image's first frame (a jump at the join).
    frames = [PIL.Image.new("RGB", (48, 32), (shade, 255 - shade, 90)) for shade in (20, 120, 230)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=42, loop=0)

    def conditioning(**first_frame) -> object:
        request, _ = GenerationRequest(prompt=PROMPT, width=48, height=32, frames=5, **first_frame).resolve()
        generator = torch.Generator().manual_seed(3)
        return pipe.encode(request, pipe.initial_noise(request, generator), generator, lambda *a: None)

    pipe.kept_encodings.clear()
    extended_fresh = conditioning(extend=tmp_path / "clip.gif")
    pipe.kept_encodings.clear()
    from_image = conditioning(image=tmp_path / "clip.gif")
    extended = conditioning(extend=tmp_path / "clip.gif")
    torch.testing.assert_close(extended.image_embeds, extended_fresh.image_embeds, rtol=0, atol=0)
    torch.testing.assert_close(extended.latents, extended_fresh.latents, rtol=0, atol=0)
    assert (extended.latents - from_image.latents).abs().max() > 0.05  # the two frames do differ


def test_image_to_video_encoding_counts_the_first_frame_as_a_part_of_it(pipe, tmp_path):
    # The prompt, the negative prompt and the first frame: a bar of two parts was full before the first frame (its
    # image encoder and the VAE) was encoded.
    PIL.Image.fromarray(np.full((32, 48, 3), 90, dtype=np.uint8)).save(tmp_path / "first.png")
    pipe.kept_encodings.clear()
    request = GenerationRequest(prompt=PROMPT, image=tmp_path / "first.png", width=48, height=32, frames=5)
    generator, stages = torch.Generator().manual_seed(0), []
    pipe.encode(request, pipe.initial_noise(request, generator), generator, lambda *stage: stages.append(stage))
    assert stages == [("encode", 0, 3), ("encode", 1, 3), ("encode", 2, 3), ("encode", 3, 3)]


def _counting(method, calls: list) -> object:
    """`method`, appending to `calls` on each call."""
    return lambda *args, **kwargs: calls.append(1) or method(*args, **kwargs)


def test_a_kept_first_frame_is_encoded_again_by_another_vae_or_text_encoder(pipe, tmp_path, monkeypatch):
    # The kept encodings are those of the encoders that made them: a VAE or a text encoder put in by hand (another
    # checkpoint's) encodes the image again instead of the next video taking what the old one made.
    PIL.Image.new("RGB", (48, 32), (30, 120, 200)).save(tmp_path / "first.png")
    ours(pipe, subdir(tmp_path, "kept"), image=tmp_path / "first.png", frames=5, steps=1)
    for name, method in [("vae", "encode"), ("text_encoder", "encode_image")]:
        other, calls = copy.deepcopy(getattr(pipe, name)), []
        monkeypatch.setattr(other, method, _counting(getattr(other, method), calls))
        monkeypatch.setattr(pipe, name, other)
        ours(pipe, subdir(tmp_path, name), image=tmp_path / "first.png", frames=5, steps=1)
        assert calls == [1], f"the new {name} did not encode the image"


def test_image_to_video_with_one_latent_frame_equals_reference(pipe, checkpoint, tmp_path):
    """Under 5 frames (one latent frame) the reference I2V pipeline does not condition on the image at all."""
    rng = np.random.default_rng(1)
    image = PIL.Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    image.save(tmp_path / "first.png")
    size = dict(height=SIZE["height"], width=SIZE["width"], num_frames=1, num_inference_steps=2)
    video = image_to_video(checkpoint[1])(
        prompt=PROMPT, negative_prompt=NEGATIVE, image=image, generator=torch.Generator().manual_seed(6), **size
    ).frames[0]
    expected = np.stack([np.asarray(frame) for frame in video])
    frames = ours(pipe, tmp_path, image=tmp_path / "first.png", frames=1, steps=2, seed=6)
    assert frames.shape == expected.shape == (1, SIZE["height"], SIZE["width"], 3) and expected.std() > 10
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


class FlowDPMSolver(DPMSolverMultistepScheduler):
    """The model card's DPM++ 2M scheduler, minus 0.42.1's refusal of the pipeline's `sigmas=` argument: the
    scheduler builds its own flow-sigma table (as the original custom pipeline let it), everything else is the
    unmodified reference pipeline."""

    def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None, mu=None, timesteps=None):
        super().set_timesteps(len(sigmas), device=device)


def test_dpmpp_2m_equals_reference_pipeline_with_dpm_solver(pipe, checkpoint, tmp_path):
    settings = dict(algorithm_type="dpmsolver++", solver_order=2, prediction_type="flow_prediction")
    stock = DPMSolverMultistepScheduler(**settings, use_flow_sigmas=True, flow_shift=15.0)
    with pytest.raises(ValueError, match="custom sigmas"):  # why the subclass above exists
        reference_frames(type(checkpoint[1])(**{**checkpoint[1].components, "scheduler": stock}))
    scheduler = FlowDPMSolver(**settings, use_flow_sigmas=True, flow_shift=15.0)
    reference = type(checkpoint[1])(**{**checkpoint[1].components, "scheduler": scheduler})
    reference.set_progress_bar_config(disable=True)
    frames = ours(pipe, tmp_path, sampler="dpm++2m", seed=2)
    assert_same_video(frames, reference_frames(reference, seed=2))
    euler = ours(pipe, subdir(tmp_path, "euler"), seed=2)
    assert np.abs(frames.astype(int) - euler.astype(int)).max() > 1  # the sampler really changed


def test_a_seed_starts_from_the_noise_comfyui_draws_for_it(pipe, tmp_path, monkeypatch):
    # docs/usage.md says a ComfyUI seed carries over: its KSampler draws float32 normal numbers on the CPU from
    # torch's generator seeded with the seed (torch.manual_seed(seed), the same stream as a fresh Generator's) over
    # the empty video latent [B, 16, (F - 1) // 4 + 1, H / 8, W / 8], and a flow model's first sigma, 1, keeps them
    # as they are. Here the transformer's first input holds them in its first 16 channels.
    inputs = []
    forward = pipe.transformer.forward
    monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **kw: inputs.append(a[0].clone()) or forward(*a, **kw))
    ours(pipe, tmp_path, seed=1234, steps=1, frames=9)
    drawn = torch.randn([1, 16, (9 - 1) // 4 + 1, 32 // 8, 48 // 8], generator=torch.Generator().manual_seed(1234))
    assert torch.equal(inputs[0][:1, :16], drawn.to(inputs[0].dtype))
    assert not torch.equal(inputs[0][:1, :16], torch.randn(drawn.shape, generator=torch.Generator().manual_seed(1235)))
    # A bf16 run draws the same numbers rounded: torch's CPU normal sampler makes float values first.
    rounded = torch.randn(drawn.shape, generator=torch.Generator().manual_seed(1234), dtype=torch.bfloat16)
    assert torch.equal(rounded, drawn.to(torch.bfloat16))


def test_cfg_scale_zero_on_the_official_guider_skips_the_negative_prompt(pipe, tmp_path, monkeypatch):
    prompts = []
    encode = pipe.text_encoder.encode
    monkeypatch.setattr(pipe.text_encoder, "encode", lambda p, **kw: prompts.append(p) or encode(p, **kw))
    calls = []  # the batch of every transformer forward
    forward = pipe.transformer.forward
    monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **kw: calls.append(len(a[0])) or forward(*a, **kw))
    pipe.encoded_texts.clear()  # every text encoded here, none kept from another test
    ours(pipe, tmp_path, cfg_scale=0.0, steps=2, frames=5)
    assert prompts == [[PROMPT]] and calls == [1, 1]
    prompts.clear(), calls.clear(), pipe.encoded_texts.clear()
    ours(pipe, subdir(tmp_path, "guided"), steps=2, frames=5)
    assert prompts == [[PROMPT], [NEGATIVE]] and calls == [1, 1, 1, 1]  # on the CPU: two calls per guided step


def test_a_text_encoded_once_is_kept_for_the_next_videos(pipe, tmp_path, monkeypatch):
    # A batch (-b N) or a server's repeated prompt: each text is encoded once and the encoder not even placed on the
    # device again; the video is the one a fresh encoding gives, bit for bit. Kept texts are bounded.
    from motif_lite.pipeline import TEXTS_KEPT

    texts, placements = [], []
    encode, offload = pipe.text_encoder.encode, pipe.text_encoder.offload
    monkeypatch.setattr(pipe.text_encoder, "encode", lambda p, **kw: texts.append(p[0]) or encode(p, **kw))
    monkeypatch.setattr(pipe.text_encoder, "offload", lambda: placements.append(1) or offload())
    pipe.encoded_texts.clear()
    first = ours(pipe, subdir(tmp_path, "first"), steps=2, frames=5)
    assert texts == [PROMPT, NEGATIVE] and len(placements) == 1
    again = ours(pipe, subdir(tmp_path, "again"), steps=2, frames=5)
    assert texts == [PROMPT, NEGATIVE] and len(placements) == 1  # nothing encoded, the encoder left alone
    assert np.array_equal(first, again)
    ours(pipe, subdir(tmp_path, "other"), prompt="a blue bird", steps=1, frames=5)
    assert texts == [PROMPT, NEGATIVE, "a blue bird"]  # the negative prompt is known
    for n in range(TEXTS_KEPT + 1):
        ours(pipe, subdir(tmp_path, str(n)), prompt=f"bird {n}", cfg_scale=0.0, steps=1, frames=1)
    assert len(pipe.encoded_texts) == TEXTS_KEPT and PROMPT not in pipe.encoded_texts


def test_a_text_that_was_cut_is_said_cut_once_per_pipeline_however_many_videos_use_it(pipe, tmp_path, caplog):
    # A Python loop of videos of one long prompt (a sweep of seeds): the kept encoding said the cut again for every
    # video, as `encode` had for the first; once is what the user needs, and a text encoded again is no new cut.
    from motif_lite.encoders.text import warnings_not_logged
    from motif_lite.pipeline import TEXTS_KEPT

    long = "a red fox runs through snow " * 25
    tokens = len(pipe.text_encoder.tokenizer(long)["input_ids"])
    assert tokens > 512  # else nothing is cut
    cut = f"{tokens} tokens; dropped the last {tokens - 512} (limit 512)"

    def said() -> list[str]:
        messages = [r.getMessage() for r in caplog.records if r.name.startswith("motif_lite")]
        return [message for message in messages if "dropped" in message]

    pipe.encoded_texts.clear()
    pipe.cuts_said.clear()
    for n in range(3):
        ours(pipe, subdir(tmp_path, str(n)), prompt=long, cfg_scale=0.0, steps=1, frames=1)
    assert said() == [f"prompt is {cut}"]
    caplog.clear()  # the same kept text as the negative prompt is called so: said once under that name
    for n in range(2):
        ours(pipe, subdir(tmp_path, f"negative {n}"), prompt="a fox", negative_prompt=long, steps=1, frames=1)
    assert said() == [f"negative prompt is {cut}"]
    caplog.clear()  # its kept encoding dropped by newer texts, encoded again: no new cut
    for n in range(TEXTS_KEPT):
        pipe._encode_prompt(f"bird {n}", "prompt")
    assert long not in pipe.encoded_texts
    pipe._encode_prompt(long, "prompt")
    assert long in pipe.encoded_texts and said() == []
    caplog.clear()  # run and the server said it before the weights loaded, in more words: not said again
    pipe.encoded_texts.clear()
    pipe.cuts_said.clear()
    with warnings_not_logged({f"prompt is {cut}"}):
        ours(pipe, subdir(tmp_path, "said"), prompt=long, cfg_scale=0.0, steps=1, frames=1)
    assert said() == []


def test_kept_texts_are_dropped_least_recently_used_and_belong_to_their_encoder(pipe, monkeypatch):
    # A text used again is kept longer than one used once since; another text encoder encodes anew.
    from motif_lite.pipeline import TEXTS_KEPT

    pipe.encoded_texts.clear()
    texts = [f"text {n}" for n in range(TEXTS_KEPT)]
    for text in [*texts, texts[0], "one more"]:
        pipe._encode_prompt(text, "prompt")
    assert list(pipe.encoded_texts) == [*texts[2:], texts[0], "one more"]  # texts[1] went first
    encoded, kept = [], pipe.text_encoder

    class Other:  # another text encoder (a pipeline's encoder swapped by hand)
        def encode(self, prompts, **kw):
            encoded.append(prompts[0])
            return kept.encode(prompts, **kw)

        def truncation(self, prompt):
            return kept.truncation(prompt)

    other = Other()
    monkeypatch.setattr(pipe, "text_encoder", other)
    try:
        pipe._encode_prompt(texts[0], "prompt")
        assert list(pipe.encoded_texts) == [texts[0]]  # the first encoder's texts are gone with it
    finally:
        pipe.text_encoder = kept  # not through monkeypatch, which would hold `other` to restore it
    assert encoded == [texts[0]]
    # The kept texts do not keep an encoder the user let go of in memory.
    let_go = weakref.ref(other)
    del other
    gc.collect()
    assert let_go() is None


def test_a_negative_prompt_not_yet_kept_places_the_encoder(pipe, tmp_path, monkeypatch):
    # The prompt is kept from an unguided video; the guided one still needs the encoder for its negative prompt.
    placements = []
    offload = pipe.text_encoder.offload
    monkeypatch.setattr(pipe.text_encoder, "offload", lambda: placements.append(1) or offload())
    pipe.encoded_texts.clear()
    ours(pipe, subdir(tmp_path, "unguided"), prompt="a fox alone", cfg_scale=0.0, steps=1, frames=1)
    assert len(placements) == 1
    ours(pipe, subdir(tmp_path, "guided"), prompt="a fox alone", negative_prompt="never seen", steps=1, frames=1)
    assert len(placements) == 2


def test_text_encoder_leaves_the_device_and_result_reports(pipe, tmp_path, monkeypatch):
    moves = []
    monkeypatch.setattr(pipe.text_encoder, "offload", lambda: moves.append("offload") or pipe.text_encoder)
    pipe.encoded_texts.clear()  # the texts are encoded here (texts another test encoded need no encoder)
    stages = []
    result = pipe.generate(
        GenerationRequest(PROMPT, NEGATIVE, seed=1, output=tmp_path / "v.gif", **{**SIZE, "frames": 5, "steps": 2}),
        on_progress=lambda stage, done, total: stages.append((stage, done, total)),
    )
    assert moves == ["offload"]
    # Encoding is finished (and the encoder offloaded) before the first denoising step.
    assert stages.index(("encode", 2, 2)) < stages.index(("denoise", 0, 2))
    assert stages[-1] == ("decode", 2, 2) and ("denoise", 2, 2) in stages
    assert set(result.timings) == {"encode", "denoise", "decode", "total"} and result.peak_rss_bytes > 0
    assert result.output == tmp_path / "v.gif" and result.request.seed == 1 and result.shift == 15.0
    assert result.kernel_fallbacks == {}  # torch ops: nothing could fall back
    # On the CPU the stages' memory is the host's (the RSS): no device peaks, allocated or reserved.
    assert result.peak_device_bytes is None and result.stage_peaks == {}
    assert result.peak_reserved_bytes is None and result.stage_reserved_peaks == {}
    assert "fell back" not in summary(result, 0.0)
    # The prompt line first: which video this is, before its settings.
    assert summary(result, 0.0).splitlines()[0] == f"prompt: {quoted_text(PROMPT)}"
    assert f"output: {tmp_path / 'v.gif'}" in summary(result, 0.0)
    frames = dataclasses.replace(result, output=tmp_path / "f_%03d.png")
    assert summary(frames, 0.0).endswith(f"output: {tmp_path / 'f_%03d.png'} (f_000.png ... f_004.png)")
    assert f"peak memory: RSS {result.peak_rss_bytes / 2**30:.2f} GiB" in summary(result, 0.0)
    # Each size with its unit, the plan's too: a stage's peak may be in MiB where the run's is in GiB.
    stage = SimpleNamespace(name="denoise", peak_bytes=5 * 2**20)
    plan = SimpleNamespace(host=SimpleNamespace(peak_bytes=2**30), stages=[stage])
    said = summary(dataclasses.replace(result, stage_peaks={"denoise": 3 * 2**20}, peak_device_bytes=2**29), 0.0, plan)
    rss, planned, device = (memory_size(n) for n in (result.peak_rss_bytes, 2**30, 2**29))
    assert f"peak memory: RSS {rss} (planned {planned}), device {device}" in said, said
    assert f"device peak per stage: denoise {memory_size(3 * 2**20)} (planned {memory_size(5 * 2**20)})" in said
    # Where the OS does not say (Windows has no `resource` module), the summary says so instead of failing.
    assert "peak memory: RSS n/a" in summary(dataclasses.replace(result, peak_rss_bytes=None), 0.0)


def test_a_stage_on_cuda_records_its_own_allocated_and_reserved_peaks(monkeypatch):
    # What the planner estimates (allocated) and what the GPU holds (reserved), each under its own name; the GPU
    # suite checks them against torch's counters (tests/test_cuda.py), these the names they go under on any machine.
    from motif_lite.pipeline.generation import MotifVideoPipeline
    from motif_lite.pipeline.video_run import StageMeasures

    reset = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: reset.append(device))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 8 * 2**20)
    cuda, measures = torch.device("cuda"), StageMeasures()
    with MotifVideoPipeline._stage(SimpleNamespace(device=cuda), "denoise", measures):
        assert reset == [cuda]  # its own peak: counted from its start
    assert measures.allocated == {"denoise": 5 * 2**20} and measures.reserved == {"denoise": 8 * 2**20}
    assert list(measures.seconds) == ["denoise"]


def test_a_kernel_that_fell_back_is_in_the_result_and_the_summary(pipe, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("no PTX for this card")

    op = FallbackOp("layer_norm_modulate", broken, TORCH_OPS.layer_norm_modulate)
    pipe.transformer.ops = dataclasses.replace(TORCH_OPS, layer_norm_modulate=op)
    request = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "v.gif", **{**SIZE, "frames": 5, "steps": 1})
    try:
        with pytest.warns(RuntimeWarning, match="layer_norm_modulate falls back to torch"):
            result = pipe.generate(request)
    finally:
        pipe.transformer.ops = TORCH_OPS
    assert result.kernel_fallbacks == {"layer_norm_modulate": "the inputs are not CUDA tensors"}
    assert "kernels: fell back to torch (slower, same math): layer_norm_modulate (the inputs are not CUDA" in (
        summary(result, 0.0)
    )


class AnyDeviceOp(FallbackOp):
    """A FallbackOp that calls its kernel on CPU tensors too, so that a kernel failure is reached without CUDA."""

    @staticmethod
    def kernel_can_run(tensors: list[torch.Tensor]) -> bool:
        return True


def test_a_later_run_reports_its_own_fallbacks_not_an_earlier_runs(pipe, tmp_path):
    # A server reuses its pipeline for every job: a kernel that failed in one job was named in the notes of every
    # later job (and in the summary of any later `generate`), although each call tries the kernel again.
    failing = [True]

    def fails_while_asked(*args):
        if failing[0]:
            raise RuntimeError("no PTX for this card")
        return TORCH_OPS.layer_norm_modulate(*args)

    def broken() -> None:
        raise RuntimeError("no PTX for this card")

    op = AnyDeviceOp("layer_norm_modulate", fails_while_asked, TORCH_OPS.layer_norm_modulate)
    text_op = FallbackOp("dequant_matmul", broken, lambda: None)
    pipe.transformer.ops = dataclasses.replace(TORCH_OPS, layer_norm_modulate=op)
    pipe.text_encoder.model.kernel = text_op  # where a packed linear's kernel would be
    request = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "v.gif", **{**SIZE, "frames": 5, "steps": 1})
    reason = "the kernel failed (RuntimeError: no PTX for this card)"
    try:
        with pytest.warns(RuntimeWarning, match="layer_norm_modulate falls back to torch"):
            first = pipe.generate(request)
        failing[0] = False
        with pytest.warns(RuntimeWarning, match="dequant_matmul falls back"):
            text_op()  # a fallback of the text encoder's after the first run, as one in an earlier run's encoding
        assert pipe.kernel_fallbacks() == {"layer_norm_modulate": reason, "text encoder dequant_matmul": reason}
        second = pipe.generate(dataclasses.replace(request, output=tmp_path / "w.gif"))
    finally:
        pipe.transformer.ops = TORCH_OPS
        del pipe.text_encoder.model.kernel
    assert first.kernel_fallbacks == {"layer_norm_modulate": reason}
    assert second.kernel_fallbacks == {} and second.fallbacks_said is None


# ------------------------------------------------------------------------------------- outputs


def read_back(path: Path) -> np.ndarray:
    if path.suffix in (".mp4", ".webm"):
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
    with PIL.Image.open(path) as image:
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames)


FORMAT_RUN = dict(prompt=PROMPT, negative_prompt=NEGATIVE, seed=4, width=48, height=32, frames=5, steps=1, fps=12)


@pytest.fixture(scope="module")
def lossless(pipe, tmp_path_factory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("lossless")
    pipe.generate(GenerationRequest(output=folder / "out_%03d.png", **FORMAT_RUN))
    return read_png_frames(folder)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".webp", ".gif"])
def test_every_output_format_reads_back(pipe, lossless, tmp_path, suffix):
    result = pipe.generate(GenerationRequest(output=tmp_path / f"video{suffix}", **FORMAT_RUN))
    frames = read_back(result.output)
    assert frames.shape == lossless.shape == (5, 32, 48, 3)
    # Lossy codecs on a tiny, noisy video (chroma subsampling, GIF palette): check they carry the same picture
    # (measured 0.88-0.98).
    correlation = np.corrcoef(frames.ravel().astype(float), lossless.ravel().astype(float))[0, 1]
    assert correlation > 0.8
    assert stored_fps(result.output) == pytest.approx(FORMAT_RUN["fps"], rel=0.05)  # GIF: 10 ms units
    assert [p.name for p in tmp_path.iterdir()] == [f"video{suffix}"]  # no staging leftovers


def stored_fps(path: Path) -> float:
    if path.suffix in (".mp4", ".webm"):
        return next(imageio_ffmpeg.read_frames(str(path)))["fps"]
    with PIL.Image.open(path) as image:
        image.seek(image.n_frames - 1)
        image.load()  # WebP sets the duration once a frame is read
        return 1000 / image.info["duration"]  # ms per frame


def test_png_sequence_carries_the_settings(pipe, tmp_path):
    ours(pipe, tmp_path, frames=5, steps=1)
    with PIL.Image.open(tmp_path / "out_000.png") as image:
        meta = json.loads(image.text["comment"])
    assert meta["prompt"] == PROMPT and meta["seed"] == 0 and meta["flow_shift"] == 15.0 and meta["steps"] == 1


def test_the_settings_name_the_input_image_without_its_folders(pipe, tmp_path):
    # The image's whole path was stored (/home/alice/Pictures/cat.png): a shared video told the user's folders.
    folder = subdir(tmp_path, "private")
    PIL.Image.new("RGB", (48, 32), (200, 40, 40)).save(folder / "cat.png")
    ours(pipe, tmp_path, image=folder / "cat.png", frames=5, steps=1)
    with PIL.Image.open(tmp_path / "out_000.png") as image:
        stored = image.text["comment"]
    assert json.loads(stored)["image"] == "cat.png" and str(tmp_path) not in stored


def test_failed_run_leaves_no_output(pipe, tmp_path):
    def cancel(stage, done, total):
        if stage == "decode" and done == 1:  # one latent frame already written
            raise KeyboardInterrupt

    for name in ("fox.mp4", "fox_%03d.png"):
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / name, **SIZE), on_progress=cancel)
    # No partial video; the denoised latents are kept to decode later (tests/test_decode.py).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox.latents-2.safetensors", "fox.latents.safetensors"]


def test_an_output_open_in_a_player_on_windows_gets_the_video_beside_it(pipe, tmp_path, monkeypatch, caplog):
    """Windows refuses to replace a file a player has open: the finished video was left hidden as a partial file
    (removed by the next run), with the run reported failed. It is now `fox-new.mp4` (`fox-new-2.mp4` when that is
    taken too: never `fox-2.mp4`, a batch's next name), said in a warning and in the result."""
    replace, in_use = os.replace, {"fox.mp4"}

    def locked(source, target):
        if Path(target).name in in_use:
            raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process", str(target))  # fmt: skip
        return replace(source, target)

    (tmp_path / "fox.mp4").write_bytes(b"the earlier video, playing")
    (tmp_path / "fox-new.mp4").write_bytes(b"an earlier fallback")
    monkeypatch.setattr(os, "replace", locked)
    result = pipe.generate(GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "fox.mp4", **SIZE))
    assert result.output == tmp_path / "fox-new-2.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox-new-2.mp4", "fox-new.mp4", "fox.mp4"]  # no latents
    assert (tmp_path / "fox.mp4").read_bytes() == b"the earlier video, playing"
    assert len(read_back(result.output)) == SIZE["frames"]
    assert f"{tmp_path / 'fox.mp4'} could not be replaced (The process cannot access the file" in caplog.text
    monkeypatch.setattr(os, "replace", replace)
    for file in tmp_path.iterdir():
        file.unlink()
    (tmp_path / "f_000.png").write_bytes(b"locked")  # a PNG sequence has no fallback: the error names the frame
    monkeypatch.setattr(
        os, "replace", lambda s, t: locked(s, t) if Path(t).name != "f_000.png" else locked(s, "fox.mp4")
    )
    with pytest.raises(MotifLiteError, match=r"frame f_000\.png could not be put in place \(The process") as refused:
        pipe.generate(GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "f_%03d.png", **SIZE))
    assert isinstance(refused.value.__cause__, PermissionError)


def test_latents_that_stop_being_finite_stop_the_run_at_that_step(pipe, tmp_path, monkeypatch):
    """An overflow (fp16's range, a damaged file) ends the run at the step it happens, not with a black video."""
    forward, calls, progress = pipe.transformer.forward, [], []

    def overflowing(*args, **kwargs):
        calls.append(1)
        out = forward(*args, **kwargs)
        return out * torch.inf if len(calls) == 3 else out  # step 2's conditional prediction (two calls a step)

    monkeypatch.setattr(pipe.transformer, "forward", overflowing)
    request = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "v.mp4", **SIZE)
    with pytest.raises(NonFiniteError, match=r"the latents after step 2 of 3 hold inf or NaN \(float32\): a weight f"):
        pipe.generate(request, on_progress=lambda *stage: progress.append(stage))
    assert ("denoise", 1, 3) in progress and ("denoise", 2, 3) not in progress and len(calls) == 4
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_text_embeddings_that_are_not_finite_stop_the_run_before_sampling(pipe, tmp_path, monkeypatch):
    encode, progress = pipe.text_encoder.encode, []

    def half_overflowing(prompts, labels):
        embeds, mask = encode(prompts, labels=labels)
        return (embeds.half() * 1e5 if labels == ["negative prompt"] else embeds), mask  # past float16's 65504

    monkeypatch.setattr(pipe.text_encoder, "encode", half_overflowing)
    pipe.encoded_texts.clear()
    request = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "v.mp4", **SIZE)
    with pytest.raises(NonFiniteError, match=r"embeddings of the negative prompt hold inf or NaN \(float32\)"):
        pipe.generate(request, on_progress=lambda *stage: progress.append(stage))
    assert not any(stage == "denoise" for stage, *_ in progress)


@pytest.mark.parametrize("where", ["image encoder", "VAE"])
def test_a_first_frame_whose_encoding_is_not_finite_stops_before_sampling(pipe, tmp_path, monkeypatch, where):
    PIL.Image.new("RGB", (48, 32), (90, 40, 200)).save(tmp_path / "first.png")
    if where == "VAE":
        encode = pipe.vae.encode

        def overflowing(*args, **kwargs) -> DiagonalGaussian:
            posterior = encode(*args, **kwargs)
            return DiagonalGaussian(torch.cat([posterior.mean * torch.inf, posterior.logvar], dim=1))

        monkeypatch.setattr(pipe.vae, "encode", overflowing)
        message = "the VAE's latents of the first frame hold inf or NaN"
    else:
        encode_image = pipe.text_encoder.encode_image
        monkeypatch.setattr(pipe.text_encoder, "encode_image", lambda pixels: encode_image(pixels) * torch.inf)
        message = "the image encoder's embeddings of the first frame hold inf or NaN"
    progress = []
    request = GenerationRequest(PROMPT, NEGATIVE, image=tmp_path / "first.png", output=tmp_path / "v.mp4", **SIZE)
    with pytest.raises(NonFiniteError, match=message):
        pipe.generate(request, on_progress=lambda *stage: progress.append(stage))
    assert not any(stage == "denoise" for stage, *_ in progress)


def test_the_advice_for_values_that_are_not_finite_depends_on_the_dtype():
    check_finite(torch.ones(3, dtype=torch.float16), "fine")  # finite: nothing happens
    with pytest.raises(NonFiniteError, match=r"the latents hold inf or NaN \(float16\): float16's range"):
        check_finite(torch.tensor([1.0, torch.inf], dtype=torch.float16), "the latents")
    with pytest.raises(NonFiniteError, match=r"\(bfloat16\): a weight file or a LoRA may be damaged"):
        check_finite(torch.tensor([torch.nan], dtype=torch.bfloat16), "the latents")


def test_the_advice_for_values_that_are_not_finite_fits_the_device():
    # On the CPU only torch's own ops run: --kernels torch would change nothing there.
    with pytest.raises(NonFiniteError) as error:
        check_finite(torch.tensor([torch.nan]), "the latents")
    assert "kernel" not in str(error.value) and "leave out any --lora" in str(error.value)
    assert error.value.what == "the latents"  # for verify, which reports it as a stage's result
    on_gpu = advice(torch.empty(1, device="meta"))  # advice reads only the device and dtype
    assert 'a kernel may have failed: try --kernels torch (in Python kernels="torch"); leave out any --lora' in on_gpu


# ---------------------------------------------------------------------------------- validation


def test_request_defaults_are_the_official_settings():
    request = GenerationRequest("x")
    assert (request.width, request.height, request.frames, request.fps, request.steps) == (1280, 736, 121, 24, 50)
    assert request.negative_prompt == OFFICIAL_NEGATIVE_PROMPT
    # Without a checkpoint config, the settings a checkpoint could decide take the official values.
    settings = resolve_settings(request, CheckpointConfigs())
    apg = settings.guidance.value
    assert (apg.scale, apg.norm_threshold, apg.momentum, apg.norm_dims) == (8.0, 12.0, 0.1, (-1, -2, -4))
    assert apg.original_formulation and settings.flow_shift.value == 15.0 and settings.sampler.value == "euler"
    assert {settings.guidance.source, settings.flow_shift.source, settings.sampler.source} == {"default"}
    assert resolve_settings(GenerationRequest("x", image="a.png"), CheckpointConfigs()).flow_shift.value == 8.0
    assert resolve_settings(GenerationRequest("x", cfg_scale=0), CheckpointConfigs()).guidance.value is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            dict(width=1000),
            "-W/--width (in Python width) 1000 is not a multiple of 16; nearest valid width: 992 or 1008",
        ),
        (dict(height=730), "-H/--height (in Python height) 730 is not a multiple of 16; nearest valid height: 736"),
        (dict(width=8), "nearest valid width: 16"),
        (dict(steps=0), "--steps must be an integer from 1 to 1000"),
        (
            dict(prompt=" "),
            "prompt is empty: text-to-video needs what the video shows; an empty prompt is taken only with a first "
            "frame (-i (in Python image=) or --extend (in Python extend=)), which it then animates with no text",
        ),
        (dict(prompt=""), "prompt is empty: text-to-video needs what the video shows"),
        (dict(sampler="dpm"), "unknown --sampling-method (in Python sampler) 'dpm'"),
        (dict(guidance="pag"), "unknown --guidance 'pag'"),
        (dict(seed=2**40), "--seed must be"),
        (dict(flow_shift=0), "--flow-shift must be"),
        (dict(output="fox.avi"), "unsupported output format"),
        (dict(output="/no/such/dir/fox.mp4"), "does not exist"),
        (dict(image="/no/such/image.png"), "input image not found"),
    ],
)
def test_bad_requests_fail_before_loading(change, message, tmp_path):
    request = GenerationRequest(**{"prompt": "x", "output": tmp_path / "a.mp4", **change})
    with pytest.raises(MotifLiteError, match=re.escape(message)):
        request.resolve()


def test_every_bad_setting_is_reported_at_once(tmp_path):
    request = GenerationRequest(" ", width=1000, height=730, steps=0, output=tmp_path / "fox.avi")
    with pytest.raises(MotifLiteError) as info:
        request.resolve()
    heading, *lines = str(info.value).splitlines()
    assert heading == "5 settings are invalid:"
    assert [line.split()[0] for line in lines] == ["prompt", "-W/--width", "-H/--height", "--steps", "unsupported"]


def test_frames_round_to_nearest_4k_plus_1_and_seed_is_drawn(tmp_path):
    for frames, expected in [(121, 121), (120, 121), (10, 9), (11, 13), (2, 1), (64, 65)]:
        resolved, notes = GenerationRequest("x", frames=frames, output=tmp_path / "a.mp4").resolve()
        assert resolved.frames == expected and bool(notes) == (frames != expected)
    # Drawn anew for each request: a fixed seed in range passed (every -s -1 run the same video). Three draws all
    # equal by chance: about 2^-64.
    seeds = [GenerationRequest("x", seed=-1, output=tmp_path / "a.mp4").resolve()[0].seed for _ in range(3)]
    assert all(0 <= seed < 2**32 for seed in seeds) and len(set(seeds)) > 1, seeds


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    with pytest.raises(MotifLiteError, match="cannot read image"):
        GenerationRequest("x", image=tmp_path / "broken.png", output=tmp_path / "a.mp4").resolve()


@pytest.mark.parametrize(
    "remove", ["vae/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json", "transformer/config.json"]
)
def test_incomplete_checkpoint_names_the_missing_file(checkpoint, tmp_path, remove):
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / remove).unlink()
    with pytest.raises(CheckpointError, match=remove.split("/")[0] + "/"):
        load_pipeline(root, dtype=torch.float32, device="cpu")


def test_gguf_checkpoint_needs_no_transformer_folder(checkpoint, tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root, ignore=shutil.ignore_patterns("transformer"))
    with pytest.raises(CheckpointError, match="no such GGUF file"):  # the folder check passed; the GGUF is next
        load_pipeline(root, gguf=tmp_path / "missing.gguf", dtype=torch.float32, device="cpu")
    with pytest.raises(CheckpointError, match="missing transformer/config.json"):
        load_pipeline(root, dtype=torch.float32, device="cpu")


def test_a_float16_run_keeps_the_text_encoder_in_bfloat16(checkpoint):
    """T5Gemma2 is a Gemma 3 encoder, whose activations overflow float16: in a float16 run it stays in bfloat16
    (unless given), its embeddings cast to float16; the planner counts it so."""
    half = load_pipeline(checkpoint[0], dtype=torch.float16, device="cpu", kernels="torch")
    assert {p.dtype for p in half.text_encoder.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in half.transformer.parameters()} == {torch.float16}
    text, _ = half._encode_prompt(PROMPT, "prompt")
    assert text.dtype == torch.float16
    given = load_pipeline(
        checkpoint[0], dtype=torch.float16, device="cpu", kernels="torch", text_encoder_dtype=torch.float32
    )
    assert {p.dtype for p in given.text_encoder.model.parameters()} == {torch.float32}
    size = {dtype: model_sizes(half.sources, dtype).text_encoder_bytes for dtype in (torch.float16, torch.bfloat16)}
    assert size[torch.float16] == size[torch.bfloat16] < model_sizes(half.sources, torch.float32).text_encoder_bytes


def test_the_cuts_said_keep_no_copy_of_the_long_texts(pipe, caplog):
    # A server runs one pipeline for days: its record of the cuts said kept each long prompt it ever ran, whole (up
    # to MAX_PROMPT_CHARS each), never dropped. What it keeps of a cut is of one size whatever the text's length.
    import sys

    from motif_lite.request import MAX_PROMPT_CHARS

    def kept_bytes() -> int:
        return sum(sys.getsizeof(part) for said in pipe.cuts_said for part in said)

    pipe.encoded_texts.clear()
    pipe.cuts_said.clear()
    pipe._encode_prompt("a red fox runs through snow " * 25, "prompt")
    short = kept_bytes()
    longest = ("a red fox runs through snow " * MAX_PROMPT_CHARS)[:MAX_PROMPT_CHARS]
    pipe.cuts_said.clear()
    pipe._encode_prompt(longest, "prompt")
    assert len(pipe.cuts_said) == 1 and kept_bytes() < short + 100, kept_bytes()
    caplog.clear()
    pipe.encoded_texts.clear()
    pipe._encode_prompt(longest, "prompt")  # encoded again: still known as said
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
