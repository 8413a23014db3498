"""Host memory (resident set size) of a generation: what `--ram GiB` is checked against, from the components'
sizes as loaded and the memory plan. No weights are read.

    needs = HostNeeds(...)                    # built by the planner from file sizes and the device plan
    estimate = plan_host(needs, ram_budget)   # page-locked block homes if they fit, else staging; or MemoryBudgetError

What lives in host memory (docs/memory.md):
- after loading (a plan loads everything on the CPU first): every component's weights, once;
- during the generation: the text encoder (it visits the device only while it encodes; streamed, its layers go
  through two page-locked staging buffers), the transformer blocks that are streamed (as page-locked homes, each
  tensor rounded up to a power of two by PyTorch's pinned allocator, or as loaded plus two staging buffers), the
  decoded clip when the VAE decodes in bands (it collects on the host), and everything when the device is the CPU;
- the process itself: Python, torch and the libraries, and with CUDA the context and the kernels' host side.
Weights read from GGUF files are memory-mapped: they count as resident once touched, but the kernel can drop
them again (they are file pages, not anonymous memory). So are safetensors weights loaded in their stored dtype:
pages never read (a text-to-video's SigLIP tower, most of the text embedding table) never count, so a CPU run's
peak measures below this estimate.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from motif_lite.errors import MemoryBudgetError
from motif_lite.io.wsl import WSLCONFIG_FIX, is_wsl
from motif_lite.runtime.memory_limit import MemoryLimit, memory_limit
from motif_lite.units import memory_size

GiB = 1024**3
# The process before any weights: Python, torch, transformers, motif_lite and the run's thread pools. Measured on
# this project's CPU machine (torch 2.13 CPU, 2026-11-30): 0.46 GiB after the imports, 0.53 GiB after loading a
# tiny checkpoint (the loaders' own code and libraries); 0.55 GiB counted.
BASE_RSS_BYTES = int(0.55 * GiB)
# With CUDA: the driver context and the host side of cuBLAS, cuDNN and Triton. NOT MEASURED in this session
# (no GPU); an assumption until bench/bench_planner.py runs on a GPU.
CUDA_RSS_BYTES = int(2.0 * GiB)


@dataclass(frozen=True)
class HostNeeds:
    """The bytes that decide host memory, from the planner (sizes as loaded)."""

    cuda: bool  # the device is a GPU (else everything lives in host memory)
    text_bytes: int  # the text encoder: it stays in host memory between its visits to the device
    text_staging_bytes: int  # staging buffers while its layers stream (0 when not streamed)
    transformer_bytes: int
    streamed_bytes: int  # transformer blocks that stay on the host and stream to the device
    streamed_pinned_bytes: int  # the same as page-locked homes (each tensor rounded up to a power of two)
    block_staging_bytes: int  # two staging buffers of the largest streamed block
    vae_bytes: int
    video_bytes: int  # decoded pixels held on the host
    activation_bytes: int  # activations computed on the host (all of them when the device is the CPU)
    transformer_quantized: bool = False  # a GGUF transformer (packed): --gguf would not make it smaller
    text_quantized: bool = False  # a quantized text encoder (--text-encoder-gguf/-quantize): a Q8_0 copy is no smaller


@dataclass(frozen=True)
class HostEstimate:
    """The host memory a plan needs: after loading, and while generating."""

    load_bytes: int
    run_bytes: int
    pinned_bytes: int  # page-locked: can be neither swapped nor reclaimed
    pinned_blocks: bool | None  # streamed blocks: page-locked homes, or staging (False); None: none streamed
    budget_bytes: int | None
    staged_because: str | None = None  # why streamed blocks are staged: the limit page-locked homes would pass

    @property
    def peak_bytes(self) -> int:
        return max(self.load_bytes, self.run_bytes)

    def describe(self) -> str:
        budget = "no limit" if self.budget_bytes is None else f"budget {memory_size(self.budget_bytes)}"
        blocks = {True: "page-locked homes", False: "staged", None: "none"}[self.pinned_blocks]
        if self.staged_because is not None:
            blocks += f" ({self.staged_because})"
        return (
            f"host peak {memory_size(self.peak_bytes)} RSS ({budget}): loading {memory_size(self.load_bytes)}, "
            f"generating {memory_size(self.run_bytes)}, of which page-locked {memory_size(self.pinned_bytes)}; "
            f"streamed blocks: {blocks}"
        )


def host_estimate(needs: HostNeeds, pinned_blocks: bool, budget_bytes: int | None = None) -> HostEstimate:
    """The host memory of a plan, with the streamed blocks' homes page-locked or staged."""
    base = BASE_RSS_BYTES + (CUDA_RSS_BYTES if needs.cuda else 0)
    load = base + needs.text_bytes + needs.transformer_bytes + needs.vae_bytes
    if not needs.cuda:  # the CPU is the device: every weight stays where it was loaded
        return HostEstimate(load, load + needs.video_bytes + needs.activation_bytes, 0, None, budget_bytes)
    blocks = needs.streamed_pinned_bytes if pinned_blocks else needs.streamed_bytes + needs.block_staging_bytes
    pinned = needs.text_staging_bytes + (needs.streamed_pinned_bytes if pinned_blocks else needs.block_staging_bytes)
    run = base + needs.text_bytes + needs.text_staging_bytes + blocks + needs.video_bytes + needs.activation_bytes
    return HostEstimate(load, run, pinned, pinned_blocks if needs.streamed_bytes else None, budget_bytes)


def plan_host(needs: HostNeeds, budget_bytes: int | None, available_bytes: int | None = None) -> HostEstimate:
    """Page-locked block homes (the fastest copies) when they fit both the budget and the memory available now,
    else staging (said in the estimate's line, with the limit they would pass); a `MemoryBudgetError` before anything
    loads when neither fits the budget. An estimate above the memory available now is a warning: the system would
    kill the process part way (a notebook's kernel restarts), and the estimate can be a little high
    (memory-mapped pages can be dropped)."""
    pinned = host_estimate(needs, pinned_blocks=True, budget_bytes=budget_bytes)
    refusal = _pinned_refusal(pinned.peak_bytes, budget_bytes, available_bytes)
    if needs.cuda and needs.streamed_bytes and refusal is None:
        chosen = pinned
    else:
        chosen = host_estimate(needs, pinned_blocks=False, budget_bytes=budget_bytes)
        if needs.cuda and needs.streamed_bytes:
            chosen = replace(chosen, staged_because=refusal)
    if budget_bytes is not None and chosen.peak_bytes > budget_bytes:
        raise MemoryBudgetError(
            f"this run needs about {memory_size(chosen.peak_bytes)} of host memory, but --ram is "
            f"{memory_size(budget_bytes)} ({chosen.describe()}). {less_host_memory(needs, chosen)}; or give it "
            f"--ram {math.ceil(chosen.peak_bytes / GiB * 100) / 100:.2f} or more where this machine has that much "
            f"available{more_memory_fix()}."
        )
    if (note := over_available_note(needs, chosen, available_bytes)) is not None:
        warnings.warn(note, stacklevel=2)
    return chosen


def _pinned_refusal(pinned_peak: int, budget_bytes: int | None, available_bytes: int | None) -> str | None:
    """Why streamed blocks cannot have page-locked homes: a host peak with them above --ram, or above the memory
    available now (page-locked memory cannot be swapped out: pinning more than is free fails, or starves the rest
    of the system); None when they fit."""
    homes = f"page-locked homes would make the peak {memory_size(pinned_peak)}"
    if budget_bytes is not None and pinned_peak > budget_bytes:
        return f"{homes}, more than --ram {memory_size(budget_bytes)}"
    if available_bytes is not None and pinned_peak > available_bytes:
        return (
            f"{homes}, more than the {memory_size(available_bytes)} available now, and page-locked memory cannot "
            "be swapped out"
        )
    return None


def over_available_note(needs: HostNeeds, estimate: HostEstimate, available_bytes: int | None) -> str | None:
    """An estimate above the memory available now, with --ram or without: a 16 GB laptop's `--ram 16` leaves out
    what the desktop holds. The system then swaps (many times slower) or kills the process part way; None when it
    fits or the available memory is unknown."""
    if available_bytes is None or estimate.peak_bytes <= available_bytes:
        return None
    given = "" if estimate.budget_bytes is None else f" (--ram {memory_size(estimate.budget_bytes)} counts no others)"
    return (
        f"this run needs about {memory_size(estimate.peak_bytes)} of host memory, more than the "
        f"{memory_size(available_bytes)} available now{given}: the system will swap, many times slower, or kill it "
        f"part way (in a notebook, the kernel restarts; a pipeline still loaded there counts too: del pipe first). "
        f"{less_host_memory(needs, estimate)}{more_memory_fix()}."
    )


def less_host_memory(needs: HostNeeds, estimate: HostEstimate) -> str:
    """What lowers a host estimate, largest saving first: the text encoder is most of it at loading (8.0 GiB in
    bf16, 4.4 GiB as our Q8_0 GGUF), and a smaller video helps only where generating holds more than loading."""
    if needs.text_quantized:  # the user already did what the docs advise first
        advice = f"The text encoder is {memory_size(needs.text_bytes)} of it, already quantized"
    else:
        advice = (
            f"The text encoder is {memory_size(needs.text_bytes)} of it; in Q8_0 the bf16 one is about half: "
            "--text-encoder-quantize Q8_0 quantizes it as it loads (a minute or two each run), or make the copy "
            "once, python -m motif_lite.quantize CHECKPOINT --component text_encoder --type Q8_0 -o te-Q8_0.gguf (it "
            "reads one slice at a time, so it needs far less memory than a run), then --text-encoder-gguf te-Q8_0.gguf"
        )
    if not needs.transformer_quantized:  # 3.8 GiB in bf16; 1.26 GiB as our Q4_K_M
        advice += f"; the transformer is {memory_size(needs.transformer_bytes)}: a GGUF one (--gguf Q4_K_M) is a third"
    if estimate.run_bytes > estimate.load_bytes:
        advice += "; a smaller video"
    return advice


def more_memory_fix(limit: MemoryLimit | None = None) -> str:
    """Where more memory comes from, to end the advice: under a cgroup memory limit (a container's, a Slurm job's;
    `memory_limit()` when not given), that limit; under WSL2, the VM's share of Windows' (a setting); else
    nothing."""
    limit = memory_limit() if limit is None else limit
    fixes = []
    if limit is not None:
        fixes.append(
            f"or raise this container's or job's memory limit, now {memory_size(limit.limit_bytes)} (cgroup "
            f"v{limit.version}; docker run --memory, Kubernetes resources.limits.memory, Slurm --mem)"
        )
    if is_wsl():
        fixes.append(WSLCONFIG_FIX)
    return "".join(f"; {fix}" for fix in fixes)


def pinned_size(nbytes: int) -> int:
    """PyTorch's pinned-memory allocator rounds every allocation up to a power of two."""
    return 1 << max(0, nbytes - 1).bit_length() if nbytes else 0


def staging_bytes(layer_bytes: int) -> int:
    """Two page-locked staging buffers for a layer of `layer_bytes`."""
    return 2 * pinned_size(layer_bytes)


def available_ram(limit: MemoryLimit | None = None) -> int | None:
    """The memory this process may still take, in bytes: MemAvailable from /proc/meminfo (Linux; on Windows what
    the OS counts as available, on macOS its free, speculative and inactive pages), or less where a cgroup memory
    limit (a container's, a Slurm job's; `memory_limit()` when not given) leaves less, since /proc/meminfo counts
    the whole machine also inside a container; None where neither can be read."""
    if sys.platform == "win32":
        free = _windows_memory_status("ullAvailPhys")
    elif sys.platform == "darwin":
        free = _mac_available_bytes()
    else:
        free = _meminfo_bytes("MemAvailable")
    limit = memory_limit() if limit is None else limit
    if limit is None:
        return free
    return limit.available_bytes if free is None else min(free, limit.available_bytes)


def total_ram() -> int | None:
    """MemTotal from /proc/meminfo (Linux; under WSL2 the VM's share of the machine; on Windows and macOS the
    machine's memory), in bytes; None where it cannot be read."""
    if sys.platform == "win32":
        return _windows_memory_status("ullTotalPhys")
    if sys.platform == "darwin":
        return _mac_total_bytes()
    return _meminfo_bytes("MemTotal")


def _meminfo_bytes(name: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _windows_memory_status(field: str) -> int | None:
    """A field of Windows' GlobalMemoryStatusEx, in bytes (ullAvailPhys: the memory available now, ullTotalPhys:
    all of it); None where the call fails. Windows has no /proc/meminfo: without this a run there never learnt that
    page-locked block homes would take more than is free, nor warned of a run that would swap."""
    import ctypes  # Windows' kernel32 only: imported here, as the call is made there alone

    class MemoryStatusEx(ctypes.Structure):  # MEMORYSTATUSEX
        _fields_ = [
            ("dwLength", ctypes.c_uint32),
            ("dwMemoryLoad", ctypes.c_uint32),
            *((name, ctypes.c_uint64) for name in ("ullTotalPhys", "ullAvailPhys", "ullTotalPageFile")),
            *((name, ctypes.c_uint64) for name in ("ullAvailPageFile", "ullTotalVirtual", "ullAvailVirtual")),
            ("ullAvailExtendedVirtual", ctypes.c_uint64),
        ]

    status = MemoryStatusEx(dwLength=ctypes.sizeof(MemoryStatusEx))  # the call fails unless told its size
    try:
        if not ctypes.WinDLL("kernel32").GlobalMemoryStatusEx(ctypes.byref(status)):
            return None
    except (AttributeError, OSError):  # no kernel32 to call
        return None
    return int(getattr(status, field))


# macOS' libSystem, which holds the BSD and Mach calls below; host_statistics64's flavor for its page counts
# (HOST_VM_INFO64), and that structure's size in 32-bit words (HOST_VM_INFO64_COUNT: 152 bytes).
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"
HOST_VM_INFO64 = 4
HOST_VM_INFO64_COUNT = 38
_HOST_PORTS: dict[int, int] = {}  # process ID -> its name for the host port (`_mac_host_port`)


def _mac_total_bytes() -> int | None:
    """The Mac's memory, sysctl's hw.memsize, in bytes; None where the call fails. macOS has no /proc/meminfo:
    without this `check` said its memory was unknown."""
    import ctypes  # macOS' libSystem only: imported here, as the call is made there alone

    try:
        sysctlbyname = ctypes.CDLL(LIBSYSTEM).sysctlbyname
    except (AttributeError, OSError):  # no libSystem to call
        return None
    sysctlbyname.restype = ctypes.c_int
    sysctlbyname.argtypes = (
        ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t,
    )  # fmt: skip
    total, size = ctypes.c_uint64(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_uint64))
    if sysctlbyname(b"hw.memsize", ctypes.byref(total), ctypes.byref(size), None, 0) != 0:
        return None
    return total.value if size.value == ctypes.sizeof(ctypes.c_uint64) else None  # else not the 64-bit count asked


def _mac_available_bytes() -> int | None:
    """The memory macOS can give a process now, in bytes: its free pages (the speculative ones among them, which
    vm_stat lists apart) and its inactive ones (reclaimed without swapping), as psutil counts it; None where a call
    fails. Without this a run on a Mac never learnt that page-locked block homes would take more than is free, nor
    warned of a run that would swap."""
    import ctypes

    class VMStatistics64(ctypes.Structure):  # vm_statistics64 (mach/vm_statistics.h)
        _fields_ = [
            *((name, ctypes.c_uint32) for name in ("free_count", "active_count", "inactive_count", "wire_count")),
            *((name, ctypes.c_uint64) for name in ("zero_fill_count", "reactivations", "pageins", "pageouts")),
            *((name, ctypes.c_uint64) for name in ("faults", "cow_faults", "lookups", "hits", "purges")),
            *((name, ctypes.c_uint32) for name in ("purgeable_count", "speculative_count")),
            *((name, ctypes.c_uint64) for name in ("decompressions", "compressions", "swapins", "swapouts")),
            *((name, ctypes.c_uint32) for name in ("compressor_page_count", "throttled_count")),
            *((name, ctypes.c_uint32) for name in ("external_page_count", "internal_page_count")),
            ("total_uncompressed_pages_in_compressor", ctypes.c_uint64),
        ]

    try:
        libsystem = ctypes.CDLL(LIBSYSTEM)
        page_size_of, statistics = libsystem.host_page_size, libsystem.host_statistics64
        host = _mac_host_port(libsystem)
    except (AttributeError, OSError):  # no libSystem to call
        return None
    page_size_of.restype = statistics.restype = ctypes.c_int  # kern_return_t: KERN_SUCCESS is 0
    page_size_of.argtypes = (ctypes.c_uint32, ctypes.POINTER(ctypes.c_size_t))  # a vm_size_t is pointer-wide
    statistics.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32))
    if not host:  # MACH_PORT_NULL: no host port to ask
        return None
    page_size, counts = ctypes.c_size_t(0), VMStatistics64()
    words = ctypes.c_uint32(HOST_VM_INFO64_COUNT)  # in: the room given, in 32-bit words; out: the words filled
    if page_size_of(host, ctypes.byref(page_size)) != 0 or not page_size.value:
        return None
    if statistics(host, HOST_VM_INFO64, ctypes.byref(counts), ctypes.byref(words)) != 0:
        return None
    if words.value * 4 < VMStatistics64.inactive_count.offset + 4:  # the counts read were not filled in
        return None
    return (counts.free_count + counts.inactive_count) * page_size.value


def _mac_host_port(libsystem: object) -> int:
    """This process's name for the host port, asked of mach_host_self once: each call adds a reference to it that
    only mach_port_deallocate gives back, so a server planning every request would pile them up. Asked again in a
    forked child, whose names are its own."""
    import ctypes
    import os

    pid = os.getpid()
    if pid not in _HOST_PORTS:
        host_self = libsystem.mach_host_self
        host_self.restype, host_self.argtypes = ctypes.c_uint32, ()  # a mach_port_t
        if not (host := host_self()):  # MACH_PORT_NULL: kept for no one
            return host
        _HOST_PORTS[pid] = host
    return _HOST_PORTS[pid]


def peak_rss() -> int | None:
    """This process's peak resident memory so far, in bytes; None where the OS does not say (Windows: there is no
    `resource` module, and `--ram` checks the plan's estimate, not this)."""
    try:
        import resource  # POSIX only: imported here so that the package imports on Windows
    except ImportError:
        return None
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes if sys.platform == "darwin" else kib_or_bytes * 1024  # macOS reports bytes, Linux KiB
