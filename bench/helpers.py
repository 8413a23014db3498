"""Small helpers the benchmarks share: synchronized timing, peak memory, random quantized block linears, fp8 copies."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf_helpers import random_packed

from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.quant_linear import QuantizedLinear

GiB = 2**30


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], reps: int = 3, warmup: int = 1) -> float:
    """Median wall time of `reps` synchronized calls after `warmup` untimed ones (the first compiles/tunes)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak() -> None:
    if torch.cuda.is_available():
        sync()
        torch.cuda.empty_cache()  # so the reserved peak is this run's
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict[str, float]:
    """`torch.cuda.max_memory_allocated` / `max_memory_reserved` since the last `reset_peak`, in GiB."""
    if not torch.cuda.is_available():
        return {}
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GiB, 3),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GiB, 3),
    }


def rel_diff(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 difference ||out - ref|| / ||ref|| in float32."""
    out, ref = out.float(), ref.float()
    return ((out - ref).norm() / ref.norm()).item()


def quantized_copy(model: torch.nn.Module, qtype: GGMLQuantizationType, device: str) -> dict[str, torch.nn.Module]:
    """{name: QuantizedLinear} with random packed blocks for every block linear of `model` (left untouched)."""
    rng = np.random.default_rng(0)
    swaps = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "blocks" in name:
            packed = torch.from_numpy(random_packed(qtype, module.weight.shape, rng, scale=0.002)).to(device)
            swaps[name] = QuantizedLinear.from_packed(packed, qtype, module.in_features, module.bias)
    return swaps


def float8_copy(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """{name: Float8Linear} for every block linear of `model` (left untouched): its weight in float8_e4m3fn with one
    scale per output row, as ComfyUI's fp8_scaled copies store it."""
    swaps = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "blocks" in name:
            weight = module.weight.detach().float()
            scale = (weight.abs().amax(dim=1, keepdim=True) / 448).clamp(min=1e-12)
            layer = Float8Linear(module.in_features, module.out_features, scale_shape=(module.out_features, 1),
                                 bias=module.bias is not None, device="meta")  # fmt: skip
            layer.fp8_weight, layer.scale = (weight / scale).to(torch.float8_e4m3fn), scale
            layer.bias = module.bias
            swaps[name] = layer
    return swaps


def swap(model: torch.nn.Module, modules: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
    """Install `modules` by name; returns the modules they replaced."""
    old = {}
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        old[name] = getattr(model.get_submodule(parent), child)
        setattr(model.get_submodule(parent), child, module)
    return old


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.nbytes for t in [*model.parameters(), *model.buffers()])
