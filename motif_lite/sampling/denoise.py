"""The sampling loop: schedule + solver + guidance around a velocity callback (see docs/sampling.md)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from motif_lite.sampling.guidance import APGState, Guidance, guidance_active, guide
from motif_lite.sampling.schedule import SamplingSettingsError, Schedule, batch_timestep
from motif_lite.sampling.solvers import make_solver

# (latents [B, C, F, H, W], timestep [B], conditional) -> velocity shaped like latents. conditional=False asks
# for the negative-prompt prediction. The callback adds whatever the transformer needs besides the noisy
# latents (I2V: concat the condition latents and mask channels; the text and image embeddings).
VelocityFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
# (latents [B, C, F, H, W], timestep [B]) -> (conditional, unconditional) velocities, both shaped like latents,
# from one transformer forward over a batch of 2B rows (batched guidance).
GuidedVelocityFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (step index, latents after that step) -> None; for progress bars, previews, cancellation (raise).
StepCallback = Callable[[int, torch.Tensor], None]


def denoise(
    predict_velocity: VelocityFn,
    latents: torch.Tensor,
    schedule: Schedule,
    solver: str = "euler",
    guidance: Guidance | None = None,
    on_step: StepCallback | None = None,
    on_denoised: StepCallback | None = None,
    predict_guided: GuidedVelocityFn | None = None,
) -> torch.Tensor:
    """Integrate `latents` (pure noise at schedule.sigmas[0]) down to σ = 0 and return them.

    Each step calls `predict_velocity` for the conditional prediction, then (on guided steps) for the
    unconditional one, in that order and as two separate batch-B calls like the reference pipeline. With
    `predict_guided`, guided steps make one call that returns both predictions instead (batched guidance);
    unguided steps still call `predict_velocity` for the conditional prediction alone.
    `on_denoised(i, x0)` gets each step's clean-latent estimate x0 = x − σ·v (for previews).
    """
    if latents.ndim != 5:
        raise SamplingSettingsError(f"latents must be [B, C, F, H, W], got shape {tuple(latents.shape)}")
    stepper = make_solver(solver)
    apg_state = APGState()
    steps = schedule.steps
    for i in range(steps):
        timestep = batch_timestep(schedule.timesteps[i], latents.shape[0])
        if not guidance_active(guidance, i, steps):
            cond, uncond = predict_velocity(latents, timestep, True), None
        elif predict_guided is not None:
            cond, uncond = predict_guided(latents, timestep)
        else:
            cond, uncond = predict_velocity(latents, timestep, True), predict_velocity(latents, timestep, False)
        velocity = guide(guidance, cond, uncond, apg_state, i, steps)
        if on_denoised is not None:
            on_denoised(i, latents - schedule.sigmas[i] * velocity)
        latents = stepper.step(latents, velocity, schedule.sigmas[i], schedule.sigmas[i + 1])
        if on_step is not None:
            on_step(i, latents)
    return latents
