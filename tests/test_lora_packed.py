"""LoRA, LoHa and LoKr files on packed linears (GGUF blocks, fp8): kept beside the packed weight, never made into an
[out, in] matrix, and computing exactly what the float path's merged weight computes (LyCORIS' definition, which
tests/test_lora_lycoris.py checks the merge against), a slice of their rows too; a LoHa whose rank r1·r2 takes more
bytes than its change is kept whole; the memory plan counts the tensors kept; a large scale in a 16-bit compute
dtype stays a number, whichever factor is large, and small factors keep their digits."""

from __future__ import annotations

import pytest
import torch
from live_memory import LiveTensors, estimate_and_live_peak
from speed_helpers import tiny_transformer
from test_lora_estimates import write_heavy_lora
from test_lora_lycoris import FF, LOKR, _write
from tiny_config import TINY, inputs
from torch.utils.flop_counter import FlopCounterMode

from motif_lite.config import TransformerConfig
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.runtime import cost
from motif_lite.runtime.activation_memory import (
    TextEncoderShape,
    adapter_layer_tokens,
    adapter_temporary_bytes,
)
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.vae.config import WanVAEConfig
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.lora import diff_targets, lora_targets, read_loras
from motif_lite.weights.lora_apply import (
    LoRALinear,
    apply_loras,
    side_adapter_bytes,
    side_adapter_macs,
    side_adapter_temporary_bytes,
)
from motif_lite.weights.lora_specs import LoRASpec

g = torch.Generator().manual_seed(1)
LOHA = {
    "hada_w1_a": torch.randn(256, 2, generator=g),
    "hada_w1_b": torch.randn(2, 64, generator=g),
    "hada_w2_a": torch.randn(256, 3, generator=g),
    "hada_w2_b": torch.randn(3, 64, generator=g),
}
FILES = {"loha": LOHA, **{f"lokr-{name}": parts for name, (parts, *_) in LOKR.items()}}
STRENGTH = -0.6


def float8_transformer() -> torch.nn.Module:
    """The tiny transformer with FF in e4m3 bytes and a float32 scale per row, as ComfyUI's scaled fp8 files hold it."""
    model = tiny_transformer()
    linear = model.get_submodule(FF)
    scale = (linear.weight.abs().amax(dim=1, keepdim=True) / 448).clamp(min=1e-12)  # [out, 1]
    layer = Float8Linear(linear.in_features, linear.out_features, scale_shape=tuple(scale.shape))
    layer.fp8_weight = (linear.weight / scale).to(torch.float8_e4m3fn)
    layer.scale, layer.bias = scale, linear.bias
    block, _, name = FF.rpartition(".")
    setattr(model.get_submodule(block), name, layer)
    return model


PACKED = {"gguf-q8_0": lambda: tiny_transformer(quantized=True), "fp8": float8_transformer}


def float_twin(packed_layer: torch.nn.Module) -> torch.nn.Module:
    """The tiny transformer whose FF holds the packed layer's weight as float32: the float path's oracle."""
    model = tiny_transformer()
    linear = model.get_submodule(FF)
    linear.weight = torch.nn.Parameter(packed_layer.dequantized_weight(torch.float32), requires_grad=False)
    linear.bias = torch.nn.Parameter(packed_layer.bias.detach().float(), requires_grad=False)
    return model


def applied(model: torch.nn.Module, paths: list, dtype: torch.dtype = torch.float32):
    files = read_loras([LoRASpec(path, STRENGTH) for path in paths], lora_targets(model), diff_targets(model))
    return apply_loras(model, files, dtype), files


@pytest.mark.parametrize("packing", list(PACKED))
@pytest.mark.parametrize("file", list(FILES))
def test_a_lycoris_file_on_a_packed_linear_computes_the_float_paths_merged_weight(tmp_path, packing, file):
    path = _write(tmp_path / f"{file}.safetensors", FILES[file])
    packed = PACKED[packing]()
    plain = packed.get_submodule(FF)
    twin = float_twin(plain)
    summary, _ = applied(packed, [path])
    applied(twin, [path])
    assert summary.wrapped == 1 and summary.merged == 0
    merged = twin.get_submodule(FF).weight
    assert not torch.equal(merged, plain.dequantized_weight(torch.float32))  # the file changes the layer
    layer = packed.get_submodule(FF)
    x = torch.randn(2, 5, 64, generator=g)
    expected = torch.nn.functional.linear(x, merged, twin.get_submodule(FF).bias)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-4)
    rows = slice(40, 170)  # what the fused projections ask of a layer: some of its output rows
    torch.testing.assert_close(layer.forward_rows(x, rows), expected[..., rows], rtol=1e-5, atol=1e-4)
    # Nothing the size of the layer's weight is kept beside it.
    own = {id(b) for b in plain.buffers()}
    kept = [b for b in layer.buffers() if id(b) not in own]
    assert kept and max(b.numel() for b in kept) < merged.numel() // 4


def test_a_lora_a_loha_and_a_lokr_on_one_packed_linear_add_up(tmp_path):
    plain_lora = {
        "lora_down.weight": torch.randn(4, 64, generator=g),
        "lora_up.weight": torch.randn(256, 4, generator=g),
    }
    paths = [_write(tmp_path / "lora.safetensors", plain_lora), _write(tmp_path / "loha.safetensors", LOHA),
             _write(tmp_path / "lokr.safetensors", LOKR["both-products"][0])]  # fmt: skip
    packed = tiny_transformer(quantized=True)
    twin = float_twin(packed.get_submodule(FF))
    summary, _ = applied(packed, paths)
    applied(twin, paths)
    assert (
        summary.wrapped == 1 and "; 0 layers merged, 1 unmerged (packed), adapters beside them " in summary.describe()
    )
    x = torch.randn(3, 64, generator=g)
    torch.testing.assert_close(packed.get_submodule(FF)(x), twin.get_submodule(FF)(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_memory_count_of_adapters_beside_a_packed_linear_is_the_tensors_kept(tmp_path, dtype):
    plain_lora = {
        "lora_down.weight": torch.randn(4, 64, generator=g),
        "lora_up.weight": torch.randn(256, 4, generator=g),
    }
    paths = [_write(tmp_path / "lora.safetensors", plain_lora), _write(tmp_path / "loha.safetensors", LOHA),
             _write(tmp_path / "lokr.safetensors", LOKR["w1-whole-w2-product"][0]),
             _write(tmp_path / "lokr2.safetensors", LOKR["both-whole"][0])]  # fmt: skip
    packed = tiny_transformer(quantized=True)
    own = {id(b) for b in packed.get_submodule(FF).buffers()}
    _, files = applied(packed, paths, dtype)
    kept = sorted(b.nbytes for b in packed.get_submodule(FF).buffers() if id(b) not in own)
    assert sorted(side_adapter_bytes(files, dtype)[FF]) == kept
    assert len(kept) == 7  # down, up and scale of the LoRA and LoHa together; w1 and w2 of each LoKr


def _outputs_by_dtype(path, dtypes: tuple, x: torch.Tensor, model=lambda: tiny_transformer(quantized=True)) -> dict:
    """FF's output for `x` with the file at `path` applied in each compute dtype, as float32."""
    outputs = {}
    for dtype in dtypes:
        packed = model()
        apply_loras(packed, read_loras([LoRASpec(path)], lora_targets(packed)), dtype)
        outputs[dtype] = packed.get_submodule(FF)(x.to(dtype)).float()
    return outputs


# (down, up) magnitudes, both ways round: scale 1000 (alpha 4000, rank 4) times a large up is past float16's 65504
# (inf) if folded into up; the scaled down·x with a large down is past it too if cast to float16 before up, though
# in either case the update itself, a few thousand, fits float16.
LARGE_SCALE_LORAS = {"small-down-large-up": (1e-3, 100.0), "large-down-small-up": (100.0, 1e-3)}


@pytest.mark.parametrize("magnitudes", list(LARGE_SCALE_LORAS))
def test_a_large_lora_scale_on_a_packed_linear_in_float16_stays_a_number(tmp_path, magnitudes):
    down_size, up_size = LARGE_SCALE_LORAS[magnitudes]
    parts = {
        "lora_down.weight": down_size * torch.randn(4, 64, generator=g),
        "lora_up.weight": up_size * torch.randn(256, 4, generator=g),
    }
    path = _write(tmp_path / "strong.safetensors", parts, alpha=4000.0)
    outputs = _outputs_by_dtype(path, (torch.float16, torch.float32), torch.randn(3, 64, generator=g))
    reference = outputs[torch.float32]
    assert 1e3 < reference.abs().max() < 6e4  # the update is large and fits float16
    assert torch.isfinite(outputs[torch.float16]).all()
    torch.testing.assert_close(outputs[torch.float16], reference, rtol=1e-2, atol=reference.abs().max() * 2e-3)


def test_a_lora_whose_scale_with_its_factors_is_past_float16_stays_a_number(tmp_path):
    # down and up about 10 (each rank rescaled by 32 or so into its scale), alpha 4000 at rank 4: a float32 scale of
    # about 1e6 per rank, past float16's 65504, for a small input's update of a few hundred, which float16 holds.
    # The scale multiplies down·x in float32: in float16 it was inf.
    parts = {
        "lora_down.weight": 10 * torch.randn(4, 64, generator=g),
        "lora_up.weight": 10 * torch.randn(256, 4, generator=g),
    }
    path = _write(tmp_path / "strong.safetensors", parts, alpha=4000.0)
    outputs = _outputs_by_dtype(path, (torch.float16, torch.float32), 1e-3 * torch.randn(3, 64, generator=g))
    reference = outputs[torch.float32]
    assert 1e2 < reference.abs().max() < 6e4
    assert torch.isfinite(outputs[torch.float16]).all()
    torch.testing.assert_close(outputs[torch.float16], reference, rtol=1e-2, atol=reference.abs().max() * 2e-3)


def test_each_rank_of_a_lora_beside_a_packed_linear_is_rescaled_on_its_own_to_at_most_1(tmp_path):
    # Ranks of very unequal sizes (1e-6, 1, 20) and one trained to zero: each rank's down row and up column is
    # brought to a largest magnitude in (1/2, 1] by its own power of two (a zero one stays zero, not 0/0), so a
    # tiny rank keeps float16's digits beside a large one and none is past 1.
    sizes = torch.tensor([1e-6, 1.0, 20.0, 0.0])
    parts = {
        "lora_down.weight": sizes[:, None] * torch.randn(4, 64, generator=g),
        "lora_up.weight": sizes[None, :] * torch.randn(256, 4, generator=g),
    }
    path = _write(tmp_path / "ranks.safetensors", parts)
    packed = tiny_transformer(quantized=True)
    apply_loras(packed, read_loras([LoRASpec(path)], lora_targets(packed)), torch.float16)
    layer = packed.get_submodule(FF)
    assert isinstance(layer, LoRALinear)
    for peaks in (layer.down.float().abs().amax(dim=1), layer.up.float().abs().amax(dim=0)):
        assert peaks[3] == 0 and ((peaks[:3] > 0.5) & (peaks[:3] <= 1)).all(), peaks
    assert torch.isfinite(layer.scale).all()
    outputs = _outputs_by_dtype(path, (torch.float16,), torch.randn(3, 64, generator=g))
    assert torch.isfinite(outputs[torch.float16]).all()


# w1 whole, w2 = w2_a·w2_b (rank 4, alpha 4000 or 40000: scale 1000 or 10000), one of them large and the other
# small, both ways round: the scale times the large factor's 16-bit product is past float16's 65504, the update
# itself a few thousand.
LARGE_SCALE_LOKRS = {
    "small-w1-large-w2": (1e-3, 10.0, 4000.0),  # w1·X·w2ᵀ·scale overflowed at X·w2ᵀ·scale
    "large-w1-small-w2": (1e4, 1e-3, 4e4),  # w2 about 2e-6: below float16's normal numbers (few digits) unless rescaled
}


@pytest.mark.parametrize("magnitudes", list(LARGE_SCALE_LOKRS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_large_lokr_scale_on_a_packed_linear_in_16_bits_gives_the_float_paths_output(tmp_path, magnitudes, dtype):
    w1_size, w2_size, alpha = LARGE_SCALE_LOKRS[magnitudes]
    parts = {
        "lokr_w1": w1_size * torch.randn(8, 2, generator=g),
        "lokr_w2_a": w2_size * torch.randn(32, 4, generator=g),
        "lokr_w2_b": w2_size * torch.randn(4, 32, generator=g),
    }
    path = _write(tmp_path / "strong.safetensors", parts, alpha=alpha)
    x = torch.randn(3, 64, generator=g)
    twin = float_twin(tiny_transformer(quantized=True).get_submodule(FF))
    apply_loras(twin, read_loras([LoRASpec(path)], lora_targets(twin)))  # merged: the float path, float32
    reference = twin.get_submodule(FF)(x.to(dtype).float())
    assert 1e3 < reference.abs().max() < 6e4  # the update is large and fits float16
    output = _outputs_by_dtype(path, (dtype,), x)[dtype]
    assert torch.isfinite(output).all()
    tolerance = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(output, reference, rtol=tolerance, atol=reference.abs().max() * tolerance)


# Row slices of a LoKr with w2 [32, 32] (rows i·32 + j): on w2's row boundaries, off them, inside one w1 row, the
# last rows, all rows.
LOKR_ROWS = [slice(32, 96), slice(40, 170), slice(33, 50), slice(250, 256), slice(0, 256)]


@pytest.mark.parametrize("rows", LOKR_ROWS, ids=lambda r: f"{r.start}-{r.stop}")
def test_some_rows_of_a_lokr_beside_a_packed_linear_are_those_rows_of_its_output(tmp_path, rows):
    path = _write(tmp_path / "lokr.safetensors", LOKR["both-products"][0])
    packed = tiny_transformer(quantized=True)
    applied(packed, [path])
    layer = packed.get_submodule(FF)
    x = torch.randn(2, 5, 64, generator=g)
    torch.testing.assert_close(layer.forward_rows(x, rows), layer(x)[..., rows], rtol=1e-5, atol=1e-5)


def test_a_lokr_computes_only_the_rows_asked_of_it():
    # A head group's rows (runtime/chunking.py, heads_per_call) from a LoKr: the update for those rows, not the
    # whole update per group. w1 [8, 8], w2 [16, 16]: rows 40 to 72 need w1's rows 2 to 4, 3 of 8.
    from torch.utils.flop_counter import FlopCounterMode

    from motif_lite.model.attention import project_rows
    from motif_lite.weights.lora_apply import LoKrLinear

    base = torch.nn.Linear(128, 128)
    layer = LoKrLinear(base, torch.randn(8, 8, generator=g), torch.randn(16, 16, generator=g), 0.5)
    x = torch.randn(4, 128, generator=g)
    rows = slice(40, 72)

    def flops(compute) -> int:
        with FlopCounterMode(display=False) as counter:
            compute()
        return counter.get_total_flops()

    in_rows = flops(lambda: layer.forward_rows(x, rows)) - flops(lambda: project_rows(base, x, rows))
    whole = flops(lambda: layer(x)) - flops(lambda: base(x))
    assert 0 < in_rows <= whole * 3 / 8 + 1
    torch.testing.assert_close(layer.forward_rows(x, rows), layer(x)[..., rows], rtol=1e-5, atol=1e-5)


def _loha(rank: int) -> dict[str, torch.Tensor]:
    return {
        "hada_w1_a": torch.randn(256, rank, generator=g),
        "hada_w1_b": torch.randn(rank, 64, generator=g),
        "hada_w2_a": torch.randn(256, rank, generator=g),
        "hada_w2_b": torch.randn(rank, 64, generator=g),
    }


@pytest.mark.parametrize("packing", list(PACKED))
def test_a_loha_whose_rank_r1_r2_takes_more_bytes_than_its_change_keeps_the_change(tmp_path, packing):
    # Rank 8·8 = 64 as a LoRA: 64·(64 + 256) values and 64 float32 scales, more than the 256·64 of the change.
    path = _write(tmp_path / "loha.safetensors", _loha(8))
    packed = PACKED[packing]()
    plain = packed.get_submodule(FF)
    twin = float_twin(plain)
    own = {id(b) for b in plain.buffers()}
    _, files = applied(packed, [path])
    applied(twin, [path])
    layer = packed.get_submodule(FF)
    kept = sorted(b.nbytes for b in layer.buffers() if id(b) not in own)
    assert kept == [256 * 64 * 4] == sorted(side_adapter_bytes(files, torch.float32)[FF])
    x = torch.randn(2, 5, 64, generator=g)
    merged = twin.get_submodule(FF)
    torch.testing.assert_close(layer(x), merged(x), rtol=1e-5, atol=1e-4)
    rows = slice(40, 170)
    torch.testing.assert_close(layer.forward_rows(x, rows), merged(x)[..., rows], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_memory_count_of_a_loha_kept_whole_or_as_a_lora_is_the_smaller(tmp_path, dtype):
    # 2 bytes a value: a LoRA of rank r1·r2 takes r·(320·2 + 4) bytes against 256·64·2 for the change, which is
    # smaller from rank 51 on. A LoHa of rank 7·7 stays a LoRA, one of 8·8 (or two of 6·6 on one layer) does not.
    whole, per_rank = 256 * 64 * dtype.itemsize, (64 + 256) * dtype.itemsize + 4
    cases = {(7,): (49 * 64 * dtype.itemsize, 256 * 49 * dtype.itemsize, 49 * 4), (8,): (whole,), (6, 6): (whole,)}
    for ranks, expected in cases.items():
        paths = [_write(tmp_path / f"loha{i}.safetensors", _loha(rank)) for i, rank in enumerate(ranks)]
        packed = tiny_transformer(quantized=True)
        own = {id(b) for b in packed.get_submodule(FF).buffers()}
        _, files = applied(packed, paths, dtype)
        kept = sorted(b.nbytes for b in packed.get_submodule(FF).buffers() if id(b) not in own)
        assert sorted(side_adapter_bytes(files, dtype)[FF]) == kept == sorted(expected)
        assert sum(kept) <= min(whole, sum(r * r for r in ranks) * per_rank)


def test_a_loha_at_the_edge_counts_the_float32_scales_in_its_low_rank_bytes(tmp_path):
    # Rank 3·17 = 51 on FF [256, 64] in float16: 51 ranks of 320 values (2 bytes each) take 32,640 bytes, under the
    # change's 32,768, but with each rank's 4-byte float32 scale 32,844, over it: the change is kept whole.
    parts = {
        "hada_w1_a": torch.randn(256, 3, generator=g),
        "hada_w1_b": torch.randn(3, 64, generator=g),
        "hada_w2_a": torch.randn(256, 17, generator=g),
        "hada_w2_b": torch.randn(17, 64, generator=g),
    }
    path = _write(tmp_path / "loha.safetensors", parts)
    packed = tiny_transformer(quantized=True)
    own = {id(b) for b in packed.get_submodule(FF).buffers()}
    _, files = applied(packed, [path], torch.float16)
    kept = sorted(b.nbytes for b in packed.get_submodule(FF).buffers() if id(b) not in own)
    whole, low_rank = 256 * 64 * 2, 51 * ((256 + 64) * 2 + 4)
    assert sum(kept) == min(whole, low_rank) and sorted(side_adapter_bytes(files, torch.float16)[FF]) == kept


def test_a_loha_of_small_factors_in_float16_keeps_its_digits(tmp_path):
    # Factors about 1e-3: the products up = w1_a ⊙ w2_a and down = w1_b ⊙ w2_b, about 1e-6, are below float16's
    # normal numbers (6.1e-5), where a cast keeps few of their digits (or none); rescaled by a power of two first,
    # into the float32 scale, they keep float16's. A scale of 1e8 brings the update to a float16 number.
    path = _write(tmp_path / "loha.safetensors", {name: 1e-3 * t for name, t in _loha(2).items()}, alpha=2e8)
    x = torch.randn(3, 64, generator=g)
    updates = {}
    for dtype in (torch.float16, torch.float32):
        packed = tiny_transformer(quantized=True)
        apply_loras(packed, read_loras([LoRASpec(path)], lora_targets(packed)), dtype)
        updates[dtype] = packed.get_submodule(FF).update(x.to(dtype), slice(None)).float()
    reference = updates[torch.float32]
    assert reference.abs().max() > 1e-4  # a normal float16 number
    torch.testing.assert_close(updates[torch.float16], reference, rtol=1e-2, atol=reference.abs().max() * 2e-3)


def _counted_flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


ADAPTERS = {
    "lora": {"lora_down.weight": torch.randn(4, 64, generator=g), "lora_up.weight": torch.randn(256, 4, generator=g)},
    "loha-as-a-lora": LOHA,
    "loha-kept-whole": _loha(8),
    **{f"lokr-{name}": parts for name, (parts, *_) in LOKR.items()},
    # w1 [2, 8] and w2 [128, 8]: the other order of LoKrLinear's two products is the cheaper one
    "lokr-w1-first": {"lokr_w1": torch.randn(2, 8, generator=g), "lokr_w2": torch.randn(128, 8, generator=g)},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_the_flops_of_adapters_beside_a_packed_linear_are_what_torch_counts(tmp_path, adapter, dtype):
    # The time estimate's count of an adapter's work, against torch's FLOP counter on the layer's forward with it
    # and without it (a LoHa kept whole doubles the layer's GEMM).
    packed = tiny_transformer(quantized=True)
    x = torch.randn(3, 5, 64, generator=g).to(dtype)
    base = _counted_flops(lambda: packed.get_submodule(FF)(x))
    _, files = applied(packed, [_write(tmp_path / "adapter.safetensors", ADAPTERS[adapter])], dtype)
    with_adapter = _counted_flops(lambda: packed.get_submodule(FF)(x))
    assert with_adapter - base == 2 * 15 * side_adapter_macs(files, dtype)[FF] > 0


TEMPORARIES = {
    **ADAPTERS,
    # A rank above the layer's width: the float32 [rank] tensors, not the [out] update, are the most kept alive.
    "lora-rank-above-out": {
        "lora_down.weight": torch.randn(300, 64, generator=g),
        "lora_up.weight": torch.randn(256, 300, generator=g),
    },
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("adapter", list(TEMPORARIES))
def test_the_temporaries_of_adapters_beside_a_packed_linear_are_what_their_forward_keeps_alive(
    tmp_path, adapter, dtype
):
    # The memory plan's count of what an adapter keeps alive beside its layer's output (the layer's forward is
    # `base(x) + update(x)`: the base's output is the plain layer's), against the tensors the update and the sum
    # really keep alive together, counted exactly on the CPU.
    packed = tiny_transformer(quantized=True)
    _, files = applied(packed, [_write(tmp_path / "adapter.safetensors", TEMPORARIES[adapter])], dtype)
    layer = packed.get_submodule(FF)
    x = torch.randn(3, 5, 64, generator=g).to(dtype)
    with torch.no_grad():
        base_output = layer.base(x)
        with LiveTensors() as live:
            output = base_output + layer.update(x, slice(None))
    torch.testing.assert_close(output, layer(x))  # what the layer's forward computes, the same way
    assert live.peak_bytes == 15 * side_adapter_temporary_bytes(files, dtype)[FF] > 0


def test_the_plans_activations_count_what_adapters_add_to_a_forwards_peak(tmp_path):
    # Beside each packed linear an adapter's update and the sum it is added into live next to the layer's output:
    # the plan left them out. One layer runs at a time, so what they add to a forward's peak is at most one layer's
    # (`adapter_temporary_bytes`: each layer at the rows it runs on), not the sum over layers; a real forward's
    # peak grows, by no more than that.
    packed = tiny_transformer(quantized=True)
    latent, text = (3, 8, 12), 7
    _, without = estimate_and_live_peak(packed, None, "torch", latent, text)
    _, files = applied(packed, [write_heavy_lora(tmp_path / "heavy.safetensors", packed.config, rank=4)])
    _, with_adapters = estimate_and_live_peak(packed, None, "torch", latent, text)
    token_bytes = side_adapter_temporary_bytes(files, torch.float32)
    tokens = latent[0] * latent[1] * latent[2] // 4
    counted = adapter_temporary_bytes(token_bytes, tokens, None, 1, text_tokens=text)
    assert 0 < with_adapters - without <= counted


@pytest.mark.parametrize("chunk", [None, 16])
def test_the_adapters_temporaries_count_each_layer_at_no_fewer_rows_than_its_calls_take(tmp_path, chunk):
    # Each adapted layer's temporaries are counted at the rows its calls take (`adapter_layer_tokens`): never fewer
    # than a real forward gives it, whole or in token pieces; the modulations (the widest layers) one row.
    packed = tiny_transformer(quantized=True)
    _, files = applied(packed, [write_heavy_lora(tmp_path / "heavy.safetensors", packed.config, rank=4)])
    latent, text = (3, 8, 12), 7
    rows: dict[str, int] = {}

    def record(name: str):
        def hook(_module, args) -> None:
            rows[name] = max(rows.get(name, 0), args[0].numel() // args[0].shape[-1])

        return hook

    adapted = side_adapter_temporary_bytes(files, torch.float32)
    handles = [packed.get_submodule(name).register_forward_pre_hook(record(name)) for name in adapted]
    try:
        estimate_and_live_peak(packed, chunk, "torch", latent, text)
    finally:
        for handle in handles:
            handle.remove()
    tokens = latent[0] * latent[1] * latent[2] // 4
    assert rows.keys() == adapted.keys()
    for name, taken in rows.items():
        assert adapter_layer_tokens(name, tokens, chunk, text) >= taken, name
    modulations = [name for name in rows if name.split(".")[2].startswith("norm")]
    assert modulations
    assert all(adapter_layer_tokens(name, tokens, chunk, text) == rows[name] == 1 for name in modulations)


def test_the_adapters_beside_a_merged_float_layer_cost_nothing(tmp_path):
    files = read_loras([LoRASpec(_write(tmp_path / "lora.safetensors", LOHA), 1.0)], lora_targets(tiny_transformer()))
    model = tiny_transformer()
    x = torch.randn(3, 64, generator=g)
    base = _counted_flops(lambda: model.get_submodule(FF)(x))
    apply_loras(model, files)
    assert _counted_flops(lambda: model.get_submodule(FF)(x)) == base  # merged: nothing beside the layer
    assert side_adapter_macs(files, torch.float32)[FF] > 0  # what it would cost beside a packed one


@pytest.mark.parametrize(("cross_dual", "decoder_layers"), [(False, 1), (True, 2), (False, 0)])
def test_the_time_estimate_counts_each_adapter_at_the_tokens_its_layer_projects(cross_dual, decoder_layers):
    # An adapter of one multiply-add per token on each block linear costs 2 FLOPs per token the layer projects:
    # torch's counter of a real forward says how many that is (the layer's FLOPs over its weights, 2 each).
    config = {**TINY, "enable_text_cross_attention_dual": cross_dual, "num_decoder_layers": decoder_layers}
    config = TransformerConfig.from_dict(config)
    model = MotifVideoTransformer(config).eval()
    x = inputs(batch=1, frames=3, height=16, width=16, text=7, masked=False)  # N = 192 video tokens, T = 7
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x["latents"], x["timestep"], x["text_embeds"])
    counts = counter.get_flop_counts()
    linears = {
        name: layer
        for name, layer in model.named_modules()
        if isinstance(layer, torch.nn.Linear) and name.startswith(("transformer_blocks.", "single_transformer"))
        and ".norm" not in name  # the per-sample modulation, which the estimate leaves out as it does its layer
    }  # fmt: skip
    for name, layer in linears.items():
        counted = sum(counts[f"MotifVideoTransformer.{name}"].values())
        tokens = counted // (2 * layer.in_features * layer.out_features)
        assert cost.adapter_flops(config, {name: 1}, video_tokens=192, text_tokens=7) == 2 * tokens, name
    assert cost.adapter_flops(config, {"proj_out": 5, "transformer_blocks.0.norm1.linear": 5}, 192, 7) == 0


def test_a_generations_cost_adds_its_adapters_flops_to_every_transformer_call():
    config, vae_config = TransformerConfig.from_dict(TINY), WanVAEConfig()
    shape, size = TextEncoderShape(), (64, 64, 9, 3)
    prompts = ("a cat on a mat", "blurry")
    macs = {"transformer_blocks.0.ff.net.0.proj": 1000, "single_transformer_blocks.0.proj_mlp": 7}
    plain = cost.generation_cost(config, vae_config, shape, *size, prompts, guided_steps=2)
    with_adapters = cost.generation_cost(config, vae_config, shape, *size, prompts, 2, adapter_macs=macs)
    n = video_tokens(*size[:3], config, vae_config)
    calls = [(3, cost.prompt_tokens(prompts[0])), (2, cost.prompt_tokens(prompts[1]))]
    added = sum(count * cost.adapter_flops(config, macs, n, t) for count, t in calls)
    assert with_adapters.denoise == plain.denoise + added > plain.denoise
    assert (with_adapters.text, with_adapters.decode) == (plain.text, plain.decode)


def blocks_packed_whole() -> MotifVideoTransformer:
    """The tiny transformer with every linear of its blocks packed (random Q8_0 bytes): a LoRA stays beside each,
    the output projections and the text's K/V projections too."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf_helpers import random_packed

    from motif_lite.weights.quant_linear import QuantizedLinear

    model = tiny_transformer()
    rng = np.random.default_rng(0)
    for name, module in list(model.named_modules()):
        in_blocks = name.startswith(("transformer_blocks.", "single_transformer_blocks."))
        if in_blocks and isinstance(module, torch.nn.Linear):
            packed = torch.from_numpy(random_packed(GGMLQuantizationType.Q8_0, module.weight.shape, rng))
            layer = QuantizedLinear.from_packed(packed, GGMLQuantizationType.Q8_0, module.in_features, module.bias.data)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer)
    return model


@pytest.mark.parametrize("chunk", [None, 4])
def test_the_adapters_rows_count_the_image_tokens_of_a_context_longer_than_the_video(tmp_path, chunk):
    # With a first frame the context is the text and the image tokens: the dual-stream blocks' context stream (and,
    # in token pieces, its output projection `attn.to_add_out`, which takes the stream whole) runs on all of them.
    packed = blocks_packed_whole()
    _, files = applied(packed, [write_heavy_lora(tmp_path / "heavy.safetensors", packed.config, rank=4)])
    latent, text, image = (1, 4, 4), 7, 9
    rows: dict[str, int] = {}

    def record(name: str):
        def hook(_module, args) -> None:
            rows[name] = max(rows.get(name, 0), args[0].numel() // args[0].shape[-1])

        return hook

    adapted = side_adapter_temporary_bytes(files, torch.float32)
    handles = [packed.get_submodule(name).register_forward_pre_hook(record(name)) for name in adapted]
    try:
        estimate_and_live_peak(packed, chunk, "torch", latent, text, image_tokens=image)
    finally:
        for handle in handles:
            handle.remove()
    tokens = latent[0] * latent[1] * latent[2] // 4
    assert max(rows.values()) >= text + image > tokens  # the context stream is the longest call
    for name, taken in rows.items():
        assert adapter_layer_tokens(name, tokens, chunk, text, image) >= taken, name


@pytest.mark.parametrize("packing", list(PACKED))
def test_the_summarys_adapters_beside_them_are_the_bytes_the_memory_plan_counts(tmp_path, packing):
    # The run summary's "adapters beside them" was checked against the plan's count for a plain LoRA alone: a LoHa
    # and two LoKr (each its own wrapper around the one before) on one packed layer, in a 16-bit dtype, too.
    paths = [_write(tmp_path / "loha.safetensors", LOHA), _write(tmp_path / "lokr.safetensors", LOKR["both-whole"][0]),
             _write(tmp_path / "lokr2.safetensors", LOKR["w1-whole-w2-product"][0])]  # fmt: skip
    summary, files = applied(PACKED[packing](), paths, torch.bfloat16)
    planned = sum(sum(each) for each in side_adapter_bytes(files, torch.bfloat16).values())
    assert summary.wrapped == 1 and summary.beside_bytes == planned > 0
