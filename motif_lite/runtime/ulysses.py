"""The communication of Ulysses sequence parallel (runtime/parallel.py's `SequenceParallel`): the attention that
trades each rank's share of the tokens for all tokens of its share of the heads (one all-to-all before the inner
attention, one after, and an all-gather of the replicated context's outputs), and the all-gather of the video tokens
before `head`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from motif_lite.model.ops import AttentionFn


class UlyssesAttention:
    """An `AttentionFn` over a sequence that is, on this rank, `copies` runs of its share of tokens
    (counts[rank] each: the video tokens, or the DDT decoder's two copies) followed by tokens every rank holds
    whole (the image + text context, possibly none).

    Before attending, one all-to-all gives every rank all tokens of its H/sp heads, assembled in the
    single-process order [run 1 of ranks 0..sp-1; run 2 ...; replicated], so the mask (text keys) and any
    pattern of the inner attention see the usual sequence. After, one all-to-all sends each rank's queries
    back, and an all-gather over heads completes the replicated tokens' outputs.
    """

    def __init__(self, attend: AttentionFn, group: Any, rank: int, counts: tuple[int, ...], copies: int) -> None:
        self.attend, self.group, self.rank, self.counts, self.copies = attend, group, rank, counts, copies

    def inner_ops(self) -> list[AttentionFn]:
        """`runtime.kernels.WrapsOps`: the attention it runs on all tokens of its heads."""
        return [self.attend]

    # Eager inside compiled blocks (--compile), as the attention is (runtime/compile.py): its all-to-alls and
    # all-gather are torch.distributed's own calls, not collectives traced into every rank's graphs.
    @torch.compiler.disable
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # q, k, v: [B, H, copies * n_r + R, D]
        sp, heads = len(self.counts), q.shape[1]
        sharded = self.copies * self.counts[self.rank]
        mine = slice(self.rank * heads // sp, (self.rank + 1) * heads // sp)
        full = self._to_heads([t[:, :, :sharded] for t in (q, k, v)])  # 3 x [B, H/sp, copies * N, D]
        if q.shape[2] > sharded:
            full = [torch.cat([f, t[:, mine, sharded:]], dim=2) for f, t in zip(full, (q, k, v), strict=True)]
        out = self.attend(*full, mask)  # [B, H/sp, copies * N + R, D]
        del full
        total = self.copies * sum(self.counts)
        local = self._to_tokens(out[:, :, :total])  # [B, H, copies * n_r, D]
        if out.shape[2] == total:
            return local
        rest = [torch.empty_like(out[:, :, total:]) for _ in range(sp)]
        dist.all_gather(rest, out[:, :, total:].contiguous(), group=self.group)
        return torch.cat([local, torch.cat(rest, dim=1)], dim=2)

    def _to_heads(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """[B, H, copies * n_r, D] each (this rank's tokens, all heads) -> [B, H/sp, copies * N, D] each (all
        tokens, this rank's heads), in the single-process token order."""
        sp, counts, copies = len(self.counts), self.counts, self.copies
        b, h, n, d = tensors[0].shape
        send = tensors[0].new_empty(sp, len(tensors), b, h // sp, n, d)  # [destination, tensor, B, H/sp, n, D]
        for i, t in enumerate(tensors):
            send[:, i] = t.unflatten(1, (sp, h // sp)).movedim(1, 0)
        sizes = [len(tensors) * b * (h // sp) * copies * c * d for c in counts]
        received = send.new_empty(sum(sizes))
        dist.all_to_all_single(received, send.flatten(), sizes, [send[0].numel()] * sp, group=self.group)
        del send
        chunks = [
            r.view(len(tensors), b, h // sp, copies * c, d) for r, c in zip(received.split(sizes), counts, strict=True)
        ]
        runs = [
            chunk[..., j * c : (j + 1) * c, :] for j in range(copies) for chunk, c in zip(chunks, counts, strict=True)
        ]
        return list(torch.cat(runs, dim=-2).unbind(0))

    def _to_tokens(self, out: torch.Tensor) -> torch.Tensor:
        """[B, H/sp, copies * N, D] (all tokens, this rank's heads) -> [B, H, copies * n_r, D]."""
        sp, counts, copies = len(self.counts), self.counts, self.copies
        total, starts = sum(counts), [sum(counts[:i]) for i in range(sp)]
        # Per destination rank, its tokens of every run: [B, H/sp, copies * n_i, D], flattened one after another.
        send = torch.cat([
            torch.cat([out[:, :, j * total + s : j * total + s + c] for j in range(copies)], dim=2).flatten()
            for s, c in zip(starts, counts, strict=True)
        ])  # fmt: skip
        b, h, _, d = out.shape
        mine = copies * counts[self.rank]
        sizes = [b * h * copies * c * d for c in counts]
        received = out.new_empty(sp * b * h * mine * d)
        dist.all_to_all_single(received, send, [received.numel() // sp] * sp, sizes, group=self.group)
        return received.view(sp, b, h, mine, d).movedim(0, 1).flatten(1, 2)


def gather_tokens(x: torch.Tensor, counts: tuple[int, ...], group: Any) -> torch.Tensor:
    """[B, n_r, C] on each rank -> [B, N, C] on every rank (shares padded to the longest for the all-gather)."""
    longest = max(counts)
    padded = torch.nn.functional.pad(x, (0, 0, 0, longest - x.shape[1])).contiguous()
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:, :c] for p, c in zip(parts, counts, strict=True)], dim=1)
