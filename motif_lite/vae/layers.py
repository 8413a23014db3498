"""Building blocks of the Wan2.1 VAE: causal 3D convolutions that can run on a stream of frame chunks.

Layout everywhere: video tensors are `[B, C, T, H, W]`. Module and parameter names mirror diffusers'
`AutoencoderKLWan` so its state dict loads without renaming.

Causality is what makes streaming exact: every temporal kernel looks only backwards, so feeding the frames in
chunks (with the last frames of each conv's input carried over in a `CausalState`) gives the same result as
feeding the whole clip at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CausalState:
    """Per-stream memory of the causal layers, passed explicitly through one encode or decode.

    `frames[conv]` holds the last input frames a conv needs from the past; `started` holds the resample
    layers that have already seen the first frame of the stream (which they treat specially).
    """

    frames: dict[nn.Module, torch.Tensor] = field(default_factory=dict)
    started: set[nn.Module] = field(default_factory=set)


class CausalConv3d(nn.Conv3d):
    """Conv3d with `2 * padding_t` frames of left (past-only) temporal padding taken from the stream state."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        pad_t, pad_h, pad_w = (padding,) * 3 if isinstance(padding, int) else padding
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0)
        # Padding as explicit zeros, like the reference: the conv then sees the same contiguous input (and
        # rounds the same way) as diffusers'. Temporal padding is past-only and comes from the stream state.
        self.spatial_padding = (pad_w, pad_w, pad_h, pad_h)
        self.past_frames = 2 * pad_t

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        keep = self.past_frames
        if keep == 0 and not any(self.spatial_padding):
            return super().forward(x)
        # The old cache is released once copied into `padded`, before the new one is cut: at full resolution
        # each cache is hundreds of MB, and holding both would add one to the peak.
        past = state.frames.pop(self, None) if keep else None
        padded = self._pad(x, past)
        if keep:
            # The last `keep` real input frames (past included; the zeros before frame 0 are made again by the
            # next `_pad`, so the first frame's caches are half size), cloned so they do not pin `padded`.
            pw, _, ph, _ = self.spatial_padding
            real = min(keep, x.shape[2] + (0 if past is None else past.shape[2]))
            state.frames[self] = padded[:, :, -real:, ph : ph + x.shape[3], pw : pw + x.shape[4]].clone()
        return super().forward(padded)

    def _pad(self, x: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        # One zero-filled buffer holding [zeros for frames before frame 0 | past frames | x], spatially padded:
        # the same contiguous input as the reference's cat + F.pad, with one copy instead of two.
        pw, _, ph, _ = self.spatial_padding
        b, c, t, h, w = x.shape
        n_past = 0 if past is None else past.shape[2]
        missing = self.past_frames - n_past
        padded = x.new_zeros(b, c, missing + n_past + t, h + 2 * ph, w + 2 * pw)
        inner = padded[:, :, :, ph : ph + h, pw : pw + w]
        if past is not None:
            inner[:, :, missing : missing + n_past] = past
        inner[:, :, missing + n_past :] = x
        return padded


FLOAT32_BAND_ELEMENTS = 1 << 24  # 64 MB of float32 per normalization band
# The dtypes the reference (`WanRMS_norm`) normalizes in float32; any other it normalizes in its own.
HALF_DTYPES = (torch.float16, torch.bfloat16)


class RMSNorm(nn.Module):
    """L2-normalizes over channels (dim 1), times sqrt(C) and a learned gain `gamma`."""

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        # gamma shape: [C, 1, 1] for [N, C, H, W] inputs, [C, 1, 1, 1] for [B, C, T, H, W] inputs.
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))
        self.scale = dim**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in HALF_DTYPES:  # float32 and float64 normalize in their own precision, as the reference
            return F.normalize(x, dim=1).mul_(self.scale).mul_(self.gamma)
        # Half precision: the reference normalizes a float32 copy. Every pixel is normalized on its own, so the
        # same math runs on row bands, bounding the float32 temporary (0.36 GB per full 720p frame at 96
        # channels) to about FLOAT32_BAND_ELEMENTS; each band is divided in place.
        out = torch.empty_like(x)
        rows = max(1, FLOAT32_BAND_ELEMENTS // max(1, x[..., :1, :].numel()))
        for start in range(0, x.shape[-2], rows):
            band = x[..., start : start + rows, :].float()
            band.div_(band.norm(2, dim=1, keepdim=True).clamp_min_(1e-12))  # = F.normalize(band, dim=1)
            out[..., start : start + rows, :] = band
        return out.mul_(self.scale).mul_(self.gamma)


class ResidualBlock(nn.Module):
    """norm -> SiLU -> causal conv, twice, plus a (1x1x1 conv) shortcut."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_dim)
        self.conv1 = CausalConv3d(in_dim, out_dim, 3, padding=1)
        self.norm2 = RMSNorm(out_dim)
        self.conv2 = CausalConv3d(out_dim, out_dim, 3, padding=1)
        self.conv_shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else None

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        # `h` is rebound at every step, so conv1's output is freed once normalized, before conv2 runs.
        h = F.silu(self.norm1(x), inplace=True)
        h = self.conv1(h, state)
        h = F.silu(self.norm2(h), inplace=True)
        h = self.conv2(h, state)
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x, state)
        return h.add_(shortcut)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame separately."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(frames))  # [BT, 3C, H, W]
        # One head; contiguous so SDPA sees the same memory layout (and rounding) as the reference.
        qkv = qkv.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # [BT, 1, HW, 3C]
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)  # [BT, 1, HW, C]
        out = out.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        out = self.proj(out).reshape(b, t, c, h, w).transpose(1, 2)
        return out + x


class MidBlock(nn.Module):
    """resnet -> attention -> resnet at the lowest resolution."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(dim, dim), ResidualBlock(dim, dim)])
        self.attentions = nn.ModuleList([AttentionBlock(dim)])

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self.resnets[0](x, state)
        x = self.attentions[0](x)
        return self.resnets[1](x, state)


def per_frame(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D layer to every frame: [B, C, T, H, W] -> [B*T, C, H, W] -> layer -> [B, C', T, H', W']."""
    b, c, t, h, w = x.shape
    y = layer(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class Upsample(nn.Module):
    """2x spatial upsampling (nearest + conv, halving channels); optionally 2x temporal first.

    The temporal step (`time_conv`) doubles the channels and interleaves the two halves as two frames. The very
    first frame of a stream is not doubled, so F latent frames become 1 + 2 * (F - 1) frames.
    """

    def __init__(self, dim: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"),
                                      nn.Conv2d(dim, dim // 2, 3, padding=1))  # fmt: skip
        self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0)) if temporal else None

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        if self.time_conv is not None:
            x = self._double_frames(x, state)
        return per_frame(self.resample, x)

    def _double_frames(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        first = None
        if self not in state.started:
            state.started.add(self)
            first, x = x[:, :, :1], x[:, :, 1:]
        if x.shape[2] > 0:
            b, c, t, h, w = x.shape
            y = self.time_conv(x, state).unflatten(1, (2, c))  # [B, 2, C, T, H, W]
            x = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # frames t0a, t0b, t1a, ...
        return x if first is None else torch.cat([first, x], dim=2)


class Downsample(nn.Module):
    """2x spatial downsampling (pad right/bottom + stride-2 conv); optionally 2x temporal after it.

    The temporal step is a stride-2 conv over frames; the first frame of a stream passes through unchanged, so
    1 + 2k frames become 1 + k. Streamed chunks after the first must have an even number of frames.
    """

    def __init__(self, dim: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = per_frame(self.resample, x)
        if self.time_conv is None:
            return x
        first = None
        if self not in state.started:
            state.started.add(self)
            first = x[:, :, :1]
        else:
            x = torch.cat([state.frames[self], x], dim=2)
        state.frames[self] = x[:, :, -1:].clone()
        out = self.time_conv(x, state) if x.shape[2] >= 3 else x[:, :, :0]
        return out if first is None else torch.cat([first, out], dim=2)
