"""`GenerationRequest`, the dataclass of every setting of one video with its defaults, and its resolving: every
field checked at once (one `RequestError` naming each invalid one), normalized (frames 4k+1, a seed drawn, a free
output name), its inputs read (the image, the clip `extend` names) and the notes on what was changed; also a
keyword it has no field for refused with the field to give (`UnknownFieldError`)."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from motif_lite.choices import GUIDANCE_METHODS, SAMPLER_ALIASES, SAMPLERS, choice_name
from motif_lite.errors import Audience, DiskFullError, MotifLiteError
from motif_lite.paths import user_path
from motif_lite.prompt_notes import composition_notes, language_notes, line_end_notes, syntax_notes
from motif_lite.request.advice import OTHER_FIELD_NAMES, positional_fields_advice, unknown_field_advice
from motif_lite.request.clip_checks import ClipSizeError, checked_clip, extension_notes
from motif_lite.request.field_checks import (
    OPTIONAL_NUMBERS,
    check_guidance,
    check_negative_prompt,
    check_number,
    check_prompt,
    check_sampler,
    check_steps,
    normalize_frames,
    one_message,
    resolve_seed,
)
from motif_lite.request.official_settings import OFFICIAL_NEGATIVE_PROMPT, OFFICIAL_STEPS
from motif_lite.request.output_names import check_no_placeholder
from motif_lite.request.size_checks import (
    beyond_training_notes,
    check_size,
    check_video_tokens,
    oversized_field,
    stretch_note,
)
from motif_lite.request.terms import (
    OFFICIAL_VIDEO,
    OUTPUT_FLAG,
    TEMPORAL_FACTOR,
    RequestError,
    extended_frames,
    frames_flag,
    positive_int,
)

if TYPE_CHECKING:
    import numpy as np
    import PIL.Image
    import torch

    from motif_lite.io.clip import Clip
    from motif_lite.io.image import WrittenFirstFrame

T = TypeVar("T")


class UnknownFieldError(TypeError):
    """A keyword `GenerationRequest` has no field for (diffusers' `num_frames=`, a typo), or a field given by position
    after the negative prompt, saying the field to give.
    A `TypeError`, as Python's own for an unexpected keyword is, and not a `MotifLiteError`: the server's stored
    settings with a field of another version are a failed job (`server.worker.failure`), not the client's mistake."""


def other_names_of_fields() -> dict[str, str]:
    """Every name another tool or interface gives a request field -> the field: OTHER_FIELD_NAMES and the fields'
    own names (each interface spells some otherwise: run's --video-frames for frames, the server's num_frames)."""
    return {**{item.name: item.name for item in dataclasses.fields(GenerationRequest)}, **OTHER_FIELD_NAMES}


def first_frame_sha256(request: GenerationRequest) -> str | None:
    """The SHA-256 of the file `request`'s first frame comes from: the input image, or the file holding an extended
    clip's last frame (`last_frame_file`); None for text-to-video, or a file that cannot be read."""
    from motif_lite.io.clip import last_frame_file  # torch and Pillow: once a request is resolved
    from motif_lite.io.image import image_sha256

    if request.extend is not None:
        return image_sha256(last_frame_file(request.extend))
    return None if request.image is None else image_sha256(user_path(request.image))


class _FieldsSignature:
    """`GenerationRequest`'s signature as `help()`, `inspect` and notebooks show it: its fields, those of the
    dataclass's `__init__`, not the `(*args, **kwargs)` of the `__new__` that checks the keywords first."""

    def __get__(self, instance: object, owner: type) -> inspect.Signature:
        signature = inspect.signature(owner.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])  # without self


class _DefaultOutput(str):
    """The `output` of a request that names none: a path (output.mp4) to all that reads it, and to `resolve` the
    sign to pick a free name rather than replace a file (`_output_to_write`). `output=None` stays an error (diffusers'
    habit of frames in memory)."""


DEFAULT_OUTPUT = _DefaultOutput("output.mp4")


class ResolvedRequest(NamedTuple):
    """`GenerationRequest.resolve_with_inputs`'s result: the resolved request and what its checks read, for a caller
    that goes on to use them (`generate(resolved=...)`) instead of reading the inputs again."""

    request: GenerationRequest  # validated and normalized (frames 4k+1, a seed drawn)
    clip: Clip | None  # the clip `extend` names, None without one
    image: PIL.Image.Image | None  # the input image (`io.image.read_image`: upright, RGB), None without one
    notes: list[str]  # on what was changed, as `resolve` gives them
    # The SHA-256 of the file the first frame comes from (`first_frame_sha256`), hashed once for the whole run: the
    # key of its kept encodings, the checksum its saved state keeps and a resume compares. None for text-to-video.
    first_frame_sha256: str | None
    # The PNG written for a first frame made in memory (`_with_first_frame_file`): what a run refused before its work
    # undoes. None where none was written (a file given, or these pixels there already).
    first_frame_written: WrittenFirstFrame | None


@dataclass(frozen=True)
class GenerationRequest:
    """One text-to-video (or image-to-video, with `image`) generation.

    None means "not given": the checkpoint's config decides, else the official value (motif_lite.settings).
    guidance: "apg" or "cfg" (the method); cfg_scale: its scale, as diffusers' guider reads it; the scale that
    changes nothing switches guidance off (no negative-prompt pass, half the transformer calls): 0 on the official
    guider (original formulation), 1 on a standard one; apg_eta / apg_norm_threshold / apg_momentum: one APG
    parameter each.
    flow_shift: the schedule's shift. sampler: "euler", "dpm++2m" or "unipc".
    seed: None or -1 = a random seed (chosen by `resolve()` and reported in the result).
    output: the file written (its extension says the format); a name given is replaced, and without one the video
    goes to output.mp4, or output-2.mp4, output-3.mp4, ... when that is there (`resolve()` picks it, with a note).
    image: the first frame, as the path of an image file or made in memory as diffusers' pipelines take it (a PIL
    image, a numpy array or a torch tensor, `io.memory_images.image_from_memory`): one made in memory is written
    beside the output as a PNG (`fox.mp4` -> `fox.first-frame.png`) when the request is resolved with its inputs
    (`generate`), and the run names that file, as if it had been given.
    extend: a clip to go on from (a video file, or a PNG sequence's pattern): its last frame is the first frame, as
    `image` would be, and `output` holds the clip's frames followed by the new ones after that first frame. The
    clip's size must be the request's (`motif_lite.io.clip.read_clip` gives its size and frame rate).
    """

    prompt: str
    negative_prompt: str = OFFICIAL_NEGATIVE_PROMPT
    # The rest by name only: diffusers' order is (prompt, negative_prompt, height, width, ...), so a positional
    # GenerationRequest("a fox", "", 480, 832) would quietly make a portrait video.
    _: KW_ONLY
    width: int = OFFICIAL_VIDEO.width
    height: int = OFFICIAL_VIDEO.height
    frames: int = OFFICIAL_VIDEO.frames
    fps: float = 24.0
    steps: int = OFFICIAL_STEPS
    guidance: str | None = None
    cfg_scale: float | None = None
    apg_eta: float | None = None
    apg_norm_threshold: float | None = None
    apg_momentum: float | None = None
    flow_shift: float | None = None
    sampler: str | None = None
    seed: int | None = None
    image: str | Path | PIL.Image.Image | np.ndarray | torch.Tensor | None = None
    output: str | Path = DEFAULT_OUTPUT  # none given: output.mp4, or output-2.mp4, ... when it is there
    extend: str | Path | None = None

    __signature__ = _FieldsSignature()

    def __new__(cls, *args: Any, **kwargs: Any) -> GenerationRequest:
        # A keyword with no field (diffusers' num_frames) gets the field to give, which Python's own TypeError,
        # raised by the dataclass's __init__ before any code of ours runs, would not say.
        fields = [item.name for item in dataclasses.fields(cls)]
        if len(args) > 2:  # Python's own error would say "takes from 2 to 3 positional arguments" and no more
            raise UnknownFieldError(positional_fields_advice(args[2:], fields))
        unknown = [name for name in kwargs if name not in fields]
        if unknown:
            raise UnknownFieldError("\n".join(unknown_field_advice(name, kwargs[name], fields) for name in unknown))
        return super().__new__(cls)

    @property
    def latent_frames(self) -> int:
        """The latent frames with the official VAE (a loaded one: `WanVAEConfig.latent_frames`)."""
        return (self.frames - 1) // TEMPORAL_FACTOR + 1

    @property
    def starts_from_frame(self) -> bool:
        """Image-to-video: a first frame is given, as an image or as the last frame of a clip to extend."""
        return self.image is not None or self.extend is not None

    @property
    def conditions_on_image(self) -> bool:
        """Image-to-video: a first frame is given and the video has more than one latent frame. One latent frame is
        plain text-to-video, as in the reference: nothing follows the first frame for the image to condition."""
        return self.starts_from_frame and self.latent_frames > 1

    def resolve(
        self,
        clip: Clip | None = None,
        *,
        audience: Audience = Audience.RUN_OR_PYTHON,
        taken_output: str | Path | None = None,
    ) -> tuple[GenerationRequest, list[str]]:
        """Validate every setting and return (normalized copy, notes on what was changed).

        Frames are rounded to the nearest 4k+1 (reported in the notes, as stable-diffusion.cpp does) and a
        random seed is drawn. Everything else that is wrong is reported at once: one `RequestError` with a line
        per invalid setting (an unwritable output or an unreadable image included). numpy's scalars (a notebook's
        `np.int64` seed) count as the Python numbers they hold. `clip`: the clip `extend` names as the caller read it
        already (`read_clip`), checked here but not read again: reading a clip costs a decode of a video file, or
        every header of a PNG sequence. `audience`: who the messages and notes speak to (the server: its client, in
        the API's fields). `taken_output`: an output the caller takes as named, braces and
        all, which is then not checked for placeholders: a resumed run's own (`SavedLatents.output`; an older
        motif-lite wrote `fox_{seed}.mp4` as named, and going on finishes that run's one video), or `motif-lite run
        -o`'s, which run checks in its own words first (`cli.run_request.check_no_name_placeholder`).
        """
        # No checksum: nothing uses one.
        resolved, _, _, notes = _one_image(_plain_numbers(self))._checked(clip, audience, taken_output)
        return resolved, notes

    def resolve_with_inputs(
        self,
        clip: Clip | None = None,
        *,
        audience: Audience = Audience.RUN_OR_PYTHON,
        checksum: str | None = None,
        taken_output: str | Path | None = None,
    ) -> ResolvedRequest:
        """`resolve(clip)`, also handing on what the checks read, for a caller that goes on to use it: the clip
        `extend` names (None without one), and the input image (`io.image.read_image`: upright, RGB; None without
        one), so that a large photo is decoded once; and the checksum of the file the first frame comes from, so that
        it is hashed once (`ResolvedRequest.first_frame_sha256`). `checksum`: that file's checksum where the caller
        hashed it already (run --resume, checking the image is the one the run sampled from): not hashed again.
        A first frame made in memory is written as its PNG here (`ResolvedRequest.first_frame_written`, which a run
        refused before its work undoes), with a note where that replaced a file of other pixels. `taken_output`: as
        `resolve` takes it."""
        resolved, read, image, notes = _one_image(_plain_numbers(self))._checked(clip, audience, taken_output)
        from motif_lite.io.image import is_in_memory

        written = None
        if is_in_memory(resolved.image):
            resolved, written, file_notes = _with_first_frame_file(resolved, image)
            notes = notes + file_notes
        checksum = checksum if checksum is not None else first_frame_sha256(resolved)
        return ResolvedRequest(resolved, read, image, notes, checksum, written)

    def _checked(
        self, read: Clip | None, audience: Audience, taken_output: str | Path | None
    ) -> tuple[GenerationRequest, Clip | None, PIL.Image.Image | None, list[str]]:
        fields = self._checked_fields(read, audience, taken_output)
        self._refuse_inputs_overwritten(fields)
        resolved = dataclasses.replace(
            self, frames=fields.frames, seed=fields.seed, guidance=fields.guidance, sampler=fields.sampler,
            output=fields.output,
        )  # fmt: skip
        notes = fields.notes + resolved._resolved_notes(fields, audience)
        return resolved, fields.clip, fields.image, notes

    def _checked_fields(self, read: Clip | None, audience: Audience, taken_output: str | Path | None) -> _CheckedFields:
        """Every field checked, read (the clip `extend` names, unless `read` is it already; the image) and
        normalized; one `RequestError` names every field's problem."""
        from motif_lite.io.image import read_image  # torch and Pillow: once a request is resolved
        from motif_lite.io.staging import unreachable_path
        from motif_lite.io.video import check_output_fps, check_output_path

        problems: list[str] = []
        invalid: list[str] = []  # the field of each problem

        def check(field: str, fn: Callable[..., T], *args: object) -> T | None:
            try:
                return fn(*args)
            except (ClipSizeError, DiskFullError):  # the clip's: handled where it is checked; a full disk: not a
                raise  # field's problem (a server's data folder: the operator's, `submission`)
            except MotifLiteError as exc:
                problems.append(str(exc))
                invalid.append(field)
                return None
            except PermissionError as exc:  # a path under a folder this process may not enter (`unreachable_path`)
                if (said := unreachable_path(exc)) is None:
                    raise
                problems.append(said)
                invalid.append(field)
                return None

        check("prompt", check_prompt, self.prompt, self.starts_from_frame, audience)
        check("negative_prompt", check_negative_prompt, self.negative_prompt, audience)
        size = (self.width, self.height)
        width_ok = check("width", check_size, self.width, "width", size, audience) is not None
        height_ok = check("height", check_size, self.height, "height", size, audience) is not None
        normalized = check("frames", normalize_frames, self.frames, audience)
        frames_known = normalized[0] if normalized is not None else None
        # Sides off the 16-pixel grid are measured too (their tokens round down): 99999x99999 is told it is too
        # large beside its nearest valid sides, rather than sent to try 100000x100000 first.
        if positive_int(self.width) and positive_int(self.height) and frames_known is not None:
            field = oversized_field(self.width, self.height, frames_known)
            check(field, check_video_tokens, self.width, self.height, frames_known)
        check("steps", check_steps, self.steps, audience)
        fps_ok = check("fps", check_number, self.fps, "fps", audience) is not None
        for field in OPTIONAL_NUMBERS:
            if getattr(self, field) is not None:
                check(field, check_number, getattr(self, field), field, audience)
        guidance = choice_name(self.guidance, GUIDANCE_METHODS)
        if guidance is not None:
            check("guidance", check_guidance, guidance, audience)
        sampler = choice_name(self.sampler, tuple(SAMPLERS), SAMPLER_ALIASES)
        if sampler is not None:
            check("sampler", check_sampler, sampler, audience)
        seed = check("seed", resolve_seed, self.seed, audience)
        try:
            clip = (
                check("extend", checked_clip, self, frames_known, width_ok and height_ok, read, audience)
                if self.extend is not None
                else None
            )
        except ClipSizeError as exc:  # the size came from the clip: its line alone, not "nearest valid width: 96"
            kept = [(p, f) for p, f in zip(problems, invalid, strict=True) if f not in ("width", "height")]
            problems[:], invalid[:] = [p for p, _ in kept] + [str(exc)], [f for _, f in kept] + ["extend"]
            clip = None
        clip_frames = clip.frames if clip is not None else None
        written = None if frames_known is None else extended_frames(frames_known, clip_frames)
        output, output_notes = _output_to_write(self.output)
        # First: a name with braces passes the path checks.
        named = check("output", check_no_placeholder, output, taken_output, written)
        output_ok = named and check("output", check_output_path, output, written)
        if output_ok and fps_ok:
            check("fps", lambda: check_output_fps(output, self.fps, frames=written))  # a WebP's length too
        # Names an unreadable file (a clip given as the image: how to go on from it, in `audience`'s words).
        read = check("image", read_image, self.image, audience) if self.image is not None else None
        image, image_notes = read if read is not None else (None, [])
        if problems:
            raise RequestError(one_message(problems), tuple(invalid))
        frames, frame_notes = normalized
        return _CheckedFields(
            frames=frames, seed=seed, guidance=guidance, sampler=sampler, output=output, written=written, clip=clip,
            image=image, image_notes=image_notes, notes=frame_notes + output_notes,
        )  # fmt: skip

    def _refuse_inputs_overwritten(self, fields: _CheckedFields) -> None:
        """A `RequestError` when the output would be written over the input image or the clip it goes on from."""
        from motif_lite.io.video import replaces_file

        output = fields.output
        from_file = isinstance(self.image, str | Path)  # one made in memory is written beside the output, not over it
        if fields.image is not None and from_file and replaces_file(output, fields.frames, self.image):
            raise RequestError(
                f"the output {output} would replace the input image {self.image} with the video; give the "
                f"video another name with {OUTPUT_FLAG}",
                ("output",),
            )
        clip = fields.clip
        if clip is not None and any(replaces_file(output, fields.written, file) for file in clip.files):
            raise RequestError(  # the clip is read again as the output is written: it must stay as it is
                f"the output {output} would replace the clip {self.extend} it goes on from; give the longer video "
                f"another name with {OUTPUT_FLAG}",
                ("output",),
            )

    def _resolved_notes(self, fields: _CheckedFields, audience: Audience) -> list[str]:
        """The notes of this resolved request: beyond the training sizes, the extension, the prompts' language and
        syntax, and the input image's (ignored for 1 frame, stretched, enlarged)."""
        from motif_lite.io.image import enlargement_notes

        image, clip = fields.image, fields.clip
        notes = beyond_training_notes(self.width, self.height, self.frames, audience, clip=clip)
        notes += extension_notes(clip, self.frames, self.fps, self.output, audience) if clip is not None else []
        for text, label in ((self.prompt, "prompt"), (self.negative_prompt, "negative prompt")):
            notes += line_end_notes(text, label) + composition_notes(text, label) + language_notes(text, label)
            notes += syntax_notes(text, label, audience)
        if image is not None and not self.conditions_on_image:  # frames are 4k+1 here: 1 frame
            notes.append(
                "a 1-frame video is one latent frame, which the first-frame image does not condition (as in the "
                f"reference): the image is ignored; use {frames_flag(TEMPORAL_FACTOR + 1, audience)} or more for "
                "image-to-video"
            )
        elif image is not None:
            notes += [*fields.image_notes, *stretch_note(image.size, self.width, self.height, audience)]
            notes += enlargement_notes(image.size, self.width, self.height)
        return notes


@dataclass(frozen=True)
class _CheckedFields:
    """What `GenerationRequest._checked_fields` read and normalized of a request whose every field is valid."""

    frames: int  # 4k+1
    seed: int
    guidance: str | None
    sampler: str | None
    output: Path | str
    written: int  # the frames the output will hold: an extension's clip's and the new ones
    clip: Clip | None
    image: PIL.Image.Image | None
    image_notes: list[str]
    notes: list[str]  # the frame count's and the output name's


def _output_to_write(output: object) -> tuple[object, list[str]]:
    """The file a request writes: the `output` given, or without one output.mp4, else the first free name of
    output-2.mp4, output-3.mp4, ... (as `motif-lite run` without -o), with the note that says so. A notebook's
    requests without `output` each replaced the one before: a second prompt's video took the first one's file."""
    if output is not DEFAULT_OUTPUT:
        return output, []
    from motif_lite.io.output_claims import unused_path

    free = unused_path(Path(output))
    if free == Path(output):
        return str(output), []
    return free, [f"{output} exists: writing {free} instead (output= names the file, and replaces a file there)"]


def _with_first_frame_file(
    request: GenerationRequest, image: PIL.Image.Image
) -> tuple[GenerationRequest, WrittenFirstFrame | None, list[str]]:
    """The resolved `request` with its first frame made in memory (read as `image`) written as a PNG beside its
    output (`first_frame_file`) and named by it: the run then goes on as if that file had been given, so the video's
    settings name it, and `--settings-from`, a resume and the kept first-frame encodings find it. Also what was
    written (`io.image.write_first_frame`: None where the file held these pixels already) and its note."""
    from motif_lite.io.image import first_frame_file, write_first_frame

    path = first_frame_file(request.output)
    try:
        written, notes = write_first_frame(image, path)
    except OSError as exc:  # the output's folder was found writable: a full disk, most likely
        raise MotifLiteError(f"cannot write the first frame given in memory to {path}: {exc}") from exc
    return dataclasses.replace(request, image=path), written, notes


REQUEST_DEFAULTS = GenerationRequest(prompt="-")  # every default (the prompt has none): read them from its fields


def _plain_numbers(request: GenerationRequest) -> GenerationRequest:
    """The request with numpy's (and other) integer and real scalars as Python ints and floats, so that
    `np.int64(3)` is a valid seed and the video's metadata stays JSON. bools stay bools (and fail as numbers).
    A one-number tensor or array (a notebook's `torch.randint(0, 2**32, ())` seed) counts as the number it holds."""
    changed = {}
    for item in dataclasses.fields(request):
        value = getattr(request, item.name)
        if isinstance(value, bool | int | float | str | Path) or value is None or item.name == "image":
            continue  # an image made in memory is an image, even of one number (refused as one)
        if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):  # torch or numpy, 0-d
            value = value.item()
            if isinstance(value, bool):
                continue  # refused as a number, as the tensor it came from
        if isinstance(value, numbers.Integral):
            changed[item.name] = int(value)
        elif isinstance(value, numbers.Real):
            changed[item.name] = float(value)
    return dataclasses.replace(request, **changed) if changed else request


def _one_image(request: GenerationRequest) -> GenerationRequest:
    """The request with a first frame given in a list of one (`image=[frame]`, which diffusers' image-to-video
    pipeline takes as that frame) as that frame; a longer list is `io.image.read_image`'s to refuse."""
    image = request.image
    if isinstance(image, list | tuple) and len(image) == 1:
        return dataclasses.replace(request, image=image[0])
    return request
