"""The random test models are sensitive to what the tests check: every block and every input moves the output.

A parity test only proves something if a bug would change the output by more than its tolerance (1e-5 relative
in fp32). Default inits hide whole parts (zero gates, unit norms, a text path drowned by the timestep's
modulation), so the test models are randomized on purpose (`tiny_config.randomize_`, `tiny_text`, `tiny_pipeline`)
and these tests measure it: switching off any one block, or changing any one input, moves the output by several
percent, thousands of times the parity tolerance.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
import test_vae
import torch
from bf16_bounds import rel
from speed_helpers import tiny_transformer
from tiny_config import forward as our_forward
from tiny_pipeline import TINY_VAE, tiny_vae
from tiny_text import TINY_TEXT_HIDDEN, TINY_VISION_HIDDEN, make_tiny_text_encoder
from tiny_transformer import inputs, make_reference, reference_forward

from motif_lite.encoders.text import load_text_encoder

BLOCK = 0.05  # switching off any one block moves the output by at least 5 %
INPUT = 0.05  # so does dropping the text, changing the timestep or the latents


@contextlib.contextmanager
def matrices_zeroed(module: torch.nn.Module):
    """Every weight matrix / conv kernel of `module` set to zero (restored afterwards): the block does nothing."""
    saved = {name: p.detach().clone() for name, p in module.named_parameters()}
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:
                p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(saved[name])


CONFIGS = {
    "tests": {},  # tests/test_transformer.py, test_gguf_model.py, test_kernels_dispatch.py
    "pipeline": dict(text_embed_dim=TINY_TEXT_HIDDEN, image_embed_dim=TINY_VISION_HIDDEN),  # tiny_pipeline
    "wide": dict(attention_head_dim=128, rope_axes_dim=(16, 56, 56), text_embed_dim=256, image_embed_dim=256),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_every_transformer_block_and_input_matters(config: str) -> None:
    overrides = CONFIGS[config]
    ref = make_reference(**overrides)
    dims = dict(text_dim=ref.config.text_embed_dim, image_dim=ref.config.image_embed_dim)
    x = inputs(image=5, frames=2, height=4, width=4, **dims)
    base = reference_forward(ref, x)
    for i, block in enumerate([*ref.transformer_blocks, *ref.single_transformer_blocks]):
        with matrices_zeroed(block):
            assert rel(reference_forward(ref, x), base) > BLOCK, f"block {i}"
    for name, change in input_changes(x).items():
        moved = rel(reference_forward(ref, {**x, **change}), base)
        assert moved > LEAST.get(name, INPUT), f"{name}: {moved:.4f}"


def input_changes(x: dict) -> dict[str, dict]:
    """One changed model input per entry (dropping the text, another prompt, the timestep, ...)."""
    other = torch.Generator().manual_seed(9)
    return {
        "text": dict(text_embeds=torch.zeros_like(x["text_embeds"])),
        "other text": dict(text_embeds=torch.randn(x["text_embeds"].shape, generator=other)),
        "text mask": dict(text_mask=None),  # the padded text tokens become visible
        "image": dict(image_embeds=torch.zeros_like(x["image_embeds"])),
        "timestep": dict(timestep=x["timestep"] + 100),
        "noise": dict(latents=torch.cat([torch.randn_like(x["latents"][:, :16]), x["latents"][:, 16:]], 1)),
        "I2V condition": dict(latents=torch.cat([x["latents"][:, :16], torch.zeros_like(x["latents"][:, 16:])], 1)),
    }


LEAST = {"image": 0.02, "text mask": 0.01}  # 3-5 image tokens among 10-12 context tokens; 1-3 padded tokens


def test_our_tiny_model_blocks_and_inputs_matter() -> None:
    """The transformer of the speed-feature, streaming and planner tests (`speed_helpers.tiny_transformer`, our
    own model) has the same randomization: under a plain N(0, 0.15) init another prompt moved it by only 2 %."""
    model = tiny_transformer()
    x = inputs(image=3, frames=2, height=4, width=6)
    base = our_forward(model, x)
    for i, block in enumerate([*model.transformer_blocks, *model.single_transformer_blocks]):
        with matrices_zeroed(block):
            assert rel(our_forward(model, x), base) > BLOCK, f"block {i}"
    for name, change in input_changes(x).items():
        moved = rel(our_forward(model, {**x, **change}), base)
        assert moved > LEAST.get(name, INPUT), f"{name}: {moved:.4f}"


def test_text_encoder_layers_and_prompt_matter() -> None:
    with tempfile.TemporaryDirectory() as folder:
        make_tiny_text_encoder(folder)
        encoder = load_text_encoder(Path(folder), dtype=torch.float32)
    prompt = ["a red fox runs through snow"]
    base, _ = encoder.encode(prompt)
    for i, layer in enumerate(encoder.model.text_model.layers):
        with matrices_zeroed(layer):
            assert rel(encoder.encode(prompt)[0], base) > 0.2, f"layer {i}"
    assert rel(encoder.encode(["a red fax runs through snow"])[0], base) > INPUT  # one character


@pytest.mark.parametrize("which", ["pipeline", "test_vae"])
def test_every_vae_decoder_block_matters(which: str) -> None:
    if which == "pipeline":
        vae, z_dim = tiny_vae(), TINY_VAE["z_dim"]
    else:
        with tempfile.TemporaryDirectory() as folder:
            vae, _ = test_vae.make_reference(Path(folder), **test_vae.TINY)
        z_dim = test_vae.TINY["z_dim"]
    z = torch.randn(1, z_dim, 2, 2, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = vae.decode(z).sample
        blocks = [m for m in vae.decoder.modules() if type(m).__name__ in ("WanResidualBlock", "WanAttentionBlock")]
        assert len(blocks) >= 7
        for i, block in enumerate(blocks):
            with matrices_zeroed(block):
                assert rel(vae.decode(z).sample, base) > 0.1, f"decoder block {i} ({type(block).__name__})"
