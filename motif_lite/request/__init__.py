"""`GenerationRequest`: everything one video needs, shared by the Python API and the CLI.

Defaults are the official recommended settings (model card / diffusers pipeline): 1280x736, 121 frames at 24 fps,
50 steps and the negative prompt the model was trained against. Settings a checkpoint can decide (guidance, flow
shift, sampler) default to None, "not given": `motif_lite.settings.resolve_settings` then takes the checkpoint's
config, else the official value (APG scale 8, norm threshold 12, momentum 0.1; shift 15 T2V / 8 I2V; Euler).
`resolve()` validates a request before any model is loaded and returns a normalized copy.

Its parts: `generation_request` (the dataclass and its resolving), `field_checks` (each setting's checks and
bounds), `official_settings` (the official values), `frame_counts` (4k+1 frame counts and lengths in seconds),
`field_names` (the guidance fields, each field's run flag), `terms` (its error, the model's shapes and a video's
bounds, each interface's names of a setting), `advice` (what to give for a keyword it does not take),
`size_checks` (the sides, the tokens, the notes on sizes beyond training and a stretched first frame),
`clip_checks` (the clip `extend` goes on from) and `output_names` (placeholders in an output's name). The names
below are this package's too, as they were before it was split.
"""

from __future__ import annotations

from motif_lite.request.advice import OTHER_FIELD_NAMES, PYTHON_FIELD_ADVICE
from motif_lite.request.field_checks import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    RANGES,
    SEED_RANGE,
    unknown_choices,
)
from motif_lite.request.field_names import APG_FIELDS, GUIDANCE_FIELDS, run_dest, run_flag
from motif_lite.request.frame_counts import MOST_FRAMES, countable_frames, frames_for_seconds, nearest_video_frames
from motif_lite.request.generation_request import (
    DEFAULT_OUTPUT,
    REQUEST_DEFAULTS,
    GenerationRequest,
    ResolvedRequest,
    UnknownFieldError,
    first_frame_sha256,
    other_names_of_fields,
)
from motif_lite.request.official_settings import I2V_SHIFT, OFFICIAL_NEGATIVE_PROMPT, OFFICIAL_STEPS, T2V_SHIFT
from motif_lite.request.size_checks import STRETCH_NOTED, stretch_words
from motif_lite.request.terms import (
    API_FIELDS,
    GO_ON,
    MAX_VIDEO_TOKENS,
    RUN_FLAGS,
    SIZE_MULTIPLE,
    TEMPORAL_FACTOR,
    TRAINED_FRAMES,
    TRAINED_PIXELS,
    RequestError,
    extended_frames,
    video_seconds,
)

__all__ = [
    "API_FIELDS",
    "APG_FIELDS",
    "DEFAULT_OUTPUT",
    "GO_ON",
    "GUIDANCE_FIELDS",
    "I2V_SHIFT",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_VIDEO_TOKENS",
    "MOST_FRAMES",
    "OFFICIAL_NEGATIVE_PROMPT",
    "OFFICIAL_STEPS",
    "OTHER_FIELD_NAMES",
    "PYTHON_FIELD_ADVICE",
    "RANGES",
    "REQUEST_DEFAULTS",
    "RUN_FLAGS",
    "SEED_RANGE",
    "SIZE_MULTIPLE",
    "STRETCH_NOTED",
    "T2V_SHIFT",
    "TEMPORAL_FACTOR",
    "TRAINED_FRAMES",
    "TRAINED_PIXELS",
    "GenerationRequest",
    "RequestError",
    "ResolvedRequest",
    "UnknownFieldError",
    "countable_frames",
    "extended_frames",
    "first_frame_sha256",
    "frames_for_seconds",
    "nearest_video_frames",
    "other_names_of_fields",
    "run_dest",
    "run_flag",
    "stretch_words",
    "unknown_choices",
    "video_seconds",
]
