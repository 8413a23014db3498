"""`tokenizer/tokenizer_config.json` checked before transformers reads it, and the padding token after: a
hand-edited or damaged file was refused in transformers' words, which name neither the file nor the key ("'list'
object has no attribute 'removesuffix'"), or read and then crashed the first prompt (a model_max_length of text) or
padded prompts with a token the text encoder does not have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.errors import CheckpointError, ConfigError, shown
from motif_lite.json_values import is_number, read_json_object

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
PADDING_SIDES = ("right", "left")


def check_tokenizer_config(path: Path) -> None:
    """`CheckpointError` naming the file `path` and the key for a value of the wrong kind; a file that is not there
    is transformers' to miss (its files are checked as the checkpoint is found)."""
    if not path.is_file():
        return
    check_tokenizer_values(read_json_object(path, "tokenizer file", CheckpointError), path)


def check_tokenizer_values(values: dict, path: Path) -> None:
    """`check_tokenizer_config` of the file `path` as a caller read it already (`values`, its JSON object)."""

    def refuse(key: str, must: str) -> CheckpointError:
        return CheckpointError(f"{path}: {key} must be {must}, got {shown(values[key])}")

    for key in SPECIAL_TOKENS:
        if values.get(key) is not None and not isinstance(values[key], str):
            raise refuse(key, "a token (a string) or null")
    if values.get("model_max_length") is not None and not is_number(values["model_max_length"]):
        raise refuse("model_max_length", "a number or null")
    for key in ("padding_side", "truncation_side"):  # a long prompt's cut end: diffusers' too (either is read)
        if key in values and values[key] not in PADDING_SIDES:
            raise refuse(key, " or ".join(repr(side) for side in PADDING_SIDES))
    if values.get("tokenizer_class") is not None and not isinstance(values["tokenizer_class"], str):
        raise refuse("tokenizer_class", "the name of a tokenizer class or null")


# The sides a tokenizer takes from tokenizer.json's own section where tokenizer_config.json states none
_SIDE_SECTIONS = {"truncation_side": "truncation", "padding_side": "padding"}
_HEADER_BYTES = 4096  # tokenizers writes "version", "truncation" and "padding" first, before the vocabulary
_NO_LIMIT = int(1e30)  # transformers' model_max_length where the config gives none (VERY_LARGE_INTEGER)


def check_tokenizer_settings(tokenizer: PreTrainedTokenizerBase, folder: Path, argument: str) -> None:
    """`ConfigError` naming the setting where `tokenizer` (the caller's `argument`), loaded from the checkpoint's
    tokenizer `folder`, has other settings than `load_tokenizer(root)` gives it, as after
    `AutoTokenizer.from_pretrained(folder, truncation_side="left")`: the reference tokenizes prompts with the
    folder's settings. Compared: the sides a long prompt is cut and padded on, model_max_length, the special tokens
    the config names, and the tokens put around every prompt where add_bos_token or add_eos_token was given. Reads
    tokenizer_config.json and the first bytes of tokenizer.json only, the vocabulary not parsed again, unless one of
    those two was given (`_check_prompt_ends`)."""
    config = folder / "tokenizer_config.json"
    values = read_json_object(config, "tokenizer file", CheckpointError)
    check_tokenizer_values(values, config)
    limit = values.get("model_max_length")
    expected: dict[str, object] = {"model_max_length": _NO_LIMIT if limit is None else limit}
    for key, section in _SIDE_SECTIONS.items():
        expected[key] = values[key] if key in values else _side_of_section(tokenizer, folder, key, section)
    expected |= {key: values[key] for key in SPECIAL_TOKENS if key in values}
    for key, wanted in expected.items():
        got = getattr(tokenizer, key)
        if wanted is not None and got != wanted:
            raise _other_setting(argument, key, got, wanted, folder)
    _check_prompt_ends(tokenizer, folder, argument)


_PROMPT_ENDS = ("add_bos_token", "add_eos_token")


def _check_prompt_ends(tokenizer: PreTrainedTokenizerBase, folder: Path, argument: str) -> None:
    """Where add_bos_token or add_eos_token was given to from_pretrained: `ConfigError` when `tokenizer` puts other
    special tokens around a prompt than the `folder`'s own tokenizer does. Their effect, not their values, is
    compared: transformers 5.24 drops the config's two where tokenizer.json is there, and given either it rebuilds
    the post-processor from both, the other one False (add_eos_token=False alone drops <bos>, add_bos_token=True
    alone changes nothing for the official file, whose config may name neither). So the folder's tokenizer is
    loaded (seconds, in this case alone) and a sample prompt encoded by both."""
    given = {key: tokenizer.init_kwargs[key] for key in _PROMPT_ENDS if tokenizer.init_kwargs.get(key) is not None}
    if not given:
        return
    from transformers import AutoTokenizer

    got, wanted = _prompt_layout(tokenizer), _prompt_layout(AutoTokenizer.from_pretrained(folder))
    if got != wanted:
        settings = ", ".join(f"{key}={value!r}" for key, value in given.items())
        raise ConfigError(
            f"{argument} has {settings} where the checkpoint's tokenizer ({folder}) encodes every prompt as "
            f"{wanted}, this one as {got}: prompts would be tokenized unlike the reference. Pass "
            "motif_lite.encoders.text.load_tokenizer(root), or the tokenizer loaded from "
            f"{folder} without {'= or '.join(given)}= (or None, to load it with the text encoder)"
        )


def _side_of_section(tokenizer: PreTrainedTokenizerBase, folder: Path, key: str, section: str) -> str | None:
    """The side transformers takes where tokenizer_config.json states none: tokenizer.json's `section`'s direction,
    else the tokenizer class's default; None where the start of tokenizer.json does not say (then not compared)."""
    try:
        with (folder / "tokenizer.json").open("rb") as file:
            header = file.read(_HEADER_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(rf'"{section}"\s*:\s*', header)
    if found is None:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(header, found.end())
    except json.JSONDecodeError:
        return None
    if value is None:
        return getattr(type(tokenizer), key)
    direction = value.get("direction") if isinstance(value, dict) else None
    return direction.lower() if isinstance(direction, str) else None


def _other_setting(argument: str, key: str, got: object, wanted: object, folder: Path) -> ConfigError:
    return ConfigError(
        f"{argument} has {key}={got!r} where the checkpoint's tokenizer ({folder}) has {wanted!r}: prompts "
        "would be tokenized unlike the reference. Pass motif_lite.encoders.text.load_tokenizer(root), or the "
        f"tokenizer loaded from {folder} without {key}= (or None, to load it with the text encoder)"
    )


def check_tokenizer_file(path: Path) -> None:
    """Where transformers could not load the tokenizer: `CheckpointError` naming tokenizer.json `path` in one line
    when the tokenizers library cannot read it, or its added_tokens (which transformers reads itself) is no list
    of objects; transformers' own message names only the folder, and some of its messages span lines."""
    from tokenizers import Tokenizer

    if not path.is_file():
        return
    try:
        Tokenizer.from_file(str(path))
    except Exception as exc:  # the library's error for any entry it cannot read (its class is plain Exception)
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise CheckpointError(f"{path}: cannot be read as a tokenizer ({reason})") from exc  # `check` says the cause
    added = read_json_object(path, "tokenizer file", CheckpointError).get("added_tokens")
    if not isinstance(added, list) or not all(isinstance(token, dict) for token in added):
        raise CheckpointError(f"{path}: added_tokens must be a list of token objects, got {shown(added)}")


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """`CheckpointError` naming tokenizer.json `path` where its vocabulary holds nothing but the added (special)
    tokens, as when model.vocab is null or left out: the tokenizer reads, and every word of a prompt becomes the
    unknown token."""
    if tokenizer.vocab_size <= len(tokenizer.added_tokens_decoder):
        raise CheckpointError(
            f"{path}: model.vocab holds no tokens besides the {len(tokenizer.added_tokens_decoder)} added ones: "
            "every word of a prompt would be unknown to the text encoder"
        )


def check_padding(tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """`CheckpointError` naming `path` (the tokenizer's config) where the token prompts are padded with is none of
    the vocabulary's: null, or a name the vocabulary lacks (transformers adds it, past the text encoder's
    embeddings)."""
    pad = tokenizer.pad_token_id
    if pad is None or not 0 <= pad < tokenizer.vocab_size:
        named = "null" if tokenizer.pad_token is None else shown(tokenizer.pad_token)
        raise CheckpointError(
            f"{path}: pad_token is {named}, no token of the tokenizer's vocabulary (tokenizer.json): the text "
            "encoder pads prompts with it (the official file's: '<pad>')"
        )


# What the official tokenizer.json's post_processor (T5Gemma2's, as Gemma 3's) puts around every prompt: <bos>
# before it, nothing after; the text encoder was trained on prompts so encoded.
OFFICIAL_BEFORE_PROMPT = ("<bos>",)
OFFICIAL_AFTER_PROMPT: tuple[str, ...] = ()
_SAMPLE_PROMPT = "a red fox"


def special_tokens_note(tokenizer: PreTrainedTokenizerBase, path: Path) -> str | None:
    """A one-line warning naming tokenizer.json `path` and its post_processor where the tokenizer puts other special
    tokens around a prompt than the official file's <bos> before it (a null or left-out post_processor: none at
    all), else None. Such a file is valid and the reference pipeline reads it the same way, so it is not refused,
    but every prompt's text embeddings then differ from the official files'. In the tokenizers format only the
    post_processor adds special tokens; the layout is read off a sample prompt, as the text encoder's calls encode it
    (no padding, no truncation)."""
    before, after = _tokens_around_prompt(tokenizer)
    if (before, after) == (OFFICIAL_BEFORE_PROMPT, OFFICIAL_AFTER_PROMPT):
        return None
    official = " ".join([*OFFICIAL_BEFORE_PROMPT, "<prompt>", *OFFICIAL_AFTER_PROMPT])
    got = " ".join([*before, "<prompt>", *after])
    key = f"post_processor {_left_out_or_null(path)}".rstrip()
    return (
        f"{path}: {key}: every prompt is encoded as {got}, the official file's as {official}: the text embeddings "
        "(and so the video) differ from the official tokenizer's"
    )


def _tokens_around_prompt(tokenizer: PreTrainedTokenizerBase) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The special tokens `tokenizer` puts before and after a sample prompt, as the text encoder's calls encode it
    (no padding, no truncation)."""
    encoded = tokenizer(_SAMPLE_PROMPT, padding=False, truncation=False, return_special_tokens_mask=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    special = encoded["special_tokens_mask"]
    first, end = special.index(0), len(special) - special[::-1].index(0)  # the sample's own tokens: [first, end)
    return tuple(tokens[:first]), tuple(tokens[end:])


def _prompt_layout(tokenizer: PreTrainedTokenizerBase) -> str:
    """How `tokenizer` encodes every prompt, in words: "<bos> <prompt>"."""
    before, after = _tokens_around_prompt(tokenizer)
    return " ".join([*before, "<prompt>", *after])


def _left_out_or_null(path: Path) -> str:
    """ "is left out" or "is null" where tokenizer.json `path` has no post_processor, else ""."""
    values = read_json_object(path, "tokenizer file", CheckpointError)
    if "post_processor" not in values:
        return "is left out"
    return "is null" if values["post_processor"] is None else ""
