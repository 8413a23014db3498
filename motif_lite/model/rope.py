"""3D rotary position embedding over (frame, row, column) of the patch grid."""

from __future__ import annotations

import torch

from motif_lite.model.kept import LastKept


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


class RopeTables(LastKept[tuple[torch.Tensor, torch.Tensor]]):
    """`rope_3d` of the last grid asked for, on its device: a run's every forward has the same patch grid, so its
    tables are built once per run instead of once per forward (two dozen small ops and their kernels). The tables
    depend on the grid, the axes, theta and the device only (always float32: all four are the key, so a config
    changed since is honoured); the forwards share them and never write to them. Only the last grid's are held,
    until `clear` (the end of a run: at 720p they are ~0.1 GB, which the VAE decode that follows may need)."""

    def __call__(
        self, grid: tuple[int, int, int], axes_dim: tuple[int, int, int], theta: float, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(grid), tuple(axes_dim), theta, torch.device(device))
        return self.get(key, lambda: rope_3d(grid, axes_dim, theta, device))
