"""Token-chunked feed-forward: run the dual-stream blocks' `ff` / `ff_context` over slices of the sequence, so the
[B, N, 6144] hidden activation exists for `chunk_tokens` tokens at a time instead of all N.

    handle = apply_ff_chunking(transformer, chunk_tokens=8192)
    handle.remove()

The feed-forward acts on each token independently, so slicing the token axis gives the same numbers (each output
row is the same matmul row); tests check bit equality on CPU.

Why only the dual blocks: in `SingleStreamBlock` the MLP branch is `gelu(proj_mlp(normed))`, concatenated with
the attention output *before* `proj_out`, all inside the block's forward. A wrapper around `proj_mlp` still has to
return the whole [B, L, 6144] tensor, and `proj_out` receives the already concatenated [B, L, 7680] input, so
wrapping either module bounds nothing. Bounding it needs the block itself to compute
`proj_out(cat(attn, gelu(proj_mlp(normed))))` per token chunk (a change to model/blocks.py; see docs/memory.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from motif_lite.errors import ConfigError


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

    def remove(self) -> None:
        for parent, name, original in self.swapped:
            setattr(parent, name, original)
        self.swapped.clear()


FF_NAMES = ("ff", "ff_context")


def apply_ff_chunking(model: nn.Module, chunk_tokens: int) -> ChunkingHandle:
    """Wrap every dual-stream block's `ff` and `ff_context` of a `MotifVideoTransformer` in `ChunkedFeedForward`."""
    if not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens={chunk_tokens!r} must be a positive integer")
    handle = ChunkingHandle()
    for block in model.transformer_blocks:
        for name in FF_NAMES:
            original = getattr(block, name)
            if isinstance(original, ChunkedFeedForward):
                raise ConfigError("feed-forward chunking is already applied to this model; remove() it first")
            setattr(block, name, ChunkedFeedForward(original, chunk_tokens))
            handle.swapped.append((block, name, original))
    return handle
