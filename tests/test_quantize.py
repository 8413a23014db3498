"""K-quant encoders and recipes: round trips through gguf-py's decoder (the format's ground truth)."""

import llama_kquants
import numpy as np
import pytest
import quantize_helpers
import torch
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from gguf import quants as gguf_quants
from round_trips import data, naive_rtn, rel_rmse, round_trip

from motif_lite.errors import ConfigError
from motif_lite.quantize import get_recipe, parse_keep, plan_types, quantize_tensor, search, tensor_class
from motif_lite.quantize.recipes import fit_row, keep_fallbacks

# Relative RMSE bounds, a few % above what these encoders measure on round_trips.py's fixed data
# (gaussian, Student-t with 3 dof). K-quant figures match llama.cpp's reference quantizers.
BOUNDS = {
    Q.Q2_K: (0.31, 0.37),
    Q.Q3_K: (0.157, 0.196),
    Q.Q4_K: (0.075, 0.097),
    Q.Q5_K: (0.038, 0.049),
    Q.Q6_K: (0.0185, 0.027),
    Q.Q8_0: (0.0057, 0.0089),
    Q.Q4_0: (0.090, 0.134),
    Q.Q4_1: (0.080, 0.105),
    Q.Q5_0: (0.045, 0.070),
    Q.Q5_1: (0.040, 0.051),
    Q.F16: (0.0003, 0.0003),
    Q.BF16: (0.0019, 0.0019),
}
K_QUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# (bits, group size) of a naive symmetric absmax round-to-nearest code with the same level count.
NAIVE = {Q.Q2_K: (2, 16), Q.Q3_K: (3, 16), Q.Q4_K: (4, 32), Q.Q5_K: (5, 32), Q.Q6_K: (6, 16)}


@pytest.mark.parametrize("kind", ["gauss", "student_t"])
@pytest.mark.parametrize("qtype", list(BOUNDS), ids=lambda q: q.name)
def test_round_trip_error(qtype, kind):
    x, result = data(kind), round_trip(qtype, kind)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    assert result.packed.dtype == np.uint8
    assert result.packed.shape == (32, 4096 // block_size * type_size)
    assert result.approx.shape == x.shape
    assert rel_rmse(x, result.approx) < BOUNDS[qtype][kind != "gauss"]


@pytest.mark.parametrize("kind", ["gauss", "student_t"])
@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda q: q.name)
def test_k_quants_beat_naive_round_to_nearest(qtype, kind):
    x = data(kind)
    assert rel_rmse(x, round_trip(qtype, kind).approx) < rel_rmse(x, naive_rtn(x, *NAIVE[qtype]))


def test_k_quant_ladder_is_monotonic():
    x = data("gauss")
    errors = [rel_rmse(x, round_trip(q, "gauss").approx) for q in K_QUANTS]
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("qtype", K_QUANTS + [Q.Q8_0, Q.Q4_0], ids=lambda q: q.name)
def test_matches_motif_lite_dequantizer(qtype):
    from motif_lite.weights import dequant

    x = data("student_t")[:4]
    packed = quantize_tensor(x, qtype)
    ours = dequant.dequantize(torch.from_numpy(packed), qtype, x.shape)
    np.testing.assert_array_equal(ours.numpy(), gguf_quants.dequantize(packed, qtype))


@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda q: q.name)
def test_degenerate_blocks(qtype):
    x = np.zeros((4, 512), np.float32)
    x[1] = 0.5  # constant
    x[2, :256] = -0.25  # constant negative super-block
    x[3, 7] = 1e3  # one outlier among zeros
    approx = gguf_quants.dequantize(quantize_tensor(x, qtype), qtype)
    assert np.isfinite(approx).all()
    np.testing.assert_array_equal(approx[0], 0.0)
    assert np.abs(approx[3, 7] - 1e3) < 0.05 * 1e3
    assert np.abs(approx[1] - 0.5).max() < 0.05
    assert np.abs(approx[2, :256] + 0.25).max() < 0.05


def _same_as_llama_cpp(x: np.ndarray, qtype: Q) -> float:
    """The share of sub-blocks that decode to the values llama.cpp's reference encoder gives them."""
    ours = gguf_quants.dequantize(quantize_tensor(x, qtype), qtype)
    sub_block = 32 if qtype in (Q.Q4_K, Q.Q5_K) else 16
    return float((ours == llama_kquants.decoded_reference(x, qtype)).reshape(-1, sub_block).all(axis=1).mean())


@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda q: q.name)
def test_k_quants_decode_to_llama_cpps_reference_values(qtype):
    # Against a plain per-sub-block model of llama.cpp's encoders (their importance weights, candidate grids or
    # level moves, super-block codes): a different search or weighting changes 5 % of the sub-blocks or more.
    # A few may differ either way: fits whose errors tie within float32 rounding (llama.cpp sums in another
    # order, and Q4_K/Q5_K's error from the sums loses a few digits): up to 2.2 % of them here.
    assert _same_as_llama_cpp(data("gauss")[:8], qtype) > 0.96


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q4_K, Q.Q5_K], ids=lambda q: q.name)
def test_all_positive_sub_blocks_are_fitted_as_llama_cpp_fits_them(qtype):
    # Values all above 0: the least-squares offset comes out positive, which the format cannot hold, so the
    # scale is refitted through 0 (up to 5 % of the fits tie here; a search without the refit matches 20 % or less).
    assert _same_as_llama_cpp(np.abs(data("gauss")[:4]) + 0.5, qtype) > 0.85


@pytest.mark.parametrize("qtype", [Q.Q3_K, Q.Q6_K], ids=lambda q: q.name)
def test_opposite_extremes_are_fitted_as_llama_cpp_fits_them(qtype):
    # Levels run from -n to n-1: with +m and -m in a sub-block, the one that is not taken as the maximum would
    # want level n, which every candidate scale's fit must clamp to n-1 as the stored levels are (all match here).
    x = data("gauss")[:4].reshape(-1, 16)
    top = np.abs(x).max(axis=1)
    x[:, 3], x[:, 9] = top, -top
    assert _same_as_llama_cpp(x.reshape(4, -1), qtype) > 0.9


def test_q6_k_blocks_below_llama_cpps_epsilon_are_zero_bytes():
    # llama.cpp's Q6_K encoder stores a super-block whose largest sub-block scale is under GROUP_MAX_EPS as all
    # zero bytes; values of 2e-14 need a scale of 2e-14/32, under that epsilon, yet are not zero themselves.
    x = np.zeros((2, 256), np.float32)
    x[1] = 2e-14
    assert search.symmetric_scale(torch.from_numpy(x[1:]).reshape(-1, 16), 32).abs().max() < search.GROUP_MAX_EPS
    assert not quantize_tensor(x, Q.Q6_K).any()


def test_torch_bf16_input_matches_float32_numpy():
    x = torch.from_numpy(data("gauss")[:2]).bfloat16()
    np.testing.assert_array_equal(quantize_tensor(x, Q.Q4_K), quantize_tensor(x.float().numpy(), Q.Q4_K))


def test_bad_shape_and_type_raise_config_error():
    with pytest.raises(ConfigError, match="multiple of 256"):
        quantize_tensor(np.zeros((2, 320), np.float32), Q.Q4_K)
    with pytest.raises(ConfigError, match="IQ2_XXS"):
        quantize_tensor(np.zeros((2, 256), np.float32), Q.IQ2_XXS)


@pytest.fixture(scope="module")
def arch_shapes():
    return quantize_helpers.arch_shapes()


def test_q4_k_m_plan_on_the_2b_architecture(arch_shapes):
    plan = plan_types(arch_shapes, get_recipe("q4_k_m"))
    assert len(plan) == 902
    for name, shape in arch_shapes.items():
        if len(shape) != 2:
            assert plan[name] == Q.F32, name
    assert plan["context_embedder.linear_1.weight"] == Q.Q8_0
    assert plan["proj_out.weight"] == Q.Q8_0
    assert plan["transformer_blocks.5.norm1.linear.weight"] == Q.Q5_K
    assert plan["single_transformer_blocks.5.norm.linear.weight"] == Q.Q5_K
    assert plan["transformer_blocks.5.attn.to_q.weight"] == Q.Q4_K
    assert plan["transformer_blocks.5.attn.to_v.weight"] == Q.Q5_K
    assert plan["single_transformer_blocks.5.proj_out.weight"] == Q.Q5_K
    for edge in ("transformer_blocks.0.", "transformer_blocks.11.", "single_transformer_blocks.23."):
        assert plan[edge + "attn.to_q.weight"] == Q.Q6_K
    assert tensor_class("single_transformer_blocks.5.cross_attn.to_v.weight", (1536, 1536)) == "attn_v/ff_down"


def test_keep_overrides_last_rule_wins_and_falls_back_by_row(arch_shapes):
    keep = parse_keep(["transformer_blocks.*=Q8_0", "transformer_blocks.3.*=f16", "image_embedder.*=Q4_K"])
    plan = plan_types(arch_shapes, get_recipe("Q4_K_S"), keep)
    assert plan["transformer_blocks.4.ff.net.2.weight"] == Q.Q8_0
    assert plan["transformer_blocks.3.ff.net.2.weight"] == Q.F16
    assert plan["transformer_blocks.3.ff.net.2.bias"] == Q.F16
    assert plan["image_embedder.linear_1.weight"] == Q.Q5_0  # rows of 1152 cannot hold 256-blocks
    assert plan["image_embedder.linear_2.weight"] == Q.Q5_0
    assert plan["x_embedder.proj.weight"] == Q.F32


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("q4_k_m", "Q4_K_M is a recipe, a mix of tensor types (--type Q4_K_M); a --keep rule sets one tensor type, "
         "such as Q4_K, its base type"),
        ("Q3_K_L", "Q3_K_L is a recipe, a mix of tensor types (--type Q3_K_L); a --keep rule sets one tensor type, "
         "such as Q3_K, its base type"),
        ("IQ4_XS", "IQ4_XS is a GGUF type this quantizer does not make (motif-lite runs files made elsewhere with it)"),
        ("Q9", "unknown tensor type 'Q9'"),
    ],
)  # fmt: skip
def test_keep_names_a_recipe_or_a_type_not_made_as_such(given, said):
    # Every one was "unknown tensor type", though Q4_K_M is the --type a user just typed.
    with pytest.raises(ConfigError) as error:
        parse_keep([f"proj_out.*={given}"])
    assert str(error.value).startswith(f"bad --keep 'proj_out.*={given}': {said}; choose one of: Q2_K"), error.value


def test_keep_with_a_block_type_raises_matrices_and_leaves_vectors_f32(arch_shapes):
    """The --help example 'transformer_blocks.0.*=Q8_0' is meant to raise block 0: it used to store its biases and
    norms in Q8_0 too, lower than the recipe's F32."""
    plan = plan_types(arch_shapes, get_recipe("Q4_K_M"), parse_keep(["transformer_blocks.0.*=Q8_0"]))
    block = {name: shape for name, shape in arch_shapes.items() if name.startswith("transformer_blocks.0.")}
    assert {plan[name] for name, shape in block.items() if len(shape) == 2} == {Q.Q8_0}
    assert {plan[name] for name, shape in block.items() if len(shape) == 1} == {Q.F32}
    with pytest.raises(ConfigError, match="matches only 1-D tensors"):
        plan_types(arch_shapes, get_recipe("Q8_0"), parse_keep(["*.bias=Q8_0"]))


def test_keep_fallbacks_say_which_tensors_could_not_take_the_type(arch_shapes):
    keep = parse_keep(["image_embedder.*=Q4_K", "transformer_blocks.*=Q6_K", "transformer_blocks.1.*=Q8_0"])
    plan = plan_types(arch_shapes, get_recipe("Q4_K_M"), keep)
    image = [n for n, s in arch_shapes.items() if n.startswith("image_embedder.") and len(s) == 2 and s[-1] % 256]
    assert image and all(plan[name] == Q.Q5_0 for name in image)
    (line,) = keep_fallbacks(arch_shapes, plan, keep)  # Q6_K and Q8_0 fit every block matrix: no line for them
    assert line.startswith(f"--keep 'image_embedder.*=Q4_K': {len(image)} tensor(s) ({image[0]}, ...)")
    assert line.endswith("have rows that are not whole Q4_K blocks: stored as Q5_0")


def test_fit_row_fallbacks():
    assert fit_row(Q.Q4_K, 4096) == Q.Q4_K
    assert fit_row(Q.Q4_K, 1152) == Q.Q5_0
    assert fit_row(Q.Q6_K, 1152) == Q.Q8_0
    assert fit_row(Q.Q2_K, 1152) == Q.Q4_0
    assert fit_row(Q.Q8_0, 132) == Q.F16


@pytest.mark.parametrize("spec", ["no_equals", "=Q8_0", "a.*=Q9_K", "a.*=IQ2_XXS"])
def test_bad_keep_specs(spec):
    with pytest.raises(ConfigError, match="--keep"):
        parse_keep([spec])


def test_keep_pattern_matching_nothing_and_unknown_recipe(arch_shapes):
    with pytest.raises(ConfigError, match="matches no tensor"):
        plan_types(arch_shapes, get_recipe("Q8_0"), parse_keep(["blocks.0.*=Q8_0"]))
    with pytest.raises(ConfigError, match="Q4_K_M"):
        get_recipe("Q4_K_X")


@pytest.mark.parametrize(
    ("typed", "nearest"),
    [
        ("q8", "Q8_0"),
        ("int8", "Q8_0"),
        ("fp8", "Q8_0"),
        ("float8_e4m3fn", "Q8_0"),
        ("q4", "Q4_K_M"),
        ("nf4", "Q4_K_M"),
        ("Q4_K_XL", "Q4_K_M"),
        ("q5", "Q5_K_M"),
        ("Q6_K_M", "Q6_K"),
        ("Q2_K_S", "Q2_K"),
        ("q4-k-s", "Q4_K_S"),  # other separators: that recipe, not the one of its bits
        ("Q5KS", "Q5_K_S"),
        ("float16", "F16"),
        ("bfloat16", "BF16"),
        ("IQ4_XS", "Q4_K_M"),  # a llama.cpp type it does not make: said so, and the recipe of its bits
        ("Q4_0_4_4", "Q4_0"),  # llama.cpp's ARM repack of Q4_0 (was Q4_K_M, the recipe of its bits)
        ("q4_0_8_8", "Q4_0"),
        ("Q5_0_L", "Q5_0"),  # a recipe's name with a model repo's suffix: that recipe (was Q5_K_M)
    ],
)
def test_a_type_that_says_its_bits_gets_the_nearest_recipe(typed, nearest):
    """`--type q8` or `fp8` listed every recipe without saying which one is meant (also for `motif-lite run
    --quantize`, which reads the same table)."""
    with pytest.raises(ConfigError, match=f"; the nearest recipe is {nearest}, or choose one of: F32, "):
        get_recipe(typed)


@pytest.mark.parametrize("typed", ["Q9_K", "mystery", "Q12_K", "fp64"])
def test_a_type_without_bits_gets_no_suggestion(typed):
    with pytest.raises(ConfigError, match=f"^unknown quantization type '{typed}'; choose one of: "):
        get_recipe(typed)


@pytest.mark.parametrize(
    ("typed", "nearest"), [("Q4_K_S", "Q4_K_M"), ("q4_0", "Q4_K_M"), ("Q5_K_S", "Q5_K_M"), ("Q2_K", "Q4_K_M")]
)
def test_a_transformer_recipe_for_the_text_encoder_is_named_as_one(typed, nearest):
    """Called "unknown" before, though the quantizer's help lists it (for the transformer)."""
    from motif_lite.quantize import get_text_recipe

    with pytest.raises(ConfigError) as raised:
        get_text_recipe(typed)
    assert str(raised.value).startswith(
        f"{typed.upper()} is a transformer recipe, not one of the text encoder's; the nearest recipe is {nearest}, "
        "or choose one of: F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M ("
    )
    with pytest.raises(ConfigError, match="^unknown text encoder quantization type 'q3'; the nearest recipe is Q4_K_M"):
        get_text_recipe("q3")  # no Q3 recipe for the text encoder: the smallest above it


# (levels, group, affine): values already on such a grid must be found by the scale search.
GRIDS = {Q.Q2_K: (4, 16, True), Q.Q3_K: (8, 16, False), Q.Q4_K: (16, 32, True), Q.Q5_K: (32, 32, True)}
GRIDS[Q.Q6_K] = (64, 16, False)


@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda q: q.name)
def test_values_on_a_grid_come_back_exactly(qtype):
    n_levels, group, affine = GRIDS[qtype]
    rng = np.random.default_rng(7)
    levels = rng.integers(0, n_levels, (64, group))
    levels[:, 0], levels[:, 1] = 0, n_levels - 1  # every sub-block spans the whole grid
    step = 2.0**-6
    # affine: x = step*l - 0.125 (a min to subtract); symmetric: x = step*(l - n/2), the extreme is -n/2
    x = step * levels - 0.125 if affine else step * (levels - n_levels // 2)
    x = x.astype(np.float32).reshape(-1, 256)
    approx = gguf_quants.dequantize(quantize_tensor(x, qtype), qtype)
    assert rel_rmse(x, approx) < 1e-3


@pytest.mark.parametrize("qtype", [Q.F16, Q.Q8_0, Q.Q2_K], ids=lambda q: q.name)
def test_values_too_large_for_the_types_16_bit_scales_are_refused_naming_the_tensor(qtype):
    # F16 itself, and the fp16 block scale of Q8_0 and Q2_K, overflow to inf here: the file would hold inf/NaN.
    from motif_lite.errors import CheckpointError
    from motif_lite.quantize.convert import encode_checked

    values = torch.randn(2, 256)
    values[1, 3] = 1e8
    message = f"tensor 'big.weight' has values up to 1e\\+08, too large for {qtype.name}"
    with pytest.raises(CheckpointError, match=message):
        encode_checked(values, qtype, "big.weight", "cpu")


def test_values_a_16_bit_scale_holds_are_encoded():
    from motif_lite.quantize.convert import encode_checked

    values = torch.randn(2, 256)
    values[1, 3] = 1e5  # above float16's range, yet Q8_0's scale (max / 127) holds it
    blocks = encode_checked(values, Q.Q8_0, "big.weight", "cpu")
    assert np.isfinite(gguf_quants.dequantize(blocks, Q.Q8_0)).all()
