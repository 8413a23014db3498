"""Token chunking: bound the per-token activations of long sequences to a chunk of tokens at a time.

    handle = apply_token_chunking(transformer, chunk_tokens=16384)
    handle.remove()

- Attention (every block): Q, K and V are projected (and normalized, RoPE applied) a chunk at a time into one
  buffer each, around a single attention call (`QKVProjection.token_chunk`, model/attention.py).
- Dual-stream blocks: `ff` / `ff_context` are wrapped in `ChunkedFeedForward`, which runs them over slices of
  the sequence, so the [B, N, 6144] hidden activation exists for `chunk_tokens` tokens at a time.
- Single-stream blocks (and the DDT decoder, whose 2N tokens set the peak at 720p): the block itself runs the
  input norm, the Q/K/V projections, the MLP branch and `proj_out([attn | gelu(proj_mlp(x))])` on pieces of its
  `token_chunk` tokens, which this feature sets; only Q, K, V and the attention output exist for all tokens.
  With `heads_per_call` they attend a group of heads at a time (each group's rows of the Q/K/V projections), so
  Q, K and V exist for one group only: the lowest floor, for a few percent more work per step.

Every op here acts on each token independently, so chunking gives the same numbers up to the matmul's rounding
for a different row count (tests: relative error <= 1e-6 in fp32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from motif_lite.errors import ConfigError
from motif_lite.model.attention import QKVProjection
from motif_lite.model.blocks import SingleStreamBlock


class ChunkedFeedForward(nn.Module):
    """Runs `inner` on token chunks of a [B, L, C] input and writes each chunk's result into one output tensor.

    `inner` is registered as a child, so while the wrapper is installed state-dict keys gain `.inner`
    (apply after loading, as every runtime feature).
    """

    def __init__(self, inner: nn.Module, chunk_tokens: int) -> None:
        super().__init__()
        self.inner = inner
        self.chunk_tokens = chunk_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[1]
        if tokens <= self.chunk_tokens:
            return self.inner(x)
        out = None
        for start in range(0, tokens, self.chunk_tokens):
            part = self.inner(x[:, start : start + self.chunk_tokens])
            if out is None:  # the output width is only known after the first chunk
                out = part.new_empty(x.shape[0], tokens, part.shape[-1])
            out[:, start : start + part.shape[1]] = part
        return out

    def extra_repr(self) -> str:
        return f"chunk_tokens={self.chunk_tokens}"


@dataclass
class ChunkingHandle:
    """Undo record: (parent, attribute name, original module) for every wrapped module."""

    swapped: list[tuple[nn.Module, str, nn.Module]] = field(default_factory=list)
    chunked: list[nn.Module] = field(default_factory=list)  # modules whose `token_chunk` was set

    def remove(self) -> None:
        for parent, name, original in self.swapped:
            setattr(parent, name, original)
        for module in self.chunked:
            module.token_chunk = None
            if isinstance(module, SingleStreamBlock):
                module.heads_per_call = None
        self.swapped.clear()
        self.chunked.clear()


FF_NAMES = ("ff", "ff_context")


def apply_token_chunking(model: nn.Module, chunk_tokens: int, heads_per_call: int | None = None) -> ChunkingHandle:
    """Chunk every per-token step of a `MotifVideoTransformer`: wrap the dual-stream blocks' `ff` and
    `ff_context` in `ChunkedFeedForward`, and set `token_chunk` on every attention and single-stream block; with
    `heads_per_call`, the single-stream blocks (the DDT decoder's among them) attend that many heads at a time."""
    if not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens={chunk_tokens!r} must be a positive integer")
    if heads_per_call is not None and (not isinstance(heads_per_call, int) or heads_per_call < 1):
        raise ConfigError(f"heads_per_call={heads_per_call!r} must be a positive integer or None")
    handle = ChunkingHandle()
    for block in model.transformer_blocks:
        for name in FF_NAMES:
            original = getattr(block, name)
            if isinstance(original, ChunkedFeedForward):
                raise ConfigError("token chunking is already applied to this model; remove() it first")
            setattr(block, name, ChunkedFeedForward(original, chunk_tokens))
            handle.swapped.append((block, name, original))
    for module in model.modules():
        if isinstance(module, QKVProjection | SingleStreamBlock):
            module.token_chunk = chunk_tokens
            handle.chunked.append(module)
        if isinstance(module, SingleStreamBlock):
            module.heads_per_call = heads_per_call
    return handle
