"""What Motif-Video 2B needs, computed from the official architecture (not a pytest file): python bench/sizes.py

Prints the parameter count and size of each component (models built on the `meta` device: no memory, no weights),
the size of our GGUF recipes (exact, from the recipe's type per tensor), and the memory planner's estimated GPU
peak at a few sizes: with everything resident (the fastest plan) and the smallest plan (everything streamed).
These are the README's "What you need" figures; docs/benchmarks.md compares the estimates with measured peaks.
"""

from __future__ import annotations

import math

import torch
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.config import TransformerConfig
from motif_lite.errors import MotifLiteError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.quantize import get_recipe, plan_types
from motif_lite.runtime.planner import plan_memory
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE
from motif_lite.weights.dequant import packed_nbytes

GiB = 2**30
PRESETS = [(1280, 736, 121), (1280, 736, 65), (832, 480, 121), (832, 480, 65)]
RECIPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M"]


def official_text_encoder() -> T5Gemma2Encoder:
    """The T5Gemma2 encoder of the official text_encoder/config.json: 34 text layers (2560 wide, MLP 10240, 8 heads
    and 4 KV heads of 256, a 262,144-token vocabulary) and the 27-layer SigLIP tower (1152 wide)."""
    layer_types = [("full_attention" if i % 6 == 5 else "sliding_attention") for i in range(34)]
    text = dict(
        vocab_size=262144, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, sliding_window=1024, layer_types=layer_types,
        dropout_rate=0.0,
    )  # fmt: skip
    vision = dict(
        model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
        num_attention_heads=16, image_size=896, patch_size=14, vision_use_head=False,
    )  # fmt: skip
    config = T5Gemma2EncoderConfig(text_config=text, vision_config=vision, mm_tokens_per_image=256)
    with torch.device("meta"):
        return T5Gemma2Encoder(config)


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    with torch.device("meta"):
        transformer = MotifVideoTransformer(TransformerConfig())
        vae = WanVAE(WanVAEConfig())
    text = official_text_encoder()
    counts = {"transformer": numel(transformer), "text encoder": numel(text), "VAE": numel(vae)}
    print("component      parameters   bf16 GB  bf16 GiB  fp32 GB")
    for name, n in counts.items():
        print(f"{name:<13} {n:>12,} {2 * n / 1e9:>8.2f} {2 * n / GiB:>8.2f} {4 * n / 1e9:>8.2f}")
    shapes = {name: tuple(t.shape) for name, t in transformer.state_dict().items()}
    print("\nGGUF recipe   file GB (tensor data)")
    recipe_bytes = {}
    for recipe in RECIPES:
        plan = plan_types(shapes, get_recipe(recipe), [])
        recipe_bytes[recipe] = sum(packed_nbytes(qtype, shapes[name]) for name, qtype in plan.items())
        print(f"{recipe:<13} {recipe_bytes[recipe] / 1e9:.2f}")
    print("\nestimated GPU peak, GiB: all resident (fastest plan) / smallest plan (everything streamed)")
    weights = {"bf16": 2 * counts["transformer"], "Q4_K_M": recipe_bytes["Q4_K_M"]}
    for width, height, frames in PRESETS:
        cells = [f"{kind} {_peak(width, height, frames, w, 2 * counts['text encoder'])}" for kind, w in weights.items()]
        print(f"{width}x{height}x{frames}: " + " | ".join(cells))


def _peak(width: int, height: int, frames: int, weight_bytes: int, text_bytes: int) -> str:
    def plan(budget: int | None):
        return plan_memory(
            width, height, frames, TransformerConfig(), weight_bytes, text_bytes, WanVAEConfig(), budget,
            cfg_batch=1, device="cuda", vae_dtype=torch.bfloat16, fused_norms=True,
        )  # fmt: skip

    resident = plan(None).peak_bytes
    try:
        plan(1)
    except MotifLiteError as exc:  # names the smallest possible peak
        smallest = float(str(exc).split("needs at least ")[1].split(" GiB")[0])
    return f"{resident / GiB:.2f} / {smallest:.2f}" if math.isfinite(smallest) else f"{resident / GiB:.2f}"


if __name__ == "__main__":
    main()
