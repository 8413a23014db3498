"""A PyTorch build without code for the GPU (an RTX 50xx under a build before CUDA 12.8, a GTX 10xx under the CUDA
12.8+ builds `pip install torch` gives): before, the run loaded everything and failed at its first GPU operation
with CUDA's "no kernel image is available for execution on the device" and a traceback; now `run` refuses before
loading and `check` warns, each naming the build that has the GPU. torch's build is faked: this machine has none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite import cli, devices
from motif_lite.errors import DeviceError
from motif_lite.gpus import AMD, NVIDIA, GpuFacts

# What torch.cuda.get_arch_list() gives in PyTorch's wheels.
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # torch 2.6-2.14 for CUDA 12.6
CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.11 for CUDA 12.8
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # Linux builds for CUDA 13.0

RTX_5090 = GpuFacts(NVIDIA, "NVIDIA GeForce RTX 5090", capability=(12, 0))
GTX_1080 = GpuFacts(NVIDIA, "NVIDIA GeForce GTX 1080", capability=(6, 1))
RTX_4090 = GpuFacts(NVIDIA, "NVIDIA GeForce RTX 4090", capability=(8, 9))


@pytest.mark.parametrize(
    ("capability", "arch_list", "runs"),
    [((8, 9), ["sm_86"], True),  # a cubin runs on later GPUs of its major
     ((8, 0), ["sm_86"], False),  # but not on earlier ones
     ((12, 0), CU126, False), ((12, 0), CU128, True), ((12, 1), ["sm_120"], True),
     ((10, 0), ["sm_120"], False),  # another major
     ((12, 1), ["compute_120"], True), ((13, 0), ["sm_90", "compute_120"], True),  # PTX: the driver compiles it
     ((9, 0), ["sm_80", "compute_120"], False), ((8, 6), ["compute_90"], False),  # PTX: not on earlier
     ((6, 1), CU130, False), ((6, 1), CU126, True), ((9, 0), ["sm_90a"], True),
     ((10, 3), ["sm_100f"], True),  # the family variant: the "f" is not part of the number
     ((8, 6), ["compute_86"], True)],  # PTX for exactly this GPU
)  # fmt: skip
def test_nvidias_compatibility_rules(capability, arch_list, runs):
    assert devices.build_runs_on(capability, arch_list) is runs


def test_the_note_names_the_build_that_has_the_gpu():
    newer = devices.lacking_gpu_note(RTX_5090, CU126, "12.6", "2.6.0+cu126")
    assert newer.startswith("NVIDIA GeForce RTX 5090 (compute capability 12.0) has no code in this PyTorch build")
    assert "torch 2.6.0+cu126, CUDA 12.6, built for sm_50 sm_60" in newer and "no kernel image is available" in newer
    assert "--index-url https://download.pytorch.org/whl/cu128" in newer and "torch 2.7 or newer" in newer
    older = devices.lacking_gpu_note(GTX_1080, CU130, "13.0", "2.13.0+cu130")
    assert "--index-url https://download.pytorch.org/whl/cu126" in older and "cu128" not in older
    assert devices.lacking_gpu_note(RTX_4090, CU130, "13.0", "2.13.0") is None  # the build has it
    assert devices.lacking_gpu_note(RTX_5090, [], None, "2.13.0+cpu") is None  # a build that names no architecture
    # An AMD GPU has no compute capability to compare: NVIDIA's architectures say nothing of it.
    assert devices.lacking_gpu_note(GpuFacts(AMD, "AMD Instinct MI300X", arch="gfx942"), CU128, "12.8", "2.9") is None


@pytest.fixture
def build_without_the_gpu(monkeypatch):
    """A CUDA 12.6 build of torch 2.6 on a machine with an RTX 5090."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CU126)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: RTX_5090.name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: RTX_5090.capability)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (30 * 2**30, 32 * 2**30))


def test_the_device_is_refused(build_without_the_gpu, monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.6.0+cu126")
    with pytest.raises(
        DeviceError, match=r"RTX 5090 .* has no code in this PyTorch build \(torch 2\.6\.0\+cu126, CUDA 12\.6,"
    ):
        devices.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CU128)  # negative control: a build that has it
    assert devices.resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def test_run_refuses_before_loading(build_without_the_gpu, checkpoint, tmp_path, capsys):
    argv = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda"]
    assert cli.main([*argv, "-W", "64", "-H", "64", "--video-frames", "9", "--steps", "1"]) != 0
    err = capsys.readouterr().err
    assert "has no code in this PyTorch build" in err and "Traceback" not in err, err
    assert not (tmp_path / "fox.mp4").exists()


def test_a_dry_run_plans_and_says_a_run_would_be_refused(build_without_the_gpu, checkpoint, tmp_path, capsys):
    # A dry run may plan for another machine's GPU, so it is a note, not an error; before, it said nothing.
    argv = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda"]
    assert cli.main([*argv, "-W", "64", "-H", "64", "--video-frames", "9", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "a run of this command would be refused here: NVIDIA GeForce RTX 5090 (compute capability 12.0)" in err


def test_check_names_it_a_problem(build_without_the_gpu, monkeypatch):
    # A problem, not a warning: a run on this machine (device auto: the GPU) fails, and check exits 2 for scripts.
    from motif_lite.checkup.environment import check_environment
    from motif_lite.checkup.report import Checkup

    report = Checkup()
    check_environment(report)
    gpu = [line for line in report.lines() if "cuda:0" in line]
    held = "30.00 GiB free of 32.00 GiB; other processes hold 2.00 GiB"  # what nvidia-smi would say
    assert gpu and gpu[0].startswith(f"problem  GPU cuda:0: {held}"), gpu
    own = "this check's own CUDA context counts there too, as a run's would"
    assert f"(nvidia-smi lists them; {own}); NVIDIA GeForce RTX 5090" in gpu[0], gpu
    assert "has no code in this PyTorch build" in gpu[0] and "cu128" in gpu[0] and not report.passed
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CU128)  # negative control: a build that has it
    report = Checkup()
    check_environment(report)
    assert any(line.startswith("ok       GPU cuda:0: NVIDIA GeForce RTX 5090") for line in report.lines())


@pytest.fixture
def second_gpu_without_code(build_without_the_gpu, monkeypatch):
    """The CUDA 12.6 build on a machine with an RTX 4090 (which it has code for) as cuda:0 and the RTX 5090 as
    cuda:1."""
    gpus = [RTX_4090, RTX_5090]

    def gpu(device: torch.device | int | None = None) -> GpuFacts:
        index = device if isinstance(device, int) else None if device is None else torch.device(device).index
        return gpus[index or 0]  # no index: the current device, cuda:0

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu(device).name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: gpu(device).capability)


def test_each_gpu_is_checked_for_itself(second_gpu_without_code):
    from motif_lite.checkup.environment import check_environment
    from motif_lite.checkup.report import Checkup

    assert devices.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match="RTX 5090 .* has no code in this PyTorch build"):
        devices.resolve_device("cuda:1")
    report = Checkup()
    check_environment(report)
    first, second = ([line for line in report.lines() if f"cuda:{index}" in line] for index in (0, 1))
    assert first and "has no code" not in first[0], report.lines()
    assert second and "RTX 5090 (compute capability 12.0) has no code" in second[0], report.lines()
