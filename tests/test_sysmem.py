"""Windows' NVIDIA driver (and so WSL2's) moves GPU memory past the GPU's own into system memory instead of failing:
a run whose device peak exceeded the GPU is told so in its summary, a --vram above the free memory is warned about
before the run, and `motif-lite check` under WSL without a GPU says what the library folders show is wrong. No
Windows machine is needed: the facts (total memory, whether the driver is Windows', the library folders) are
passed in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite.cli.run_summary import gpu_memory_of, summary
from motif_lite.devices import GpuMemory, sysmem_spill_note, vram_over_free_note
from motif_lite.io import wsl
from motif_lite.pipeline import GenerationResult
from motif_lite.request import GenerationRequest
from motif_lite.units import memory_size

GiB = 1024**3
WINDOWS_8_GIB = GpuMemory(total_bytes=8 * GiB, windows_driver=True)
LINUX_8_GIB = GpuMemory(total_bytes=8 * GiB, windows_driver=False)


def test_a_peak_past_the_gpu_under_windows_driver_is_said_to_have_spilled_with_both_fixes():
    peak = 9 * GiB + 300 * 2**20
    note = sysmem_spill_note(peak, WINDOWS_8_GIB)
    assert note is not None
    assert f"peaked at {memory_size(peak)}, {memory_size(peak - 8 * GiB)} more than the GPU's" in note
    assert "many times slower" in note
    assert "lower --vram" in note and '"Prefer No Sysmem Fallback"' in note  # both fixes


@pytest.mark.parametrize(
    ("peak", "gpu"),
    [(8 * GiB, WINDOWS_8_GIB), (7 * GiB, WINDOWS_8_GIB), (None, WINDOWS_8_GIB), (9 * GiB, None)],
)
def test_no_spill_is_claimed_within_the_gpu_or_without_a_peak(peak, gpu):
    assert sysmem_spill_note(peak, gpu) is None


def test_linux_driver_is_not_checked():
    # Linux's driver fails an allocation beyond the GPU, and the Control Panel fix would be nonsense there.
    assert sysmem_spill_note(9 * GiB, LINUX_8_GIB) is None


def test_windows_driver_is_windows_itself_or_wsl2():
    wsl_kernel, linux_kernel = "5.15.167.4-microsoft-standard-WSL2\n", "6.8.0-45-generic\n"
    assert wsl.windows_gpu_driver("win32", linux_kernel)  # osrelease is not read on Windows; any text will do
    assert wsl.windows_gpu_driver("linux", wsl_kernel)
    assert not wsl.windows_gpu_driver("linux", linux_kernel)


def _result(tmp_path: Path, peak: int | None) -> GenerationResult:
    request = GenerationRequest("a red fox", width=32, height=16, frames=5, steps=2, seed=0, output=tmp_path / "v.mp4")
    timings = {"encode": 0.1, "denoise": 0.2, "decode": 0.1, "total": 0.4}
    return GenerationResult(tmp_path / "v.mp4", request, 3.0, timings, None, peak, stage_peaks={"denoise": peak})


def test_the_summary_warns_under_its_peak_line_when_the_run_spilled(tmp_path):
    peak = 10 * GiB
    lines = summary(_result(tmp_path, peak), 0.0, with_settings=False, gpu_memory=WINDOWS_8_GIB).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("peak memory: "))
    assert lines[at + 1] == f"warning: {sysmem_spill_note(peak, WINDOWS_8_GIB)}"
    for facts in (LINUX_8_GIB, None, GpuMemory(16 * GiB, windows_driver=True)):
        assert "warning:" not in summary(_result(tmp_path, peak), 0.0, with_settings=False, gpu_memory=facts)


def test_a_cpu_run_has_no_gpu_memory_facts():
    assert gpu_memory_of(torch.device("cpu")) is None


def test_a_vram_above_the_free_memory_is_warned_about_only_where_it_spills():
    note = vram_over_free_note(8 * GiB, 6 * GiB, windows_driver=True)
    assert note is not None and f"more than the {memory_size(6 * GiB)} this GPU can give a run now" in note
    assert "spills into system memory" in note and "Leave --vram out" in note and "Prefer No Sysmem Fallback" in note
    assert vram_over_free_note(6 * GiB, 6 * GiB, windows_driver=True) is None  # fits
    assert vram_over_free_note(8 * GiB, 6 * GiB, windows_driver=False) is None  # Linux: out-of-memory, handled
