"""Weight files the user already has (`--diffusion-model`, `--text-encoder`, `--vae`; motif_lite/io/linked.py).

ComfyUI's instructions rename the official weights (models/diffusion_models/motifvideo_2b.safetensors, ...). Given
such files, a run takes each component's weights from them and only the configs and tokenizer from -m. The test
checkpoint -m is a complete one of *other* random weights, so a run that read any of -m's weights instead of the
user's would make other frames.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from fp8_files import KINDS, fp8_copy
from safetensors.torch import load_file, save_file
from test_cli import assert_user_error, run_args
from tiny_pipeline import make_tiny_checkpoint

from motif_lite import cli, memory_plan, pipeline
from motif_lite.checkpoint import download_patterns, locate_sources, required_files
from motif_lite.checkup import check_setup
from motif_lite.cli.run_flags import take_weight_flags
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.io.linked import WEIGHT_NAMES, linked_checkpoint, other_model
from motif_lite.weight_checks import check_your_shapes
from motif_lite.weights.float8 import is_companion
from motif_lite.weights.safetensors_header import read_header

FLAGS = {"transformer": "--diffusion-model", "text_encoder": "--text-encoder", "vae": "--vae"}
COMFY_NAMES = {
    "transformer": "motifvideo_2b.safetensors",
    "text_encoder": "motifvideo_t5gemma2.safetensors",
    "vae": "motifvideo_vae.safetensors",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The linked folders go to this test's own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def checkpoints(shared_checkpoint, tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    """(checkpoint A, checkpoint B of other weights, A's weights renamed as ComfyUI's instructions have them). A is
    the shared checkpoint (seed 0; read only)."""
    a = shared_checkpoint[0]
    b, comfy = (tmp_path_factory.mktemp(name) for name in ("b", "comfy"))
    make_tiny_checkpoint(b, seed=1)
    files = {component: comfy / name for component, name in COMFY_NAMES.items()}
    for component, file in files.items():
        shutil.copy(a / WEIGHT_NAMES[component], file)
    return a, b, files


@pytest.fixture(scope="module")
def expected(checkpoints, tmp_path_factory) -> np.ndarray:
    """The frames of checkpoint A's own run."""
    out = tmp_path_factory.mktemp("a-frames")
    assert cli.main([*run_args(checkpoints[0], out / "f_%03d.png", "--video-frames", "5")]) == 0
    return frames(out)


def frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(path)) for path in sorted(folder.glob("*.png"))])


def run_frames(capsys, root: Path, out: Path, *extra: str) -> np.ndarray:
    out.mkdir()
    code = cli.main([*run_args(root, out / "f_%03d.png", "--video-frames", "5"), *extra])
    err = capsys.readouterr().err
    assert code == 0, err
    return frames(out)


def flags(files: dict[str, Path], components) -> list[str]:
    return [arg for component in components for arg in (FLAGS[component], str(files[component]))]


def test_a_run_from_your_weight_files_equals_the_run_of_their_checkpoint(checkpoints, expected, tmp_path, capsys):
    _, b, files = checkpoints
    ours = run_frames(capsys, b, tmp_path / "linked", *flags(files, FLAGS))
    assert expected.std() > 10 and np.array_equal(ours, expected)
    assert not np.array_equal(run_frames(capsys, b, tmp_path / "b"), expected)  # B's own weights: other frames


@pytest.mark.parametrize("left_out", list(FLAGS))
def test_each_file_replaces_its_own_component(checkpoints, expected, tmp_path, capsys, left_out):
    # Without one of the flags, that component's weights are B's: the frames are not A's.
    _, b, files = checkpoints
    given = [component for component in FLAGS if component != left_out]
    assert not np.array_equal(run_frames(capsys, b, tmp_path / "mixed", *flags(files, given)), expected)


def test_only_configs_and_tokenizer_are_needed_from_the_checkpoint(checkpoints, expected, tmp_path, capsys):
    a, _, files = checkpoints
    configs_only = tmp_path / "configs"
    shutil.copytree(a, configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    ours = run_frames(capsys, configs_only, tmp_path / "linked", *flags(files, FLAGS))
    assert np.array_equal(ours, expected)
    sources = locate_sources(configs_only, weights=files, download=False)
    assert sources.weight_files == files and sources.root != configs_only
    assert (sources.root / WEIGHT_NAMES["transformer"]).resolve() == files["transformer"]


def test_a_hub_download_fetches_only_the_small_files():
    # Replaced components keep their config.json only; the rest of the checkpoint is fetched whole.
    patterns = download_patterns(linked={"transformer", "text_encoder", "vae"})
    assert not any(pattern.endswith("/*") and pattern.split("/")[0] in FLAGS for pattern in patterns)
    assert {"text_encoder/config.json", "vae/config.json", "transformer/config.json", "tokenizer/*"} <= set(patterns)
    assert required_files(linked={"vae"}) == [
        *("text_encoder/config.json", "text_encoder/*.safetensors", "tokenizer/tokenizer_config.json"),
        *("tokenizer/tokenizer.json", "vae/config.json", "transformer/config.json", "transformer/*.safetensors*"),
    ]
    assert "vae/config.json" not in required_files(gguf={"vae"})  # a GGUF brings its own config


def test_wrong_files_fail_before_loading_and_name_the_users_file(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, files = checkpoints
    out = tmp_path / "fox.gif"
    code = cli.main([*run_args(b, out), "--diffusion-model", str(files["vae"])])  # the VAE as the transformer
    err = assert_user_error(capsys, code, f"error: {files['vae']} is not the transformer: it holds the VAE's")
    assert "linked" not in err
    missing, not_safetensors = tmp_path / "nope.safetensors", tmp_path / "vae.pt"
    not_safetensors.write_bytes(b"torch")
    code = cli.main([*run_args(b, out), "--vae", str(missing), "--text-encoder", str(not_safetensors)])
    assert_user_error(
        capsys,
        code,
        f"the vae file {missing} does not exist",
        f"the text encoder file {not_safetensors} is not a .safetensors file: PyTorch pickles are not read (loading "
        "one can run code); Motif-Video's text encoder is text_encoder/model.safetensors of ",
    )
    gguf_vae = tmp_path / "vae-Q8_0.gguf"  # a GGUF VAE, as ComfyUI-GGUF users keep some; the file need not be one
    gguf_vae.write_bytes(b"GGUF")
    code = cli.main([*run_args(b, out), "--vae", str(gguf_vae)])
    assert_user_error(
        capsys,
        code,
        f"the vae file {gguf_vae} is not a .safetensors file: a GGUF file is read for the transformer (--gguf) and "
        "the text encoder (--text-encoder-gguf); Motif-Video's VAE is vae/diffusion_pytorch_model.safetensors of ",
    )
    code = cli.main([*run_args(b, out), "--diffusion-model", "x.gguf", "--gguf", "Q4_K_M"])
    assert_user_error(capsys, code, "--diffusion-model and --gguf both give the transformer; keep one")
    assert not out.exists()


# A ComfyUI models/ folder holds every kind of file side by side: each one given to the wrong flag.
MIXED_UP = [("text_encoder", "vae", "the VAE's tensors (pass it as --vae)"),
            ("vae", "transformer", "the transformer's tensors (pass it as --diffusion-model)"),
            ("transformer", "text_encoder", "the text encoder's tensors (pass it as --text-encoder)")]  # fmt: skip


@pytest.mark.parametrize(("component", "given", "holds"), MIXED_UP)
def test_a_file_of_another_component_is_named_before_loading(
    checkpoints, tmp_path, capsys, monkeypatch, component, given, holds
):
    # The text encoder used to load from any safetensors file (transformers initializes what it lacks at random)
    # and the run made a video from noise; the VAE's error named the cache's link folder, after loading.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, files = checkpoints
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), FLAGS[component], str(files[given])])
    what = {"text_encoder": "text encoder", "vae": "VAE"}.get(component, component)
    err = assert_user_error(capsys, code, f"{files[given]} is not the {what}: it holds {holds}")
    assert "linked" not in err
    report = check_setup(b, weights={component: files[given]})
    assert f"fix: your file {files[given]} holds {holds}" in "\n".join(report.lines())


# Each component's safetensors file given to --gguf: the flag that takes it as it is, and the quantizer where it makes
# a GGUF of that component (the VAE is not quantized).
AS_GGUF = [
    ("vae", "the VAE's tensors (pass it as --vae)", None),
    ("transformer", "the transformer's tensors (pass it as --diffusion-model)", "python -m motif_lite.quantize"),
    ("text_encoder", "the text encoder's tensors (pass it as --text-encoder)", "--component text_encoder"),
]


@pytest.mark.parametrize(("given", "holds", "quantize"), AS_GGUF)
def test_a_safetensors_file_given_as_gguf_is_named_by_what_it_holds(
    checkpoints, tmp_path, capsys, monkeypatch, given, holds, quantize
):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, files = checkpoints
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--gguf", str(files[given])])
    err = assert_user_error(capsys, code, f"{files[given]} is not a GGUF file", f"safetensors file that holds {holds}")
    if quantize is None:
        assert "quantize" not in err
    else:
        assert quantize in err


def test_a_file_of_another_model_is_refused_with_the_official_name(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, _ = checkpoints
    umt5 = tmp_path / "umt5_xxl_fp16.safetensors"  # Wan's text encoder, in the same ComfyUI folder
    save_file(
        {"shared.weight": torch.zeros(10, 8), "encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(8, 8)}, umt5
    )
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--text-encoder", str(umt5)])
    assert_user_error(
        capsys, code, f"{umt5} is not the text encoder: it holds a T5 text encoder", "text_encoder/model.safetensors of"
    )


# Other models' files, as ComfyUI's folders hold them beside ours: a few of each one's tensor names.
OTHER_MODELS = {
    "a Stable Diffusion 1.x checkpoint": [
        *("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight"),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    ],
    "a Stable Diffusion XL checkpoint": [
        *("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.label_emb.0.0.weight"),
        *(
            "first_stage_model.decoder.conv_in.weight",
            "conditioner.embedders.0.transformer.text_model.final_norm.weight",
        ),
    ],
    "a Stable Diffusion 2.x checkpoint": [
        *("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight"),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
    ],
    # ComfyUI's unet/ file of SDXL: the UNet names of SD 1.x and 2.x, and the label embedding only SDXL has
    "a Stable Diffusion XL UNet": [
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.label_emb.0.0.weight",
    ],
    "a Stable Diffusion 1.x or 2.x UNet": ["input_blocks.0.0.weight", "middle_block.0.in_layers.0.weight"],
    "a Stable Diffusion 3 transformer": ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"],
    "a Flux transformer": [
        *(
            "model.diffusion_model.double_blocks.0.img_attn.qkv.weight",
            "model.diffusion_model.single_blocks.0.linear1.weight",
        )
    ],
    "a HunyuanVideo transformer": ["double_blocks.0.img_attn_qkv.weight", "single_blocks.0.linear1.weight"],
    "a Wan transformer": ["blocks.0.self_attn.q.weight", "blocks.0.cross_attn.k.weight", "patch_embedding.weight"],
    "an LTX-Video transformer": ["transformer_blocks.0.attn1.to_q.weight", "adaln_single.linear.weight"],
    "a CLIP text encoder": ["text_model.embeddings.token_embedding.weight", "text_model.final_layer_norm.weight"],
    "an image VAE (Stable Diffusion's or Flux's)": ["decoder.conv_in.weight", "encoder.down.0.block.0.conv1.weight"],
}


@pytest.mark.parametrize("model", OTHER_MODELS)
def test_another_models_file_is_named_as_that_model_with_where_ours_comes_from(
    checkpoints, tmp_path, capsys, monkeypatch, model
):
    # An SD checkpoint given as the transformer was called the VAE (its first_stage_model part), a Flux or Wan
    # transformer was listed as 150 missing tensors, a Flux one ComfyUI saved was told to lose its prefix.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, _ = checkpoints
    path = tmp_path / "other.safetensors"
    save_file({name: torch.zeros(2, 2) for name in OTHER_MODELS[model]}, path)
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--diffusion-model", str(path)])
    official = "Motif-Video's transformer is transformer/diffusion_pytorch_model.safetensors of Motif-Technologies/"
    assert_user_error(capsys, code, f"{path} is not the transformer: it holds {model}, not Motif-Video's; {official}")
    report = "\n".join(check_setup(b, weights={"vae": path}).lines())
    assert f"fix: your file {path} holds {model}, not Motif-Video's; Motif-Video's VAE is vae/" in report


def test_motif_videos_own_files_are_no_other_models(checkpoints):
    # Under every name they come with: diffusers', ComfyUI's prefix, an exporter's "encoder." before the text encoder's.
    files = checkpoints[2]
    names = {component: list(load_file(file)) for component, file in files.items()}
    names["comfy"] = [f"model.diffusion_model.{name}" for name in names["transformer"]]
    names["exported"] = [f"encoder.{name}" for name in names["text_encoder"]]
    names["state_dict"] = [f"text_model.{name}" for name in names["text_encoder"]]  # T5Gemma2Encoder's own keys
    assert {kind: other_model(found) for kind, found in names.items()} == dict.fromkeys(names)


def test_another_models_lora_given_as_the_transformer_is_named_a_lora(checkpoints, tmp_path, capsys, monkeypatch):
    # A Wan LoRA of ComfyUI's (under Wan's block names) is a LoRA first: --lora is the flag to name, and the LoRA's
    # own check then says which model it was trained on.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, _ = checkpoints
    wan = tmp_path / "wan-style.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.ones(2, 8),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.ones(8, 2)}, wan)  # fmt: skip
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--diffusion-model", str(wan)])
    assert_user_error(capsys, code, f"{wan} is not the transformer: it holds a LoRA's tensors (pass it as --lora)")


def test_a_few_tensors_under_wans_names_and_an_sd_checkpoint_given_to_m_are_named(checkpoints, tmp_path, capsys):
    # Wan's names are read (tests/test_wan_vae_names.py): a file of two of them is a damaged copy, said in one line.
    _, b, _ = checkpoints
    wan_vae = tmp_path / "wan_2.1_vae.safetensors"
    save_file({"decoder.upsamples.0.residual.0.gamma": torch.zeros(2), "conv1.weight": torch.zeros(2)}, wan_vae)
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--vae", str(wan_vae)])
    said = "holds a VAE under Wan's names, but not all of Wan 2.1's: 146 tensor(s) do not match vae/config.json"
    assert_user_error(capsys, code, f"{wan_vae} {said} (missing conv1.bias; missing conv2.bias; ", "download it again")
    sd15 = tmp_path / "v1-5-pruned-emaonly.safetensors"
    save_file({name: torch.zeros(2, 2) for name in OTHER_MODELS["a Stable Diffusion 1.x checkpoint"]}, sd15)
    code = cli.main(["run", "-m", str(sd15), "-p", "fox", "-o", str(tmp_path / "fox.mp4")])
    official = "Motif-Video's checkpoint is the Hub repo Motif-Technologies/Motif-Video-2B (leave -m out to use it)"
    assert_user_error(capsys, code, f"it holds a Stable Diffusion 1.x checkpoint, not Motif-Video's; {official}")


def test_one_shard_given_as_a_file_is_named_as_one(checkpoints, tmp_path, capsys):
    # A diffusers checkpoint's text encoder comes in shards: one of them is not the text encoder.
    _, b, files = checkpoints
    shard = tmp_path / "model-00001-of-00002.safetensors"
    shutil.copy(files["text_encoder"], shard)
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--text-encoder", str(shard)])
    assert_user_error(capsys, code, f"the text encoder file {shard} is one shard of 2; --text-encoder takes one whole")
    whole = tmp_path / "model-00001-of-00001.safetensors"  # one shard of one is the whole file
    shutil.copy(files["text_encoder"], whole)
    assert check_setup(b, weights={"text_encoder": whole}).passed


def test_a_folder_given_as_a_file_lists_what_it_holds(checkpoints, tmp_path, capsys):
    _, b, files = checkpoints
    folder = files["vae"].parent
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--vae", str(folder)])
    said = f"the vae file {folder} is a folder; none of its files is Motif-Video's VAE (Wan 2.1's) (motifvideo_2b."
    assert_user_error(capsys, code, said, "safetensors: a transformer's tensors")  # each file named with its kind
    report = check_setup(b, weights={"vae": folder})
    assert any("is a folder" in line for line in report.lines())


def test_a_folder_of_gguf_files_given_as_the_transformer_names_them(checkpoints, tmp_path, capsys):
    # ComfyUI's models/unet/ holds GGUF files: "it holds no .safetensors file" sent its user looking for one.
    _, b, _ = checkpoints
    unet = tmp_path / "unet"
    unet.mkdir()
    (unet / "motif-video-2b-Q8_0.gguf").write_bytes(b"GGUF")
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--diffusion-model", str(unet)])
    said = f"the transformer file {unet} is a folder (it holds motif-video-2b-Q8_0.gguf); pass the .safetensors or"
    assert_user_error(capsys, code, said, ".gguf file itself")
    [finding] = check_setup(b, weights={"transformer": unet}).problems
    assert finding.message.endswith(f"; fix: --diffusion-model {unet / 'motif-video-2b-Q8_0.gguf'}"), finding


def test_a_vae_folder_of_one_gguf_file_is_not_given_that_file_as_its_fix(checkpoints, tmp_path):
    # --vae takes no GGUF file: check's fix named the folder's one .gguf file with --vae, which its run refuses.
    _, b, _ = checkpoints
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "wan_2.1_vae.gguf").write_bytes(b"GGUF")
    [finding] = check_setup(b, weights={"vae": vae}).problems
    assert "(it holds no .safetensors file)" in finding.message, finding
    assert finding.message.endswith("; fix: pass the path of the .safetensors file to --vae"), finding


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_from_an_fp8_copy_makes_the_frames_of_its_values(checkpoints, tmp_path, capsys, kind):
    # ComfyUI's fp8 copies of the transformer, plain or scaled: the run keeps the linear weights in 8 bits and makes
    # the frames of the same values in float32, within one level: the CPU's GEMM rounds differently for weights
    # memory-mapped at an unaligned offset, as the float32 file's are (test_float8.py compares the transformers'
    # outputs bit for bit). A scaled copy read without its scales makes other frames; a run says it keeps fp8.
    _, b, files = checkpoints
    copy, widened = fp8_copy(files["transformer"], tmp_path, kind)
    ours = run_frames(capsys, b, tmp_path / "fp8", "--diffusion-model", str(copy))
    values = run_frames(capsys, b, tmp_path / "wide", "--diffusion-model", str(widened))
    assert ours.std() > 10 and np.abs(ours.astype(int) - values).max() <= 1
    if kind.startswith("scaled"):
        unscaled = tmp_path / "unscaled.safetensors"
        save_file({n: t.float() for n, t in load_file(copy).items() if not is_companion(n)}, unscaled)
        (tmp_path / "unscaled").mkdir()
        code = cli.main([*run_args(b, tmp_path / "unscaled" / "f_%03d.png", "--video-frames", "5"),
                         "--diffusion-model", str(unscaled)])  # fmt: skip
        err = capsys.readouterr().err
        assert (
            "hold inf or NaN" in err if code else np.abs(frames(tmp_path / "unscaled").astype(int) - values).max() > 20
        )
    code = cli.main([*run_args(b, tmp_path / "fox.gif", "--video-frames", "5"), "--diffusion-model", str(copy)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"note: your transformer file {copy.name} holds " in err and "stay in 8 bits" in err
    assert not any(line.startswith("problem") for line in check_setup(b, weights={"transformer": copy}).lines())


def test_scaled_fp8_beyond_the_transformer_and_other_quantized_formats_are_refused(
    checkpoints, tmp_path, capsys, monkeypatch
):
    # A scaled text encoder or VAE would load with its scales ignored (wrong weights): refused before loading, as is
    # a file in ComfyUI's int8 format (a scale beside integer weights), whatever the component. A plain fp8 VAE
    # loads widened, with a note saying so.
    _, b, files = checkpoints
    vae = load_file(files["vae"])
    scaled_vae = tmp_path / "vae_fp8_scaled.safetensors"
    save_file({**{n: t.to(torch.float8_e4m3fn) for n, t in vae.items()}, "scaled_fp8": torch.empty(0)}, scaled_vae)
    plain_vae = tmp_path / "vae_fp8.safetensors"
    save_file({n: t.to(torch.float8_e4m3fn) if t.ndim > 1 else t for n, t in vae.items()}, plain_vae)
    transformer = load_file(files["transformer"])
    int8 = tmp_path / "motifvideo_2b_int8.safetensors"
    name = next(n for n, t in transformer.items() if t.ndim == 2)
    save_file({**transformer, name: transformer[name].to(torch.int8), name + "_scale": torch.ones(())}, int8)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--vae", str(scaled_vae)])
    assert_user_error(capsys, code, f"{scaled_vae} is a scaled fp8 file", "use the bf16 or fp16 VAE file")
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--diffusion-model", str(int8)])
    assert_user_error(capsys, code, f"{int8} is quantized in a format motif-lite does not read", name)
    for flag, file, needle in [("transformer", int8, "does not read"), ("vae", scaled_vae, "is a scaled fp8 file")]:
        lines = check_setup(b, weights={flag: file}).lines()
        assert any(line.startswith("problem") and needle in line for line in lines), lines
    inside = tmp_path / "checkpoint"  # the int8 file as a checkpoint's own transformer weights
    shutil.copytree(b, inside)
    shutil.copy(int8, inside / WEIGHT_NAMES["transformer"])
    lines = check_setup(inside).lines()
    assert any(line.startswith("problem") and "does not read" in line for line in lines), lines
    code = cli.main(run_args(inside, tmp_path / "fox.gif"))  # and a run from it, before any model loads
    assert_user_error(capsys, code, "is quantized in a format motif-lite does not read", name)
    monkeypatch.undo()
    code = cli.main([*run_args(b, tmp_path / "fox.gif", "--video-frames", "5"), "--vae", str(plain_vae)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: your VAE file vae_fp8.safetensors holds F8_E4M3 weights: they are widened" in err


@pytest.mark.parametrize("prefix", ["model.diffusion_model.", "diffusion_model."])
def test_a_transformer_file_saved_by_comfyui_loads_as_it_is(checkpoints, expected, tmp_path, capsys, prefix):
    # ComfyUI's own saves put its prefix before every name: the file was refused with a command that wrote an
    # unprefixed copy. It is read as it is, as ComfyUI-GGUF and sd.cpp read it: the frames of the unprefixed file.
    _, b, files = checkpoints
    prefixed = tmp_path / "merged.safetensors"
    save_file({f"{prefix}{k}": v for k, v in load_file(files["transformer"]).items()}, prefixed)
    ours = run_frames(capsys, b, tmp_path / "all", *flags({**files, "transformer": prefixed}, FLAGS))
    # The same weights under other names, at other offsets in the file: on this session's AMD EPYC one pixel's float32
    # rounding came out a level off (not on earlier CPUs); another model's weights give other frames (tests above).
    assert np.abs(ours.astype(int) - expected).max() <= 1, np.abs(ours.astype(int) - expected).max()
    lines = check_setup(b, weights={"transformer": prefixed}).lines()
    assert any(line.startswith("ok") and f"names (read without ComfyUI's prefix {prefix!r}) and shapes match" in line
               for line in lines), lines  # fmt: skip
    # The checks before a run reads the file read it the loader's way too: the dry run's, and the one made before
    # the checkpoint downloads (against the configs at hand), which compared the names as stored and refused it.
    assert cli.main([*run_args(b, tmp_path / "dry.gif"), "--diffusion-model", str(prefixed), "--dry-run"]) == 0
    check_your_shapes({"transformer": prefixed}, locate_sources(b).configs, official=False)


def test_a_transformer_file_with_comfyuis_prefix_on_some_names_only_is_refused_in_one_line(
    checkpoints, tmp_path, capsys
):
    # Neither layout: read as it is, its unprefixed weights were taken and the rest listed as unexpected.
    _, b, files = checkpoints
    weights = load_file(files["transformer"])
    first = next(iter(weights))
    mixed = tmp_path / "mixed.safetensors"
    save_file({(f"model.diffusion_model.{k}" if k == first else k): v for k, v in weights.items()}, mixed)
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--diffusion-model", str(mixed)])
    said = f"1 of its {len(weights)} weights' names start with 'model.diffusion_model.' (ComfyUI's prefix"
    err = assert_user_error(capsys, code, f"{mixed}: {said}", "neither ComfyUI's layout nor diffusers'")
    assert "missing" not in err and "unexpected" not in err
    lines = check_setup(b, weights={"transformer": mixed}).lines()
    assert any(line.startswith("problem") and said in line for line in lines), lines


@pytest.mark.parametrize("component", ["transformer", "vae"])
def test_a_truncated_file_of_yours_is_named_as_yours(checkpoints, tmp_path, capsys, monkeypatch, component):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    _, b, files = checkpoints
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(files[component].read_bytes()[:5000])
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), FLAGS[component], str(truncated)])
    err = assert_user_error(capsys, code, str(truncated), "it is your file: replace it with a complete copy")
    assert "download it again" not in err


def test_errors_about_the_checkpoints_own_files_name_them(checkpoints, tmp_path, capsys):
    # Beside the user's files, -m's own files are linked too: an error about one names it where it really is.
    _, b, files = checkpoints
    broken = tmp_path / "broken"
    shutil.copytree(b, broken)
    (broken / "vae" / "config.json").write_text("{not json")
    code = cli.main([*run_args(broken, tmp_path / "fox.gif"), "--vae", str(files["vae"])])
    err = assert_user_error(capsys, code, f"{broken / 'vae' / 'config.json'}: the VAE config is not valid JSON")
    assert "linked" not in err


def test_a_gguf_file_given_as_a_weight_file_is_taken_as_gguf():
    args = argparse.Namespace(diffusion_model="t.gguf", gguf=None, text_encoder="TE.GGUF", text_encoder_gguf=None,
                              vae="v.safetensors")  # fmt: skip
    assert take_weight_flags(args) == {"vae": "v.safetensors"}
    assert (args.gguf, args.text_encoder_gguf) == ("t.gguf", "TE.GGUF")
    with pytest.raises(ConfigError, match="--text-encoder and --text-encoder-gguf"):
        take_weight_flags(argparse.Namespace(text_encoder="a.safetensors", text_encoder_gguf="b.gguf"))


def test_check_looks_at_your_files(checkpoints, tmp_path):
    a, _, files = checkpoints
    configs_only = tmp_path / "configs"
    shutil.copytree(a, configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    report = check_setup(configs_only, weights=files)
    assert report.passed, report.lines()
    named = f"vae/diffusion_pytorch_model.safetensors = {files['vae']}"
    assert any(line.startswith("ok       weight files: yours") and named in line for line in report.lines())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(files["vae"].read_bytes()[:5000])
    lines = "\n".join(check_setup(configs_only, weights={**files, "vae": truncated}).lines())
    assert "problem  vae/diffusion_pytorch_model.safetensors: the header claims" in lines
    assert f"this is your file {truncated}: replace it with the official" in lines


def test_the_linked_folder_links_and_is_reused(checkpoints, tmp_path):
    a, b, files = checkpoints
    cache = tmp_path / "links"
    root = linked_checkpoint(b, {"vae": files["vae"]}, cache)
    assert linked_checkpoint(b, {"vae": files["vae"]}, cache) == root and len(list(cache.iterdir())) == 1
    vae = root / WEIGHT_NAMES["vae"]
    assert vae.is_symlink() and vae.resolve() == files["vae"]
    assert (root / "transformer/diffusion_pytorch_model.safetensors").resolve() == (
        b / "transformer/diffusion_pytorch_model.safetensors"
    ).resolve()  # the components not given stay the checkpoint's
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()
    )
    assert linked_checkpoint(b, {"transformer": files["transformer"]}, cache) != root  # other links: other folder
    clone = tmp_path / "clone"  # a git clone of the Hub repo: its .git/ is not linked
    shutil.copytree(b, clone)
    (clone / ".git" / "lfs").mkdir(parents=True)
    (clone / ".git" / "lfs" / "object").write_bytes(b"x")
    assert not (linked_checkpoint(clone, {"vae": files["vae"]}, cache) / ".git").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".building")]


def test_a_sharded_component_is_replaced_whole(checkpoints, tmp_path):
    # The checkpoint's shards and their index would win over a single file (the loaders read the index first).
    _, b, files = checkpoints
    sharded = tmp_path / "sharded"
    shutil.copytree(b, sharded)
    folder = sharded / "transformer"
    (folder / "diffusion_pytorch_model.safetensors").rename(
        folder / "diffusion_pytorch_model-00001-of-00001.safetensors"
    )
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text('{"weight_map": {}}')
    root = linked_checkpoint(sharded, {"transformer": files["transformer"]}, tmp_path / "links")
    assert sorted(p.name for p in (root / "transformer").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]


def test_an_unwritable_cache_is_a_user_error(checkpoints, tmp_path):
    _, b, files = checkpoints
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(CheckpointError, match="cannot create a folder in .* set XDG_CACHE_HOME"):
        linked_checkpoint(b, {"vae": files["vae"]}, blocked / "links")


def test_linking_without_symlinks_falls_back_to_hard_links(checkpoints, tmp_path, monkeypatch):
    _, b, files = checkpoints

    def no_symlinks(self, target):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(Path, "symlink_to", no_symlinks)
    root = linked_checkpoint(b, {"vae": files["vae"]}, tmp_path / "links")
    assert os.path.samefile(root / WEIGHT_NAMES["vae"], files["vae"]) and not (root / WEIGHT_NAMES["vae"]).is_symlink()
    monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError("cross-device link")))
    with pytest.raises(CheckpointError, match="cannot link .* pass that folder with -m instead"):
        linked_checkpoint(b, {"transformer": files["transformer"]}, tmp_path / "links")


def test_a_hard_linked_folder_follows_a_file_replaced_since(checkpoints, tmp_path, monkeypatch):
    # A hard link keeps the file it was made to: after the user replaces the file under the same name (a new
    # download, a retrained LoRA), a folder keyed by names alone would still hand out the old weights.
    _, b, files = checkpoints
    vae = tmp_path / "my-vae.safetensors"
    shutil.copy(files["vae"], vae)
    monkeypatch.setattr(Path, "symlink_to", lambda self, target: (_ for _ in ()).throw(OSError("no symlinks")))
    first = linked_checkpoint(b, {"vae": vae}, tmp_path / "links")
    replacement = tmp_path / "new.safetensors"
    replacement.write_bytes(vae.read_bytes() + b" ")  # another file, another size
    os.replace(replacement, vae)
    again = linked_checkpoint(b, {"vae": vae}, tmp_path / "links")
    assert again != first and os.path.samefile(again / WEIGHT_NAMES["vae"], vae), "it still links the old file"
    assert linked_checkpoint(b, {"vae": vae}, tmp_path / "links") == again  # and is reused while it stays


def test_verify_reads_your_files_in_both_pipelines(checkpoints, capsys):
    _, b, files = checkpoints
    small = ["-W", "48", "-H", "32", "--video-frames", "5", "--steps", "2", "--device", "cpu"]
    code = cli.main(["verify", "-m", str(b), *flags(files, FLAGS), *small])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[-1] == "verdict: match", out
    assert f"on {b} with transformer {files['transformer']} with text encoder {files['text_encoder']}" in out[0]
    code = cli.main(["verify", "-m", str(b), "--text-encoder", "te-Q8_0.gguf", *small])
    assert_user_error(capsys, code, "verify compares with diffusers, which cannot read a text encoder GGUF")


def test_serve_takes_your_files_and_says_so(checkpoints, tmp_path, capsys, monkeypatch):
    from motif_lite.errors import MotifLiteError

    def stop(*args, **kwargs):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(memory_plan, "plan_generation", stop)  # after every check, before anything loads
    _, b, files = checkpoints
    flags = ["--data", str(tmp_path / "data"), "--port", "0", "--device", "cpu", "--vram", "4"]
    assert cli.main(["serve", "-m", str(b), "--vae", str(files["vae"]), *flags]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"note: weights from your files instead of the checkpoint's: vae {files['vae']}" in err, err
    assert "error: stop here" in err


def test_your_shapes_are_checked_against_the_configs_at_hand_else_the_official_ones(checkpoints):
    # Before a download: the checkpoint's configs where the cache or folder holds them (the tiny model's own files
    # fit them), the official architecture only where none is here, and nothing guessed for another model.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.weight_checks import check_your_shapes

    root = checkpoints[0]
    tiny = {component: root / WEIGHT_NAMES[component] for component in ("vae", "transformer")}
    configs = locate_sources(root).configs
    check_your_shapes(tiny, configs, official=True)
    check_your_shapes(tiny, CheckpointConfigs(), official=False)
    for component, file in tiny.items():
        with pytest.raises(CheckpointError, match=str(file)):
            check_your_shapes({component: file}, CheckpointConfigs(), official=True)
    with pytest.raises(CheckpointError, match="does not hold the VAE"):  # another model's VAE config at hand
        check_your_shapes({"vae": tiny["vae"]}, CheckpointConfigs(vae=WanVAEConfig()), official=False)


def test_a_text_encoder_file_is_checked_against_the_config_at_hand_else_the_official_one(checkpoints, no_network):
    # As the VAE's and the transformer's: the checkpoint folder's text_encoder/config.json where it is here (the
    # tiny model's file fits it), the official config only for the official model, nothing guessed for another
    # model, and nothing read beside a text encoder GGUF, which replaces the file.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.preflight import local_file_problems
    from motif_lite.weight_checks import check_your_shapes

    root = checkpoints[0]
    tiny = {"text_encoder": root / WEIGHT_NAMES["text_encoder"]}
    check_your_shapes(tiny, CheckpointConfigs(), official=True, root=root)
    with pytest.raises(CheckpointError, match="does not hold the text encoder"):
        check_your_shapes(tiny, CheckpointConfigs(), official=True)
    check_your_shapes(tiny, CheckpointConfigs(), official=False)
    check_your_shapes(tiny, CheckpointConfigs(), official=True, text_encoder_gguf=True)
    # Before the official checkpoint downloads, its configs in the cache (its weights not): the cached config's.
    assert len(local_file_problems(MOTIF_REPO, weights=tiny)) == 1  # against the official config
    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    shutil.copytree(root, snapshot, ignore=shutil.ignore_patterns("*.safetensors"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    assert local_file_problems(MOTIF_REPO, weights=tiny) == []


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"<!DOCTYPE html><html><head><title>Sign in</title></head></html>", "it is a web page (HTML)"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "it is a HEIF (HEIC) image"),  # no video
    ],
)
def test_a_weight_file_of_another_kind_is_named_for_what_it_is(tmp_path, content, said):
    # --vae / --diffusion-model / a checkpoint's file: "the header claims 5,789,751,444,030,890,300 bytes" before.
    path = tmp_path / "vae.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(f"{path} is not a safetensors file: {said}")):
        read_header(path)


def test_a_file_of_another_component_is_one_problem_without_its_fp8_checks(tmp_path):
    # A scaled fp8 VAE given as the text encoder: "it holds the VAE's tensors" says all there is to say; the fp8
    # checks of a text encoder file ("a scaled fp8 file ... use the bf16 text encoder file") would add a wrong fix.
    from motif_lite.weight_checks import Problems, check_your_files

    scaled_vae = tmp_path / "vae_fp8_scaled.safetensors"
    weight = torch.ones(4, 4).to(torch.float8_e4m3fn)
    save_file({"decoder.conv_in.weight": weight, "scaled_fp8": torch.empty(0)}, scaled_vae)
    problems = Problems()
    assert check_your_files({"text_encoder": scaled_vae}, problems) == []
    assert len(problems.found) == 1 and "VAE" in problems.found[0], problems.found


def test_a_text_encoder_folder_of_one_file_names_the_path_to_give(checkpoints, tmp_path, capsys):
    # ComfyUI's models/text_encoders/ with its one file: run said only "pass the .safetensors or .gguf file itself",
    # where check's fix names the file.
    _, b, _ = checkpoints
    folder = tmp_path / "text_encoders"
    folder.mkdir()
    (folder / "t5gemma2_encoder.safetensors").write_bytes(b"")
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--text-encoder", str(folder)])
    said = "is a folder (it holds t5gemma2_encoder.safetensors); pass the .safetensors or .gguf file itself: "
    assert_user_error(capsys, code, said + str(folder / "t5gemma2_encoder.safetensors"))


def test_the_path_a_folder_of_one_file_names_is_quoted_to_be_pasted(checkpoints, tmp_path, capsys):
    # A folder with a space in its name ("My Models"): the path was printed bare, and pasted it split in two words.
    import shlex

    _, b, _ = checkpoints
    folder = tmp_path / "My Models"
    folder.mkdir()
    (folder / "t5gemma2_encoder.safetensors").write_bytes(b"")
    code = cli.main([*run_args(b, tmp_path / "fox.gif"), "--text-encoder", str(folder)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "pass the .safetensors or .gguf file itself: " in err, err
    pasted = shlex.split(err.split("file itself: ", 1)[1].splitlines()[0])
    assert pasted == [str(folder / "t5gemma2_encoder.safetensors")], err
