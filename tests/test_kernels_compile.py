"""Every kernel compiles to an sm_90 cubin (bf16, Motif tile sizes) without a GPU, and the launches the code makes
fit the GPUs users bring: for sm_75 (RTX 20xx, T4; fp16), sm_80 (A100), sm_86 (RTX 30xx), sm_89 (RTX 40xx), sm_90
(H100) and sm_120 (RTX 50xx), each launch config a kernel can take there (fixed tiles, and the autotune configs
offered on that GPU) asks for no more shared memory per block than the generation has, and for no more registers
than a block has. A representative few run by default; MOTIF_LITE_ALL_LAUNCHES=1 compiles every config for every
generation.

The interpreter tests prove the math; this proves the compiled path (constexpr branches, dynamic tile skipping,
types) gets through Triton's real compiler and ptxas, which the interpreter never runs. Nothing here has run on
these GPUs: the figures are the compiler's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest
import torch
import triton
from cubins import compile_or_skip, int8_attention_or_skip
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from motif_lite.kernels import attention, attention_int8, compiled, dequant_matmul, launch, norm
from motif_lite.kernels.launch import SharedFloor


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
def test_dequantize_compiles_without_fma_and_rounds_to_nearest_even(qtype) -> None:
    """With `dequantize`'s launch options (fp fusion off) no mul + sub is contracted to an FMA, which would break
    its bit-exactness against the torch dequantizer (Q4_K / Q5_K compute d·sc·q - dmin·m), and the bf16 output is
    rounded to nearest even."""
    block_n, block_k = dequant_matmul._dequantize_blocks(1536)  # Motif's K = 1536 (and 6144: the same tile)
    constexprs = dict(QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=False)
    for out in ("*bf16", "*fp32"):
        pointers = dict(w_ptr="*u8", out_ptr=out)
        asm = compile_for_h100(
            dequant_matmul._dequantize_kernel, pointers, constexprs, **dequant_matmul.DEQUANTIZE_OPTIONS
        )
        assert "fma." not in asm["ptx"]
        # The compiled branch's bf16 cast rounds to nearest even, as the interpreter's `BF16_BY_BITS` branch does
        # (the CPU tests' check) and torch's cast: the GPU's rounding is the one the CPU tests prove.
        to_bf16 = set(re.findall(r"cvt\.[\w.]*bf16[\w.]*\.f32", asm["ptx"]))
        assert (to_bf16 != set()) == (out == "*bf16") and to_bf16 <= {"cvt.rn.bf16.f32", "cvt.rn.bf16x2.f32"}, to_bf16


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


@dataclass(frozen=True)
class Gpu:
    names: str
    shared: int  # bytes of shared memory one block may use (CUDA's opt-in maximum per block)
    dtype: str  # what a run there computes in: fp16 without bf16 tensor cores (motif_lite.dtypes.default_dtype)


# CUDA C++ Programming Guide, "Technical Specifications per Compute Capability". Every generation has 64 K 32-bit
# registers per block and at most 255 per thread.
GPUS = {
    75: Gpu("RTX 20xx, T4", 64 * 1024, "fp16"),
    80: Gpu("A100", 163 * 1024, "bf16"),
    86: Gpu("RTX 30xx", 99 * 1024, "bf16"),
    89: Gpu("RTX 40xx, L4", 99 * 1024, "bf16"),
    90: Gpu("H100, H200", 227 * 1024, "bf16"),
    120: Gpu("RTX 50xx", 99 * 1024, "bf16"),
}
BLOCK_REGISTERS = 64 * 1024


def assert_fits(asm: dict, capability: int, spills: bool = True) -> None:
    """A block of the compiled kernel launches on sm_`capability`: its shared memory and its registers (allocated
    8 per thread at a time) fit. spills=False: and no register spills to local memory."""
    used = compiled.resources(asm)
    gpu = GPUS[capability]
    assert used.shared <= gpu.shared, (
        f"{used.shared} bytes of shared memory; sm_{capability} ({gpu.names}) has {gpu.shared}"
    )
    assert -(-used.registers // 8) * 8 * used.threads <= BLOCK_REGISTERS, used
    assert spills or used.stack == 0, f"spills: a {used.stack}-byte stack frame"


def offered(configs, capability: int, mma_sync_configs=(), **call) -> list:
    """The attention configs the row-split rule offers on sm_`capability` at head dim 128."""
    return launch.offered_configs(configs, divmod(capability, 10), {"BLOCK_D": 128, **call}, mma_sync_configs)


def config_id(config) -> str:
    tiles = "x".join(str(config.kwargs[name]) for name in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if name in config.kwargs)
    return f"{tiles}-w{config.num_warps}-s{config.num_stages}"


TORCH_DTYPES = {"*bf16": torch.bfloat16, "*fp16": torch.float16, "*fp32": torch.float32, "*u8": torch.uint8,
                "*i8": torch.int8, "*i32": torch.int32, "*fp8e4nv": torch.float8_e4m3fn}  # fmt: skip


@dataclass(frozen=True)
class Launch:
    """One launch of a kernel, specialized as the code's call specializes it."""

    kernel: object
    pointers: dict[str, str]
    constexprs: dict[str, object]
    options: dict[str, object]
    spills: bool  # whether it may spill registers (the memory-bound kernels may not)
    ints: dict[str, int] = field(default_factory=dict)  # integer arguments the JIT sees (strides, sizes)
    floor: SharedFloor | None = None  # the kernel's shared-memory floor, where the autotuner prunes by it

    def args(self) -> dict:
        """The call's arguments as an `early_config_prune` sees them: (one-element CPU) tensors for the pointers."""
        tensors = {name: torch.empty(1, dtype=TORCH_DTYPES[kind]) for name, kind in self.pointers.items()
                   if kind.startswith("*")}  # fmt: skip
        return {**tensors, **self.ints, **self.constexprs}

    def config(self) -> triton.Config:
        tiles = {name: value for name, value in self.constexprs.items() if name.startswith("BLOCK_")}
        return triton.Config(tiles, num_warps=self.options["num_warps"], num_stages=self.options["num_stages"])

    def shared_floor(self, capability: int) -> int | None:
        return None if self.floor is None else self.floor(self.config(), self.args(), divmod(capability, 10))

    def compile(self, capability: int) -> dict:
        return compile_or_skip(self.kernel, capability, self.pointers, self.constexprs, self.ints, **self.options)


def attention_launch(dtype: str, config, key_mask: bool = True, dim: int = 128) -> Launch:
    """The dense attention kernel as the model's call specializes it: q, k and v are [B, 12, L, 128] views of
    [B, L, 1536] projections (unit-stride head dim, every other stride a multiple of 16), so full k/v tiles load by
    16-byte `cp.async` copies (from sm_80 on), pipelined over `num_stages` buffers."""
    tokens, heads = 114_080, 12  # 1280x736x121: 31 x 46 x 80 latent patches
    rows = tokens * heads * dim
    ints = dict(H=heads, D=dim, sqb=rows, sqh=dim, sqm=heads * dim, sqd=1, skb=rows, skh=dim, skn=heads * dim, skd=1,
                svb=rows, svh=dim, svn=heads * dim, svd=1)  # fmt: skip
    pointers = {name: dtype for name in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    pointers.update(kmask_ptr="*u8", bmask_ptr="*u8", qk_scale="fp32")
    constexprs = dict(HAS_BLOCK_MASK=False, MASK_BLOCK=128, BLOCK_D=dim, PRECISION="ieee" if dtype == "*fp32" else
                      "tf32", HAS_KEY_MASK=key_mask, EVEN_D=True, **config.kwargs)  # fmt: skip
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    return Launch(attention._attention_kernel, pointers, constexprs, options, True, ints, attention.shared_memory_floor)


def gemm_launch(qtype, dtype: str, config, k: int = 1536, n: int = 1536) -> Launch:
    """The fused dequant-GEMM as `dequant_matmul` calls it for a contiguous x [M, K] (M unknown: any token count)."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    pointers = dict(x_ptr=dtype, w_ptr="*u8", b_ptr=dtype, y_ptr=dtype)
    ints = dict(N=n, K=k, stride_xm=k, stride_xk=1, stride_wn=k // block_size * type_size, stride_ym=n)
    constexprs = dict(QTYPE=int(qtype), HAS_BIAS=True, PRECISION="ieee" if dtype == "*fp32" else "tf32",
                      **config.kwargs)  # fmt: skip
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    kernel = dequant_matmul._dequant_matmul_kernel
    return Launch(kernel, pointers, constexprs, options, True, ints, dequant_matmul.shared_memory_floor)


def int8_launch(capability: int, config) -> Launch:
    """The 8-bit attention kernel as `compiled.int8_attention_asm` builds it (FP8 P·V from sm_89 on), for its
    shared-memory floor; compiled by `compiled.int8_attention_asm` itself."""
    keys, dim, fp8 = 228_160, 128, capability >= 89
    v_strides = dict(svb=2 * dim * keys, svh=dim * keys, svn=1, svd=keys) if fp8 else dict(
        svb=12 * keys * dim, svh=keys * dim, svn=dim, svd=1
    )  # fmt: skip
    pointers = dict(q_ptr="*bf16", k8_ptr="*i8", v_ptr="*fp8e4nv" if fp8 else "*bf16")
    constexprs = dict(BLOCK_M=config.kwargs["BLOCK_M"], BLOCK_N=attention_int8.K_BLOCK, BLOCK_D=dim)
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    kernel = attention_int8._int8_attention_kernel
    return Launch(kernel, pointers, constexprs, options, True, v_strides, attention_int8.shared_memory_floor)


def fitting(configs, capability: int, sample: Launch) -> list:
    """`configs` pruned to the shared memory of sm_`capability`, as the autotuner does for a call like `sample`."""
    floor, args = sample.floor, sample.args()
    return launch.fitting_configs(configs, args, divmod(capability, 10), floor, GPUS[capability].shared)


def dense_attention_offered(capability: int) -> list:
    """The dense attention configs the autotuner tunes on sm_`capability` for the model's call."""
    configs = offered(attention._CONFIGS, capability, attention.MMA_SYNC_CONFIGS)
    return fitting(configs, capability, attention_launch("*" + GPUS[capability].dtype, configs[0]))


def gemm_offered(capability: int, qtype) -> list:
    return fitting(dequant_matmul.CONFIGS, capability, gemm_launch(qtype, "*bf16", dequant_matmul.CONFIGS[0]))


def int8_offered(capability: int) -> list:
    configs = offered(attention_int8._CONFIGS, capability, BLOCK_N=attention_int8.K_BLOCK)
    return fitting(configs, capability, int8_launch(capability, configs[0]))


def launches(capability: int) -> dict[str, Launch]:
    """Every launch config of every kernel on sm_`capability` at Motif's sizes (K = 1536 for the quantized weights,
    head dim 128), in the dtype a run there uses, specialized as the calls are: the fixed ones, and the autotune
    configs the autotuner keeps there. The 8-bit attention kernel (sm_80 and newer only) is in `int8_launches`."""
    dtype = "*" + GPUS[capability].dtype
    cases = {}
    pointers = dict(x_ptr=dtype, shift_ptr=dtype, scale_ptr=dtype, y_ptr=dtype, eps="fp32")
    cases["layer_norm_modulate"] = Launch(norm._layer_norm_modulate_kernel, pointers, dict(BLOCK_C=2048),
                                          dict(num_warps=8), False)  # fmt: skip
    pointers = dict(x_ptr=dtype, w_ptr=dtype, cos_ptr="*fp32", sin_ptr="*fp32", y_ptr=dtype, eps="fp32")
    constexprs = dict(HAS_WEIGHT=True, HAS_ROPE=True, BLOCK_ROWS=16, BLOCK_D=128)
    cases["rms_norm_rope"] = Launch(norm._rms_norm_rope_kernel, pointers, constexprs, dict(num_warps=4), False)
    block_n, block_k = dequant_matmul._dequantize_blocks(1536)
    for qtype in dequant_matmul.SUPPORTED_QTYPES:
        constexprs = dict(QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=False)
        cases[f"dequantize-{qtype.name}"] = Launch(dequant_matmul._dequantize_kernel, dict(w_ptr="*u8", out_ptr=dtype),
                                                   constexprs, dequant_matmul.DEQUANTIZE_OPTIONS, False)  # fmt: skip
        gemm = [(dtype, config) for config in gemm_offered(capability, qtype)]
        gemm += [(dtype, dequant_matmul._fixed_config(dequant_matmul.SMALL_M, 1536))]
        gemm += [("*fp32", dequant_matmul._fixed_config(1024, 1536, fp32=True))]
        for x, config in gemm:
            cases[f"dequant_matmul-{qtype.name}-{x[1:]}-{config_id(config)}"] = gemm_launch(qtype, x, config)
    fixed = [(dtype, 128, 64), ("*fp32", 128, 128), (dtype, 256, 128)]  # (dtype, head dim, the mask's block size)
    for x, dim, block_size in fixed:
        block_m, block_n, stages = attention.fixed_launch(block_size, dim, TORCH_DTYPES[x], divmod(capability, 10))
        config = triton.Config(dict(BLOCK_M=block_m, BLOCK_N=block_n), num_warps=4, num_stages=stages)
        wide = "-d256" if dim == 256 else ""
        cases[f"attention-{x[1:]}{wide}-{config_id(config)}"] = attention_launch(x, config, dim=dim)
    for config in dense_attention_offered(capability):
        cases[f"attention-{dtype[1:]}-{config_id(config)}"] = attention_launch(dtype, config)
    return cases


def int8_launches(capability: int) -> dict[str, object]:
    """The 8-bit attention's autotune configs kept on sm_`capability` (sm_80 and newer: it needs INT8 tensor
    cores)."""
    if capability < 80:
        return {}
    return {f"int8_attention-{config_id(config)}": config for config in int8_offered(capability)}


def pruned_launches(capability: int) -> dict[str, Launch]:
    """The autotune configs the row-split rule offers on sm_`capability` but its shared memory prune drops."""
    dtype = "*" + GPUS[capability].dtype
    dense = offered(attention._CONFIGS, capability, attention.MMA_SYNC_CONFIGS)
    cases = {f"attention-{config_id(config)}": attention_launch(dtype, config) for config in dense
             if config not in dense_attention_offered(capability)}  # fmt: skip
    for qtype in dequant_matmul.SUPPORTED_QTYPES:
        kept = gemm_offered(capability, qtype)
        cases |= {f"dequant_matmul-{qtype.name}-{config_id(config)}": gemm_launch(qtype, "*bf16", config)
                  for config in dequant_matmul.CONFIGS if config not in kept}  # fmt: skip
    if capability >= 80:
        int8 = offered(attention_int8._CONFIGS, capability, BLOCK_N=attention_int8.K_BLOCK)
        cases |= {f"int8_attention-{config_id(config)}": int8_launch(capability, config) for config in int8
                  if config not in int8_offered(capability)}  # fmt: skip
    return cases


# The default run's representative cases (45-50 s in a clean Triton cache on 2 idle cores): the memory-bound kernels
# on every generation (cheap), and the launches closest to a limit: T4's fp32 attention (56 KiB of 64) and the
# 16-bit one, the largest GEMM and attention tiles kept on a 99 KiB GPU (96 KiB each) and the 8-bit attention's
# deepest pipeline there.
DEFAULT_CASES = {(capability, "layer_norm_modulate") for capability in GPUS}
DEFAULT_CASES |= {(capability, "rms_norm_rope") for capability in GPUS}
DEFAULT_CASES |= {(capability, "dequantize-Q4_K") for capability in GPUS}
DEFAULT_CASES |= {(75, "attention-fp32-32x64-w4-s1"), (86, "dequant_matmul-Q4_K-bf16-256x128x64-w8-s3"),
                  (86, "attention-bf16-128x128-w8-s2"), (86, "int8_attention-128-w8-s4"),
                  (86, "attention-bf16-d256-64x64-w4-s1")}  # fmt: skip
# The config the shared-memory prune drops that comes closest to fitting (128 KiB), on an RTX 30xx.
DEFAULT_PRUNED = {(86, "attention-128x64-w8-s4")}


def every_launch() -> bool:
    return os.environ.get("MOTIF_LITE_ALL_LAUNCHES") == "1"


def fit_cases():
    """DEFAULT_CASES; with MOTIF_LITE_ALL_LAUNCHES=1 every launch on every generation (~350 compiles, about an hour
    on 2 cores: Turing's attention takes 40-120 s a config), too long for CI, which runs the slow tests too."""
    for capability in GPUS:
        for name in [*launches(capability), *int8_launches(capability)]:
            if every_launch() or (capability, name) in DEFAULT_CASES:
                yield pytest.param(capability, name, id=f"sm{capability}-{name}")


def compiled_launch(capability: int, name: str) -> tuple[dict, int | None]:
    """-> (the compiled launch `name` on sm_`capability`, its shared-memory floor or None)."""
    if name.startswith("int8_attention"):
        config = {**int8_launches(capability), **pruned_launches(capability)}[name]
        config = config.config() if isinstance(config, Launch) else config
        asm = int8_attention_or_skip(capability, fp8=capability >= 89, block_m=config.kwargs["BLOCK_M"],
                                     num_warps=config.num_warps, num_stages=config.num_stages)  # fmt: skip
        return asm, int8_launch(capability, config).shared_floor(capability)
    case = {**launches(capability), **pruned_launches(capability)}[name]
    return case.compile(capability), case.shared_floor(capability)


@pytest.mark.parametrize(("capability", "name"), list(fit_cases()))
def test_launch_fits_the_gpu(capability: int, name: str) -> None:
    """Every launch kept on a GPU fits it, and its shared-memory floor (what the autotuner's prune compares with the
    GPU's limit) is at most what it compiles to: so the prune never drops a config that would fit."""
    asm, floor = compiled_launch(capability, name)
    spills = name.startswith("int8_attention") or launches(capability)[name].spills
    assert_fits(asm, capability, spills)
    if floor is not None:
        assert floor <= compiled.resources(asm).shared, f"the floor {floor} exceeds the compiled figure"


def pruned_cases():
    """DEFAULT_PRUNED; with MOTIF_LITE_ALL_LAUNCHES=1 every config pruned on any generation."""
    for capability in GPUS:
        for name in pruned_launches(capability):
            if every_launch() or (capability, name) in DEFAULT_PRUNED:
                yield pytest.param(capability, name, id=f"sm{capability}-{name}")


@pytest.mark.parametrize(("capability", "name"), list(pruned_cases()))
def test_pruned_configs_do_not_fit(capability: int, name: str) -> None:
    """A config the shared-memory prune drops (its floor is over the GPU's limit) compiles to more shared memory than
    the GPU has, and to at least its floor: it was not worth compiling."""
    asm, floor = compiled_launch(capability, name)
    shared = compiled.resources(asm).shared
    assert floor > GPUS[capability].shared
    assert floor <= shared, f"the floor {floor} exceeds the compiled figure {shared}"


def test_default_cases_exist() -> None:
    """Every representative case names a real launch (a renamed config would otherwise drop out silently)."""
    for capability, name in DEFAULT_CASES:
        assert name in {**launches(capability), **int8_launches(capability)}, (capability, name)
    for capability, name in DEFAULT_PRUNED:
        assert name in pruned_launches(capability), (capability, name)


def test_the_99_kib_gpus_are_not_offered_the_configs_that_do_not_fit_them() -> None:
    """On the RTX 30xx, 40xx and 50xx (99 KiB a block) the dense attention's 128 x 128 x 3-stage and 128 x 64 x
    4-stage configs (160 and 128 KiB as the model's call compiles them) and Q5_K's fused-GEMM 256 x 128 x 64 and
    128 x 128 x 64 ones (104 and 100 KiB) are pruned before compiling; Turing, the A100 (163 KiB) and Hopper lose
    nothing, and the 8-bit attention nothing anywhere."""
    dropped = {"attention-128x128-w8-s3", "attention-128x64-w8-s4", "dequant_matmul-Q5_K-256x128x64-w8-s3",
               "dequant_matmul-Q5_K-128x128x64-w8-s4"}  # fmt: skip
    for capability in (86, 89, 120):
        assert set(pruned_launches(capability)) == dropped
    for capability in (75, 80, 90):
        assert pruned_launches(capability) == {}


def test_turing_is_offered_only_the_attention_tiles_that_fit() -> None:
    """Turing runs Triton's dots on the CUDA cores with 64 KiB of shared memory per block: of the dense attention's
    configs only the 64 x 64 one fits (the 128-row ones the row-split rule would keep ask for 96-128 KiB)."""
    assert [config_id(config) for config in dense_attention_offered(75)] == ["64x64-w4-s3"]
    assert all(config.kwargs["BLOCK_M"] == 128 for config in dense_attention_offered(86))
    assert all(config.kwargs["BLOCK_M"] == 128 for config in dense_attention_offered(80))  # an A100 is no Turing


def test_resources_reads_what_a_launch_needs() -> None:
    """`resources` of a launch whose needs are known from its tiles: T4's fp32 attention, 4 warps, holds at least
    its Q tile (32 rows x 128 fp32) in shared memory and one register per thread per Q element it owns (the fit
    test checks upper limits only, so a `resources` reading zeros would pass it)."""
    used = compiled.resources(launches(75)["attention-fp32-32x64-w4-s1"].compile(75))
    assert used.threads == 4 * 32
    assert used.shared >= 32 * 128 * 4
    assert used.registers >= 32 * 128 // used.threads


def test_only_mma_sync_gpus_are_offered_the_spill_free_attention_configs() -> None:
    """Hopper keeps the configs tuned on it; Ampere, Ada and RTX 50xx get `MMA_SYNC_CONFIGS` besides."""
    assert dense_attention_offered(90) == attention._CONFIGS
    for capability in (80, 86, 89, 120):
        assert dense_attention_offered(capability)[-len(attention.MMA_SYNC_CONFIGS) :] == attention.MMA_SYNC_CONFIGS


def spill_free_cases():
    """sm_86 (RTX 30xx), and sm_120 (RTX 50xx) with a key mask, by default; with MOTIF_LITE_ALL_LAUNCHES=1 every
    `mma.sync` generation."""
    for capability in (80, 86, 89, 120):
        for key_mask in (False, True):
            if every_launch() or capability == 86 or (capability, key_mask) == (120, True):
                yield pytest.param(capability, key_mask, id=f"sm{capability}-{'key-mask' if key_mask else 'no-mask'}")


@pytest.mark.parametrize(("capability", "key_mask"), list(spill_free_cases()))
def test_dense_attention_offers_a_config_that_does_not_spill(capability: int, key_mask: bool) -> None:
    """On the `mma.sync` GPUs the dense attention's tuned (Hopper) configs all spill registers; the autotuner there
    is offered at least one config that fits and does not spill, with a key mask (text padding) too. Smallest tiles
    first: the likeliest to pass, so usually one compile."""
    seen = {}
    for config in sorted(dense_attention_offered(capability), key=lambda c: c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"]):
        asm = attention_launch("*bf16", config, key_mask).compile(capability)
        used = compiled.resources(asm)
        seen[config_id(config)] = used
        if used.shared <= GPUS[capability].shared and used.stack == 0:
            assert_fits(asm, capability)
            return
    pytest.fail(f"every offered config spills or does not fit: {seen}")
