"""The machine: torch, the GPU and its free memory, Triton, ffmpeg. What is missing limits a run, so it is a
warning; a GPU the installed PyTorch has no code for is a problem (a run there, the default, fails)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from motif_lite.checkup.report import Checkup, first_line
from motif_lite.devices import no_gpu_reason, present_accelerator, torch_build_gpu_problem, unused_accelerator_note
from motif_lite.dtypes import default_dtype, fp16_problem
from motif_lite.errors import MotifLiteError
from motif_lite.gpu_memory import GpuUse, held_gpu_fix
from motif_lite.gpus import (
    AMD_TRITON_REASON,
    GpuFacts,
    amd_gpu_note,
    gpu_facts,
    gpu_platform,
    has_bf16_matrix_cores,
    rocm_build,
)
from motif_lite.io.cache_folders import cache_folders, nearest_existing, triton_tilde
from motif_lite.io.wsl import is_wsl, wsl_driver_problem
from motif_lite.runtime.host_memory import total_ram
from motif_lite.runtime.memory_limit import MemoryLimit, memory_limit
from motif_lite.units import file_size, memory_size


def check_environment(report: Checkup) -> None:
    report.ok("torch", f"{torch.__version__} ({gpu_platform()})")
    _check_wsl(report)
    _check_memory_limit(report, memory_limit())
    _check_gpu(report)
    _check_triton(report)
    _check_ffmpeg(report)
    _check_caches(report)


def _check_wsl(report: Checkup) -> None:
    """Under WSL2: say so, with the VM's memory and where its size is set (runs need ~8-12 GiB of it)."""
    if not is_wsl():
        return
    total = total_ram()
    memory = "" if total is None else f"; this VM has {memory_size(total)} of memory"
    report.ok(
        "WSL2",
        f"Linux under Windows{memory} (by default half of the machine's; %UserProfile%\\.wslconfig sets it: "
        '[wsl2] memory=...); keep the weights under the Linux home, not on /mnt/c (docs/usage.md, "Under WSL2 '
        '(Windows)")',
    )


def _check_memory_limit(report: Checkup, limit: MemoryLimit | None) -> None:
    """Under a cgroup memory limit (a container's, a Slurm job's): say it, since /proc/meminfo, `free` and `top`
    show the whole machine's memory there, and a process past the limit is killed without a word. A warning
    where the limit leaves less than the smallest run needs as it loads (`smallest_run_host_bytes`, on the device
    runs use here): no run fits. Each run's own plan then says exactly how much it needs."""
    from motif_lite.memory_plan import SMALLEST_TYPES, smallest_run_host_bytes

    if limit is None:
        return
    total = total_ram()
    machine = "" if total is None else f" of this machine's {memory_size(total)}"
    said = (
        f"{memory_size(limit.limit_bytes)}{machine} (cgroup v{limit.version}: this container's or job's), "
        f"{memory_size(limit.available_bytes)} of it available now"
    )
    floor = smallest_run_host_bytes("cuda" if torch.cuda.is_available() else "cpu")
    if limit.available_bytes < floor:
        types = ", the text encoder in ".join(SMALLEST_TYPES.values())
        report.warning(
            "memory limit",
            f"{said}: a run is likely killed by the out-of-memory killer as it loads (the smallest, one 64x64 frame "
            f"with the transformer in {types}, needs about {memory_size(floor)}); stop other processes under the "
            "limit or raise it (docker run --memory, Kubernetes resources.limits.memory, Slurm --mem)",
        )
    else:
        report.ok("memory limit", f"{said}: runs plan their host memory within it")


def _check_gpu(report: Checkup) -> None:
    if not torch.cuda.is_available():
        reason = no_gpu_reason()
        if torch.version.cuda is not None and is_wsl():  # what /usr/lib/wsl/lib and the Linux folders say is wrong
            reason += f"; {wsl_driver_problem()}"
        if (other := unused_accelerator_note(present_accelerator())) is not None:  # a Mac's GPU: why it is not used
            reason += f"; {other}"
        report.warning(
            "GPU",
            f"none usable ({reason}): runs use the CPU, which is for tests and tiny sizes (a default 720p video "
            "would take weeks to months); motif-lite run asks before starting anything longer than ~10 minutes",
        )
        return
    for index in range(torch.cuda.device_count()):
        try:  # opens the GPU: refused when another process holds it in exclusive mode or it is full
            free, total = torch.cuda.mem_get_info(index)
        except RuntimeError as exc:  # torch.OutOfMemoryError too
            report.problem(f"GPU cuda:{index}", f"cannot be opened ({first_line(exc)})", held_gpu_fix())
            continue
        name = torch.cuda.get_device_name(index)
        # What nvidia-smi shows too: how much other processes (a desktop, another job) hold, so that a user who sees
        # little free can tell why, and what closing them would give. Reading the memory started CUDA in this process:
        # its context (a few hundred MiB) is among that, said so. Read in a child process instead (as the launcher
        # reads its GPUs), the child's own context would be counted in its place.
        use = GpuUse(total, free, torch.cuda.memory_reserved(index), torch.cuda.memory_allocated(index))
        memory = use.describe("this check")
        if (lacking := torch_build_gpu_problem(torch.device("cuda", index))) is not None:  # every run there fails
            report.problem(f"GPU cuda:{index}", f"{memory}; {lacking}", "install the PyTorch build named above")
            continue
        gpu = gpu_facts(index)
        notes = [amd_gpu_note(gpu)] if gpu.is_amd else []  # nothing has run on an AMD GPU: what a run does there
        if gpu.is_amd and (quadratic := _quadratic_attention_note(torch.device("cuda", index), gpu)) is not None:
            notes.append(quadratic)
        if not has_bf16_matrix_cores(gpu) and (problem := fp16_problem(gpu)) is not None:  # fp32 by default
            notes.append(
                f"{name} ({gpu.describe()}) has no bfloat16 tensor cores and is {problem}: runs here use fp32 unless "
                "--dtype says otherwise (twice fp16's activation memory; --dtype fp16 overrides)"
            )
        elif not has_bf16_matrix_cores(gpu):  # fp16 by default (`dtypes.default_dtype`), unchecked on real weights
            notes.append(
                f"{name} ({gpu.describe()}) has no bfloat16 tensor cores: runs here use fp16 unless --dtype says "
                "otherwise (bf16 would be several times slower, its attention memory growing with the square of the "
                "tokens). fp16 has not been checked on the real weights: a run that overflows stops at that step and "
                "says so; --dtype fp32 is safe, slower and twice the memory"
            )
        if notes:
            report.warning(f"GPU cuda:{index}", "; ".join([memory, *notes]))
        else:
            report.ok(f"GPU cuda:{index}", f"{name}, {memory}")


def _quadratic_attention_note(device: torch.device, gpu: GpuFacts) -> str | None:
    """On an AMD GPU, PyTorch's flash and memory-efficient attention exist only for the architectures its AOTriton
    was built for: without them every attention call holds all its scores, which no memory plan counts, and a
    video of a useful size runs out of memory at its first step, where --vram cannot help."""
    from motif_lite.runtime.attention import linear_memory_attention_missing

    dtype = default_dtype(device)[0]
    if not linear_memory_attention_missing(device, dtype):
        return None
    return (
        f"PyTorch runs neither its flash nor its memory-efficient attention on {gpu.name} ({gpu.describe()}) in "
        f"{str(dtype).removeprefix('torch.')}, so attention falls to a kernel whose memory grows with the square of "
        "the tokens, which the memory plan does not count: only small videos fit (at the official 1280x736x121 one "
        "head's scores in the DDT decoder alone are 97 GiB). On RX 7000 (gfx11xx) some PyTorch releases enable "
        "those kernels with TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL=1; --kernels triton --attention-backend triton "
        "tries motif-lite's own kernel (not checked on AMD GPUs)"
    )


def _check_triton(report: Checkup) -> None:
    """Whether motif-lite's Triton kernels run here. Without a CUDA GPU they never do (the GPU row says why there is
    none): their absence limits nothing more, and "--kernels triton is not possible here; use auto" would advise a
    flag nobody gave. On an AMD GPU `--kernels auto` runs torch's ops even where Triton imports."""
    from motif_lite.runtime.kernels import use_triton

    if not torch.cuda.is_available():
        report.ok("Triton", "not used without a CUDA GPU: the torch ops run (the same math)")
        return
    try:
        use_triton("triton")
    except MotifLiteError as exc:
        report.warning("Triton", f"kernels unavailable, the torch ops run instead ({first_line(exc)})")
        return
    if rocm_build():
        why = f"the kernels are {AMD_TRITON_REASON}"
        report.ok("Triton", f"importable, but runs on an AMD GPU use the torch ops: {why}")
        return
    report.ok("Triton", "kernels importable: fused norms, attention and dequantizing matmuls on the GPU")


def _check_ffmpeg(report: Checkup) -> None:
    from motif_lite.io.ffmpeg import find_ffmpeg

    try:
        path = find_ffmpeg()  # runs `ffmpeg -version`: a path that is set is not yet one that works
    except MotifLiteError as exc:
        report.warning("ffmpeg", f".mp4, .mkv, .mov and .webm output are not possible: {first_line(exc)}")
        return
    report.ok("ffmpeg", f"{path} (.mp4, .mkv, .mov, .webm)")


def _check_caches(report: Checkup) -> None:
    """Where each cache a run writes goes, the free space of its disk and the variable that moves it: on a cluster
    they land in a small home (or a job's temporary directory) unless moved. Free space is the disk's: a quota on
    it (`quota -s`, `lfs quota`) may leave less. One that cannot be written is a warning, except a read-only
    Hugging Face cache (a cluster's shared one), which runs read."""
    home = Path(os.environ["HOME"]).resolve() if os.environ.get("HOME", "/") != "/" else None  # "/": no home
    for cache in cache_folders():
        said = f"{cache.holds}; {cache.variables} moves it"
        instead = f"; {cache.instead}" if cache.instead else ""
        if cache.folder is None:
            report.warning(cache.name, f"none ({cache.refused}){instead}; {said}")
            continue
        if cache.folder.parts[:1] == ("~",):  # Path(".") (a variable set to ".") has no parts
            tilde = triton_tilde(os.environ) if cache.name == "Triton cache" else None
            report.warning(cache.name, f"none: {tilde or 'this user has no home'}, so it would be {cache.folder} "
                                       f"under a folder named '~' here{instead}; {said}")  # fmt: skip
            continue
        disk = nearest_existing(cache.folder.absolute())
        if disk is None or not disk.is_dir() or not os.access(disk, os.W_OK | os.X_OK):
            if cache.read_only_ok:
                read_only = f"read-only: runs read what it holds; a download needs a cache of your own ({said})"
                report.ok(cache.name, f"{cache.folder}, {read_only}")
            else:
                report.warning(cache.name, f"{cache.folder} cannot be written{instead}; {said}")
            continue
        where = f"{cache.folder} ({file_size(shutil.disk_usage(disk).free)} free on its disk"
        if home is not None and disk.resolve().is_relative_to(home):
            where += ", in your home"
        report.ok(cache.name, f"{where}): {said}")
