"""Where every generation setting comes from: the user's flag (or Python argument), else a file under the flags
(`motif-lite run --settings-from`, `--resume`, `--extend`), else the checkpoint's config files, else the official
recommended value. This one order of precedence is implemented here, once, and used by `motif-lite run`, its
`--dry-run`, the run summary and the Python API (`MotifVideoPipeline.generate`).

    configs = CheckpointConfigs.read(root)          # the checkpoint's small JSON files, never its weights
    settings = resolve_settings(request, configs)   # every value with its source
    settings.guidance.value                         # APGConfig(...), CFGConfig(...) or None (unguided)
    settings.guidance.source                        # "flag", "file", "checkpoint" or "default"
    print("\\n".join(settings.lines()))

A request's values alone cannot tell a flag typed at the official value (`--steps 50`) from the default, nor a
value a file gave from one typed: the command says so with `Given`, which `resolve_settings` takes.

The checkpoint decides (when the user does not; `motif_lite.checkpoint_configs` reads its files):
- guidance: `guider/guider_config.json` (diffusers' APG or CFG guider, all its parameters; `enabled: false` is
  unguided, as in diffusers);
- flow shift and sampler: `scheduler/scheduler_config.json` (its shift, 1.0 excepted; its scheduler class; its
  num_train_timesteps, and FlowMatchEuler's shift_terminal and Karras or exponential sigmas: `ScheduleOptions`;
  its use_dynamic_shifting, which a flow shift flag turns off: `_dynamic_schedule`);
- the transformer, VAE, text encoder and tokenizer: their config files (no flags exist for those).

The compute dtype (`resolve_dtype`) is the user's, else the device's default: no checkpoint file chooses it.

How guidance flags combine with the checkpoint's guider:
- `cfg_scale` (`--cfg-scale S`): the guider's method and parameters at scale S; a scale that changes nothing
  switches guidance off (`is_neutral`: 0 under the original formulation cond + S·(cond − uncond), which the official
  guider uses, 1 under the standard uncond + S·(cond − uncond)), as in diffusers;
- `guidance` (`--guidance M`): method M; the guider's own parameters if it is the guider's method, else M's
  official ones (APG: norm threshold 12, momentum 0.1, per-frame norms, original formulation; CFG: classic
  uncond + s·(cond − uncond)), at the guider's scale;
- `apg_eta`, `apg_norm_threshold`, `apg_momentum` (`--apg-eta` ...): that one APG parameter;
- any of them turns a disabled guider back on (except a scale that changes nothing).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from motif_lite.checkpoint_configs import REFERENCE_SCHEDULER, CheckpointConfigs
from motif_lite.choices import MOTIF_REPO, SAMPLERS, SCHEDULER_CLASS_SAMPLERS
from motif_lite.config import TransformerConfig
from motif_lite.dtypes import COMPUTE_DTYPES, checked_dtype, default_dtype
from motif_lite.errors import Audience, Spelling, counted
from motif_lite.frame_rates import rate_said
from motif_lite.request import (
    APG_FIELDS,
    GUIDANCE_FIELDS,
    I2V_SHIFT,
    OFFICIAL_NEGATIVE_PROMPT,
    REQUEST_DEFAULTS,
    T2V_SHIFT,
    GenerationRequest,
    RequestError,
    run_flag,
)
from motif_lite.sampling.guidance import (
    RECOMMENDED_APG,
    APGConfig,
    CFGConfig,
    Guidance,
    GuiderConfig,
    is_neutral,
    needs_uncond,
)
from motif_lite.sampling.schedule import (
    SamplingSettingsError,
    ScheduleOptions,
    check_dpm_options,
    check_flow_options,
)
from motif_lite.shell_syntax import pattern_quoted, quoted, quoted_text
from motif_lite.vae.config import WanVAEConfig

T = TypeVar("T")

FLAG, FILE, CHECKPOINT, DEFAULT = "flag", "file", "checkpoint", "default"
# The request fields behind each row of the settings table that a flag or a file decides (the model's rows: neither),
# and "dtype", the compute dtype's flag, which `--resume`'s file gives too.
ROW_FIELDS = {
    "size": ("width", "height", "frames", "fps"),
    "steps": ("steps",),
    "sampler": ("sampler",),
    "flow shift": ("flow_shift",),
    "guidance": GUIDANCE_FIELDS,
    "negative": ("negative_prompt",),
    "dtype": ("dtype",),
}
DTYPE_FLAG_NAMES = {dtype: name for name, dtype in COMPUTE_DTYPES.items()}  # torch.float16 -> "fp16", as --dtype says
UNSHIFTED = 1.0  # FlowMatchEulerDiscreteScheduler's class default: no shift, never a Motif setting
# Settings named in messages as `motif-lite run`, the Python API and the server's API take them (all share these
# checks).
TWO_STEPS = Spelling("--steps 2", "steps=2", "steps 2")
DPM_SAMPLER = Spelling("--sampling-method dpm++2m", 'sampler="dpm++2m"', "sampling_method dpm++2m")
SAMPLER_CHOICE = Spelling("--sampling-method", "sampler=", "sampling_method")
CFG_GUIDANCE = Spelling("--guidance cfg", 'guidance="cfg"', "guidance_method cfg")
APG_GUIDANCE = Spelling("--guidance apg", 'guidance="apg"', "guidance_method apg")
# run's flags alone (each is its Python keyword with dashes, which a Python user reads as that keyword), or the API's.
APG_SETTINGS = {
    Audience.RUN_OR_PYTHON: "--apg-eta, --apg-norm-threshold and --apg-momentum",
    Audience.API: "apg_eta, apg_norm_threshold and apg_momentum",
}
# The DPMSolverMultistepScheduler settings of the model card's "FlowDPMSolver" (every one that changes the sigmas or
# the steps), and the class defaults a config that leaves one out gets. The reference pipeline cannot run this class
# (it gives every scheduler `sigmas=`, which DPMSolver refuses); motif-lite runs the model card's as `dpm++2m`.
_DPM_SETTINGS = {
    "algorithm_type": "dpmsolver++", "solver_order": 2, "use_flow_sigmas": True, "prediction_type": "flow_prediction",
    "solver_type": "midpoint", "final_sigmas_type": "zero", "euler_at_final": False, "thresholding": False,
    "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False, "use_lu_lambdas": False,
}  # fmt: skip
_DPM_DEFAULTS = {**_DPM_SETTINGS, "use_flow_sigmas": False, "prediction_type": "epsilon"}
# The UniPCMultistepScheduler settings `unipc` samples (diffusers' defaults, with flow sigmas and flow prediction: the
# reference pipeline runs such a config), every one that changes the sigmas or the steps. solver_type "bh1" is not
# among them: with flow sigmas ending in 0 diffusers' bh1 makes the last step NaN (docs/sampling.md).
UNIPC_SETTINGS = {
    "solver_order": 2, "prediction_type": "flow_prediction", "use_flow_sigmas": True, "predict_x0": True,
    "solver_type": "bh2", "lower_order_final": True, "disable_corrector": [], "final_sigmas_type": "zero",
    "thresholding": False, "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
    "shift_terminal": None, "solver_p": None,
}  # fmt: skip
_UNIPC_DEFAULTS = {**UNIPC_SETTINGS, "use_flow_sigmas": False, "prediction_type": "epsilon"}
# What each class must hold to run as the sampler named for it: (the settings, the class defaults).
_SAMPLER_SETTINGS = {"dpm++2m": (_DPM_SETTINGS, _DPM_DEFAULTS), "unipc": (UNIPC_SETTINGS, _UNIPC_DEFAULTS)}


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One effective setting: its value, its source (FLAG, FILE, CHECKPOINT or DEFAULT) and, in words, which flag,
    file or official value it is (e.g. "guider/guider_config.json", "fox.mp4")."""

    value: T
    source: str
    origin: str = ""


@dataclass(frozen=True)
class Given:
    """Where a command's settings came from, which the request's values cannot tell: the fields the user typed
    (`flags`; also those typed at the official value) and the file under the flags that holds a field (`files`:
    field -> the file's name; `--settings-from`'s video, `--resume`'s latents, `--extend`'s clip), which gave it
    unless a flag typed replaced its value. Fields are a request's, and "dtype". The Python API gives none: there
    every field set is the caller's."""

    flags: frozenset[str] = frozenset()
    files: Mapping[str, str] = field(default_factory=dict)

    def sourced(self, setting: Setting[T], fields: Iterable[str]) -> Setting[T]:
        """`setting`, decided by `fields`, with the source they came from: a flag typed over a file's value ("flag",
        naming both), else a file where one gave any of them (with the flags typed for the others), else a flag
        where one was typed (at the official value too), else as resolving it judged."""
        fields = tuple(fields)
        files = ", ".join(dict.fromkeys(self.files[name] for name in fields if name in self.files))
        typed = ", ".join(sorted({run_flag(name) for name in fields if name in self.flags}))
        replaced = ", ".join(sorted({run_flag(name) for name in fields if name in self.flags and name in self.files}))
        if replaced:
            return Setting(setting.value, FLAG, f"{replaced} over {files}")
        if files:  # e.g. an --extend clip's size and rate, with the frames typed: "clip.mp4; --video-frames"
            return Setting(setting.value, FILE, f"{files}; {typed}" if typed else files)
        if typed and setting.source != FLAG:
            return Setting(setting.value, FLAG, setting.origin)
        return setting


@dataclass(frozen=True)
class Settings:
    """The effective settings of one generation, each with its source (`resolve_settings` builds it)."""

    request: GenerationRequest  # as given (after `GenerationRequest.resolve`)
    sampler: Setting[str]  # user-facing name, a key of motif_lite.choices.SAMPLERS
    flow_shift: Setting[float]
    guidance: Setting[Guidance | None]  # None: unguided (no negative-prompt pass)
    transformer: Setting[TransformerConfig]
    components: tuple[tuple[str, Setting[str]], ...] = ()  # VAE, text encoder: where their configs are
    notes: tuple[str, ...] = ()  # what the user should know (a checkpoint value ignored, ...)
    schedule: ScheduleOptions = ScheduleOptions()  # the scheduler config's other options (`schedule_for`)
    dtype: Setting[torch.dtype] | None = None  # the compute dtype, where the caller knows it (`resolve_dtype`)
    first_step: int = 0  # a resumed run's first step: the steps before it were sampled by the run that stopped
    given: Given = Given()  # where the command's flags and files gave the request's fields (`with_given`)

    def with_given(self, given: Given) -> Settings:
        """These settings with the sources `given` tells (the rows the request alone decides take it in `table`):
        the run summary's of a result the pipeline resolved without it."""
        return dataclasses.replace(
            self,
            sampler=given.sourced(self.sampler, ROW_FIELDS["sampler"]),
            flow_shift=given.sourced(self.flow_shift, ROW_FIELDS["flow shift"]),
            guidance=given.sourced(self.guidance, ROW_FIELDS["guidance"]),
            dtype=None if self.dtype is None else given.sourced(self.dtype, ROW_FIELDS["dtype"]),
            given=given,
        )

    @property
    def flow_shift_used(self) -> float | None:
        """The flow shift the schedule ran with; None under the checkpoint's dynamic shifting, whose shift comes from
        `schedule.mu` (a number given back as a flow shift would turn dynamic shifting off)."""
        return None if self.schedule.time_shift else self.flow_shift.value

    @property
    def solver(self) -> str:
        """The `motif_lite.sampling` solver name of the sampler."""
        return SAMPLERS[self.sampler.value]

    @property
    def guided(self) -> bool:
        """Whether a step left to sample (from `first_step` on) is guided, and so needs the unconditional (negative
        prompt) prediction: its encoding, the batch-2 forward's memory, a rank of its own. A run resumed past the
        guidance window needs none, as a fresh run whose window holds no step (`needs_uncond`)."""
        return needs_uncond(self.guidance.value, self.request.steps, self.first_step)

    @property
    def encoded_prompts(self) -> dict[str, str]:
        """The texts the video's encode reads, by the label the text encoder's warnings give them: the prompt, and
        the negative prompt where a step left to sample needs its prediction (`guided`)."""
        request = self.request
        return {"prompt": request.prompt, **({"negative prompt": request.negative_prompt} if self.guided else {})}

    def table(self) -> list[tuple[str, str, Setting]]:
        """(name, value in words, setting) for every setting, in the order a user reads them."""
        r = self.request
        negative = _describe_negative(r.negative_prompt, self.guided, self.first_step)
        rows = [
            ("size", f"{r.width}x{r.height}, {counted(r.frames, 'frame')} at {rate_said(r.fps)}", self._plain("size")),
            ("steps", str(r.steps), self._plain("steps")),
            ("sampler", ", ".join([self.sampler.value, *self.schedule.describe()]), self.sampler),
            ("flow shift", *self._shift_row()),
            ("guidance", describe_guidance(self.guidance.value, r.steps), self.guidance),
            ("negative", negative, self._plain("negative")),
            ("transformer", describe_transformer(self.transformer.value), self.transformer),
        ]  # fmt: skip
        if self.dtype is not None:  # before the model's rows
            rows.insert(-1, ("dtype", DTYPE_FLAG_NAMES[self.dtype.value], self.dtype))
        rows += [(name, setting.value, setting) for name, setting in self.components]
        return rows

    def _shift_row(self) -> tuple[str, Setting]:
        """The flow shift row: the shift, or the checkpoint's dynamic shifting (which ignores it) where that applied."""
        if self.schedule.time_shift is None:
            return f"{self.flow_shift.value:g}", self.flow_shift
        words = f"dynamic ({self.schedule.time_shift}, mu {self.schedule.mu:.6g} for this size)"
        return words, Setting(None, CHECKPOINT, "use_dynamic_shifting of scheduler/scheduler_config.json")

    def _plain(self, row: str) -> Setting:
        """A row the checkpoint never decides: judged by the value (a flag where it differs from the official
        default), unless `given` tells where it came from."""
        fields = ROW_FIELDS[row]
        changed = any(getattr(self.request, name) != getattr(REQUEST_DEFAULTS, name) for name in fields)
        return self.given.sourced(Setting(None, FLAG if changed else DEFAULT), fields)

    def lines(self) -> list[str]:
        """The settings table for `--dry-run` and the run summary: name, source, value (and which file or flag)."""
        files = ", ".join(dict.fromkeys(self.given.files.values()))
        file = f"file: {files}; " if files else ""
        head = f"settings (flag: given by you; {file}checkpoint: its config files; default: the official value):"
        rows = [
            f"  {name:<12} {s.source:<10} {value}" + (f"  ({s.origin})" if s.origin else "")
            for name, value, s in self.table()
        ]
        return [head, *rows]


def resolve_settings(
    request: GenerationRequest,
    configs: CheckpointConfigs,
    transformer: Setting[TransformerConfig] | None = None,
    dtype: Setting[torch.dtype] | None = None,
    first_step: int = 0,
    *,
    audience: Audience = Audience.RUN_OR_PYTHON,
    given: Given = Given(),
) -> Settings:
    """The effective settings of `request` on a checkpoint whose configs are `configs`.

    `transformer`: where the transformer config came from when the caller resolved it (e.g. for a GGUF file);
    by default the checkpoint's `transformer/config.json`, else the official architecture. `dtype`: the run's
    compute dtype (`resolve_dtype`), a row of the table when given. `first_step`: a resumed run's first step.
    `audience`: who a refusal speaks to (the server: its client, in the API's fields).
    `given`: which fields the command's flags and files gave (`Given`); none for the Python API.
    """
    notes: list[str] = []
    shift = resolve_flow_shift(request, configs.scheduler_shift, notes)
    sampler = resolve_sampler(request, configs.scheduler, audience)
    schedule = configs.schedule
    if sampler.value != "euler" and (schedule.shift_terminal or schedule.spacing):
        notes.append(
            "the shift_terminal and sigma spacing of scheduler/scheduler_config.json are FlowMatchEuler's: they apply "
            f"to the euler sampler; {sampler.value} samples its own schedule"
        )
        schedule = ScheduleOptions(schedule.train_timesteps)
    try:  # the schedule's own rule, checked before anything loads
        check_flow_options(request.steps, schedule)
    except SamplingSettingsError as exc:
        raise RequestError(
            f"{exc} (as in the reference): give {TWO_STEPS.to(audience)} or more, or {DPM_SAMPLER.to(audience)}",
            ("steps",),
        ) from None
    guidance = resolve_guidance(request, configs.guider, audience)
    if "cfg_scale" not in given.files or "cfg_scale" in given.flags:  # a file's scale 1 is not the user's choice
        notes.extend(filter(None, [scale_one_note(request, guidance.value, audience)]))
    momentum = guidance.value.momentum if isinstance(guidance.value, APGConfig) else None
    if momentum is not None and abs(momentum) >= 1:  # allowed, as in diffusers, but rarely what was meant
        notes.append(
            f"APG momentum {momentum:g}: at 1 or more in size, the running average of the guidance never fades "
            "(earlier steps weigh as much as the last one, or more) and only the norm threshold bounds it "
            "(official: 0.1; the APG paper's reverse momentum is between -1 and 0)"
        )
    if transformer is None:
        transformer = (
            Setting(configs.transformer, CHECKPOINT, "transformer/config.json")
            if configs.transformer is not None
            else Setting(TransformerConfig(), DEFAULT, "official architecture (built-in)")
        )
    if request.conditions_on_image and transformer.value.image_embed_dim is None:  # both pipelines would crash
        raise RequestError(
            f"this transformer takes no image (image_embed_dim: null, {transformer.origin}): it makes text-to-video "
            "only; leave out the first-frame image"
        )
    if request.starts_from_frame and (problem := _no_image_processor(configs)) is not None:
        raise RequestError(problem)
    schedule = _dynamic_schedule(request, configs, sampler.value, transformer.value, schedule, notes)
    if _a_count(request.steps):  # shift_terminal's stretch of the fixed shift's table, or of this size's mu's
        try:
            check_flow_options(int(request.steps), schedule, shift.value)
        except SamplingSettingsError as exc:
            raise RequestError(str(exc), ("flow_shift",)) from None
    # A steps value that is no count (numpy's int64 is one) is the request's own checks' to report, not the shift's.
    if SAMPLERS[sampler.value] == "dpmpp_2m" and _a_count(request.steps):  # the fixed shift's table, or the mu's
        try:
            named = _shift_named(given.sourced(shift, ("flow_shift",)), audience)
            check_dpm_options(int(request.steps), schedule, shift.value, named)
        except SamplingSettingsError as exc:
            raise RequestError(str(exc), ("flow_shift",)) from None
    components = _components(configs)
    settings = Settings(
        request, sampler, shift, guidance, transformer, components, tuple(notes), schedule, dtype, first_step
    )
    return settings.with_given(given)


def _no_image_processor(configs: CheckpointConfigs) -> str | None:
    """Why a first frame cannot be read on this checkpoint, before anything loads: a local folder without
    feature_extractor/preprocessor_config.json (the SigLIP image processor), which its model_index.json does not
    list either. A listed one is a required file, fetched or reported missing with the others; an entry of
    `[null, null]`, which diffusers' `save_pretrained` writes for a text-to-video pipeline without one, lists none
    (as `checkpoint.listed_configs` reads it). Without the folder at hand (root None) the official checkpoint's
    answer holds: it has one. A folder of neither a model_index.json nor a text encoder's config is no checkpoint the
    question is asked of (configs read for their settings alone). The run itself found this only once every weight
    had loaded and the prompts were encoded."""
    processor = "feature_extractor/preprocessor_config.json"
    if configs.root is None or (configs.index is None and not configs.text_encoder):
        return None
    listed = (configs.index or {}).get("feature_extractor")
    if (configs.root / processor).is_file() or (isinstance(listed, list) and None not in listed):
        return None
    from motif_lite.io.linked import checkpoint_behind

    folder = checkpoint_behind(configs.root)  # -m's folder, not the cache's folder linking it to a --vae FILE
    return (
        f"{folder} has no {processor} (the image processor that reads the first frame for the image "
        "encoder): it makes text-to-video only; leave out the first frame (the image, or the clip to go on from), "
        f"or {_image_processor_fix(folder)}"
    )


def _image_processor_fix(folder: Path) -> str:
    """The download that gives `folder` the official checkpoint's feature_extractor/. A snapshot of the Hugging
    Face cache (models--Org--Name/snapshots/COMMIT) is not written into with --local-dir, which the cache does not
    keep track of: the official repo's own is filled by a download of the folder at its commit, another repo's (which
    lacks it) is downloaded into a folder of its own first."""
    from motif_lite.io.hub import local_folder_for

    include = f"hf download {MOTIF_REPO} --include {pattern_quoted('feature_extractor/*')}"
    if folder.parent.name != "snapshots" or not folder.parent.parent.name.startswith("models--"):
        return (
            f"copy the official checkpoint's feature_extractor/ folder into it: {include} --local-dir {quoted(folder)}"
        )
    repo = folder.parent.parent.name.removeprefix("models--").replace("--", "/", 1)  # repo ids hold no "--"
    if repo.lower() == MOTIF_REPO.lower():  # at the snapshot's commit: main's may be newer, another snapshot
        return f"download the folder into the cache: {include} --revision {folder.name}"
    own = quoted(local_folder_for(repo))
    return (
        f"download {repo} into a folder of its own, the official feature_extractor/ into that folder, and give it "
        f"to -m: hf download {repo} --local-dir {own}, then {include} --local-dir {own}, then -m {own}"
    )


def _dynamic_schedule(
    request: GenerationRequest,
    configs: CheckpointConfigs,
    sampler: str,
    transformer: TransformerConfig,
    schedule: ScheduleOptions,
    notes: list[str],
) -> ScheduleOptions:
    """`schedule` with the checkpoint's dynamic shifting where it applies: not under a flow shift the user gave (it
    wins, as the order of precedence says; diffusers would ignore it), nor a linear one for DPM++ (whose scheduler
    shifts dynamically by exp(mu) only). mu comes from the latent tokens as the pipeline counts them: latent frames,
    height and width, each divided by the transformer's patch. A mu that gives no schedule, or a DPM++ one that
    diffusers cannot step (`check_dpm_options`, which `resolve_settings` asks), is a RequestError naming the flow
    shift."""
    if configs.dynamic is None:
        return schedule
    origin = "use_dynamic_shifting of scheduler/scheduler_config.json"
    if request.flow_shift is not None:
        notes.append(f"{run_flag('flow_shift')} turns off the {origin} (diffusers would ignore the flow shift)")
        return schedule
    if SAMPLERS[sampler] == "dpmpp_2m" and configs.dynamic.time_shift != "exponential":
        notes.append(
            f"the {configs.dynamic.time_shift} {origin} applies to the euler and unipc samplers (DPMSolverMultistep "
            f"shifts dynamically by exp(mu) only); {sampler} samples a fixed shift"
        )
        return schedule
    try:
        return configs.dynamic.options(schedule, latent_tokens(request, configs, transformer), sampler)
    except SamplingSettingsError as exc:
        raise RequestError(str(exc), ("flow_shift",)) from None


def _shift_named(shift: Setting[float], audience: Audience) -> str:
    """The flow shift and where it came from, in `audience`'s words: "--flow-shift 30", "the flow shift 200 of
    scheduler/scheduler_config.json" (or of a `--settings-from` file), "the official text-to-video shift 15"."""
    value = f"{shift.value:g}"
    if shift.source == FLAG:
        return Spelling(f"--flow-shift {value}", f"flow_shift={value}", f"flow_shift {value}").to(audience)
    if shift.source in (CHECKPOINT, FILE):
        return f"the flow shift {value} of {shift.origin}"
    # The value follows the name, not a note the origin adds after a comma ("official text-to-video shift, not 1.0").
    return f"the {shift.origin.split(',')[0]} {value}"


def _a_count(value: object) -> bool:
    """Whether `value` is a whole number of 1 or more of any integer type (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def latent_tokens(request: GenerationRequest, configs: CheckpointConfigs, transformer: TransformerConfig) -> int:
    """The latent tokens of the request's video as the pipeline counts them for dynamic shifting's mu: latent
    frames, height and width, each divided by the transformer's patch."""
    vae = configs.vae or WanVAEConfig()
    frames = vae.latent_frames(request.frames) // transformer.patch_size_t
    tokens = frames * (request.height // vae.spatial_factor // transformer.patch_size)
    return tokens * (request.width // vae.spatial_factor // transformer.patch_size)


def resolve_dtype(given: torch.dtype | str | None, device: torch.device | None) -> Setting[torch.dtype]:
    """The compute dtype: `given` (a torch dtype or a --dtype name), else the default of `device` (float16 on a GPU
    before compute capability 8.0, float32 where fp16 is faulty or slow too, else bfloat16: `dtypes.default_dtype`;
    None: a GPU that is not here)."""
    if given is not None:
        return Setting(checked_dtype(given), FLAG, "--dtype")
    dtype, why = default_dtype(device)
    return Setting(dtype, DEFAULT, why)


def resolve_flow_shift(request: GenerationRequest, scheduler_shift: float | None, notes: list[str]) -> Setting[float]:
    """The flow shift: the request's, else the scheduler config's, else 15 (T2V) / 8 (I2V).

    A config shift of 1.0 is diffusers' class default (no shift), never a Motif setting: with it the reference gives
    noisy backgrounds (a known pitfall of early wrappers), so it counts as absent and a note says so.
    """
    if request.flow_shift is not None:
        return Setting(float(request.flow_shift), FLAG, run_flag("flow_shift"))
    default = I2V_SHIFT if request.starts_from_frame else T2V_SHIFT
    what = "image-to-video" if request.starts_from_frame else "text-to-video"
    if scheduler_shift is None or scheduler_shift == UNSHIFTED:
        if scheduler_shift == UNSHIFTED:
            notes.append(
                f"ignoring shift 1.0 of scheduler_config.json (diffusers' default: no shift); using {default:g}"
            )
        return Setting(default, DEFAULT, f"official {what} shift" + (", not 1.0" if scheduler_shift else ""))
    return Setting(float(scheduler_shift), CHECKPOINT, "scheduler/scheduler_config.json")


def resolve_sampler(
    request: GenerationRequest, scheduler: dict[str, Any] | None, audience: Audience = Audience.RUN_OR_PYTHON
) -> Setting[str]:
    """The sampler: the request's, else the one the checkpoint's scheduler class runs, else Euler.

    A scheduler config that no sampler here samples as configured (another class, e.g. DEIS; a DPMSolverMultistep
    config unlike the model card's; a UniPCMultistep config with other than diffusers' defaults, such as bh1 or
    Karras sigmas) is a RequestError naming the settings, unless the request chooses the sampler."""
    if request.sampler is not None:
        return Setting(request.sampler, FLAG, run_flag("sampler"))
    if scheduler is None:
        return Setting("euler", DEFAULT, "FlowMatchEuler, as the diffusers pipeline")
    class_name = scheduler.get("_class_name", REFERENCE_SCHEDULER)
    sampler = SCHEDULER_CLASS_SAMPLERS.get(class_name)
    unlike = _unlike_sampler(scheduler, sampler)
    if sampler is None or unlike:
        how = f" with {', '.join(unlike)}" if unlike else ""
        names = list(SAMPLERS)
        raise RequestError(
            f"scheduler/scheduler_config.json holds a {class_name}{how}, which none of motif-lite's samplers is: "
            f"choose one with {SAMPLER_CHOICE.to(audience)}: {', '.join(names[:-1])} or {names[-1]}"
        )
    return Setting(sampler, CHECKPOINT, f"scheduler/scheduler_config.json: {class_name}")


def _unlike_sampler(scheduler: dict[str, Any], sampler: str | None) -> list[str]:
    """The settings of `scheduler` (as "key: value") that make it sample otherwise than `sampler` does."""
    if sampler not in _SAMPLER_SETTINGS:
        return []
    settings, defaults = _SAMPLER_SETTINGS[sampler]
    values = {key: scheduler.get(key, defaults[key]) for key in settings}
    return [f"{key}: {json.dumps(value)}" for key, value in values.items()
            if _as_read(sampler, key, value) != settings[key]]  # fmt: skip


def _as_read(sampler: str, key: str, value: Any) -> Any:
    """A scheduler config value as its class reads it: UniPC takes DPM's solver types for bh2 and applies a
    shift_terminal only when it is truthy; DPMSolverMultistep takes UniPC's solver types for midpoint, and its
    euler_at_final only makes the last step first order, which final_sigmas_type "zero" (required) does anyway."""
    if sampler == "dpm++2m" and key == "solver_type" and value in ("bh1", "bh2", "logrho"):
        return "midpoint"
    if sampler == "dpm++2m" and key == "euler_at_final":
        return False
    if sampler == "unipc" and key == "solver_type" and value in ("midpoint", "heun", "logrho"):
        return "bh2"
    if sampler == "unipc" and key == "shift_terminal" and not value:
        return None
    return value


def resolve_guidance(
    request: GenerationRequest, guider: GuiderConfig | None, audience: Audience = Audience.RUN_OR_PYTHON
) -> Setting[Guidance | None]:
    """The guidance: the checkpoint's guider (or the official APG) with the request's guidance settings applied.

    See the module docstring for how each setting combines with the guider.
    """
    if guider is not None:
        base, enabled, origin = guider.guidance, guider.enabled, "guider/guider_config.json"
        base_source = CHECKPOINT
    else:
        base, enabled, origin = RECOMMENDED_APG, True, "official APG"
        base_source = DEFAULT
    given = _guidance_flags(request)
    if not given:
        return Setting(base if enabled else None, base_source, origin + ("" if enabled else " (enabled: false)"))
    method = request.guidance or _method(base)
    if method != _method(base):
        official = RECOMMENDED_APG if method == "apg" else CFGConfig()
        base = dataclasses.replace(official, scale=base.scale)
        origin = f"official {method.upper()} at the scale of {origin}"
    changes = {"scale": request.cfg_scale}
    if method == "apg":
        changes.update(eta=request.apg_eta, norm_threshold=request.apg_norm_threshold, momentum=request.apg_momentum)
    elif given & set(APG_FIELDS):
        # With a CFG guider in the checkpoint the user has not chosen CFG: say where it comes from, and the way out.
        why = CFG_GUIDANCE.to(audience) if request.guidance is not None else f"the method of {origin}"
        raise RequestError(
            f"{APG_SETTINGS[audience]} apply to APG guidance, not CFG ({why}); add {APG_GUIDANCE.to(audience)} to "
            "guide with APG",
            tuple(sorted(given & set(APG_FIELDS))),
        )
    value = dataclasses.replace(base, **{k: float(v) for k, v in changes.items() if v is not None})
    if is_neutral(value):  # 0 under the original formulation (cond + s·update), 1 under the standard one
        return Setting(None, FLAG, f"{run_flag('cfg_scale')} {value.scale:g}: no guidance")
    flags = ", ".join(run_flag(name) for name in sorted(given))
    return Setting(value, FLAG, f"{flags} over {origin}")


def scale_one_note(request: GenerationRequest, guidance: Guidance | None, audience: Audience) -> str | None:
    """The note for a scale of exactly 1 that still guides (the original formulation, whose no-op scale is 0): in
    ComfyUI or stable-diffusion.cpp cfg 1 means no guidance, so a user who typed it for that is told it once."""
    if request.cfg_scale is None or not math.isclose(request.cfg_scale, 1.0) or guidance is None:
        return None
    if not guidance.original_formulation:
        return None
    return (
        f"{_cfg_scale(1).to(audience)} still guides: the guider's original formulation makes cond + 1 x (cond - "
        f"uncond), as diffusers does; no guidance is {_cfg_scale(0).to(audience)}"
    )


def _cfg_scale(scale: float) -> Spelling:
    return Spelling(f"--cfg-scale {scale:g}", f"cfg_scale={scale:g}", f"guidance_scale {scale:g}")


def describe_guidance(guidance: Guidance | None, steps: int) -> str:
    """One line naming the method and every parameter that matters, for a run of `steps` steps."""
    if guidance is None:
        return "off (no negative-prompt pass)"
    base = "cond" if guidance.original_formulation else "uncond"
    if not needs_uncond(guidance, steps):  # e.g. --cfg-scale 0 over the official guider: cond + 0·update
        why = f"scale {guidance.scale:g} on base {base}"
        if not is_neutral(guidance):  # the window: diffusers' guiders guide steps int(start·N) <= i < int(stop·N)
            why = (
                "an empty step range"
                if guidance.start >= guidance.stop
                else f"a {guidance.start:g}-{guidance.stop:g} window that holds none of the {steps} steps"
            )
        return f"off: {_method(guidance).upper()} with {why} changes nothing (no negative-prompt pass)"
    if isinstance(guidance, APGConfig):
        dims = {None: "all", (-1, -2, -4): "per frame"}.get(guidance.norm_dims, str(guidance.norm_dims))
        momentum = "off" if guidance.momentum is None else f"{guidance.momentum:g}"
        text = (
            f"APG scale {guidance.scale:g}, eta {guidance.eta:g}, norm threshold {guidance.norm_threshold:g}, "
            f"momentum {momentum}, norms {dims}, base {base}"
        )  # fmt: skip
    else:
        text = f"CFG scale {guidance.scale:g}, base {base}"
    if guidance.guidance_rescale:
        text += f", rescale {guidance.guidance_rescale:g}"
    if (guidance.start, guidance.stop) != (0.0, 1.0):
        text += f", on {guidance.start:g}-{guidance.stop:g} of the steps"
    return text


def describe_transformer(config: TransformerConfig) -> str:
    return (
        f"{config.num_layers} dual + {config.num_encoder_single_layers} single + {config.num_decoder_layers} "
        f"decoder blocks, {config.num_attention_heads}x{config.attention_head_dim} heads, rope_theta "
        f"{config.rope_theta:g}, rope axes {list(config.rope_axes_dim)}"
    )


def _guidance_flags(request: GenerationRequest) -> set[str]:
    return {name for name in GUIDANCE_FIELDS if getattr(request, name) is not None}


def _method(guidance: Guidance) -> str:
    return "apg" if isinstance(guidance, APGConfig) else "cfg"


def _describe_negative(prompt: str, guided: bool, first_step: int) -> str:
    if not guided:  # a resumed run past the guidance window reads it no more, as a run without guidance
        return "unused (no guided step left)" if first_step else "unused (no guidance)"
    if prompt == OFFICIAL_NEGATIVE_PROMPT:
        return "the official negative prompt"
    # Quoted as the prompt line quotes the prompt: a short one pastes after -n as it stands.
    return quoted_text(prompt) if len(prompt) <= 40 else quoted_text(prompt[:37]) + "..."


def _components(configs: CheckpointConfigs) -> tuple[tuple[str, Setting[str]], ...]:
    def component(present: bool, what: str, file: str, builtin: str) -> Setting[str]:
        return Setting(what, CHECKPOINT, file) if present else Setting(what, DEFAULT, f"{builtin} (built-in)")

    return (
        ("vae", component(configs.vae is not None, "Wan2.1", "vae/config.json", "official Wan2.1")),
        ("text encoder", component(configs.text_encoder, "T5Gemma2", "text_encoder/config.json", "official size")),
    )


__all__ = [
    "CHECKPOINT",
    "DEFAULT",
    "FILE",
    "FLAG",
    "ROW_FIELDS",
    "CheckpointConfigs",
    "Given",
    "Setting",
    "Settings",
    "describe_guidance",
    "describe_transformer",
    "resolve_dtype",
    "resolve_flow_shift",
    "resolve_guidance",
    "resolve_sampler",
    "resolve_settings",
]
