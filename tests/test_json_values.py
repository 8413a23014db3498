"""The JSON value checks (`json_values.py`) where a user's file meets them: a VAE config's counts and numbers (JSON's
`true` is Python's 1, and 0 is no count), and a config written in UTF-16 (diffusers reads UTF-8 alone). CPU."""

from __future__ import annotations

import json

import pytest

from motif_lite.config import MAX_LAYERS
from motif_lite.errors import ConfigError
from motif_lite.json_values import NotAJSONObject, parse_json_object, read_json_object
from motif_lite.vae.config import WanVAEConfig


def test_no_residual_blocks_is_not_a_count():
    with pytest.raises(ConfigError, match=r"vae\.json: num_res_blocks=0 must be an integer from 1 to 1024"):
        WanVAEConfig.from_dict({"num_res_blocks": 0}, source="vae.json")


def test_the_largest_count_allowed_is_accepted():
    assert WanVAEConfig.from_dict({"num_res_blocks": MAX_LAYERS}).num_res_blocks == MAX_LAYERS
    with pytest.raises(ConfigError, match="num_res_blocks=1025 must be"):
        WanVAEConfig.from_dict({"num_res_blocks": MAX_LAYERS + 1})


def test_true_is_no_number_for_a_vae_dropout():
    with pytest.raises(ConfigError, match="dropout=True must be a number from 0 to 1"):
        WanVAEConfig.from_dict({"dropout": True})
    assert WanVAEConfig.from_dict({"dropout": 1}).dropout == 1


def test_a_utf16_config_is_not_guessed_but_named(tmp_path):
    # json.loads would detect UTF-16 in bytes and read it; diffusers and transformers would not.
    text = json.dumps({"num_res_blocks": 2})
    with pytest.raises(NotAJSONObject, match=r"not UTF-8 text: byte 0 is 0xff"):
        parse_json_object(b"\xff\xfe" + text.encode("utf-16-le"))
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(ConfigError, match=r"config\.json: the VAE config is not valid JSON \(not UTF-8 text"):
        read_json_object(path, "VAE config")
