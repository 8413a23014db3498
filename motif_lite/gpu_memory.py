"""Who holds a GPU's memory: `gpu_memory` and `gpu_use` read a CUDA device's free and total memory (one clear error
when CUDA cannot open it), `GpuReading` is a GPU as another process read it (`motif-lite run --gpus N`), and the
notes after them warn before and after a run whose memory does not fit the GPU (Windows' driver spills the excess
into system memory; Linux's fails at the peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from motif_lite.errors import ConfigError, DeviceError
from motif_lite.gpus import GpuFacts, gpu_facts, rocm_build
from motif_lite.units import RESERVED_RATIO, GiB, memory_size


def held_gpu_fix() -> str:
    """What to do about a GPU that CUDA cannot open (another process holds it in exclusive mode, or it is full),
    with the tool that lists its processes: NVIDIA's nvidia-smi, or on PyTorch's ROCm build AMD's amd-smi (rocm-smi
    before ROCm 6), since an AMD machine has no nvidia-smi."""
    return f"{gpu_process_tool()} lists the processes that hold it: stop them, or run elsewhere (--device cuda:N, cpu)"


def gpu_process_tool() -> str:
    """The tool that lists the processes holding GPU memory: NVIDIA's nvidia-smi, or on PyTorch's ROCm build AMD's."""
    return "amd-smi (rocm-smi on older ROCm)" if rocm_build() else "nvidia-smi"


def gpu_memory(device: torch.device | int) -> tuple[int, int]:
    """(free, total) bytes of a CUDA device, as `torch.cuda.mem_get_info` counts them; a `DeviceError` saying what to
    do when CUDA cannot open it (held in exclusive mode, or full), instead of CUDA's traceback."""
    try:
        return torch.cuda.mem_get_info(device)
    except RuntimeError as exc:  # torch.OutOfMemoryError too
        index = device if isinstance(device, int) else torch.device(device).index or 0
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise DeviceError(f"GPU cuda:{index} cannot be opened ({reason}); {held_gpu_fix()}") from exc


@dataclass(frozen=True)
class GpuUse:
    """Who holds a CUDA device's memory now: `free_bytes` of its `total_bytes` are free, and this process's PyTorch
    allocator reserves `reserved_bytes`, of which its tensors hold `allocated_bytes` (the rest is its cache, which it
    hands to the next tensors). The rest is other processes' (a desktop, a browser, another job), with every CUDA
    context's, this process's too: what nvidia-smi lists."""

    total_bytes: int
    free_bytes: int
    reserved_bytes: int = 0
    allocated_bytes: int = 0

    @property
    def others_bytes(self) -> int:
        return max(0, self.total_bytes - self.free_bytes - self.reserved_bytes)

    @property
    def room_bytes(self) -> int:
        """What a run in a new process can have while the other processes keep theirs: the free memory and this
        process's (its own CUDA context takes about what this one's does)."""
        return self.free_bytes + self.reserved_bytes

    @property
    def room_here_bytes(self) -> int:
        """What a run in this process can have now: the free memory and its allocator's cache. Its tensors (a
        model a notebook loaded earlier) keep theirs."""
        return self.free_bytes + max(0, self.reserved_bytes - self.allocated_bytes)

    def describe(self, reader: str | None = None) -> str:
        """'5.40 GiB free of 8.00 GiB; other processes hold 2.60 GiB (nvidia-smi lists them; ...)', with what this
        process's tensors hold where they hold any. `reader`: what this process is, in words ("this check"), where
        it holds no tensors: its own CUDA context, which no reading of the memory can leave out (reading it starts
        one), is then named as counted with the other processes'."""
        ours = f"; this process's tensors hold {memory_size(self.allocated_bytes)}" if self.allocated_bytes else ""
        state = "CUDA's own state counts there too"
        if reader is not None:
            state = f"{reader}'s own CUDA context counts there too, as a run's would"
        return (
            f"{memory_size(self.free_bytes)} free of {memory_size(self.total_bytes)}{ours}; other processes hold "
            f"{memory_size(self.others_bytes)} ({gpu_process_tool()} lists them; {state})"
        )


@dataclass(frozen=True)
class GpuReading:
    """One CUDA device as another process read it (`read_gpus`): what it is (`facts`) and its memory then (`use`:
    that process's own allocator held nothing, so all but the free memory is other processes', CUDA contexts'
    included). `motif-lite run --gpus N` reads its GPUs this way, in a short child process: a CUDA context in the
    launcher would hold memory on them for the whole run, taking it from the ranks."""

    facts: GpuFacts
    use: GpuUse

    @property
    def free_budget_bytes(self) -> int:
        """The budget a rank on this device plans for without --vram, as `planner.default_budget` measures it in a
        process of its own (no cache of its allocator yet): the free memory / RESERVED_RATIO."""
        return int(self.use.free_bytes / RESERVED_RATIO)

    def to_json(self) -> dict:
        facts = self.facts
        return {"vendor": facts.vendor, "name": facts.name, "capability": facts.capability, "arch": facts.arch,
                "free": self.use.free_bytes, "total": self.use.total_bytes}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> GpuReading:
        """The reading `to_json` wrote; `ConfigError` for anything else (a child that printed something else)."""
        try:
            capability = None if data["capability"] is None else tuple(data["capability"])
            facts = GpuFacts(data["vendor"], data["name"], capability, data["arch"])
            free, total = data["free"], data["total"]
            if not (isinstance(free, int) and isinstance(total, int) and isinstance(facts.name, str)):
                raise TypeError("free, total and name must be integers and text")
            return cls(facts, GpuUse(total, free))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a GPU reading: {data!r} ({exc})") from exc


def read_gpus(count: int) -> list[GpuReading]:
    """The first `count` CUDA devices as this process reads them (it starts CUDA on each: for a child process)."""
    return [GpuReading(gpu_facts(index), GpuUse(*reversed(gpu_memory(index)))) for index in range(count)]


def gpu_use(device: torch.device) -> GpuUse:
    """The CUDA `device`'s memory now, by who holds it (`GpuUse`); a `DeviceError` where it cannot be opened."""
    free, total = gpu_memory(device)
    return GpuUse(total, free, torch.cuda.memory_reserved(device), torch.cuda.memory_allocated(device))


# Windows' NVIDIA driver (since 536.40; WSL2 uses it too) does not fail a CUDA allocation that exceeds the GPU's
# memory: it moves memory into "shared GPU memory", system RAM across PCIe, and the run goes on many times slower
# (NVIDIA's support answer 5490, "System Memory Fallback for Stable Diffusion"). Linux's driver fails it instead,
# with out-of-memory, which a run handles (it keeps its state for --resume and says how to lower memory). Since
# driver 546.01 a Control Panel setting turns the fallback off.
SYSMEM_FALLBACK_SETTING = (
    'in the NVIDIA Control Panel (Windows), Manage 3D settings, set "CUDA - Sysmem Fallback Policy" to "Prefer No '
    'Sysmem Fallback" (globally, or for the python.exe that runs motif-lite; driver 546.01 or later), then restart '
    "motif-lite"
)


@dataclass(frozen=True)
class GpuMemory:
    """What the spill check knows of the GPU a run used: its `total_bytes` (`get_device_properties`), and whether
    its driver is Windows' (`windows_driver`: on Windows or under WSL2), which spills into system memory."""

    total_bytes: int
    windows_driver: bool


def sysmem_spill_note(peak_bytes: int | None, gpu: GpuMemory | None, lower_vram_gib: float | None = None) -> str | None:
    """When a run's device memory peak (the summary gives the reserved one, what the driver had to place) exceeded
    the whole GPU, which only Windows' driver allows: that the excess went to system memory (slow) and the two
    fixes; else None.

    Checked only with Windows' driver: Linux's fails an allocation beyond the GPU, so a peak above the total cannot
    happen there, and one fix is a Windows setting. The driver starts spilling already near the GPU's total, so a
    peak just below it may have spilled too: this says so only where it is certain. `lower_vram_gib`: the --vram
    whose plan would have stayed within the GPU, named in the advice when given."""
    if peak_bytes is None or gpu is None or not gpu.windows_driver or peak_bytes <= gpu.total_bytes:
        return None
    lower = "a lower --vram" if lower_vram_gib is None else f"--vram {lower_vram_gib:.2f} or less"
    return (
        f"this run's GPU memory peaked at {memory_size(peak_bytes)}, {memory_size(peak_bytes - gpu.total_bytes)} "
        f"more than the GPU's {memory_size(gpu.total_bytes)}: Windows' NVIDIA driver moved the excess into system "
        f"memory (shared GPU memory), which is many times slower than the GPU's own. Give {lower} (the plan "
        f"then streams more of the model; --dry-run shows what a budget plans), or {SYSMEM_FALLBACK_SETTING}: a run "
        "that does not fit then stops with out-of-memory, keeps its state for --resume and says how to lower memory"
    )


def vram_over_free_note(vram_bytes: int, free_budget_bytes: int, windows_driver: bool) -> str | None:
    """A `--vram` budget above what the GPU can give a plan now (`free_budget_bytes`: its free memory less the
    allocator's reserve, `planner.default_budget`) is the user's choice; with Windows' driver what does not fit
    then spills into system memory rather than failing, so it is said before the run. None elsewhere or when it
    fits."""
    if not windows_driver or vram_bytes <= free_budget_bytes:
        return None
    return (
        f"--vram {memory_size(vram_bytes)} is more than the {memory_size(free_budget_bytes)} this GPU can give a run "
        "now (other programs, the Windows desktop among them, hold the rest): with Windows' NVIDIA driver what does "
        "not fit spills into system memory, many times slower, instead of failing. Leave --vram out (the plan then "
        f"fits the free memory) or close what holds GPU memory; or {SYSMEM_FALLBACK_SETTING}, so that a run that "
        "does not fit stops with out-of-memory instead"
    )


def plan_over_room_note(vram_gib: float, reserved_bytes: int, use: GpuUse, windows_driver: bool) -> str | None:
    """A plan for `--vram` whose expected reserve (`reserved_bytes`) is more than the GPU has for a run here now
    (`use.room_here_bytes`: other processes, or a model this one loaded earlier, hold the rest): with Linux's driver
    the run would load, then run out of memory at its peak unless they let go first, so it is said before anything
    loads, with the --vram that fits. None where it fits, and with Windows' driver, whose note
    (`vram_over_free_note`) says that the excess spills into system memory instead."""
    if windows_driver or reserved_bytes <= use.room_here_bytes:
        return None
    fits = math.floor(use.room_here_bytes / RESERVED_RATIO / GiB * 100) / 100  # rounded down: its plan fits
    return (
        f"--vram {vram_gib:g} plans a run that needs ~{memory_size(reserved_bytes)} of GPU memory at its peak, but "
        f"the GPU has {use.describe()}, which leaves a run {memory_size(use.room_here_bytes)}: unless they free "
        f"theirs first, the run loads, then runs out of memory at its peak. Leave --vram out (the plan then fits "
        f"what is free now) or give --vram {fits:.2f} or less; or close what holds GPU memory"
    )
