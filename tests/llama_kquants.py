"""An independent, one-sub-block-at-a-time model of llama.cpp's reference encoders for the affine K-quants
(`quantize_row_q2_K_ref`, `quantize_row_q4_K_ref`, `quantize_row_q5_K_ref` with `make_qkx2_quants`), written
from ggml-quants.c's description as plain float32 numpy loops. The tests compare motif-lite's vectorized encoder
with it: what it returns is the values a llama.cpp-made file would decode to.
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


def decoded_reference(x: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """The values llama.cpp's reference encoder of `qtype` gives `x` (float32, last dim a multiple of 256)."""
    kind = AFFINE_K_QUANTS[qtype]
    blocks = x.astype(F32).reshape(-1, 256)
    return np.stack([_super_block(block, kind) for block in blocks]).reshape(x.shape)
