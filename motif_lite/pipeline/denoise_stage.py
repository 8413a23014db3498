"""The denoise stage of `MotifVideoPipeline.generate`: the sampling loop with the pipeline's speed settings around
the transformer (step cache, batched guidance, compiled blocks, parallel split), and the previews of its steps."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from motif_lite.io.preview import preview_steps
from motif_lite.pipeline.conditioning import Conditioning
from motif_lite.pipeline.result import DenoiseRecord, PreviewFn, ProgressFn
from motif_lite.pipeline.step_watch import StepWatch
from motif_lite.request import GenerationRequest
from motif_lite.runtime.forward import velocity_fns
from motif_lite.runtime.step_cache import StepCache
from motif_lite.sampling import SamplingState, Schedule, StepCallback, denoise, schedule_for
from motif_lite.settings import Settings
from motif_lite.vae.preview import fit_latent_rgb


def _forward_shapes(cond: Conditioning, guidance_batch: int) -> tuple:
    """The shapes that decide what the compiled blocks are compiled for in a run: the latents' (video size), the
    prompts' token counts, the first frame's embeddings and the rows per forward. A second video at the same
    shapes (a batch, a later `generate`) runs the blocks compiled by the first."""
    tensors = (cond.latents, cond.text[0], None if cond.negative is None else cond.negative[0], cond.image_embeds)
    return guidance_batch, *(None if tensor is None else tuple(tensor.shape) for tensor in tensors)


class DenoiseStage:
    """`MotifVideoPipeline`'s methods of the denoise stage: a part of that class, which sets what they read
    (`transformer`, `step_cache`, `batch_guidance`, `parallel`, `preview_projection`, ...)."""

    def _preview_callback(self, steps: int, on_preview: PreviewFn | None, every: int | None) -> StepCallback | None:
        """The denoise loop's `on_denoised` that turns every `every`-th clean-latent estimate into a preview."""
        if on_preview is None:
            return None
        shown = set(preview_steps(steps, every))  # the steps the run's note named (`preview_note`)
        if self._preview_fitted_to is None or self._preview_fitted_to() is not self.vae:
            self.preview_projection = fit_latent_rgb(self.vae)
            self._preview_fitted_to = weakref.ref(self.vae)
        projection = self.preview_projection

        def on_denoised(step: int, denoised: torch.Tensor) -> None:
            done = step + 1
            if done in shown:
                on_preview(done, steps, projection.preview(self.vae.denormalize_latents(denoised)))

        return on_denoised

    def sample(
        self,
        request: GenerationRequest,
        noise: torch.Tensor,
        cond: Conditioning,
        settings: Settings,
        progress: ProgressFn,
        on_denoised: StepCallback | None = None,
        start: SamplingState | None = None,
        on_state: Callable[[SamplingState], None] | None = None,
    ) -> tuple[torch.Tensor, DenoiseRecord]:
        """The denoising loop from pure noise (or from `start`, a stopped run's state) to clean latents (model
        space), with the effective settings (for a resumed run: `first_step` = `start.done`, as `generate` makes
        them), and a record of its steps; `on_state` gets the state after each step."""
        schedule = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        schedule = Schedule(schedule.sigmas.to(self.device), schedule.timesteps.to(self.device))
        guidance = settings.guidance.value
        cache = None if self.step_cache is None else StepCache(self.transformer, self.step_cache, request.steps)
        first = settings.first_step  # a resumed run's: `start.done`, which `generate` puts there
        record = DenoiseRecord(2 if self.batch_guidance and settings.guided else 1, None)
        if self.compile_handle is not None:  # a compile time is told only for the run that compiled
            record.compiled = self.compile_handle.compiles_at(_forward_shapes(cond, record.guidance_batch))
        # Latents that overflow with a LoRA at a huge strength: that strength, not a damaged file, is what to name.
        overflow_cause = self.loras.overflow_cause() if self.loras is not None else None
        # Each step timed, checked for inf/NaN and reported; on an accelerator one step late (the host waits for a
        # step while the next one runs: step_watch.py).
        on_step = StepWatch(
            record.step_seconds,
            request.steps,
            lambda done, total: progress("denoise", done, total),
            overflow_cause,
            lag=0 if self.device.type == "cpu" else 1,
            first=first,
        )

        # The transformer's forward with this run's step cache, batched guidance and parallel split around it.
        predict_velocity, predict_guided = velocity_fns(
            self.transformer, cond.inputs, lambda: on_step.next_step,
            cache=cache, parallel=self.parallel, batched=record.guidance_batch == 2,
        )  # fmt: skip
        progress("denoise", first, request.steps)
        try:
            latents = denoise(
                predict_velocity,
                noise,
                schedule,
                settings.solver,
                guidance,
                on_step,
                on_denoised,
                predict_guided=predict_guided,
                start=start,
                on_state=on_state,
            )
            on_step.finish()
        finally:  # a forward stopped inside a streamed block (out of memory, Ctrl-C) left it on the device
            if self.plan_handle is not None:
                self.plan_handle.release_loaded()
            self.transformer.end_run()  # the RoPE tables kept for the run's forwards: memory for the decode
        if cache is not None:
            record.step_cache = (cache.reused, cache.calls)
        return latents, record
