"""LoRA adapters: every supported file format, at two strengths, gives the frames of the diffusers pipeline whose
transformer carries the same adapter through PEFT (the reference's own LoRA implementation), on safetensors
weights (merged) and on GGUF weights (kept unmerged beside the packed blocks), and so does the file in float16 and
bfloat16; clear errors before any weight is read."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import MotifVideoPipeline
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import save_file
from tiny_config import TINY
from tiny_pipeline import make_tiny_checkpoint
from tiny_transformer import inputs, make_reference, save_shared_layout, tie_cross_attention_to_block
from video_frames import diffusers_frames, read_png_frames

from motif_lite import load_pipeline, load_transformer
from motif_lite.cli import main as cli_main
from motif_lite.cli.common import lora_args
from motif_lite.config import TransformerConfig
from motif_lite.errors import MotifLiteError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.paths import user_path
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.request import GenerationRequest
from motif_lite.weights.loader import build_model
from motif_lite.weights.lora import linear_shapes, read_loras
from motif_lite.weights.lora_apply import LoRALinear, apply_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec, lora_specs
from motif_lite.weights.lora_values import UNUSUAL_STRENGTH, lora_flag, split_strength, unusual_strength
from motif_lite.weights.quant_linear import QuantizedLinear

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=48, height=32, frames=9, steps=2)
RANK, ALPHA = 4, 8.0
# Every kind of linear: joint and single attention, cross-attention, feed-forward, MLP branch, output projections;
# and the patch embedder's Conv3d (PEFT's conv LoRA: lora_A with the layer's kernel, lora_B 1x1x1).
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "to_add_out", "proj_mlp", "proj_out", "ff.net.2",
           "x_embedder.proj"]  # fmt: skip
FORMATS = ("peft", "diffusers-pipeline", "kohya", "kohya-underscore")


def add_random_lora(transformer, seed: int = 0, targets=TARGETS) -> None:
    """A PEFT LoRA (adapter "default") with random A and B large enough to change the video visibly."""
    transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets, init_lora_weights=False))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def set_strength(transformer, strength: float) -> None:
    for module in transformer.modules():
        if isinstance(module, LoraLayer):
            module.set_scale("default", strength)  # scaling = strength * alpha / r, PEFT's own rule


def write_formats(transformer, folder: Path) -> dict[str, Path]:
    """The adapter saved by diffusers/PEFT, then the same tensors renamed into each other supported format."""
    transformer.save_lora_adapter(folder / "peft")
    peft_file = next((folder / "peft").glob("*.safetensors"))
    with safe_open(str(peft_file), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    files = {"peft": peft_file}
    files["diffusers-pipeline"] = folder / "pipeline.safetensors"  # MotifVideoPipeline-level keys: "transformer."
    save_file({f"transformer.{k}": v for k, v in tensors.items()}, files["diffusers-pipeline"], metadata=metadata)
    for fmt, prefix, dots in (("kohya", "diffusion_model.", True), ("kohya-underscore", "lora_unet_", False)):
        renamed = {}
        for key, value in tensors.items():
            module, part = key.rsplit(".lora_", 1)
            module = prefix + (module if dots else module.replace(".", "_"))
            renamed[f"{module}.lora_{'down' if part.startswith('A') else 'up'}.weight"] = value
            renamed[f"{module}.alpha"] = torch.tensor(ALPHA)
        files[fmt] = folder / f"{fmt}.safetensors"
        save_file(renamed, files[fmt])
    return files


def frames(pipe_or_reference, tmp_path: Path | None = None) -> np.ndarray:
    if tmp_path is None:  # the diffusers pipeline
        return diffusers_frames(pipe_or_reference, SIZE, 0, prompt=PROMPT, negative_prompt=NEGATIVE)
    out = tmp_path / "out.png"  # one lossless frame file per frame
    pipe_or_reference.generate(
        GenerationRequest(PROMPT, negative_prompt=NEGATIVE, seed=0, output=tmp_path / "out_%03d.png", **SIZE)
    )
    del out
    return read_png_frames(tmp_path)


def assert_same_video(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape and ref.std() > 10
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint (the diffusers reference pipeline), the LoRA in every format, the frames without it."""
    root = tmp_path_factory.mktemp("ckpt")
    reference = make_tiny_checkpoint(root)
    plain = frames(reference)
    add_random_lora(reference.transformer)
    files = write_formats(reference.transformer, tmp_path_factory.mktemp("loras"))
    return root, reference, files, plain


@pytest.fixture(scope="module")
def reference_frames(setup):
    _, reference, _, plain = setup
    result = {}
    for strength in (1.0, -0.6):
        set_strength(reference.transformer, strength)
        result[strength] = frames(reference)
        # The adapter must matter: otherwise the comparisons below would prove nothing.
        assert np.abs(result[strength].astype(int) - plain.astype(int)).max() > 20
    set_strength(reference.transformer, 1.0)
    return result


@pytest.mark.parametrize("strength", [1.0, -0.6])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_reference_frames(setup, reference_frames, tmp_path, fmt, strength):
    root, _, files, _ = setup
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch", loras=[(files[fmt], strength)])
    assert pipe.loras.merged > 0 and pipe.loras.wrapped == 0  # float weights: merged
    assert not any(isinstance(m, LoRALinear) for m in pipe.transformer.modules())
    assert_same_video(frames(pipe, tmp_path), reference_frames[strength])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_a_16bit_lora_gives_the_reference_frames(setup, reference_frames, tmp_path, dtype):
    """Most published LoRAs are 16-bit: the PEFT file cast to `dtype` gives the float32 reference's frames within
    the same 1/255 (the casts round A and B by at most 2⁻¹¹ or 2⁻⁸ relative; on the tiny model that moved no pixel
    by more than 1 level). A 16-bit file whose change was dropped would be the plain video: more than 20 off."""
    root, _, files, _ = setup
    with safe_open(str(files["peft"]), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k).to(dtype) for k in f.keys()}, f.metadata()  # noqa: SIM118
    lora = tmp_path / "lora.safetensors"
    save_file(tensors, lora, metadata=metadata)
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch", loras=[(lora, 1.0)])
    assert pipe.loras.merged > 0
    assert_same_video(frames(pipe, tmp_path), reference_frames[1.0])


def test_two_files_add_up(setup, reference_frames, tmp_path):
    # 0.4 + 0.6 of the same LoRA (in two formats) is the LoRA at 1.0.
    root, _, files, _ = setup
    loras = [(files["kohya"], 0.4), (files["peft"], 0.6)]
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch", loras=loras)
    assert len(pipe.loras.files) == 2
    assert_same_video(frames(pipe, tmp_path), reference_frames[1.0])


def test_a_video_stores_its_model_and_loras_by_name(setup, tmp_path):
    # The file's settings said nothing of the model or the LoRAs a video was made with (ComfyUI users look there to
    # make it again); they are stored by file name, never with the user's folders.
    root, _, files, _ = setup
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch", loras=[(files["kohya"], 0.4)])
    frames(pipe, tmp_path)
    with PIL.Image.open(tmp_path / "out_000.png") as image:
        stored = image.text["comment"]
    model = json.loads(stored)["model"]
    assert model["lora"] == [f"{files['kohya'].name}:0.4"] and model["model"] == root.name
    assert model["dtype"] == "fp32" and str(root.parent) not in stored and str(files["kohya"].parent) not in stored


@pytest.fixture(scope="module")
def gguf_setup(setup, tmp_path_factory):
    """The transformer quantized to Q8_0 in a folder of its own, and the reference pipeline on its dequantized
    weights carrying the same LoRA."""
    root, reference, files, _ = setup
    out = tmp_path_factory.mktemp("gguf") / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(root / "transformer"), out, get_recipe("Q8_0"), progress=False)
    packed = load_transformer(out, dtype=torch.float32)
    state = {}
    for name, module in packed.named_modules():
        if isinstance(module, QuantizedLinear):
            state[f"{name}.weight"] = module.dequantized_weight(torch.float32)
    state.update({k: v for k, v in packed.state_dict().items() if not k.endswith(".packed")})
    dequantized = copy.deepcopy(reference.transformer)  # the same adapter, on the dequantized base weights
    keys = set(dequantized.state_dict())
    peft_names = {
        k: k if k in keys else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        for k in state
    }
    missing, unexpected = dequantized.load_state_dict({peft_names[k]: v for k, v in state.items()}, strict=False)
    assert not unexpected and all(".lora_" in k for k in missing)
    ref = MotifVideoPipeline(**{**reference.components, "transformer": dequantized})
    ref.set_progress_bar_config(disable=True)
    return out, ref


@pytest.mark.parametrize("fmt", ["peft", "kohya"])
def test_gguf_weights_keep_the_adapter_unmerged(setup, gguf_setup, tmp_path, fmt):
    root, _, files, _ = setup
    gguf, ref = gguf_setup
    pipe = load_pipeline(root, gguf=gguf, dtype=torch.float32, device="cpu", kernels="torch", loras=[(files[fmt], 0.7)])
    wrapped = [m for m in pipe.transformer.modules() if isinstance(m, LoRALinear)]
    assert wrapped and pipe.loras.wrapped == len(wrapped) and all(isinstance(m.base, QuantizedLinear) for m in wrapped)
    set_strength(ref.transformer, 0.7)
    assert_same_video(frames(pipe, tmp_path), frames(ref))


def test_some_rows_of_a_wrapped_layer_are_those_rows_of_its_output():
    # Sequence-parallel ranks and the shared cross-attention compute some rows of a projection only: the update's
    # rows must be the same rows as the base layer's, not its first ones.
    g = torch.Generator().manual_seed(0)
    base = torch.nn.Linear(8, 24)
    layer = LoRALinear(base, torch.randn(2, 8, generator=g), torch.randn(24, 2, generator=g))
    x = torch.randn(3, 8, generator=g)
    rows = slice(8, 16)
    assert torch.allclose(layer.forward_rows(x, rows), layer(x)[:, rows], atol=1e-5)


def test_a_merged_layer_keeps_its_dtype():
    # A bf16 run's layers stay bf16 with a LoRA merged (the update is summed in float32): a float32 weight would
    # double their memory and meet bf16 activations.
    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).to(torch.bfloat16)
    expected = model[0].weight.float() + 0.5 * torch.ones(4, 2) @ torch.ones(2, 8)
    update = LoRAUpdate("0", torch.ones(2, 8), torch.ones(4, 2), 0.5)
    applied = apply_loras(model, [LoRAFile(LoRASpec(Path("style.safetensors")), "peft", [update])])
    assert applied.merged == 1 and model[0].weight.dtype == torch.bfloat16
    assert torch.equal(model[0].weight, expected.to(torch.bfloat16))


@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_a_lora_merges_into_a_weight_on_another_device_than_its_file(device):
    # read_loras leaves the adapters on the CPU, while a load straight to the GPU puts the weight there: the merge
    # moves the adapters to the weight (`meta` stands in for a GPU without one).
    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).to(torch.bfloat16)
    expected = model[0].weight.float() + 0.5 * torch.ones(4, 2) @ torch.ones(2, 8)
    model.to(device)
    update = LoRAUpdate("0", torch.ones(2, 8), torch.ones(4, 2), 0.5)
    applied = apply_loras(model, [LoRAFile(LoRASpec(Path("style.safetensors")), "peft", [update])])
    assert applied.merged == 1 and model[0].weight.device.type == device
    assert model[0].weight.dtype == torch.bfloat16
    if device != "meta":  # a meta tensor has no values to compare
        assert torch.equal(model[0].weight.cpu(), expected.to(torch.bfloat16))


class PackedLayer(torch.nn.Module):
    """A layer whose weight is a buffer (as a GGUF's or fp8's): its LoRA is wrapped, not merged."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("packed", torch.zeros(4, 8, dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], 4)


def test_a_wrapped_layers_adapter_computes_in_the_dtype_asked_for():
    # A bf16 run's adapters are bf16 (`dtype`), float32 only where no dtype is given.
    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    for dtype, expected in ((torch.bfloat16, torch.bfloat16), (None, torch.float32)):
        model = torch.nn.Sequential(PackedLayer())
        update = LoRAUpdate("0", torch.ones(2, 8), torch.ones(4, 2), 0.5)
        applied = apply_loras(model, [LoRAFile(LoRASpec(Path("style.safetensors")), "peft", [update])], dtype)
        assert applied.wrapped == 1 and isinstance(model[0], LoRALinear)
        assert model[0].down.dtype == model[0].up.dtype == expected
        # The scale kept in float32 beside B rather than folded into it (a 16-bit B times a large scale is inf).
        assert torch.equal(model[0].up.float(), torch.ones(4, 2)) and model[0].scale.dtype == torch.float32
        x = torch.ones(1, 8, dtype=expected)
        assert torch.equal(model[0](x).float(), torch.full((1, 4), 0.5 * 2 * 8))


def test_a_lora_is_checked_against_the_gguf_where_the_checkpoint_has_no_transformer_weights(
    setup, gguf_setup, tmp_path
):
    # As a GGUF user downloads it: transformer/ holds only its config; the LoRA's layers are the GGUF's.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.preflight import check_loras

    root, _, files, _ = setup
    configs_only = tmp_path / "ckpt"
    shutil.copytree(root, configs_only, ignore=shutil.ignore_patterns("diffusion_pytorch_model*.safetensors*"))
    shutil.copytree(root / "vae", configs_only / "vae", dirs_exist_ok=True)
    (read,) = check_loras([LoRASpec(files["peft"], 0.7)], locate_sources(configs_only, gguf_setup[0]))
    assert read.spec.path == Path(files["peft"]) and read.updates


@pytest.mark.parametrize("layout", ["original", "pr"])
def test_cross_attention_layouts(tmp_path, layout):
    # A checkpoint in a shared cross-attention layout and a LoRA on its cross-attention query/output projections,
    # written with that layout's names: the same outputs as the checkpoint with the LoRA merged into its weights.
    reference = make_reference(3)
    tie_cross_attention_to_block(reference)
    hidden = reference.config.num_attention_heads * reference.config.attention_head_dim
    blocks = [
        f"single_transformer_blocks.{i}" for i, b in enumerate(reference.single_transformer_blocks) if b.cross_attn
    ]
    g = torch.Generator().manual_seed(5)
    query_norm = {
        b: (1 + 0.1 * torch.randn(hidden, generator=g), 0.1 * torch.randn(hidden, generator=g)) for b in blocks
    }
    infix = "cross_attn_" if layout == "original" else "attn.cross_attn_"
    lora, merged = {}, copy.deepcopy(reference)  # merged: the checkpoint with the LoRA in its weights
    for ours, theirs in (("query_proj", "to_q"), ("out_proj", "to_out.0")):
        down, up = torch.randn(RANK, hidden, generator=g) * 0.2, torch.randn(hidden, RANK, generator=g) * 0.2
        lora[f"diffusion_model.{blocks[0]}.{infix}{ours}.lora_down.weight"] = down
        lora[f"diffusion_model.{blocks[0]}.{infix}{ours}.lora_up.weight"] = up
        with torch.no_grad():  # no alpha in the file: scale 1
            merged.get_parameter(f"{blocks[0]}.cross_attn.{theirs}.weight").add_(up @ down)
    save_file(lora, tmp_path / "lora.safetensors")
    save_shared_layout(reference, tmp_path / "base", layout, query_norm)
    save_shared_layout(merged, tmp_path / "merged", layout, query_norm)
    model = load_transformer(tmp_path / "base", dtype=torch.float32)
    files = read_loras([LoRASpec(tmp_path / "lora.safetensors")], linear_shapes(model))
    x = inputs()
    run = lambda m: m(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])  # noqa: E731
    before = run(model)
    apply_loras(model, files)
    expected = run(load_transformer(tmp_path / "merged", dtype=torch.float32))
    ours = run(model)
    assert (ours - before).abs().max() > 0.05  # the LoRA changes the output
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5)


def test_diffusers_layout_lora_on_a_shared_layout_checkpoint():
    # cross_attn.to_q / to_out.0 have equivalents in the shared layouts; cross_attn.to_k does not (it is the
    # block's own attn.to_k there, which a cross-attention LoRA must not change).
    targets = linear_shapes(build_model(TransformerConfig.from_dict({**TINY, "cross_attention_layout": "original"})))
    hidden = TINY["num_attention_heads"] * TINY["attention_head_dim"]
    lora = {
        "single_transformer_blocks.0.cross_attn.to_q.lora_A.weight": torch.zeros(2, hidden),
        "single_transformer_blocks.0.cross_attn.to_q.lora_B.weight": torch.zeros(hidden, 2),
    }
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "q.safetensors"
    save_file(lora, path)
    (file,) = read_loras([LoRASpec(path)], targets)
    assert [u.module for u in file.updates] == ["single_transformer_blocks.0.cross_attn.query_proj"]
    lora = {k.replace("to_q", "to_k"): v for k, v in lora.items()}
    save_file(lora, path)
    with pytest.raises(LoRAError, match="cross_attn.to_k"):
        read_loras([LoRASpec(path)], targets)
    shutil.rmtree(path.parent)


# Each layout's name for a block's cross-attention query and output projections (weights/keymap.py).
CROSS_NAMES = {
    "diffusers": ("cross_attn.to_q", "cross_attn.to_out.0"),
    "original": ("cross_attn_query_proj", "cross_attn_out_proj"),
    "pr": ("attn.cross_attn_query_proj", "attn.cross_attn_out_proj"),
}


@pytest.mark.parametrize("model_layout", list(CROSS_NAMES))
def test_kohya_underscore_names_in_every_cross_attention_layout(tmp_path, model_layout):
    # kohya's `lora_unet_` keys spell module names with "_" for "."; a LoRA on the cross-attention projections
    # written that way in any layout changes the weights exactly as the same LoRA under the model's dotted names.
    torch.manual_seed(0)
    model = MotifVideoTransformer(TransformerConfig.from_dict({**TINY, "cross_attention_layout": model_layout}))
    hidden = TINY["num_attention_heads"] * TINY["attention_head_dim"]
    g = torch.Generator().manual_seed(7)
    weights = [(torch.randn(RANK, hidden, generator=g), torch.randn(hidden, RANK, generator=g)) for _ in range(2)]

    def merged(layout: str, prefix: str, dots: bool) -> dict[str, torch.Tensor]:
        lora = {}
        for name, (down, up) in zip(CROSS_NAMES[layout], weights, strict=True):
            module = f"single_transformer_blocks.0.{name}"
            module = prefix + (module if dots else module.replace(".", "_"))
            lora |= {f"{module}.lora_down.weight": down, f"{module}.lora_up.weight": up}
            lora[f"{module}.alpha"] = torch.tensor(ALPHA)
        path = tmp_path / f"{layout}-{prefix}.safetensors"
        save_file(lora, path)
        copied = copy.deepcopy(model)
        apply_loras(copied, read_loras([LoRASpec(path)], linear_shapes(copied)))
        return copied.state_dict()

    expected = merged(model_layout, "diffusion_model.", dots=True)
    before = model.state_dict()
    assert sum(not torch.equal(v, before[k]) for k, v in expected.items()) == 2  # query and output projections
    for layout in CROSS_NAMES:
        ours = merged(layout, "lora_unet_", dots=False)
        assert all(torch.equal(ours[k], v) for k, v in expected.items()), layout


def test_two_files_on_a_packed_layer_add_up_as_when_merged():
    # Unmerged, several files on one packed layer are one adapter of the summed rank: the same output as the
    # updates merged into the dequantized weight.
    import gguf
    from gguf import GGMLQuantizationType as Q

    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    g = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(64, 96, generator=g), torch.randn(64, generator=g)
    packed = torch.from_numpy(gguf.quants.quantize(weight.numpy(), Q.Q8_0))
    files = [
        LoRAFile(LoRASpec(Path(f"{i}.safetensors")), "peft", [
            LoRAUpdate("proj", torch.randn(rank, 96, generator=g), torch.randn(64, rank, generator=g), scale)
        ])
        for i, (rank, scale) in enumerate(((4, 0.5), (2, -1.5)))
    ]  # fmt: skip
    unmerged = torch.nn.Sequential()
    unmerged.add_module("proj", QuantizedLinear.from_packed(packed, Q.Q8_0, 96, bias))
    merged = torch.nn.Sequential()
    merged.add_module("proj", torch.nn.Linear(96, 64))
    merged.proj.weight.data, merged.proj.bias.data = unmerged.proj.dequantized_weight(), bias.clone()
    assert apply_loras(unmerged, files).wrapped == 1 and apply_loras(merged, files).merged == 1
    x = torch.randn(5, 96, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(unmerged(x), merged(x), rtol=1e-4, atol=1e-4)


def test_peft_save_pretrained_key_prefix(tmp_path, targets):
    # PEFT's own save_pretrained names keys `base_model.model.<module>.lora_A.weight`: the same adapter.
    lora = {
        "transformer_blocks.0.attn.to_q.lora_A.weight": torch.randn(2, 64),
        "transformer_blocks.0.attn.to_q.lora_B.weight": torch.randn(64, 2),
    }
    plain = _write(tmp_path / "plain.safetensors", lora)
    prefixed = _write(tmp_path / "peft.safetensors", {f"base_model.model.{k}": v for k, v in lora.items()})
    (ours,), (theirs,) = read_loras([LoRASpec(plain)], targets), read_loras([LoRASpec(prefixed)], targets)
    assert theirs.format == "peft" and [u.module for u in theirs.updates] == ["transformer_blocks.0.attn.to_q"]
    assert torch.equal(theirs.updates[0].up, ours.updates[0].up) and theirs.updates[0].scale == ours.updates[0].scale


# ------------------------------------------------------------------------------------------- errors


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, path)
    return path


@pytest.fixture(scope="module")
def targets():
    return linear_shapes(make_reference())


def test_keys_matching_no_module_are_listed(tmp_path, targets):
    path = _write(
        tmp_path / "x.safetensors",
        {
            "transformer.blocks.7.attn.to_q.lora_A.weight": torch.zeros(2, 64),
            "transformer.blocks.7.attn.to_q.lora_B.weight": torch.zeros(64, 2),
        },
    )
    with pytest.raises(
        LoRAError, match=r"none of its layers \(1\) matches a linear layer.*like blocks\.7\.attn\.to_q;"
    ):
        read_loras([LoRASpec(path)], targets)
    fitting = {  # one layer of this model, one of a deeper one: the one that does not fit is listed, once
        "transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 64),
        "transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(64, 2),
    }
    deeper = {k.replace("blocks.0.", "blocks.9."): v.clone() for k, v in fitting.items()}
    path = _write(tmp_path / "deeper.safetensors", {**fitting, **deeper})
    with pytest.raises(
        LoRAError, match=r"1 of its 2 layers matches no linear layer.*:\n  transformer_blocks\.9\.attn\.to_q$"
    ):
        read_loras([LoRASpec(path)], targets)


def _pairs(prefix: str, module: str, part_names: tuple[str, str], rank: int = 2, width: int = 64) -> dict:
    down, up = part_names
    return {
        f"{prefix}{module}.lora_{down}.weight": torch.randn(rank, width),
        f"{prefix}{module}.lora_{up}.weight": torch.randn(width, rank),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "sd15-kohya-with-text-encoder",  # lora_te_ keys were called "not LoRA weights (LoHa, LoKr, ...)"
        "wan-comfyui",
        "flux-peft",
    ],
)
def test_a_lora_for_another_model_is_said_to_be_one(tmp_path, targets, kind):
    if kind == "sd15-kohya-with-text-encoder":
        lora = _pairs("lora_unet_", "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", ("down", "up"))
        lora |= _pairs("lora_te_", "text_model_encoder_layers_0_self_attn_q_proj", ("down", "up"))
    elif kind == "wan-comfyui":
        lora = _pairs("diffusion_model.", "blocks.0.self_attn.q", ("down", "up"))
        lora["diffusion_model.blocks.0.self_attn.q.alpha"] = torch.tensor(2.0)
    else:
        lora = _pairs("transformer.", "double_blocks.0.img_attn.qkv", ("A", "B"))
    with pytest.raises(
        LoRAError, match="matches a linear layer of the Motif-Video transformer; is it a LoRA for another"
    ):
        read_loras([LoRASpec(_write(tmp_path / f"{kind}.safetensors", lora))], targets)


@pytest.mark.parametrize(
    ("prefix", "parts"),
    [
        ("diffusion_model.", ("A", "B")),  # diffusion-pipe, ComfyUI: kohya's prefix, PEFT's part names
        ("transformer.", ("down", "up")),  # kohya part names under diffusers' prefix
        ("", ("down", "up")),  # kohya part names, no prefix
        ("lora_transformer_", ("down", "up")),  # OneTrainer: kohya's names under its own prefix, underscored
        ("lycoris_", ("down", "up")),  # SimpleTuner's LyCORIS plain LoRA, underscored
    ],
)
def test_mixed_prefixes_and_part_names_are_read(tmp_path, targets, prefix, parts):
    # Trainers mix the two conventions; each mix is the same adapter as the plain PEFT file.
    torch.manual_seed(0)
    plain = _pairs("transformer.", "transformer_blocks.0.attn.to_q", ("A", "B"))
    mixed = {}
    for key, value in plain.items():
        module, part = key.removeprefix("transformer.").rsplit(".lora_", 1)
        module = module.replace(".", "_") if prefix.endswith("_") else module
        name = parts[0] if part.startswith("A") else parts[1]
        mixed[f"{prefix}{module}.lora_{name}.weight"] = value
    (ours,) = read_loras([LoRASpec(_write(tmp_path / "plain.safetensors", plain))], targets)
    (theirs,) = read_loras([LoRASpec(_write(tmp_path / "mixed.safetensors", mixed))], targets)
    assert [u.module for u in theirs.updates] == ["transformer_blocks.0.attn.to_q"]
    assert ours.describe() == "plain.safetensors x1 (peft, 1 layer)"  # not "1 layers"
    assert torch.equal(theirs.updates[0].down, ours.updates[0].down)
    assert torch.equal(theirs.updates[0].up, ours.updates[0].up)


def test_a_pickle_lora_is_refused_with_the_conversion(tmp_path, targets):
    lora = _pairs("diffusion_model.", "transformer_blocks.0.attn.to_q", ("down", "up"))
    for suffix in (".ckpt", ".pt"):
        path = tmp_path / f"style{suffix}"
        torch.save(lora, path)
        with pytest.raises(LoRAError, match=rf"is a PyTorch pickle \({suffix}\).*weights_only=True"):
            read_loras([LoRASpec(path)], targets)


def test_a_gguf_lora_is_refused_naming_the_format_read(tmp_path, targets):
    """stable-diffusion.cpp loads LoRAs from GGUF files too: say so, not safetensors' "header too large"."""
    path = tmp_path / "style.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(32))
    with pytest.raises(LoRAError, match=r"style\.gguf is a GGUF file: motif-lite reads a LoRA from its \.safetensors"):
        read_loras([LoRASpec(path)], targets)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        # what a download without the site's sign-in saves under the name asked for: safetensors said "header too large"
        (b"<!DOCTYPE html><html><head><title>Sign in</title>", "it is a web page (HTML), not weights (a download that"),
        (b'{"error": "Unauthorized"}', 'it is text, not weights (it begins \'{"error": "Unauthorized"}\'; a download'),
        (b"\x89PNG\r\n\x1a\n" + bytes(24), "it is a PNG image"),
        # an ISO base media file is told by its brand, as -i tells it: a phone's photo is no video
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "it is a HEIF (HEIC) image"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "it is an AVIF image"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "it is a video"),
    ],
)
def test_a_file_of_another_kind_is_named_for_what_it_is(tmp_path, targets, content, said):
    path = tmp_path / "style.safetensors"
    path.write_bytes(content)
    with pytest.raises(LoRAError, match=re.escape(f"{path} is not a LoRA file: {said}")):
        read_loras([LoRASpec(path)], targets)


def test_a_lora_folder_stands_for_its_one_file(setup, tmp_path, monkeypatch):
    # diffusers' save_lora_weights and `hf download` leave a folder holding one .safetensors file.
    _, _, files, _ = setup
    folder = files["peft"].parent
    assert LoRASpec.parse(f"{folder}:0.5") == LoRASpec(files["peft"], 0.5)
    assert [*lora_specs([folder]), *lora_specs([(str(folder), 0.3)])] == [
        LoRASpec(files["peft"]),
        LoRASpec(files["peft"], 0.3),
    ]
    with pytest.raises(LoRAError, match=r"is a folder holding 3 \.safetensors files \(.*kohya\.safetensors.*\); pass"):
        LoRASpec.parse(str(files["kohya"].parent))
    with pytest.raises(LoRAError, match="is a folder holding no .safetensors file"):
        lora_specs([tmp_path])
    monkeypatch.setenv("HOME", str(folder.parent))  # `~` as a shell reads it, also from Python
    assert lora_specs([("~/peft", 0.5)]) == [LoRASpec(files["peft"], 0.5)]
    with pytest.raises(LoRAError, match=f"the strength 'abc' is not a number; use FILE:STRENGTH, e.g. {folder}:0.8"):
        LoRASpec.parse(f"{folder}:abc")
    # The same typo after a `~` path: the check that the file before the colon exists reads `~` as the file does.
    with pytest.raises(LoRAError, match="the strength 'abc' is not a number; use FILE:STRENGTH, e.g. ~/peft:0.8"):
        LoRASpec.parse("~/peft:abc")


def test_one_lora_file_given_twice_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys):
    # It was applied twice, at the sum of the strengths, without a word: however the file was spelled the second
    # time (./a, an absolute path, a symbolic link to it). The refusal gives the one --lora (or pair) to pass instead.
    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    Path("b.safetensors").write_bytes(b"another LoRA")
    Path("link.safetensors").symlink_to("a.safetensors")
    absolute = str(tmp_path / "a.safetensors")
    for values, sum_ in [
        (["a.safetensors:0.8", "b.safetensors", "./a.safetensors:0.8"], "1.6"),
        (["a.safetensors", absolute], "2"),
        (["a.safetensors:0.1", "link.safetensors:0.2"], "0.3"),
    ]:
        first, second = (value for value in values if value != "b.safetensors")
        with pytest.raises(LoRAError) as refused:
            lora_args(values)
        assert str(refused.value) == (
            f"--lora {first} and --lora {second} name the same file, which would apply twice (at "
            f"{LoRASpec.parse(first).strength:g} + {LoRASpec.parse(second).strength:g}); give one --lora with the "
            f"summed strength: --lora a.safetensors:{sum_}"
        )
    assert lora_args(["a.safetensors:0.8", "b.safetensors:0.8"]) == [
        (Path("a.safetensors"), 0.8), (Path("b.safetensors"), 0.8)
    ]  # fmt: skip
    with pytest.raises(LoRAError) as refused:
        lora_specs([("a.safetensors", 0.8), "b.safetensors", "link.safetensors"])
    assert str(refused.value) == (
        "loras names the same file twice ('a.safetensors' and 'link.safetensors'), which would apply twice (at 0.8 + "
        "1); give it once with the summed strength: ('a.safetensors', 1.8)"
    )
    # From load_pipeline before its checkpoint is looked for, and from run before anything loads.
    with pytest.raises(LoRAError, match="loras names the same file twice"):
        load_pipeline(tmp_path / "no-checkpoint", loras={"a.safetensors": 1, absolute: 1}, device="cpu")
    run = ["run", "-m", str(tmp_path / "no-checkpoint"), "-p", PROMPT, "--device", "cpu"]
    assert cli_main([*run, "--lora", "a.safetensors", "--lora", "link.safetensors:0.5"]) == 2
    err = capsys.readouterr().err
    assert "give one --lora with the summed strength: --lora a.safetensors:1.5" in err and "Traceback" not in err


def test_a_file_given_twice_at_strengths_whose_sum_is_no_number_is_not_offered_at_inf(tmp_path, monkeypatch, capsys):
    # `--lora a:1e308 --lora a:1e308` was told to give one --lora at the sum, `a.safetensors:inf`, itself refused.
    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    twice = ["--lora", "a.safetensors:1e308", "--lora", "./a.safetensors:1e308"]
    with pytest.raises(LoRAError) as refused:
        lora_args(twice[1::2])
    assert str(refused.value) == (
        "--lora a.safetensors:1e308 and --lora ./a.safetensors:1e308 name the same file, which would apply twice (at "
        "1e+308 + 1e+308); their sum is no finite strength: give one --lora, with the strength you mean"
    )
    assert cli_main(["run", "-m", str(tmp_path / "no-checkpoint"), "-p", PROMPT, "--device", "cpu", *twice]) == 2
    err = capsys.readouterr().err
    assert "their sum is no finite strength" in err and ":inf" not in err and "Traceback" not in err
    for typed in ("inf", "-inf", "nan", "1e309"):  # typed as the strength: refused as such
        with pytest.raises(LoRAError, match=f"^LoRA strength must be a finite number, got '{typed}' in 'a.safetensors"):
            lora_args([f"a.safetensors:{typed}"])


def test_a_file_given_twice_at_strengths_that_cancel_is_told_to_leave_both_out(tmp_path, monkeypatch, capsys):
    # `--lora a:1 --lora a:-1` was told to give `--lora a:0` (and loras= `(a, 0)`): a load that changes nothing.
    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    with pytest.raises(LoRAError) as refused:
        lora_args(["a.safetensors:1", "./a.safetensors:-1"])
    assert str(refused.value) == (
        "--lora a.safetensors:1 and --lora ./a.safetensors:-1 name the same file, which would apply twice (at 1 + "
        "-1); their strengths add up to 0, so together they change nothing: leave both --lora out"
    )
    with pytest.raises(LoRAError) as refused:
        lora_specs([("a.safetensors", 0.5), ("./a.safetensors", -0.5)])
    assert str(refused.value) == (
        "loras names the same file twice ('a.safetensors' and 'a.safetensors'), which would apply twice (at 0.5 + "
        "-0.5); their strengths add up to 0, so together they change nothing: leave both out of loras"
    )
    # 0.3 and the float next to -0.3 add up to -5.6e-17 in floats: `--lora a:-5.55112e-17` was offered
    with pytest.raises(LoRAError, match="add up to 0, so together they change nothing: leave both --lora out$"):
        lora_args(["a.safetensors:0.3", f"a.safetensors:{-0.1 - 0.2!r}"])


def test_loras_naming_a_file_twice_at_strengths_whose_sum_is_no_number_is_not_offered_at_inf(tmp_path, monkeypatch):
    # loras=[(a, 1e308), (a, 1e308)] was told to give it once as (a, inf), itself refused as no finite strength.
    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    with pytest.raises(LoRAError) as refused:
        lora_specs([("a.safetensors", 1e308), ("a.safetensors", 1e308)])
    assert str(refused.value) == (
        "loras names the same file twice ('a.safetensors' and 'a.safetensors'), which would apply twice (at 1e+308 + "
        "1e+308); their sum is no finite strength: give it once, with the strength you mean"
    )
    with pytest.raises(LoRAError, match="a finite number as strength"):  # what (a, inf) would have met
        lora_specs([("a.safetensors", float("inf"))])


def test_two_lora_files_are_told_apart_where_the_file_system_numbers_no_file(tmp_path, monkeypatch):
    # Windows gives st_ino 0 on file systems without file numbers (some network shares, RAM disks): taken as the
    # file's identity, every two LoRAs there were "the same file", refused with a --lora that dropped one of them.
    import os

    monkeypatch.chdir(tmp_path)
    for folder in ("x", "y"):
        Path(folder).mkdir()
        Path(folder, "a.safetensors").write_bytes(b"a LoRA")
    Path("x/hard.safetensors").hardlink_to("x/a.safetensors")
    assert lora_args(["x/hard.safetensors", "y/a.safetensors"])  # told apart by their numbers: different files
    with pytest.raises(LoRAError, match="name the same file"):
        lora_args(["x/a.safetensors", "x/hard.safetensors"])  # a hard link: one number
    real_stat = os.stat

    def unnumbered(path, *args, **kwargs):
        stat = real_stat(path, *args, **kwargs)
        return os.stat_result((stat.st_mode, 0, *stat[2:]))

    monkeypatch.setattr(os, "stat", unnumbered)
    assert lora_args(["x/a.safetensors:0.5", "y/a.safetensors"]) == [
        (Path("x/a.safetensors"), 0.5), (Path("y/a.safetensors"), 1.0)
    ]  # fmt: skip
    with pytest.raises(LoRAError, match=r"summed strength: --lora x/a\.safetensors:1\.5"):
        lora_args(["x/a.safetensors:0.5", "./x/a.safetensors"])  # one path, two spellings: still one file


def test_two_lora_files_sharing_a_file_number_are_told_apart_by_size_and_time(tmp_path, monkeypatch):
    # Python before 3.12 gives a ReFS file (a Windows Dev Drive) 64 bits of its 128-bit file number, which another
    # file there may share: taken alone, the number made two LoRAs "the same file", refused with a --lora that
    # dropped one. Two names of one file share its size and modification time as well.
    import os

    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    Path("b.safetensors").write_bytes(b"b LoRA")  # as large as a
    Path("c.safetensors").write_bytes(b"a larger LoRA")
    os.utime("b.safetensors", ns=(10**18, 10**18))  # and modified at another time
    os.utime("c.safetensors", ns=(os.stat("a.safetensors").st_mtime_ns,) * 2)  # at a's time
    Path("link.safetensors").symlink_to("a.safetensors")
    real_stat = os.stat

    def one_number(path, *args, **kwargs):  # every file numbered 7, as a truncated 128-bit number may be
        stat = real_stat(path, *args, **kwargs)
        return os.stat_result((stat.st_mode, 7, *stat[2:]), {"st_mtime_ns": stat.st_mtime_ns})

    monkeypatch.setattr(os, "stat", one_number)
    assert lora_args(["a.safetensors:0.5", "b.safetensors", "c.safetensors"]) == [
        (Path("a.safetensors"), 0.5), (Path("b.safetensors"), 1.0), (Path("c.safetensors"), 1.0)
    ]  # fmt: skip
    with pytest.raises(LoRAError, match=r"summed strength: --lora a\.safetensors:1\.5"):
        lora_args(["a.safetensors:0.5", "link.safetensors"])  # one file, two names: still refused


def test_a_lora_given_as_a_url_is_told_how_to_download_it(tmp_path, monkeypatch, capsys):
    # It was "LoRA file not found: https:/huggingface.co/..." (the URL looked up as a file, its // made one /).
    monkeypatch.chdir(tmp_path)
    url = "https://huggingface.co/user/styles/resolve/main/style.safetensors"
    with pytest.raises(LoRAError) as refused:
        lora_args([f"{url}:0.8"])
    assert str(refused.value) == (
        f"--lora {url}:0.8 is a URL; --lora takes a LoRA file on this machine: download it first, e.g. curl -L -o "
        f"style.safetensors {url}, then give --lora style.safetensors:0.8"
    )
    Path("style.safetensors").write_bytes(b"a LoRA")  # as curl would leave it: the suggested --lora is taken
    assert lora_args([str(refused.value).rpartition("--lora ")[2]]) == [(Path("style.safetensors"), 0.8)]
    file_url = f"file://{tmp_path / 'style.safetensors'}"  # pasted from a browser: its path is the fix
    with pytest.raises(LoRAError) as refused:
        lora_args([file_url])
    suggested = str(refused.value).rpartition("give its path, --lora ")[2]
    assert lora_args([suggested]) == [(tmp_path / "style.safetensors", 1.0)]
    assert cli_main(["run", "-p", PROMPT, "--device", "cpu", "--lora", url]) == 2  # a run says it before anything
    assert f"error: --lora {url} is a URL; --lora takes a LoRA file" in capsys.readouterr().err


def test_a_lora_named_tilde_here_is_not_the_home_folder(tmp_path, monkeypatch):
    # `./~` names a file called ~ in the working folder; only a path that starts with `~` is the home folder, as a
    # shell reads it. pathlib drops the `./`, so the `~` left over was read as the home folder (its one LoRA).
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir(), home.mkdir()
    (work / "~").write_bytes(b"a LoRA file named ~")
    (home / "x.safetensors").write_bytes(b"a LoRA file in the home folder")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    here = (work / "~").resolve()
    assert LoRASpec.parse("./~").path.resolve() == here
    assert LoRASpec.parse("./~:0.5").path.resolve() == here and LoRASpec.parse("./~:0.5").strength == 0.5
    assert [spec.path.resolve() for spec in lora_specs([("./~", 0.3)])] == [here]
    assert user_path(LoRASpec.parse("./~").path).resolve() == here  # as the server reads the path again
    assert lora_args(["./~:0.5"]) == [(LoRASpec.parse("./~").path, 0.5)]
    # A leading `~` is still the home folder: a folder holding one LoRA stands for it.
    assert LoRASpec.parse("~") == LoRASpec(home / "x.safetensors")
    assert LoRASpec.parse("~/x.safetensors:0.8") == LoRASpec(home / "x.safetensors", 0.8)
    assert lora_specs([("~/x.safetensors", 0.5)]) == [LoRASpec(home / "x.safetensors", 0.5)]


def test_a_lora_folder_named_tilde_here_is_not_the_home_folder(tmp_path, monkeypatch):
    # serve --lora-dir ./~: pathlib drops the `./` and kept Path("~"), which its start line printed as "from ~" and
    # a later reader of the path (`user_path`) would take for the home folder; it is kept absolute, as a LoRA file.
    from motif_lite.cli.serve_flag_values import lora_folder

    work, home = tmp_path / "work", tmp_path / "home"
    (work / "~").mkdir(parents=True), home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    folder = lora_folder("./~")
    assert folder == work / "~" and folder.is_absolute()
    assert user_path(folder) == folder  # as every later reader takes it
    assert lora_folder("~") == home  # a leading `~` is still the home folder


def test_shape_mismatch_names_the_module(tmp_path, targets):
    path = _write(
        tmp_path / "x.safetensors",
        {
            "transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 63),
            "transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(64, 2),
        },
    )
    with pytest.raises(LoRAError, match=r"transformer_blocks\.0\.attn\.to_q do not fit"):
        read_loras([LoRASpec(path)], targets)
    ranks_differ = {  # A of rank 2, B of rank 3
        "transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 64),
        "transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(64, 3),
    }
    with pytest.raises(LoRAError, match=r"transformer_blocks\.0\.attn\.to_q do not fit"):
        read_loras([LoRASpec(_write(tmp_path / "ranks.safetensors", ranks_differ))], targets)


def test_a_model_file_given_as_a_lora_is_told_its_flag(tmp_path, targets):
    """ComfyUI keeps models and LoRAs in sibling folders: the transformer's or the VAE's file given to --lora is
    named so, with the flag that takes it, not "unknown LoRA format"."""
    for name, tensors, flag in [
        ("mv.safetensors", {"transformer_blocks.0.attn.to_q.weight": torch.zeros(2, 2)}, "--diffusion-model"),
        ("vae.safetensors", {"decoder.conv_in.weight": torch.zeros(2, 2, 1, 1, 1)}, "--vae"),
    ]:
        with pytest.raises(LoRAError, match=rf"{name} is not a LoRA: it holds the .*\(pass it as {flag}\)"):
            read_loras([LoRASpec(_write(tmp_path / name, tensors))], targets)


def test_unknown_and_unsupported_formats(tmp_path, targets):
    path = _write(tmp_path / "x.safetensors", {"model.diffusion.weird": torch.zeros(2)})
    with pytest.raises(LoRAError, match="unknown LoRA format.*supported: diffusers/PEFT.*kohya"):
        read_loras([LoRASpec(path)], targets)
    odd = {"diffusion_model.proj_out.weird": torch.zeros(2), "diffusion_model.proj_out.alpha": torch.tensor(1.0)}
    with pytest.raises(LoRAError, match=r"1 tensor is not LoRA down/up/alpha, LoHa or LoKr weights \(DoRA"):
        read_loras([LoRASpec(_write(tmp_path / "y.safetensors", odd))], targets)
    with pytest.raises(LoRAError, match="not a readable safetensors"):
        (tmp_path / "z.safetensors").write_bytes(bytes(range(255, 191, -1)))  # damaged: no kind of file its bytes tell
        read_loras([LoRASpec(tmp_path / "z.safetensors")], targets)


def test_dora_metadata_is_refused(tmp_path, targets):
    lora = {
        "transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 64),
        "transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(64, 2),
    }
    path = tmp_path / "dora.safetensors"
    save_file(lora, path, metadata={"lora_adapter_metadata": json.dumps({"r": 2, "lora_alpha": 2, "use_dora": True})})
    with pytest.raises(LoRAError, match="DoRA"):
        read_loras([LoRASpec(path)], targets)


def test_split_strength_reads_a_finite_number_after_the_last_colon():
    assert split_strength("v1:a.safetensors:0.25") == ("v1:a.safetensors", 0.25)
    assert split_strength(":0.8") == ("", 0.8)  # a strength without its file: the caller decides what that means
    for text in ("a.safetensors", "a.safetensors:strong", "a.safetensors:inf", "a.safetensors:nan", "C:x"):
        assert split_strength(text) == (text, None)
    assert split_strength("0.8") == ("0.8", None)  # a number without a colon is a file's name, not a strength
    assert lora_flag(Path("/loras/a.safetensors"), 1.0) == "/loras/a.safetensors:1"  # whole numbers stay short
    assert lora_flag("a.safetensors", 0.8) == "a.safetensors:0.8"


@pytest.mark.parametrize("strength", [0.3333333, 1 / 3, 0.1234567, -0.7, 1e-7, 2.0, 1e16])
def test_a_stored_lora_strength_reads_back_as_the_same_float(strength):
    # A latents file and a video's settings keep each LoRA as lora_flag writes it, and a resumed run (or
    # --settings-from) reads it back with split_strength: the strength must come back exact, or the resumed run
    # merges other weights than the run it continues (6 significant digits made 0.3333333 into 0.333333).
    file, back = split_strength(lora_flag(Path("/loras/a.safetensors"), strength))
    assert file == "/loras/a.safetensors" and back == strength


def test_spec_parsing():
    assert LoRASpec.parse("a/b.safetensors") == LoRASpec(Path("a/b.safetensors"), 1.0)
    assert LoRASpec.parse("a/b.safetensors:0.5") == LoRASpec(Path("a/b.safetensors"), 0.5)
    assert LoRASpec.parse("C:/x/b.safetensors:-1") == LoRASpec(Path("C:/x/b.safetensors"), -1.0)
    assert LoRASpec.parse("C:/x/b.safetensors") == LoRASpec(Path("C:/x/b.safetensors"), 1.0)
    with pytest.raises(LoRAError, match="finite"):
        LoRASpec.parse("b.safetensors:nan")


def test_cli_checks_loras_before_loading_and_lists_them(setup, tmp_path, capsys, monkeypatch):
    root, _, files, _ = setup
    base = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4")]
    import motif_lite.encoders.text as text

    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **k: pytest.fail("loaded weights for a bad LoRA"))
    assert cli_main([*base, "--lora", str(tmp_path / "missing.safetensors")]) == 2
    assert "LoRA file not found" in capsys.readouterr().err
    assert cli_main([*base, "--lora", f"{files['kohya']}:strong"]) == 2  # the file exists, its strength is a typo
    assert "the strength 'strong' is not a number; use FILE:STRENGTH" in capsys.readouterr().err
    bad = _write(tmp_path / "bad.safetensors", {"diffusion_model.nope.lora_down.weight": torch.zeros(2, 3)})
    assert cli_main([*base, "--lora", f"{bad}:0.5", "--vram", "4"]) == 2
    err = capsys.readouterr().err
    assert "none of its layers (1) matches a linear layer" in err
    # Refused as the run is prepared, as its dry run refuses it: before the memory plan and the seed, not at load.
    assert "Memory plan" not in err and "seed:" not in err
    monkeypatch.undo()
    assert cli_main([*base, "--lora", f"{files['kohya']}:0.8"]) == 0
    out = capsys.readouterr().out
    assert "loras: kohya.safetensors x0.8 (kohya," in out and "merged" in out


def test_a_run_opens_each_lora_file_once(setup, tmp_path, capsys, monkeypatch):
    # run read each --lora file to check it before the memory plan, and load_pipeline read it again as it loaded:
    # it now hands on the files it read (`LoRAFile`s), which load_pipeline takes as they are.
    import motif_lite.weights.lora as lora_module

    root, _, files, _ = setup
    base = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4")]
    opened, opens = lora_module._opened_lora, []
    monkeypatch.setattr(lora_module, "_opened_lora", lambda path: opens.append(path.name) or opened(path))
    assert cli_main([*base, "--lora", f"{files['kohya']}:0.8", "--lora", str(files["peft"])]) == 0
    peft = files["peft"].name
    assert opens == ["kohya.safetensors", peft]
    out = capsys.readouterr().out
    assert "loras: kohya.safetensors x0.8 (kohya," in out and f"{peft} x1 (peft," in out


@pytest.mark.parametrize("gguf", [False, True], ids=["safetensors", "gguf"])
def test_a_run_builds_the_meta_model_once_for_its_loras(setup, gguf_setup, tmp_path, capsys, monkeypatch, gguf):
    # run checked its --lora files against a meta model of the transformer's config, and load_pipeline built
    # another (with --gguf, from the GGUF's header) to check the same files again: they now carry the config they
    # were checked against, and load_pipeline takes them as they are.
    import motif_lite.preflight as preflight

    builds = []
    for name in ("build_model", "meta_transformer", "meta_gguf_transformer"):
        build = getattr(preflight, name)
        monkeypatch.setattr(
            preflight, name, lambda *a, _build=build, _name=name, **k: builds.append(_name) or _build(*a, **k)
        )
    root, _, files, _ = setup
    base = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4")]
    base += ["--gguf", str(gguf_setup[0])] if gguf else []
    assert cli_main([*base, "--lora", f"{files['kohya']}:0.8"]) == 0
    assert builds == ["build_model"]
    assert "loras: kohya.safetensors x0.8 (kohya," in capsys.readouterr().out


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("given", ["-m", "--diffusion-model"])
def test_a_run_refuses_a_lora_for_a_layer_the_checkpoints_layout_lacks(tmp_path, capsys, monkeypatch, given, dry_run):
    # A transformer stored in the "original" cross-attention layout (config.json says nothing of it), as the
    # checkpoint's or as a single file of the user's, has no cross_attn.to_k of its own. run's LoRA check saw
    # config.json's default layout, marked the file checked, and the LoRA then failed with a traceback once the
    # weights had loaded: the model the sources name is now the one built, so the file is checked against it again
    # and refused in one line, before any weight loads. Its dry run checked the LoRA against config.json's layout
    # and passed it: it now reads the layout from the headers at hand, and refuses it from one meta model too.
    import motif_lite.pipeline.recipe as recipe
    import motif_lite.preflight as preflight

    builds = []
    for name in ("build_model", "meta_transformer", "meta_gguf_transformer"):
        build = getattr(preflight, name)
        monkeypatch.setattr(
            preflight, name, lambda *a, _build=build, _name=name, **k: builds.append(_name) or _build(*a, **k)
        )

    root = tmp_path / "ckpt"
    reference = make_tiny_checkpoint(root)
    tie_cross_attention_to_block(reference.transformer)
    blocks = [f"single_transformer_blocks.{i}" for i, b in enumerate(reference.transformer.single_transformer_blocks)]
    blocks = [b for b in blocks if reference.transformer.get_submodule(b).cross_attn is not None]
    hidden = TINY["num_attention_heads"] * TINY["attention_head_dim"]
    query_norm = {b: (torch.ones(hidden), torch.zeros(hidden)) for b in blocks}
    save_shared_layout(reference.transformer, tmp_path / "shared", "original", query_norm)
    if given == "-m":
        shutil.rmtree(root / "transformer")
        shutil.copytree(tmp_path / "shared" / "transformer", root / "transformer")
    lora = tmp_path / "to_k.safetensors"
    module = f"diffusion_model.{blocks[0]}.cross_attn.to_k"
    save_file(
        {f"{module}.lora_down.weight": torch.ones(2, hidden), f"{module}.lora_up.weight": torch.ones(hidden, 2)}, lora
    )
    loads = []
    monkeypatch.setattr(recipe, "load_transformer", lambda *a, **k: loads.append(a))
    args = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    args += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4")]
    if given == "--diffusion-model":
        args += [given, str(next((tmp_path / "shared" / "transformer").glob("*.safetensors")))]
    args += ["--dry-run"] if dry_run else []
    assert cli_main([*args, "--lora", str(lora)]) == 2
    err = capsys.readouterr().err
    assert "cross_attn.to_k" in err and "Traceback" not in err and loads == []
    assert builds == ["build_model"]


def test_a_lora_file_checked_for_another_config_is_checked_again(setup):
    # A file's mark is trusted for its own config only: against another transformer it is checked as a Python
    # caller's unmarked file is.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.preflight import check_loras, loras_for_config

    root, _, files, _ = setup
    sources = locate_sources(root)
    other = sources.transformer.value.replace(num_layers=sources.transformer.value.num_layers + 1)
    (marked,) = loras_for_config([LoRASpec(files["peft"])], sources.transformer.value)
    assert check_loras([marked], sources) == [marked]
    (for_other,) = loras_for_config([LoRASpec(files["peft"])], other)
    misfit = dataclasses.replace(for_other, updates=[*for_other.updates[:-1], _widened(for_other.updates[-1])])
    with pytest.raises(LoRAError, match="read for another model"):
        check_loras([misfit], sources)


def _widened(update):
    """`update` for a layer one input wider (a LoRA update of another model's layer of the same name)."""
    return dataclasses.replace(update, down=torch.ones(update.down.shape[0], update.down.shape[1] + 1))


def test_peft_rslora_and_alpha_pattern_scale_as_peft_does(tmp_path):
    # diffusers writes PEFT's alpha settings as metadata: with use_rslora the scale is alpha / sqrt(rank), and an
    # alpha_pattern entry overrides lora_alpha for the modules it matches. Compared with PEFT's own scaling.
    reference = make_reference()
    config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, use_rslora=True, alpha_pattern={"to_q": 2.0}, target_modules=["to_q", "to_k"]
    )
    reference.add_adapter(config)
    reference.save_lora_adapter(tmp_path)
    expected = {name: m.scaling["default"] for name, m in reference.named_modules() if isinstance(m, LoraLayer)}
    (lora,) = read_loras(
        [LoRASpec(next(tmp_path.glob("*.safetensors")))], linear_shapes(build_model(TransformerConfig(**TINY)))
    )
    scales = {u.module: u.scale for u in lora.updates}
    assert scales == pytest.approx(expected) and len(set(scales.values())) == 2


def test_alpha_pattern_keys_match_whole_name_parts_as_peft_does(tmp_path):
    # PEFT matches an alpha_pattern key against the end of the module name, at a dot: "q_proj" is not "add_q_proj".
    reference = make_reference()
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, alpha_pattern={"q_proj": 2.0}, target_modules=["to_q", "add_q_proj"])
    with pytest.warns(RuntimeWarning, match="alpha_pattern keys did not match any targeted module"):
        reference.add_adapter(config)
    reference.save_lora_adapter(tmp_path)
    expected = {name: m.scaling["default"] for name, m in reference.named_modules() if isinstance(m, LoraLayer)}
    (lora,) = read_loras(
        [LoRASpec(next(tmp_path.glob("*.safetensors")))], linear_shapes(build_model(TransformerConfig(**TINY)))
    )
    assert {u.module: u.scale for u in lora.updates} == pytest.approx(expected)
    assert set(expected.values()) == {ALPHA / RANK}  # the pattern matched nothing


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_an_unusual_strength_is_warned_of_once_before_loading_and_applied(setup, tmp_path, capsys, monkeypatch):
    # `--lora style.safetensors:80`, a typo for 0.8, was taken without a word: a video of noise, minutes later.
    assert unusual_strength("a.safetensors", UNUSUAL_STRENGTH) is None  # at the edge: usual enough
    assert unusual_strength("a.safetensors", -2) is None
    assert unusual_strength("a.safetensors", 80) == (
        "LoRA a.safetensors: strength 80 is far above the usual 0-2, 1 being as trained: a typo for 0.8? It is "
        "applied as given"
    )
    assert unusual_strength("a.safetensors", 125).endswith("a typo for 1.25? It is applied as given")
    assert unusual_strength("a.safetensors", 1e30).endswith("far above the usual 0-2, 1 being as trained. It is "
                                                             "applied as given")  # fmt: skip
    assert "-15 is far below the usual -2 to 0 (negative inverts it), 1 being as trained: a typo for -1.5?" in (
        unusual_strength("a.safetensors", -15)
    )
    root, _, files, _ = setup
    base = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4")]
    import motif_lite.encoders.text as text

    said_before_loading, load_text_encoder = [], text.load_text_encoder
    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **k: (
        said_before_loading.append(capsys.readouterr().err), load_text_encoder(*a, **k))[1])  # fmt: skip
    assert cli_main([*base, "--lora", f"{files['kohya']}:5", "--lora", f"{files['peft']}:0.8"]) == 0
    err = "".join(said_before_loading) + capsys.readouterr().err
    said = f"warning: LoRA {files['kohya']}: strength 5 is far above the usual 0-2, 1 being as trained: a typo for 0.5?"
    assert err.count(said) == 1 and err.count("is far above") == 1, err  # said by run, not again as it loads
    assert said in said_before_loading[0], said_before_loading
    # From Python, before the checkpoint is looked for.
    warned = pytest.warns(UserWarning, match=r"strength 80 is far above the usual 0-2, .* a typo for 0\.8\?")
    with warned, pytest.raises(MotifLiteError):
        load_pipeline(tmp_path / "no-checkpoint", loras=[(files["kohya"], 80)], device="cpu")


def _strength_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "is far above the usual" in str(w.message)]


def test_a_read_lora_file_at_an_unusual_strength_is_warned_of_too(setup, tmp_path, recwarn):
    # Only (file, strength) pairs were warned of: a `LoRAFile` (read with `read_loras`) at 80 was taken without a word.
    from motif_lite.preflight import check_loras
    from motif_lite.weights.lora_updates import LoRAFile

    root, _, files, _ = setup
    said = f"LoRA {files['kohya']}: strength 80 is far above the usual 0-2, 1 being as trained: a typo for 0.8?"
    pipe = load_pipeline(root, dtype="fp32", device="cpu", kernels="torch")
    (read,) = check_loras([LoRASpec(files["kohya"], 80.0)], pipe.sources)  # read as `motif-lite run` reads it
    recwarn.clear()
    pipe.set_loras([read])
    assert [text.startswith(said) for text in _strength_warnings(recwarn)] == [True]  # once for one call
    recwarn.clear()
    unread = LoRAFile(LoRASpec(files["kohya"], 80.0), "kohya", [])  # kept as it is: not read before the refusal
    with pytest.raises(MotifLiteError):
        load_pipeline(tmp_path / "no-checkpoint", loras=[unread], device="cpu")
    assert [text.startswith(said) for text in _strength_warnings(recwarn)] == [True]


def test_each_call_warns_of_an_unusual_strength_not_only_the_first_of_the_process(setup, tmp_path):
    # Python shows a warning of one text from one place once a process (its "default" action): a notebook's second
    # `set_loras` or `load_pipeline` at the same strength was silent. A filter that ignores it still does.
    import warnings

    root, _, files, _ = setup
    pipe = load_pipeline(root, dtype="fp32", device="cpu", kernels="torch")

    def warned(action: str, calls: int) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            for _ in range(calls):  # from one place, with one text
                pipe.set_loras([(files["kohya"], 80.0)])
                with pytest.raises(MotifLiteError):
                    load_pipeline(tmp_path / "no-checkpoint", loras=[(files["kohya"], 80.0)], device="cpu")
        return _strength_warnings(caught)

    said = f"LoRA {files['kohya']}: strength 80 is far above the usual 0-2"
    assert [text.startswith(said) for text in warned("default", 2)] == [True] * 4
    assert warned("ignore", 1) == []


def test_a_dry_run_reads_and_lists_the_loras(setup, tmp_path, capsys):
    """A dry run checks each LoRA against the transformer's layers as a run does (its config: no weights)."""
    root, _, files, _ = setup
    base = ["run", "-m", str(root), "--dry-run", "--device", "cpu", "-W", "48", "-H", "32", "--video-frames", "5"]
    assert cli_main([*base, "--lora", f"{files['kohya']}:0.8"]) == 0
    assert "loras: kohya.safetensors x0.8 (kohya," in capsys.readouterr().out
    wan = _write(tmp_path / "wan.safetensors", _pairs("diffusion_model.", "blocks.0.self_attn.q", ("down", "up")))
    assert cli_main([*base, "--lora", str(wan)]) == 2
    err = capsys.readouterr().err
    assert "is it a LoRA for another" in err
    assert "warning:" not in err  # refused with the checks, before the notes (the official negative prompt's cut)


@pytest.mark.parametrize(
    ("part", "value", "named"),
    [
        (
            "alpha",
            torch.tensor([0.0, 1.0]),
            r"the alpha of transformer_blocks\.0\.attn\.to_q must be one number, got shape \[2\]",
        ),
        (  # no number at all: float() of it was a traceback
            "alpha",
            torch.tensor([]),
            r"the alpha of transformer_blocks\.0\.attn\.to_q must be one number, got shape \[0\]",
        ),
        ("alpha", torch.tensor(float("nan")), r"the alpha of transformer_blocks\.0\.attn\.to_q holds inf or NaN"),
        ("alpha", torch.tensor(float("inf")), r"the alpha of transformer_blocks\.0\.attn\.to_q holds inf or NaN"),
        ("lora_down.weight", torch.full((2, 64), float("nan")), r"the down \(lora_A\) of .*to_q holds inf or NaN"),
        (  # one damaged row among finite ones
            "lora_down.weight",
            torch.cat([torch.ones(1, 64), torch.full((1, 64), float("nan"))]),
            r"the down \(lora_A\) of .*to_q holds inf or NaN",
        ),
        ("lora_up.weight", torch.full((64, 2), float("inf")), r"the up \(lora_B\) of .*to_q holds inf or NaN"),
        ("rank-0", None, r"the LoRA of transformer_blocks\.0\.attn\.to_q has rank 0 \(down \[0, 64\], up \[64, 0\]\)"),
    ],
    ids=["alpha-of-two", "empty-alpha", "nan-alpha", "inf-alpha", "nan-down", "one-nan-row-down", "inf-up", "rank-0"],
)
def test_a_broken_lora_is_named_when_read(tmp_path, targets, part, value, named):
    # Each crashed with a traceback (alpha of two numbers; a rank-0 file with an alpha divides by zero) or only
    # showed after the first step as latents holding inf or NaN.
    module = "diffusion_model.transformer_blocks.0.attn.to_q"
    lora = _pairs("diffusion_model.", "transformer_blocks.0.attn.to_q", ("down", "up"), rank=0 if value is None else 2)
    lora[f"{module}.alpha"] = torch.tensor(2.0)
    if value is not None:
        lora[f"{module}.{part}"] = value
    path = _write(tmp_path / "broken.safetensors", lora)
    with pytest.raises(LoRAError, match=rf"^{re.escape(str(path))}: {named}"):
        read_loras([LoRASpec(path)], targets)


def test_a_lora_alpha_of_two_numbers_is_a_user_error_in_a_run_and_a_dry_run(setup, tmp_path, capsys):
    root, _, _, _ = setup
    lora = _pairs("transformer.", "transformer_blocks.0.attn.to_q", ("A", "B"))
    path = _write(
        tmp_path / "two.safetensors",
        {**lora, "transformer.transformer_blocks.0.attn.to_q.alpha": torch.tensor([0.0, 1.0])},
    )
    base = ["run", "-m", str(root), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.mp4"), "--lora", str(path)]
    for flags in (["--dry-run"], []):
        assert cli_main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert "must be one number, got shape [2]" in err and "Traceback" not in err


def test_the_python_api_points_a_file_colon_strength_to_the_pair(setup, tmp_path):
    _, _, files, _ = setup
    hint = f"; loras= takes a strength as a (file, strength) pair, e.g. loras=[('{files['peft']}', 0.5)]"
    with pytest.raises(LoRAError, match=re.escape(f"not found: {files['peft']}:0.5{hint}")):
        lora_specs([f"{files['peft']}:0.5"])
    # The file before the colon missing too: the pair of the file beside it that it likely meant.
    with pytest.raises(LoRAError, match=re.escape(f"not found: {files['peft']}x:0.5{hint}")):
        lora_specs([f"{files['peft']}x:0.5"])
    with pytest.raises(LoRAError, match=r"not found: [^;]*$"):  # nothing like it beside it
        lora_specs([f"{files['peft'].with_name('zzz')}:0.5"])
    inside = tmp_path / "v1:2" / "style.safetensors"  # a colon in a folder's name: the strength follows the last one
    inside.parent.mkdir()
    shutil.copy(files["peft"], inside)
    with pytest.raises(LoRAError, match=re.escape(f"e.g. loras=[('{inside}', 0.5)]")):
        lora_specs([f"{inside}:0.5"])


@pytest.mark.parametrize(
    ("transformer", "text_encoder", "named"),
    [
        (("transformer.", ("A", "B")), "text_encoder.", "1 of its 2 layers is"),  # diffusers' save_lora_weights
        (("lora_unet_", ("down", "up")), "lora_te1_", "1 of its 2 layers is"),  # kohya
        (None, "text_encoder.", "its one layer is"),
        (None, "text_encoder_2.", "its one layer is"),  # a model with two text encoders (SDXL's save_lora_weights)
    ],
    ids=["diffusers", "kohya", "text-encoder-alone", "second-text-encoder"],
)
def test_text_encoder_layers_are_refused_as_such(tmp_path, targets, transformer, text_encoder, named):
    # A LoRA trained with the text encoder was called "a LoRA for another model or version".
    encoder_layer = "text_model.encoder.layers.0.self_attn.q_proj"
    if text_encoder == "lora_te1_":
        encoder_layer = encoder_layer.replace(".", "_")
    lora = _pairs(text_encoder, encoder_layer, ("down", "up") if text_encoder == "lora_te1_" else ("A", "B"))
    if transformer is not None:
        prefix, parts = transformer
        layer = "transformer_blocks.0.attn.to_q"
        lora |= _pairs(prefix, layer.replace(".", "_") if prefix == "lora_unet_" else layer, parts)
    path = _write(tmp_path / "with-text-encoder.safetensors", lora)
    with pytest.raises(LoRAError) as error:
        read_loras([LoRASpec(path)], targets)
    message = str(error.value)
    assert f"{named} for the text encoder (like {text_encoder}" in message, message
    assert "does not adapt" in message and "another model" not in message


def test_a_modules_alpha_tensor_comes_before_peft_metadata(tmp_path, targets):
    # PEFT's metadata stands in for the modules without an .alpha tensor of their own, not for those with one.
    lora = _pairs("transformer.", "transformer_blocks.0.attn.to_q", ("A", "B"))  # rank 2
    lora |= _pairs("transformer.", "transformer_blocks.0.attn.to_k", ("A", "B"))
    lora["transformer.transformer_blocks.0.attn.to_q.alpha"] = torch.tensor(1.0)
    path = tmp_path / "both.safetensors"
    save_file(lora, path, metadata={"lora_adapter_metadata": json.dumps({"r": 2, "lora_alpha": 8})})
    (read,) = read_loras([LoRASpec(path)], targets)
    scales = {update.module: update.scale for update in read.updates}
    assert scales == {"transformer_blocks.0.attn.to_q": 1.0 / 2, "transformer_blocks.0.attn.to_k": 8 / 2}


def test_the_python_api_takes_a_dict_of_strengths(setup):
    # Before: loras={"style.safetensors": 0.5}, as diffusers users write adapter weights, iterated the keys and
    # applied each file at strength 1 without a word.
    _, _, files, _ = setup
    assert lora_specs({files["peft"]: 0.5, str(files["kohya"]): -1}) == [
        LoRASpec(files["peft"], 0.5),
        LoRASpec(files["kohya"], -1.0),
    ]
    with pytest.raises(LoRAError, match="a finite number as strength"):
        lora_specs({files["peft"]: "strong"})


def test_a_resumed_run_whose_lora_moved_is_told_each_lora_with_its_strength(tmp_path):
    """Given again, --lora replaces all of the stopped run's LoRAs, and a file without a strength runs at 1: the
    message names every LoRA of the run with its strength, so that the rest of the video is not sampled with
    others."""
    from motif_lite.cli.resume import _check_still_there
    from motif_lite.request import RequestError

    kept = _write(tmp_path / "motion.safetensors", _pairs("", "proj_out", ("A", "B")))
    gone = tmp_path / "elsewhere" / "style.safetensors"
    with pytest.raises(RequestError) as caught:
        _check_still_there("lora", [f"{gone}:0.6", f"{kept}:1.5"])
    message = str(caught.value)
    assert f"had --lora {gone}, which is not there" in message
    assert "give --lora again for each of its LoRAs, with where the file is now and its strength" in message
    assert f"--lora {gone}:0.6 --lora {kept}:1.5" in message


def test_latents_that_overflow_with_a_huge_strength_name_the_strength(setup, tmp_path):
    """A strength far beyond what LoRAs are made for overflows the latents: the error names that LoRA and its
    strength, not a damaged file; a usual strength keeps the general advice."""
    from motif_lite.numerics import NonFiniteError

    root, _, files, _ = setup
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", loras=[(files["peft"], 1e30)])
    with pytest.raises(NonFiniteError) as caught:
        frames(pipe, tmp_path)
    message = str(caught.value)
    assert "the latents after step 1 of 2 hold inf or NaN" in message
    assert f"the LoRA strength of {files['peft'].name} x1e+30 is far beyond what LoRAs are made for" in message
    assert "may be damaged" not in message
    assert pipe.loras.overflow_cause() is not None
    pipe.set_loras([(files["peft"], -10)])  # at the edge of the usual: no such cause
    assert pipe.loras.overflow_cause() is None
    pipe.set_loras([(files["peft"], -11)])  # as far below it: named too
    assert f"{files['peft'].name} x-11 is far beyond" in pipe.loras.overflow_cause()


def test_a_peft_alpha_pattern_matches_the_layer_as_the_file_names_it(tmp_path):
    # PEFT matched alpha_pattern against the names of the model it trained (diffusers': cross_attn.to_q); the model
    # here, loaded from a file in the shared layout, calls that layer cross_attn.query_proj.
    down, up = torch.ones(2, 8), torch.ones(8, 2)
    lora = {"transformer.transformer_blocks.0.cross_attn.to_q.lora_A.weight": down,
            "transformer.transformer_blocks.0.cross_attn.to_q.lora_B.weight": up}  # fmt: skip
    peft = {"r": 2, "lora_alpha": 2, "alpha_pattern": {"cross_attn.to_q": 8}}
    path = tmp_path / "lora.safetensors"
    save_file(lora, path, metadata={"lora_adapter_metadata": json.dumps(peft)})
    (file,) = read_loras([LoRASpec(path)], {"transformer_blocks.0.cross_attn.query_proj": (8, 8)})
    assert [(u.module, u.scale) for u in file.updates] == [("transformer_blocks.0.cross_attn.query_proj", 8 / 2)]


def test_an_unusual_strength_is_warned_of_at_the_callers_line(setup, tmp_path):
    # set_loras' warning named a line of its decorators in motif_lite/pipeline (stacklevel 3 counted none of them).
    import sys
    import warnings

    root, _, files, _ = setup
    pipe = load_pipeline(root, dtype="fp32", device="cpu", kernels="torch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        set_loras_line = sys._getframe().f_lineno + 1
        pipe.set_loras([(files["kohya"], 80.0)])
        load_line = sys._getframe().f_lineno + 2
        with pytest.raises(MotifLiteError):
            load_pipeline(tmp_path / "no-checkpoint", loras=[(files["kohya"], 80.0)], device="cpu")
    places = [(w.filename, w.lineno) for w in caught if "is far above the usual" in str(w.message)]
    assert places == [(__file__, set_loras_line), (__file__, load_line)]


def test_a_lora_and_its_strength_quoted_as_one_word_are_told_the_colon(tmp_path, monkeypatch):
    # `--lora "style.safetensors 0.8"` (a file and its strength apart, in one quoted word) was "LoRA file not found"
    # alone; it is a strength typed after a space, not a missing file.
    monkeypatch.chdir(tmp_path)
    Path("style.safetensors").write_bytes(b"")
    with pytest.raises(LoRAError) as refused:
        lora_args(["style.safetensors 0.8"])
    assert str(refused.value) == (
        "LoRA file not found: style.safetensors 0.8; a strength goes after a colon: --lora style.safetensors:0.8"
    )
    for missing in ["other.safetensors 0.8", "style.safetensors x"]:  # no such file, no number: not this mistake
        with pytest.raises(LoRAError, match=r"^LoRA file not found: (?!.*after a colon)"):
            lora_args([missing])


def test_an_unusual_strengths_guess_moves_the_point_the_fewest_places_and_stops_at_1000():
    # 20 is 2 with the point one place off (2 is usual: the top of 0-2), not 0.2; from 1000 on no slip of the point
    # is guessed, as for 1e30 (999 still reads as 0.999).
    assert unusual_strength("a.safetensors", 20).endswith("a typo for 2? It is applied as given")
    assert unusual_strength("a.safetensors", -20).endswith("a typo for -2? It is applied as given")
    assert unusual_strength("a.safetensors", 999).endswith("a typo for 0.999? It is applied as given")
    assert unusual_strength("a.safetensors", 1000).endswith("1 being as trained. It is applied as given")


def test_a_file_given_three_times_is_told_the_sum_of_all_three(tmp_path, monkeypatch):
    # Told the first two's sum alone, `--lora a:0.5 --lora a:0.5 --lora a:-1` was offered `--lora a:1`, which the
    # third still cancels: the next run was refused again (loras= too).
    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"a LoRA")
    cancelling = ["a.safetensors:0.5", "./a.safetensors:0.5", "b.safetensors:1", "a.safetensors:-1"]
    Path("b.safetensors").write_bytes(b"another LoRA")
    with pytest.raises(LoRAError) as refused:
        lora_args(cancelling)
    assert str(refused.value) == (
        "--lora a.safetensors:0.5, --lora ./a.safetensors:0.5 and --lora a.safetensors:-1 name the same file, which "
        "would apply 3 times (at 0.5 + 0.5 + -1); their strengths add up to 0, so together they change nothing: "
        "leave them all --lora out"
    )
    strengths = [0.5, 0.25, 1.0]
    with pytest.raises(LoRAError) as refused:
        lora_args([f"a.safetensors:{each}" for each in strengths])
    offered = str(refused.value).rpartition("--lora ")[2]
    assert lora_args([offered]) == [(Path("a.safetensors"), sum(strengths))]
    with pytest.raises(LoRAError) as refused:
        lora_specs([("a.safetensors", each) for each in strengths])
    said = str(refused.value)
    assert "names the same file 3 times ('a.safetensors', 'a.safetensors' and 'a.safetensors')" in said
    assert said.endswith(
        f"(at 0.5 + 0.25 + 1); give it once with the summed strength: ('a.safetensors', {sum(strengths):g})"
    )
    with pytest.raises(LoRAError, match="add up to 0, so together they change nothing: leave them all out of loras$"):
        lora_specs([("a.safetensors", 0.5), ("a.safetensors", 0.5), ("a.safetensors", -1.0)])


def test_a_word_float_reads_after_a_lora_file_in_one_quoted_word_is_no_strength(tmp_path, monkeypatch):
    # `--lora "style.safetensors nan"` was told `--lora style.safetensors:nan`, which --lora then refuses.
    monkeypatch.chdir(tmp_path)
    Path("style.safetensors").write_bytes(b"")
    for word in ["nan", "infinity", "1_0"]:
        with pytest.raises(LoRAError, match=r"^LoRA file not found: (?!.*after a colon)"):
            lora_args([f"style.safetensors {word}"])


def test_a_lora_in_the_home_folder_and_its_strength_quoted_as_one_word_are_told_the_colon(tmp_path, monkeypatch):
    # `--lora "~/style.safetensors 0.8"`: the file was looked for under a folder named ~, unlike --lora's own.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    (tmp_path / "style.safetensors").write_bytes(b"")
    with pytest.raises(LoRAError, match="a strength goes after a colon: --lora ~/style.safetensors:0.8$"):
        lora_args(["~/style.safetensors 0.8"])


def test_an_unusual_strength_in_a_thread_started_on_the_method_names_no_stdlib_file(tmp_path):
    # `Thread(target=pipe.set_loras, ...)` and `executor.submit(pipe.set_loras, ...)` hold no line of the caller's:
    # the warning named threading.py and concurrent/futures/thread.py. A caller's own function in a thread is named.
    import importlib.util
    import threading
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "methods.py").write_text(
        "from motif_lite.weights.lora_values import warn_of_unusual_strengths\n"
        f"def set_loras(loras):\n    warn_of_unusual_strengths(loras, {str(folder)!r})\n"
    )
    spec = importlib.util.spec_from_file_location("library_methods", folder / "methods.py")
    methods = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(methods)
    loras = [("style.safetensors", 80.0)]

    def callers_own() -> None:
        methods.set_loras(loras)

    callers_line = callers_own.__code__.co_firstlineno + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for target, name in [(methods.set_loras, "on the method"), (callers_own, "the caller's")]:
            thread = threading.Thread(target=target, args=(loras,) if target is methods.set_loras else (), name=name)
            thread.start()
            thread.join()
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as executor:
            executor.submit(methods.set_loras, loras).result()
    places = [(w.filename, w.lineno) for w in caught if "is far above the usual" in str(w.message)]
    assert places == [("<thread on the method>", 0), (__file__, callers_line), ("<thread pool_0>", 0)], places


def test_a_missing_lora_is_told_the_file_beside_it_that_it_likely_meant(tmp_path, monkeypatch):
    # `--lora style:0.8` (a name as ComfyUI's list and A1111's <lora:style:0.8> show it, without its extension) or a
    # misspelled name was "LoRA file not found" alone, though the server names the file meant for a job's name.
    monkeypatch.chdir(tmp_path)
    Path("style.safetensors").write_bytes(b"")
    Path("._motion.safetensors").write_bytes(b"")  # a Mac's AppleDouble file: no LoRA to offer
    for given, strength in [("style", 1.0), ("style:0.8", 0.8), ("syle.safetensors:-1", -1.0), ("Style", 1.0)]:
        with pytest.raises(LoRAError) as refused:
            lora_args([given])
        said = str(refused.value)
        assert said.startswith(f"LoRA file not found: {LoRASpec.parse(given).path}; did you mean --lora ")
        offered = said.removesuffix("?").rpartition("--lora ")[2]
        assert lora_args([offered]) == [(Path("style.safetensors"), strength)]
    with pytest.raises(LoRAError, match=r"^LoRA file not found: style; did you mean 'style.safetensors'\?$"):
        lora_specs([("style", 0.8)])  # the Python API names the file, its strength being the pair's
    with pytest.raises(LoRAError, match=re.escape("e.g. loras=[('style.safetensors', 0.8)]")):
        lora_specs(["style:0.8"])  # --lora's way: the pair of the file meant
    Path("my loras").mkdir()
    Path("my loras/motion.safetensors").write_bytes(b"")
    with pytest.raises(LoRAError, match=re.escape("did you mean --lora 'my loras/motion.safetensors'?")):
        lora_args(["my loras/motion"])  # quoted: it pastes as one word
    for nothing_like_it in ["motion", "zzz.safetensors", "no folder/style"]:
        with pytest.raises(LoRAError, match=r"^LoRA file not found: [^;]*$"):
            lora_args([nothing_like_it])


def test_a_pickle_loras_conversion_command_runs_whatever_its_path_holds(tmp_path, targets):
    # The paths were written into the Python code's string literals: a Windows path under C:\Users (`\U` starts an
    # escape there: a syntax error), or one holding a quote or a `$`, broke the command. A backslash, a quote and a `$`
    # in a folder's name stand for them here, where bash runs the command as given.
    folder = tmp_path / "Bob's $HOME \\Users"
    folder.mkdir()
    pickle = folder / "style.pt"
    lora = _pairs("diffusion_model.", "transformer_blocks.0.attn.to_q", ("down", "up"))
    torch.save(lora, pickle)
    with pytest.raises(LoRAError) as refused:
        read_loras([LoRASpec(pickle)], targets)
    command = str(refused.value).partition("convert it once where you trust it: ")[2]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python` is this Python
    subprocess.run(["bash", "-c", command], check=True, env={**os.environ, "PATH": path}, timeout=60)
    [converted] = read_loras([LoRASpec(pickle.with_suffix(".safetensors"))], targets)
    assert torch.equal(
        converted.updates[0].down, lora["diffusion_model.transformer_blocks.0.attn.to_q.lora_down.weight"]
    )


def test_the_summary_says_what_the_adapters_beside_packed_layers_keep_in_memory():
    # A LoRA on a GGUF was summed up as "0 layers merged, 1 unmerged (packed)" alone: what its adapters keep beside
    # the packed weights (a share of the blocks' size at a high rank) was said nowhere but inside the memory plan.
    import gguf
    from gguf import GGMLQuantizationType as Q

    from motif_lite.units import memory_size
    from motif_lite.weights.lora_apply import side_adapter_bytes
    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    g = torch.Generator().manual_seed(3)
    packed = torch.from_numpy(gguf.quants.quantize(torch.randn(64, 96, generator=g).numpy(), Q.Q8_0))
    files = [
        LoRAFile(LoRASpec(Path(f"{i}.safetensors")), "peft", [
            LoRAUpdate("proj", torch.randn(rank, 96, generator=g), torch.randn(64, rank, generator=g), 1.0)
        ])
        for i, rank in enumerate((4, 2))
    ]  # fmt: skip
    model = torch.nn.Sequential()
    model.add_module("proj", QuantizedLinear.from_packed(packed, Q.Q8_0, 96, torch.zeros(64)))
    applied = apply_loras(model, files, torch.bfloat16)
    kept = sum(t.numel() * t.element_size() for name, t in model.named_buffers() if not name.startswith("proj.base."))
    assert applied.beside_bytes == kept == sum(sum(side_adapter_bytes(files, torch.bfloat16).values(), ()))
    assert applied.describe().endswith(
        f"0 layers merged, 1 unmerged (packed), adapters beside them {memory_size(kept)}"
    )
    merged = torch.nn.Sequential()
    merged.add_module("proj", torch.nn.Linear(96, 64))
    assert apply_loras(merged, files).describe().endswith("1 layer merged, 0 unmerged (packed)")  # nothing beside


def test_a_missing_loras_did_you_mean_keeps_what_follows_a_colon_in_its_name(tmp_path, monkeypatch):
    # The closest spelling of `style:0.8.safetensors` (a strength typed before the extension) and of `style:strong`
    # is `style`: the file was offered at strength 1, the 0.8 or the word that is no strength dropped in silence.
    monkeypatch.chdir(tmp_path)
    Path("style.safetensors").write_bytes(b"")
    for given, strength in [("style:0.8.safetensors", 0.8), ("styl:-1.5.SAFETENSORS", -1.5)]:
        with pytest.raises(LoRAError) as refused:
            lora_args([given])
        offered = str(refused.value).removesuffix("?").rpartition("did you mean --lora ")[2]
        assert lora_args([offered]) == [(Path("style.safetensors"), strength)], str(refused.value)
        with pytest.raises(LoRAError, match=re.escape(f"e.g. loras=[('style.safetensors', {strength})]")):
            lora_specs([given])  # the pair in Python
    with pytest.raises(
        LoRAError, match=r"the strength 'strong' is not a number: .* e\.g\. --lora style\.safetensors:0\.8$"
    ):
        lora_args(["style:strong"])
    with pytest.raises(LoRAError, match=re.escape("'strong' is no strength: loras= takes a strength as a")):
        lora_specs(["style:strong"])
    Path("v1:2.safetensors").write_bytes(b"")  # a name with a colon of its own, misspelled: offered as it is named
    with pytest.raises(LoRAError, match=re.escape("did you mean --lora v1:2.safetensors?")):
        lora_args(["v1:2.safetensor"])


def test_a_missing_loras_did_you_mean_reads_what_is_a_file_from_the_folders_listing(tmp_path, monkeypatch):
    # Each .safetensors of the folder was asked whether it is a file (a stat): a round trip each on a network share
    # holding thousands of LoRAs, before a mistyped name's message. The listing tells it.
    for i in range(50):
        (tmp_path / f"style-{i:02d}.safetensors").write_bytes(b"")
    real_stat, stats = os.stat, []
    monkeypatch.setattr(os, "stat", lambda path, *a, **kw: stats.append(path) or real_stat(path, *a, **kw))
    with pytest.raises(LoRAError, match=re.escape(f"did you mean --lora {tmp_path / 'style-07.safetensors'}?")):
        lora_args([str(tmp_path / "style-07")])
    assert len([path for path in stats if str(path).endswith(".safetensors")]) < 10, stats


def test_a_missing_lora_named_without_its_extension_is_told_that_file_though_its_name_holds_a_dot(
    tmp_path, monkeypatch
):
    # `style.v2` is the name ComfyUI shows for style.v2.safetensors; read by its stem (`style`), it would be told
    # style.safetensors, the other file beside it.
    monkeypatch.chdir(tmp_path)
    Path("style.safetensors").write_bytes(b"")
    Path("style.v2.safetensors").write_bytes(b"")
    with pytest.raises(LoRAError, match=re.escape("did you mean --lora style.v2.safetensors:0.8?")):
        lora_args(["style.v2:0.8"])


def test_a_lora_file_this_user_may_not_read_is_told_with_a_chmod_command_that_can_be_pasted(tmp_path, monkeypatch):
    # The refusal's chmod names the file as a shell reads it: a folder name with a space split the path in two.
    import shlex

    from motif_lite.weights.lora import check_lora_file
    from motif_lite.weights.lora_errors import UnreadableLoRAError

    lora = tmp_path / "my loras" / "style.safetensors"
    lora.parent.mkdir()
    save_file({"transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8)}, str(lora))
    real_open = Path.open

    def refusing(self: Path, *args, **kwargs):  # mode 000 as another user: this process runs as root in CI
        if self == lora:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing)
    with pytest.raises(UnreadableLoRAError) as refused:
        check_lora_file(lora_specs([(lora, 1.0)])[0])
    command = "chmod a+r " + str(refused.value).split("(chmod a+r ")[1].split("), or run")[0]
    assert shlex.split(command) == ["chmod", "a+r", str(lora)], command


def test_a_lora_file_windows_will_not_open_is_told_in_windows_words(tmp_path, monkeypatch):
    # Windows refuses to open a file another program holds without sharing it (a download still being written) with
    # the same PermissionError: the refusal said only "chmod a+r", a command Windows lacks, for a cause it has not.
    from motif_lite.weights.lora import check_lora_file
    from motif_lite.weights.lora_errors import UnreadableLoRAError

    lora = tmp_path / "style.safetensors"
    save_file({"transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8)}, str(lora))
    real_open = Path.open

    def held(self: Path, *args, **kwargs):  # Windows' sharing violation, as Python raises it there
        if self == lora:
            raise PermissionError(13, "The process cannot access the file because it is being used", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", held)
    with monkeypatch.context() as windows, pytest.raises(UnreadableLoRAError) as refused:
        windows.setattr(sys, "platform", "win32")
        check_lora_file(lora_specs([(lora, 1.0)])[0])
    said = str(refused.value)
    assert "another program has it open" in said and "Security tab" in said and "chmod" not in said, said


def test_a_file_named_with_a_colon_and_a_number_gives_way_to_the_file_before_the_colon(tmp_path):
    # Both style.safetensors and style.safetensors:0.5 exist: --lora style.safetensors:0.5 is the first at 0.5, as
    # --lora's FILE:STRENGTH reads; the name is taken whole only where the part before the colon is no file.
    style = tmp_path / "style.safetensors"
    style.write_bytes(b"")
    (tmp_path / "style.safetensors:0.5").write_bytes(b"")
    assert LoRASpec.parse(f"{style}:0.5") == LoRASpec(style, 0.5)


def test_a_file_whose_name_holds_a_comma_is_taken_whole_though_its_parts_are_files_too(tmp_path, monkeypatch):
    # a.safetensors,b.safetensors is a file of its own: not two LoRAs joined by a comma, though both exist too.
    monkeypatch.chdir(tmp_path)  # each part a name in this folder, as the whole is
    for name in ("a.safetensors", "b.safetensors", "a.safetensors,b.safetensors"):
        (tmp_path / name).write_bytes(b"")
    spec = LoRASpec.parse("a.safetensors,b.safetensors")
    assert spec.path.resolve() == (tmp_path / "a.safetensors,b.safetensors").resolve() and spec.strength == 1.0


def test_a_loras_string_of_a_strength_alone_is_not_advised_as_a_nameless_file():
    # loras=":0.8" names no file before its colon: the advice shows the text as the file, not '' at 0.8.
    with pytest.raises(LoRAError, match=re.escape("e.g. loras={':0.8': 1}")):
        lora_specs(":0.8")


def test_a_held_lora_file_is_told_in_windows_words_where_os_name_says_windows(tmp_path, monkeypatch):
    # `_unreadable` looked at sys.platform alone, where the project's one test (`shell_syntax.on_windows`) reads
    # os.name too: a Python whose os.name says Windows was given chmod advice.
    from motif_lite.weights.lora import _unreadable

    lora = tmp_path / "style.safetensors"
    monkeypatch.setattr(sys, "platform", "linux")
    assert "chmod" in _unreadable(lora)
    with monkeypatch.context() as windows:
        windows.setattr(os, "name", "nt")  # only around the call: pathlib reads it as paths are made
        said = _unreadable(lora)
    assert "another program has it open" in said and "chmod" not in said, said
