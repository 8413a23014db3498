"""The transformer's configuration: a dataclass read from the official `transformer/config.json`.

The keys are diffusers' `MotifVideoTransformer3DModel` arguments. When there is no config.json anywhere (a GGUF
file alone), `config_from_weights` infers every value from tensor names and shapes, except what weights cannot
show (`assumed_values`): `rope_theta` (10000, the value the official ComfyUI nodes set for this model; diffusers'
class default is 256), the RoPE split, and, when no block has cross-attention, `num_decoder_layers` (8, the
official count). `motif-lite verify` on the real weights settles rope_theta.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from motif_lite.errors import ConfigError
from motif_lite.json_values import is_int, is_number, read_json_object

CROSS_ATTENTION_LAYOUTS = ("diffusers", "original", "pr")

# What diffusers' MotifVideoTransformer3DModel uses for a key that config.json leaves out. A config.json
# saved by diffusers always has every key; a hand-written one is read the way the reference reads it.
REFERENCE_DEFAULTS: dict[str, Any] = {
    "in_channels": 33,
    "out_channels": 16,
    "num_attention_heads": 24,
    "attention_head_dim": 128,
    "num_layers": 20,
    "num_single_layers": 40,
    "num_decoder_layers": 0,
    "mlp_ratio": 4.0,
    "patch_size": 2,
    "patch_size_t": 1,
    "qk_norm": "rms_norm",
    "norm_type": "layer_norm",
    "text_embed_dim": 4096,
    "image_embed_dim": None,
    "rope_theta": 256.0,
    "rope_axes_dim": (16, 56, 56),
    "enable_text_cross_attention_dual": False,
    "enable_text_cross_attention_single": False,
}


def diffusers_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers config file's values as diffusers reads them: the keys its `_use_default_values` lists are
    dropped (diffusers gives those its class default, whatever the file says). diffusers' own save_config never
    writes that key, but a config dumped from a model's `.config` holds it."""
    defaulted = config.get("_use_default_values") or []
    return {k: v for k, v in config.items() if k not in defaulted and k != "_use_default_values"}


# Value used when weights cannot tell (GGUF files without an embedded config.json).
DEFAULT_ROPE_THETA = 10000.0
DEFAULT_DECODER_LAYERS = 8
# The reference pipeline's max_sequence_length: the text tokens of a prompt, at most (the text encoder cuts the rest).
MAX_PROMPT_TOKENS = 512


@dataclass(frozen=True)
class TransformerConfig:
    """Motif-Video transformer hyper-parameters. Defaults are the official Motif-Video 2B architecture."""

    in_channels: int = 33
    out_channels: int = 16
    num_attention_heads: int = 12
    attention_head_dim: int = 128
    num_layers: int = 12
    num_single_layers: int = 24  # encoder single-stream blocks + DDT decoder blocks
    num_decoder_layers: int = 8
    mlp_ratio: float = 4.0
    patch_size: int = 2
    patch_size_t: int = 1
    qk_norm: str = "rms_norm"
    norm_type: str = "layer_norm"
    text_embed_dim: int = 2560
    image_embed_dim: int | None = 1152
    rope_theta: float = DEFAULT_ROPE_THETA
    rope_axes_dim: tuple[int, int, int] = (16, 56, 56)
    enable_text_cross_attention_dual: bool = False
    enable_text_cross_attention_single: bool = True
    # Not a config.json key: which of the three cross-attention key layouts the weights use (keymap.py).
    cross_attention_layout: str = "diffusers"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rope_axes_dim", tuple(self.rope_axes_dim))
        _validate(self)

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def num_encoder_single_layers(self) -> int:
        return self.num_single_layers - self.num_decoder_layers

    @property
    def patch_volume(self) -> int:
        return self.patch_size_t * self.patch_size * self.patch_size

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TransformerConfig:
        """Read diffusers-style keys; keys starting with `_` are metadata, unknown keys are warned about."""
        values = diffusers_values(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in values if not k.startswith("_") and k not in known)
        if unknown:
            # Said from this line, not the caller's: Python shows a warning once per message and line, and a run
            # reads the config at two places (its checks, then the load), which said it twice.
            warnings.warn(f"{source}: ignoring unknown transformer config keys {unknown}", stacklevel=1)
        merged = {**REFERENCE_DEFAULTS, **{k: v for k, v in values.items() if k in known}}
        for name in ("rope_axes_dim",):
            if not isinstance(merged[name], list | tuple):
                raise ConfigError(f"{source}: {name} must be a list of 3 integers, got {merged[name]!r}")
        try:
            return cls(**merged)
        except (TypeError, ConfigError) as exc:  # the file's name with what is wrong in it
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> TransformerConfig:
        path = Path(path)
        return cls.from_dict(read_json_object(path, "transformer config"), source=str(path))

    def replace(self, **changes: Any) -> TransformerConfig:
        return dataclasses.replace(self, **changes)


# Bounds far beyond any Motif-Video model (the official widths are at most 4096, its blocks 36) on values a hand-edited
# config.json may hold: a typo's 10**30 overflowed torch when the model was built, or built blocks without end.
MAX_WIDTH = 2**16
MAX_LAYERS = 1024
MAX_MLP_RATIO = 64


def _validate(cfg: TransformerConfig) -> None:
    def require(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"invalid transformer config: {message}")

    for name in (
        "in_channels",
        "out_channels",
        "num_attention_heads",
        "attention_head_dim",
        "patch_size",
        "patch_size_t",
        "text_embed_dim",
    ):
        value = getattr(cfg, name)
        require(
            is_int(value) and 0 < value <= MAX_WIDTH, f"{name} must be an integer from 1 to {MAX_WIDTH}, got {value!r}"
        )
    for name in ("num_layers", "num_single_layers", "num_decoder_layers"):
        value = getattr(cfg, name)
        require(
            is_int(value) and 0 <= value <= MAX_LAYERS,
            f"{name} must be an integer from 0 to {MAX_LAYERS}, got {value!r}",
        )
    require(
        cfg.num_decoder_layers <= cfg.num_single_layers,
        f"num_decoder_layers ({cfg.num_decoder_layers}) exceeds num_single_layers ({cfg.num_single_layers})",
    )
    require(
        cfg.hidden_size <= MAX_WIDTH,
        f"num_attention_heads x attention_head_dim ({cfg.hidden_size}) must be at most {MAX_WIDTH}",
    )
    require(
        cfg.image_embed_dim is None or (is_int(cfg.image_embed_dim) and 0 < cfg.image_embed_dim <= MAX_WIDTH),
        f"image_embed_dim must be an integer from 1 to {MAX_WIDTH} or null, got {cfg.image_embed_dim!r}",
    )
    require(
        is_number(cfg.mlp_ratio) and 0 < cfg.mlp_ratio <= MAX_MLP_RATIO,
        f"mlp_ratio must be a number > 0 and at most {MAX_MLP_RATIO}, got {cfg.mlp_ratio!r}",
    )
    require(
        is_number(cfg.rope_theta) and 0 < cfg.rope_theta < math.inf,
        f"rope_theta must be a finite number > 0, got {cfg.rope_theta!r}",
    )
    for name in ("enable_text_cross_attention_dual", "enable_text_cross_attention_single"):
        value = getattr(cfg, name)
        require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
    axes = cfg.rope_axes_dim
    require(
        len(axes) == 3 and all(is_int(a) and a > 0 and a % 2 == 0 for a in axes),
        f"rope_axes_dim must be 3 positive even integers, got {list(axes)}",
    )
    require(
        sum(axes) == cfg.attention_head_dim,
        f"rope_axes_dim {list(axes)} must sum to attention_head_dim ({cfg.attention_head_dim})",
    )
    require(cfg.qk_norm == "rms_norm", f"qk_norm {cfg.qk_norm!r} is not supported (Motif-Video uses 'rms_norm')")
    require(
        cfg.norm_type == "layer_norm", f"norm_type {cfg.norm_type!r} is not supported (Motif-Video uses 'layer_norm')"
    )
    require(
        cfg.cross_attention_layout in CROSS_ATTENTION_LAYOUTS,
        f"cross_attention_layout must be one of {CROSS_ATTENTION_LAYOUTS}, got {cfg.cross_attention_layout!r}",
    )


def config_from_weights(shapes: Mapping[str, tuple[int, ...]], layout: str = "diffusers") -> TransformerConfig:
    """Infer the config from tensor names and shapes (in our module naming, i.e. after keymap.py)."""

    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ConfigError(f"cannot infer the transformer config: tensor {name!r} is missing")
        return tuple(shapes[name])

    hidden, in_channels, patch_t, patch, _ = shape("x_embedder.proj.weight")
    head_dim = _first_shape(shapes, r"(single_)?transformer_blocks\.\d+\.attn\.norm_q\.weight")[0]
    num_layers = _count_blocks(shapes, "transformer_blocks")
    num_single = _count_blocks(shapes, "single_transformer_blocks")
    cross_dual = any(re.match(r"transformer_blocks\.\d+\.cross_attn\.", k) for k in shapes)
    single_cross = {
        int(m.group(1)) for k in shapes if (m := re.match(r"single_transformer_blocks\.(\d+)\.cross_attn\.", k))
    }
    # Decoder blocks never have cross-attention: they are the trailing blocks without it.
    num_decoder = num_single - (max(single_cross) + 1) if single_cross else min(DEFAULT_DECODER_LAYERS, num_single)
    ff_dim = _first_shape(shapes, r"(single_)?transformer_blocks\.\d+\.(ff\.net\.0\.proj|proj_mlp)\.weight")[0]
    image = shapes.get("image_embedder.linear_1.weight")
    # The blocks build int(hidden * mlp_ratio): ff_dim / hidden may come back one short (453 / 448 * 448 is
    # 452.99999...), so it is nudged up to the next float that gives ff_dim again.
    mlp_ratio = ff_dim / hidden
    while int(hidden * mlp_ratio) < ff_dim:
        mlp_ratio = math.nextafter(mlp_ratio, math.inf)
    return TransformerConfig(
        in_channels=in_channels,
        out_channels=shape("proj_out.weight")[0] // (patch_t * patch * patch),
        num_attention_heads=hidden // head_dim,
        attention_head_dim=head_dim,
        num_layers=num_layers,
        num_single_layers=num_single,
        num_decoder_layers=num_decoder,
        mlp_ratio=mlp_ratio,
        patch_size=patch,
        patch_size_t=patch_t,
        text_embed_dim=shape("context_embedder.linear_1.weight")[1],
        image_embed_dim=None if image is None else image[1],
        rope_theta=DEFAULT_ROPE_THETA,
        rope_axes_dim=default_rope_axes(head_dim),
        enable_text_cross_attention_dual=cross_dual,
        enable_text_cross_attention_single=bool(single_cross),
        cross_attention_layout=layout,
    )


def assumed_values(config: TransformerConfig) -> dict[str, Any]:
    """The values of an inferred config (`config_from_weights`) that the weights could not show: assumed."""
    assumed = {"rope_theta": config.rope_theta, "rope_axes_dim": list(config.rope_axes_dim)}
    if not config.enable_text_cross_attention_single:  # otherwise the decoder blocks are those without it
        assumed["num_decoder_layers"] = config.num_decoder_layers
    return assumed


def assumed_note(config: TransformerConfig) -> str:
    """`assumed_values` as the warnings about an inferred config word them (one text for the safetensors and GGUF
    loaders): "rope_theta=10000, ... are assumed (weights cannot show them)"."""
    assumed = ", ".join(f"{k}={v}" for k, v in assumed_values(config).items())
    return f"{assumed} are assumed (weights cannot show them)"


def config_differences(a: TransformerConfig, b: TransformerConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (a's value, b's value)} for every config.json key where `a` and `b` differ."""
    keys = [f.name for f in fields(TransformerConfig) if f.name != "cross_attention_layout"]
    return {k: (getattr(a, k), getattr(b, k)) for k in keys if getattr(a, k) != getattr(b, k)}


def default_rope_axes(head_dim: int) -> tuple[int, int, int]:
    """The official split (16, 56, 56) of 128, scaled: 1/8 to time, the rest halved between height and width."""
    t = max(2, (head_dim // 8) // 2 * 2)
    hw = (head_dim - t) // 2 // 2 * 2
    return t, hw, head_dim - t - hw


def _count_blocks(shapes: Mapping[str, Any], prefix: str) -> int:
    indices = {int(m.group(1)) for k in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def _first_shape(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> tuple[int, ...]:
    for name, value in shapes.items():
        if re.fullmatch(pattern, name):
            return tuple(value)
    raise ConfigError(f"cannot infer the transformer config: no tensor matches {pattern!r}")
