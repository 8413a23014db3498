"""Dense and block-sparse Triton attention vs PyTorch SDPA at Motif-Video 2B shapes (bf16, CUDA). No pytest.

    python bench/gpu_attention.py OUT.jsonl                 # on a CUDA machine (~1-2 min incl. autotuning)
    python bench/gpu_attention.py OUT.jsonl --cpu-smoke     # tiny fp32 shapes in Triton's CPU interpreter

Cases: the DDT decoder's self-attention over 2N tokens at 832x480x49 (N = 13 x 1560) and 720p x 121
(N = 31 x 3680), and joint attention over 20280 video + 128 text tokens whose last 100 keys are padding. Each
case prints JSON lines (appended to OUT): our dense kernel vs SDPA (ms, TFLOP/s = 4*B*H*Lq*Lk*D / time,
`speed_vs_sdpa` = sdpa_ms / ours_ms, target >= 0.9, max |ours - sdpa|, the autotuner's pick) and, for the
decoder cases, the block-sparse kernel with the local-temporal decoder pattern (window 2): tile density,
effective TFLOP/s (dense FLOPs x density / time), speedup over our dense kernel (ideal ~ 1 / density), max
error against SDPA with the equivalent element mask on a few query blocks. A failing case prints an
{"error": ...} line and the script goes on.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

CPU_SMOKE = "--cpu-smoke" in sys.argv
if CPU_SMOKE:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from motif_lite.kernels import attention, patterns, reference  # noqa: E402

CUDA = torch.cuda.is_available() and not CPU_SMOKE
DEVICE, DTYPE = ("cuda", torch.bfloat16) if CUDA else ("cpu", torch.float32)
BLOCK = 128 if CUDA else 16
# (name, heads, head_dim, frames, tokens per frame, text tokens, padded text keys, reps)
CASES = (
    [
        ("decoder-832x480x49", 12, 128, 13, 1560, 0, 0, 7),
        ("joint-832x480x49", 12, 128, 13, 1560, 128, 100, 7),
        ("decoder-720p-121", 12, 128, 31, 3680, 0, 0, 2),
    ]
    if CUDA
    else [
        ("decoder-smoke", 2, 32, 4, 24, 0, 0, 1),
        ("joint-smoke", 2, 32, 4, 24, 16, 5, 1),
        ("decoder-big-smoke", 2, 32, 6, 24, 0, 0, 1),
    ]
)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def time_ms(fn, reps: int, warmup: int) -> float:
    """Median wall time of `reps` synchronized calls after `warmup` calls (the first call compiles/tunes)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def first_call_s(fn) -> float:
    """Seconds of the first call (Triton compile + autotune for a new key)."""
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def best_config() -> str | None:
    """The config the autotuner used for the last call (None: fixed config, e.g. under the interpreter)."""
    tuner = attention._attention_autotuned
    config = getattr(tuner, "best_config", None) if tuner is not None else None
    return None if config is None else str(config)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def emit(out_path: Path, record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with out_path.open("a") as f:
        f.write(line + "\n")


def dense_case(out_path: Path, name: str, heads: int, dim: int, length: int, padded: int, reps: int) -> tuple:
    warmup = 1 if reps <= 2 else 2
    q, k, v = torch.randn(3, 1, heads, length, dim, device=DEVICE, dtype=DTYPE).unbind(0)
    key_mask = None
    if padded:
        key_mask = torch.ones(1, 1, 1, length, dtype=torch.bool, device=DEVICE)
        key_mask[..., -padded:] = False
    ours = lambda: attention.block_sparse_attention(q, k, v, key_mask)  # noqa: E731
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # noqa: E731
    tune_s = first_call_s(ours)
    ours_ms = time_ms(ours, reps, warmup)
    config = best_config()
    sdpa_ms = time_ms(sdpa, reps, warmup)
    err = max_err(ours(), sdpa())
    flops = 4 * heads * length * length * dim
    record = {
        "case": name,
        "kind": "dense",
        "shape": [1, heads, length, dim],
        "dtype": str(DTYPE),
        "padded_keys": padded,
        "ours_ms": ours_ms,
        "ours_tflops": flops / ours_ms / 1e9,
        "sdpa_ms": sdpa_ms,
        "sdpa_tflops": flops / sdpa_ms / 1e9,
        "speed_vs_sdpa": sdpa_ms / ours_ms,
        "max_abs_err_vs_sdpa": err,
        "config": config,
        "first_call_s": tune_s,
        "reps": reps,
    }
    if padded:  # context: SDPA without a mask can use its flash backend, with one it cannot
        nomask_ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v), reps, warmup)
        record["sdpa_nomask_ms"] = nomask_ms
    emit(out_path, record)
    return q, k, v, ours_ms


def sparse_case(out_path: Path, name: str, qkv: tuple, dense_ms: float, frames: int, per_frame: int, reps: int):
    warmup = 1 if reps <= 2 else 2
    q, k, v = qkv
    heads, length, dim = q.shape[1], q.shape[2], q.shape[3]
    pattern = patterns.ddt_decoder_local_temporal(frames, per_frame, window=2, block_size=BLOCK)
    tiles = pattern.mask.to(DEVICE)
    ours = lambda: attention.block_sparse_attention(q, k, v, None, tiles, BLOCK)  # noqa: E731
    tune_s = first_call_s(ours)
    ms = time_ms(ours, reps, warmup)
    config = best_config()
    out = ours()
    # Reference on a few query blocks: SDPA with the element mask of those rows (the full mask is Lq x Lk).
    n_q = tiles.shape[2]
    err = 0.0
    for i in sorted({0, n_q // 2, n_q - 1}):
        rows = slice(i * BLOCK, min((i + 1) * BLOCK, length))
        mask = reference.expand_block_mask(tiles[:, :, i : i + 1], BLOCK, rows.stop - rows.start, length)
        ref = F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask)
        err = max(err, max_err(out[:, :, rows], ref))
    density = pattern.density
    flops = 4 * heads * length * length * dim * density
    emit(
        out_path,
        {
            "case": name,
            "kind": "block-sparse",
            "pattern": f"ddt_decoder_local_temporal frames={frames} per_frame={per_frame} window=2 block={BLOCK}",
            "shape": [1, heads, length, dim],
            "tile_density": density,
            "ms": ms,
            "effective_tflops": flops / ms / 1e9,
            "speedup_vs_dense": dense_ms / ms,
            "ideal_speedup": 1.0 / density,
            "max_abs_err_vs_sdpa_rows": err,
            "config": config,
            "first_call_s": tune_s,
            "reps": reps,
        },
    )


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--cpu-smoke"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out_path = Path(args[0])
    if not CUDA and not CPU_SMOKE:
        print("no CUDA device; run with --cpu-smoke for the interpreter smoke run", file=sys.stderr)
        return 2
    import triton

    start = time.perf_counter()
    emit(
        out_path,
        {
            "kind": "env",
            "device": torch.cuda.get_device_name() if CUDA else "cpu (TRITON_INTERPRET=1)",
            "torch": torch.__version__,
            "triton": triton.__version__,
            "configs": [str(c) for c in attention._CONFIGS],
        },
    )
    torch.manual_seed(0)
    for name, heads, dim, frames, per_frame, text, padded, reps in CASES:
        length = 2 * frames * per_frame if not text else frames * per_frame + text
        qkv = None
        try:
            qkv = dense_case(out_path, name, heads, dim, length, padded, reps)
        except Exception as exc:  # noqa: BLE001 - report and go on
            emit(out_path, {"case": name, "kind": "dense", "error": repr(exc), "trace": traceback.format_exc()[-2000:]})
        if not text and qkv is not None:
            try:
                sparse_case(out_path, name, qkv[:3], qkv[3], frames, per_frame, reps)
            except Exception as exc:  # noqa: BLE001
                emit(
                    out_path,
                    {"case": name, "kind": "block-sparse", "error": repr(exc), "trace": traceback.format_exc()[-2000:]},
                )
        del qkv
        if CUDA:
            torch.cuda.empty_cache()
    emit(out_path, {"kind": "done", "total_s": time.perf_counter() - start})
    return 0


if __name__ == "__main__":
    sys.exit(main())
