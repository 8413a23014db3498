"""The Wan2.1 VAE config, read from a diffusers `vae/config.json` and validated."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from motif_lite.config import MAX_LAYERS, MAX_WIDTH, diffusers_values
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.json_values import is_count, is_number, read_json_object

# The official Wan2.1 per-channel latent statistics (also diffusers' defaults).
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip
# The fields config.json holds as lists: kept as tuples, so that a config is hashable (a cache key).
_SEQUENCES = ("dim_mult", "temperal_downsample", "latents_mean", "latents_std", "attn_scales")


@dataclass(frozen=True)
class WanVAEConfig:
    """Hyper-parameters of `AutoencoderKLWan` (Wan2.1 layout), same names as its config.json.

    The list fields are stored as tuples (lists given are converted), so that a config is hashable."""

    base_dim: int = 96
    decoder_base_dim: int | None = None
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD
    in_channels: int = 3
    out_channels: int = 3
    # Kept for completeness; only the Wan2.1 values are supported (checked in `validate`).
    attn_scales: tuple[float, ...] = ()
    is_residual: bool = False
    patch_size: int | None = None
    dropout: float = 0.0
    scale_factor_temporal: int | None = 4
    scale_factor_spatial: int | None = 8

    def __post_init__(self) -> None:
        for name in _SEQUENCES:  # anything else than a list stays as given, for `validate` to name
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(t) for t in self.temperal_downsample)

    def latent_frames(self, frames: int) -> int:
        """The latent frames of a video of `frames` frames: the first frame alone, then one per `temporal_factor`
        frames."""
        return (frames - 1) // self.temporal_factor + 1

    def video_frames(self, latent_frames: int) -> int:
        """The video frames `latent_frames` latent frames decode to (the inverse of `latent_frames`: 4k+1)."""
        return (latent_frames - 1) * self.temporal_factor + 1

    def latent_shape(self, width: int, height: int, frames: int) -> tuple[int, int, int, int, int]:
        """The latents of one width x height x frames video: [1, z_dim, latent frames, height / spatial_factor,
        width / spatial_factor]."""
        s = self.spatial_factor
        return (1, self.z_dim, self.latent_frames(frames), height // s, width // s)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> WanVAEConfig:
        """Build and validate a config; keys starting with '_' are metadata, unknown keys are ignored with a warning
        naming them, as diffusers ignores them with one (a misspelt `latents_std` would otherwise decode with the
        default statistics, unsaid), and the keys `_use_default_values` lists take their default, as in diffusers."""
        raw = diffusers_values(raw)
        class_name = raw.get("_class_name", "AutoencoderKLWan")
        if class_name != "AutoencoderKLWan":
            raise ConfigError(f"{source}: _class_name is {class_name!r}, expected 'AutoencoderKLWan'")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in raw if not k.startswith("_") and k not in known)
        if unknown:
            # Said from this line (as the transformer's config says its own): Python shows a warning once per message
            # and line, and a run reads the VAE config at several places.
            warnings.warn(f"{source}: ignoring unknown VAE config keys {unknown}", stacklevel=1)
        config = cls(**{k: v for k, v in raw.items() if k in known})
        config.validate(source)
        return config

    @classmethod
    def from_json(cls, path: Path) -> WanVAEConfig:
        return cls.from_dict(read_json_object(path, "VAE config", CheckpointError), source=str(path))

    def validate(self, source: str = "config") -> None:
        """Raise ConfigError naming the first bad value."""

        def bad(key: str, why: str) -> ConfigError:
            value = getattr(self, key)
            shown = list(value) if isinstance(value, tuple) else value  # a list field as config.json spells it
            return ConfigError(f"{source}: {key}={shown!r} {why}")

        # Upper bounds far above any VAE, so that a hand-edited 1e30 is named here rather than overflowing torch or
        # building layers for ever (Wan2.1: base_dim 96, 2 residual blocks, dim_mult [1, 2, 4, 4]).
        for key in ("base_dim", "z_dim", "in_channels", "out_channels"):
            if not is_count(getattr(self, key), MAX_WIDTH):
                raise bad(key, f"must be an integer from 1 to {MAX_WIDTH}")
        if not is_count(self.num_res_blocks, MAX_LAYERS):
            raise bad("num_res_blocks", f"must be an integer from 1 to {MAX_LAYERS}")
        if self.decoder_base_dim is not None and not is_count(self.decoder_base_dim, MAX_WIDTH):
            raise bad("decoder_base_dim", f"must be an integer from 1 to {MAX_WIDTH}, or null")
        widest = max(self.base_dim, self.decoder_base_dim or 0)
        dim_mult = self.dim_mult
        if not isinstance(dim_mult, tuple) or not 0 < len(dim_mult) <= MAX_LAYERS:
            raise bad("dim_mult", "must be a non-empty list of positive integers")
        if not all(is_count(m, MAX_WIDTH // widest) for m in dim_mult):
            raise bad("dim_mult", f"must be positive integers, each times base_dim at most {MAX_WIDTH}")
        if not is_number(self.dropout) or not 0 <= self.dropout <= 1:
            raise bad("dropout", "must be a number from 0 to 1")
        td = self.temperal_downsample
        if not isinstance(td, tuple) or len(td) != len(self.dim_mult) - 1 or not all(isinstance(t, bool) for t in td):
            raise bad("temperal_downsample", f"must be a list of {len(self.dim_mult) - 1} booleans (one per dim_mult "
                      "entry after the first)")  # fmt: skip
        for key in ("latents_mean", "latents_std"):
            values = getattr(self, key)
            if not isinstance(values, tuple) or len(values) != self.z_dim or not all(map(is_number, values)):
                raise bad(key, f"must be a list of z_dim={self.z_dim} numbers")
        if any(s <= 0 for s in self.latents_std):
            raise bad("latents_std", "must be positive")
        self._validate_wan21_only(bad)

    def _validate_wan21_only(self, bad) -> None:
        if self.attn_scales:
            raise bad("attn_scales", "is not supported (Wan2.1 uses [])")
        if self.is_residual:
            raise bad("is_residual", "is not supported (that is the Wan2.2 VAE; Motif-Video uses Wan2.1)")
        if self.patch_size is not None:
            raise bad("patch_size", "is not supported (Wan2.1 uses null)")
        if self.scale_factor_spatial not in (None, self.spatial_factor):
            raise bad("scale_factor_spatial", f"does not match dim_mult (expected {self.spatial_factor})")
        if self.scale_factor_temporal not in (None, self.temporal_factor):
            raise bad("scale_factor_temporal", f"does not match temperal_downsample (expected {self.temporal_factor})")
