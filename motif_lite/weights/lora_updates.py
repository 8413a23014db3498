"""What a checked LoRA file holds (`LoRAFile`): per layer a low-rank update (`LoRAUpdate`, `scale · B·A`), a full
difference of a plain tensor (`WeightDiff`), or a LyCORIS LoHa's or LoKr's change (`ProductUpdate`, with the math
that makes it whole, a LoRA of rank r1·r2 or its two Kronecker factors). weights/lora_parts.py makes them from a
file's tensors; weights/lora_apply.py applies them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import torch

from motif_lite.config import TransformerConfig
from motif_lite.errors import counted

if TYPE_CHECKING:  # a LoRAFile's spec: lora_specs.py imports this module (`lora_specs` keeps a LoRAFile as it is)
    from motif_lite.weights.lora_specs import LoRASpec


def _shapes_repr(value: object) -> str:
    """`value` as a repr that names a tensor by its shape and dtype rather than printing its values."""
    if isinstance(value, torch.Tensor):
        return f"<tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')}>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_shapes_repr(item)}" for key, item in value.items()) + "}"
    return repr(value)


class ShapesRepr:
    """A dataclass mixin whose repr gives its tensors' shapes, not their values: the default printed every value
    of every tensor (tens of thousands of lines for one LoRA file, shown whole where a REPL echoes it)."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={_shapes_repr(getattr(self, f.name))}" for f in fields(self) if f.repr)
        return f"{type(self).__name__}({shown})"


@dataclass(repr=False)
class LoRAUpdate(ShapesRepr):
    """One module's low-rank update from one file."""

    module: str  # our module name
    down: torch.Tensor  # A: [rank, in] (a linear) or [rank, in, kt, kh, kw] (the Conv3d)
    up: torch.Tensor  # B: [out, rank] or [out, rank, 1, 1, 1]
    scale: float  # strength x alpha / rank (or the strength alone)


@dataclass(frozen=True, repr=False)
class WeightDiff(ShapesRepr):
    """A full difference of one plain tensor (ComfyUI's `.diff` for a weight, `.diff_b` for a bias): the tensor
    becomes `tensor + strength · diff`."""

    tensor: str  # our parameter name, e.g. "transformer_blocks.0.norm1.linear.bias"
    diff: torch.Tensor
    strength: float


@dataclass(repr=False)
class ProductUpdate(ShapesRepr):
    """One linear's LyCORIS change from one file: LoHa `(w1a·w1b) ⊙ (w2a·w2b)` or LoKr `w1 ⊗ w2` (each of w1, w2 a
    matrix or the product of two, `_a`·`_b`), times `scale` (strength × alpha / rank). It merges into a float
    weight; beside a packed one a LoHa runs as a LoRA of rank r1·r2 (`low_rank`), or as its whole change where that
    takes fewer bytes (`delta`), a LoKr as its two Kronecker factors (`kron_factors`), never made into an [out, in]
    matrix."""

    module: str  # our module name
    kind: str  # "LoHa" or "LoKr"
    factors: dict[str, torch.Tensor]  # by LyCORIS' names: hada_w1_a, ..., lokr_w1 or lokr_w1_a and lokr_w1_b, ...
    scale: float

    def delta(self, device: torch.device | None = None) -> torch.Tensor:
        """The change `[out, in]` before `scale`, in float32 on `device` (made when merged: a layer's worth of
        memory, which the file's small factors do not hold)."""
        f = {name: t.to(device, torch.float32) for name, t in self.factors.items()}
        if self.kind == "LoHa":
            return (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"])
        return torch.kron(_lokr_factor(f, "lokr_w1"), _lokr_factor(f, "lokr_w2"))

    def low_rank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A LoHa's change before `scale` as a LoRA's (down [r1·r2, in], up [out, r1·r2]) in float32, exactly:
        `(w1a·w1b)[i, j] · (w2a·w2b)[i, j]` is the sum over (k, l) of `w1a[i, k]·w2a[i, l]` (up's row i, column
        (k, l)) times `w1b[k, j]·w2b[l, j]` (down's row (k, l), column j)."""
        f = {name: t.float() for name, t in self.factors.items()}
        up = (f["hada_w1_a"][:, :, None] * f["hada_w2_a"][:, None, :]).flatten(1)
        down = (f["hada_w1_b"][:, None, :] * f["hada_w2_b"][None, :, :]).flatten(0, 1)
        return down, up

    def kron_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A LoKr's w1 [a, c] and w2 [b, d] in float32 (each stored whole or made from its `_a` and `_b`): its change
        before `scale` is `kron(w1, w2)`, [a·b, c·d]."""
        f = {name: t.float() for name, t in self.factors.items()}
        return _lokr_factor(f, "lokr_w1"), _lokr_factor(f, "lokr_w2")

    def low_rank_size(self) -> int:
        """A LoHa's rank as a LoRA (`low_rank`): r1·r2."""
        return self.factors["hada_w1_b"].shape[0] * self.factors["hada_w2_b"].shape[0]

    def kron_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The shapes of a LoKr's w1 and w2 (`kron_factors`)."""
        return _lokr_factor_shape(self.factors, "lokr_w1"), _lokr_factor_shape(self.factors, "lokr_w2")

    def shape(self) -> tuple[int, int]:
        """The weight shape (out, in) of the layer it changes."""
        f = self.factors
        if self.kind == "LoHa":
            return (f["hada_w1_a"].shape[0], f["hada_w1_b"].shape[1])
        rows, columns = zip(*self.kron_shapes(), strict=True)
        return (math.prod(rows), math.prod(columns))

    def is_zero(self) -> bool:
        """Whether the change is zero: one of its products' factors all zero (LyCORIS starts w2 or w2_b at zero)."""
        groups = [("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")] if self.kind == "LoHa" else [
            ("lokr_w1", "lokr_w1_a", "lokr_w1_b"), ("lokr_w2", "lokr_w2_a", "lokr_w2_b")]  # fmt: skip
        return any(any(not self.factors[n].any() for n in group if n in self.factors) for group in groups)


def _lokr_factor(factors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """A LoKr's w1 or w2: stored whole, or as the product of its `_a` and `_b`."""
    return factors[name] if name in factors else factors[f"{name}_a"] @ factors[f"{name}_b"]


def _lokr_factor_shape(factors: Mapping[str, torch.Tensor], name: str) -> tuple[int, int]:
    if name in factors:
        return tuple(factors[name].shape)
    return (factors[f"{name}_a"].shape[0], factors[f"{name}_b"].shape[1])


@dataclass(repr=False)
class LoRAFile:
    """A checked LoRA file: every update names a linear (or the Conv3d) of the model with matching shapes."""

    spec: LoRASpec
    format: str
    updates: list[LoRAUpdate]
    # The transformer config whose layers it was read and checked against (`preflight.loras_for_config`), so a load
    # of a transformer of that config takes it without building the model again; None: checked against a model's
    # layers alone, or not known to be (a Python caller's), and checked again by `preflight.check_loras`.
    checked_for: TransformerConfig | None = None
    diffs: list[WeightDiff] = field(default_factory=list)  # full differences of plain tensors (norms, biases)
    products: list[ProductUpdate] = field(default_factory=list)  # LyCORIS LoHa / LoKr changes of linears

    def __repr__(self) -> str:
        # What the run summary says of it, with its whole path: the updates are many tensors (`updates[i]` shows
        # one by its shapes).
        return f"<LoRAFile {self.spec.path}: {self.describe()}>"

    def describe(self) -> str:
        # A LoRA saved before training changed anything (PEFT starts B at zero) makes the video it would make
        # without it: said, as the video alone would not tell why the LoRA shows no effect.
        zero = ", all zero: no effect; saved before training?" if self.is_zero() else ""
        diffs = f", {counted(len(self.diffs), 'full difference')}" if self.diffs else ""
        layers = len(self.updates) + len(self.products)
        return f"{self.spec.path.name} x{self.spec.strength:g} ({self.format}, {counted(layers, 'layer')}{diffs}{zero})"

    def is_zero(self) -> bool:
        """Whether every update of the file is zero (its up or its down weights all zero), at any strength."""
        return (
            all(not (u.up.any() and u.down.any()) for u in self.updates)
            and not any(d.diff.any() for d in self.diffs)
            and all(p.is_zero() for p in self.products)
        )


def update_shape(update: LoRAUpdate) -> tuple[int, ...]:
    """The weight shape of the layer `update` changes: (out, in) for a linear, (out, in, kt, kh, kw) for a Conv3d."""
    return (update.up.shape[0], *update.down.shape[1:])
