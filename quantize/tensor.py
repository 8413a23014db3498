"""`quantize_tensor`: one float tensor -> raw GGML blocks, for every type the quantizer writes."""

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gguf_quants

from motif_lite.errors import ConfigError

from . import kquants

Q = GGMLQuantizationType

K_QUANTIZERS = {
    Q.Q2_K: kquants.quantize_q2_k,
    Q.Q3_K: kquants.quantize_q3_k,
    Q.Q4_K: kquants.quantize_q4_k,
    Q.Q5_K: kquants.quantize_q5_k,
    Q.Q6_K: kquants.quantize_q6_k,
}
# Types whose encoders gguf-py already ships (round-to-nearest; no search needed for these formats).
GGUF_PY_TYPES = (Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0)
SUPPORTED_TYPES = tuple(K_QUANTIZERS) + GGUF_PY_TYPES

# Super-blocks per chunk: 128K values keeps the search temporaries (~0.5 MB each) in cache; measured
# 2x faster than 2M-value chunks.
_CHUNK_BLOCKS = 512


# byte_shape(shape, qtype): the shape of the raw uint8 blocks for a float tensor of `shape` stored as `qtype`.
# gguf-py's own (since 0.17, the floor); it raises ValueError for a row of partial blocks, which every caller
# has refused or replaced first (`quantize_tensor`, the plans' `fit_row`).
byte_shape = gguf_quants.quant_shape_to_byte_shape


def quantize_tensor(
    data: np.ndarray | torch.Tensor, qtype: GGMLQuantizationType, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Quantize `data` (any float dtype) along its last axis to `qtype`.

    Returns uint8 raw blocks of shape `byte_shape(data.shape, qtype)`, ready for `GGUFWriter`. K-quants
    run on torch (`device` may be "cuda" to use a GPU); the other types use gguf-py's encoders.
    Raises `ConfigError` for an unsupported type or a last dimension that is not a multiple of the
    type's block size.
    """
    qtype = Q(qtype)
    if qtype not in SUPPORTED_TYPES:
        names = ", ".join(t.name for t in SUPPORTED_TYPES)
        raise ConfigError(f"cannot quantize to {qtype.name}; supported types: {names}")
    shape = tuple(data.shape)
    block_size = GGML_QUANT_SIZES[qtype][0]
    if not shape or shape[-1] % block_size:
        raise ConfigError(f"{qtype.name} needs a last dimension that is a multiple of {block_size}, got shape {shape}")
    if qtype in K_QUANTIZERS:
        return _quantize_k(data, qtype, device).reshape(byte_shape(shape, qtype))
    array = data.float().numpy(force=True) if isinstance(data, torch.Tensor) else np.asarray(data, np.float32)
    return np.ascontiguousarray(gguf_quants.quantize(array, qtype)).view(np.uint8).reshape(byte_shape(shape, qtype))


def _quantize_k(data, qtype, device) -> np.ndarray:
    values = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    blocks = values.reshape(-1, kquants.QK_K)  # [n_superblocks, 256]
    encode = K_QUANTIZERS[qtype]
    parts = [
        encode(blocks[i : i + _CHUNK_BLOCKS].to(device=device, dtype=torch.float32)).cpu()
        for i in range(0, blocks.shape[0], _CHUNK_BLOCKS)
    ]
    return torch.cat(parts).numpy()
