"""What Motif-Video 2B needs, computed from the official architecture (counted, not timed; ~10 s):

    pytest bench/bench_sizes.py -s      # report tables "Sizes: ..."
    python bench/bench_sizes.py         # the same, printed

Prints the parameter count and size of each component (models built on the `meta` device: no memory, no weights),
the size of our GGUF recipes (exact, from the recipe's type per tensor), the memory planner's estimated GPU
peak at a few sizes: with everything resident (the fastest plan) and the smallest plan (everything streamed), and
its estimated host peak (RSS) in the plans `--vram 6` / `--vram 4` pick, with a bf16 or a Q8_0 text encoder.
These are the README's "What you need" figures; docs/benchmarks.md compares the estimates with measured peaks.
"""

from __future__ import annotations

import torch
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.config import TransformerConfig
from motif_lite.errors import MotifLiteError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.quantize import get_recipe, plan_types
from motif_lite.quantize.text_recipes import get_text_recipe, plan_text_types
from motif_lite.runtime.kernels import autotune_buffer_bytes
from motif_lite.runtime.planner import PlannerInputs, plan_memory
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE
from motif_lite.weights.dequant import packed_nbytes

GiB = 2**30
PRESETS = [(1280, 736, 121), (1280, 736, 65), (832, 480, 121), (832, 480, 65)]
RECIPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M"]
HOST_PLANS = [(1280, 736, 121, 6), (832, 480, 121, 4)]  # size and --vram of the README's host figures


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


def sizes() -> dict[str, list[dict]]:
    """Rows of the three tables: components, GGUF recipes, estimated GPU peaks."""
    with torch.device("meta"):
        transformer = MotifVideoTransformer(TransformerConfig())
        vae = WanVAE(WanVAEConfig())
    text_encoder = official_text_encoder()
    counts = {"transformer": numel(transformer), "text encoder": numel(text_encoder), "VAE": numel(vae)}
    components = [
        dict(component=name, parameters=n, bf16_GB=round(2 * n / 1e9, 2), bf16_GiB=round(2 * n / GiB, 2),
             fp32_GB=round(4 * n / 1e9, 2))
        for name, n in counts.items()
    ]  # fmt: skip
    shapes = {name: tuple(t.shape) for name, t in transformer.state_dict().items()}
    recipe_bytes = {}
    for recipe in RECIPES:
        plan = plan_types(shapes, get_recipe(recipe), [])
        recipe_bytes[recipe] = sum(packed_nbytes(qtype, shapes[name]) for name, qtype in plan.items())
    recipes = [dict(recipe=r, file_GB=round(b / 1e9, 2)) for r, b in recipe_bytes.items()]
    text_shapes = {name: tuple(t.shape) for name, t in text_encoder.state_dict().items()}
    text_plan = plan_text_types(text_shapes, get_text_recipe("Q8_0"))
    text_bytes = {"bf16": 2 * counts["text encoder"]}
    text_bytes["Q8_0"] = sum(packed_nbytes(qtype, text_shapes[name]) for name, qtype in text_plan.items())
    recipes.append(dict(recipe="text encoder Q8_0", file_GB=round(text_bytes["Q8_0"] / 1e9, 2)))
    weights = {"Q4_K_M": recipe_bytes["Q4_K_M"], "bf16": 2 * counts["transformer"]}
    peaks = []
    for width, height, frames in PRESETS:
        for kind, weight_bytes in weights.items():
            resident, smallest = _peak(width, height, frames, weight_bytes, 2 * counts["text encoder"])
            row = dict(size=f"{width}x{height}x{frames}", transformer=kind, all_resident_GiB=round(resident, 2))
            peaks.append({**row, "smallest_plan_GiB": round(smallest, 2)})
    hosts = []
    for width, height, frames, vram in HOST_PLANS:
        for kind, nbytes in text_bytes.items():
            host = _plan(width, height, frames, recipe_bytes["Q4_K_M"], nbytes, int(vram * GiB)).host
            hosts.append(dict(size=f"{width}x{height}x{frames}", vram_GiB=vram, text_encoder=kind,
                              loading_GiB=_gib(host.load_bytes), generating_GiB=_gib(host.run_bytes),
                              page_locked_GiB=_gib(host.pinned_bytes)))  # fmt: skip
    return {"Sizes: components": components, "Sizes: GGUF recipes": recipes, "Sizes: estimated GPU peak": peaks,
            "Sizes: estimated host peak (Q4_K_M transformer)": hosts}  # fmt: skip


def test_sizes(bench_report):
    tables = sizes()
    for title, rows in tables.items():
        for row in rows:
            bench_report.add(title, **row)
    print_tables(tables)


def print_tables(tables: dict[str, list[dict]]) -> None:
    for title, rows in tables.items():
        print(f"\n{title}")
        for row in rows:
            cells = (f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}" for key, value in row.items())
            print("  " + ", ".join(cells))


def _gib(nbytes: int) -> float:
    return round(nbytes / GiB, 2)


def _plan(width: int, height: int, frames: int, weight_bytes: int, text_bytes: int, budget: int | None):
    """The planner's fastest plan within `budget` device bytes (None: everything resident) on CUDA, as a default
    run plans it: our Triton kernels, and `auto` attention, whose trial may autotune our Triton attention."""
    inputs = PlannerInputs(
        width, height, frames, TransformerConfig(), weight_bytes, text_bytes, WanVAEConfig(), cfg_batch=1,
        vae_dtype=torch.bfloat16, fused_norms=True, autotune_bytes=autotune_buffer_bytes(True), triton_attention=True,
    )  # fmt: skip
    return plan_memory(inputs, budget, device="cuda")


def _peak(width: int, height: int, frames: int, weight_bytes: int, text_bytes: int) -> tuple[float, float]:
    """The planner's estimated peak in GiB with everything resident, and of its smallest plan."""
    resident = _plan(width, height, frames, weight_bytes, text_bytes, None).peak_bytes / GiB
    try:
        _plan(width, height, frames, weight_bytes, text_bytes, 1)
    except MotifLiteError as exc:  # names the smallest possible peak
        return resident, float(str(exc).split("needs at least ")[1].split(" GiB")[0])
    raise AssertionError("a 1-byte budget cannot fit")


if __name__ == "__main__":
    print_tables(sizes())
