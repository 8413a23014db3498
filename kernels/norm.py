"""Fused normalization kernels: LayerNorm + AdaLN modulation, and per-head QK RMSNorm + RoPE.

Both read their input once with arbitrary strides, compute in float32 and write one contiguous output, so the
model's `view(B, L, H, D).transpose(1, 2)` head views and chunked modulation vectors need no copies.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .errors import KernelInputError
from .launch import FUSED_FP


@triton.jit
def _layer_norm_modulate_kernel(
    x_ptr, shift_ptr, scale_ptr, y_ptr, L, C, eps,
    stride_xb, stride_xl, stride_xc, stride_shift, stride_scale,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)  # one token per program
    b = row // L
    c = tl.arange(0, BLOCK_C)
    mask = c < C
    x_row = x_ptr + b.to(tl.int64) * stride_xb + (row % L).to(tl.int64) * stride_xl
    x = tl.load(x_row + c * stride_xc, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / C
    xc = tl.where(mask, x - mean, 0.0)
    xn = xc * tl.rsqrt(tl.sum(xc * xc, axis=0) / C + eps)
    shift = tl.load(shift_ptr + b * stride_shift + c, mask=mask, other=0.0).to(tl.float32)
    scale = tl.load(scale_ptr + b * stride_scale + c, mask=mask, other=0.0).to(tl.float32)
    y = xn * (1.0 + scale) + shift
    tl.store(y_ptr + row.to(tl.int64) * C + c, y.to(y_ptr.dtype.element_ty), mask=mask)


def layer_norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm (no affine) then `x·(1+scale)+shift`. x: [B, L, C] any strides, shift/scale: [B, C]."""
    if x.dim() != 3 or shift.shape != (x.shape[0], x.shape[2]) or scale.shape != shift.shape:
        raise KernelInputError(
            f"layer_norm_modulate: expected x [B, L, C] and shift/scale [B, C], got x {list(x.shape)}, "
            f"shift {list(shift.shape)}, scale {list(scale.shape)}"
        )
    bsz, length, channels = x.shape
    # Channels must be unit-stride in shift/scale (chunks of an AdaLN linear output are).
    shift = shift if shift.stride(1) == 1 else shift.contiguous()
    scale = scale if scale.stride(1) == 1 else scale.contiguous()
    out_dtype = torch.promote_types(x.dtype, torch.promote_types(shift.dtype, scale.dtype))
    y = torch.empty(bsz, length, channels, device=x.device, dtype=out_dtype)
    if y.numel() == 0:
        return y
    _layer_norm_modulate_kernel[(bsz * length,)](
        x, shift, scale, y, length, channels, eps,
        x.stride(0), x.stride(1), x.stride(2), shift.stride(0), scale.stride(0),
        BLOCK_C=triton.next_power_of_2(channels), num_warps=8 if channels >= 1024 else 4, **FUSED_FP,
    )  # fmt: skip
    return y


@triton.jit
def _rms_norm_rope_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, y_ptr, H, L, N, D, eps,
    stride_b, stride_h, stride_l, stride_d,
    HAS_WEIGHT: tl.constexpr, HAS_ROPE: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # One program: BLOCK_ROWS tokens of one head. Programs go in (b, token block, head) order, the head fastest, so
    # the H programs of a token block run side by side: together they read the tokens' contiguous H*D values of
    # the model's [B, L, H*D] projections, and the block's cos/sin rows (float32, the same for every head) come
    # from DRAM once and from L2 for the other heads. Each row is loaded and stored whole (contiguous, coalesced);
    # RoPE's interleaved pairs are split and joined in registers.
    pid = tl.program_id(0)
    blocks = tl.cdiv(L, BLOCK_ROWS)
    h = pid % H
    b = pid // (H * blocks)
    tokens = (pid // H) % blocks * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    d = tl.arange(0, BLOCK_D)
    mask = (tokens < L)[:, None] & (d < D)[None, :]
    row = b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + tokens.to(tl.int64) * stride_l
    x = tl.load(x_ptr + row[:, None] + d[None, :] * stride_d, mask=mask, other=0.0).to(tl.float32)  # [ROWS, D]
    x = x * tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)[:, None]
    if HAS_WEIGHT:
        x *= tl.load(w_ptr + d, mask=d < D, other=0.0).to(tl.float32)[None, :]
    # The reference rounds the normed values to x.dtype before rotating; do the same.
    x = x.to(y_ptr.dtype.element_ty).to(tl.float32)
    if HAS_ROPE:
        rope = mask & (tokens < N)[:, None]  # only the first N tokens are rotated
        table = tokens[:, None] * D + d[None, :]
        cos = tl.load(cos_ptr + table, mask=rope, other=1.0)
        sin = tl.load(sin_ptr + table, mask=rope, other=0.0)
        even, odd = tl.split(tl.reshape(x, [BLOCK_ROWS, BLOCK_D // 2, 2]))
        rotated = tl.reshape(tl.join(-odd, even), [BLOCK_ROWS, BLOCK_D])  # pairs (x0, x1) -> (-x1, x0)
        x = x * cos + rotated * sin
    # y: [B, H, L, D] contiguous
    out = ((b * H + h).to(tl.int64) * L + tokens.to(tl.int64)) * D
    tl.store(y_ptr + out[:, None] + d[None, :], x.to(y_ptr.dtype.element_ty), mask=mask)


def _check_rope(x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> None:
    if x.dim() != 4 or x.shape[-1] % 2:
        raise KernelInputError(f"rms_norm_rope: expected x [B, H, L, D] with even D, got {list(x.shape)}")
    if (cos is None) != (sin is None):
        raise KernelInputError("rms_norm_rope: pass both cos and sin, or neither")
    if cos is not None and (cos.dim() != 2 or cos.shape != sin.shape or cos.shape[1] != x.shape[-1]):
        raise KernelInputError(f"rms_norm_rope: cos/sin must be [N, {x.shape[-1]}], got {list(cos.shape)}")
    if cos is not None and cos.shape[0] > x.shape[2]:
        raise KernelInputError(f"rms_norm_rope: {cos.shape[0]} rotary positions for only {x.shape[2]} tokens")


def rms_norm_rope(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float | None,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-head RMSNorm then interleaved-pair RoPE on the first `cos.shape[0]` tokens; the rest only normed.

    x: [B, H, L, D] any strides; weight: [D] or None; cos/sin: [N, D] float32 or None. Returns a contiguous
    [B, H, L, D] tensor in x.dtype.
    """
    _check_rope(x, cos, sin)
    bsz, heads, length, dim = x.shape
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    y = torch.empty(bsz, heads, length, dim, device=x.device, dtype=x.dtype)
    if y.numel() == 0:
        return y
    has_rope = cos is not None
    cos = cos.float().contiguous() if has_rope else y
    sin = sin.float().contiguous() if has_rope else y
    block_rows = 16
    grid = (bsz * triton.cdiv(length, block_rows) * heads,)  # (b, token block, head), the head fastest
    _rms_norm_rope_kernel[grid](
        x, weight.contiguous() if weight is not None else y, cos, sin, y,
        heads, length, cos.shape[0] if has_rope else 0, dim, eps, *x.stride(),
        HAS_WEIGHT=weight is not None, HAS_ROPE=has_rope,
        BLOCK_ROWS=block_rows, BLOCK_D=triton.next_power_of_2(dim), **FUSED_FP,
    )  # fmt: skip
    return y
