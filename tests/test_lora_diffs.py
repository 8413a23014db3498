"""ComfyUI's full differences (`.diff` for a weight, `.diff_b` for a bias, which its "extract LoRA" writes for norms
and biases): applied as ComfyUI applies them, `tensor + strength · diff`, beside the low-rank pairs of the same file;
refused, before any weight is read, on a tensor the transformer holds quantized."""

from __future__ import annotations

import copy

import gguf
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from safetensors.torch import save_file
from speed_helpers import tiny_transformer

from motif_lite.weights.lora import diff_targets, linear_shapes, read_loras
from motif_lite.weights.lora_apply import apply_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.modules import replace_module
from motif_lite.weights.quant_linear import QuantizedLinear

LINEAR = "transformer_blocks.0.attn.to_q"


def norm_weight(model) -> str:
    return next(n for n, p in model.named_parameters() if "norm" in n and n.endswith(".weight") and p.ndim == 1)


def comfy_file(path, model, strength_seed: int = 0):
    """A ComfyUI-style file: a low-rank pair on LINEAR, a full difference of a norm's weight and of LINEAR's bias."""
    g = torch.Generator().manual_seed(strength_seed)
    layer = model.get_submodule(LINEAR)
    norm = norm_weight(model)
    tensors = {
        f"diffusion_model.{LINEAR}.lora_down.weight": torch.randn(2, layer.in_features, generator=g),
        f"diffusion_model.{LINEAR}.lora_up.weight": torch.randn(layer.out_features, 2, generator=g),
        f"diffusion_model.{norm.removesuffix('.weight')}.diff": torch.randn(
            model.get_parameter(norm).shape, generator=g
        ),
        f"diffusion_model.{LINEAR}.diff_b": torch.randn(layer.out_features, generator=g),
    }
    save_file(tensors, path)
    return tensors, norm


def test_full_differences_add_to_the_tensors_as_comfyui_adds_them(tmp_path):
    model = tiny_transformer()
    original = copy.deepcopy(model)
    tensors, norm = comfy_file(tmp_path / "extracted.safetensors", model)
    (read,) = read_loras([LoRASpec(tmp_path / "extracted.safetensors", 0.7)], linear_shapes(model), diff_targets(model))
    apply_loras(model, [read])
    down = tensors[f"diffusion_model.{LINEAR}.lora_down.weight"]
    up = tensors[f"diffusion_model.{LINEAR}.lora_up.weight"]
    diff = tensors[f"diffusion_model.{norm.removesuffix('.weight')}.diff"]
    diff_b = tensors[f"diffusion_model.{LINEAR}.diff_b"]
    expected = original.state_dict()  # merged by hand
    expected[norm] = expected[norm] + 0.7 * diff
    expected[f"{LINEAR}.bias"] = expected[f"{LINEAR}.bias"] + 0.7 * diff_b
    expected[f"{LINEAR}.weight"] = expected[f"{LINEAR}.weight"] + 0.7 * (up @ down)  # no alpha: the strength alone
    merged = model.state_dict()
    assert merged.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(merged[name], value, msg=name)
    assert not torch.equal(merged[norm], original.state_dict()[norm])


def test_a_full_difference_of_a_quantized_weight_is_refused_and_of_its_bias_applied(tmp_path):
    model = tiny_transformer()
    layer = model.get_submodule(LINEAR)
    packed = QuantizedLinear(layer.in_features, layer.out_features, Q.Q8_0, bias=True)
    packed.packed.copy_(torch.from_numpy(gguf.quants.quantize(layer.weight.numpy(), Q.Q8_0)))
    packed.bias.data.copy_(layer.bias)
    replace_module(model, LINEAR, packed)
    bias = torch.randn(layer.out_features)
    path = tmp_path / "bias.safetensors"
    save_file({f"diffusion_model.{LINEAR}.diff_b": bias}, path)
    (read,) = read_loras([LoRASpec(path)], linear_shapes(model), diff_targets(model))
    apply_loras(model, [read])
    torch.testing.assert_close(model.get_submodule(LINEAR).bias, layer.bias + bias)
    path = tmp_path / "weight.safetensors"
    save_file({f"diffusion_model.{LINEAR}.diff": torch.randn(layer.out_features, layer.in_features)}, path)
    with pytest.raises(
        LoRAError, match=r"changes transformer_blocks\.0\.attn\.to_q\.weight, which this run holds quantized"
    ):
        read_loras([LoRASpec(path)], linear_shapes(model), diff_targets(model))
    (unchecked,) = read_loras([LoRASpec(path)], linear_shapes(model))  # read without the tensors: refused when applied
    with pytest.raises(LoRAError, match="holds quantized"):
        apply_loras(model, [unchecked])


def test_a_full_difference_of_another_shape_is_refused(tmp_path):
    model = tiny_transformer()
    path = tmp_path / "other.safetensors"
    save_file({f"diffusion_model.{LINEAR}.diff_b": torch.randn(7)}, path)
    with pytest.raises(LoRAError, match=r"is shaped \[7\], but transformer_blocks\.0\.attn\.to_q\.bias is"):
        read_loras([LoRASpec(path)], linear_shapes(model), diff_targets(model))


def test_a_run_on_quantized_weights_refuses_a_weights_difference_before_loading(tmp_path):
    # `run` checks its --lora files against a float model of the config: the linears a GGUF or --quantize packs
    # must count as packed there, or the refusal waits for the load.
    from motif_lite.preflight import loras_for_config

    config = tiny_transformer().config
    path = tmp_path / "weight.safetensors"
    save_file({f"diffusion_model.{LINEAR}.diff": torch.randn(64, 64)}, path)
    loras_for_config([LoRASpec(path)], config)  # float weights: applied
    with pytest.raises(LoRAError, match="holds quantized"):
        loras_for_config([LoRASpec(path)], config, packed_weights={f"{LINEAR}.weight"})
