"""The three kinds of transformer block."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.model.attention import (
    BlockContext,
    CrossAttention,
    JointAttention,
    QKVProjection,
    SharedCrossAttention,
    SingleAttention,
    merge_heads,
    token_chunks,
)
from motif_lite.model.layers import FeedForward, Modulation


def make_cross_attention(cfg: TransformerConfig) -> nn.Module:
    if cfg.cross_attention_layout == "diffusers":
        return CrossAttention(cfg.hidden_size, cfg.num_attention_heads, cfg.attention_head_dim)
    return SharedCrossAttention(
        cfg.hidden_size, cfg.num_attention_heads, apply_query_norm=cfg.cross_attention_layout == "original"
    )


def text_cross_kv(
    cross: nn.Module, text: torch.Tensor, block_attn: QKVProjection, ctx: BlockContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """The text K/V [B, H, T, D] of a block's cross-attention, projected once for all its query pieces: with the
    diffusers layout's own to_k/to_v, else with the block attention's. text: [B, T, C] normalized text tokens
    (image tokens excluded)."""
    projection = cross if isinstance(cross, CrossAttention) else block_attn
    return projection.project_kv(text, ctx, rope=False)


def add_text_cross_attention(
    target: torch.Tensor,
    attn_out: torch.Tensor,
    cross: nn.Module,
    text_kv: tuple[torch.Tensor, torch.Tensor],
    block_attn: QKVProjection,
    ctx: BlockContext,
    token_chunk: int | None,
) -> None:
    """Add the residual text cross-attention of a block, whichever layout it has, over the text K/V of
    `text_cross_kv`, to `target` [B, >= N, C] in place: queried by the video's attention output `attn_out`
    [B, N, C] in pieces of `token_chunk` tokens (None: at once), each piece's onto the same rows of `target`. Each
    piece reads only its own rows, so `target` may be `attn_out`'s own tensor."""
    for start, piece in token_chunks(attn_out, token_chunk):
        if isinstance(cross, CrossAttention):  # `start`: the piece's position in the video (RoPE)
            added = cross(piece, text_kv, ctx, start)
        else:
            added = cross(piece, text_kv, block_attn.norm_q, ctx, start)
        # add_ on the rows' view: `target[rows] += ...` would also issue a copy of the view onto itself
        target[:, start : start + piece.shape[1]].add_(added)


class DualStreamBlock(nn.Module):
    """MMDiT block: video and context streams with their own AdaLN, projections and feed-forward, one joint
    attention, and optionally the text cross-attention on the video stream (added ungated)."""

    def __init__(self, cfg: TransformerConfig, cross_attention: bool) -> None:
        super().__init__()
        hidden = cfg.hidden_size
        self.norm1 = Modulation(hidden, 6)
        self.norm1_context = Modulation(hidden, 6)
        self.attn = JointAttention(hidden, cfg.num_attention_heads, cfg.attention_head_dim)
        self.cross_attn = make_cross_attention(cfg) if cross_attention else None
        self.ff = FeedForward(hidden, int(hidden * cfg.mlp_ratio))
        self.ff_context = FeedForward(hidden, int(hidden * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, N, C] video tokens; context: [B, T', C] image + text tokens
        modulate = ctx.ops.layer_norm_modulate
        shift, scale, gate, shift_ff, scale_ff, gate_ff = self.norm1(ctx.silu_temb)
        c_shift, c_scale, c_gate, c_shift_ff, c_scale_ff, c_gate_ff = self.norm1_context(ctx.silu_temb)

        norm_context = modulate(context, c_shift, c_scale)
        attn_out, context_attn_out = self.attn(modulate(x, shift, scale), norm_context, ctx)
        context = context + c_gate[:, None] * context_attn_out
        del context_attn_out  # each stream's feed-forward below holds only what it still needs
        text_kv = None
        if self.cross_attn is not None:
            text_kv = text_cross_kv(self.cross_attn, norm_context[:, ctx.image_len :], self.attn, ctx)
        del norm_context
        x = x + gate[:, None] * attn_out
        if text_kv is not None:  # per query piece of the joint attention's token_chunk, added in place to x's rows
            add_text_cross_attention(x, attn_out, self.cross_attn, text_kv, self.attn, ctx, self.attn.token_chunk)
        del attn_out, text_kv

        x = x + gate_ff[:, None] * self.ff(modulate(x, shift_ff, scale_ff))
        context = context + c_gate_ff[:, None] * self.ff_context(modulate(context, c_shift_ff, c_scale_ff))
        return x, context


class SingleStreamBlock(nn.Module):
    """Single-stream block over [x; context]: shared AdaLN, attention in parallel with the MLP, one output
    projection. In the encoder, x is the video and context the image + text tokens, and the text
    cross-attention (if any) is added to the video part of the attention output before `proj_out` (so it is
    gated). In the DDT decoder, x is the decoder stream and context the encoder's video output."""

    def __init__(self, cfg: TransformerConfig, cross_attention: bool) -> None:
        super().__init__()
        hidden = cfg.hidden_size
        mlp = int(hidden * cfg.mlp_ratio)
        self.norm = Modulation(hidden, 3)
        self.attn = SingleAttention(hidden, cfg.num_attention_heads, cfg.attention_head_dim)
        self.cross_attn = make_cross_attention(cfg) if cross_attention else None
        self.proj_mlp = nn.Linear(hidden, mlp)
        self.proj_out = nn.Linear(hidden + mlp, hidden)
        # Tokens per piece for the normalization, Q/K/V projections, MLP and output projection (None = each
        # stream at once), and heads per attention call (None = all: one call); set by runtime.chunking.
        self.token_chunk: int | None = None
        self.heads_per_call: int | None = None

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext, keep_context: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # x: [B, N, C], context: [B, T', C], attended as one sequence [x; context] of L = N + T' tokens. With a
        # `token_chunk`, all per-token work runs on pieces of at most that many tokens of one stream, so only the
        # attention's Q, K, V and output exist for all L tokens at once (docs/memory.md).
        # keep_context=False (the DDT decoder's last block, whose context output nothing reads): only x's tokens
        # query the attention and go through the MLP and output projection; the context still gives keys and
        # values. Each output row is computed as before, so x's output is the same; context's is None.
        n = x.shape[1]
        shift, scale, gate = self.norm(ctx.silu_temb)
        if self.token_chunk is None:  # one piece, [x; context]: the reference's computation, bit for bit
            pieces = [(0, torch.cat([x, context], dim=1))]
        else:
            pieces = [*token_chunks(x, self.token_chunk), *token_chunks(context, self.token_chunk, offset=n)]

        def normalize(tokens: torch.Tensor) -> torch.Tensor:
            return ctx.ops.layer_norm_modulate(tokens, shift, scale)

        queries = n + context.shape[1] if keep_context else n
        attn_out = self.attend(pieces, normalize, n, context, ctx, queries)  # [B, queries, C]
        if len(pieces) == 1:  # the sum is the output: no buffer to copy it into (a kernel and a pass over memory)
            tokens = pieces[0][1][:, :queries]
            out = tokens + gate[:, None] * self.mlp_and_project(normalize(tokens), attn_out)
            return (out[:, :n], out[:, n:]) if keep_context else (out, None)
        out = x.new_empty(x.shape[0], queries, x.shape[2])
        for start, tokens in pieces:
            if start >= queries:  # a context piece nothing reads (keep_context=False)
                continue
            tokens = tokens[:, : queries - start]
            rows = slice(start, start + tokens.shape[1])
            out[:, rows] = tokens + gate[:, None] * self.mlp_and_project(normalize(tokens), attn_out[:, rows])
        return (out[:, :n], out[:, n:]) if keep_context else (out, None)

    def attend(
        self,
        pieces: list[tuple[int, torch.Tensor]],
        normalize: Callable[[torch.Tensor], torch.Tensor],
        n: int,
        context: torch.Tensor,
        ctx: BlockContext,
        queries: int,
    ) -> torch.Tensor:
        """Self-attention over the (start, tokens) pieces of [x; context] (x has n tokens), each piece normalized
        when projected, for the first `queries` tokens, with the text cross-attention (if any) added to the video
        part. Q, K and V are freed right after the attention call (each group's, with `heads_per_call`); only the
        text part of K and V is kept, for the shared cross-attention."""
        text_start = n + ctx.image_len
        # The shared layouts' cross-attention reuses the text part of this attention's K and V.
        shared = self.cross_attn is not None and not isinstance(self.cross_attn, CrossAttention)
        attn_out, text_kv = self.self_attention(
            pieces, normalize, n + context.shape[1], ctx, text_start if shared else None, queries
        )
        if self.cross_attn is not None:
            # Query pieces of the video part, each added in place: attn_out is this call's own tensor, and every
            # piece reads only its own rows (so the result is the whole-sequence one).
            if text_kv is None:  # the diffusers layout: its own K/V of the normalized text, once for all pieces
                # One piece (no chunking): the text as a slice of the whole normalized sequence, the reference's
                # layout, so the block rounds exactly like it in bf16; with pieces only the text is normalized.
                whole = pieces[0][1] if len(pieces) == 1 else None
                text = normalize(whole)[:, text_start:] if whole is not None else normalize(context[:, ctx.image_len :])
                text_kv = text_cross_kv(self.cross_attn, text, self.attn, ctx)
                del text
            video_out = attn_out[:, :n]
            add_text_cross_attention(attn_out, video_out, self.cross_attn, text_kv, self.attn, ctx, self.token_chunk)
        return attn_out

    def self_attention(
        self,
        pieces: list[tuple[int, torch.Tensor]],
        normalize: Callable[[torch.Tensor], torch.Tensor],
        length: int,
        ctx: BlockContext,
        text_start: int | None,
        queries: int,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """(merged output [B, queries, C] of the first `queries` tokens over all L keys, and with `text_start` the
        text part of K and V for a shared cross-attention).

        Every head in one call, or with `heads_per_call` a group of heads at a time: each group's Q, K, V
        projected (its rows of the projections), attended and written into its columns of the output, so Q, K and
        V exist for one group only (the same result up to the matmuls' rounding for fewer output rows)."""
        heads, group = self.attn.heads, self.heads_per_call or self.attn.heads

        def normalized() -> Iterator[tuple[int, torch.Tensor]]:
            return ((start, normalize(tokens)) for start, tokens in pieces)

        if group >= heads:
            q, k, v = self.attn.project(normalized(), length, ctx)
            text_kv = None if text_start is None else (k[:, :, text_start:].clone(), v[:, :, text_start:].clone())
            heads_out = ctx.attention(q[:, :, :queries], k, v, ctx.mask)
            del q, k, v  # before the heads are merged (a copy with some attention kernels): one full tensor less
            attn_out = merge_heads(heads_out)
            del heads_out  # freed once merged (unless the merge is a view of it)
            return attn_out, text_kv
        reference, head_dim = pieces[0][1], self.attn.head_dim
        batch = reference.shape[0]
        attn_out = reference.new_empty(batch, queries, heads, head_dim)  # [B, queries, H, D]: merged once flattened
        text_kv = None
        if text_start is not None:
            text_kv = tuple(reference.new_empty(batch, heads, length - text_start, head_dim) for _ in range(2))
        for first in range(0, heads, group):
            part = slice(first, min(heads, first + group))
            q, k, v = self.attn.project(normalized(), length, ctx, part)
            if text_kv is not None:
                text_kv[0][:, part], text_kv[1][:, part] = k[:, :, text_start:], v[:, :, text_start:]
            heads_out = ctx.attention(q[:, :, :queries], k, v, ctx.mask)  # [B, h, queries, D]
            del q, k, v
            attn_out[:, :, part] = heads_out.transpose(1, 2)
            del heads_out
        return attn_out.flatten(2), text_kv

    def mlp_and_project(self, normed: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        """proj_out([attn_out | gelu(proj_mlp(normed))]) of one piece of tokens (the caller cuts the pieces).
        The GELU writes straight into the columns of proj_out's input: the same values as a `cat`, one copy less."""
        # The width from proj_mlp's output, not its attributes: a LoRA or quantized wrapper may replace the layer.
        hidden, mlp = attn_out.shape[-1], self.proj_mlp(normed)  # mlp: [B, l, 4C]
        proj_in = attn_out.new_empty(*attn_out.shape[:-1], hidden + mlp.shape[-1])
        proj_in[..., :hidden] = attn_out
        activation = proj_in[..., hidden:]  # a view
        if torch.compiler.is_compiling():  # out= into a view breaks the graph; Inductor fuses the copy instead
            activation.copy_(F.gelu(mlp, approximate="tanh"))
        else:
            torch.ops.aten.gelu.out(mlp, approximate="tanh", out=activation)
        del mlp  # freed before proj_out runs
        return self.proj_out(proj_in)
