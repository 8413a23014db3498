"""Applying checked LoRA files (weights/lora.py reads them) to the transformer.

    applied = apply_loras(transformer, files, dtype=torch.bfloat16)

A float layer gets each update merged into its weight (the forward stays one GEMM); so does the patch embedder's
Conv3d, which no load keeps packed (our GGUF files hold it in F32; a quantized one, from another tool, is dequantized
as it loads: `quantized_state_dict`). A `QuantizedLinear` or `Float8Linear`, whose packed weight cannot absorb it, is
wrapped in `LoRALinear`, which computes `W·x + B·(A·x)` with the scale folded into B. The adapter tensors are buffers
of the layer's block, so block streaming moves them with the block.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.errors import counted
from motif_lite.model.attention import project_rows
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.lora import (
    LoRAError,
    LoRAFile,
    LoRAUpdate,
    ProductUpdate,
    WeightDiff,
    check_diff_target,
    packed_product_message,
)
from motif_lite.weights.modules import replace_module
from motif_lite.weights.quant_linear import QuantizedLinear

# A strength beyond which a LoRA makes noise rather than its style (1 is as trained; users go to about 2).
FAR_STRENGTH = 10.0


@dataclass
class AppliedLoRAs:
    """What `apply_loras` did, for the run summary."""

    files: list[LoRAFile] = field(default_factory=list)
    merged: int = 0  # float layers whose weight absorbed the updates
    wrapped: int = 0  # packed layers computing the update beside the weight

    def describe(self) -> str:
        parts = [f.describe() for f in self.files]
        return f"{', '.join(parts)}; {counted(self.merged, 'layer')} merged, {self.wrapped} unmerged (packed)"

    def overflow_cause(self) -> str | None:
        """What to say when the latents overflow to inf or NaN with a LoRA far stronger than LoRAs are made for
        applied (`--lora style.safetensors:1e6`): that strength, rather than a damaged file, is the likely cause."""
        strong = [f for f in self.files if abs(f.spec.strength) > FAR_STRENGTH]
        if not strong:
            return None
        named = ", ".join(f"{f.spec.path.name} x{f.spec.strength:g}" for f in strong)
        return (
            f"the LoRA strength of {named} is far beyond what LoRAs are made for (about -2 to 2; beyond "
            f"{FAR_STRENGTH:g} the video is noise, and huge strengths overflow): run it at a usual strength"
        )


class LoRALinear(nn.Module):
    """`base(x) + up·(down·x)`: a low-rank update beside a layer whose weight cannot absorb it (packed blocks).

    `down` [rank, in] and `up` [out, rank] (the scales folded into `up`) are buffers of this module, so they move
    wherever the layer's block is placed or streamed."""

    def __init__(self, base: nn.Module, down: torch.Tensor, up: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("down", down)
        self.register_buffer("up", up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.down.to(x.dtype)), self.up.to(x.dtype))

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]`: the base layer's rows and the update's."""
        update = F.linear(F.linear(x, self.down.to(x.dtype)), self.up[rows].to(x.dtype))
        return project_rows(self.base, x, rows) + update

    def extra_repr(self) -> str:
        return f"rank={self.down.shape[0]}"


def apply_loras(model: nn.Module, files: list[LoRAFile], dtype: torch.dtype | None = None) -> AppliedLoRAs:
    """Add the files' updates to `model` (after loading, before kernels and memory plans are applied): merged into
    float weights, `LoRALinear` around packed ones. `dtype`: the adapters' compute dtype (default: float32)."""
    for file in files:  # before any layer is wrapped: the differences name the model's own tensors
        for diff in file.diffs:
            _add_diff(model, file, diff)
    per_module: dict[str, list[LoRAUpdate]] = defaultdict(list)
    for file in files:
        for update in file.updates:
            per_module[update.module].append(update)
    applied = AppliedLoRAs(files=list(files))
    merged: set[str] = set()
    for name, updates in per_module.items():
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Linear | nn.Conv3d):
            _merge(layer, updates)
            merged.add(name)
        else:
            replace_module(model, name, _wrap(layer, updates, dtype or torch.float32))
            applied.wrapped += 1
    for file in files:
        for product in file.products:
            _merge_product(model, file, product)
            merged.add(product.module)
    applied.merged = len(merged)
    return applied


def _merge_product(model: nn.Module, file: LoRAFile, product: ProductUpdate) -> None:
    """A LoHa's or LoKr's change merged into its linear's float weight; a packed linear (the file read against a
    float model) is refused, as the read check refuses it."""
    layer = model.get_submodule(product.module)
    if not isinstance(layer, nn.Linear):
        raise LoRAError(packed_product_message(file.spec.path, product))
    weight = layer.weight.detach().float()
    weight = weight + product.scale * product.delta(weight.device)
    # A new tensor rather than an in-place add: the loaded weight may share memory with the checkpoint file.
    layer.weight = nn.Parameter(weight.to(layer.weight.dtype), requires_grad=False)


def _add_diff(model: nn.Module, file: LoRAFile, diff: WeightDiff) -> None:
    """`tensor + strength · diff`, as ComfyUI applies a full difference, on a plain tensor; a packed weight (a GGUF
    or fp8 layer, when the file was checked against a float model) is refused, as the read check refuses it."""
    module_name, _, attribute = diff.tensor.rpartition(".")
    module = model.get_submodule(module_name)
    target = getattr(module, attribute, None)
    packed = isinstance(module, QuantizedLinear | Float8Linear) and attribute == "weight"
    shape = tuple(target.shape) if isinstance(target, torch.Tensor) else ()
    key = f"{diff.tensor} ({'.diff' if attribute == 'weight' else '.diff_b'})"
    check_diff_target(file.spec.path, key, diff.tensor, tuple(diff.diff.shape), shape, packed)
    base = target.detach()
    changed = base.float() + diff.strength * diff.diff.to(base.device, torch.float32)
    # A new tensor rather than an in-place add: the loaded one may share memory with the checkpoint file.
    setattr(module, attribute, nn.Parameter(changed.to(base.dtype), requires_grad=False))


def _merge(layer: nn.Linear | nn.Conv3d, updates: list[LoRAUpdate]) -> None:
    weight = layer.weight.detach().float()
    for u in updates:
        # The adapters are read onto the CPU; the weight may already be on the GPU (a load straight to the target).
        up, down = (t.to(weight.device, torch.float32) for t in (u.up, u.down))
        # A conv's B [out, rank, 1, 1, 1] and A [rank, in, kt, kh, kw] as matrices, their product shaped as the
        # kernel: PEFT's merge of a conv LoRA (a linear's are matrices already).
        weight = weight + u.scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
    # A new tensor rather than an in-place add: the loaded weight may share memory with the checkpoint file.
    layer.weight = nn.Parameter(weight.to(layer.weight.dtype), requires_grad=False)


def _wrap(layer: QuantizedLinear | Float8Linear, updates: list[LoRAUpdate], dtype: torch.dtype) -> LoRALinear:
    # Several files on one layer: one adapter of the summed rank, [A1; A2] and [s1·B1, s2·B2].
    device = next(layer.buffers()).device  # the packed weight's
    down = torch.cat([u.down.float() for u in updates]).to(device, dtype)
    up = torch.cat([u.scale * u.up.float() for u in updates], dim=1).to(device, dtype)
    return LoRALinear(layer, down, up)


def side_adapter_bytes(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, tuple[int, int]]:
    """The bytes of the adapter `apply_loras` keeps beside each layer the files change, if that layer is packed:
    module name -> (down, up) in `dtype`, the files on one layer summed into one adapter as `_wrap` builds it (a
    float layer merges its updates and keeps nothing beside it: the memory plan asks only for packed transformers)."""
    ranks: dict[str, int] = defaultdict(int)
    shapes: dict[str, tuple[int, int]] = {}
    for file in files:
        for u in file.updates:
            if u.down.ndim != 2:  # the Conv3d's: its weight is never packed, so its update always merges
                continue
            ranks[u.module] += u.down.shape[0]
            shapes[u.module] = (u.up.shape[0], u.down.shape[1])  # (out, in)
    size = dtype.itemsize
    return {m: (ranks[m] * shapes[m][1] * size, shapes[m][0] * ranks[m] * size) for m in ranks}
