"""What a Triton kernel compiles to for a CUDA target, on any machine (no GPU needed: Triton ships ptxas and
cuobjdump). The compile tests and `bench/int8_sass.py` read the PTX and SASS of our kernels with it."""

from __future__ import annotations

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction
from triton.tools.disasm import get_sass

from .launch import FUSED_FP


def compile_for(
    kernel: JITFunction,
    capability: int,
    pointers: dict[str, str],
    constexprs: dict[str, object],
    ints: dict[str, int] | None = None,
    **options: int,
) -> dict[str, object]:
    """-> the compiled kernel's `asm` (ttgir, ptx, cubin, ...) for compute capability `capability` (90: H100).

    pointers: the pointer and float arguments' types ("*bf16", "fp32"); constexprs: their values; every other
    argument is an i32. Specialized as Triton's JIT specializes a call: pointers are 16-byte aligned, and an
    integer given in `ints` becomes a constant if it is 1 and is known divisible by 16 if it is a multiple of 16
    (integers not in `ints` get no hint). options: num_warps, num_stages, ...; FP fusion on unless stated, as our
    launches state it (kernels/launch.py)."""
    ints = ints or {}
    constexprs = {**constexprs, **{name: 1 for name, value in ints.items() if value == 1}}
    signature = {name: "constexpr" if name in constexprs else pointers.get(name, "i32") for name in kernel.arg_names}
    aligned = [
        name
        for name, kind in signature.items()
        if kind.startswith("*") or (kind == "i32" and ints.get(name, 1) % 16 == 0)
    ]
    attrs = {(kernel.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    values = {(kernel.arg_names.index(name),): value for name, value in constexprs.items()}
    compiled = triton.compile(
        ASTSource(kernel, signature, values, attrs),
        target=GPUTarget("cuda", capability, 32),
        options={"num_warps": 8, "num_stages": 3, **FUSED_FP, **options},
    )
    return compiled.asm


def sass(cubin: bytes) -> str:
    """The cubin's SASS, from the cuobjdump Triton ships."""
    return get_sass(cubin)
