"""GGUF at the full 2.04B architecture: per quant type, weight bytes (file and resident) and forward time vs bf16.

    python bench/bench_gguf_full.py [--tokens 2x8x8] [--device cpu|cuda]

Every block linear holds random packed blocks of the type under test (`QuantizedLinear`, dequantized per call);
embedders, norms and biases stay bf16, as the quantize tool's recipes keep them at higher precision. Input: one
latent of the given frames x height x width (default 2 x 8 x 8 = 32 video tokens) + 16 text tokens, bf16
compute, median of 3 forwards after a warm-up. Prints one line per type.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from full_size import random_tensor, reference_on_meta  # noqa: E402
from gguf_helpers import random_packed  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.weights.loader import assign_weights, build_model  # noqa: E402
from motif_lite.weights.quant_linear import QuantizedLinear  # noqa: E402

Q = GGMLQuantizationType
TYPES = [Q.Q8_0, Q.Q6_K, Q.Q5_K, Q.Q4_K, Q.Q4_0]


def bf16_model(device: str):
    generator = torch.Generator().manual_seed(0)
    meta = reference_on_meta()
    state = {n: random_tensor(n, t.shape, generator).to(device, torch.bfloat16) for n, t in meta.state_dict().items()}
    return assign_weights(build_model(TransformerConfig.from_dict(dict(meta.config))), state)


def quantized_copy(model: torch.nn.Module, qtype: GGMLQuantizationType, device: str) -> dict[str, torch.nn.Module]:
    """{name: QuantizedLinear} for every block linear (the bf16 originals stay untouched in `model`)."""
    rng = np.random.default_rng(0)
    swaps = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "blocks" in name:
            packed = torch.from_numpy(random_packed(qtype, module.weight.shape, rng, scale=0.002)).to(device)
            swaps[name] = QuantizedLinear.from_packed(packed, qtype, module.in_features, module.bias)
    return swaps


def swap(model: torch.nn.Module, modules: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
    """Install `modules` by name; returns the modules they replaced."""
    old = {}
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        old[name] = getattr(model.get_submodule(parent), child)
        setattr(model.get_submodule(parent), child, module)
    return old


def median_forward(model, x, reps: int = 3) -> float:
    times = []
    with torch.no_grad():
        model(*x)
        for _ in range(reps):
            if x[0].is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*x)
            if x[0].is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.nbytes for t in [*model.parameters(), *model.buffers()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="2x8x8", help="latent frames x height x width")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    f, h, w = (int(v) for v in args.tokens.split("x"))
    g = torch.Generator().manual_seed(1)
    x = [
        torch.randn(1, 33, f, h, w, generator=g).to(args.device, torch.bfloat16),
        torch.tensor([700.0], device=args.device),
        torch.randn(1, 16, 2560, generator=g).to(args.device, torch.bfloat16),
    ]
    model = bf16_model(args.device)
    base = median_forward(model, x)
    print(f"BF16    weights {weight_bytes(model) / 2**30:.2f} GiB   forward {base:.3f} s   1.00x")
    for qtype in TYPES:
        modules = quantized_copy(model, qtype, args.device)
        originals = swap(model, modules)
        seconds = median_forward(model, x)
        print(
            f"{qtype.name:<7} weights {weight_bytes(model) / 2**30:.2f} GiB   forward {seconds:.3f} s   "
            f"{seconds / base:.2f}x"
        )
        swap(model, originals)
        del modules


if __name__ == "__main__":
    main()
