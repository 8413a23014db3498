"""Pure-torch references for the kernels that have no twin in `motif_lite.model.ops` (no triton import).

These are the fallbacks the dispatcher uses off-GPU and the references the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expand_block_mask(block_mask: torch.Tensor, block_size: int, lq: int, lk: int) -> torch.Tensor:
    """Block mask [.., nq, nk] -> the equivalent element mask [.., lq, lk]."""
    rows = block_mask.repeat_interleave(block_size, dim=-2)[..., :lq, :]
    return rows.repeat_interleave(block_size, dim=-1)[..., :lk]


def block_sparse_attention_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    block_mask: torch.Tensor | None = None,
    block_size: int = 128,
) -> torch.Tensor:
    """What `kernels.attention.block_sparse_attention` computes, one query tile at a time with SDPA.

    Memory stays O(block_size · Lk) per step instead of the full Lq x Lk element mask. Rows that see no key
    return zeros, like the kernel.
    """
    if block_mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
    lq, lk = q.shape[2], k.shape[2]
    out = torch.empty_like(q)
    for i, start in enumerate(range(0, lq, block_size)):
        q_tile = q[:, :, start : start + block_size]
        allowed = block_mask[:, :, i].repeat_interleave(block_size, dim=-1)[..., :lk]  # [B|1, H|1, Lk]
        allowed = allowed[:, :, None, :]
        if key_mask is not None:
            allowed = allowed & key_mask
        o = F.scaled_dot_product_attention(q_tile, k, v, attn_mask=allowed)
        out[:, :, start : start + block_size] = torch.where(allowed.any(-1, keepdim=True), o, 0)
    return out


def dequant_linear_torch(
    x: torch.Tensor,
    packed: torch.Tensor,
    qtype: int,
    out_features: int,
    in_features: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference for `dequant_matmul`: dequantize the whole weight to x.dtype, then `F.linear`."""
    from motif_lite.weights.dequant import dequantize  # written alongside; imported only when used

    weight = dequantize(packed, qtype, (out_features, in_features), x.dtype)
    return F.linear(x, weight, None if bias is None else bias.to(x.dtype))
