"""Every kernel compiles to an sm_90 cubin (bf16, Motif tile sizes) without a GPU.

The interpreter tests prove the math; this proves the compiled path (constexpr branches, dynamic tile skipping,
types) gets through Triton's real compiler and ptxas, which the interpreter never runs.
"""

from __future__ import annotations

import re

import pytest
from cubins import compile_or_skip
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from motif_lite.kernels import attention, dequant_matmul, norm


def compile_for_h100(kernel, pointers: dict[str, str], constexprs: dict[str, object], **options: object) -> dict:
    """Compiled for sm_90 with 4 warps, the other options (e.g. enable_fp_fusion) as given. -> the `asm`."""
    return compile_or_skip(kernel, 90, pointers, constexprs, **{"num_warps": 4, **options})


def global_accesses(ptx: str) -> list[str]:
    """Every global load and store instruction of `ptx` (per thread), e.g. "ld.global.v4.b32"."""
    return re.findall(r"\b(?:ld|st)\.global\.[\w.]+", ptx)


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


# How `dequantize` reads each type's quant bits at K = 1536 (loads per thread per 4096-value tile). Q4_K / Q5_K
# blocks (144 / 176 bytes) keep the nibbles 16-byte aligned: 16-byte vectors (each byte read twice, once per
# nibble). Q8_0 / Q4_0 blocks are 34 / 18 bytes, so their quants are only 2-byte aligned: read in pairs, the widest
# a direct load allows. Q6_K (210-byte blocks at a 1260-byte row stride, no multiple of 16, so the compiler knows
# no alignment) is read byte by byte: not listed.
DEQUANTIZE_QUANT_LOADS = {
    Q.Q8_0: ("ld.global.b16", 16),
    Q.Q4_0: ("ld.global.b16", 16),
    Q.Q4_K: ("ld.global.v4.b32", 2),
    Q.Q5_K: ("ld.global.v4.b32", 2),
}


@pytest.mark.parametrize("qtype", dequant_matmul.SUPPORTED_QTYPES, ids=lambda q: q.name)
def test_dequantize_writes_whole_rows(qtype) -> None:
    """Specialized as a call for one of Motif's K = 1536 weights specializes it (to_q .. to_out, the MLP's first
    layer), the bf16 output (2 of the 2.56-3.06 bytes moved per weight value) is written in 16-byte vectors, 4 per
    thread (32 values), and the quant bits are read as `DEQUANTIZE_QUANT_LOADS` says."""
    n = k = 1536
    block_n, block_k = dequant_matmul._dequantize_blocks(k)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    ints = dict(N=n, num_pid_k=k // block_k, stride_wn=k // block_size * type_size, stride_on=k)
    constexprs = dict(QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=False)
    pointers = dict(w_ptr="*u8", out_ptr="*bf16")
    kernel = dequant_matmul._dequantize_kernel
    ptx = compile_or_skip(kernel, 90, pointers, constexprs, ints, **dequant_matmul.DEQUANTIZE_OPTIONS)["ptx"]
    accesses = global_accesses(ptx)
    assert [access for access in accesses if access.startswith("st.")] == ["st.global.v4.b32"] * 4, accesses
    if qtype in DEQUANTIZE_QUANT_LOADS:
        load, count = DEQUANTIZE_QUANT_LOADS[qtype]
        assert accesses.count(load) == count, accesses


def test_norm_kernels_compile() -> None:
    pointers = dict(x_ptr="*bf16", shift_ptr="*bf16", scale_ptr="*bf16", y_ptr="*bf16", eps="fp32")
    compile_for_h100(norm._layer_norm_modulate_kernel, pointers, dict(BLOCK_C=2048))
    pointers = dict(x_ptr="*bf16", w_ptr="*bf16", cos_ptr="*fp32", sin_ptr="*fp32", y_ptr="*bf16", eps="fp32")
    constexprs = dict(HAS_WEIGHT=True, HAS_ROPE=True, BLOCK_ROWS=16, BLOCK_D=128)
    compile_for_h100(norm._rms_norm_rope_kernel, pointers, constexprs)


def test_layer_norm_modulate_reads_and_writes_whole_rows() -> None:
    """Specialized as the model calls it (x: the [B, L, 1536] token stream, unit channel stride; shift and scale:
    chunks of the [B, 6 x 1536] AdaLN output), x, shift, scale and the output are each one 16-byte vector per
    thread (8 channels; 8 warps over the 2048-wide tile): no other global access."""
    pointers = dict(x_ptr="*bf16", shift_ptr="*bf16", scale_ptr="*bf16", y_ptr="*bf16", eps="fp32")
    tokens, channels = 20_280, 1536  # 832x480x49
    ints = dict(L=tokens, C=channels, stride_xb=tokens * channels, stride_xl=channels, stride_xc=1,
                stride_shift=6 * channels, stride_scale=6 * channels)  # fmt: skip
    kernel = norm._layer_norm_modulate_kernel
    ptx = compile_or_skip(kernel, 90, pointers, dict(BLOCK_C=2048), ints, num_warps=8)["ptx"]
    assert sorted(global_accesses(ptx)) == ["ld.global.v4.b32"] * 3 + ["st.global.v4.b32"], global_accesses(ptx)


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
    accesses = global_accesses(ptx)
    vectors = [access for access in accesses if ".v4." in access]
    # x (2 per thread), cos and sin (4 each) and the output (2): 16-byte vectors; the norm weight may be scalar
    assert len(vectors) == 12 and set(accesses) - set(vectors) <= {"ld.global.b16"}, accesses
