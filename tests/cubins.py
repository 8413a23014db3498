"""Our kernels compiled for a CUDA target in tests, without a GPU (motif_lite.kernels.compiled), skipping instead
of failing where this machine cannot: kernels built for the interpreter (TRITON_INTERPRET=1 in this process), a
Triton that ships no ptxas / cuobjdump (decided once, from the files; under CI that fails instead), or one too old
for the target (`launch.triton_too_old`). Any error from the build or the disassembly itself fails the test: a
broken cubin makes cuobjdump exit non-zero, which must not read as "cannot disassemble here"."""

from __future__ import annotations

import functools
import os
import shutil
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
from missing_tools import skip_here_fail_on_ci  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from motif_lite.kernels import attention_int8, compiled, dequant_matmul  # noqa: E402
from motif_lite.kernels.launch import triton_too_old, triton_version  # noqa: E402

CUDA_TOOLS = ("ptxas", "cuobjdump")


@functools.cache
def missing_cuda_tool() -> str | None:
    """The first of `CUDA_TOOLS` Triton would not find here, or None: where Triton looks (its TRITON_<NAME>_PATH,
    then the copy it ships in backends/nvidia/bin; Triton 3.2 also searches PATH)."""
    shipped = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    for tool in CUDA_TOOLS:
        binary = tool + (sysconfig.get_config_var("EXE") or "")
        places = (os.environ.get(f"TRITON_{tool.upper()}_PATH"), str(shipped / binary), binary)
        if not any(place and shutil.which(place) for place in places):
            return tool
    return None


def skip_without_cuda_tools() -> None:
    """Skip where this Triton ships no ptxas or cuobjdump; under CI (which has them) fail instead."""
    tool = missing_cuda_tool()
    if tool is None:
        return
    skip_here_fail_on_ci(f"no {tool} with this Triton: cannot build or read cubins here")


def _built(kernel: object, capability: int, build: Callable[[], dict]) -> dict:
    if not isinstance(kernel, JITFunction):
        pytest.skip("kernels were built for the interpreter (TRITON_INTERPRET=1)")
    too_old = triton_too_old(triton.__version__, divmod(capability, 10))
    if too_old:  # Triton 3.2 aborts the whole process compiling for sm_120
        pytest.skip(too_old)
    skip_without_cuda_tools()
    asm = build()
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
    skip_without_cuda_tools()
    return compiled.sass(cubin)
