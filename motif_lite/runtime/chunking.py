"""Token-chunked feed-forward: bound the per-token MLP activations at long sequences.

    handle = apply_ff_chunking(transformer, chunk_tokens=8192)
    handle.remove()

- Dual-stream blocks: `ff` / `ff_context` are wrapped in `ChunkedFeedForward`, which runs them over slices of
  the sequence, so the [B, N, 6144] hidden activation exists for `chunk_tokens` tokens at a time.
- Single-stream blocks (and the DDT decoder, whose 2N tokens set the peak at 720p): their MLP branch is
  concatenated with the attention output before `proj_out`, inside the block, so a module wrapper bounds nothing;
  the block itself computes `proj_out([attn | gelu(proj_mlp(x))])` in chunks of its `token_chunk` tokens, which
  this feature sets.

Every op here acts on each token independently, so chunking gives the same numbers up to the matmul's rounding
for a different row count (tests: relative error <= 1e-6 in fp32).
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
    single_blocks: list[nn.Module] = field(default_factory=list)

    def remove(self) -> None:
        for parent, name, original in self.swapped:
            setattr(parent, name, original)
        for block in self.single_blocks:
            block.token_chunk = None
        self.swapped.clear()
        self.single_blocks.clear()


FF_NAMES = ("ff", "ff_context")


def apply_ff_chunking(model: nn.Module, chunk_tokens: int) -> ChunkingHandle:
    """Chunk the feed-forward of every block of a `MotifVideoTransformer`: wrap the dual-stream blocks' `ff` and
    `ff_context` in `ChunkedFeedForward`, and set the single-stream blocks' `token_chunk`."""
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
    for block in model.single_transformer_blocks:
        block.token_chunk = chunk_tokens
        handle.single_blocks.append(block)
    return handle
