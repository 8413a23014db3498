"""The text encoder's safetensors weights, read and cast one tensor at a time when they are loaded in another dtype.

transformers' `from_pretrained` casts each tensor from the memory-mapped file and keeps the file open until every
tensor is loaded, so each page it read stays in the process's resident memory until the end: a bf16 encoder loaded
in float32 peaked at its float32 weights plus its whole bf16 file (5.0 GiB for 3.35 GiB of weights, measured in
docs/benchmarks.md). Read with plain reads and cast one at a time (`TensorFiles.load`'s `cast_to`, as our own
transformer and VAE loaders do), the peak is the loaded weights and one tensor more. The tensors are handed to
`from_pretrained` as its `state_dict`, which takes them as the model's own (no copy) and does the rest as it would
from the file: missing and unexpected names, the buffers no file holds. Only the tensors the encoder takes are read:
the others (a whole T5Gemma2 file's decoder) are handed over as empty meta tensors, so that transformers names them
as unexpected without any of their bytes read, as it does from the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

from motif_lite.weights.safetensors_files import (
    CAST_DTYPES,
    SAFETENSORS_DTYPES,
    TensorFiles,
    read_tensor_refs,
    shard_files,
)

# The names transformers reads a model folder's weights under (its SAFE_WEIGHTS_NAME and SAFE_WEIGHTS_INDEX_NAME).
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def weights_cast_to(folder: Path, dtype: torch.dtype, config: T5Gemma2EncoderConfig) -> dict[str, torch.Tensor] | None:
    """The tensors of `folder`'s `model.safetensors` (or the shards its index names, as transformers: the single file
    first) that a `T5Gemma2Encoder` of `config` takes, every 16- or 32-bit float one stored in another dtype read
    and cast to `dtype`, the others as stored; the names it does not take as empty meta tensors (never read). None
    when no tensor it takes needs a cast (loaded from the mapped file as stored, a page counts only once read) or
    the folder holds neither file (then `from_pretrained` says what is missing). Raises `CheckpointError` for a
    file that cannot be read."""
    if (folder / SINGLE_FILE).is_file():
        files = [folder / SINGLE_FILE]
    elif (folder / INDEX_FILE).is_file():
        files = shard_files(folder / INDEX_FILE)
    else:
        return None
    refs = read_tensor_refs(files)
    taken = encoder_takes(config, list(refs))
    stored = {SAFETENSORS_DTYPES.get(refs[name].dtype) for name in taken}
    if not any(kind in CAST_DTYPES and kind != dtype for kind in stored):
        return None
    tensors = {}
    with TensorFiles() as tensor_files:
        for name, ref in refs.items():
            if name in taken:
                tensors[name] = tensor_files.load(ref, cast_to=dtype)
            else:
                tensors[name] = torch.empty(ref.shape, dtype=SAFETENSORS_DTYPES.get(ref.dtype, dtype), device="meta")
    return tensors


def encoder_takes(config: T5Gemma2EncoderConfig, names: list[str]) -> set[str]:
    """The file tensor `names` that `from_pretrained` loads into a `T5Gemma2Encoder` of `config`: each renamed the
    way transformers' `convert_and_load_state_dict_in_model` renames it (the class's conversion mapping, which turns
    older names into today's, and its base-model prefix), kept when the result is one of the model's own names."""
    with torch.device("meta"):
        model = T5Gemma2Encoder(config)
    own = model.state_dict()
    mapping = get_model_conversion_mapping(model)
    renamings = [entry for entry in mapping if isinstance(entry, WeightRenaming)]
    converters = [entry for entry in mapping if isinstance(entry, WeightConverter)]
    prefix = model.base_model_prefix
    taken = set()
    for name in names:
        renamed, _ = rename_source_key(name, renamings, converters, prefix, own)
        if renamed not in own and name in own:  # as transformers: a name of its own is not renamed
            renamed, _ = rename_source_key(name, [], [], prefix, own)
        if renamed in own:
            taken.add(name)
    return taken
