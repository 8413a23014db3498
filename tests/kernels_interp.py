"""Run motif_lite.kernels' Triton kernels from tests (shared by tests/test_kernels_*).

Without CUDA the kernels run in Triton's CPU interpreter. Triton picks the interpreter when it is imported
(TRITON_INTERPRET=1 turns every `triton.jit`, its own standard library included, into a Python function), and
by the time a test module runs, diffusers has usually imported triton already. So on CPU the kernels run in
one spawned worker process that sets the variable before importing anything; tensors travel by pickling.
On CUDA machines the kernels are called in-process, compiled (CPU tensors go to the GPU and back).

The interpreter needs Triton 3.7 or later: 3.6's (torch 2.11's) hands kernels their scalar arguments as
one-element arrays, so every loop over a runtime bound (`range(0, K, BLOCK_K)`) fails. 3.7.1, 3.8 and 3.9 pass;
older releases skip these tests with that reason instead of failing them.
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
INTERPRETER_TRITON = (3, 7)  # the oldest release whose CPU interpreter runs our kernels (3.6 cannot)


def _enable_interpreter() -> None:
    os.environ["TRITON_INTERPRET"] = "1"
    torch.set_num_threads(1)


def call_kernel(name: str, *args, **kwargs) -> object:
    """Call `motif_lite.kernels.<module>.<function>` given as "module.function"."""
    module, function = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"motif_lite.kernels.{module}"), function)(*args, **kwargs)


def _moved(value: object, device: str) -> object:
    """`value` with every tensor in it (also within tuples and lists) on `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_moved(item, device) for item in value)
    return value


def _moved_values(values: dict, device: str) -> dict:
    return {key: _moved(value, device) for key, value in values.items()}


def call_kernel_on_cuda(name: str, *args, **kwargs) -> object:
    """`call_kernel` compiled on the GPU, for tests written for the CPU as well: a test that keeps its model on the
    CPU (a whole pipeline with a kernel behind one seam) hands CPU tensors, which a compiled kernel cannot read, so
    they go to the GPU and the result comes back to the CPU (the first GPU run, 2026-12-04, failed such tests with
    "Pointer argument cannot be accessed from Triton")."""
    on_cpu = any(isinstance(value, torch.Tensor) and value.device.type == "cpu" for value in (*args, *kwargs.values()))
    if not on_cpu:
        return call_kernel(name, *args, **kwargs)
    result = call_kernel(name, *_moved(args, "cuda"), **_moved_values(kwargs, "cuda"))
    return _moved(result, "cpu")


def live_call(name: str, *args, **kwargs) -> tuple[int, int]:
    """`call_kernel` counted by `live_memory.LiveTensors`: (the most bytes of tensors the call created that were
    alive together, its output included; the output's bytes). Give it tensors on DEVICE."""
    from live_memory import LiveTensors

    with LiveTensors() as live:
        out = call_kernel(name, *args, **kwargs)
    return live.peak_bytes, out.untyped_storage().nbytes()


def kernel_runner(call: KernelCall | None = None) -> Iterator[KernelCall]:
    """Body of each test module's `kernel` fixture: yields `call(name, *args)` that runs
    `motif_lite.kernels.<name>` compiled on CUDA (CPU tensors taken there and back), or interpreted in a worker
    process on CPU; `call`: another way to call it there (`live_call`: and measure what it allocates)."""
    triton = pytest.importorskip("triton")
    if torch.cuda.is_available():
        yield call or call_kernel_on_cuda
        return
    version = tuple(int(part) for part in triton.__version__.split(".")[:2])
    if version < INTERPRETER_TRITON:
        pytest.skip(
            f"Triton {triton.__version__}'s CPU interpreter cannot run loops over runtime bounds; "
            f"the kernels' CPU tests need triton>={'.'.join(map(str, INTERPRETER_TRITON))}"
        )
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_enable_interpreter) as pool:
        call = call or call_kernel
        yield lambda name, *args, **kwargs: pool.submit(call, name, *args, **kwargs).result()


def assert_bf16_error_within(out: torch.Tensor, exact: torch.Tensor, baseline: torch.Tensor, factor: float) -> None:
    """A bf16 kernel's largest error to the float64 result `exact` is at most `factor` x the largest error of
    `baseline` (torch's own bf16 op on the same inputs, or `exact` rounded to bf16), plus 1/128 of a bf16 step at
    the largest value so that an exact baseline leaves room for ties. The errors are in the message: a GPU run
    shows its measurements."""
    exact = exact.detach().double().cpu()
    error = (out.detach().double().cpu() - exact).abs().max().item()
    baseline_error = (baseline.detach().double().cpu() - exact).abs().max().item()
    bound = factor * baseline_error + 2**-16 * exact.abs().max().item()
    assert error <= bound, f"bf16 error {error:.3g} > {factor} x baseline's {baseline_error:.3g} (+ a tie's room)"
