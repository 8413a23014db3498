"""Previews while a clip samples: the clean-latent estimate through a linear latent -> RGB map, no decoder call.

    projection = fit_latent_rgb(vae)                 # once per VAE: one encode of a 256x256 color chart
    frames = projection.preview(vae.denormalize_latents(denoised))   # uint8 [F, 2h, 2w, 3], one per latent frame

Each latent pixel of the Wan2.1 VAE stands for an 8x8 pixel patch of 4 frames, and its 16 channels carry the
patch's colour almost linearly. The map is not a table of constants: it is fitted by least squares from a
synthetic chart of colour fields and gradients to the latents the loaded VAE's own encoder gives it, so it is
right for whichever Wan2.1-type VAE is loaded. It shows colours and layout, not detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CHART_SIZE = 256
CHART_FIELDS = 8  # colour fields per side of the chart


@dataclass(frozen=True)
class LatentRGB:
    """rgb = weight @ z + bias per latent pixel, for VAE-space latents (not model space); rgb in [-1, 1]."""

    weight: torch.Tensor  # [3, z] float32
    bias: torch.Tensor  # [3] float32

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, z, F, h, w] -> [B, 3, F, h, w] float32."""
        rgb = torch.einsum("cz,bzfhw->bcfhw", self.weight.to(latents.device), latents.float())
        return rgb + self.bias.to(latents.device).view(1, 3, 1, 1, 1)

    def preview(self, latents: torch.Tensor, upscale: int = 2) -> np.ndarray:
        """The first clip of a batch as uint8 frames [F, h * upscale, w * upscale, 3] (nearest upscaling)."""
        rgb = self(latents[:1])[0]  # [3, F, h, w]
        pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
        return pixels.repeat(upscale, axis=1).repeat(upscale, axis=2)  # upscaled as uint8: cheapest


def color_chart(size: int = CHART_SIZE, seed: int = 0) -> torch.Tensor:
    """A fixed test image [1, 3, 1, size, size] in [-1, 1]: random flat colour fields with a gradient across
    each, so the fit sees both plain colours and smooth changes."""
    g = torch.Generator().manual_seed(seed)
    fields = torch.rand(3, CHART_FIELDS, CHART_FIELDS, generator=g) * 2 - 1  # [3, n, n]
    image = F.interpolate(fields[None], size=(size, size), mode="nearest")[0]
    ramp = torch.linspace(-0.3, 0.3, size)
    image = (image + ramp[None, None, :] * torch.rand(3, 1, 1, generator=g)).clamp(-1, 1)
    return image[None, :, None]


@torch.no_grad()
def fit_latent_rgb(vae: torch.nn.Module, size: int = CHART_SIZE) -> LatentRGB:
    """Least-squares latent -> RGB map from the chart and its latents (the posterior mean) under `vae`.

    `vae` needs `encode(video) -> posterior with .mode()` and `config.spatial_factor`, as `WanVAE` has."""
    param = next(vae.parameters())
    chart = color_chart(size)
    latents = vae.encode(chart.to(param.device, param.dtype)).mode().float().cpu()  # [1, z, 1, h, w]
    factor = vae.config.spatial_factor
    target = F.avg_pool2d(chart[:, :, 0], factor)  # [1, 3, h, w]: the colour each latent pixel stands for
    z = latents[0, :, 0].flatten(1).T  # [h*w, z]
    rgb = target[0].flatten(1).T  # [h*w, 3]
    design = torch.cat([z, torch.ones(len(z), 1)], dim=1)
    solution = torch.linalg.lstsq(design.double(), rgb.double()).solution.float()  # [z + 1, 3]
    return LatentRGB(weight=solution[:-1].T.contiguous(), bias=solution[-1].contiguous())
