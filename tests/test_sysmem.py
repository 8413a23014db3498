"""Windows' NVIDIA driver (and so WSL2's) moves GPU memory past the GPU's own into system memory instead of failing:
a run whose device peak (reserved, what the driver had to place) exceeded the GPU is told so in its summary, a
--vram above the free memory is warned about before the run, and `motif-lite check` under WSL without a GPU says
what the library folders show is wrong. No Windows machine is needed: the facts (total memory, whether the driver
is Windows', the library folders) are passed in. Also the summary's device peak line, allocated and reserved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite.cli.run_summary import gpu_memory_of, summary
from motif_lite.gpu_memory import GpuMemory, sysmem_spill_note, vram_over_free_note
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


def _result(tmp_path: Path, peak: int | None, reserved: int | None = None) -> GenerationResult:
    request = GenerationRequest("a red fox", width=32, height=16, frames=5, steps=2, seed=0, output=tmp_path / "v.mp4")
    timings = {"encode": 0.1, "denoise": 0.2, "decode": 0.1, "total": 0.4}
    return GenerationResult(
        tmp_path / "v.mp4", request, 3.0, timings, None, peak, stage_peaks={} if peak is None else {"denoise": peak},
        peak_reserved_bytes=reserved, stage_reserved_peaks={} if reserved is None else {"denoise": reserved},
    )  # fmt: skip


def _peak_line(result: GenerationResult, gpu: GpuMemory | None = None) -> str:
    lines = summary(result, 0.0, with_settings=False, gpu_memory=gpu).splitlines()
    return next(line for line in lines if line.startswith("peak memory: "))


def test_the_summary_warns_under_its_peak_line_when_the_run_spilled(tmp_path):
    peak = 10 * GiB
    lines = summary(_result(tmp_path, peak), 0.0, with_settings=False, gpu_memory=WINDOWS_8_GIB).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("peak memory: "))
    assert lines[at + 1] == f"warning: {sysmem_spill_note(peak, WINDOWS_8_GIB, 7.40)}"  # 8 GiB / 1.08
    for facts in (LINUX_8_GIB, None, GpuMemory(16 * GiB, windows_driver=True)):
        assert "warning:" not in summary(_result(tmp_path, peak), 0.0, with_settings=False, gpu_memory=facts)


def test_the_summary_gives_the_device_peak_allocated_and_reserved(tmp_path):
    allocated, reserved = int(5.46 * GiB), int(5.96 * GiB)
    line = _peak_line(_result(tmp_path, allocated, reserved))
    assert line.endswith(f", device {memory_size(allocated)} allocated, {memory_size(reserved)} reserved"), line
    # A result made without the reserved peak (older code, or built by hand) gives the allocated one as before.
    assert _peak_line(_result(tmp_path, allocated)).endswith(f", device {memory_size(allocated)}")
    assert "device" not in _peak_line(_result(tmp_path, None))  # the CPU: no device memory of its own


def test_the_spill_check_reads_the_reserved_peak(tmp_path):
    # Allocated stayed within the 8 GiB GPU, but the allocator's segments did not: those are what spilled.
    allocated, reserved = 7 * GiB, 8 * GiB + 512 * 2**20
    lines = summary(_result(tmp_path, allocated, reserved), 0.0, with_settings=False, gpu_memory=WINDOWS_8_GIB)
    assert f"warning: {sysmem_spill_note(reserved, WINDOWS_8_GIB, 6.58)}" in lines.splitlines()  # 8 / (8.5 / 7)


def test_the_spill_warning_names_the_vram_that_stays_within_the_gpu(tmp_path):
    # "Give a lower --vram" said neither which: the GPU's memory over the run's own reserved / allocated ratio is
    # the budget whose plan would have stayed within it (8 GiB / (9 / 7.5) = 6.67 GiB), rounded down.
    allocated, reserved = int(7.5 * GiB), 9 * GiB
    lines = summary(_result(tmp_path, allocated, reserved), 0.0, with_settings=False, gpu_memory=WINDOWS_8_GIB)
    [warning] = [line for line in lines.splitlines() if line.startswith("warning: ")]
    assert "Give --vram 6.66 or less (the plan then streams more" in warning and "a lower --vram" not in warning
    # Without the reserved peak: the planner's expected reserve, 8 / 1.08 = 7.407.
    lines = summary(_result(tmp_path, 9 * GiB), 0.0, with_settings=False, gpu_memory=WINDOWS_8_GIB)
    assert "Give --vram 7.40 or less" in lines


def test_a_cpu_run_has_no_gpu_memory_facts():
    assert gpu_memory_of(torch.device("cpu")) is None
    assert gpu_memory_of(torch.device("meta")) is None  # nor a device other than CUDA (a Mac's mps, say)


def test_a_vram_above_the_free_memory_is_warned_about_only_where_it_spills():
    note = vram_over_free_note(8 * GiB, 6 * GiB, windows_driver=True)
    assert note is not None and f"more than the {memory_size(6 * GiB)} this GPU can give a run now" in note
    assert "spills into system memory" in note and "Leave --vram out" in note and "Prefer No Sysmem Fallback" in note
    assert vram_over_free_note(6 * GiB, 6 * GiB, windows_driver=True) is None  # fits
    assert vram_over_free_note(8 * GiB, 6 * GiB, windows_driver=False) is None  # Linux: out-of-memory, handled


def _library(folder: Path, name: str = "libcuda.so.1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\x7fELF")
    return folder / name


def test_wsl_without_the_windows_drivers_libcuda_says_to_install_that_driver(tmp_path):
    linux = tmp_path / "usr-lib"
    for wsl_lib in (tmp_path / "absent", tmp_path / "wsl-lib"):
        if wsl_lib.name == "wsl-lib":
            _library(wsl_lib, "libd3d12.so")  # WSL's own libraries are there, the NVIDIA driver's are not
        problem = wsl.wsl_driver_problem(wsl_lib, [linux])
        assert f"{wsl_lib} has no libcuda.so" in problem and "driver for Windows" in problem
        assert "wsl --shutdown" in problem


def test_a_linux_driver_inside_wsl_is_named_with_how_to_find_its_package(tmp_path):
    wsl_lib, linux = tmp_path / "wsl-lib", tmp_path / "usr-lib"
    _library(wsl_lib)
    linux_libcuda = _library(linux, "libcuda.so.535.183.01")
    problem = wsl.wsl_driver_problem(wsl_lib, [linux, tmp_path / "absent"])
    assert f"a Linux NVIDIA driver is installed inside WSL ({linux_libcuda})" in problem
    assert f"`dpkg -S {linux_libcuda}`" in problem


def test_a_link_to_the_windows_drivers_libcuda_is_not_a_linux_driver(tmp_path, monkeypatch):
    wsl_lib, linux = tmp_path / "wsl-lib", tmp_path / "usr-lib"
    windows_libcuda = _library(wsl_lib)
    linux.mkdir()
    (linux / "libcuda.so.1").symlink_to(windows_libcuda)
    assert wsl.linux_libcudas([linux], wsl_lib) == []
    monkeypatch.setattr(wsl, "WSL_LIBCUDA", wsl_lib)  # the default folder, read at the call
    assert wsl.linux_libcudas([linux]) == []
    assert wsl.wsl_driver_problem(wsl_lib, [linux]) == wsl.WSL_DRIVER_FIX  # nothing more specific to say


def test_every_libcuda_of_a_linux_driver_is_listed(tmp_path):
    linux = tmp_path / "usr-lib"
    found = [_library(linux, "libcuda.so"), _library(linux, "libcuda.so.1"), _library(tmp_path / "lib64")]
    assert wsl.linux_libcudas([linux, tmp_path / "lib64"], tmp_path / "wsl-lib") == found


def test_other_processes_hold_nothing_when_this_ones_reserve_outgrew_the_used_memory_read_before_it():
    # `gpu_use` reads the free memory, then the allocator's reserve: a reserve grown in between can be more than
    # the memory used when the free memory was read. The others then hold nothing, not a negative size.
    from motif_lite.gpu_memory import GpuUse

    use = GpuUse(8 * GiB, 6 * GiB, reserved_bytes=3 * GiB)
    assert use.others_bytes == 0
    assert f"other processes hold {memory_size(0)} (" in use.describe()
