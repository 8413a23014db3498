"""Checkpoint key names -> our parameter names.

Our modules are named like the diffusers checkpoint, so the map is the identity except for the text
cross-attention, which exists in three layouts in the wild (which one the official GGUF files use is not known
here; `motif-lite verify --gguf` on a real file shows it):

- "diffusers" (0.42): `<block>.cross_attn.{to_q,to_k,to_v,norm_q,norm_k,to_out.0}` — identity.
- "original" (official ComfyUI nodes): `<block>.cross_attn_{query_proj,query_norm,out_proj}`, reusing the
  block's own `attn.to_k/to_v/norm_q/norm_k`.
- "pr" (the diffusers PR era): the same three under `<block>.attn.cross_attn_*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from motif_lite.errors import CheckpointError
from motif_lite.weights.float8 import is_companion

T = TypeVar("T")

_BLOCK = r"((?:single_)?transformer_blocks\.\d+)"
_SHARED_PARTS = "query_proj|query_norm|out_proj"

LAYOUT_PATTERNS = {
    "diffusers": re.compile(rf"{_BLOCK}\.cross_attn\.(to_q|to_k|to_v|norm_q|norm_k|to_out\.0)\."),
    "original": re.compile(rf"{_BLOCK}\.cross_attn_({_SHARED_PARTS})\."),
    "pr": re.compile(rf"{_BLOCK}\.attn\.cross_attn_({_SHARED_PARTS})\."),
}


def detect_layout(names: Iterable[str]) -> str:
    """The cross-attention layout the tensor names use ("diffusers" when there is no cross-attention)."""
    found = {layout for name in names for layout, pattern in LAYOUT_PATTERNS.items() if pattern.match(name)}
    if len(found) > 1:
        raise CheckpointError(f"checkpoint mixes cross-attention key layouts {sorted(found)}; cannot load it")
    return found.pop() if found else "diffusers"


def to_model_name(name: str, layout: str) -> str:
    """Our parameter name for a checkpoint tensor name."""
    if layout == "diffusers":
        return name
    match = LAYOUT_PATTERNS[layout].match(name)
    if match is None:
        return name
    block, part = match.groups()
    return f"{block}.cross_attn.{part}.{name[match.end() :]}"


def to_model_names(tensors: Mapping[str, T]) -> tuple[dict[str, T], str]:
    """A transformer file's tensors (shapes, or anything with a `.shape`) under our parameter names, and the
    cross-attention layout they were stored in. Left out: zero-size tensors, placeholders some exporters write for
    absent layers, and what a scaled fp8 file stores beside its weights (`float8.weight_scales` reads the scales)."""
    kept = {name: t for name, t in tensors.items() if 0 not in getattr(t, "shape", t) and not is_companion(name)}
    layout = detect_layout(kept)
    return {to_model_name(name, layout): t for name, t in kept.items()}, layout


def to_checkpoint_name(name: str, layout: str) -> str:
    """The inverse of `to_model_name`."""
    match = re.match(rf"{_BLOCK}\.cross_attn\.({_SHARED_PARTS})\.", name)
    if layout == "diffusers" or match is None:
        return name
    block, part = match.groups()
    infix = "attn.cross_attn_" if layout == "pr" else "cross_attn_"
    return f"{block}.{infix}{part}.{name[match.end() :]}"
