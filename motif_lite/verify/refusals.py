"""What `motif-lite verify` refuses before either pipeline loads (minutes on the real weights), each in one line:
configs and files the reference cannot load (its configs, the image preprocessor, accelerate for GGUF, a file
ComfyUI saved), a scheduler it cannot sample with and settings our pipeline refuses at the shift both sides will
sample, and what of a `--settings-from` file's video verify cannot make on both sides; and the warning when both
pipelines' weights exceed the RAM available on the CPU."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from motif_lite.paths import user_path
from motif_lite.request import GenerationRequest
from motif_lite.settings import TWO_STEPS, resolve_flow_shift, resolve_settings
from motif_lite.shell_syntax import quoted
from motif_lite.verify.reference import INSTALL_HINT, VerifyError

if TYPE_CHECKING:
    from motif_lite.checkpoint import ModelSources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.config import TransformerConfig
    from motif_lite.io.settings_file import StoredSettings
    from motif_lite.settings import Setting


def over_available_ram(sources: ModelSources, dtype: torch.dtype) -> str | None:
    """What to say when both pipelines' weights on the CPU (the text encoder once, the transformer twice) exceed the
    RAM available now: Linux then kills the process part-way through loading, with no message of ours (35 GB
    in float32 on the real weights; a laptop has 16). None when they fit, or the RAM cannot be read."""
    from motif_lite.runtime.host_memory import available_ram
    from motif_lite.sizes import model_sizes
    from motif_lite.units import memory_size

    available = available_ram()
    sizes = model_sizes(sources, dtype)
    needed = sizes.text_encoder_bytes + 2 * sizes.transformer_bytes
    if available is None or needed <= available:
        return None
    less = "--dtype bf16 about halves it; " if dtype == torch.float32 else ""
    # Windows kills no process for memory: it moves pages to the page file, then refuses allocations past its limit.
    if sys.platform == "win32":
        then = "Windows may move it to the page file, where it crawls, or stop it part-way for want of memory"
    else:
        then = "the system may stop it part-way without a word"
    return (
        f"verify holds both pipelines in RAM on the CPU: about {memory_size(needed)} of weights in "
        f"{str(dtype).removeprefix('torch.')} (the text encoder once, the transformer twice), more than the "
        f"{memory_size(available)} available now, so {then}: {less}"
        "close other programs, or verify on a GPU (--device cuda)"
    )


def require_reference_configs(root: Path, model: str) -> None:
    """The configs diffusers' pipeline (the reference) cannot load without: it reads every component
    `model_index.json` lists, where a run takes the official values for a missing scheduler or guider config. Raised
    before anything loads, with the download command (`MissingFilesError`)."""
    from motif_lite.checkpoint import listed_configs
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.io.missing_report import MissingFiles, MissingFilesError

    missing = listed_configs(root)
    if missing:
        include = tuple(f"{Path(file).parent}/*" for file in missing)
        problem = (
            "verify compares with diffusers' MotifVideoPipeline, which loads every component model_index.json lists "
            "(a run takes the official values for a missing scheduler or guider config; diffusers cannot)"
        )
        folder = model if user_path(model).is_dir() else str(root)
        raise MissingFilesError([MissingFiles(MOTIF_REPO, tuple(missing), include, folder, "", True)], [problem])


def require_image_preprocessor(root: Path) -> None:
    """Image-to-video reads the first frame with the checkpoint's SigLIP preprocessor config, on both sides: without
    it a run refuses the image (after loading), and the reference has no `feature_extractor`. Said before the loads,
    as is a model_index.json that does not list it: diffusers then loads none, and its image stage cannot run."""
    import json

    from motif_lite.io.linked import checkpoint_behind

    folder = checkpoint_behind(root)  # -m's folder, not the cache's folder linking it to a --vae FILE
    if not (root / "feature_extractor" / "preprocessor_config.json").is_file():
        raise VerifyError(
            f"{folder} has no feature_extractor/preprocessor_config.json, which image-to-video reads the first frame "
            "with (on both sides): download the checkpoint's feature_extractor/ folder, or verify without -i"
        )
    index = root / "model_index.json"
    try:
        entry = json.loads(index.read_text(encoding="utf-8")).get("feature_extractor")
        # `[null, null]` is listed but loads nothing: the reference's first-frame reader would be None.
        listed = isinstance(entry, list) and bool(entry) and entry[0] is not None
    except (OSError, ValueError, AttributeError):
        return  # require_reference_configs and diffusers' own load say what is wrong with the file
    if not listed:
        raise VerifyError(
            f"{folder / index.name} does not list feature_extractor, so diffusers' MotifVideoImage2VideoPipeline "
            '(the reference) loads no SigLIP preprocessor for the first frame: add "feature_extractor": '
            '["transformers", "SiglipImageProcessor"] to it (as the official model_index.json has), or verify '
            "without -i"
        )


def refuse_comfy_prefixed(transformer: Path | None) -> None:
    """A transformer safetensors file of the user's whose every name carries ComfyUI's prefix: motif-lite reads it,
    but diffusers' `from_pretrained`, the reference, reads only its own names (it would leave every weight
    unloaded). Said in one line with the command that writes an unprefixed copy, before either pipeline loads."""
    from motif_lite.weights.float8 import is_companion
    from motif_lite.weights.safetensors_files import read_tensor_refs
    from motif_lite.weights.shapes import comfy_prefix

    if transformer is None or transformer.suffix == ".gguf":
        return
    file = transformer.resolve()  # the user's file, not its link in the linked folder
    prefix = comfy_prefix([name for name in read_tensor_refs([file]) if not is_companion(name)])
    if prefix is None:
        return
    fixed = file.with_name(f"{file.stem}-unprefixed.safetensors")
    # The prefix and paths go in as arguments, each quoted for the shell alone: a path with a quote or a `$` in a
    # Python literal inside the shell's quotes would break the command.
    script = (
        "import sys; from safetensors.torch import load_file, save_file; prefix, source, target = sys.argv[1:]; "
        "save_file({k.removeprefix(prefix): v for k, v in load_file(source).items()}, target)"
    )
    command = " ".join(quoted(word) for word in ("python", "-c", script, prefix, str(file), str(fixed)))
    raise VerifyError(
        f"{file}: every tensor name starts with {prefix!r} (a file ComfyUI saved), which diffusers, the reference, "
        f"does not read; verify an unprefixed copy: {command}"
    )


def require_accelerate() -> None:
    """diffusers' GGUF loader (the reference for a GGUF transformer) refuses to run without accelerate."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise VerifyError(
            f"verify reads a GGUF transformer with diffusers' GGUF loader, which needs accelerate: {INSTALL_HINT}"
        ) from None


def refuse_a_scheduler_the_reference_cannot_sample(diffusers: Any, config: Mapping[str, Any] | None) -> None:
    """Refuse, before the loads, a scheduler config diffusers' MotifVideoPipeline cannot sample with: the pipeline
    hands its scheduler's `set_timesteps` a sigma table, which DPMSolverMultistepScheduler takes none of (diffusers
    0.42), so its whole run fails at the frames stage, the last, after minutes of loading and comparing. Read from
    the scheduler class's own signature, so a diffusers that learns to take them is let through."""
    import inspect

    name = (config or {}).get("_class_name")  # the checkpoint's scheduler config, as `CheckpointConfigs` read it
    scheduler = getattr(diffusers, name, None) if isinstance(name, str) else None
    if scheduler is None or "sigmas" in inspect.signature(scheduler.set_timesteps).parameters:
        return
    raise VerifyError(
        f"diffusers' MotifVideoPipeline cannot sample with this checkpoint's {name} (scheduler/scheduler_config.json): "
        f"it gives the scheduler a sigma table, which {name}.set_timesteps does not take, so verify would have no "
        "reference video to compare with; verify a copy of the checkpoint whose scheduler is "
        "FlowMatchEulerDiscreteScheduler (the official one) or UniPCMultistepScheduler"
    )


def refuse_settings_verify_runs(request: GenerationRequest, sources: ModelSources) -> None:
    """Refuse, before the loads, the settings our pipeline refuses at the flow shift both sides will sample
    (`request_for`'s: the reference scheduler's where it differs from ours), a sigma table whose stretch divides
    by 0 say; verify takes no flow shift or sampler, so its advice names none (fewer steps would not help there).
    One step with the config's shift_terminal (NaN sigmas, the reference's too) is told --steps 2 alone, not run's
    other way out, a sampler other than euler."""
    from motif_lite.request import RequestError

    configs, transformer = sources.configs, sources.transformer
    try:
        resolve_settings(_at_the_shift_verify_runs(request, configs, transformer), configs, transformer)
    except RequestError as exc:
        if "flow_shift" not in exc.fields and "steps" not in exc.fields:
            raise
        # The refusal ends with the run's advice (": give a smaller flow shift ...", "... or --sampling-method
        # dpm++2m"), flags verify does not have.
        refusal = str(exc).rsplit(": give ", 1)[0]
        samples = "verify samples the checkpoint's scheduler config on both sides and takes no flow shift or sampler"
        if "flow_shift" in exc.fields:
            advice = f"{samples}, so it cannot compare at this config's shift"
        else:  # one step with shift_terminal: NaN sigmas in the reference too; more steps are the one way out
            advice = f"give {TWO_STEPS.flag} or more ({samples})"
        raise RequestError(
            f"{refusal}: {advice}",
            exc.fields,
        ) from None


def _at_the_shift_verify_runs(
    request: GenerationRequest, configs: CheckpointConfigs, transformer: Setting[TransformerConfig] | None
) -> GenerationRequest:
    """`request` at the flow shift `request_for` will sample on both sides: the reference scheduler's (its config's
    shift, 1.0 where it gives none, as diffusers reads it), unless both shift by the video's size."""
    config = configs.scheduler or {}
    reference_shift = float(config.get("shift", config.get("flow_shift", 1.0)))
    if resolve_flow_shift(request, configs.scheduler_shift, []).value == reference_shift:
        return request  # ours as it is, its refusal naming where the shift came from
    if (
        config.get("use_dynamic_shifting", False)
        and resolve_settings(request, configs, transformer).schedule.time_shift
    ):
        return request
    return dataclasses.replace(request, flow_shift=reference_shift)


# What the command a refusal gives verifies: not the file's sampler, shift and guidance, which no flag of verify's
# sets (it was "the rest", which hid that).
_WHAT_INSTEAD_VERIFIES = "its size, steps, seed and prompts on the checkpoint's sampler and guidance"


def refuse_what_verify_cannot_reproduce(stored: StoredSettings, image_given: bool, instead: str) -> None:
    """Refuse, before anything loads, a `--settings-from` file whose video verify cannot make on both sides: a
    sampler diffusers' MotifVideoPipeline cannot sample with (dpm++2m) or this version lacks, an extension of a clip,
    image-to-video without its first frame, and the model settings verify does not take (a LoRA, the step cache,
    8-bit attention). Each in one line naming the setting, and `instead`: the verify command of the file's size,
    steps, seed and prompts as flags, with the command's own weights, device, dtype and first frame (a damaged
    file: `SettingsFileError`)."""
    from motif_lite.io.settings_file import SettingsFileError, first_frame_needed
    from motif_lite.pipeline.metadata import damaged_stored_choices, settings_as_asked, unknown_stored_choices
    from motif_lite.version import VERSION

    values, file = stored.values, stored.file.name
    for damage in damaged_stored_choices(values).values():
        raise SettingsFileError(f"{file}'s stored settings: {damage} (the file was edited or damaged)")
    for field, value in unknown_stored_choices(values).items():
        raise VerifyError(f"{file} was made with the {field} {value!r}, which motif-lite {VERSION} does not have (the "
                          f"file was made by {stored.writer}): upgrade motif-lite to verify it")  # fmt: skip
    if values.get("sampler") == "dpm++2m":
        raise VerifyError(
            f"{file} was sampled with dpm++2m (DPMSolverMultistepScheduler), which diffusers' MotifVideoPipeline "
            f"cannot sample with (it gives its scheduler a sigma table), so verify has no reference for it: verify "
            f"{_WHAT_INSTEAD_VERIFIES}: {instead}"
        )
    if values.get("extend") is not None:
        raise VerifyError(
            f"{file} goes on from the clip {values['extend']}, and diffusers' pipeline has no way to go on from a "
            f"clip: verify {_WHAT_INSTEAD_VERIFIES} without the clip: {instead}"
        )
    if values.get("image") is not None and not image_given:
        raise VerifyError(first_frame_needed(stored, values["image"]))
    model = settings_as_asked(values).get("model")
    model = model if isinstance(model, dict) else {}
    loras = model.get("lora") or []
    step_cache = model.get("step_cache")
    # (whether the file's run had it, the flag as its command gave it, why verify cannot make it on both sides)
    model_settings = [
        (bool(loras), " ".join(f"--lora {lora}" for lora in loras), "verify takes no LoRA: both load the base weights"),
        (
            step_cache not in (None, 0),
            f"--step-cache {step_cache}",
            "it skips transformer forwards, diffusers has none",
        ),
        (model.get("attention") == "int8", "--attention int8", "8-bit attention, which diffusers has no equivalent of"),
    ]
    for made, flag, why in model_settings:
        if made:
            raise VerifyError(f"{file} was made with {flag} ({why}): verify {_WHAT_INSTEAD_VERIFIES} without it: "
                              f"{instead}")  # fmt: skip


def refuse_another_dynamic_shift(file: str, stored: Mapping[str, Any], schedule: Any) -> None:
    """A `--settings-from` file sampled under dynamic shifting that this checkpoint's scheduler config does not give
    again (`schedule`: what it gives at the file's size): the file stores the mu that ran, not the line diffusers'
    scheduler computes it from, so the reference cannot be given it."""
    mu = stored.get("mu")
    then = f"mu {mu:g}" if isinstance(mu, int | float) else "its mu"
    now = "no dynamic shifting" if schedule.mu is None else f"mu {schedule.mu:g} at its size"
    raise VerifyError(
        f"{file} was sampled with dynamic shifting ({stored.get('time_shift')}, {then}) and this checkpoint's "
        f"scheduler/scheduler_config.json gives {now}; a file stores the mu, not the line diffusers' scheduler "
        "computes it from: verify it with -m on the checkpoint that made it"
    )
