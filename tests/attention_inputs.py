"""Attention inputs that look like a DiT's (shared by the 8-bit attention tests and benches) and error metrics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dit_like_qkv(
    batch: int,
    heads: int,
    length: int,
    dim: int,
    seed: int,
    outlier_channels: int = 6,
    outlier_offset: float = 10.0,
    offset: float = 0.5,
    share: float = 0.5,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v [B, H, L, D] after a QK RMSNorm, as DiT attention sees them.

    Each token's features get per-channel offsets shared by all tokens (N(0, offset) in every channel, and
    ±outlier_offset in a few outlier channels that q and k share) before the RMSNorm, whose weights are in
    [0.5, 2] and 3 on the outlier channels. Keys share `share` of their own query's features, so attention
    peaks near the diagonal; v has per-channel offsets too. Drawn on `device` (the same seed gives other numbers
    on a GPU than on the CPU)."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device)

    tokens = randn(batch, heads, length, dim)
    channels = torch.randperm(dim, generator=gen, device=device)[:outlier_channels]

    def qk_norm(x: torch.Tensor) -> torch.Tensor:
        bias = randn(heads, 1, dim) * offset
        bias[..., channels] = outlier_offset * torch.sign(randn(outlier_channels))
        weight = 0.5 + 1.5 * torch.rand(dim, generator=gen, device=device)
        weight[channels] = 3.0
        return F.rms_norm(x + bias, (dim,), eps=1e-6).mul_(weight).to(dtype)

    q = qk_norm(tokens)
    k = qk_norm(tokens.mul_(share).add_(randn(batch, heads, length, dim), alpha=math.sqrt(1 - share**2)))
    del tokens
    v = (randn(batch, heads, length, dim) + randn(heads, 1, dim)).to(dtype)
    return q, k, v


def random_qkv(
    bsz: int,
    heads: int,
    lq: int,
    lk: int,
    dim: int,
    device: str | torch.device,
    k_offset: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain normal q, k, v: q as the model's non-contiguous head view, k (shifted by `k_offset` in every channel,
    which int8 attention must remove) and v contiguous."""
    q = torch.randn(bsz, lq, heads * dim, device=device).view(bsz, lq, heads, dim).transpose(1, 2)
    k, v = torch.randn(2, bsz, heads, lk, dim, device=device).unbind(0)
    if k_offset:
        k = k + k_offset
    return q.to(dtype), k.to(dtype), v.to(dtype)


def key_padding(bsz: int, lk: int, valid: list[int], device: str | torch.device) -> torch.Tensor:
    """bool [B, 1, 1, Lk]: the first valid[b] keys of batch b are real."""
    return (torch.arange(lk, device=device) < torch.tensor(valid, device=device)[:, None])[:, None, None, :]


def trailing_padding(batch: int, length: int, padded: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """bool [B, 1, 1, L]: the last `padded` keys masked out (text padding)."""
    keep = torch.ones(batch, 1, 1, length, dtype=torch.bool, device=device)
    keep[..., length - padded :] = False
    return keep


def attention_error(out: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(cosine similarity, relative L1 error) of `out` against `reference`, over all elements, in float64."""
    a, b = out.double().flatten(), reference.double().flatten()
    return F.cosine_similarity(a, b, dim=0).item(), ((a - b).abs().sum() / b.abs().sum()).item()
