"""The encoder's diagonal Gaussian posterior, drawing noise exactly like diffusers does."""

from __future__ import annotations

import copy

import torch


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) over latents; `params` is the encoder output [B, 2z, T, h, w]."""

    def __init__(self, params: torch.Tensor) -> None:
        self.mean, logvar = params.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def to(self, device: torch.device | str) -> DiagonalGaussian:
        """The same posterior on `device` (a copy: the mean, log-variance and std are not computed again)."""
        moved = copy.copy(self)
        moved.mean, moved.logvar, moved.std = (t.to(device) for t in (self.mean, self.logvar, self.std))
        return moved

    def mode(self) -> torch.Tensor:
        """The most likely latent (the mean)."""
        return self.mean

    def sample(self, generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        """mean + std * noise, with noise drawn as diffusers' `randn_tensor` draws it, so seeds reproduce."""
        return self.mean + self.std * _randn(self.mean.shape, generator, self.mean.device, self.mean.dtype)


def _randn(
    shape: torch.Size, generator: torch.Generator | list[torch.Generator] | None, device: torch.device, dtype
) -> torch.Tensor:
    # A CPU generator draws on the CPU and the result moves to `device`; a list means one generator per sample.
    if isinstance(generator, list) and len(generator) == 1:
        generator = generator[0]
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
        draws = [_randn((1, *shape[1:]), g, device, dtype) for g in generator]
        return torch.cat(draws).to(device)
    draw_device = device
    if generator is not None and generator.device.type == "cpu":
        draw_device = torch.device("cpu")
    return torch.randn(shape, generator=generator, device=draw_device, dtype=dtype).to(device)
