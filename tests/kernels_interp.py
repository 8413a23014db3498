"""Run motif_lite.kernels' Triton kernels from tests (shared by tests/test_kernels_*).

Without CUDA the kernels run in Triton's CPU interpreter. Triton picks the interpreter when it is imported
(TRITON_INTERPRET=1 turns every `triton.jit`, its own standard library included, into a Python function), and
by the time a test module runs, diffusers has usually imported triton already. So on CPU the kernels run in
one spawned worker process that sets the variable before importing anything; tensors travel by pickling.
On CUDA machines the kernels are called in-process, compiled.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KernelCall = Callable[..., object]


def _enable_interpreter() -> None:
    os.environ["TRITON_INTERPRET"] = "1"
    torch.set_num_threads(1)


def call_kernel(name: str, *args, **kwargs) -> object:
    """Call `motif_lite.kernels.<module>.<function>` given as "module.function"."""
    module, function = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"motif_lite.kernels.{module}"), function)(*args, **kwargs)


def kernel_runner() -> Iterator[KernelCall]:
    """Body of each test module's `kernel` fixture: yields `call(name, *args)` that runs
    `motif_lite.kernels.<name>` compiled on CUDA, or interpreted in a worker process on CPU."""
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        yield call_kernel
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_enable_interpreter) as pool:
        yield lambda name, *args, **kwargs: pool.submit(call_kernel, name, *args, **kwargs).result()
