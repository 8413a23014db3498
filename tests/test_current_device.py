"""A pipeline on a GPU other than the current one (`--device cuda:1`) makes its GPU the current device while it
loads and generates: Triton launches kernels on the current device, and torch's default streams are per device.
The GPU side is `tests/test_cuda.py::test_a_pipeline_on_the_second_gpu_runs_its_kernels_there` (two GPUs)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from motif_lite import cli, devices, load_pipeline, verify
from motif_lite.pipeline import call_guards
from motif_lite.request import GenerationRequest
from motif_lite.runtime import kernels


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def test_a_cuda_device_is_made_current_and_the_cpu_changes_nothing():
    guard = devices.on_device(torch.device("cuda:1"))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    for cpu in (torch.device("cpu"), torch.device("cpu", 0)):  # --device cpu:0 is taken too
        with devices.on_device(cpu):
            pass  # no CUDA call off CUDA (this machine may have none)


@pytest.fixture
def entered(monkeypatch) -> list[tuple[str, torch.device]]:
    """Who made which device current, in order (the CPU's is a no-op, so this records it)."""
    seen: list[tuple[str, torch.device]] = []

    def recording(where: str):
        def on_device(device: torch.device) -> contextlib.AbstractContextManager:
            seen.append((where, device))
            return contextlib.nullcontext()

        return on_device

    for module in (devices, call_guards, verify, kernels):
        monkeypatch.setattr(module, "on_device", recording(module.__name__.rsplit(".", 1)[-1]))
    return seen


def test_loading_and_generating_happen_on_the_pipeline_device(checkpoint, entered, tmp_path):
    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    cpu = torch.device("cpu")
    assert entered == [("devices", cpu)]  # the load (loading.py asks devices.on_device), after the checks
    request = GenerationRequest("a fox", width=48, height=32, frames=5, steps=1, seed=1, output=tmp_path / "v.mp4")
    pipe.generate(request)
    assert entered[1:] == [("call_guards", cpu)]
    pipe.set_loras([])
    assert entered[2:] == [("call_guards", cpu)]


def test_a_pipeline_method_makes_the_pipelines_own_device_current(entered):
    # On the CPU every device is the CPU: a pipeline that says it is on cuda:1 shows which one is made current.
    class OnSecondGpu:
        device = "cuda:1"

        @call_guards.on_its_device
        def work(self, value: int) -> int:
            return value + 1

    assert OnSecondGpu().work(1) == 2 and entered == [("call_guards", torch.device("cuda:1"))]


def test_verify_compares_its_stages_on_the_pipeline_device(checkpoint, entered, capsys):
    # Its stages call the transformer and the VAE directly, outside `generate`.
    pytest.importorskip("diffusers")
    size = ["-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1", "--device", "cpu"]
    assert cli.main(["verify", "-m", str(checkpoint), *size]) == 0, capsys.readouterr().err
    assert ("verify", torch.device("cpu")) in entered  # the stages


class _AnyTensorsOp(kernels.FallbackOp):
    """A kernel op that takes the CPU's tensors too (the real ones run on CUDA tensors only)."""

    @staticmethod
    def kernel_can_run(tensors: list[torch.Tensor]) -> bool:
        return True


@pytest.mark.parametrize("strict", [False, True])
def test_a_kernel_op_makes_its_inputs_device_current(entered, strict):
    # A model on cuda:1 called directly (no pipeline around it) launches on its inputs' GPU.
    op = _AnyTensorsOp("norm", kernel=lambda x, w: x * w, reference=lambda x, w: x - w, strict=strict)
    x = torch.ones(2, 3)
    assert torch.equal(op(x, w=torch.full((3,), 2.0)), x * 2)  # the kernel ran
    assert entered == [("kernels", x.device)]


def test_the_load_and_verify_make_the_device_asked_for_current(checkpoint, entered, capsys):
    # The CPU is every device here, but cpu:0 is not torch's `cpu`: what is made current is the device asked for,
    # not one fixed in the code (on two GPUs, tests/test_cuda.py sees it as cuda:1).
    pytest.importorskip("diffusers")
    numbered = torch.device("cpu", 0)
    load_pipeline(checkpoint, dtype="fp32", device="cpu:0", kernels="torch")
    assert entered == [("devices", numbered)]
    size = ["-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1", "--device", "cpu:0"]
    assert cli.main(["verify", "-m", str(checkpoint), *size]) == 0, capsys.readouterr().err
    assert ("verify", numbered) in entered and ("verify", torch.device("cpu")) not in entered
