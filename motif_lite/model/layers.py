"""Small building blocks: embedders, AdaLN modulation, feed-forward.

Submodule names follow the official (diffusers) checkpoint so that weights load by identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.model.kept import LastKept

SINUSOID_DIM, MAX_PERIOD = 256, 10000.0  # the timestep sinusoid's width and longest period


def sinusoid_frequencies(
    device: torch.device | str, dim: int = SINUSOID_DIM, max_period: float = MAX_PERIOD
) -> torch.Tensor:
    """The timestep sinusoid's `dim / 2` frequencies, float32 on `device`."""
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=device) / half)


def timestep_sinusoid(timestep: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """[B] timesteps on the 0..1000 scale -> [B, dim] float32 as [cos | sin] (flip_sin_to_cos, no shift), with
    the `sinusoid_frequencies` `freqs` on timestep's device."""
    angles = timestep.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class SinusoidFrequencies(LastKept[torch.Tensor]):
    """`sinusoid_frequencies` on the last device asked for: the same for every forward of a run, so built once per
    run instead of once per forward (four small ops and their kernels). A plain attribute, not a buffer: it stays
    float32 through the model's `.to(dtype)`, and state dicts (checkpoints, GGUF files) never see it."""

    def __call__(self, device: torch.device) -> torch.Tensor:
        return self.get(device, lambda: sinusoid_frequencies(device))


class MLPEmbedder(nn.Module):
    """linear_1 -> activation -> linear_2."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, activation: nn.Module) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden)
        self.act = activation
        self.linear_2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class TimestepEmbedder(nn.Module):
    """Sinusoid of the timestep -> MLP: the `temb` that drives every AdaLN modulation."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.timestep_embedder = MLPEmbedder(SINUSOID_DIM, hidden, hidden, nn.SiLU())
        self.frequencies = SinusoidFrequencies()  # kept for the run's forwards (`MotifVideoTransformer.end_run`)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        sinusoid = timestep_sinusoid(timestep, self.frequencies(timestep.device))
        return self.timestep_embedder(sinusoid.to(dtype))


class ImageProjection(nn.Module):
    """SigLIP image embeddings (I2V) -> hidden size."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(in_dim)
        self.linear_1 = nn.Linear(in_dim, in_dim)
        self.linear_2 = nn.Linear(in_dim, hidden)
        self.norm_out = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.linear_1(self.norm_in(x)))
        return self.norm_out(self.linear_2(x))


class PatchEmbed(nn.Module):
    """[B, C, F, H, W] latents -> [B, N, hidden] tokens in (frame, row, column) order."""

    def __init__(self, patch: tuple[int, int, int], in_channels: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Modulation(nn.Module):
    """AdaLN: SiLU(temb) -> linear -> `count` vectors of size hidden (shift/scale/gate...). It takes SiLU(temb),
    which is the same for every block of a forward: the transformer computes it once (`BlockContext.silu_temb`)."""

    def __init__(self, hidden: int, count: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, count * hidden)
        self.count = count

    def forward(self, silu_temb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(silu_temb).chunk(self.count, dim=-1)


class GeluProjection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """hidden -> GELU(tanh) -> hidden. `net` indices match the checkpoint (index 1 was a dropout)."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GeluProjection(hidden, inner), nn.Identity(), nn.Linear(inner, hidden)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))
