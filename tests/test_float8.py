"""ComfyUI's fp8 transformer copies (weights/float8.py): kept in 8 bits, computing exactly with the values they hold.

The oracle is the same values widened to float32 and loaded as a plain checkpoint: a `Float8Linear` must give its
outputs bit for bit. (The widened model's weights are copied out of the memory-mapped file first: the CPU's GEMM
rounds differently for weights at an unaligned offset, which has nothing to do with fp8.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fp8_files import KINDS, fp8_copy
from safetensors.torch import load_file, save_file
from tiny_pipeline import make_tiny_checkpoint
from tiny_transformer import inputs, make_reference, save_official
from torch import nn

from motif_lite import load_transformer
from motif_lite.checkpoint import locate_sources
from motif_lite.errors import CheckpointError
from motif_lite.quantize import convert
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.runtime.streaming import StreamingConfig, apply_block_streaming
from motif_lite.sizes import model_sizes
from motif_lite.weights.float8 import Float8Linear, is_companion
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.loader import meta_transformer
from motif_lite.weights.lora import LoRASpec, apply_loras, linear_shapes, read_loras

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_official(make_reference(), tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def copies(checkpoint, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("fp8")
    (folder / "config.json").write_text((checkpoint / "transformer/config.json").read_text())
    return {kind: fp8_copy(checkpoint / WEIGHTS, folder, kind) for kind in KINDS}


def forward(model: nn.Module, x: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])


def aligned(model: nn.Module) -> nn.Module:
    """`model` with every tensor copied out of the memory-mapped file (see the module docstring)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.data = tensor.data.clone()
    return model


def float8_layers(model: nn.Module) -> dict[str, Float8Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Float8Linear)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_an_fp8_copy_stays_in_8_bits_and_computes_with_its_values(copies, kind, dtype):
    copy, widened = copies[kind]
    ours, values = load_transformer(copy, dtype=dtype), aligned(load_transformer(widened, dtype=dtype))
    linears = {name for name, m in values.named_modules() if isinstance(m, nn.Linear)}
    layers = float8_layers(ours)
    assert set(layers) == linears and not any(isinstance(m, nn.Linear) for m in ours.modules())
    expected_dtype = torch.float8_e5m2 if kind == "e5m2" else torch.float8_e4m3fn
    assert all(layer.fp8_weight.dtype == expected_dtype for layer in layers.values())
    assert all((layer.scale is None) == (not kind.startswith("scaled")) for layer in layers.values())
    weight_bytes = sum(layer.fp8_weight.nbytes for layer in layers.values())
    assert weight_bytes == sum(values.get_submodule(name).weight.numel() for name in linears)  # one byte each
    x = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs(image=3).items()}
    expected = forward(values, x)
    assert expected.abs().mean() > 0.1 and torch.equal(forward(ours, x), expected)


@pytest.mark.parametrize("kind", ["scaled", "scaled_rows"])
def test_the_scales_matter(copies, kind):
    # Negative control: the same model with its scales dropped computes something else entirely.
    copy, _ = copies[kind]
    model = load_transformer(copy, dtype=torch.float32)
    x = inputs(image=3)
    expected = forward(model, x)
    for layer in float8_layers(model).values():
        layer.scale = None
    assert not torch.allclose(forward(model, x), expected, rtol=0.1, atol=0.1)


def test_rows_of_a_layer_are_those_rows_of_its_output(copies):
    # Sequence-parallel ranks and the shared cross-attention compute some rows of a projection only.
    model = load_transformer(copies["scaled_rows"][0], dtype=torch.float32)
    layer = model.transformer_blocks[0].attn.to_q
    x = torch.randn(3, layer.in_features)
    rows = slice(5, 17)
    assert torch.equal(layer.forward_rows(x, rows), torch.nn.functional.linear(
        x, layer.dequantized_weight()[rows], layer.bias[rows]))  # fmt: skip
    assert torch.allclose(layer.forward_rows(x, rows), layer(x)[:, rows], atol=1e-6)


def test_the_meta_model_and_lora_targets_see_the_fp8_layers(copies):
    copy, widened = copies["scaled"]
    meta = meta_transformer(copy)
    assert set(float8_layers(meta)) == set(float8_layers(load_transformer(copy)))
    assert linear_shapes(meta) == linear_shapes(meta_transformer(widened))


def test_a_lora_on_an_fp8_copy_equals_the_lora_on_its_values(copies, tmp_path):
    copy, widened = copies["scaled_rows"]
    values = aligned(load_transformer(widened, dtype=torch.float32))
    torch.manual_seed(0)
    lora = {}
    for name in ["transformer_blocks.0.attn.to_q", "single_transformer_blocks.1.proj_mlp"]:
        out, inp = values.get_submodule(name).weight.shape
        lora[f"{name}.lora_A.weight"] = torch.randn(4, inp) * 0.3
        lora[f"{name}.lora_B.weight"] = torch.randn(out, 4) * 0.3
    save_file(lora, tmp_path / "lora.safetensors")
    files = read_loras([LoRASpec.parse(str(tmp_path / "lora.safetensors"))], linear_shapes(values))
    x = inputs(image=3)
    plain = forward(values, x)
    applied = apply_loras(values, files)
    ours = load_transformer(copy, dtype=torch.float32)
    wrapped = apply_loras(ours, files)
    assert (applied.merged, wrapped.wrapped) == (2, 2)
    expected = forward(values, x)
    assert not torch.allclose(expected, plain, atol=1e-2)
    torch.testing.assert_close(forward(ours, x), expected, rtol=1e-5, atol=1e-5)


def _edited(copy: Path, tmp_path: Path, edit) -> Path:
    tensors = load_file(copy)
    edit(tensors)
    path = tmp_path / "edited.safetensors"
    save_file(tensors, path)
    (tmp_path / "config.json").write_text((copy.parent / "config.json").read_text())
    return path


def test_other_quantized_formats_and_unreadable_scales_are_refused(copies, tmp_path):
    copy = copies["scaled_rows"][0]
    name = "transformer_blocks.0.attn.to_q"

    def int8(tensors):  # ComfyUI's int8 layers: integer weights with a scale beside them
        tensors[f"{name}.weight"] = tensors[f"{name}.weight"].float().to(torch.int8)

    def nvfp4(tensors):  # NVFP4's second-level scale
        tensors[f"{name}.weight_scale_2"] = torch.ones(())

    def by_block(tensors):  # a scale per block of the weight, not per tensor or row
        tensors[f"{name}.weight_scale"] = torch.ones(4, 8)

    def orphan(tensors):  # a scale whose weight the file does not have
        tensors["proj_out.extra.weight_scale"] = torch.ones(())

    for edit, said in [
        (int8, f"quantized in a format motif-lite does not read (ComfyUI's int8 or NVFP4 layers, by their scales; "
               f"{name}.weight is not fp8)"),
        (nvfp4, f"{name}.weight_scale_2"),
        (by_block, f"{name}.weight: its fp8 scale has shape [4, 8]; motif-lite reads one scale per tensor or per "
                   "output row"),
        (orphan, "proj_out.extra.weight_scale"),
    ]:  # fmt: skip
        with pytest.raises(CheckpointError) as error:
            load_transformer(_edited(copy, tmp_path, edit), dtype=torch.float32)
        assert said in str(error.value)


def test_the_tensors_stored_beside_the_weights_are_not_model_tensors():
    for name in ["scaled_fp8", "a.b.scale_weight", "a.b.scale_input", "a.b.weight_scale", "a.b.input_scale",
                 "a.b.comfy_quant", "a.b.weight_scale_2", "a.b.pre_quant_scale"]:  # fmt: skip
        assert is_companion(name), name
    for name in ["a.b.weight", "a.b.bias", "a.scale_shift_table", "norm.weight"]:
        assert not is_companion(name), name


def test_streamed_blocks_of_an_fp8_copy_equal_the_resident_model(copies):
    # Block streaming moves every parameter and buffer: the fp8 weights and their scales go with their block.
    model = load_transformer(copies["scaled_rows"][0], dtype=torch.float32)
    x = inputs(image=3)
    resident = forward(model, x)
    handle = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=1, prefetch=True))
    assert torch.equal(forward(model, x), resident) and handle.stats.loads > 0
    handle.remove()


@pytest.mark.parametrize("kind", ["e5m2", "scaled", "scaled_rows"])
def test_quantizing_an_fp8_copy_quantizes_its_values(copies, tmp_path, monkeypatch, kind):
    # python -m motif_lite.quantize reads a scaled copy times its scales (and writes no scale as a tensor), also a
    # few rows at a time, as it reads large tensors.
    monkeypatch.setattr(convert, "CHUNK_VALUES", 200)
    copy, widened = copies[kind]
    written = {}
    for name, source in [("copy", copy), ("values", widened)]:
        written[name] = tmp_path / f"{name}.gguf"
        quantize_checkpoint(open_source(source), written[name], get_recipe("Q8_0"), progress=False)
    ours, expected = read_gguf(written["copy"]).tensors, read_gguf(written["values"]).tensors
    assert ours.keys() == expected.keys() and not any(is_companion(name) for name in ours)
    assert all(torch.equal(ours[name].data, expected[name].data) for name in expected)


def test_a_plan_counts_the_fp8_weights_at_one_byte(tmp_path):
    root = tmp_path / "checkpoint"
    make_tiny_checkpoint(root)
    copy, _ = fp8_copy(root / WEIGHTS, tmp_path, "scaled")
    plain = model_sizes(locate_sources(root, download=False), torch.bfloat16)
    fp8 = model_sizes(locate_sources(root, weights={"transformer": copy}, download=False), torch.bfloat16)
    linears = sum(t.numel() for n, t in load_file(root / WEIGHTS).items() if t.ndim == 2 and n.endswith(".weight"))
    assert fp8.transformer_bytes == plain.transformer_bytes - linears and linears > plain.transformer_bytes / 4
    assert "fp8 linear weights kept in 8 bits" in fp8.origins["transformer"]
