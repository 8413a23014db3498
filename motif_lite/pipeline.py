"""`load_pipeline` and `MotifVideoPipeline.generate`: encode -> denoise -> decode, nothing else.

    pipe = load_pipeline("Motif-Technologies/Motif-Video-2B", gguf="Q4_K_M")
    result = pipe.generate(GenerationRequest("a red fox runs through snow", output="fox.mp4"))

Same seed, same settings -> the same video as the diffusers `MotifVideoPipeline` / `MotifVideoImage2VideoPipeline`:
the noise and the VAE posterior sample are drawn from one CPU `torch.Generator` in the reference's order, the
sampling loop is `motif_lite.sampling.denoise` (tested step by step against the reference's scheduler and guider).
The pipeline only orchestrates: model math, sampling, weights, memory placement and file formats live elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from motif_lite.config import TransformerConfig
from motif_lite.encoders.text import TextEncoder, load_text_encoder
from motif_lite.errors import CheckpointError
from motif_lite.io.hub import MOTIF_REPO, resolve_checkpoint, resolve_gguf
from motif_lite.io.image import load_image, preprocess_image
from motif_lite.io.video import write_video
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.request import GenerationRequest, RequestError
from motif_lite.runtime.kernels import apply_kernels, use_triton
from motif_lite.runtime.planner import Plan, PlanHandle, apply_plan, default_budget, plan_memory
from motif_lite.runtime.streaming import StreamingConfig, TextEncoderPlacement, place_text_encoder
from motif_lite.sampling import Schedule, StepCallback, denoise, needs_uncond, schedule_for, shift_from_scheduler_config
from motif_lite.vae import WanVAE, WanVAEConfig, load_vae
from motif_lite.vae.preview import LatentRGB, fit_latent_rgb
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.loader import load_transformer, meta_transformer
from motif_lite.weights.lora import AppliedLoRAs, LoRAFile, LoRASpec, apply_loras, linear_shapes, read_loras

# (stage, done, total): stage is "encode", "denoise" or "decode"; called with done = 0 when a stage starts.
ProgressFn = Callable[[str, int, int], None]
# (steps done, steps, frames): a preview of the clip after that many steps, uint8 [latent frames, H, W, 3].
PreviewFn = Callable[[int, int, np.ndarray], None]
PREVIEWS_PER_RUN = 4  # the default spacing of previews: about this many per run

# Files every checkpoint needs; `transformer/` only when no GGUF replaces it.
_REQUIRED = {
    "text_encoder": ("text_encoder/config.json", "text_encoder/*.safetensors"),
    "tokenizer": ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.json"),
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model.safetensors*"),
    "transformer": ("transformer/config.json", "transformer/*.safetensors*"),
}
UNSHIFTED = 1.0  # FlowMatchEulerDiscreteScheduler's default shift
_OPTIONAL_PATTERNS = ["model_index.json", "scheduler/*", "feature_extractor/*"]


@dataclass
class GenerationResult:
    """What `generate` produced: the file, the settings actually used, time per stage, peak memory."""

    output: Path
    request: GenerationRequest  # resolved: normalized frames, the seed that was used
    shift: float
    timings: dict[str, float]  # seconds per stage ("encode", "denoise", "decode") and "total"
    peak_rss_bytes: int  # peak resident memory of this process so far
    peak_device_bytes: int | None  # peak CUDA memory allocated during this generation (None on CPU)
    notes: list[str] = field(default_factory=list)  # settings that were normalized (e.g. frames)
    stage_peaks: dict[str, int] = field(default_factory=dict)  # peak CUDA bytes per stage (empty on CPU)


@dataclass
class _Conditioning:
    """Everything the transformer sees besides the noisy latents (see docs/sampling.md)."""

    text: tuple[torch.Tensor, torch.Tensor | None]
    negative: tuple[torch.Tensor, torch.Tensor | None] | None
    latents: torch.Tensor  # [B, 16, F, h, w]: the first-frame latent at frame 0 for I2V, else zeros
    mask: torch.Tensor  # [B, 1, F, h, w]: 1 at frame 0 for I2V, else zeros
    image_embeds: torch.Tensor | None


class MotifVideoPipeline:
    """The loaded components plus the defaults read from the checkpoint; `generate` makes one video."""

    def __init__(
        self,
        transformer: MotifVideoTransformer,
        text_encoder: TextEncoder,
        vae: WanVAE,
        device: torch.device,
        dtype: torch.dtype,
        scheduler_shift: float | None = None,
    ) -> None:
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.vae = vae
        self.device = torch.device(device)
        self.dtype = dtype  # the transformer's compute dtype; the initial noise is drawn in it, like the reference
        self.scheduler_shift = scheduler_shift  # scheduler_config.json's shift (None if absent)
        self.vae_tile = None  # VAETile for the decoder; a memory plan may set it
        self.vae_frame_by_frame = True  # the decoder's upper levels one frame at a time; a plan may say 4 at once
        self.vae_bands = 1  # exact bands of the decoder's upper levels, one after another; a plan may set more
        # What a memory plan installed (streaming hooks, chunking); None = everything resident on `device`.
        self.plan_handle: PlanHandle | None = None
        # How the text encoder runs while prompts are encoded (whole on the device, layers streamed to it, or on
        # the CPU). In every case it holds no device memory before or after encoding.
        self.text_placement = TextEncoderPlacement.DEVICE
        self.loras: AppliedLoRAs | None = None  # the LoRAs `load_pipeline` applied to the transformer
        self.preview_projection: LatentRGB | None = None  # fitted to the VAE on the first run with previews

    def shift_for(self, request: GenerationRequest) -> float:
        """The request's flow shift, else the checkpoint's scheduler config, else 15 (T2V) / 8 (I2V).

        A config shift of 1.0 is diffusers' class default (no shift), never a Motif setting: with it the
        reference gives distorted, noisy backgrounds (reported by users of the hosted demo), so it counts as absent.
        """
        if request.flow_shift is not None:
            return float(request.flow_shift)
        if self.scheduler_shift is None or self.scheduler_shift == UNSHIFTED:
            return request.default_shift()
        return self.scheduler_shift

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressFn | None = None,
        on_preview: PreviewFn | None = None,
        preview_every: int | None = None,
    ) -> GenerationResult:
        """Generate one video and write it to `request.output`; nothing is left behind if it fails.

        `on_preview(done, steps, frames)` gets a cheap preview of the clip (vae/preview.py) every `preview_every`
        steps (default: about 4 per run), not after the last step."""
        request, notes = request.resolve()
        if request.flow_shift is None and self.scheduler_shift == UNSHIFTED:
            notes.append(
                f"ignoring shift 1.0 of scheduler_config.json (diffusers' default); using {request.default_shift():g}"
            )
        if request.image is not None and not self.text_encoder.can_encode_images:
            raise CheckpointError("image-to-video needs feature_extractor/preprocessor_config.json in the checkpoint")
        progress = on_progress or (lambda stage, done, total: None)
        timings: dict[str, float] = {}
        peaks: dict[str, int] = {}
        start = time.perf_counter()
        shift = self.shift_for(request)
        generator = torch.Generator().manual_seed(request.seed)
        with self._stage("encode", timings, peaks):
            noise = self.initial_noise(request, generator)  # first draw, as in both reference pipelines
            cond = self.encode(request, noise, generator, progress)
            on_denoised = self._preview_callback(request.steps, on_preview, preview_every)
        with self._stage("denoise", timings, peaks):
            latents = self.sample(request, noise, cond, shift, progress, on_denoised)
        with self._stage("decode", timings, peaks):
            output = self.decode(request, latents, shift, progress)
        timings["total"] = time.perf_counter() - start
        peak = max(peaks.values()) if peaks else None
        return GenerationResult(output, request, shift, timings, _peak_rss(), peak, notes, peaks)

    @contextlib.contextmanager
    def _stage(self, name: str, timings: dict[str, float], peaks: dict[str, int]) -> Iterator[None]:
        """Time a stage and, on CUDA, record its own peak of allocated memory."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        if cuda:
            peaks[name] = torch.cuda.max_memory_allocated(self.device)

    def initial_noise(self, request: GenerationRequest, generator: torch.Generator) -> torch.Tensor:
        """randn [1, 16, (F-1)//4+1, H/8, W/8] drawn on the CPU in the transformer dtype (diffusers' randn_tensor)."""
        z, s = self.vae.config.z_dim, self.vae.config.spatial_factor
        shape = (1, z, request.latent_frames, request.height // s, request.width // s)
        return torch.randn(shape, generator=generator, dtype=self.dtype).to(self.device)

    def encode(
        self, request: GenerationRequest, noise: torch.Tensor, generator: torch.Generator, progress: ProgressFn
    ) -> _Conditioning:
        """Prompts (and for I2V the first frame) -> conditioning; the text encoder leaves the device afterwards."""
        guided = needs_uncond(request.guidance_config())
        conditioned = request.image is not None and request.latent_frames > 1  # one latent frame: plain T2V
        total = 1 + guided + conditioned
        progress("encode", 0, total)
        with _text_encoder_placed(self.text_encoder, self.text_placement, self.device):
            text = self._encode_prompt(request.prompt, "prompt")
            progress("encode", 1, total)
            negative = self._encode_prompt(request.negative_prompt, "negative prompt") if guided else None
            progress("encode", 1 + guided, total)
            cond_latents, mask = torch.zeros_like(noise), torch.zeros_like(noise[:, :1])
            image_embeds = None
            if conditioned:
                pixels = self._first_frame(request)
                cond_latents[:, :, :1] = self._first_frame_latents(pixels, generator).to(noise.dtype)
                mask[:, :, 0] = 1.0
                image_embeds = self.text_encoder.encode_image(pixels).to(self.device, self.dtype)
                progress("encode", total, total)
        return _Conditioning(text, negative, cond_latents, mask, image_embeds)

    def _encode_prompt(self, prompt: str, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        # One prompt per call is never padded; the transformer drops an all-true mask (attention's fast path).
        embeds, mask = self.text_encoder.encode([prompt], labels=[label])
        return embeds.to(self.device, self.dtype), mask.to(self.device)

    def _first_frame(self, request: GenerationRequest) -> torch.Tensor:
        image = load_image(request.image)
        # The reference casts the preprocessed video to the transformer dtype before the VAE and SigLIP see it.
        return preprocess_image(image, request.height, request.width).to(self.device, self.dtype)

    def _first_frame_latents(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # The posterior *sample* (not its mean), from the same generator right after the noise: reference order.
        latents = self.vae.encode(pixels[:, :, None]).sample(generator)
        return self.vae.normalize_latents(latents)

    def _preview_callback(self, steps: int, on_preview: PreviewFn | None, every: int | None) -> StepCallback | None:
        """The denoise loop's `on_denoised` that turns every `every`-th clean-latent estimate into a preview."""
        if on_preview is None:
            return None
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise RequestError(f"preview_every must be a positive integer, got {every!r}")
        every = every or max(1, math.ceil(steps / PREVIEWS_PER_RUN))
        if self.preview_projection is None:
            self.preview_projection = fit_latent_rgb(self.vae)
        projection = self.preview_projection

        def on_denoised(step: int, denoised: torch.Tensor) -> None:
            done = step + 1
            if done % every == 0 and done < steps:
                on_preview(done, steps, projection.preview(self.vae.denormalize_latents(denoised)))

        return on_denoised

    def sample(
        self,
        request: GenerationRequest,
        noise: torch.Tensor,
        cond: _Conditioning,
        shift: float,
        progress: ProgressFn,
        on_denoised: StepCallback | None = None,
    ) -> torch.Tensor:
        """The denoising loop from pure noise to clean latents (model space)."""
        schedule = schedule_for(request.solver, request.steps, shift)
        schedule = Schedule(schedule.sigmas.to(self.device), schedule.timesteps.to(self.device))

        @torch.no_grad()
        def predict_velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool) -> torch.Tensor:
            text, text_mask = cond.text if conditional else cond.negative
            hidden = torch.cat([x, cond.latents, cond.mask], dim=1)  # [B, 16 + 16 + 1, F, h, w]
            return self.transformer(hidden, t, text, text_mask, cond.image_embeds)

        progress("denoise", 0, request.steps)
        return denoise(
            predict_velocity,
            noise,
            schedule,
            request.solver,
            request.guidance_config(),
            on_step=lambda i, _: progress("denoise", i + 1, request.steps),
            on_denoised=on_denoised,
        )

    def decode(self, request: GenerationRequest, latents: torch.Tensor, shift: float, progress: ProgressFn) -> Path:
        """Stream decoded frames straight into the video file (one latent frame of pixels alive at a time)."""
        vae_dtype = self.vae.post_quant_conv.weight.dtype
        z = self.vae.denormalize_latents(latents.to(vae_dtype))
        total = z.shape[2]
        if z.is_cuda:  # hand the denoiser's cached blocks back first: fewer fragments next to the VAE's caches
            torch.cuda.empty_cache()

        def chunks() -> Iterator[torch.Tensor]:
            progress("decode", 0, total * self.vae_bands)

            def on_step(done: int, steps: int) -> None:  # per latent frame, of every band
                progress("decode", done, steps)

            decoded = self.vae.decode_frames(z, self.vae_tile, self.vae_frame_by_frame, self.vae_bands, on_step)
            for pixels in decoded:
                yield pixels[0]  # [3, n, H, W]

        output = Path(request.output).expanduser()
        with staged_output(output, request.frames) as partial:
            write_video(chunks(), partial, request.fps, _metadata(request, shift))
        return output


def load_pipeline(
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "auto",
    kernels: str = "auto",
    plan: Plan | None = None,
    text_encoder_dtype: torch.dtype | None = None,
    loras: Sequence[tuple[str | Path, float]] = (),
) -> MotifVideoPipeline:
    """Load Motif-Video from a local checkpoint folder (official layout) or a Hub repo id (cache first).

    `gguf`: a `.gguf` file or a variant name of the official GGUF repo (e.g. "Q4_K_M") that replaces the
    checkpoint's `transformer/`. Every required file is checked before any weights are read. The text encoder
    is loaded on the CPU and visits `device` only while prompts are encoded. `plan` (from `plan_generation`):
    load on the CPU, then stream / chunk / tile as the memory plan says instead of putting everything on `device`.
    `text_encoder_dtype` (default `dtype`): e.g. bfloat16 (the checkpoint's own dtype) next to a float32
    transformer on the CPU, halving the encoder's 17 GB; its outputs are cast to `dtype`.
    `loras`: (file, strength) pairs, checked against the transformer before any weight is read, then merged into
    its float weights or kept beside packed GGUF weights (motif_lite/weights/lora.py).
    """
    target = resolve_device(device)
    root = locate_checkpoint(model, with_transformer=gguf is None)
    scheduler_shift = shift_from_scheduler_config(root / "scheduler")
    transformer_source = resolve_gguf(str(gguf)) if gguf is not None else root
    lora_files = _check_loras(loras, transformer_source)
    load_device = "cpu" if plan is not None else target  # the plan moves what fits
    text_encoder = load_text_encoder(root, dtype=text_encoder_dtype or dtype, device="cpu")
    vae = load_vae(root, dtype=dtype, device=load_device)
    transformer = load_transformer(transformer_source, dtype=dtype, device=load_device)
    applied_loras = apply_loras(transformer, lora_files, dtype) if lora_files else None
    apply_kernels(transformer, kernels)
    pipe = MotifVideoPipeline(transformer, text_encoder, vae, target, dtype, scheduler_shift)
    pipe.loras = applied_loras
    if plan is not None:
        pipe.text_placement = plan.text_placement
        pipe.plan_handle = apply_plan(transformer, vae, plan)
        pipe.vae_tile = pipe.plan_handle.vae_tile
        pipe.vae_frame_by_frame = pipe.plan_handle.vae_frame_by_frame
        pipe.vae_bands = pipe.plan_handle.vae_bands
    return pipe


def _check_loras(loras: Sequence[tuple[str | Path, float]], transformer_source: Path) -> list[LoRAFile]:
    """Read the LoRA files and check them against the transformer's layers, from file headers only."""
    if not loras:
        return []
    targets = linear_shapes(meta_transformer(transformer_source))
    return read_loras([LoRASpec(Path(path), float(strength)) for path, strength in loras], targets)


def plan_generation(
    request: GenerationRequest,
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "auto",
    vram_gib: float | None = None,
    kernels: str = "auto",
) -> Plan:
    """The memory plan for a (resolved) request, from configs and file headers only: no weights are loaded.

    The budget is `vram_gib`, else the device's free memory (no limit on the CPU). Raises a `MotifLiteError`
    naming the smallest possible peak when nothing fits.
    """
    target = resolve_device(device)
    root = locate_checkpoint(model, with_transformer=gguf is None)
    budget = int(vram_gib * 2**30) if vram_gib is not None else default_budget(target)
    config, weight_bytes = _transformer_size(root, gguf, dtype)
    text_bytes = _stored_numel(sorted(root.glob("text_encoder/*.safetensors"))) * dtype.itemsize
    vae_config = WanVAEConfig.from_json(root / "vae" / "config.json")
    # cfg_batch=1: `denoise` runs the conditional and unconditional predictions as separate calls.
    return plan_memory(
        request.width, request.height, request.frames, config, weight_bytes, text_bytes, vae_config, budget,
        cfg_batch=1, device=str(target), vae_dtype=dtype, fused_norms=target.type == "cuda" and use_triton(kernels),
    )  # fmt: skip


def _transformer_size(root: Path, gguf: str | Path | None, dtype: torch.dtype) -> tuple[TransformerConfig, int]:
    config_path = root / "transformer" / "config.json"
    # An official GGUF has the official architecture: the config defaults when no config.json is at hand.
    config = TransformerConfig.from_json(config_path) if config_path.is_file() else TransformerConfig()
    if gguf is not None:
        return config, read_gguf(resolve_gguf(str(gguf))).nbytes()  # packed bytes, memory-mapped header read
    return config, _stored_numel(sorted(root.glob("transformer/*.safetensors"))) * dtype.itemsize


def _stored_numel(files: list[Path]) -> int:
    """Elements in safetensors files, from their headers (no tensor data is read)."""
    total = 0
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    total += math.prod(f.get_slice(name).get_shape())
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"cannot read {path} (corrupt or truncated safetensors?): {exc}") from exc
    return total


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" = the first CUDA device if there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return resolved


def locate_checkpoint(model: str | Path, with_transformer: bool = True) -> Path:
    """The local checkpoint folder for a path or repo id, after checking every file the pipeline will read."""
    groups = [g for g in _REQUIRED if with_transformer or g != "transformer"]
    patterns = [f"{g}/*" for g in groups] + _OPTIONAL_PATTERNS
    root = resolve_checkpoint(str(model), allow_patterns=patterns)
    missing = [p for g in groups for p in _REQUIRED[g] if not any(root.glob(p))]
    if missing:
        raise CheckpointError(
            f"incomplete checkpoint {root}: missing {', '.join(missing)} "
            f"(expected the layout of {MOTIF_REPO}; re-download the missing files)"
        )
    return root


@contextlib.contextmanager
def staged_output(path: Path, frames: int) -> Iterator[Path]:
    """Yield a hidden sibling path to write to; move the result to `path` on success, delete it on any failure.

    A crash or Ctrl-C mid-write never leaves a truncated video under the requested name. For PNG sequences
    (`out_%03d.png`) every frame file is staged and moved.
    """
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    pairs = _staged_files(partial, path, frames)
    try:
        yield partial
    except BaseException:
        for staged, _ in pairs:
            staged.unlink(missing_ok=True)
        raise
    for staged, final in pairs:
        os.replace(staged, final)


def _staged_files(partial: Path, final: Path, frames: int) -> list[tuple[Path, Path]]:
    if final.suffix.lower() != ".png":
        return [(partial, final)]
    return [(partial.with_name(partial.name % i), final.with_name(final.name % i)) for i in range(frames)]


@contextlib.contextmanager
def _text_encoder_placed(
    text_encoder: TextEncoder, placement: TextEncoderPlacement, device: torch.device
) -> Iterator[None]:
    # The 4B-parameter encoder is needed for a few seconds per video: it gives the device back before the
    # transformer runs, whole or streamed (its embedding table alone is 1.3 GB in bf16).
    if placement is TextEncoderPlacement.CPU:
        yield
        return
    handle = place_text_encoder(text_encoder.model, placement, StreamingConfig(device))
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        text_encoder.offload()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _metadata(request: GenerationRequest, shift: float) -> dict:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(request).items()}
    settings.pop("output")
    return {"software": "motif-lite", **settings, "flow_shift": shift, "guidance_config": request.guidance_config()}
