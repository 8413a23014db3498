"""The stages of `motif-lite verify`: each gives both pipelines the same inputs and compares their outputs, reusing
what the earlier stages computed (embeddings, predictions)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from motif_lite.config import MAX_PROMPT_TOKENS
from motif_lite.numerics import NonFiniteError
from motif_lite.request import GenerationRequest
from motif_lite.sampling import APGState, guide, schedule_for
from motif_lite.settings import describe_guidance
from motif_lite.verify.results import StageResult, relative_difference
from motif_lite.verify.settings import ForcedSettings

# What our pipeline's NonFiniteError calls the first frame's latents (pipeline/encode_stage.py), the conditioning
# stage's own output; any other inf/NaN it stops at comes from an earlier stage's.
FIRST_FRAME_LATENTS = "the VAE's latents of the first frame"


@dataclass
class Comparison:
    """The stage comparisons; each stage reuses what the earlier ones computed (embeddings, predictions).
    `reference_i2v`: the image-to-video reference, with a first frame (`request.image`); None without."""

    ours: Any
    reference: Any
    request: GenerationRequest
    forced: ForcedSettings
    device: torch.device
    tolerances: dict[str, float]
    embeds: dict[str, torch.Tensor] = field(default_factory=dict)
    timestep: torch.Tensor | None = None
    cond: torch.Tensor | None = None
    uncond: torch.Tensor | None = None
    reference_i2v: Any = None
    # The reference's first-frame inputs to its transformer (conditioning stage): (latents, mask, image embeddings
    # in the transformer's dtype or None); both transformers get them at the transformer stage. None without -i.
    first_frame: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def stage(self, name: str, ours: torch.Tensor, reference: torch.Tensor, note: str = "") -> StageResult:
        sides = _not_finite(not bool(torch.isfinite(ours).all()), not bool(torch.isfinite(reference).all()))
        return StageResult(name, relative_difference(ours, reference), self.tolerances[name], note, sides)

    def text(self) -> StageResult:
        encoder, s = self.ours.text_encoder, self.request
        limit = MAX_PROMPT_TOKENS if self.forced.max_prompt_tokens is None else self.forced.max_prompt_tokens
        encoder.to(self.device)
        try:
            pe, npe, pm, npm = self.reference.encode_prompt(s.prompt, s.negative_prompt, device=self.device)
            prompts = {"prompt": s.prompt, "negative prompt": s.negative_prompt}
            ours = [encoder.encode([p], limit, labels=[label])[0][0] for label, p in prompts.items()]
        finally:
            encoder.offload()
        # Both transformers get them in their own dtype, as our pipeline casts them: a float16 run's text encoder
        # stays in bfloat16 (`dtypes.text_encoder_dtype`), and diffusers' transformer takes no other dtype.
        transformer_dtype = self.reference.transformer.dtype
        self.embeds = dict(pe=pe.to(transformer_dtype), npe=npe.to(transformer_dtype), pm=pm, npm=npm)
        reference = [pe[0, pm[0]], npe[0, npm[0]]]  # the valid tokens of each
        counts = [(len(o), len(r)) for o, r in zip(ours, reference, strict=True)]
        if any(a != b for a, b in counts):
            note = "token counts " + ", ".join(f"{a} vs {b}" for a, b in counts)
            return StageResult("text", math.inf, self.tolerances["text"], note)
        return self.stage("text", torch.cat(ours), torch.cat(reference).to(ours[0].dtype))

    def image(self) -> StageResult:
        """Our SigLIP embeddings of the first frame (read, resized and normalized as a run does) against the
        reference's (its own reading and preprocessing of the same file)."""
        from motif_lite.io.image import load_image, preprocess_image

        s, encoder, reference = self.request, self.ours.text_encoder, self.reference_i2v
        pixels = preprocess_image(load_image(s.image), s.height, s.width).to(self.device, self.ours.dtype)
        first_frame = ((self._reference_video()[:, 0] + 1) / 2).clamp(0, 1)  # as the reference's conditioning does
        encoder.to(self.device)  # one module on both sides: its SigLIP tower is the reference's vision_tower
        try:
            ours = encoder.encode_image(pixels)
            tower, processor = reference.text_encoder.vision_tower, reference.feature_extractor
            expected = reference._get_image_embeds(tower, processor, first_frame, self.device)
        finally:
            encoder.offload()
        return self.stage("image", ours, expected.to(ours.dtype), _reading_note(s.image))

    def conditioning(self) -> StageResult:
        """The first frame's latents and mask (16 + 1 of the 33 input channels) as each pipeline builds them: its
        VAE encodes its own pixels, and the posterior's sample is drawn after the noise from the same seed."""
        s, reference = self.request, self.reference_i2v
        generator = torch.Generator().manual_seed(s.seed)
        dtype = reference.transformer.dtype
        z_dim = reference.vae.config.z_dim
        latents = reference.prepare_latents(1, z_dim, s.height, s.width, s.frames, dtype, self.device, generator)
        with _encoder_on(self.ours.text_encoder, self.device):  # the reference runs its SigLIP tower here
            expected, mask, embeds = reference._prepare_first_frame_conditioning(
                self._reference_video(), latents, True, generator
            )
        self.first_frame = (expected, mask, None if embeds is None else embeds.to(dtype))
        expected = torch.cat([expected, mask], dim=1)
        generator = torch.Generator().manual_seed(s.seed)
        noise = self.ours.initial_noise(s, generator)
        try:
            ours = self.ours.encode(s, noise, generator, lambda *_: None)
        except NonFiniteError as exc:  # our pipeline stops there, as a run would: the result of this stage
            sides = _not_finite(True, not bool(torch.isfinite(expected).all()))
            note = f"ours: {exc.what} hold inf or NaN"
            if exc.what != FIRST_FRAME_LATENTS:  # our encode stops at the text or SigLIP embeddings, before the VAE
                note += " (an earlier stage's output, not this stage's)"
            return StageResult("conditioning", math.nan, self.tolerances["conditioning"], note, sides)
        return self.stage("conditioning", torch.cat([ours.latents, ours.mask], dim=1), expected)

    def _reference_video(self) -> torch.Tensor:
        """The first frame as the reference's `__call__` prepares it: [1, 1, 3, H, W] in [-1, 1], its dtype."""
        from diffusers.utils import load_image

        s, reference = self.request, self.reference_i2v
        video = reference.video_processor.preprocess_video([load_image(str(s.image))], height=s.height, width=s.width)
        return video.permute(0, 2, 1, 3, 4).to(self.device, reference.transformer.dtype)

    def transformer(self) -> StageResult:
        request = self.request
        noise = self.ours.initial_noise(request, torch.Generator().manual_seed(request.seed))
        # With a first frame, the reference's latents, mask and image embeddings to both: a mismatch here is then
        # our transformer's image path too (its image projection), not only the frames stage's.
        without_image = (torch.zeros_like(noise), torch.zeros_like(noise[:, :1]), None)
        latents, mask, image_embeds = self.first_frame or without_image
        hidden = torch.cat([noise, latents, mask], dim=1)
        settings = self.ours.settings_for(request)
        schedule = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        self.timestep = schedule.timesteps[:1].to(self.device)
        e = self.embeds

        def reference(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            kwargs = dict(encoder_hidden_states=text, encoder_attention_mask=mask, return_dict=False)
            transformer = self.reference.transformer
            return transformer(hidden_states=hidden, timestep=self.timestep, image_embeds=image_embeds, **kwargs)[0]

        self.cond, self.uncond = reference(e["pe"], e["pm"]), reference(e["npe"], e["npm"])
        ours = self.ours.transformer(hidden, self.timestep, e["pe"], e["pm"], image_embeds)
        return self.stage("transformer", ours, self.cond, f"t = {float(self.timestep[0]):.1f}")

    def guidance(self) -> StageResult:
        request = self.request
        ours_guidance = self.ours.settings_for(request).guidance.value
        ours = guide(ours_guidance, self.cond, self.uncond, APGState(), 0, request.steps)
        guider, e = self.reference.guider, self.embeds
        guider.set_state(step=0, num_inference_steps=request.steps, timestep=self.timestep[0])
        inputs = {"encoder_hidden_states": (e["pe"], e["npe"]), "encoder_attention_mask": (e["pm"], e["npm"])}
        batches = guider.prepare_inputs(inputs)
        predictions = {"pred_cond": self.cond, "pred_uncond": self.uncond}
        for batch in batches:
            batch.noise_pred = predictions[getattr(batch, guider._identifier_key)]
        reference = guider(batches).pred
        return self.stage("guidance", ours, reference, f"ours: {describe_guidance(ours_guidance, request.steps)}")

    def vae(self) -> StageResult:
        request = self.request
        shape = self.ours.vae.config.latent_shape(request.width, request.height, request.frames)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(request.seed + 1))
        vae = self.reference.vae
        z = latents.to(self.device, vae.dtype)
        raw = self.reference._denormalize_latents(z, vae.config.latents_mean, vae.config.latents_std)
        reference = vae.decode(raw, return_dict=False)[0]
        ours_vae, mode = self.ours.vae, self.ours.vae_mode
        ours = ours_vae.decode(ours_vae.denormalize_latents(z), mode.tile, mode.frame_by_frame, mode.bands)
        return self.stage("vae", ours, reference)

    def frames(self) -> StageResult:
        e, s = self.embeds, self.request
        # As floats, which still show inf/NaN; then to uint8 frames as the reference's "pil" output makes them.
        first_frame = {}
        if self.reference_i2v is not None:  # its `prompt` has no default: the embeddings stand for it, as above
            from diffusers.utils import load_image

            first_frame = {"image": load_image(str(s.image)), "prompt": None}
        pipeline = self.reference if self.reference_i2v is None else self.reference_i2v
        with contextlib.ExitStack() as image_path:  # entered first: a context that fails to enter undoes the others
            if self.reference_i2v is not None:  # it runs the SigLIP tower (our text encoder's) on its device
                image_path.enter_context(_encoder_on(self.ours.text_encoder, self.device))
                image_path.enter_context(_image_embeds_in_dtype(pipeline.transformer))
            video = pipeline(
                **first_frame, prompt_embeds=e["pe"], negative_prompt_embeds=e["npe"], prompt_attention_mask=e["pm"],
                negative_prompt_attention_mask=e["npm"], height=s.height, width=s.width, num_frames=s.frames,
                num_inference_steps=s.steps, generator=torch.Generator().manual_seed(s.seed), output_type="np",
            ).frames[0]  # fmt: skip
        reference_finite, tolerance = bool(np.isfinite(video).all()), self.tolerances["frames"]
        try:
            ours = self._our_frames()
        except NonFiniteError as exc:  # our run stops there: the result of this stage, not an error of verify
            sides = _not_finite(True, not reference_finite)
            return StageResult("frames", math.nan, tolerance, f"ours: {exc.what} hold inf or NaN", sides)
        if not reference_finite:
            return StageResult("frames", math.nan, tolerance, "", "reference")
        frames = self.reference.video_processor.numpy_to_pil(video)
        expected = torch.from_numpy(np.stack([np.asarray(frame) for frame in frames]).astype(np.float64))
        levels = int((ours - expected).abs().max()) if ours.shape == expected.shape else -1
        return self.stage("frames", ours, expected, f"max difference {levels}/255" if levels >= 0 else "")

    def _our_frames(self) -> torch.Tensor:
        """Our whole pipeline's frames as written to PNG files, [frames, H, W, 3] in levels of 255."""
        with tempfile.TemporaryDirectory() as folder:
            self.ours.generate(dataclasses.replace(self.request, output=Path(folder) / "frame_%03d.png"))
            files = sorted(Path(folder).glob("frame_*.png"))
            frames = np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in files])
        return torch.from_numpy(frames).double()


@contextlib.contextmanager
def _encoder_on(encoder: Any, device: torch.device) -> Iterator[None]:
    """Our text encoder on `device` while inside, back on the CPU after (`offload`, also on an error): its SigLIP
    tower is the reference's `text_encoder.vision_tower`, which the reference runs on the device its pixels are on,
    while our pipeline keeps the encoder on the CPU between uses."""
    encoder.to(device)
    try:
        yield
    finally:
        encoder.offload()


@contextlib.contextmanager
def _image_embeds_in_dtype(transformer: torch.nn.Module) -> Iterator[None]:
    """While inside, `transformer` gets its `image_embeds` in its own dtype. The reference borrows our text encoder,
    which keeps its own dtype (bfloat16 in a float16 run, `dtypes.text_encoder_dtype`), and passes the SigLIP
    embeddings on uncast, where diffusers loaded alone in float16 would hand over float16 ones: its image projection
    refuses the mix. Our pipeline casts them the same way."""

    def cast(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        embeds = kwargs.get("image_embeds")
        if embeds is not None:
            kwargs = {**kwargs, "image_embeds": embeds.to(transformer.dtype)}
        return args, kwargs

    handle = transformer.register_forward_pre_hook(cast, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _reading_note(path: Path) -> str:
    """What the image stage says when the two sides read other pixels from the first frame's file (before any
    resizing), so that the mismatch that follows is not taken for a bug: "" when they read the same."""
    from diffusers.utils import load_image as reference_load_image

    from motif_lite.io.image import load_image

    ours, reference = np.asarray(load_image(path)), np.asarray(reference_load_image(str(path)))
    if ours.shape == reference.shape and np.array_equal(ours, reference):
        return ""
    return (
        "the two sides read other pixels from this file: motif-lite scales a 16-bit or float image to 8 bits, "
        "diffusers' load_image clips it at 255; a mismatch from here on is expected, not a fault of either"
    )


def _not_finite(ours: bool, reference: bool) -> str:
    """The side whose output holds inf or NaN ("ours", "reference" or "both"), or "" when neither does."""
    if ours and reference:
        return "both"
    return "ours" if ours else "reference" if reference else ""
