"""Noise schedules for flow matching: sigma tables and the timesteps the transformer sees.

Three schedules exist because the reference schedulers build different tables:
- `flow_schedule` = MotifVideoPipeline + FlowMatchEulerDiscreteScheduler (`set_timesteps(sigmas=linspace(1, 1/N, N))`).
- `dpm_schedule` = DPMSolverMultistepScheduler(use_flow_sigmas=True, final_sigmas_type="zero").
- `unipc_schedule` = MotifVideoPipeline + UniPCMultistepScheduler(use_flow_sigmas=True, final_sigmas_type="zero"),
  given the pipeline's `sigmas=linspace(1, 1/N, N)`.
All shift once with `s·σ / (1 + (s−1)·σ)` and end in σ = 0. A checkpoint's scheduler config may change them
further (`ScheduleOptions`, read by `schedule_options`): its `num_train_timesteps`, and FlowMatchEuler's
`shift_terminal` and Karras or exponential sigma spacing (between the config's `sigma_max` and `sigma_min` when it
names them), applied as diffusers applies them. Where the config sets `use_dynamic_shifting`, the shift comes from
the video's size instead (`DynamicShift`): the options then hold that size's `mu`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motif_lite.config import diffusers_values
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.json_values import read_json_object

TRAIN_TIMESTEPS = 1000  # scheduler_config `num_train_timesteps` of Motif-Video (and every diffusers default)


class SamplingSettingsError(MotifLiteError, ValueError):
    """A sampling setting (steps, shift, guidance, solver) has an impossible value."""


@dataclass(frozen=True)
class Schedule:
    """The sigma table of one run and the timestep fed to the transformer at each step.

    `sigmas` is float32 of length steps + 1 and ends in 0; step i moves from sigmas[i] to sigmas[i + 1].
    `timesteps` has length steps: float32 σ·T for the flow schedule, int64 trunc(σ·T) for DPM++ and UniPC, where T
    is the scheduler's `num_train_timesteps` (`ScheduleOptions.train_timesteps`, 1000 for Motif-Video).
    """

    sigmas: torch.Tensor
    timesteps: torch.Tensor

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def _check(steps: int, shift: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SamplingSettingsError(f"steps must be a positive integer, got {steps!r}")
    if not math.isfinite(shift) or shift <= 0:
        raise SamplingSettingsError(f"shift must be a positive finite number, got {shift!r}")


@dataclass(frozen=True)
class ScheduleOptions:
    """What a checkpoint's scheduler config changes in the schedule besides the shift (the official one: nothing).

    train_timesteps: `num_train_timesteps`; the transformer sees timestep σ·train_timesteps (both schedules).
    shift_terminal: FlowMatchEuler's stretch of the shifted sigmas so that the last one is this value (Euler only).
    spacing: FlowMatchEuler's "karras" or "exponential" sigmas between the shifted first and last (Euler only).
    sigma_min, sigma_max: the ends of that spacing when the config names them (its `sigma_min` / `sigma_max`,
    which diffusers' spacing reads although its constructor warns that it ignores them); None: the shifted ends.
    """

    train_timesteps: int = TRAIN_TIMESTEPS
    shift_terminal: float | None = None
    spacing: str | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    time_shift: str | None = None  # dynamic shifting's "exponential" or "linear" shift (None: the fixed shift)
    mu: float | None = None  # dynamic shifting's mu for this video's size (`DynamicShift.mu`), with time_shift

    def describe(self) -> list[str]:
        """The options that are set, in words (for the settings table's sampler row; its flow shift row tells
        dynamic shifting)."""
        words = [f"{self.spacing} sigmas"] if self.spacing else []
        words += [
            f"{name} {value:g}" for name in ("sigma_max", "sigma_min") if (value := getattr(self, name)) is not None
        ]
        words += [f"shift_terminal {self.shift_terminal:g}"] if self.shift_terminal else []
        words += [f"{self.train_timesteps} training timesteps"] if self.train_timesteps != TRAIN_TIMESTEPS else []
        return words


def check_flow_options(steps: int, options: ScheduleOptions, shift: float = 1.0) -> None:
    """Refuse `options` whose FlowMatchEuler table for `steps` would hold no number (SamplingSettingsError).

    With one step the shifted sigmas end at σ = 1, and shift_terminal's stretch divides by 1 − σ_last = 0: every
    sigma is NaN (diffusers gives the same table). So does a `shift` (or a dynamic shift's mu) large enough that the
    last sigma, 1/steps, shifts to 1 in float32. The run refuses both before loading with this check."""
    if options.shift_terminal and steps < 2:
        raise SamplingSettingsError("with 1 step the shift_terminal of the scheduler config makes every sigma NaN")
    if options.shift_terminal:
        with np.errstate(over="ignore", invalid="ignore"):
            last = _shifted(np.array([1 / steps], np.float32), float(shift), options)
        if not last[0] < 1:
            fixed = options.time_shift is None
            what = f"the flow shift {shift:g}" if fixed else f"the dynamic shift's mu {options.mu:g}"
            raise SamplingSettingsError(
                f"{what} shifts the last of {steps} sigmas to 1, where the shift_terminal of the scheduler config "
                f"divides by 0 (every sigma NaN): give {'a smaller' if fixed else 'a'} flow shift"
            )


def _shifted(sigmas: np.ndarray, shift: float, options: ScheduleOptions) -> np.ndarray:
    """The schedulers' shift of `sigmas`, in their dtype: the fixed `shift`, or with dynamic shifting the scheduler's
    `time_shift(mu, 1.0, sigmas)` (which ignores `shift`), written as diffusers writes it to round alike."""
    if options.time_shift is None:
        return shift * sigmas / (1 + (shift - 1) * sigmas)
    if options.mu is None:
        raise SamplingSettingsError("dynamic shifting needs the mu of the video's size (DynamicShift.mu)")
    if options.time_shift == "exponential":
        return math.exp(options.mu) / (math.exp(options.mu) + (1 / sigmas - 1) ** 1.0)
    return options.mu / (options.mu + (1 / sigmas - 1) ** 1.0)


def flow_sigmas(steps: int, shift: float, options: ScheduleOptions | None = None) -> torch.Tensor:
    """Sigmas of the reference pipeline with FlowMatchEulerDiscreteScheduler: float32, length steps + 1, ends in 0.
    Options that would make them NaN are refused (`check_flow_options`)."""
    _check(steps, shift)
    options = options or ScheduleOptions()
    check_flow_options(steps, options, shift)
    # The pipeline builds float64 linspace; the scheduler casts it to float32 *before* shifting and shifts in
    # float32 numpy. Doing the same ops in numpy keeps the table bit-identical.
    shift = float(shift)  # a numpy float64 scalar would promote the float32 table
    sigmas = np.linspace(1.0, 1 / steps, steps).astype(np.float32)
    sigmas = _shifted(sigmas, shift, options)
    if options.shift_terminal:  # the scheduler's stretch_shift_to_terminal, in float32
        one_minus = 1 - sigmas
        sigmas = 1 - one_minus / (one_minus[-1] / (1 - options.shift_terminal))
    if options.spacing is not None:  # the scheduler's _convert_to_karras / _convert_to_exponential, in float64
        first = sigmas[0].item() if options.sigma_max is None else options.sigma_max
        last = sigmas[-1].item() if options.sigma_min is None else options.sigma_min
        if options.spacing == "karras":
            rho = 7.0
            ramp = np.linspace(0, 1, steps)
            sigmas = (first ** (1 / rho) + ramp * (last ** (1 / rho) - first ** (1 / rho))) ** rho
        else:
            sigmas = np.exp(np.linspace(math.log(first), math.log(last), steps))
    return torch.cat([torch.from_numpy(sigmas).to(torch.float32), torch.zeros(1)])


def flow_schedule(steps: int, shift: float, options: ScheduleOptions | None = None) -> Schedule:
    """The FlowMatchEuler schedule; timesteps are float32 σ·T (no rounding; T = `options.train_timesteps`, 1000),
    as the pipeline passes them."""
    sigmas = flow_sigmas(steps, shift, options)
    return Schedule(sigmas=sigmas, timesteps=sigmas[:-1] * (options or ScheduleOptions()).train_timesteps)


def _dpm_table(steps: int, shift: float, train: int) -> tuple[np.ndarray, np.ndarray]:
    # DPMSolverMultistepScheduler(use_flow_sigmas=True): the grid starts one training step below σ = 1
    # (σ = 1 − 1/T before shifting), all in float64; the trailing σ = 0 point is dropped.
    alphas = np.linspace(1, 1 / train, steps + 1)
    sigmas = 1.0 - alphas
    sigmas = np.flip(shift * sigmas / (1 + (shift - 1) * sigmas))[:-1].copy()
    return sigmas, sigmas * train


def dpm_schedule(steps: int, shift: float, options: ScheduleOptions | None = None) -> Schedule:
    """The DPM++ schedule; timesteps are int64, truncated from float64 σ·T like the scheduler's. Of `options`
    train_timesteps applies, and an exponential dynamic shift (`time_shift`, `mu`), which DPMSolverMultistepScheduler
    applies as the flow shift exp(mu) in place of `shift`; the rest are FlowMatchEuler's."""
    options = options or ScheduleOptions()
    _check(steps, shift)
    if options.time_shift is not None:
        shift = dpm_dynamic_shift(options)
    sigmas, timesteps = _dpm_table(steps, shift, options.train_timesteps)
    return Schedule(
        sigmas=torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32)),
        timesteps=torch.from_numpy(timesteps).to(torch.int64),
    )


def dpm_dynamic_shift(options: ScheduleOptions) -> float:
    """The flow shift DPMSolverMultistepScheduler's `set_timesteps(mu=...)` sets: `np.exp(mu)` (numpy's exp, which
    may round otherwise than math.exp). Its dynamic shifting is exponential only (diffusers asserts so)."""
    if options.time_shift != "exponential" or options.mu is None:
        raise SamplingSettingsError(
            f"DPM++ shifts dynamically by exp(mu) only: it takes time_shift 'exponential' with a mu, not "
            f"{options.time_shift!r} with mu {options.mu!r}"
        )
    return float(np.exp(options.mu))


def check_dpm_options(steps: int, options: ScheduleOptions, shift: float = 1.0, named: str = "") -> None:
    """Refuse a shift whose DPM++ table for `steps` diffusers cannot step (SamplingSettingsError): the fixed `shift`
    (`named`: how the refusal names it and where it came from), or the dynamic shift's mu of `options` where they
    hold one. A first
    timestep that repeats (a large shift puts the first sigmas within 1/T of 1; a tiny shift, or a very negative mu,
    rounds them to timestep 0) makes DPMSolverMultistepScheduler, which finds its first step by the timestep's value,
    start at its second step and fail with an IndexError on its last; a first sigma of 0 makes every step NaN. The
    run asks before loading."""
    table = dpm_schedule(steps, shift, options)
    first = int(table.timesteps[0])
    if table.sigmas[0] == 0:
        why = "whose first sigma rounds to 0 (every step would be NaN)"
    elif steps > 1 and first == int(table.timesteps[1]):  # timesteps never rise: a repeat is the next one
        why = f"that starts at timestep {first} twice, which diffusers' DPMSolverMultistepScheduler cannot step"
    else:
        return
    if options.time_shift is not None:
        raise SamplingSettingsError(
            f"the dynamic shift's mu {options.mu:g} gives a DPM++ schedule {why}: give a flow shift, or the euler or "
            "unipc sampler"
        )
    named = named or f"the flow shift {shift:g}"
    remedy = "a smaller flow shift or fewer steps" if shift > 1 else "a larger flow shift"
    raise SamplingSettingsError(
        f"{named} gives a DPM++ schedule of {steps} steps {why}: give {remedy}, or the euler or unipc sampler"
    )


# UniPCMultistepScheduler moves a first sigma within this of 1 down by it: at σ = 1 the log-SNR is -inf.
UNIPC_EPS = 1e-6


def unipc_schedule(steps: int, shift: float, options: ScheduleOptions | None = None) -> Schedule:
    """The UniPC schedule of the reference pipeline: the pipeline's sigmas `linspace(1, 1/N, N)` shifted in float64
    (not float32 as FlowMatchEuler does), the first moved from 1 to 1 − 1e-6, then 0 appended and the table cast to
    float32. Timesteps are int64, truncated from float64 σ·T (999 first). Of `options` only train_timesteps
    applies, and dynamic shifting (`time_shift`, `mu`) as UniPC applies it, in float64."""
    _check(steps, shift)
    shift = float(shift)
    sigmas = _shifted(np.linspace(1.0, 1 / steps, steps), shift, options or ScheduleOptions())
    if abs(sigmas[0] - 1) < UNIPC_EPS:
        sigmas[0] -= UNIPC_EPS
    timesteps = sigmas * (options or ScheduleOptions()).train_timesteps
    return Schedule(
        sigmas=torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32)),
        timesteps=torch.from_numpy(timesteps).to(torch.int64),
    )


def batch_timestep(timestep: torch.Tensor, batch: int) -> torch.Tensor:
    """The reference passes the step's scalar timestep to the transformer as `t.expand(batch)` (same dtype)."""
    return timestep.expand(batch)


# scheduler class -> config key holding the shift it actually uses (the other key is ignored by that class).
_SHIFT_KEYS = {
    "FlowMatchEulerDiscreteScheduler": "shift",
    "DPMSolverMultistepScheduler": "flow_shift",
    "UniPCMultistepScheduler": "flow_shift",
}

# The scheduler classes whose dynamic shifting takes only an exponential time shift (diffusers asserts it).
_EXPONENTIAL_ONLY_CLASSES = ("DPMSolverMultistepScheduler",)
# The pipeline's `scheduler.config.get(key, default)` reads of dynamic shifting's line from sequence length to mu.
_DYNAMIC_DEFAULTS = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15}


@dataclass(frozen=True)
class DynamicShift:
    """A scheduler config's `use_dynamic_shifting`: the shift follows the video's size, as the Motif-Video pipelines
    compute it. mu grows linearly with the latent tokens, from base_shift at base_seq_len to max_shift at
    max_seq_len (diffusers' `calculate_shift`), and each sigma becomes exp(mu) / (exp(mu) + 1/σ − 1) (exponential)
    or mu / (mu + 1/σ − 1) (linear); DPM++ takes exp(mu) as its flow shift (the same shift, on its own grid)."""

    time_shift: str = "exponential"
    base_seq_len: float = 256
    max_seq_len: float = 4096
    base_shift: float = 0.5
    max_shift: float = 1.15

    def mu(self, seq_len: int) -> float:
        """mu for a video of `seq_len` latent tokens (patched latent frames x height x width), in diffusers' order
        of operations."""
        m = (self.max_shift - self.base_shift) / (self.max_seq_len - self.base_seq_len)
        b = self.base_shift - m * self.base_seq_len
        return seq_len * m + b

    def options(self, options: ScheduleOptions, seq_len: int, sampler: str) -> ScheduleOptions:
        """`options` with this shift's type and mu for `seq_len` latent tokens, for the `sampler` (its user-facing
        name); SamplingSettingsError where that mu gives no schedule: a linear shift divides by its mu, and σ = 1
        shifts to NaN where exp(mu) (or a linear mu) is no finite positive number in the dtype the sampler shifts in
        (`_shifts_one_to_a_number`)."""
        mu = self.mu(seq_len)
        shifted = dataclasses.replace(options, time_shift=self.time_shift, mu=mu)
        if (self.time_shift == "linear" and not mu > 0) or not _shifts_one_to_a_number(shifted, sampler):
            raise SamplingSettingsError(
                f"the scheduler config's dynamic shifting gives mu {mu:g} for {seq_len} latent tokens, which makes no "
                f"{self.time_shift} shift for the {sampler} sampler (give a flow shift instead)"
            )
        return shifted


def _shifts_one_to_a_number(options: ScheduleOptions, sampler: str) -> bool:
    """Whether dynamic shifting's σ = 1 shifts to a number in the dtype `sampler` shifts in: FlowMatchEuler shifts in
    float32, where exp(mu) overflows past about 88.7 and is 0 below about -103.3 (σ = 1 becomes inf/inf or 0/0, a NaN
    in diffusers' table too), UniPC and DPM++ in float64 (past about 709.8 and below about -745.1)."""
    dtype = np.float32 if sampler == "euler" else np.float64
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(_shifted(np.ones(1, dtype), 1.0, options)).all())
    except OverflowError:  # math.exp(mu) past about 709.8
        return False


def dynamic_shift(config: Mapping[str, Any] | None, source: str = "scheduler config") -> DynamicShift | None:
    """The `DynamicShift` of a scheduler config (as diffusers reads it) that sets `use_dynamic_shifting`, else None.
    Values that would give no schedule (a zero-length line, a linear shift's mu of 0 or less) are refused."""
    if config is None or not config.get("use_dynamic_shifting", False):
        return None
    scheduler_shift(config, source)  # the class check, and the time shifts a class takes
    kind = config.get("time_shift_type", "exponential")
    if kind not in ("exponential", "linear"):
        raise ConfigError(f"{source}: time_shift_type must be 'exponential' or 'linear', got {kind!r}")
    values = {key: config.get(key, default) for key, default in _DYNAMIC_DEFAULTS.items()}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
    if values["max_image_seq_len"] == values["base_image_seq_len"]:
        raise ConfigError(f"{source}: base_image_seq_len and max_image_seq_len must differ (mu is a line between)")
    return DynamicShift(
        kind, values["base_image_seq_len"], values["max_image_seq_len"], values["base_shift"], values["max_shift"]
    )


def shift_from_scheduler_config(path: str | Path) -> float | None:
    """The shift a checkpoint's scheduler config applies, or None if the file or the key is absent.

    `path` is `scheduler/scheduler_config.json` or the `scheduler/` folder. None means the reference would fall
    back to the class default 1.0 (a known pitfall): callers should then use the recommended shift.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "scheduler_config.json"
    if not path.is_file():
        return None
    return scheduler_shift(diffusers_values(read_json_object(path, "scheduler config")), str(path))


def scheduler_shift(config: Mapping[str, Any], source: str) -> float | None:
    """`shift_from_scheduler_config` of a config already read (as diffusers reads it); `source` names it."""
    class_name = config.get("_class_name", "FlowMatchEulerDiscreteScheduler")
    if class_name not in _SHIFT_KEYS:
        raise ConfigError(f"{source}: unsupported scheduler {class_name!r}; expected one of {sorted(_SHIFT_KEYS)}")
    kind = config.get("time_shift_type", "exponential")
    if config.get("use_dynamic_shifting", False) and kind != "exponential" and class_name in _EXPONENTIAL_ONLY_CLASSES:
        raise ConfigError(
            f"{source}: {class_name} shifts dynamically by exp(mu) only (diffusers fails on time_shift_type {kind!r}): "
            "set time_shift_type to 'exponential', or use_dynamic_shifting to false"
        )
    value = config.get(_SHIFT_KEYS[class_name])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{source}: {_SHIFT_KEYS[class_name]} must be a positive number, got {value!r}")
    return float(value)


# FlowMatchEulerDiscreteScheduler options motif-lite does not implement, with the value that leaves them off; each
# makes diffusers sample otherwise, so a config that sets one is refused (`schedule_options`).
_REFUSED_FLOW_OPTIONS = {
    "use_beta_sigmas": "beta sigma spacing (it needs scipy, which motif-lite does not use)",
    "invert_sigmas": "inverted sigmas (a schedule from clean to noise, not a generation schedule)",
    "stochastic_sampling": "stochastic sampling (diffusers draws its noise unseeded: no run could repeat it)",
}


def schedule_options(config: dict[str, Any] | None, source: str = "scheduler config") -> ScheduleOptions:
    """The `ScheduleOptions` of a checkpoint's scheduler config (a JSON object; None: the defaults).

    Every class reads `num_train_timesteps`; FlowMatchEulerDiscreteScheduler's `shift_terminal`,
    `use_karras_sigmas` and `use_exponential_sigmas` are applied (with the `sigma_min` / `sigma_max` ends such a
    config may name), its other sigma options refused (ConfigError).
    The options of the other classes are not read here (`motif_lite.settings` notes them)."""
    if config is None:
        return ScheduleOptions()
    config = diffusers_values(config)
    train = config.get("num_train_timesteps", TRAIN_TIMESTEPS)
    if isinstance(train, bool) or not isinstance(train, int) or train < 1:
        raise ConfigError(f"{source}: num_train_timesteps must be a positive integer, got {train!r}")
    if config.get("_class_name", "FlowMatchEulerDiscreteScheduler") != "FlowMatchEulerDiscreteScheduler":
        return ScheduleOptions(train)
    refused = [f"{key}: true ({what})" for key, what in _REFUSED_FLOW_OPTIONS.items() if config.get(key, False)]
    if refused:
        raise ConfigError(f"{source} sets {'; '.join(refused)}, which motif-lite does not implement")
    spacings = [name for name in ("karras", "exponential") if config.get(f"use_{name}_sigmas", False)]
    if len(spacings) > 1:
        raise ConfigError(f"{source}: only one of use_karras_sigmas and use_exponential_sigmas can be true")
    terminal = config.get("shift_terminal")
    if terminal:  # diffusers applies it when truthy
        if isinstance(terminal, bool) or not isinstance(terminal, int | float) or not 0 < terminal < 1:
            raise ConfigError(f"{source}: shift_terminal must be a number between 0 and 1, got {terminal!r}")
        terminal = float(terminal)
    if not spacings:
        return ScheduleOptions(train, terminal or None)
    ends = {name: _spacing_end(config, name, spacings[0], source) for name in ("sigma_min", "sigma_max")}
    return ScheduleOptions(train, terminal or None, spacings[0], **ends)


def _spacing_end(config: dict[str, Any], name: str, spacing: str, source: str) -> float | None:
    """A FlowMatchEuler config's `sigma_min` or `sigma_max`: not a parameter of the class, yet its Karras and
    exponential spacing take them as the ends of the table in place of the shifted sigmas' when present. Karras
    spacing takes a `sigma_min` of 0 (a table ending in zeros, as diffusers samples it); exponential spacing, through
    log(sigma), cannot."""
    value = config.get(name)
    if value is None:
        return None
    lowest_ok = 0.0 if (name, spacing) == ("sigma_min", "karras") else math.ulp(0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lowest_ok <= value < math.inf:
        needed = "a number of 0 or more" if lowest_ok == 0.0 else "a positive number"
        raise ConfigError(f"{source}: {name} must be {needed} with {spacing} sigmas, got {value!r}")
    return float(value)
