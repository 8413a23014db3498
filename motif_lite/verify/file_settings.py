"""`motif-lite verify --settings-from FILE`: the settings a motif-lite output file stores, as both pipelines run them.

The size, frames, steps, seed and prompts become verify's settings, each flag given winning over the file's (the
order of precedence of `run --settings-from`). The file's sampler, flow shift and guidance become the scheduler and
guider configs both sides read in place of the checkpoint's (`FileSampling`): ours through its `CheckpointConfigs`,
diffusers' as its scheduler and guider classes built from the same values, the way verify builds its reference from
the checkpoint's own. What diffusers has no equivalent of is refused before anything loads (refusals.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from motif_lite.choices import SCHEDULER_CLASS_SAMPLERS
from motif_lite.errors import ConfigError
from motif_lite.io.settings_file import SettingsFileError
from motif_lite.request import GUIDANCE_FIELDS, GenerationRequest, RequestError
from motif_lite.sampling.guidance import GUIDER_KEYS, RECOMMENDED_APG, APGConfig, CFGConfig, guider_from_values
from motif_lite.sampling.schedule import SamplingSettingsError, dynamic_shift, schedule_options, scheduler_shift
from motif_lite.settings import UNIPC_SETTINGS, resolve_guidance, resolve_settings
from motif_lite.verify.refusals import refuse_another_dynamic_shift

if TYPE_CHECKING:
    from pathlib import Path

    from motif_lite.checkpoint import ModelSources
    from motif_lite.io.settings_file import StoredSettings
    from motif_lite.sampling.guidance import Guidance

# The request fields of a file that verify takes, each a flag of verify's.
VERIFY_FIELDS = ("width", "height", "frames", "steps", "seed", "prompt", "negative_prompt")
_SCHEDULER_CLASSES = {sampler: name for name, sampler in SCHEDULER_CLASS_SAMPLERS.items()}
_EULER = "FlowMatchEulerDiscreteScheduler"
# A scheduler config's dynamic shifting: its switch, its kind and its line from latent tokens to mu (which the pipeline
# reads from whichever scheduler config it has).
_DYNAMIC_SHIFTING_KEYS = ("use_dynamic_shifting", "time_shift_type", "base_image_seq_len", "max_image_seq_len",
                          "base_shift", "max_shift")  # fmt: skip


@dataclass(frozen=True)
class FileSampling:
    """The scheduler and guider configs (as diffusers reads their JSON files) that a file's stored sampler, flow
    shift and guidance make of the checkpoint's: both pipelines read these."""

    file: Path
    scheduler: dict[str, Any]
    guider: dict[str, Any]
    flow_shift: float | None = None  # the file's fixed shift (None: it shifted dynamically)

    def sources(self, sources: ModelSources) -> ModelSources:
        """`sources` with these configs in place of the checkpoint's (our pipeline reads its settings from them)."""
        where = f"the settings of {self.file.name}"
        configs = dataclasses.replace(
            sources.configs,
            scheduler=self.scheduler,
            scheduler_shift=scheduler_shift(self.scheduler, where),
            schedule=schedule_options(self.scheduler, where),
            dynamic=dynamic_shift(self.scheduler, where),
            guider=guider_from_values(self.guider, self.file),
        )
        return dataclasses.replace(sources, configs=configs)

    def request(self, request: GenerationRequest) -> GenerationRequest:
        """`request` with the file's fixed shift, as `run --settings-from` takes it: our side would read a shift of
        1.0 in the scheduler config as diffusers' no-shift default, and say it used 15 instead."""
        return request if self.flow_shift is None else dataclasses.replace(request, flow_shift=self.flow_shift)

    def apply_to_reference(self, diffusers: Any, reference: Any) -> None:
        """Give diffusers' pipeline `reference` the scheduler and guider built from these configs."""
        from motif_lite.verify.reference import without_library_notices

        for name, values in (("scheduler", self.scheduler), ("guider", self.guider)):
            with without_library_notices():  # building a guider says its API is experimental
                component = getattr(diffusers, values["_class_name"]).from_config(values)
            reference.register_modules(**{name: component})


def file_sampling(stored: StoredSettings, sources: ModelSources, request: GenerationRequest) -> FileSampling:
    """The configs that sample as the file's run did on this checkpoint (`request`: what verify runs, its size, steps
    and prompts). Refused in one line (`VerifyError`) where diffusers' pipeline cannot sample so; where the file's
    settings are damaged, a `SettingsFileError`."""
    values, name = stored.values, stored.file.name
    if request.image is not None and values.get("image") is None:  # -i over a text-to-video file's settings: as
        values = {key: value for key, value in values.items() if key != "flow_shift"}  # run, the checkpoint's shift
    scheduler = _scheduler_values(values, sources.configs.scheduler)
    guider = _guider_values(_stored_guidance(stored, sources, request), sources)
    sampling = FileSampling(stored.file, scheduler, guider, values.get("flow_shift"))
    try:
        configs = sampling.sources(sources).configs
    except (ConfigError, SamplingSettingsError) as exc:  # a value no scheduler takes: an edit
        raise SettingsFileError(f"{name}'s stored settings: {exc} (the file was edited or damaged)") from None
    try:
        settings = resolve_settings(request, configs, sources.transformer)
    except RequestError:  # settings our pipeline refuses: `refuse_settings_verify_runs` says so in verify's words
        return sampling
    schedule = values.get("schedule") or {}
    if values.get("flow_shift") is None and schedule.get("time_shift") is not None:  # the checkpoint's dynamic shift
        same_size = all(values.get(field) == getattr(request, field) for field in ("width", "height", "frames"))
        now = settings.schedule.mu
        if now is None or (same_size and abs(now - schedule.get("mu", now)) > 1e-9):
            refuse_another_dynamic_shift(name, schedule, settings.schedule)
    return sampling


def _stored_guidance(stored: StoredSettings, sources: ModelSources, request: GenerationRequest) -> Guidance | None:
    """The guidance the file's run used: its `guidance_config` as stored (every parameter, rescale and step window
    too); in a file from before that key, its guidance fields on this checkpoint's guider, as run takes them."""
    from motif_lite.pipeline.metadata import request_fields_of

    values = stored.values
    if "guidance_config" in values:
        config = values["guidance_config"]
        if config is None:
            return None
        kinds = {APGConfig.__name__: APGConfig, CFGConfig.__name__: CFGConfig}
        try:  # a method this version lacks is refused before (`refuse_what_verify_cannot_reproduce`), from Python not
            kind = kinds[config["method"]]
            return kind(**{key: value for key, value in config.items() if key != "method"})
        except (SamplingSettingsError, TypeError, KeyError) as exc:
            raise SettingsFileError(f"{stored.file.name}'s stored settings: guidance_config: {exc} (the file was "
                                    "edited or damaged)") from None  # fmt: skip
    fields = request_fields_of(values)
    guidance = {key: fields[key] for key in ("guidance", "cfg_scale", "apg_eta", "apg_norm_threshold", "apg_momentum")
                if key in fields}  # fmt: skip
    # The file's guidance fields alone: `request` carries --force apg_eta, which is our side's only (a negative
    # control that a guider built from it would give diffusers too).
    unforced = dataclasses.replace(request, **{**dict.fromkeys(GUIDANCE_FIELDS), **guidance})
    return resolve_guidance(unforced, sources.configs.guider).value


def _guider_values(guidance: Guidance | None, sources: ModelSources) -> dict[str, Any]:
    """`guidance` as diffusers' guider config (the keys `read_guider_config` reads back); unguided, the
    checkpoint's guider (else the official APG) disabled, as diffusers runs unguided."""
    enabled = guidance is not None
    if guidance is None:
        guider = sources.configs.guider
        guidance = RECOMMENDED_APG if guider is None else guider.guidance
    class_name, (_, keys) = next((name, kind) for name, kind in GUIDER_KEYS.items() if isinstance(guidance, kind[0]))
    values = {key: getattr(guidance, field) for key, field in keys.items()}
    if values.get("adaptive_projected_guidance_norm_dim") is not None:
        values["adaptive_projected_guidance_norm_dim"] = list(values["adaptive_projected_guidance_norm_dim"])
    return {"_class_name": class_name, **values, "enabled": enabled}


def _scheduler_values(values: dict, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """The scheduler config that samples as the file's run did: the class of its sampler (the checkpoint's config
    where it is that class already, else that class with the checkpoint's dynamic shifting: the file does not store
    its line), at the file's flow shift, with its schedule's options (FlowMatchEuler's shift_terminal and sigma
    spacing)."""
    checkpoint = dict(checkpoint or {"_class_name": _EULER})
    sampler = values.get("sampler")
    name = _SCHEDULER_CLASSES[sampler] if sampler is not None else checkpoint.get("_class_name", _EULER)
    schedule = values.get("schedule") or {}
    train = schedule.get("train_timesteps", checkpoint.get("num_train_timesteps", 1000))
    if checkpoint.get("_class_name", _EULER) == name:
        config = checkpoint
    else:  # with the checkpoint's dynamic shifting, which run applies whatever the sampler (`_dynamic_schedule`)
        dynamic = {key: checkpoint[key] for key in _DYNAMIC_SHIFTING_KEYS if key in checkpoint}
        config = {"_class_name": name, **(UNIPC_SETTINGS if name != _EULER else {}), **dynamic}
    config["num_train_timesteps"] = train
    shift = values.get("flow_shift")
    if shift is not None:  # a fixed shift (None: the checkpoint's dynamic shifting ran, kept)
        config.update({"shift" if name == _EULER else "flow_shift": shift, "use_dynamic_shifting": False})
    if name == _EULER:
        spacing = schedule.get("spacing")
        config.update(
            shift_terminal=schedule.get("shift_terminal"),
            use_karras_sigmas=spacing == "karras",
            use_exponential_sigmas=spacing == "exponential",
        )
        for end in ("sigma_min", "sigma_max"):
            config.pop(end, None)
            if schedule.get(end) is not None:
                config[end] = schedule[end]
    return config
