"""`--dtype` names -> `torch.dtype` (`torch_dtype`), the dtypes the Python API takes (`checked_dtype`), and the
dtypes a run picks itself: `default_dtype` is the compute dtype when the user names none (float16 on a GPU before
compute capability 8.0, float32 on the GTX 16xx and before 7.0, else bfloat16), `text_encoder_dtype` the text
encoder's; `dtype_note` says when a dtype the user named is a poor fit for a GPU (bfloat16 before compute
capability 8.0).
"""

from __future__ import annotations

import torch

from motif_lite.errors import ConfigError
from motif_lite.gpus import GpuFacts, gpu_facts, has_bf16_matrix_cores

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
    no memory-efficient attention: `gpus.BF16_CAPABILITY`), but float32 where fp16 is slow or faulty too
    (`fp16_problem`), else bfloat16, the dtype the model was published in. `device` must be one this machine has
    (its facts are read); None stands for a GPU that is not here (a dry run's plan for another machine), which gets
    bfloat16."""
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
