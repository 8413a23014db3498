"""Choose the implementation behind the model's `Ops` seams and the quantized linears.

    ops = select_ops("auto")                          # Triton on CUDA when importable, else the torch references
    apply_kernels(model, "auto")                      # model.ops = ..., and QuantizedLinear.kernel on every layer
    apply_kernels(model, "auto", SparsityConfig(latent_frames=31, window=2))   # opt-in sparse DDT decoder

Every Triton op falls back to its torch reference, with one warning per op, on non-CUDA inputs or when the
kernel raises: a missing or broken Triton never stops a run.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from motif_lite.choices import KERNEL_BACKENDS
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.kernels import patterns
from motif_lite.kernels.reference import block_sparse_attention_torch, dequant_linear_torch
from motif_lite.model.ops import TORCH_OPS, Ops

BACKENDS = KERNEL_BACKENDS


class KernelBackendError(MotifLiteError, RuntimeError):
    """The requested kernel backend cannot run on this machine."""


@dataclass(frozen=True)
class SparsityConfig:
    """Opt-in (lossy) block-sparse attention for the DDT decoder's 2N tokens: each token sees the latent
    frames within `window` of its own, in both copies; the first frame stays global if `global_first_frame`.
    `latent_frames` = (video frames - 1) / 4 + 1 of the run."""

    latent_frames: int
    window: int = 1
    global_first_frame: bool = True
    block_size: int = 128

    def __post_init__(self) -> None:
        if self.latent_frames < 1 or self.window < 0:
            raise ConfigError(f"SparsityConfig: need latent_frames >= 1 and window >= 0, got {self}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ConfigError(f"SparsityConfig: block_size must be a power of two >= 16, got {self.block_size}")


class FallbackOp:
    """Runs `kernel` when every tensor argument is on CUDA; otherwise, or if the kernel raises, runs
    `reference` and warns once (the flag lives on this object)."""

    def __init__(self, name: str, kernel: Callable[..., torch.Tensor], reference: Callable[..., torch.Tensor]):
        self.name, self.kernel, self.reference = name, kernel, reference
        self.warned = False

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if all(t.is_cuda for t in tensors):
            try:
                return self.kernel(*args, **kwargs)
            except Exception as exc:  # any kernel failure: the reference still gives the right answer
                reason = f"the kernel failed ({type(exc).__name__}: {exc})"
        else:
            reason = "the inputs are not CUDA tensors"
        if not self.warned:
            self.warned = True
            warnings.warn(f"motif-lite: Triton {self.name} falls back to torch: {reason}", RuntimeWarning, stacklevel=2)
        return self.reference(*args, **kwargs)


class SparseDecoderAttention:
    """`Ops.decoder_attention` with a local-temporal block mask built for the call's 2N length (cached)."""

    def __init__(self, config: SparsityConfig, attend: Callable[..., torch.Tensor]):
        self.config, self.attend = config, attend
        self._cached: tuple[tuple, torch.Tensor] | None = None  # ((length, device), block mask)

    def block_mask(self, length: int, device: torch.device) -> torch.Tensor:
        cfg = self.config
        if length % 2 or (length // 2) % cfg.latent_frames:
            raise ConfigError(
                f"SparsityConfig: decoder attention over {length} tokens is not 2 x {cfg.latent_frames} latent "
                "frames x tokens per frame; set latent_frames to this video's latent frame count"
            )
        if self._cached is None or self._cached[0] != (length, device):
            tokens_per_frame = length // 2 // cfg.latent_frames
            mask = patterns.ddt_decoder_local_temporal(
                cfg.latent_frames, tokens_per_frame, cfg.window, cfg.global_first_frame, cfg.block_size
            ).mask
            self._cached = ((length, device), mask.to(device))
        return self._cached[1]

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        block_mask = self.block_mask(q.shape[2], q.device)
        return self.attend(q, k, v, mask, block_mask, self.config.block_size)


def _triton_import_error() -> str | None:
    """Why the kernel modules cannot be imported, or None when they can."""
    try:
        for name in ("attention", "norm", "dequant_matmul"):
            importlib.import_module(f"motif_lite.kernels.{name}")
    except Exception as exc:  # ImportError, or a triton install that fails at import
        return f"{type(exc).__name__}: {exc}"
    return None


def use_triton(backend: str) -> bool:
    """Resolve a backend name: True for Triton kernels, False for the torch references."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch" or (backend == "auto" and not torch.cuda.is_available()):
        return False
    if not torch.cuda.is_available():
        raise KernelBackendError("kernel backend 'triton' is not possible here: no CUDA device; use 'auto' or 'torch'")
    error = _triton_import_error()
    if error is None:
        return True
    if backend == "triton":
        raise KernelBackendError(f"kernel backend 'triton' is not possible here: triton cannot be imported ({error})")
    warnings.warn(
        f"motif-lite: Triton kernels unavailable ({error}); using the torch ops", RuntimeWarning, stacklevel=2
    )
    return False


def triton_ops() -> Ops:
    """The Triton `Ops`, whatever the device: each op still falls back to torch per call off-CUDA.

    Dense attention stays on PyTorch's SDPA: on an H100 it measured 585 TFLOP/s against 348 for our dense
    Triton kernel (docs/benchmarks.md); our kernel earns its place only with a block mask (`SparsityConfig`).
    """
    from motif_lite.kernels import norm  # imported only once triton is known to work

    return Ops(
        attention=TORCH_OPS.attention,
        decoder_attention=TORCH_OPS.decoder_attention,
        layer_norm_modulate=FallbackOp("layer_norm_modulate", norm.layer_norm_modulate, TORCH_OPS.layer_norm_modulate),
        rms_norm_rope=FallbackOp("rms_norm_rope", norm.rms_norm_rope, TORCH_OPS.rms_norm_rope),
    )


def select_ops(backend: str = "auto", sparse: SparsityConfig | None = None) -> Ops:
    """The `Ops` for a backend ("auto": Triton on CUDA when importable, else torch; "torch"; "triton"),
    with the DDT decoder attention made block-sparse when `sparse` is given."""
    triton_on = use_triton(backend)
    ops = triton_ops() if triton_on else TORCH_OPS
    if sparse is None:
        return ops
    attend = block_sparse_attention_torch
    if triton_on:
        from motif_lite.kernels.attention import block_sparse_attention

        attend = FallbackOp("sparse attention", block_sparse_attention, block_sparse_attention_torch)
    return dataclasses.replace(ops, decoder_attention=SparseDecoderAttention(sparse, attend))


def _quantized_linear_class() -> type | None:
    try:
        module = importlib.import_module("motif_lite.weights.quant_linear")
    except ModuleNotFoundError as exc:
        if exc.name != "motif_lite.weights.quant_linear":
            raise
        return None
    return module.QuantizedLinear


def apply_kernels(
    model: nn.Module, backend: str = "auto", sparse: SparsityConfig | None = None, triton_dequant: bool = True
) -> nn.Module:
    """Set `model.ops` and the `kernel` of every `QuantizedLinear` in `model` for `backend`; returns `model`.

    With Triton, quantized layers run `dequant_matmul` (unless `triton_dequant=False`): a one-pass Triton
    dequantization of the packed blocks into a transient bf16 weight + cuBLAS from 256 tokens up (within 1.07x of
    the bf16 GEMM at 16k+ tokens on an H200), the fused dequant-GEMM kernel below. Without it, each layer's own
    torch dequantization runs (1.2-2x slower at video token counts, docs/benchmarks.md)."""
    if not hasattr(model, "ops"):
        raise ConfigError(f"apply_kernels: {type(model).__name__} has no `ops` attribute (expected the transformer)")
    model.ops = select_ops(backend, sparse)
    return apply_dequant_kernels(model, backend if triton_dequant else "torch")


def apply_dequant_kernels(model: nn.Module, backend: str = "auto") -> nn.Module:
    """Set the `kernel` of every `QuantizedLinear` in any module (the transformer, the text encoder) for `backend`:
    the Triton `dequant_matmul` (with its torch fallback) when Triton runs, else none (each layer's own torch
    dequantization). Returns `model`."""
    linear_cls = _quantized_linear_class()
    if linear_cls is None:
        return model
    kernel = None
    if use_triton(backend):
        from motif_lite.kernels.dequant_matmul import dequant_matmul

        kernel = FallbackOp("dequant_matmul", dequant_matmul, dequant_linear_torch)
    for module in model.modules():
        if isinstance(module, linear_cls):
            module.kernel = kernel
    return model
