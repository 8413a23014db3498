"""A machine whose accelerator motif-lite does not run on (a Mac's GPU, an Intel GPU): `--device auto` gives the CPU
and says why, in run (a real one and a dry run), serve and load_pipeline; `--device mps` names what it refused.
torch's report of the accelerator (`devices.present_accelerator`) is replaced in these tests: this machine has none."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from motif_lite import cli, devices
from motif_lite.cli.prepare import loading_notes
from motif_lite.pipeline import load_pipeline

UNUSED = "is not supported: motif-lite runs on NVIDIA GPUs (CUDA) and on the CPU"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture
def on_a_mac(monkeypatch):
    from motif_lite.checkup import environment  # imports the function by name: replaced there too

    for module in (devices, environment):
        monkeypatch.setattr(module, "present_accelerator", lambda: "mps")


def test_the_note_names_the_accelerator_users_know():
    assert devices.unused_accelerator_note("mps").startswith(f"this machine's Apple silicon GPU (mps) {UNUSED}")
    assert "Intel GPU (xpu)" in devices.unused_accelerator_note("xpu")
    assert "hpu device" in devices.unused_accelerator_note("hpu")  # one torch knows and this table does not
    assert devices.unused_accelerator_note("cuda") is None  # NVIDIA (and ROCm builds, which name AMD GPUs cuda)
    assert devices.unused_accelerator_note(None) is None  # a CPU-only machine: nothing to explain
    assert devices.present_accelerator() in (None, "cuda")  # what this suite runs on, read from torch


def test_only_auto_on_the_cpu_says_it(on_a_mac):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert UNUSED in devices.auto_cpu_note("auto", cpu)
    assert devices.auto_cpu_note("cpu", cpu) is None  # the user chose the CPU
    assert devices.auto_cpu_note("auto", cuda) is None


def test_a_machine_without_an_accelerator_gets_no_note(monkeypatch):
    monkeypatch.setattr(devices, "present_accelerator", lambda: None)  # a CPU-only machine: nothing to explain
    assert devices.auto_cpu_note("auto", torch.device("cpu")) is None


def test_a_dry_run_and_the_loading_notes_say_why_the_cpu(checkpoint, tmp_path, capsys, on_a_mac):
    argv = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--dry-run"]
    assert cli.main([*argv, "-W", "64", "-H", "64", "--video-frames", "9"]) == 0
    assert f"note: this machine's Apple silicon GPU (mps) {UNUSED}" in capsys.readouterr().err
    assert cli.main([*argv, "--device", "cpu"]) == 0
    assert UNUSED not in capsys.readouterr().err
    sources = SimpleNamespace(notes=["a file's note"])  # the one field loading_notes reads
    notes = loading_notes(sources, torch.device("cpu"), "auto", ["a setting's note"])
    assert notes[0].startswith("this machine's Apple silicon GPU")
    assert notes[1:] == ["a file's note", "a setting's note"]
    assert loading_notes(sources, torch.device("cpu"), "cpu") == ["a file's note"]


def test_a_run_says_it_before_loading(checkpoint, tmp_path, capsys, on_a_mac):
    argv = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--dtype", "fp32"]
    assert cli.main([*argv, "-W", "32", "-H", "32", "--video-frames", "1", "--steps", "1", "--kernels", "torch"]) == 0
    err = capsys.readouterr().err
    assert err.index(UNUSED) < err.index("encode:"), err  # before any work
    assert cli.main([*argv, "-W", "32", "-H", "32", "--video-frames", "1", "--steps", "1", "--device", "cpu"]) == 0
    assert UNUSED not in capsys.readouterr().err  # the CPU was the user's choice


def test_load_pipeline_warns_with_auto_only(checkpoint, on_a_mac):
    with pytest.warns(UserWarning, match=r"Apple silicon GPU \(mps\) is not supported"):
        pipe = load_pipeline(checkpoint, dtype=torch.float32, kernels="torch")
    assert pipe.device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


def test_check_names_the_gpu_it_does_not_use(on_a_mac):
    from motif_lite.checkup.environment import check_environment
    from motif_lite.checkup.report import Checkup

    report = Checkup()
    check_environment(report)
    warned = {finding.subject: finding.message for finding in report.warnings}
    assert f"this machine's Apple silicon GPU (mps) {UNUSED}" in warned["GPU"], warned


@pytest.mark.parametrize("name", ["vulkan", "opencl", "xpu"])
def test_a_device_torch_knows_and_motif_lite_does_not_names_amds_route(name):
    # stable-diffusion.cpp runs AMD GPUs on Vulkan: "--device vulkan is not supported: motif-lite runs on CUDA GPUs"
    # read as if an AMD GPU could not run at all.
    with pytest.raises(devices.DeviceError, match=f"device '{name}'.* is not supported: .*under PyTorch's ROCm build"):
        devices.parse_device(name)


def test_cuda_asked_for_on_a_mac_says_its_gpu_is_not_supported(on_a_mac, monkeypatch):
    # "CUDA is not available (this torch build has no CUDA)" alone sent Mac users looking for a CUDA build of torch,
    # which macOS does not have.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError) as caught:
        devices.resolve_device("cuda")
    said = str(caught.value)
    assert said.startswith("device 'cuda' requested but CUDA is not available (")
    assert f"this machine's Apple silicon GPU (mps) {UNUSED}); use the CPU: --device cpu" in said


@pytest.mark.parametrize("name", ["dml", "DirectML"])
def test_directml_is_named_not_unknown(name):
    # ComfyUI's --directml runs AMD and Intel GPUs on Windows through torch-directml: "unknown device 'dml' (use
    # auto, cpu, cuda or cuda:N)" did not say whether DirectML could work.
    with pytest.raises(devices.DeviceError, match=f"device '{name}': DirectML .torch-directml. is not supported: "):
        devices.parse_device(name)
