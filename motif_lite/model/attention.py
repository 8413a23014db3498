"""Attention layers: joint (dual-stream), single-stream, and the two kinds of text cross-attention.

Every softmax goes through `ctx.attention` / `ctx.ops.attention` and every QK norm (+ RoPE) through
`ctx.ops.rms_norm_rope`: the seams where kernels plug in.

Memory: Q, K and V of a long sequence are projected a piece of at most `token_chunk` tokens at a time (set by
`motif_lite.runtime.chunking`; None = each stream in one piece) straight into one buffer each, around a single
attention call. So each of them is held once, never concatenated, and the projections' temporaries exist for one
piece only (docs/memory.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.model.kept import LastFewByTensor
from motif_lite.model.ops import AttentionFn, Ops, additive_mask


@dataclass(frozen=True)
class BlockContext:
    """What every block needs besides its token streams."""

    silu_temb: torch.Tensor  # [B, hidden] SiLU(temb), every AdaLN modulation's input: activated once per forward
    cos: torch.Tensor  # [N, head_dim] RoPE for the first N tokens of the attended sequence
    sin: torch.Tensor
    # Key masks in the form ops.attention takes (bool, or SDPA's additive floats: TextMasks); None = attend to all
    mask: torch.Tensor | None  # [B, 1, 1, keys] for the joint attention
    text_mask: torch.Tensor | None  # [B, 1, 1, T] for text cross-attention
    image_len: int  # image tokens at the front of the context stream (I2V), excluded from cross-attention
    ops: Ops
    attention: AttentionFn  # ops.attention, or ops.decoder_attention in the DDT decoder


class TextMasks:
    """The two attention masks of a text mask [B, T] (bool, True = a real token): the joint attention's over
    [video; image; text] keys [B, 1, 1, N + I + T] and the text cross-attention's [B, 1, 1, T]; (None, None) when
    every token is real, so that the unmasked kernels run. Telling the two apart reads the mask on the host, which
    on a GPU waits for the device to finish all queued work. A run passes the same mask tensors to every forward
    (one per guidance branch, or one for both batched), so the masks of the last few are kept and each is read
    once per run, not once per forward. A mask changed in place since (its `_version`) is read again.

    `additive`: the masks in SDPA's additive form in that dtype (`ops.additive_mask`), for an attention that takes
    it (`ops.mask_form_of`): built here once per run instead of inside every SDPA call; None: bool."""

    KEPT = 4  # text masks remembered: a prompt's, a negative prompt's, both batched, and a spare

    def __init__(self) -> None:
        self.kept: LastFewByTensor[tuple[torch.Tensor | None, torch.Tensor | None]] = LastFewByTensor(self.KEPT)

    def __call__(
        self,
        text_mask: torch.Tensor | None,
        video_tokens: int,
        image_len: int,
        additive: torch.dtype | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if text_mask is None:
            return None, None
        build = partial(_attention_masks, text_mask, video_tokens, image_len, additive)
        return self.kept.get(text_mask, build, key=(video_tokens, image_len, additive))


def _attention_masks(
    text_mask: torch.Tensor, video_tokens: int, image_len: int, additive: torch.dtype | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`TextMasks`' two masks of `text_mask`, built (one host read)."""
    if bool(text_mask.all()):
        return None, None
    valid = text_mask.bool()
    masks = (F.pad(valid, (video_tokens + image_len, 0), value=True)[:, None, None], valid[:, None, None])
    if additive is not None:
        masks = tuple(additive_mask(m, additive) for m in masks)
    return masks


def project_rows(layer: nn.Module, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """`layer(x)[..., rows]`, computing only those outputs (a linear layer's rows; None = all of them). Packed and
    LoRA-wrapped layers (motif_lite.weights) provide `forward_rows`."""
    if rows is None:
        return layer(x)
    if isinstance(layer, nn.Linear):
        return F.linear(x, layer.weight[rows], None if layer.bias is None else layer.bias[rows])
    return layer.forward_rows(x, rows)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]"""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]"""
    return x.transpose(1, 2).flatten(2)


QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def token_chunks(x: torch.Tensor, chunk: int | None, offset: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """(offset + start, x[:, start : start + chunk]) over the tokens of x [B, L, C]; one piece when chunk is None."""
    size = chunk or max(1, x.shape[1])
    for start in range(0, x.shape[1], size):
        yield offset + start, x[:, start : start + size]


def gather_qkv(pieces: Iterable[tuple[int, QKV]], length: int) -> QKV:
    """Write (start, (q, k, v)) pieces [B, H, l, D] into one [B, H, length, D] buffer each, in piece order: only
    the current piece's projections exist besides the three buffers."""
    buffers = None
    for start, piece in pieces:
        if buffers is None:
            if piece[0].shape[2] == length:  # one piece covers the sequence: it is the buffer
                return piece
            buffers = tuple(p.new_empty(*p.shape[:2], length, p.shape[3]) for p in piece)
        for buffer, part in zip(buffers, piece, strict=True):
            buffer[:, :, start : start + part.shape[2]] = part
        del piece, part  # released before the next piece is projected
    return buffers


def rope_rows(ctx: BlockContext, start: int, length: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The RoPE tables for tokens start .. start + length of the attended sequence (None past the rotated ones)."""
    if start >= ctx.cos.shape[0]:
        return None, None
    return ctx.cos[start : start + length], ctx.sin[start : start + length]


class QKVProjection(nn.Module):
    """to_q/to_k/to_v with per-head RMSNorm on Q and K.

    `start` is the position of x's first token in the attended sequence (for RoPE) when x is one piece of it;
    `heads` (a slice of the heads; None = all) projects only those heads' rows of Q, K and V.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(hidden, hidden)
        self.to_k = nn.Linear(hidden, hidden)
        self.to_v = nn.Linear(hidden, hidden)
        self.norm_q = nn.RMSNorm(head_dim, eps=1e-6)
        self.norm_k = nn.RMSNorm(head_dim, eps=1e-6)
        # Tokens per projection piece (None = a stream at once); set by runtime.chunking.
        self.token_chunk: int | None = None

    def project_q(self, x: torch.Tensor, ctx: BlockContext, start: int = 0, heads: slice | None = None) -> torch.Tensor:
        cos, sin = rope_rows(ctx, start, x.shape[1])
        q = split_heads(project_rows(self.to_q, x, self._rows(heads)), self._count(heads))
        return ctx.ops.rms_norm_rope(q, self.norm_q.weight, self.norm_q.eps, cos, sin)

    def project_kv(
        self, x: torch.Tensor, ctx: BlockContext, rope: bool = True, start: int = 0, heads: slice | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = rope_rows(ctx, start, x.shape[1]) if rope else (None, None)
        rows, count = self._rows(heads), self._count(heads)
        k = split_heads(project_rows(self.to_k, x, rows), count)
        k = ctx.ops.rms_norm_rope(k, self.norm_k.weight, self.norm_k.eps, cos, sin)
        return k, split_heads(project_rows(self.to_v, x, rows), count)

    def project_qkv(self, x: torch.Tensor, ctx: BlockContext, start: int = 0, heads: slice | None = None) -> QKV:
        return self.project_q(x, ctx, start=start, heads=heads), *self.project_kv(x, ctx, start=start, heads=heads)

    def _rows(self, heads: slice | None) -> slice | None:
        """The projections' output rows of a slice of heads (None: all)."""
        return None if heads is None else slice(heads.start * self.head_dim, heads.stop * self.head_dim)

    def _count(self, heads: slice | None) -> int:
        return self.heads if heads is None else heads.stop - heads.start


class JointAttention(QKVProjection):
    """Dual-stream (MMDiT) attention: separate projections per stream, one softmax over [video; context].

    RoPE on the video tokens only; the mask hides padded text keys.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__(hidden, heads, head_dim)
        self.add_q_proj = nn.Linear(hidden, hidden)
        self.add_k_proj = nn.Linear(hidden, hidden)
        self.add_v_proj = nn.Linear(hidden, hidden)
        self.norm_added_q = nn.RMSNorm(head_dim, eps=1e-6)
        self.norm_added_k = nn.RMSNorm(head_dim, eps=1e-6)
        self.to_out = nn.ModuleList([nn.Linear(hidden, hidden)])
        self.to_add_out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, N, C] video, context: [B, T', C] image + text; attended as one sequence [x; context]
        n = x.shape[1]
        video = ((start, self.project_qkv(piece, ctx, start)) for start, piece in token_chunks(x, self.token_chunk))
        context_pieces = token_chunks(context, self.token_chunk, offset=n)
        added = ((start, self.project_added_qkv(piece, ctx)) for start, piece in context_pieces)
        q, k, v = gather_qkv(chain(video, added), n + context.shape[1])
        heads_out = ctx.attention(q, k, v, ctx.mask)
        del q, k, v  # before the heads are merged (a copy with some attention kernels)
        out = merge_heads(heads_out)
        del heads_out  # freed once merged (unless the merge is a view of it)
        return self.to_out[0](out[:, :n]), self.to_add_out(out[:, n:])

    def project_added_qkv(self, context: torch.Tensor, ctx: BlockContext) -> QKV:
        """The context stream's Q, K, V (its own projections and norms, no RoPE)."""
        norm = ctx.ops.rms_norm_rope
        cq = norm(split_heads(self.add_q_proj(context), self.heads), self.norm_added_q.weight, self.norm_added_q.eps)
        ck = norm(split_heads(self.add_k_proj(context), self.heads), self.norm_added_k.weight, self.norm_added_k.eps)
        return cq, ck, split_heads(self.add_v_proj(context), self.heads)


class SingleAttention(QKVProjection):
    """Single-stream attention's projections over one concatenated sequence; RoPE on its first N tokens (the
    video). `SingleStreamBlock.attend` runs the attention itself (its K/V also serve the shared cross-attention)."""

    def project(
        self, pieces: Iterable[tuple[int, torch.Tensor]], length: int, ctx: BlockContext, heads: slice | None = None
    ) -> QKV:
        """Q, K, V [B, H, length, D] of a sequence given as (start, normalized tokens [B, l, C]) pieces in order
        (of the `heads` slice only: [B, h, length, D]); a generator of pieces lets the caller normalize each piece
        only when it is projected."""
        return gather_qkv(((start, self.project_qkv(piece, ctx, start, heads)) for start, piece in pieces), length)


class CrossAttention(QKVProjection):
    """Text cross-attention, diffusers layout: its own Q/K/V/out projections and QK norms.

    Query = the block's video attention output (RoPE applied); keys/values = the text tokens.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__(hidden, heads, head_dim)
        self.to_out = nn.ModuleList([nn.Linear(hidden, hidden)])

    def forward(
        self, attn_out: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor], ctx: BlockContext, start: int = 0
    ) -> torch.Tensor:
        # text_kv: this module's K/V of the text tokens (`project_kv(text, ctx, rope=False)`, projected once per
        # block); start: position of attn_out's first token in the video (RoPE), when it is one piece of it
        q = self.project_q(attn_out, ctx, start=start)
        return self.to_out[0](merge_heads(ctx.ops.attention(q, *text_kv, ctx.text_mask)))


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
        start: int = 0,
    ) -> torch.Tensor:
        q = self.query_proj(attn_out)
        if self.apply_query_norm:
            q = self.query_norm(q)
        cos, sin = rope_rows(ctx, start, attn_out.shape[1])
        q = ctx.ops.rms_norm_rope(split_heads(q, self.heads), norm_q.weight, norm_q.eps, cos, sin)
        return self.out_proj(merge_heads(ctx.ops.attention(q, *text_kv, ctx.text_mask)))
