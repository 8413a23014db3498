"""What differs on Windows and macOS, shown on Linux by telling the code it runs there (sys.platform) and
by standing in for the calls it makes there (Windows' kernel32, macOS' libSystem), since no Windows machine or Mac
runs these tests."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable
from ctypes import wintypes
from pathlib import Path

import pytest

from motif_lite.errors import MotifLiteError
from motif_lite.io.output_claims import WRITING_PREFIX, claim_named_output
from motif_lite.io.preview import check_preview_path
from motif_lite.io.staging import PARTIAL_PREFIX, process_running, stale_partials
from motif_lite.io.video import check_output_path
from motif_lite.runtime import host_memory
from motif_lite.runtime.attention_choices import RememberedChoices
from motif_lite.runtime.compile import CompileUnavailableError, check_compile_possible
from motif_lite.runtime.host_memory import GiB, HostNeeds, available_ram, plan_host, total_ram
from motif_lite.units import memory_size

ACCESS_DENIED = 5  # Windows' ERROR_ACCESS_DENIED
INVALID_PARAMETER = 87  # Windows' ERROR_INVALID_PARAMETER: OpenProcess's answer for an ID of no process
STILL_ACTIVE = 259


class WinFunction:
    """A kernel32 function as ctypes gives it: callable, with the restype and argtypes the caller sets (unset,
    ctypes passes and returns a C int: a 64-bit Windows' handle would be cut to its low 32 bits)."""

    def __init__(self, call: Callable) -> None:
        self.call, self.restype, self.argtypes = call, None, None

    def __call__(self, *args: object) -> object:
        return self.call(*args)


class FakeKernel32:
    """Windows' OpenProcess, GetExitCodeProcess and CloseHandle as their documentation describes them, for the
    processes in `processes`: ID -> its exit code (STILL_ACTIVE while it runs), or ("error", the error OpenProcess
    fails with). Records the handles opened and closed."""

    def __init__(self, processes: dict[int, int | tuple[str, int]]) -> None:
        self.processes = processes
        self.last_error = 0
        self.opened: list[int] = []
        self.closed: list[int] = []
        self.OpenProcess = WinFunction(self._open_process)
        self.GetExitCodeProcess = WinFunction(self._exit_code)
        self.CloseHandle = WinFunction(self.closed.append)

    def _open_process(self, access: int, inherit: bool, pid: int) -> int | None:
        assert self.OpenProcess.restype is wintypes.HANDLE, "the handle would come back cut to a C int"
        assert self.OpenProcess.argtypes == (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        assert self.GetExitCodeProcess.argtypes[0] is self.CloseHandle.argtypes[0] is wintypes.HANDLE, (
            "the handle would be passed as a C int"
        )
        answer = self.processes.get(pid, ("error", INVALID_PARAMETER))
        if isinstance(answer, tuple):
            self.last_error = answer[1]
            return None  # a NULL handle
        self.opened.append(pid)
        return pid  # the handle: the process's ID, to look it up again

    def _exit_code(self, handle: int, code: object) -> int:
        code._obj.value = self.processes[handle]  # ctypes.byref's target
        return 1


@pytest.fixture
def on_windows(monkeypatch: pytest.MonkeyPatch):
    """sys.platform "win32" and a kernel32 of no process; os.kill must not be called (it would send a Ctrl-C there)."""

    def no_kill(pid: int, signum: int) -> None:
        raise AssertionError(f"os.kill({pid}, {signum}) on Windows sends process {pid} a Ctrl-C")

    kernel32 = FakeKernel32({})
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: kernel32.last_error, raising=False)
    monkeypatch.setattr(os, "kill", no_kill)
    monkeypatch.setattr(sys, "platform", "win32")
    return kernel32


def test_windows_asks_the_kernel_whether_a_process_runs(on_windows: FakeKernel32) -> None:
    on_windows.processes.update({101: STILL_ACTIVE, 102: 0, 103: ("error", ACCESS_DENIED)})
    assert process_running(101)
    assert not process_running(102)  # ended, its handle still held by someone
    assert not process_running(104)  # no such process: killed outright, no handle left
    assert process_running(103)  # another user's, or protected: it may run, its files are kept
    assert not process_running(2**40)  # no DWORD: a damaged claim file's number, which ctypes would refuse
    assert on_windows.opened == on_windows.closed == [101, 102]


def test_on_windows_a_run_killed_outright_leaves_no_claim_that_refuses_the_next(
    on_windows: FakeKernel32, tmp_path: Path
) -> None:
    # Closing the console window ends the run without its clean-up; the same command again must not be refused on
    # its claim of -o, nor keep its partial file for ever.
    output = tmp_path / "fox.mp4"
    marker = tmp_path / f"{WRITING_PREFIX}{output.name}"
    marker.write_text(f"4242 {socket.gethostname()}\n")
    partial = tmp_path / f"{PARTIAL_PREFIX}4242-{output.name}"
    partial.write_bytes(b"half a video")
    assert stale_partials(output) == [partial]
    claim_named_output(output)
    assert marker.read_text().split() == [str(os.getpid()), socket.gethostname()]


def test_on_windows_a_running_writer_keeps_its_claim(on_windows: FakeKernel32, tmp_path: Path) -> None:
    on_windows.processes[4242] = STILL_ACTIVE
    output = tmp_path / "fox.mp4"
    (tmp_path / f"{PARTIAL_PREFIX}4242-{output.name}").write_bytes(b"half a video")
    assert stale_partials(output) == []
    (tmp_path / f"{WRITING_PREFIX}{output.name}").write_text(f"4242 {socket.gethostname()}\n")
    with pytest.raises(MotifLiteError, match="process 4242"):
        claim_named_output(output)


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("nul.png", "preview nul.png is the name of Windows' NUL device, not of a file: give another, e.g. --preview"),
        (
            "step:1.webp",
            "preview step:1.webp has :, which Windows does not allow in a file name: give another, e.g. --preview",
        ),  # fmt: skip
    ],
)
def test_on_windows_a_preview_name_it_refuses_is_refused_before_the_run(tmp_path, monkeypatch, name, refusal) -> None:
    # Each preview's write failed during the run instead, a warning at a time, and no preview ever came.
    typed = str(tmp_path / name)
    assert check_preview_path(typed) == Path(typed)  # Linux and macOS take these names
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError) as error:
        check_preview_path(typed)
    assert str(error.value).startswith(refusal), error.value


@pytest.mark.parametrize("typed", [".", "/", "nul", "nul.png", "step:1.webp"])
def test_on_windows_a_refused_preview_is_told_in_a_message_whose_name_passes(tmp_path, monkeypatch, typed) -> None:
    # `--preview .` (or `/`, `C:\`) ended in a ValueError traceback (the Windows name check ran before the checks
    # that refuse a path with no file name), and `--preview nul` was told "e.g. --preview video-nul", which was then
    # refused for having no extension.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError) as error:
        check_preview_path(typed)
    suggested = re.search(r"e\.g\. --preview (\S+)", str(error.value))
    assert suggested is not None, error.value
    check_preview_path(suggested[1])  # the name given to use instead is taken


def test_on_windows_a_preview_path_past_its_limit_is_refused_before_the_run(tmp_path, monkeypatch) -> None:
    # With long paths off (motif_lite.paths.windows_long_paths: no registry here), counting the name it is
    # written under first (.NAME.partial): the path alone fits.
    name = "p" * (259 - len(str(tmp_path)) - 1 - len(".webp")) + ".webp"
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError, match=r"\(9 more for the name it is written under first\), over Windows' limit"):
        check_preview_path(str(tmp_path / name))
    assert check_preview_path(str(tmp_path / name[9:])) == tmp_path / name[9:]


class FakeMemoryKernel32:
    """Windows' GlobalMemoryStatusEx as documented: it fills a MEMORYSTATUSEX whose dwLength is set to its size,
    and fails (0) for one whose is not."""

    def __init__(self, total: int, available: int) -> None:
        self.total, self.available = total, available

    def GlobalMemoryStatusEx(self, status: object) -> int:  # noqa: N802 (Windows' name)
        # Windows knows the structure by its layout, not by the names the caller gave its fields: a DWORD dwLength
        # at 0, then dwMemoryLoad, and the DWORDLONGs ullTotalPhys at 8 and ullAvailPhys at 16, of 64 bytes in all.
        address = ctypes.addressof(status._obj)  # ctypes.byref's target
        if ctypes.c_uint32.from_address(address).value != 64 or ctypes.sizeof(status._obj) < 64:
            return 0
        ctypes.c_uint64.from_address(address + 8).value = self.total
        ctypes.c_uint64.from_address(address + 16).value = self.available
        return 1


def _needs_past_free_memory() -> HostNeeds:
    """The host needs of a CUDA run larger than the fake machines' free memory, even with its blocks staged."""
    return HostNeeds(
        cuda=True, text_bytes=2 * GiB, text_staging_bytes=0, transformer_bytes=4 * GiB, streamed_bytes=3 * GiB,
        streamed_pinned_bytes=4 * GiB, block_staging_bytes=GiB // 2, vae_bytes=0, video_bytes=0, activation_bytes=0,
    )  # fmt: skip


def test_on_windows_the_memory_available_is_read_and_keeps_page_locked_homes_within_it(monkeypatch) -> None:
    # Windows has no /proc/meminfo: page-locked block homes were chosen whatever memory was free (pinning more than
    # is free fails or starves the desktop), and a run too large for the machine was not warned of.
    kernel32 = FakeMemoryKernel32(total=16 * GiB, available=6 * GiB)
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32, raising=False)
    monkeypatch.setattr(host_memory, "memory_limit", lambda: None)  # no cgroups there
    monkeypatch.setattr(sys, "platform", "win32")
    assert (total_ram(), available_ram()) == (16 * GiB, 6 * GiB)
    needs = _needs_past_free_memory()
    with pytest.warns(UserWarning, match="available now"):  # even staged it needs more than the 6 GiB free
        chosen = plan_host(needs, None, available_ram())
    assert chosen.pinned_blocks is False
    assert chosen.staged_because is not None and "more than the 6.00 GiB available now" in chosen.staged_because


def test_on_windows_a_failed_memory_call_gives_no_reading_rather_than_a_wrong_one(monkeypatch) -> None:
    # A reading of /proc/meminfo (there is none on Windows) or of a structure the call did not fill would be made up.
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: FakeMemoryKernel32(0, 0), raising=False)
    monkeypatch.setattr(FakeMemoryKernel32, "GlobalMemoryStatusEx", lambda self, status: 0)
    monkeypatch.setattr(host_memory, "memory_limit", lambda: None)
    monkeypatch.setattr(sys, "platform", "win32")
    assert (total_ram(), available_ram()) == (None, None)


class FakeLibSystem:
    """macOS' sysctlbyname, mach_host_self, host_page_size and host_statistics64 as their headers declare them, for
    a Mac of `total` bytes whose pages are `page_size` bytes, `free` of them free (`speculative` of those
    speculative) and `inactive` inactive. Each checks the types the caller declared (unset, ctypes passes a C int,
    cutting a pointer or a 64-bit size) and writes its answer at the offsets the C structure has, whatever the
    caller named its fields."""

    HOST = 0x103  # the host port's name

    def __init__(self, total: int, page_size: int, free: int, inactive: int, speculative: int) -> None:
        self.total, self.page_size = total, page_size
        self.free, self.inactive, self.speculative = free, inactive, speculative
        self.host_asked = 0
        self.sysctlbyname = WinFunction(self._sysctlbyname)
        self.mach_host_self = WinFunction(self._mach_host_self)
        self.host_page_size = WinFunction(self._host_page_size)
        self.host_statistics64 = WinFunction(self._host_statistics64)

    def _sysctlbyname(self, name: bytes, old: object, old_size: object, new: object, new_size: int) -> int:
        size_p = ctypes.POINTER(ctypes.c_size_t)
        assert self.sysctlbyname.restype is ctypes.c_int
        assert self.sysctlbyname.argtypes == (
            ctypes.c_char_p,
            ctypes.c_void_p,
            size_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
        )
        size = ctypes.c_size_t.from_address(ctypes.addressof(old_size._obj))  # sysctl's size_t, in and out
        if name != b"hw.memsize" or size.value < 8 or new is not None:
            return -1
        ctypes.c_uint64.from_address(ctypes.addressof(old._obj)).value = self.total  # a 64-bit count
        size.value = 8
        return 0

    def _mach_host_self(self) -> int:
        assert self.mach_host_self.restype is ctypes.c_uint32, "a mach_port_t is 32 bits"
        self.host_asked += 1
        return self.HOST

    def _host_page_size(self, host: int, size: object) -> int:
        assert self.host_page_size.restype is ctypes.c_int
        assert self.host_page_size.argtypes == (ctypes.c_uint32, ctypes.POINTER(ctypes.c_size_t))
        if host != self.HOST:
            return 4  # KERN_INVALID_ARGUMENT
        ctypes.c_size_t.from_address(ctypes.addressof(size._obj)).value = self.page_size  # a vm_size_t
        return 0

    def _host_statistics64(self, host: int, flavor: int, info: object, count: object) -> int:
        assert self.host_statistics64.restype is ctypes.c_int
        words_p = ctypes.POINTER(ctypes.c_uint32)
        assert self.host_statistics64.argtypes == (ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p, words_p)
        words = ctypes.c_uint32.from_address(ctypes.addressof(count._obj))
        # HOST_VM_INFO64 fills a vm_statistics64 of 38 words, 152 bytes: natural_t free_count at 0 (the speculative
        # pages among them), inactive_count at 8, speculative_count at 92.
        if host != self.HOST or flavor != 4 or words.value < 38 or ctypes.sizeof(info._obj) < 152:
            return 4
        address = ctypes.addressof(info._obj)
        ctypes.c_uint32.from_address(address).value = self.free
        ctypes.c_uint32.from_address(address + 4).value = 1000  # active: in use, not available
        ctypes.c_uint32.from_address(address + 8).value = self.inactive
        ctypes.c_uint32.from_address(address + 12).value = 2000  # wired
        ctypes.c_uint32.from_address(address + 92).value = self.speculative
        words.value = 38
        return 0


@pytest.fixture
def on_a_mac(monkeypatch: pytest.MonkeyPatch) -> FakeLibSystem:
    """sys.platform "darwin", no cgroups, and a libSystem of a 16 GiB Mac with 16 KiB pages, 100,000 of them free
    (20,000 of those speculative) and 150,000 inactive."""
    libsystem = FakeLibSystem(total=16 * GiB, page_size=16384, free=100_000, inactive=150_000, speculative=20_000)

    def cdll(name: str, *args: object, **kwargs: object) -> FakeLibSystem:
        assert name == "/usr/lib/libSystem.B.dylib", name
        return libsystem

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(host_memory, "_HOST_PORTS", {}, raising=False)  # no host port asked for yet
    monkeypatch.setattr(host_memory, "memory_limit", lambda: None)
    monkeypatch.setattr(sys, "platform", "darwin")
    return libsystem


def test_on_a_mac_the_memory_available_is_read_and_keeps_page_locked_homes_within_it(on_a_mac) -> None:
    # macOS has no /proc/meminfo: the planner's and verify's host figures were unknown there, page-locked block
    # homes chosen whatever memory was free and a run too large for the Mac not warned of.
    available = (on_a_mac.free + on_a_mac.inactive) * on_a_mac.page_size  # free_count counts the speculative pages
    assert (total_ram(), available_ram()) == (16 * GiB, available)
    assert available_ram() == available and on_a_mac.host_asked == 1  # its host port asked for once
    needs = _needs_past_free_memory()
    with pytest.warns(UserWarning, match="available now"):  # even staged it needs more than the 3.8 GiB available
        chosen = plan_host(needs, None, available_ram())
    assert chosen.pinned_blocks is False
    assert chosen.staged_because is not None and f"more than the {memory_size(available)} available" in (
        chosen.staged_because
    )


def test_on_a_mac_a_failed_memory_call_gives_no_reading_rather_than_a_wrong_one(on_a_mac, monkeypatch) -> None:
    # A structure or a count the call did not fill would be made up.
    monkeypatch.setattr(on_a_mac.sysctlbyname, "call", lambda *args: -1)
    monkeypatch.setattr(on_a_mac.host_statistics64, "call", lambda *args: 5)  # KERN_FAILURE
    assert (total_ram(), available_ram()) == (None, None)
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *args, **kwargs: (_ for _ in ()).throw(OSError(name)))
    assert (total_ram(), available_ram()) == (None, None)  # no libSystem to load


@pytest.mark.parametrize("name", ["COM\u00b9.webp", "lpt\u00b3.gif"])
def test_on_windows_a_port_with_a_superscript_number_is_a_device_too(tmp_path, monkeypatch, name) -> None:
    # Microsoft's naming rules reserve COM¹-COM³ and LPT¹-LPT³ beside COM1-COM9: the video went to the port.
    typed = str(tmp_path / name)
    assert check_output_path(typed)  # a file elsewhere
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError, match=f"output {name} is the name of Windows' {name[:4].upper()} device"):
        check_output_path(typed)


def test_the_attention_choice_is_kept_where_os_has_no_fchmod(tmp_path, monkeypatch) -> None:
    # Windows before Python 3.13: os.fchmod is missing, and keeping a GPU run's attention timings raised
    # AttributeError (no OSError: not caught), a traceback at the end of the timing, and left the partial file.
    monkeypatch.delattr(os, "fchmod")
    path = tmp_path / "attention.json"
    RememberedChoices("GPU X", path).put("shape", "flash")
    assert RememberedChoices("GPU X", path).get("shape") == "flash"
    assert [file.name for file in tmp_path.iterdir()] == ["attention.json"]


def test_on_windows_compiling_on_the_cpu_asks_for_msvc_not_gcc(tmp_path, monkeypatch) -> None:
    # Inductor builds its CPU kernels with MSVC's cl.exe on Windows: a Developer PowerShell with cl on PATH was
    # refused for want of g++, and the refusal named g++, clang++ and Xcode.
    cl = tmp_path / "cl.exe"
    cl.write_bytes(b"")
    monkeypatch.setattr(shutil, "which", lambda name: str(cl) if name == "cl" else None)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    check_compile_possible("cpu")  # cl on PATH: inductor's compiler is there
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CompileUnavailableError, match=r"needs MSVC's C\+\+ compiler, cl.exe, on PATH \(Visual"):
        check_compile_possible("cpu")


@pytest.mark.parametrize("cxx", ["clang-cl", "icx-cl", r"C:\Program Files\LLVM\bin\clang-cl.exe"])
def test_on_windows_compiling_on_the_cpu_takes_the_compiler_cxx_names(tmp_path, monkeypatch, cxx) -> None:
    # Inductor compiles with $CXX there, else cl (torch/_inductor/cpp_builder.py's get_cpp_compiler), and takes
    # LLVM's clang-cl and Intel's icx-cl: CXX=clang-cl without cl on PATH was refused as wanting cl.exe.
    monkeypatch.setattr(shutil, "which", lambda name: str(tmp_path / "found.exe") if name == cxx else None)
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.setattr(sys, "platform", "win32")
    check_compile_possible("cpu")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # CXX names a compiler that is not there
    with pytest.raises(CompileUnavailableError, match=f"builds with the compiler CXX names, {re.escape(cxx)}, which"):
        check_compile_possible("cpu")


@pytest.mark.parametrize(("cxx", "instead"), [("clang++", "clang-cl"), ("icx.exe", "icx-cl")])
def test_on_windows_a_cxx_with_gnu_flags_is_refused_before_loading(tmp_path, monkeypatch, cxx, instead) -> None:
    # Inductor passes MSVC's flags on Windows and refuses these drivers at the first step, after every weight loaded.
    monkeypatch.setattr(shutil, "which", lambda name: str(tmp_path / name))
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(CompileUnavailableError, match=f"inductor does not take on Windows .*set CXX to {instead}"):
        check_compile_possible("cpu")


class StrictKernel32(FakeKernel32):
    """`FakeKernel32` where ctypes' conversions and Windows' access rights matter: a process ID past a DWORD is
    ctypes' ArgumentError (a DWORD is 32 bits there), the last error is kept only for a DLL loaded with
    use_last_error=True (else ctypes.get_last_error() says 0), a process of `limited` opens only for
    PROCESS_QUERY_LIMITED_INFORMATION (an elevated or another user's process), and GetExitCodeProcess fails (0)
    for a handle of `no_exit_code`."""

    def __init__(self, processes: dict[int, int | tuple[str, int]]) -> None:
        super().__init__(processes)
        self.limited: set[int] = set()
        self.no_exit_code: set[int] = set()
        self.keeps_last_error = False

    def _open_process(self, access: int, inherit: bool, pid: int) -> int | None:
        if pid > 0xFFFFFFFF:
            raise ctypes.ArgumentError("argument 3: OverflowError: int too long to convert")
        if pid in self.limited and access & ~0x1000:  # PROCESS_QUERY_LIMITED_INFORMATION alone is granted
            self.last_error = ACCESS_DENIED
            return None
        return super()._open_process(access, inherit, pid)

    def _exit_code(self, handle: int, code: object) -> int:
        return 0 if handle in self.no_exit_code else super()._exit_code(handle, code)


@pytest.fixture
def on_strict_windows(on_windows: FakeKernel32, monkeypatch: pytest.MonkeyPatch) -> StrictKernel32:
    """`on_windows` with a `StrictKernel32` of no process in place of its kernel32."""
    kernel32 = StrictKernel32({})

    def win_dll(name: str, use_last_error: bool = False) -> StrictKernel32:
        kernel32.keeps_last_error = use_last_error
        return kernel32

    monkeypatch.setattr(ctypes, "WinDLL", win_dll, raising=False)
    monkeypatch.setattr(
        ctypes, "get_last_error", lambda: kernel32.last_error * kernel32.keeps_last_error, raising=False
    )
    return kernel32


def test_on_windows_a_process_id_past_a_dword_is_asked_of_no_one(on_strict_windows: StrictKernel32) -> None:
    # ctypes refuses it for OpenProcess's DWORD argument (ArgumentError, a traceback); it names no process there.
    assert not process_running(0xFFFFFFFF + 4)
    assert on_strict_windows.opened == []


def test_on_windows_a_process_that_is_gone_is_told_by_the_error_ctypes_kept(on_strict_windows: StrictKernel32) -> None:
    # Without use_last_error=True ctypes.get_last_error() says 0 whatever OpenProcess failed with: a process that
    # is gone (killed outright) counted as running, and its claim on -o refused the next run for good.
    assert not process_running(104)


def test_on_windows_an_elevated_process_is_asked_with_the_least_access(on_strict_windows: StrictKernel32) -> None:
    # A process of an elevated or another user's run opens only for PROCESS_QUERY_LIMITED_INFORMATION: asked for
    # more, Windows refuses and it counts as running, though it ended, its files kept for good.
    on_strict_windows.processes.update({105: 0, 106: STILL_ACTIVE})
    on_strict_windows.limited |= {105, 106}
    assert not process_running(105)
    assert process_running(106)


def test_on_windows_a_process_whose_exit_code_cannot_be_read_counts_as_running(
    on_strict_windows: StrictKernel32,
) -> None:
    # Its partial file and claim on -o are kept: a process that may run must not lose the file it writes.
    on_strict_windows.processes[107] = 0
    on_strict_windows.no_exit_code.add(107)
    assert process_running(107)
    assert on_strict_windows.closed == [107]  # the handle is closed all the same


def test_on_windows_process_zero_is_asked_of_no_one(on_windows: FakeKernel32) -> None:
    # 0 is the System Idle Process there, whose OpenProcess fails with ERROR_INVALID_PARAMETER: asked, a claim file
    # holding 0 (written by hand, or damaged) would count as a writer that stopped, and its file be removed.
    assert process_running(0)
    assert on_windows.opened == []


def test_on_windows_without_kernel32_the_memory_is_not_known(monkeypatch) -> None:
    # GlobalMemoryStatusEx cannot be called where ctypes has no WinDLL: no reading, not an AttributeError.
    monkeypatch.delattr(ctypes, "WinDLL", raising=False)
    monkeypatch.setattr(host_memory, "memory_limit", lambda: None)
    monkeypatch.setattr(sys, "platform", "win32")
    assert (total_ram(), available_ram()) == (None, None)


@pytest.mark.parametrize(
    "cxx",
    [
        r"C:\Program Files\LLVM\bin\Clang++.EXE",
        r"C:\Intel\oneAPI\bin\ICX.exe",
        # LLVM-MinGW's drivers, named for their target: inductor refused them or failed with them, after loading
        r"C:\llvm-mingw\bin\x86_64-w64-mingw32-clang++.exe",
        "aarch64-w64-mingw32-clang",
    ],
)
def test_on_windows_a_cxx_path_with_gnu_flags_is_refused_whatever_its_case(monkeypatch, cxx) -> None:
    # CXX set to the compiler's full Windows path (backslashes), in the case its installer wrote: Windows' names
    # ignore case, and inductor refuses these drivers there as it does clang++ and icx.
    monkeypatch.setattr(shutil, "which", lambda name: name)
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(CompileUnavailableError, match=f"names, {re.escape(cxx)}, which inductor does not take"):
        check_compile_possible("cpu")


@pytest.mark.parametrize("quote", ['"', "'"])
@pytest.mark.parametrize(
    "path",
    [
        r"C:\Program Files\LLVM\bin\clang-cl.exe",
        r"C:\Users\O'Neil\LLVM\bin\clang-cl.exe",
        "C:\\Users\\O\u2019Neil\\LLVM\\bin\\clang-cl.exe",  # PowerShell's single-quoted text ended at the curly one
        # Visual Studio 2019's own clang-cl: the (x86) ran into the message's parenthesis after a bare `set CXX=`
        r"C:\Program Files (x86)\Microsoft Visual Studio\2019\BuildTools\VC\Tools\Llvm\x64\bin\clang-cl.exe",
        r"C:\R&D\LLVM\bin\clang-cl.exe",  # a bare `set CXX=C:\R&D\...` made cmd run `D\LLVM\...` as a command
    ],
)
def test_on_windows_a_cxx_in_quotes_is_told_the_value_without_them(monkeypatch, quote, path) -> None:
    # cmd's `set CXX="C:\Program Files\...\clang-cl.exe"` keeps the quotes, which inductor runs as part of the name:
    # it was told "which is not found: set CXX to its full path", the path it had given.
    from test_windows_quoting import powershell_arguments

    monkeypatch.setattr(shutil, "which", lambda name: name if name == path else None)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", f"{quote}{path}{quote}")
    with pytest.raises(CompileUnavailableError, match="whose quotes inductor takes for part of the name") as refusal:
        check_compile_possible("cpu")
    message = str(refusal.value)
    # PowerShell's assignment, its value one literal string; cmd's `set "NAME=value"`, which takes every character
    # between its quotes as it is (&, parentheses) and keeps no quote in the value.
    (powershell,) = powershell_arguments(re.search(r"\$env:CXX = (.*?); in cmd, ", message).group(1))
    cmd = re.match(r'set "CXX=([^"]*)"\)', message.partition("; in cmd, ")[2]).group(1)
    for value in (powershell, cmd):
        monkeypatch.setenv("CXX", value)
        check_compile_possible("cpu")  # the value the advice gives is taken


@pytest.mark.parametrize("typed", ['"{}" ', ' "{}"', '"{}"\t'])
def test_on_windows_a_cxx_in_quotes_with_a_space_beside_them_is_told_the_path_alone(monkeypatch, typed) -> None:
    # cmd's `set CXX="C:\LLVM\bin\clang-cl.exe" ` keeps the space typed after the quote: the advice's value kept that
    # quote, and was refused in turn.
    path = r"C:\LLVM\bin\clang-cl.exe"
    monkeypatch.setattr(shutil, "which", lambda name: name if name == path else None)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", typed.format(path))
    with pytest.raises(CompileUnavailableError, match="whose quotes inductor takes for part of the name") as refusal:
        check_compile_possible("cpu")
    assert f'in cmd, set "CXX={path}")' in str(refusal.value), refusal.value


@pytest.mark.parametrize(("typed", "told"), [("clang-cl ", "set CXX without it"), (" clang++", "set CXX to clang-cl")])
def test_on_windows_a_cxx_with_a_space_around_it_is_told_so(monkeypatch, typed, told) -> None:
    # cmd's `set CXX=clang-cl ` keeps the space typed before Enter, which names no compiler: the refusal said "not
    # found: set CXX to its full path", the space out of sight in the value it showed.
    from test_windows_quoting import powershell_arguments

    monkeypatch.setattr(shutil, "which", lambda name: name if name in ("clang-cl", "clang++") else None)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", typed)
    with pytest.raises(CompileUnavailableError, match=told) as refusal:
        check_compile_possible("cpu")
    message = str(refusal.value)
    if told == "set CXX without it":  # each shell's form of the value without it, which is taken
        (powershell,) = powershell_arguments(re.search(r"\$env:CXX = (.*?); in cmd, ", message).group(1))
        cmd = re.match(r'set "CXX=([^"]*)"\)', message.partition("; in cmd, ")[2]).group(1)
        for value in (powershell, cmd):
            monkeypatch.setenv("CXX", value)
            check_compile_possible("cpu")


def test_on_windows_a_cxx_with_gnu_flags_in_quotes_is_refused_as_such(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: name)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", r'"C:\LLVM\bin\clang++.exe"')
    with pytest.raises(CompileUnavailableError, match="set CXX to clang-cl, or unset it .*without the quotes"):
        check_compile_possible("cpu")


@pytest.mark.parametrize(
    "cxx",
    [
        "g++",
        "gcc.exe",
        r"C:\msys64\mingw64\bin\g++.exe",
        "x86_64-w64-mingw32-g++",
        r"C:\msys64\mingw64\bin\x86_64-w64-mingw32-gcc.exe",  # MinGW's C driver named for its target: GCC's flags too
    ],
)
def test_on_windows_a_cxx_naming_gcc_is_refused_before_loading(monkeypatch, cxx) -> None:
    # MinGW's g++ (MSYS2's, on PATH): inductor passes it MSVC's flags there and the build failed at the first step.
    monkeypatch.setattr(shutil, "which", lambda name: name)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", cxx)
    with pytest.raises(CompileUnavailableError, match="inductor does not take on Windows .*set CXX to clang-cl"):
        check_compile_possible("cpu")
    monkeypatch.setenv("CXX", "clang-cl")  # the compiler the advice names is taken
    check_compile_possible("cpu")


def test_on_a_mac_an_answer_the_call_left_short_gives_no_reading(on_a_mac, monkeypatch) -> None:
    # Each call succeeded but said less than was asked: a 32-bit hw.memsize (its size written back as 4 bytes), counts
    # that stop before the inactive pages, a page size of 0. Read as they stand, the memory would be made up.
    sysctlbyname, host_statistics64 = on_a_mac.sysctlbyname.call, on_a_mac.host_statistics64.call

    def memsize_in_32_bits(name: bytes, old: object, old_size: object, *rest: object) -> int:
        done = sysctlbyname(name, old, old_size, *rest)
        ctypes.c_size_t.from_address(ctypes.addressof(old_size._obj)).value = 4
        return done

    def two_words_filled(host: int, flavor: int, info: object, count: object) -> int:
        done = host_statistics64(host, flavor, info, count)
        ctypes.c_uint32.from_address(ctypes.addressof(count._obj)).value = 2  # free and active: inactive's is at 8
        return done

    monkeypatch.setattr(on_a_mac.sysctlbyname, "call", memsize_in_32_bits)
    assert total_ram() is None
    monkeypatch.setattr(on_a_mac.host_statistics64, "call", two_words_filled)
    assert available_ram() is None
    monkeypatch.setattr(on_a_mac.host_statistics64, "call", host_statistics64)
    assert available_ram() == (on_a_mac.free + on_a_mac.inactive) * on_a_mac.page_size  # all 38 words filled: read
    monkeypatch.setattr(on_a_mac, "page_size", 0)
    assert available_ram() is None


def test_on_windows_a_cxx_of_empty_quotes_is_not_told_to_drop_them(monkeypatch) -> None:
    # cmd's `set CXX=""` keeps the two quotes: without them nothing is left, so the refusal is the value's own (not
    # found), with no advice to take the quotes off.
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("CXX", '""')
    with pytest.raises(CompileUnavailableError) as refusal:
        check_compile_possible("cpu")
    assert 'CXX names, "", which is not found: set CXX to its full path, or unset it, or run' in str(refusal.value)
    assert "quotes" not in str(refusal.value)
