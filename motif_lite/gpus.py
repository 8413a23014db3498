"""What a GPU is, as the code decides on it (`GpuFacts`, which `gpu_facts` reads from torch), and what it can run:
bf16 at its speed, Triton's kernels, 8-bit attention, FP8, NVIDIA-only attention kernels. `rocm_build` and
`gpu_platform` say which GPU software this torch was built for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
