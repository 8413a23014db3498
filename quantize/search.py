"""Per-sub-block scale (and min) searches used by the K-quants.

These follow the algorithms of llama.cpp's reference quantizers (`make_qx_quants`, `make_qkx2_quants`,
`make_q3_quants`), rewritten to run on all sub-blocks at once: every function takes `x` of shape
[G, n] (G sub-blocks of n values) and loops only over the few search steps, never over blocks.
Rounding is `torch.round` (half to even), like llama.cpp's `nearest_int`.
"""

import torch

# Below this absolute maximum a sub-block is treated as all zeros (llama.cpp's GROUP_MAX_EPS).
GROUP_MAX_EPS = 1e-15


def _signed_absmax(x: torch.Tensor) -> torch.Tensor:
    """The value of largest magnitude in each row, with its sign: [G, n] -> [G, 1]."""
    idx = x.abs().argmax(dim=1, keepdim=True)
    return x.gather(1, idx)


def _symmetric_sums(x, w, iscale, nmax):
    levels = torch.round(iscale * x).clamp_(-nmax, nmax - 1)
    wl = w * levels
    return (wl * x).sum(1, keepdim=True), (wl * levels).sum(1, keepdim=True)


def symmetric_scale(x: torch.Tensor, nmax: int) -> torch.Tensor:
    """Scale for levels in [-nmax, nmax-1] minimising the x^2-weighted squared error: [G, n] -> [G, 1].

    Tries 19 candidate inverse scales around -nmax/max and keeps the one whose least-squares scale
    explains the most weighted energy (llama.cpp `make_qx_quants`, rmse_type 1).
    """
    vmax = _signed_absmax(x)
    zero = vmax.abs() < GROUP_MAX_EPS
    vmax = torch.where(zero, torch.ones_like(vmax), vmax)
    w = x * x
    sumlx, suml2 = _symmetric_sums(x, w, -nmax / vmax, nmax)
    scale = torch.where(suml2 > 0, sumlx / suml2.clamp(min=1e-30), torch.zeros_like(sumlx))
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        sumlx, suml2 = _symmetric_sums(x, w, -(nmax + 0.1 * step) / vmax, nmax)
        # sumlx^2 / suml2 is the energy explained by the least-squares scale for these levels.
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        scale = torch.where(better, sumlx / suml2.clamp(min=1e-30), scale)
        best = torch.where(better, scale * sumlx, best)
    return torch.where(zero, torch.zeros_like(scale), scale)


def _weighted_error(err: torch.Tensor, w: torch.Tensor, use_mad: bool) -> torch.Tensor:
    return (w * (err.abs() if use_mad else err * err)).sum(1, keepdim=True)


def affine_scale_min(
    x: torch.Tensor, w: torch.Tensor, nmax: int, rmin: float, rdelta: float, nstep: int, use_mad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and min for levels in [0, nmax] with x ~ scale*l - min: [G, n] -> ([G, 1], [G, 1]).

    Starts from the min/max grid, then for nstep+1 candidate grids solves the weighted least squares
    for (scale, min) with the levels fixed and keeps the best (llama.cpp `make_qkx2_quants`). The
    returned min is >= 0 (it is subtracted), because the offset may never be positive.
    """
    lo = x.amin(1, keepdim=True).clamp(max=0)
    hi = x.amax(1, keepdim=True)
    span = hi - lo
    flat = span == 0
    span = torch.where(flat, torch.ones_like(span), span)
    wx = w * x
    sum_w, sum_x, sum_x2 = w.sum(1, keepdim=True), wx.sum(1, keepdim=True), (wx * x).sum(1, keepdim=True)

    scale, offset = span / nmax, lo
    levels = torch.round((x - lo) * (nmax / span)).clamp_(0, nmax)
    best = _weighted_error(scale * levels + offset - x, w, use_mad)
    for step in range(nstep + 1):
        # Each candidate grid spans [best offset so far, max], as llama.cpp's `min` moves with every improvement;
        # a grid of no width gives all-zero levels, which the least squares then refuses (no candidate).
        width = hi - offset
        usable = width > 0
        # Tensor over tensor: torch computes a scalar over a tensor as the scalar times the reciprocal, an ulp
        # off llama.cpp's division, which moves levels at a rounding tie.
        inv = torch.full_like(width, rmin + rdelta * step + nmax) / torch.where(usable, width, 1.0)
        inv = torch.where(usable, inv, 0.0)
        levels = torch.round((x - offset) * inv).clamp_(0, nmax)
        wl = w * levels
        sum_l, sum_l2, sum_xl = wl.sum(1, keepdim=True), (wl * levels).sum(1, keepdim=True), (wx * levels).sum(1, True)
        cand_scale, cand_offset = _least_squares_affine(sum_w, sum_x, sum_l, sum_l2, sum_xl)
        if use_mad:
            err = _weighted_error(cand_scale * levels + cand_offset - x, w, use_mad)
        else:
            # sum w*(s*l + o - x)^2 expanded into the sums we already have: no pass over the values.
            s, o = cand_scale, cand_offset
            err = s * s * sum_l2 + 2 * s * o * sum_l + o * o * sum_w - 2 * s * sum_xl - 2 * o * sum_x + sum_x2
        better = torch.isfinite(cand_scale) & (err < best)
        scale = torch.where(better, cand_scale, scale)
        offset = torch.where(better, cand_offset, offset)
        best = torch.where(better, err, best)
    zeros = torch.zeros_like(scale)
    return torch.where(flat, zeros, scale), torch.where(flat, -lo, -offset)


def _least_squares_affine(sum_w, sum_x, sum_l, sum_l2, sum_xl):
    """Weighted LS fit x ~ scale*levels + offset (offset <= 0) from the weighted sums; NaN scale where
    the system is singular. All arguments and results are [G, 1]."""
    det = sum_w * sum_l2 - sum_l * sum_l
    solvable = det > 0
    det = torch.where(solvable, det, torch.ones_like(det))
    scale = (sum_w * sum_xl - sum_x * sum_l) / det
    offset = (sum_l2 * sum_x - sum_l * sum_xl) / det
    # A positive offset is not representable: refit the scale through the origin instead.
    positive = offset > 0
    scale = torch.where(positive, sum_xl / sum_l2.clamp(min=1e-30), scale)
    offset = torch.where(positive, torch.zeros_like(offset), offset)
    return torch.where(solvable, scale, torch.full_like(scale, float("nan"))), offset


def q3_scale(x: torch.Tensor, nmax: int = 4, n_iter: int = 5) -> torch.Tensor:
    """Scale for levels in [-nmax, nmax-1], refined by coordinate descent: [G, n] -> [G, 1].

    Each pass revisits every position and moves its level to the value that best fits the current
    least-squares scale, keeping the move only if the x^2-weighted error drops (llama.cpp
    `make_q3_quants` with do_rmse). The loop runs over positions; all sub-blocks move together.
    """
    vmax = _signed_absmax(x)
    zero = vmax.abs() < GROUP_MAX_EPS
    vmax = torch.where(zero, torch.ones_like(vmax), vmax)
    levels = torch.round(x * (-nmax / vmax)).clamp_(-nmax, nmax - 1)
    w = x * x
    sumlx = (w * x * levels).sum(1, keepdim=True)
    suml2 = (w * levels * levels).sum(1, keepdim=True)
    for _ in range(n_iter):
        changed = False
        for i in range(x.shape[1]):
            xi, wi, li = x[:, i : i + 1], w[:, i : i + 1], levels[:, i : i + 1]
            slx = sumlx - wi * xi * li
            sl2 = suml2 - wi * li * li
            usable = slx > 0
            new_l = torch.round(xi * sl2 / torch.where(usable, slx, torch.ones_like(slx))).clamp_(-nmax, nmax - 1)
            slx = slx + wi * xi * new_l
            sl2 = sl2 + wi * new_l * new_l
            # Compare explained energy slx^2/sl2 against the current sumlx^2/suml2 without dividing.
            accept = usable & (new_l != li) & (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2)
            levels[:, i : i + 1] = torch.where(accept, new_l, li)
            sumlx = torch.where(accept, slx, sumlx)
            suml2 = torch.where(accept, sl2, suml2)
            changed = changed or bool(accept.any())
        if not changed:
            break
    scale = torch.where(suml2 > 0, sumlx / suml2.clamp(min=1e-30), torch.zeros_like(sumlx))
    return torch.where(zero, torch.zeros_like(scale), scale)
