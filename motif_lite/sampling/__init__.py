"""Sampling: noise schedules, flow-matching solvers, CFG/APG guidance and the denoising loop."""

from motif_lite.sampling.denoise import GuidedVelocityFn, StepCallback, VelocityFn, denoise
from motif_lite.sampling.guidance import (
    RECOMMENDED_APG,
    APGConfig,
    APGState,
    CFGConfig,
    Guidance,
    apg,
    cfg,
    guidance_active,
    guidance_from_guider_config,
    guide,
    needs_uncond,
)
from motif_lite.sampling.schedule import (
    SamplingSettingsError,
    Schedule,
    batch_timestep,
    dpm_schedule,
    dpm_sigmas,
    flow_schedule,
    flow_sigmas,
    shift_from_scheduler_config,
)
from motif_lite.sampling.solvers import SOLVERS, DPMpp2M, Euler, euler_step, make_solver, schedule_for

__all__ = [
    "RECOMMENDED_APG",
    "SOLVERS",
    "APGConfig",
    "APGState",
    "CFGConfig",
    "DPMpp2M",
    "Euler",
    "Guidance",
    "GuidedVelocityFn",
    "SamplingSettingsError",
    "Schedule",
    "StepCallback",
    "VelocityFn",
    "apg",
    "batch_timestep",
    "cfg",
    "denoise",
    "dpm_schedule",
    "dpm_sigmas",
    "euler_step",
    "flow_schedule",
    "flow_sigmas",
    "guidance_active",
    "guidance_from_guider_config",
    "guide",
    "make_solver",
    "needs_uncond",
    "schedule_for",
    "shift_from_scheduler_config",
]
