"""`text_encoder/config.json` checked before any weights load: the sizes motif-lite and the model build read from
it, then transformers' own reading of it. A hand-edited or damaged file crashed the dry run's cost estimate (a
string as a size) or transformers and torch as the encoder was built (a negative or huge size), each with a
traceback; each is now a `ConfigError` naming the file and the key."""

from __future__ import annotations

from pathlib import Path

from motif_lite.errors import ConfigError, shown
from motif_lite.json_values import is_count
from motif_lite.sampling.schedule import read_json_object

MAX_SIZE = 2**20  # far above the official sizes (a vocabulary of 262,208 the largest), far below an overflow
MAX_LAYERS = 1024
# The sizes the encoder is built from, in each section of the file: missing keys take transformers' defaults.
TEXT_SIZES = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
              "vocab_size", "num_hidden_layers")  # fmt: skip
VISION_SIZES = ("hidden_size", "intermediate_size", "num_attention_heads", "image_size", "patch_size",
                "num_hidden_layers")  # fmt: skip


def check_text_encoder_config(path: Path) -> dict:
    """The file's values, checked where motif-lite or the model build reads them; `ConfigError` otherwise."""
    values = read_json_object(path, "text encoder config")
    for section, keys in (("text_config", TEXT_SIZES), ("vision_config", VISION_SIZES)):
        part = values.get(section, {})
        if not isinstance(part, dict):
            raise ConfigError(f"{path}: {section} must be a JSON object, got {shown(part)}")
        for key in keys:
            most = MAX_LAYERS if key == "num_hidden_layers" else MAX_SIZE
            if key in part and not is_count(part[key], most):
                raise ConfigError(
                    f"{path}: {section}.{key} must be an integer from 1 to {most:,}, got {shown(part[key])}"
                )
    tokens = values.get("mm_tokens_per_image", 1)
    if not is_count(tokens, MAX_SIZE) or round(tokens**0.5) ** 2 != tokens:  # the image's tokens form a square
        raise ConfigError(f"{path}: mm_tokens_per_image must be a square number (e.g. 256), got {shown(tokens)}")
    return values


def parse_text_encoder_config(path: Path) -> object:
    """transformers' config of the text encoder in `path`, checked first (`check_text_encoder_config`); what
    transformers raises for a file it rejects (a validation error, or an AttributeError for a section missing keys
    it needs) as a `ConfigError` naming the file."""
    check_text_encoder_config(path)
    import torch
    from transformers import AutoConfig, T5Gemma2Encoder

    try:
        config = AutoConfig.from_pretrained(path.parent)
        with torch.device("meta"):  # no memory: a section missing a key the model needs fails only as it is built
            T5Gemma2Encoder(config)
        return config
    except Exception as exc:  # transformers' errors for a bad file are of many classes
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: transformers cannot read it as the text encoder's config: {reason}") from None
