"""Motif-Video transformer: patch embed -> 12 dual-stream blocks -> 16 single-stream blocks -> 8 DDT decoder
blocks -> AdaLN output head -> unpatchify."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.model.attention import BlockContext
from motif_lite.model.blocks import DualStreamBlock, SingleStreamBlock
from motif_lite.model.layers import ImageProjection, MLPEmbedder, Modulation, PatchEmbed, TimestepEmbedder
from motif_lite.model.ops import TORCH_OPS, Ops
from motif_lite.model.rope import rope_3d


class MotifVideoTransformer(nn.Module):
    """Predicts the flow-matching velocity. Parameter names equal the official diffusers checkpoint's.

    `ops` selects the implementation of the fused operations (see ops.py); it is plain instance state, set by
    `motif_lite.runtime` and never by the model itself.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.ops: Ops = TORCH_OPS
        hidden = config.hidden_size
        patch = (config.patch_size_t, config.patch_size, config.patch_size)
        self.x_embedder = PatchEmbed(patch, config.in_channels, hidden)
        self.context_embedder = MLPEmbedder(config.text_embed_dim, hidden, hidden, nn.GELU(approximate="tanh"))
        if config.image_embed_dim is not None:
            self.image_embedder = ImageProjection(config.image_embed_dim, hidden)
        self.time_text_embed = TimestepEmbedder(hidden)
        self.transformer_blocks = nn.ModuleList(
            DualStreamBlock(config, config.enable_text_cross_attention_dual) for _ in range(config.num_layers)
        )
        # One list as in the checkpoint: the encoder's single-stream blocks, then the DDT decoder blocks.
        self.single_transformer_blocks = nn.ModuleList(
            SingleStreamBlock(
                config, config.enable_text_cross_attention_single and i < config.num_encoder_single_layers
            )
            for i in range(config.num_single_layers)
        )
        self.norm_out = Modulation(hidden, 2)  # AdaLayerNormContinuous: (scale, shift)
        self.proj_out = nn.Linear(hidden, config.patch_volume * config.out_channels)

    @property
    def encoder_single_blocks(self) -> nn.ModuleList:
        return self.single_transformer_blocks[: self.config.num_encoder_single_layers]

    @property
    def decoder_blocks(self) -> nn.ModuleList:
        return self.single_transformer_blocks[self.config.num_encoder_single_layers :]

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """latents [B, 33, F, H, W], timestep [B] (0..1000), text_embeds [B, T, 2560], text_mask [B, T] bool,
        image_embeds [B, I, 1152] (I2V) -> velocity [B, 16, F, H, W]."""
        cfg = self.config
        batch, _, frames, height, width = latents.shape
        grid = (frames // cfg.patch_size_t, height // cfg.patch_size, width // cfg.patch_size)
        dtype = self.x_embedder.proj.weight.dtype  # the compute dtype (never quantized)

        x = self.x_embedder(latents.to(dtype))  # [B, N, C]
        context = self.context_embedder(text_embeds.to(dtype))  # [B, T, C]
        image_len = 0
        if image_embeds is not None:
            image_len = image_embeds.shape[1]
            context = torch.cat([self.image_embedder(image_embeds.to(dtype)), context], dim=1)  # [B, I + T, C]

        cos, sin = rope_3d(grid, cfg.rope_axes_dim, cfg.rope_theta, latents.device)
        text_mask = None if text_mask is None or bool(text_mask.all()) else text_mask.bool()
        ctx = BlockContext(
            temb=self.time_text_embed(timestep, dtype),
            cos=cos,
            sin=sin,
            mask=None
            if text_mask is None
            else F.pad(text_mask, (x.shape[1] + image_len, 0), value=True)[:, None, None],
            text_mask=None if text_mask is None else text_mask[:, None, None],
            image_len=image_len,
            ops=self.ops,
            attention=self.ops.attention,
        )

        decoder_x = x  # the DDT decoder starts again from the patch-embedded input
        for block in self.transformer_blocks:
            x, context = block(x, context, ctx)
        for block in self.encoder_single_blocks:
            x, context = block(x, context, ctx)
        if cfg.num_decoder_layers:
            decoder_ctx = BlockContext(ctx.temb, cos, sin, None, None, 0, self.ops, self.ops.decoder_attention)
            for block in self.decoder_blocks:
                decoder_x, x = block(decoder_x, x, decoder_ctx)  # attends over [decoder; encoder output], 2N
            x = decoder_x

        scale, shift = self.norm_out(ctx.temb)
        x = self.proj_out(self.ops.layer_norm_modulate(x, shift, scale))
        return self.unpatchify(x, grid)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, N, pt*p*p*C] -> [B, C, F, H, W]"""
        cfg = self.config
        p, pt = cfg.patch_size, cfg.patch_size_t
        x = x.reshape(x.shape[0], *grid, cfg.out_channels, pt, p, p)  # [B, f, h, w, C, pt, p, p]
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # [B, C, f, pt, h, p, w, p]
        return x.reshape(x.shape[0], cfg.out_channels, grid[0] * pt, grid[1] * p, grid[2] * p)
