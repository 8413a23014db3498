"""bench/traffic.py's byte counter against bytes computed by hand (CPU, `meta` tensors: a few seconds)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic import (  # noqa: E402
    LAUNCH_US,
    MEASURED_TB_S,
    PEAK_TB_S,
    TrafficCounter,
    forward_traffic,
    recording_ops,
    summary,
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


def test_an_argument_passed_twice_is_read_once() -> None:
    x = meta(1, L, C)
    counter = TrafficCounter()
    with counter:
        x * x
    assert recorded(counter) == {"aten::mul": (1, L * C * B2, L * C * B2)}


def test_kernels_are_counted_per_call_not_per_call_site() -> None:
    x = meta(1, L, C)
    counter = TrafficCounter()
    with counter:
        for _ in range(3):
            x + 1  # one call site, three kernels
    assert len(counter.sites) == 1 and counter.kernels() == 3


def test_in_place_ops_read_and_write_their_target() -> None:
    x, y = meta(1, L, C), meta(1, 8, C)
    counter = TrafficCounter()
    with counter:
        x[:, :8] += y  # add_ on the slice, then Python's x[:, :8] = slice: a copy onto itself, no kernel on CUDA
        x[:, 8:16] = y  # copy_: reads y only
    piece = 8 * C * B2
    assert recorded(counter) == {"aten::add_": (1, 2 * piece, piece), "aten::copy_": (1, piece, piece)}
    # Copies between other views of one tensor, or between two tensors laid out alike, are real copies.
    square, other = meta(1, 8, 8), meta(1, 8, C)
    for copy in (
        lambda: x[:, 16:24].copy_(x[:, :8]),  # another place in the same memory
        lambda: square.copy_(square.transpose(1, 2)),  # the same place, another order
        lambda: y.copy_(other),  # another tensor, the same shape and strides
    ):
        counter = TrafficCounter()
        with counter:
            copy()
        ((calls, read, written),) = recorded(counter).values()
        assert calls == 1 and read == written > 0
    counter = TrafficCounter()
    with counter:
        y.zero_()
        y.fill_(1.0)
    assert recorded(counter) == {"aten::zero_": (1, 0, piece), "aten::fill_": (1, 0, piece)}  # written, not read


def test_an_out_op_writes_its_out_without_reading_it() -> None:
    # The single blocks' GELU writes into the columns of proj_out's input: it reads x, writes the columns.
    x, buffer = meta(1, L, C), meta(1, L, 2 * C)
    counter = TrafficCounter()
    with counter:
        torch.ops.aten.gelu.out(x, approximate="tanh", out=buffer[..., C:])
    assert recorded(counter) == {"aten::gelu": (1, L * C * B2, L * C * B2)}


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
    counter = TrafficCounter()
    with counter:
        torch.rms_norm(x, (dim,), weight, 1e-6)  # torch's own name for it, as F.rms_norm calls it
        F.rms_norm(x, (L, dim))  # normalized over each head: one rstd per (batch, head)
    assert recorded(counter)["aten::_fused_rms_norm"] == (2, 2 * n + dim * B2, 2 * n + 4 * heads * L + 4 * heads)
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


def test_a_seam_call_reads_its_keyword_arguments() -> None:
    counter = TrafficCounter()
    ops = recording_ops(counter, fused=True)
    x, cos, sin = meta(1, 2, L, 16), meta(L, 16, dtype=torch.float32), meta(L, 16, dtype=torch.float32)
    with counter:
        ops.rms_norm_rope(x, None, 1e-6, cos=cos, sin=sin)
    assert recorded(counter) == {"ops.rms_norm_rope": (1, x.numel() * B2 + 2 * L * 16 * 4, x.numel() * B2)}


def test_summary_prices_each_kind_and_the_memory_bound_rest() -> None:
    counter, GB = TrafficCounter(), 10**9
    for name, read, written, site in [
        ("aten::add", 1, 1, "a.py:1"),
        ("aten::add", 1, 1, "a.py:1"),  # the same site twice: 2 kernels, 4 GB
        ("aten::clone", 1, 1, "b.py:2"),
        ("ops.rms_norm_rope", 2, 1, "c.py:3"),
        ("aten::mm", 5, 1, "d.py:4"),  # a matmul: the largest, but neither in the rest nor in the top sites
        ("ops.attention", 3, 1, "e.py:5"),
    ]:
        counter.record(name, read * GB, written * GB, site)
    result = summary(counter, top=2, achieved=2.0)
    assert result["kinds"]["elementwise"] == dict(gb=4.0, ms_peak=round(4 / PEAK_TB_S, 2), ms_achieved=2.0, kernels=2)
    assert result["kinds"]["matmul"]["gb"] == 6.0 and result["kinds"]["attention"]["gb"] == 4.0
    assert result["rest"] == dict(gb=9.0, ms_peak=round(9 / PEAK_TB_S, 2), ms_achieved=4.5, kernels=4)
    # rms_norm_rope's 3 GB at its measured rate, the other 6 GB at 2 TB/s
    measured = 3 / MEASURED_TB_S["ops.rms_norm_rope"] + 6 / 2.0
    assert result["rest_ms_measured_norms"] == round(measured, 2)
    assert result["kernels"] == 6 and result["launch_ms"] == {f"{us:g} us": round(6 * us / 1e3, 2) for us in LAUNCH_US}
    assert [(t["op"], t["gb"]) for t in result["top"]] == [("aten::add", 4.0), ("ops.rms_norm_rope", 3.0)]
    without = TrafficCounter()
    without.record("aten::add", GB, GB, "a.py:1")
    assert summary(without)["rest_ms_measured_norms"] is None  # no fused norm: no rate of its own to use


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


def test_tiny_forward_single_blocks_write_in_place_of_copying(tiny) -> None:
    """The single blocks' GELU writes into the columns of proj_out's input, after the attention output is copied
    into the first ones: one copy per block, no concatenation. The [x; context] cat stays, once per single block
    (2 encoder, 1 decoder), and so does the heads' merge: the 2 dual blocks' joint attention, in each encoder single
    block its attention and its text cross-attention, and the decoder block's attention."""
    copies = defaultdict(int)
    for (name, site), traffic in tiny["fused"].sites.items():
        if name in ("aten::cat", "aten::clone", "aten::copy_"):
            copies[name, site.split(" ")[1]] += traffic.calls
    assert copies["aten::cat", "(mlp_and_project)"] == 0
    assert copies["aten::copy_", "(mlp_and_project)"] == 2 + 1
    assert copies["aten::cat", "(forward)"] == 2 + 1
    assert copies["aten::clone", "(merge_heads)"] == 2 + 2 * 2 + 1


def test_tiny_forward_scales_with_the_batch_and_the_text(tiny) -> None:
    """Every attention call reads its q, k, v and writes its output: twice the bytes at batch 2; the joint and
    cross attentions read more keys with more text tokens."""
    config = TransformerConfig(**TINY)
    one = tiny["fused"].by_op()["ops.attention"].bytes
    assert (
        forward_traffic(SIZE, "fused", config=config, text_tokens=TEXT, batch=2).by_op()["ops.attention"].bytes
        == 2 * one
    )
    assert forward_traffic(SIZE, "fused", config=config, text_tokens=2 * TEXT).by_op()["ops.attention"].bytes > one


def test_tiny_forward_head_norm_bytes(tiny) -> None:
    """The output head's layer_norm_modulate: the decoder's 45 tokens x 64 channels, its shift and scale."""
    n, c = 45, 64
    (head,) = [t for (name, site), t in tiny["fused"].sites.items() if site.endswith("(head)") and "norm" in name]
    assert (head.calls, head.read, head.written) == (1, (n * c + 2 * c) * B2, n * c * B2)


def test_tensor_bytes_of_views() -> None:
    x = torch.empty(4, 6, dtype=torch.bfloat16)
    assert tensor_bytes(x[:, :3]) == 12 * B2 and tensor_bytes(x[0].expand(5, 6)) == 6 * B2
    assert tensor_bytes(x[:0]) == 0 and tensor_bytes(x[0].expand(0, 6)) == 0  # no rows: nothing read


def test_the_host_time_model_has_the_official_blocks_and_runs():
    from traffic import host_seconds, narrow_config

    narrow, official = narrow_config(), TransformerConfig()
    blocks = ("num_layers", "num_single_layers", "num_decoder_layers", "attention_head_dim", "rope_axes_dim")
    assert all(getattr(narrow, name) == getattr(official, name) for name in blocks)
    seconds = host_seconds("fused", batch=2, repeats=1, text_mask=True)
    assert len(seconds) == 1 and seconds[0] > 0


def test_the_host_time_model_runs_the_forward_it_says(monkeypatch):
    """ "fused": the norm seams stand for Triton launches, not torch's ops; `text_mask`: one row's text half
    padded, as batched guidance pads the shorter prompt."""
    from traffic import host_seconds

    from motif_lite.model.ops import TORCH_OPS
    from motif_lite.weights import loader

    calls = []
    build = loader.build_model

    def recorded_build(config):
        model = build(config)
        forward = model.forward
        model.forward = lambda *args, text_mask=None: (
            calls.append((model.ops, text_mask)) or forward(*args, text_mask=text_mask)
        )
        return model

    monkeypatch.setattr(loader, "build_model", recorded_build)
    host_seconds("fused", batch=2, repeats=1, text_mask=True)
    ops, mask = calls[-1]
    assert (
        ops.rms_norm_rope is not TORCH_OPS.rms_norm_rope
        and ops.layer_norm_modulate is not TORCH_OPS.layer_norm_modulate
    )
    assert mask.shape == (2, 16) and mask[0].all() and mask[1].sum() == 8
    host_seconds("torch", batch=2, repeats=1)
    ops, mask = calls[-1]
    assert ops.rms_norm_rope is TORCH_OPS.rms_norm_rope and mask is None
