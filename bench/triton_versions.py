"""Compile our kernels, specialized as the compile tests build them, with the installed Triton, without a GPU.

    python bench/triton_versions.py [--capabilities 80,86,89,90,120] [--only PREFIX,PREFIX]

prints one JSON line per launch: {"triton", "capability", "launch", "ok", "error"}. To try the Triton each torch
release installs, put that release first on the path (no torch change needed: compiling uses Triton alone):

    pip install --no-deps --target /tmp/triton-3.2 triton==3.2.0
    PYTHONPATH=/tmp/triton-3.2 TRITON_CACHE_DIR=/tmp/triton-3.2-cache python bench/triton_versions.py

docs/kernels.md ("Triton versions") has the table this gave. It proves that each launch gets through that Triton's
compiler and ptxas, not what it computes (the interpreter tests and the GPU suite do that).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import triton

from motif_lite.kernels import attention, attention_int8, compiled
from motif_lite.kernels.launch import triton_too_old

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_kernels_compile import int8_launches  # noqa: E402  (the compile tests' launches, specialized as called)
from test_kernels_compile import launches as specialized_launches  # noqa: E402

Launch = Callable[[int], object]


def _block_sparse_attention(capability: int) -> object:
    """The dense attention kernel with a block mask (the decoder's sparse attention), which the compile tests'
    cases leave out."""
    pointers = {name: "*bf16" for name in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    pointers.update(kmask_ptr="*u8", bmask_ptr="*u8", qk_scale="fp32")
    block_m, block_n, stages = attention.fixed_launch(128, 128, torch.bfloat16, divmod(capability, 10))
    constexprs = dict(HAS_BLOCK_MASK=True, MASK_BLOCK=128, BLOCK_D=128, PRECISION="tf32", HAS_KEY_MASK=True,
                      EVEN_D=True, BLOCK_M=block_m, BLOCK_N=block_n)  # fmt: skip
    return compiled.compile_for(attention._attention_kernel, capability, pointers, constexprs, num_stages=stages)


def _int8_prepasses(capability: int) -> object:
    fp8 = capability >= 89
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmask_ptr="*u8", stats_ptr="*fp32")
    constexprs = dict(HAS_KEY_MASK=True, SMOOTH=True, V_STATS=fp8, ROWS=1024, BLOCK_N=64, BLOCK_D=128)
    compiled.compile_for(attention_int8._kv_stats_kernel, capability, pointers, constexprs, num_warps=4)
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmean_ptr="*fp32", vmean_ptr="*fp32", vinv_ptr="*fp32")
    pointers.update(kmask_ptr="*u8", k8_ptr="*i8", kscale_ptr="*fp32", v8_ptr="*fp8e4nv" if fp8 else "*bf16")
    constexprs = dict(HAS_KEY_MASK=True, QUANT_V=fp8, BLOCK_N=64, BLOCK_D=128, INTERPRETED=False)
    return compiled.compile_for(attention_int8._quantize_kv_kernel, capability, pointers, constexprs, num_warps=4)


def _int8_attention(config) -> Launch:
    return lambda capability: compiled.int8_attention_asm(
        capability, fp8=capability >= 89, block_m=config.kwargs["BLOCK_M"], num_warps=config.num_warps,
        num_stages=config.num_stages,
    )  # fmt: skip


def launches(capability: int) -> Iterator[tuple[str, Launch]]:
    """(name, compile for a capability) for each launch the compile tests build on this GPU (`launches` and
    `int8_launches` of tests/test_kernels_compile.py: every kernel, each quant type, the fixed launches and the
    autotune configs kept there, specialized as the model's calls are), and the three they leave out: the block-
    sparse attention and the 8-bit attention's two prepasses."""
    for name, launch in specialized_launches(capability).items():
        yield name, launch.compile
    yield "attention-block-sparse", _block_sparse_attention
    if capability >= 80:  # the 8-bit attention needs INT8 tensor cores
        yield "int8-prepasses", _int8_prepasses
        for name, config in int8_launches(capability).items():
            yield name, _int8_attention(config)


def _error(exc: BaseException) -> str:
    """The first line of the error that says most: Triton's compile errors put it last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


def _compiled(launch: Launch, capability: int, verbose: bool) -> dict:
    """{"ok", "error"} of compiling `launch` for sm_`capability`: ok None when skipped."""
    too_old = triton_too_old(triton.__version__, divmod(capability, 10))
    if too_old:  # not tried: its LLVM would abort the process, and the launches added here do not skip by themselves
        return dict(ok=None, error=f"skipped: {too_old}")
    try:
        launch(capability)
    except pytest.skip.Exception as exc:  # the compile tests' own reasons: e.g. this Triton splits that call
        return dict(ok=None, error=f"skipped: {exc}")
    except Exception as exc:  # any compiler error is a result here, not a crash
        if verbose:
            traceback.print_exc()
        return dict(ok=False, error=_error(exc))
    return dict(ok=True, error="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capabilities", default="80,86,89,90,120", help="compute capabilities, e.g. 89,90,120")
    parser.add_argument("--only", default="", help="only the launches whose names start with one of these (a,b)")
    parser.add_argument("--verbose", action="store_true", help="print the whole traceback of a failure")
    args = parser.parse_args(argv)
    failed = 0
    for capability in [int(part) for part in args.capabilities.split(",")]:
        for name, launch in launches(capability):
            if not name.startswith(tuple(args.only.split(","))):
                continue
            row = dict(triton=triton.__version__, capability=capability, launch=name)
            row.update(_compiled(launch, capability, args.verbose))
            failed += row["ok"] is False
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
