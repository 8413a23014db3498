"""Motif-Video transformer: patch embed -> 12 dual-stream blocks -> 16 single-stream blocks -> 8 DDT decoder
blocks -> AdaLN output head -> unpatchify."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.model.attention import BlockContext, TextMasks
from motif_lite.model.blocks import DualStreamBlock, SingleStreamBlock
from motif_lite.model.layers import ImageProjection, MLPEmbedder, Modulation, PatchEmbed, TimestepEmbedder
from motif_lite.model.ops import TORCH_OPS, Ops, end_run_of, mask_form_of
from motif_lite.model.rope import RopeTables


@dataclass
class Embedded:
    """The output of `MotifVideoTransformer.embed`: the token streams and what every block needs."""

    x: torch.Tensor  # [B, N, C] patch-embedded video tokens (also the DDT decoder's input)
    context: torch.Tensor  # [B, I + T, C] image + text tokens
    ctx: BlockContext  # for the encoder blocks (joint-attention mask, text mask)
    decoder_ctx: BlockContext  # for the DDT decoder (no mask, its own attention op)
    grid: tuple[int, int, int]  # latent tokens along (frames, height, width)


class MotifVideoTransformer(nn.Module):
    """Predicts the flow-matching velocity. Parameter names equal the official diffusers checkpoint's.

    `ops` selects the implementation of the fused operations (see ops.py); it is plain instance state, set by
    `motif_lite.runtime` and never by the model itself.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.ops: Ops = TORCH_OPS
        self.text_masks = TextMasks()  # the last forward's attention masks, for the next one with the same mask
        self.rope_tables = RopeTables()  # built once per grid and run
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
        image_embeds [B, I, 1152] (I2V) -> velocity [B, 16, F, H, W].

        The stages are public so that runtime features (step caching, sequence parallelism) can compose them
        without changing this math: embed -> encoder blocks -> DDT decoder blocks -> head."""
        s = self.embed(latents, timestep, text_embeds, text_mask, image_embeds)
        x = self.run_encoder(s.x, s.context, s.ctx)
        x = self.run_decoder(s.x, x, s.decoder_ctx)
        return self.head(x, s)

    def embed(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> Embedded:
        """Patch-embed the latents, project the text (and image) tokens, build RoPE, masks and `temb`."""
        cfg = self.config
        _, _, frames, height, width = latents.shape
        grid = (frames // cfg.patch_size_t, height // cfg.patch_size, width // cfg.patch_size)
        dtype = self.x_embedder.proj.weight.dtype  # the compute dtype (never quantized)

        x = self.x_embedder(latents.to(dtype))  # [B, N, C]
        context = self.context_embedder(text_embeds.to(dtype))  # [B, T, C]
        image_len = 0
        if image_embeds is not None:
            image_len = image_embeds.shape[1]
            context = torch.cat([self.image_embedder(image_embeds.to(dtype)), context], dim=1)  # [B, I + T, C]

        cos, sin = self.rope_tables(grid, cfg.rope_axes_dim, cfg.rope_theta, latents.device)
        additive = dtype if mask_form_of(self.ops.attention) == "additive" else None
        mask, text_key_mask = self.text_masks(text_mask, x.shape[1], image_len, additive)
        silu_temb = F.silu(self.time_text_embed(timestep, dtype))  # the modulations' input, once for all blocks
        ctx = BlockContext(
            silu_temb=silu_temb,
            cos=cos,
            sin=sin,
            mask=mask,
            text_mask=text_key_mask,
            image_len=image_len,
            ops=self.ops,
            attention=self.ops.attention,
        )
        # The DDT decoder attends over [decoder; encoder output], video tokens alone: no text keys to mask.
        decoder_ctx = replace(ctx, mask=None, text_mask=None, image_len=0, attention=self.ops.decoder_attention)
        return Embedded(x, context, ctx, decoder_ctx, grid)

    def end_run(self) -> None:
        """Let go of what was kept for the run's forwards: the RoPE tables (device memory the VAE decode may need),
        the timestep sinusoid's frequencies, and the text masks with the attention masks built from them (the
        caller's tensors, held on the device), here and in the attention ops that keep forms of them
        (`ops.KeepsPerRun`); the next forward builds them again."""
        self.rope_tables.clear()
        self.time_text_embed.frequencies.clear()
        self.text_masks.kept.clear()
        for attention in (self.ops.attention, self.ops.decoder_attention):
            end_run_of(attention)

    def run_encoder(self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext, first: int = 0) -> torch.Tensor:
        """The dual-stream then the encoder's single-stream blocks, from block `first` of that sequence on;
        returns the video stream [B, N, C] (the context stream ends here)."""
        return self.run_encoder_blocks(x, context, ctx, first)[0]

    def run_encoder_blocks(
        self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext, first: int = 0, stop: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks `first` to `stop` (exclusive; None = all) of the encoder sequence (dual-stream, then the
        encoder's single-stream blocks); returns both streams, so that a later call can continue from `stop`."""
        blocks = [*self.transformer_blocks, *self.encoder_single_blocks]
        for block in blocks[first:stop]:
            x, context = block(x, context, ctx)
        return x, context

    def run_decoder(
        self, decoder_x: torch.Tensor, encoded: torch.Tensor, ctx: BlockContext, whole_last_block: bool = False
    ) -> torch.Tensor:
        """The DDT decoder: it starts again from the patch-embedded input `decoder_x` and attends over
        [decoder; encoder output], 2N tokens. Without decoder blocks the encoder output is the result.

        Only the decoder stream leaves the last block, so there only its N tokens query the attention and go
        through the MLP (the reference computes all 2N and drops half): the same output, ~3 % fewer FLOPs per
        forward at 720p. `whole_last_block`: compute it whole (a caller whose tokens are sharded across ranks)."""
        if not self.config.num_decoder_layers:
            return encoded
        *blocks, last = self.decoder_blocks
        for block in blocks:
            decoder_x, encoded = block(decoder_x, encoded, ctx)
        decoder_x, _ = last(decoder_x, encoded, ctx, keep_context=whole_last_block)
        return decoder_x

    def head(self, x: torch.Tensor, s: Embedded) -> torch.Tensor:
        """AdaLN output norm, projection to patches, unpatchify: [B, N, C] -> velocity [B, 16, F, H, W]."""
        scale, shift = self.norm_out(s.ctx.silu_temb)
        x = self.proj_out(self.ops.layer_norm_modulate(x, shift, scale))
        return self.unpatchify(x, s.grid)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, N, pt*p*p*C] -> [B, C, F, H, W]"""
        cfg = self.config
        p, pt = cfg.patch_size, cfg.patch_size_t
        x = x.reshape(x.shape[0], *grid, cfg.out_channels, pt, p, p)  # [B, f, h, w, C, pt, p, p]
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # [B, C, f, pt, h, p, w, p]
        return x.reshape(x.shape[0], cfg.out_channels, grid[0] * pt, grid[1] * p, grid[2] * p)
