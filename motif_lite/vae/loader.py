"""Load a Wan2.1 VAE from a diffusers-layout folder: config.json + (sharded) safetensors, strictly."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from motif_lite.devices import checked_device
from motif_lite.errors import CheckpointError
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = WEIGHTS_NAME + ".index.json"
ENCODER_PREFIXES = ("encoder.", "quant_conv.")


def load_vae(
    source: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    encoder: bool = True,
) -> WanVAE:
    """Load the VAE from a checkpoint dir (uses its `vae/` subfolder) or from the `vae/` folder itself.

    The model is built on the meta device and its tensors are read from memory-mapped safetensors, cast to
    `dtype` and placed on `device`. Missing, unexpected or wrongly shaped tensors raise one `CheckpointError`.
    `encoder=False` (text-to-video needs no encoder) still checks the encoder tensors but never reads them,
    saving ~40% of the VAE weights' memory; `encode` then raises.
    """
    device = checked_device(device)
    folder = _vae_folder(Path(source))
    config = WanVAEConfig.from_json(folder / "config.json")
    with torch.device("meta"):
        model = WanVAE(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    wanted = {name for name in expected if encoder or not name.startswith(ENCODER_PREFIXES)}
    state = _read_tensors(_weight_files(folder), expected, wanted, dtype, device)
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


def _weight_files(folder: Path) -> list[Path]:
    if (folder / WEIGHTS_NAME).is_file():
        return [folder / WEIGHTS_NAME]
    index = folder / INDEX_NAME
    if not index.is_file():
        raise CheckpointError(f"{folder} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{index} is not a valid safetensors index: {e}") from e
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise CheckpointError(f"{index} names shard(s) that do not exist: {', '.join(missing)}")
    return [folder / n for n in names]


def _read_tensors(
    files: list[Path],
    expected: dict[str, tuple[int, ...]],
    wanted: set[str],
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Read the `wanted` tensors; check every tensor's name and shape against `expected`."""
    state: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    problems: list[str] = []
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    shape = tuple(f.get_slice(name).get_shape())
                    if name not in expected:
                        problems.append(f"unexpected tensor {name} {list(shape)}")
                    elif shape != expected[name]:
                        problems.append(f"wrong shape for {name}: {list(shape)}, expected {list(expected[name])}")
                    else:
                        seen.add(name)
                        if name in wanted:
                            state[name] = f.get_tensor(name).to(device=device, dtype=dtype)
        except Exception as e:  # safetensors raises its own error types for corrupt/truncated files
            raise CheckpointError(f"cannot read {path} (corrupt or truncated safetensors?): {e}") from e
    problems += [f"missing tensor {name} {list(shape)}" for name, shape in expected.items() if name not in seen]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(f"VAE weights in {files[0].parent} do not match the config:\n  {shown}")
    return state
