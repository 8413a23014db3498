"""An embedding table kept in packed GGUF blocks: a lookup dequantizes only the rows it reads.

State-dict layout, as for `QuantizedLinear`:

    <module>.packed   uint8 [num_embeddings, bytes_per_row]   the GGUF blocks of `<module>.weight`, as stored

A 262144-row vocabulary at 2560 wide is 1.3 GB in bf16; a prompt reads a few hundred rows, so dequantizing the whole
table per call (what a quantized `nn.Embedding` weight would need) is never done.
"""

from __future__ import annotations

import torch
from gguf import GGMLQuantizationType
from torch import nn

from motif_lite.weights.dequant import check_supported, dequantize, packed_nbytes


class QuantizedEmbedding(nn.Module):
    """`table[ids]` with the table kept as GGUF blocks; `lookup(ids, dtype)` -> `[*ids.shape, embedding_dim]`."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        qtype: GGMLQuantizationType,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.qtype = check_supported(qtype, "QuantizedEmbedding")
        row_bytes = packed_nbytes(self.qtype, (embedding_dim,), "QuantizedEmbedding")
        self.register_buffer("packed", torch.empty(num_embeddings, row_bytes, dtype=torch.uint8, device=device))

    def lookup(self, ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The rows of `ids` (any shape of indices), dequantized to `dtype`."""
        flat = ids.reshape(-1)
        rows = self.packed.index_select(0, flat.to(self.packed.device))  # [n, bytes_per_row]
        values = dequantize(rows, self.qtype, (flat.numel(), self.embedding_dim), dtype)
        return values.reshape(*ids.shape, self.embedding_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids)

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, qtype={self.qtype.name}, packed_bytes={self.packed.numel()}"
        )
