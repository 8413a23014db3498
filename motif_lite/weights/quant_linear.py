"""A linear layer whose weight stays in packed GGUF blocks, and the swap that installs it.

State-dict layout (what a strict `load_state_dict(sd, strict=True, assign=True)` must be given):

    <module>.packed   uint8 [out_features, bytes_per_row]   the GGUF blocks of `<module>.weight`, as stored
    <module>.bias     float [out_features]                  only if the original nn.Linear had a bias

Only quantized weights are renamed (`.weight` -> `.packed`); every other tensor keeps its name. Loading is:

    model = build on torch.device("meta")
    replace_linears(model, ckpt.tensors)                  # swaps nn.Linear -> QuantizedLinear (meta placeholders)
    sd = quantized_state_dict(model, ckpt.tensors)         # renames keys, dequantizes quantized non-linear tensors
    model.load_state_dict(sd, strict=True, assign=True)    # fills everything, zero-copy for packed/float tensors

The buffer is called `packed`, not `weight`, so no code mistakes raw bytes for a float weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from torch import nn

from motif_lite.errors import CheckpointError
from motif_lite.weights.dequant import check_supported, dequantize, packed_nbytes
from motif_lite.weights.gguf_file import PackedTensor
from motif_lite.weights.modules import replace_module
from motif_lite.weights.quant_embedding import QuantizedEmbedding

# kernel(x, packed, qtype, out_features, in_features, bias) -> y, e.g. a fused Triton dequant-matmul.
QuantKernel = Callable[..., torch.Tensor]


class QuantizedLinear(nn.Module):
    """`y = x @ W.T + b` with W kept as GGUF blocks and dequantized on the fly (or by `self.kernel`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        qtype: GGMLQuantizationType,
        bias: bool = True,
        device: torch.device | str | None = None,
        bias_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.qtype = check_supported(qtype, "QuantizedLinear")
        row_bytes = packed_nbytes(self.qtype, (in_features,), "QuantizedLinear")
        self.register_buffer("packed", torch.empty(out_features, row_bytes, dtype=torch.uint8, device=device))
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=bias_dtype, device=device), requires_grad=False)
        self.kernel: QuantKernel | None = None

    @classmethod
    def from_packed(
        cls, packed: torch.Tensor, qtype: GGMLQuantizationType, in_features: int, bias: torch.Tensor | None = None
    ) -> QuantizedLinear:
        """Wrap existing packed blocks `[out_features, bytes_per_row]` (no copy) and an optional float bias."""
        out_features = packed.shape[0]
        layer = cls(in_features, out_features, qtype, bias=bias is not None, device="meta")
        if packed.dtype != torch.uint8 or tuple(packed.shape) != tuple(layer.packed.shape):
            raise CheckpointError(
                f"packed weight for a {layer.qtype.name} [{out_features}, {in_features}] linear must be uint8 "
                f"{tuple(layer.packed.shape)}, got {packed.dtype} {tuple(packed.shape)}"
            )
        layer.packed = packed
        if bias is not None:
            layer.bias = nn.Parameter(bias, requires_grad=False)
        return layer

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return dequantize(self.packed, self.qtype, (self.out_features, self.in_features), dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_rows(x, slice(None))

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]` from those rows' blocks only (GGUF packs each output row on its own)."""
        bias = None if self.bias is None else self.bias[rows].to(x.dtype)
        packed, count = self.packed[rows], len(range(self.out_features)[rows])
        if self.kernel is not None:
            return self.kernel(x, packed, self.qtype, count, self.in_features, bias)
        return F.linear(x, dequantize(packed, self.qtype, (count, self.in_features), x.dtype), bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, qtype={self.qtype.name}, "
            f"bias={self.bias is not None}, packed_bytes={self.packed.numel()}"
        )


def replace_linears(model: nn.Module, packed: Mapping[str, PackedTensor]) -> None:
    """Swap every `nn.Linear` whose `<name>.weight` is quantized in `packed` for a QuantizedLinear placeholder.

    Works on a model built on the meta device; the new layers are on the device of the old weight. Their
    `packed` buffer and `bias` are empty placeholders for `load_state_dict(..., assign=True)` (see the module
    docstring for the key names).
    """
    for key, tensor in packed.items():
        if not (tensor.is_quantized and key.endswith(".weight")):
            continue
        name = key.removesuffix(".weight")
        linear = _find_module(model, name)
        if not isinstance(linear, nn.Linear):
            continue  # e.g. a quantized conv: quantized_state_dict dequantizes it instead
        if tuple(tensor.shape) != (linear.out_features, linear.in_features):
            raise CheckpointError(
                f"{key}: checkpoint shape {tuple(tensor.shape)} does not match the model's "
                f"[{linear.out_features}, {linear.in_features}]"
            )
        layer = QuantizedLinear(
            linear.in_features,
            linear.out_features,
            tensor.qtype,
            bias=linear.bias is not None,
            device=linear.weight.device,
            bias_dtype=linear.weight.dtype,
        )
        replace_module(model, name, layer)


def quantized_state_dict(
    model: nn.Module, tensors: Mapping[str, PackedTensor], float_dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Map checkpoint tensors to `model`'s state-dict keys after `replace_linears`.

    Weights of QuantizedLinear and QuantizedEmbedding layers are passed packed as `<module>.packed`. Float tensors
    are passed as stored (cast to `float_dtype` if given). A quantized tensor of any other module (e.g. a conv) is
    dequantized to `float_dtype` (default float32), since only those layers run on packed weights.
    """
    state: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        module_name, _, leaf = key.rpartition(".")
        owner = _find_module(model, module_name)
        if tensor.is_quantized and leaf == "weight" and isinstance(owner, (QuantizedLinear, QuantizedEmbedding)):
            state[f"{module_name}.packed"] = tensor.data
        elif tensor.is_quantized:
            state[key] = tensor.dequantize(float_dtype or torch.float32)
        else:
            state[key] = tensor.data if float_dtype is None else tensor.data.to(float_dtype)
    return state


def _find_module(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None  # not a module of this model: the strict load reports the key as unexpected
