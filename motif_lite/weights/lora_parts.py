"""One layer's tensors in a LoRA file made into its checked update: down and up shaped for the layer (`parts_fit`),
a LoHa's or LoKr's factors complete and multiplying, floats without inf or NaN, and the scale (strength × alpha /
rank; alpha from the layer's `.alpha` tensor or from PEFT's settings, `peft_alphas`) kept from taking the merged
weight past float32's largest number."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from motif_lite.errors import shown
from motif_lite.json_values import NotAJSONObject, is_finite_number, parse_json_object
from motif_lite.weights.lora_errors import EDITED, MERGE_IT, LoRAError
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.lora_updates import LoRAUpdate, ProductUpdate

# What PEFT's `save_pretrained` writes: the adapter's tensors, and beside them its settings (lora_alpha among them).
_PEFT_FILE, _PEFT_CONFIG = "adapter_model.safetensors", "adapter_config.json"
# The transformer's name in a diffusers pipeline, before its tensors' and its settings' names in a pipeline's file.
_PIPELINE_PREFIX = "transformer."


def parts_fit(parts: Mapping[str, torch.Tensor], shape: tuple[int, ...]) -> bool:
    """Whether a module's down and up fit a layer of weight `shape`: [rank, in] and [out, rank] for a linear's
    (out, in); [rank, in, kt, kh, kw] (the layer's kernel) and [out, rank, 1, 1, 1] for a Conv3d's."""
    down, up = parts.get("down"), parts.get("up")
    if down is None or up is None or down.ndim != len(shape) or up.ndim != len(shape):
        return False
    pointwise = all(size == 1 for size in up.shape[2:])  # B of a conv LoRA is a 1x1x1 convolution
    return down.shape[1:] == shape[1:] and up.shape[0] == shape[0] and up.shape[1] == down.shape[0] and pointwise


def _expected_parts(shape: tuple[int, ...]) -> str:
    """What down and up must be for a layer of weight `shape`, in words for an error."""
    kernel = "".join(f", {size}" for size in shape[2:])
    ones = ", 1" * len(shape[2:])
    return f"down must be [rank, {shape[1]}{kernel}], up [{shape[0]}, rank{ones}]"


def layer_update(
    spec: LoRASpec,
    module: str,
    parts: dict[str, torch.Tensor],
    shape: tuple[int, ...],
    alphas: _Alphas | None,
    spelled: str,
) -> LoRAUpdate:
    """The update of our layer `module`, which the file calls `spelled`."""
    if "down" not in parts or "up" not in parts:
        missing = "down (lora_A)" if "down" not in parts else "up (lora_B)"
        raise LoRAError(f"{spec.path}: the LoRA of {module} has no {missing} weight")
    down, up = parts["down"], parts["up"]
    if not parts_fit(parts, shape):
        raise LoRAError(
            f"{spec.path}: LoRA shapes for {module} do not fit: down {list(down.shape)}, up {list(up.shape)}; "
            f"the layer is {list(shape)} ({_expected_parts(shape)})"
        )
    for name, tensor in (("down (lora_A)", down), ("up (lora_B)", up)):
        if not tensor.is_floating_point():  # integers or booleans: quantized or damaged, no LoRA's numbers
            raise LoRAError(f"{spec.path}: the {name} weight of {module} is {tensor.dtype}, not floats: {EDITED}")
    rank = down.shape[0]
    if rank == 0:
        raise LoRAError(
            f"{spec.path}: the LoRA of {module} has rank 0 (down {list(down.shape)}, up {list(up.shape)}): it "
            "changes nothing, so the file is likely cut short; export it again"
        )
    alpha = _alpha(spec, module, parts, alphas, spelled)
    check_finite(spec, module, {"down (lora_A)": down, "up (lora_B)": up, "alpha": alpha})
    factor = 1.0 if alpha is None else alpha / (math.sqrt(rank) if alphas and alphas.rslora else rank)
    # At most this in any element of up·down (a sum of `rank` products), made in float32 and then scaled: past the
    # largest float, the merged weight is inf.
    unscaled = rank * float(up.float().abs().max()) * float(down.float().abs().max())
    alpha_said = "" if alpha is None else f", alpha {alpha:g} (lora_alpha, alpha_pattern or its .alpha tensor)"
    what = f"the LoRA of {module} (scale {spec.strength * factor:g}{alpha_said})"
    _check_scaled_change(spec, module, what, [unscaled], factor)
    return LoRAUpdate(module, down, up, spec.strength * factor)


# The parts of a LyCORIS LoHa or LoKr (their names start so), and what each needs.
LYCORIS_PARTS = ("hada_", "lokr_")
_NEEDED = {
    "LoHa": [("hada_w1_a",), ("hada_w1_b",), ("hada_w2_a",), ("hada_w2_b",)],
    "LoKr": [("lokr_w1", "lokr_w1_a"), ("lokr_w1", "lokr_w1_b"), ("lokr_w2", "lokr_w2_a"), ("lokr_w2", "lokr_w2_b")],
}


def layer_product(spec: LoRASpec, module: str, parts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> ProductUpdate:
    """The LoHa or LoKr change of our layer `module`, its scale as LyCORIS defines it: strength × alpha / rank, the
    rank being the inner size of the products (LoHa: w1_b's rows; LoKr: w1_a's columns, else w2_a's); a LoKr of two
    whole matrices has none, and LyCORIS gives it scale 1 whatever its alpha; so does a missing or zero alpha."""
    kind = "LoHa" if any(p.startswith("hada_") for p in parts) else "LoKr"
    if len(shape) != 2:  # LyCORIS stores a conv's LoHa as 2-D factors too: said before their sizes are compared
        raise LoRAError(f"{spec.path}: the {kind} of {module} changes a convolution: motif-lite reads LoHa/LoKr on "
                        f"linear layers only; {MERGE_IT}")  # fmt: skip
    others = sorted(p for p in parts if p != "alpha" and not p.startswith(LYCORIS_PARTS[kind == "LoKr"]))
    if others:
        raise LoRAError(f"{spec.path}: the {kind} of {module} has other parts beside it ({', '.join(others)}): "
                        f"{EDITED}")  # fmt: skip
    missing = sorted({" or ".join(names) for names in _NEEDED[kind] if not any(n in parts for n in names)})
    if missing:
        raise LoRAError(f"{spec.path}: the {kind} of {module} has no {', '.join(missing)}: {EDITED}")
    factors = {name: t for name, t in parts.items() if name != "alpha"}
    for name, tensor in factors.items():
        if tensor.ndim != 2 or not tensor.is_floating_point():
            what = f"{tensor.ndim}-D" if tensor.ndim != 2 else str(tensor.dtype)
            raise LoRAError(
                f"{spec.path}: the {kind} part {name} of {module} is {what}: motif-lite reads LoHa/LoKr on linear "
                f"layers only (2-D float matrices); {MERGE_IT}"
            )
    _check_lokr_parts(spec, module, factors)
    inner = _inner_sizes(kind, factors)
    if inner is None:
        sizes = ", ".join(f"{n} {list(t.shape)}" for n, t in sorted(factors.items()))
        raise LoRAError(f"{spec.path}: the {kind} parts of {module} do not multiply ({sizes}): {EDITED}")
    product = ProductUpdate(module, kind, factors, spec.strength)
    if product.shape() != tuple(shape):
        raise LoRAError(f"{spec.path}: the {kind} of {module} makes a change of shape {list(product.shape())}, but "
                        f"the layer is {list(shape)}: a LoRA for another model or version?")  # fmt: skip
    alpha = _alpha(spec, module, parts, None, module)
    check_finite(spec, module, {**factors, "alpha": alpha})
    rank = inner[0] if inner else None
    if alpha and rank:
        product.scale = spec.strength * alpha / rank
    # At most this in any element of each side (w1, w2: a matrix, or `inner` products summed) and of their change,
    # made unscaled in float32 and then scaled: past the largest float, the merged weight is inf.
    sides = [_largest_element(factors, side) for side in ("1", "2")]
    unit_scale = alpha / rank if alpha and rank else 1.0  # the scale at strength 1
    what = f"the {kind} of {module} (scale {product.scale:g})"
    _check_scaled_change(spec, module, what, [*sides, sides[0] * sides[1]], unit_scale)
    return product


def _check_scaled_change(spec: LoRASpec, module: str, what: str, unscaled: list[float], unit_scale: float) -> None:
    """Refuses a change whose merge passes float32's largest: `unscaled` bounds the elements of what is made before
    scaling (the last, the change itself, is then scaled by strength × `unit_scale`). Blamed on the strength when
    the change fits at strength 1 (the user's number, not the file's), else on the file."""
    biggest = torch.finfo(torch.float32).max

    def largest(scale: float) -> float:
        return max(unscaled[:-1] + [unscaled[-1] * max(1.0, abs(scale))])

    if largest(spec.strength * unit_scale) < biggest:
        return
    if largest(unit_scale) < biggest:  # so |strength × unit_scale| > 1 and the change is not zero
        below = biggest / (unscaled[-1] * abs(unit_scale))
        raise LoRAError(f"{spec.path}: strength {spec.strength:g} scales the change of {module} past the largest "
                        f"float (the file's change fits at strengths between about {-below:.3g} and {below:.3g}); "
                        "use a smaller strength")  # fmt: skip
    raise LoRAError(f"{spec.path}: {what} makes a change past the largest float: {EDITED}")


def _largest_element(factors: Mapping[str, torch.Tensor], side: str) -> float:
    """A bound on the elements of a LoHa's or LoKr's side `side` ("1" or "2"): its whole matrix's largest, or for a
    product of `_a` and `_b`, inner size × their largest."""

    def largest(tensor: torch.Tensor) -> float:
        return float(tensor.float().abs().max()) if tensor.numel() else 0.0  # an empty one (rank 0) has no max

    whole = factors.get(f"lokr_w{side}")
    if whole is not None:
        return largest(whole)
    prefix = "hada" if f"hada_w{side}_a" in factors else "lokr"
    a, b = factors[f"{prefix}_w{side}_a"], factors[f"{prefix}_w{side}_b"]
    return a.shape[1] * largest(a) * largest(b)


def _check_lokr_parts(spec: LoRASpec, module: str, factors: Mapping[str, torch.Tensor]) -> None:
    """A LoKr as LyCORIS writes it: each of w1, w2 whole or as `_a` and `_b`, not both (which would be read is not
    said), and one rank for both products (its module has one; loaders differ on which to take for an edited file)."""
    for side in ("lokr_w1", "lokr_w2"):
        split = sorted(name for name in factors if name.startswith(f"{side}_"))
        if side in factors and split:
            raise LoRAError(f"{spec.path}: the LoKr of {module} holds {side} and {', '.join(split)}, which LyCORIS "
                            f"never writes together: {EDITED}")  # fmt: skip
    if "lokr_w1_a" in factors and "lokr_w2_a" in factors:
        ranks = factors["lokr_w1_a"].shape[1], factors["lokr_w2_a"].shape[1]
        if ranks[0] != ranks[1]:
            raise LoRAError(f"{spec.path}: the LoKr of {module} has rank {ranks[0]} in lokr_w1_a and {ranks[1]} in "
                            f"lokr_w2_a; LyCORIS writes one rank for both: {EDITED}")  # fmt: skip


def _inner_sizes(kind: str, factors: Mapping[str, torch.Tensor]) -> list[int] | None:
    """The inner sizes of a LoHa's or LoKr's matrix products, the first one its rank ([] for a LoKr of two whole
    matrices); None when a pair does not multiply."""
    pairs = [("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")] if kind == "LoHa" else [
        ("lokr_w1_a", "lokr_w1_b"), ("lokr_w2_a", "lokr_w2_b")]  # fmt: skip
    inner = []
    for a, b in pairs:
        if a in factors:
            if factors[a].shape[1] != factors[b].shape[0]:
                return None
            inner.append(factors[a].shape[1])
    if kind == "LoHa" and factors["hada_w1_a"].shape[0] != factors["hada_w2_a"].shape[0]:
        return None  # the two products must be the same shape to multiply element by element
    if kind == "LoHa" and factors["hada_w1_b"].shape[1] != factors["hada_w2_b"].shape[1]:
        return None
    return inner


def _alpha(
    spec: LoRASpec, module: str, parts: dict[str, torch.Tensor], alphas: _Alphas | None, spelled: str
) -> float | None:
    """A module's alpha: its `.alpha` tensor (which must be one number), else PEFT's metadata (whose patterns name
    the layer as the file does, `spelled`), else none."""
    if "alpha" not in parts:
        return alphas.alpha_for(spelled) if alphas else None
    if parts["alpha"].numel() != 1:
        shape = list(parts["alpha"].shape)
        raise LoRAError(f"{spec.path}: the alpha of {module} must be one number, got shape {shape}")
    return float(parts["alpha"])


def check_finite(spec: LoRASpec, module: str, parts: Mapping[str, torch.Tensor | float | None]) -> None:
    """inf or NaN in a LoRA would only show after the first step, as latents that are no longer numbers: named here,
    with the file, before any weight is loaded."""
    for name, value in parts.items():
        finite = value is None or (
            # In float32: torch has no isfinite for the float8 dtypes (a LoRA is small: the copy costs little)
            bool(torch.isfinite(value.float()).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
        )
        if not finite:
            raise LoRAError(f"{spec.path}: the {name} of {module} holds inf or NaN: the file is damaged (or its "
                            "training diverged)")  # fmt: skip


@dataclass(frozen=True)
class _Alphas:
    """PEFT's alpha settings from diffusers' `lora_adapter_metadata`."""

    alpha: float | None
    patterns: dict[str, float]
    rslora: bool

    def alpha_for(self, module: str) -> float | None:
        # As PEFT matches `alpha_pattern` keys: a regex that must match the end of the module name, at a dot.
        for pattern, value in self.patterns.items():
            if re.match(rf"(.*\.)?({pattern})$", module):
                return float(value)
        return self.alpha


def _transformer_settings(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The transformer's PEFT settings: a pipeline's `save_lora_weights` (what diffusers' training scripts call)
    writes each component's under its name, `transformer.lora_alpha`, as it writes its tensors, and diffusers reads
    them back without it; the transformer's own `save_lora_adapter` and PEFT write `lora_alpha` alone."""
    prefixed = {key.removeprefix(_PIPELINE_PREFIX): v for key, v in config.items() if key.startswith(_PIPELINE_PREFIX)}
    return prefixed or config


def peft_alphas(path: Path, metadata: Mapping[str, str]) -> _Alphas | None:
    """PEFT's alpha settings: from the `lora_adapter_metadata` that diffusers writes into the file, else from the
    adapter_config.json that PEFT's `save_pretrained` writes beside its adapter_model.safetensors (whose tensors
    hold no alpha: without the config, a file trained with lora_alpha != r would apply at the wrong strength)."""
    raw, source = metadata.get("lora_adapter_metadata"), "its lora_adapter_metadata"
    config_file = path.with_name(_PEFT_CONFIG)
    if raw is None and path.name == _PEFT_FILE and config_file.is_file():
        raw, source = config_file.read_bytes(), str(config_file)  # bytes: read as UTF-8, whatever the locale
    if raw is None:
        return None
    try:
        config = parse_json_object(raw)
    except NotAJSONObject as exc:
        raise LoRAError(f"{path}: {source} is {exc}") from None
    config = _transformer_settings(config)
    if config.get("use_dora"):
        raise LoRAError(f"{path}: DoRA adapters (use_dora in {source}) are not supported; {MERGE_IT}")
    alpha, patterns = config.get("lora_alpha"), config.get("alpha_pattern") or {}
    if alpha is not None and not is_finite_number(alpha):
        raise LoRAError(f"{path}: lora_alpha in {source} is {shown(alpha)}, not a number: {EDITED}")
    numbers = isinstance(patterns, dict) and all(map(is_finite_number, patterns.values()))
    if not numbers:
        raise LoRAError(f"{path}: alpha_pattern in {source} is {shown(patterns)}, not an object of layer name "
                        f"patterns and numbers: {EDITED}")  # fmt: skip
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise LoRAError(f"{path}: alpha_pattern in {source} holds {pattern!r}, which is no regular expression "
                            f"({exc}): {EDITED}") from None  # fmt: skip
    rslora = config.get("use_rslora")
    if rslora is not None and not isinstance(rslora, bool):  # "false" would be true: another strength
        raise LoRAError(f"{path}: use_rslora in {source} is {shown(rslora)}, not true or false: {EDITED}")
    return _Alphas(alpha, patterns, bool(rslora))
