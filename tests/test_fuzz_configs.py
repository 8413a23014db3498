"""Hand-edited checkpoint configs: every key of transformer/config.json given a value of the wrong JSON type, null,
NaN, Infinity, zero, a negative or huge number, or left out, either reads as a config the model can be built from
(and costed, as `check` and `run --dry-run` do), or is refused with `ConfigError` naming the file and the key. CPU,
no weights."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import shutil
from unittest.mock import ANY

import pytest
import torch
from fuzz_checks import assert_read_as_edited, entries, read_or_refused_naming
from tiny_config import TINY

from motif_lite.config import (
    TransformerConfig,
    assumed_values,
    config_differences,
    config_from_weights,
    default_rope_axes,
)
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.json_values import is_int
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


def reference_default(model_class: type, key: str) -> object:
    """What diffusers' `model_class` takes for `key` where config.json leaves it out (its argument's default)."""
    return inspect.signature(model_class.__init__).parameters[key].default


def expected_read(key: str, value: object, model_class: type) -> object:
    """What a config read from a file with `key` edited to `value` must hold there: the value, or diffusers'
    default for a key left out (ANY: no key of the config, as `unknown_key`)."""
    if key not in inspect.signature(model_class.__init__).parameters:
        return ANY
    return reference_default(model_class, key) if value is MISSING else value


@pytest.mark.filterwarnings("ignore:.*ignoring unknown transformer config keys")
@pytest.mark.parametrize("key", [*edited("x", MISSING), "unknown_key"])
def test_every_wrong_value_reads_as_a_usable_config_or_is_refused(key):
    """Read, the config differs from the unedited one in the key edited only, and holds the value edited in (or
    diffusers' default for a key left out); the model built from it has the sizes the config says."""
    from diffusers import MotifVideoTransformer3DModel

    unedited = dataclasses.asdict(TransformerConfig.from_dict(edited("x", MISSING), source=SOURCE))
    for value in WRONG_VALUES:
        with read_or_refused_naming(ConfigError, SOURCE, key):
            config = TransformerConfig.from_dict(edited(key, value), source=SOURCE)
            assert_read_as_edited(
                dataclasses.asdict(config), unedited, key, expected_read(key, value, MotifVideoTransformer3DModel)
            )
            transformer_flops(config, video_tokens=16, text_tokens=8)  # as check and --dry-run cost it
            with torch.device("meta"):  # built as the memory plan and the loader build it
                model = MotifVideoTransformer(config)
            assert_built_as_configured(model, config)


def assert_built_as_configured(model: MotifVideoTransformer, config: TransformerConfig) -> None:
    """The model's tensors are those of `config`: the config the loader infers from them (`config_from_weights`)
    is `config` in all that tensors show."""
    inferred = config_from_weights({name: tuple(t.shape) for name, t in model.state_dict().items()})
    shown = {f.name for f in dataclasses.fields(TransformerConfig)} - set(assumed_values(inferred))
    differ = {name for name in shown if getattr(inferred, name) != getattr(config, name)}
    assert not differ, f"the model built differs from its config in {sorted(differ)}"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_layers", 10**30, "num_layers must be an integer from 0 to 1024"),  # built blocks without end
        ("in_channels", 10**30, "in_channels must be an integer from 1 to 65536"),  # overflowed torch
        ("image_embed_dim", 10**30, "image_embed_dim must be an integer from 1 to 65536 or null"),
        ("image_embed_dim", True, "image_embed_dim must be an integer"),
        ("mlp_ratio", math.inf, "mlp_ratio must be a number > 0 and at most 64"),
        ("mlp_ratio", 0, "mlp_ratio must be a number > 0"),  # would build MLPs of no width, unsaid
        # Odd axes sum to the head width, but their RoPE tables come out 130 columns wide for 128: a shape error.
        ("rope_axes_dim", [15, 57, 56], r"rope_axes_dim must be 3 positive even integers, got \[15, 57, 56\]"),
        ("rope_theta", math.inf, "rope_theta must be a finite number > 0"),
        ("enable_text_cross_attention_dual", "12", "enable_text_cross_attention_dual must be true or false"),
        ("enable_text_cross_attention_single", None, "enable_text_cross_attention_single must be true or false"),
    ],
)
def test_values_that_crashed_are_refused_naming_the_file_and_key(key, value, message):
    with pytest.raises(ConfigError, match=f"^{SOURCE}: invalid transformer config: {message}"):
        TransformerConfig.from_dict(edited(key, value), source=SOURCE)


@pytest.mark.parametrize("head_dim", range(6, 258, 2))
def test_the_assumed_rope_axes_fit_every_even_head_width_from_6(head_dim):
    # What config_from_weights assumes must pass the config's own check: 3 positive even axes summing to the head.
    axes = default_rope_axes(head_dim)
    config = TransformerConfig(num_attention_heads=1, attention_head_dim=head_dim, rope_axes_dim=axes)
    assert sum(config.rope_axes_dim) == head_dim


def test_the_official_head_gets_the_official_rope_axes():
    assert default_rope_axes(128) == TransformerConfig().rope_axes_dim


def test_the_cross_attention_layout_is_no_config_difference():
    # The layout comes from the weights' key names, not config.json: two configs of one file never disagree on it.
    config = TransformerConfig()
    assert config_differences(config, config.replace(cross_attention_layout="original")) == {}
    assert config_differences(config, config.replace(rope_theta=5.0)) == {"rope_theta": (config.rope_theta, 5.0)}


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
    # Read, the config differs in the key edited only, and holds the value edited in or diffusers' default.
    from diffusers import AutoencoderKLWan

    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.vae.model import WanVAE

    unedited = dataclasses.asdict(WanVAEConfig.from_dict(edited_vae("x", MISSING), source=VAE_SOURCE))
    for value in WRONG_VALUES:
        with read_or_refused_naming(ConfigError, VAE_SOURCE, key):
            config = WanVAEConfig.from_dict(edited_vae(key, value), source=VAE_SOURCE)
            assert_read_as_edited(dataclasses.asdict(config), unedited, key,
                                  expected_read(key, value, AutoencoderKLWan))  # fmt: skip
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


def test_a_dim_mult_edited_to_another_length_is_named_beside_temperal_downsample():
    # The edited key is dim_mult; before, the message named only temperal_downsample, which no one edited.
    from motif_lite.vae.config import WanVAEConfig

    with pytest.raises(ConfigError, match=f"^{VAE_SOURCE}: temperal_downsample=.*one per dim_mult entry"):
        WanVAEConfig.from_dict(edited_vae("dim_mult", [1]), source=VAE_SOURCE)


# ------------------------------------------------------------------------------ text_encoder/config.json

TEXT_ENCODER_KEYS = [
    "text_config", "vision_config", "model_type", "mm_tokens_per_image",
    *(f"text_config.{key}" for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                        "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size")),
    *(f"vision_config.{key}" for key in ("hidden_size", "image_size", "patch_size")),
]  # fmt: skip


@pytest.fixture(scope="module")
def text_encoder_config(checkpoint) -> dict:
    return json.loads((checkpoint / "text_encoder" / "config.json").read_text())


def edited_json(values: dict, key: str, value: object) -> str:
    """A JSON file's text with `key` (a dotted path into its `values`: text_config.hidden_size) set to `value`, or
    left out (MISSING)."""
    values = json.loads(json.dumps(values))
    *sections, name = key.split(".")
    part = values
    for section in sections:
        part = part[section]
    if value is MISSING:
        part.pop(name, None)
    else:
        part[name] = value
    return json.dumps(values)


@pytest.mark.parametrize("key", TEXT_ENCODER_KEYS)
def test_every_wrong_text_encoder_value_parses_and_builds_or_is_refused(tmp_path, text_encoder_config, key):
    """Before: a string or null size crashed the dry run's cost estimate, a section missing keys or a negative, zero
    or huge size crashed transformers or torch as the encoder was built (TypeError, AttributeError, ...)."""
    from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.encoders.text_config import parse_text_encoder_config
    from motif_lite.runtime.activation_memory import TextEncoderShape
    from motif_lite.runtime.cost import text_encoder_flops

    path = tmp_path / "text_encoder" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(text_encoder_config))
    unedited = parse_text_encoder_config(path).to_dict()
    # Read, the config differs in the key edited only (a section: in its keys), and holds the value edited in or
    # transformers' default for a key left out.
    defaults = entries(T5Gemma2EncoderConfig().to_dict())
    for value in WRONG_VALUES:
        path.write_text(edited_json(text_encoder_config, key, value))
        with read_or_refused_naming(ConfigError, str(path)):
            config = parse_text_encoder_config(path)
            expected = ANY if key.endswith("_config") else defaults[key] if value is MISSING else value
            assert_read_as_edited(config.to_dict(), unedited, key, expected)
            # As run's time estimate counts it: from the values the checkpoint's configs read and checked.
            text_encoder_flops(TextEncoderShape.of_config(CheckpointConfigs.read(tmp_path).text_encoder_config), 16)
            with torch.device("meta"):
                T5Gemma2Encoder(config)


@pytest.mark.parametrize("key", ["vision_config", "mm_tokens_per_image"])
def test_a_text_encoder_config_without_a_section_or_the_image_tokens_takes_transformers_defaults(
    tmp_path, text_encoder_config, key
):
    from transformers import T5Gemma2Encoder

    from motif_lite.encoders.text_config import check_text_encoder_config, parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(edited_json(text_encoder_config, key, MISSING))
    check_text_encoder_config(path)  # as the dry run reads it
    with torch.device("meta"):
        T5Gemma2Encoder(parse_text_encoder_config(path))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("mm_tokens_per_image", 255, "mm_tokens_per_image must be a square number"),
     ("text_config.num_hidden_layers", 1025, "text_config.num_hidden_layers must be an integer from 1 to 1,024"),
     ("model_type", "t5gemma2", "has model_type 't5gemma2', expected 't5gemma2_encoder'")],
)  # fmt: skip
def test_a_text_encoder_value_just_out_of_range_is_refused(tmp_path, text_encoder_config, key, value, message):
    from motif_lite.encoders.text_config import parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(edited_json(text_encoder_config, key, value))
    with pytest.raises(ConfigError, match=f"^{path}.*{message}"):
        parse_text_encoder_config(path)


# Keys whose wrong values transformers refused in words that name no key ("list index out of range", "'<' not
# supported between instances of 'str' and 'int'", "'12'"), or read and then crashed the run (a negative
# query_pre_attn_scalar made a complex attention scale): motif-lite's own checks name them.
NAMED_TEXT_ENCODER_KEYS = [
    "dtype", "text_config.dtype", "vision_config.dtype", "text_config.dropout_rate", "text_config.hidden_activation",
    "vision_config.hidden_act", "text_config.layer_types", "text_config.pad_token_id",
    "text_config.query_pre_attn_scalar", "text_config.rope_parameters.full_attention", "vision_config.model_type",
    "vision_config.num_channels",
    # transformers' own validation names these by the field alone ("Validation error for field 'attention_bias':",
    # its reason on a line the one-line message left out): the message names the section too, and the reason.
    "boi_token_index", "tie_word_embeddings", "text_config.attention_bias", "text_config.sliding_window",
    "text_config.rms_norm_eps", "vision_config.vision_use_head", "vision_config.layer_norm_eps",
]  # fmt: skip


@pytest.mark.parametrize("key", NAMED_TEXT_ENCODER_KEYS)
def test_every_wrong_text_encoder_value_of_a_checked_key_is_read_or_refused_naming_it(
    tmp_path, text_encoder_config, key
):
    from motif_lite.encoders.text_config import parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps(text_encoder_config))
    unedited = parse_text_encoder_config(path).to_dict()
    for value in WRONG_VALUES:
        path.write_text(edited_json(text_encoder_config, key, value))
        with read_or_refused_naming(ConfigError, str(path), key):
            assert_read_as_edited(parse_text_encoder_config(path).to_dict(), unedited, key)


@pytest.mark.parametrize(("wrong", "right"), [("text_config", "vision_config"), ("vision_config", "text_config")])
def test_a_field_both_sections_hold_is_named_with_the_section_that_refused_it(tmp_path, text_encoder_config, wrong,
                                                                               right):  # fmt: skip
    # transformers names the field alone, and both sections hold attention_dropout: it was named without either.
    from motif_lite.encoders.text_config import parse_text_encoder_config

    values = json.loads(edited_json(text_encoder_config, f"{right}.attention_dropout", 0.0))
    path = tmp_path / "config.json"
    path.write_text(edited_json(values, f"{wrong}.attention_dropout", "12"))
    with pytest.raises(ConfigError, match=rf"config\.json: transformers cannot read .*: {wrong}\.attention_dropout: "):
        parse_text_encoder_config(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("dtype", [1], "dtype must be the name of a torch float dtype"),
     ("text_config.dtype", "12", "text_config.dtype must be the name of a torch float dtype"),
     ("vision_config.dtype", 5, "vision_config.dtype must be the name of a torch float dtype"),
     ("text_config.dropout_rate", "12", "text_config.dropout_rate must be a number from 0 to 1, got '12'"),
     ("text_config.dropout_rate", 1.5, "text_config.dropout_rate must be a number from 0 to 1"),
     ("text_config.dropout_rate", MISSING, "text_config.dropout_rate is missing"),
     ("text_config", {"a": 1}, "text_config.dropout_rate is missing"),
     ("text_config.hidden_activation", "12", "text_config.hidden_activation must be an activation transformers has"),
     ("vision_config.hidden_act", "12", "vision_config.hidden_act must be an activation transformers has"),
     ("text_config.num_hidden_layers", MISSING, "text_config.layer_types lists 3 layers"),
     ("text_config.layer_types", ["full_attention"], "text_config.layer_types lists 1 layers"),
     ("text_config.pad_token_id", 10**30, "text_config.pad_token_id must be null or an integer from 0 to 355"),
     ("text_config.pad_token_id", 356, "text_config.pad_token_id must be null or an integer from 0 to 355"),
     ("text_config.query_pre_attn_scalar", -1, "text_config.query_pre_attn_scalar must be an integer > 0"),
     ("text_config.query_pre_attn_scalar", 0, "text_config.query_pre_attn_scalar must be an integer > 0"),
     ("text_config.rope_parameters.full_attention", "12",
      "text_config.rope_parameters.full_attention must be a JSON object"),
     ("vision_config.model_type", "12", "vision_config.model_type must be 'siglip_vision_model'"),
     ("vision_config.num_channels", -1, "vision_config.num_channels must be an integer from 1")],
)  # fmt: skip
def test_a_text_encoder_value_transformers_refused_without_naming_it_is_named(
    tmp_path, text_encoder_config, key, value, message
):
    from motif_lite.encoders.text_config import parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(edited_json(text_encoder_config, key, value))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {re.escape(message)}"):
        parse_text_encoder_config(path)


def test_a_field_both_sections_hold_is_never_named_as_the_wrong_sections(tmp_path, text_encoder_config):
    # transformers names the field only: attention_dropout is the text's and the vision model's, and naming
    # text_config's would send the user to the right one's twin (the section is the config class that refused it).
    from motif_lite.encoders.text_config import parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(edited_json(text_encoder_config, "vision_config.attention_dropout", "x"))
    with pytest.raises(ConfigError) as refused:
        parse_text_encoder_config(path)
    said = str(refused.value)
    assert "config: vision_config.attention_dropout: " in said and "text_config.attention_dropout" not in said


def test_transformers_long_reason_is_cut_and_a_reason_without_words_is_its_class(tmp_path, text_encoder_config):
    # A field of several types lists each type's error (about 300 characters): the message stays about one line.
    from motif_lite.encoders.text_config import _transformers_reason, parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_text(edited_json(text_encoder_config, "text_config.bos_token_id", {"a": [1]}))
    with pytest.raises(ConfigError) as refused:
        parse_text_encoder_config(path)
    why = str(refused.value).partition("text_config.bos_token_id: ")[2]
    assert why.startswith("Field 'bos_token_id'") and len(why) == 200 and why.endswith("..."), why
    assert _transformers_reason(AssertionError(), {}) == "AssertionError"  # a bare assert in transformers' code


def test_a_text_encoder_config_that_is_not_text_or_an_object_is_refused(tmp_path):
    from motif_lite.encoders.text_config import config_from_json, parse_text_encoder_config

    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "\xff"}')  # not UTF-8
    with pytest.raises(ConfigError, match=f"^{path}: the text encoder config is not valid JSON \\(not UTF-8 text"):
        parse_text_encoder_config(path)
    with pytest.raises(ConfigError, match="^config_json: the text encoder config is a list, not a JSON object$"):
        config_from_json("[1]", "config_json")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("text_config.hidden_size", "12", "text_config.hidden_size must be an integer from 1 to 1,048,576, got '12'"),
        ("text_config.vocab_size", 10**30, "text_config.vocab_size must be an integer from 1 to 1,048,576"),
        ("vision_config.patch_size", 0, "vision_config.patch_size must be an integer from 1"),
        ("text_config", None, "text_config must be a JSON object, got None"),
        ("mm_tokens_per_image", -1, "mm_tokens_per_image must be a square number"),
        ("text_config", {"a": 1}, "text_config.dropout_rate is missing"),
        ("text_config.query_pre_attn_scalar", -1, "text_config.query_pre_attn_scalar must be an integer > 0"),
        ("text_config.hidden_activation", "12", "text_config.hidden_activation must be an activation"),
    ],
)
@pytest.mark.parametrize("command", ["dry-run", "check", "run"])
def test_a_wrong_text_encoder_config_is_one_line_naming_the_file(
    checkpoint, tmp_path, capsys, text_encoder_config, key, value, message, command
):
    """Through the commands a user runs: one line naming the file and the key (`run`'s own checks are the dry run's,
    before any weights load; the file transformers rejects is parsed before the text encoder's weights load)."""
    from motif_lite import cli

    root = tmp_path / "ckpt"
    weights = None if command == "run" else shutil.ignore_patterns("*.safetensors")  # no weights: none may load
    shutil.copytree(checkpoint, root, ignore=weights)
    path = root / "text_encoder" / "config.json"
    path.write_text(edited_json(text_encoder_config, key, value))
    run = ["run", "-m", str(root), "-p", "a fox", "-W", "32", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    argv = {"dry-run": [*run, "--dry-run"], "check": ["check", "-m", str(root)], "run": [*run, "--steps", "1"]}
    code = cli.main(argv[command])
    out, err = capsys.readouterr()
    if command == "dry-run" and "activation" in message:  # a dry run does not import transformers, which knows them
        assert code == 0, err
    elif command == "check":
        assert code == cli.EXIT_USER_ERROR, out
        assert f"text_encoder/config.json: cannot be read as a T5Gemma2 encoder config: {path}: {message}" in out
    else:
        assert code == cli.EXIT_USER_ERROR and f"error: {path}: {message}" in err, err


def test_a_checkpoint_without_a_text_encoder_config_reads(checkpoint, tmp_path):
    """A run with a text encoder GGUF builds the encoder from the config the GGUF embeds: the checkpoint's own file
    may be absent, and reading the configs must not ask for it."""
    from motif_lite.checkpoint_configs import CheckpointConfigs

    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint, root, ignore=shutil.ignore_patterns("*.safetensors"))
    assert CheckpointConfigs.read(root).text_encoder
    (root / "text_encoder" / "config.json").unlink()
    assert not CheckpointConfigs.read(root).text_encoder


# ------------------------------------------------------------------------------ tokenizer/tokenizer_config.json

TOKENIZER_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "model_max_length",
                  "padding_side", "tokenizer_class"]  # fmt: skip


def tokenizer_copy(checkpoint, tmp_path, key: str, value: object):
    """A checkpoint folder holding the tiny checkpoint's tokenizer with `key` of tokenizer_config.json set to `value`
    (or left out), and the path of that file."""
    shutil.copytree(checkpoint / "tokenizer", tmp_path / "tokenizer", dirs_exist_ok=True)
    path = tmp_path / "tokenizer" / "tokenizer_config.json"
    values = json.loads((checkpoint / "tokenizer" / "tokenizer_config.json").read_text())
    if value is MISSING:
        values.pop(key)
    else:
        values[key] = value
    path.write_text(json.dumps(values))
    return tmp_path, path


def tokens_and_padding(root) -> tuple[list, int]:
    """What a run takes of the tokenizer: a prompt's tokens, and the token the prompts are padded with."""
    from motif_lite.encoders.text import _token_ids, load_tokenizer

    tokenizer = load_tokenizer(root)
    return _token_ids(tokenizer, ["a red fox"], 512), tokenizer.pad_token_id


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("key", TOKENIZER_KEYS)
def test_every_wrong_tokenizer_config_value_is_read_or_refused_naming_the_file_and_key(checkpoint, tmp_path, key):
    """Before: a model_max_length of another JSON type crashed the first prompt (TypeError), a pad_token of null
    or no token of the vocabulary ("12": transformers adds it, as id 356 of a 356-token vocabulary) broke the
    padding, and the others were named in transformers' words ("'list' object has no attribute 'removesuffix'")."""
    from motif_lite.encoders.text import load_tokenizer

    unedited_tokens, _ = tokens_and_padding(tokenizer_copy(checkpoint, tmp_path, "x", None)[0])
    for value in WRONG_VALUES:
        root, path = tokenizer_copy(checkpoint, tmp_path, key, value)
        with read_or_refused_naming(MotifLiteError, str(path), key):
            tokens, padding = tokens_and_padding(root)
            assert tokens == unedited_tokens or key in ("bos_token", "eos_token"), f"{key}={value!r:.40}"
            assert is_int(padding) and 0 <= padding < load_tokenizer(root).vocab_size, f"{key}={value!r:.40}"


def test_a_null_pad_token_is_named_as_the_file_spells_it(checkpoint, tmp_path):
    # The file says null, not Python's None: the message quotes the value as the user finds it in the JSON.
    from motif_lite.encoders.text import load_tokenizer

    root, path = tokenizer_copy(checkpoint, tmp_path, "pad_token", None)
    with pytest.raises(MotifLiteError, match=f"^{re.escape(str(path))}: pad_token is null, no token of the"):
        load_tokenizer(root)


# ------------------------------------------------------------------------------ tokenizer/tokenizer.json

TOKENIZER_JSON_KEYS = ["model.vocab", "model.merges", "model.type", "model.unk_token", "added_tokens", "normalizer",
                       "pre_tokenizer", "decoder", "post_processor"]  # fmt: skip


def tokenizer_json_copy(checkpoint, tmp_path, data: bytes):
    """A checkpoint folder holding the tiny checkpoint's tokenizer with `data` as its tokenizer.json, and that
    file's path."""
    shutil.copytree(checkpoint / "tokenizer", tmp_path / "tokenizer", dirs_exist_ok=True)
    path = tmp_path / "tokenizer" / "tokenizer.json"
    path.write_bytes(data)
    return tmp_path, path


def damaged_tokenizer_files(original: bytes) -> list[tuple[str, bytes]]:
    """(what was done, the bytes): tokenizer.json cut short, with a byte's top bit flipped (never UTF-8 then: an
    ASCII byte becomes a lone continuation byte), and with entries of the wrong JSON type or left out."""
    damaged = [(f"cut to {n} bytes", original[:n]) for n in (0, 1, len(original) // 2, len(original) - 1)]
    for at in (0, 1, len(original) // 3, len(original) // 2, len(original) - 2):
        flipped = bytearray(original)
        flipped[at] ^= 0x80
        damaged.append((f"byte {at} flipped", bytes(flipped)))
    values = json.loads(original)
    for key in TOKENIZER_JSON_KEYS:
        for value in ["12", [1], {"a": 1}, None, -1, 1.5, True, MISSING]:
            shown = "left out" if value is MISSING else repr(value)
            damaged.append((f"{key}={shown}", edited_json(values, key, value).encode()))
    return damaged


@pytest.mark.filterwarnings("ignore")
def test_a_damaged_tokenizer_json_is_read_as_before_or_refused_naming_the_file(checkpoint, tmp_path, caplog):
    """tokenizer.json cut short, with flipped bytes or with entries of the wrong type: the tokenizer reads as the
    unedited one (the same ids for a prompt, the same padding), or `CheckpointError` names the file in one line.
    Before: every entry the tokenizers library refused was named by the folder alone (some in several lines), and a
    null or missing model.vocab read as a vocabulary of the 5 special tokens (every word unknown). A null or missing
    post_processor reads as the file says (null is a valid post_processor), with no <bos> before the prompt: that
    one difference is read, and said in a warning naming the file (before: silently); no warning where the prompt
    reads as before."""
    from motif_lite.errors import CheckpointError

    original = (checkpoint / "tokenizer" / "tokenizer.json").read_bytes()
    unedited = tokens_and_padding(checkpoint)
    for what, data in damaged_tokenizer_files(original):
        root, path = tokenizer_json_copy(checkpoint, tmp_path, data)
        caplog.clear()
        try:
            read = tokens_and_padding(root)
        except CheckpointError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), f"{what}: {exc}"
            continue
        warned = [r.getMessage() for r in caplog.records if "post_processor" in r.getMessage()]
        if read == unedited:
            assert not warned, f"{what}: a warning for a tokenizer that reads as the official: {warned}"
            continue
        ([ids], _), pad = read
        assert (ids, pad) == (unedited[0][0][0][1:], unedited[1]), f"{what}: read as another tokenizer"  # no <bos>
        assert_special_tokens_said(warned, path, "<prompt>")


def assert_special_tokens_said(warned: list[str], path, layout: str) -> None:
    """`warned` is one line naming tokenizer.json `path` and its post_processor, the prompt's special tokens
    `layout` (as "<bos> <prompt> <eos>") and the official file's."""
    assert len(warned) == 1 and "\n" not in warned[0], warned
    assert warned[0].startswith(f"{path}: post_processor"), warned
    assert f"encoded as {layout}, the official file's as <bos> <prompt>:" in warned[0], warned


def with_post_processor(values: dict, edit) -> bytes:
    """tokenizer.json `values` (unchanged) as bytes, with `edit` applied to a copy of its post_processor."""
    values = json.loads(json.dumps(values))
    edit(values["post_processor"])
    return json.dumps(values).encode()


def eos_after(post_processor: dict) -> None:
    post_processor["single"].append({"SpecialToken": {"id": "<eos>", "type_id": 0}})
    post_processor["special_tokens"]["<eos>"] = {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
POST_PROCESSORS = {  # an edit of the official post_processor -> what it puts around a prompt
    "without <bos>": (lambda p: p.update(single=[{"Sequence": {"id": "A", "type_id": 0}}]), "<prompt>"),
    "with <eos> after": (eos_after, "<bos> <prompt> <eos>"),
    "<bos> as the <eos> id": (
        lambda p: p["special_tokens"]["<bos>"].update(ids=[1], tokens=["<eos>"]),
        "<eos> <prompt>",
    ),
    "ByteLevel, no template": (lambda p: (p.clear(), p.update(BYTE_LEVEL)), "<prompt>"),
}


@pytest.mark.parametrize("edit", POST_PROCESSORS)
def test_a_post_processor_with_other_special_tokens_is_read_and_said(checkpoint, tmp_path, caplog, edit):
    """A valid post_processor that puts other special tokens around a prompt than the official <bos> before it:
    read as the file says (the reference reads it so), and said in one line naming the file and the key (before:
    silently, and every prompt's text embeddings differed from the official files')."""
    from motif_lite.encoders.text import load_tokenizer

    change, layout = POST_PROCESSORS[edit]
    values = json.loads((checkpoint / "tokenizer" / "tokenizer.json").read_text())
    root, path = tokenizer_json_copy(checkpoint, tmp_path, with_post_processor(values, change))
    tokenizer = load_tokenizer(root)
    assert_special_tokens_said([r.getMessage() for r in caplog.records], path, layout)
    prompt = tokenizer.convert_ids_to_tokens(tokenizer("a fox", padding=False)["input_ids"])
    assert " ".join(prompt) == layout.replace("<prompt>", "a ▁ f o x")  # what the note says is what is read


def test_the_official_special_tokens_are_not_said(checkpoint, caplog):
    """No false alarm: the tiny checkpoint's tokenizer.json holds the official post_processor (<bos> before)."""
    from motif_lite.encoders.text import load_tokenizer

    tokenizer = load_tokenizer(checkpoint)
    assert tokenizer.convert_ids_to_tokens(tokenizer("a", padding=False)["input_ids"]) == ["<bos>", "a"]
    assert not [r.getMessage() for r in caplog.records if "post_processor" in r.getMessage()]


def test_a_null_post_processor_is_said_once_by_a_run(checkpoint, tmp_path, capsys):
    """The CLI prints the note as one "warning:" line, and the run goes on (null is valid)."""
    from motif_lite import cli

    values = json.loads((checkpoint / "tokenizer" / "tokenizer.json").read_text())
    root, path = tokenizer_json_copy(checkpoint, tmp_path, edited_json(values, "post_processor", None).encode())
    shutil.copytree(checkpoint, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("tokenizer.json"))
    run = ["run", "-m", str(root), "-p", "a fox", "-W", "32", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    assert cli.main([*run, "--steps", "1", "-o", str(tmp_path / "fox.mp4")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "post_processor" in line]
    assert warned == [f"warning: {path}: post_processor is null: every prompt is encoded as <prompt>, the official "
                      "file's as <bos> <prompt>: the text embeddings (and so the video) differ from the official "
                      "tokenizer's"]  # fmt: skip


def test_a_damaged_tokenizer_json_stops_a_run_in_one_line_naming_the_file(checkpoint, tmp_path, capsys):
    from motif_lite import cli

    values = json.loads((checkpoint / "tokenizer" / "tokenizer.json").read_text())
    damaged = edited_json(values, "added_tokens", "12").encode()
    root, path = tokenizer_json_copy(checkpoint, tmp_path, damaged)
    shutil.copytree(checkpoint, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("tokenizer.json"))
    run = ["run", "-m", str(root), "-p", "a fox", "-W", "32", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    assert cli.main([*run, "--steps", "1", "-o", str(tmp_path / "fox.mp4")]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"error: {path}: cannot be read as a tokenizer (invalid type" in err and "Traceback" not in err, err
