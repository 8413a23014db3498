"""Where a sampling step's time goes: device time by kind of kernel, against the FLOP model (issue #17).

    pytest bench/bench_profile.py -m cuda -s                    # on a CUDA machine: ours at 832x480x49 (~1 min)
    MOTIF_PROFILE_SIZES=1280x736x121 MOTIF_PROFILE_ROWS=ours,ours-compile pytest bench/bench_profile.py -m cuda -s
    TRITON_INTERPRET=1 pytest bench/bench_profile.py -m cuda -s  # CPU smoke: tiny model, the CPU ops' own times
    python bench/bench_profile.py ROW WxHxF                     # one row, one JSON line (what the test runs)

A row of bench/bench_speed.py (the same model, random text features, official sampling: Euler + APG, two
predictions per step) samples 3 steps; torch's profiler records the third (the first holds the attention trial,
compilation and autotuning). Every kernel's device time goes to one kind by its name (`kind_of`): attention,
matmul, norms and RoPE, elementwise, copies, other. Attention and matmul also get their FLOPs from the cost model
(`runtime/cost.transformer_flop_parts`), hence their achieved TFLOP/s; the memory-bound kinds get the bytes
bench/traffic.py's model counts for the step, hence the bandwidth they reached. "idle" is the step's wall time
minus its kernels' time: launches and host work the GPU waits for (the profiler adds some of its own). What the
step spends outside attention and matmuls is what compiling (`ours-compile`), fused kernels or CUDA graphs could
cut.

On the CPU (the smoke run) there are no kernels: the table comes from the self time of torch's CPU ops, to prove
the code runs; the figures mean nothing. The rows go to the session report as "Where a step's time goes (issue
#17)" and "A step's longest kernels (issue #17)".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import CUDA, NEGATIVE_TOKENS, PROMPT_TOKENS, SMOKE, build_ours, run_subprocess  # noqa: E402

SIZES = os.environ.get("MOTIF_PROFILE_SIZES", "64x64x9" if SMOKE else "832x480x49").split(",")
ROWS = os.environ.get("MOTIF_PROFILE_ROWS", "ours").split(",")
STEPS = 3  # the profiler records the last; the first holds the trial, compilation and autotuning

# Kinds of kernels (or, on the CPU, of torch ops), by a pattern of their lower-cased name; the first match wins.
# Attention comes first: its kernels' names hold "flash", "fmha" (CUTLASS), "sdpa" (cuDNN), ours "attention" and
# the 8-bit kernel's prepass "_kv_stats"/"_quantize_kv". Matmuls: cuBLAS (gemm, nvjet, xmma), CUTLASS, and the
# dequantization of quantized linears. Compiled code's fused kernels (triton_poi_/triton_red_fused_...) go by
# the first op in their name.
KINDS = (
    ("attention", r"attention|flash|fmha|sdpa|_kv_stats|_quantize_kv"),
    ("matmul", r"gemm|nvjet|xmma|cutlass|cublas|dequant|aten::(mm|addmm|bmm|matmul)\b"),
    ("norms and RoPE", r"norm|rope"),
    ("copies", r"copy|cat|memcpy|memset|transpose|contiguous|clone|index|gather|scatter"),
    ("elementwise", r"elementwise|triton_poi|aten::(add|mul|sub|div|gelu|silu|where|fill|exp|lerp)"),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, pattern in KINDS if re.search(pattern, lowered)), "other")


def device_seconds(events) -> Counter:
    """Seconds per kernel name in the recorded step: device kernels (CUDA), or without any, the self time of the
    CPU ops. Annotations (the profiler's "ProfilerStep#2", also on the GPU's timeline) span kernels: left out."""
    from torch.autograd import DeviceType

    ops = [e for e in events if not (getattr(e, "is_user_annotation", False) or e.name.startswith("ProfilerStep"))]
    times: Counter = Counter()
    for event in ops:
        if event.device_type == DeviceType.CUDA:
            times[event.name] += event.time_range.elapsed_us() / 1e6
    if not times and not CUDA:
        for event in ops:
            if event.device_type == DeviceType.CPU:
                times[event.name] += event.self_cpu_time_total / 1e6
    return times


def step_text_lengths(guidance_batch: int) -> list[int]:
    """The text tokens of each transformer row of one step: the two prompts padded to the longer in a batch-2 call,
    or each its own length in two calls."""
    if guidance_batch == 2:
        return [max(PROMPT_TOKENS, NEGATIVE_TOKENS)] * 2
    return [PROMPT_TOKENS, NEGATIVE_TOKENS]


def step_flops(run, guidance_batch: int):
    """Linear and attention FLOPs of one step: the two predictions as one batch-2 call (prompt padded to the
    longer one) or as two calls."""
    from motif_lite.runtime.cost import TransformerFlops, transformer_flop_parts
    from motif_lite.runtime.generation_sizes import video_tokens
    from motif_lite.vae import WanVAEConfig

    request, config = run.request, run.model.config
    n = video_tokens(request.width, request.height, request.frames, config, WanVAEConfig())
    parts = [transformer_flop_parts(config, n, t) for t in step_text_lengths(guidance_batch)]
    return TransformerFlops(sum(p.linear for p in parts), sum(p.attention for p in parts))


MEMORY_BOUND = ("norms and RoPE", "copies", "elementwise", "other")  # kinds priced by bytes, not FLOPs


def step_traffic(run, guidance_batch: int, size: tuple[int, int, int]) -> dict[str, int]:
    """Bytes per memory-bound kind that bench/traffic.py's model counts for one step as it ran: the two predictions
    as one batch-2 call (both prompts padded to the longer: two rows of it) or as two calls; each norm seam one
    kernel where the row runs the Triton norms. With the profile's times, the bandwidth each kind reached."""
    from traffic import forward_traffic

    from motif_lite.model.ops import TORCH_OPS

    variant = "torch" if run.model.ops.rms_norm_rope is TORCH_OPS.rms_norm_rope else "fused"
    totals: Counter = Counter()
    for text_tokens, rows in Counter(step_text_lengths(guidance_batch)).items():  # each distinct forward traced once
        counter = forward_traffic(size, variant, config=run.model.config, text_tokens=text_tokens)
        totals.update({kind: rows * t.bytes for kind, t in counter.by_kind().items() if kind in MEMORY_BOUND})
    return dict(totals)


def profile_row(row: str, size: tuple[int, int, int]) -> dict:
    """Sample STEPS steps of `row`, the last under the profiler: seconds per kind, the step's FLOPs, top kernels."""
    from torch.profiler import ProfilerActivity, profile, schedule

    run = build_ours(row, size, STEPS)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    steps = schedule(wait=STEPS - 2, warmup=1, active=1, repeat=1)
    with profile(activities=activities, schedule=steps) as profiler:

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "denoise" and done > 0:  # a step has ended (the loop also reports 0 done at its start)
                profiler.step()

        _, record = run.pipe.sample(run.request, run.noise, run.cond, run.settings, progress)
    times = device_seconds(profiler.events())
    kinds: Counter = Counter()
    for name, seconds in times.items():
        kinds[kind_of(name)] += seconds
    flops = step_flops(run, record.guidance_batch)
    top = [dict(name=name[:90], kind=kind_of(name), ms=round(s * 1e3, 2)) for name, s in times.most_common(10)]
    return dict(
        device=torch.cuda.get_device_name() if CUDA else "cpu",
        step_s=round(record.step_seconds[-1], 4),
        kernels_s=round(sum(times.values()), 4),
        kinds_s={kind: round(s, 5) for kind, s in kinds.most_common()},
        flops=dict(linear=flops.linear, attention=flops.attention),
        guidance_batch=record.guidance_batch,
        traffic_bytes=step_traffic(run, record.guidance_batch, size),
        attention_backend=getattr(run.model.ops.attention, "describe", str)(),
        top=top,
    )


def kind_rows(result: dict) -> list[dict]:
    """The table's rows: each kind's ms and share of the step, TFLOP/s where the cost model counts its FLOPs, GB
    and TB/s where the traffic model counts its bytes (the memory-bound kinds), and the idle time (the step's wall
    time not covered by kernels)."""
    step = result["step_s"]
    flops = {"attention": result["flops"]["attention"], "matmul": result["flops"]["linear"]}
    traffic = result.get("traffic_bytes", {})
    rows = []
    for kind, seconds in result["kinds_s"].items():
        tflops = float(f"{flops[kind] / seconds / 1e12:.3g}") if kind in flops and seconds > 0 else None
        row = dict(kind=kind, ms=round(seconds * 1e3, 2), share=round(seconds / step, 3), tflop_s=tflops)
        if kind in traffic:
            row.update(
                gb=round(traffic[kind] / 1e9, 2), tb_s=round(traffic[kind] / seconds / 1e12, 2) if seconds else None
            )
        rows.append(row)
    idle = max(step - result["kernels_s"], 0.0)
    rows.append(dict(kind="idle (no kernel running)", ms=round(idle * 1e3, 2), share=round(idle / step, 3)))
    return rows


# Kernel names as the profiler gives them on an H100/H200 (PyTorch's SDPA, cuDNN, CUTLASS and cuBLAS kernels, ours,
# PyTorch's elementwise and copy kernels, Inductor's fused kernels), each with the kind it must count as.
KERNEL_NAMES = {
    "attention": [
        "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t>>",
        "fmha_cutlassF_bf16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::bfloat16_t>)",
        "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_6_64x128x128_4x1x1_kernel0_0",
        "_attention_kernel",
        "_int8_attention_kernel",
        "_quantize_kv_kernel",
    ],
    "matmul": [
        "nvjet_tst_192x192_64x4_2x1_v_bz_coopB_NNT",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_kernel__5x_cublas",
        "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn_align8>(Params)",
        "_dequantize_kernel",
    ],
    "norms and RoPE": [
        "_layer_norm_modulate_kernel",
        "_rms_norm_rope_kernel",
        "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>(int, float)",
        "triton_red_fused_native_layer_norm_0",
    ],
    "elementwise": [
        "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>",
        "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(at::TensorIteratorBase&)>",
        "triton_poi_fused_add_mul_3",
    ],
    "copies": [
        "void at::native::elementwise_kernel<128, 4, at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)>",
        "void at::native::(anonymous namespace)::CatArrayBatchedCopy<OpaqueType<2u>, unsigned int, 4, 64, 64>",
        "Memcpy HtoD (Pageable -> Device)",
    ],
    "other": ["void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float>>>"],
}


def test_kernel_kinds() -> None:
    assert {kind: [kind_of(name) for name in names] for kind, names in KERNEL_NAMES.items()} == {
        kind: [kind] * len(names) for kind, names in KERNEL_NAMES.items()
    }


def test_device_seconds_counts_kernels_not_annotations() -> None:
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(name: str, device: DeviceType, us: float, annotation: bool = False) -> SimpleNamespace:
        span = SimpleNamespace(elapsed_us=lambda: us)
        return SimpleNamespace(
            name=name, device_type=device, time_range=span, is_user_annotation=annotation, self_cpu_time_total=us
        )

    cuda, cpu = DeviceType.CUDA, DeviceType.CPU
    on_gpu = [
        event("ProfilerStep#2", cuda, 9000),  # the step marker on the GPU's timeline spans every kernel
        event("motif::block", cuda, 8000, annotation=True),
        event("nvjet_tst", cuda, 300),
        event("nvjet_tst", cuda, 200),
        event("aten::mm", cpu, 50),  # the CPU op that launched them
    ]
    assert device_seconds(on_gpu) == {"nvjet_tst": pytest.approx(5e-4)}
    if not CUDA:  # a CPU run: the ops' own time, the step marker left out
        on_cpu = [event("ProfilerStep#2", cpu, 9000), event("aten::mm", cpu, 400), event("aten::add", cpu, 100)]
        assert device_seconds(on_cpu) == {"aten::mm": pytest.approx(4e-4), "aten::add": pytest.approx(1e-4)}


def test_kind_rows_share_tflops_and_idle() -> None:
    result = dict(
        step_s=1.0,
        kernels_s=0.8,
        kinds_s={"attention": 0.5, "matmul": 0.2, "copies": 0.1},
        flops=dict(linear=1.4e11, attention=3e14),
    )
    rows = {row["kind"]: row for row in kind_rows(result)}
    assert rows["attention"] == dict(kind="attention", ms=500.0, share=0.5, tflop_s=600.0)
    assert rows["matmul"]["tflop_s"] == 0.7 and rows["copies"]["tflop_s"] is None
    assert rows["idle (no kernel running)"]["ms"] == 200.0
    overlapping = kind_rows({**result, "kernels_s": 1.2})  # kernels on two streams can add up past the wall time
    assert overlapping[-1]["ms"] == 0.0
    with_traffic = {row["kind"]: row for row in kind_rows({**result, "traffic_bytes": {"copies": 2.5e11}})}
    assert with_traffic["copies"]["gb"] == 250.0 and with_traffic["copies"]["tb_s"] == 2.5  # 250 GB in 0.1 s
    assert "gb" not in with_traffic["attention"]  # priced by its FLOPs
    # A kind whose time rounds to 0 (the CPU smoke run's short ops): its bytes, and no bandwidth
    instant = {**result, "kinds_s": {**result["kinds_s"], "other": 0.0}, "traffic_bytes": {"other": 1e9}}
    other = {row["kind"]: row for row in kind_rows(instant)}["other"]
    assert (other["gb"], other["tb_s"]) == (1.0, None)


def test_the_memory_bound_kinds_are_every_kind_but_attention_and_matmul() -> None:
    from traffic import KINDS as TRAFFIC_KINDS

    every = {kind for kind, _ in KINDS} | {"other"}  # kind_of's answers
    assert set(MEMORY_BOUND) == every - {"attention", "matmul"} == set(TRAFFIC_KINDS)


def test_step_traffic_counts_the_calls_as_the_step_ran_them() -> None:
    from types import SimpleNamespace

    from tiny_config import TINY
    from traffic import forward_traffic

    from motif_lite.config import TransformerConfig
    from motif_lite.model.ops import TORCH_OPS

    config = TransformerConfig(**TINY)
    size = (64, 64, 9)
    run = SimpleNamespace(model=SimpleNamespace(config=config, ops=TORCH_OPS))
    batched, separate = step_traffic(run, 2, size), step_traffic(run, 1, size)
    padded = forward_traffic(size, "torch", config=config, text_tokens=max(PROMPT_TOKENS, NEGATIVE_TOKENS))
    assert batched == {kind: 2 * t.bytes for kind, t in padded.by_kind().items() if kind in MEMORY_BOUND}
    assert set(separate) == set(batched) and sum(separate.values()) < sum(batched.values())
    run.model.ops = SimpleNamespace(rms_norm_rope=object())  # the Triton norms: one kernel per seam call
    fused = step_traffic(run, 2, size)
    assert sum(fused.values()) < sum(batched.values())  # no float32 RoPE temporaries


def test_step_flops_counts_the_prompts_as_the_step_ran_them() -> None:
    from types import SimpleNamespace

    from motif_lite.config import TransformerConfig
    from motif_lite.runtime.cost import transformer_flop_parts

    config = TransformerConfig()
    run = SimpleNamespace(
        request=SimpleNamespace(width=832, height=480, frames=49), model=SimpleNamespace(config=config)
    )
    n = 13 * 30 * 52
    batched, separate = step_flops(run, 2), step_flops(run, 1)
    padded = transformer_flop_parts(config, n, max(PROMPT_TOKENS, NEGATIVE_TOKENS))
    assert batched.attention == 2 * padded.attention and batched.linear == 2 * padded.linear
    own = [transformer_flop_parts(config, n, t) for t in (PROMPT_TOKENS, NEGATIVE_TOKENS)]
    assert separate.attention == sum(p.attention for p in own) < batched.attention


@pytest.mark.cuda(smoke=True)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("row", ROWS)
def test_profile(row: str, size: str, bench_report) -> None:
    if row.startswith("diffusers") or row.endswith("-cache"):
        pytest.skip("profiled: our rows that run every step in full")
    result = run_subprocess(row, size, script=__file__)
    rows = kind_rows(result)
    for line in rows:
        bench_report.add("Where a step's time goes (issue #17)", size=size, row=row, **line, smoke=SMOKE)
    for kernel in result["top"]:
        bench_report.add("A step's longest kernels (issue #17)", size=size, row=row, **kernel)
    print(json.dumps({"size": size, "row": row, **result}))
    # The kinds account for every kernel, and attention and the matmuls were found by their names.
    assert sum(result["kinds_s"].values()) == pytest.approx(result["kernels_s"], rel=1e-3, abs=1e-4)
    assert {"attention", "matmul"} <= set(result["kinds_s"]), result["top"]
    # The memory-bound kinds got the traffic model's bytes for the step as it ran (its guidance batch).
    assert {"norms and RoPE", "copies", "elementwise"} <= set(result["traffic_bytes"])
    if SMOKE:  # the tiny model: counted again here in a second, with either norm variant
        from types import SimpleNamespace

        from bench_speed import official_config

        from motif_lite.config import TransformerConfig
        from motif_lite.model.ops import TORCH_OPS

        config = TransformerConfig.from_dict(official_config())
        width_height_frames = tuple(int(v) for v in size.split("x"))
        counted = [
            step_traffic(SimpleNamespace(model=SimpleNamespace(config=config, ops=ops)), batch, width_height_frames)
            for ops in (TORCH_OPS, SimpleNamespace(rms_norm_rope=None))
            for batch in (1, 2)
        ]
        step = counted.index(result["traffic_bytes"])
        assert step % 2 == result["guidance_batch"] - 1, (step, result["guidance_batch"])


def main() -> None:
    parser = argparse.ArgumentParser(description="one profiled row, printed as a JSON line")
    parser.add_argument("row")
    parser.add_argument("size", help="WxHxF, e.g. 832x480x49")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(json.dumps(profile_row(args.row, size)), flush=True)


if __name__ == "__main__":
    main()
