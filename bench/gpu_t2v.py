"""Whole text-to-video at 1280x736x121 inside a VRAM budget, on CUDA (not a pytest file):

    python bench/gpu_t2v.py OUT.jsonl [--vram 8] [--steps 2]

Every component at full size with random weights, built in memory (no checkpoint files): the 2.04B transformer
with random Q4_K packed blocks in every block linear (~Q4_K_M's size), the 4.3B T5Gemma2 encoder with the
official config (text + SigLIP tower, bf16), the Wan2.1 VAE (bf16). `plan_memory` picks the plan for the budget,
`apply_plan` installs it, and `MotifVideoPipeline.generate` runs encode -> denoise (Euler + official APG, so two
transformer calls per step) -> streamed decode into a PNG sequence under /tmp. Prints the plan and one JSON line
with time and peak `torch.cuda.max_memory_allocated` per stage (the planner's estimates beside them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from gguf import GGMLQuantizationType
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gguf_full, also under `python -P`
from bench_gguf_full import quantized_copy, swap  # noqa: E402
from full_size import random_tensor  # noqa: E402
from tiny_text import _save_tokenizer  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.encoders.text import TextEncoder  # noqa: E402
from motif_lite.pipeline import MotifVideoPipeline  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.runtime.kernels import apply_kernels  # noqa: E402
from motif_lite.runtime.planner import GiB, apply_plan, plan_memory  # noqa: E402
from motif_lite.vae import WanVAE, WanVAEConfig  # noqa: E402
from motif_lite.weights.loader import assign_weights, build_model  # noqa: E402

START = time.perf_counter()
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def emit(out: Path, **record) -> None:
    record["elapsed_s"] = round(time.perf_counter() - START, 1)
    line = json.dumps(record)
    print(line, flush=True)
    with out.open("a") as f:
        f.write(line + "\n")


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
    """T5Gemma2Encoder with the official text_encoder/config.json's sizes, random init on the GPU."""
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
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return TextEncoder(model, tokenizer), nbytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--vram", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="CPU check of this script: 64x64x5, 2+1 text layers")
    args = parser.parse_args()
    width, height, frames = (64, 64, 5) if args.smoke else (1280, 736, 121)
    folder = Path(tempfile.mkdtemp())
    transformer, weight_bytes = transformer_q4k()
    apply_kernels(transformer, "auto")
    text_encoder, text_bytes = text_encoder_full(folder, *((2, 1) if args.smoke else (34, 27)))
    vae = WanVAE(WanVAEConfig()).to(torch.bfloat16).eval()
    emit(args.out, stage="built", transformer_gib=weight_bytes / GiB, text_encoder_gib=text_bytes / GiB)
    plan = plan_memory(
        width, height, frames, transformer.config, weight_bytes, text_bytes, vae.config, int(args.vram * GiB),
        cfg_batch=1, device=DEVICE, vae_dtype=torch.bfloat16, fused_norms=DEVICE == "cuda",
    )  # fmt: skip
    print(plan.describe(), flush=True)
    pipe = MotifVideoPipeline(transformer, text_encoder, vae, torch.device(DEVICE), torch.bfloat16, 15.0)
    pipe.text_placement = plan.text_placement
    pipe.plan_handle = apply_plan(transformer, vae, plan)
    pipe.vae_tile = pipe.plan_handle.vae_tile
    pipe.vae_frame_by_frame = pipe.plan_handle.vae_frame_by_frame
    pipe.vae_bands = pipe.plan_handle.vae_bands
    out_dir = folder / "frames"
    out_dir.mkdir()
    request = GenerationRequest(
        "a red fox runs through snow", width=width, height=height, frames=frames, steps=args.steps, seed=0,
        output=out_dir / "f_%03d.png",
    )  # fmt: skip
    result = pipe.generate(request)
    planned = {s.name: round(s.peak_bytes / GiB, 2) for s in plan.stages}
    emit(
        args.out,
        stage=f"T2V {width}x{height}x{frames}, {args.steps} steps (Euler + APG), budget {args.vram} GiB, {DEVICE}",
        plan_rank=plan.rank + 1,
        resident_blocks=plan.resident_blocks,
        ff_chunk=plan.ff_chunk_tokens,
        text=plan.text_placement.value,
        seconds={k: round(v, 2) for k, v in result.timings.items()},
        seconds_per_step=round(result.timings["denoise"] / args.steps, 2),
        peak_gib={k: round(v / GiB, 2) for k, v in result.stage_peaks.items()},
        decode_reserved_gib=round(torch.cuda.max_memory_reserved() / GiB, 2) if DEVICE == "cuda" else None,
        planned_gib=planned,
        frames_written=len(list(out_dir.glob("f_*.png"))),
    )


if __name__ == "__main__":
    main()
