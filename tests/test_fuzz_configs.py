"""Hand-edited checkpoint configs: every key of transformer/config.json given a value of the wrong JSON type, null,
NaN, Infinity, zero, a negative or huge number, or left out, either reads as a config the model can be built from
(and costed, as `check` and `run --dry-run` do), or is refused with `ConfigError` naming the file and the key. CPU,
no weights."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
from tiny_config import TINY

from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.runtime.cost import transformer_flops

MISSING = object()
WRONG_VALUES = ["12", [1], {"a": 1}, None, math.nan, math.inf, -math.inf, -1, 0, 10**30, True, 1.5, MISSING]
SOURCE = "ckpt/transformer/config.json"


def edited(key: str, value: object) -> dict:
    values = {**TINY, "mlp_ratio": 4.0, "patch_size": 2, "patch_size_t": 1, "qk_norm": "rms_norm"}
    if value is MISSING:
        values.pop(key, None)
    else:
        values[key] = value
    return json.loads(json.dumps(values))  # as the file reads back: tuples become lists


@pytest.mark.filterwarnings("ignore:.*ignoring unknown transformer config keys")
@pytest.mark.parametrize("key", [*edited("x", MISSING), "unknown_key"])
def test_every_wrong_value_reads_as_a_usable_config_or_is_refused(key):
    for value in WRONG_VALUES:
        with contextlib.suppress(ConfigError):
            config = TransformerConfig.from_dict(edited(key, value), source=SOURCE)
            transformer_flops(config, video_tokens=16, text_tokens=8)  # as check and --dry-run cost it
            with torch.device("meta"):  # built as the memory plan and the loader build it
                MotifVideoTransformer(config)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_layers", 10**30, "num_layers must be an integer from 0 to 1024"),  # built blocks without end
        ("in_channels", 10**30, "in_channels must be an integer from 1 to 65536"),  # overflowed torch
        ("image_embed_dim", 10**30, "image_embed_dim must be an integer from 1 to 65536 or null"),
        ("image_embed_dim", True, "image_embed_dim must be an integer"),
        ("mlp_ratio", math.inf, "mlp_ratio must be a number > 0 and at most 64"),
        ("rope_theta", math.inf, "rope_theta must be a finite number > 0"),
        ("enable_text_cross_attention_dual", "12", "enable_text_cross_attention_dual must be true or false"),
        ("enable_text_cross_attention_single", None, "enable_text_cross_attention_single must be true or false"),
    ],
)
def test_values_that_crashed_are_refused_naming_the_file_and_key(key, value, message):
    with pytest.raises(ConfigError, match=f"^{SOURCE}: invalid transformer config: {message}"):
        TransformerConfig.from_dict(edited(key, value), source=SOURCE)


def test_the_largest_sizes_taken_build_the_model():
    config = TransformerConfig.from_dict(edited("text_embed_dim", 2**16), source=SOURCE)
    with torch.device("meta"):
        MotifVideoTransformer(config)


# ----------------------------------------------------------------------------------------- vae/config.json

VAE_SOURCE = "ckpt/vae/config.json"


def edited_vae(key: str, value: object) -> dict:
    from tiny_pipeline import TINY_VAE

    values = {"_class_name": "AutoencoderKLWan", **TINY_VAE, "latents_mean": [0.0] * 16, "latents_std": [1.0] * 16}
    if value is MISSING:
        values.pop(key, None)
    else:
        values[key] = value
    return json.loads(json.dumps(values))


VAE_KEYS = ["base_dim", "decoder_base_dim", "z_dim", "in_channels", "out_channels", "num_res_blocks", "dim_mult"]


@pytest.mark.parametrize("key", [*VAE_KEYS, "dropout", "temperal_downsample", "latents_std"])
def test_every_wrong_vae_value_reads_as_a_usable_config_or_is_refused(key):
    # Before: base_dim, decoder_base_dim or in_channels at 1e30 overflowed torch, a list as dropout crashed, and
    # num_res_blocks at 1e30 built blocks for ever (check and run --dry-run build the VAE to size it).
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.vae.model import WanVAE

    for value in WRONG_VALUES:
        with contextlib.suppress(ConfigError):
            config = WanVAEConfig.from_dict(edited_vae(key, value), source=VAE_SOURCE)
            with torch.device("meta"):
                WanVAE(config)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("base_dim", 10**30, "must be an integer from 1 to 65536"),
        ("num_res_blocks", 10**30, "must be an integer from 1 to 1024"),
        ("dim_mult", [1, 2, 10**5, 4], "each times base_dim at most 65536"),
        ("dropout", [0.1], "must be a number from 0 to 1"),
    ],
)
def test_vae_values_that_crashed_are_refused_naming_the_file_and_key(key, value, message):
    from motif_lite.vae.config import WanVAEConfig

    with pytest.raises(ConfigError, match=f"^{VAE_SOURCE}: {key}=.*{message}"):
        WanVAEConfig.from_dict(edited_vae(key, value), source=VAE_SOURCE)
