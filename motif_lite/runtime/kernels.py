"""Choose the implementation behind the model's `Ops` seams and the quantized linears.

    ops = select_ops("auto")                          # Triton on CUDA when importable, else the torch references
    apply_kernels(model, "auto")                      # model.ops = ..., and QuantizedLinear.kernel on every layer
    apply_kernels(model, "auto", SparsityConfig(latent_frames=31, window=2))   # opt-in sparse DDT decoder
    apply_kernels(model, "auto", attention="int8")    # 8-bit attention (lossy, ~2x attention throughput)

With "auto", a Triton op falls back to its torch reference on non-CUDA inputs or when the kernel raises, call by
call (the next call tries the kernel again), with one warning per op and run, and the op remembers it:
`fallbacks(model)` names every op that fell back since `begin_run(model)` (a pipeline calls it as each `generate`
starts, so the run summary and a server job's notes name that run's). With "triton" nothing falls back: a failing
kernel stops the run with its own error. Out of device memory is no kernel failure: it stops the run as
`torch.OutOfMemoryError` in both modes.
8-bit attention falls back to exact attention the same way (the CPU, the torch backend, GPUs without INT8
tensor cores), with one warning for all its seams.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from motif_lite.choices import ATTENTION_MODES, KERNEL_BACKENDS
from motif_lite.config import TransformerConfig
from motif_lite.devices import CURRENT_GPU, on_device
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.gpus import AMD_TRITON_REASON, GpuFacts, rocm_build, triton_gpu_blocker
from motif_lite.io.wsl import libcuda_fix
from motif_lite.kernels import int8_scheme, patterns
from motif_lite.kernels.reference import block_sparse_attention_torch, dequant_linear_torch
from motif_lite.model.ops import TORCH_OPS, Ops
from motif_lite.runtime.activation_memory import OFFICIAL_IMAGE_TOKENS, context_tokens
from motif_lite.runtime.triton_build import launcher_build_problem, windows_install_hint
from motif_lite.weights.quant_linear import QuantizedLinear


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
        if (problem := patterns.block_size_problem(self.block_size)) is not None:
            raise ConfigError(f"SparsityConfig: {problem}")


class KernelFailedError(KernelBackendError):
    """A Triton kernel raised under `--kernels triton` (which never falls back); the kernel's error is the cause."""


class FallbackOp:
    """Runs `kernel` when every tensor argument is on CUDA; otherwise, or if the kernel raises, runs `reference`
    for that call. The first such call of a run warns and keeps its reason in `fallback_reason`
    (`fallback_calls` counts them); `begin_run` starts the next run's record. Nothing else carries over: the
    kernel is tried again at every call, in this run and later ones.

    `strict` (what `--kernels triton` sets): always run the kernel and let its failure stop the run.
    Out of device memory is no kernel failure: `torch.OutOfMemoryError` comes out as it is, strict or not, so that
    the command line and the server recognise it and give their advice.
    """

    def __init__(
        self,
        name: str,
        kernel: Callable[..., torch.Tensor],
        reference: Callable[..., torch.Tensor],
        *,
        strict: bool = False,
    ):
        self.name, self.kernel, self.reference, self.strict = name, kernel, reference, strict
        self.begin_run()

    def begin_run(self) -> None:
        """`RecordsPerRun`: forget the fallbacks of the runs before (their reason, their count)."""
        self.fallback_reason: str | None = None
        self.fallback_calls = 0

    @property
    def warned(self) -> bool:
        return self.fallback_reason is not None

    @staticmethod
    def kernel_can_run(tensors: list[torch.Tensor]) -> bool:
        """Triton kernels take CUDA tensors only."""
        return all(t.is_cuda for t in tensors)

    # Eager even inside a compiled block: the per-call fallback (a try, a device check, one warning) is Python
    # control flow that a compiled graph would not keep. `apply_compile` gives the blocks torch's ops where that
    # would cost fusion (norms, dequantization); what stays behind a FallbackOp there is attention, one call.
    @torch.compiler.disable
    def __call__(self, *args, **kwargs) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        reason = None if self.strict or self.kernel_can_run(tensors) else "the inputs are not CUDA tensors"
        if reason is None:
            try:
                return self._launch(tensors, args, kwargs)
            except torch.OutOfMemoryError:
                raise  # not a kernel failure: the run's out-of-memory advice (the planner's figures) is the answer
            except Exception as exc:
                if self.strict:
                    raise KernelFailedError(
                        f"Triton {self.name} failed ({type(exc).__name__}: {exc}){wsl_fix(exc)}; --kernels triton "
                        "never falls back, --kernels auto would run torch's version of this op instead"
                    ) from exc
                reason = kernel_failed(exc)  # any other kernel failure: the reference still gives the right answer
        self.fallback_calls += 1
        if self.fallback_reason is None:
            self.fallback_reason = reason
            warnings.warn(f"motif-lite: Triton {self.name} falls back to torch: {reason}", RuntimeWarning, stacklevel=2)
        return self.reference(*args, **kwargs)

    def _launch(self, tensors: list[torch.Tensor], args: tuple, kwargs: dict) -> torch.Tensor:
        # Triton launches on the current CUDA device: the inputs' GPU is made current (a model on cuda:1 called
        # directly, outside a pipeline that does it for a whole run).
        with on_device(tensors[0].device) if tensors else contextlib.nullcontext():
            return self.kernel(*args, **kwargs)


def kernel_failed(error: BaseException) -> str:
    """A fallback's reason where the kernel raised `error`: its own error, and the WSL2 fix where one applies."""
    return f"the kernel failed ({type(error).__name__}: {error}){wsl_fix(error)}"


def wsl_fix(error: BaseException) -> str:
    """Under WSL2, the fix for a Triton failure to find the driver's libcuda.so, to follow its error; else ""."""
    fix = libcuda_fix(str(error))
    return f"; {fix}" if fix else ""


@runtime_checkable
class WrapsOps(Protocol):
    """An op that calls other ops (an attention backend, a sparse pattern's kernel) and names them, so that
    `kernel_ops` finds a Triton op behind it and a fallback there reaches `fallbacks` and the run summary."""

    def inner_ops(self) -> list[Callable[..., torch.Tensor]]: ...


@runtime_checkable
class ChoosesKernels(Protocol):
    """An op that runs the kernel it chose among several and, where that kernel failed after being chosen, torch's
    own instead (`--kernels auto`'s attention backend, `runtime.attention.AutoAttention`): it says so in
    `fallbacks()`, {name: first reason} as `fallbacks` gives them, which adds them to its own."""

    def fallbacks(self) -> dict[str, str]: ...


@runtime_checkable
class RecordsPerRun(Protocol):
    """An op whose record of what fell back (`FallbackOp`, `ChoosesKernels`) covers one run: `begin_run` starts
    the next, so that `fallbacks` says what that run did and not what runs before it did on the same model."""

    def begin_run(self) -> None: ...


def _with_inner_ops(ops: list[object]) -> Iterator[object]:
    """`ops`, each followed by the ops it wraps (`WrapsOps`), at any depth."""
    for op in ops:
        yield op
        if isinstance(op, WrapsOps):
            yield from _with_inner_ops(op.inner_ops())


def _installed_ops(model: nn.Module) -> list[object]:
    """Every op installed in `model`: its `Ops`, the ops they wrap (sparse decoder attention, the attention
    backend's candidates), and the `kernel` of its quantized linears (None where they have none)."""
    ops = getattr(model, "ops", None)
    seams = [getattr(ops, f.name) for f in dataclasses.fields(ops)] if dataclasses.is_dataclass(ops) else []
    return [*_with_inner_ops(seams), *(getattr(module, "kernel", None) for module in model.modules())]


def begin_run(model: nn.Module) -> None:
    """Start a new run's record on every op installed in `model` (`RecordsPerRun`): `fallbacks(model)` then names
    what fell back since. What an op learned stays (auto attention's trials, and the kernels it gave up)."""
    for op in {id(op): op for op in _installed_ops(model)}.values():
        if isinstance(op, RecordsPerRun):
            op.begin_run()


def kernel_ops(model: nn.Module) -> list[FallbackOp]:
    """Every Triton op installed in `model` (`_installed_ops`; one entry per distinct op object)."""
    unique = {id(op): op for op in _installed_ops(model) if isinstance(op, FallbackOp)}
    return list(unique.values())


INT8_ATTENTION = "int8 attention"  # the op name of 8-bit attention (its fallback is exact attention, not the same math)
TRITON_KERNELS = "Triton kernels"  # `fallbacks`' name for the whole backend, when "auto" could not use it at all


def fallbacks(model: nn.Module) -> dict[str, str]:
    """{op name: first reason} for every Triton op in `model` that ran torch's version instead since `begin_run`
    (empty: none), and every kernel an op chose that did so after failing (`ChoosesKernels`: auto attention's
    flash, cuDNN, efficient, fa3 or Triton), led by TRITON_KERNELS when its `Ops` are torch's for "auto" on a CUDA
    machine (`Ops.why_torch`, `triton_unavailable`)."""
    ops = {op.name: op.fallback_reason for op in kernel_ops(model) if op.fallback_reason is not None}
    for op in _installed_ops(model):
        if isinstance(op, ChoosesKernels):
            ops.update(op.fallbacks())
    whole = getattr(model, "ops", TORCH_OPS).why_torch  # the transformer has Ops; another module (the text encoder) not
    return {TRITON_KERNELS: whole, **ops} if whole is not None else ops


def triton_unavailable(backend: str, device: torch.device = CURRENT_GPU) -> str | None:
    """Why `backend` runs torch's ops on a CUDA machine although it would run Triton's ("auto" with a triton that
    cannot be imported or is too old for GPU `device`, or on an AMD GPU), else None (Triton runs, or was not wanted:
    "torch", or no CUDA device)."""
    if backend != "auto" or not torch.cuda.is_available():
        return None
    if rocm_build():
        return AMD_TRITON_REASON
    return _triton_problem(device)


class SparseDecoderAttention:
    """`Ops.decoder_attention` with a local-temporal block mask built for the call's 2N keys (cached); a call whose
    queries are the first N tokens only (the decoder's last block) takes the mask's first query tiles."""

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

    @torch.compiler.disable  # eager in compiled blocks: its cached mask, and the torch reference's per-tile loop
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        block_mask = self.block_mask(k.shape[2], q.device)[:, :, : -(-q.shape[2] // self.config.block_size)]
        return self.attend(q, k, v, mask, block_mask, self.config.block_size)

    def inner_ops(self) -> list[Callable[..., torch.Tensor]]:
        """`WrapsOps`: the block-sparse attention it calls."""
        return [self.attend]


def _triton_import_error() -> str | None:
    """Why the kernel modules cannot be imported, or None when they can."""
    try:
        for name in ("attention", "norm", "dequant_matmul"):
            importlib.import_module(f"motif_lite.kernels.{name}")
    except Exception as exc:  # ImportError, or a triton install that fails at import
        windows = windows_install_hint(exc)
        return f"{type(exc).__name__}: {exc}{wsl_fix(exc)}{f'; {windows}' if windows else ''}"
    return None


def _triton_too_old(device: torch.device) -> str | None:
    """Why the installed Triton cannot build our kernels for CUDA GPU `device` (too old for its generation), or
    None. Asked only once triton imports. The GPU asked about, not the current one: a machine may have GPUs of two
    generations, and a run on cuda:1 checks before it makes cuda:1 current (`devices.on_device`)."""
    import triton

    from motif_lite.kernels.launch import BLACKWELL_TRITON, triton_too_old, triton_version

    if device.type != "cuda" or rocm_build() or triton_version(triton.__version__) >= BLACKWELL_TRITON:
        # No GPU to build for (the ops run torch's on CPU tensors); new enough for every NVIDIA generation; an AMD
        # GPU's capability is no NVIDIA one.
        return None
    return triton_too_old(triton.__version__, torch.cuda.get_device_capability(device))


def _gpu_too_old(device: torch.device) -> str | None:
    """Why NVIDIA GPU `device` is older than any GPU Triton builds for (`gpus.triton_gpu_blocker`), or None."""
    if device.type != "cuda" or rocm_build():  # an AMD GPU's capability is no NVIDIA one
        return None
    return triton_gpu_blocker(torch.cuda.get_device_capability(device))


def triton_cannot_build(device: torch.device) -> str | None:
    """Why Triton, importable, cannot build kernels for CUDA GPU `device` (a GPU before Triton's oldest target;
    Triton too old for the GPU, whose compile would abort the process; no C compiler or Python headers for its
    launcher, which would fail the first step), else None."""
    return _gpu_too_old(device) or _triton_too_old(device) or launcher_build_problem()


def _triton_problem(device: torch.device) -> str | None:
    """Why Triton's kernels cannot run on CUDA GPU `device` (triton cannot be imported, or cannot build kernels
    for it), or None when they can."""
    error = _triton_import_error()
    return triton_cannot_build(device) if error is None else f"triton cannot be imported ({error})"


def triton_problem_of(gpu: GpuFacts) -> str | None:
    """`_triton_problem`'s answer for `gpu` as another process read it, from its figures: nothing here starts CUDA
    (the `--gpus N` launcher, whose CUDA context would hold memory on a rank's GPU for the whole run)."""
    if (error := _triton_import_error()) is not None:
        return f"triton cannot be imported ({error})"
    if not gpu.is_amd and gpu.capability is not None:  # an AMD GPU's capability is no NVIDIA one
        import triton

        from motif_lite.kernels.launch import triton_too_old

        if too_old := triton_gpu_blocker(gpu.capability) or triton_too_old(triton.__version__, gpu.capability):
            return too_old
    return launcher_build_problem()


@dataclass(frozen=True)
class TritonChoice:
    """A kernel backend resolved for one GPU: whether Triton's kernels run (`on`), whether a failing kernel stops
    the run instead of falling back (`strict`, "triton"), and why "auto" runs torch's ops on a CUDA machine
    (`why_not`, `triton_unavailable`'s answer)."""

    on: bool
    strict: bool = False
    why_not: str | None = None


def _resolve_triton(backend: str, device: torch.device) -> TritonChoice:
    """The one decision behind `use_triton`, `select_ops`, `apply_kernels` and `apply_dequant_kernels`: checks the
    name, refuses "triton" where it cannot run, and warns once where "auto" falls back as a whole. The warning
    names the line that asked for kernels (stacklevel 3: the caller of those functions)."""
    if backend not in KERNEL_BACKENDS:
        raise ConfigError(f"unknown kernel backend {backend!r}; choose one of {', '.join(KERNEL_BACKENDS)}")
    if backend == "triton":
        if not torch.cuda.is_available():
            raise KernelBackendError(
                "kernel backend 'triton' is not possible here: no CUDA device; use 'auto' or 'torch'"
            )
        if (problem := _triton_problem(device)) is not None:
            raise KernelBackendError(f"kernel backend 'triton' is not possible here: {problem}")
        return TritonChoice(on=True, strict=True)
    why_not = triton_unavailable(backend, device)
    if why_not is not None and not rocm_build():  # an AMD GPU's torch ops are its default, not a failure: no warning
        warnings.warn(
            f"motif-lite: Triton kernels unavailable ({why_not}); using the torch ops", RuntimeWarning, stacklevel=3
        )
    return TritonChoice(on=backend == "auto" and torch.cuda.is_available() and why_not is None, why_not=why_not)


def use_triton(backend: str, device: torch.device = CURRENT_GPU) -> bool:
    """Resolve a backend name for the CUDA GPU `device` (default: the current one): True for Triton kernels, False
    for the torch references. "auto" on an AMD GPU (a ROCm build) is torch's: `gpus.AMD_TRITON_REASON` says why,
    `triton_unavailable` reports it."""
    return _resolve_triton(backend, device).on


def triton_ops(strict: bool = False) -> Ops:
    """The Triton `Ops`, whatever the device: each op falls back to torch per call off-CUDA unless `strict`.

    Dense attention stays on PyTorch's SDPA: on an H100 it measured 585 TFLOP/s against 348 for our dense
    Triton kernel (docs/benchmarks.md); our kernel earns its place only with a block mask (`SparsityConfig`).
    """
    from motif_lite.kernels import norm  # imported only once triton is known to work

    return Ops(
        attention=TORCH_OPS.attention,
        decoder_attention=TORCH_OPS.decoder_attention,
        layer_norm_modulate=FallbackOp(
            "layer_norm_modulate", norm.layer_norm_modulate, TORCH_OPS.layer_norm_modulate, strict=strict
        ),
        rms_norm_rope=FallbackOp("rms_norm_rope", norm.rms_norm_rope, TORCH_OPS.rms_norm_rope, strict=strict),
    )


@dataclass(frozen=True)
class _Int8Unavailable:
    """The int8 kernel where it cannot run: each call raises `reason`, for `FallbackOp` to fall back on. A class
    rather than a closure: a pipeline holding it is pickled (multiprocessing's spawn, Ray, joblib)."""

    reason: str

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        raise KernelBackendError(self.reason)


def int8_attention_op(
    triton_on: bool, strict: bool = False, why_not: str = "the torch kernel backend was chosen"
) -> FallbackOp:
    """8-bit attention (`motif_lite.kernels.attention_int8`) behind every attention seam, dense or block-sparse,
    with exact attention as its reference: one op, so a fallback (CPU tensors, the torch backend, a GPU below
    compute capability 8.0) warns once for the whole model. `why_not`: why Triton is off, when `triton_on` is
    False."""
    kernel = _Int8Unavailable(f"int8 attention is a Triton kernel and {why_not}")
    if triton_on:
        from motif_lite.kernels.attention_int8 import int8_attention as kernel
    return FallbackOp(INT8_ATTENTION, kernel, block_sparse_attention_torch, strict=strict)


def autotune_buffer_bytes(triton_on: bool) -> int:
    """Device bytes Triton's autotuner holds while it times one of our kernels at a new tuning key (its benchmark
    buffer, `launch.benchmark_buffer_bytes`), for the planner to count where that can happen; 0 where our Triton
    kernels do not run (`triton_on` False), or where Triton cannot be imported to say (a plan made here for a GPU
    elsewhere)."""
    if not triton_on or _triton_import_error() is not None:
        return 0
    from motif_lite.kernels.launch import benchmark_buffer_bytes

    return benchmark_buffer_bytes()


def attention_workspace_bytes(
    attention: str,
    config: TransformerConfig,
    video_tokens: int,
    batch: int = 1,
    *,
    image_tokens: int = OFFICIAL_IMAGE_TOKENS,
) -> int:
    """Device bytes the attention adds inside its largest call: 0 for exact; for int8 its quantized K/V copies,
    bounded by `int8_scheme.WORKSPACE_BYTES`, and its key mask. Heads go in groups that fit that bound, so the
    longest call (the DDT decoder's 2N tokens, unmasked) is not always the largest: the joint attention's N + text
    (masked where the prompts are padded; with the first frame's `image_tokens` SigLIP tokens for image-to-video, 0
    for text-to-video) can need more."""
    if attention != "int8":
        return 0
    heads, head_dim = config.num_attention_heads, config.attention_head_dim
    joint = video_tokens + context_tokens(image_tokens)
    calls = [(joint, True)] + ([(2 * video_tokens, False)] if config.num_decoder_layers else [])
    return max(int8_scheme.workspace_bytes(batch, heads, length, head_dim, masked) for length, masked in calls)


def select_ops(
    backend: str = "auto",
    sparse: SparsityConfig | None = None,
    attention: str = "exact",
    device: torch.device = CURRENT_GPU,
) -> Ops:
    """The `Ops` for a backend on CUDA GPU `device` ("auto": Triton on CUDA when it can build kernels for `device`,
    else torch; "torch"; "triton": Triton and never a fallback), with the DDT decoder attention made block-sparse
    when `sparse` is given, and every attention 8-bit with `attention="int8"` (else "exact")."""
    _check_attention(attention)
    return _ops_for(_resolve_triton(backend, device), sparse, attention)


def _check_attention(attention: str) -> None:
    if attention not in ATTENTION_MODES:
        raise ConfigError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTION_MODES)}")


def _ops_for(choice: TritonChoice, sparse: SparsityConfig | None, attention: str) -> Ops:
    """`select_ops` for a resolved backend."""
    ops = triton_ops(choice.strict) if choice.on else TORCH_OPS
    attend = block_sparse_attention_torch
    if attention == "int8":
        attend = int8_attention_op(choice.on, choice.strict, choice.why_not or "the torch kernel backend was chosen")
        ops = dataclasses.replace(ops, attention=attend, decoder_attention=attend)
    elif choice.on and sparse is not None:
        from motif_lite.kernels.attention import block_sparse_attention

        attend = FallbackOp(
            "sparse attention", block_sparse_attention, block_sparse_attention_torch, strict=choice.strict
        )
    if sparse is not None:
        ops = dataclasses.replace(ops, decoder_attention=SparseDecoderAttention(sparse, attend))
    # Where "auto" fell back as a whole the ops say why, for the run's summary (`fallbacks`).
    return ops if choice.why_not is None else dataclasses.replace(ops, why_torch=choice.why_not)


def apply_kernels(
    model: nn.Module,
    backend: str = "auto",
    sparse: SparsityConfig | None = None,
    triton_dequant: bool = True,
    attention: str = "exact",
    device: torch.device = CURRENT_GPU,
) -> nn.Module:
    """Set `model.ops` and the `kernel` of every `QuantizedLinear` in `model` for `backend` on the GPU `device` the
    model computes on (default: the current one); returns `model`. `attention`: "exact" or "int8" (8-bit
    attention, see `select_ops`).

    With Triton, quantized layers of the types it reads (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; other types keep their
    own torch dequantization, no fallback) run `dequant_matmul` (unless `triton_dequant=False`): a one-pass Triton
    dequantization of the packed blocks into a transient bf16 weight + cuBLAS from 256 tokens up (within 1.07x of
    the bf16 GEMM at 16k+ tokens on an H200), the fused dequant-GEMM kernel below. Without it, each layer's own
    torch dequantization runs (1.2-2x slower at video token counts, docs/benchmarks.md). `fallbacks(model)` says
    afterwards which of these ops fell back to torch ("auto"); with "triton" a failing kernel raises instead."""
    if not hasattr(model, "ops"):
        raise ConfigError(f"apply_kernels: {type(model).__name__} has no `ops` attribute (expected the transformer)")
    _check_attention(attention)
    choice = _resolve_triton(backend, device)  # once: where "auto" falls back as a whole, one warning while loading
    model.ops = _ops_for(choice, sparse, attention)
    return _set_dequant_kernels(model, choice if triton_dequant else TritonChoice(on=False))


def apply_dequant_kernels(model: nn.Module, backend: str = "auto", device: torch.device = CURRENT_GPU) -> nn.Module:
    """Set the `kernel` of every `QuantizedLinear` in any module (the transformer, the text encoder) for `backend` on
    the GPU `device` it computes on: the Triton `dequant_matmul` (with its torch fallback) when Triton runs and the
    layer's quant type is one it reads, else none (each layer's own torch dequantization). Returns `model`."""
    return _set_dequant_kernels(model, _resolve_triton(backend, device))


def _set_dequant_kernels(model: nn.Module, choice: TritonChoice) -> nn.Module:
    # The kernel goes only to layers of the quant types it reads. The others (Q3_K, Q2_K, Q4_1, ...: our own
    # recipes make some) keep `kernel=None`, their own torch dequantization: their normal route, neither a
    # fallback to warn of nor, under "triton", a failure that would stop the run at the first forward.
    kernel, supported = None, ()
    if choice.on:
        from motif_lite.kernels.dequant_matmul import SUPPORTED_QTYPES, dequant_matmul

        kernel = FallbackOp("dequant_matmul", dequant_matmul, dequant_linear_torch, strict=choice.strict)
        supported = SUPPORTED_QTYPES
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            module.kernel = kernel if module.qtype in supported else None
    return model
