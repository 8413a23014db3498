"""8-bit attention: the Triton kernel against its float64 emulation (the same quantization, tight), and both
against exact float64 attention on DiT-like inputs (the accuracy target: cosine >= 0.999, relative L1 <= 0.03).

Without CUDA the kernel runs in Triton's CPU interpreter (fp32 and fp16 inputs; the interpreter has no bf16
dot). FP8 P·V runs there too: the kernel rounds to e4m3 in fp32 before its cast under the interpreter (whose
own cast drops mantissa carries), which is bit-equal to torch's float8_e4m3fn rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from attention_inputs import attention_error, dit_like_qkv, random_qkv, trailing_padding
from attention_inputs import key_padding as padding_of
from kernels_interp import DEVICE, KernelCall, kernel_runner

from motif_lite.kernels.errors import KernelInputError
from motif_lite.kernels.int8_scheme import emulate_int8_attention, head_workspace_bytes, heads_per_launch

COSINE, REL_L1 = 0.999, 0.03  # the accuracy target
EMULATION = {"atol": 2e-4, "rtol": 1e-3}  # kernel (fp32 arithmetic) vs emulation (float64): rounding flips only
# FP8 P·V: one e4m3 step is 1/16-1/8 of P, so a P value the kernel and the emulation round to neighbouring e4m3 values
# moves an output by more than EMULATION. Compiled on a GPU the hardware exp2 (MUFU.EX2, within ~2 ulp) does so: on
# an H200 (2026-12-04) 3 of 8,960 outputs moved by up to 4.5e-4. In the interpreter the key-loop cases (150-320
# keys) do so too, from fp32 rounding alone: a few of their 6,144 outputs go past EMULATION in every case.
EMULATION_FP8 = {"atol": 1e-3, "rtol": 1e-3}
PV = ["16bit", "fp8"]
DIT_SEED = 3  # one draw of dit_like_qkv; test_smoothing_over_draws covers ten


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


def emulation_tolerance(pv: str, *, key_loops: bool = False) -> dict[str, float]:
    """The kernel's bound to its emulation: EMULATION_FP8 for FP8 P·V compiled on a GPU, and in the interpreter for
    the key-loop cases (`key_loops`); EMULATION otherwise. docs/kernels.md and docs/testing.md give these per case
    (tests/test_doc_claims.py compares them)."""
    return EMULATION_FP8 if pv == "fp8" and (DEVICE == "cuda" or key_loops) else EMULATION


def qkv(bsz: int, heads: int, lq: int, lk: int, dim: int, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
    return random_qkv(bsz, heads, lq, lk, dim, DEVICE, k_offset=2.0, dtype=dtype)


def key_padding(bsz: int, lk: int, valid: list[int]) -> torch.Tensor:
    return padding_of(bsz, lk, valid, DEVICE)


def dit_inputs() -> tuple[torch.Tensor, ...]:
    # Drawn on the CPU (the same numbers on every machine), 200 keys: 3 full tiles and a partial one.
    q, k, v = (t.to(DEVICE) for t in dit_like_qkv(1, 2, 200, 128, DIT_SEED))
    mask = trailing_padding(1, 200, 37, DEVICE)
    return q, k, v, mask, F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)


def padded_inputs() -> tuple[torch.Tensor, ...]:
    """q, k, v and a key mask: 70 keys (one full key tile and a partial one), the second batch row's padded from 45.
    Also the inputs of the 8-bit negative controls (tests/test_kernels_negative.py)."""
    torch.manual_seed(0)
    q, k, v = qkv(2, 2, 70, 70, 32)
    return q, k, v, key_padding(2, 70, [70, 45])


def tied_qkv() -> tuple[torch.Tensor, ...]:
    """q, k, v whose INT8 quantization meets exact halves, which random inputs never do (there rounding halves to
    even gives the same result): Q and K are odd multiples of 1/128 but for one 254/128 per Q row and per K tile,
    so every scale is 2⁻⁶ and every other value / scale an odd multiple of 1/2. K's 64 keys come in ± pairs: its
    mean is 0, so smoothing keeps the ties."""
    generator = torch.Generator().manual_seed(6)

    def odd(*shape: int) -> torch.Tensor:  # odd multiples of 1/128 in [-253/128, 253/128]
        return (torch.randint(-127, 127, shape, generator=generator) * 2 + 1) / 128

    q, k = odd(1, 2, 16, 32), odd(1, 2, 32, 32)
    q[..., 0] = k[:, :, 0, 0] = 254 / 128
    k = torch.cat([k, -k], dim=2)
    return q.to(DEVICE), k.to(DEVICE), torch.randn(1, 2, 64, 32, generator=generator).to(DEVICE)


@pytest.mark.parametrize("pv", PV)
def test_matches_emulation_with_key_padding(kernel, pv: str) -> None:
    q, k, v, mask = padded_inputs()
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv=pv)
    torch.testing.assert_close(out, emulate_int8_attention(q, k, v, mask, pv=pv), **emulation_tolerance(pv))
    cos, _ = attention_error(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert cos > 0.999


# The software-pipelined key loop (pipeline_pv=True) takes the unmasked key tiles when there are at least two:
# a prologue of two tiles, a loop from the third, an epilogue; the rest goes to the masked loop. Key counts: 150
# (two clean tiles, no loop iteration, a partial tail), 320 (five tiles, three iterations) and 256 keys masked from
# key 200 (three clean tiles, then a masked one); per batch row, [all, 100] valid keys: one clean tile or fewer
# (the masked loop alone).
PIPELINE_CASES = {"2-tiles+tail": (150, None), "5-tiles": (320, None), "masked-from-200": (256, [200, 100])}


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
@pytest.mark.parametrize("case", PIPELINE_CASES)
@pytest.mark.parametrize("pv", PV)
def test_key_loops_match_emulation(kernel, pv: str, case: str, pipeline_pv: bool) -> None:
    torch.manual_seed(4)
    lk, valid = PIPELINE_CASES[case]
    q, k, v = qkv(2, 2, 48, lk, 32)
    mask = key_padding(2, lk, valid) if valid else None
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv=pv, pipeline_pv=pipeline_pv)
    # 150-320 keys: a few P values round to the neighbouring e4m3 value in one and not the other (the default loop
    # too), in the interpreter as well as compiled.
    tolerance = emulation_tolerance(pv, key_loops=True)
    torch.testing.assert_close(out, emulate_int8_attention(q, k, v, mask, pv=pv), **tolerance)


def test_fp8_v_statistics_skip_padded_keys(kernel) -> None:
    # V with a channel offset (as DiT values have): every valid value of a channel is negative, so counting the
    # padded keys' zeros in its range would change the e4m3 scale.
    torch.manual_seed(0)
    q, k, v = qkv(2, 2, 70, 70, 32)
    v = -3 - v.abs()
    mask = key_padding(2, 70, [70, 45])
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv="fp8")
    torch.testing.assert_close(out, emulate_int8_attention(q, k, v, mask, pv="fp8"), **emulation_tolerance("fp8"))


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
@pytest.mark.parametrize("pv", PV)
def test_block_sparse_matches_emulation(kernel, pv: str, pipeline_pv: bool) -> None:
    torch.manual_seed(1)
    q, k, v = qkv(2, 2, 80, 70, 32)
    block_mask = torch.rand(2, 1, 3, 3) < 0.5
    block_mask[..., 0] = True
    block_mask[0, 0, 1, 2] = False  # at least one tile skipped
    block_mask = block_mask.to(DEVICE)
    mask = key_padding(2, 70, [70, 50])
    out = kernel("attention_int8.int8_attention", q, k, v, mask, block_mask, 32, pv=pv, pipeline_pv=pipeline_pv)
    expected = emulate_int8_attention(q, k, v, mask, block_mask, 32, pv=pv, block_n=32)
    torch.testing.assert_close(out, expected, **emulation_tolerance(pv))


def fp16_cross_inputs() -> tuple[torch.Tensor, ...]:
    """fp16 q, k, v and a key mask, 40 queries and 23 keys (fewer than one tile). On the CPU the only inputs that
    reach the kernel's 16-bit P·V (fp32 takes TF32; the interpreter has no bf16). Also the inputs of the biased
    P·V negative control (tests/test_kernels_negative.py)."""
    torch.manual_seed(2)
    q, k, v = qkv(1, 3, 40, 23, 64, torch.float16)
    return q, k, v, key_padding(1, 23, [19])


def test_cross_lengths_and_fp16(kernel) -> None:
    q, k, v, mask = fp16_cross_inputs()
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv="16bit")
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, emulate_int8_attention(q, k, v, mask, pv="16bit"), **EMULATION)


def test_int8_ties_round_half_away_from_zero(kernel) -> None:
    """Q and K values that land on halves round away from zero, as the emulation does (tests/test_kernels_negative.py:
    rounded half to even, the emulation fails this check)."""
    q, k, v = tied_qkv()
    out = kernel("attention_int8.int8_attention", q, k, v, pv="16bit")
    torch.testing.assert_close(out, emulate_int8_attention(q, k, v, pv="16bit"), **EMULATION)


def test_fp32_inputs_keep_fp32s_range_in_16bit_pv(kernel) -> None:
    """fp32 inputs with the 16-bit P·V (the sm_80-86 path) multiply P and V as TF32, not fp16: values beyond fp16's
    65504 stay finite (cast to fp16 they became inf, and the output inf/NaN, with no error), and the kernel
    agrees with the emulation of that arithmetic."""
    torch.manual_seed(5)
    q, k, v = qkv(1, 2, 70, 70, 32)
    v = v * 1e5  # |V| up to ~4e5
    out = kernel("attention_int8.int8_attention", q, k, v, pv="16bit")
    assert torch.isfinite(out).all()
    emulated = emulate_int8_attention(q, k, v, pv="16bit")
    torch.testing.assert_close(out / 1e5, emulated / 1e5, **EMULATION)
    cos, _ = attention_error(out, F.scaled_dot_product_attention(q, k, v))
    assert cos > 0.999


def test_rows_with_no_keys_are_zero(kernel) -> None:
    q, k, v = qkv(1, 1, 64, 64, 16)
    block_mask = torch.tensor([[True, True], [False, False]], device=DEVICE)[None, None]
    for pv in PV:
        out = kernel("attention_int8.int8_attention", q, k, v, None, block_mask, 32, pv=pv)
        assert out[:, :, 32:].abs().max() == 0 and out[:, :, :32].abs().max() > 0


def test_head_groups_give_the_same_result(kernel) -> None:
    """A small workspace quantizes and attends one head at a time: the same numbers as all heads at once."""
    torch.manual_seed(3)
    q, k, v = qkv(2, 3, 50, 50, 32)
    mask = key_padding(2, 50, [50, 31])
    whole = kernel("attention_int8.int8_attention", q, k, v, mask, pv="fp8")
    by_head = kernel("attention_int8.int8_attention", q, k, v, mask, pv="fp8", workspace_bytes=1)
    torch.testing.assert_close(by_head, whole, atol=0, rtol=0)


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
@pytest.mark.parametrize("pv", PV)
def test_dit_like_accuracy(kernel, pv: str, pipeline_pv: bool) -> None:
    q, k, v, mask, reference = dit_inputs()
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv=pv, pipeline_pv=pipeline_pv)
    cos, rel_l1 = attention_error(out, reference)
    assert cos >= COSINE and rel_l1 <= REL_L1, (cos, rel_l1)


def test_dit_like_accuracy_needs_smoothing(kernel) -> None:
    """Negative control: the same inputs without K smoothing miss the target, even with 16-bit P·V."""
    q, k, v, mask, reference = dit_inputs()
    out = kernel("attention_int8.int8_attention", q, k, v, mask, pv="16bit", smooth_k=False)
    cos, rel_l1 = attention_error(out, reference)
    assert cos < COSINE or rel_l1 > REL_L1, (cos, rel_l1)


def test_smoothing_over_draws() -> None:
    """Emulation over ten draws of DiT-like inputs: smoothed, every draw meets the target with FP8 P·V; smoothing
    lowers the error of every draw, and the total error at least 2x with 16-bit P·V (where K dominates)."""
    smooth, raw = [], []
    for seed in range(10):
        q, k, v = dit_like_qkv(1, 2, 200, 128, seed)
        mask = trailing_padding(1, 200, 37)
        reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
        cos, rel_l1 = attention_error(emulate_int8_attention(q, k, v, mask, pv="fp8"), reference)
        assert cos >= COSINE and rel_l1 <= REL_L1, (seed, cos, rel_l1)
        smooth.append(attention_error(emulate_int8_attention(q, k, v, mask, pv="16bit"), reference)[1])
        raw.append(attention_error(emulate_int8_attention(q, k, v, mask, pv="16bit", smooth_k=False), reference)[1])
    assert all(s < r for s, r in zip(smooth, raw, strict=True)), (smooth, raw)
    assert 2 * sum(smooth) < sum(raw), (smooth, raw)


def test_emulated_accuracy_at_a_longer_length() -> None:
    """The bound is not an artefact of short sequences: 1,000 keys (15 tiles and a partial one), 4 heads."""
    q, k, v = dit_like_qkv(1, 4, 1000, 128, 0)
    mask = trailing_padding(1, 1000, 100)
    reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
    for pv in PV:
        cos, rel_l1 = attention_error(emulate_int8_attention(q, k, v, mask, pv=pv), reference)
        assert cos >= COSINE and rel_l1 <= REL_L1, (pv, cos, rel_l1)


@pytest.mark.parametrize("pv", PV)
def test_emulated_keys_masked_whole_tiles_count_for_nothing(pv: str) -> None:
    """A row whose first key tile (64 keys) is all masked gives what its other tile alone gives, and a row that
    sees no key gives zeros (its running max starts and stays at -inf: no NaN from -inf - -inf)."""
    q, k, v = torch.randn(3, 2, 1, 128, 32, generator=torch.Generator().manual_seed(0)).unbind(0)
    mask = torch.zeros(2, 1, 1, 128, dtype=torch.bool)
    mask[0, ..., 64:] = True  # row 1 of the batch: no key at all
    out = emulate_int8_attention(q, k, v, mask, pv=pv)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    alone = emulate_int8_attention(q[:1], k[:1, :, 64:], v[:1, :, 64:], pv=pv)
    torch.testing.assert_close(out[:1], alone, rtol=0, atol=1e-6)


def test_bad_inputs_raise(kernel) -> None:
    q, k, v = qkv(1, 2, 16, 16, 16)
    with pytest.raises(KernelInputError, match="do not match"):
        kernel("attention_int8.int8_attention", q, k[:, :1], v)
    with pytest.raises(KernelInputError, match="key mask"):
        kernel("attention_int8.int8_attention", q, k, v, torch.ones(1, 1, 1, 16, device=DEVICE))
    with pytest.raises(KernelInputError, match="pv"):
        kernel("attention_int8.int8_attention", q, k, v, pv="int4")


def test_workspace_is_bounded() -> None:
    """The quantized copies exist for as many heads as fit the workspace, and at least one head."""
    at_720p = 2 * 31 * 3680  # the DDT decoder's tokens at 1280x736x121
    group = heads_per_launch(1, 12, at_720p, 128, fp8_v=True)
    assert 1 <= group < 12 and group * head_workspace_bytes(1, at_720p, 128, True) <= 128 * 2**20
    assert heads_per_launch(1, 12, 4096, 128, fp8_v=True) == 12
    assert heads_per_launch(1, 12, 10**7, 128, fp8_v=True) == 1


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0), reason="needs INT8 tensor cores"
)
@pytest.mark.parametrize("pv", ["auto", "16bit"])
def test_gpu_bf16_accuracy_and_emulation(pv: str) -> None:
    """Compiled, bf16, on the GPU's own INT8/FP8 tensor cores: the target, and the emulation of the same format."""
    from motif_lite.kernels.attention_int8 import int8_attention

    q, k, v = (t.to("cuda", torch.bfloat16) for t in dit_like_qkv(1, 4, 1000, 128, 0))
    mask = trailing_padding(1, 1000, 100, "cuda")
    out = int8_attention(q, k, v, mask, pv=pv)
    reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
    cos, rel_l1 = attention_error(out, reference)
    assert cos >= COSINE and rel_l1 <= REL_L1, (cos, rel_l1)
    fp8 = pv == "auto" and torch.cuda.get_device_capability() >= (8, 9)
    emulated = emulate_int8_attention(q, k, v, mask, pv="fp8" if fp8 else "16bit")
    torch.testing.assert_close(out.float(), emulated.float(), atol=3e-2, rtol=2e-2)  # bf16 output rounding


def test_tf32_rounding_takes_halves_away_from_zero() -> None:
    """The emulation's TF32 rounding (`round_tf32`) as the kernel's `_to_tf32`: a float32 exactly halfway between two
    TF32 values (10 mantissa bits) goes to the one further from zero, either sign; others to the nearest."""
    from motif_lite.kernels.int8_scheme import round_tf32

    step = 2.0**-10  # TF32's spacing in [1, 2)
    x = torch.tensor([1 + step / 2, -(1 + step / 2), 1 + step * 0.49, 1 + step * 0.51], dtype=torch.float64)
    expected = torch.tensor([1 + step, -(1 + step), 1.0, 1 + step], dtype=torch.float64)
    assert torch.equal(round_tf32(x), expected)
