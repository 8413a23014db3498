"""Regional compilation: `torch.compile` each transformer block in place (opt-in, `--compile`).

    handle = apply_compile(transformer, CompileConfig())
    ...                                   # the first forward at a new shape compiles; later ones run compiled code
    handle.remove()                       # back to eager

Why per block: the 36 blocks are three kinds of the same code, so Dynamo traces a handful of graphs (one per block
kind, batch size and mask presence, and one for the DDT decoder's last block, which computes the decoder's half
only) instead of one huge model graph, and every block of a kind reuses its kind's compiled code (parameters are
graph inputs). `nn.Module.compile()` compiles the block in place: the module tree and state-dict keys stay as they
are (no `_orig_mod` wrapper), and forward hooks stay installed. The hooks are inside the compiled `__call__`, so
the ones that must stay eager — block streaming's weight swaps — are marked `torch.compiler.disable`
(runtime/streaming.py) and run around the compiled forward. Code that syncs with the host (the `auto` attention
trial, row-split masked attention) is marked the same way and runs eagerly between compiled pieces, and so does
sequence parallelism's Ulysses attention (runtime/parallel.py), whose collectives stay torch.distributed's calls.

What the compiled blocks run: torch's versions of the norm ops (`Ops.layer_norm_modulate`, `Ops.rms_norm_rope`)
and of the quantized linears' dequantization, not our hand-written Triton kernels. Inductor generates those kernels
itself and fuses them with the gates, residual adds and activations around them, which is what compiling is for;
an opaque kernel would stay a separate pass over memory. The attention stays what it was and runs eagerly between
compiled pieces: the `auto` trial and every Triton kernel behind a `FallbackOp` (8-bit, block-sparse or our dense
attention) are excluded from graphs, because their per-call fallback is Python control flow that a compiled graph
would not keep. `remove()` puts the kernels back. Apply after `apply_kernels` (which would install them again).

Shapes are static (`dynamic=False`): each request's sizes compile once, on the first denoising step (the run
summary reports that step's extra time); another resolution in the same process compiles again. Dynamo keeps at
most `torch._dynamo.config.recompile_limit` (8) versions per code object and falls back to eager beyond that,
which matters only for a long-lived process serving many sizes.
"""

from __future__ import annotations

import dataclasses
import ntpath
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from motif_lite.devices import is_here
from motif_lite.errors import MotifLiteError, both_spellings
from motif_lite.gpus import rocm_build, triton_gpu_blocker
from motif_lite.model.ops import TORCH_OPS, Ops
from motif_lite.runtime.triton_build import launcher_build_problem
from motif_lite.shell_syntax import variable_set
from motif_lite.weights.quant_linear import QuantizedLinear, QuantKernel


class CompileUnavailableError(MotifLiteError, RuntimeError):
    """torch.compile cannot work on this machine (no C++ compiler for the CPU, no Triton for CUDA)."""


@dataclass(frozen=True)
class CompileConfig:
    """mode: torch.compile's mode (None = default; "max-autotune-no-cudagraphs" tunes GEMMs longer). CUDA graphs
    ("reduce-overhead") are not offered: block streaming changes weight storage between calls."""

    mode: str | None = None
    dynamic: bool = False


@dataclass
class CompileHandle:
    """What `apply_compile` changed: the compiled blocks, and the kernels it set aside for torch's ops (the model's
    `Ops` and each quantized linear's `kernel`). `remove()` makes the blocks eager and puts the kernels back."""

    blocks: list[nn.Module] = field(default_factory=list)
    model: nn.Module | None = None
    ops: Ops | None = None
    linear_kernels: list[tuple[QuantizedLinear, QuantKernel]] = field(default_factory=list)
    # The input shapes the blocks were run at: torch.compile (dynamic=False) compiles them again for each new one.
    shapes_run: set[tuple] = field(default_factory=set)

    def compiles_at(self, shapes: tuple) -> bool:
        """Whether a run whose blocks see `shapes` is the first at them, the one that compiles (remembered)."""
        first = shapes not in self.shapes_run
        self.shapes_run.add(shapes)
        return first

    def remove(self) -> None:
        for block in self.blocks:
            # nn.Module.compile() stores the compiled __call__ here; there is no public "uncompile".
            block._compiled_call_impl = None
        if self.model is not None and self.ops is not None:
            self.model.ops = self.ops
        for linear, kernel in self.linear_kernels:
            linear.kernel = kernel
        self.blocks.clear()
        self.linear_kernels.clear()
        self.model = self.ops = None


WITHOUT_COMPILING = "run without compiling: " + both_spellings("no --compile", "compile=False")


def _gpu_too_old_for_inductor(device: torch.device) -> str | None:
    """Why CUDA GPU `device`, if this machine has it, is older than Triton builds for (inductor raises
    GPUTooOldForTriton at the first compiled call, after every weight has loaded), else None."""
    if not is_here(device) or rocm_build():
        return None
    return triton_gpu_blocker(torch.cuda.get_device_capability(device))


def check_compile_possible(device: torch.device | str) -> None:
    """Raise CompileUnavailableError before any long work when inductor cannot build kernels for `device`."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise CompileUnavailableError(f"--compile on CUDA needs triton ({exc}); {WITHOUT_COMPILING}") from exc
        # inductor's kernels are Triton's: a GPU older than Triton's targets would fail at the first step
        if (problem := _gpu_too_old_for_inductor(device) or launcher_build_problem()) is not None:
            raise CompileUnavailableError(f"--compile on CUDA builds Triton kernels: {problem}; or {WITHOUT_COMPILING}")
    elif sys.platform == "win32":  # a working cl.exe was refused for want of g++
        if (problem := windows_compiler_problem(os.environ.get("CXX"))) is not None:
            raise CompileUnavailableError(f"--compile on the CPU {problem}, or {WITHOUT_COMPILING}")
    elif not any(_runs(path) for path in filter(None, map(shutil.which, CXX_COMPILERS))):
        raise CompileUnavailableError(
            f"--compile on the CPU needs a C++ compiler (g++ or clang++); none found that runs (on a Mac: "
            f"xcode-select --install): install one, or {WITHOUT_COMPILING}"
        )


CXX_COMPILERS = ("g++", "c++", "clang++")
# The drivers with GCC's flags of the compilers inductor builds with on Windows: it passes MSVC's flags there and
# refuses these at the first step, asking for their MSVC-like drivers (torch/_inductor/cpp_builder.py).
MSVC_LIKE_DRIVERS = {"clang": "clang-cl", "clang++": "clang-cl", "icx": "icx-cl", "icx-cc": "icx-cl"}
# GCC's drivers (MinGW's, which MSYS2 puts on PATH): inductor gives them MSVC's flags on Windows as well (/Fe, /c
# /Fo, std:c++20) without refusing them by name, so the build failed at the first step, after every weight loaded.
GCC_DRIVERS = ("gcc", "g++", "c++", "cc")


def windows_compiler_problem(cxx: str | None) -> str | None:
    """Why inductor cannot build CPU kernels on Windows with `cxx` (the CXX environment variable, None when unset),
    or None. There inductor compiles with CXX, else cl (`get_cpp_compiler` in torch/_inductor/cpp_builder.py), and
    takes MSVC's cl, LLVM's clang-cl and Intel's icx-cl: a Developer PowerShell's cl, or CXX=clang-cl."""
    if cxx is None:
        if shutil.which("cl") is not None:
            return None
        return (
            "needs MSVC's C++ compiler, cl.exe, on PATH (Visual Studio's Build Tools, Desktop development with C++: "
            "run from its Developer PowerShell or after its vcvars64.bat), or the environment variable CXX set to "
            "clang-cl or icx-cl, which inductor builds with too"
        )
    # cmd's `set CXX="C:\Program Files\...\clang-cl.exe"` keeps the quotes in the value, and inductor runs the value
    # as it is, quotes and all: "set CXX to its full path" sent them back to the path they had given. cmd keeps a
    # space typed after them too, which left the closing quote in the value the advice gave.
    inside = cxx.strip().strip("\"'")
    unquoted = inside if inside and inside != cxx.strip() else cxx
    quotes = "; without the quotes it holds, which inductor takes for part of the name" if unquoted != cxx else ""
    name = ntpath.basename(unquoted).lower().removesuffix(".exe")
    # LLVM-MinGW's clang is also named for its target (x86_64-w64-mingw32-clang++): GCC's flags too.
    driver = MSVC_LIKE_DRIVERS.get(name) or ("clang-cl" if name.endswith(("-clang", "-clang++")) else None)
    if driver is not None:
        return (
            f"builds with the compiler CXX names, {cxx}, which inductor does not take on Windows (it passes MSVC's "
            f"flags): set CXX to {driver}, or unset it to build with cl{quotes}"
        )
    if name in GCC_DRIVERS or name.endswith(("-gcc", "-g++")):  # x86_64-w64-mingw32-g++
        return (
            f"builds with the compiler CXX names, {cxx}, which inductor does not take on Windows (it passes MSVC's "
            f"flags): unset it to build with cl, or set CXX to clang-cl{quotes}"
        )
    if shutil.which(unquoted) is None:
        if (bare := unquoted.strip()) and bare != unquoted:
            # cmd's `set CXX=clang-cl ` keeps the space typed before Enter, which the message's value did not show:
            # "not found: set CXX to its full path" sent them looking for a compiler they had. Told what the value
            # without it gets, which inductor runs as it is.
            return windows_compiler_problem(bare) or (
                f"builds with the compiler CXX names, {cxx!r}, which is not found with the white space around it "
                f"(cmd's set CXX=... keeps a space typed before Enter): set CXX without it "
                f'({variable_set("CXX", bare)}; in cmd, set "CXX={bare}")'
            )
        return (
            f"builds with the compiler CXX names, {cxx}, which is not found: set CXX to its full path, or unset it"
            + quotes
        )
    if quotes:
        # cmd's `set "NAME=value"` takes the value as it is between its quotes, and keeps none: a bare
        # `set CXX=C:\R&D\...` ran `D\...` as a second command, and `(x86)` ran into this message's parenthesis.
        return (
            f"builds with the compiler CXX names, {cxx}, whose quotes inductor takes for part of the name: set CXX "
            f'without them ({variable_set("CXX", unquoted)}; in cmd, set "CXX={unquoted}")'
        )
    return None


def _runs(compiler: str) -> bool:
    """Whether `compiler --version` succeeds. Found is not enough: a Mac without Xcode's command line tools has
    /usr/bin/clang++ and /usr/bin/g++, stubs that only fail ("xcrun: error: invalid active developer path"), which
    inductor would find at the first step, after loading, in a traceback."""
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def apply_compile(model: nn.Module, config: CompileConfig | None = None) -> CompileHandle:
    """Compile every block of a `MotifVideoTransformer` in place (dual-stream, single-stream and decoder blocks),
    with torch's norm ops and dequantization inside them (the module docstring says why). Apply after
    `apply_kernels`, before or after block streaming; the embedders and the head stay eager (a few small ops)."""
    config = config or CompileConfig()
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    handle = CompileHandle(model=model, ops=model.ops)
    model.ops = dataclasses.replace(
        model.ops, layer_norm_modulate=TORCH_OPS.layer_norm_modulate, rms_norm_rope=TORCH_OPS.rms_norm_rope
    )
    for block in blocks:
        for module in block.modules():
            if isinstance(module, QuantizedLinear) and module.kernel is not None:
                handle.linear_kernels.append((module, module.kernel))
                module.kernel = None  # its own torch dequantization, which inductor fuses into one kernel
        block.compile(mode=config.mode, dynamic=config.dynamic)
        handle.blocks.append(block)
    return handle
