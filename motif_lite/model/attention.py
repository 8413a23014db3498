"""Attention layers: joint (dual-stream), single-stream, and the two kinds of text cross-attention.

Every softmax goes through `ctx.attention` / `ctx.ops.attention` and every QK norm (+ RoPE) through
`ctx.ops.rms_norm_rope`: the seams where kernels plug in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from motif_lite.model.ops import AttentionFn, Ops


@dataclass(frozen=True)
class BlockContext:
    """What every block needs besides its token streams."""

    temb: torch.Tensor  # [B, hidden]
    cos: torch.Tensor  # [N, head_dim] RoPE for the first N tokens of the attended sequence
    sin: torch.Tensor
    mask: torch.Tensor | None  # bool [B, 1, 1, keys] for the joint attention (None = attend to all)
    text_mask: torch.Tensor | None  # bool [B, 1, 1, T] for text cross-attention
    image_len: int  # image tokens at the front of the context stream (I2V), excluded from cross-attention
    ops: Ops
    attention: AttentionFn  # ops.attention, or ops.decoder_attention in the DDT decoder


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]"""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]"""
    return x.transpose(1, 2).flatten(2)


def qk_norm(eps: float, head_dim: int) -> nn.RMSNorm:
    return nn.RMSNorm(head_dim, eps=eps)


class QKVProjection(nn.Module):
    """to_q/to_k/to_v with per-head RMSNorm on Q and K."""

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(hidden, hidden)
        self.to_k = nn.Linear(hidden, hidden)
        self.to_v = nn.Linear(hidden, hidden)
        self.norm_q = qk_norm(1e-6, head_dim)
        self.norm_k = qk_norm(1e-6, head_dim)

    def project_q(self, x: torch.Tensor, ctx: BlockContext, rope: bool = True) -> torch.Tensor:
        cos, sin = (ctx.cos, ctx.sin) if rope else (None, None)
        q = split_heads(self.to_q(x), self.heads)
        return ctx.ops.rms_norm_rope(q, self.norm_q.weight, self.norm_q.eps, cos, sin)

    def project_kv(self, x: torch.Tensor, ctx: BlockContext, rope: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = (ctx.cos, ctx.sin) if rope else (None, None)
        k = split_heads(self.to_k(x), self.heads)
        k = ctx.ops.rms_norm_rope(k, self.norm_k.weight, self.norm_k.eps, cos, sin)
        return k, split_heads(self.to_v(x), self.heads)


class JointAttention(QKVProjection):
    """Dual-stream (MMDiT) attention: separate projections per stream, one softmax over [video; context].

    RoPE on the video tokens only; the mask hides padded text keys.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__(hidden, heads, head_dim)
        self.add_q_proj = nn.Linear(hidden, hidden)
        self.add_k_proj = nn.Linear(hidden, hidden)
        self.add_v_proj = nn.Linear(hidden, hidden)
        self.norm_added_q = qk_norm(1e-6, head_dim)
        self.norm_added_k = qk_norm(1e-6, head_dim)
        self.to_out = nn.ModuleList([nn.Linear(hidden, hidden)])
        self.to_add_out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, N, C] video, context: [B, T', C] image + text
        norm = ctx.ops.rms_norm_rope
        q, (k, v) = self.project_q(x, ctx), self.project_kv(x, ctx)
        cq = norm(split_heads(self.add_q_proj(context), self.heads), self.norm_added_q.weight, self.norm_added_q.eps)
        ck = norm(split_heads(self.add_k_proj(context), self.heads), self.norm_added_k.weight, self.norm_added_k.eps)
        cv = split_heads(self.add_v_proj(context), self.heads)
        out = merge_heads(ctx.attention(torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2), ctx.mask))
        n = x.shape[1]
        return self.to_out[0](out[:, :n]), self.to_add_out(out[:, n:])


class SingleAttention(QKVProjection):
    """Single-stream attention over one concatenated sequence; RoPE on its first N tokens (the video).

    Returns the merged output and the (normalized) K/V, which the shared cross-attention reuses.
    """

    def forward(self, x: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        q, (k, v) = self.project_q(x, ctx), self.project_kv(x, ctx)
        return merge_heads(ctx.attention(q, k, v, ctx.mask)), (k, v)


class CrossAttention(QKVProjection):
    """Text cross-attention, diffusers layout: its own Q/K/V/out projections and QK norms.

    Query = the block's video attention output (RoPE applied); keys/values = the text tokens.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__(hidden, heads, head_dim)
        self.to_out = nn.ModuleList([nn.Linear(hidden, hidden)])

    def forward(self, attn_out: torch.Tensor, text: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        q, (k, v) = self.project_q(attn_out, ctx), self.project_kv(text, ctx, rope=False)
        return self.to_out[0](merge_heads(ctx.ops.attention(q, k, v, ctx.text_mask)))


class SharedCrossAttention(nn.Module):
    """Shared Cross-Attention, original and PR-era layouts: new query and output projections; the text K/V and
    the QK norms are the block's own self-attention ones (passed in).

    The original layout applies a LayerNorm (`query_norm`) to the projected query; the PR-era code defined it but
    never applied it, so `apply_query_norm` is False there and the tensor is only loaded.
    """

    def __init__(self, hidden: int, heads: int, apply_query_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.apply_query_norm = apply_query_norm
        self.query_proj = nn.Linear(hidden, hidden)
        self.query_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(
        self,
        attn_out: torch.Tensor,
        text_kv: tuple[torch.Tensor, torch.Tensor],
        norm_q: nn.RMSNorm,
        ctx: BlockContext,
    ) -> torch.Tensor:
        q = self.query_proj(attn_out)
        if self.apply_query_norm:
            q = self.query_norm(q)
        q = ctx.ops.rms_norm_rope(split_heads(q, self.heads), norm_q.weight, norm_q.eps, ctx.cos, ctx.sin)
        return self.out_proj(merge_heads(ctx.ops.attention(q, *text_kv, ctx.text_mask)))
