"""What a video file and a saved run store of how they were made: the request, the effective settings, the model."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from motif_lite.checkpoint import ModelSources
from motif_lite.json_values import json_kind
from motif_lite.paths import user_path
from motif_lite.ran_on import RAN_ON_KEY
from motif_lite.request import GUIDANCE_FIELDS, GenerationRequest, unknown_choices
from motif_lite.sampling import ScheduleOptions
from motif_lite.sampling.guidance import APGConfig, CFGConfig, Guidance
from motif_lite.settings import DTYPE_FLAG_NAMES, Settings
from motif_lite.version import VERSION
from motif_lite.weights.lora_apply import AppliedLoRAs
from motif_lite.weights.lora_values import lora_flag


def findable(model: str | Path) -> str:
    """The checkpoint as a saved run names it: a folder by its absolute path (found again from anywhere), a Hub repo
    id as it is."""
    folder = user_path(model)
    return str(folder.resolve()) if folder.is_dir() else str(model)


def jsonable(values: dict) -> dict:
    """`values` as a JSON round trip gives them back (tuples as lists, paths as strings): how a file stores them."""
    return json.loads(json.dumps(values, default=str))


# What a caller may say of the clip a video goes on from where its path's name is not the one its user knows (the
# server's copy of an upload, `inputs/ID.mp4`): the name, and the file's SHA-256 (stored beside `extend`).
STORED_CLIP_KEYS = ("extend", "extend_sha256")
# Likewise of the first frame of an image-to-video video (the server's copy of an upload, `inputs/ID.png`).
STORED_IMAGE_KEYS = ("image", "image_sha256")


def stored_settings(
    request: GenerationRequest,
    settings: Settings,
    model: dict | None = None,
    stored_inputs: Mapping[str, str] | None = None,
) -> dict:
    """What a video stores of how it was made (its file's comment): the request, the effective sampling settings and
    `model` (`MotifVideoPipeline.model_metadata`); file names only, never the user's folders. `stored_inputs`
    (keys of `STORED_CLIP_KEYS`, for an extension only, and of `STORED_IMAGE_KEYS`, for image-to-video only): the clip
    and the first frame as their user knows them, not by their paths' names."""
    stored_inputs = stored_inputs or {}  # its keys checked by `generate` (`check_generate_arguments`)
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(request).items()}
    values.pop("output")
    if request.image is not None:  # the file name only: a shared video must not tell the user's folders
        values["image"] = Path(request.image).name
        values.update({key: value for key, value in stored_inputs.items() if key in STORED_IMAGE_KEYS})
    if request.extend is not None:  # likewise the clip it goes on from (its frames come first in the file)
        values["extend"] = Path(request.extend).name
        values.update({key: value for key, value in stored_inputs.items() if key in STORED_CLIP_KEYS})
    # Under the checkpoint's dynamic shifting None, so that a resumed run does not take it as the user's (which would
    # turn dynamic shifting off); the schedule below holds the shift that ran.
    effective = {"sampler": settings.sampler.value, "flow_shift": settings.flow_shift_used}
    if settings.schedule != ScheduleOptions():  # only then: a file saved before the key existed still resumes
        effective["schedule"] = dataclasses.asdict(settings.schedule)
    effective["guidance_config"] = guidance_config_of(settings.guidance.value)
    made_with = {"version": VERSION} if model is None else {"version": VERSION, "model": model}
    return {"software": "motif-lite", **made_with, **values, **effective}


def model_flags_of(
    sources: ModelSources | None, dtype: torch.dtype, attention: str, loras: AppliedLoRAs | None
) -> dict:
    """The model a pipeline runs, as `motif-lite run`'s flags (dests) name it: what a resumed run loads
    (`attention`: the attention that runs, `MotifVideoPipeline.attention_used`)."""
    flags: dict = {"dtype": DTYPE_FLAG_NAMES[dtype], "attention": "int8" if attention == "int8" else "exact"}
    flags["lora"] = [lora_flag(f.spec.path.absolute(), f.spec.strength) for f in (loras.files if loras else [])]
    if sources is not None:
        flags["model"] = findable(sources.model)
        flags["gguf"] = None if sources.gguf is None else str(sources.gguf.absolute())
        flags["quantize"] = sources.quantize
        tegguf = sources.text_encoder_gguf
        flags["text_encoder_gguf"] = None if tegguf is None else str(tegguf.path.absolute())
        flags["text_encoder_quantize"] = sources.text_encoder_quantize
        weights = {component: str(Path(path).absolute()) for component, path in sources.weight_files.items()}
        flags.update(diffusion_model=weights.get("transformer"), text_encoder=weights.get("text_encoder"),
                     vae=weights.get("vae"))  # fmt: skip
    return flags


def model_metadata_of(flags: dict) -> dict:
    """`flags` (`model_flags_of`) as a video file stores them: each file and folder by its name (a Hub repo id as
    it is), so that a shared video tells nothing of the user's disk."""

    def named(value: str) -> str:
        return Path(value).name if Path(value).is_absolute() else value

    described = {key: named(value) for key, value in flags.items() if isinstance(value, str)}
    return {**described, "lora": [named(lora) for lora in flags["lora"]]}


def settings_as_asked(stored: dict) -> dict:
    """A video's stored settings with its model's attention as the run asked for it: 8-bit attention that fell back
    to exact stores "exact" (what ran) and `attention_asked` "int8" (`MotifVideoPipeline.model_metadata`), and a
    rerun of the same command, which asks for int8 again, compares the request (`run -b N`'s skip)."""
    model = stored.get("model")
    if not isinstance(model, dict) or "attention_asked" not in model:
        return stored
    asked = {key: value for key, value in model.items() if key != "attention_asked"}
    return {**stored, "model": {**asked, "attention": model["attention_asked"]}}


def guidance_config_of(guidance: Guidance | None) -> dict | None:
    """The guidance as a file stores it (`guidance_config`): its method's class name and every parameter; None
    unguided."""
    return None if guidance is None else {"method": type(guidance).__name__, **vars(guidance)}


def effective_differences(stored: dict, settings: Settings, keys: Iterable[str]) -> dict[str, dict[str, tuple]]:
    """What a file's stored `guidance_config` and `schedule` (those of `keys`) hold that `settings` do not, as
    {key: {parameter: (the file's, the settings')}}: what `request_fields_of` cannot carry to another checkpoint (a
    guider's rescale, step window, norm dims and formulation; the sigma spacing). A file from before a key was stored
    is not compared on it."""
    now = jsonable({"guidance_config": guidance_config_of(settings.guidance.value),
                    "schedule": dataclasses.asdict(settings.schedule)})  # fmt: skip
    then = {"schedule": dataclasses.asdict(ScheduleOptions()), **stored}
    differences = {}
    for key in keys:
        if key not in then or (key == "guidance_config" and not (then[key] is None or isinstance(then[key], dict))):
            continue
        if then[key] is None or now[key] is None:  # unguided on one side
            if then[key] != now[key]:
                differences[key] = {"": (then[key], now[key])}
            continue
        names = dict.fromkeys([*then[key], *now[key]])
        changed = {name: (then[key].get(name), now[key].get(name)) for name in names}
        changed = {name: pair for name, pair in changed.items() if pair[0] != pair[1]}
        if key == "guidance_config" and "method" in changed:  # another method: its parameters are another's
            changed = {"method": changed["method"]}
        if changed:
            differences[key] = changed
    return differences


# What `stored_settings` writes beside the request's fields: who made the file, the effective settings, and the
# checksums of an uploaded clip and first frame (the server's); and the record of the machine `generate` adds.
_MADE_WITH_KEYS = ("software", "version", "model", "sampler", "flow_shift", "schedule", "guidance_config",
                   "extend_sha256", "image_sha256", RAN_ON_KEY)  # fmt: skip
# The request's fields a file gives back as they were (the image and the extended clip by their file names only).
_PLAIN_FIELDS = ("prompt", "negative_prompt", "width", "height", "frames", "fps", "steps", "seed", "image", "extend")
_METHODS = {APGConfig.__name__: "apg", CFGConfig.__name__: "cfg"}


def unknown_stored_keys(stored: dict) -> list[str]:
    """The keys of a file's stored settings that this version does not write (a newer motif-lite's, say)."""
    request_fields = {field.name for field in dataclasses.fields(GenerationRequest)} - {"output"}
    return sorted(set(stored) - request_fields - set(_MADE_WITH_KEYS))


def unknown_stored_choices(stored: dict) -> dict[str, str]:
    """The sampler and guidance method of a file's stored settings that this version does not have (a newer
    motif-lite's), by the request field that chooses each: {"sampler": "dpm++3m"}, {"guidance": "PAGConfig"}. Values
    of another JSON type than a name are not: the request's own checks refuse a sampler's, `damaged_stored_choices`
    names a guidance method's."""
    unknown = unknown_choices({"sampler": stored.get("sampler")})
    guidance = stored.get("guidance_config")
    method = guidance.get("method") if isinstance(guidance, dict) else None
    if isinstance(method, str) and method not in _METHODS:
        unknown["guidance"] = method
    return unknown


def damaged_stored_choices(stored: dict) -> dict[str, str]:
    """The entries of a file's stored settings that hold a choice as another JSON type than they are written as, by
    the request field that chooses each, with the entry, what it holds and what it should: {"guidance":
    "guidance_config.method holds a list, not a guidance method's name"}. An edit or damage, not a newer version's
    choice, which would be a name (`unknown_stored_choices`)."""
    guidance = stored.get("guidance_config")
    if guidance is not None and not isinstance(guidance, dict):  # null is unguided; a list is no guidance at all
        return {"guidance": f"guidance_config holds {json_kind(guidance)}, not an object of guidance settings"}
    if isinstance(guidance, dict) and "method" in guidance and not isinstance(guidance["method"], str):
        method = json_kind(guidance["method"])
        return {"guidance": f"guidance_config.method holds {method}, not a guidance method's name"}
    return {}


def stored_unguided(stored: dict) -> bool:
    """Whether a file's stored settings describe an unguided video: its guidance_config is null, or, in a file from
    before that key, its cfg_scale is 1, which then switched guidance off whatever the guider."""
    if "guidance_config" in stored:
        return stored["guidance_config"] is None
    scale = stored.get("cfg_scale")
    return isinstance(scale, int | float) and not isinstance(scale, bool) and math.isclose(scale, 1.0)


def request_fields_of(stored: dict) -> dict:
    """The `GenerationRequest` fields that make the video a file's stored settings describe (what `stored_settings`
    wrote, read back): the request's own values, and the sampler, flow shift and guidance that ran, as the fields
    that choose them (so that another checkpoint's configs do not change them). Fields the file leaves out or holds
    as None are left out."""
    fields = {name: stored[name] for name in _PLAIN_FIELDS if stored.get(name) is not None}
    fields.update({name: stored[name] for name in ("sampler", "flow_shift") if stored.get(name) is not None})
    if stored_unguided(stored):  # classic CFG at 1, its no-op scale (the official APG's 0 is CFG's uncond alone)
        return {**fields, "guidance": "cfg", "cfg_scale": 1.0}
    if "guidance_config" not in stored:  # not written by this version: the request's guidance fields, as given
        fields.update({name: stored[name] for name in GUIDANCE_FIELDS if stored.get(name) is not None})
        return fields
    guidance = stored["guidance_config"]
    method = guidance.get("method") if isinstance(guidance, dict) else None
    method = _METHODS.get(method) if isinstance(method, str) else None  # a hand-edited file may hold any JSON
    if method is None:
        return fields  # a method this version does not have: the run's flags or the checkpoint decide
    fields.update(guidance=method, cfg_scale=guidance.get("scale"))
    if method == "apg":
        momentum = guidance.get("momentum")
        fields.update(
            apg_eta=guidance.get("eta"),
            apg_norm_threshold=guidance.get("norm_threshold"),
            apg_momentum=0.0 if momentum is None else momentum,  # None is off, as 0 is for the flag
        )
    return {name: value for name, value in fields.items() if value is not None}
