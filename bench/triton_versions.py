"""Compile our kernels' representative launches with the installed Triton, for several GPU targets, without a GPU.

    python bench/triton_versions.py [--capabilities 80,86,89,90] [--only PREFIX,PREFIX]

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

import triton

from motif_lite.kernels import attention, attention_int8, compiled, dequant_matmul, norm

Launch = Callable[[int], object]


def _config_id(config) -> str:
    tiles = "x".join(str(value) for value in config.kwargs.values())
    return f"{tiles}-w{config.num_warps}-s{config.num_stages}"


def _dense_attention_configs(capability: int) -> list:
    """The dense attention's autotune configs offered on this GPU at head dim 128."""
    from motif_lite.kernels import launch

    offered = launch.offered_configs
    return offered(attention._CONFIGS, divmod(capability, 10), {"BLOCK_D": 128}, attention.MMA_SYNC_CONFIGS)


def _dense_attention(capability: int, key_mask: bool, block_mask: bool, fp32: bool = False, config=None) -> object:
    """config: an autotune config (default: the first offered on this GPU); fp32: the fixed float32 launch."""
    dtype = "*fp32" if fp32 else "*bf16"
    pointers = {name: dtype for name in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    pointers.update(kmask_ptr="*u8", bmask_ptr="*u8", qk_scale="fp32")
    if fp32:
        block_m, block_n = attention._tile_sizes(128, 128)
        tiles = dict(BLOCK_M=min(block_m, attention.FP32_BLOCK_M), BLOCK_N=block_n)
        options = dict(num_warps=4, num_stages=attention.FP32_STAGES)
    else:
        config = config or _dense_attention_configs(capability)[0]
        tiles, options = config.kwargs, dict(num_warps=config.num_warps, num_stages=config.num_stages)
    constexprs = dict(HAS_BLOCK_MASK=block_mask, MASK_BLOCK=128, BLOCK_D=128, PRECISION="ieee" if fp32 else "tf32",
                      HAS_KEY_MASK=key_mask, EVEN_D=True, **tiles)  # fmt: skip
    return compiled.compile_for(attention._attention_kernel, capability, pointers, constexprs, **options)


def _dequant_matmul(capability: int, qtype, small: bool, config=None) -> object:
    if config is None:
        config = dequant_matmul._fixed_config(dequant_matmul.SMALL_M, 1536) if small else dequant_matmul.CONFIGS[0]
    pointers = dict(x_ptr="*bf16", w_ptr="*u8", b_ptr="*bf16", y_ptr="*bf16")
    constexprs = dict(QTYPE=int(qtype), HAS_BIAS=True, PRECISION="tf32", **config.kwargs)
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    return compiled.compile_for(dequant_matmul._dequant_matmul_kernel, capability, pointers, constexprs, **options)


def _dequantize(capability: int, qtype) -> object:
    block_n, block_k = dequant_matmul._dequantize_blocks(1536)
    constexprs = dict(QTYPE=int(qtype), BLOCK_N=block_n, BLOCK_K=block_k, BF16_BY_BITS=False)
    pointers = dict(w_ptr="*u8", out_ptr="*bf16")
    kernel = dequant_matmul._dequantize_kernel
    return compiled.compile_for(kernel, capability, pointers, constexprs, **dequant_matmul.DEQUANTIZE_OPTIONS)


def _layer_norm_modulate(capability: int) -> object:
    pointers = dict(x_ptr="*bf16", shift_ptr="*bf16", scale_ptr="*bf16", y_ptr="*bf16", eps="fp32")
    return compiled.compile_for(norm._layer_norm_modulate_kernel, capability, pointers, dict(BLOCK_C=2048))


def _rms_norm_rope(capability: int) -> object:
    pointers = dict(x_ptr="*bf16", w_ptr="*bf16", cos_ptr="*fp32", sin_ptr="*fp32", y_ptr="*bf16", eps="fp32")
    constexprs = dict(HAS_WEIGHT=True, HAS_ROPE=True, BLOCK_ROWS=16, BLOCK_D=128)
    return compiled.compile_for(norm._rms_norm_rope_kernel, capability, pointers, constexprs, num_warps=4)


def _int8_prepasses(capability: int) -> object:
    fp8 = capability >= 89
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmask_ptr="*u8", stats_ptr="*fp32")
    constexprs = dict(HAS_KEY_MASK=True, SMOOTH=True, V_STATS=fp8, ROWS=1024, BLOCK_N=64, BLOCK_D=128)
    compiled.compile_for(attention_int8._kv_stats_kernel, capability, pointers, constexprs, num_warps=4)
    pointers = dict(k_ptr="*bf16", v_ptr="*bf16", kmean_ptr="*fp32", vmean_ptr="*fp32", vinv_ptr="*fp32")
    pointers.update(kmask_ptr="*u8", k8_ptr="*i8", kscale_ptr="*fp32", v8_ptr="*fp8e4nv" if fp8 else "*bf16")
    constexprs = dict(HAS_KEY_MASK=True, QUANT_V=fp8, BLOCK_N=64, BLOCK_D=128, INTERPRETED=False)
    return compiled.compile_for(attention_int8._quantize_kv_kernel, capability, pointers, constexprs, num_warps=4)


def _int8_attention(capability: int, block_mask: bool, config=None) -> object:
    config = config or attention_int8._CONFIGS[0]
    return compiled.int8_attention_asm(capability, fp8=capability >= 89, block_mask=block_mask,
                                       block_m=config.kwargs["BLOCK_M"], num_warps=config.num_warps,
                                       num_stages=config.num_stages)  # fmt: skip


def launches(capability: int, every_config: bool = False) -> Iterator[tuple[str, Launch]]:
    """(name, compile for a capability) for each representative launch: every kernel, each quant type; with
    `every_config`, also each autotune config offered on this GPU (dense and 8-bit attention, Q4_K GEMM)."""
    yield "layer_norm_modulate", _layer_norm_modulate
    yield "rms_norm_rope", _rms_norm_rope
    for qtype in dequant_matmul.SUPPORTED_QTYPES:
        yield f"dequantize-{qtype.name}", lambda cap, q=qtype: _dequantize(cap, q)
        yield f"dequant_matmul-{qtype.name}", lambda cap, q=qtype: _dequant_matmul(cap, q, small=False)
    yield "dequant_matmul-Q4_K-small-m", lambda cap: _dequant_matmul(cap, dequant_matmul.SUPPORTED_QTYPES[2], True)
    yield "attention-dense-key-mask", lambda cap: _dense_attention(cap, key_mask=True, block_mask=False)
    yield "attention-block-sparse", lambda cap: _dense_attention(cap, key_mask=True, block_mask=True)
    yield "attention-fp32", lambda cap: _dense_attention(cap, key_mask=True, block_mask=False, fp32=True)
    yield "int8-prepasses", _int8_prepasses
    yield "int8_attention-dense", lambda cap: _int8_attention(cap, block_mask=False)
    yield "int8_attention-block-sparse", lambda cap: _int8_attention(cap, block_mask=True)
    if not every_config:
        return
    q4_k = dequant_matmul.SUPPORTED_QTYPES[2]
    for c in _dense_attention_configs(capability):
        yield f"attention-config-{_config_id(c)}", lambda cap, c=c: _dense_attention(cap, True, False, config=c)
    for c in attention_int8._CONFIGS if capability >= 80 else []:
        yield f"int8_attention-config-{_config_id(c)}", lambda cap, c=c: _int8_attention(cap, False, c)
    for c in dequant_matmul.CONFIGS:
        yield f"dequant_matmul-Q4_K-config-{_config_id(c)}", lambda cap, c=c: _dequant_matmul(cap, q4_k, False, c)


def _error(exc: BaseException) -> str:
    """The first line of the error that says most: Triton's compile errors put it last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capabilities", default="80,86,89,90", help="compute capabilities, e.g. 89,90")
    parser.add_argument("--only", default="", help="only the launches whose names start with one of these (a,b)")
    parser.add_argument("--every-config", action="store_true", help="also every autotune config offered there")
    parser.add_argument("--verbose", action="store_true", help="print the whole traceback of a failure")
    args = parser.parse_args(argv)
    failed = 0
    for capability in [int(part) for part in args.capabilities.split(",")]:
        for name, launch in launches(capability, args.every_config):
            if not name.startswith(tuple(args.only.split(","))):
                continue
            row = dict(triton=triton.__version__, capability=capability, launch=name, ok=True, error="")
            try:
                launch(capability)
            except Exception as exc:  # any compiler error is a result here, not a crash
                row.update(ok=False, error=_error(exc))
                failed += 1
                if args.verbose:
                    traceback.print_exc()
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
