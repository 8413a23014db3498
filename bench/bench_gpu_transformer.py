"""The full 2.04B transformer on a GPU: ours (torch ops, Triton ops) vs diffusers, Q4_K, and 720p memory.

    pytest bench/bench_gpu_transformer.py -s        # CUDA only (skipped without it); ~2 min on an H100

Random bf16 weights generated on the GPU, shared by both models; 128 text tokens, timestep 700; mean of 2 timed
forwards after one warm-up. Rows of the report's table "Transformer on the GPU":
  1. bf16 forward at 832x480x49 (20,280 video tokens): diffusers vs ours (torch ops) vs ours (Triton ops), with
     the relative difference to diffusers' bf16 output, and a row "accuracy": each path's relative error against
     diffusers in float32 (a float32 copy of the same weights, one forward), asserted as tests/test_cuda.py does
     at the mid size (tests/bf16_bounds.py: each path at most 1.5x diffusers-bf16's own error, the two paths apart
     at most 3x), so the attention configs tuned at Motif's length (LQ_BUCKET 16384) are checked too. The speeds
     are report-only;
  2. the same with random Q4_K packed block linears: torch dequantization vs the Triton dequant paths;
  3. one forward at 1280x736x121 (114,080 tokens) with Q4_K weights: all resident vs every block streamed + FF
     chunks of 16384 tokens, peak `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import pytest
import torch
from bf16_bounds import bf16_bound_failures, bf16_errors, rel
from full_size import random_tensor, reference_on_meta, reference_sharing
from gguf import GGMLQuantizationType
from helpers import median_seconds, peak_gib, quantized_copy, rel_diff, reset_peak, swap

from motif_lite.config import TransformerConfig
from motif_lite.model.ops import TORCH_OPS
from motif_lite.runtime.chunking import apply_token_chunking
from motif_lite.runtime.kernels import apply_kernels
from motif_lite.runtime.streaming import StreamingConfig, apply_block_streaming
from motif_lite.weights.loader import assign_weights, build_model

pytestmark = pytest.mark.cuda
TABLE = "Transformer on the GPU (full 2.04B architecture, random weights, 128 text tokens)"


def inputs(frames: int, height: int, width: int, text: int = 128) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", generator=g)
    return dict(
        latents=torch.randn(1, 33, frames, height, width, **kw).bfloat16(),
        timestep=torch.tensor([700.0], device="cuda"),
        text_embeds=torch.randn(1, text, 2560, **kw).bfloat16(),
    )


def forward(model, x: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"])


def reference_forward(reference, x: dict) -> torch.Tensor:
    """diffusers' output tensor (its forward returns an output object)."""
    with torch.no_grad():
        return reference(x["latents"], x["timestep"], x["text_embeds"]).sample


def accuracy(exact: torch.Tensor, reference_bf16: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict:
    """The "accuracy" row: diffusers-bf16's own error against its float32 output `exact`, each of our paths'
    (`outputs`: "torch", "triton") and theirs apart, and the bounds they break (tests/bf16_bounds.py; none: "")."""
    errors = dict(reference_bf16=rel(reference_bf16, exact), **bf16_errors(exact, outputs["torch"], outputs["triton"]))
    return dict(errors, failures="; ".join(bf16_bound_failures(errors, errors["reference_bf16"])))


@pytest.fixture(scope="module")
def models():
    """(ours, diffusers) holding the same random bf16 tensors on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(0)
    meta = reference_on_meta()
    with torch.device("cuda"):
        state = {n: random_tensor(n, t.shape, g).bfloat16() for n, t in meta.state_dict().items()}
    ours = assign_weights(build_model(TransformerConfig.from_dict(dict(meta.config))), state)
    return ours, reference_sharing(state)


@pytest.fixture(scope="module")
def q4k_model(models):
    """Ours with random Q4_K packed blocks in every block linear (the diffusers model keeps the bf16 ones)."""
    ours, _ = models
    swap(ours, quantized_copy(ours, GGMLQuantizationType.Q4_K, "cuda"))
    return ours


def test_bf16_forward_832x480x49(bench_report, models) -> None:
    ours, reference = models
    x = inputs(13, 60, 104)
    ref_out = reference_forward(reference, x)
    seconds_ref = median_seconds(lambda: reference_forward(reference, x), reps=2)
    bench_report.add(TABLE, case="bf16 832x480x49", impl="diffusers", seconds=seconds_ref, vs_diffusers=1.0)
    outputs = {}
    for backend in ("torch", "triton"):
        apply_kernels(ours, backend)
        seconds = median_seconds(lambda: forward(ours, x), reps=2)
        outputs[backend] = forward(ours, x)
        diff = rel_diff(outputs[backend], ref_out)
        bench_report.add(TABLE, case="bf16 832x480x49", impl=f"ours, {backend} ops", seconds=seconds,
                         vs_diffusers=seconds / seconds_ref, rel_diff_vs_diffusers=diff)  # fmt: skip
    ours.ops = TORCH_OPS
    # diffusers in float32 on a float32 copy of the same weights (8 GB, let go after its one forward).
    x32 = {name: t.float() for name, t in x.items()}
    exact = reference_forward(reference_sharing({n: t.float() for n, t in reference.state_dict().items()}), x32)
    row = accuracy(exact, ref_out, outputs)
    bench_report.add(TABLE, case="bf16 832x480x49", impl="accuracy vs diffusers float32", **row)
    assert row["failures"] == "", row


def test_q4k_forward_832x480x49(bench_report, q4k_model) -> None:
    x = inputs(13, 60, 104)
    for backend, fused in (("torch", False), ("triton", False), ("triton", True)):  # fused: Triton dequant_matmul
        apply_kernels(q4k_model, backend, triton_dequant=fused)
        seconds = median_seconds(lambda: forward(q4k_model, x), reps=2)
        impl = f"ours, {backend} ops, " + ("Triton dequant" if fused else "torch dequant")
        bench_report.add(TABLE, case="Q4_K 832x480x49", impl=impl, seconds=seconds,
                         weights_gib=torch.cuda.memory_allocated() / 2**30)  # fmt: skip


@pytest.mark.parametrize("plan", ["resident", "streamed+ff-chunks-16384"])
def test_q4k_forward_720p_memory(bench_report, q4k_model, plan: str) -> None:
    x = inputs(31, 92, 160)
    apply_kernels(q4k_model, "triton")
    handles = []
    if plan == "resident":
        q4k_model.cuda()
    else:
        q4k_model.cpu()
        torch.cuda.empty_cache()
        handles = [apply_token_chunking(q4k_model, 16384), apply_block_streaming(q4k_model, StreamingConfig("cuda"))]
    reset_peak()
    seconds = median_seconds(lambda: forward(q4k_model, x), reps=1)
    bench_report.add(TABLE, case="1280x736x121 Q4_K, one forward", impl=plan, seconds=seconds, **peak_gib())
    for handle in handles:
        handle.remove()
