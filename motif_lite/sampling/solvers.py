"""ODE solver steps for flow matching (the model predicts velocity v = noise − x0; x_σ = (1−σ)·x0 + σ·noise).

`Euler` equals FlowMatchEulerDiscreteScheduler.step; `DPMpp2M` equals DPMSolverMultistepScheduler(
algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", prediction_type="flow_prediction",
use_flow_sigmas=True, lower_order_final=True, final_sigmas_type="zero").step, op for op, so that results match
in every dtype: the step math runs on the float32 sigmas as 0-dim tensors and the sample is upcast to float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from motif_lite.sampling.schedule import SamplingSettingsError, Schedule, ScheduleOptions, dpm_schedule, flow_schedule


class Solver(Protocol):
    """One solver instance serves one sampling run; it may carry state from step to step. Solvers are dataclasses
    whose fields are that state (`solver_state`, `with_solver_state`: what a stopped run keeps to go on)."""

    def step(self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        """Move the sample `x` at noise level `sigma` to `sigma_next` given the velocity `v`."""
        ...


def solver_state(solver: Solver) -> dict[str, torch.Tensor]:
    """The state `solver` carries to its next step (its fields that are set)."""
    return {f.name: value for f in dataclasses.fields(solver) if (value := getattr(solver, f.name)) is not None}


def with_solver_state(solver: Solver, state: dict[str, torch.Tensor]) -> Solver:
    """`solver` with a saved `solver_state` put back; fields it does not have mean another solver saved them."""
    unknown = set(state) - {f.name for f in dataclasses.fields(solver)}
    if unknown:
        raise SamplingSettingsError(
            f"the sampling state holds {sorted(unknown)}, which the {type(solver).__name__} solver does not keep: "
            "it comes from a run with another sampler"
        )
    return dataclasses.replace(solver, **state)


def _f32(value: torch.Tensor | float) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float32)


def euler_step(
    x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """x + (σ_next − σ)·v computed with a float32 sample; returns v's dtype (like the reference scheduler)."""
    dt = _f32(sigma_next) - _f32(sigma)
    # dt is a 0-dim float32 tensor: `dt * v` stays in v's dtype, the sum is float32 (same promotion as diffusers).
    return (x.to(torch.float32) + dt * v).to(v.dtype)


@dataclass
class Euler:
    """First-order flow-matching Euler; stateless."""

    def step(self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return euler_step(x, v, sigma, sigma_next)


def _lambda(sigma: torch.Tensor) -> torch.Tensor:
    # log-SNR of the flow path: alpha = 1 − σ. σ = 0 gives +inf, which the update formulas handle exactly.
    return torch.log(1 - sigma) - torch.log(sigma)


@dataclass
class DPMpp2M:
    """DPM-Solver++(2M) on data predictions; holds the previous step's denoised estimate and its sigma.

    The first step and the step into σ = 0 are first order (as diffusers does with final_sigmas_type="zero");
    every other step is the second-order multistep (midpoint) update. Use a fresh instance per run.
    """

    prev_x0: torch.Tensor | None = None
    prev_sigma: torch.Tensor | None = None

    def step(self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = _f32(sigma), _f32(sigma_next)
        x0 = x - sigma * v  # flow prediction -> data prediction, in the model's dtype (before the upcast)
        sample = x.to(torch.float32)
        alpha_next = 1 - sigma_next
        h = _lambda(sigma_next) - _lambda(sigma)
        decay = alpha_next * (torch.exp(-h) - 1.0)
        if self.prev_x0 is None or bool(sigma_next == 0):
            out = (sigma_next / sigma) * sample - decay * x0
        else:
            r0 = (_lambda(sigma) - _lambda(self.prev_sigma)) / h
            d1 = (1.0 / r0) * (x0 - self.prev_x0)
            out = (sigma_next / sigma) * sample - decay * x0 - 0.5 * decay * d1
        self.prev_x0, self.prev_sigma = x0, sigma
        return out.to(x0.dtype)


# Solver name -> (factory of a fresh solver, the schedule its reference scheduler builds). A new instance per
# run keeps multistep state from leaking between videos.
SOLVERS: dict[str, tuple[Callable[[], Solver], Callable[[int, float, ScheduleOptions | None], Schedule]]] = {
    "euler": (Euler, flow_schedule),
    "dpmpp_2m": (DPMpp2M, dpm_schedule),
}


def _lookup(name: str) -> tuple[Callable[[], Solver], Callable[[int, float, ScheduleOptions | None], Schedule]]:
    if name not in SOLVERS:
        raise SamplingSettingsError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[name]


def make_solver(name: str) -> Solver:
    """A fresh solver by name: "euler" or "dpmpp_2m"."""
    return _lookup(name)[0]()


def schedule_for(name: str, steps: int, shift: float, options: ScheduleOptions | None = None) -> Schedule:
    """The schedule the named solver's reference scheduler uses: flow_schedule (euler) or dpm_schedule, with the
    checkpoint's scheduler `options` (`schedule.schedule_options`)."""
    return _lookup(name)[1](steps, shift, options)
