"""3D rotary position embedding over (frame, row, column) of the patch grid."""

from __future__ import annotations

import torch


def rope_3d(
    grid: tuple[int, int, int], axes_dim: tuple[int, int, int], theta: float, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables `[f*h*w, sum(axes_dim)]` (float32) for tokens in (frame, row, column) order.

    Each axis `a` of size `d` rotates pairs (2i, 2i+1) by `position * theta^(-2i/d)`, positions 0..n-1; the
    angles are computed in float64 as the reference does, then the three axes are concatenated.
    """
    positions = torch.meshgrid(*(torch.arange(n, dtype=torch.float64, device=device) for n in grid), indexing="ij")
    cos, sin = [], []
    for pos, dim in zip(positions, axes_dim, strict=True):
        inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
        angles = torch.outer(pos.reshape(-1), inv_freq)  # [tokens, dim/2]
        cos.append(angles.cos().repeat_interleave(2, dim=1))
        sin.append(angles.sin().repeat_interleave(2, dim=1))
    return torch.cat(cos, dim=1).float(), torch.cat(sin, dim=1).float()
