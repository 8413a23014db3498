"""A LoRA on the patch embedder's Conv3d (x_embedder.proj), as PEFT trains one (lora_A a Conv3d with the layer's
kernel, lora_B a 1x1x1 Conv3d) and as kohya/ComfyUI files carry it (lora_down / lora_up): merged into the float
weight, on safetensors and on GGUF weights, giving the transformer output of diffusers' model carrying the same
adapter through PEFT."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import save_file
from tiny_config import forward
from tiny_transformer import assert_close_to_reference, inputs, make_reference, reference_forward, save_official

from motif_lite import load_transformer
from motif_lite.config import TransformerConfig
from motif_lite.preflight import loras_for_config
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.lora import lora_targets, read_loras
from motif_lite.weights.lora_apply import apply_loras, side_adapter_bytes
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec

CONV = "x_embedder.proj"
RANK, ALPHA = 3, 6.0


def _set_strength(model, strength: float) -> None:
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.set_scale("default", strength)  # scaling = strength * alpha / r, PEFT's own rule


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A checkpoint of a random diffusers transformer, and that transformer carrying a random PEFT LoRA on the Conv3d
    and on a linear (saved as diffusers saves it, and renamed to kohya's keys)."""
    root = tmp_path_factory.mktemp("ckpt")
    reference = make_reference()
    save_official(reference, root)
    reference.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=[CONV, "to_q"], init_lora_weights=False))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    folder = tmp_path_factory.mktemp("loras")
    reference.save_lora_adapter(folder / "peft")
    (peft_file,) = (folder / "peft").glob("*.safetensors")
    with safe_open(str(peft_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    kohya = {}
    for key, value in tensors.items():
        module, part = key.rsplit(".lora_", 1)
        module = "lora_unet_" + module.replace(".", "_")
        kohya[f"{module}.lora_{'down' if part.startswith('A') else 'up'}.weight"] = value
        kohya[f"{module}.alpha"] = torch.tensor(ALPHA)
    save_file(kohya, folder / "kohya.safetensors")
    return root, reference, {"peft": peft_file, "kohya": folder / "kohya.safetensors"}, tensors


def _ours(source: Path, lora: Path, strength: float):
    model = load_transformer(source, dtype=torch.float32)
    (read,) = read_loras([LoRASpec(lora, strength)], lora_targets(model))
    applied = apply_loras(model, [read])
    return model, read, applied


@pytest.mark.parametrize("strength", [1.0, -0.6])
@pytest.mark.parametrize("fmt", ["peft", "kohya"])
def test_a_conv_lora_gives_the_peft_transformers_output(setup, fmt, strength):
    root, reference, files, _ = setup
    model, read, applied = _ours(root, files[fmt], strength)
    assert CONV in {u.module for u in read.updates} and applied.merged == len(read.updates) and not applied.wrapped
    x = inputs()
    _set_strength(reference, strength)
    expected = reference_forward(reference, x)
    assert_close_to_reference(forward(model, x), expected)
    # The Conv3d's part matters: without it (the linear's alone) the output is far from PEFT's.
    linear_only = load_transformer(root, dtype=torch.float32)
    apply_loras(linear_only, [dataclasses.replace(read, updates=[u for u in read.updates if u.module != CONV])])
    assert (forward(linear_only, x) - expected).abs().max() > 100 * 1e-5 * expected.std()


def test_a_wrongly_reshaped_conv_update_is_told_apart(setup):
    # The negative control: the same numbers merged with the kernel's axes in another order (in last, as a
    # channels-last layout would read them) miss PEFT's output by far more than the parity test's tolerance.
    root, reference, files, tensors = setup
    model = load_transformer(root, dtype=torch.float32)
    down, up = tensors[f"{CONV}.lora_A.weight"], tensors[f"{CONV}.lora_B.weight"]
    out, inp, *kernel = model.get_submodule(CONV).weight.shape
    wrong = (up.flatten(1) @ down.flatten(1)).reshape(out, *kernel, inp).permute(0, 4, 1, 2, 3)
    (read,) = read_loras([LoRASpec(files["peft"])], lora_targets(model))
    apply_loras(model, [dataclasses.replace(read, updates=[u for u in read.updates if u.module != CONV])])
    with torch.no_grad():
        model.get_submodule(CONV).weight += ALPHA / RANK * wrong
    x = inputs()
    _set_strength(reference, 1.0)
    with pytest.raises(AssertionError, match="max |diff|"):
        assert_close_to_reference(forward(model, x), reference_forward(reference, x))


def test_strength_zero_is_no_lora(setup):
    root, _, files, _ = setup
    model, _, _ = _ours(root, files["kohya"], 0.0)
    plain = load_transformer(root, dtype=torch.float32)
    x = inputs()
    assert torch.equal(forward(model, x), forward(plain, x))


def test_a_gguf_transformer_merges_the_conv_lora_into_its_float_conv(setup, tmp_path):
    # The quantizer writes the Conv3d as F32 (only 2-D weights are packed), so the update merges there as well;
    # the reference is the same PEFT adapter on the GGUF's dequantized weights.
    root, reference, files, _ = setup
    gguf = tmp_path / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(root / "transformer"), gguf, get_recipe("Q8_0"), progress=False)
    header = read_gguf(gguf)
    assert not header.tensors[f"{CONV}.weight"].is_quantized
    model, read, applied = _ours(gguf, files["peft"], 0.7)
    assert applied.merged == 1 and applied.wrapped == len(read.updates) - 1  # the Conv3d merged, to_q kept beside
    reference = copy.deepcopy(reference)
    own = set(reference.state_dict())
    dequantized = {  # PEFT holds an adapted layer's own weight and bias under base_layer
        name if name in own else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias"): t
        for name, t in ((name, t.dequantize()) for name, t in header.tensors.items())
    }
    missing, unexpected = reference.load_state_dict(dequantized, strict=False)
    assert not unexpected and all(".lora_" in name for name in missing)
    _set_strength(reference, 0.7)
    x = inputs()
    assert_close_to_reference(forward(model, x), reference_forward(reference, x))


def test_the_memory_plan_counts_no_adapter_bytes_for_the_merged_conv(setup):
    # Adapters are kept beside packed linears only; the Conv3d's update is merged, so it adds no bytes.
    root, _, files, _ = setup
    config = TransformerConfig.from_json(root / "transformer" / "config.json")
    (read,) = loras_for_config([LoRASpec(files["peft"])], config)
    assert CONV in {u.module for u in read.updates}  # read before any weight, by the run's check
    linears = [u for u in read.updates if u.module != CONV]
    assert side_adapter_bytes([read], torch.bfloat16) == {  # down and up in bf16, a float32 scale per rank
        u.module: (RANK * u.down.shape[1] * 2, u.up.shape[0] * RANK * 2, RANK * 4) for u in linears
    }


def test_a_conv_lora_of_another_kernel_is_refused_naming_the_shapes(tmp_path):
    model_targets = lora_targets(make_reference())
    out, inp, *kernel = model_targets[CONV]
    tensors = {
        f"diffusion_model.{CONV}.lora_down.weight": torch.randn(2, inp, 1, 3, 3),
        f"diffusion_model.{CONV}.lora_up.weight": torch.randn(out, 2, 1, 1, 1),
    }
    save_file(tensors, tmp_path / "conv.safetensors")
    ones = ", 1, 1, 1"
    expected = f"the layer is [{out}, {inp}, 1, 2, 2] (down must be [rank, {inp}, 1, 2, 2], up [{out}, rank{ones}])"
    with pytest.raises(LoRAError, match=re.escape(expected)):
        read_loras([LoRASpec(tmp_path / "conv.safetensors")], model_targets)


def test_a_conv_lora_whose_up_is_not_pointwise_is_refused_naming_the_shapes(tmp_path):
    # B of a conv LoRA is a 1x1x1 convolution: an up with the layer's kernel has the right rank and sizes otherwise.
    model_targets = lora_targets(make_reference())
    out, inp, *kernel = model_targets[CONV]
    tensors = {
        f"diffusion_model.{CONV}.lora_down.weight": torch.randn(2, inp, *kernel),
        f"diffusion_model.{CONV}.lora_up.weight": torch.randn(out, 2, *kernel),
    }
    save_file(tensors, tmp_path / "conv.safetensors")
    with pytest.raises(LoRAError, match=re.escape(f"do not fit: down [2, {inp}, 1, 2, 2], up [{out}, 2, 1, 2, 2]")):
        read_loras([LoRASpec(tmp_path / "conv.safetensors")], model_targets)
