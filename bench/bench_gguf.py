"""GGUF runtime: dequantization speed vs gguf-py, and a GGUF-loaded transformer vs bf16 (ours and diffusers).

    pytest bench/bench_gguf.py -s            # OMP_NUM_THREADS=1 on a busy machine (docs/benchmarks.md)

Model: a reduced Motif architecture (4 heads x 128 = hidden 512, 2 dual + 2 single + 1 decoder blocks) with
random weights; input 2 x 16 x 16 latent (128 video tokens) + 16 text tokens, bf16 compute. Every 2-D weight
is stored in the type under test (random packed blocks), the rest F32. Rows go to the report's tables "GGUF
forward, reduced architecture" (file size, resident weight bytes, median forward time, ratio to diffusers bf16)
and "Dequantize one 1536x1536 weight" (ours vs gguf-py).
"""

from __future__ import annotations

import time
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf_helpers import random_packed, write_test_gguf
from tiny_transformer import inputs, make_reference

from motif_lite.weights.dequant import dequantize
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.gguf_loader import load_gguf_transformer

Q = GGMLQuantizationType
CONFIG = dict(
    num_attention_heads=4,
    attention_head_dim=128,
    num_layers=2,
    num_single_layers=3,
    num_decoder_layers=1,
    rope_axes_dim=(16, 56, 56),
    text_embed_dim=512,
    image_embed_dim=256,
)
MODEL_TYPES = [Q.BF16, Q.Q8_0, Q.Q6_K, Q.Q5_K, Q.Q4_K, Q.Q4_0]
DEQUANT_TYPES = [Q.Q8_0, Q.Q4_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_XS]
SCALE = 1e-4  # random fp16 block scales small enough for finite activations in every type


@pytest.fixture(scope="module")
def reference():
    return make_reference(**CONFIG).to(torch.bfloat16)


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference) -> dict[GGMLQuantizationType, Path]:
    root = tmp_path_factory.mktemp("bench_gguf")
    rng = np.random.default_rng(0)
    out = {}
    for qtype in MODEL_TYPES:
        spec = {}
        for name, tensor in reference.state_dict().items():
            values, shape = tensor.float().numpy(), tuple(tensor.shape)
            if values.ndim == 2 and shape[1] % GGML_QUANT_SIZES[qtype][0] == 0:
                data = values if qtype == Q.BF16 else random_packed(qtype, shape, rng, scale=SCALE)
                spec[name] = (data, qtype, shape)
            else:
                spec[name] = (values, Q.F32, shape)
        out[qtype] = write_test_gguf(root / f"{qtype.name}.gguf", spec)
    return out


def _bf16_inputs() -> dict:
    x = inputs(batch=1, frames=2, height=16, width=16, text=16, masked=False, text_dim=512)
    return {k: v.bfloat16() if v is not None and v.is_floating_point() and k != "timestep" else v for k, v in x.items()}


def _median(benchmark) -> float:
    return benchmark.stats.stats.median


FORWARD_MEDIANS: dict[str, float] = {}
FORWARD = "GGUF forward, reduced architecture (128 video + 16 text tokens, bf16 compute)"


def test_reference_bf16_forward(benchmark, bench_report, files, reference):
    """diffusers in bf16 holding the weights of the BF16 file: the baseline for the rows below (runs first)."""
    reference.load_state_dict({n: t.dequantize(torch.bfloat16) for n, t in read_gguf(files[Q.BF16]).tensors.items()})
    x = _bf16_inputs()

    def run():
        with torch.no_grad():
            return reference(x["latents"], x["timestep"], x["text_embeds"]).sample

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    FORWARD_MEDIANS["diffusers"] = _median(benchmark)
    weight_bytes = sum(t.nbytes for t in reference.state_dict().values())
    bench_report.add(FORWARD, weights="diffusers bf16 (reference)", file_mb=None, resident_weight_mb=weight_bytes / 1e6,
                     forward_ms=_median(benchmark) * 1e3, vs_reference=1.0)  # fmt: skip


@pytest.mark.parametrize("qtype", MODEL_TYPES, ids=lambda t: t.name)
def test_gguf_forward(benchmark, bench_report, files, qtype):
    model = load_gguf_transformer(files[qtype], dtype=torch.bfloat16)
    x = _bf16_inputs()
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())

    def run():
        with torch.no_grad():
            return model(x["latents"], x["timestep"], x["text_embeds"])

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    FORWARD_MEDIANS[qtype.name] = _median(benchmark)
    benchmark.extra_info.update(file_bytes=files[qtype].stat().st_size, resident_weight_bytes=weight_bytes)
    ratio = FORWARD_MEDIANS[qtype.name] / FORWARD_MEDIANS["diffusers"] if "diffusers" in FORWARD_MEDIANS else None
    bench_report.add(FORWARD, weights=f"ours, {qtype.name} GGUF", file_mb=files[qtype].stat().st_size / 1e6,
                     resident_weight_mb=weight_bytes / 1e6, forward_ms=FORWARD_MEDIANS[qtype.name] * 1e3,
                     vs_reference=ratio)  # fmt: skip
    print(
        f"\n{qtype.name}: file {files[qtype].stat().st_size / 1e6:.1f} MB, resident weights {weight_bytes / 1e6:.1f} "
        f"MB, forward {FORWARD_MEDIANS[qtype.name] * 1e3:.0f} ms"
    )


@pytest.mark.parametrize("qtype", DEQUANT_TYPES, ids=lambda t: t.name)
def test_dequantize_1536x1536(benchmark, bench_report, qtype):
    """Ours (torch) on one to_q-sized weight; gguf-py's numpy time on the same bytes is in extra_info."""
    shape = (1536, 1536)
    raw = random_packed(qtype, shape, np.random.default_rng(1))
    packed = torch.from_numpy(raw.copy())
    start = time.perf_counter()
    gguf.quants.dequantize(raw, qtype)
    numpy_s = time.perf_counter() - start
    benchmark.pedantic(lambda: dequantize(packed, qtype, shape), rounds=5, warmup_rounds=1)
    benchmark.extra_info.update(gguf_py_seconds=numpy_s)
    bench_report.add("Dequantize one 1536x1536 weight (ours: torch; reference: gguf-py numpy)", type=qtype.name,
                     ours_ms=_median(benchmark) * 1e3, gguf_py_ms=numpy_s * 1e3)  # fmt: skip
    print(f"\n{qtype.name}: ours {_median(benchmark) * 1e3:.1f} ms, gguf-py {numpy_s * 1e3:.1f} ms")
