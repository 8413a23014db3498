"""Device names -> `torch.device`, with one clear error when the device cannot be used here; `--dtype` names ->
`torch.dtype` (`torch_dtype`), and the dtypes the Python API takes (`checked_dtype`).

`parse_device` reads a name ("auto" included) for plans, which may be made for a device this machine lacks;
`resolve_device` and `checked_device` also require that the device runs here. `default_dtype` is the compute dtype
when the user names none (float16 on a GPU before compute capability 8.0, float32 on the GTX 16xx and before 7.0,
else bfloat16); `dtype_note` says when
a dtype the user named is a poor fit for a GPU (bfloat16 before compute capability 8.0). `gpu_facts` reads what the
code decides on about a GPU (NVIDIA's compute capability, or on PyTorch's ROCm build the AMD architecture), and the
pure functions after it decide from those facts (bf16, 8-bit attention, FP8, NVIDIA-only attention kernels).

torch reports a missing GPU in several ways (an AssertionError from a CPU-only build, a RuntimeError about the
NVIDIA driver, an invalid device ordinal); the loaders call `checked_device` first so that users get one message.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from dataclasses import dataclass

import torch

from motif_lite.choices import chosen_gpus_command, gpu_numbers, is_list
from motif_lite.errors import Audience, ConfigError, DeviceError, Spelling, both_spellings
from motif_lite.units import RESERVED_RATIO, GiB, memory_size

# The CPU as the device setting names it; no field of the server's API picks a device: a server's is its operator's
# `serve --device`.
CPU_DEVICE = Spelling("--device cpu", 'device="cpu"', "--device cpu")
USE_THE_CPU = CPU_DEVICE.to(Audience.RUN_OR_PYTHON)
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}  # --dtype name -> dtype


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a `--dtype` name (`choices.DTYPE_NAMES`: bf16, fp16, fp32)."""
    return COMPUTE_DTYPES[name]


def checked_dtype(dtype: torch.dtype | str, name: str = "dtype") -> torch.dtype:
    """A compute dtype as the Python API takes it: torch.bfloat16, torch.float16 or torch.float32, or a name of
    one ("bf16" as for --dtype, "bfloat16", "torch.bfloat16"). Anything else is a `ConfigError` here, before any
    file is read, rather than a torch error from deep inside the first loader."""
    if isinstance(dtype, str):
        text = dtype.strip().lower().removeprefix("torch.")
        by_name = {str(value).removeprefix("torch."): value for value in COMPUTE_DTYPES.values()}
        dtype = COMPUTE_DTYPES.get(text) or by_name.get(text, dtype)
    if isinstance(dtype, torch.dtype) and dtype in COMPUTE_DTYPES.values():
        return dtype
    raise ConfigError(
        f"{name} must be torch.bfloat16, torch.float16 or torch.float32 (or bf16, fp16, fp32), got {dtype!r}"
    )


def text_encoder_dtype(dtype: torch.dtype, given: torch.dtype | None = None, by_default: bool = False) -> torch.dtype:
    """The text encoder's dtype: `given`, else the run's `dtype`, except bfloat16 in a float16 run and in a float32
    run whose dtype is the GPU's default (`by_default`: no dtype asked for; the GTX 16xx and Pascal,
    `default_dtype`), float32 only when asked for. The encoder is T5Gemma2's, built from Gemma 3, whose
    activations are known to exceed float16's range (inf, then NaN); it runs once per video, so its own bf16 costs
    little even where bf16 has no tensor cores, and in fp32 it would near double the host memory of such a run
    (~12 GB more). Its outputs are cast to `dtype`."""
    if given is not None:
        return given
    if dtype == torch.float16 or (dtype == torch.float32 and by_default):
        return torch.bfloat16
    return dtype


SUPPORTED_TYPES = ("cpu", "cuda")  # CUDA includes ROCm builds, which name their GPUs "cuda" too


# Accelerators torch can drive that motif-lite does not run on (its kernels, memory plans and tests are CUDA's):
# torch's device type -> the name users know. A ROCm build of torch names AMD GPUs "cuda" (accepted, untested).
OTHER_ACCELERATORS = {"mps": "Apple silicon GPU (mps)", "xpu": "Intel GPU (xpu)", "npu": "Ascend NPU (npu)"}


def present_accelerator() -> str | None:
    """torch's device type for this machine's accelerator ("cuda", "mps", "xpu", ...), or None: the CPU only."""
    accelerator = getattr(torch, "accelerator", None)  # torch 2.6 and later
    if accelerator is None or not accelerator.is_available():
        return None
    return accelerator.current_accelerator().type


def unused_accelerator_note(kind: str | None) -> str | None:
    """When `device` "auto" gives the CPU on a machine whose accelerator is of a `kind` motif-lite does not run on
    (`present_accelerator`: a Mac's GPU, an Intel GPU), the sentence that says so: without it a Mac user sees only
    a long CPU estimate and cannot tell why their GPU is not used. None for "cuda" or no accelerator."""
    if kind is None or kind in SUPPORTED_TYPES:
        return None
    name = OTHER_ACCELERATORS.get(kind, f"{kind} device")
    return f"this machine's {name} is not supported: motif-lite runs on NVIDIA GPUs (CUDA) and on the CPU"


def auto_cpu_note(asked: str | torch.device, device: torch.device) -> str | None:
    """`unused_accelerator_note` for this machine when the device `asked` for was "auto" and gave the CPU."""
    if str(asked) != "auto" or device.type != "cpu":
        return None
    note = unused_accelerator_note(present_accelerator())
    return None if note is None else f"{note}; this run uses the CPU, which is meant for tests and tiny sizes"


def no_gpu_note(asked: str | torch.device, device: torch.device) -> str | None:
    """For `load_pipeline`, which has no time estimate or question as `motif-lite run` on the CPU has: the warning
    when the device `asked` for was "auto" and gave the CPU on a machine without any accelerator (a notebook on a
    CPU runtime), which then sampled the official video for weeks without a word. None otherwise (a Mac's GPU:
    `auto_cpu_note`)."""
    if str(asked) != "auto" or device.type != "cpu" or present_accelerator() is not None:
        return None
    return (
        f"no GPU found ({no_gpu_reason()}): the pipeline runs on the CPU, which is meant for tests and tiny sizes "
        "(the official 720p video would take weeks to months); in a notebook choose a GPU runtime (Colab: Runtime > "
        "Change runtime type) and load again, or give device='cpu' to use the CPU without this warning"
    )


# Where motif-lite runs, as a message about another device ends. AMD's route is named: users of Vulkan or DirectML
# tools (stable-diffusion.cpp, ...) who give --device vulkan would otherwise read that their AMD GPU is not supported.
RUNS_ON = (
    "motif-lite runs on CUDA GPUs (cuda, cuda:N; under PyTorch's ROCm build AMD GPUs are cuda too, untested) and the "
    "CPU (cpu; slow, for tests and tiny sizes)"
)


def _amd_gpu_name(device: str | torch.device) -> str | None:
    """Why `device`, an AMD GPU by the name other tools give it ("rocm", "hip:1", "amd"), is not a name torch runs
    here, with the one it is: PyTorch's ROCm build names AMD GPUs cuda (HIP's own device type, which torch also
    knows, runs nothing). On another build, that an AMD GPU needs the ROCm build. None for other names."""
    match = re.fullmatch(r"(?:rocm|hip|amd|radeon)(?::?(\d+))?", str(device).strip().lower())
    if match is None:
        return None
    if rocm_build():
        cuda = "cuda" if match[1] is None else f"cuda:{match[1]}"
        spelled = both_spellings(f"--device {cuda}", f'device="{cuda}"')
        return f"device {str(device)!r}: PyTorch's ROCm build names AMD GPUs cuda: {spelled}"
    return (
        f"device {str(device)!r}: AMD GPUs run through PyTorch's ROCm build, which names them cuda; this torch "
        f"({torch.__version__}) is not that build: install it (https://pytorch.org/get-started/locally/, ROCm), or "
        f"use the CPU: {USE_THE_CPU}"
    )


def _supported(resolved: torch.device, name: str | torch.device) -> torch.device:
    if (amd := _amd_gpu_name(name)) is not None:  # hip: a device type torch knows, but ROCm's GPUs are cuda
        raise DeviceError(amd)
    if resolved.type not in SUPPORTED_TYPES:
        other = OTHER_ACCELERATORS.get(resolved.type)
        raise DeviceError(f"device {str(name)!r}{f', an {other},' if other else ''} is not supported: {RUNS_ON}")
    return resolved


def _unknown_device(device: str | torch.device, names: str) -> str:
    """Why `device` is no device torch knows, with the one meant where the name tells it: other tools' "gpu" or a
    bare number (ComfyUI's --gpu-only, ...), torch's names in other letter case ("CPU", "CUDA:0") or without their
    colon ("cuda0") or with spaces around them (" cuda"), a Mac's GPU by another name ("metal")."""
    text = str(device).strip().lower()
    if is_list(text):  # several GPUs as ComfyUI-MultiGPU, accelerate or a device list name them: cuda:0,cuda:1
        numbers = gpu_numbers(text)  # the run on those very GPUs, where the list names them
        chosen = "" if numbers is None else f"{chosen_gpus_command(numbers)}; "
        return (
            f"unknown device {device!r}: a process runs on one device; several GPUs are one process each: "
            f"motif-lite run --gpus N, and CUDA_VISIBLE_DEVICES chooses which ({chosen}docs/parallel.md)"
        )
    if (gpu := re.fullmatch(r"(?:gpu:?)?(\d+)|gpu", text)) is not None:
        cuda = "cuda" if gpu[1] is None else f"cuda:{int(gpu[1])}"  # int: torch takes ASCII digits alone (`１`)
        spelled = both_spellings(f"--device {cuda}", f'device="{cuda}"')
        return f"unknown device {device!r}: a GPU is cuda here: {spelled}"
    if (torch_name := re.fullmatch(r"(cpu|cuda)([:_\- ]?)(\d+)?", text)) is not None:
        kind, separator, number = torch_name.groups()
        meant = kind if number is None else f"{kind}:{int(number)}"
        why = []
        if number is not None and not number.isascii():  # an input method's full-width digits: cuda:１
            why.append("a GPU's number is written in the digits 0-9")
        if str(device) != str(device).strip():
            why.append("no spaces around the name")
        if text != str(device).strip():
            why.append("device names are lower case")
        if number is not None and separator != ":":
            why.append("a GPU's number goes after a colon")
        reason = f": {' and '.join(why)}" if why else ""  # "cuda:" and "cuda_" have only a stray separator
        spelled = both_spellings(f"--device {meant}", f'device="{meant}"')
        return f"unknown device {device!r}{reason}: {spelled}"
    if (amd := _amd_gpu_name(device)) is not None:
        return amd
    if text in ("metal", "apple", "mac"):
        return f"unknown device {device!r}: a Mac's GPU (mps in torch) is not supported: {RUNS_ON}"
    if text in ("dml", "directml", "privateuseone"):  # torch-directml's device, which ComfyUI's --directml picks
        return f"unknown device {device!r}: DirectML (torch-directml) is not supported: {RUNS_ON}"
    return f"unknown device {device!r} (use {names})"


def _absent_gpu(device: str | torch.device, count: int) -> str:
    """Why `device` (cuda:N) is no GPU of this machine's `count`, with the ones there are: CUDA numbers the GPUs it
    sees from 0, and CUDA_VISIBLE_DEVICES chooses which it sees (the third GPU alone is then cuda:0)."""
    there = ", ".join(f"cuda:{index}" for index in range(count))
    first = both_spellings("--device cuda:0", 'device="cuda:0"')
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    chosen = f" (CUDA_VISIBLE_DEVICES={visible!r} chooses the GPUs CUDA sees)" if visible is not None else ""
    return (
        f"device {str(device)!r}: there are only {count} CUDA device(s) here, numbered from 0: {there}{chosen}; "
        f"use one of them, e.g. {first}"
    )


def absent_gpu(device: torch.device) -> str | None:
    """Why CUDA device `device` (cuda:N) is no GPU of this machine, which has CUDA, with the ones there are; None
    when it is one (or names none: plain cuda is the current one)."""
    count = torch.cuda.device_count()
    return _absent_gpu(device, count) if device.index is not None and device.index >= count else None


def is_here(device: torch.device) -> bool:
    """Whether `device` is one of this machine's: the CPU, or a CUDA device torch sees (plain cuda: the current one).
    Plans and dry runs may be made for one that is not; its facts (capability, free memory) cannot be read."""
    if device.type == "cpu":
        return True
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return device.index is None or device.index < torch.cuda.device_count()


def checked_device(device: str | torch.device) -> torch.device:
    """The `torch.device` for `device`, or a `DeviceError` saying why it cannot be used on this machine."""
    try:
        resolved = _supported(torch.device(device), device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(_unknown_device(device, "cpu, cuda or cuda:N")) from exc
    if resolved.type != "cuda":
        return resolved
    if not torch.cuda.is_available():
        why = no_gpu_reason()
        if (other := unused_accelerator_note(present_accelerator())) is not None:  # a Mac's: no CUDA build to install
            why += f"; {other}"
        raise DeviceError(
            f"device {str(device)!r} requested but CUDA is not available ({why}); use the CPU: {USE_THE_CPU}"
        )
    if (absent := absent_gpu(resolved)) is not None:
        raise DeviceError(absent)
    if (lacking := torch_build_gpu_problem(resolved)) is not None:
        raise DeviceError(lacking)
    return resolved


# On Windows `pip install torch` installs PyTorch's CPU build (on Linux its CUDA build): an NVIDIA GPU then goes
# unused unless the CUDA build replaces it, from PyTorch's own index.
WINDOWS_CPU_BUILD = (
    " (on Windows pip installs PyTorch's CPU build; for an NVIDIA GPU: pip uninstall torch, then pip install torch "
    "--index-url https://download.pytorch.org/whl/cu128)"
)


def no_gpu_reason() -> str:
    """Why torch sees no GPU, in words that fit this torch build (a ROCm build needs AMD's driver, not NVIDIA's); on
    a CUDA build, CUDA's own reason where it gives one (`cuda_start_failure`)."""
    if rocm_build():
        return "no AMD GPU or ROCm driver was found"
    if torch.version.cuda is None:
        return "this torch build has no CUDA" + (WINDOWS_CPU_BUILD if sys.platform == "win32" else "")
    return cuda_start_failure() or "no NVIDIA driver or GPU was found"


def cuda_start_failure() -> str | None:
    """Why CUDA does not start, in its own words, first sentence ("Found no NVIDIA driver on your system", "The
    NVIDIA driver on your system is too old (found version 11040)", "No CUDA GPUs are available"), with what to do
    where the words alone do not say it; None if it starts. Only asked once `torch.cuda.is_available()` said no:
    a driver older than this torch's CUDA, or CUDA_VISIBLE_DEVICES hiding every GPU, look like no GPU at all."""
    try:
        torch.cuda.init()
    except Exception as exc:  # RuntimeError from CUDA; AssertionError from a build without it
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
    else:
        return None
    if "too old" in reason:
        reason += (
            f": this torch is built for CUDA {torch.version.cuda}; update the NVIDIA driver, or install a PyTorch "
            "built for an older CUDA (https://pytorch.org/get-started/locally/)"
        )
    if (visible := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        reason += f" (CUDA_VISIBLE_DEVICES={visible!r} chooses the GPUs CUDA may use)"
    return reason


def parse_device(device: str | torch.device) -> torch.device:
    """ "auto" = the first CUDA device if there is one, else the CPU; other names as torch reads them (a device
    this machine lacks is fine: plans are made for it)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return _supported(torch.device(device), device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(_unknown_device(device, "auto, cpu, cuda or cuda:N")) from exc


def resolve_device(device: str | torch.device) -> torch.device:
    """`parse_device`, and a device that runs here (`checked_device`)."""
    return checked_device(parse_device(device))


# What the code decides on about a GPU, read from torch once (`gpu_facts`) and decided on by pure functions below,
# so that tests can state any GPU. PyTorch's ROCm build names AMD GPUs "cuda" too, but its
# `get_device_capability` is not an NVIDIA compute capability (gfx1100 reads (11, 0), gfx942 (9, 4)): on AMD the
# architecture name ("gfx1100") is what counts.
NVIDIA, AMD = "nvidia", "amd"


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as the code decides on it: `vendor` NVIDIA or AMD, its `name`, NVIDIA's compute `capability`
    (None on AMD) and AMD's `arch` (the gfx name without feature flags, "gfx1100"; None on NVIDIA)."""

    vendor: str
    name: str
    capability: tuple[int, int] | None = None
    arch: str | None = None

    @property
    def is_amd(self) -> bool:
        return self.vendor == AMD

    def describe(self) -> str:
        """What the GPU is, as the messages name it: "compute capability 7.5" or "gfx1030"."""
        if self.is_amd:
            return self.arch or "unknown AMD architecture"
        major, minor = self.capability or (0, 0)
        return f"compute capability {major}.{minor}"


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


# The current CUDA device, as torch.cuda's functions read a device without an index: what a question about "the GPU"
# asks by default, and which `on_device` sets.
CURRENT_GPU = torch.device("cuda")


def on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Make `device` the current CUDA device while inside (nothing off CUDA). Triton launches a kernel on the current
    device and torch's default streams are per device: a pipeline on `cuda:1` whose tensors live there would launch
    its kernels on `cuda:0` otherwise. Plain `cuda` is the current device already."""
    return torch.cuda.device(device) if device.type == "cuda" and device.index is not None else contextlib.nullcontext()


def rocm_build() -> bool:
    """Whether this torch is PyTorch's ROCm build (its "cuda" devices are AMD GPUs)."""
    return torch.version.hip is not None


def gpu_facts(device: torch.device | int) -> GpuFacts:
    """The facts of GPU `device`, which this machine must have."""
    name = torch.cuda.get_device_name(device)
    if rocm_build():  # gcnArchName carries feature flags: "gfx90a:sramecc+:xnack-"
        arch = torch.cuda.get_device_properties(device).gcnArchName.split(":")[0]
        return GpuFacts(AMD, name, arch=arch)
    return GpuFacts(NVIDIA, name, capability=tuple(torch.cuda.get_device_capability(device)))


def _built_arch(arch: str) -> tuple[str, int]:
    """ "sm_86" -> ("sm", 86), "compute_120" -> ("compute", 120); "sm_90a", "sm_100f": variants of 9.0 and 10.0."""
    kind, _, number = arch.partition("_")
    return kind, int(number.rstrip("af"))


def build_runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a CUDA build compiled for `arch_list` (`torch.cuda.get_arch_list()`) has code for a GPU of compute
    `capability`, by NVIDIA's rules: a cubin for X.Y runs on X.Z for Z >= Y (the same major only), PTX for X.Y is
    compiled by the driver for X.Y and every later GPU."""
    major, minor = capability
    for kind, built in map(_built_arch, arch_list):
        if kind == "sm" and built // 10 == major and built % 10 <= minor:
            return True
        if kind == "compute" and built <= 10 * major + minor:
            return True
    return False


# `pip install torch` gives a build for CUDA 12.8 or later, which starts at Turing (7.5); PyTorch's CUDA 12.6 builds
# still have Maxwell, Pascal and Volta. Blackwell (10.0, 12.0: B200, RTX 50xx) came with torch 2.7's CUDA 12.8 builds.
_OLDER_GPU_BUILD = "https://download.pytorch.org/whl/cu126"
_NEWER_GPU_BUILD = "https://download.pytorch.org/whl/cu128"


def lacking_gpu_note(gpu: GpuFacts, arch_list: list[str], cuda: str | None, version: str) -> str | None:
    """Why this PyTorch build (`version`, CUDA `cuda`, compiled for `arch_list`) cannot run on NVIDIA `gpu`, and
    which build can, else None. Without it every GPU operation fails at the first step with CUDA's "no kernel image
    is available for execution on the device": an RTX 50xx under a build before CUDA 12.8, a GTX 10xx under the
    builds for CUDA 12.8 and later."""
    if gpu.capability is None or not arch_list or build_runs_on(gpu.capability, arch_list):
        return None
    if gpu.capability < divmod(min(built for _, built in map(_built_arch, arch_list)), 10):
        fix = "PyTorch's builds for CUDA 12.6 still have it: pip install --force-reinstall torch --index-url "
        fix += _OLDER_GPU_BUILD
    else:
        fix = (
            "install a PyTorch built for it (Blackwell, RTX 50xx and B200, needs torch 2.7 or newer built for CUDA "
            f"12.8 or later): pip install --force-reinstall -U torch --index-url {_NEWER_GPU_BUILD}"
        )
    return (
        f"{gpu.name} ({gpu.describe()}) has no code in this PyTorch build (torch {version}, CUDA {cuda}, built for "
        f'{" ".join(arch_list)}), so every GPU operation would fail ("no kernel image is available"); {fix}; '
        f"or run on the CPU: {USE_THE_CPU}"
    )


def torch_build_gpu_problem(device: torch.device) -> str | None:
    """`lacking_gpu_note` for CUDA `device` under the installed torch (None on ROCm: no NVIDIA architectures)."""
    arch_list = torch.cuda.get_arch_list() if not rocm_build() else []
    if not arch_list:  # a CPU build, ROCm, or a build that does not say: nothing to check
        return None
    return lacking_gpu_note(gpu_facts(device), arch_list, torch.version.cuda, torch.__version__)


def gpu_platform() -> str:
    """The GPU software this torch was built for, as `check` names it: "CUDA 12.8", "ROCm 6.4.43482" or none."""
    if rocm_build():
        return f"ROCm {torch.version.hip}"
    return f"CUDA {torch.version.cuda or 'none in this build'}"


# bfloat16 has tensor cores from compute capability 8.0 (Ampere: RTX 30xx, A100) on. Before that (RTX 20xx,
# GTX 16xx and 10xx, T4, V100) its matrix multiplies run without tensor cores, and SDPA's memory-efficient and flash
# kernels take no bfloat16 there: attention falls to the math kernel, whose memory grows with the square of the
# tokens.
BF16_CAPABILITY = (8, 0)
# AMD GPUs without bfloat16 arithmetic (AMD's HIP hardware feature table): RDNA 1 and 2 (gfx10xx: RX 5000 and
# 6000), Vega and MI50/MI60 (gfx900-gfx906), Polaris (gfx8xx). bf16 there is emulated, and Triton can fail to
# compile a bf16 dot for them. MI100 (gfx908) and later CDNA, and RDNA 3 (gfx11xx) and later, have it.
AMD_WITHOUT_BF16 = ("gfx8", "gfx900", "gfx902", "gfx904", "gfx906", "gfx909", "gfx90c", "gfx10")


def has_bf16_matrix_cores(gpu: GpuFacts) -> bool:
    """Whether bfloat16 runs at this GPU's speed (tensor cores on NVIDIA, matrix/WMMA instructions on AMD)."""
    if gpu.is_amd:
        return gpu.arch is not None and not gpu.arch.startswith(AMD_WITHOUT_BF16)
    return gpu.capability is not None and gpu.capability >= BF16_CAPABILITY


# NVIDIA GPUs without bf16 tensor cores whose fp16 is no good default either, where ComfyUI computes in float32
# (comfy/model_management.py, `should_use_fp16`): the GTX 16xx family (TU116/TU117: compute capability 7.5 like a
# T4, with FP16 units in place of tensor cores), whose fp16 gives NaN there ("FP16 is just broken on these cards";
# the names are ComfyUI's list), and GPUs before 7.0 (Pascal: GTX 10xx, P100, P40), where ComfyUI finds fp32 faster
# on Linux (a GTX 10xx does fp16 arithmetic at 1/64 of its fp32 rate).
FP16_FAULTY_NAMES = ("1660", "1650", "1630", "T500", "T550", "T600", "MX550", "MX450", "CMP 30HX", "T1000", "T1200",
                     "T2000")  # fmt: skip
FP16_CAPABILITY = (7, 0)


def fp16_problem(gpu: GpuFacts) -> str | None:
    """Why fp16 is a poor default on NVIDIA `gpu` (`FP16_FAULTY_NAMES`, or before compute capability 7.0), else
    None (AMD GPUs: nothing known against it)."""
    if gpu.is_amd or gpu.capability is None:
        return None
    if any(name in gpu.name for name in FP16_FAULTY_NAMES):
        return "a GTX 16xx-class GPU, whose fp16 gives NaN in other tools (ComfyUI computes in fp32 there)"
    if gpu.capability < FP16_CAPABILITY:
        return f"{gpu.describe()}, where fp16 is slow (ComfyUI computes in fp32 there)"
    return None


def default_dtype(device: torch.device | None) -> tuple[torch.dtype, str]:
    """The compute dtype when the user names none, and why in words: float16 on a GPU without bfloat16 tensor cores
    (NVIDIA before compute capability 8.0, AMD before RDNA 3 and MI100; its bfloat16 is slow and, on NVIDIA, has
    no memory-efficient attention, see above), but float32 where fp16 is slow or faulty too (`fp16_problem`), else
    bfloat16, the dtype the model was published in. `device` must be one this machine has (its facts are read);
    None stands for a GPU that is not here (a dry run's plan for another machine), which gets bfloat16."""
    if device is None:
        return torch.bfloat16, "the published dtype; a GPU before compute capability 8.0 gets fp16 (not known here)"
    if device.type != "cuda":
        return torch.bfloat16, "the published dtype"
    return default_dtype_of(gpu_facts(device))


def default_dtype_of(gpu: GpuFacts) -> tuple[torch.dtype, str]:
    """`default_dtype` of a GPU by its facts (read here, or by another process: `GpuReading`)."""
    if has_bf16_matrix_cores(gpu):
        return torch.bfloat16, "the published dtype"
    if (problem := fp16_problem(gpu)) is not None:
        return torch.float32, f"{gpu.name} has no bf16 tensor cores and is {problem}; --dtype fp16 to override"
    return torch.float16, f"{gpu.name} has no bf16 tensor cores; --dtype bf16 to override"


def dtype_note(device: torch.device, dtype: torch.dtype) -> str | None:
    """Advice when `dtype` is a poor fit for the GPU `device` (bf16 without bf16 tensor cores), else None. Said
    only when bf16 was asked for: such a GPU gets fp16 by default (`default_dtype`)."""
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    gpu = gpu_facts(device)
    if has_bf16_matrix_cores(gpu):
        return None
    bf16 = (
        f"{gpu.name} ({gpu.describe()}) has no bfloat16 tensor cores: "
        "in bf16 the matrix multiplies run without them (several times slower) and attention has no "
        "memory-efficient bf16 kernel there: its memory grows with the square of the tokens, which the memory plan "
        "does not count (at 832x480x65 the DDT decoder's scores over 53,040 tokens alone would be 63 GiB). "
    )
    if (problem := fp16_problem(gpu)) is not None:
        return bf16 + f"fp32, what a run here uses when no dtype is given (it is {problem}), is safe"
    return bf16 + (
        'fp16, what a run here uses when no dtype is given (--dtype fp16, in Python dtype="fp16"), runs at this GPU\'s '
        "speed, but float16's range is narrower than the model was published in and fp16 has not been checked on "
        "the real weights (a run that overflows stops at that step and says so); --dtype fp32 is safe, slower and "
        "twice the memory"
    )


# Triton's compiler targets NVIDIA GPUs of compute capability 7.0 (Volta) and later: PyTorch's inductor refuses
# older ones for that reason (torch._inductor.exc.GPUTooOldForTriton). Pascal (6.x: GTX 10xx, P100, P40) also gives a
# block at most 48 KiB of shared memory, and our 16-bit attention's one tile that fits Turing asks for 64 KiB there
# (compiled for sm_61). So such a GPU runs torch's ops, which are the same math.
TRITON_CAPABILITY = (7, 0)


def triton_gpu_blocker(capability: tuple[int, int]) -> str | None:
    """Why Triton's kernels (and `torch.compile`'s, which are Triton's) cannot run on an NVIDIA GPU of compute
    `capability`, or None where they can."""
    if tuple(capability) >= TRITON_CAPABILITY:
        return None
    major, minor = capability
    return f"Triton builds kernels for compute capability 7.0 (Volta) and later, and this GPU is {major}.{minor}"


# 8-bit attention (`motif_lite.kernels.attention_int8`): INT8 QKᵀ needs INT8 tensor cores as Triton uses them
# (NVIDIA compute capability 8.0+: Triton 3.9 cannot compile an INT8 `tl.dot` for sm_75, though Turing has INT8
# tensor cores), FP8 e4m3 P·V FP8 ones (8.9+: Ada, Hopper and later).
INT8_CAPABILITY = (8, 0)
FP8_CAPABILITY = (8, 9)


def int8_attention_blocker(gpu: GpuFacts) -> str | None:
    """Why the 8-bit attention kernel cannot run on `gpu` (to follow "--attention int8 " or "int8 attention: "),
    or None where it can. Not on AMD GPUs: Triton's AMD backend has INT8 dots on some architectures, but the kernel
    was written, tuned and checked on NVIDIA's tensor cores only and has never run on an AMD GPU, so exact
    attention, which PyTorch runs there, is the safe choice."""
    if gpu.is_amd:
        return f"has not been checked on AMD GPUs ({gpu.name}, {gpu.describe()}), which run exact attention"
    if gpu.capability is None or gpu.capability < INT8_CAPABILITY:
        major, minor = gpu.capability or (0, 0)
        turing = " (Triton cannot compile an INT8 dot for Turing's)" if gpu.capability == (7, 5) else ""
        return (
            f"needs INT8 tensor cores as Triton uses them, from compute capability 8.0 (Ampere) on{turing}, but "
            f"{gpu.name} is {major}.{minor}"
        )
    return None


def has_fp8_pv(gpu: GpuFacts) -> bool:
    """Whether the 8-bit attention's P·V runs in FP8 e4m3 on `gpu`. Never on AMD (no NVIDIA capability): RDNA 3
    has no FP8, MI300 (gfx942) has only the FNUZ variant (Triton emulates e4m3fn there with fp16), and nothing here
    has checked the architectures that have it; 16-bit P·V is the safe choice."""
    return gpu.capability is not None and gpu.capability >= FP8_CAPABILITY


# Exact attention kernels that exist for NVIDIA GPUs only: cuDNN's (ROCm builds of PyTorch have no cuDNN) and
# FlashAttention-3 (a Hopper kernel). On AMD, SDPA's flash and memory-efficient kernels (AOTriton, on the
# architectures it was built for) and the math kernel are what PyTorch offers.
NVIDIA_ONLY_ATTENTION = ("cudnn", "fa3")


def nvidia_only_attention(name: str, gpu: GpuFacts) -> bool:
    """Whether the exact attention backend `name` cannot be on offer on `gpu`: an NVIDIA-only kernel on AMD."""
    return gpu.is_amd and name in NVIDIA_ONLY_ATTENTION


def slow_before_ampere(name: str, gpu: GpuFacts) -> bool:
    """Whether `auto` should leave the attention backend `name` out of its trial on `gpu`: our Triton kernel on an
    NVIDIA GPU before compute capability 8.0 (Turing: RTX 20xx, T4). Triton has no tensor-core dots there (its
    compiled attention runs on the CUDA cores, where SDPA's kernels use the tensor cores) and compiling it takes
    40-120 s per shape (tests/test_kernels_compile.py), so a trial would spend minutes to lose. `--attention-backend
    triton` still runs it."""
    return name == "triton" and not gpu.is_amd and gpu.capability is not None and gpu.capability < (8, 0)


# Why `--kernels auto` runs torch's ops on a ROCm build: Triton has an AMD backend, but motif-lite's kernels were
# tuned and checked on NVIDIA GPUs only, and a kernel Triton cannot compile for an AMD architecture can end the
# process (an LLVM error) before any fallback could run torch's version.
AMD_TRITON_REASON = "not checked on AMD GPUs; --kernels triton tries them"


def amd_gpu_note(gpu: GpuFacts) -> str:
    """What `motif-lite check` says of an AMD GPU: that nothing has run on one, and what a run decides there."""
    return (
        f"{gpu.name} ({gpu.describe()}) is an AMD GPU (PyTorch's ROCm build), on which motif-lite has never run: "
        "runs there use torch's ops unless --kernels triton, exact attention for --attention int8 (never FP8), "
        "and no cuDNN or FA3 attention"
    )


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
