"""The quantized T5Gemma2 text encoder at the official architecture, random weights: embedding error per recipe,
the SigLIP tower's error per weight type, and the host memory of loading and encoding a GGUF text encoder.

    pytest bench/bench_text_encoder_quant.py -s                       # slow: ~40 min text, ~15 min SigLIP on 2 cores
    pytest bench/bench_text_encoder_quant.py -s -k rss                # host memory only (~5 min, ~2 GB disk in /tmp)
    MOTIF_TE_LAYERS=8 pytest bench/bench_text_encoder_quant.py -s -k text   # fewer text layers (faster)
    MOTIF_TE_RSS_LAYERS=34 pytest bench/bench_text_encoder_quant.py -s -k rss  # the full-depth file (~5 GB disk)

Error (`test_text_encoder_error`, `test_vision_tower_error`): the official config (tests/full_size_text.py) built
layer by layer so that memory stays near one layer (~2 GB): each layer gets random weights (Gaussian, std 0.02;
norm gains 1 + 0.02 N(0,1)) rounded to bf16 (the checkpoint's dtype), then runs once with those weights and once per
recipe with its quantized-then-dequantized weights (the types `plan_text_types` gives that tensor), all in float32,
so the figures are the weights' quantization error alone. The token table is quantized row by row, as in the file
(only the rows the prompt reads are made). "bf16 compute" runs the bf16 weights in bfloat16: the error of the
unquantized encoder on a bf16 GPU, for scale. Real weights have heavier tails than these Gaussians: the error on
the real encoder is unmeasured.

Host memory (`test_text_encoder_gguf_rss`): a Q8_0 file of the official architecture with fewer text layers (the full
vocabulary and SigLIP tower), loaded and used to encode a prompt on the CPU in a fresh subprocess; anonymous and
file-backed resident memory are recorded apart, and the full depth is extrapolated (file-backed memory grows by the
packed bytes of each text layer the encoder reads; anonymous memory does not grow with depth).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from full_size_text import official_text_config
from gguf import GGMLQuantizationType as Q
from torch.func import functional_call

from motif_lite.encoders.text_gguf import meta_encoder
from motif_lite.quantize import get_text_recipe, plan_text_types, quantize_tensor
from motif_lite.weights.dequant import dequantize

pytestmark = pytest.mark.slow
RECIPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
TOKENS = 128  # a long prompt: inside the sliding window (1024), so no attention mask is needed
SEED = 0


def _gaussian(shape, generator: torch.Generator, name: str) -> torch.Tensor:
    values = torch.randn(shape, generator=generator)
    if len(shape) == 1 and "norm" in name and "bias" not in name and "text_model" not in name:
        return (1 + 0.02 * values).bfloat16().float()  # LayerNorm gains (Gemma's RMSNorm scales by 1 + w)
    return (0.02 * values).bfloat16().float()


def _random_weights(module: torch.nn.Module, prefix: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: _gaussian(p.shape, generator, f"{prefix}{name}") for name, p in module.named_parameters()}


def _quantized(weights: dict[str, torch.Tensor], prefix: str, plan: dict, cache: dict) -> dict[str, torch.Tensor]:
    """The weights as a file of this plan stores them (quantized, then dequantized to float32)."""
    out = {}
    for name, w in weights.items():
        qtype = plan[prefix + name]
        if qtype in (Q.F32, Q.F16, Q.BF16):  # the weights are bf16 values already: exact in all three
            out[name] = w
            continue
        key = (name, qtype)
        if key not in cache:
            blocks = torch.from_numpy(quantize_tensor(w, qtype))
            cache[key] = dequantize(blocks, qtype, tuple(w.shape))
        out[name] = cache[key]
    return out


def _relative(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x.float() - reference).norm() / reference.norm())


@pytest.fixture(scope="module")
def model_and_plans():
    torch.set_num_threads(1)  # the K-quant search on a busy 2-core machine (see docs/quantize.md)
    model = meta_encoder(official_text_config())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return model, {r: plan_text_types(shapes, get_text_recipe(r)) for r in RECIPES}


def test_text_encoder_error(model_and_plans, bench_report) -> None:
    from transformers.models.t5gemma2.modeling_t5gemma2 import T5Gemma2RotaryEmbedding

    model, plans = model_and_plans
    text = model.text_model
    config = text.config
    n_layers = int(os.environ.get("MOTIF_TE_LAYERS", config.num_hidden_layers))
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(3, config.vocab_size, (TOKENS,), generator=generator)
    # Token rows, each from its own seed: the same row whatever the prompt, as in a table.
    rows = torch.stack([_gaussian((config.hidden_size,), torch.Generator().manual_seed(int(i)), "embed") for i in ids])
    scale = config.hidden_size**0.5
    hidden = {"reference": rows * scale, "bf16 compute": rows.bfloat16() * torch.tensor(scale, dtype=torch.bfloat16)}
    for recipe in RECIPES:
        qtype = plans[recipe]["text_model.embed_tokens.weight"]
        blocks = torch.from_numpy(quantize_tensor(rows, qtype))
        hidden[recipe] = dequantize(blocks, qtype, tuple(rows.shape)) * scale
    rotary = T5Gemma2RotaryEmbedding(config)
    positions = torch.arange(TOKENS)[None]
    growth = []
    for i in range(n_layers):
        layer = text.layers[i].to_empty(device="cpu")
        prefix = f"text_model.layers.{i}."
        weights = _random_weights(layer, prefix, generator)
        rope = rotary(hidden["reference"][None], positions, config.layer_types[i])
        hidden["reference"] = _run(layer, hidden["reference"], weights, rope)
        hidden["bf16 compute"] = _run(layer, hidden["bf16 compute"], weights, rope, torch.bfloat16)
        cache: dict = {}
        for recipe in RECIPES:
            hidden[recipe] = _run(layer, hidden[recipe], _quantized(weights, prefix, plans[recipe], cache), rope)
        text.layers[i].to("meta")
        growth.append({k: _relative(v, hidden["reference"]) for k, v in hidden.items() if k != "reference"})
        print(f"layer {i + 1}/{n_layers}: " + ", ".join(f"{k} {v:.4f}" for k, v in growth[-1].items()), flush=True)
    norm_weight = _gaussian((config.hidden_size,), generator, "text_model.norm.weight")
    final = {k: _gemma_norm(v.float(), norm_weight, config.rms_norm_eps) for k, v in hidden.items()}
    for name in ("bf16 compute", *RECIPES):
        error = _relative(final[name], final["reference"])
        cosine = torch.nn.functional.cosine_similarity(final[name], final["reference"], dim=-1)
        bench_report.add("Text encoder error vs bf16 weights (official architecture, random weights)", variant=name,
                         layers=n_layers, tokens=TOKENS, rel_rmse=error, min_token_cosine=float(cosine.min()),
                         after_1_layer=growth[0][name], after_half=growth[n_layers // 2 - 1][name])  # fmt: skip
        print(f"{name}: relative RMSE {error:.4f}, min token cosine {float(cosine.min()):.5f}")


def _run(layer: torch.nn.Module, values: torch.Tensor, params: dict, extra, dtype=torch.float32) -> torch.Tensor:
    """One layer over one sequence `values` [T, D] with these parameters; `extra`: the layer's second argument
    (RoPE cos/sin for a text layer, the attention mask None for a SigLIP layer)."""
    extra = tuple(r.to(dtype) for r in extra) if extra is not None else None
    with torch.no_grad():
        out = functional_call(layer, {k: v.to(dtype) for k, v in params.items()}, (values[None].to(dtype), extra))
    return (out[0] if isinstance(out, tuple) else out)[0]


def _gemma_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1 + weight)


# SigLIP's 1152-wide rows take no K-quant: what each recipe's base type falls back to, and what our recipes store.
VISION_TYPES = {"Q8_0 (all recipes)": Q.Q8_0, "Q5_1 (Q5_K fallback)": Q.Q5_1, "Q5_0 (Q4_K fallback)": Q.Q5_0}


def test_vision_tower_error(model_and_plans, bench_report) -> None:
    model, plans = model_and_plans
    tower = model.vision_tower
    config = tower.config
    generator = torch.Generator().manual_seed(SEED + 1)
    embeddings = tower.embeddings.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in embeddings.named_parameters():
            p.copy_(_gaussian(p.shape, generator, name))
        embeddings.position_ids.copy_(torch.arange(embeddings.position_ids.shape[-1])[None])
        pixels = torch.rand(1, 3, config.image_size, config.image_size, generator=generator) * 2 - 1
        start = embeddings(pixels)[0]  # [4096, 1152]; the embeddings stay F32/F16 in every recipe
    hidden = {"reference": start, "bf16 compute": start.bfloat16(), **dict.fromkeys(VISION_TYPES, start)}
    for i in range(config.num_hidden_layers):
        layer = tower.encoder.layers[i].to_empty(device="cpu")
        prefix = f"vision_tower.encoder.layers.{i}."
        weights = _random_weights(layer, prefix, generator)
        hidden["reference"] = _run(layer, hidden["reference"], weights, None)
        hidden["bf16 compute"] = _run(layer, hidden["bf16 compute"], weights, None, torch.bfloat16)
        for name, qtype in VISION_TYPES.items():
            plan = {k: (qtype if v == Q.Q8_0 else v) for k, v in plans["Q8_0"].items() if k.startswith(prefix)}
            hidden[name] = _run(layer, hidden[name], _quantized(weights, prefix, plan, {}), None)
        tower.encoder.layers[i].to("meta")
        errors = {k: _relative(v, hidden["reference"]) for k, v in hidden.items() if k != "reference"}
        print(f"SigLIP layer {i + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()), flush=True)
    for name in ("bf16 compute", *VISION_TYPES):
        bench_report.add("SigLIP tower error vs bf16 weights (official architecture, random weights)", variant=name,
                         tokens=start.shape[0], rel_rmse=_relative(hidden[name], hidden["reference"]))  # fmt: skip


# ------------------------------------------------------------------------------------------- host memory


class RandomSource:
    """A quantizer source of random bf16-valued tensors at the official architecture, generated one at a time."""

    is_gguf = False

    def __init__(self, layers: int, folder: Path):
        from tiny_text import _save_feature_extractor, _save_tokenizer

        config = official_text_config(num_hidden_layers=layers)
        self.path = folder / "text_encoder"
        self.path.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(self.path)
        self.config_json = (self.path / "config.json").read_text()
        self.shapes = {k: tuple(v.shape) for k, v in meta_encoder(config).state_dict().items()}
        _save_tokenizer(folder / "tokenizer")
        _save_feature_extractor(folder / "feature_extractor")

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        shape = self.shapes[name]
        if rows is not None:
            shape = (len(range(*rows.indices(shape[0]))), *shape[1:])
        seed = zlib.crc32(f"{name}:{rows.start if rows is not None else 0}".encode())
        return _gaussian(shape, torch.Generator().manual_seed(seed), name)

    def close(self) -> None:
        pass


def _measure(root: Path, gguf: Path) -> dict:
    """Load and encode in a fresh process; its resident memory after each step (kB), anonymous and file apart."""
    script = f"""
import json, torch
from pathlib import Path
def status():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {{k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}}
torch.set_num_threads(1)
from motif_lite.encoders.text import load_text_encoder
out = {{"start": status()}}
encoder = load_text_encoder({str(root)!r}, dtype=torch.bfloat16, gguf={str(gguf)!r})
out["loaded"] = status()
embeds, mask = encoder.encode(["a red fox runs through snow, cinematic, golden hour, shallow depth of field"])
out["encoded"] = status()
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_text_encoder_gguf_rss(tmp_path_factory, bench_report) -> None:
    from motif_lite.quantize import TEXT_ENCODER, quantize_checkpoint

    layers = int(os.environ.get("MOTIF_TE_RSS_LAYERS", 4))
    folder = tmp_path_factory.mktemp("te_rss")
    source = RandomSource(layers, folder)
    gguf = folder / "te-Q8_0.gguf"
    summary = quantize_checkpoint(source, gguf, get_text_recipe("Q8_0"), progress=False, component=TEXT_ENCODER)
    measured = _measure(folder, gguf)
    plan = plan_text_types(source.shapes, get_text_recipe("Q8_0"))
    per_layer = sum(_bytes(source.shapes[k], q) for k, q in plan.items() if k.startswith("text_model.layers.0."))
    full_layers = official_text_config().text_config.num_hidden_layers
    encoded = measured["encoded"]
    extrapolated_kb = encoded["VmRSS"] + (full_layers - layers) * per_layer / 1024
    row = dict(text_layers=layers, file_gib=gguf.stat().st_size / 2**30, packed_gib=summary.data_bytes / 2**30)
    for step, values in measured.items():
        row.update({f"{step}_{k}_gib": v / 2**20 for k, v in values.items() if k in ("RssAnon", "RssFile")})
    row.update(peak_gib=encoded["VmHWM"] / 2**20, full_depth_rss_gib_extrapolated=extrapolated_kb / 2**20)
    # This process's peak so far: the quantizer's, with the full 262144-row table read in row slices.
    row["quantizer_process_peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    bench_report.add("Text encoder GGUF host memory (Q8_0, CPU encode, random weights)", **row)
    print(json.dumps(row, indent=1))


def _bytes(shape: tuple[int, ...], qtype: Q) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size
