"""A GGUF-loaded tiny transformer equals the diffusers reference holding the dequantized weights (fp32)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf_helpers import random_packed, write_test_gguf
from tiny_config import TINY, forward
from tiny_transformer import assert_close_to_reference, inputs, make_reference, reference_forward

from motif_lite import load_transformer
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError
from motif_lite.weights.gguf_file import PackedTensor, read_gguf
from motif_lite.weights.gguf_loader import CONFIG_KEY, choose_gguf_config, load_gguf_transformer
from motif_lite.weights.loader import build_model
from motif_lite.weights.quant_linear import QuantizedLinear, quantized_state_dict, replace_linears

Q = GGMLQuantizationType
K_QUANTS = (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_XS)
# Weights cannot tell rope_axes_dim: without a config.json the loader uses the official split scaled to the
# head dim (config.default_rope_axes), so the reference for a GGUF alone is built with that split.
INFERRED = dict(rope_axes_dim=(4, 14, 14))
# A config whose every linear has rows of whole 256-value super-blocks, for the K-quants.
WIDE = dict(attention_head_dim=128, rope_axes_dim=(16, 56, 56), text_embed_dim=256, image_embed_dim=256)
# Std of the random fp16 block scales: keeps K-quant weights around |w| < 0.5 like real ones.
K_SCALE = {Q.Q2_K: 3e-3, Q.Q3_K: 1e-3, Q.Q4_K: 2e-4, Q.Q5_K: 1e-4, Q.Q6_K: 1e-4, Q.IQ4_XS: 1e-4}


def write_model_gguf(state: dict[str, torch.Tensor], path: Path, qtype: GGMLQuantizationType) -> Path:
    """Quantize every 2-D weight whose rows are whole blocks (as real converters do); the rest stays F32.

    gguf-py quantizes the real values for block-32 types; K-quants get random blocks with small scales.
    """
    rng = np.random.default_rng(0)
    spec = {}
    for name, tensor in state.items():
        values = tensor.float().numpy()
        shape = tuple(values.shape)
        if values.ndim != 2 or shape[1] % GGML_QUANT_SIZES[qtype][0]:
            spec[name] = (values, Q.F32, shape)
        elif qtype in K_QUANTS:
            spec[name] = (random_packed(qtype, shape, rng, scale=K_SCALE[qtype]), qtype, shape)
        else:
            spec[name] = (values, qtype, shape)
    return write_test_gguf(path, spec)


def _check_parity(path: Path, config: dict, x: dict) -> None:
    model = load_gguf_transformer(path, dtype=torch.float32)
    reference = make_reference(**config)
    dequantized = {name: t.dequantize() for name, t in read_gguf(path).tensors.items()}
    reference.load_state_dict(dequantized, strict=True)
    assert_close_to_reference(forward(model, x), reference_forward(reference, x))


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q5_1], ids=lambda t: t.name)
def test_gguf_model_matches_reference(tmp_path: Path, qtype: GGMLQuantizationType) -> None:
    path = write_model_gguf(make_reference(**INFERRED).state_dict(), tmp_path / "tiny.gguf", qtype)
    _check_parity(path, INFERRED, inputs(image=3))


def test_config_json_next_to_the_file_is_used(tmp_path: Path) -> None:
    reference = make_reference()  # rope_axes_dim (8, 12, 12): only a config.json can say so
    path = write_model_gguf(reference.state_dict(), tmp_path / "tiny.gguf", Q.Q8_0)
    (tmp_path / "config.json").write_text(json.dumps(dict(reference.config)))
    _check_parity(path, {}, inputs(image=3))


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q6_K], ids=lambda t: t.name)
def test_gguf_k_quant_model_matches_reference(tmp_path: Path, qtype: GGMLQuantizationType) -> None:
    path = write_model_gguf(make_reference(**WIDE).state_dict(), tmp_path / "wide.gguf", qtype)
    _check_parity(path, WIDE, inputs(image=3, text_dim=256, image_dim=256, height=4, width=4))


def test_linears_stay_packed_and_resident_bytes_equal_file(tmp_path: Path) -> None:
    path = write_model_gguf(make_reference(**INFERRED).state_dict(), tmp_path / "tiny.gguf", Q.Q4_0)
    model = load_transformer(path, dtype=torch.float32)  # the lead's entry point dispatches on ".gguf"
    ckpt = read_gguf(path)
    quantized = {name: t for name, t in ckpt.tensors.items() if t.is_quantized}
    layers = {name: m for name, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    assert {f"{name}.weight" for name in layers} == set(quantized)
    assert sum(m.packed.nbytes for m in layers.values()) == sum(t.nbytes for t in quantized.values())
    assert all(m.qtype == Q.Q4_0 and m.packed.dtype == torch.uint8 for m in layers.values())
    assert not any(t.is_meta for t in model.state_dict().values())
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("qtype", "config"), [(Q.Q8_0, INFERRED), (Q.Q4_K, WIDE)], ids=["Q8_0", "Q4_K"])
def test_bf16_model_equals_the_reference_in_bf16(tmp_path: Path, qtype: GGMLQuantizationType, config: dict) -> None:
    """Packed weights stay packed, every float tensor becomes bf16, and the forward gives what diffusers in bf16
    holding the dequantized weights gives, bit for bit (CPU)."""
    path = write_model_gguf(make_reference(**config).state_dict(), tmp_path / "tiny.gguf", qtype)
    model = load_gguf_transformer(path, dtype=torch.bfloat16)
    floats = {t.dtype for t in model.state_dict().values() if t.dtype != torch.uint8}
    assert floats == {torch.bfloat16}
    reference = make_reference(**config)
    reference.load_state_dict({name: t.dequantize() for name, t in read_gguf(path).tensors.items()}, strict=True)
    dims = dict(text_dim=reference.config.text_embed_dim, image_dim=reference.config.image_embed_dim)
    x = inputs(image=3, height=4, width=4, **dims)
    expected = reference_forward(reference, x)
    x = {k: v.bfloat16() if v is not None and v.is_floating_point() and k != "timestep" else v for k, v in x.items()}
    out = forward(model, x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, reference_forward(reference.to(torch.bfloat16), x))
    assert 0 < ((out.float() - expected).norm() / expected.norm()).item() < 0.02  # bf16 rounding (~0.007)


def test_missing_tensor_is_listed(tmp_path: Path) -> None:
    state = make_reference().state_dict()
    del state["transformer_blocks.0.attn.to_q.weight"]
    path = write_model_gguf(state, tmp_path / "tiny.gguf", Q.Q8_0)
    with pytest.raises(CheckpointError, match=r"missing.*\n.*transformer_blocks\.0\.attn\.to_q\.weight"):
        load_gguf_transformer(path, dtype=torch.float32)


def test_foreign_gguf_is_rejected(tmp_path: Path) -> None:
    spec = {"tok.weight": (np.ones((2, 32), np.float32), Q.F32, (2, 32))}
    path = write_test_gguf(tmp_path / "llm.gguf", spec, arch="llama")
    with pytest.raises(CheckpointError, match="'llama'"):
        load_transformer(path)


def test_quantize_tool_output_loads_with_its_embedded_config(tmp_path: Path) -> None:
    # rope_axes_dim (32, 48, 48) is not what the weights imply: only the embedded config.json can say so.
    from motif_lite.quantize.cli import main as quantize_main

    config = {**WIDE, "rope_axes_dim": (32, 48, 48), "mlp_ratio": 1.0}
    reference = make_reference(**config)
    reference.save_pretrained(tmp_path / "transformer")
    path = tmp_path / "tiny-Q4_0.gguf"  # Q4_0 keeps the tool fast (its K-quant search takes a minute here)
    assert quantize_main([str(tmp_path), "-o", str(path), "--type", "Q4_0", "--quiet"]) == 0
    assert "motif_video.config_json" in read_gguf(path).metadata
    _check_parity(path, config, inputs(image=3, text_dim=256, image_dim=256, height=4, width=4))


def test_the_checkpoint_config_wins_over_the_embedded_one(tmp_path: Path) -> None:
    # load_pipeline passes the checkpoint's transformer/config.json: it is used, and an embedded config that
    # disagrees (here in rope_theta, which the weights cannot show) is reported, not used.
    values = {**TINY, **INFERRED}
    embedded = json.dumps({**values, "rope_theta": 256.0})
    spec = {"x.weight": (np.ones((2, 32), np.float32), Q.F32, (2, 32))}
    ckpt = read_gguf(write_test_gguf(tmp_path / "t.gguf", spec, extra_metadata={CONFIG_KEY: embedded}))
    checkpoint = TransformerConfig.from_dict(values)
    choice = choose_gguf_config(ckpt, {}, "diffusers", (checkpoint, "transformer/config.json"))
    assert choice.config == checkpoint and choice.origin == "transformer/config.json" and not choice.inferred
    assert len(choice.notes) == 1 and "rope_theta" in choice.notes[0]


def test_another_models_config_json_beside_the_file_is_unsaid_below_the_chosen_config(tmp_path: Path) -> None:
    # A VAE's config.json beside the GGUF (a shared models folder) was read before anything else, and its missing
    # patch_size failed `run` and `check`, although the checkpoint's config and the file's own rank above it. Then
    # every run noted it, and `check` warned, that it "must be the transformer's": the layout is valid.
    reference = make_reference(**INFERRED)
    config = json.dumps(dict(reference.config))
    spec = {name: (t.numpy(), Q.F32, tuple(t.shape)) for name, t in reference.state_dict().items()}
    path = write_test_gguf(tmp_path / "t.gguf", spec, extra_metadata={CONFIG_KEY: config})
    vae = {"_class_name": "AutoencoderKLWan", "patch_size": None, "z_dim": 16}  # as the VAE's config.json has them
    (tmp_path / "config.json").write_text(json.dumps(vae))
    vae_note = f"{tmp_path / 'config.json'} describes AutoencoderKLWan, not the Motif-Video transformer"
    checkpoint = TransformerConfig.from_dict(dict(reference.config))
    choice = choose_gguf_config(read_gguf(path), {}, "diffusers", (checkpoint, "transformer/config.json"))
    assert choice.config == checkpoint and choice.origin == "transformer/config.json"
    assert choice.notes == ()
    with warnings.catch_warnings():  # the embedded config ranks above it too
        warnings.simplefilter("error")
        load_gguf_transformer(path, dtype=torch.float32)
    # Nothing above it: refused as what it is, not by the first transformer value it lacks.
    plain = write_test_gguf(tmp_path / "plain.gguf", spec)
    with pytest.raises(CheckpointError, match=f"^{re.escape(vae_note)}"):
        load_gguf_transformer(plain)
    # A broken config.json below the chosen one: a note too.
    (tmp_path / "config.json").write_text("{oops")
    choice = choose_gguf_config(read_gguf(path), {}, "diffusers", (checkpoint, "transformer/config.json"))
    assert len(choice.notes) == 1 and "not valid JSON" in choice.notes[0] and "not used" in choice.notes[0]


def test_bad_embedded_config_is_a_checkpoint_error(tmp_path: Path) -> None:
    state = make_reference(**INFERRED).state_dict()
    spec = {name: (t.numpy(), Q.F32, tuple(t.shape)) for name, t in state.items()}
    path = write_test_gguf(tmp_path / "bad.gguf", spec, extra_metadata={"motif_video.config_json": "{oops"})
    with pytest.raises(CheckpointError, match="config_json is not valid JSON"):
        load_gguf_transformer(path)


def test_every_linear_of_the_official_architecture_can_be_packed() -> None:
    # Full 2B architecture on meta (no memory): every nn.Linear becomes a QuantizedLinear and a strict load of
    # the renamed keys fills the model. 1152-wide rows (image_embedder) are not whole K-blocks: Q8_0 there.
    model = build_model(TransformerConfig())
    linears = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    tensors = {}
    for name, t in model.state_dict().items():
        qtype = Q.F32
        if name.removesuffix(".weight") in linears and name.endswith(".weight"):
            qtype = Q.Q4_K if t.shape[1] % 256 == 0 else Q.Q8_0
        block, size = GGML_QUANT_SIZES[qtype]
        data_shape = (*t.shape[:-1], t.shape[-1] // block * size) if qtype != Q.F32 else t.shape
        data = torch.empty(data_shape, dtype=torch.uint8 if qtype != Q.F32 else torch.float32, device="meta")
        tensors[name] = PackedTensor(data=data, qtype=qtype, shape=tuple(t.shape), name=name)
    replace_linears(model, tensors)
    packed = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(packed) == len(linears) == 384
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    model.load_state_dict(quantized_state_dict(model, tensors), strict=True, assign=True)


def test_check_compares_a_file_of_another_cross_attention_layout_with_that_layouts_model(tmp_path: Path) -> None:
    # The checkpoint's config.json holds no layout: the file's names tell it, and `check` builds the model of that
    # layout (the diffusers layout's model would call every tensor of the file's cross-attention a mismatch).
    from motif_lite.weights.gguf_loader import check_gguf_config
    from motif_lite.weights.keymap import to_checkpoint_name

    config = TransformerConfig.from_dict({**TINY, **INFERRED})
    model = build_model(config.replace(cross_attention_layout="original"))
    spec = {
        to_checkpoint_name(name, "original"): (np.zeros(tuple(t.shape), np.float32), Q.F32, tuple(t.shape))
        for name, t in model.state_dict().items()
    }
    ckpt = read_gguf(write_test_gguf(tmp_path / "original.gguf", spec))
    choice, mismatch = check_gguf_config(ckpt, (config, "transformer/config.json"))
    assert choice.config.cross_attention_layout == "original" and not mismatch, mismatch.lines()
