"""The checks of each setting of a request on its own: the prompts' text, the frame count (rounded to 4k+1), the
steps and the other numbers within their ranges, the guidance method and the sampler by name, and the seed (a
random one drawn where none is given). Each refusal is a `RequestError` naming the setting as the interface it came
from spells it; `GenerationRequest` runs them all and joins their refusals into one message (`one_message`)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping

from motif_lite.choices import (
    GUIDANCE_METHODS,
    SAMPLER_ALIASES,
    SAMPLERS,
    choice_name,
    misspelled_guidance,
    sampler_hint,
)
from motif_lite.config import MAX_PROMPT_TOKENS
from motif_lite.errors import Audience, shown_as_sent, whole_float_hint
from motif_lite.json_values import json_kind
from motif_lite.request.advice import is_generator, seed_of_generator
from motif_lite.request.field_names import APG_FIELDS
from motif_lite.request.frame_counts import nearest_video_frames
from motif_lite.request.official_settings import OFFICIAL_STEPS
from motif_lite.request.terms import EXTEND_FLAG, IMAGE_FLAG, RequestError, positive_int, setting_name

MAX_SEED = 2**32 - 1
# What a seed may be, in the words every refusal uses (the command line's, the request's, the server's).
SEED_RANGE = f"a whole number from 0 to {MAX_SEED}, or -1 for a random seed"
# Bounds far beyond any real use, for values that would otherwise run and fail late, or never end (a server's worker
# held for good). Steps: 20 times the official 50 (as many as the scheduler's training timesteps).
MAX_STEPS = 1000
# The model reads a prompt's first 512 tokens: about 2,000 characters of English (runtime.cost.CHARS_PER_TOKEN).
# 20,000 characters is ten times that, 39 per token; the rest is text the model never sees, and tokenizing a 20 MB
# prompt took the server's worker minutes and gigabytes.
MAX_PROMPT_CHARS = 20_000
# field -> (lowest, highest, why): the values each numeric setting takes, which its message names whole ("--fps must
# be a number from 0.001 to 1000 (...)", not "> 0"). Guidance scale and shift: the ranges of ComfyUI's KSampler cfg
# and ModelSamplingSD3 shift widgets, but for the shift's 0, which ComfyUI takes: the floor here is its next step,
# 0.01 (a shift of 0 makes the first sigma 0/0 and every other one 0: no schedule). Outside them the latents
# overflow to inf/NaN, which the run would blame on the weight files. APG momentum may be negative: the APG paper's
# reverse momentum (diffusers' guider and ComfyUI's APG node take it).
RANGES = {
    "fps": (0.001, 1000.0, "a frame every 1000 s to one every millisecond, the finest WebM and WebP store"),
    "steps": (1, MAX_STEPS, f"the official setting is {OFFICIAL_STEPS}"),
    "cfg_scale": (0.0, 100.0, "ComfyUI's range; the official scale is 8, and far larger ones overflow to inf/NaN"),
    "apg_eta": (0.0, math.inf, ""),
    "apg_norm_threshold": (0.0, math.inf, ""),
    "apg_momentum": (-math.inf, math.inf, ""),
    "flow_shift": (0.01, 100.0, "100 is ComfyUI's top; its 0 gives no schedule; the official shift is 15, 8 "
                   "for image-to-video, and extreme ones overflow to inf/NaN"),
}  # fmt: skip


def unknown_choices(fields: Mapping[str, object]) -> dict[str, str]:
    """The sampler and guidance method of a request's `fields` that this version does not have (a newer motif-lite's
    file), by field: {"sampler": "dpm++3m"}. A value of another type is left to the request's own checks."""
    named = {"sampler": (tuple(SAMPLERS), SAMPLER_ALIASES), "guidance": (GUIDANCE_METHODS, None)}
    return {
        field: value
        for field, (choices, aliases) in named.items()
        if isinstance(value := fields.get(field), str) and choice_name(value, choices, aliases) not in choices
    }


# Numbers that may be None (not given: the checkpoint's or the official value); their ranges are RANGES'.
OPTIONAL_NUMBERS = ("cfg_scale", *APG_FIELDS, "flow_shift")


def one_message(problems: list[str]) -> str:
    """The request's problems as one message: a single one as it is; several indented under a line that counts them,
    as other errors of several lines are, so that the "error:" the command line puts first heads them all."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} settings are invalid:\n" + "\n".join(f"  {problem}" for problem in problems)


def normalize_frames(frames: int, audience: Audience) -> tuple[int, list[str]]:
    _check_positive_int(frames, setting_name("frames", audience), audience)
    valid = nearest_video_frames(frames)
    if valid == frames:
        return frames, []
    # Named as the user gave it, as the checks name a setting ("--height (in Python height) 40 is not ...").
    return valid, [f"{setting_name('frames', audience)} {frames} is not 4k+1; using {valid}"]


def resolve_seed(seed: int | None, audience: Audience) -> int:
    if seed is None or seed == -1:
        return secrets.randbelow(MAX_SEED + 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        # diffusers' pipelines take a torch.Generator: its seed is the number to give here.
        if is_generator(seed):
            # Only Python passes a generator: the line to give is Python's.
            raise RequestError(f"seed takes a number, not a generator: {seed_of_generator(seed)}")
        as_int = whole_float_hint(seed, lambda number: 0 <= number <= MAX_SEED) or _low_bits_hint(seed)
        got = shown_as_sent(seed, audience)
        raise RequestError(f"{setting_name('seed', audience)} must be {SEED_RANGE}, got {got}{as_int}")
    return seed


def _low_bits_hint(seed: object) -> str:
    """' (...: give 3197704724 for the same noise)' for a seed over 32 bits that torch's generator takes (up to
    2**64 - 1, ComfyUI's range): its CPU generator (a Mersenne twister) is seeded with the low 32 bits only, so
    `torch.Generator().manual_seed(seed)`, as diffusers' pipelines and ComfyUI's KSampler draw their noise, draws
    what this seed's low 32 bits draw here. '' for any other value."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not MAX_SEED < seed < 2**64:
        return ""
    return (
        f" (torch's CPU generator, which draws the starting noise here as in diffusers' "
        f"torch.Generator().manual_seed(N) and ComfyUI, reads only a seed's low 32 bits: give {seed % 2**32} "
        "for the same noise)"
    )


def check_negative_prompt(value: object, audience: Audience) -> None:
    if value is None:  # only Python passes None: diffusers' negative_prompt=None, which is no negative prompt there
        raise RequestError(
            "negative_prompt=None is not taken: leave it out for the official negative prompt (the default here), or "
            'give negative_prompt="" for none, which is what diffusers\' None means'
        )
    _check_text(value, setting_name("negative_prompt", audience), audience)


def check_prompt(value: object, starts_from_frame: bool, audience: Audience) -> None:
    # An empty prompt is a trained condition (captions were dropped in training) that diffusers encodes as <bos>
    # alone: with a first frame it animates the image with no text. Without one it would be a random scene, far
    # more often a script's empty variable than a wish, so text-to-video refuses it (diffusers takes it).
    if isinstance(value, str) and not value.strip() and not starts_from_frame:
        raise RequestError(
            f"prompt is empty: text-to-video needs what the video shows; an empty prompt is taken only with a first "
            f"frame ({IMAGE_FLAG.to(audience)} or {EXTEND_FLAG.to(audience)}), which it then animates with no text"
        )
    _check_text(value, "prompt", audience)


def _check_text(value: object, name: str, audience: Audience) -> None:
    if isinstance(value, list | tuple):  # diffusers takes a list of prompts, a video each
        # The output is Python's advice: a server's client names none.
        each = "" if audience is Audience.API else " (in Python each with its own output)"
        raise RequestError(f"{name} must be a string, got a {type(value).__name__}: a request makes one video, so make "
                           f"one request per prompt{each}")  # fmt: skip
    if not isinstance(value, str):
        # To a server's client its JSON's word ("a number", "true or false"), not Python's type ("int", "bool").
        kind = json_kind(value) if audience is Audience.API else type(value).__name__
        raise RequestError(f"{name} must be a string, got {kind}")
    if not value.isascii() and not _is_unicode(value):
        raise RequestError(
            f"{name} holds bytes that are not UTF-8 text (from a terminal in another encoding, or a damaged or "
            "hand-edited file); give it again as UTF-8 text"
        )
    if len(value) > MAX_PROMPT_CHARS:
        raise RequestError(
            f"{name} is {len(value):,} characters, over the {MAX_PROMPT_CHARS:,} taken: the model reads only its first "
            f"{MAX_PROMPT_TOKENS} tokens (about 2,000 characters of English); shorten it"
        )


def _is_unicode(text: str) -> bool:
    """Whether `text` is valid Unicode: Python keeps undecodable bytes (in argv, or as a JSON escape such as
    \\udcff) as lone surrogates, which the tokenizer refuses only after the model has loaded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_positive_int(value: object, name: str, audience: Audience) -> None:
    if not positive_int(value):
        as_int = whole_float_hint(value, positive_int)
        raise RequestError(f"{name} must be a positive integer, got {shown_as_sent(value, audience)}{as_int}")


def check_steps(value: object, audience: Audience) -> None:
    low, high, why = RANGES["steps"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        as_int = whole_float_hint(value, lambda number: low <= number <= high)
        raise RequestError(f"{setting_name('steps', audience)} must be {_accepted('an integer', low, high)} ({why}), "
                           f"got {shown_as_sent(value, audience)}{as_int}")  # fmt: skip


def check_number(value: object, field: str, audience: Audience) -> bool:
    """`value` is a number within the field's RANGES."""
    low, high, why = RANGES[field]
    number = not isinstance(value, bool) and isinstance(value, int | float) and _is_finite(value)
    if not number or not low <= value <= high:
        because = f" ({why})" if why else ""
        raise RequestError(f"{setting_name(field, audience)} must be {_accepted('a number', low, high)}{because}, got "
                           f"{shown_as_sent(value, audience)}")  # fmt: skip
    return True


def _accepted(kind: str, low: float, high: float) -> str:
    """A range as a message names it: 'a number from 0 to 100' (`kind` 'a number'), 'a finite number >= 0', 'a
    finite number' (the unbounded ones are all floats)."""
    if math.isfinite(low) and math.isfinite(high):
        return f"{kind} from {low:g} to {high:g}"
    return "a finite number" + (f" >= {low:g}" if math.isfinite(low) else "")


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a float's range (10**400): no float setting can hold it
        return False


def _check_choice(value: object, name: str, choices: tuple[str, ...], hint: str | None) -> None:
    """Refuses a `value` not in `choices`, followed by `hint` ("; did you mean apg?") where there is one."""
    if value not in choices:
        raise RequestError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}{hint or ''}")


def check_guidance(value: object, audience: Audience) -> None:
    hint = misspelled_guidance(value) if isinstance(value, str) else None
    _check_choice(value, setting_name("guidance", audience), GUIDANCE_METHODS, hint)


def check_sampler(value: object, audience: Audience) -> None:
    hint = sampler_hint(value, audience) if isinstance(value, str) else None
    _check_choice(value, setting_name("sampler", audience), tuple(SAMPLERS), hint)
