"""One-shot GPU measurements of the transformer (not a pytest file): python bench/gpu_check.py OUT.jsonl

Full 2.04B architecture with random bf16 weights generated on the GPU; every result is one JSON line.
  1. bf16 forward at 832x480x49 (20,280 video tokens, 128 text tokens): diffusers vs ours (torch ops) vs ours
     (Triton ops), same weights, with the max difference to diffusers.
  2. the same with random Q4_K packed linears: torch dequant path vs the Triton dequant-matmul.
  3. one forward at 1280x736x121 (114,080 tokens) with Q4_K weights: all resident vs block streaming + FF
     chunking, peak CUDA memory (torch.cuda.max_memory_allocated) and time.
Stages stop early when the time budget (argv[2] seconds, default 300) runs out.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_gguf_full import quantized_copy, swap  # noqa: E402
from full_size import random_tensor, reference_on_meta, reference_sharing  # noqa: E402
from gguf import GGMLQuantizationType  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.model.ops import TORCH_OPS  # noqa: E402
from motif_lite.runtime.chunking import apply_token_chunking  # noqa: E402
from motif_lite.runtime.kernels import apply_kernels  # noqa: E402
from motif_lite.runtime.streaming import StreamingConfig, apply_block_streaming  # noqa: E402
from motif_lite.weights.loader import assign_weights, build_model  # noqa: E402

START = time.perf_counter()
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_check.jsonl")
BUDGET = float(sys.argv[2]) if len(sys.argv) > 2 else 300.0


def emit(**record) -> None:
    record["elapsed_s"] = round(time.perf_counter() - START, 1)
    line = json.dumps(record)
    print(line, flush=True)
    with OUT.open("a") as f:
        f.write(line + "\n")


def timed(fn, reps: int = 2) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        out = fn()  # warm-up (Triton compiles here)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            out = fn()
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps, out


def inputs(frames: int, height: int, width: int, text: int = 128) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", generator=g)
    return dict(
        latents=torch.randn(1, 33, frames, height, width, **kw).bfloat16(),
        timestep=torch.tensor([700.0], device="cuda"),
        text_embeds=torch.randn(1, text, 2560, **kw).bfloat16(),
    )


def bf16_models():
    g = torch.Generator(device="cuda").manual_seed(0)
    meta = reference_on_meta()
    with torch.device("cuda"):
        state = {n: random_tensor(n, t.shape, g).bfloat16() for n, t in meta.state_dict().items()}
    ours = assign_weights(build_model(TransformerConfig.from_dict(dict(meta.config))), state)
    return ours, reference_sharing(state)


def stage_bf16(ours, reference, x) -> None:
    seconds_ref, ref_out = timed(lambda: reference(x["latents"], x["timestep"], x["text_embeds"]).sample)
    emit(stage="bf16 832x480x49", impl="diffusers", seconds=round(seconds_ref, 3))
    for backend in ("torch", "triton"):
        apply_kernels(ours, backend)
        seconds, out = timed(lambda: ours(x["latents"], x["timestep"], x["text_embeds"]))
        rel = ((out.float() - ref_out.float()).norm() / ref_out.float().norm()).item()
        emit(
            stage="bf16 832x480x49",
            impl=f"ours-{backend}",
            seconds=round(seconds, 3),
            ratio_vs_diffusers=round(seconds / seconds_ref, 3),
            rel_diff_vs_diffusers=rel,
        )
    ours.ops = TORCH_OPS


def stage_q4k(ours, x) -> None:
    swap(ours, quantized_copy(ours, GGMLQuantizationType.Q4_K, "cuda"))
    for backend, fused in (("torch", False), ("triton", False), ("triton", True)):  # fused: Triton dequant_matmul
        apply_kernels(ours, backend, triton_dequant=fused)
        seconds, _ = timed(lambda: ours(x["latents"], x["timestep"], x["text_embeds"]))
        emit(
            stage="Q4_K 832x480x49",
            impl=f"ours-{backend}" + ("-triton-dequant" if fused else "-torch-dequant"),
            seconds=round(seconds, 3),
            weights_gib=round(torch.cuda.memory_allocated() / 2**30, 2),
        )


def stage_720p(ours) -> None:
    x = inputs(31, 92, 160)
    apply_kernels(ours, "triton")
    for plan in ("resident", "streamed+ff-chunks-16384"):
        if time.perf_counter() - START > BUDGET:
            emit(stage="720p", skipped=plan)
            return
        handles = []
        if plan != "resident":
            ours.cpu()
            torch.cuda.empty_cache()
            handles = [apply_token_chunking(ours, 16384), apply_block_streaming(ours, StreamingConfig("cuda"))]
        torch.cuda.reset_peak_memory_stats()
        seconds, _ = timed(lambda: ours(x["latents"], x["timestep"], x["text_embeds"]), reps=1)
        emit(
            stage="1280x736x121 Q4_K one forward",
            plan=plan,
            seconds=round(seconds, 2),
            peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
        )
        for handle in handles:
            handle.remove()


def main() -> None:
    emit(device=torch.cuda.get_device_name(), torch=torch.__version__)
    ours, reference = bf16_models()
    x = inputs(13, 60, 104)
    stage_bf16(ours, reference, x)
    del reference
    stage_q4k(ours, x)
    if time.perf_counter() - START < BUDGET:
        stage_720p(ours)


if __name__ == "__main__":
    main()
