"""Dense and block-sparse Triton attention vs PyTorch SDPA at Motif-Video 2B shapes (bf16, CUDA).

    pytest bench/bench_gpu_attention.py -s                        # on a CUDA machine (~1-2 min incl. autotuning)
    TRITON_INTERPRET=1 pytest bench/bench_gpu_attention.py        # tiny fp32 shapes in Triton's CPU interpreter

Cases: the DDT decoder's self-attention over 2N tokens at 832x480x49 (N = 13 x 1560) and 720p x 121
(N = 31 x 3680), and joint attention over 20280 video + 128 text tokens whose last 100 keys are padding. Rows of
the report's table "Attention": our dense kernel vs SDPA (ms, TFLOP/s = 4*B*H*Lq*Lk*D / time, `speed_vs_sdpa` =
sdpa_ms / ours_ms, target >= 0.9, max |ours - sdpa|, the autotuner's pick) and, for the decoder cases, the
block-sparse kernel with the local-temporal decoder pattern (window 2): tile density, effective TFLOP/s (dense
FLOPs x density / time), speedup over our dense kernel (ideal ~ 1 / density), max error against SDPA with the
equivalent element mask on a few query blocks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import median_seconds, sync

from motif_lite.kernels import patterns, reference

CUDA = torch.cuda.is_available()
DEVICE, DTYPE = ("cuda", torch.bfloat16) if CUDA else ("cpu", torch.float32)
BLOCK = 128 if CUDA else 16
# name: (heads, head_dim, frames, tokens per frame, text tokens, padded text keys, reps)
CASES = (
    {
        "decoder-832x480x49": (12, 128, 13, 1560, 0, 0, 7),
        "joint-832x480x49": (12, 128, 13, 1560, 128, 100, 7),
        "decoder-720p-121": (12, 128, 31, 3680, 0, 0, 2),
    }
    if CUDA
    else {
        "decoder-smoke": (2, 32, 4, 24, 0, 0, 1),
        "joint-smoke": (2, 32, 4, 24, 16, 5, 1),
        "decoder-big-smoke": (2, 32, 6, 24, 0, 0, 1),
    }
)
TABLE = "Attention: Triton vs SDPA" + ("" if CUDA else " (CPU interpreter smoke run: times mean nothing)")
pytestmark = pytest.mark.cuda(smoke=True)
DENSE_MS: dict[str, float] = {}


def qkv(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    heads, dim, frames, per_frame, text, _, _ = CASES[name]
    length = 2 * frames * per_frame if not text else frames * per_frame + text
    g = torch.Generator(DEVICE).manual_seed(0)
    return torch.randn(3, 1, heads, length, dim, device=DEVICE, dtype=DTYPE, generator=g).unbind(0)


def best_config() -> str | None:
    """The config the autotuner used for the last call (None: fixed config, e.g. under the interpreter)."""
    from motif_lite.kernels import attention

    tuner = attention._attention_autotuned
    config = getattr(tuner, "best_config", None) if tuner is not None else None
    return None if config is None else str(config)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def first_call_s(fn) -> float:
    """Seconds of the first call (Triton compile + autotune for a new key)."""
    return median_seconds(fn, reps=1, warmup=0)


@pytest.mark.parametrize("name", CASES)
def test_dense_attention(bench_report, name: str) -> None:
    from motif_lite.kernels.attention import block_sparse_attention

    heads, dim, _, _, _, padded, reps = CASES[name]
    warmup = 1 if reps <= 2 else 2
    q, k, v = qkv(name)
    length = q.shape[2]
    key_mask = None
    if padded:
        key_mask = torch.ones(1, 1, 1, length, dtype=torch.bool, device=DEVICE)
        key_mask[..., -padded:] = False
    ours = lambda: block_sparse_attention(q, k, v, key_mask)  # noqa: E731
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # noqa: E731
    tune_s = first_call_s(ours)
    ours_ms = median_seconds(ours, reps, warmup) * 1e3
    config = best_config()
    sdpa_ms = median_seconds(sdpa, reps, warmup) * 1e3
    DENSE_MS[name] = ours_ms
    flops = 4 * heads * length * length * dim
    row = dict(case=name, kind="dense", shape=str([1, heads, length, dim]), dtype=str(DTYPE), padded_keys=padded,
               ours_ms=ours_ms, ours_tflops=flops / ours_ms / 1e9, sdpa_ms=sdpa_ms, sdpa_tflops=flops / sdpa_ms / 1e9,
               speed_vs_sdpa=sdpa_ms / ours_ms, max_abs_err_vs_sdpa=max_err(ours(), sdpa()), config=config,
               first_call_s=tune_s, reps=reps)  # fmt: skip
    if padded:  # context: SDPA without a mask can use its flash backend, with one it cannot
        row["sdpa_nomask_ms"] = median_seconds(lambda: F.scaled_dot_product_attention(q, k, v), reps, warmup) * 1e3
    bench_report.add(TABLE, **row)
    assert row["max_abs_err_vs_sdpa"] < (2e-2 if CUDA else 1e-4)


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if not case[4]])
def test_sparse_decoder_attention(bench_report, name: str) -> None:
    from motif_lite.kernels.attention import block_sparse_attention

    heads, dim, frames, per_frame, _, _, reps = CASES[name]
    warmup = 1 if reps <= 2 else 2
    q, k, v = qkv(name)
    length = q.shape[2]
    pattern = patterns.ddt_decoder_local_temporal(frames, per_frame, window=2, block_size=BLOCK)
    tiles = pattern.mask.to(DEVICE)
    ours = lambda: block_sparse_attention(q, k, v, None, tiles, BLOCK)  # noqa: E731
    tune_s = first_call_s(ours)
    ms = median_seconds(ours, reps, warmup) * 1e3
    config = best_config()
    out = ours()
    sync()
    # Reference on a few query blocks: SDPA with the element mask of those rows (the full mask is Lq x Lk).
    n_q = tiles.shape[2]
    err = 0.0
    for i in sorted({0, n_q // 2, n_q - 1}):
        rows = slice(i * BLOCK, min((i + 1) * BLOCK, length))
        mask = reference.expand_block_mask(tiles[:, :, i : i + 1], BLOCK, rows.stop - rows.start, length)
        err = max(err, max_err(out[:, :, rows], F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask)))
    flops = 4 * heads * length * length * dim * pattern.density
    bench_report.add(TABLE, case=name, kind="block-sparse (decoder, window 2)", shape=str([1, heads, length, dim]),
                     dtype=str(DTYPE), tile_density=pattern.density, ours_ms=ms, effective_tflops=flops / ms / 1e9,
                     speedup_vs_dense=DENSE_MS[name] / ms if name in DENSE_MS else None,
                     ideal_speedup=1.0 / pattern.density, max_abs_err_vs_sdpa_rows=err, config=config,
                     first_call_s=tune_s, reps=reps)  # fmt: skip
    assert err < (2e-2 if CUDA else 1e-4)
