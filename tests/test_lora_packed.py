"""LoRA, LoHa and LoKr files on packed linears (GGUF blocks, fp8): kept beside the packed weight, never made into an
[out, in] matrix, and computing exactly what the float path's merged weight computes (LyCORIS' definition, which
tests/test_lora_lycoris.py checks the merge against); the memory plan counts the tensors kept; a large scale in a
16-bit compute dtype stays a number."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from speed_helpers import tiny_transformer
from test_lora_lycoris import FF, KEY, LOKR, _write

from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.lora import LoRASpec, diff_targets, lora_targets, read_loras
from motif_lite.weights.lora_apply import apply_loras, side_adapter_bytes

g = torch.Generator().manual_seed(1)
LOHA = {
    "hada_w1_a": torch.randn(256, 2, generator=g),
    "hada_w1_b": torch.randn(2, 64, generator=g),
    "hada_w2_a": torch.randn(256, 3, generator=g),
    "hada_w2_b": torch.randn(3, 64, generator=g),
}
FILES = {"loha": LOHA, **{f"lokr-{name}": parts for name, (parts, *_) in LOKR.items()}}
STRENGTH = -0.6


def float8_transformer() -> torch.nn.Module:
    """The tiny transformer with FF in e4m3 bytes and a float32 scale per row, as ComfyUI's scaled fp8 files hold it."""
    model = tiny_transformer()
    linear = model.get_submodule(FF)
    scale = (linear.weight.abs().amax(dim=1, keepdim=True) / 448).clamp(min=1e-12)  # [out, 1]
    layer = Float8Linear(linear.in_features, linear.out_features, scale_shape=tuple(scale.shape))
    layer.fp8_weight = (linear.weight / scale).to(torch.float8_e4m3fn)
    layer.scale, layer.bias = scale, linear.bias
    block, _, name = FF.rpartition(".")
    setattr(model.get_submodule(block), name, layer)
    return model


PACKED = {"gguf-q8_0": lambda: tiny_transformer(quantized=True), "fp8": float8_transformer}


def float_twin(packed_layer: torch.nn.Module) -> torch.nn.Module:
    """The tiny transformer whose FF holds the packed layer's weight as float32: the float path's oracle."""
    model = tiny_transformer()
    linear = model.get_submodule(FF)
    linear.weight = torch.nn.Parameter(packed_layer.dequantized_weight(torch.float32), requires_grad=False)
    linear.bias = torch.nn.Parameter(packed_layer.bias.detach().float(), requires_grad=False)
    return model


def applied(model: torch.nn.Module, paths: list, dtype: torch.dtype = torch.float32):
    files = read_loras([LoRASpec(path, STRENGTH) for path in paths], lora_targets(model), diff_targets(model))
    return apply_loras(model, files, dtype), files


@pytest.mark.parametrize("packing", list(PACKED))
@pytest.mark.parametrize("file", list(FILES))
def test_a_lycoris_file_on_a_packed_linear_computes_the_float_paths_merged_weight(tmp_path, packing, file):
    path = _write(tmp_path / f"{file}.safetensors", FILES[file])
    packed = PACKED[packing]()
    plain = packed.get_submodule(FF)
    twin = float_twin(plain)
    summary, _ = applied(packed, [path])
    applied(twin, [path])
    assert summary.wrapped == 1 and summary.merged == 0
    merged = twin.get_submodule(FF).weight
    assert not torch.equal(merged, plain.dequantized_weight(torch.float32))  # the file changes the layer
    layer = packed.get_submodule(FF)
    x = torch.randn(2, 5, 64, generator=g)
    expected = torch.nn.functional.linear(x, merged, twin.get_submodule(FF).bias)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-4)
    rows = slice(40, 170)  # what the fused projections ask of a layer: some of its output rows
    torch.testing.assert_close(layer.forward_rows(x, rows), expected[..., rows], rtol=1e-5, atol=1e-4)
    # Nothing the size of the layer's weight is kept beside it.
    own = {id(b) for b in plain.buffers()}
    kept = [b for b in layer.buffers() if id(b) not in own]
    assert kept and max(b.numel() for b in kept) < merged.numel() // 4


def test_a_lora_a_loha_and_a_lokr_on_one_packed_linear_add_up(tmp_path):
    plain_lora = {
        "lora_down.weight": torch.randn(4, 64, generator=g),
        "lora_up.weight": torch.randn(256, 4, generator=g),
    }
    paths = [_write(tmp_path / "lora.safetensors", plain_lora), _write(tmp_path / "loha.safetensors", LOHA),
             _write(tmp_path / "lokr.safetensors", LOKR["both-products"][0])]  # fmt: skip
    packed = tiny_transformer(quantized=True)
    twin = float_twin(packed.get_submodule(FF))
    summary, _ = applied(packed, paths)
    applied(twin, paths)
    assert summary.wrapped == 1 and summary.describe().endswith("0 layers merged, 1 unmerged (packed)")
    x = torch.randn(3, 64, generator=g)
    torch.testing.assert_close(packed.get_submodule(FF)(x), twin.get_submodule(FF)(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_memory_count_of_adapters_beside_a_packed_linear_is_the_tensors_kept(tmp_path, dtype):
    plain_lora = {
        "lora_down.weight": torch.randn(4, 64, generator=g),
        "lora_up.weight": torch.randn(256, 4, generator=g),
    }
    paths = [_write(tmp_path / "lora.safetensors", plain_lora), _write(tmp_path / "loha.safetensors", LOHA),
             _write(tmp_path / "lokr.safetensors", LOKR["w1-whole-w2-product"][0]),
             _write(tmp_path / "lokr2.safetensors", LOKR["both-whole"][0])]  # fmt: skip
    packed = tiny_transformer(quantized=True)
    own = {id(b) for b in packed.get_submodule(FF).buffers()}
    _, files = applied(packed, paths, dtype)
    kept = sorted(b.nbytes for b in packed.get_submodule(FF).buffers() if id(b) not in own)
    assert sorted(side_adapter_bytes(files, dtype)[FF]) == kept
    assert len(kept) == 7  # down, up and scale of the LoRA and LoHa together; w1 and w2 of each LoKr


def test_a_large_lora_scale_on_a_packed_linear_in_float16_stays_a_number(tmp_path):
    # up [256, 4] up to ~400 at scale 1000 (alpha 4000, rank 4): folded into a float16 up, 4e5 is past float16's
    # 65504 (inf), though float32's bound, which the read check tests, is far off, and the update itself, with a
    # small down, is a few thousand.
    parts = {
        "lora_down.weight": 1e-3 * torch.randn(4, 64, generator=g),
        "lora_up.weight": 100 * torch.randn(256, 4, generator=g),
    }
    tensors = {f"{KEY}.{name}": t for name, t in parts.items()} | {f"{KEY}.alpha": torch.tensor(4000.0)}
    save_file(tensors, tmp_path / "strong.safetensors")
    x = torch.randn(3, 64, generator=g)
    outputs = {}
    for dtype in (torch.float16, torch.float32):
        model = tiny_transformer(quantized=True)
        read = read_loras([LoRASpec(tmp_path / "strong.safetensors")], lora_targets(model))
        apply_loras(model, read, dtype)
        outputs[dtype] = model.get_submodule(FF)(x.to(dtype)).float()
    reference = outputs[torch.float32]
    assert reference.abs().max() < 6e4  # the update fits float16
    assert torch.isfinite(outputs[torch.float16]).all()
    torch.testing.assert_close(outputs[torch.float16], reference, rtol=1e-2, atol=reference.abs().max() * 2e-3)
