"""The T5Gemma2 text encoder (and the SigLIP image tower inside it) behind one small wrapper.

The official checkpoint stores the encoder in `text_encoder/` (transformers' `T5Gemma2Encoder`), the Gemma
tokenizer in `tokenizer/` and the SigLIP preprocessing settings in `feature_extractor/`. The reference pipeline
pads every prompt to 512 tokens and masks the pads; we encode at the true length instead (the batch is padded
only to its longest prompt). This is exact, not an approximation:
- the encoder is bidirectional and pad *keys* are masked, so pads never change a valid token's output;
- padding is on the right, so valid tokens keep positions 0..n-1 (RoPE only sees relative offsets anyway,
  so even a left-padding tokenizer gives the same result);
- the two-sided sliding window is relative (|q - k|), so it selects the same valid keys either way.
`tests/test_text_encoder.py` checks this against the diffusers pipeline.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import traceback
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.config import MAX_PROMPT_TOKENS
from motif_lite.encoders.text_config import config_from_values, parse_text_encoder_config
from motif_lite.encoders.text_gguf import TextEncoderGGUF, load_text_encoder_gguf, read_text_encoder_gguf
from motif_lite.encoders.text_weights import weights_cast_to
from motif_lite.encoders.tokenizer_config import (
    check_padding,
    check_tokenizer_config,
    check_tokenizer_file,
    check_tokenizer_settings,
    check_tokenizer_values,
    check_vocabulary,
    special_tokens_note,
)
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.io.checkpoint_source import find_checkpoint
from motif_lite.json_values import read_json_object
from motif_lite.log_filters import filtered_log

if TYPE_CHECKING:  # importing it warns when torchvision is missing: load it only for image-to-video
    from transformers import SiglipImageProcessor

# User-facing notes (a truncated prompt) go through logging: a plain message, no source line; the CLI prints them
# as "warning: ...".
log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.json")
_REQUIRED_FILES = ("text_encoder/config.json", *TOKENIZER_FILES)


class TextEncoder:
    """Prompt and first-frame encoder for Motif-Video (T5Gemma2 text model + its SigLIP vision tower)."""

    def __init__(
        self,
        model: T5Gemma2Encoder,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: SiglipImageProcessor | None = None,
        feature_extractor_dir: Path | None = None,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor_dir = feature_extractor_dir  # loaded on the first encode_image
        # The weights as loaded on the CPU (for a GGUF: views of the memory-mapped file). A visit to a device is a
        # copy, and `offload` drops that copy instead of copying the weights back into fresh host memory.
        self._homes = _cpu_homes(self.model)

    def __getstate__(self) -> dict:
        """What copy.deepcopy and pickle copy: the weights once. Outside a visit to a device each home is the
        parameter's or buffer's own memory, but a copy copies them apart (a Parameter is copied with its data
        cloned; pickle writes each tensor's memory on its own): the copy would hold every weight twice until its
        first `offload`, and that would put back the weights as they were copied. Such homes are taken again from
        the copy's own tensors (`__setstate__`)."""
        state = dict(self.__dict__)
        if self._homes is not None and all(_is_in_place(home) for home in self._homes):
            state["_homes"] = _HOMES_IN_PLACE
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if isinstance(self._homes, str):  # `_HOMES_IN_PLACE`
            self._homes = _cpu_homes(self.model)

    @property
    def can_encode_images(self) -> bool:
        return self.image_processor is not None or self.feature_extractor_dir is not None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: torch.device | str) -> TextEncoder:
        """Move the encoder weights to `device` (returns self)."""
        self.model.to(device)
        return self

    def offload(self) -> TextEncoder:
        """Put the weights back on the CPU and give the freed accelerator memory back (returns self).

        An encoder loaded on the CPU gets its loaded tensors back (nothing is copied: a memory-mapped GGUF stays
        mapped); one loaded elsewhere is copied to the CPU."""
        was_cuda = self.device.type == "cuda"
        if self._homes is None:
            self.model.to("cpu")
        else:
            _restore_homes(self._homes)
        if was_cuda:
            # Without this the caching allocator keeps the encoder's ~8 GB reserved after the weights have left.
            torch.cuda.empty_cache()
        return self

    @torch.no_grad()
    def encode(
        self, prompts: list[str] | str, max_length: int = MAX_PROMPT_TOKENS, labels: list[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts to `(embeds [B, T, D_text], mask [B, T] bool)`, T = longest prompt in tokens.

        Prompts longer than `max_length` tokens are truncated like the reference pipeline, with a logged warning
        that calls each prompt by its entry in `labels` (default "prompt", or "prompt i" in a batch).
        Rows shorter than T are right-padded; their pad positions are False in `mask` and hold unspecified values.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ConfigError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        if max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length}")
        if labels is None:
            labels = ["prompt"] if len(prompts) == 1 else [f"prompt {i}" for i in range(len(prompts))]
        if len(labels) != len(prompts):
            raise ConfigError(f"{len(labels)} labels for {len(prompts)} prompts")
        token_ids = _tokenize(self.tokenizer, prompts, max_length, labels)
        input_ids, mask = _pad_right(token_ids, self.tokenizer.pad_token_id)
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        embeds = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return embeds, mask.bool()

    def truncation(self, prompt: str) -> PromptTruncation | None:
        """How `encode` cuts `prompt` (`prompt_truncation`); None when it reads it whole."""
        return prompt_truncation(self.tokenizer, prompt)

    def loaded_image_processor(self) -> SiglipImageProcessor:
        """The checkpoint's SigLIP preprocessor (`image_processor`), loaded from `feature_extractor_dir` on first use
        and kept; a `CheckpointError` when the checkpoint has none."""
        if self.image_processor is None and self.feature_extractor_dir is not None:
            self.image_processor = _siglip_processor_class().from_pretrained(self.feature_extractor_dir)
        if self.image_processor is None:
            raise CheckpointError("image conditioning needs feature_extractor/preprocessor_config.json")
        return self.image_processor

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Encode first frames `[B, 3, H, W]` in [-1, 1] (as prepared for the VAE) to SigLIP tokens `[B, I, D_img]`.

        Same as the reference I2V pipeline: (x + 1) / 2 clamped to [0, 1] in the frames' dtype, resized and
        normalized by the checkpoint's `SiglipImageProcessor`, then the last hidden state of the vision tower (no
        projector).
        """
        processor = self.loaded_image_processor()
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
        # Arithmetic in the frames' own dtype, then float, as the reference: in bf16 `x + 1` rounds, and doing it
        # in float32 would hand SigLIP other pixels than the reference's.
        pixels = ((images + 1) / 2).clamp(0, 1).float()
        batch = processor.preprocess(
            images=pixels.cpu(),
            do_resize=True,
            do_rescale=False,  # already in [0, 1]
            do_normalize=True,
            do_convert_rgb=True,
            return_tensors="pt",
        )
        pixel_values = batch["pixel_values"].to(device=self.device, dtype=self.dtype)
        return self.model.vision_tower(pixel_values=pixel_values).last_hidden_state


# (module, tensor name, is a parameter, the tensor as loaded)
_Home = tuple[torch.nn.Module, str, bool, torch.Tensor]


def _cpu_homes(model: torch.nn.Module) -> list[_Home] | None:
    """Every parameter and buffer of `model` as it is now, if all are on the CPU; else None."""
    homes = []
    for module in model.modules():
        homes += [(module, name, True, t.data) for name, t in module.named_parameters(recurse=False)]
        homes += [(module, name, False, t.data) for name, t in module.named_buffers(recurse=False)]
    return homes if all(home.device.type == "cpu" for *_, home in homes) else None


# A copy's homes are its tensors' own memory (`TextEncoder.__getstate__`).
_HOMES_IN_PLACE = "each parameter's and buffer's own tensor"


def _is_in_place(home: _Home) -> bool:
    """Whether the home is the tensor its module holds now (the same memory, shape and strides)."""
    module, name, _, loaded = home
    now = getattr(module, name)
    return (
        now is not None
        and now.device == loaded.device
        and now.dtype == loaded.dtype
        and now.data_ptr() == loaded.data_ptr()
        and now.shape == loaded.shape
        and now.stride() == loaded.stride()
    )


def _restore_homes(homes: list[_Home]) -> None:
    for module, name, is_param, home in homes:
        if is_param:
            getattr(module, name).data = home  # the Parameter object stays: optimizers and hooks keep their handle
        else:
            setattr(module, name, home)  # `module.to` replaces buffer objects, so the module's slot is set


def _siglip_processor_class() -> type:
    """The SigLIP preprocessor transformers itself would pick: the torchvision one when torchvision is installed,
    else the Pillow one (naming it directly avoids transformers' warning about the missing torchvision)."""
    import transformers

    pil = getattr(transformers, "SiglipImageProcessorPil", None)  # transformers >= 5.x splits the backends
    if pil is not None and importlib.util.find_spec("torchvision") is None:
        return pil
    return transformers.SiglipImageProcessor


def _token_ids(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int
) -> tuple[list[list[int]], list[list[int]]]:
    """-> (each prompt's tokens, the tokens the encoder reads: its first `max_length`), as the reference pipeline
    tokenizes them. The one place that calls the tokenizer on prompts: `prompt_truncation` foretells exactly what
    `TextEncoder.encode` does."""
    # padding=False also switches off the fixed 512 padding baked into the official tokenizer.json.
    full = tokenizer(prompts, padding=False, truncation=False, add_special_tokens=True)["input_ids"]
    if all(len(ids) <= max_length for ids in full):
        return full, full
    # Let the tokenizer truncate (it keeps room for special tokens exactly as the reference call does).
    kept = tokenizer(prompts, padding=False, truncation=True, max_length=max_length, add_special_tokens=True)
    return full, kept["input_ids"]


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int, labels: list[str]
) -> list[list[int]]:
    full, kept = _token_ids(tokenizer, prompts, max_length)
    for label, before, after in zip(labels, full, kept, strict=True):
        if len(before) > len(after):
            log.warning(truncation_warning(label, len(before), len(after), max_length, tokenizer.truncation_side))
    return kept


def truncation_warning(label: str, tokens: int, kept: int, max_length: int, side: str = "right") -> str:
    """What `TextEncoder.encode` logs for a prompt (called `label`) of `tokens` tokens cut to `kept`; `side`: the
    tokenizer's truncation_side, "left" where it drops the prompt's start."""
    return f"{label} is {tokens} tokens; dropped the {_DROPPED[side]} {tokens - kept} (limit {max_length})"


_DROPPED = {"right": "last", "left": "first"}  # by the tokenizer's truncation_side


@contextlib.contextmanager
def warnings_not_logged(said: Collection[str]) -> Iterator[None]:
    """While inside, `TextEncoder.encode` logs none of the `truncation_warning`s in `said`: cuts said before, in
    more words (`PromptTruncation.advice`)."""
    with filtered_log(log, lambda record: record.getMessage() not in said):
        yield


# Marks a record of `load_tokenizer`'s notes on the tokenizer's files (`tokenizer_notes_said_once`).
TOKENIZER_NOTE = "tokenizer_note"


@contextlib.contextmanager
def tokenizer_notes_said_once() -> Iterator[None]:
    """While inside, each of `load_tokenizer`'s notes on the tokenizer's files is logged once, however often the
    tokenizer loads: a run measures its prompts with the tokenizer alone, then loads it again with the encoder."""
    said: set[str] = set()

    def first_time(record: logging.LogRecord) -> bool:
        if not getattr(record, TOKENIZER_NOTE, False):
            return True
        message = record.getMessage()
        if message in said:
            return False
        said.add(message)
        return True

    with filtered_log(log, first_time):
        yield


@contextlib.contextmanager
def tokenizer_notes_taken(into: list[str]) -> Iterator[None]:
    """While inside, `load_tokenizer`'s notes on the tokenizer's files go into `into` instead of the log: `check`
    reports them as its findings."""

    def logged(record: logging.LogRecord) -> bool:
        if getattr(record, TOKENIZER_NOTE, False):
            into.append(record.getMessage())
            return False
        return True

    with filtered_log(log, logged):
        yield


# A prompt of this many UTF-8 bytes or fewer is never over the limit: the tokenizer's byte fallback makes at most one
# token per byte, plus its special tokens (<bos>, a word-start marker): such prompts need no tokenizer to tell.
_SURELY_SHORT_BYTES = MAX_PROMPT_TOKENS - 8


@dataclass(frozen=True)
class PromptTruncation:
    """A prompt over the text encoder's limit: its length in tokens, the tokens kept, and the last words kept; where
    the tokenizer is configured to cut the start (`side` "left", as diffusers' pipeline then cuts it too), the first
    words kept instead."""

    tokens: int
    kept: int
    max_length: int
    kept_ending: str
    side: str = "right"

    def warning(self, label: str) -> str:
        """The message `TextEncoder.encode` logs for it (`truncation_warning`)."""
        return truncation_warning(label, self.tokens, self.kept, self.max_length, self.side)

    def log_warning(self, label: str) -> None:
        """Log `warning(label)` as `TextEncoder.encode` does when it cuts: for an encoding of a cut prompt kept from
        before (the pipeline's `KeptEncodings`), which `encode` does not see again. `warnings_not_logged` holds it
        back alike."""
        log.warning(self.warning(label))

    def advice(self, label: str) -> str:
        """What to tell a user before anything loads: how much is dropped, where the kept part ends, what to do."""
        if not self.kept_ending:  # the part kept is only spaces: "'... '" quoted nothing
            reads = "it reads none of its words (the part kept holds only spaces)"
        elif self.side == "left":
            reads = f"it reads from '{self.kept_ending} ...'"
        else:
            reads = f"it reads up to '... {self.kept_ending}'"
        return (
            f"{label} is {self.tokens} tokens, over the text encoder's limit of {self.max_length}: {reads} and drops "
            f"the {_DROPPED[self.side]} {self.tokens - self.kept}; shorten the {label} to keep them"
        )


def fits_without_tokenizer(prompt: str) -> bool:
    """Whether `prompt` is surely within the text encoder's limit, by its length alone (no tokenizer needed)."""
    return len(prompt.encode()) <= _SURELY_SHORT_BYTES


def prompt_truncation(
    tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int = MAX_PROMPT_TOKENS
) -> PromptTruncation | None:
    """How `TextEncoder.encode` would cut `prompt` (the same tokenizer calls); None when it fits."""
    if max_length >= MAX_PROMPT_TOKENS and fits_without_tokenizer(prompt):
        return None
    [full], [kept] = _token_ids(tokenizer, [prompt], max_length)
    if len(full) == len(kept):
        return None
    if tokenizer.truncation_side == "left":
        quoted = _beginning(_kept_end(tokenizer, prompt, len(kept)))
        return PromptTruncation(len(full), len(kept), max_length, quoted, "left")
    return PromptTruncation(len(full), len(kept), max_length, _ending(_kept_text(tokenizer, prompt, len(kept))))


# The end of the kept part that the advice quotes: its last words, fewer where they are long, and of one long word its
# last characters (Japanese and Chinese are written without spaces: the "last 8 words" of such a prompt were all 500
# tokens of it).
_ENDING_WORDS = 8
_ENDING_CHARACTERS = 60
_ENDING_OF_A_WORD = 30


def _ending(text: str) -> str:
    """The last `_ENDING_WORDS` words of `text`, fewer where they are over `_ENDING_CHARACTERS` characters, and of
    a last word longer than that its last `_ENDING_OF_A_WORD` characters."""
    words = text.split()[-_ENDING_WORDS:]
    while len(words) > 1 and len(" ".join(words)) > _ENDING_CHARACTERS:
        words.pop(0)
    ending = " ".join(words)
    return ending if len(ending) <= _ENDING_CHARACTERS else ending[-_ENDING_OF_A_WORD:]


def _beginning(text: str) -> str:
    """`_ending`'s counterpart for a prompt whose start is cut: the first words of `text`, as many and as long."""
    words = text.split()[:_ENDING_WORDS]
    while len(words) > 1 and len(" ".join(words)) > _ENDING_CHARACTERS:
        words.pop()
    beginning = " ".join(words)
    return beginning if len(beginning) <= _ENDING_CHARACTERS else beginning[:_ENDING_OF_A_WORD]


def _kept_end(tokenizer: PreTrainedTokenizerBase, prompt: str, kept: int) -> str:
    """The part of `prompt` that a tokenizer cutting the start keeps of its `kept` tokens (special ones included):
    from where the last dropped token ends (a character cut between its byte tokens is left out, as `_kept_text`
    leaves it out)."""
    encoded = tokenizer(prompt, padding=False, truncation=False, add_special_tokens=False, return_offsets_mapping=True)
    kept_words = kept - tokenizer.num_special_tokens_to_add()  # the prompt's own tokens among the kept
    dropped = len(encoded["offset_mapping"]) - kept_words
    return prompt[encoded["offset_mapping"][dropped - 1][1] :] if dropped > 0 else prompt


def _kept_text(tokenizer: PreTrainedTokenizerBase, prompt: str, kept: int) -> str:
    """The part of `prompt` that its first `kept` tokens (special ones included) spell, cut from the prompt itself
    where the first dropped token starts. Decoding the kept tokens instead turned a character cut between its
    byte-fallback tokens (a Hangul syllable or kanji the vocabulary lacks is 3 byte tokens) into U+FFFD, and the
    tokenizer's decoder turns the whole run of byte tokens around it into U+FFFDs with it."""
    encoded = tokenizer(
        prompt,
        padding=False,
        truncation=False,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    starts = [start for (start, _), special in zip(encoded["offset_mapping"], encoded["special_tokens_mask"],
                                                   strict=True) if not special]  # fmt: skip
    kept_words = kept - tokenizer.num_special_tokens_to_add()  # the prompt's own tokens among the kept
    return prompt[: starts[kept_words]] if kept_words < len(starts) else prompt


def long_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Mapping[str, str]) -> dict[str, PromptTruncation]:
    """The `prompts` (label -> text) that `TextEncoder.encode` would cut, with how (`prompt_truncation`)."""
    cut = {label: prompt_truncation(tokenizer, prompt) for label, prompt in prompts.items()}
    return {label: truncation for label, truncation in cut.items() if truncation is not None}


def tokenizer_root(source: str | Path) -> Path:
    """A folder holding the tokenizer of `source` (a checkpoint folder or a Hub repo id): the folder, the cached
    snapshot, else the tokenizer's files alone downloaded (a few MB), so that prompts are measured before the
    gigabytes of weights download. Raises `MissingFilesError` where it cannot be had."""
    return find_checkpoint(str(source), required=TOKENIZER_FILES, download=["tokenizer/*"])


def load_tokenizer(root: Path, config_values: dict | None = None) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer alone (`root`/tokenizer, a few MB, seconds to load): to measure prompts before
    the text encoder's weights load. `config_values`: tokenizer_config.json's object where a caller read the file
    already (`motif-lite check`), checked here as the file would be."""
    folder = root / "tokenizer"
    config = folder / "tokenizer_config.json"
    # its wrong values named by their keys, not in transformers' words
    if config_values is None:
        check_tokenizer_config(config)
    else:
        check_tokenizer_values(config_values, config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # transformers' errors for a damaged file are of many classes (a TypeError for a list)
        for file in sorted(folder.glob("*.json")):  # one that holds no JSON object is named as every reader names it
            read_json_object(file, "tokenizer file", CheckpointError)
        check_tokenizer_file(folder / "tokenizer.json")
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise CheckpointError(f"cannot load the tokenizer from {root}: {reason}") from exc
    check_vocabulary(tokenizer, folder / "tokenizer.json")  # before the padding: an empty vocabulary lacks the pad too
    check_padding(tokenizer, config)
    note = special_tokens_note(tokenizer, folder / "tokenizer.json")
    if note is not None:  # valid, and read the same by the reference: said, not refused
        log.warning(note, extra={TOKENIZER_NOTE: True})
    return tokenizer


def _pad_right(token_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), longest), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def _text_encoder_config(path: Path, values: dict | None) -> T5Gemma2EncoderConfig:
    """transformers' config of the text encoder: from `values` where a caller read `path` already (a copy, which
    transformers may change), else read from `path`."""
    if values is None:
        return parse_text_encoder_config(path)
    return config_from_values(copy.deepcopy(values), str(path))


def load_text_encoder(
    source: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    gguf: str | Path | TextEncoderGGUF | None = None,
    config_values: dict | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    tokenizer_checked: bool = False,
) -> TextEncoder:
    """Load `text_encoder/`, `tokenizer/` and (if present) `feature_extractor/` from a checkpoint.

    `source` is a local checkpoint directory in the official layout or a Hugging Face repo id (resolved through
    the local cache, see `motif_lite.io.checkpoint_source.find_checkpoint`). `gguf`: a text encoder GGUF
    (`python -m motif_lite.quantize --component text_encoder`, or what `read_text_encoder_gguf` returned) replaces
    `text_encoder/`'s weights; it is checked against `text_encoder/config.json` when the checkpoint has one, and
    its quantized layers stay packed (motif_lite/encoders/text_gguf.py). `config_values`: `text_encoder/config.json`
    as a caller read it already (`CheckpointConfigs.text_encoder_config`), not read again. `tokenizer`: the
    checkpoint's tokenizer as a caller loaded it already (`load_tokenizer` of the same folder), not loaded again; one
    of another folder is not used, one loaded with other settings than the folder's is a `ConfigError`.
    `tokenizer_checked`: the caller checked `tokenizer`'s settings already (`load_pipeline`'s `prompt_tokenizer`),
    so they are not checked again (given add_bos_token or add_eos_token, the check loads the folder's tokenizer).
    """
    patterns = ["text_encoder/config.json" if gguf is not None else "text_encoder/*", "tokenizer/*"]
    # What a cached snapshot must hold to be used as is: `tokenizer_root` leaves one with the tokenizer alone.
    required = TOKENIZER_FILES if gguf is not None else (*_REQUIRED_FILES, "text_encoder/*.safetensors")
    root = find_checkpoint(str(source), required=required, download=[*patterns, "feature_extractor/*"])
    _check_layout(root, weights=gguf is None)
    if gguf is not None and not isinstance(gguf, TextEncoderGGUF):
        gguf = read_text_encoder_gguf(gguf, root / "text_encoder/config.json")  # every check before any weight
    config = None if gguf is not None else _text_encoder_config(root / "text_encoder" / "config.json", config_values)
    if tokenizer is None or Path(tokenizer.name_or_path) != root / "tokenizer":
        tokenizer = load_tokenizer(root)
    elif not tokenizer_checked:  # the folder's, but perhaps loaded with other settings than `load_tokenizer` gives it
        check_tokenizer_settings(tokenizer, root / "tokenizer", "tokenizer")
    if gguf is None:
        try:
            model, loading = _load_weights(root / "text_encoder", config, dtype)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            # The error's frames would keep the cast weights alive for as long as a caller holds the error.
            traceback.clear_frames(exc.__traceback__)
            raise CheckpointError(f"cannot load the text encoder from {root}: {exc}") from exc
        _check_loaded(model, sorted(loading["missing_keys"]), sorted(loading["unexpected_keys"]), root)
    else:
        model = load_text_encoder_gguf(gguf, dtype=dtype)
    processor_dir = root / "feature_extractor"
    has_processor = (processor_dir / "preprocessor_config.json").is_file()
    return TextEncoder(model.to(device), tokenizer, feature_extractor_dir=processor_dir if has_processor else None)


def _load_weights(folder: Path, config: T5Gemma2EncoderConfig, dtype: torch.dtype) -> tuple[T5Gemma2Encoder, dict]:
    """The encoder of `folder`'s safetensors and transformers' loading info. Stored in another dtype, the weights are
    read and cast here, one tensor at a time (motif_lite/encoders/text_weights.py). transformers' load report then
    says "from: None": a `state_dict` cannot be passed with the folder's name (our own messages name the folder)."""
    cast = weights_cast_to(folder, dtype, config)
    return T5Gemma2Encoder.from_pretrained(
        None if cast is not None else folder, config=config, state_dict=cast, dtype=dtype, output_loading_info=True
    )


def _check_loaded(model: T5Gemma2Encoder, missing: list[str], unexpected: list[str], root: Path) -> None:
    """transformers fills every tensor a file lacks with random values and goes on: a file of another model, or of
    other names, would give a video from a random text encoder. Most tensors missing: refuse; a few: say which."""
    if not missing:
        return
    files = ", ".join(sorted(path.name for path in (root / "text_encoder").glob("*.safetensors")))
    listed = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    total = len(model.state_dict())
    if 2 * len(missing) > total:
        names = f"; it holds other names (e.g. {', '.join(unexpected[:3])})" if unexpected else ""
        raise CheckpointError(
            f"{len(missing)} of the text encoder's {total} tensors are not in {root / 'text_encoder'} ({files}): "
            f"{listed}{names}. It is not the T5Gemma2 encoder's weights under transformers' names: use the "
            "official text_encoder/ files, or the file of the checkpoint you took them from"
        )
    log.warning(f"the text encoder's file lacks {len(missing)} of its {total} tensors ({listed}): they hold random "
                "values, and the video will show it; use the official text_encoder/ files")  # fmt: skip


def _check_layout(root: Path, weights: bool = True) -> None:
    """The tokenizer files, and with `weights` the text encoder's config and safetensors (a GGUF brings its own;
    its config is then checked against text_encoder/config.json only if that exists). The config's contents are
    `parse_text_encoder_config`'s to check."""
    for name in _REQUIRED_FILES if weights else TOKENIZER_FILES:
        if not (root / name).is_file():
            raise CheckpointError(f"missing {root / name} (expected the official Motif-Video checkpoint layout)")
    if not weights:
        return
    if not list((root / "text_encoder").glob("*.safetensors")):
        raise CheckpointError(f"no *.safetensors weights in {root / 'text_encoder'}")
