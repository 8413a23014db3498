"""The 8-bit attention kernels compile to sm_90 (H100/H200), sm_89 (Ada), sm_120 (RTX 50xx), sm_86 (RTX 30xx) and
sm_80 (A100) cubins on the tensor-core instructions they are for (the interpreter tests prove the math, not the
compiled path)."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch
from cubins import compile_or_skip, int8_attention_or_skip, sass_or_skip, skip_without_cuda_tools
from test_kernels_compile import TORCH_DTYPES, assert_fits

from motif_lite.kernels import attention_int8, compiled, launch
from motif_lite.kernels.errors import KernelInputError

PIPELINED = {"PIPELINE_PV": True}


# P·V's operand type in the PTX: e4m3 for FP8 P·V, else the input's type (fp32 inputs on the TF32 tensor cores).
PV_PTX_TYPE = {"bf16": "bf16", "fp16": "f16", "fp32": "tf32"}


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
@pytest.mark.parametrize(
    ("capability", "fp8", "block_mask", "dtype"),
    [
        (90, True, False, "bf16"),
        (90, True, True, "bf16"),
        (90, False, False, "bf16"),
        (90, False, False, "fp32"),
        (89, True, False, "bf16"),
        (89, False, False, "fp32"),
        (120, True, False, "bf16"),
        (86, False, False, "fp16"),
        (80, False, True, "bf16"),
    ],
    ids=[
        "sm90-fp8-dense",
        "sm90-fp8-sparse",
        "sm90-bf16-dense",
        "sm90-fp32-dense",
        "sm89-fp8-dense",
        "sm89-fp32-dense",
        "sm120-fp8-dense",
        "sm86-fp16-dense",
        "sm80-bf16-sparse",
    ],
)
def test_attention_compiles(capability: int, fp8: bool, block_mask: bool, dtype: str, pipeline_pv: bool) -> None:
    asm = int8_attention_or_skip(capability, fp8=fp8, block_mask=block_mask, pipeline_pv=pipeline_pv, dtype=dtype)
    ptx = asm["ptx"]
    pv_type = "e4m3" if fp8 else PV_PTX_TYPE[dtype]
    wgmma = capability == 90  # Ada, Ampere and the RTX 50xx (sm_120) use warp-level mma.sync
    if wgmma:  # Hopper warpgroup MMAs: INT8 QKᵀ with int32 accumulation, P·V in e4m3, bf16 or tf32
        assert "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8" in ptx
        assert f"f32.{pv_type}.{pv_type}" in ptx
    else:
        assert "mma.sync.aligned" in ptx and ".s32.s8.s8.s32" in ptx
        assert f".f32.{pv_type}.{pv_type}.f32" in ptx
        assert (".e4m3.e4m3" in ptx) == fp8
    sass = sass_or_skip(asm["cubin"])
    # The MMAs of one dot are issued back to back and waited for once (ptxas serializes every wgmma of a kernel,
    # one wait per MMA, when any accumulator is read before its wait: `ptxas -v` info C7514).
    if wgmma:
        gmmas, waits = len(re.findall(r"\b[IQH]GMMA\.", sass)), sass.count("WARPGROUP.DEPBAR")
        assert waits * 2 <= gmmas, f"wgmma serialized: {waits} waits for {gmmas} MMAs"
    if fp8:  # every FP8 P·V chain (64 keys: two 32-deep MMAs) starts from zero, then joins the fp32 acc by an FMA
        fp8_mmas = re.findall(r"\bQG?MMA\.[^;]*;", sass)
        from_zero = [mma for mma in fp8_mmas if re.search(r",\s*RZ\b", mma)]
        assert fp8_mmas and 2 * len(from_zero) == len(fp8_mmas), f"{len(from_zero)} of {len(fp8_mmas)} from zero"
    # The int32 scores become fp32 by integer and float adds, never by a conversion instruction (which issues at
    # the exp2 unit's rate: one per score would cost as much as the softmax's exp2).
    assert "cvt.rn.f32.s32" not in ptx and "cvt.f32.s32" not in ptx


@pytest.mark.parametrize(
    ("capability", "dtype", "dim"),
    [(86, "fp32", 128), (89, "fp32", 128), (86, "bf16", 256), (86, "fp32", 256)],
    ids=["sm86-fp32", "sm89-fp32", "sm86-bf16-d256", "sm86-fp32-d256"],
)
def test_fixed_launch_of_16bit_pv_fits_the_99_kib_gpus(capability: int, dtype: str, dim: int) -> None:
    """Calls the autotuner does not cover (block masks of 64 keys, head dims over 128) take 64-row tiles on 4 warps;
    with 16-bit P·V their V tiles (fp32 inputs: TF32) fit the 99 KiB of shared memory of sm_86 and sm_89 only with
    fewer stages: 2 for fp32 at head dim 128 and bf16 at 256, 1 for fp32 at 256 (bf16 at 256 with Triton's default
    3 asks for 120 KiB, so its launch would fail on an RTX 30xx)."""
    block_d = attention_int8.head_block(dim)
    stages = attention_int8.fixed_launch_stages(TORCH_DTYPES["*" + dtype], block_d)
    asm = int8_attention_or_skip(
        capability, fp8=False, dtype=dtype, dim=dim, block_mask=True, block_m=64, num_warps=4, num_stages=stages
    )
    assert_fits(asm, capability)


TUNED = [(config, False) for config in attention_int8._CONFIGS]
TUNED += [(config, True) for config in attention_int8._CONFIGS if attention_int8.fits_key_loop(config, PIPELINED)]


@pytest.mark.parametrize(
    ("config", "pipeline_pv"),
    TUNED,
    ids=[
        f"{c.kwargs['BLOCK_M']}rows-w{c.num_warps}-s{c.num_stages}-{'pipelined' if pipelined else 'plain'}"
        for c, pipelined in TUNED
    ],
)
def test_autotuned_configs_do_not_spill(config, pipeline_pv: bool) -> None:
    """Every config the autotuner may pick, for either key loop, fits the registers on sm_90 (spilling ones were
    dropped: 128 rows on 4 warps, ~330 local stores; for the pipelined loop 128 rows on 8 warps, 4): a few local
    stores outside the loop at most."""
    asm = int8_attention_or_skip(
        90,
        block_m=config.kwargs["BLOCK_M"],
        num_warps=config.num_warps,
        num_stages=config.num_stages,
        pipeline_pv=pipeline_pv,
    )
    local_stores = len(re.findall(r"\bSTL\b", sass_or_skip(asm["cubin"])))
    assert local_stores <= 16, f"{local_stores} local stores: the config spills"


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
def test_pipelined_loop_computes_pv_during_the_softmax(pipeline_pv: bool) -> None:
    """On sm_90 with FP8 P·V (64 rows, 4 warps, as the autotuner picked on an H200 for the 720p decoder), the
    pipelined key loop issues the P·V wgmma of the previous tile before the current tile's exp2s and waits for it
    after them, in the next iteration; the default loop waits for each MMA before the next step. The INT8 QKᵀ
    is waited for at once in both: Triton makes no MMA with an int32 accumulator asynchronous in a loop."""
    asm = int8_attention_or_skip(90, key_mask=False, block_m=64, num_warps=4, num_stages=3, pipeline_pv=pipeline_pv)
    body = compiled.hot_loop(sass_or_skip(asm["cubin"]))
    assert compiled.mma_in_loop(body, "QGMMA").runs_during_exp2 == pipeline_pv
    assert not compiled.mma_in_loop(body, "IGMMA").runs_during_exp2


@pytest.mark.parametrize(("capability", "fp8"), [(90, True), (89, True), (86, False)])
def test_prepass_kernels_compile(capability: int, fp8: bool) -> None:
    """The prepasses as `_quantize_kv` launches them: with FP8 P·V (sm_89+) V's statistics and e4m3 Vᵀ too; with
    16-bit P·V (sm_80-86, which have no e4m3 type: Triton refuses one there) K only, the V buffer the INT8 K's."""
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmask_ptr="*u8", stats_ptr="*fp32")
    constexprs = dict(HAS_KEY_MASK=True, SMOOTH=True, V_STATS=fp8, ROWS=1024, BLOCK_N=64, BLOCK_D=128)
    compile_or_skip(attention_int8._kv_stats_kernel, capability, pointers, constexprs, num_warps=4)
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmean_ptr="*fp32", vmean_ptr="*fp32", vinv_ptr="*fp32")
    pointers.update(kmask_ptr="*u8", k8_ptr="*i8", kscale_ptr="*fp32", v8_ptr="*fp8e4nv" if fp8 else "*i8")
    constexprs = dict(HAS_KEY_MASK=True, QUANT_V=fp8, BLOCK_N=64, BLOCK_D=128, INTERPRETED=False)
    ptx = compile_or_skip(attention_int8._quantize_kv_kernel, capability, pointers, constexprs, num_warps=4)["ptx"]
    # Hardware e4m3 rounding, no interpreter workaround. Triton 3.6 rounds through f16 on sm_89 (3.9 converts f32
    # directly): the two differ only where the f16 value lands exactly halfway between two e4m3 values.
    assert bool(re.search(r"cvt\.rn\.satfinite\.e4m3x2\.(f32|f16x2)", ptx)) == fp8


# The prepasses as the model calls them (int8_attention -> _quantize_kv), one group of 12 heads of 128: K is the
# contiguous [B, H, L, D] output of rms_norm_rope, V the [B, L, H*D] projection seen as [B, H, L, D] (one piece) or
# a contiguous [B, H, L, D] buffer (gather_qkv). "decoder": the DDT decoder at 832x480x49, 2N = 40,560 keys, no key
# mask; "joint": the joint attention, 20,280 video + 1,241 context tokens, the text padding masked.
PREPASS_CALLS = {"decoder": (40_560, False, True), "joint": (21_521, True, False)}


def _prepass_call(call: str, kernel) -> tuple[dict[str, int], bool]:
    """-> (`kernel`'s integer arguments in the call `call`, which the JIT specializes, whether it has a key mask)."""
    keys, key_mask, v_view = PREPASS_CALLS[call]
    heads, dim = 12, 128
    contiguous = dict(b=heads * keys * dim, h=keys * dim, n=dim, d=1)
    view = dict(b=keys * heads * dim, h=dim, n=heads * dim, d=1) if v_view else contiguous
    ints = dict(H=heads, L=keys, D=dim, LPAD=attention_int8.padded_keys(keys), skm_b=0)
    ints |= {f"sk{axis}": stride for axis, stride in contiguous.items()}
    ints |= {f"sv{axis}": stride for axis, stride in view.items()}
    return {name: value for name, value in ints.items() if name in kernel.arg_names}, key_mask


def _global_accesses(ptx: str) -> list[str]:
    """Every global load and store instruction of `ptx` (per thread), e.g. "ld.global.v4.b32"."""
    return re.findall(r"\b(?:ld|st)\.global\.[\w.]+", ptx)


@pytest.mark.parametrize("call", PREPASS_CALLS)
def test_kv_stats_reads_whole_rows(call: str) -> None:
    """Specialized as the model calls it, every access to K and V is a 16-byte vector: each thread reads 8 of K
    and 8 of V per 64-key step. The only scalar accesses are the key mask's bytes (1 byte per key against 512 of
    K and V) and the 4 per-channel partials each program stores once (per 1,024 keys)."""
    kernel = attention_int8._kv_stats_kernel
    ints, key_mask = _prepass_call(call, kernel)
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmask_ptr="*u8", stats_ptr="*fp32")
    constexprs = dict(HAS_KEY_MASK=key_mask, SMOOTH=True, V_STATS=True, ROWS=1024, BLOCK_N=64, BLOCK_D=128)
    ptx = compile_or_skip(kernel, 90, pointers, constexprs, ints, num_warps=4)["ptx"]
    accesses = _global_accesses(ptx)
    assert accesses.count("ld.global.v4.b32") == 16, accesses
    assert set(accesses) <= {"ld.global.v4.b32", "ld.global.b8", "st.global.b32"}, accesses


@pytest.mark.parametrize("call", PREPASS_CALLS)
def test_quantize_kv_reads_and_writes_whole_rows(call: str) -> None:
    """Specialized as the model calls it (FP8 P·V), K and V are read and INT8 K and e4m3 Vᵀ written in 16-byte
    vectors: per 64-key program each thread reads 8 of K and 8 of V and writes 4 of K (16 channels each) and 4 of
    Vᵀ (16 keys each: the tile is transposed on chip, and LPAD, a multiple of 64, keeps Vᵀ's rows aligned; with an
    LPAD not known to be a multiple of 16 the Vᵀ stores are single bytes). Scalar: the key mask's bytes, the
    per-channel means and scales (float32, 1.5 KB per program) and the one K scale per program."""
    kernel = attention_int8._quantize_kv_kernel
    ints, key_mask = _prepass_call(call, kernel)
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmean_ptr="*fp32", vmean_ptr="*fp32", vinv_ptr="*fp32")
    pointers.update(kmask_ptr="*u8", k8_ptr="*i8", kscale_ptr="*fp32", v8_ptr="*fp8e4nv")
    constexprs = dict(HAS_KEY_MASK=key_mask, QUANT_V=True, BLOCK_N=64, BLOCK_D=128, INTERPRETED=False)
    ptx = compile_or_skip(kernel, 90, pointers, constexprs, ints, num_warps=4)["ptx"]
    accesses = _global_accesses(ptx)
    assert accesses.count("ld.global.v4.b32") == 16 and accesses.count("st.global.v4.b32") == 8, accesses
    scalar = {"ld.global.b8", "ld.global.b32", "st.global.b32"}
    assert set(accesses) <= {"ld.global.v4.b32", "st.global.v4.b32"} | scalar, accesses


@pytest.mark.parametrize("dim", [16, 64])
def test_small_head_dims_compile(dim: int) -> None:
    """A head dim under 32 runs on 32-wide tiles: Triton refuses an 8-bit dot narrower than the MMA's K (seen on an
    H200 with head dim 16 before `head_block`, which the interpreter does not check)."""
    assert attention_int8.head_block(dim) >= 32
    int8_attention_or_skip(90, dim=dim)


def test_a_broken_cubin_fails_rather_than_skips() -> None:
    """Where the tools are here, cuobjdump rejecting a cubin is our error: `sass_or_skip` raises it, it does not
    skip (the SASS tests above would read a broken cubin as "cannot disassemble here")."""
    skip_without_cuda_tools()
    with pytest.raises(subprocess.CalledProcessError):
        try:
            sass_or_skip(b"\x7fELF, but no device code")
        except pytest.skip.Exception as skipped:
            pytest.fail(f"a cubin cuobjdump rejects was skipped: {skipped}")


def test_last_tuned_config_names_the_autotuners_pick(monkeypatch) -> None:
    """The benchmark reports which tiles the autotuner chose (none before a tuned call)."""
    tuner = attention_int8._int8_attention_autotuned
    if tuner is None:
        pytest.skip("kernels were built for the interpreter (TRITON_INTERPRET=1)")
    monkeypatch.setattr(tuner, "best_config", None, raising=False)
    assert attention_int8.last_tuned_config() is None
    monkeypatch.setattr(tuner, "best_config", attention_int8._CONFIGS[-1])
    assert attention_int8.last_tuned_config() == "BLOCK_M 64, 4 warps, 4 stages"


@pytest.mark.parametrize("pipeline_pv", [False, True], ids=["plain-loop", "pipelined-loop"])
def test_one_autotuner_offers_each_key_loop_its_configs(monkeypatch, pipeline_pv: bool) -> None:
    """One autotuner serves both key loops (PIPELINE_PV is in its key): on an H100 its prune offers the default
    loop every config and the pipelined loop the 64-row ones only (128 rows spill there)."""
    tuner = attention_int8._int8_attention_autotuned
    if tuner is None:
        pytest.skip("kernels were built for the interpreter (TRITON_INTERPRET=1)")
    monkeypatch.setattr(launch.torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(launch, "max_shared_memory", lambda device: 227 * 1024)
    q, k8, v8 = torch.empty(16, dtype=torch.bfloat16), torch.empty(16, dtype=torch.int8), torch.empty(16)
    args = dict(q_ptr=q, k8_ptr=k8, v_ptr=v8, svb=2 * 128 * 4096, svh=128 * 4096, svn=1, svd=4096)
    flags = dict(BLOCK_N=attention_int8.K_BLOCK, BLOCK_D=128, PIPELINE_PV=pipeline_pv)
    offered = {(c.kwargs["BLOCK_M"], c.num_warps) for c in tuner.early_config_prune(tuner.configs, args, **flags)}
    assert offered == ({(64, 4)} if pipeline_pv else {(64, 4), (128, 8)})


def lop3(lut: int, a: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """PTX `lop3.b32 d, a, b, c, lut` on int64 tensors holding 32-bit patterns: bit i of d is bit
    (a_i << 2 | b_i << 1 | c_i) of `lut` (PTX ISA: lut = F(0xF0, 0xCC, 0xAA) for the function F)."""
    ones = 0xFFFFFFFF
    d = torch.zeros_like(a)
    for index in range(8):
        if lut >> index & 1:
            d |= (a if index & 4 else ~a & ones) & (b if index & 2 else ~b & ones) & (c if index & 1 else ~c & ones)
    return d


def test_compiled_score_conversion_equals_the_interpreters() -> None:
    """The pipelined loop turns its int32 scores into fp32 by one inline-PTX LOP3 when compiled and by an AND and an
    XOR under the interpreter (which cannot run PTX), so the CPU tests run the second. The LOP3 as compiled, applied
    to every kind of int32 score (the largest |q8·k8| at head dim 256 is 127² x 256), gives the interpreter's bits,
    and those minus MAGIC are the score exactly."""
    ptx = int8_attention_or_skip(90, pipeline_pv=True)["ptx"]  # as test_attention_compiles[sm90-fp8-dense-pipelined]
    operands = set(re.findall(r"lop3\.b32 %r\d+, %r\d+, (\d+), (\d+), (0x[0-9A-Fa-f]+);", ptx))
    assert len(operands) == 1, operands  # one conversion, the same everywhere in the kernel
    b, c, lut = operands.pop()
    largest = 127 * 127 * 256
    scores = torch.cat([torch.randint(-largest, largest + 1, (4096,)), torch.tensor([0, 1, -1, largest, -largest])])
    bits = lop3(int(lut, 16), scores & 0xFFFFFFFF, int(b), int(c))
    interpreted = (scores & 0x7FFFFF) ^ attention_int8.MAGIC_BITS.value
    assert torch.equal(bits, interpreted)
    as_float = bits.to(torch.int32).view(torch.float32).double() - attention_int8.MAGIC.value
    assert torch.equal(as_float, scores.double())


@pytest.mark.parametrize("block_size", [16, 32])
def test_small_mask_blocks_build_with_the_pv_they_get(monkeypatch, block_size: int) -> None:
    """A block mask of 16-key blocks makes 16-key tiles (no tile straddles two blocks), narrower than the FP8 MMA's
    depth of 32: on an RTX 4090 or H100 their FP8 P·V did not compile (Triton: "K >= 32"), so the call failed, and
    under `--kernels auto` fell back to exact attention. Such calls take 16-bit P·V and `pv="fp8"` is refused with
    the reason; 32-key blocks keep FP8. Compiled for sm_89 as the call chooses."""
    monkeypatch.setattr(attention_int8, "_INTERPRET", False)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    cuda = torch.device("cuda")
    block_m, block_n = attention_int8._tile_sizes(block_size)
    fp8 = attention_int8._use_fp8("auto", cuda, block_n)
    assert fp8 == (block_size >= 32)
    if not fp8:
        with pytest.raises(KernelInputError, match="FP8 P·V needs key tiles of at least 32 keys"):
            attention_int8._use_fp8("fp8", cuda, block_n)
    int8_attention_or_skip(89, fp8=fp8, block_mask=True, mask_block=block_size, block_m=block_m, num_warps=4)
