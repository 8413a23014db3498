"""The tiny transformer config and inputs the tests share (diffusers keys; no diffusers import, so any test may use
them)."""

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
