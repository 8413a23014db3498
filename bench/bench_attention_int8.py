"""8-bit attention against SDPA and SageAttention 1.x (its Triton kernels) at Motif-Video 2B shapes (CUDA, bf16).

    pytest bench/bench_attention_int8.py -s     # on a CUDA machine (skipped without one); -m "not slow": no forward

Targets on an H100/H200 (docs/benchmarks.md): int8 >= 1.8x SDPA and >= 1.0x sageattention at equal or better
accuracy; one whole 1280x736x121 transformer forward with int8 <= 0.6x the exact one (`test_720p_forward`). The
speed targets are report-only (not met on an H200, 2026-11-30: docs/benchmarks.md). Asserted: each row of ours
(int8, int8-pipelined, int8-16bit, the int8-ws experiment) and SDPA's meets the accuracy target on every checked
query block, cosine >= 0.999 and relative L1 <= 0.03 against fp32 SDPA (tests/test_kernels_int8.py's; measured on
the H200: >= 0.99996 and <= 0.0069); sageattention's row is recorded only (not ours to fix).

Cases: the DDT decoder's self-attention over 2N tokens and the joint attention over video + text (the last 100
text keys padding), at 1280x736x121 and 832x480x49; 12 heads of 128. Inputs are DiT-like (tests/attention_inputs).
Our kernel runs with FP8 P·V in its default key loop ("int8") and in the software-pipelined one
("int8-pipelined"), and with 16-bit P·V. Rows of the report's tables: ms, TFLOP/s (4·H·Lq·Lk·D / time),
`speed_vs_sdpa` and `speed_vs_sageattention` (measured in the same run), the accuracy against fp32 SDPA on three
query blocks (cosine, relative L1) and, for our kernel, the tile config the autotuner picked. On sm_90 the 720p
decoder case also runs bench/int8_ws.py's warp-specialized experiment ("int8-ws", with and without its consumers
taking turns; not used at run time), after the other rows: a hang there loses only the rows after it.
`sageattention` (pip install sageattention==1.0.6) is imported only here and skipped when absent; it has no key
mask, so it runs the unmasked cases only.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_inputs import attention_error, dit_like_qkv, trailing_padding
from helpers import median_seconds

pytestmark = pytest.mark.cuda
TABLE = "8-bit attention vs SDPA and sageattention (bf16, 12 heads x 128)"
FORWARD = "Whole transformer forward at 1280x736x121, exact vs int8 attention (random bf16 weights)"
HEADS, HEAD_DIM, PADDED_TEXT = 12, 128, 100
# name -> (query/key tokens, text tokens among them): N = latent frames x (H/16) x (W/16)
CASES = {
    "decoder-1280x736x121": (2 * 31 * 46 * 80, 0),
    "joint-1280x736x121": (31 * 46 * 80 + 512, 512),
    "decoder-832x480x49": (2 * 13 * 30 * 52, 0),
    "joint-832x480x49": (13 * 30 * 52 + 128, 128),
}
# Baselines first: the int8 rows carry the ratios. "int8-pipelined": FP8 P·V in the software-pipelined key loop
# (pipeline_pv=True), next to "int8", the default loop, in the same run.
IMPLS = ["sdpa", "sageattention", "int8", "int8-pipelined", "int8-16bit"]
RESULTS: dict[str, dict[str, float]] = {}  # case -> impl -> median seconds
COSINE, REL_L1 = 0.999, 0.03  # the accuracy target (tests/test_kernels_int8.py), on each checked query block


def assert_accurate(impl: str, row: dict) -> None:
    """The accuracy target on the row's worst block (`cosine` and `rel_l1` are its min and max over them)."""
    assert row["cosine"] >= COSINE and row["rel_l1"] <= REL_L1, (
        f"{impl}: cosine {row['cosine']:.6f} (target >= {COSINE}), relative L1 {row['rel_l1']:.4f} (<= {REL_L1})"
    )


@pytest.fixture(scope="module")
def inputs() -> dict[str, tuple]:
    """One case's inputs at a time (the 720p decoder's q/k/v take 2 GB): (q, k, v, mask, reference rows)."""
    cache: dict[str, tuple] = {}

    def get(case: str) -> tuple:
        if case not in cache:
            cache.clear()
            torch.cuda.empty_cache()
            length, text = CASES[case]
            q, k, v = dit_like_qkv(1, HEADS, length, HEAD_DIM, 0, dtype=torch.bfloat16, device="cuda")
            mask = trailing_padding(1, length, PADDED_TEXT, "cuda") if text else None
            rows = [slice(start, start + 128) for start in (0, length // 2, length - 128)]
            reference = [
                F.scaled_dot_product_attention(q[:, :, r].float(), k.float(), v.float(), attn_mask=mask) for r in rows
            ]
            cache[case] = (q, k, v, mask, rows, reference)
        return cache[case]

    return get


def implementation(impl: str, mask: torch.Tensor | None):
    from motif_lite.kernels.attention_int8 import int8_attention

    if impl == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if impl == "int8":
        return lambda q, k, v: int8_attention(q, k, v, mask)
    if impl == "int8-pipelined":
        return lambda q, k, v: int8_attention(q, k, v, mask, pipeline_pv=True)
    if impl == "int8-16bit":
        return lambda q, k, v: int8_attention(q, k, v, mask, pv="16bit")
    sage = pytest.importorskip("sageattention")
    if mask is not None:
        pytest.skip("sageattention 1.x has no key mask")
    # sageattn smooths k in place (k -= mean): give it its own copy.
    return lambda q, k, v: sage.sageattn(q, k.clone(), v, tensor_layout="HND", is_causal=False)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_attention(bench_report, inputs, case: str, impl: str) -> None:
    q, k, v, mask, rows, reference = inputs(case)
    fn = implementation(impl, mask)
    out = fn(q, k, v)  # compile, autotune
    errors = [attention_error(out[:, :, r], ref) for r, ref in zip(rows, reference, strict=True)]
    del out
    seconds = median_seconds(lambda: fn(q, k, v), reps=5 if q.shape[2] > 100_000 else 20)
    RESULTS.setdefault(case, {})[impl] = seconds
    row = dict(case=case, impl=impl, ms=seconds * 1e3, tflops=4 * HEADS * q.shape[2] ** 2 * HEAD_DIM / seconds / 1e12)
    row.update(cosine=min(c for c, _ in errors), rel_l1=max(r for _, r in errors))
    if impl.startswith("int8"):
        from motif_lite.kernels.attention_int8 import last_tuned_config

        row["config"] = last_tuned_config()  # the autotuner's pick for this case (its latest call)
    for baseline in ("sdpa", "sageattention"):  # the baselines run first in each case
        if baseline in RESULTS[case] and impl != baseline:
            row[f"speed_vs_{baseline}"] = RESULTS[case][baseline] / seconds
    bench_report.add(TABLE, **row)
    print(f"\n{row}")
    if impl != "sageattention":
        assert_accurate(impl, row)


@pytest.mark.parametrize("ping_pong", [True, False], ids=["ping-pong", "no-ping-pong"])
def test_warp_specialized_experiment(bench_report, inputs, ping_pong: bool) -> None:
    """bench/int8_ws.py on the 720p decoder attention (keys a multiple of 64, no mask: what it handles), Hopper
    only, timed as the rows above (its Q quantization in torch included)."""
    import int8_ws
    import triton

    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("warp specialization with TMA: sm_90 (H100/H200) only")
    case = "decoder-1280x736x121"
    q, k, v, _, rows, reference = inputs(case)
    try:
        out = int8_ws.ws_attention(q, k, v, ping_pong)  # compile
    except Exception as exc:  # a Triton that cannot warp-specialize this loop: recorded as the skip's reason
        pytest.skip(f"int8-ws does not compile with triton {triton.__version__}: {str(exc).splitlines()[0][:200]}")
    errors = [attention_error(out[:, :, r], ref) for r, ref in zip(rows, reference, strict=True)]
    del out
    seconds = median_seconds(lambda: int8_ws.ws_attention(q, k, v, ping_pong), reps=5)
    impl = "int8-ws" if ping_pong else "int8-ws-no-ping-pong"
    row = dict(case=case, impl=impl, ms=seconds * 1e3, tflops=4 * HEADS * q.shape[2] ** 2 * HEAD_DIM / seconds / 1e12)
    row.update(cosine=min(c for c, _ in errors), rel_l1=max(r for _, r in errors))
    for baseline in ("sdpa", "sageattention", "int8"):
        if baseline in RESULTS.get(case, {}):
            row[f"speed_vs_{baseline}"] = RESULTS[case][baseline] / seconds
    bench_report.add(TABLE, **row)
    print(f"\n{row}")
    assert_accurate(impl, row)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["exact", "int8"])
def test_720p_forward(bench_report, attention: str) -> None:
    """One full-size transformer forward (random bf16 weights, 1280x736x121, 512 text tokens) per attention."""
    from motif_lite.config import TransformerConfig
    from motif_lite.runtime.kernels import apply_kernels
    from motif_lite.weights.loader import assign_weights, build_model

    model = build_model(TransformerConfig())
    generator = torch.Generator(device="cuda").manual_seed(0)
    state = {}
    for name, t in model.state_dict().items():  # N(0, 0.02), norm gains 1 + N(0, 0.02), as tests/full_size.py
        values = 0.02 * torch.randn(t.shape, generator=generator, device="cuda", dtype=torch.bfloat16)
        state[name] = values + 1 if t.dim() == 1 and "norm" in name else values
    model = apply_kernels(assign_weights(model, state), "auto", attention=attention)
    latents = torch.randn(1, 33, 31, 92, 160, generator=generator, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(1, 512, 2560, generator=generator, device="cuda", dtype=torch.bfloat16)
    timestep = torch.tensor([500.0], device="cuda")

    def forward() -> None:
        with torch.no_grad():
            model(latents, timestep, text)

    seconds = median_seconds(forward, reps=3, warmup=1)  # the warm-up call compiles and autotunes
    times = RESULTS.setdefault("forward-1280x736x121", {})
    times[attention] = seconds
    row = dict(attention=attention, seconds=seconds)
    if attention == "int8" and "exact" in times:
        row["int8_over_exact"] = seconds / times["exact"]  # target <= 0.6, report-only
    bench_report.add(FORWARD, **row)
    print(f"\n{row}")
