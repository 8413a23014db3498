"""Applying checked LoRA files (weights/lora.py reads them) to the transformer.

    applied = apply_loras(transformer, files, dtype=torch.bfloat16)

A float layer gets each update merged into its weight (the forward stays one GEMM); so does the patch embedder's
Conv3d, which no load keeps packed (our GGUF files hold it in F32; a quantized one, from another tool, is dequantized
as it loads: `quantized_state_dict`), and so does a LyCORIS LoHa's or LoKr's change. A `QuantizedLinear` or
`Float8Linear`, whose packed weight cannot absorb it, is wrapped in `LoRALinear`, which computes `W·x + B·(s·(A·x))`
(a LoHa as a LoRA of rank r1·r2: `ProductUpdate.low_rank`, or in `DeltaLinear`, its whole [out, in] change, where
that takes fewer bytes), and for each LoKr in `LoKrLinear`, which computes `W·x + s·(w1 ⊗ w2)·x` without making the
Kronecker product. The scales s stay in float32, out of the adapter tensors, which a 16-bit compute dtype would turn
to inf for a large scale; each adapter tensor (each rank's A row and B column) is kept at most 1, a power of two
moved into s, so no 16-bit step of the update outgrows the update itself and small factors keep their digits. The
adapter tensors are buffers of the layer's block, so block streaming moves them with the block.
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
from motif_lite.units import memory_size
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.lora import check_diff_target
from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate, ProductUpdate, WeightDiff
from motif_lite.weights.modules import replace_module
from motif_lite.weights.quant_linear import QuantizedLinear

# A strength beyond which a LoRA makes noise rather than its style (1 is as trained; users go to about 2).
FAR_STRENGTH = 10.0


@dataclass(repr=False)
class AppliedLoRAs:
    """What `apply_loras` did, for the run summary."""

    files: list[LoRAFile] = field(default_factory=list)
    merged: int = 0  # float layers whose weight absorbed the updates
    wrapped: int = 0  # packed layers computing the update beside the weight
    beside_bytes: int = 0  # the memory of the adapters those packed layers keep beside their weights

    def __repr__(self) -> str:
        # The run summary's line (`pipe.loras` in a REPL): the default printed every tensor of every file.
        return f"<AppliedLoRAs {self.describe()}>"

    def describe(self) -> str:
        parts = [f.describe() for f in self.files]
        # What the adapters beside packed layers keep in memory, said: a high rank on a GGUF costs a share of the
        # blocks' own size (docs/usage.md), which the merged float layers never do.
        beside = f", adapters beside them {memory_size(self.beside_bytes)}" if self.wrapped else ""
        return f"{', '.join(parts)}; {counted(self.merged, 'layer')} merged, {self.wrapped} unmerged (packed){beside}"

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


class BesideLinear(nn.Module):
    """A packed layer with an update computed beside it: `base(x) + update(x)`. Each kind of adapter
    (`LoRALinear`, `LoKrLinear`, `DeltaLinear`) says how its update is made, for all rows or a slice of them."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.update(x, slice(None))

    def forward_rows(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`self(x)[..., rows]`: the base layer's rows and the update's."""
        return project_rows(self.base, x, rows) + self.update(x, rows)

    def update(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """The update's `rows` for input `x`."""
        raise NotImplementedError


class LoRALinear(BesideLinear):
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
        super().__init__(base)
        self.register_buffer("down", down)
        self.register_buffer("up", up)
        if scale is None:
            scale = torch.ones(down.shape[0], device=down.device)
        self.register_buffer("scale", scale.float())

    def update(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`(up·(scale ⊙ (down·x)))[..., rows]`. Both products run in the compute dtype: `_wrap` keeps each rank's
        down row and up column at most 1, their magnitudes in `scale`, so neither a large down nor a large up takes
        a 16-bit step past the update's own size."""
        scaled = (F.linear(x, self.down.to(x.dtype)).float() * self.scale).to(x.dtype)
        return F.linear(scaled, self.up[rows].to(x.dtype))

    def extra_repr(self) -> str:
        return f"rank={self.down.shape[0]}"


class LoKrLinear(BesideLinear):
    """`base(x) + scale · kron(w1, w2)·x`: a LyCORIS LoKr beside a layer whose weight cannot absorb it, without the
    [out, in] Kronecker product: with w1 [a, c] and w2 [b, d], x [..., c·d] read as X [..., c, d] gives
    `w1 · X · w2ᵀ` [..., a, b], which read as [..., a·b] is the product's rows applied to x.

    `w1` and `w2` (in the compute dtype) are buffers, moved with the layer's block; `scale` stays a Python float,
    folded into neither (a 16-bit w1 or w2 times a large scale could hold inf where the update is a number) and
    applied last, in float32, rounded once. `_wrap` keeps each factor's largest value at most 1 (a power of two
    moved into `scale`), so the 16-bit w1·X·w2ᵀ stays as large as the layer's own input sums, whichever factor is
    the large one."""

    def __init__(self, base: nn.Module, w1: torch.Tensor, w2: torch.Tensor, scale: float) -> None:
        super().__init__(base)
        self.register_buffer("w1", w1)
        self.register_buffer("w2", w2)
        self.scale = scale

    def update(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`(scale · kron(w1, w2)·x)[..., rows]`. Row i·b + j of the product is w1's row i with w2's row j, so a
        slice of rows needs only w1's rows from start // b to the one holding its last row, n of them: those are
        computed (a head group's rows, not the whole update per group), the ends cut to the slice. The cheaper order
        runs: w1's rows first (n·d·(c + b) multiply-adds per token) or w2 first (c·b·(d + n))."""
        outer, inner = self.w1.shape[0], self.w2.shape[0]
        start, stop, step = rows.indices(outer * inner)
        if step != 1:
            raise ValueError(f"rows of a LoKr update are a contiguous slice, not every {step}th row")
        first, last = start // inner, max(-(-stop // inner), start // inner)  # w1's rows [first, last)
        columns, width = self.w1.shape[1], self.w2.shape[1]
        w1, picked = self.w1[first:last], last - first
        X = x.unflatten(-1, (columns, width))
        w2 = self.w2.to(x.dtype)
        if picked * width * (columns + inner) <= columns * inner * (width + picked):
            both = F.linear(torch.matmul(w1.to(x.dtype), X), w2)  # (w1[first:last]·X)·w2ᵀ [..., n, b]
        else:
            both = torch.matmul(w1.to(x.dtype), F.linear(X, w2))  # w1[first:last]·(X·w2ᵀ) [..., n, b]
        offset = first * inner
        # A Python float times a 16-bit tensor is computed in float32 and rounded once: inf only past the dtype.
        return both.flatten(-2)[..., start - offset : stop - offset] * self.scale

    def extra_repr(self) -> str:
        return f"w1={list(self.w1.shape)}, w2={list(self.w2.shape)}, scale={self.scale:g}"


class DeltaLinear(BesideLinear):
    """`base(x) + scale · delta·x`: a change kept whole, [out, in], beside a layer whose weight cannot absorb it,
    where that takes fewer bytes than its low-rank form (LoHas of rank r1·r2 with r1·r2·(in + out) past in·out).

    `delta` (in the compute dtype, its largest value at most 1: `_wrap` moves a power of two into `scale`) is a
    buffer, moved with the layer's block; `scale` is a Python float, applied to the 16-bit product in float32 and
    rounded once, so a large scale gives inf only where the update itself is past the dtype's largest number."""

    def __init__(self, base: nn.Module, delta: torch.Tensor, scale: float) -> None:
        super().__init__(base)
        self.register_buffer("delta", delta)
        self.scale = scale

    def update(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`(scale · delta·x)[..., rows]`."""
        return F.linear(x, self.delta[rows].to(x.dtype)) * self.scale

    def extra_repr(self) -> str:
        return f"delta={list(self.delta.shape)}, scale={self.scale:g}"


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
            wrapper = _wrap(layer, per_module[name], products[name], dtype or torch.float32)
            replace_module(model, name, wrapper)
            applied.wrapped += 1
            applied.beside_bytes += _tensor_bytes(wrapper) - _tensor_bytes(layer)
    return applied


def _tensor_bytes(module: nn.Module) -> int:
    """The bytes of `module`'s parameters and buffers, its submodules' included."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


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
    [B1, B2] and each file's scale for its ranks), or the LoHas summed into one `DeltaLinear` where their rank r1·r2
    takes more bytes than the whole change (`_loha_kept_whole`), then each LoKr as a `LoKrLinear` around that."""
    device = next(layer.buffers()).device  # the packed weight's
    lohas = [p for p in products if p.kind == "LoHa"]
    whole = bool(lohas) and _loha_kept_whole(sum(p.low_rank_size() for p in lohas), lohas[0].shape(), dtype)
    low_rank = [(u.down.float(), u.up.float(), u.scale) for u in updates]
    if not whole:
        low_rank += [(*p.low_rank(), p.scale) for p in lohas]
    wrapped: nn.Module = layer
    if low_rank:
        # Each rank's down row and up column at most 1, their magnitudes in its float32 scale.
        down, down_factor = _at_most_one(torch.cat([d for d, _, _ in low_rank]), dim=1)
        up, up_factor = _at_most_one(torch.cat([u for _, u, _ in low_rank], dim=1), dim=0)
        scale = torch.cat([torch.full((d.shape[0],), s) for d, _, s in low_rank])
        scale = scale * down_factor.flatten() * up_factor.flatten()
        wrapped = LoRALinear(layer, down.to(device, dtype), up.to(device, dtype), scale.to(device))
    if whole:
        delta, factor = _at_most_one(sum(p.scale * p.delta(device) for p in lohas))
        wrapped = DeltaLinear(wrapped, delta.to(dtype), float(factor))
    for product in products:
        if product.kind == "LoKr":
            (w1, w1_factor), (w2, w2_factor) = (_at_most_one(w) for w in product.kron_factors())
            scale = product.scale * float(w1_factor) * float(w2_factor)
            wrapped = LoKrLinear(wrapped, w1.to(device, dtype), w2.to(device, dtype), scale)
    return wrapped


def _at_most_one(tensor: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`tensor / f` and `f`: the powers of two (exact to divide by) that bring its largest magnitude (along `dim`
    for each other index; None: of all) to at most 1. Kept in 16 bits that way, an adapter tensor neither
    overflows nor loses a small one's digits below the dtype's normal numbers, and a 16-bit product with it stays
    as large as the layer's own input sums; the magnitudes go to a float32 scale."""
    peak = tensor.abs().amax() if dim is None else tensor.abs().amax(dim=dim, keepdim=True)
    factor = torch.where(peak > 0, torch.exp2(torch.ceil(torch.log2(peak))), torch.ones_like(peak))
    return tensor / factor, factor


def _loha_kept_whole(rank: int, shape: tuple[int, int], dtype: torch.dtype) -> bool:
    """Whether a layer's LoHas, of summed rank r1·r2, are kept as their whole [out, in] change rather than as a
    LoRA of that rank (down, up and a float32 scale per rank): whichever takes fewer bytes, and fewer multiply-adds
    per token with them."""
    out, inp = shape
    return out * inp * dtype.itemsize < rank * ((inp + out) * dtype.itemsize + torch.float32.itemsize)


@dataclass(frozen=True)
class SideAdapters:
    """What `apply_loras` keeps beside one packed layer, [out, in] = `shape`: a `LoRALinear` of `rank` (the LoRAs
    and LoHas of the layer summed into one; 0: none), the LoHas' whole change (`DeltaLinear`) where that is smaller,
    and one `LoKrLinear` per LoKr, each as its factors' shapes (w1 [a, c], w2 [b, d])."""

    shape: tuple[int, int]
    rank: int = 0
    whole: bool = False
    kron: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()

    def tensor_bytes(self, dtype: torch.dtype) -> tuple[int, ...]:
        """Each kept tensor's bytes: the LoRA's down and up in `dtype` and its float32 scale, the whole change in
        `dtype`, each LoKr's w1 and w2 in `dtype`."""
        (out, inp), size = self.shape, dtype.itemsize
        lora = (self.rank * inp * size, out * self.rank * size, self.rank * torch.float32.itemsize)
        kron = tuple(math.prod(shape) * size for pair in self.kron for shape in pair)
        return (lora if self.rank else ()) + ((out * inp * size,) if self.whole else ()) + kron

    def temporary_bytes_per_token(self, dtype: torch.dtype) -> int:
        """The most bytes per token the adapters' updates keep alive at once beside the output of the layer they
        wrap, in a `dtype` run: the update's own temporaries, then the update next to the sum it is added into
        (both [tokens, out]: the layer's output alone is what a plain layer keeps). The adapters nest (`_wrap`),
        each update running once the layer inside it has returned its output, so one update's peak is the layer's:
        the largest of them. A LoRA: down·x [rank], its float32 copy scaled in float32 (two [rank] float32 tensors
        at once), back in `dtype`, then up·(...) [out] next to it; the whole change: its product and that product
        scaled; a LoKr: its first product ([a, d] or [c, b] per token, the order `LoKrLinear.update` runs) next to
        the second [out]."""
        out, size = self.shape[0], dtype.itemsize
        peaks = [2 * out * size]  # the update and the sum, or the whole change's product and that product scaled
        if self.rank:
            peaks += [2 * self.rank * torch.float32.itemsize, (self.rank + out) * size]
        for (a, c), (b, d) in self.kron:
            first = a * d if a * d * (c + b) <= c * b * (d + a) else c * b
            peaks.append((first + out) * size)
        return max(peaks) if self.rank or self.whole or self.kron else 0

    def macs_per_token(self) -> int:
        """Multiply-adds per token of the adapters' forward over the layer's whole output (the base layer's are
        not counted): the LoRA's down and up, the whole change's [out, in] product, and each LoKr's two products in
        the cheaper order `LoKrLinear.update` runs."""
        out, inp = self.shape
        macs = self.rank * (inp + out) + (out * inp if self.whole else 0)
        for (a, c), (b, d) in self.kron:
            macs += min(a * d * (c + b), c * b * (d + a))
        return macs


def side_adapters(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, SideAdapters]:
    """The adapters `apply_loras` keeps beside each layer the files change, if that layer is packed (a float layer
    merges its updates and keeps nothing beside it), as `_wrap` builds them for a `dtype` compute dtype."""
    ranks: dict[str, int] = defaultdict(int)
    loha_ranks: dict[str, int] = defaultdict(int)
    shapes: dict[str, tuple[int, int]] = {}
    kron: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = defaultdict(list)
    for file in files:
        for u in file.updates:
            if u.down.ndim != 2:  # the Conv3d's: its weight is never packed, so its update always merges
                continue
            ranks[u.module] += u.down.shape[0]
            shapes[u.module] = (u.up.shape[0], u.down.shape[1])  # (out, in)
        for p in file.products:
            shapes[p.module] = p.shape()
            if p.kind == "LoHa":
                loha_ranks[p.module] += p.low_rank_size()
            else:
                kron[p.module].append(p.kron_shapes())
    whole = set()
    for module, rank in loha_ranks.items():
        if _loha_kept_whole(rank, shapes[module], dtype):
            whole.add(module)
        else:
            ranks[module] += rank
    modules = {*ranks, *whole, *kron}
    return {m: SideAdapters(shapes[m], ranks.get(m, 0), m in whole, tuple(kron.get(m, ()))) for m in sorted(modules)}


def side_adapter_bytes(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, tuple[int, ...]]:
    """The bytes of the adapters `apply_loras` keeps beside each layer the files change, if that layer is packed:
    module name -> each tensor's bytes as `_wrap` builds them (`SideAdapters.tensor_bytes`). A float layer merges
    its updates and keeps nothing beside it: the memory plan asks only for packed transformers."""
    return {m: adapters.tensor_bytes(dtype) for m, adapters in side_adapters(files, dtype).items()}


def side_adapter_temporary_bytes(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, int]:
    """The most bytes per token that the adapters `apply_loras` keeps beside each packed layer the files change keep
    alive at once in a forward (`SideAdapters.temporary_bytes_per_token`), for the memory plan's activations."""
    return {m: adapters.temporary_bytes_per_token(dtype) for m, adapters in side_adapters(files, dtype).items()}


def side_adapter_macs(files: list[LoRAFile], dtype: torch.dtype) -> dict[str, int]:
    """Multiply-adds per token of the adapters `apply_loras` keeps beside each packed layer the files change
    (`SideAdapters.macs_per_token`): work a merged update does not add, which the time estimate counts."""
    return {m: adapters.macs_per_token() for m, adapters in side_adapters(files, dtype).items()}
