"""Applying checked LoRA files (weights/lora.py reads them) to the transformer.

    applied = apply_loras(transformer, files, dtype=torch.bfloat16)

A float layer gets each update merged into its weight (the forward stays one GEMM); so does the patch embedder's
Conv3d, which no load keeps packed (our GGUF files hold it in F32; a quantized one, from another tool, is dequantized
as it loads: `quantized_state_dict`), and so does a LyCORIS LoHa's or LoKr's change. A `QuantizedLinear` or
`Float8Linear`, whose packed weight cannot absorb it, is wrapped in `LoRALinear`, which computes `W·x + B·(s·(A·x))`
(a LoHa as a LoRA of rank r1·r2: `ProductUpdate.low_rank`), and for each LoKr in `LoKrLinear`, which computes
`W·x + s·(w1 ⊗ w2)·x` without making the Kronecker product. The scales s stay in float32, out of the adapter tensors,
which a 16-bit compute dtype would turn to inf for a large scale. The adapter tensors are buffers of the layer's
block, so block streaming moves them with the block.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from motif_lite.errors import counted
from motif_lite.model.attention import project_rows
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.lora import (
    LoRAFile,
    LoRAUpdate,
    ProductUpdate,
    WeightDiff,
    check_diff_target,
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
    """`base(x) + up·(scale ⊙ (down·x))`: a low-rank update beside a layer whose weight cannot absorb it (packed
    blocks).

    `down` [rank, in] and `up` [out, rank] in the compute dtype, and `scale` [rank] in float32 (each file's scale
    for its ranks), are buffers of this module, so they move wherever the layer's block is placed or streamed. The
    scale multiplies the rank-sized `down·x` in float32 rather than being folded into `up`: a 16-bit `up` times a
    large scale (a strong LoRA, a high alpha) would store inf where the update itself is a finite number."""

    def __init__(
        self, base: nn.Module, down: torch.Tensor, up: torch.Tensor, scale: torch.Tensor | None = None
    ) -> None:
        """`scale`: [rank] (None: 1 for each)."""
        super().__init__()
        self.base = base
        self.register_buffer("down", down)
        self.register_buffer("up", up)
        if scale is None:
            scale = torch.ones(down.shape[0], device=down.device)
        self.register_buffer("scale", scale.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.update(x, slice(None))

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]`: the base layer's rows and the update's."""
        return project_rows(self.base, x, rows) + self.update(x, rows)

    def update(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`(up·(scale ⊙ (down·x)))[..., rows]`."""
        scaled = (F.linear(x, self.down.to(x.dtype)).float() * self.scale).to(x.dtype)
        return F.linear(scaled, self.up[rows].to(x.dtype))

    def extra_repr(self) -> str:
        return f"rank={self.down.shape[0]}"


class LoKrLinear(nn.Module):
    """`base(x) + scale · kron(w1, w2)·x`: a LyCORIS LoKr beside a layer whose weight cannot absorb it, without the
    [out, in] Kronecker product: with w1 [a, c] and w2 [b, d], x [..., c·d] read as X [..., c, d] gives
    `w1 · X · w2ᵀ` [..., a, b], which read as [..., a·b] is the product's rows applied to x.

    `w1` and `w2` (in the compute dtype) are buffers, moved with the layer's block; `scale` stays a Python float,
    folded into neither (a 16-bit w1 or w2 times a large scale could hold inf where the update is a number)."""

    def __init__(self, base: nn.Module, w1: torch.Tensor, w2: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("w1", w1)
        self.register_buffer("w2", w2)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.update(x)

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]`: the base layer's rows and those of the update (made whole: it is cheap)."""
        return project_rows(self.base, x, rows) + self.update(x)[..., rows]

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """`scale · kron(w1, w2)·x`, [..., a·b]."""
        columns, inner = self.w1.shape[1], self.w2.shape[1]
        right = F.linear(x.unflatten(-1, (columns, inner)), self.w2.to(x.dtype)) * self.scale  # X·w2ᵀ [..., c, b]
        both = F.linear(right.transpose(-1, -2), self.w1.to(x.dtype))  # (w1·X·w2ᵀ)ᵀ [..., b, a]
        return both.transpose(-1, -2).flatten(-2)

    def extra_repr(self) -> str:
        return f"w1={list(self.w1.shape)}, w2={list(self.w2.shape)}, scale={self.scale:g}"


def apply_loras(model: nn.Module, files: list[LoRAFile], dtype: torch.dtype | None = None) -> AppliedLoRAs:
    """Add the files' updates to `model` (after loading, before kernels and memory plans are applied): merged into
    float weights, `LoRALinear` and `LoKrLinear` around packed ones. `dtype`: the adapters' compute dtype (default:
    float32)."""
    for file in files:  # before any layer is wrapped: the differences name the model's own tensors
        for diff in file.diffs:
            _add_diff(model, file, diff)
    per_module: dict[str, list[LoRAUpdate]] = defaultdict(list)
    products: dict[str, list[ProductUpdate]] = defaultdict(list)
    for file in files:
        for update in file.updates:
            per_module[update.module].append(update)
        for product in file.products:
            products[product.module].append(product)
    applied = AppliedLoRAs(files=list(files))
    for name in [*per_module, *(m for m in products if m not in per_module)]:
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Linear | nn.Conv3d):
            _merge(layer, per_module[name], products[name])
            applied.merged += 1
        else:
            replace_module(model, name, _wrap(layer, per_module[name], products[name], dtype or torch.float32))
            applied.wrapped += 1
    return applied


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


def _merge(layer: nn.Linear | nn.Conv3d, updates: list[LoRAUpdate], products: list[ProductUpdate]) -> None:
    weight = layer.weight.detach().float()
    for u in updates:
        # The adapters are read onto the CPU; the weight may already be on the GPU (a load straight to the target).
        up, down = (t.to(weight.device, torch.float32) for t in (u.up, u.down))
        # A conv's B [out, rank, 1, 1, 1] and A [rank, in, kt, kh, kw] as matrices, their product shaped as the
        # kernel: PEFT's merge of a conv LoRA (a linear's are matrices already).
        weight = weight + u.scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
    for product in products:  # a LoHa's or LoKr's change: made once here, a layer's worth of memory
        weight = weight + product.scale * product.delta(weight.device)
    # A new tensor rather than an in-place add: the loaded weight may share memory with the checkpoint file.
    layer.weight = nn.Parameter(weight.to(layer.weight.dtype), requires_grad=False)


def _wrap(
    layer: QuantizedLinear | Float8Linear, updates: list[LoRAUpdate], products: list[ProductUpdate], dtype: torch.dtype
) -> nn.Module:
    """`layer` with the updates beside it: the LoRAs and LoHas as one `LoRALinear` of their summed rank ([A1; A2],
    [B1, B2] and each file's scale for its ranks), each LoKr as a `LoKrLinear` around that."""
    device = next(layer.buffers()).device  # the packed weight's
    low_rank = [(u.down.float(), u.up.float(), u.scale) for u in updates]
    low_rank += [(*p.low_rank(), p.scale) for p in products if p.kind == "LoHa"]
    wrapped: nn.Module = layer
    if low_rank:
        down = torch.cat([d for d, _, _ in low_rank]).to(device, dtype)
        up = torch.cat([u for _, u, _ in low_rank], dim=1).to(device, dtype)
        scale = torch.cat([torch.full((d.shape[0],), s) for d, _, s in low_rank]).to(device, torch.float32)
        wrapped = LoRALinear(layer, down, up, scale)
    for product in products:
        if product.kind == "LoKr":
            w1, w2 = (w.to(device, dtype) for w in product.kron_factors())
            wrapped = LoKrLinear(wrapped, w1, w2, product.scale)
    return wrapped


def side_adapter_bytes(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, tuple[int, ...]]:
    """The bytes of the adapters `apply_loras` keeps beside each layer the files change, if that layer is packed:
    module name -> each tensor's bytes as `_wrap` builds them (a `LoRALinear`'s down and up in `dtype` and its
    float32 scale, for the LoRAs and LoHas of the layer summed into one; each LoKr's w1 and w2 in `dtype`). A float
    layer merges its updates and keeps nothing beside it: the memory plan asks only for packed transformers."""
    ranks: dict[str, int] = defaultdict(int)
    shapes: dict[str, tuple[int, int]] = {}
    kron: dict[str, list[int]] = defaultdict(list)
    for file in files:
        for u in file.updates:
            if u.down.ndim != 2:  # the Conv3d's: its weight is never packed, so its update always merges
                continue
            ranks[u.module] += u.down.shape[0]
            shapes[u.module] = (u.up.shape[0], u.down.shape[1])  # (out, in)
        for p in file.products:
            if p.kind == "LoHa":
                ranks[p.module] += p.low_rank_size()
                shapes[p.module] = p.shape()
            else:
                kron[p.module] += [math.prod(shape) * dtype.itemsize for shape in p.kron_shapes()]
    size, fp32 = dtype.itemsize, torch.float32.itemsize
    found = {m: (r * shapes[m][1] * size, shapes[m][0] * r * size, r * fp32) for m, r in ranks.items()}
    return {m: found.get(m, ()) + tuple(kron.get(m, ())) for m in {*found, *kron}}
