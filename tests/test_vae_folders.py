"""ComfyUI's models/vae/ folder (or its models/ folder) given where a checkpoint or a VAE file is expected: the fix
names the file in it that is Motif-Video's VAE (Wan 2.1's), told by its tensor names and shapes from the header
alone, or says what each file holds when none is.

Wan 2.1's VAE at the official size is written as a header and a sparse data section (no weight is written or read):
its shapes come from diffusers' `AutoencoderKLWan` with its default (Wan 2.1's) config, the oracle, and its names
from Wan's own layout (tests/wan_vae_files.py) through diffusers' single-file converter.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import save_file
from test_cli import assert_user_error, run_args
from test_wan_vae_names import WAN22, diffusers_names
from wan_vae_files import WAN_LAYOUT_VAE, wan_file, wan_names

from motif_lite import cli
from motif_lite.checkup import check_setup
from motif_lite.io import linked
from motif_lite.io.linked import MOTIF_VAE, WAN22_VAE, describe_vae_file

IMAGE_VAE = "an image VAE (Stable Diffusion's or Flux's)"
# Some of Flux's ae.safetensors's tensors, under its release's names (as ComfyUI's models/vae/ keeps it).
FLUX_AE = {
    name: torch.zeros(2)
    for name in ("encoder.conv_in.weight", "encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight")
}


def sparse_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """A complete bf16 safetensors file of these tensor shapes whose data is a hole: seconds and no disk space."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * torch.Size(shape).numel()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        file.truncate(8 + len(raw) + offset)


def official_wan21_shapes(wan_named: bool) -> dict[str, tuple[int, ...]]:
    """Wan 2.1's VAE at the official size (diffusers' defaults), under Wan's names or diffusers'."""
    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in AutoencoderKLWan().state_dict().items()}
    if not wan_named:
        return shapes
    official = {**WAN_LAYOUT_VAE, "base_dim": 96}  # Wan 2.1's structure at its own width
    converted = convert_wan_vae_to_diffusers({name: name for name in wan_names(**official)})  # diffusers' -> Wan's
    assert set(converted) == set(shapes)
    return {wan: shapes[diffusers] for diffusers, wan in converted.items()}


@pytest.fixture(scope="module")
def comfy(shared_checkpoint, tmp_path_factory) -> dict:
    """ComfyUI's models/ folder: models/vae/ holds Wan 2.2's, Flux's (ae) and Wan 2.1's VAE; a tiny checkpoint."""
    models = tmp_path_factory.mktemp("comfy") / "models"
    (models / "diffusion_models").mkdir(parents=True)
    (models / "vae").mkdir()
    save_file(diffusers_names(AutoencoderKLWan(**WAN22)), models / "vae" / "wan2.2_vae.safetensors")
    save_file(FLUX_AE, models / "vae" / "ae.safetensors")
    sparse_file(models / "vae" / "wan_2.1_vae.safetensors", official_wan21_shapes(wan_named=True))
    return {"models": models, "vae": models / "vae", "root": shared_checkpoint[0]}  # the checkpoint: read only


@pytest.fixture()
def others(comfy, tmp_path) -> Path:
    """A models/vae/ folder without Wan 2.1's VAE: Wan 2.2's and Flux's, and Wan's layout at a tiny size."""
    folder = tmp_path / "vae"
    folder.mkdir()
    for name in ("wan2.2_vae.safetensors", "ae.safetensors"):
        (folder / name).symlink_to(comfy["vae"] / name)
    wan_file(folder / "tiny_wan.safetensors", config=WAN_LAYOUT_VAE)
    return folder


def test_wan21s_vae_is_told_by_its_names_and_shapes(comfy, tmp_path):
    diffusers_named = tmp_path / "diffusion_pytorch_model.safetensors"
    sparse_file(diffusers_named, official_wan21_shapes(wan_named=False))
    assert describe_vae_file(comfy["vae"] / "wan_2.1_vae.safetensors") == MOTIF_VAE
    assert describe_vae_file(diffusers_named) == MOTIF_VAE
    # The controls: Wan 2.1's names at other shapes, other VAEs.
    tiny = tmp_path / "tiny.safetensors"
    wan_file(tiny, config=WAN_LAYOUT_VAE)
    assert describe_vae_file(tiny) == "a VAE whose shapes are not Wan 2.1's"
    assert describe_vae_file(comfy["vae"] / "wan2.2_vae.safetensors") == WAN22_VAE
    assert describe_vae_file(comfy["vae"] / "ae.safetensors") == IMAGE_VAE


def test_vae_folder_given_to_vae_names_wan21s_file(comfy, tmp_path, capsys):
    vae = comfy["vae"]
    code = cli.main([*run_args(comfy["root"], tmp_path / "fox.gif"), "--vae", str(vae), "--dry-run"])
    err = assert_user_error(capsys, code, f"is a folder; pass --vae {vae / 'wan_2.1_vae.safetensors'} ({MOTIF_VAE})")
    assert len(err.strip().splitlines()) == 1, err
    report = check_setup(str(comfy["root"]), weights={"vae": vae})
    problems = [f.message for f in report.findings if f.level == "problem"]
    assert problems == [f"the vae file {vae} is a folder; fix: --vae {vae / 'wan_2.1_vae.safetensors'} ({MOTIF_VAE})"]


def test_check_reads_each_file_of_a_vae_folder_once(comfy, monkeypatch):
    # The refusal and check's fix come from one look at the folder: its files may be GBs each on a slow disk.
    read = []
    real = linked.describe_vae_file
    monkeypatch.setattr(linked, "describe_vae_file", lambda path: read.append(path.name) or real(path))
    report = check_setup(str(comfy["root"]), weights={"vae": comfy["vae"]})
    assert any("is a folder" in f.message for f in report.findings if f.level == "problem")
    assert sorted(read) == sorted(path.name for path in comfy["vae"].iterdir())


def test_vae_folder_given_to_m_names_wan21s_file(comfy, tmp_path, capsys):
    vae = comfy["vae"]
    code = cli.main(run_args(vae, tmp_path / "fox.gif", "--dry-run"))
    said = f"{vae} holds VAE files, not a checkpoint; pass --vae {vae / 'wan_2.1_vae.safetensors'} ({MOTIF_VAE})"
    assert_user_error(capsys, code, said)
    problems = [f.message for f in check_setup(str(vae)).findings if f.level == "problem"]
    assert problems[0].startswith(f"holds VAE files, not a checkpoint; fix: {said.split('; ', 1)[1]}")


def test_comfyuis_models_folder_given_to_m_names_wan21s_vae(comfy, tmp_path, capsys):
    code = cli.main(run_args(comfy["models"], tmp_path / "fox.gif", "--dry-run"))
    assert_user_error(capsys, code, f"--vae {comfy['vae'] / 'wan_2.1_vae.safetensors'} ({MOTIF_VAE});")


def test_a_folder_without_wan21s_vae_says_what_each_file_is(comfy, others, tmp_path, capsys):
    code = cli.main([*run_args(comfy["root"], tmp_path / "fox.gif"), "--vae", str(others), "--dry-run"])
    assert_user_error(
        capsys,
        code,
        "none of its files is Motif-Video's VAE (Wan 2.1's) (",
        f"ae.safetensors: {IMAGE_VAE}",
        "tiny_wan.safetensors: a VAE whose shapes are not Wan 2.1's",
        f"wan2.2_vae.safetensors: {WAN22_VAE}",
    )
    models = tmp_path / "models"  # ComfyUI's models/ with such a vae/: no --vae, and why
    (models / "unet").mkdir(parents=True)
    (models / "vae").symlink_to(others)
    code = cli.main(run_args(models, tmp_path / "fox.gif", "--dry-run"))
    err = assert_user_error(capsys, code, "its vae/ folder: none of its files is Motif-Video's VAE")
    assert "--vae" not in err.replace("leave --vae out", "")


def test_a_vae_folder_named_in_capitals_given_to_m_says_what_it_holds(others, tmp_path, capsys):
    # A models/VAE/ folder (any letter case) without Motif-Video's VAE: told as VAE files, not as a checkpoint to fetch.
    folder = tmp_path / "VAE"
    folder.mkdir()
    for file in others.iterdir():
        (folder / file.name).symlink_to(file)
    code = cli.main(run_args(folder, tmp_path / "fox.gif", "--dry-run"))
    err = assert_user_error(capsys, code, f"{folder} holds VAE files, not a checkpoint; none of its files is Motif")
    assert "hf download" not in err
