"""A T5Gemma2 text encoder GGUF (`python -m motif_lite.quantize CKPT --component text_encoder`) -> transformers'
`T5Gemma2Encoder` whose quantized linears and token embedding stay packed.

The file: `general.architecture = "t5gemma2_encoder"`, `t5gemma2_encoder.config_json` (the checkpoint's
`text_encoder/config.json`), tensors named by the `T5Gemma2Encoder` state-dict keys (`text_model.layers.0.mlp.up_proj.
weight`, `vision_tower.encoder.layers.0.mlp.fc1.weight`, ...). Loading is the transformer GGUF's recipe:

    read_text_encoder_gguf(path, checkpoint_config)   # header, config, every tensor checked: no weights read
    build on the meta device -> non-persistent buffers (RoPE frequencies, embedding scale, SigLIP position ids)
    computed by transformers' own initializers -> packed layers swapped in (QuantizedLinear, QuantizedScaledEmbedding)
    -> load_state_dict(strict=True, assign=True) over the memory-mapped tensors

so nothing is randomly initialized, no tensor may be missing or left over, and quantized weights stay in their
blocks (memory-mapped on the CPU, copied when the encoder visits a device).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.encoders.text_config import (
    config_from_json,
    config_from_values,
    meta_encoder,
    parse_text_encoder_config,
)
from motif_lite.errors import CheckpointError, listed
from motif_lite.json_values import read_json_object
from motif_lite.units import file_size
from motif_lite.weights.gguf_file import (
    TEXT_ENCODER_ARCH,
    PackedTensor,
    read_gguf,
    recorded_recipe,
    recorded_version,
)
from motif_lite.weights.quant_embedding import QuantizedEmbedding
from motif_lite.weights.quant_linear import quantized_state_dict, replace_linears
from motif_lite.weights.shapes import check_tensors

CONFIG_KEY = f"{TEXT_ENCODER_ARCH}.config_json"
EMBED_KEY = "text_model.embed_tokens.weight"
# Config entries that record how a file was written, not what the model is.
_BOOKKEEPING = {"transformers_version", "dtype", "torch_dtype", "_name_or_path", "architectures"}
_MAX_LISTED = 12


class QuantizedScaledEmbedding(QuantizedEmbedding):
    """T5Gemma2's token embedding over a packed table: rows x sqrt(hidden), the end-of-image token's row replaced
    by `eoi_embedding` (the same math as transformers' `T5Gemma2TextScaledWordEmbedding`)."""

    def __init__(self, original: nn.Embedding, qtype) -> None:
        super().__init__(original.num_embeddings, original.embedding_dim, qtype, device="meta")
        self.register_buffer("embed_scale", original.embed_scale, persistent=False)
        self.eoi_token_index = original.eoi_token_index
        self.eoi_embedding = original.eoi_embedding  # a placeholder until the state dict is assigned

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        dtype = self.eoi_embedding.dtype  # the model's float dtype: what the unquantized table would give
        embeds = self.lookup(input_ids, dtype) * self.embed_scale.to(dtype)
        embeds[input_ids == self.eoi_token_index] = self.eoi_embedding.to(dtype)
        return embeds


@dataclass(frozen=True)
class TextEncoderGGUF:
    """A checked text encoder GGUF: its config, its tensors (memory-mapped, not read) and its recipe."""

    path: Path
    config: T5Gemma2EncoderConfig
    tensors: dict[str, PackedTensor]
    recipe: str | None  # the recipe the file records (`recorded_recipe`), e.g. "Q8_0"
    # The motif-lite version whose quantizer wrote the file (`recorded_version`); None where it is not recorded, or
    # for tensors quantized in memory as the checkpoint loads (`packed_text_encoder`)
    quantizer_version: str | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data as stored (quantized tensors packed)."""
        return sum(t.nbytes for t in self.tensors.values())

    @functools.cached_property
    def packed_keys(self) -> frozenset[str]:
        """The tensors that stay packed once loaded (`load_text_encoder_gguf`): the quantized weights of linear
        layers and of the token table. Every other tensor is loaded as floats in the run's dtype."""
        model = meta_encoder(self.config)
        linears = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, nn.Linear)}
        return frozenset(k for k, t in self.tensors.items() if t.is_quantized and (k in linears or k == EMBED_KEY))

    @property
    def quantized_linears(self) -> bool:
        """Whether any linear layer of the encoder runs on packed blocks (a `QuantizedLinear` once loaded, whose
        kernel may autotune): false for a file whose linears are all float (the F32, F16 and BF16 recipes)."""
        return any(key != EMBED_KEY for key in self.packed_keys)

    def loaded_bytes(self, dtype: torch.dtype) -> int:
        """Bytes of the encoder as `load_text_encoder_gguf(self, dtype)` holds them: packed tensors as stored, the
        others in `dtype` (an F32 file in a bf16 run takes half its size, a BF16 one in a float32 run twice)."""
        return sum(
            t.nbytes if key in self.packed_keys else math.prod(t.shape) * dtype.itemsize
            for key, t in self.tensors.items()
        )

    def describe(self) -> str:
        """One line for run summaries: file, recipe and packed size."""
        recipe = f"{self.recipe}, " if self.recipe else ""
        return f"{self.path.name} ({recipe}{file_size(self.nbytes)} packed)"


def read_text_encoder_gguf(path: str | Path, checkpoint_config: Path | None = None) -> TextEncoderGGUF:
    """Open and check a text encoder GGUF without reading any weights.

    Checks the header, the architecture (a transformer GGUF is named as such), the embedded config (against
    `checkpoint_config`, the checkpoint's `text_encoder/config.json`, when it exists) and every tensor's name and
    shape against the encoder that config builds. Raises `CheckpointError`.
    """
    path = Path(path)
    ckpt = read_gguf(path, expected_arch=TEXT_ENCODER_ARCH)
    embedded = ckpt.metadata.get(CONFIG_KEY)
    if embedded is None:
        raise CheckpointError(f"{path} has no {CONFIG_KEY}; make it with python -m motif_lite.quantize --component "
                              "text_encoder")  # fmt: skip
    config = config_from_json(embedded, f"{path}: {CONFIG_KEY}")
    if checkpoint_config is not None:
        check_against_checkpoint(path, config, checkpoint_config)
    checked = _checked(path, config, ckpt.tensors, recorded_recipe(ckpt.metadata))
    return replace(checked, quantizer_version=recorded_version(ckpt.metadata))


def check_against_checkpoint(path: Path, config: T5Gemma2EncoderConfig, checkpoint_config: Path) -> dict | None:
    """The config embedded in the text encoder GGUF at `path` against the checkpoint's `text_encoder/config.json`
    (`checkpoint_config`, when it exists): a file read before the checkpoint was found is checked so, not read
    again. Raises `CheckpointError`. Returns the checkpoint file's values as read (None without it), for a caller
    that reads the checkpoint's configs next (`CheckpointConfigs.read`): not read twice."""
    if not checkpoint_config.is_file():
        return None
    values = read_json_object(checkpoint_config, "text encoder config")
    # A copy to transformers, which may change what it is given: the values go on as the file holds them.
    check_same_config(config, config_from_values(copy.deepcopy(values), str(checkpoint_config)), path)
    return values


def packed_text_encoder(
    tensors: Mapping[str, PackedTensor],
    config_path: Path,
    recipe: str,
    source: Path,
    config_values: dict | None = None,
) -> TextEncoderGGUF:
    """Packed tensors already in memory under the `T5Gemma2Encoder` names (what a text encoder GGUF holds:
    `quantize/on_load.py` makes them as the checkpoint loads), with the checkpoint's `text_encoder/config.json` at
    `config_path`, checked as `read_text_encoder_gguf` checks a file's; `load_text_encoder_gguf` loads it as a file.
    `source`: the folder (or file) they were quantized from, which errors and the summary name. `config_values`:
    that config.json as the caller read it already (`CheckpointConfigs.text_encoder_config`), not read again."""
    if config_values is None:
        config = parse_text_encoder_config(config_path)
    else:  # a copy to transformers, which may change what it is given
        config = config_from_values(copy.deepcopy(config_values), str(config_path))
    return _checked(source, config, tensors, recipe)


def _checked(
    path: Path, config: T5Gemma2EncoderConfig, tensors: Mapping[str, PackedTensor], recipe: str | None
) -> TextEncoderGGUF:
    """Every tensor (empty ones, which no model has, left out) against the encoder `config` builds."""
    tensors = {name: t for name, t in tensors.items() if 0 not in t.shape}
    shapes = {name: t.shape for name, t in tensors.items()}
    check_tensors(meta_encoder(config), shapes, str(path), "the text encoder config")
    return TextEncoderGGUF(path, config, tensors, recipe)


def check_same_config(embedded: T5Gemma2EncoderConfig, checkpoint: T5Gemma2EncoderConfig, path: Path) -> None:
    """Raise `CheckpointError` listing every setting in which the GGUF's config differs from the checkpoint's."""
    ours, theirs = _flat(embedded.to_dict()), _flat(checkpoint.to_dict())
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        differences = [f"{k} {ours.get(k)!r} in the file vs {theirs.get(k)!r}" for k in differ]
        raise CheckpointError(
            f"{path} was made from another text encoder than the checkpoint's text_encoder/config.json: "
            f"{listed(differences, _MAX_LISTED)}; quantize this checkpoint's text encoder (python -m "
            "motif_lite.quantize CKPT --component text_encoder)"
        )


def _flat(values: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if key in _BOOKKEEPING:
            continue
        if isinstance(value, dict) and key.endswith("_config"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_text_encoder_gguf(
    source: str | Path | TextEncoderGGUF, dtype: torch.dtype = torch.bfloat16
) -> T5Gemma2Encoder:
    """Load a text encoder GGUF (a path, or what `read_text_encoder_gguf` returned) into a `T5Gemma2Encoder`.

    Quantized linears become `QuantizedLinear` and a quantized token table a `QuantizedScaledEmbedding`, both over
    the file's packed blocks (memory-mapped on the CPU); float tensors (norms, biases, tensors the recipe kept) are
    cast to `dtype`. The model is on the CPU (`load_text_encoder` moves it)."""
    gguf = source if isinstance(source, TextEncoderGGUF) else read_text_encoder_gguf(source)
    model = meta_encoder(gguf.config)
    _materialize_buffers(model)
    embed = gguf.tensors[EMBED_KEY]
    if embed.is_quantized:
        model.text_model.embed_tokens = QuantizedScaledEmbedding(model.text_model.embed_tokens, embed.qtype)
    replace_linears(model, gguf.tensors)
    state = quantized_state_dict(model, gguf.tensors, float_dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _materialize_buffers(model: T5Gemma2Encoder) -> None:
    """Give the non-persistent buffers (not in any file) their values, as transformers' loader does: an empty CPU
    tensor each, filled by the `_init_weights` of the model that owns the module. Runs while every parameter is
    still on the meta device, so the parameter initializers it also calls touch nothing."""
    persistent = set(model.state_dict())
    owners: dict[str, PreTrainedModel] = {
        name: module for name, module in model.named_modules() if isinstance(module, PreTrainedModel)
    }
    modules = {}
    for name, buffer in list(model.named_buffers()):
        if name in persistent:
            continue
        module_name, _, leaf = name.rpartition(".")
        module = model.get_submodule(module_name)
        setattr(module, leaf, torch.empty_like(buffer, device="cpu"))
        modules[module_name] = module
    for module_name, module in modules.items():
        inside = [n for n in owners if not n or module_name == n or module_name.startswith(f"{n}.")]
        owner = max(inside, key=len)  # the innermost; the root ("") always encloses
        owners[owner]._init_weights(module)
