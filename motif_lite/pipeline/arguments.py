"""`generate`'s arguments that `GenerationRequest.resolve` does not see, checked before any work: a wrong one costs
no encoding, and says what to give instead of failing as a TypeError or AttributeError from inside the run."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from motif_lite.io.clip import Clip
from motif_lite.pipeline.metadata import STORED_CLIP_KEYS, STORED_IMAGE_KEYS
from motif_lite.request import GenerationRequest, RequestError, ResolvedRequest

# How `generate` calls each callback: positional arguments, named as ProgressFn and PreviewFn describe them.
CALLED_AS = {"on_progress": ("stage", "done", "total"), "on_preview": ("done", "steps", "frames")}


def check_generate_arguments(
    request: object,
    preview_every: object,
    callbacks: Mapping[str, object],
    keep_latents: object,
    latents_file: object,
    clip: object,
    stored_clip: object,
    stored_image: object,
) -> None:
    """`generate`'s arguments that `GenerationRequest.resolve` does not see, checked before any work (`callbacks`:
    name -> the function given, or None)."""
    if not isinstance(request, GenerationRequest):
        prompt = repr(request) if isinstance(request, str) else "'a red fox runs through snow'"
        raise RequestError(
            f"generate takes a GenerationRequest, got {type(request).__name__}: pipe.generate(GenerationRequest("
            f"{prompt}, output='fox.mp4')), with GenerationRequest from motif_lite.request"
        )
    if preview_every is not None and (
        isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 1
    ):
        raise RequestError(f"preview_every must be a positive integer, got {preview_every!r}")
    if preview_every is not None and callbacks.get("on_preview") is None:  # as run's --preview-every without --preview
        raise RequestError(
            f"preview_every={preview_every!r} without on_preview makes no preview: give on_preview=fn as well, "
            "which is called as fn(done, steps, frames)"
        )
    if not isinstance(keep_latents, bool):  # "no" would keep them; a wrong latents_file failed only when used
        raise RequestError(f"keep_latents must be True or False, got {type(keep_latents).__name__} {keep_latents!r}")
    if latents_file is not None and not isinstance(latents_file, str | os.PathLike):
        raise RequestError(
            f"latents_file must be a file path (str or Path) such as 'fox.latents.safetensors', or None, got "
            f"{type(latents_file).__name__} {latents_file!r}"
        )
    if latents_file is not None:
        _check_reachable(Path(latents_file))
    if clip is not None and not isinstance(clip, Clip):  # a path was an AttributeError from inside resolve
        raise RequestError(
            f"clip must be the Clip that read_clip(path) gives (motif_lite.io.clip), or None, got "
            f"{type(clip).__name__} {clip!r}: the clip to extend is named by GenerationRequest(extend=path)"
        )
    # Checked here, before any work: `stored_settings` uses these keys only, each for its own input.
    _check_stored_input("stored_clip", stored_clip, STORED_CLIP_KEYS, "{'extend': name, 'extend_sha256': checksum}")
    _check_stored_input("stored_image", stored_image, STORED_IMAGE_KEYS, "{'image': name, 'image_sha256': checksum}")
    for name, callback in callbacks.items():
        if callback is None:
            continue
        if not callable(callback):
            file = ""  # --preview's habit: a file name, where the Python API takes a function
            if name == "on_preview" and isinstance(callback, str | os.PathLike):
                file = (f": to have the previews written to that file, as --preview does, give on_preview=PreviewFile("
                        f"{str(callback)!r}, fps=6) (motif_lite.io.preview: one frame per latent frame, 4 video "
                        "frames) and call its close() after generate")  # fmt: skip
            raise RequestError(f"{name} must be a function (or None), got {type(callback).__name__} {callback!r}{file}")
        if inspect.isclass(callback):  # ProgressBars or tqdm itself: each call would make one, or fail inside it
            bars = " (bars: on_progress=ProgressBars(), with ProgressBars from motif_lite)" * (name == "on_progress")
            raise RequestError(f"{name} takes a function or an object to call, not the class {callback.__name__}: "
                               f"give an instance of it, if it is called as {name}({', '.join(CALLED_AS[name])})"
                               f"{bars}")  # fmt: skip
        _check_callable_as(name, callback, CALLED_AS[name])


def check_resolved(request: GenerationRequest, resolved: object, clip: Clip | None = None) -> None:
    """Refuse a `resolved` that is not what `resolve_with_inputs` made of this very `request` (the resolved copy it
    holds, not the request it came from): `generate` would then skip the checks of a request no one made. A `clip`
    beside it must be the one it read (`resolved.clip`): `generate` goes on from that one, another would be ignored."""
    if resolved is None:
        return
    if not isinstance(resolved, ResolvedRequest) or resolved.request is not request:
        raise RequestError(
            f"resolved takes what request.resolve_with_inputs(clip) returned, given with the request it holds: "
            f"generate(resolved.request, resolved=resolved); got {type(resolved).__name__}"
        )
    if clip is not None and clip != resolved.clip:
        held = "no clip" if resolved.clip is None else f"the clip {resolved.clip.path}"
        raise RequestError(
            f"clip is {clip.path}, but resolved holds {held}: generate goes on from the clip resolved holds; give "
            "the clip to request.resolve_with_inputs(clip) and leave it out of generate"
        )


def _check_reachable(latents_file: Path) -> None:
    """`RequestError` for a latents file under a folder this process may not enter, in the words the command line
    says it (`unreachable_path`): pathlib's PermissionError came out of the run."""
    from motif_lite.io.staging import unreachable_path  # torch: once a run is checked

    try:
        latents_file.expanduser().exists()
    except PermissionError as exc:
        if (said := unreachable_path(exc)) is None:
            raise
        raise RequestError(said) from None


def _check_stored_input(name: str, value: object, keys: tuple[str, ...], shape: str) -> None:
    """Raise `RequestError` unless `value` is None or a mapping of some of `keys` to str (`stored_clip`,
    `stored_image`: what the file's settings say of an input instead of its path's name)."""
    if value is None or (
        isinstance(value, Mapping) and set(value) <= set(keys) and all(isinstance(v, str) for v in value.values())
    ):
        return
    raise RequestError(f"{name} takes {shape}, either or both (each a str), or None, got {type(value).__name__} "
                       f"{value!r}")  # fmt: skip


def _check_callable_as(name: str, callback: Callable, arguments: tuple[str, ...]) -> None:
    """Raise `RequestError` when `callback` cannot take `arguments` positionally (diffusers'
    `callback_on_step_end(pipe, step, timestep, callback_kwargs)` given as `on_progress`, a preview function of one
    argument): said before any work, not as a TypeError from inside the run, an on_preview's after the first steps.
    A callable whose signature Python cannot read (some built-ins) is not checked."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*arguments)
    except TypeError as exc:
        called = getattr(callback, "__qualname__", type(callback).__qualname__)
        raise RequestError(
            f"{name} is called as {name}({', '.join(arguments)}), which {called}{signature} cannot take ({exc})"
        ) from None


def check_preview_spacing(steps: int, preview_every: int | None) -> None:
    """Refuse a `preview_every` with which a `steps`-step run calls `on_preview` never (as run refuses such a
    --preview-every): previews come every `preview_every` steps, never after the last one. Without it the spacing
    is the default, a quarter of the steps (up to 3 previews), which makes none only for a 1-step run (a server
    job may have one step)."""
    if preview_every is None or preview_every < steps:
        return
    fix = f"give preview_every={steps - 1} or less" if steps > 1 else "give steps=2 or more"
    raise RequestError(
        f"preview_every={preview_every} is not below the request's steps={steps}: previews come every preview_every "
        f"steps and never after the last one, so on_preview would never be called; {fix}"
    )
