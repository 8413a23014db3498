"""The text encoder's safetensors weights, read and cast one tensor at a time when they are loaded in another dtype.

transformers' `from_pretrained` casts each tensor from the memory-mapped file and keeps the file open until every
tensor is loaded, so each page it read stays in the process's resident memory until the end: a bf16 encoder loaded
in float32 peaked at its float32 weights plus its whole bf16 file (5.0 GiB for 3.35 GiB of weights, measured in
docs/benchmarks.md). Read with plain reads and cast one at a time (`TensorFiles.load`'s `cast_to`, as our own
transformer and VAE loaders do), the peak is the loaded weights and one tensor more. The tensors are handed to
`from_pretrained` as its `state_dict`, which takes them as the model's own (no copy) and does the rest as it would
from the file: missing and unexpected names, the buffers no file holds.
"""

from __future__ import annotations

from pathlib import Path

import torch

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


def weights_cast_to(folder: Path, dtype: torch.dtype) -> dict[str, torch.Tensor] | None:
    """The tensors of `folder`'s `model.safetensors` (or the shards its index names) with every 16- or 32-bit float
    tensor stored in another dtype read and cast to `dtype`, the others as stored; None when no tensor needs a cast
    (loaded from the mapped file as stored, a page counts only once read) or the folder holds neither file (then
    `from_pretrained` says what is missing). Raises `CheckpointError` for a file that cannot be read."""
    if (folder / INDEX_FILE).is_file():
        files = shard_files(folder / INDEX_FILE)
    elif (folder / SINGLE_FILE).is_file():
        files = [folder / SINGLE_FILE]
    else:
        return None
    refs = read_tensor_refs(files)
    stored = {SAFETENSORS_DTYPES.get(ref.dtype) for ref in refs.values()}
    if not any(kind in CAST_DTYPES and kind != dtype for kind in stored):
        return None
    with TensorFiles() as tensor_files:
        return {name: tensor_files.load(ref, cast_to=dtype) for name, ref in refs.items()}
