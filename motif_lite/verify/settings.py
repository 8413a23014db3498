"""What `motif-lite verify` runs: the request both pipelines get (`VerifySettings`, resolved as `run` resolves it;
the flow shift the reference's scheduler applies), and the wrong settings forced on our side (`ForcedSettings`)."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motif_lite.errors import Audience
from motif_lite.paths import user_path
from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT, GenerationRequest
from motif_lite.settings import resolve_flow_shift
from motif_lite.verify.reference import VerifyError
from motif_lite.verify.results import VerifyResult


@dataclass(frozen=True)
class VerifySettings:
    """The request both pipelines run: small, so that the real 2B weights take minutes, not hours."""

    width: int = 256
    height: int = 256
    frames: int = 9
    steps: int = 2
    seed: int = 0
    prompt: str = "a red fox runs through snow, cinematic lighting"
    negative_prompt: str = OFFICIAL_NEGATIVE_PROMPT
    image: Path | None = None  # the first frame: image-to-video on both sides (run's -i)


@dataclass(frozen=True)
class ForcedSettings:
    """Deliberately wrong settings on our side, to see verify catch them (negative controls)."""

    rope_theta: float | None = None  # our transformer's RoPE base
    apg_eta: float | None = None  # our APG's eta (as --apg-eta would set it: guidance stage and frames)
    latents_mean_shift: float | None = None  # added to our VAE's latents_mean (every channel)
    max_prompt_tokens: int | None = None  # our text encoder's token limit (text stage)
    image_mean_shift: float | None = None  # added to our SigLIP preprocessor's image_mean (image stage; needs -i)

    @classmethod
    def parse(cls, items: list[str]) -> ForcedSettings:
        """From `NAME=VALUE` strings (the CLI's --force)."""
        kinds = {f.name: (int if f.name == "max_prompt_tokens" else float) for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for item in items:
            name, _, text = item.partition("=")
            if name not in kinds or not text:
                raise VerifyError(f"--force {item!r}: use NAME=VALUE with NAME one of {', '.join(kinds)}")
            try:
                value = kinds[name](text)
            except ValueError:
                raise VerifyError(f"--force {item!r}: {text!r} is not a number") from None
            # Said here, before the loads (minutes on the real weights), not by the config they would reach after.
            if not math.isfinite(value):
                raise VerifyError(f"--force {item!r}: {text!r} is not a finite number")
            if name in ("rope_theta", "max_prompt_tokens") and value <= 0:
                raise VerifyError(f"--force {item!r}: {name} must be > 0")
            values[name] = value
        return cls(**values)


def resolve_verify_settings(settings: VerifySettings) -> tuple[VerifySettings, list[str]]:
    """The settings with the size, frame count and seed resolved as `run` resolves them (`GenerationRequest.resolve`):
    a frame count that is not 4k+1 rounded to the nearest one, with the note `run` prints; seed -1 a random seed
    (the result's first line names it); a size or seed `run` refuses refused with its error. Returns (the settings
    both pipelines run, the notes)."""
    settings = with_home_expanded(settings)
    request, notes = resolved(settings)
    return dataclasses.replace(settings, frames=request.frames, seed=request.seed), notes


def with_home_expanded(settings: VerifySettings) -> VerifySettings:
    """The settings with a first frame's leading `~` expanded, as `run` expands it (a quoted path, or one from
    Python): diffusers' `load_image`, the reference's reader, takes `~/x.png` for a URL and fails."""
    if settings.image is None or not os.fspath(settings.image).startswith("~"):
        return settings  # `./~/x.png` is the folder named ~ here, as `run` reads it: a Path would drop the `./`
    return dataclasses.replace(settings, image=user_path(settings.image))


def resolved(settings: VerifySettings, apg_eta: float | None = None) -> tuple[GenerationRequest, list[str]]:
    """`_request(settings, apg_eta).resolve()`: refused as `run` refuses it, less run's advice to use --extend, which
    verify lacks."""
    return _request(settings, apg_eta).resolve(audience=Audience.VERIFY)


def _request(settings: VerifySettings, apg_eta: float | None = None) -> GenerationRequest:
    """The chosen size and seed as a request, to be checked as `run` checks them (`resolve()`: a user error names the
    bad value); the frames stage writes into a folder of its own."""
    s = settings
    return GenerationRequest(
        s.prompt, s.negative_prompt, width=s.width, height=s.height, frames=s.frames, steps=s.steps, seed=s.seed,
        image=s.image, apg_eta=apg_eta, output=Path(tempfile.gettempdir()) / "verify_%03d.png",
    )  # fmt: skip


def request_for(ours: Any, reference: Any, request: GenerationRequest, result: VerifyResult) -> GenerationRequest:
    """Our request: the chosen size and seed; everything else as our pipeline resolves it from the checkpoint,
    except the flow shift when the reference's scheduler applies another one (both sides then use the reference's:
    a different default is a choice, not a bug, and a note says so)."""
    config = reference.scheduler.config
    reference_shift = float(config.get("shift", config.get("flow_shift", 1.0)))
    if config.get("use_dynamic_shifting", False):
        dynamic = ours.settings_for(request)
        if dynamic.schedule.time_shift:
            result.notes.extend(dynamic.notes)
            return request  # both sides shift by the video's size; a flow shift given here would turn ours off
    # Our shift alone, not our settings at it: those may be a DPM++ table diffusers cannot step where the reference's
    # shift gives one it can (a config shift of 1.0, diffusers' default, in place of which ours is 15).
    shift_notes: list[str] = []
    shift = resolve_flow_shift(request, ours.sources.configs.scheduler_shift, shift_notes)
    if shift.value != reference_shift:
        request = dataclasses.replace(request, flow_shift=reference_shift)
    result.notes.extend([*shift_notes, *ours.settings_for(request).notes])
    if shift.value != reference_shift:
        result.notes.append(
            f"the reference's scheduler shifts by {reference_shift:g}, motif-lite by {shift.value:g} "
            f"({shift.origin or shift.source}): both sides use {reference_shift:g}"
        )
    return request


def apply_forced(ours: Any, forced: ForcedSettings) -> None:
    if forced.rope_theta is not None:
        ours.transformer.config = ours.transformer.config.replace(rope_theta=forced.rope_theta)
    if forced.latents_mean_shift is not None:
        mean = [m + forced.latents_mean_shift for m in ours.vae.config.latents_mean]
        ours.vae.config = dataclasses.replace(ours.vae.config, latents_mean=mean)
    if forced.image_mean_shift is not None:
        processor = ours.text_encoder.loaded_image_processor()  # kept by the encoder: its encode_image uses it
        processor.image_mean = [m + forced.image_mean_shift for m in processor.image_mean]
