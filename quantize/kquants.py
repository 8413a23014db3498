"""K-quant encoders: float32 super-blocks of 256 values -> GGML block bytes (Q2_K..Q6_K).

Each `quantize_qN_k(blocks)` takes `blocks` [nb, 256] float32 and returns uint8 [nb, type_size] in the
exact byte layout that ggml (and `gguf.quants.dequantize`) read. The scale search per sub-block lives in
`search.py`; this module quantizes those scales to the 4/6/8-bit super-block format, re-derives the
levels from the *quantized* scales (so the stored levels match what the decoder will multiply), and
packs the bits.
"""

import torch

from . import search

QK_K = 256


def _fp16_bytes(v: torch.Tensor) -> torch.Tensor:
    """[nb] float32 -> [nb, 2] uint8, little-endian IEEE half."""
    return v.to(torch.float16).view(torch.uint8).reshape(-1, 2)


def _rounded_fp16(v: torch.Tensor) -> torch.Tensor:
    return v.to(torch.float16).to(torch.float32)


def _pack_2bit(levels: torch.Tensor) -> torch.Tensor:
    """[nb, 256] levels 0..3 -> [nb, 64]: byte l of each 128-half holds elements l, l+32, l+64, l+96."""
    q = levels.to(torch.uint8).reshape(-1, 2, 4, 32)
    out = q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)
    return out.reshape(-1, 64)


def _pack_4bit(levels: torch.Tensor) -> torch.Tensor:
    """[nb, 256] levels 0..15 -> [nb, 128]: per 64 values, low nibbles = first 32, high = next 32."""
    q = levels.to(torch.uint8).reshape(-1, 4, 2, 32)
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, 128)


def _high_bit_mask(bits: torch.Tensor) -> torch.Tensor:
    """[nb, 256] 0/1 -> [nb, 32]: bit s of byte j holds element 32*s + j."""
    b = bits.to(torch.uint8).reshape(-1, 8, 32)
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device).reshape(1, 8, 1)
    return (b << shifts).sum(1, dtype=torch.uint8)


def _pack_6bit_scales(sc: torch.Tensor, mn: torch.Tensor) -> torch.Tensor:
    """8 scales + 8 mins, 6 bits each ([nb, 8] ints 0..63) -> the 12-byte Q4_K/Q5_K scale field."""
    sc, mn = sc.to(torch.uint8), mn.to(torch.uint8)
    lo = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    mid = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    hi = (sc[:, 4:] & 0xF) | ((mn[:, 4:] & 0xF) << 4)
    return torch.cat([lo, mid, hi], dim=1)


def _affine_levels(x, d, dm, nmax):
    """Levels for x ~ d*l - dm with the stored (quantized) d and dm; 0 where d == 0. Shapes broadcast."""
    safe_d = torch.where(d == 0, torch.ones_like(d), d)
    levels = torch.round((x + dm) / safe_d).clamp_(0, nmax)
    return torch.where(d == 0, torch.zeros_like(levels), levels)


def _symmetric_levels(x, d, nmax):
    """Levels for x ~ d*(l - nmax), l in [0, 2*nmax-1]; nmax (value 0) where d == 0."""
    safe_d = torch.where(d == 0, torch.ones_like(d), d)
    levels = torch.round(x / safe_d).clamp_(-nmax, nmax - 1) + nmax
    return torch.where(d == 0, torch.full_like(levels, nmax), levels)


def _max_keep_sign(v: torch.Tensor) -> torch.Tensor:
    """Per-row value of largest magnitude, sign kept: [nb, k] -> [nb, 1]."""
    return v.gather(1, v.abs().argmax(dim=1, keepdim=True))


def _super_scale(values: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative sub-block values [nb, k] -> (fp16-rounded super scale [nb, 1], integer codes 0..top)."""
    vmax = values.amax(1, keepdim=True)
    inv = torch.where(vmax > 0, top / vmax.clamp(min=1e-30), torch.zeros_like(vmax))
    codes = torch.round(inv * values).clamp_(0, top)
    return _rounded_fp16(vmax / top), codes


def quantize_q2_k(blocks: torch.Tensor) -> torch.Tensor:
    """[nb, 256] -> [nb, 84]: scales(16: 4-bit scale | 4-bit min) qs(64) d(2) dmin(2)."""
    x = blocks.reshape(-1, 16)
    scale, mn = search.affine_scale_min(x, x.abs(), 3, rmin=-0.5, rdelta=0.1, nstep=15, use_mad=True)
    d, sc = _super_scale(scale.reshape(-1, 16), 15)
    dmin, mc = _super_scale(mn.reshape(-1, 16), 15)
    x = x.reshape(-1, 16, 16)
    levels = _affine_levels(x, (d * sc)[..., None], (dmin * mc)[..., None], 3)
    packed_scales = sc.to(torch.uint8) | (mc.to(torch.uint8) << 4)
    return torch.cat([packed_scales, _pack_2bit(levels), _fp16_bytes(d), _fp16_bytes(dmin)], dim=1)


def _quantize_q45_k(blocks, nmax, rmin, nstep):
    """Shared Q4_K/Q5_K core: 8 sub-blocks of 32 with 6-bit scales and mins."""
    x = blocks.reshape(-1, 32)
    # Weights favour large-magnitude values within a sub-block, as in llama.cpp.
    w = (x * x).mean(1, keepdim=True).sqrt() + x.abs()
    scale, mn = search.affine_scale_min(x, w, nmax, rmin=rmin, rdelta=0.1, nstep=nstep, use_mad=False)
    d, sc = _super_scale(scale.reshape(-1, 8), 63)
    dmin, mc = _super_scale(mn.reshape(-1, 8), 63)
    levels = _affine_levels(x.reshape(-1, 8, 32), (d * sc)[..., None], (dmin * mc)[..., None], nmax)
    head = torch.cat([_fp16_bytes(d), _fp16_bytes(dmin), _pack_6bit_scales(sc, mc)], dim=1)
    return head, levels.reshape(-1, QK_K)


def quantize_q4_k(blocks: torch.Tensor) -> torch.Tensor:
    """[nb, 256] -> [nb, 144]: d(2) dmin(2) scales(12) qs(128)."""
    head, levels = _quantize_q45_k(blocks, 15, rmin=-1.0, nstep=20)
    return torch.cat([head, _pack_4bit(levels)], dim=1)


def quantize_q5_k(blocks: torch.Tensor) -> torch.Tensor:
    """[nb, 256] -> [nb, 176]: d(2) dmin(2) scales(12) qh(32) qs(128)."""
    head, levels = _quantize_q45_k(blocks, 31, rmin=-0.5, nstep=15)
    return torch.cat([head, _high_bit_mask(levels >= 16), _pack_4bit(levels % 16)], dim=1)


def _pack_q3_scales(codes: torch.Tensor) -> torch.Tensor:
    """16 codes 0..63 [nb, 16] -> 12 bytes: low nibbles in bytes 0..7, 2-bit high parts in bytes 8..11."""
    c = codes.to(torch.uint8)
    low = (c[:, :8] & 0xF) | ((c[:, 8:] & 0xF) << 4)
    high = (c >> 4).reshape(-1, 4, 4)  # [nb, k, i] = code 4k + i
    high = high[:, 0] | (high[:, 1] << 2) | (high[:, 2] << 4) | (high[:, 3] << 6)
    return torch.cat([low, high], dim=1)


def quantize_q3_k(blocks: torch.Tensor) -> torch.Tensor:
    """[nb, 256] -> [nb, 110]: hmask(32) qs(64) scales(12) d(2); levels -4..3, 6-bit signed scales."""
    x = blocks.reshape(-1, 16)
    scale = search.q3_scale(x, nmax=4).reshape(-1, 16)
    smax = _max_keep_sign(scale)
    nonzero = smax != 0
    iscale = torch.where(nonzero, -32 / torch.where(nonzero, smax, torch.ones_like(smax)), torch.zeros_like(smax))
    codes = torch.where(nonzero, torch.round(iscale * scale).clamp_(-32, 31) + 32, torch.zeros_like(scale))
    d = torch.where(nonzero, _rounded_fp16(1 / torch.where(nonzero, iscale, torch.ones_like(iscale))), iscale)
    levels = _symmetric_levels(x.reshape(-1, 16, 16), (d * (codes - 32))[..., None], 4).reshape(-1, QK_K)
    return torch.cat([_high_bit_mask(levels >= 4), _pack_2bit(levels % 4), _pack_q3_scales(codes), _fp16_bytes(d)], 1)


def _pack_q6_levels(levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[nb, 256] levels 0..63 -> ql [nb, 128] (low nibbles) and qh [nb, 64] (2-bit high parts)."""
    q = levels.to(torch.uint8).reshape(-1, 2, 4, 32)  # [nb, half, quarter, 32]
    lo = q & 0xF
    ql = torch.cat([lo[:, :, 0] | (lo[:, :, 2] << 4), lo[:, :, 1] | (lo[:, :, 3] << 4)], dim=2)
    hi = q >> 4
    qh = hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)
    return ql.reshape(-1, 128), qh.reshape(-1, 64)


def quantize_q6_k(blocks: torch.Tensor) -> torch.Tensor:
    """[nb, 256] -> [nb, 210]: ql(128) qh(64) scales(16 x int8) d(2); levels -32..31."""
    x = blocks.reshape(-1, 16)
    scale = search.symmetric_scale(x, 32).reshape(-1, 16)
    smax = _max_keep_sign(scale)
    nonzero = smax.abs() >= search.GROUP_MAX_EPS
    iscale = torch.where(nonzero, -128 / torch.where(nonzero, smax, torch.ones_like(smax)), torch.zeros_like(smax))
    sc = torch.round(iscale * scale).clamp_(-128, 127)
    d = torch.where(nonzero, _rounded_fp16(1 / torch.where(nonzero, iscale, torch.ones_like(iscale))), iscale)
    levels = _symmetric_levels(x.reshape(-1, 16, 16), (d * sc)[..., None], 32).reshape(-1, QK_K)
    levels = torch.where(nonzero, levels, torch.zeros_like(levels))  # all-zero blocks are stored as zero bytes
    ql, qh = _pack_q6_levels(levels)
    return torch.cat([ql, qh, sc.to(torch.int8).view(torch.uint8), _fp16_bytes(d)], dim=1)
