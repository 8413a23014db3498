"""The tiny transformer config, its random initialization and inputs the tests share (diffusers keys; no diffusers
import, so any test may use them)."""

import math
import re

import torch

TINY = dict(
    in_channels=33,
    out_channels=16,
    num_attention_heads=2,
    attention_head_dim=32,
    num_layers=2,
    num_single_layers=3,
    num_decoder_layers=1,
    text_embed_dim=24,
    image_embed_dim=20,
    rope_theta=10000.0,
    rope_axes_dim=(8, 12, 12),
    enable_text_cross_attention_dual=False,
    enable_text_cross_attention_single=True,
)


# The text and image paths (context embedder, the dual blocks' text stream, the cross-attention) get 3x the
# weights: at plain 1/sqrt(fan_in) the text moved the output by only ~3 %, too little to show a guidance bug.
CONDITIONING = re.compile(r"context|add_|cross_attn")
CONDITIONING_GAIN = 3.0


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter of a Motif transformer (ours or diffusers') a random value at a scale where each block
    and each input matters: matrices N(0, 1/fan_in) (3x on the text and image paths), norm gains 1 + N(0, 0.2),
    other vectors N(0, 0.1). Default inits leave zero gates and unit norms that hide bugs, and a plain N(0, 0.15)
    let the timestep's modulation drown the text (tests/test_sensitivity.py measures what each part moves)."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator)
        if param.ndim == 1:
            param.copy_(1 + 0.2 * noise if "norm" in name else 0.1 * noise)
        else:
            gain = CONDITIONING_GAIN if CONDITIONING.search(name) else 1.0
            param.copy_(gain / math.sqrt(param[0].numel()) * noise)
    return model


def inputs(
    batch: int = 2,
    frames: int = 3,
    height: int = 6,
    width: int = 10,
    text: int = 7,
    image: int = 0,
    masked: bool = True,
    seed: int = 1,
    text_dim: int = 24,
    image_dim: int = 20,
) -> dict:
    """Model inputs; with `masked`, each batch row has a different number of valid text tokens."""
    g = torch.Generator().manual_seed(seed)
    mask = None
    if masked:
        mask = torch.ones(batch, text, dtype=torch.bool)
        for row in range(batch):
            mask[row, text - row * 2 - 1 :] = False
    return dict(
        latents=torch.randn(batch, 33, frames, height, width, generator=g),
        timestep=torch.rand(batch, generator=g) * 1000,
        text_embeds=torch.randn(batch, text, text_dim, generator=g),
        text_mask=mask,
        image_embeds=torch.randn(batch, image, image_dim, generator=g) if image else None,
    )


def forward(model: torch.nn.Module, x: dict) -> torch.Tensor:
    """The transformer's output for `inputs()`, without autograd."""
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
