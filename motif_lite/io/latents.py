"""Denoised latents saved when a run's decode fails, so that `motif-lite decode` can make the video later without
sampling again (hours on a small GPU) after an out-of-memory decode, a full disk or Ctrl-C.

One safetensors file beside the output (`fox.mp4` -> `fox.latents.safetensors`): the latents [1, C, F, h, w] in
float32 under "latents" (model space: what the decode stage receives, before the VAE's denormalization), and in
the header's metadata one JSON string under "motif_lite_latents": the format version, what writing the video needs
(output path, size, frames, fps, the metadata the video carries) and what decoding needs (the VAE's dtype in the
run, the checkpoint and VAE file it came from).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from motif_lite.errors import MotifLiteError
from motif_lite.io.staging import staged_output

FORMAT_KEY = "motif_lite_latents"
FORMAT_VERSION = 1
TENSOR_NAME = "latents"
SUFFIX = ".latents.safetensors"
_FRAME_PATTERN = re.compile(r"[_\-. ]*%0?\d*d")  # with the separator before it: out_%03d -> out


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
            "video_metadata": self.video_metadata,
        }


def latents_path(output: str | Path) -> Path:
    """Where the latents of `output` go: `fox.mp4` -> `fox.latents.safetensors`, `out_%03d.png` ->
    `out.latents.safetensors` (a sequence's frame pattern dropped), always a name no video format uses."""
    path = Path(output).expanduser()
    stem = _FRAME_PATTERN.sub("", path.stem).strip("_-. ") or "frames"
    return path.with_name(stem + SUFFIX)


def save_latents(saved: SavedLatents, path: Path) -> Path:
    """Write `saved` to `path` (whole or not at all) and return the path."""
    from safetensors.torch import save_file

    tensors = {TENSOR_NAME: saved.latents.detach().cpu().float().contiguous()}
    metadata = {FORMAT_KEY: json.dumps(saved.info(), default=str)}
    with staged_output(path, 1) as partial:
        save_file(tensors, str(partial), metadata=metadata)
    return path


def read_latents(path: str | Path) -> SavedLatents:
    """The latents file at `path`, checked: `LatentsFileError` for a missing file, a file that is not latents saved
    by motif-lite, or one of another format version."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise LatentsFileError(f"no such latents file: {path}")
    not_latents = (
        f"{path} is not a latents file of motif-lite (a failed decode of `motif-lite run` saves one beside the "
        "output, e.g. fox.latents.safetensors)"
    )
    try:
        with safe_open(str(path), "pt") as file:
            header = (file.metadata() or {}).get(FORMAT_KEY)
            if header is None or TENSOR_NAME not in file.keys():  # noqa: SIM118 (safe_open is no dict)
                raise LatentsFileError(not_latents)
            info = _parsed(header, not_latents)
            _check_version(info, path)
            latents = file.get_tensor(TENSOR_NAME)
    except (SafetensorError, OSError, ValueError) as exc:  # not safetensors at all, or a damaged one
        raise LatentsFileError(f"{not_latents}: {exc}") from None
    if latents.ndim != 5 or latents.shape[0] != 1 or not latents.is_floating_point():
        raise LatentsFileError(f"{path}: the latents have shape {tuple(latents.shape)}, not [1, C, F, h, w]")
    return _saved(info, latents.float(), not_latents)


def _parsed(header: str, not_latents: str) -> dict:
    try:
        info = json.loads(header)
    except json.JSONDecodeError:
        raise LatentsFileError(f"{not_latents}: its description is not valid JSON") from None
    if not isinstance(info, dict):
        raise LatentsFileError(not_latents)
    return info


def _check_version(info: dict, path: Path) -> None:
    version = info.get("version")
    if version != FORMAT_VERSION:
        raise LatentsFileError(
            f"{path} holds latents in format version {version}, and this motif-lite reads version {FORMAT_VERSION}: "
            "decode it with the motif-lite version that saved it"
        )


def _saved(info: dict, latents: torch.Tensor, not_latents: str) -> SavedLatents:
    try:
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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LatentsFileError(f"{not_latents}: its description lacks or garbles {exc}") from None
