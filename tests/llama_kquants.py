"""An independent, one-sub-block-at-a-time model of llama.cpp's reference K-quant encoders
(`quantize_row_q{2,3,4,5,6}_K_ref` with `make_qkx2_quants`, `make_q3_quants`, `make_qx_quants`), written from
ggml-quants.c's description as plain float32 numpy loops. The tests compare motif-lite's vectorized encoder with
it: what it returns is the values a llama.cpp-made file would decode to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType

F32 = np.float32


def _rms_plus_abs(x: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K importance: the sub-block's RMS plus each value's magnitude."""
    return np.sqrt((x * x).sum(dtype=F32) / F32(len(x))).astype(F32) + np.abs(x)


@dataclass(frozen=True)
class AffineKQuant:
    sub_block: int  # values per sub-block
    nmax: int  # largest level
    rmin: float  # first candidate grid's offset from nmax
    nstep: int  # candidate grids after the first, 0.1 apart
    use_mad: bool  # absolute instead of squared error
    code_max: int  # largest scale/min code in the super-block (4- or 6-bit)
    importance: Callable[[np.ndarray], np.ndarray]


AFFINE_K_QUANTS = {
    GGMLQuantizationType.Q2_K: AffineKQuant(16, 3, -0.5, 15, True, 15, np.abs),
    GGMLQuantizationType.Q4_K: AffineKQuant(32, 15, -1.0, 20, False, 63, _rms_plus_abs),
    GGMLQuantizationType.Q5_K: AffineKQuant(32, 31, -0.5, 15, False, 63, _rms_plus_abs),
}


def _levels(x: np.ndarray, low: F32, inverse_step: F32, nmax: int) -> np.ndarray:
    return np.clip(np.rint(inverse_step * (x - low)), 0, nmax).astype(F32)  # rint: ties to even, as nearest_int


def _error(x: np.ndarray, w: np.ndarray, scale: F32, low: F32, levels: np.ndarray, use_mad: bool) -> F32:
    diff = scale * levels + low - x
    return (w * (np.abs(diff) if use_mad else diff * diff)).sum(dtype=F32)


def scale_and_min(x: np.ndarray, w: np.ndarray, kind: AffineKQuant) -> tuple[F32, F32]:
    """One sub-block's (scale, min) for x ≈ scale·level − min: the min/max grid, then `nstep + 1` grids, each
    refitted by weighted least squares; a better fit also moves the low end the next grids start from."""
    low, high = min(F32(x.min()), F32(0)), F32(x.max())
    if high == low:
        return F32(0), -low
    sum_w, sum_x = w.sum(dtype=F32), (w * x).sum(dtype=F32)
    inverse_step = F32(kind.nmax) / (high - low)
    scale = F32(1) / inverse_step
    best = _error(x, w, scale, low, _levels(x, low, inverse_step, kind.nmax), kind.use_mad)
    for step in range(kind.nstep + 1):
        inverse_step = F32(kind.rmin + 0.1 * step + kind.nmax) / (high - low)
        levels = _levels(x, low, inverse_step, kind.nmax)
        sum_l, sum_l2 = (w * levels).sum(dtype=F32), (w * levels * levels).sum(dtype=F32)
        sum_xl = (w * levels * x).sum(dtype=F32)
        det = sum_w * sum_l2 - sum_l * sum_l
        if det <= 0:
            continue
        fit_scale, fit_low = (sum_w * sum_xl - sum_x * sum_l) / det, (sum_l2 * sum_x - sum_l * sum_xl) / det
        if fit_low > 0:  # the low end may not be above 0: fit through the origin
            fit_scale, fit_low = sum_xl / sum_l2, F32(0)
        error = _error(x, w, fit_scale, fit_low, levels, kind.use_mad)
        if error < best:
            best, scale, low = error, fit_scale, fit_low
    return scale, -low


def _fp16(value: F32) -> F32:
    return F32(np.float16(value))


def _codes(values: np.ndarray, top: F32, code_max: int) -> np.ndarray:
    """The sub-blocks' scale or min codes against the super-block's largest (all 0 when that is 0)."""
    if not top:
        return np.zeros_like(values)
    return np.minimum(code_max, np.rint(F32(code_max) / top * values))


def _super_block(x: np.ndarray, kind: AffineKQuant) -> np.ndarray:
    subs = x.reshape(-1, kind.sub_block)
    fits = [scale_and_min(sub, kind.importance(sub), kind) for sub in subs]
    scales, mins = np.array([f[0] for f in fits], F32), np.array([f[1] for f in fits], F32)
    top_scale, top_min = max(F32(0), scales.max()), max(F32(0), mins.max())
    scale_codes, min_codes = _codes(scales, top_scale, kind.code_max), _codes(mins, top_min, kind.code_max)
    d, dmin = _fp16(top_scale / F32(kind.code_max)), _fp16(top_min / F32(kind.code_max))
    out = np.empty_like(subs)
    for j, sub in enumerate(subs):
        step, low = d * F32(scale_codes[j]), dmin * F32(min_codes[j])
        levels = np.clip(np.rint((sub + low) / step), 0, kind.nmax) if step else np.zeros_like(sub)
        out[j] = step * levels.astype(F32) - low
    return out.reshape(-1)


GROUP_MAX_EPS = F32(1e-15)


def _signed_absmax(x: np.ndarray) -> F32:
    return x[np.argmax(np.abs(x))]  # the first of equal magnitudes, as a strict `>` scan keeps


def _symmetric_levels(x: np.ndarray, inverse_step: F32, nmax: int) -> np.ndarray:
    return np.clip(np.rint(inverse_step * x), -nmax, nmax - 1).astype(F32)


def q6_scale(x: np.ndarray) -> F32:
    """Q6_K's sub-block scale: 19 candidate grids around −32/max, kept by the x²-weighted energy explained."""
    nmax, top = 32, _signed_absmax(x)
    if abs(top) < GROUP_MAX_EPS:
        return F32(0)
    w = x * x
    best_scale, best = F32(0), None
    for step in [0, *range(-9, 0), *range(1, 10)]:
        levels = _symmetric_levels(x, -F32(nmax + 0.1 * step) / top, nmax)
        sum_lx, sum_l2 = (w * x * levels).sum(dtype=F32), (w * levels * levels).sum(dtype=F32)
        if best is None:
            best_scale = sum_lx / sum_l2 if sum_l2 else F32(0)
            best = best_scale * sum_lx
        elif sum_l2 > 0 and sum_lx * sum_lx > best * sum_l2:
            best_scale = sum_lx / sum_l2
            best = best_scale * sum_lx
    return best_scale


def q3_scale(x: np.ndarray) -> F32:
    """Q3_K's sub-block scale: levels from −4/max, then up to 5 passes that move one level at a time to the
    value the current least-squares scale asks for, kept when the x²-weighted energy explained grows."""
    nmax, top = 4, _signed_absmax(x)
    if abs(top) < GROUP_MAX_EPS:
        return F32(0)
    w = x * x
    levels = _symmetric_levels(x, -F32(nmax) / top, nmax)
    sum_lx, sum_l2 = (w * x * levels).sum(dtype=F32), (w * levels * levels).sum(dtype=F32)
    for _ in range(5):
        changed = False
        for i in range(len(x)):
            lx = sum_lx - w[i] * x[i] * levels[i]
            if lx <= 0:
                continue
            l2 = sum_l2 - w[i] * levels[i] * levels[i]
            new = F32(np.clip(np.rint(x[i] * l2 / lx), -nmax, nmax - 1))
            if new == levels[i]:
                continue
            lx, l2 = lx + w[i] * x[i] * new, l2 + w[i] * new * new
            if l2 > 0 and lx * lx * sum_l2 > sum_lx * sum_lx * l2:
                levels[i], sum_lx, sum_l2, changed = new, lx, l2, True
        if not changed:
            break
    return sum_lx / sum_l2


@dataclass(frozen=True)
class SymmetricKQuant:
    nmax: int  # levels −nmax..nmax−1
    code_max: int  # sub-block scale codes −code_max..code_max−1 against the super-block's largest
    scale: Callable[[np.ndarray], F32]
    zero_below_eps: bool  # Q6_K stores a super-block of scales under GROUP_MAX_EPS as zeros


SYMMETRIC_K_QUANTS = {
    GGMLQuantizationType.Q3_K: SymmetricKQuant(4, 32, q3_scale, False),
    GGMLQuantizationType.Q6_K: SymmetricKQuant(32, 128, q6_scale, True),
}


def _symmetric_super_block(x: np.ndarray, kind: SymmetricKQuant) -> np.ndarray:
    subs = x.reshape(-1, 16)
    scales = np.array([kind.scale(sub) for sub in subs], F32)
    top = _signed_absmax(scales)
    if not top or (kind.zero_below_eps and abs(top) < GROUP_MAX_EPS):
        return np.zeros_like(x)
    inverse = -F32(kind.code_max) / top
    codes = np.clip(np.rint(inverse * scales), -kind.code_max, kind.code_max - 1)
    d = _fp16(F32(1) / inverse)
    out = np.zeros_like(subs)
    for j, sub in enumerate(subs):
        step = d * F32(codes[j])
        if step:
            out[j] = step * np.clip(np.rint(sub / step), -kind.nmax, kind.nmax - 1).astype(F32)
    return out.reshape(-1)


def decoded_reference(x: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """The values llama.cpp's reference encoder of `qtype` gives `x` (float32, last dim a multiple of 256)."""
    blocks = x.astype(F32).reshape(-1, 256)
    if qtype in SYMMETRIC_K_QUANTS:
        decoded = [_symmetric_super_block(block, SYMMETRIC_K_QUANTS[qtype]) for block in blocks]
    else:
        decoded = [_super_block(block, AFFINE_K_QUANTS[qtype]) for block in blocks]
    return np.stack(decoded).reshape(x.shape)
