"""`run --quantize TYPE` at the full 2.04B architecture: how long quantizing the transformer as it loads takes.

    pytest bench/bench_quantize_on_load.py -m cuda -s      # on a GPU machine: the K-quants' search on the GPU
    pytest bench/bench_quantize_on_load.py -s -k cpu       # slow: the same on the CPU (minutes per K-quant recipe)

Writes a random bf16 checkpoint in the official sharded layout (once per session) and times
`quantize_transformer_tensors` (quantize/on_load.py) per recipe, the part of the load that `--quantize` adds: reading
the safetensors, the recipe's plan, and packing every tensor (Q8_0 and Q4_0 round to nearest in gguf-py on the
CPU, whatever the device; the K-quants search on `device`). The table "Quantizing as it loads" gets the seconds and
the packed size per recipe and device.
"""

from __future__ import annotations

import time

import pytest
import torch
from full_size import write_random_checkpoint

from motif_lite.quantize.on_load import quantize_transformer_tensors

RECIPES = ["Q8_0", "Q4_K_M", "Q6_K"]
TABLE = "Quantizing as it loads (full 2.04B architecture, random bf16 weights)"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("on_load") / "checkpoint")


def _measure(bench_report, checkpoint, recipe: str, device: str) -> None:
    start = time.perf_counter()
    packed = quantize_transformer_tensors(checkpoint, recipe, device=device, progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    packed_gb = sum(t.nbytes for t in packed.values()) / 1e9
    bench_report.add(TABLE, recipe=recipe, device=device, seconds=round(seconds, 1), packed_gb=round(packed_gb, 3),
                     threads=torch.get_num_threads())  # fmt: skip


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_on_the_gpu(bench_report, checkpoint, recipe: str) -> None:
    _measure(bench_report, checkpoint, recipe, "cuda")


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_on_the_cpu(bench_report, checkpoint, recipe: str) -> None:
    _measure(bench_report, checkpoint, recipe, "cpu")
