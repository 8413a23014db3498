"""The Wan2.1 VAE: encoder, decoder and the `WanVAE` API the pipeline uses.

Shapes: pixels `[B, 3, F, H, W]` in [-1, 1]; latents `[B, z, 1 + (F - 1) / 4, H / 8, W / 8]` (Wan2.1 factors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.errors import ConfigError
from motif_lite.vae.bands import (
    Band,
    DownLevel,
    EncoderBand,
    LevelShape,
    crop_rows,
    largest_band_shares,
    plan_bands,
    plan_encoder_bands,
)
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.diffusers_habits import vae_method_advice
from motif_lite.vae.layers import CausalConv3d, CausalState, Downsample, MidBlock, ResidualBlock, RMSNorm, Upsample
from motif_lite.vae.posterior import DiagonalGaussian
from motif_lite.vae.tiling import (
    VAEMode,
    VAETile,
    blend_into,
    decode_tiled_step,
    divide_by_weights,
    tile_count,
    tile_grid,
)


class Encoder(nn.Module):
    """Pixels -> 2*z channels (posterior mean and log-variance). A flat list of down blocks, as in diffusers."""

    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in [1, *cfg.dim_mult]]
        self.conv_in = CausalConv3d(cfg.in_channels, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for level, (in_dim, out_dim) in enumerate(pairwise(dims)):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if level < len(cfg.dim_mult) - 1:
                blocks.append(Downsample(out_dim, temporal=cfg.temperal_downsample[level]))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(dims[-1])
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], 2 * cfg.z_dim, 3, padding=1)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        return self.head(self.down(x, state), state)

    def down(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        """conv_in and the down blocks: local layers only, so they can run on bands of rows (`bands.py`)."""
        x = self.conv_in(x, state)
        for block in self.down_blocks:
            x = block(x, state)
        return x

    def head(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        """The mid block (attention over whole frames) and the output head, at the latent resolution."""
        x = self.mid_block(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)

    def level_shapes(self) -> list[DownLevel]:
        """How each down level changes rows: conv_in and two 3x3 convs per residual block, then a downsampler."""
        levels, convs = [], 1  # conv_in
        for block in self.down_blocks:
            if isinstance(block, Downsample):
                levels.append(DownLevel(convs, True))
                convs = 0
            else:
                convs += 2
        return [*levels, DownLevel(convs, False)]

    def plan_bands(self, latent_hw: tuple[int, int], count: int) -> list[EncoderBand]:
        """`count` bands of latent rows (columns when wider than tall) and the input rows each encodes from."""
        height, width = latent_hw
        return plan_encoder_bands(self.level_shapes(), max(height, width), count, dim=-1 if width > height else -2)

    def band_share(self, latent_hw: tuple[int, int], count: int) -> float:
        """The largest band's share of the input rows (what one band's full-resolution tensors cost)."""
        bands = self.plan_bands(latent_hw, count)
        return max(b.in_rows[1] - b.in_rows[0] for b in bands) / bands[-1].in_rows[1]


class UpBlock(nn.Module):
    """num_res_blocks + 1 residual blocks, then an optional (spatial, maybe temporal) upsampler."""

    def __init__(self, in_dim: int, out_dim: int, num_resnets: int, upsample: str | None) -> None:
        super().__init__()
        dims = [in_dim] + [out_dim] * num_resnets
        self.resnets = nn.ModuleList(ResidualBlock(a, b) for a, b in pairwise(dims))
        up = None if upsample is None else Upsample(out_dim, temporal=upsample == "3d")
        self.upsamplers = None if up is None else nn.ModuleList([up])

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x, state)
        return x if self.upsamplers is None else self.upsamplers[0](x, state)


class Decoder(nn.Module):
    """z channels -> pixels, on a chunk of latent frames (one at a time when streaming)."""

    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        base = cfg.decoder_base_dim or cfg.base_dim
        dims = [base * m for m in [cfg.dim_mult[-1], *cfg.dim_mult[::-1]]]
        temporal_up = cfg.temperal_downsample[::-1]
        self.conv_in = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.mid_block = MidBlock(dims[0])
        blocks = []
        for level, (in_dim, out_dim) in enumerate(pairwise(dims)):
            # Every upsampler halves the channels, so each level after the first gets in_dim // 2.
            in_dim = in_dim if level == 0 else in_dim // 2
            last = level == len(cfg.dim_mult) - 1
            upsample = None if last else ("3d" if temporal_up[level] else "2d")
            blocks.append(UpBlock(in_dim, out_dim, cfg.num_res_blocks + 1, upsample))
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], cfg.out_channels, 3, padding=1)

    def forward(
        self, x: torch.Tensor, state: CausalState, frame_by_frame: bool = False, band: Band | None = None
    ) -> torch.Tensor:
        """[B, z, T, h, w] -> [B, 3, T', 8h, 8w]; T' = 1 + 4(T - 1) at the start of a stream, else 4T."""
        return self.upper(self.lower(x, state), state, frame_by_frame, band)

    def lower(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        """conv_in and the mid block, always on whole frames: the mid block's attention sees the whole frame."""
        return self.mid_block(self.conv_in(x, state), state)

    def upper(
        self, x: torch.Tensor, state: CausalState, frame_by_frame: bool = False, band: Band | None = None
    ) -> torch.Tensor:
        """The up levels and the output head on the mid block's output.

        `frame_by_frame` takes the frames that the temporal upsamplers make through the higher levels one at a
        time: the same math (rounding may differ in the last bits), a quarter of the full-resolution memory.
        `band` computes only the rows one output band needs (`bands.py`); its caches are its own.
        """
        if not frame_by_frame:
            for level, block in enumerate(self.up_blocks):
                x = block(self._enter(level, x, band), state)
            return self._head(self._enter(len(self.up_blocks), x, band), state, band)
        return self._up_depth_first(x, state, band)

    def _up_depth_first(self, x: torch.Tensor, state: CausalState, band: Band | None) -> torch.Tensor:
        # Every frame goes through all the remaining levels before the next one starts. Time order per layer is
        # all the causal caches need, so the result equals the chunk-at-once decode. A stack instead of recursion,
        # so that no level's input stays referenced while the levels above it run (at 720p in fp32 that held
        # 0.6 GB more: the inputs of the 1/4, 1/2 and full-resolution levels).
        pending, frames = [(0, x)], []
        del x
        while pending:
            level, x = pending.pop()
            if x.shape[2] > 1:  # split into frames, frame 0 on top of the stack
                pending += [(level, x[:, :, t : t + 1]) for t in reversed(range(x.shape[2]))]
            elif level == len(self.up_blocks):
                frames.append(self._head(self._enter(level, x, band), state, band))
            else:
                pending.append((level + 1, self.up_blocks[level](self._enter(level, x, band), state)))
        return torch.cat(frames, dim=2)

    def _enter(self, level: int, x: torch.Tensor, band: Band | None) -> torch.Tensor:
        # The rows of `x` that up level `level` (the head when level == len(up_blocks)) computes from for `band`.
        if band is None:
            return x
        if level == 0:
            have = (0, x.shape[band.dim])  # the mid block's output: whole frames
        else:
            start, end = band.level_rows[level - 1]
            factor = 1 if self.up_blocks[level - 1].upsamplers is None else 2
            have = (start * factor, end * factor)
        want = band.head_rows if level == len(self.up_blocks) else band.level_rows[level]
        return crop_rows(x, have, want, band.dim)

    def _head(self, x: torch.Tensor, state: CausalState, band: Band | None = None) -> torch.Tensor:
        x = self.conv_out(F.silu(self.norm_out(x), inplace=True), state)
        return x if band is None else crop_rows(x, band.head_rows, band.out_rows, band.dim)

    def level_shapes(self) -> list[LevelShape]:
        """How each up level changes rows: two 3x3 convs per residual block (the 1x1 shortcut needs no halo)."""
        return [LevelShape(2 * len(block.resnets), block.upsamplers is not None) for block in self.up_blocks]

    def plan_bands(self, latent_hw: tuple[int, int], count: int) -> list[Band]:
        """`count` output bands across the longer side and what every up level computes for each (`bands.py`)."""
        height, width = latent_hw  # the head (norm_out, conv_out) adds one 3x3 conv
        return plan_bands(self.level_shapes(), 1, max(height, width), count, dim=-1 if width > height else -2)

    def band_shares(self, latent_hw: tuple[int, int], count: int) -> tuple[float, ...]:
        """The largest of `count` bands' share of each up level's rows (halo included)."""
        return largest_band_shares(self.level_shapes(), max(latent_hw), self.plan_bands(latent_hw, count))


class WanVAE(nn.Module):
    """The Wan2.1 video VAE. Build with `load_vae`; all methods run without autograd."""

    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        self.config = config
        z = config.z_dim
        self.encoder = Encoder(config)
        self.quant_conv = CausalConv3d(2 * z, 2 * z, 1)
        self.post_quant_conv = CausalConv3d(z, z, 1)
        self.decoder = Decoder(config)

    def __getattr__(self, name: str) -> object:
        """nn.Module's lookup of parameters and submodules; for a name it lacks that is a method of diffusers' VAE
        (`enable_tiling`, ...), the error says what does the same here."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            advice = vae_method_advice(name)
            if advice is None:
                raise
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}: {advice}", name=name, obj=self)

    def drop_encoder(self) -> None:
        """Free the encoder (decode-only use); `encode` raises afterwards."""
        self.encoder = None
        self.quant_conv = None

    # -- latent normalization (model space <-> VAE space), exactly as the diffusers Motif pipelines do it --

    def normalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents -> model space: (z - mean) / std per channel."""
        mean, std = self._latent_stats(z)
        return (z - mean) / std

    def denormalize_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> VAE latents: x * std + mean per channel."""
        mean, std = self._latent_stats(x)
        return x * std + mean

    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Built in float32 then cast to the latents' dtype, like the pipelines (same rounding).
        mean = torch.tensor(self.config.latents_mean).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(self.config.latents_std).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        return mean, std

    # -- encode --

    @torch.no_grad()
    def encode(self, video: torch.Tensor, bands: int = 1) -> DiagonalGaussian:
        """Encode pixels [B, 3, F, H, W] in [-1, 1] (F = 1 + 4k, H and W multiples of 8) into a posterior.

        Frames go through in causal chunks (1, then 4 at a time), so memory does not grow with F. `bands` > 1
        runs the encoder's down path in that many bands across the longer side, one after another, so only one
        band's full-resolution tensors are alive: exact (the same latents), more work for the overlap.
        """
        if self.encoder is None:
            raise ConfigError("this VAE was loaded with encoder=False; load it with encoder=True to encode")
        self._check_video(video)
        video = video.to(self.quant_conv.weight.dtype)
        s = self.config.spatial_factor
        band_plan = self.encoder.plan_bands((video.shape[3] // s, video.shape[4] // s), bands)  # checked first
        chunks = [video[:, :, :1], *video[:, :, 1:].split(self.config.temporal_factor, dim=2)]
        chunks = [c for c in chunks if c.shape[2] > 0]  # a single image has no later chunks
        if len(band_plan) == 1:
            state = CausalState()
            latents = torch.cat([self.encoder(chunk, state) for chunk in chunks], dim=2)
        else:
            state = CausalState()  # the head's own caches; every band has its own for the down path
            features = self._encode_bands_down(chunks, band_plan)
            latents = torch.cat([self.encoder.head(f, state) for f in features.split(1, dim=2)], dim=2)
        return DiagonalGaussian(self.quant_conv(latents, state))

    def _encode_bands_down(self, chunks: list[torch.Tensor], bands: list[EncoderBand]) -> torch.Tensor:
        # Bands outer, time inner: one band's causal caches at a time. Each chunk of 1 or 4 frames gives one
        # latent frame of features; every band writes the latent rows it owns.
        features = None
        for band in bands:
            state = CausalState()
            for t, chunk in enumerate(chunks):
                rows = crop_rows(chunk, (0, chunk.shape[band.dim]), band.in_rows, band.dim)
                s = self.config.spatial_factor
                part = self.encoder.down(rows, state)
                part = crop_rows(part, (band.in_rows[0] // s, band.in_rows[1] // s), band.out_rows, band.dim)
                if features is None:
                    b, c, _, h, w = chunks[0].shape
                    features = part.new_empty(b, part.shape[1], len(chunks), h // s, w // s)
                place = crop_rows(features[:, :, t : t + 1], (0, features.shape[band.dim]), band.out_rows, band.dim)
                place.copy_(part)
        return features

    def _check_video(self, video: torch.Tensor) -> None:
        cfg = self.config
        if video.dim() != 5 or video.shape[1] != cfg.in_channels:
            raise ConfigError(f"video must be [B, {cfg.in_channels}, F, H, W], got {list(video.shape)}")
        frames, height, width = video.shape[2:]
        if (frames - 1) % cfg.temporal_factor != 0:
            raise ConfigError(f"video has {frames} frames; the VAE needs 1 + {cfg.temporal_factor}k frames")
        if height % cfg.spatial_factor or width % cfg.spatial_factor:
            raise ConfigError(f"video size {height}x{width} must be a multiple of {cfg.spatial_factor}")

    # -- decode --

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, tile: VAETile | None = None, frame_by_frame: bool = True, bands: int = 1
    ) -> torch.Tensor:
        """Decode raw (denormalized) latents [B, z, T, h, w] into pixels [B, 3, 1 + 4(T-1), 8h, 8w] in [-1, 1].

        With `tile`, tiles are decoded one after another through all frames, so only one tile's causal caches
        exist at a time: the lowest-memory way to decode a whole clip. `frame_by_frame` and `bands`: see
        `decode_frames`.
        """
        self._check_latents(z)
        band_plan = self._band_plan(z, VAEMode(tile, frame_by_frame, bands))
        out = self._empty_video(z, z.device)
        if tile is not None and tile_count(z.shape[3], z.shape[4], tile) > 1:
            return self._decode_tiles_into(z, tile, out, frame_by_frame)
        if len(band_plan) > 1:
            return self._decode_bands_into(z, band_plan, out, frame_by_frame)
        done = 0
        for chunk in self.decode_frames(z, frame_by_frame=frame_by_frame):
            out[:, :, done : done + chunk.shape[2]] = chunk
            done += chunk.shape[2]
        return out

    def _empty_video(self, z: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        b, _, t, h, w = z.shape
        s = self.config.spatial_factor
        frames = self.config.video_frames(t)
        dtype = self.post_quant_conv.weight.dtype
        return torch.empty(b, self.config.out_channels, frames, h * s, w * s, dtype=dtype, device=device)

    def _decode_tiles_into(
        self, z: torch.Tensor, tile: VAETile, out: torch.Tensor, frame_by_frame: bool
    ) -> torch.Tensor:
        # Tiles outer, time inner: only one tile's causal caches are alive at a time (the caches, not the
        # output, dominate memory at 720p). The blend is `decode_frames(z, tile)`'s (`blend_into`, then one
        # `divide_by_weights`), so the numbers are the same.
        z = z.to(out.dtype)
        out.zero_()
        grid = tile_grid(z.shape[3], z.shape[4], tile, self.config.spatial_factor)
        for place in grid:
            state, done = CausalState(), 0
            for t in range(z.shape[2]):
                tile_z = z[:, :, t : t + 1, place.latent[0], place.latent[1]]
                pixels = self._decode_step(tile_z, state, frame_by_frame)
                blend_into(out[:, :, done : done + pixels.shape[2]], place, pixels)
                done += pixels.shape[2]
        return divide_by_weights(out, grid).clamp_(-1.0, 1.0)

    def _decode_bands_into(
        self,
        z: torch.Tensor,
        bands: list[Band],
        out: torch.Tensor,
        frame_by_frame: bool,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        for index, done, pixels in self._band_chunks(z, bands, frame_by_frame, on_step):
            band = bands[index]
            place = crop_rows(out, (0, out.shape[band.dim]), band.out_rows, band.dim)  # this band's pixels
            place[:, :, done : done + pixels.shape[2]] = pixels
        return out

    @torch.no_grad()
    def decode_bands(
        self,
        z: torch.Tensor,
        bands: list[Band],
        frame_by_frame: bool = True,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[torch.Tensor]:
        """Decode only `bands` (some of `decoder.plan_bands(z.shape[3:], count)`) through all frames: one CPU
        tensor per band, [B, 3, F, its rows, W] (or [B, 3, F, H, its columns]). The ranks of a parallel run
        each decode their share of the bands this way; the pixels equal those of a whole-frame decode."""
        self._check_latents(z)
        shape = self._empty_video(z, "meta").shape
        outs = []
        for band in bands:
            rows = list(shape)
            rows[band.dim] = band.out_rows[1] - band.out_rows[0]
            outs.append(torch.empty(rows, dtype=self.post_quant_conv.weight.dtype))
        for index, done, pixels in self._band_chunks(z, bands, frame_by_frame, on_step):
            outs[index][:, :, done : done + pixels.shape[2]] = pixels
        return outs

    def _band_chunks(
        self,
        z: torch.Tensor,
        bands: list[Band],
        frame_by_frame: bool,
        on_step: Callable[[int, int], None] | None,
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        # (band index, its first frame, pixels) per band and latent frame. Bands outer, time inner, like tiles, but
        # exact. The mid block runs once per latent frame on whole frames; its outputs (384 x h x w per latent
        # frame, 11 MB at 720p in bf16) are kept for the bands.
        z = z.to(self.post_quant_conv.weight.dtype)
        state = CausalState()
        mids = [self.decoder.lower(self.post_quant_conv(z[:, :, t : t + 1], state), state) for t in range(z.shape[2])]
        for index, band in enumerate(bands):
            state, done = CausalState(), 0
            for t, mid in enumerate(mids):
                pixels = self.decoder.upper(mid, state, frame_by_frame, band).clamp_(-1.0, 1.0)
                yield index, done, pixels
                done += pixels.shape[2]
                if on_step is not None:
                    on_step(index * len(mids) + t + 1, len(bands) * len(mids))

    @torch.no_grad()
    def decode_frames(
        self,
        z: torch.Tensor,
        tile: VAETile | None = None,
        frame_by_frame: bool = True,
        bands: int = 1,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Decode latent frame by latent frame, yielding pixel chunks [B, 3, n, 8h, 8w] in [-1, 1].

        Latent frame 0 gives n = 1 frame, every later latent frame n = 4. Only one chunk of pixels (plus the
        causal caches) is alive at a time. `tile` splits each frame into overlapping spatial tiles.
        `frame_by_frame` (default) also takes the 4 frames of a chunk through the upper decoder levels one at a
        time, which quarters the working memory at full resolution; `False` runs the chunk at once, exactly the
        reference's computation (bit-identical to diffusers; the default differs from it by float rounding).
        `bands` > 1 decodes the clip in that many bands across its longer side, one after another through all
        frames, so only one band's causal caches and working tensors are alive: exact (not blended like tiles),
        a few percent more work for the halo rows. The whole video then collects in CPU memory before the first
        chunk is yielded. `on_step(done, total)` is called after every decode step (latent frame, per band).
        """
        self._check_latents(z)
        band_plan = self._band_plan(z, VAEMode(tile, frame_by_frame, bands))
        if len(band_plan) > 1:
            video = self._decode_bands_into(z, band_plan, self._empty_video(z, "cpu"), frame_by_frame, on_step)
            yield from video.split([1] + [self.config.temporal_factor] * (z.shape[2] - 1), dim=2)
            return
        step = partial(self._decode_step, frame_by_frame=frame_by_frame)
        z = z.to(self.post_quant_conv.weight.dtype)
        tiled = tile is not None and tile_count(z.shape[3], z.shape[4], tile) > 1
        state, tile_states = CausalState(), {}
        for t in range(z.shape[2]):
            frame = z[:, :, t : t + 1]
            if not tiled:
                pixels = step(frame, state)
            else:
                pixels = decode_tiled_step(step, frame, tile_states, tile, self.config.spatial_factor)
            yield pixels.clamp_(-1.0, 1.0)
            if on_step is not None:
                on_step(t + 1, z.shape[2])

    def _band_plan(self, z: torch.Tensor, mode: VAEMode) -> list[Band]:
        # Planned (and so checked: `mode` checked itself) before any decoding; one band is the whole frame.
        return self.decoder.plan_bands(z.shape[3:], mode.bands)

    def _decode_step(self, z: torch.Tensor, state: CausalState, frame_by_frame: bool) -> torch.Tensor:
        # [B, z, 1, h, w] -> [B, 3, n, 8h, 8w], n = 1 for the first latent frame of the stream, else 4.
        # One latent frame per call, the chunking of the reference.
        return self.decoder(self.post_quant_conv(z, state), state, frame_by_frame)

    def _check_latents(self, z: torch.Tensor) -> None:
        if z.dim() != 5 or z.shape[1] != self.config.z_dim or z.shape[2] == 0:
            raise ConfigError(f"latents must be [B, {self.config.z_dim}, T>=1, h, w], got {list(z.shape)}")
