"""Whole text-to-video at 1280x736x121 inside a VRAM budget, on CUDA (skipped without it; slow: minutes each):

    pytest bench/bench_gpu_t2v.py -s              # --vram 8 with 2 steps, and the 7 GiB plan with 1 step

Every component at full size with random weights, built in memory (no checkpoint files): the 2.04B transformer
with random Q4_K packed blocks in every block linear (~Q4_K_M's size), the 4.3B T5Gemma2 encoder with the
official config (text + SigLIP tower, bf16), the Wan2.1 VAE (bf16). `plan_memory` picks the plan for the budget,
`apply_plan` installs it, and `MotifVideoPipeline.generate` runs encode -> denoise (Euler + official APG, so two
transformer calls per step) -> streamed decode into a PNG sequence under a temporary folder. Prints the plan and
adds one row per stage to the report's table "Whole T2V on the GPU": time and peak
`torch.cuda.max_memory_allocated` per stage with the planner's estimate beside it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from full_size import random_tensor
from gguf import GGMLQuantizationType
from helpers import quantized_copy, swap
from tiny_text import _save_tokenizer
from transformers import AutoTokenizer, T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.config import TransformerConfig
from motif_lite.encoders.text import TextEncoder
from motif_lite.pipeline import MotifVideoPipeline
from motif_lite.request import GenerationRequest
from motif_lite.runtime.kernels import apply_kernels
from motif_lite.runtime.planner import GiB, PlannerInputs, apply_plan, plan_memory
from motif_lite.vae import WanVAE, WanVAEConfig
from motif_lite.weights.loader import assign_weights, build_model

pytestmark = [pytest.mark.cuda, pytest.mark.slow]
DEVICE = "cuda"
WIDTH, HEIGHT, FRAMES = 1280, 736, 121


def transformer_q4k() -> tuple[torch.nn.Module, int]:
    """The full architecture: random bf16 tensors made on DEVICE, block linears swapped for random Q4_K (on the CPU,
    where the plan streams them from)."""
    model = build_model(TransformerConfig())
    g = torch.Generator(device=DEVICE).manual_seed(0)
    with torch.device(DEVICE):
        state = {n: random_tensor(n, t.shape, g).bfloat16().cpu() for n, t in model.state_dict().items()}
    model = assign_weights(model, state)
    swap(model, quantized_copy(model, GGMLQuantizationType.Q4_K, "cpu"))
    nbytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return model.eval(), nbytes


def text_encoder_full(folder: Path, text_layers: int = 34, vision_layers: int = 27) -> tuple[TextEncoder, int]:
    """T5Gemma2Encoder with the official config (34 text layers 2560 wide, 27 SigLIP layers), random init on the
    GPU."""
    layer_types = [("full_attention" if i % 6 == 5 else "sliding_attention") for i in range(text_layers)]
    text = dict(
        vocab_size=262144, hidden_size=2560, intermediate_size=10240, num_hidden_layers=text_layers,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, rms_norm_eps=1e-6,
        sliding_window=1024,
        layer_types=layer_types, pad_token_id=0, eos_token_id=1, bos_token_id=2, max_position_embeddings=131072,
        dropout_rate=0.0,
    )  # fmt: skip
    vision = dict(
        model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=vision_layers,
        num_attention_heads=16, image_size=896, patch_size=14, layer_norm_eps=1e-6, vision_use_head=False,
    )  # fmt: skip
    config = T5Gemma2EncoderConfig(text_config=text, vision_config=vision, mm_tokens_per_image=256)
    with torch.device(DEVICE):
        model = T5Gemma2Encoder._from_config(config, dtype=torch.bfloat16)
    model = model.cpu().eval()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    _save_tokenizer(folder / "tokenizer")  # character-level stand-in for the Gemma tokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return TextEncoder(model, tokenizer), nbytes


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t2v")
    transformer, weight_bytes = transformer_q4k()
    apply_kernels(transformer, "auto")
    text_encoder, text_bytes = text_encoder_full(folder)
    vae = WanVAE(WanVAEConfig()).to(torch.bfloat16).eval()
    return folder, transformer, weight_bytes, text_encoder, text_bytes, vae


@pytest.mark.parametrize(("vram", "steps"), [(8.0, 2), (7.0, 1)])
def test_t2v_720p_in_budget(bench_report, components, vram: float, steps: int) -> None:
    folder, transformer, weight_bytes, text_encoder, text_bytes, vae = components
    inputs = PlannerInputs(
        WIDTH, HEIGHT, FRAMES, transformer.config, weight_bytes, text_bytes, vae.config, cfg_batch=1,
        vae_dtype=torch.bfloat16, fused_norms=True,
    )  # fmt: skip
    plan = plan_memory(inputs, int(vram * GiB), device=DEVICE)
    print(plan.describe(), flush=True)
    handle = apply_plan(transformer, vae, plan)
    pipe = MotifVideoPipeline(
        transformer, text_encoder, vae, torch.device(DEVICE), torch.bfloat16, plan_handle=handle
    )  # official settings
    pipe.text_placement = plan.text_placement
    pipe.vae_mode = pipe.plan_handle.vae
    out_dir = Path(tempfile.mkdtemp(dir=folder))
    request = GenerationRequest(
        "a red fox runs through snow", width=WIDTH, height=HEIGHT, frames=FRAMES, steps=steps, seed=0,
        output=out_dir / "f_%03d.png",
    )  # fmt: skip
    try:
        result = pipe.generate(request)
    finally:
        pipe.plan_handle.remove()
    planned = {s.name: s.peak_bytes / GiB for s in plan.stages}
    run = f"{WIDTH}x{HEIGHT}x{FRAMES}, {steps} steps (Euler + APG), budget {vram} GiB"
    for stage, seconds in result.timings.items():
        peak = result.stage_peaks.get(stage)
        bench_report.add("Whole T2V on the GPU (Q4_K transformer, official-size text encoder, bf16 VAE)", run=run,
                         plan=f"rank {plan.ladder_index + 1}, resident blocks {plan.resident_blocks}, token chunk "
                         f"{plan.token_chunk}, text {plan.text_placement.value}, VAE bands {plan.vae.bands}",
                         stage=stage, seconds=seconds, seconds_per_step=seconds / steps if stage == "denoise" else None,
                         peak_gib=None if peak is None else peak / GiB, planned_gib=planned.get(stage))  # fmt: skip
    assert len(list(out_dir.glob("f_*.png"))) == FRAMES
    assert max(result.stage_peaks.values()) <= vram * GiB
