"""Our kernels compiled for a CUDA target in tests, without a GPU (motif_lite.kernels.compiled), skipping instead
of failing where this machine cannot: kernels built for the interpreter (TRITON_INTERPRET=1 in this process), a
Triton that ships no ptxas / cuobjdump, or one too old for the target (`launch.triton_too_old`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

triton = pytest.importorskip("triton")
from triton.runtime.jit import JITFunction  # noqa: E402

from motif_lite.kernels import attention_int8, compiled, dequant_matmul  # noqa: E402
from motif_lite.kernels.launch import triton_too_old, triton_version  # noqa: E402


def _built(kernel: object, capability: int, build: Callable[[], dict]) -> dict:
    if not isinstance(kernel, JITFunction):
        pytest.skip("kernels were built for the interpreter (TRITON_INTERPRET=1)")
    too_old = triton_too_old(triton.__version__, divmod(capability, 10))
    if too_old:  # Triton 3.2 aborts the whole process compiling for sm_120
        pytest.skip(too_old)
    try:
        asm = build()
    except FileNotFoundError as exc:  # no ptxas shipped with this triton
        pytest.skip(f"cannot build cubins here: {exc}")
    assert asm["cubin"]
    return asm


def compile_or_skip(kernel, capability: int, pointers: dict, constexprs: dict, ints=None, **options) -> dict:
    """`compiled.compile_for`, or skip."""
    old_triton = triton_version(triton.__version__) < dequant_matmul.FUSED_FP32_TRITON
    if old_triton and kernel is dequant_matmul._dequant_matmul_kernel and pointers.get("x_ptr") == "*fp32":
        pytest.skip("this Triton aborts compiling the float32 fused GEMM; dequant_matmul splits float32 there")
    return _built(
        kernel, capability, lambda: compiled.compile_for(kernel, capability, pointers, constexprs, ints, **options)
    )


def int8_attention_or_skip(capability: int, **call) -> dict:
    """`compiled.int8_attention_asm`, or skip."""
    kernel = attention_int8._int8_attention_kernel
    return _built(kernel, capability, lambda: compiled.int8_attention_asm(capability, **call))


def sass_or_skip(cubin: bytes) -> str:
    """The cubin's SASS, or skip where no cuobjdump ships with this triton."""
    try:
        return compiled.sass(cubin)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot disassemble here: {exc}")
