"""bench/traffic.py's byte counter against bytes computed by hand (CPU, `meta` tensors: a few seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic import (  # noqa: E402
    MEASURED_TB_S,
    TrafficCounter,
    forward_traffic,
    recording_ops,
    tensor_bytes,
)

from motif_lite.config import TransformerConfig  # noqa: E402

B2 = 2  # bytes per bf16 element
L, C = 40, 16


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


def recorded(counter: TrafficCounter) -> dict[str, tuple[int, int, int]]:
    """{op name: (kernels, bytes read, bytes written)}"""
    return {name: (t.calls, t.read, t.written) for name, t in counter.by_op().items()}


def test_fused_layer_norm_modulate_reads_x_shift_scale_and_writes_out() -> None:
    counter = TrafficCounter()
    ops = recording_ops(counter, fused=True)
    with counter:
        ops.layer_norm_modulate(meta(1, L, C), meta(1, C), meta(1, C))
    assert recorded(counter) == {"ops.layer_norm_modulate": (1, (L * C + 2 * C) * B2, L * C * B2)}
    assert set(counter.by_kind()) == {"norms and RoPE"}


def test_torch_layer_norm_modulate_counts_every_op() -> None:
    """x * (1 + scale[:, None]) + shift[:, None] after F.layer_norm: four kernels, each reading its operands (the
    [1, 1, C] vectors once, not broadcast to [1, L, C]) and writing its result; layer_norm also writes the fp32
    mean and rstd of each row."""
    counter = TrafficCounter()
    ops = recording_ops(counter, fused=False)
    with counter:
        ops.layer_norm_modulate(meta(1, L, C), meta(1, C), meta(1, C))
    lc = L * C * B2
    assert recorded(counter) == {
        "aten::native_layer_norm": (1, lc, lc + 2 * 4 * L),
        "aten::add": (2, C * B2 + (lc + C * B2), C * B2 + lc),  # 1 + scale; ... + shift
        "aten::mul": (1, lc + C * B2, lc),
    }


def test_views_and_allocations_are_free_and_copies_are_not() -> None:
    x = meta(2, L, C)
    counter = TrafficCounter()
    with counter:
        x.transpose(1, 2).unflatten(1, (4, -1))
        x[:, 1:].view(2, -1)
        x.split(8, dim=1), x.unbind(0), x.chunk(2, dim=-1), x.expand(3, 2, L, C)
        x.contiguous()  # already contiguous: the tensor itself
        x.new_empty(5, C)
    assert counter.sites == {} and counter.free_calls > 0
    # Negative control: the same kind of call on a transposed view is a real copy, read once and written once.
    with counter:
        x.transpose(1, 2).contiguous()
    assert recorded(counter) == {"aten::clone": (1, x.numel() * B2, x.numel() * B2)}
    assert set(counter.by_kind()) == {"copies"}


def test_broadcast_operands_count_once() -> None:
    counter = TrafficCounter()
    with counter:
        meta(1, L, C) + meta(C).expand(1, L, C)  # a stride-0 operand spans C elements
    assert recorded(counter) == {"aten::add": (1, (L * C + C) * B2, L * C * B2)}


def test_in_place_ops_read_and_write_their_target() -> None:
    x, y = meta(1, L, C), meta(1, 8, C)
    counter = TrafficCounter()
    with counter:
        x[:, :8] += y  # add_ on the slice, then Python's x[:, :8] = slice: a copy onto itself, no kernel on CUDA
        x[:, 8:16] = y  # copy_: reads y only
    piece = 8 * C * B2
    assert recorded(counter) == {"aten::add_": (1, 2 * piece, piece), "aten::copy_": (1, piece, piece)}


def test_rms_norm_is_one_kernel_as_on_cuda() -> None:
    """F.rms_norm on the head view [B, H, L, D] of a projection: CUDA copies the strided input, then one kernel
    reads it and the weight and writes the output and an fp32 rstd per row. On meta torch decomposes it."""
    heads, dim = 2, 8
    x = meta(1, L, heads * dim).unflatten(-1, (heads, dim)).transpose(1, 2)
    weight = meta(dim)
    counter = TrafficCounter()
    with counter:
        F.rms_norm(x, (dim,), weight, 1e-6)
    n = x.numel() * B2
    assert recorded(counter) == {
        "aten::clone": (1, n, n),
        "aten::_fused_rms_norm": (1, n + dim * B2, n + 4 * heads * L),
    }
    decomposed = TrafficCounter(cuda_rms_norm=False)
    with decomposed:
        F.rms_norm(x, (dim,), weight, 1e-6)
    assert "aten::_fused_rms_norm" not in recorded(decomposed) and decomposed.kernels() > 2


def test_measured_rates_are_the_counted_bytes_over_the_measured_times() -> None:
    """MEASURED_TB_S: bench_kernels.py's 32k-token cases, counted here, over the H100 times in docs/benchmarks.md."""
    counter = TrafficCounter()
    ops = recording_ops(counter, fused=True)
    tokens, rotated = 32768, 32768 - 64
    with counter:
        ops.layer_norm_modulate(meta(1, tokens, 1536), meta(1, 1536), meta(1, 1536))
        x = meta(1, tokens, 1536).view(1, tokens, 12, 128).transpose(1, 2)
        angles = meta(rotated, 128, dtype=torch.float32)
        ops.rms_norm_rope(x, meta(128), 1e-6, angles, angles.clone())
    by_op = counter.by_op()
    seconds = {"ops.layer_norm_modulate": 0.116e-3, "ops.rms_norm_rope": 0.602e-3}
    for name, rate in MEASURED_TB_S.items():
        assert by_op[name].bytes / seconds[name] / 1e12 == pytest.approx(rate, rel=0.01)


TINY = dict(
    num_attention_heads=2, attention_head_dim=32, num_layers=2, num_single_layers=3, num_decoder_layers=1,
    text_embed_dim=24, image_embed_dim=20, rope_axes_dim=(8, 12, 12),
)  # fmt: skip
SIZE, TEXT = (80, 48, 9), 7  # latents 3 x 6 x 10 -> 3 x 3 x 5 = 45 video tokens


@pytest.fixture(scope="module")
def tiny() -> dict[str, TrafficCounter]:
    config = TransformerConfig(**TINY)
    return {v: forward_traffic(SIZE, v, config=config, text_tokens=TEXT) for v in ("torch", "fused")}


def test_tiny_forward_calls_each_seam_as_the_blocks_do(tiny) -> None:
    """Per dual block: 4 modulated norms (two streams, before attention and feed-forward) and 4 QK norms (Q and K
    of each stream). Per encoder single block with the text cross-attention: 3 norms (attention, text K/V, MLP) and
    4 QK norms (Q, K, text K, cross Q). The decoder block: 2 and 2. The head: 1 norm. Attention: 1 + 2 + 1."""
    fused, torch_ops = recorded(tiny["fused"]), recorded(tiny["torch"])
    assert fused["ops.layer_norm_modulate"][0] == 2 * 4 + 2 * 3 + 2 + 1 == torch_ops["aten::native_layer_norm"][0]
    assert fused["ops.rms_norm_rope"][0] == 2 * 4 + 2 * 4 + 2 == torch_ops["aten::_fused_rms_norm"][0]
    assert fused["ops.attention"][0] + fused["ops.decoder_attention"][0] == 2 + 2 * 2 + 1
    assert not any(name.startswith("aten::") and "norm" in name for name in fused)  # every norm went through a seam
    rest = {
        v: sum(t.bytes for kind, t in c.by_kind().items() if kind not in ("attention", "matmul"))
        for v, c in tiny.items()
    }
    assert 0 < rest["fused"] < rest["torch"]


def test_tiny_forward_head_norm_bytes(tiny) -> None:
    """The output head's layer_norm_modulate: the decoder's 45 tokens x 64 channels, its shift and scale."""
    n, c = 45, 64
    (head,) = [t for (name, site), t in tiny["fused"].sites.items() if site.endswith("(head)") and "norm" in name]
    assert (head.calls, head.read, head.written) == (1, (n * c + 2 * c) * B2, n * c * B2)


def test_tensor_bytes_of_views() -> None:
    x = torch.empty(4, 6, dtype=torch.bfloat16)
    assert tensor_bytes(x[:, :3]) == 12 * B2 and tensor_bytes(x[0].expand(5, 6)) == 6 * B2
    assert tensor_bytes(x[:0]) == 0


def test_the_host_time_model_has_the_official_blocks_and_runs():
    from traffic import host_seconds, narrow_config

    narrow, official = narrow_config(), TransformerConfig()
    blocks = ("num_layers", "num_single_layers", "num_decoder_layers", "attention_head_dim", "rope_axes_dim")
    assert all(getattr(narrow, name) == getattr(official, name) for name in blocks)
    seconds = host_seconds("fused", batch=2, repeats=1, text_mask=True)
    assert len(seconds) == 1 and seconds[0] > 0
