"""The seams where kernels plug in.

The model math calls every fused or performance-critical operation through an `Ops` instance held by the
transformer. `TORCH_OPS` holds the pure-torch references that run everywhere; `motif_lite.runtime.kernels`
builds an `Ops` with Triton kernels behind the same signatures. The model never imports kernels.

Layouts: attention tensors are heads-first, `[B, H, L, D]`; token tensors are `[B, L, C]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
# The form of key mask an attention reads: "bool" (True = attend) or "additive" (SDPA's: `additive_mask`).
MaskForm = Literal["bool", "additive"]


@runtime_checkable
class MaskFormAttention(Protocol):
    """An attention function that says which form of key mask it reads (`mask_form`). The transformer builds its
    masks once per run in that form (`TextMasks`); an attention function that says nothing is given bool masks."""

    @property
    def mask_form(self) -> MaskForm: ...

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor: ...


@runtime_checkable
class KeepsPerRun(Protocol):
    """An op that keeps what the run's forwards would each build alike from the same tensors (an attention
    backend's forms of the key masks: runtime/attention_masks.py `PerMask`). `end_run` lets it go, as
    `MotifVideoTransformer.end_run`, which calls it, lets the model's own go: the caller's masks, on the device."""

    def end_run(self) -> None: ...


def end_run_of(op: object) -> None:
    """`op.end_run()` where `op` keeps something for the run (`KeepsPerRun`); nothing for another op."""
    if isinstance(op, KeepsPerRun):
        op.end_run()


def mask_form_of(attend: AttentionFn) -> MaskForm:
    """The key mask form `attend` reads: its own `mask_form` (`MaskFormAttention`), else bool. Kernels that read a
    bool key mask (Triton, 8-bit, row splits by valid key counts) need not say so."""
    return attend.mask_form if isinstance(attend, MaskFormAttention) else "bool"


class SdpaAttention:
    """Softmax attention through PyTorch's SDPA. q: [B, H, Lq, D], k/v: [B, H, Lk, D], mask [B, 1, 1, Lk]: bool
    (True = attend) or additive (`additive_mask`, in q's dtype).

    It reads the additive form: SDPA turns a bool mask into an additive one inside every call (a `where` and two
    scalar tensors: three launches on a GPU), and uses an additive one, built once per run, as it is."""

    mask_form: MaskForm = "additive"

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


sdpa_attention = SdpaAttention()


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool key mask (True = attend) as the additive float mask SDPA builds from it: 0 where True, -inf where
    False, in the queries' `dtype`. Exactly the values SDPA computes, so the attention is bit for bit the same."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def layer_norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm without affine, then AdaLN modulation. x: [B, L, C], shift/scale: [B, C]."""
    x = F.layer_norm(x, x.shape[-1:], eps=eps)
    return x * (1 + scale[:, None]) + shift[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (2i, 2i+1). x: [B, H, L, D], cos/sin: [L, D] float32."""
    x_even, x_odd = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack([-x_odd, x_even], dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def rms_norm_rope(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-head RMSNorm, then RoPE on the first `cos.shape[0]` tokens (the rest, e.g. text, unrotated).

    x: [B, H, L, D]; weight: [D]; cos/sin: [N, D] with N <= L, or None for no rotation.
    """
    x = F.rms_norm(x, x.shape[-1:], weight, eps)
    if cos is None:
        return x
    n = cos.shape[0]
    if n == x.shape[2]:
        return apply_rope(x, cos, sin)
    return torch.cat([apply_rope(x[:, :, :n], cos, sin), x[:, :, n:]], dim=2)


@dataclass(frozen=True)
class Ops:
    """One implementation of each seam. `decoder_attention` is the DDT decoder's 2N-token self-attention,
    separate so that a sparse pattern can be chosen for it alone. `why_torch`: why these are torch's ops where
    Triton's were wanted (`motif_lite.runtime.kernels` sets it, for the run's summary), else None."""

    attention: AttentionFn = sdpa_attention
    decoder_attention: AttentionFn = sdpa_attention
    layer_norm_modulate: Callable[..., torch.Tensor] = layer_norm_modulate
    rms_norm_rope: Callable[..., torch.Tensor] = rms_norm_rope
    why_torch: str | None = None


TORCH_OPS = Ops()
