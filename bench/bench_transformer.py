"""Our transformer forward vs diffusers' on the same weights: full 2.04B architecture, random weights, CPU.

    pytest bench/bench_transformer.py -s         # slow: ~5 min and ~12 GB of memory on a 2-core CPU

Both models hold the very same tensors; inputs are a small token count (2 x 8 x 8 latent -> 32 video tokens,
16 text tokens) so a CPU run takes minutes, not hours. Rows of the report's table "Transformer forward (CPU)":
median seconds per implementation and dtype, and the ratio ours / diffusers.
"""

from __future__ import annotations

import pytest
import torch
from full_size import random_tensor, reference_on_meta, reference_sharing
from tiny_transformer import inputs

from motif_lite.config import TransformerConfig
from motif_lite.weights.loader import assign_weights, build_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fp32_state():
    generator = torch.Generator().manual_seed(0)
    return {name: random_tensor(name, t.shape, generator) for name, t in reference_on_meta().state_dict().items()}


@pytest.fixture(scope="module")
def models(fp32_state):
    built = {}
    for label, dtype in DTYPES.items():
        state = {name: t.to(dtype) for name, t in fp32_state.items()}
        config = TransformerConfig.from_dict(dict(reference_on_meta().config))
        built[label] = (assign_weights(build_model(config), state), reference_sharing(state).to(dtype))
    return built


RESULTS: dict[str, dict[str, float]] = {}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["ours", "diffusers"])
def test_forward(benchmark, bench_report, models, dtype, impl):
    ours, reference = models[dtype]
    x = inputs(batch=1, frames=2, height=8, width=8, text=16, masked=False, text_dim=2560)
    x = {
        k: (v.to(DTYPES[dtype]) if v is not None and v.is_floating_point() and k != "timestep" else v)
        for k, v in x.items()
    }

    def run():
        with torch.no_grad():
            if impl == "ours":
                return ours(x["latents"], x["timestep"], x["text_embeds"])
            return reference(x["latents"], x["timestep"], x["text_embeds"]).sample

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    RESULTS.setdefault(dtype, {})[impl] = benchmark.stats.stats.median
    if len(RESULTS[dtype]) == 2:
        ratio = RESULTS[dtype]["ours"] / RESULTS[dtype]["diffusers"]
        bench_report.add("Transformer forward (CPU, full 2.04B architecture, 32 video + 16 text tokens)", dtype=dtype,
                         ours_s=RESULTS[dtype]["ours"], diffusers_s=RESULTS[dtype]["diffusers"],
                         ours_over_diffusers=ratio)  # fmt: skip
        benchmark.extra_info["ours_over_reference"] = ratio
        print(
            f"\n{dtype}: ours {RESULTS[dtype]['ours']:.3f} s, diffusers {RESULTS[dtype]['diffusers']:.3f} s, "
            f"ratio {ratio:.3f}"
        )
