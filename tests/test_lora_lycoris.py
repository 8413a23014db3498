"""LyCORIS LoHa and LoKr files (kohya-style keys: `<module>.hada_w1_a`, `.lokr_w1`, ..., `.alpha`): merged into the
linears' float weights as LyCORIS defines the change (LoHa `(w1a·w1b) ⊙ (w2a·w2b)`, LoKr `w1 ⊗ w2`, times
strength × alpha / rank), checked here against that definition computed by hand; refused, before any weight is
read, for the variants not read (Tucker cores, convolutions). On packed linears they are kept beside the weight:
tests/test_lora_packed.py."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from speed_helpers import tiny_transformer
from tiny_pipeline import make_tiny_checkpoint

from motif_lite import cli
from motif_lite.cli import main as cli_main
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.weights.lora import check_read_loras, diff_targets, lora_targets, read_loras
from motif_lite.weights.lora_apply import apply_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec

FF = "transformer_blocks.0.ff.net.0.proj"  # a [256, 64] linear
KEY = "lora_unet_" + FF.replace(".", "_")  # as LyCORIS and kohya name it
STRENGTH = 0.7


def _write(path: Path, parts: dict[str, torch.Tensor], alpha: float | None = 6.0) -> Path:
    tensors = {f"{KEY}.{name}": t for name, t in parts.items()}
    if alpha is not None:
        tensors[f"{KEY}.alpha"] = torch.tensor(alpha)
    save_file(tensors, path)
    return path


def _kron_by_hand(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The Kronecker product from its definition: block (i, j) of the result is w1[i, j] · w2."""
    (a, c), (b, d) = w1.shape, w2.shape
    out = torch.empty(a * b, c * d)
    for i in range(a):
        for j in range(c):
            out[i * b : (i + 1) * b, j * d : (j + 1) * d] = w1[i, j] * w2
    return out


def _merged(path: Path) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(the weight of FF before, after merging the file at STRENGTH, the applied summary)."""
    model = tiny_transformer()
    before = copy.deepcopy(model.get_submodule(FF).weight.detach())
    (read,) = read_loras([LoRASpec(path, STRENGTH)], lora_targets(model), diff_targets(model))
    applied = apply_loras(model, [read])
    return before, model.get_submodule(FF).weight.detach(), applied


g = torch.Generator().manual_seed(0)
W1, W1A, W1B = torch.randn(8, 2, generator=g), torch.randn(8, 4, generator=g), torch.randn(4, 2, generator=g)
W2, W2A, W2B = torch.randn(32, 32, generator=g), torch.randn(32, 4, generator=g), torch.randn(4, 32, generator=g)
# LoKr variants as LyCORIS saves them (one rank for both products): (parts, w1, w2, LyCORIS' scale before the
# strength with alpha 6).
LOKR = {
    "w1-whole-w2-product": ({"lokr_w1": W1, "lokr_w2_a": W2A, "lokr_w2_b": W2B}, W1, W2A @ W2B, 6.0 / 4),
    "both-products": ({"lokr_w1_a": W1A, "lokr_w1_b": W1B, "lokr_w2_a": W2A, "lokr_w2_b": W2B}, W1A @ W1B, W2A @ W2B,
                      6.0 / 4),
    "both-whole": ({"lokr_w1": W1, "lokr_w2": W2}, W1, W2, 1.0),  # no rank: LyCORIS ignores alpha (scale 1)
}  # fmt: skip


@pytest.mark.parametrize("variant", list(LOKR))
def test_a_lokr_merges_as_lycoris_defines_it(tmp_path, variant):
    parts, w1, w2, scale = LOKR[variant]
    before, after, applied = _merged(_write(tmp_path / "lokr.safetensors", parts))
    expected = before + STRENGTH * scale * _kron_by_hand(w1, w2)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert applied.merged == 1 and not applied.wrapped
    assert applied.describe() == "lokr.safetensors x0.7 (lycoris, 1 layer); 1 layer merged, 0 unmerged (packed)"


def test_a_loha_merges_as_lycoris_defines_it(tmp_path):
    parts = {
        "hada_w1_a": torch.randn(256, 2, generator=g),
        "hada_w1_b": torch.randn(2, 64, generator=g),
        "hada_w2_a": torch.randn(256, 2, generator=g),
        "hada_w2_b": torch.randn(2, 64, generator=g),
    }
    before, after, _ = _merged(_write(tmp_path / "loha.safetensors", parts, alpha=1.0))
    # Element (o, i) of the change: (Σ_r w1_a[o, r]·w1_b[r, i]) · (Σ_r w2_a[o, r]·w2_b[r, i]), times alpha / rank.
    first = sum(parts["hada_w1_a"][:, r, None] * parts["hada_w1_b"][None, r, :] for r in range(2))
    second = sum(parts["hada_w2_a"][:, r, None] * parts["hada_w2_b"][None, r, :] for r in range(2))
    torch.testing.assert_close(after, before + STRENGTH * 1.0 / 2 * first * second, rtol=1e-5, atol=1e-5)


def test_a_lycoris_file_without_alpha_has_scale_one_and_strength_zero_changes_nothing(tmp_path):
    parts, w1, w2, _ = LOKR["w1-whole-w2-product"]
    before, after, _ = _merged(_write(tmp_path / "lokr.safetensors", parts, alpha=None))
    torch.testing.assert_close(after, before + STRENGTH * _kron_by_hand(w1, w2), rtol=1e-5, atol=1e-5)
    model = tiny_transformer()
    original = model.get_submodule(FF).weight.detach().clone()
    (read,) = read_loras([LoRASpec(tmp_path / "lokr.safetensors", 0.0)], lora_targets(model))
    apply_loras(model, [read])
    assert torch.equal(model.get_submodule(FF).weight, original)


def test_a_lycoris_file_saved_before_training_is_said_to_have_no_effect(tmp_path):
    parts = {**LOKR["w1-whole-w2-product"][0], "lokr_w2_b": torch.zeros(4, 32)}  # LyCORIS starts w2_b at zero
    (read,) = read_loras([LoRASpec(_write(tmp_path / "lokr.safetensors", parts))], lora_targets(tiny_transformer()))
    assert read.is_zero() and "all zero: no effect" in read.describe()


@pytest.mark.parametrize(
    "parts, said",
    [
        ({"lokr_w1": W1, "lokr_w2_a": W2A}, "the LoKr of .* has no lokr_w2 or lokr_w2_b"),
        ({"hada_w1_a": torch.randn(256, 2), "hada_w1_b": torch.randn(2, 64)}, "has no hada_w2_a, hada_w2_b"),
        ({"lokr_w1": W1, "lokr_w2": torch.randn(16, 32)}, r"makes a change of shape \[128, 64\], but the layer is "
                                                          r"\[256, 64\]"),
        ({"lokr_w1": W1, "lokr_w2_a": W2A, "lokr_w2_b": torch.randn(3, 32)}, "parts of .* do not multiply"),
        ({"lokr_w1": W1, "lokr_w2_a": W2A, "lokr_w2_b": W2B, "lokr_t2": torch.randn(4, 4)},
         "is a LyCORIS LoHa or LoKr with a Tucker core"),
        ({"lokr_w1_a": torch.randn(8, 3), "lokr_w1_b": torch.randn(3, 2), "lokr_w2_a": W2A, "lokr_w2_b": W2B},
         "has rank 3 in lokr_w1_a and 4 in lokr_w2_a; LyCORIS writes one rank for both: the file was edited"),
        # The larger rank first: each order is refused, not only the one LyCORIS' lokr_w1_a would win.
        ({"lokr_w1_a": torch.randn(8, 5), "lokr_w1_b": torch.randn(5, 2), "lokr_w2_a": W2A, "lokr_w2_b": W2B},
         "has rank 5 in lokr_w1_a and 4 in lokr_w2_a; LyCORIS writes one rank for both: the file was edited"),
        ({"lokr_w1": W1, "lokr_w1_a": W1A, "lokr_w1_b": W1B, "lokr_w2_a": W2A, "lokr_w2_b": W2B},
         "holds lokr_w1 and lokr_w1_a, lokr_w1_b, which LyCORIS never writes together: the file was edited"),
        # One half of a product beside the whole matrix: without the check, a KeyError for the missing lokr_w1_b.
        ({"lokr_w1": W1, "lokr_w1_a": W1A, "lokr_w2_a": W2A, "lokr_w2_b": W2B},
         "holds lokr_w1 and lokr_w1_a, which LyCORIS never writes together: the file was edited"),
        ({"lokr_w1": torch.full((8, 2), 1e30), "lokr_w2": torch.full((32, 32), 1e30)},
         r"lokr\.safetensors: the LoKr of .* makes a change past the largest float: the file was edited"),
        # Each product of w2's elements (1e38) fits, as does w2 times w1 and the scale 1.5; their sum of 4 does not.
        ({"lokr_w1": torch.ones(8, 2), "lokr_w2_a": torch.full((32, 4), 1e19), "lokr_w2_b": torch.full((4, 32), 1e19)},
         "the LoKr of .* makes a change past the largest float"),
        # Each element of w2_a·w2_b's sum (1e38) times w1's (1) and the scale 6/2 fits; the sums of 2 do not.
        ({"hada_w1_a": torch.ones(256, 2), "hada_w1_b": torch.ones(2, 64), "hada_w2_a": torch.full((256, 2), 1e19),
          "hada_w2_b": torch.full((2, 64), 1e19)},
         "the LoHa of .* makes a change past the largest float"),
        # w2 alone (sums of 4 products of 1e38) is past the largest float, so the merged weight would be inf, though
        # its product with the tiny w1 (about 4e28) fits: each side is bounded, not only the change.
        ({"lokr_w1": torch.full((8, 2), 1e-10), "lokr_w2_a": torch.full((32, 4), 1e19),
          "lokr_w2_b": torch.full((4, 32), 1e19)},
         "the LoKr of .* makes a change past the largest float"),
    ],
    ids=["lokr-missing", "loha-missing", "other-shape", "inner-sizes", "tucker", "unequal-ranks",
         "unequal-ranks-larger-first", "w1-twice", "w1-beside-half-a-product", "lokr-overflow",
         "lokr-product-overflow", "loha-overflow", "lokr-side-overflow"],
)  # fmt: skip
def test_a_lycoris_file_that_cannot_be_read_says_why(tmp_path, parts, said):
    with pytest.raises(LoRAError, match=said):
        read_loras([LoRASpec(_write(tmp_path / "lokr.safetensors", parts))], lora_targets(tiny_transformer()))


# A LoKr whose w2 (sums of 4 products of 1e18: 4e36) and its change fit at scale 1: past the largest float only
# once scaled by its alpha or the strength.
SCALED_ONLY = {
    "lokr_w1": torch.ones(8, 2),
    "lokr_w2_a": torch.full((32, 4), 1e18),
    "lokr_w2_b": torch.full((4, 32), 1e18),
}


def test_a_lycoris_change_past_the_largest_float_only_through_its_alpha_is_refused(tmp_path):
    path = _write(tmp_path / "lokr.safetensors", SCALED_ONLY, alpha=400.0)  # scale 100: 4e38 in each element
    with pytest.raises(
        LoRAError, match=r"the LoKr of .* \(scale 100\) makes a change past the largest float: the file"
    ):
        read_loras([LoRASpec(path)], lora_targets(tiny_transformer()))


def test_a_lycoris_change_past_the_largest_float_only_through_the_strength_names_the_strength(
    checkpoint, tmp_path, capsys
):
    path = _write(tmp_path / "lokr.safetensors", SCALED_ONLY)  # alpha 6, rank 4: scale 1.5 at strength 1
    below = torch.finfo(torch.float32).max / (4 * 1e18 * 1e18 * 1.5)  # about 56.7
    said = rf"lokr\.safetensors: strength 57 scales the change of {re.escape(FF)} past the largest float \(the "
    said += rf"file's change fits at strengths between about {-below:.3g} and {below:.3g}\)"
    with pytest.raises(LoRAError, match=said):
        read_loras([LoRASpec(path, 57.0)], lora_targets(tiny_transformer()))
    model = tiny_transformer()  # just below, read and merged as numbers
    apply_loras(model, read_loras([LoRASpec(path, 56.0)], lora_targets(model)))
    assert torch.isfinite(model.get_submodule(FF).weight).all()
    root, _ = checkpoint
    args = ["run", "-m", str(root), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    assert cli_main([*args, "--lora", f"{path}:57", "--dry-run"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert re.search(said, err) and "Traceback" not in err and "edited" not in err, err


def test_a_lokr_of_the_patch_embedders_conv_is_refused_as_not_read(tmp_path):
    model = tiny_transformer()
    out, inp, *kernel = lora_targets(model)["x_embedder.proj"]
    tensors = {"lora_unet_x_embedder_proj.lokr_w1": torch.randn(4, 3),
               "lora_unet_x_embedder_proj.lokr_w2": torch.randn(out // 4, inp // 3, *kernel)}  # fmt: skip
    save_file(tensors, tmp_path / "conv.safetensors")
    said = r"the {} of x_embedder\.proj changes a convolution: motif-lite reads LoHa/LoKr on linear layers only"
    with pytest.raises(LoRAError, match=said.format("LoKr")):
        read_loras([LoRASpec(tmp_path / "conv.safetensors")], lora_targets(model))
    # LyCORIS (and ComfyUI) store a conv's LoHa as 2-D factors, the kernel flattened into w1_b's and w2_b's columns.
    flat = inp * math.prod(kernel)
    loha = {"hada_w1_a": (out, 2), "hada_w1_b": (2, flat), "hada_w2_a": (out, 2), "hada_w2_b": (2, flat)}
    save_file(
        {f"lora_unet_x_embedder_proj.{n}": torch.randn(s) for n, s in loha.items()}, tmp_path / "loha.safetensors"
    )
    with pytest.raises(LoRAError, match=said.format("LoHa")):
        read_loras([LoRASpec(tmp_path / "loha.safetensors")], lora_targets(model))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny checkpoint and its Q8_0 GGUF transformer."""
    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoint(root)
    gguf = root / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(root / "transformer"), gguf, get_recipe("Q8_0"), progress=False)
    return root, gguf


def test_a_run_merges_a_lokr_into_float_weights_and_keeps_it_beside_gguf_ones(checkpoint, tmp_path, capsys):
    root, gguf = checkpoint
    lokr = _write(tmp_path / "lokr.safetensors", LOKR["both-products"][0])
    base = ["run", "-m", str(root), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    base += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "--lora", f"{lokr}:0.7"]
    assert cli_main([*base, "-o", str(tmp_path / "float.mp4")]) == 0
    assert "loras: lokr.safetensors x0.7 (lycoris, 1 layer); 1 layer merged, 0 unmerged" in capsys.readouterr().out
    # Was refused on GGUF weights, the full-rank change being made only to merge it.
    assert cli_main([*base, "--gguf", str(gguf), "-o", str(tmp_path / "gguf.mp4")]) == 0
    out = capsys.readouterr().out
    assert "loras: lokr.safetensors x0.7 (lycoris, 1 layer); 0 layers merged, 1 unmerged (packed)" in out, out


@pytest.mark.parametrize(
    "values, alpha, strength, said",
    [
        # No alpha (a kohya or PEFT file without one): was a TypeError formatting it.
        (1e20, None, "", r"the LoRA of {} \(scale 1\) makes a change past the largest float: the file was edited"),
        # up·down (4e38) is made in float32 before its scale 1/4: inf, though the scaled change would fit.
        (1e19, 1.0, "", r"the LoRA of {} \(scale 0\.25, alpha 1 \(lora_alpha, alpha_pattern or its \.alpha tensor\)\) "
                        r"makes a change past the largest float: the file was edited"),
        # The file's change (4e36) fits; the user's strength takes it past.
        (1e18, None, ":1e42", r"strength 1e\+42 scales the change of {} past the largest float \(the file's change "
                              r"fits at strengths between about -85\.1 and 85\.1\); use a smaller strength"),
    ],
    ids=["no-alpha", "unscaled-product", "strength"],
)  # fmt: skip
def test_a_plain_lora_change_past_the_largest_float_is_refused_in_one_line(
    checkpoint, tmp_path, capsys, values, alpha, strength, said
):
    root, _ = checkpoint
    tensors = {
        f"{KEY}.lora_down.weight": torch.full((4, 64), values),
        f"{KEY}.lora_up.weight": torch.full((256, 4), values),
    }
    if alpha is not None:
        tensors[f"{KEY}.alpha"] = torch.tensor(alpha)
    save_file(tensors, tmp_path / "plain.safetensors")
    args = ["run", "-m", str(root), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    code = cli_main([*args, "--lora", f"{tmp_path / 'plain.safetensors'}{strength}", "--dry-run"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert re.search(r"plain\.safetensors: " + said.format(re.escape(FF)), err), err


def test_a_peft_file_with_lycoris_modules_keeps_peft_alpha_for_its_lora_modules(tmp_path):
    model = tiny_transformer()
    query = next(name for name in lora_targets(model) if name.endswith("attn.to_q"))
    out_features, in_features = lora_targets(model)[query]
    peft = {f"transformer.{query}.lora_A.weight": torch.randn(2, in_features, generator=g),
            f"transformer.{query}.lora_B.weight": torch.randn(out_features, 2, generator=g)}  # fmt: skip
    lokr = {f"transformer.{FF}.lokr_w1": W1, f"transformer.{FF}.lokr_w2": W2}
    metadata = {"lora_adapter_metadata": json.dumps({"r": 2, "lora_alpha": 8})}
    save_file({**peft, **lokr}, tmp_path / "mixed.safetensors", metadata=metadata)
    (read,) = read_loras([LoRASpec(tmp_path / "mixed.safetensors", STRENGTH)], lora_targets(model))
    assert read.format == "lycoris" and len(read.products) == 1
    (update,) = read.updates
    assert update.module == query and update.scale == pytest.approx(STRENGTH * 8 / 2)  # PEFT's lora_alpha / r


def test_a_diff_on_a_quantize_pipeline_is_refused_before_the_transformer_is_let_go(checkpoint, tmp_path):
    from test_lora import frames

    from motif_lite import load_pipeline
    from motif_lite.server.loras import check_loras_fit
    from motif_lite.server.schema import ApiError

    root, _ = checkpoint
    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{FF}.diff": torch.zeros(256, 64)}, diff)
    float_model = tiny_transformer()
    (on_float,) = read_loras([LoRASpec(diff)], lora_targets(float_model), diff_targets(float_model))
    pipe = load_pipeline(root, quantize="Q8_0", dtype=torch.float32, device="cpu", kernels="torch")
    (tmp_path / "before").mkdir()
    transformer, before = pipe.transformer, frames(pipe, tmp_path / "before")
    packed = "which --quantize Q8_0 packs as it loads: .*; leave out --quantize"
    for mistake in ([diff], [on_float]):  # the file, and as run reads it, against the float transformer
        with pytest.raises(LoRAError, match=packed):
            pipe.set_loras(mistake)
        assert pipe.transformer is transformer
    client = "which --quantize Q8_0 packs as it loads: .*; send a LoRA without full differences"  # not a flag
    with pytest.raises(ApiError, match=client) as refused:  # the server refuses such a job when it is sent
        check_loras_fit(pipe, [(diff, 1.0)], tmp_path)
    assert refused.value.status == 400
    (tmp_path / "after").mkdir()
    assert np.array_equal(frames(pipe, tmp_path / "after"), before)


def test_a_lycoris_file_read_for_another_model_counts_its_layers(tmp_path):
    parts, *_ = LOKR["w1-whole-w2-product"]
    (read,) = read_loras([LoRASpec(_write(tmp_path / "lokr.safetensors", parts))], lora_targets(tiny_transformer()))
    other = {name: shape for name, shape in lora_targets(tiny_transformer()).items() if name != FF}  # lacks FF
    with pytest.raises(LoRAError, match=r"read for another model: its one layer is missing from this transformer"):
        check_read_loras([read], other)


def test_a_loha_of_two_ranks_is_scaled_by_its_first_products_rank(tmp_path):
    # LyCORIS writes one rank for both products; an edited file with two is scaled as the docstring of layer_product
    # and ComfyUI's loader say: alpha over w1_b's rows (here 2, not w2's 3).
    parts = {
        "hada_w1_a": torch.randn(256, 2, generator=g),
        "hada_w1_b": torch.randn(2, 64, generator=g),
        "hada_w2_a": torch.randn(256, 3, generator=g),
        "hada_w2_b": torch.randn(3, 64, generator=g),
    }
    before, after, _ = _merged(_write(tmp_path / "loha.safetensors", parts, alpha=1.0))
    change = (parts["hada_w1_a"] @ parts["hada_w1_b"]) * (parts["hada_w2_a"] @ parts["hada_w2_b"])
    torch.testing.assert_close(after, before + STRENGTH * 1.0 / 2 * change, rtol=1e-5, atol=1e-5)


def test_a_loha_whose_two_products_differ_in_columns_is_refused_before_merging(tmp_path):
    # (w1a·w1b) ⊙ (w2a·w2b) needs both products of one shape: w2_b of 32 columns against w1_b's 64 would fail in the
    # merge (a traceback) had it got there.
    parts = {
        "hada_w1_a": torch.randn(256, 2, generator=g),
        "hada_w1_b": torch.randn(2, 64, generator=g),
        "hada_w2_a": torch.randn(256, 2, generator=g),
        "hada_w2_b": torch.randn(2, 32, generator=g),
    }
    path = _write(tmp_path / "loha.safetensors", parts)
    with pytest.raises(LoRAError, match=r"the LoHa parts of .* do not multiply \(hada_w1_a \[256, 2\], .*"):
        read_loras([LoRASpec(path, STRENGTH)], lora_targets(tiny_transformer()))
