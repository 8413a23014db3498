"""What a Triton kernel compiles to for a CUDA target, on any machine (no GPU needed: Triton ships ptxas and
cuobjdump). The compile tests and `bench/int8_sass.py` read the PTX and SASS of our kernels with it, and the
compile tests what a block of each kernel needs at launch (`resources`), against each GPU generation's limits."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction
from triton.tools.disasm import get_sass, path_to_cuobjdump

from . import attention_int8
from .launch import FUSED_FP


def compile_for(
    kernel: JITFunction,
    capability: int,
    pointers: dict[str, str],
    constexprs: dict[str, object],
    ints: dict[str, int] | None = None,
    **options: int,
) -> dict[str, object]:
    """-> the compiled kernel's `asm` (ttgir, ptx, cubin, ...) for compute capability `capability` (90: H100), and
    under "metadata" Triton's metadata as a dict ("shared": the shared memory bytes a launch asks for, ...).

    pointers: the pointer and float arguments' types ("*bf16", "fp32"); constexprs: their values; every other
    argument is an i32. Specialized as Triton's JIT specializes a call: pointers are 16-byte aligned, and an
    integer given in `ints` becomes a constant if it is 1 and is known divisible by 16 if it is a multiple of 16
    (integers not in `ints` get no hint). options: num_warps, num_stages, ...; FP fusion on unless stated, as our
    launches state it (kernels/launch.py)."""
    ints = ints or {}
    # Constexprs left out take their defaults, as in a call (Triton 3.2 would compile them as runtime integers).
    defaults = {param.name: param.default for param in kernel.params if param.is_constexpr and param.has_default}
    constexprs = {**defaults, **constexprs, **{name: 1 for name, value in ints.items() if value == 1}}
    signature = {name: "constexpr" if name in constexprs else pointers.get(name, "i32") for name in kernel.arg_names}
    aligned = [
        name
        for name, kind in signature.items()
        if kind.startswith("*") or (kind == "i32" and ints.get(name, 1) % 16 == 0)
    ]
    compiled = triton.compile(
        _source(kernel, signature, constexprs, aligned),
        target=GPUTarget("cuda", capability, 32),
        options={"num_warps": 8, "num_stages": 3, **FUSED_FP, **options},
    )
    return {**compiled.asm, "metadata": compiled.metadata._asdict()}


def _source(kernel: JITFunction, signature: dict[str, str], constexprs: dict[str, object], aligned: list[str]):
    """The `ASTSource` of a specialized call. Triton 3.3 changed its form; bench/triton_versions.py compiles our
    kernels with every Triton a supported torch installs (3.2 with torch 2.6), so both are spelled here."""
    index = kernel.arg_names.index
    if hasattr(triton.backends.compiler, "AttrsDescriptor"):  # Triton 3.2: names as keys, an AttrsDescriptor
        from triton.backends.compiler import AttrsDescriptor

        hints = {index(name): 16 for name in aligned}
        arguments = {name: kind for name, kind in signature.items() if kind != "constexpr"}
        return ASTSource(kernel, arguments, constexprs, AttrsDescriptor.from_hints(hints))
    attrs = {(index(name),): [["tt.divisibility", 16]] for name in aligned}
    return ASTSource(kernel, signature, {(index(name),): value for name, value in constexprs.items()}, attrs)


@dataclass(frozen=True)
class Resources:
    """What one block of a compiled kernel needs when it is launched."""

    shared: int  # bytes of shared memory (Triton allocates it all dynamically, at launch)
    registers: int  # per thread
    stack: int  # bytes of stack frame per thread: registers spilled to local memory (0: no spills)
    threads: int


def resources(asm: dict[str, object]) -> Resources:
    """`compile_for`'s result -> its `Resources`: shared memory from Triton's metadata (what the launch asks for),
    registers and stack frame from the cubin, as `cuobjdump -res-usage` reports them."""
    found = path_to_cuobjdump()
    cuobjdump = found[0] if isinstance(found, tuple) else found  # (path, version) before Triton 3.4
    fd, path = tempfile.mkstemp(suffix=".cubin")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(asm["cubin"])
        usage = subprocess.check_output([cuobjdump, "-res-usage", path], text=True)
    finally:
        os.remove(path)
    registers, stack = re.search(r"REG:(\d+) STACK:(\d+)", usage).groups()
    metadata = asm["metadata"]
    return Resources(metadata["shared"], int(registers), int(stack), metadata["num_warps"] * 32)


def sass(cubin: bytes) -> str:
    """The cubin's SASS, from the cuobjdump Triton ships."""
    return get_sass(cubin)


def hot_loop(sass_text: str) -> list[str]:
    """The instructions (predicates dropped, e.g. "IGMMA.64x64x32.S8.S8 R24, R68, gdesc[UR4], RZ, !UPT") of the
    first backward-branching block of `sass_text` that holds MMAs: the unmasked key loop of our attention kernels."""
    lines = sass_text.splitlines()
    labels = {line.rstrip(":"): i for i, line in enumerate(lines) if re.fullmatch(r"\w+:", line)}
    for i, line in enumerate(lines):
        target = re.search(r"BRA (\w+);", line)
        if target and labels.get(target.group(1), i) < i:
            body = [entry.split("\t", 1)[1] for entry in lines[labels[target.group(1)] : i + 1] if "\t" in entry]
            if any("MMA" in entry for entry in body):
                return [re.sub(r"^@!?U?P\w+\s+", "", entry).rstrip(";").strip() for entry in body]
    raise ValueError("no MMA loop found in the SASS")


@dataclass(frozen=True)
class MmaInLoop:
    """Where one kind of MMA of a loop body is issued and waited for, relative to the body's MUFU.EX2s (indices
    into `hot_loop`'s list; waited None: no wgmma wait after it in the body, so it is waited for in the next
    iteration)."""

    issued: int  # its first instruction
    waited: int | None  # the first WARPGROUP.DEPBAR after its last instruction
    first_exp2: int
    last_exp2: int

    @property
    def runs_during_exp2(self) -> bool:
        """Issued before the exp2s and waited for after them: the tensor cores compute it during the softmax."""
        return self.issued < self.first_exp2 and (self.waited is None or self.waited > self.last_exp2)


def mma_in_loop(body: list[str], opcode: str) -> MmaInLoop:
    """`MmaInLoop` of the MMAs whose opcode starts with `opcode` ("IGMMA": INT8 QKᵀ, "QGMMA": FP8 P·V, "HGMMA":
    16-bit P·V) in the loop body `body` (`hot_loop`)."""
    at = [i for i, entry in enumerate(body) if entry.startswith(opcode)]
    exp2 = [i for i, entry in enumerate(body) if entry.startswith("MUFU.EX2")]
    if not at or not exp2:
        raise ValueError(f"no {opcode} or no MUFU.EX2 in the loop")
    waits = [i for i, entry in enumerate(body) if entry.startswith("WARPGROUP.DEPBAR") and i > at[-1]]
    return MmaInLoop(at[0], waits[0] if waits else None, exp2[0], exp2[-1])


def int8_attention_asm(
    capability: int,
    *,
    fp8: bool = True,
    key_mask: bool = True,
    block_mask: bool = False,
    dim: int = 128,
    block_m: int = 128,
    keys: int = 228_160,
    pipeline_pv: bool = False,
    dtype: str = "bf16",
    mask_block: int = 128,
    **options: int,
) -> dict[str, object]:
    """The 8-bit attention kernel as a call compiles it: `keys` queries and keys (default 228,160, the DDT
    decoder's 2N tokens at 1280x736x121), head dim `dim`, contiguous q and output of 12 heads in `dtype` ("bf16",
    "fp16", "fp32"), V as e4m3 Vᵀ (keys contiguous) or the input V in `dtype`. pipeline_pv: the
    software-pipelined key loop (`PIPELINE_PV`). mask_block: the block mask's block size (key tiles of at most
    that many keys, as `int8_attention`'s `block_size` gives them). options: num_warps, num_stages, ..."""
    block_d = attention_int8.head_block(dim)
    pointers = dict(q_ptr=f"*{dtype}", k8_ptr="*i8", kscale_ptr="*fp32", v_ptr="*fp8e4nv" if fp8 else f"*{dtype}",
                    vscale_ptr="*fp32", vmean_ptr="*fp32", o_ptr=f"*{dtype}", kmask_ptr="*u8", bmask_ptr="*i32",
                    sm_scale_log2="fp32")  # fmt: skip
    block_n = min(mask_block, attention_int8.K_BLOCK)
    constexprs = dict(HAS_BLOCK_MASK=block_mask, MASK_BLOCK=mask_block, BLOCK_M=block_m, BLOCK_N=block_n,
                      BLOCK_D=block_d, HAS_KEY_MASK=key_mask, PV_FP8=fp8, EVEN_D=block_d == dim,
                      INTERPRETED=False, PIPELINE_PV=pipeline_pv)  # fmt: skip
    head, rows = keys * dim, 12 * keys * dim  # q, output and input V: [B, 12, L, D]; e4m3 Vᵀ: [B, 2, BLOCK_D, L]
    v_strides = dict(svb=2 * block_d * keys, svh=block_d * keys, svn=1, svd=keys) if fp8 else dict(
        svb=rows, svh=head, svn=dim, svd=1
    )  # fmt: skip
    ints = dict(LQ=keys, LK=keys, D=dim, LPAD=keys, sqb=rows, sqh=head, sqm=dim, sqd=1, sob=rows, soh=head, som=dim,
                **v_strides)  # fmt: skip
    return compile_for(attention_int8._int8_attention_kernel, capability, pointers, constexprs, ints, **options)
