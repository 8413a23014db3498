"""Our transformer, loaded from official-layout files, equals diffusers' MotifVideoTransformer3DModel: within 1e-5
in fp32, bit for bit in bf16."""

from __future__ import annotations

import copy

import pytest
import torch
from bf16_bounds import rel
from tiny_config import forward
from tiny_transformer import (
    assert_close_to_reference,
    inputs,
    make_reference,
    reference_forward,
    save_official,
    save_shared_layout,
    tie_cross_attention_to_block,
)

from motif_lite import load_transformer

CONFIGS = {
    "official-like": dict(),
    "cross-dual": dict(enable_text_cross_attention_dual=True, enable_text_cross_attention_single=False),
    "cross-both": dict(enable_text_cross_attention_dual=True),
    "no-cross-no-decoder": dict(enable_text_cross_attention_single=False, num_decoder_layers=0),
    "t2v-only-two-decoders": dict(image_embed_dim=None, num_decoder_layers=2),
}

CASES = {
    "unmasked": dict(masked=False, batch=1),
    "masked-batch2": dict(),
    "i2v-masked-batch2": dict(image=5),
    "odd-grid": dict(frames=2, height=10, width=6, batch=1),
    "odd-latent-size": dict(frames=3, height=7, width=9),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_parity_with_reference(tmp_path, config):
    ref = make_reference(**CONFIGS[config])
    ours = load_transformer(save_official(ref, tmp_path), dtype=torch.float32)
    for kwargs in CASES.values():
        if kwargs.get("image") and ref.config.image_embed_dim is None:
            continue
        x = inputs(**kwargs)
        assert_close_to_reference(forward(ours, x), reference_forward(ref, x))


def test_parity_detects_a_changed_weight(tmp_path):
    ref = make_reference()
    ours = load_transformer(save_official(ref, tmp_path), dtype=torch.float32)
    ours.single_transformer_blocks[0].cross_attn.to_q.weight.data[0, 0] += 0.5
    x = inputs()
    with pytest.raises(AssertionError):
        assert_close_to_reference(forward(ours, x), reference_forward(ref, x))


def test_trimmed_text_equals_padded_and_masked(tmp_path):
    ref = make_reference()
    ours = load_transformer(save_official(ref, tmp_path), dtype=torch.float32)
    x = inputs(batch=1, masked=True, seed=3)
    valid = int(x["text_mask"].sum())
    trimmed = dict(x, text_embeds=x["text_embeds"][:, :valid], text_mask=None)
    torch.testing.assert_close(forward(ours, trimmed), forward(ours, x), rtol=1e-5, atol=1e-5)


def _layernorm_query_hook(weight, bias):
    def hook(module, args, output):
        return torch.nn.functional.layer_norm(output, output.shape[-1:], weight, bias, eps=1e-6)

    return hook


@pytest.mark.parametrize("layout", ["original", "pr"])
@pytest.mark.parametrize("where", ["single", "dual"])
def test_shared_cross_attention_layouts(tmp_path, layout, where):
    """Reference: diffusers' separate cross-attention with its K/V/norms tied to the block's own (which is what
    the shared layouts reuse) and, for the original layout, a LayerNorm applied to the projected query."""
    flags = dict(enable_text_cross_attention_dual=where == "dual", enable_text_cross_attention_single=where == "single")
    ref = make_reference(**flags)
    tie_cross_attention_to_block(ref)
    query_norm = {}
    blocks = ref.transformer_blocks if where == "dual" else ref.single_transformer_blocks
    prefix = "transformer_blocks" if where == "dual" else "single_transformer_blocks"
    for i, block in enumerate(blocks):
        if block.cross_attn is None:
            continue
        weight, bias = 1 + 0.2 * torch.randn(64), 0.2 * torch.randn(64)
        query_norm[f"{prefix}.{i}"] = (weight, bias)
        if layout == "original":
            block.cross_attn.to_q.register_forward_hook(_layernorm_query_hook(weight, bias))
    ours = load_transformer(save_shared_layout(ref, tmp_path, layout, query_norm), dtype=torch.float32)
    assert ours.config.cross_attention_layout == layout
    for kwargs in (dict(), dict(image=5)):
        x = inputs(**kwargs)
        assert_close_to_reference(forward(ours, x), reference_forward(ref, x))


def to_bf16(x: dict) -> dict:
    """The model inputs in bf16 (the timestep stays float32, as the pipelines pass it)."""
    return {k: v.bfloat16() if v is not None and v.is_floating_point() and k != "timestep" else v for k, v in x.items()}


@pytest.mark.parametrize("config", ["official-like", "cross-dual", "t2v-only-two-decoders"])
def test_bfloat16_equals_the_reference_in_bfloat16(tmp_path, config):
    """The same bf16 weights and inputs give diffusers' bf16 output bit for bit (CPU), in every case; both are
    ~0.7 % from fp32. Negative control: dropping the text (which a 5 % tolerance let through) breaks it."""
    ref = make_reference(**CONFIGS[config])
    ours = load_transformer(save_official(ref, tmp_path), dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in ours.parameters())
    ref_bf16 = copy.deepcopy(ref).to(torch.bfloat16)
    for case in ("masked-batch2", "i2v-masked-batch2", "odd-latent-size"):
        kwargs = CASES[case]
        if kwargs.get("image") and ref.config.image_embed_dim is None:
            continue
        x = to_bf16(inputs(**kwargs))
        out = forward(ours, x)
        assert out.dtype == torch.bfloat16 and torch.equal(out, reference_forward(ref_bf16, x)), case
    x = inputs(image=5) if ref.config.image_embed_dim else inputs()
    out, expected = forward(ours, to_bf16(x)), reference_forward(ref, x)
    assert 0 < rel(out, expected) < 0.02  # bf16 rounding, measured 0.007
    dropped = forward(ours, to_bf16(dict(x, text_embeds=torch.zeros_like(x["text_embeds"]))))
    assert rel(dropped, expected) > 5 * rel(out, expected)


def test_the_last_decoder_block_computes_the_decoder_half_only(tmp_path):
    """After the last DDT decoder block only the decoder half is read, so there only its N tokens query the
    attention (the reference computes all 2N and drops half); the parity tests above show the output unchanged."""
    import dataclasses

    ref = make_reference(**CONFIGS["t2v-only-two-decoders"])
    ours = load_transformer(save_official(ref, tmp_path), dtype=torch.float32)
    calls = []

    def recorded(q, k, v, mask):
        calls.append((q.shape[2], k.shape[2]))
        return ours_ops.decoder_attention(q, k, v, mask)

    ours_ops = ours.ops
    ours.ops = dataclasses.replace(ours_ops, decoder_attention=recorded)
    x = inputs(frames=3, height=8, width=10, batch=1)  # N = 3 x 4 x 5 = 60 video tokens
    forward(ours, x)
    assert calls == [(120, 120), (60, 120)]
