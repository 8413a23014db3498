"""Quantize tool at the full 2.04B architecture: time, file size and transformer output error per recipe.

    pytest bench/bench_quantize_full.py -s                 # slow: ~20 min on a 2-core CPU (all six recipes)
    pytest bench/bench_quantize_full.py -s -k "Q4_K_M"     # one recipe

Writes a random bf16 checkpoint in the official sharded layout (once per session), runs `python -m
motif_lite.quantize` on it for each recipe (its default threads), loads the result with `load_transformer` and
records, per recipe, the quantization time, the file size and the relative RMSE of the transformer's velocity
(fp32 compute, 2 x 8 x 8 latent + 16 text tokens) against the same model with the bf16 weights, in the report's
table "Quantize tool at the full architecture".
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from full_size import write_random_checkpoint
from helpers import rel_diff
from tiny_transformer import inputs

from motif_lite import load_transformer

RECIPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M"]
pytestmark = pytest.mark.slow


def velocity(model: torch.nn.Module, x: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"]).float()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("quantize_full") / "checkpoint")


@pytest.fixture(scope="module")
def x() -> dict:
    return inputs(batch=1, frames=2, height=8, width=8, text=16, masked=False, text_dim=2560)


@pytest.fixture(scope="module")
def reference(checkpoint, x) -> torch.Tensor:
    return velocity(load_transformer(checkpoint, dtype=torch.float32), x)


@pytest.mark.parametrize("recipe", RECIPES)
def test_quantize_recipe(bench_report, checkpoint, x, reference, recipe: str) -> None:
    path = checkpoint.parent / f"{recipe}.gguf"
    command = [sys.executable, "-m", "motif_lite.quantize", str(checkpoint), "-o", str(path), "--type", recipe]
    start = time.perf_counter()
    subprocess.run([*command, "--force", "--quiet"], check=True)
    seconds = time.perf_counter() - start
    error = rel_diff(velocity(load_transformer(path, dtype=torch.float32), x), reference)
    bench_report.add("Quantize tool at the full architecture (random bf16 weights, Gaussian std 0.02)", recipe=recipe,
                     quantize_s=seconds, file_gb=path.stat().st_size / 1e9, output_rel_rmse=error)  # fmt: skip
    path.unlink()
