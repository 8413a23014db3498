"""Load a Wan2.1 VAE from a diffusers-layout folder: config.json + (sharded) safetensors under diffusers' names or
Wan's own (`wan_names`), strictly."""

from __future__ import annotations

from pathlib import Path

import torch

from motif_lite.devices import checked_device
from motif_lite.errors import CheckpointError, listed
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE
from motif_lite.vae.wan_names import file_names
from motif_lite.weights.safetensors_files import (
    TensorFiles,
    TensorRef,
    check_floats,
    find_weight_files,
    read_tensor_refs,
)
from motif_lite.weights.shapes import compare_shapes, expected_shapes

ENCODER_PREFIXES = ("encoder.", "quant_conv.")


def load_vae(
    source: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    encoder: bool = True,
    config: WanVAEConfig | None = None,
) -> WanVAE:
    """Load the VAE from a checkpoint dir (uses its `vae/` subfolder) or from the `vae/` folder itself.

    The model is built on the meta device and its tensors are read from memory-mapped safetensors, cast to
    `dtype` and placed on `device`. Missing, unexpected or wrongly shaped tensors raise one `CheckpointError`.
    `encoder=False` (text-to-video needs no encoder) still checks the encoder tensors but never reads them,
    saving ~40% of the VAE weights' memory; `encode` then raises. `config`: the folder's config.json as a caller
    read it already (`CheckpointConfigs.vae`), not read again.
    """
    device = checked_device(device)
    folder = _vae_folder(Path(source))
    config = config or WanVAEConfig.from_json(folder / "config.json")
    with torch.device("meta"):
        model = WanVAE(config)
    refs = read_tensor_refs(find_weight_files(folder))  # the headers: every tensor checked before any is read
    expected = expected_shapes(model)
    stored_as = file_names(expected, refs, config)  # diffusers' names, or Wan's own (ComfyUI's wan_2.1_vae)
    _check_shapes({stored_as[name]: shape for name, shape in expected.items()}, refs, folder)
    check_floats(refs, str(folder), "VAE")
    wanted = [name for name in expected if encoder or not name.startswith(ENCODER_PREFIXES)]
    with TensorFiles() as files:
        state = {name: files.load(refs[stored_as[name]], dtype).to(device=device, dtype=dtype) for name in wanted}
    if not encoder:
        model.drop_encoder()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _vae_folder(source: Path) -> Path:
    if not source.is_dir():
        raise CheckpointError(f"VAE source {source} is not a folder")
    if (source / "vae" / "config.json").is_file():
        return source / "vae"
    if (source / "config.json").is_file():
        return source
    raise CheckpointError(f"{source} has neither vae/config.json nor config.json")


def _check_shapes(expected: dict[str, tuple[int, ...]], refs: dict[str, TensorRef], folder: Path) -> None:
    """Every tensor's name and shape against `expected`: one `CheckpointError` naming each that does not fit."""
    found = compare_shapes(expected, {name: ref.shape for name, ref in refs.items()})
    problems = (
        [f"unexpected tensor {name} {list(refs[name].shape)}" for name in found.unexpected]
        + [f"wrong shape for {n}: {list(refs[n].shape)}, expected {list(expected[n])}" for n in found.wrong]
        + [f"missing tensor {name} {list(expected[name])}" for name in found.missing]
    )
    if problems:
        shown = listed(problems, 20, "\n  ", "... and {} more")
        raise CheckpointError(f"VAE weights in {folder} do not match the config:\n  {shown}")
