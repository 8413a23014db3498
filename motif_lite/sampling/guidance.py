"""Classifier-free guidance (CFG) and adaptive projected guidance (APG) on velocity predictions.

Mirrors diffusers 0.42.1 `guiders.ClassifierFreeGuidance` and `guiders.AdaptiveProjectedGuidance`, including:
- guidance only on steps int(start·N) <= i < int(stop·N); outside it the result is the conditional prediction
  and no unconditional pass is needed;
- a scale that makes guidance a no-op (1 in the diffusers formulation, 0 in the original one) skips it entirely;
- APG's momentum buffer starts empty on step 0 and is only updated on guided steps;
- optional `guidance_rescale` (std rescale towards the conditional prediction), applied on every step when > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from motif_lite.config import diffusers_values
from motif_lite.errors import ConfigError
from motif_lite.json_values import read_json_object
from motif_lite.sampling.schedule import SamplingSettingsError


def _check_numbers(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise SamplingSettingsError(f"guidance {name} must be a finite number, got {value!r}")


def _check_range(start: float, stop: float) -> None:
    if not 0.0 <= start < 1.0:
        raise SamplingSettingsError(f"guidance start must be in [0, 1), got {start!r}")
    if not start <= stop <= 1.0:
        raise SamplingSettingsError(f"guidance stop must be in [start={start}, 1], got {stop!r}")


@dataclass(frozen=True)
class CFGConfig:
    """Classifier-free guidance. Original formulation: cond + s·(cond − uncond); else uncond + s·(cond − uncond)."""

    scale: float = 7.5
    guidance_rescale: float = 0.0
    original_formulation: bool = False
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        _check_numbers(self, ("scale", "guidance_rescale", "start", "stop"))
        _check_range(self.start, self.stop)


@dataclass(frozen=True)
class APGConfig:
    """Adaptive projected guidance (arXiv 2410.02416) with diffusers' defaults.

    norm_dims: dims of the norm and projection (None = all but batch; (-1, -2, -4) on [B, C, F, H, W] = per
    frame). norm_threshold <= 0 disables the norm clipping; momentum None disables the running average.
    """

    scale: float = 7.5
    norm_threshold: float = 15.0
    momentum: float | None = None
    eta: float = 1.0
    norm_dims: tuple[int, ...] | None = None
    original_formulation: bool = False
    guidance_rescale: float = 0.0
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        _check_numbers(self, ("scale", "norm_threshold", "eta", "guidance_rescale", "start", "stop"))
        if self.momentum is not None:
            _check_numbers(self, ("momentum",))
        _check_range(self.start, self.stop)
        # Accept an int or a list (as diffusers configs store it); keep a hashable tuple.
        dims = (self.norm_dims,) if isinstance(self.norm_dims, int) else self.norm_dims
        if dims is not None:
            dims = tuple(dims)
            if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
                raise SamplingSettingsError(f"APG norm_dims must be None or a list of ints, got {self.norm_dims!r}")
        object.__setattr__(self, "norm_dims", dims)


Guidance = CFGConfig | APGConfig

# The official Motif-Video setting (model card / inference.py): eta is not passed there, so it is
# diffusers' class default 1.0.
RECOMMENDED_APG = APGConfig(
    scale=8.0, norm_threshold=12.0, momentum=0.1, eta=1.0, norm_dims=(-1, -2, -4), original_formulation=True
)


@dataclass
class APGState:
    """APG's momentum buffer (running average of cond − uncond); one per run, starts empty."""

    running: torch.Tensor | None = None


def is_neutral(guidance: Guidance) -> bool:
    """Whether the scale makes guidance a no-op: 1 in the diffusers formulation, 0 in the original one."""
    return math.isclose(guidance.scale, 0.0 if guidance.original_formulation else 1.0)


def guided_steps(guidance: Guidance | None, steps: int, first: int = 0) -> range:
    """The steps of a `steps`-step run sampled from step `first` on (a resumed run's first step) that are guided, as
    diffusers' guiders decide: int(start·steps) <= i < int(stop·steps) (both truncated), none with a neutral scale.
    A narrow window over few steps may hold none, and so may a run resumed past the window."""
    if guidance is None or is_neutral(guidance):
        return range(0)
    return range(max(int(guidance.start * steps), first), int(guidance.stop * steps))


def needs_uncond(guidance: Guidance | None, steps: int, first: int = 0) -> bool:
    """Whether some step of a `steps`-step run from step `first` on (a resumed run's first step) is guided, so that
    the unconditional (negative prompt) prediction is prepared for: its encoding, the batch-2 forward's memory, a
    rank of its own."""
    return len(guided_steps(guidance, steps, first)) > 0


def guidance_active(guidance: Guidance | None, step: int, steps: int) -> bool:
    """Whether step `step` of `steps` is guided (and so needs an unconditional prediction)."""
    return step in guided_steps(guidance, steps)


def cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float, original_formulation: bool = False) -> torch.Tensor:
    """Classifier-free guidance combination of two predictions."""
    base = cond if original_formulation else uncond
    return base + scale * (cond - uncond)


def _dims(norm_dims: tuple[int, ...] | None, ndim: int) -> list[int]:
    return [-i for i in range(1, ndim)] if norm_dims is None else list(norm_dims)


def apg(cond: torch.Tensor, uncond: torch.Tensor, config: APGConfig, state: APGState) -> torch.Tensor:
    """One APG combination; updates `state.running` when momentum is on."""
    dims = _dims(config.norm_dims, cond.ndim)
    diff = cond - uncond
    if config.momentum is not None:
        if state.running is not None:
            diff = diff + config.momentum * state.running
        state.running = diff
    if config.norm_threshold > 0:
        # Shrink diff to at most norm_threshold per slice (per frame with the recommended dims).
        norm = diff.norm(p=2, dim=dims, keepdim=True)
        diff = diff * torch.clamp(config.norm_threshold / norm, max=1.0)
    # Split diff into parts parallel and orthogonal to cond; float64 as in the reference (low-precision dot
    # products over ~10^6 elements drift).
    v0 = diff.double()
    v1 = F.normalize(cond.double(), dim=dims)
    parallel = (v0 * v1).sum(dim=dims, keepdim=True) * v1
    orthogonal = v0 - parallel
    update = orthogonal.to(diff.dtype) + config.eta * parallel.to(diff.dtype)
    base = cond if config.original_formulation else uncond
    return base + config.scale * update


def rescale_to_cond(pred: torch.Tensor, cond: torch.Tensor, amount: float) -> torch.Tensor:
    """Blend `pred` with itself rescaled to cond's per-sample std (arXiv 2305.08891 §3.4)."""
    dims = list(range(1, cond.ndim))
    rescaled = pred * (cond.std(dim=dims, keepdim=True) / pred.std(dim=dims, keepdim=True))
    return amount * rescaled + (1 - amount) * pred


def guide(
    guidance: Guidance | None,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    state: APGState,
    step: int,
    steps: int,
) -> torch.Tensor:
    """The guided prediction of step `step` of `steps`; `uncond` may be None when the step is not guided."""
    if guidance_active(guidance, step, steps):
        if uncond is None:
            raise SamplingSettingsError(f"step {step} is guided but no unconditional prediction was given")
        if isinstance(guidance, APGConfig):
            pred = apg(cond, uncond, guidance, state)
        else:
            pred = cfg(cond, uncond, guidance.scale, guidance.original_formulation)
    else:
        pred = cond
    if guidance is not None and guidance.guidance_rescale > 0:
        pred = rescale_to_cond(pred, cond, guidance.guidance_rescale)
    return pred


# diffusers guider config key -> our field, per guider class (verify builds diffusers' guider config from them too).
_COMMON_KEYS = {
    "guidance_scale": "scale",
    "guidance_rescale": "guidance_rescale",
    "use_original_formulation": "original_formulation",
    "start": "start",
    "stop": "stop",
}
GUIDER_KEYS = {
    "ClassifierFreeGuidance": (CFGConfig, _COMMON_KEYS),
    "AdaptiveProjectedGuidance": (
        APGConfig,
        {
            **_COMMON_KEYS,
            "adaptive_projected_guidance_momentum": "momentum",
            "adaptive_projected_guidance_rescale": "norm_threshold",
            "adaptive_projected_guidance_norm_dim": "norm_dims",
            "eta": "eta",
        },
    ),
}


@dataclass(frozen=True)
class GuiderConfig:
    """A checkpoint's `guider/guider_config.json`: its guidance, and whether the guider is enabled.

    A disabled guider (`enabled: false`) means unguided sampling, as in diffusers; its parameters are kept so
    that a user who turns guidance back on (e.g. `--cfg-scale 6`) gets the checkpoint's method and parameters.
    """

    guidance: Guidance
    enabled: bool = True

    @property
    def guidance_if_enabled(self) -> Guidance | None:
        """The guidance a run uses by default: None where the guider is disabled (unguided, as in diffusers)."""
        return self.guidance if self.enabled else None


def read_guider_config(path: str | Path) -> GuiderConfig | None:
    """The guider of a checkpoint's `guider/` folder (diffusers `guider_config.json`), None when absent.

    Missing keys take diffusers' class defaults; an unknown class or key, or a bad value, is a `ConfigError`.
    """
    path = guider_config_file(path)
    if not path.is_file():
        return None
    return guider_from_values(read_json_object(path, "guider config"), path)


def guider_config_file(path: str | Path) -> Path:
    """The guider config file `path` names: a `guider/` folder's guider_config.json, else `path` itself."""
    path = Path(path)
    return path / "guider_config.json" if path.is_dir() else path


def guider_from_values(values: dict, path: Path) -> GuiderConfig:
    """The guider of a guider_config.json's JSON object `values`, as read from `path` (which messages name): a
    caller that read the file for something else too builds it from that one read (`read_guider_config`)."""
    config = diffusers_values(values)
    class_name = config.get("_class_name")
    if class_name not in GUIDER_KEYS:
        raise ConfigError(f"{path}: unsupported guider {class_name!r}; expected one of {sorted(GUIDER_KEYS)}")
    cls, key_map = GUIDER_KEYS[class_name]
    unknown = sorted(k for k in config if not k.startswith("_") and k != "enabled" and k not in key_map)
    if unknown:
        raise ConfigError(f"{path}: unknown {class_name} keys {unknown}")
    enabled = config.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: enabled must be true or false, got {enabled!r}")
    kwargs = {key_map[k]: v for k, v in config.items() if k in key_map}
    try:
        return GuiderConfig(cls(**kwargs), enabled)
    except (SamplingSettingsError, TypeError) as e:
        raise ConfigError(f"{path}: {e}") from e


def guidance_from_guider_config(path: str | Path) -> Guidance | None:
    """The guidance a checkpoint's `guider/` folder sets: None when there is no guider config or the guider is
    disabled (`enabled: false`, unguided as in diffusers)."""
    guider = read_guider_config(path)
    return guider.guidance_if_enabled if guider is not None else None
