"""`text_encoder/config.json` checked before any weights load: the sizes motif-lite and the model build read from
it, then transformers' own reading of it. A hand-edited or damaged file crashed the dry run's cost estimate (a
string as a size) or transformers and torch as the encoder was built (a negative or huge size), each with a
traceback; each is now a `ConfigError` naming the file and the key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.errors import ConfigError, shown
from motif_lite.json_values import (
    NotAJSONObject,
    is_count,
    is_int,
    is_number,
    parse_json_object,
    read_json_object,
)
from motif_lite.weights.gguf_file import TEXT_ENCODER_ARCH

if TYPE_CHECKING:
    from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

MAX_SIZE = 2**20  # far above the official sizes (a vocabulary of 262,208 the largest), far below an overflow
MAX_LAYERS = 1024
# The sizes the encoder is built from, in each section of the file: missing keys take transformers' defaults.
TEXT_SIZES = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
              "vocab_size", "num_hidden_layers")  # fmt: skip
VISION_SIZES = ("hidden_size", "intermediate_size", "num_attention_heads", "image_size", "patch_size",
                "num_hidden_layers", "num_channels")  # fmt: skip
# The attention of each text layer (`text_config.layer_types`): what T5Gemma2 has, and its RoPE settings are for.
LAYER_TYPES = ("sliding_attention", "full_attention")
VISION_MODEL_TYPE = "siglip_vision_model"
_TOP_LEVEL = ("text_model.", "vision_tower.", "multi_modal_projector.")


# The official checkpoint's text_encoder/config.json, what of it shapes the tensors (and what transformers needs to
# build the encoder): a file of the user's given as the text encoder is checked against it before the checkpoint
# downloads. Built, it holds sizes.OFFICIAL_TEXT_ENCODER_PARAMS parameters (tests/test_hub_download.py checks it).
OFFICIAL_TEXT_ENCODER_CONFIG = {
    "model_type": TEXT_ENCODER_ARCH,
    "mm_tokens_per_image": 256,
    "text_config": {
        "vocab_size": 262144, "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-6, "sliding_window": 1024, "max_position_embeddings": 131072,
        # Sliding x 5 then full, repeating: full attention at layers 5, 11, 17, 23, 29.
        "layer_types": ["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(34)],
        "rope_parameters": {
            "full_attention": {"rope_type": "linear", "rope_theta": 1_000_000.0, "factor": 8.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "dropout_rate": 0.0,
    },
    "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
        "num_attention_heads": 16, "image_size": 896, "patch_size": 14, "layer_norm_eps": 1e-6,
        "vision_use_head": False,
    },
}  # fmt: skip


def official_text_encoder_config() -> T5Gemma2EncoderConfig:
    """transformers' config of the official text encoder (`OFFICIAL_TEXT_ENCODER_CONFIG`), for checks made before
    the checkpoint's own config.json is at hand."""
    return config_from_json(json.dumps(OFFICIAL_TEXT_ENCODER_CONFIG), "the official text encoder config (built-in)")


def model_key(name: str) -> str:
    """A key of the checkpoint's `text_encoder/*.safetensors` -> the `T5Gemma2Encoder` state-dict key.

    transformers saves the text model's tensors without their `text_model.` prefix (and renames them back on load);
    some exporters prefix everything with `encoder.`."""
    for prefix in ("model.encoder.", "encoder."):
        name = name.removeprefix(prefix)
    return name if name.startswith(_TOP_LEVEL) else f"text_model.{name}"


def check_text_encoder_config(path: Path) -> dict:
    """The file's values, checked where motif-lite or the model build reads them (`checked_text_encoder_values`)."""
    return checked_text_encoder_values(read_json_object(path, "text encoder config"), str(path))


def checked_text_encoder_values(values: dict, origin: str) -> dict:
    """`values` (read from `origin`), checked where motif-lite or the model build reads them (`check_sizes`,
    `check_build_values`; not yet the activations, which need transformers: `config_from_values` checks those)."""
    check_model_type(values, origin)
    check_sizes(values, origin)
    check_build_values(values, origin)
    return values


def check_model_type(values: object, origin: str) -> None:
    """`ConfigError` naming `origin` for a config that is no T5Gemma2 encoder's (another model's text encoder)."""
    if not isinstance(values, dict) or values.get("model_type") != TEXT_ENCODER_ARCH:
        found = values.get("model_type") if isinstance(values, dict) else type(values).__name__
        raise ConfigError(f"{origin} has model_type {found!r}, expected {TEXT_ENCODER_ARCH!r} (T5Gemma2 encoder)")


def check_sizes(values: dict, origin: str) -> None:
    """`ConfigError` naming `origin` (a file, a GGUF's metadata key) for a size the encoder cannot be built from."""
    for section, keys in (("text_config", TEXT_SIZES), ("vision_config", VISION_SIZES)):
        part = values.get(section, {})
        if not isinstance(part, dict):
            raise ConfigError(f"{origin}: {section} must be a JSON object, got {shown(part)}")
        for key in keys:
            most = MAX_LAYERS if key == "num_hidden_layers" else MAX_SIZE
            if key in part and not is_count(part[key], most):
                raise ConfigError(
                    f"{origin}: {section}.{key} must be an integer from 1 to {most:,}, got {shown(part[key])}"
                )
    tokens = values.get("mm_tokens_per_image", 1)
    if not is_count(tokens, MAX_SIZE) or round(tokens**0.5) ** 2 != tokens:  # the image's tokens form a square
        raise ConfigError(f"{origin}: mm_tokens_per_image must be a square number (e.g. 256), got {shown(tokens)}")


def check_build_values(values: dict, origin: str) -> None:
    """`ConfigError` naming `origin` and the key for a value transformers refuses in words that name no key ("list
    index out of range" for a dtype, "'<' not supported between instances of 'str' and 'int'" for a dropout rate),
    or reads and then fails on as the prompt is encoded (a negative `query_pre_attn_scalar`). The sections are
    objects (`check_sizes`)."""
    import torch

    def refuse(key: str, must: str, value: object) -> ConfigError:
        return ConfigError(f"{origin}: {key} must be {must}, got {shown(value)}")

    text, vision = values.get("text_config", {}), values.get("vision_config", {})
    for section, part in (("", values), ("text_config.", text), ("vision_config.", vision)):
        dtype = part.get("dtype")
        if dtype is not None and not (isinstance(dtype, str) and _is_float_dtype(getattr(torch, dtype, None))):
            raise refuse(
                f"{section}dtype", "the name of a torch float dtype (float32, bfloat16, float16) or null", dtype
            )
    if "dropout_rate" not in text:  # T5Gemma2's text config has no default for it: the build failed without it
        raise ConfigError(f"{origin}: text_config.dropout_rate is missing (the official file's is 0.0)")
    if not (is_number(text["dropout_rate"]) and 0 <= text["dropout_rate"] <= 1):
        raise refuse("text_config.dropout_rate", "a number from 0 to 1", text["dropout_rate"])
    _check_layer_types(text, origin)
    vocab, pad = text.get("vocab_size"), text.get("pad_token_id")
    if pad is not None and not (is_int(pad) and pad >= 0 and (not is_int(vocab) or pad < vocab)):
        last = f"{vocab - 1:,}" if is_int(vocab) else "text_config.vocab_size - 1"
        raise refuse("text_config.pad_token_id", f"null or an integer from 0 to {last}", pad)
    scalar = text.get("query_pre_attn_scalar", 1)  # the attention's scale is its inverse square root
    if not (is_int(scalar) and scalar > 0):
        raise refuse("text_config.query_pre_attn_scalar", "an integer > 0", scalar)
    rope = text.get("rope_parameters")
    if rope is not None and not isinstance(rope, dict):
        raise refuse("text_config.rope_parameters", "a JSON object (of each layer type's RoPE) or null", rope)
    for layer_type, parameters in (rope or {}).items():
        if parameters is not None and not isinstance(parameters, dict):
            raise refuse(f"text_config.rope_parameters.{layer_type}", "a JSON object or null", parameters)
    if vision.get("model_type", VISION_MODEL_TYPE) != VISION_MODEL_TYPE:
        raise refuse("vision_config.model_type", repr(VISION_MODEL_TYPE), vision["model_type"])


def check_activations(values: dict, origin: str) -> None:
    """`ConfigError` naming `origin` and the key for an activation transformers does not have (it raised a KeyError
    that said the name only: "'12'"). Apart from `check_build_values`: it imports transformers, which the dry run
    does not."""
    from transformers.activations import ACT2FN

    text, vision = values.get("text_config", {}), values.get("vision_config", {})
    for key, part, name in (("text_config.hidden_activation", text, "hidden_activation"),
                            ("vision_config.hidden_act", vision, "hidden_act")):  # fmt: skip
        if name in part and not (isinstance(part[name], str) and part[name] in ACT2FN):
            raise ConfigError(f"{origin}: {key} must be an activation transformers has (the official file's: "
                              f"gelu_pytorch_tanh), got {shown(part[name])}")  # fmt: skip


def _is_float_dtype(dtype: object) -> bool:
    import torch

    return isinstance(dtype, torch.dtype) and dtype.is_floating_point


def _check_layer_types(text: dict, origin: str) -> None:
    """`text_config.layer_types`: null (transformers' pattern), or one of `LAYER_TYPES` per layer."""
    layer_types = text.get("layer_types")
    if layer_types is None:
        return
    if not (isinstance(layer_types, list) and all(kind in LAYER_TYPES for kind in layer_types)):
        raise ConfigError(f"{origin}: text_config.layer_types must be a list of {' or '.join(LAYER_TYPES)}, one "
                          f"per layer, or null, got {shown(layer_types)}")  # fmt: skip
    layers = text.get("num_hidden_layers")
    if layers != len(layer_types):
        given = "missing" if layers is None else f"{layers}"
        raise ConfigError(f"{origin}: text_config.layer_types lists {len(layer_types)} layers, and "
                          f"text_config.num_hidden_layers is {given}: give one entry per layer")  # fmt: skip


def parse_text_encoder_config(path: Path) -> T5Gemma2EncoderConfig:
    """transformers' config of the text encoder in `path`, checked (`config_from_values`)."""
    return config_from_values(read_json_object(path, "text encoder config"), str(path))


def config_from_json(text: object, origin: str) -> T5Gemma2EncoderConfig:
    """As `config_from_values`, from config.json text (the copy a text encoder GGUF holds in its metadata, which may
    hold anything): `ConfigError` naming `origin` if it is no JSON object."""
    try:
        values = parse_json_object(text)
    except NotAJSONObject as exc:
        raise ConfigError(f"{origin}: the text encoder config is {exc}") from None
    return config_from_values(values, origin)


def config_from_values(values: dict, origin: str) -> T5Gemma2EncoderConfig:
    """A `T5Gemma2EncoderConfig` from a config.json's values (a checkpoint's file, or the copy a text encoder GGUF
    holds), checked before any weights load: `ConfigError` naming `origin` if it is no T5Gemma2 encoder config, for a
    size out of range (`check_sizes`), or for what transformers raises for a file it rejects (a validation error, or
    an AttributeError for a section missing keys it needs)."""
    check_model_type(values, origin)
    check_sizes(values, origin)
    check_build_values(values, origin)
    check_activations(values, origin)
    from transformers import T5Gemma2EncoderConfig

    try:
        config = T5Gemma2EncoderConfig.from_dict(values)
        meta_encoder(config)  # a section missing a key the model needs fails only as the model is built
    except Exception as exc:  # transformers' errors for a bad file are of many classes
        reason = _transformers_reason(exc, values)
        raise ConfigError(f"{origin}: transformers cannot read it as the text encoder's config: {reason}") from None
    return config


# transformers' validation of one field: its name on the first line, why on the next ("TypeError: Field ...").
_FIELD_ERROR = re.compile(r"Validation error for field '(\w+)':\s*(?:\w+: )?(.*)", re.DOTALL)


def _transformers_reason(exc: Exception, values: dict) -> str:
    """transformers' error in one line; a field's validation error with the key as the file spells it (the field
    in its section, where one section alone holds it: `text_config.attention_bias`) and its reason, which follows
    on a line of its own."""
    text = str(exc).strip()
    found = _FIELD_ERROR.match(text)
    if found is None:
        return (text.splitlines() or [type(exc).__name__])[0]
    field, why = found.group(1), found.group(2).splitlines()[0]
    sections = [
        ("", values),
        ("text_config.", values.get("text_config")),
        ("vision_config.", values.get("vision_config")),
    ]
    holders = [prefix for prefix, part in sections if isinstance(part, dict) and field in part]
    if len(holders) > 1:  # a field both sections hold (attention_dropout): the one whose config refused it
        holders = [prefix for prefix in holders if prefix == _refusing_section(values, holders)] or holders
    key = holders[0] + field if len(holders) == 1 else field
    return f"{key}: {why if len(why) <= 200 else why[:197] + '...'}"  # the types it tried may run long


def _refusing_section(values: dict, holders: list[str]) -> str | None:
    """Of the sections in `holders` ("text_config.", "vision_config.", "" for the top level) that hold a field
    transformers refused, the one whose own config class refuses its values alone; the top level when neither
    section's does."""
    from transformers import CONFIG_MAPPING, T5Gemma2EncoderConfig

    classes = {
        "text_config.": T5Gemma2EncoderConfig.sub_configs["text_config"],
        "vision_config.": CONFIG_MAPPING[VISION_MODEL_TYPE],  # the sub-config is an AutoConfig of this model type
    }
    for prefix in holders:
        if prefix in classes:
            try:
                classes[prefix](**values[prefix.rstrip(".")])
            except Exception:  # transformers' errors for a bad value are of many classes
                return prefix
    return "" if "" in holders else None


def meta_encoder(config: T5Gemma2EncoderConfig) -> T5Gemma2Encoder:
    """The encoder with every tensor on the meta device: no memory, no initialization."""
    import torch
    from transformers import T5Gemma2Encoder

    with torch.device("meta"):
        return T5Gemma2Encoder(config)
