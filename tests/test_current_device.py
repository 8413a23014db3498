"""A pipeline on a GPU other than the current one (`--device cuda:1`) makes its GPU the current device while it
loads and generates: Triton launches kernels on the current device, and torch's default streams are per device.
The GPU side is `tests/test_cuda.py::test_a_pipeline_on_the_second_gpu_runs_its_kernels_there` (two GPUs)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from motif_lite import devices, load_pipeline
from motif_lite.pipeline import generation
from motif_lite.request import GenerationRequest


def test_a_cuda_device_is_made_current_and_the_cpu_changes_nothing():
    guard = devices.on_device(torch.device("cuda:1"))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    with devices.on_device(torch.device("cpu")):
        pass  # no CUDA call off CUDA (this machine may have none)


@pytest.fixture
def entered(monkeypatch) -> list[torch.device]:
    """The devices made current, in order (as on_device is asked: the CPU's is a no-op, so this records it)."""
    seen: list[torch.device] = []

    def recording(device: torch.device) -> contextlib.AbstractContextManager:
        seen.append(device)
        return contextlib.nullcontext()

    monkeypatch.setattr(devices, "on_device", recording)
    monkeypatch.setattr(generation, "on_device", recording)
    return seen


def test_loading_and_generating_happen_on_the_pipeline_device(checkpoint, entered, tmp_path):
    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    assert entered == [torch.device("cpu")]  # the load, after the checks
    request = GenerationRequest("a fox", width=48, height=32, frames=5, steps=1, seed=1, output=tmp_path / "v.mp4")
    pipe.generate(request)
    assert entered == [torch.device("cpu")] * 2
    pipe.set_loras([])
    assert entered == [torch.device("cpu")] * 3
