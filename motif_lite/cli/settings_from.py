"""`motif-lite run --settings-from FILE`: a new video made with the settings a motif-lite output file stores.

Each setting comes from the flag given, else from the file, else from the checkpoint's configs, else the official
value. The file's values are put into the command's flags (as `--resume` puts a stopped run's model flags), so the
rest of `run` checks and makes the video as for flags typed by hand. The model is this command's: the file stores
the names of its files only, and a note says where they differ.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.request import APG_FIELDS, GUIDANCE_FIELDS, RequestError, run_dest, run_flag
from motif_lite.weights.lora_values import lora_flag, lora_totals

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.io.settings_file import SettingsFileError, StoredSettings
    from motif_lite.settings import Settings


@dataclass(frozen=True)
class Recalled:
    """What `--settings-from` took from its file: the request fields (`taken`), the file's `"model"` section (names
    only; None in a file without one) and the notes. Or what `--resume` took from its latents file
    (`resumed_settings`): no model section, no notes. (Which flags replaced the file's values: `RunInputs.given`.)
    `effective`: the file's stored guidance_config and schedule where this run takes the guidance and the sampler
    from it, to compare with what this checkpoint makes of them (`recalled_settings_notes`); `size`: the file's
    width, height and frames (whose latent tokens set a dynamic shift's mu); `ran_on`: the file's record of the
    machine that made it (no setting: `other_machine_note` compares it with this run's; None in an older file)."""

    file: Path
    taken: frozenset[str]
    model: dict | None
    notes: tuple[str, ...]
    effective: dict = dataclasses.field(default_factory=dict)
    size: tuple[object, ...] | None = None
    ran_on: object = None


def settings_from_args(args: argparse.Namespace) -> Recalled:
    """`--settings-from FILE`: the settings FILE stores put into `args` wherever the command line gives no flag for
    them, checked before anything loads (`RequestError`, `SettingsFileError` otherwise)."""
    from motif_lite.cli.run_inputs import fill_unset, run_inputs
    from motif_lite.io.settings_file import first_frame_needed, read_settings
    from motif_lite.pipeline.metadata import request_fields_of, stored_unguided, unknown_stored_keys
    from motif_lite.ran_on import RAN_ON_KEY

    if args.resume is not None:
        raise RequestError("--settings-from makes a new video with a file's settings, --resume goes on with a "
                           "stopped run from its own: give one of them")  # fmt: skip
    stored = read_settings(args.settings_from)
    given = run_inputs(args).typed
    _refuse_unknown_choices(stored, given)
    unguided = stored_unguided(stored.values)
    fields = request_fields_of(stored.values)
    # A --guidance of another method than the file's is the user's guidance: none of the file's to compare (below)
    files_method = "guidance" not in given or args.guidance == fields.get("guidance")
    kept = _without_replaced_guidance(fields, given, args.guidance, unguided)
    # The file's guidance fields a guidance flag replaced (the method) are the user's too, as for any flag given
    replaced = {field for field in fields.keys() - kept.keys() if run_dest(field) in given}
    fields = kept
    # A first frame given either way (-i, --extend) stands for the file's, given either way: both are image-to-video.
    first_frame_given = bool({"image", "extend"} & given)
    image = fields.pop("image", None)  # by its file name only (a server's upload with its checksum too)
    if image is not None and not first_frame_given:
        raise RequestError(first_frame_needed(stored, image))
    clip = fields.pop("extend", None)  # likewise (a server's upload with its checksum too)
    if clip is not None and not first_frame_given:
        checksum = stored.values.get("extend_sha256")
        kept = "name only" if checksum is None else f"name and SHA-256 ({checksum}) only"
        raise RequestError(
            f"{stored.file.name} goes on from the clip {clip} (its first frames), and the file keeps the "
            f"clip's {kept}: give it again with --extend PATH (the same new frames then follow it)"
        )
    if image is None and clip is None and first_frame_given:  # image-to-video of a text-to-video file's settings
        fields.pop("flow_shift", None)  # the file's was for the other kind: the checkpoint's or the official one
    filled = fill_unset(args, {run_dest(field): value for field, value in fields.items()}, given, stored.file)
    taken = {field for field in fields if run_dest(field) in filled}
    if args.prompt is None and not args.dry_run:  # else the video would be of the dry run's stand-in prompt
        raise RequestError(f"{stored.file.name} stores no prompt (the file was edited or damaged): give one with "
                           '-p "what the video shows"')  # fmt: skip
    overridden = (set(fields) - taken) | replaced
    notes = [taken_note(stored.file, stored.writer, taken, overridden, fields.get("seed"))]
    if clip is not None and "extend" in given and (note := _other_input_note(stored, "extend", clip, args.extend)):
        notes.append(note)
    if image is not None and "image" in given and (note := _other_input_note(stored, "image", image, args.image)):
        notes.append(note)
    if unknown := unknown_stored_keys(stored.values):
        notes.append(f"{stored.file.name} was made by {stored.writer} and stores settings this version "
                     f"does not know: {', '.join(unknown)} (left out)")  # fmt: skip
    model = stored.values.get("model")
    if not isinstance(model, dict):  # a file from before the model was stored: rerun with other weights, it differs
        notes.append(f"{stored.file.name} was made by an older motif-lite that did not store its model: this run "
                     f"uses its own -m, --gguf, --lora and --dtype; give the ones that made {stored.file.name} to "
                     "make the same video")  # fmt: skip
    # The guidance and sampler the file gives, as far as request fields carry them: the rest is the checkpoint's.
    compared = {"guidance_config": "cfg_scale", "schedule": "sampler"} if files_method else {"schedule": "sampler"}
    effective = {key: stored.values[key] for key, by in compared.items() if key in stored.values and by in taken}
    model = model if isinstance(model, dict) else None
    size = tuple(stored.values.get(name) for name in _SIZE_FIELDS)
    ran_on = stored.values.get(RAN_ON_KEY)
    return Recalled(stored.file, frozenset(taken), model, tuple(notes), effective, size, ran_on)


def recalled_settings_notes(recalled: Recalled, settings: Settings, configs: CheckpointConfigs) -> list[str]:
    """A note naming what of the file's guidance and sampler this run's checkpoint makes otherwise (a request field
    carries the method, scale and APG parameters, not a guider's rescale, step window, norm dims and formulation, nor
    the sampler's sigma spacing), saying the video will differ; none where they agree. Under dynamic shifting at
    another size than the file's, mu follows the size: the file's mu is compared with what this checkpoint's
    `configs` give at the file's size, which differs only where the checkpoint's line does."""
    from motif_lite.pipeline.metadata import effective_differences

    differences = effective_differences(recalled.effective, settings, recalled.effective)
    schedule = differences.get("schedule", {})
    if None not in schedule.get("mu", (None,)) and configs.dynamic is not None:  # both sides shift dynamically
        then, _ = schedule["mu"]
        other_size = recalled.size != tuple(getattr(settings.request, name) for name in _SIZE_FIELDS)
        at_the_files_size = _mu_at_the_files_size(recalled, settings, configs)
        if at_the_files_size == then or (at_the_files_size is None and other_size):  # what the size makes, or
            del schedule["mu"]  # a file without a size to compare at: not said
        elif other_size:  # this run's own mu follows its size: the settings table shows it
            del schedule["mu"]
            schedule["mu at the file's size"] = (then, at_the_files_size)
        if not schedule:
            del differences["schedule"]
    rows = {"guidance_config": "guidance", "schedule": "sampler"}
    said = []
    for key, changed in differences.items():
        if "" in changed:  # unguided on one side
            then, now = ("unguided" if value is None else "guided" for value in changed[""])
            said.append(f"{rows[key]} {then} there, {now} here")
            continue
        pairs = ", ".join(f"{name} {_json(then)} -> {_json(now)}" for name, (then, now) in changed.items())
        said.append(f"{rows[key]} {pairs}")
    if not said:
        return []
    return [f"{recalled.file.name}'s settings differ from this checkpoint's where the file cannot set them (this "
            f"run takes the checkpoint's): {'; '.join(said)}; its video differs from the file's"]  # fmt: skip


# The request fields whose latent tokens set a dynamic shift's mu.
_SIZE_FIELDS = ("width", "height", "frames")


def _mu_at_the_files_size(recalled: Recalled, settings: Settings, configs: CheckpointConfigs) -> float | None:
    """The mu this checkpoint's dynamic shifting gives at the file's size (None where the file names no size)."""
    from motif_lite.settings import latent_tokens

    size = dict(zip(_SIZE_FIELDS, recalled.size or (), strict=False))
    if len(size) < len(_SIZE_FIELDS) or not all(isinstance(value, int) for value in size.values()):
        return None
    at_the_files_size = dataclasses.replace(settings.request, **size)
    return configs.dynamic.mu(latent_tokens(at_the_files_size, configs, settings.transformer.value))


def _json(value: object) -> str:
    import json

    return json.dumps(value)


def refused_from_file(recalled: Recalled, refused: RequestError) -> SettingsFileError | None:
    """The refusal of request fields the file gave (None where a flag gave each field refused): it names the file
    and the flag that replaces the file's value, which the message alone names by the field."""
    from motif_lite.io.settings_file import SettingsFileError

    flags = [run_flag(field) for field in refused.fields if field in recalled.taken]
    if not flags:
        return None
    return SettingsFileError(f"{recalled.file.name}'s stored settings: {refused} (the file was edited or damaged; "
                             f"give {', '.join(flags)} to replace the file's)")  # fmt: skip


# The words of the note on an input given other than the one a file was made from, by the input's field: how the file
# used its input, the flag that gives another, and what the run does with that one.
_OTHER_INPUT_WORDS = {
    "extend": ("went on from", "--extend", "the new part goes on from it"),
    "image": ("was made from the first frame", "-i", "the video starts from it"),
}


def _other_input_note(stored: StoredSettings, field: str, name: str, given: str | Path) -> str | None:
    """The note of an input `given` for `field` (an --extend clip, an -i image) other than the one the file names
    (`name`), where the file keeps that one's SHA-256 (a server's video): the run uses the input given, as a flag
    wins over the file."""
    checksum, path, digest = _other_file(stored.values.get(f"{field}_sha256"), given)
    if digest is None:
        return None
    made, flag, outcome = _OTHER_INPUT_WORDS[field]
    return (f"{stored.file.name} {made} {name} (sha256 {checksum}), and {flag} {path.name} is another file "
            f"(sha256 {digest}): {outcome}")  # fmt: skip


def _other_file(checksum: object, given: str | Path) -> tuple[object, Path, str | None]:
    """(checksum, the file given, its SHA-256 where that differs from `checksum`, else None): None too where the
    file keeps no checksum, or the file given is no one readable file (a PNG sequence's pattern; reading it as the
    input says what is wrong with it)."""
    from motif_lite.io.image import image_sha256
    from motif_lite.paths import user_path

    path = user_path(given)
    if not isinstance(checksum, str) or not path.is_file():
        return checksum, path, None
    digest = image_sha256(path)  # None: it cannot be read
    return checksum, path, None if digest in (None, checksum) else digest


def _refuse_unknown_choices(stored: StoredSettings, given: frozenset[str]) -> None:
    """A sampler or guidance method the file names that this version does not have (a newer motif-lite's) makes
    another video, and one stored as no name at all (a list, a number) is damage: refused, unless the flag that
    chooses it is given."""
    from motif_lite.choices import GUIDANCE_METHODS, SAMPLERS
    from motif_lite.io.settings_file import SettingsFileError
    from motif_lite.pipeline.metadata import damaged_stored_choices, unknown_stored_choices
    from motif_lite.version import VERSION

    for field, damage in damaged_stored_choices(stored.values).items():
        if run_dest(field) not in given:
            raise SettingsFileError(
                f"{stored.file.name}'s stored settings: {damage} (the file was edited or damaged; give "
                f"{run_flag(field)} to replace the file's)"
            )
    names = {"sampler": tuple(SAMPLERS), "guidance": GUIDANCE_METHODS}
    for field, value in unknown_stored_choices(stored.values).items():
        if run_dest(field) not in given:
            choices = names[field]
            raise RequestError(
                f"{stored.file.name} was made with the {field} {value!r}, which motif-lite {VERSION} does not have "
                f"(the file was made by {stored.writer}): upgrade motif-lite to make the same video, or "
                f"choose one with {run_flag(field)} {', '.join(choices[:-1])} or {choices[-1]}"
            )


def _without_replaced_guidance(fields: dict, given: frozenset[str], method: str | None, unguided: bool) -> dict:
    """The file's fields less the guidance ones that guidance flags replace: another `--guidance` method than the
    file's takes that method's own parameters (the file's APG ones would be an error with CFG), and any guidance flag
    over an `unguided` file guides as the checkpoint's guider (the file's CFG at its no-op scale 1 would switch
    guidance off again)."""
    if given & set(GUIDANCE_FIELDS) and unguided:
        return {name: value for name, value in fields.items() if name not in ("guidance", "cfg_scale")}
    if "guidance" in given and method != fields.get("guidance"):
        fields = {name: value for name, value in fields.items() if name not in ("guidance", *APG_FIELDS)}
    return fields


def taken_note(file: Path, writer: str, taken: set[str], overridden: set[str], seed: object) -> str:
    """Which settings the file gave this run (as the settings table names them), and which flags replaced the
    file's: the note of `run --settings-from` and of `verify --settings-from`, which say it alike."""
    from motif_lite.settings import ROW_FIELDS

    groups = {"prompt": ("prompt",), "seed": ("seed",), **ROW_FIELDS}
    names = [name for name, fields in groups.items() if taken & set(fields)]
    if "guidance" in names and "guidance" not in taken:  # the method is a flag's: the file gave some parameters only
        parts = {"guidance scale": ("cfg_scale",), "APG parameters": APG_FIELDS}
        at = names.index("guidance")
        names[at : at + 1] = [part for part, fields in parts.items() if taken & set(fields)]
    shown = {"seed": f"seed {seed}", "negative": "negative prompt"}
    names = [shown.get(name, name) for name in names]
    note = f"settings from {file.name} (made by {writer}): {', '.join(names) or 'none'}"
    if overridden:
        note += f"; your flags instead of the file's: {', '.join(sorted({run_flag(field) for field in overridden}))}"
    return note


def recalled_model_notes(
    recalled: Recalled, args: argparse.Namespace, sources: ModelSources, dtype: torch.dtype, device: torch.device
) -> list[str]:
    """A note per group of model flags in which this run's model differs from the one the file names (by file
    names: the file keeps no folders), saying the video will differ."""
    from motif_lite.cli.common import lora_args
    from motif_lite.io.model_stamps import MODEL_FLAG_GROUPS, model_flags_text  # the resume notes' flag wording
    from motif_lite.pipeline.metadata import model_flags_of, model_metadata_of, settings_as_asked

    if recalled.model is None:  # a file from before the model was stored
        return []
    # The attention its run asked for: 8-bit attention that fell back stores "exact", and a run asking for int8
    # again falls back the same way (as `run -b N`'s skip compares).
    then = settings_as_asked({"model": recalled.model})["model"]
    attention = "int8" if args.attention == "int8" and device.type == "cuda" else "exact"  # the CPU runs exact
    now = model_metadata_of(model_flags_of(sources, dtype, attention, None))
    now["lora"] = [lora_flag(path.name, strength) for path, strength in lora_args(args.lora)]
    notes = []
    for group in MODEL_FLAG_GROUPS:
        then_group = {dest: then.get(dest, [] if dest == "lora" else None) for dest in group}
        now_group = {dest: now.get(dest, [] if dest == "lora" else None) for dest in group}
        if _names(then_group) != _names(now_group):
            notes.append(f"{recalled.file.name} was made with {model_flags_text(then_group)}, this run has "
                         f"{model_flags_text(now_group)}: its video differs from the file's")  # fmt: skip
    if (note := _step_cache_note(recalled, args.step_cache)) is not None:
        notes.append(note)
    return notes


def _step_cache_note(recalled: Recalled, threshold: float | None) -> str | None:
    """The note when this run's step cache (lossy: it changes the video) differs from the file's run's; a file keeps
    the threshold only where it was above 0, and one from before it kept any has None, as a run without it."""
    then, now = recalled.model.get("step_cache"), threshold or None  # 0 is the plain run
    if then == now:
        return None

    def text(value: object) -> str:
        if value is None:
            return "no --step-cache"
        return f"--step-cache {value:g}" if isinstance(value, float | int) else f"--step-cache {value}"

    file = recalled.file.name
    return f"{file} was made with {text(then)}, this run has {text(now)}: its video differs from the file's"


def _names(flags: dict) -> dict:
    """Model flags by the last part of each path or repo id (./Motif-Video-2B is the Hub's Org/Motif-Video-2B), the
    LoRAs as each file's total strength (`lora_totals`)."""

    def name(value: object) -> object:
        return Path(value).name if isinstance(value, str) else value

    named = {
        dest: [name(v) for v in value] if isinstance(value, list) else name(value) for dest, value in flags.items()
    }
    return {**named, "lora": lora_totals(named["lora"])} if "lora" in named else named
