"""Wan 2.1's VAE under Wan's own tensor names (ComfyUI's wan_2.1_vae.safetensors), read as the checkpoint's VAE.

The oracle is diffusers: its single-file converter (`convert_wan_vae_to_diffusers`) and `from_single_file` read the
test's Wan-named file (tests/wan_vae_files.py), and our renaming (motif_lite/vae/wan_names.py) must give every tensor
the name the converter gives it; a decode from the Wan-named file must equal the decode from the diffusers-format
file bit for bit. Other video VAEs (Wan 2.2's, HunyuanVideo's) are named as what they are at every entry point.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLHunyuanVideo,
    AutoencoderKLLTXVideo,
    AutoencoderKLMagvit,
    AutoencoderKLWan,
)
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import save_file
from test_cli import assert_user_error, run_args
from test_verify import SMALL
from tiny_pipeline import make_tiny_checkpoint
from wan_vae_files import WAN_LAYOUT_VAE, wan_file

from motif_lite import cli, pipeline
from motif_lite.checkup import check_setup
from motif_lite.errors import CheckpointError
from motif_lite.io.latents import SavedLatents, save_latents
from motif_lite.io.linked import WAN22_VAE, other_model
from motif_lite.pipeline.loading import load_pipeline
from motif_lite.vae import WanVAEConfig, load_vae
from motif_lite.vae.model import WanVAE
from motif_lite.vae.wan_names import RESIDUAL, is_wan_named, wan_name
from motif_lite.weights.shapes import expected_shapes

CONFIG = WanVAEConfig(**WAN_LAYOUT_VAE)
LATENTS = torch.randn(1, 16, 2, 4, 6, generator=torch.Generator().manual_seed(7))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The linked folders go to this test's own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A tiny checkpoint whose VAE has Wan 2.1's layout (vae/, diffusers' names), and the same VAE under Wan's names
    as ComfyUI names it (`wan`), with its tensors (`tensors`)."""
    root, comfy = tmp_path_factory.mktemp("ckpt"), tmp_path_factory.mktemp("comfy")
    make_tiny_checkpoint(root)
    vae, tensors = wan_file(comfy / "wan_2.1_vae.safetensors", seed=3)
    shutil.rmtree(root / "vae")
    vae.save_pretrained(root / "vae")
    return {"root": root, "wan": comfy / "wan_2.1_vae.safetensors", "tensors": tensors}


def renamed(tensors: dict, residual: dict = RESIDUAL) -> dict:
    """Our VAE's tensors taken from the Wan-named `tensors` by `wan_name` (with the residual block's `residual`)."""
    with torch.device("meta"):
        ours = expected_shapes(WanVAE(CONFIG))
    return {name: tensors.get(wan_name(name, CONFIG, residual)) for name in ours}


def differences(ours: dict, theirs: dict) -> list[str]:
    """The names whose tensors differ between `ours` and `theirs`, or that only one holds."""
    return sorted(
        name
        for name in ours.keys() | theirs.keys()
        if ours.get(name) is None or theirs.get(name) is None or not torch.equal(ours[name], theirs[name])
    )


def test_every_tensor_gets_the_name_diffusers_converter_gives_it(files):
    tensors = files["tensors"]
    assert is_wan_named(tensors) and not is_wan_named(convert_wan_vae_to_diffusers(dict(tensors)))
    assert differences(renamed(tensors), convert_wan_vae_to_diffusers(dict(tensors))) == []


@pytest.mark.parametrize("swapped", [("conv1", "conv2"), ("norm1", "norm2")], ids=["residual convs", "residual norms"])
def test_a_wrong_rule_is_caught_by_the_comparison(files, swapped):
    # The negative control: a rule that swaps two layers of the same shape in every residual block must fail.
    a, b = swapped
    wrong = {**RESIDUAL, a: RESIDUAL[b], b: RESIDUAL[a]}
    tensors = files["tensors"]
    found = differences(renamed(tensors, wrong), convert_wan_vae_to_diffusers(dict(tensors)))
    assert f"decoder.up_blocks.0.resnets.0.{a}.{'gamma' if 'norm' in a else 'weight'}" in found


def test_diffusers_reads_the_test_file_as_wans(files, tmp_path):
    # diffusers' own single-file loader, offline with a local config, reads the file as the VAE it was made from.
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(files["root"] / "vae" / "config.json", config)
    single = AutoencoderKLWan.from_single_file(str(files["wan"]), config=str(config))
    assert differences(single.state_dict(), AutoencoderKLWan.from_pretrained(files["root"] / "vae").state_dict()) == []


def test_a_decode_from_wans_file_equals_the_decode_from_diffusers_file(files, tmp_path):
    folder = tmp_path / "vae"
    folder.mkdir()
    shutil.copy(files["root"] / "vae" / "config.json", folder)
    (folder / "wan_2.1_vae.safetensors").symlink_to(files["wan"])  # read as the folder's one weight file
    for encoder in (True, False):
        ours, theirs = load_vae(folder, encoder=encoder), load_vae(files["root"], encoder=encoder)
        assert torch.equal(ours.decode(LATENTS), theirs.decode(LATENTS))
    assert differences(ours.state_dict(), theirs.state_dict()) == []


def frames(pattern: Path) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(p)) for p in sorted(pattern.parent.glob("*.png"))])


def test_run_and_decode_with_vae_wans_file_make_the_checkpoints_frames(files, tmp_path, capsys):
    root, wan = files["root"], files["wan"]
    ours, theirs = tmp_path / "wan" / "out_%03d.png", tmp_path / "own" / "out_%03d.png"
    for folder in ("wan", "own", "decoded-wan", "decoded-own"):
        (tmp_path / folder).mkdir()
    assert cli.main(run_args(root, ours, "--video-frames", "5", "--vae", str(wan))) == 0
    assert cli.main(run_args(root, theirs, "--video-frames", "5")) == 0
    assert np.array_equal(frames(ours), frames(theirs)) and len(frames(ours)) > 1
    latents = tmp_path / "fox.latents.safetensors"
    save_latents(SavedLatents(LATENTS, tmp_path / "fox.gif", 48, 32, 5, 16.0, "float32", model=str(root)), latents)
    decoded = {}
    for name, vae in {"wan": ["--vae", str(wan)], "own": []}.items():
        decoded[name] = tmp_path / f"decoded-{name}" / "d_%03d.png"
        args = ["decode", str(latents), "-o", str(decoded[name]), "--device", "cpu", *vae]
        assert cli.main(args) == 0, capsys.readouterr().err
    assert np.array_equal(frames(decoded["wan"]), frames(decoded["own"])) and len(frames(decoded["wan"])) == 5


def test_the_python_api_check_and_a_dry_run_take_wans_file_as_the_vae(files, tmp_path, capsys):
    pipe = pipeline.load_pipeline(files["root"], weights={"vae": files["wan"]}, dtype="float32", device="cpu")
    own = load_vae(files["root"])
    assert differences(pipe.vae.state_dict(), own.state_dict()) == []
    report = check_setup(files["root"], weights={"vae": files["wan"]})
    assert report.passed, "\n".join(report.lines())
    code = cli.main([*run_args(files["root"], tmp_path / "fox.gif"), "--vae", str(files["wan"]), "--dry-run"])
    assert code == 0, capsys.readouterr().err


def test_a_wan_file_cut_short_says_what_it_lacks_in_wans_names(files, tmp_path, capsys):
    partial = tmp_path / "wan_2.1_vae.safetensors"
    tensors = dict(files["tensors"])
    del tensors["decoder.upsamples.4.shortcut.weight"]
    tensors["decoder.head.2.bias"] = torch.zeros(7)
    save_file(tensors, partial)
    code = cli.main([*run_args(files["root"], tmp_path / "fox.gif"), "--vae", str(partial)])
    err = assert_user_error(
        capsys,
        code,
        f"{partial} holds a VAE under Wan's names, but not all of Wan 2.1's: 2 tensor(s) do not match vae/config.json "
        "(missing decoder.upsamples.4.shortcut.weight; decoder.head.2.bias: file [7], config [3])",
    )
    assert len(err.strip().splitlines()) == 1, err
    folder = tmp_path / "vae"  # the loader itself, given such a folder, names them in Wan's names too
    folder.mkdir()
    shutil.copy(files["root"] / "vae" / "config.json", folder)
    shutil.copy(partial, folder)
    with pytest.raises(CheckpointError, match=r"missing tensor decoder\.upsamples\.4\.shortcut\.weight"):
        load_vae(folder)


def diffusers_names(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def tiny_hunyuan_video() -> AutoencoderKLHunyuanVideo:
    return AutoencoderKLHunyuanVideo(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)


# Other video VAEs as ComfyUI's models/vae/ folder holds them, under diffusers' names (from diffusers' own models)
# and their release's: Wan 2.2's nests each level's blocks (Down_ResidualBlock, Up_ResidualBlock in wan/modules/
# vae2_2.py); HunyuanVideo's release uses the names diffusers kept (scripts/convert_hunyuan_video_to_diffusers.py
# renames no VAE key, and ComfyUI's hunyuan_video_vae_bf16.safetensors loads into Tencent's model as it is), which
# Tencent's loader (hyvideo/vae/__init__.py) also takes under a training checkpoint's `vae.` prefix.
WAN22 = dict(z_dim=48, dim_mult=[1, 2, 2, 2], num_res_blocks=1, is_residual=True, patch_size=2, in_channels=12,
             out_channels=12, base_dim=8, temperal_downsample=[False, True, True])  # fmt: skip
OTHER_VAES = {
    "Wan 2.2's VAE (Wan2.2-TI2V-5B's, 48 latent channels; Motif-Video uses Wan 2.1's)": {
        "diffusers": lambda: diffusers_names(AutoencoderKLWan(**WAN22)),
        "own": lambda: {
            name: torch.zeros(2)
            for name in (
                "conv1.weight",
                "encoder.conv1.weight",
                "encoder.downsamples.0.downsamples.0.residual.0.gamma",
                "decoder.upsamples.0.upsamples.0.residual.2.weight",
                "decoder.head.2.weight",
            )
        },
    },
    "HunyuanVideo's VAE": {
        "diffusers": lambda: diffusers_names(tiny_hunyuan_video()),
        "training checkpoint": lambda: {f"vae.{name}": t for name, t in diffusers_names(tiny_hunyuan_video()).items()},
    },
}
OTHER_FILES = [(model, naming) for model, namings in OTHER_VAES.items() for naming in namings]


@pytest.mark.parametrize(("model", "naming"), OTHER_FILES)
def test_another_video_vae_is_named_at_every_entry_point(files, tmp_path, capsys, monkeypatch, model, naming):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    path = tmp_path / "other_vae.safetensors"
    save_file(OTHER_VAES[model][naming](), path)
    said = f"{path} is not the VAE: it holds {model}, not Motif-Video's; Motif-Video's VAE is vae/"
    code = cli.main([*run_args(files["root"], tmp_path / "fox.gif"), "--vae", str(path)])
    assert len(assert_user_error(capsys, code, said, "ComfyUI's wan_2.1_vae.safetensors").strip().splitlines()) == 1
    latents = tmp_path / "fox.latents.safetensors"
    save_latents(SavedLatents(LATENTS, tmp_path / "fox.gif", 48, 32, 5, 16.0, "float32"), latents)
    code = cli.main(["decode", str(latents), "-m", str(files["root"]), "--vae", str(path), "--device", "cpu"])
    assert_user_error(capsys, code, said)
    with pytest.raises(CheckpointError, match=re.escape(said)):  # the Python API's own, not the CLI's stand-in
        load_pipeline(files["root"], weights={"vae": path}, dtype="float32", device="cpu")


def test_verify_compares_our_vae_from_wans_file_with_diffusers_single_file_loader(files, capsys):
    # diffusers' from_pretrained does not read Wan's names: verify's reference reads the file with from_single_file.
    code = cli.main(["verify", "-m", str(files["root"]), "--vae", str(files["wan"]), *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "vae" in out and f"with vae {files['wan']}" in out


def test_wans_file_given_to_another_flag_is_named_the_vae(files, tmp_path, capsys):
    for flag, what in (("--diffusion-model", "transformer"), ("--text-encoder", "text encoder")):
        code = cli.main([*run_args(files["root"], tmp_path / "fox.gif"), flag, str(files["wan"]), "--dry-run"])
        said = f"{files['wan']} is not the {what}: it holds the VAE's tensors (pass it as --vae)"
        assert_user_error(capsys, code, said)


def test_video_vaes_that_share_half_of_hunyuans_names_are_not_called_hunyuans():
    # LTX-Video's VAE wraps its convolutions as HunyuanVideo's does; an image VAE under diffusers' names has the same
    # mid-block attention. Neither is HunyuanVideo's, nor Wan 2.2's.
    ltx = AutoencoderKLLTXVideo(
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
    )
    blocks = {"down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2}
    image = AutoencoderKL(block_out_channels=(8, 8), norm_num_groups=4, **blocks)
    for vae in (ltx, image):
        assert other_model(vae.state_dict()) not in OTHER_VAES
    assert other_model(diffusers_names(AutoencoderKLWan(**WAN22))) in OTHER_VAES  # the control: one that is


def test_wan22s_vae_is_named_by_either_half_and_easyanimates_is_not():
    # Wan 2.2's resamplers are `downsampler.resample` / `upsampler.resample`; EasyAnimate's VAE (diffusers' Magvit)
    # has a `downsampler` and an `upsampler` per level too, but of one conv.
    wan22 = diffusers_names(AutoencoderKLWan(**WAN22))
    for side in ("encoder.", "decoder."):
        assert other_model([name for name in wan22 if name.startswith(side)]) == WAN22_VAE, side
    easyanimate = AutoencoderKLMagvit(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)
    assert other_model(easyanimate.state_dict()) is None
