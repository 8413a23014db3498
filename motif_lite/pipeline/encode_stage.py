"""The encode stage of `MotifVideoPipeline.generate`: the initial noise, then the prompts (and for image-to-video
the first frame) encoded into the `Conditioning` the denoising reads, from the encodings the pipeline kept where it
can (`KeptEncodings`)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING

import torch

from motif_lite.errors import CheckpointError
from motif_lite.io.clip import Clip, last_frame, read_clip
from motif_lite.io.image import load_image, preprocess_image
from motif_lite.numerics import check_finite
from motif_lite.pipeline.conditioning import Conditioning, KeptImage, first_frame_key, text_encoder_placed
from motif_lite.pipeline.result import ProgressFn
from motif_lite.pipeline.video_run import VideoRun
from motif_lite.request import GenerationRequest
from motif_lite.request import first_frame_sha256 as checksum_of_first_frame
from motif_lite.vae.posterior import DiagonalGaussian

if TYPE_CHECKING:  # only the annotations name it
    import PIL.Image


class EncodeStage:
    """`MotifVideoPipeline`'s methods of the encode stage: a part of that class, which sets what they read
    (`text_encoder`, `vae`, `device`, `dtype`, `kept_encodings`, `cuts_said`, ...)."""

    def _inputs(
        self, run: VideoRun, generator: torch.Generator, input_image: PIL.Image.Image | None
    ) -> tuple[torch.Tensor, Conditioning]:
        """The initial noise (the generator's first draw, as in both reference pipelines), then the conditioning.
        In a parallel run rank 0 makes both and the other ranks receive them (an error there reaches them all)."""
        request = run.request

        def make() -> tuple[torch.Tensor, Conditioning]:
            if request.starts_from_frame and not self.text_encoder.can_encode_images:
                raise CheckpointError(
                    "image-to-video needs feature_extractor/preprocessor_config.json in the checkpoint"
                )
            noise = self.initial_noise(request, generator)
            guided = run.settings.guided
            return noise, self.encode(
                request, noise, generator, run.progress, guided, run.clip, input_image, run.first_frame_sha256
            )

        return make() if self.parallel is None else self.parallel.share(make)

    def initial_noise(self, request: GenerationRequest, generator: torch.Generator) -> torch.Tensor:
        """randn [1, 16, (F-1)//4+1, H/8, W/8] drawn on the CPU in the transformer dtype (diffusers' randn_tensor)."""
        shape = self.vae.config.latent_shape(request.width, request.height, request.frames)
        return torch.randn(shape, generator=generator, dtype=self.dtype).to(self.device)

    def encode(
        self,
        request: GenerationRequest,
        noise: torch.Tensor,
        generator: torch.Generator,
        progress: ProgressFn,
        guided: bool = True,
        clip: Clip | None = None,
        input_image: PIL.Image.Image | None = None,
        first_frame_sha256: str | None = None,
    ) -> Conditioning:
        """Prompts (and for I2V the first frame) -> conditioning; the text encoder leaves the device afterwards.

        guided: whether the guidance needs the negative prompt's embeddings. clip: the clip `request.extend` names,
        as read already (read here when its last frame is needed and it is None). input_image: `request.image` as read
        already (`io.image.read_image`; read here when it is needed and None). first_frame_sha256: the checksum of the
        file the first frame comes from (`ResolvedRequest.first_frame_sha256`), by which its encodings are kept for
        the next video; None: hashed here for a conditioned request (a Python caller's), as `generate` hashes once."""
        conditioned = request.conditions_on_image
        if conditioned and first_frame_sha256 is None:
            first_frame_sha256 = checksum_of_first_frame(request)
        total = 1 + guided + conditioned
        progress("encode", 0, total)
        cond_latents, mask = torch.zeros_like(noise), torch.zeros_like(noise[:, :1])
        image_key = first_frame_key(first_frame_sha256, request) if conditioned else None
        image = self.kept_encodings.image(image_key, self.text_encoder, self.vae) if conditioned else None
        image_needed = conditioned and image is None
        texts = (request.prompt, request.negative_prompt) if guided else (request.prompt,)
        encoder_needed = image_needed or not all(self.kept_encodings.has_text(t, self.text_encoder) for t in texts)
        # Every text already encoded: the text encoder stays where it is (not placed on the device and back).
        placed = (
            text_encoder_placed(self.text_encoder, self.text_placement, self.device)
            if encoder_needed
            else contextlib.nullcontext()
        )
        with placed:
            text = self._encode_prompt(request.prompt, "prompt")
            progress("encode", 1, total)
            negative = self._encode_prompt(request.negative_prompt, "negative prompt") if guided else None
            progress("encode", 1 + guided, total)
            if image_needed:
                pixels, image_size = self._first_frame(request, clip, input_image)
                image_embeds = self.text_encoder.encode_image(pixels).to(self.device, self.dtype)
                check_finite(image_embeds, "the image encoder's embeddings of the first frame")
        if not conditioned:
            return Conditioning(text, negative, cond_latents, mask, None, None)
        if image_needed:  # the VAE encodes the first frame once the text encoder has left the device
            posterior = self.vae.encode(pixels[:, :, None], bands=self.vae_mode.bands)
            image = KeptImage(image_key, image_size, image_embeds, posterior)
        cond_latents[:, :, :1] = self._first_frame_latents(image.posterior.to(self.device), generator).to(noise.dtype)
        mask[:, :, 0] = 1.0
        if image_needed:  # kept once all of it is known to be finite
            self.kept_encodings.keep_image(image, self.text_encoder, self.vae)
        progress("encode", total, total)
        return Conditioning(text, negative, cond_latents, mask, image.embeds.to(self.device), image.size)

    def _encode_prompt(self, prompt: str, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        kept = self.kept_encodings.text(prompt, self.text_encoder)
        if kept is not None:
            if kept.truncation is not None and self._first_cut_of(prompt, kept.truncation.warning(label)):
                kept.truncation.log_warning(label)  # `encode` does not run: said here (the same text, another label)
            return kept.embeds.to(self.device), kept.mask.to(self.device)
        from motif_lite.encoders.text import warnings_not_logged

        truncation = self.text_encoder.truncation(prompt)
        warning = None if truncation is None else truncation.warning(label)
        # A text encoded again (its kept encoding was dropped since) was said cut already.
        said = {warning} if warning is not None and not self._first_cut_of(prompt, warning) else set()
        # One prompt per call is never padded; the transformer drops an all-true mask (attention's fast path).
        with warnings_not_logged(said):
            embeds, mask = self.text_encoder.encode([prompt], labels=[label])
        embeds, mask = embeds.to(self.device, self.dtype), mask.to(self.device)
        check_finite(embeds, f"the text encoder's embeddings of the {label}")  # before any step is spent
        self.kept_encodings.keep_text(prompt, self.text_encoder, embeds, mask, truncation)
        return embeds, mask

    def _first_cut_of(self, text: str, warning: str) -> bool:
        """Whether the cut `warning` of `text` is new to this pipeline (`cuts_said`), which now knows it."""
        said = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), warning)
        if said in self.cuts_said:
            return False
        self.cuts_said.add(said)
        return True

    def _first_frame(
        self, request: GenerationRequest, clip: Clip | None, input_image: PIL.Image.Image | None
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """The first frame's pixels, and the image's size before they were resized (for the summary).
        `input_image`: `request.image` as read already, None to read it here."""
        if request.extend is None:
            image = input_image if input_image is not None else load_image(request.image)
        else:
            image = last_frame(clip if clip is not None else read_clip(request.extend))
        # The reference casts the preprocessed video to the transformer dtype before the VAE and SigLIP see it.
        return preprocess_image(image, request.height, request.width).to(self.device, self.dtype), image.size

    def _first_frame_latents(self, posterior: DiagonalGaussian, generator: torch.Generator) -> torch.Tensor:
        # The posterior *sample* (not its mean), from the same generator right after the noise: reference order.
        latents = posterior.sample(generator)
        latents = self.vae.normalize_latents(latents)
        check_finite(latents, "the VAE's latents of the first frame")
        return latents
