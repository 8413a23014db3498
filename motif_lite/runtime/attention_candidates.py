"""The attention backends that `--attention-backend` names and `auto` times (runtime/attention.py says how each
one takes masks and where it runs): PyTorch's SDPA, SDPA restricted to one kernel, our Triton kernel and
FlashAttention-3 (`candidate`), and the candidates `auto` times on a GPU (`auto_candidates`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from motif_lite.choices import ATTENTION_BACKENDS
from motif_lite.devices import CURRENT_GPU
from motif_lite.errors import ConfigError
from motif_lite.gpus import GpuFacts, nvidia_only_attention, slow_before_ampere
from motif_lite.model.ops import AttentionFn, MaskForm, sdpa_attention
from motif_lite.runtime.attention_choices import FA3_MODULE
from motif_lite.runtime.attention_masks import KeyLengths, attend_by_rows
from motif_lite.runtime.kernels import FallbackOp, triton_cannot_build

_SDPA_KERNELS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
_NO_MASK = ("flash", "cudnn")  # masked calls go row by row over each row's valid keys


class OneSdpaKernel:
    """SDPA restricted to one kernel; with `split_masked`, masked calls go row by row (`attend_by_rows`)."""

    def __init__(self, kernel: SDPBackend, split_masked: bool) -> None:
        self.kernel, self.split_masked = kernel, split_masked
        self.key_lengths = KeyLengths()

    @property
    def mask_form(self) -> MaskForm:
        """SDPA's own masks (additive); row splits count a bool mask's valid keys."""
        return "bool" if self.split_masked else "additive"

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None and self.split_masked:
            return attend_by_rows(self, q, k, v, mask, self.key_lengths)
        with sdpa_kernel(self.kernel):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def end_run(self) -> None:
        """`model.ops.KeepsPerRun`: let the run's masks go."""
        self.key_lengths.clear()


def triton_attention(strict: bool = False, device: torch.device = CURRENT_GPU) -> AttentionFn:
    """Our dense Triton kernel, falling back to SDPA (with a warning) off-CUDA or if it fails, or with `strict`
    (`--kernels triton`) failing the run; ConfigError where Triton cannot be imported (e.g. not installed) or cannot
    build kernels here (`triton_cannot_build`: compiling for a GPU its LLVM has no target for aborts the process,
    which no fallback catches; no C compiler for its launcher)."""
    try:
        from motif_lite.kernels.attention import attention
    except Exception as exc:  # ImportError, or a triton install that fails at import
        raise ConfigError(
            f"--attention-backend triton needs Triton, which cannot be imported here ({type(exc).__name__}: {exc}); "
            "choose auto to time what runs here, or sdpa"
        ) from None
    if torch.cuda.is_available() and (problem := triton_cannot_build(device)) is not None:
        raise ConfigError(f"--attention-backend triton is our Triton kernel: {problem}; or choose auto or sdpa")
    return FallbackOp("attention", attention, sdpa_attention, strict=strict)


def _import_fa3() -> tuple[ModuleType | None, str | None]:
    """FlashAttention-3's package and None where it imports, else None and why not."""
    try:
        return importlib.import_module(FA3_MODULE), None
    except Exception as exc:  # not installed, or an extension that fails as it loads (built for another torch or CUDA)
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"


def fa3_module() -> ModuleType | None:
    """FlashAttention-3's package where it is installed and imports, else None."""
    return _import_fa3()[0]


def fa3_attention() -> AttentionFn:
    """FlashAttention-3's `flash_attn_func` behind our [B, H, L, D] seam; ConfigError where it does not import."""
    fa3, why_not = _import_fa3()
    if fa3 is None:
        raise ConfigError(
            f"--attention-backend fa3 needs FlashAttention-3's {FA3_MODULE} package (Hopper GPUs; built from the "
            f"hopper/ folder of github.com/Dao-AILab/flash-attention), which cannot be imported here ({why_not}); "
            "choose auto to time what is installed"
        )
    return FA3Attention(fa3)


class FA3Attention:
    """FlashAttention-3's `flash_attn_func` (of the imported `fa3` package) behind our [B, H, L, D] seam; masked
    calls go row by row over each row's valid keys (`attend_by_rows`: FA3 takes no mask)."""

    def __init__(self, fa3: ModuleType) -> None:
        self.fa3, self.key_lengths = fa3, KeyLengths()

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:
            return attend_by_rows(self, q, k, v, mask, self.key_lengths)
        # [B, H, L, D] -> FA3's [B, L, H, D] as views: it takes any strides with contiguous head dims
        out = self.fa3.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        if isinstance(out, tuple):  # releases differ: some return (out, softmax_lse)
            out = out[0]
        return out.transpose(1, 2)  # [B, L, H, D] -> [B, H, L, D]; merge_heads transposes it back for free

    def end_run(self) -> None:
        """`model.ops.KeepsPerRun`: let the run's masks go."""
        self.key_lengths.clear()


def candidate(name: str, strict: bool = False, device: torch.device = CURRENT_GPU) -> AttentionFn:
    """The attention function of one fixed backend on `device`; `strict`: our Triton kernel never falls back."""
    if name == "sdpa":
        return sdpa_attention
    if name == "triton":
        return triton_attention(strict, device)
    if name == "fa3":
        return fa3_attention()
    if name in _SDPA_KERNELS:
        return OneSdpaKernel(_SDPA_KERNELS[name], split_masked=name in _NO_MASK)
    raise unknown_backend(name)


def unknown_backend(name: str) -> ConfigError:
    """The one error for a backend name we do not know, raised by `candidate` and `attention_backend`."""
    return ConfigError(f"unknown attention backend {name!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")


def auto_candidates(
    triton_ok: bool, gpu: GpuFacts | None = None, device: torch.device = CURRENT_GPU
) -> dict[str, AttentionFn]:
    """PyTorch's own pick (the baseline `auto` can only beat), each SDPA kernel, our Triton kernel, and
    FlashAttention-3 where it is installed; on an AMD `gpu` none of NVIDIA's own kernels (cuDNN, FA3), which a
    trial would only time out as failures, and before Ampere not our Triton kernel (`slow_before_ampere`). Our
    Triton kernel is strict: where it fails, the trial (or the check of a remembered choice) sees the failure and
    drops it, rather than timing its SDPA fallback under its name and trying the kernel again on every call (a
    failure after the trial chose it is `AutoAttention`'s to handle, as any candidate's)."""
    names = ["sdpa", *_SDPA_KERNELS, *(["triton"] if triton_ok else []), *(["fa3"] if fa3_module() else [])]
    if gpu is not None:
        names = [name for name in names if not nvidia_only_attention(name, gpu) and not slow_before_ampere(name, gpu)]
    return {name: candidate(name, strict=True, device=device) for name in names}
