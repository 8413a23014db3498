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
from tiny_config import forward
from tiny_pipeline import make_tiny_checkpoint
from tiny_transformer import inputs, make_reference, save_official, save_shared_layout, tie_cross_attention_to_block
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
from motif_lite.weight_checks import float8_notes
from motif_lite.weights.float8 import Float8Linear, is_companion
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.loader import meta_transformer
from motif_lite.weights.lora import linear_shapes, read_loras
from motif_lite.weights.lora_apply import apply_loras
from motif_lite.weights.lora_specs import LoRASpec

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_official(make_reference(), tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def copies(checkpoint, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("fp8")
    (folder / "config.json").write_text((checkpoint / "transformer/config.json").read_text())
    return {kind: fp8_copy(checkpoint / WEIGHTS, folder, kind) for kind in KINDS}


def aligned(model: nn.Module) -> nn.Module:
    """`model` with every tensor copied out of the memory-mapped file (see the module docstring)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.data = tensor.data.clone()
    return model


def float8_layers(model: nn.Module) -> dict[str, Float8Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Float8Linear)}


@pytest.mark.parametrize("kind", ["scaled", "scaled_rows"])
def test_an_fp8_copy_comfyui_saved_under_its_prefix_loads_as_the_copy_without_it(copies, kind):
    # ComfyUI's own save puts "model.diffusion_model." before the weights' and scales' names, not before the older
    # naming's "scaled_fp8" marker: read without the prefix, the same model, scales and all.
    copy, _ = copies[kind]
    prefixed = copy.with_name(f"comfyui_saved_{kind}.safetensors")
    stored = load_file(copy)
    save_file({(n if n == "scaled_fp8" else f"model.diffusion_model.{n}"): t for n, t in stored.items()}, prefixed)
    ours = load_transformer(prefixed, dtype=torch.float32)
    plain = load_transformer(copy, dtype=torch.float32)
    assert float8_layers(ours).keys() == float8_layers(plain).keys() and float8_layers(ours)
    theirs = plain.state_dict()
    assert ours.state_dict().keys() == theirs.keys()
    assert all(torch.equal(t.float(), theirs[name].float()) for name, t in ours.state_dict().items())


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

    def columns(tensors):  # [1, out]: not one per output row (its weight is square: it would scale the columns)
        tensors[f"{name}.weight_scale"] = tensors[f"{name}.weight_scale"].reshape(1, -1)

    def two_per_row(tensors):
        tensors[f"{name}.weight_scale"] = torch.ones(tensors[f"{name}.weight_scale"].shape[0], 2)

    def conv_by_block(tensors):  # a scaled tensor that is no linear weight is checked too
        tensors["x_embedder.proj.weight"] = tensors["x_embedder.proj.weight"].to(torch.float8_e4m3fn)
        tensors["x_embedder.proj.weight_scale"] = torch.ones(4, 8)

    def both_namings(tensors):  # which of two scales the file's maker meant is not known
        tensors[f"{name}.scale_weight"] = torch.ones(())

    for edit, said in [
        (int8, f"quantized in a format motif-lite does not read (ComfyUI's int8 or NVFP4 layers, by their scales; "
               f"{name}.weight is not fp8)"),
        (nvfp4, f"{name}.weight_scale_2"),
        (by_block, f"{name}.weight: its fp8 scale has shape [4, 8]; motif-lite reads one scale per tensor or per "
                   "output row"),
        (orphan, "proj_out.extra.weight_scale"),
        (columns, f"{name}.weight: its fp8 scale has shape [1, 64]"),
        (two_per_row, f"{name}.weight: its fp8 scale has shape [64, 2]"),
        (conv_by_block, "x_embedder.proj.weight: its fp8 scale has shape [4, 8]"),
        (both_namings, f"{name}.weight has two scales beside it, {name}.scale_weight and {name}.weight_scale"),
    ]:  # fmt: skip
        with pytest.raises(CheckpointError) as error:
            load_transformer(_edited(copy, tmp_path, edit), dtype=torch.float32)
        assert said in str(error.value)
        if edit in (by_block, conv_by_block):  # the quantizer refuses it too, before reading a tensor
            with pytest.raises(CheckpointError, match="its fp8 scale has shape"):
                open_source(_edited(copy, tmp_path, edit))


def test_the_tensors_stored_beside_the_weights_are_not_model_tensors():
    for name in ["scaled_fp8", "a.b.scale_weight", "a.b.scale_input", "a.b.weight_scale", "a.b.input_scale",
                 "a.b.comfy_quant", "a.b.weight_scale_2", "a.b.pre_quant_scale",
                 "model.diffusion_model.scaled_fp8"]:  # fmt: skip
        assert is_companion(name), name
    for name in ["a.b.weight", "a.b.bias", "a.scale_shift_table", "norm.weight", "a.not_scaled_fp8"]:
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
    tensors = load_file(copy)  # a conv in fp8 too: no linear weight, it loads widened (counted at two bytes)
    tensors["x_embedder.proj.weight"] = tensors["x_embedder.proj.weight"].to(torch.float8_e4m3fn)
    save_file(tensors, copy)
    plain = model_sizes(locate_sources(root, download=False), torch.bfloat16)
    assert "fp8" not in plain.origins["transformer"]
    fp8 = model_sizes(locate_sources(root, weights={"transformer": copy}, download=False), torch.bfloat16)
    linears = sum(t.numel() for n, t in load_file(root / WEIGHTS).items() if t.ndim == 2 and n.endswith(".weight"))
    assert fp8.transformer_bytes == plain.transformer_bytes - linears and linears > plain.transformer_bytes / 4
    assert "fp8 linear weights kept in 8 bits" in fp8.origins["transformer"]


def _loaded(tensors: dict, path: Path, config_from: Path) -> nn.Module:
    """`tensors` saved as `path` (with `config_from`'s config beside it), loaded in float32."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path)
    (path.parent / "config.json").write_text((config_from.parent / "config.json").read_text())
    return aligned(load_transformer(path, dtype=torch.float32))


def test_the_non_fp8_tensors_take_the_compute_dtype_and_the_scales_stay_float32(copies):
    # Both sides of the comparisons above load through the same loader: a dtype left unapplied would go unseen.
    model = load_transformer(copies["scaled_rows"][0], dtype=torch.bfloat16)
    dtypes = {name: t.dtype for name, t in model.state_dict().items()}
    assert {d for n, d in dtypes.items() if n.endswith(".fp8_weight")} == {torch.float8_e4m3fn}
    assert {d for n, d in dtypes.items() if n.endswith(".scale")} == {torch.float32}
    assert {d for n, d in dtypes.items() if not n.endswith((".fp8_weight", ".scale"))} == {torch.bfloat16}
    layers = float8_layers(model)
    assert "scale=per row" in repr(layers["proj_out"])
    scaled = float8_layers(load_transformer(copies["scaled"][0]))["proj_out"]
    assert "scale=per tensor" in repr(scaled) and "fp8=float8_e4m3fn" in repr(scaled)


def test_fp8_tensors_of_other_layers_load_widened_times_their_scales(copies, tmp_path):
    # A copy that also casts the patch embedding's conv (e5m2, scaled per output channel) and a norm (e4m3, plain):
    # they are no linear weights, so they load widened, times their scale.
    copy, widened = copies["scaled"]
    tensors, values = load_file(copy), load_file(widened)
    conv, norm = "x_embedder.proj.weight", "transformer_blocks.0.attn.norm_q.weight"
    scale = values[conv].abs().amax(dim=(1, 2, 3, 4)) / 57344
    tensors[conv] = (values[conv] / scale.reshape(-1, 1, 1, 1, 1)).to(torch.float8_e5m2)
    tensors["x_embedder.proj.scale_weight"] = scale
    values[conv] = tensors[conv].float() * scale.reshape(-1, 1, 1, 1, 1)
    tensors[norm] = values[norm].to(torch.float8_e4m3fn)
    values[norm] = tensors[norm].float()
    ours = _loaded(tensors, tmp_path / "copy.safetensors", copy)
    expected = _loaded(values, tmp_path / "values" / "v.safetensors", copy)
    assert ours.x_embedder.proj.weight.dtype == torch.float32 and not float8_layers(ours.x_embedder)
    assert torch.equal(ours.x_embedder.proj.weight, expected.x_embedder.proj.weight)
    x = inputs(image=3)
    assert torch.equal(forward(ours, x), forward(expected, x))


def test_a_scale_loads_in_any_shape_of_one_per_tensor_or_per_row_and_in_bf16(copies, tmp_path):
    # One per tensor as [] (the fixture), [1] or [1, 1]; one per row as [out] (the fixture) or [out, 1]; a bf16
    # scale is the same values in float32.
    name = "transformer_blocks.0.attn.to_q"
    (copy, widened), (rows_copy, rows_widened) = copies["scaled"], copies["scaled_rows"]
    cases = []
    for shape in [(1,), (1, 1)]:
        tensors = load_file(copy)
        tensors[f"{name}.scale_weight"] = tensors[f"{name}.scale_weight"].reshape(shape)
        cases.append((tensors, load_file(widened)))
    tensors = load_file(rows_copy)
    tensors[f"{name}.weight_scale"] = tensors[f"{name}.weight_scale"].reshape(-1, 1)
    cases.append((tensors, load_file(rows_widened)))
    tensors, values = load_file(rows_copy), load_file(rows_widened)
    tensors[f"{name}.weight_scale"] = tensors[f"{name}.weight_scale"].bfloat16()
    values[f"{name}.weight"] = tensors[f"{name}.weight"].float() * tensors[f"{name}.weight_scale"].float()[:, None]
    cases.append((tensors, values))
    x = inputs(image=3)
    for i, (tensors, values) in enumerate(cases):
        ours = _loaded(tensors, tmp_path / f"{i}" / "copy.safetensors", copy)
        expected = _loaded(values, tmp_path / f"{i}" / "values.safetensors", copy)
        assert ours.get_submodule(name).scale.dtype == torch.float32
        assert torch.equal(ours.get_submodule(name).dequantized_weight(), expected.get_submodule(name).weight)
        assert torch.equal(forward(ours, x), forward(expected, x)), i


def test_the_meta_model_of_an_e5m2_copy_has_e5m2_placeholders_on_the_meta_device(copies):
    layers = float8_layers(meta_transformer(copies["e5m2"][0]))
    assert layers and all(layer.fp8_weight.is_meta for layer in layers.values())
    assert {layer.fp8_weight.dtype for layer in layers.values()} == {torch.float8_e5m2}


def test_a_scaled_copy_in_a_shared_cross_attention_layout_reads_the_scales_of_the_renamed_layers(tmp_path):
    # The "original" layout names the cross-attention's query `cross_attn_query_proj`: its scale is found under the
    # name the layer takes in the model.
    reference = make_reference()
    tie_cross_attention_to_block(reference)
    blocks = [
        f"single_transformer_blocks.{i}" for i, b in enumerate(reference.single_transformer_blocks) if b.cross_attn
    ]
    query_norm = {b: (1 + 0.1 * torch.randn(64), 0.1 * torch.randn(64)) for b in blocks}
    root = save_shared_layout(reference, tmp_path / "shared", "original", query_norm)
    copy, widened = fp8_copy(root / WEIGHTS, tmp_path, "scaled_rows")
    (tmp_path / "config.json").write_text((root / "transformer/config.json").read_text())
    ours = load_transformer(copy, dtype=torch.float32)
    assert ours.config.cross_attention_layout == "original"
    query = ours.get_submodule(f"{blocks[0]}.cross_attn.query_proj")
    assert isinstance(query, Float8Linear) and query.scale is not None
    x = inputs(image=3)
    assert torch.equal(forward(ours, x), forward(aligned(load_transformer(widened, dtype=torch.float32)), x))


def test_quantizing_a_scaled_copy_comfyui_saved_reads_it_without_its_prefix(copies, tmp_path):
    # ComfyUI's own save names every tensor, its `scaled_fp8` marker too, `model.diffusion_model.<name>`.
    copy, _ = copies["scaled"]
    prefixed = tmp_path / "prefixed.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in load_file(copy).items()}, prefixed)
    for name, source in [("copy", copy), ("prefixed", prefixed)]:
        quantize_checkpoint(open_source(source), tmp_path / f"{name}.gguf", get_recipe("Q8_0"), progress=False)
    ours, expected = read_gguf(tmp_path / "prefixed.gguf").tensors, read_gguf(tmp_path / "copy.gguf").tensors
    assert ours.keys() == expected.keys()
    assert all(torch.equal(ours[name].data, expected[name].data) for name in expected)


def test_the_transformer_note_says_a_scaled_copy_and_a_16_bit_file_gets_none(copies):
    assert float8_notes("transformer", copies["e5m2"][1]) == []  # the float32 values: no fp8 in it
    (note,) = float8_notes("transformer", copies["e5m2"][0])
    assert "holds F8_E5M2 weights: its linear weights stay in 8 bits" in note
    assert "holds scaled F8_E4M3 weights" in float8_notes("transformer", copies["scaled_rows"][0])[0]
