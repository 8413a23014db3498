"""ComfyUI's fp8 transformer files, kept in 8 bits: `Float8Linear` and the tensors stored beside its weights.

ComfyUI saves two kinds of fp8 copies of a diffusion model:
- a plain cast: `<layer>.weight` in float8_e4m3fn (or float8_e5m2), nothing else;
- a "scaled" one (fp8_scaled), whose fp8 weights are W / scale with the scale stored beside them, named in one of
  two ways: the older `<layer>.scale_weight` (with a `scaled_fp8` marker tensor and an optional
  `<layer>.scale_input`), or the newer `<layer>.weight_scale` (with an optional `<layer>.input_scale` and a
  `<layer>.comfy_quant` tensor holding the layer's format as JSON).

A linear layer whose weight is fp8 becomes a `Float8Linear`: the weight stays one byte per value wherever it lives
and is widened per call to the input's dtype (times its scale in float32, rounded once). Any other fp8 tensor is
widened when loaded. The input scales serve ComfyUI's fp8 matmuls, which round the activations to fp8 too; the
weights' values do not depend on them, so they are not read.

State-dict layout of a Float8Linear (what `float8_state` gives `load_state_dict(..., assign=True)`):

    <module>.fp8_weight   float8 [out_features, in_features]   as stored
    <module>.scale        float32 [] or [out_features, 1]      only for a scaled file
    <module>.bias         float [out_features]                 if the layer has one
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.errors import CheckpointError, listed
from motif_lite.weights.modules import replace_module
from motif_lite.weights.safetensors_files import SAFETENSORS_DTYPES

# safetensors' names of the fp8 dtypes torch computes with.
FLOAT8_DTYPES = {name: SAFETENSORS_DTYPES[name] for name in ("F8_E4M3", "F8_E5M2")}
SCALED_MARKER = "scaled_fp8"  # an empty tensor the older scaled files carry
_WEIGHT_SCALES = (".scale_weight", ".weight_scale")  # older, newer naming: `<layer>` + suffix
_NOT_READ = (".scale_input", ".input_scale", ".comfy_quant")
# Parts of ComfyUI's other quantized formats (NVFP4's second-level scale, AWQ-style smoothing): never fp8.
_OTHER_FORMATS = (".weight_scale_2", ".pre_quant_scale")


class StoredTensor(Protocol):
    """A tensor of a file, read when asked (`safetensors_files.TensorRef`, read by `TensorFiles.load`)."""

    shape: tuple[int, ...]
    dtype: str


def is_companion(name: str) -> bool:
    """Whether `name` is one of the tensors a scaled fp8 file stores beside the weights (not a model tensor); the
    marker also under the `model.diffusion_model.` prefix ComfyUI's own saves put before every name."""
    return name.rpartition(".")[2] == SCALED_MARKER or name.endswith((*_WEIGHT_SCALES, *_NOT_READ, *_OTHER_FORMATS))


def weight_scales(dtypes: Mapping[str, str], source: str) -> dict[str, str]:
    """{weight name: its scale's name} of a file's fp8 weights stored scaled, from the file's {tensor name: dtype}
    (safetensors' names: "F8_E4M3", ...). Raises `CheckpointError` for a file quantized in another of ComfyUI's
    formats (int8, NVFP4, ...: a scale beside a weight that is not fp8), naming it, rather than loading packed
    integers as weights; and for a weight with a scale under both namings (which one was meant is not known)."""
    scales, others = {}, set()
    for name in dtypes:
        if name.endswith(_OTHER_FORMATS):
            others.add(name)
        if not name.endswith(_WEIGHT_SCALES):
            continue
        weight = name.rsplit(".", 1)[0] + ".weight"
        if dtypes.get(weight) in FLOAT8_DTYPES:
            if weight in scales:  # both namings for one layer: which scale its maker meant is not known
                raise CheckpointError(
                    f"{source}: {weight} has two scales beside it, {scales[weight]} and {name}; use the bf16 file "
                    "or a GGUF (--gguf)"
                )
            scales[weight] = name
        else:
            others.add(weight if weight in dtypes else name)
    if others:
        raise CheckpointError(
            f"{source} is quantized in a format motif-lite does not read (ComfyUI's int8 or NVFP4 layers, by their "
            f"scales; {listed(sorted(others), 2)} is not fp8): use the bf16 file, its fp8 or fp8_scaled copy, or "
            "a GGUF (--gguf)"
        )
    return scales


class Float8Linear(nn.Module):
    """`y = x @ (scale · W8).T + b` with W8 kept in 8-bit floats, widened to the input's dtype per call."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        fp8_dtype: torch.dtype = torch.float8_e4m3fn,
        scale_shape: tuple[int, ...] | None = None,
        bias: bool = True,
        device: torch.device | str | None = None,
        bias_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("fp8_weight", torch.empty(out_features, in_features, dtype=fp8_dtype, device=device))
        scale = None if scale_shape is None else torch.empty(scale_shape, dtype=torch.float32, device=device)
        self.register_buffer("scale", scale)
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=bias_dtype, device=device), requires_grad=False)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32, rows: slice = slice(None)) -> torch.Tensor:
        """W (or its `rows`) in `dtype`: an unscaled fp8 value is exact in every 16- and 32-bit float; a scaled one
        is multiplied in float32 and rounded once."""
        weight = self.fp8_weight[rows]
        if self.scale is None:
            return weight.to(dtype)
        scale = self.scale if self.scale.dim() == 0 else self.scale[rows]
        return (weight.float() * scale).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_rows(x, slice(None))

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]` from those rows of the weight only."""
        bias = None if self.bias is None else self.bias[rows].to(x.dtype)
        return F.linear(x, self.dequantized_weight(x.dtype, rows), bias)

    def extra_repr(self) -> str:
        scale = "none" if self.scale is None else ("per tensor" if self.scale.dim() == 0 else "per row")
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"fp8={str(self.fp8_weight.dtype).removeprefix('torch.')}, scale={scale}, bias={self.bias is not None}"
        )


def use_float8_linears(
    model: nn.Module, tensors: Mapping[str, StoredTensor], scales: Mapping[str, StoredTensor], source: str
) -> set[str]:
    """Swap every `nn.Linear` of `model` whose weight is fp8 in `tensors` (names as the model's) for a
    `Float8Linear` placeholder on the old weight's device (the meta device: `float8_state` fills it); returns the
    swapped modules' names. Scales must be one per tensor or one per output row."""
    swapped, modules = set(), dict(model.named_modules())
    for name, tensor in tensors.items():
        module_name = name.removesuffix(".weight")
        linear = modules.get(module_name)
        if tensor.dtype not in FLOAT8_DTYPES or not name.endswith(".weight") or not isinstance(linear, nn.Linear):
            continue
        scale = scales.get(name)
        layer = Float8Linear(
            linear.in_features,
            linear.out_features,
            FLOAT8_DTYPES[tensor.dtype],
            None if scale is None else kept_scale_shape(scale.shape, linear.out_features, f"{source}: {name}"),
            bias=linear.bias is not None,
            device=linear.weight.device,
            bias_dtype=linear.weight.dtype,
        )
        replace_module(model, module_name, layer)
        swapped.add(module_name)
    return swapped


def float8_state(
    tensors: Mapping[str, StoredTensor],
    scales: Mapping[str, StoredTensor],
    kept: set[str],
    load: Callable[[StoredTensor], torch.Tensor],
    convert: Callable[[torch.Tensor], torch.Tensor],
    place: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The state dict of a model after `use_float8_linears` (which returned `kept`), reading each tensor once with
    `load`: the kept layers' fp8 weights and scales as stored (then `place`d: moved to the device), every other
    tensor `convert`ed (cast to the compute dtype and moved), an fp8 one widened first (times its scale)."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        module_name, _, leaf = name.rpartition(".")
        values = load(tensor)
        scale = scales.get(name)
        if module_name in kept and leaf == "weight":
            state[f"{module_name}.fp8_weight"] = place(values)
            if scale is not None:
                shape = kept_scale_shape(scale.shape, values.shape[0], name)
                state[f"{module_name}.scale"] = place(load(scale).float().reshape(shape))
            continue
        if values.dtype in FLOAT8_DTYPES.values():
            if scale is not None:
                kept_scale_shape(scale.shape, values.shape[0], name)
            values = widened(values, None if scale is None else load(scale))
        state[name] = convert(values)
    return state


def widened(values: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """An fp8 tensor (or some of its rows) in float32, times its `scale`: one for the tensor, or one per row (of
    the rows given), as `kept_scale_shape` allows."""
    values = values.float()
    if scale is None:
        return values
    scale = scale.float()
    return values * (scale.reshape(()) if scale.numel() == 1 else scale.reshape(-1, *[1] * (values.dim() - 1)))


def kept_scale_shape(shape: tuple[int, ...], rows: int, what: str) -> tuple[int, ...]:
    """The shape a scale of a weight with `rows` output rows is kept in: [] for one per tensor, [rows, 1] for one
    per row; any other is a `CheckpointError` about `what`."""
    count = math.prod(shape)
    if count == 1:
        return ()
    if count == rows and len(shape) <= 2 and shape[0] == rows:
        return (rows, 1)
    raise CheckpointError(
        f"{what}: its fp8 scale has shape {list(shape)}; motif-lite reads one scale per tensor or per output row "
        f"({rows})"
    )
