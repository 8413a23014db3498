"""diffusers' side of `motif-lite verify`: importing diffusers (refused in one line when it is missing, too old or
broken), and its `MotifVideoPipeline` built from the same files as ours, with the notices of its libraries that
say nothing to a verify user left out. diffusers is imported in this package only (the `verify` extra)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from motif_lite.errors import MotifLiteError
from motif_lite.log_filters import filtered_log

INSTALL_HINT = 'pip install -e ".[verify]" (diffusers, and accelerate for GGUF files)'
# The first diffusers release with MotifVideoPipeline (pyproject.toml's `verify` extra asks for it).
DIFFUSERS_MIN = "0.42.1"
# Notices of the reference's libraries that say nothing to a verify user, by logger (a run never prints them: it
# does not import diffusers, and picks the Pillow image processor itself, encoders/text.py): transformers falling
# back to that processor without torchvision (ours uses the same one, for -i), and diffusers'
# guider API being experimental (verify only calls it).
LIBRARY_NOTICES = {
    "transformers.utils.import_utils": "`SiglipImageProcessor` requires torchvision (not installed)",
    "diffusers.guiders.guider_utils": "Guiders are currently an experimental feature",
}


class VerifyError(MotifLiteError):
    """verify cannot run: diffusers missing, or the reference cannot load these files."""


class _Dropping(logging.Filter):
    """Drops the messages that begin with `start`."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


@contextlib.contextmanager
def without_library_notices() -> Iterator[None]:
    """While inside, the LIBRARY_NOTICES are not shown; everything else the libraries log is."""
    with contextlib.ExitStack() as stack:
        for logger, start in LIBRARY_NOTICES.items():
            stack.enter_context(filtered_log(logger, _Dropping(start)))
        yield


def import_diffusers(image: bool = False) -> Any:
    try:
        import diffusers
    except ImportError:
        raise VerifyError(f"verify compares against diffusers, which is not installed: {INSTALL_HINT}") from None
    # An older diffusers (e.g. one installed for other models) imports fine but lacks the pipeline, and one whose
    # own dependencies do not fit fails only when the pipeline is imported: both used to be found after our pipeline
    # had loaded (minutes on the real weights), the second as a traceback.
    version = getattr(diffusers, "__version__", "of unknown version")
    name = "MotifVideoPipeline" + (" or no MotifVideoImage2VideoPipeline" if image else "")  # with -i: both
    try:
        with without_library_notices():  # the pipeline's module imports transformers' SiglipImageProcessor
            diffusers.MotifVideoPipeline  # noqa: B018 (diffusers imports its pipelines on first access)
            if image:
                diffusers.MotifVideoImage2VideoPipeline  # noqa: B018
    except AttributeError:
        raise VerifyError(
            f"the installed diffusers {version} has no {name}; verify needs diffusers >= {DIFFUSERS_MIN}: "
            f'pip install -U "diffusers>={DIFFUSERS_MIN}"'
        ) from None
    except (ImportError, RuntimeError) as exc:  # diffusers wraps a failed lazy import in a RuntimeError
        reason = str(exc).strip().splitlines()[-1]
        raise VerifyError(
            f"diffusers {version} cannot import its MotifVideoPipeline ({reason}); repair the environment: "
            f"{INSTALL_HINT}"
        ) from None
    return diffusers


@contextlib.contextmanager
def diffusers_bars_off(diffusers: Any) -> Iterator[None]:
    """diffusers' progress bars ("Loading pipeline components...", a checkpoint's shards) off while inside, then as
    they were: a switch of diffusers' own, which huggingface_hub's setting does not reach."""
    switch = diffusers.utils.logging
    if not switch.is_progress_bar_enabled():  # turned off already by the program that called us
        yield
        return
    switch.disable_progress_bar()
    try:
        yield
    finally:
        switch.enable_progress_bar()


def reference_pipeline(
    diffusers: Any, root: Path, ours: Any, gguf: Path | None, dtype: torch.dtype, device: torch.device
) -> Any:
    """diffusers' pipeline from the same files; it borrows our text encoder module (the same transformers class)."""
    components: dict[str, Any] = {"text_encoder": ours.text_encoder.model}
    if gguf is not None:
        components["transformer"] = _reference_gguf_transformer(diffusers, root, gguf, dtype)
    if (wan_named := _wan_named_vae(root)) is not None:  # ComfyUI's wan_2.1_vae: read by diffusers' own converter
        components["vae"] = _reference_single_file_vae(diffusers, root, wan_named, dtype)
    try:
        with without_library_notices():  # loading the guider says its API is experimental
            reference = diffusers.MotifVideoPipeline.from_pretrained(root, dtype=dtype, **components)
        # In the try: weights diffusers did not take stay on the meta device, and only the move says so.
        reference.transformer.to(device)
        reference.vae.to(device)
    except torch.OutOfMemoryError:  # the files are fine: cli says "out of device memory", with its exit code
        raise
    except Exception as exc:  # diffusers raises many types for files it cannot use
        raise VerifyError(f"diffusers cannot load the checkpoint {root}: {type(exc).__name__}: {exc}") from exc
    reference.set_progress_bar_config(disable=True)
    return reference


def _wan_named_vae(root: Path) -> Path | None:
    """The checkpoint's VAE file when it holds Wan's own tensor names (`vae.wan_names`), which diffusers'
    `from_pretrained` does not read; None otherwise."""
    from motif_lite.vae.wan_names import is_wan_named
    from motif_lite.weights.safetensors_files import find_weight_files, read_tensor_refs

    files = find_weight_files(root / "vae")
    return files[0] if len(files) == 1 and is_wan_named(read_tensor_refs(files)) else None


def _reference_single_file_vae(diffusers: Any, root: Path, path: Path, dtype: torch.dtype) -> Any:
    """diffusers' VAE from a file under Wan's names, renamed by its single-file converter: the reference for ours."""
    try:
        with without_library_notices():
            return diffusers.AutoencoderKLWan.from_single_file(
                str(path), config=str(root), subfolder="vae", torch_dtype=dtype
            )
    except Exception as exc:  # diffusers raises many types for files it cannot use
        raise VerifyError(f"diffusers cannot load the VAE file {path}: {type(exc).__name__}: {exc}") from exc


def _reference_gguf_transformer(diffusers: Any, root: Path, path: Path, dtype: torch.dtype) -> Any:
    if not (root / "transformer" / "config.json").is_file():
        raise VerifyError(f"diffusers reads a GGUF transformer with the checkpoint's transformer/config.json: {root}")
    try:
        return diffusers.MotifVideoTransformer3DModel.from_single_file(
            str(path),
            quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
            config=str(root),
            subfolder="transformer",
            dtype=dtype,
        )
    except Exception as exc:  # ImportError (accelerate, gguf), ValueError (unexpected keys), ...
        raise VerifyError(
            f"diffusers cannot load {path} ({type(exc).__name__}: {exc}); its GGUF loader needs accelerate and "
            f"tensor names in the diffusers layout: {INSTALL_HINT}"
        ) from exc
