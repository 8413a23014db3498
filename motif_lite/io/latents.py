"""A run's latents saved so that its work is not lost (hours of sampling on a small GPU): the denoised latents when
the decode fails (out of memory, a full disk, Ctrl-C; `motif-lite decode` makes the video from them), and the
sampling loop's state when sampling stops early or runs long (`motif-lite run --resume` goes on from it).

One safetensors file beside the output (`fox.mp4` -> `fox.latents.safetensors`): the latents [1, C, F, h, w] in
float32 under "latents" (model space: what the decode stage receives, before the VAE's denormalization), the
sampling state's other tensors under "state.NAME" in their own dtype (a stopped run only), and in the header's
metadata one JSON string under "motif_lite_latents": the format version, what writing the video needs (output
path, size, frames, fps, the metadata the video carries), what decoding needs (the VAE's dtype in the run, the
checkpoint and VAE file it came from) and, for a stopped run, the steps done, the request and the model flags.
Version 1 files (denoised latents, before stopped runs were kept) read as version 2 files without a state.

This module is the format: writing a file and reading it back, checked. Where a run saves its file (and where
to when the disk is full) is `latents_saving`; the model stamps a stopped run keeps are `model_stamps`.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from motif_lite.choices import LATENTS_SUFFIX, VIDEO_EXTENSIONS
from motif_lite.errors import CheckpointError, MotifLiteError, shown
from motif_lite.io.file_kinds import IMAGE_SUFFIXES, starts_as_gguf
from motif_lite.io.staging import staged_output
from motif_lite.json_values import NotAJSONObject, is_count, is_number, parse_json_object
from motif_lite.paths import user_path
from motif_lite.shell_syntax import quoted
from motif_lite.version import VERSION
from motif_lite.weights.safetensors_header import TruncatedError, read_header

FORMAT_KEY = "motif_lite_latents"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TENSOR_NAME = "latents"
STATE_PREFIX = "state."
_FRAME_PATTERN = re.compile(r"[_\-. ]*%0?\d*d")  # with the separator before it: out_%03d -> out


def latents_given_as(path: Path, what: str) -> str | None:
    """Why `path` is not `what` when its name is a saved latents file's (`fox.latents.safetensors`), with the two
    commands that take one; None for any other name. -i and the quantizer's SRC read one as weights otherwise."""
    if not path.name.lower().endswith(LATENTS_SUFFIX):
        return None
    file = quoted(str(path))
    return (
        f"it is the latents a run saved, not {what}: motif-lite run --resume {file} goes on from a run that "
        f"stopped while sampling, motif-lite decode {file} makes the video of one whose decode failed"
    )


class LatentsFileError(MotifLiteError):
    """A file that is not saved latents of this motif-lite, or latents that do not fit the VAE."""


@dataclass(frozen=True)
class SavedLatents:
    """Everything `motif-lite decode` needs to write the video the run would have written."""

    latents: torch.Tensor  # [1, C, F, h, w] float32 on the CPU, model space
    output: Path  # the run's output path
    width: int
    height: int
    frames: int
    fps: float
    dtype: str  # the VAE's dtype in the run ("bfloat16", "float16", "float32"): the default to decode them in
    video_metadata: dict = field(default_factory=dict)  # what the run would have stored in the video
    model: str | None = None  # the checkpoint (-m): a Hub repo id or an absolute folder; None: not known
    vae: str | None = None  # the VAE weight file of the user's (--vae), absolute; None: the checkpoint's
    clip: str | None = None  # the clip an extension goes on from (--extend), absolute: the video holds its frames first
    file: Path | None = field(default=None, compare=False)  # where it was read from (not stored)
    # The process that wrote the file, {"pid", "host"} (stored by `save_latents`; None in older files).
    writer: dict | None = field(default=None, compare=False)
    # A run stopped while sampling: (steps done, steps), the sampling loop's other tensors (the solver's, APG's),
    # the request's fields (GenerationRequest, resolved) and the model flags of the run (`model_flags`), with its
    # weight files' sizes and times ("file_stamps", `file_stamps`), its image's checksum ("image_sha256") and
    # whether a video was at its output as it began, to be replaced ("replaces_output"; older files lack it: no).
    # progress None: the latents are denoised.
    progress: tuple[int, int] | None = None
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    request: dict | None = None
    run: dict | None = None

    @property
    def denoised(self) -> bool:
        return self.progress is None

    @property
    def sampling_done(self) -> bool:
        """Whether these latents need no more sampling: denoised ones, or the state a run saved after its last step
        (before its decode, which may have been killed), whose latents are the denoised ones."""
        return self.progress is None or self.progress[0] == self.progress[1]

    def info(self) -> dict:
        """The JSON-able description stored in the file's header (everything but the tensor)."""
        return {
            "version": FORMAT_VERSION,
            "output": str(self.output),
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": self.fps,
            "dtype": self.dtype,
            "model": self.model,
            "vae": self.vae,
            "clip": self.clip,
            "video_metadata": self.video_metadata,
            "progress": None if self.progress is None else list(self.progress),
            "request": self.request,
            "run": self.run,
        }


def latents_path(output: str | Path) -> Path:
    """Where the latents of `output` go: `fox.mp4` -> `fox.latents.safetensors`, `out_%03d.png` ->
    `out.latents.safetensors` (a sequence's frame pattern dropped), always a name no video format uses."""
    path = user_path(output)
    stem = _FRAME_PATTERN.sub("", path.stem).strip("_-. ") or "frames"
    return path.with_name(stem + LATENTS_SUFFIX)


def save_latents(saved: SavedLatents, path: Path) -> Path:
    """Write `saved` to `path` (whole or not at all) and return the path."""
    from safetensors.torch import save_file

    tensors = {TENSOR_NAME: saved.latents.detach().cpu().float().contiguous()}
    tensors |= {STATE_PREFIX + name: t.detach().cpu().contiguous() for name, t in saved.state.items()}
    writer = {"pid": os.getpid(), "host": socket.gethostname()}  # `still_running` asks about it
    metadata = {FORMAT_KEY: json.dumps({**saved.info(), "writer": writer}, default=str)}
    with staged_output(path, 1) as staged:
        save_file(tensors, str(staged.partial), metadata=metadata)
    return path


# Who saves the latents a command reads, for its errors: `run --resume` reads a stopped run's, `decode` a failed
# decode's; None: either (the Python API, the server).
SAVED_BY = {"resume": "a stopped run", "decode": "a failed decode", None: "a stopped run or a failed decode"}
# A video's name given for its latents: what -o writes (a PNG is an image here), and other tools' .avi.
_VIDEO_SUFFIXES = (*(suffix for suffix in VIDEO_EXTENSIONS if suffix != ".png"), ".avi")


def read_latents(path: str | Path, command: str | None = None) -> SavedLatents:
    """The latents file at `path`, checked: `LatentsFileError` for a missing file, a file that is not latents saved
    by motif-lite, or one of another format version. `command` ("resume", "decode" or None): the command that reads
    it, whose kind of latents file its errors name (`SAVED_BY`)."""
    from safetensors import SafetensorError, safe_open

    path = user_path(path)
    if path.is_dir():  # the output folder, say: the files in it to choose from
        found = ", ".join(sorted(p.name for p in path.glob(f"*{LATENTS_SUFFIX}"))) or "none"
        raise LatentsFileError(
            f"{path} is a folder: give the {LATENTS_SUFFIX} file ({SAVED_BY[command]} of `motif-lite run` saves one "
            f"beside the output); in this folder: {found}"
        )
    if not path.is_file():
        raise LatentsFileError(f"no such latents file: {path}{_finished(path)}{_latents_of(path, command)}")
    not_latents = (
        f"{path} is not a latents file of motif-lite ({SAVED_BY[command]} of `motif-lite run` saves one beside the "
        "output, e.g. fox.latents.safetensors)"
    )
    try:
        with safe_open(str(path), "pt") as file:
            header = (file.metadata() or {}).get(FORMAT_KEY)
            if header is None or TENSOR_NAME not in file.keys():  # noqa: SIM118 (safe_open is no dict)
                raise LatentsFileError(not_latents)
            info = _parsed(header, not_latents)
            _check_version(info, path)
            _check_description(info, path)
            latents = file.get_tensor(TENSOR_NAME)
            state = {
                name.removeprefix(STATE_PREFIX): file.get_tensor(name)
                for name in file.keys()  # noqa: SIM118
                if name.startswith(STATE_PREFIX)
            }
    except (SafetensorError, OSError, ValueError) as exc:  # not safetensors at all, or a damaged one
        raise LatentsFileError(_unreadable(path, command, not_latents, exc)) from None
    if latents.ndim != 5 or latents.shape[0] != 1 or not latents.is_floating_point():
        raise LatentsFileError(f"{path}: the latents are {latents.dtype} of shape {tuple(latents.shape)}, not floats "
                               "of shape [1, C, F, h, w]: the file is damaged")  # fmt: skip
    if not torch.isfinite(latents).all():  # a run never saves these (`NonFiniteError` stops it first)
        raise LatentsFileError(f"{path}: the latents hold inf or NaN, which no run saves: the file is damaged; copy "
                               "it again from where it was saved, or make the video again")  # fmt: skip
    return replace(_saved(info, latents.float(), state, not_latents), file=path)


def _finished(missing: Path) -> str:
    """Why a latents file may be missing: its run finished, when a video of its name is beside it (a run removes
    its file once the video is written)."""
    if not missing.name.endswith(LATENTS_SUFFIX):
        return ""
    stem = missing.name.removesuffix(LATENTS_SUFFIX)
    # An empty file is no video: the name a run took and left behind, killed outright (`io.output_claims.claim`).
    named = (missing.with_name(stem + suffix) for suffix in _VIDEO_SUFFIXES)
    videos = [p for p in named if p.is_file() and p.stat().st_size > 0]
    if not videos:
        return ""
    return (f" ({videos[0].name} is there: a run removes its latents file once its video is written, so that run "
            "has likely finished and there is nothing to go on with)")  # fmt: skip


# How each command that reads a latents file is typed with it, for a message that gives the command again.
COMMAND_LINES = {"resume": "motif-lite run --resume", "decode": "motif-lite decode"}


def _latents_of(missing: Path, command: str | None) -> str:
    """The latents file of a video name given in its place, where there is one: a run whose decode failed wrote no
    video, so the name it was given (`fox.mp4`, the name people remember) is missing and its latents file is
    beside it."""
    if missing.name.endswith(LATENTS_SUFFIX) or not (latents := latents_path(missing)).is_file():
        return ""
    again = f": {COMMAND_LINES[command]} {quoted(str(latents))}" if command in COMMAND_LINES else ""
    return f" (that is the video's name; its latents are in {latents.name}, beside it{again})"


def _unreadable(path: Path, command: str | None, not_latents: str, exc: Exception) -> str:
    """What to say about a file safetensors cannot read: a video or an image given in place of its latents (the
    likely mix-up: the run's output), with the latents file's name; otherwise why, in short (safetensors' own
    words, e.g. "header too large", say nothing to a user)."""
    suffix = path.suffix.lower()
    if suffix in _VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES:
        kind = "a video" if suffix in _VIDEO_SUFFIXES else "an image"
        latents = latents_path(path)
        # A video's own run removed its latents once the video was written: naming that file alone sent people to
        # "no such latents file".
        where = "beside it" if latents.is_file() else "none is beside it: a run removes it once its video is written"
        return (
            f"{path} is {kind}, not a latents file: give the .latents.safetensors file {SAVED_BY[command]} saved "
            f"({latents.name}; {where})"
        )
    if starts_as_gguf(path):  # the model file beside it, e.g. a tab-completed name
        return (
            f"{path} is a GGUF model file (weights), not a latents file: a model goes to --gguf (the transformer) or "
            f"--text-encoder-gguf; give the .latents.safetensors file {SAVED_BY[command]} saved"
        )
    if (cut := _cut_short(path)) is not None:
        return (f"{path} is cut short: {cut.size} bytes where its header asks for {cut.expected} or more (a copy "
                "or download that did not finish: motif-lite writes it whole or not at all); copy it again from "
                "where it was saved")  # fmt: skip
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a safetensors file, or a damaged one"
    return f"{not_latents}: {why}"


def _cut_short(path: Path) -> TruncatedError | None:
    """How a file that safetensors cannot read falls short of the size its header asks for; None when it does not
    (its header itself is damaged, or it is no safetensors file)."""
    try:
        read_header(path)
    except TruncatedError as cut:
        return cut
    except CheckpointError:
        pass
    return None


def _parsed(header: str, not_latents: str) -> dict:
    try:
        return parse_json_object(header)
    except NotAJSONObject as exc:
        raise LatentsFileError(f"{not_latents}: its description is {exc}") from None


def _check_version(info: dict, path: Path) -> None:
    version = info.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:  # a user who downgraded, or a folder shared with one
        writer = writer_of(info.get("video_metadata"))
        raise LatentsFileError(
            f"{path} was saved by {writer}, newer than this one ({VERSION}; latents format version "
            f"{version}; this one reads versions {', '.join(map(str, READABLE_VERSIONS))}): upgrade motif-lite (pip "
            "install -U motif-lite) to use it"
        )
    if version not in READABLE_VERSIONS:
        raise LatentsFileError(
            f"{path} holds latents in format version {version}, and this motif-lite reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: use it with the motif-lite version that saved it"
        )


# The entries of a file's description that its readers take as they are (paths, model flags), by what each must be.
_TEXT_OR_NONE = ("model", "vae", "clip")
_REQUEST_PATHS = ("image", "extend")
# The dtypes a run writes for its VAE, and the request and run entries every stopped run's file has had: a missing
# one would silently become the default (another negative prompt, another checkpoint). Newer ones ("extend",
# "quantize") are None when missing: a file of an older motif-lite has none.
_VAE_DTYPES = ("bfloat16", "float16", "float32")
_REQUEST_KEYS = ("prompt", "negative_prompt", "width", "height", "frames", "fps", "steps", "guidance", "cfg_scale",
                 "apg_eta", "apg_norm_threshold", "apg_momentum", "flow_shift", "sampler", "seed", "image",
                 "output")  # fmt: skip
_RUN_KEYS = ("model", "gguf", "diffusion_model", "text_encoder_gguf", "text_encoder", "vae", "dtype", "attention",
             "lora")  # fmt: skip


class _Missing:
    def __repr__(self) -> str:  # as `shown` writes it in the message: "its description's run.model is missing"
        return "missing"


_MISSING = _Missing()
_RUN_TEXTS = ("model", "gguf", "diffusion_model", "quantize", "text_encoder_gguf", "text_encoder",
              "text_encoder_quantize", "vae", "dtype", "attention", "image_sha256", "clip_sha256")  # fmt: skip


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _check_description(info: dict, path: Path) -> None:
    """Refuse a description whose entries are not of the kind motif-lite writes (a hand-edited or damaged file), in
    one line naming the first such entry, before anything reads them: `LatentsFileError`."""
    problems = _description_problems(info)
    if problems:
        where, value, wanted = problems[0]
        raise LatentsFileError(
            f"{path}: its description's {where} is {shown(value)}, not {wanted} (the file was edited or damaged): copy "
            "it again from where it was saved, or make the video again"
        )


def _description_problems(info: dict) -> list[tuple[str, object, str]]:
    """The entries of `info` that are not what motif-lite writes: (where, value, what it should be)."""
    checks = [("output", info.get("output"), _is_path, "a path")]
    checks += [(key, info.get(key), is_count, "a whole number above 0") for key in ("width", "height", "frames")]
    checks += [("fps", info.get("fps"), _is_rate, "a frame rate above 0"), ("dtype", info.get("dtype"),
               _VAE_DTYPES.__contains__, f"one of {', '.join(_VAE_DTYPES)}")]  # fmt: skip
    checks += [(key, info.get(key), _is_path_or_none, "a path or null") for key in _TEXT_OR_NONE]
    checks += [("progress", info.get("progress"), _is_progress, "null or [steps done, steps]")]
    metadata = info.get("video_metadata", {})
    checks += [("video_metadata", metadata, _is_dict, "an object")]
    if isinstance(metadata, dict) and "model" in metadata:
        checks += [("video_metadata.model", metadata["model"], _is_dict, "an object")]
    guidance = metadata.get("guidance_config") if isinstance(metadata, dict) else None
    checks += [("video_metadata.guidance_config", guidance, _is_dict_or_none, "an object of guidance settings or null")]
    if isinstance(guidance, dict) and "method" in guidance:  # a name this version lacks is a newer version's
        checks += [("video_metadata.guidance_config.method", guidance["method"], _is_text, "a guidance method's name")]
    request = info.get("request")
    checks += [("request", request, _is_dict_or_none, "an object or null")]
    if isinstance(request, dict):
        checks += [("request.output", request.get("output"), _is_path, "a path")]
        checks += _agrees_with_request(info, request)
        checks += [(f"request.{key}", request.get(key), _is_path_or_none, "a path or null") for key in _REQUEST_PATHS]
        checks += [(f"request.{key}", _MISSING, lambda value: False, "a value or null (every run writes it)")
                   for key in _REQUEST_KEYS if key not in request]  # fmt: skip
    run = info.get("run")
    checks += [("run", run, _is_dict_or_none, "an object or null")]
    if isinstance(run, dict):
        checks += [(f"run.{key}", run.get(key), _is_path_or_none, "text or null") for key in _RUN_TEXTS]
        checks += [("run.lora", run.get("lora", []), _is_paths, "a list of LoRA files")]
        checks += [("run.replaces_output", run.get("replaces_output", False), _is_bool, "true or false")]
        checks += [(f"run.{key}", _MISSING, lambda value: False, "text or null (every run writes it)")
                   for key in _RUN_KEYS if key not in run]  # fmt: skip
    return [(where, value, wanted) for where, value, test, wanted in checks if not test(value)]


def _agrees_with_request(info: dict, request: dict) -> list[tuple[str, object, Callable[[object], bool], str]]:
    """A stopped run writes its video's size, length, frame rate and steps twice, at the top level (for `decode`)
    and in its request (for `--resume`): a hand edit of one copy would make the two commands disagree."""
    pairs = [(key, info.get(key), request.get(key), key) for key in ("width", "height", "frames", "fps")]
    progress = info.get("progress")
    if isinstance(progress, list) and len(progress) == 2:
        pairs.append(("progress", progress, [progress[0], request.get("steps")], "steps"))
    return [(key, value, lambda value, then=then: value == then, f"{shown(then)}, its request.{field}")
            for key, value, then, field in pairs]  # fmt: skip


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_path(value: object) -> bool:
    """Text that can name a file: no part longer than the 255 bytes file systems take (the OS refuses a longer one
    with an error of its own wherever the path is looked at)."""
    return _is_text(value) and all(len(part.encode(errors="replace")) <= 255 for part in Path(value).parts)


def _is_path_or_none(value: object) -> bool:
    return value is None or _is_path(value)


def _is_paths(value: object) -> bool:
    return isinstance(value, list) and all(_is_path(item) for item in value)


def _is_dict(value: object) -> bool:
    return isinstance(value, dict)


def _is_dict_or_none(value: object) -> bool:
    return value is None or isinstance(value, dict)


def _is_rate(value: object) -> bool:
    return is_number(value) and 0 < value < float("inf")


def _is_progress(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(n, int) for n in value):
        return False
    done, steps = value
    return not isinstance(done, bool) and 0 <= done <= steps and is_count(steps)


def writer_of(video_metadata: object) -> str:
    """The motif-lite that saved a file, as its video's metadata names it ("motif-lite 0.2.0"), else in words."""
    version = video_metadata.get("version") if isinstance(video_metadata, dict) else None
    return f"motif-lite {version}" if isinstance(version, str) else "another motif-lite"


def _request_as_sampled(request: object, video_metadata: object) -> object:
    """A stopped run's request as it makes the video its state was sampled for. Before guidance went off exactly
    where its scale changes nothing, motif-lite switched it off at cfg_scale 1 whatever the guider; the official
    guider (original formulation) guides at 1 now, as diffusers' does. Such a run stored an unguided
    `guidance_config` (null) with cfg_scale 1: it goes on unguided, as classic CFG at 1, its no-op scale (what
    `--settings-from` makes of an unguided file), rather than be refused or guided from mid-run on."""
    if not isinstance(request, dict) or not isinstance(video_metadata, dict):
        return request  # what `_check_description` refuses
    scale = request.get("cfg_scale")
    unguided = "guidance_config" in video_metadata and video_metadata["guidance_config"] is None
    if not unguided or request.get("guidance") == "cfg" or not (is_number(scale) and scale == 1):
        return request
    return {**request, "guidance": "cfg", "apg_eta": None, "apg_norm_threshold": None, "apg_momentum": None}


def _saved(info: dict, latents: torch.Tensor, state: dict[str, torch.Tensor], not_latents: str) -> SavedLatents:
    try:
        progress = info.get("progress")
        return SavedLatents(
            latents=latents,
            output=Path(info["output"]),
            width=int(info["width"]),
            height=int(info["height"]),
            frames=int(info["frames"]),
            fps=float(info["fps"]),
            dtype=str(info["dtype"]),
            video_metadata=dict(info.get("video_metadata") or {}),
            model=info.get("model"),
            vae=info.get("vae"),
            clip=info.get("clip"),
            progress=None if progress is None else (int(progress[0]), int(progress[1])),
            state=state,
            request=_request_as_sampled(info.get("request"), info.get("video_metadata")),
            run=info.get("run"),
            writer=info.get("writer") if isinstance(info.get("writer"), dict) else None,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise LatentsFileError(f"{not_latents}: its description lacks or garbles {exc}") from None
