"""A machine without what Triton builds its kernel launcher with (a C compiler, Python's headers): before, Triton
failed at the first step, after the loading ("Failed to find C compiler", "Python.h: No such file or directory"),
with `--kernels triton`, `--compile` or `--attention-backend triton`; `auto` warned per op mid-run. Now each is said
before loading, `auto` uses torch's ops with one warning. The compilers are hidden by an empty PATH; the GPU is
faked (this machine has none)."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
import triton

from motif_lite.errors import ConfigError
from motif_lite.model.ops import TORCH_OPS
from motif_lite.runtime import kernels as rt
from motif_lite.runtime import triton_build
from motif_lite.runtime.compile import CompileUnavailableError, check_compile_possible

PYTHON_DEV = f"python{sys.version_info.major}.{sys.version_info.minor}-dev"


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


def test_no_headers(no_headers, tmp_path):
    problem = triton_build.launcher_build_problem()
    assert f"Python's C headers (no Python.h in {tmp_path})" in problem and f"sudo apt install {PYTHON_DEV};" in problem
    assert "C compiler" not in problem


def test_neither(no_compiler, no_headers):
    problem = triton_build.launcher_build_problem()
    assert "install them" in problem and f"sudo apt install gcc {PYTHON_DEV};" in problem
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
