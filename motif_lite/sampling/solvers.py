"""ODE solver steps for flow matching (the model predicts velocity v = noise − x0; x_σ = (1−σ)·x0 + σ·noise).

`Euler` equals FlowMatchEulerDiscreteScheduler.step; `DPMpp2M` equals DPMSolverMultistepScheduler(
algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", prediction_type="flow_prediction",
use_flow_sigmas=True, lower_order_final=True, final_sigmas_type="zero").step, op for op, so that results match
in every dtype: the step math runs on the float32 sigmas as 0-dim tensors and the sample is upcast to float32.
`UniPC` equals UniPCMultistepScheduler(solver_order=2, solver_type="bh2", predict_x0=True,
prediction_type="flow_prediction", use_flow_sigmas=True, lower_order_final=True, final_sigmas_type="zero").step,
op for op; that scheduler does not upcast: the sample stays in the model's dtype.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from motif_lite.sampling.schedule import (
    SamplingSettingsError,
    Schedule,
    ScheduleOptions,
    check_dpm_options,
    dpm_schedule,
    flow_schedule,
    unipc_schedule,
)


class Solver(Protocol):
    """One solver instance serves one sampling run; it may carry state from step to step. Solvers are dataclasses
    whose fields are that state (`solver_state`, `with_solver_state`: what a stopped run keeps to go on)."""

    def step(
        self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, final: bool | None = None
    ) -> torch.Tensor:
        """Move the sample `x` at noise level `sigma` to `sigma_next` given the velocity `v`. `final`: whether
        `sigma_next` is 0, when the caller knows it on the host (None: read from `sigma_next`, a host sync when it is
        on a GPU)."""
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

    def step(
        self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, final: bool | None = None
    ) -> torch.Tensor:
        return euler_step(x, v, sigma, sigma_next)


def _into_zero(sigma_next: torch.Tensor, final: bool | None) -> bool:
    """Whether a step ends at σ = 0: `final` where the caller knows it, else read from the tensor (a host sync)."""
    return bool(sigma_next == 0) if final is None else final


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

    def step(
        self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, final: bool | None = None
    ) -> torch.Tensor:
        sigma, sigma_next = _f32(sigma), _f32(sigma_next)
        x0 = x - sigma * v  # flow prediction -> data prediction, in the model's dtype (before the upcast)
        sample = x.to(torch.float32)
        alpha_next = 1 - sigma_next
        h = _lambda(sigma_next) - _lambda(sigma)
        decay = alpha_next * (torch.exp(-h) - 1.0)
        if self.prev_x0 is None or _into_zero(sigma_next, final):
            out = (sigma_next / sigma) * sample - decay * x0
        else:
            r0 = (_lambda(sigma) - _lambda(self.prev_sigma)) / h
            d1 = (1.0 / r0) * (x0 - self.prev_x0)
            out = (sigma_next / sigma) * sample - decay * x0 - 0.5 * decay * d1
        self.prev_x0, self.prev_sigma = x0, sigma
        return out.to(x0.dtype)


@dataclass
class UniPC:
    """UniPC (bh2, data prediction, order 2): each step first corrects the previous step's result with this step's
    data estimate (UniC, reusing the model call the next prediction needs anyway: one call per step), then predicts
    the next sample (UniP). The first step and the step into σ = 0 predict at first order, as diffusers does with
    lower_order_final; the correction is first order on the second step and second order after.

    State: the corrected sample the previous step started from, and the data estimates x0 = x − σ·v of the last two
    steps with their sigmas. Use a fresh instance per run.
    """

    last_sample: torch.Tensor | None = None
    last_x0: torch.Tensor | None = None
    last_sigma: torch.Tensor | None = None
    older_x0: torch.Tensor | None = None
    older_sigma: torch.Tensor | None = None

    def step(
        self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, final: bool | None = None
    ) -> torch.Tensor:
        sigma, sigma_next = _f32(sigma), _f32(sigma_next)
        x0 = x - sigma * v  # from the sample as given, before its correction (as diffusers)
        if self.last_x0 is not None:
            x = self._corrected(x, x0, sigma)
        second_order = self.last_x0 is not None and not _into_zero(sigma_next, final)
        earlier = (self.last_x0, self.last_sigma) if second_order else None
        out = _unipc_predict(x, x0, sigma, sigma_next, earlier)
        self.older_x0, self.older_sigma = self.last_x0, self.last_sigma
        self.last_sample, self.last_x0, self.last_sigma = x, x0, sigma
        return out

    def _corrected(self, x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """`x`, the previous step's prediction, redone from `last_sample` with this step's estimate `x0` (UniC).
        Its order is the previous prediction's: 1 after the first step, 2 after."""
        alpha = 1 - sigma
        h = _lambda(sigma) - _lambda(self.last_sigma)
        b_h = torch.expm1(-h)  # bh2; also h·φ₁(h) of the first-order term
        base = sigma / self.last_sigma * self.last_sample - alpha * torch.expm1(-h) * self.last_x0
        update = x0 - self.last_x0
        if self.older_x0 is None:
            update = 0.5 * update  # UniC-1's weight
        else:
            rk = (_lambda(self.older_sigma) - _lambda(self.last_sigma)) / h
            weights = _unic2_weights(rk, -h, b_h).to(x.dtype)
            update = weights[0] * ((self.older_x0 - self.last_x0) / rk) + weights[1] * update
        return (base - alpha * b_h * update).to(x.dtype)


def _unipc_predict(
    x: torch.Tensor,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    earlier: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """UniP-bh2 from σ to σ_next: first order, or second order with the `earlier` step's (x0, σ)."""
    alpha_next = 1 - sigma_next
    h = _lambda(sigma_next) - _lambda(sigma)
    b_h = torch.expm1(-h)  # bh2; also h·φ₁(h) of the first-order term
    out = sigma_next / sigma * x - alpha_next * torch.expm1(-h) * x0
    if earlier is not None:
        earlier_x0, earlier_sigma = earlier
        rk = (_lambda(earlier_sigma) - _lambda(sigma)) / h
        out = out - alpha_next * b_h * (0.5 * ((earlier_x0 - x0) / rk))  # UniP-2's weight is 1/2
    return out.to(x.dtype)


def _unic2_weights(rk: torch.Tensor, hh: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """The two weights of the second-order correction: the 2x2 system R·ρ = b diffusers solves, solved as it does
    (torch.linalg.solve in float32), so that the weights are bit-identical."""
    h_phi_k = torch.expm1(hh) / hh - 1
    b1 = h_phi_k / b_h
    h_phi_k = h_phi_k / hh - 1 / 2
    b2 = h_phi_k * 2 / b_h
    rks = torch.stack([rk, torch.ones((), device=rk.device)])
    return torch.linalg.solve(torch.stack([torch.ones_like(rks), rks]), torch.stack([b1, b2]))  # R = [[1, 1], [rk, 1]]


# Solver name -> (factory of a fresh solver, the schedule its reference scheduler builds). A new instance per
# run keeps multistep state from leaking between videos.
SOLVERS: dict[str, tuple[Callable[[], Solver], Callable[[int, float, ScheduleOptions | None], Schedule]]] = {
    "euler": (Euler, flow_schedule),
    "dpmpp_2m": (DPMpp2M, dpm_schedule),
    "unipc": (UniPC, unipc_schedule),
}


def _lookup(name: str) -> tuple[Callable[[], Solver], Callable[[int, float, ScheduleOptions | None], Schedule]]:
    if name not in SOLVERS:
        raise SamplingSettingsError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[name]


def make_solver(name: str) -> Solver:
    """A fresh solver by name: "euler", "dpmpp_2m" or "unipc"."""
    return _lookup(name)[0]()


def schedule_for(name: str, steps: int, shift: float, options: ScheduleOptions | None = None) -> Schedule:
    """The schedule the named solver's reference scheduler uses: flow_schedule (euler), dpm_schedule or
    unipc_schedule, with the checkpoint's scheduler `options` (`schedule.schedule_options`). A DPM++ table that
    diffusers' scheduler cannot step is refused, as a run refuses it (`check_dpm_options`)."""
    make_schedule = _lookup(name)[1]
    if name == "dpmpp_2m":
        check_dpm_options(steps, options or ScheduleOptions(), shift, f"flow_shift={shift:g}")
    return make_schedule(steps, shift, options)
