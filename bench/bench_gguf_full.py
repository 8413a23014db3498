"""GGUF at the full 2.04B architecture: per quant type, weight bytes (resident) and forward time vs bf16.

    pytest bench/bench_gguf_full.py -s                          # slow: ~3 min and ~6 GB on a 2-core CPU
    GGUF_FULL_TOKENS=13x60x104 pytest bench/bench_gguf_full.py -s    # latent frames x height x width (on a GPU)

Every block linear holds random packed blocks of the type under test (`QuantizedLinear`, dequantized per call);
embedders, norms and biases stay bf16, as the quantize tool's recipes keep them at higher precision. Input: one
latent of the given frames x height x width (default 2 x 8 x 8 = 32 video tokens) + 16 text tokens, bf16
compute, median of 3 forwards after a warm-up, on CUDA when available, else the CPU. Rows: the report's table
"GGUF types at the full architecture".
"""

from __future__ import annotations

import os

import pytest
import torch
from full_size import random_tensor, reference_on_meta
from gguf import GGMLQuantizationType
from helpers import GiB, median_seconds, quantized_copy, swap, weight_bytes

from motif_lite.config import TransformerConfig
from motif_lite.weights.loader import assign_weights, build_model

Q = GGMLQuantizationType
TYPES = [Q.BF16, Q.Q8_0, Q.Q6_K, Q.Q5_K, Q.Q4_K, Q.Q4_0]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOKENS = os.environ.get("GGUF_FULL_TOKENS", "2x8x8")
pytestmark = pytest.mark.slow
BF16_SECONDS: list[float] = []


@pytest.fixture(scope="module")
def model():
    generator = torch.Generator().manual_seed(0)
    meta = reference_on_meta()
    state = {n: random_tensor(n, t.shape, generator).to(DEVICE, torch.bfloat16) for n, t in meta.state_dict().items()}
    return assign_weights(build_model(TransformerConfig.from_dict(dict(meta.config))), state)


@pytest.fixture(scope="module")
def x() -> list[torch.Tensor]:
    f, h, w = (int(v) for v in TOKENS.split("x"))
    g = torch.Generator().manual_seed(1)
    return [
        torch.randn(1, 33, f, h, w, generator=g).to(DEVICE, torch.bfloat16),
        torch.tensor([700.0], device=DEVICE),
        torch.randn(1, 16, 2560, generator=g).to(DEVICE, torch.bfloat16),
    ]


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_forward_per_type(bench_report, model, x, qtype: GGMLQuantizationType) -> None:
    originals = swap(model, quantized_copy(model, qtype, DEVICE)) if qtype != Q.BF16 else {}
    try:
        with torch.no_grad():
            seconds = median_seconds(lambda: model(*x), reps=3)
        resident = weight_bytes(model)
    finally:
        swap(model, originals)
    if qtype == Q.BF16:
        BF16_SECONDS.append(seconds)
    bench_report.add(f"GGUF types at the full architecture ({TOKENS} latent + 16 text tokens, bf16 compute, {DEVICE})",
                     type=qtype.name, resident_weights_gib=resident / GiB, seconds_per_forward=seconds,
                     vs_bf16=seconds / BF16_SECONDS[0] if BF16_SECONDS else None)  # fmt: skip
