"""A machine without what Triton builds its kernel launcher with (a C compiler, Python's headers): before, Triton
failed at the first step, after the loading ("Failed to find C compiler", "Python.h: No such file or directory"),
with `--kernels triton`, `--compile` or `--attention-backend triton`; `auto` warned per op mid-run. Now each is said
before loading, `auto` uses torch's ops with one warning. The compilers are hidden by an empty PATH; the GPU is
faked (this machine has none)."""

from __future__ import annotations

import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch
import triton

from motif_lite.errors import ConfigError
from motif_lite.model.ops import TORCH_OPS
from motif_lite.runtime import kernels as rt
from motif_lite.runtime import triton_build
from motif_lite.runtime.compile import CompileUnavailableError, check_compile_possible

PYTHON_DEV = f"python{sys.version_info.major}.{sys.version_info.minor}-dev"
PYTHON_DEVEL = f"python{sys.version_info.major}.{sys.version_info.minor}-devel"  # Fedora's name


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder without gcc or clang


@pytest.fixture
def no_headers(monkeypatch, tmp_path):
    monkeypatch.setattr(triton_build, "python_headers", lambda: tmp_path)  # a folder without Python.h


def test_a_machine_with_both_can_build_the_launcher(monkeypatch, tmp_path):
    """Negative control: a compiler on the PATH and a Python.h where Triton looks: nothing is refused."""
    (tmp_path / "gcc").write_text("#!/bin/sh\n")
    (tmp_path / "gcc").chmod(0o755)
    (tmp_path / "Python.h").write_text("")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(triton_build, "python_headers", lambda: tmp_path)
    assert triton_build.launcher_build_problem() is None


def test_no_compiler(no_compiler):
    problem = triton_build.launcher_build_problem()
    assert "needs a C compiler (gcc or clang; or name one in CC): install it" in problem
    assert "sudo apt install gcc;" in problem and "Python.h" not in problem


def test_cc_names_the_compiler(no_compiler, monkeypatch):
    monkeypatch.setenv("CC", "/opt/cc/bin/cc")  # Triton takes it as given
    assert triton_build.launcher_build_problem() is None


def test_clang_alone_is_a_compiler(no_compiler, tmp_path):
    (tmp_path / "clang").write_text("#!/bin/sh\n")
    (tmp_path / "clang").chmod(0o755)
    assert triton_build.launcher_build_problem() is None


def test_a_build_of_triton_s_own_needs_no_compiler(no_compiler, monkeypatch):
    # triton.knobs.build.impl (Triton 3.4 on): the launcher is built by the function named there, not by CC or gcc.
    knobs = pytest.importorskip("triton.knobs")
    monkeypatch.setattr(knobs.build, "impl", lambda *args: None)
    assert triton_build.launcher_build_problem() is None


def test_a_triton_before_knobs_is_checked_too(no_compiler, monkeypatch):
    # Triton 3.3 and earlier have no triton.knobs: the launcher is built with the C compiler, so its absence counts.
    monkeypatch.delattr(triton, "knobs", raising=False)
    monkeypatch.setitem(sys.modules, "triton.knobs", None)  # the import fails, as it does there
    assert "needs a C compiler" in triton_build.launcher_build_problem()


def test_debians_local_scheme_looks_for_the_headers_where_triton_does(monkeypatch):
    # Debian's python3 installs into posix_local (/usr/local), whose include folder holds no Python.h; Triton looks
    # in posix_prefix's (/usr/include/python3.X, where python3-dev puts it).
    monkeypatch.setattr(sysconfig, "get_default_scheme", lambda: "posix_local")
    monkeypatch.setattr(sysconfig, "get_paths", lambda scheme=None: {"include": f"/{scheme}/include/python3.X"})
    assert triton_build.python_headers() == Path("/posix_prefix/include/python3.X")


def test_no_headers(no_headers, tmp_path):
    problem = triton_build.launcher_build_problem()
    assert f"Python's C headers (no Python.h in {tmp_path})" in problem and f"sudo apt install {PYTHON_DEV};" in problem
    assert "C compiler" not in problem


def test_neither(no_compiler, no_headers):
    problem = triton_build.launcher_build_problem()
    assert "install them" in problem and f"sudo apt install gcc {PYTHON_DEV};" in problem
    assert problem.endswith(f"Fedora: sudo dnf install gcc {PYTHON_DEVEL})")
    assert triton_build.launcher_build_problem(platform="win32") is None  # Windows' Triton brings its own compiler


@pytest.fixture
def gpu_without_compiler(monkeypatch, no_compiler):
    """An H100 with a Triton new enough for it, and no C compiler."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(triton, "__version__", "3.9.0")


def test_kernels_triton_is_refused(gpu_without_compiler):
    with pytest.raises(rt.KernelBackendError, match="not possible here: Triton compiles its kernel launcher"):
        rt.use_triton("triton")


def test_auto_uses_the_torch_ops_and_says_why(gpu_without_compiler):
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable .*needs a C compiler"):
        ops = rt.select_ops("auto")
    assert ops.layer_norm_modulate is TORCH_OPS.layer_norm_modulate


def test_compile_is_refused(gpu_without_compiler):
    with pytest.raises(CompileUnavailableError, match="--compile on CUDA builds Triton kernels: .*C compiler"):
        check_compile_possible("cuda")


def test_the_triton_attention_backend_is_refused(gpu_without_compiler):
    from motif_lite.runtime.attention import attention_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="--attention-backend triton is our Triton kernel: .*C compiler"):
            attention_backend("triton", "cuda")


def test_off_cuda_the_triton_attention_falls_back_without_a_compiler(no_compiler, monkeypatch):
    # Off CUDA no Triton kernel is built (the op falls back to SDPA with a warning): nothing to refuse.
    from motif_lite.runtime.attention_candidates import triton_attention

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert isinstance(triton_attention(), rt.FallbackOp)
