"""Every kernel compiles to an sm_90 cubin (bf16, Motif tile sizes) without a GPU.

The interpreter tests prove the math; this proves the compiled path (constexpr branches, dynamic tile skipping,
types) gets through Triton's real compiler and ptxas, which the interpreter never runs.
"""

from __future__ import annotations

import re

import pytest
from cubins import compile_or_skip

from motif_lite.kernels import attention, dequant_matmul, norm


def compile_for_h100(kernel, pointers: dict[str, str], constexprs: dict[str, object], **options: object) -> dict:
    """Compiled for sm_90 with 4 warps, the other options (e.g. enable_fp_fusion) as given. -> the `asm`."""
    return compile_or_skip(kernel, 90, pointers, constexprs, **{"num_warps": 4, **options})


@pytest.mark.parametrize("block_mask", [False, True], ids=["dense", "block-sparse"])
def test_attention_compiles(block_mask: bool) -> None:
    pointers = {name: "*bf16" for name in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    pointers.update(kmask_ptr="*u8", bmask_ptr="*u8", qk_scale="fp32")
    constexprs = dict(HAS_BLOCK_MASK=block_mask, MASK_BLOCK=128, BLOCK_M=64, BLOCK_N=64, BLOCK_D=128, PRECISION="tf32")
    compile_for_h100(attention._attention_kernel, pointers, constexprs)


@pytest.mark.parametrize("qtype", dequant_matmul.SUPPORTED_QTYPES, ids=lambda q: q.name)
def test_dequant_matmul_compiles(qtype) -> None:
    pointers = dict(x_ptr="*bf16", w_ptr="*u8", b_ptr="*bf16", y_ptr="*bf16")
    constexprs = dict(QTYPE=int(qtype), HAS_BIAS=True, PRECISION="tf32", BLOCK_M=64, BLOCK_N=64, BLOCK_K=32)
    compile_for_h100(dequant_matmul._dequant_matmul_kernel, pointers, constexprs)


@pytest.mark.parametrize("qtype", dequant_matmul.SUPPORTED_QTYPES, ids=lambda q: q.name)
def test_dequantize_compiles_without_fma(qtype) -> None:
    """With `dequantize`'s launch options (fp fusion off) no mul + sub is contracted to an FMA, which would break
    its bit-exactness against the torch dequantizer (Q4_K / Q5_K compute d·sc·q - dmin·m)."""
    block_n, block_k = dequant_matmul._dequantize_blocks(1536)  # Motif's K = 1536 (and 6144: the same tile)
    constexprs = dict(QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=False)
    for out in ("*bf16", "*fp32"):
        pointers = dict(w_ptr="*u8", out_ptr=out)
        asm = compile_for_h100(
            dequant_matmul._dequantize_kernel, pointers, constexprs, **dequant_matmul.DEQUANTIZE_OPTIONS
        )
        assert "fma." not in asm["ptx"]


def test_norm_kernels_compile() -> None:
    pointers = dict(x_ptr="*bf16", shift_ptr="*bf16", scale_ptr="*bf16", y_ptr="*bf16", eps="fp32")
    compile_for_h100(norm._layer_norm_modulate_kernel, pointers, dict(BLOCK_C=2048))
    pointers = dict(x_ptr="*bf16", w_ptr="*bf16", cos_ptr="*fp32", sin_ptr="*fp32", y_ptr="*bf16", eps="fp32")
    constexprs = dict(HAS_WEIGHT=True, HAS_ROPE=True, BLOCK_ROWS=16, BLOCK_D=128)
    compile_for_h100(norm._rms_norm_rope_kernel, pointers, constexprs)


def test_rms_norm_rope_reads_and_writes_whole_rows() -> None:
    """Specialized as a call from the model specializes it (unit-stride head dim, the [B, L, H*D] projections seen
    as [B, H, L, D]), every global access of x, cos/sin and the output is a 16-byte vector: rows are read and
    written whole. The first version loaded and stored the interleaved RoPE pairs one element at a time (fp32
    cos/sin included) and reached 0.39 TB/s on an H100 (docs/benchmarks.md)."""
    pointers = dict(x_ptr="*bf16", w_ptr="*bf16", cos_ptr="*fp32", sin_ptr="*fp32", y_ptr="*bf16", eps="fp32")
    constexprs = dict(HAS_WEIGHT=True, HAS_ROPE=True, BLOCK_ROWS=16, BLOCK_D=128)
    tokens, heads, dim = 20_280, 12, 128  # 832x480x49
    ints = dict(H=heads, L=tokens, N=tokens, D=dim, stride_b=tokens * heads * dim, stride_h=dim,
                stride_l=heads * dim, stride_d=1)  # fmt: skip
    ptx = compile_or_skip(norm._rms_norm_rope_kernel, 90, pointers, constexprs, ints, num_warps=4)["ptx"]
    accesses = re.findall(r"\b(?:ld|st)\.global\.[\w.]+", ptx)
    vectors = [access for access in accesses if ".v4." in access]
    # x (2 per thread), cos and sin (4 each) and the output (2): 16-byte vectors; the norm weight may be scalar
    assert len(vectors) == 12 and set(accesses) - set(vectors) <= {"ld.global.b16"}, accesses
