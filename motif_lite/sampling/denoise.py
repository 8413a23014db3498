"""The sampling loop: schedule + solver + guidance around a velocity callback (see docs/sampling.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from motif_lite.sampling.guidance import APGState, Guidance, guidance_active, guide
from motif_lite.sampling.schedule import SamplingSettingsError, Schedule, batch_timestep
from motif_lite.sampling.solvers import make_solver, solver_state, with_solver_state

# (latents [B, C, F, H, W], timestep [B], conditional) -> velocity shaped like latents. conditional=False asks
# for the negative-prompt prediction. The callback adds whatever the transformer needs besides the noisy
# latents (I2V: concat the condition latents and mask channels; the text and image embeddings).
VelocityFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
# (latents [B, C, F, H, W], timestep [B]) -> (conditional, unconditional) velocities, both shaped like latents,
# from one transformer forward over a batch of 2B rows (batched guidance).
GuidedVelocityFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (step index, latents after that step) -> None; for progress bars, previews, cancellation (raise).
StepCallback = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True)
class SamplingState:
    """A sampling loop after `done` steps: all it needs to go on exactly as if it had never stopped.

    `solver`: the solver's fields (DPM++ 2M: the previous step's x0 and sigma; UniPC: its previous sample and last
    two x0 with their sigmas; Euler: none); `apg_running`: APG's momentum buffer. The loop replaces these tensors
    each step and never changes one in place, so a state holds a consistent snapshot for as long as it is kept."""

    done: int
    latents: torch.Tensor  # [B, C, F, H, W], after step `done`
    solver: dict[str, torch.Tensor] = field(default_factory=dict)
    apg_running: torch.Tensor | None = None


# Called with the loop's state after each step (before `on_step`): what a run saves to continue later.
StateCallback = Callable[[SamplingState], None]


def denoise(
    predict_velocity: VelocityFn,
    latents: torch.Tensor,
    schedule: Schedule,
    solver: str = "euler",
    guidance: Guidance | None = None,
    on_step: StepCallback | None = None,
    on_denoised: StepCallback | None = None,
    predict_guided: GuidedVelocityFn | None = None,
    start: SamplingState | None = None,
    on_state: StateCallback | None = None,
) -> torch.Tensor:
    """Integrate `latents` (pure noise at schedule.sigmas[0]) down to σ = 0 and return them.

    Each step calls `predict_velocity` for the conditional prediction, then (on guided steps) for the
    unconditional one, in that order and as two separate batch-B calls like the reference pipeline. With
    `predict_guided`, guided steps make one call that returns both predictions instead (batched guidance);
    unguided steps still call `predict_velocity` for the conditional prediction alone.
    `on_denoised(i, x0)` gets each step's clean-latent estimate x0 = x − σ·v (for previews).
    `start`: a state `on_state` gave in an earlier run of the same settings; the loop goes on from it (its latents
    replace `latents`) and ends with the bits the uninterrupted run would have had.
    """
    stepper, apg_state = make_solver(solver), APGState()
    first = 0
    if start is not None:
        latents, first, apg_state.running = start.latents, start.done, start.apg_running
        stepper = with_solver_state(stepper, start.solver)
    if latents.ndim != 5:
        raise SamplingSettingsError(f"latents must be [B, C, F, H, W], got shape {tuple(latents.shape)}")
    steps = schedule.steps
    if not 0 <= first <= steps:  # (first == steps: a state after the last step, nothing left to do)
        raise SamplingSettingsError(f"a sampling state after step {first} cannot continue a run of {steps} steps")
    # Which steps end at σ = 0, read once for the run: a solver reading it from a GPU tensor would wait for the
    # device on every step (its queue drained, the next kernels late).
    into_zero = (schedule.sigmas[1:] == 0).tolist()
    for i in range(first, steps):
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
        latents = stepper.step(latents, velocity, schedule.sigmas[i], schedule.sigmas[i + 1], into_zero[i])
        if on_state is not None:
            on_state(SamplingState(i + 1, latents, solver_state(stepper), apg_state.running))
        if on_step is not None:
            on_step(i, latents)
    return latents
