"""Device names -> `torch.device`, with one clear error when the device cannot be used here.

`parse_device` reads a name ("auto" included) for plans, which may be made for a device this machine lacks;
`resolve_device` and `checked_device` also require that the device runs here (a CUDA device torch sees, and a torch
build with code for it). What a GPU is and what it can run: `motif_lite.gpus`; its memory: `motif_lite.gpu_memory`;
the compute dtypes: `motif_lite.dtypes`.

torch reports a missing GPU in several ways (an AssertionError from a CPU-only build, a RuntimeError about the
NVIDIA driver, an invalid device ordinal); the loaders call `checked_device` first so that users get one message.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

import torch

from motif_lite.choices import chosen_gpus_command, gpu_numbers, is_list
from motif_lite.errors import Audience, DeviceError, Spelling, both_spellings
from motif_lite.gpus import GpuFacts, gpu_facts, rocm_build

# The CPU as the device setting names it; no field of the server's API picks a device: a server's is its operator's
# `serve --device`.
CPU_DEVICE = Spelling("--device cpu", 'device="cpu"', "--device cpu")
USE_THE_CPU = CPU_DEVICE.to(Audience.RUN_OR_PYTHON)


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


# The current CUDA device, as torch.cuda's functions read a device without an index: what a question about "the GPU"
# asks by default, and which `on_device` sets.
CURRENT_GPU = torch.device("cuda")


def on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Make `device` the current CUDA device while inside (nothing off CUDA). Triton launches a kernel on the current
    device and torch's default streams are per device: a pipeline on `cuda:1` whose tensors live there would launch
    its kernels on `cuda:0` otherwise. Plain `cuda` is the current device already."""
    return torch.cuda.device(device) if device.type == "cuda" and device.index is not None else contextlib.nullcontext()


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
