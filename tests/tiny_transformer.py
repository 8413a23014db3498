"""Random-weight reference transformers (diffusers) saved in the official layouts, for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import MotifVideoTransformer3DModel
from safetensors.torch import save_file
from tiny_config import TINY, inputs, randomize_  # noqa: F401 (inputs: re-exported for the tests)


def make_reference(seed: int = 0, **overrides) -> MotifVideoTransformer3DModel:
    """A diffusers transformer with every parameter random at a scale where each block and input matters
    (`tiny_config.randomize_`; its zero-init layers would hide bugs)."""
    torch.manual_seed(seed)
    return randomize_(MotifVideoTransformer3DModel(**{**TINY, **overrides}).eval(), seed)


def save_official(model: MotifVideoTransformer3DModel, root: Path) -> Path:
    """Save as a checkpoint directory in the official layout (`root/transformer/`)."""
    model.save_pretrained(root / "transformer")
    return root


def tie_cross_attention_to_block(model: MotifVideoTransformer3DModel) -> None:
    """Make every cross_attn reuse its block's attn.to_k/to_v/norm_q/norm_k, as the shared layouts do."""
    with torch.no_grad():
        for block in [*model.transformer_blocks, *model.single_transformer_blocks]:
            if block.cross_attn is None:
                continue
            for name in ("to_k", "to_v", "norm_q", "norm_k"):
                mine, shared = getattr(block.cross_attn, name), getattr(block.attn, name)
                for pname, p in mine.named_parameters():
                    p.copy_(getattr(shared, pname))


def save_shared_layout(model: MotifVideoTransformer3DModel, root: Path, layout: str, query_norm: dict) -> Path:
    """Write the checkpoint in the "original" or "pr" cross-attention layout.

    query_norm: {block prefix: (weight, bias)} for the LayerNorm on the cross-attention query.
    """
    infix = "cross_attn_" if layout == "original" else "attn.cross_attn_"
    renames = {"cross_attn.to_q.": "query_proj.", "cross_attn.to_out.0.": "out_proj."}
    state = {}
    for name, tensor in model.state_dict().items():
        block, sep, rest = name.partition(".cross_attn.")
        if not sep:
            state[name] = tensor
            continue
        for old, new in renames.items():
            if f".{old}" in f".{name[len(block) + 1 :]}":
                state[f"{block}.{infix}{new}{name.rsplit('.', 1)[1]}"] = tensor
    for block, (weight, bias) in query_norm.items():
        state[f"{block}.{infix}query_norm.weight"] = weight
        state[f"{block}.{infix}query_norm.bias"] = bias
    folder = root / "transformer"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "diffusion_pytorch_model.safetensors")
    (folder / "config.json").write_text(json.dumps(dict(model.config)))
    return root


@torch.no_grad()
def reference_forward(model: MotifVideoTransformer3DModel, x: dict) -> torch.Tensor:
    return model(
        x["latents"],
        x["timestep"],
        x["text_embeds"],
        encoder_attention_mask=x["text_mask"],
        image_embeds=x["image_embeds"],
    ).sample


def assert_close_to_reference(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5) -> None:
    assert ours.shape == ref.shape
    err = (ours - ref).abs().max().item()
    assert err <= rel * ref.std().item(), f"max |diff| {err:.3e} > {rel} * std {ref.std().item():.3e}"
