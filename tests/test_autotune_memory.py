"""Triton's autotuning buffer in the memory plan: its size read from the installed Triton, the transformer's linear
row counts the planner predicts against a forward's, and the buffer counted only in the stages where one of our
kernels autotunes (docs/memory.md, "Triton's autotuning buffer")."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import pytest
import torch
from test_planner import NARROW
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.kernels.tuning import SMALL_M, SPLIT_MIN_M, dequant_matmul_tunes
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.runtime.activation_memory import linear_rows
from motif_lite.runtime.budget_advice import _largest
from motif_lite.runtime.chunking import apply_token_chunking
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.runtime.kernels import attention_workspace_bytes, autotune_buffer_bytes
from motif_lite.runtime.planner import (
    PlannerInputs,
    TextEncoderPlacement,
    plan_memory,
    unplanned_peak_bytes,
)
from motif_lite.vae.config import WanVAEConfig

FULL = TransformerConfig()
VAE = WanVAEConfig()
Q4_K_M = int(1.13e9)  # the transformer as Q4_K_M GGUF: quantized linears
BF16 = 2 * 2_037_809_600
TEXT = int(8.6e9)
BUFFER = 200 * 2**20  # an autotuning buffer for the planner's tests (its size is Triton's: tests below)
MEMORY = Path(__file__).resolve().parent.parent / "docs/memory.md"


def test_the_buffer_size_is_what_the_driver_would_allocate_and_nothing_is_allocated():
    # A driver whose buffer is 3000 int32s: the size follows the driver, and on a machine without a GPU the
    # "cuda" tensor it asks for is never allocated (a real allocation would raise here).
    pytest.importorskip("triton")
    from motif_lite.kernels.launch import benchmark_buffer_bytes

    def empty_cache() -> torch.Tensor:
        return torch.empty(3000, dtype=torch.int32, device="cuda")

    assert benchmark_buffer_bytes(empty_cache) == 3000 * 4


def test_the_installed_tritons_buffer_is_the_size_docs_memory_gives():
    # The default asks the NVIDIA driver's method (here: no ROCm build); AMD's, which a ROCm build asks, agrees.
    pytest.importorskip("triton")
    from triton.backends import backends

    from motif_lite.kernels.launch import benchmark_buffer_bytes

    said = re.search(r"timed runs to empty the L2 cache: (\d+) MiB", " ".join(MEMORY.read_text().split()))
    assert benchmark_buffer_bytes() == int(said.group(1)) * 2**20
    amd = functools.partial(backends["amd"].driver.get_empty_cache_for_benchmark, None)
    assert benchmark_buffer_bytes(amd) == benchmark_buffer_bytes()
    assert autotune_buffer_bytes(True) == benchmark_buffer_bytes() and autotune_buffer_bytes(False) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_the_rows_the_planner_thinks_tuned_are_the_fused_gemms_autotuned_rows(dtype):
    # `dequant_matmul` takes its split path from SPLIT_MIN_M rows on and a fixed config up to SMALL_M rows or for
    # float32: the planner's rule must agree with the kernel module's own routing at every boundary.
    pytest.importorskip("triton")  # the kernel module's one optional import: a broken module of ours must fail
    from motif_lite.kernels import dequant_matmul as dm

    for rows in (1, SMALL_M, SMALL_M + 1, 128, SPLIT_MIN_M - 1, SPLIT_MIN_M, 4096):
        routed = not dm.takes_split(rows, dtype) and rows > dm.SMALL_M and dtype != torch.float32
        assert dequant_matmul_tunes(rows, dtype.itemsize) == routed, rows


def recorded_rows(model: MotifVideoTransformer, chunk: int | None, frames: int, text: int, image: int, batch: int):
    """The row counts of every linear call of one forward (batch x tokens per call)."""
    rows = set()
    hooks = [
        module.register_forward_pre_hook(lambda _, args: rows.add(args[0].numel() // args[0].shape[-1]))
        for module in model.modules()
        if isinstance(module, nn.Linear)
    ]
    handle = apply_token_chunking(model, chunk) if chunk else None
    config = model.config
    try:
        with torch.no_grad():
            model(
                torch.randn(batch, 33, frames, 16, 32), torch.full((batch,), 500.0),
                torch.randn(batch, text, config.text_embed_dim), None,
                torch.randn(batch, image, config.image_embed_dim) if image else None,
            )  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
        if handle:
            handle.remove()
    return rows


@pytest.mark.parametrize(
    ("chunk", "frames", "text", "image", "batch", "layout"),
    [
        (None, 2, 40, 0, 1, "diffusers"),
        (64, 2, 40, 0, 1, "diffusers"),
        (100, 3, 40, 30, 2, "diffusers"),  # the last video piece (84 tokens) and the whole context in one piece
        (48, 1, 40, 30, 1, "original+dual"),  # the last context piece (22 tokens)
        (None, 1, 40, 30, 2, "pr"),
    ],
)
def test_the_linear_rows_the_planner_predicts_are_a_forwards(chunk, frames, text, image, batch, layout):
    layout, dual = layout.removesuffix("+dual"), layout.endswith("+dual")
    config = dataclasses.replace(NARROW, cross_attention_layout=layout, enable_text_cross_attention_dual=dual)
    torch.manual_seed(0)
    model = MotifVideoTransformer(config).eval().requires_grad_(False)
    tokens = frames * 16 * 32 // 4  # 2x2 patches of the latent
    assert linear_rows(tokens, chunk, batch, text, image) == recorded_rows(model, chunk, frames, text, image, batch)


def denoise_peak(width, height, frames, autotune_bytes, weights=Q4_K_M, attention="exact", **kw) -> int:
    """The denoise stage's peak of the all-resident plan, one row per forward."""
    workspace = functools.partial(
        attention_workspace_bytes, attention, FULL, video_tokens(width, height, frames, FULL, VAE)
    )
    inputs = PlannerInputs(
        width, height, frames, FULL, weights, TEXT, VAE, 1, attention_workspace_bytes=workspace,
        autotune_bytes=autotune_bytes, **kw,
    )  # fmt: skip
    plan = plan_memory(inputs, None)
    return next(stage for stage in plan.stages if stage.name == "denoise").peak_bytes


@pytest.mark.parametrize(
    ("size", "weights", "attention", "dtype", "tunes"),
    [
        ((224, 224, 1), Q4_K_M, "exact", torch.bfloat16, True),  # 196 video tokens: the fused GEMM tunes
        ((256, 256, 1), Q4_K_M, "exact", torch.bfloat16, False),  # 256 tokens: the split path, nothing tuned
        ((224, 224, 1), Q4_K_M, "exact", torch.float32, False),  # float32: a fixed config
        ((224, 224, 1), BF16, "exact", torch.bfloat16, False),  # no quantized linears
        ((1280, 736, 121), Q4_K_M, "exact", torch.bfloat16, False),  # whole streams of 114,080 tokens and more
        ((1280, 736, 121), BF16, "int8", torch.bfloat16, True),  # 8-bit attention tunes at its first call
    ],
)
def test_the_denoise_stage_counts_the_buffer_where_a_kernel_autotunes(size, weights, attention, dtype, tunes):
    added = denoise_peak(*size, BUFFER, weights, attention, activation_dtype=dtype) - denoise_peak(
        *size, 0, weights, attention, activation_dtype=dtype
    )
    assert added == (BUFFER if tunes else 0)


@pytest.mark.parametrize("weights", [Q4_K_M, BF16])
def test_the_denoise_stage_counts_the_buffer_where_the_exact_attention_can_be_our_triton_kernel(weights):
    # Before: only 8-bit attention and the fused GEMM counted it, although auto's trial (the default backend on
    # CUDA) autotunes our dense Triton attention in the attention phase, the denoise stage's peak.
    def added(triton_attention: bool) -> int:
        kw = dict(triton_attention=triton_attention)
        return denoise_peak(1280, 736, 121, BUFFER, weights, **kw) - denoise_peak(1280, 736, 121, 0, weights, **kw)

    assert added(True) == BUFFER and added(False) == 0


def test_a_dry_run_counts_the_buffer_unless_the_attention_backend_is_one_of_pytorchs(no_network, no_weights, capsys):
    # `--attention-backend` reaches the plan: `auto` (the default) times our dense Triton attention at the first
    # step and `triton` runs it, so both count the buffer; `sdpa` never runs our kernel (docs/memory.md, "Triton's
    # autotuning buffer"). At --vram 6 with Q4_K_M nothing else autotunes in the denoise stage, the peak.
    from motif_lite import cli

    def peak(*flags: str) -> float:
        args = ["run", "--dry-run", "--device", "cuda", "--vram", "6", "--gguf", "Q4_K_M", "-p", "x", *flags]
        assert cli.main(args) == 0
        return float(re.search(r"device peak (\S+) GiB allocated", capsys.readouterr().out).group(1))

    by_pytorch = peak("--attention-backend", "sdpa")
    assert (
        peak()
        == peak("--attention-backend", "triton")
        == pytest.approx(by_pytorch + autotune_buffer_bytes(True) / 2**30, abs=0.011)
    )


@pytest.mark.parametrize(
    ("quantized", "text_dtype", "tunes"),
    [
        (True, torch.bfloat16, True),
        (True, torch.float16, True),
        (True, torch.float32, False),  # float32 prompts: the fused GEMM's fixed config, nothing tuned
        (False, torch.bfloat16, False),  # no quantized linears: cuBLAS
    ],
)
def test_the_encode_stage_counts_the_buffer_where_the_text_encoders_fused_gemm_tunes(quantized, text_dtype, tunes):
    # The text encoder's linears take the prompt's tokens as rows: up to 512 of them, so a 16-bit encoder meets the
    # tuned row counts (SMALL_M, SPLIT_MIN_M) for some prompt, a float32 one never.

    def encode_peak(autotune_bytes: int) -> int:
        inputs = PlannerInputs(
            832, 480, 49, FULL, Q4_K_M, TEXT, VAE, 1, text_encoder_quantized=quantized,
            text_encoder_dtype=text_dtype, autotune_bytes=autotune_bytes,
        )  # fmt: skip
        plan = plan_memory(inputs, None)
        return next(stage for stage in plan.stages if stage.name == "encode").peak_bytes

    assert encode_peak(BUFFER) - encode_peak(0) == (BUFFER if tunes else 0)


@pytest.mark.parametrize("quantized", [True, False])
def test_a_run_without_a_plan_counts_a_quantized_text_encoders_buffer_as_a_plan_does(quantized):
    # A short clip, where the text encoder's pass sets the peak: without a plan everything is on the device, so the
    # estimate is the all-resident plan's encode stage, the quantized text encoder's tuning buffer included.
    kw = dict(text_encoder_quantized=quantized, autotune_bytes=BUFFER)
    inputs = PlannerInputs(480, 272, 9, FULL, BF16, TEXT, VAE, 1, **kw)
    planned = plan_memory(inputs, None)
    encode = next(stage for stage in planned.stages if stage.name == "encode")
    assert encode.peak_bytes == planned.peak_bytes
    assert unplanned_peak_bytes(inputs) == encode.peak_bytes


def test_a_quantized_text_encoder_run_on_the_cpu_adds_no_buffer_to_the_encode_stage():
    # At 2.27 GiB only the plan with the text encoder on the CPU fits: its fused GEMM does not run on the GPU.
    def encode_stage(autotune_bytes: int):
        inputs = PlannerInputs(
            832, 480, 49, FULL, Q4_K_M, TEXT, VAE, 1, text_encoder_quantized=True, autotune_bytes=autotune_bytes
        )
        plan = plan_memory(inputs, int(2.27 * 2**30))
        assert plan.text_placement is TextEncoderPlacement.CPU
        return next(stage for stage in plan.stages if stage.name == "encode").peak_bytes

    assert encode_stage(BUFFER) == encode_stage(0)


def test_the_largest_size_that_fits_is_found_when_only_the_smallest_meets_the_tuning_buffer():
    # Sizes 0..5 fit without the buffer; the buffer comes with size 0's token count only, which then does not fit.
    def fits(i: int, tuning: bool) -> bool:
        return i <= 5 and not (tuning and i == 0)

    assert _largest(fits, 9) == 5
    assert _largest(lambda i, tuning: fits(i, tuning) and i < 3, 9) == 2
    assert _largest(lambda i, tuning: not tuning and i <= 5, 9) is None  # the buffer never fits


def test_the_smallest_size_is_named_when_it_is_the_only_one_that_fits_with_the_tuning_buffer():
    # Sizes 0..5 fit without the buffer, which every size but the smallest brings: the walk down from 5 ends at 0.
    def fits(i: int, tuning: bool) -> bool:
        return i <= 5 and not (tuning and i > 0)

    assert _largest(fits, 9) == 0
    assert _largest(lambda i, tuning: i == 0, 9) == 0  # only the smallest fits at all
