"""The exact attention backend behind the model's `Ops.attention` seam, chosen per GPU.

    backend = attention_backend("auto", device)        # or "sdpa", "flash", "cudnn", "efficient", "triton"
    apply_attention_backend(transformer, backend)
    ...                                                 # generate
    print(backend.describe())                           # "auto: flash at 40,560 keys (flash 8.1 ms, ...)"

Every backend computes the same exact softmax attention (no approximation; they differ in rounding only):
- `sdpa`: PyTorch's `scaled_dot_product_attention` with its own choice of kernel (the plain path);
- `flash`, `cudnn`, `efficient`: SDPA restricted to one kernel. FlashAttention takes no mask, so a masked call
  (batched guidance pads the shorter prompt) runs one unmasked call per batch row over that row's valid keys:
  the model's masks only ever hide keys at the end of the sequence (padded text), so this is the same math.
  cuDNN goes the same way (its mask support varies across versions);
- `triton`: motif-lite's dense Triton kernel (`motif_lite.kernels.attention`), with a bool key mask;
- `fa3`: FlashAttention-3 (Hopper GPUs), when its `flash_attn_interface` package is installed (it is built from
  the FlashAttention repository's `hopper/` folder; not a dependency of motif-lite). Called directly on the
  model's tensors seen as FA3's [B, L, H, D] layout (views, no copy); masked calls go row by row, as for `flash`;
- `auto`: on CUDA, a timed trial of every candidate above (`sdpa` included, so `auto` is never slower than
  PyTorch's own pick) at each new attention shape of the run, on the run's own tensors, the first time that shape
  is seen (one checked call, which also warms up, and two timed calls each: milliseconds to a few seconds against
  minutes of sampling). A candidate that fails, or whose output differs by more than rounding from float32
  attention on the first and the last query rows (the last include a partial tile, where kernels with a
  sequence-length bug go wrong), is dropped; SDPA's own pick is checked the same way, not trusted. `fa3` is a
  candidate only where its package imports (a failure, e.g. on a GPU it was not built for, drops it). The choice is
  kept for as long as the backend lives (the pipeline that loaded it: its later runs and server jobs do not time
  that shape again), and `describe()` reports the choices at the shapes of the current run. A chosen candidate
  that fails later (a call its trial did not stand for) falls back to plain `sdpa` from then on, with one warning;
  it is not tried again in that run or a later one; only our Triton kernel under `--kernels triton` stops the run
  instead (`AutoAttention`). On the CPU `auto` is `sdpa` (no trial: there is one CPU kernel worth having). On an
  AMD GPU (PyTorch's ROCm build) cuDNN and FA3 are not candidates, and asking for either is refused before loading:
  they are NVIDIA's kernels. Before Ampere our Triton kernel is not one either (`gpus.slow_before_ampere`).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from motif_lite.choices import ATTENTION_BACKENDS
from motif_lite.devices import CURRENT_GPU
from motif_lite.errors import ConfigError
from motif_lite.gpus import GpuFacts, gpu_facts, nvidia_only_attention, slow_before_ampere
from motif_lite.log_filters import WARNINGS_STATE
from motif_lite.model.kept import LastFewByTensor
from motif_lite.model.ops import AttentionFn, MaskForm, end_run_of, mask_form_of, sdpa_attention
from motif_lite.runtime.attention_choices import FA3_MODULE, RememberedChoices, environment
from motif_lite.runtime.kernels import FallbackOp, KernelFailedError, kernel_failed, triton_cannot_build

_SDPA_KERNELS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
_NO_MASK = ("flash", "cudnn")  # masked calls go row by row over each row's valid keys
# SDPA's kernels whose memory grows linearly with the tokens, which the memory plans assume. Without any of them SDPA
# runs its math kernel, which holds every score (heads x N x N): at 720p far beyond any GPU.
LINEAR_MEMORY_KERNELS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION)


def linear_memory_attention_missing(
    device: torch.device, dtype: torch.dtype, kernels: tuple[SDPBackend, ...] = LINEAR_MEMORY_KERNELS
) -> bool:
    """Whether PyTorch's SDPA runs none of `kernels` on `device` in `dtype`, tried on one tiny call. On an AMD GPU
    they come from AOTriton, built for some architectures only (and on RX 7000 enabled only with
    TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL=1 in some PyTorch releases), so this cannot be decided from the name."""
    q = torch.zeros(1, 1, 64, 64, device=device, dtype=dtype)  # [batch, heads, tokens, head dim]
    try:
        with WARNINGS_STATE, warnings.catch_warnings(), sdpa_kernel(list(kernels)):
            warnings.simplefilter("ignore")  # torch says why each kernel was not used, as warnings
            F.scaled_dot_product_attention(q, q, q)
    except RuntimeError:  # "No available kernel" / "No viable backend"
        return True
    return False


CHECK_ROWS = 128  # query rows at each end of the sequence checked against float32 attention in a trial
# Timer: (candidate name, a call of it, already warmed up) -> seconds per call. Injected by the tests.
Timer = Callable[[str, Callable[[], torch.Tensor]], float]
T = TypeVar("T")


def valid_key_lengths(mask: torch.Tensor) -> list[int]:
    """Valid keys per batch row of a bool key mask [B, 1, 1, Lk] (True = attend) whose False entries are all at
    the end of each row (trailing padding); raises ConfigError for any other mask. One host sync."""
    rows = mask.reshape(mask.shape[0], -1).cpu()
    lengths = rows.sum(-1).tolist()
    for row, length in zip(rows, lengths, strict=True):
        if not bool(row[:length].all()):
            raise ConfigError("attention mask is not trailing key padding; use --attention-backend sdpa")
    return lengths


class PerMask(Generic[T]):
    """Something computed from a key mask, kept for the last few masks seen: a run passes the same mask tensors to
    every forward (the joint attention's and the text cross-attention's, which one backend may serve in turn), so
    it is computed once per mask and run instead of once per attention call. A mask changed in place since (its
    `_version`) is computed again. `clear` at the end of a run (the backend's `end_run`) lets the masks go: kept,
    they would hold the caller's device tensors, and the bool forms built from them, until the next run."""

    KEPT = 4  # masks remembered: the joint and the text one of a batch-2 and of a batch-1 forward

    def __init__(self) -> None:
        self.kept: LastFewByTensor[T] = LastFewByTensor(self.KEPT)

    def compute(self, mask: torch.Tensor) -> T:
        raise NotImplementedError

    def __call__(self, mask: torch.Tensor) -> T:
        return self.kept.get(mask, lambda: self.compute(mask))

    def clear(self) -> None:
        self.kept.clear()


class KeyLengths(PerMask[list[int]]):
    """`valid_key_lengths` of the last few masks seen: the host sync happens once per mask and run."""

    def compute(self, mask: torch.Tensor) -> list[int]:
        return valid_key_lengths(mask)


class BoolMasks(PerMask[torch.Tensor]):
    """The bool form (True = attend) of the last few key masks seen, for a kernel that reads one when given SDPA's
    additive form (`ops.additive_mask`, whose kept keys are 0); a bool mask is its own."""

    def compute(self, mask: torch.Tensor) -> torch.Tensor:
        return mask if mask.dtype == torch.bool else mask == 0


@torch.compiler.disable  # host sync and a Python loop: kept out of compiled graphs
def attend_by_rows(
    attend: AttentionFn,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    key_lengths: Callable[[torch.Tensor], list[int]],
) -> torch.Tensor:
    """Masked attention through an unmasked kernel: each batch row over its own valid keys (trailing padding), as
    `key_lengths` counts them (`KeyLengths`: once per mask and run)."""
    lengths = key_lengths(mask)
    if len(set(lengths)) == 1:
        n = lengths[0]
        return attend(q, k[:, :, :n], v[:, :, :n], None)
    rows = [attend(q[i : i + 1], k[i : i + 1, :, :n], v[i : i + 1, :, :n], None) for i, n in enumerate(lengths)]
    return torch.cat(rows)


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
    raise _unknown_backend(name)


def _unknown_backend(name: str) -> ConfigError:
    """The one error for a backend name we do not know, raised by `candidate` and `attention_backend`."""
    return ConfigError(f"unknown attention backend {name!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")


def synchronized_timer(name: str, call: Callable[[], torch.Tensor], reps: int = 2) -> float:
    """Seconds per call, waiting for the GPU the calls ran on: the output's, which is not the current device in a run
    on `--device cuda:1`. The trial's checked call was the warm-up (which may compile or autotune), and its check
    read the output back, so nothing queued before is timed.

    Each call's output is let go before the next call: the planner counts one attention output, not two."""
    start = time.perf_counter()
    for _ in range(reps):
        out = None  # free the previous output first (the caching allocator reuses it for this call's)
        out = call()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return (time.perf_counter() - start) / reps


@dataclass
class Trial:
    """The outcome of one timed trial: seconds per call of each candidate that ran and agreed with float32
    attention, and the reason each other one was dropped; or of a choice an earlier run made (`remembered`, no
    timings)."""

    keys: int  # key length of the trial's shape
    seconds: dict[str, float] = field(default_factory=dict)  # candidate -> seconds per call
    dropped: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not timed
    remembered: str | None = None

    @property
    def best(self) -> str:
        if self.remembered is not None:
            return self.remembered
        return min(self.seconds, key=self.seconds.get) if self.seconds else "sdpa"

    def describe(self) -> str:
        if self.remembered is not None:
            return f"{self.best} at {self.keys:,} keys (as an earlier run on this GPU chose)"
        timed = ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        dropped = "".join(f"; {n} dropped: {why}" for n, why in self.dropped.items())
        return f"{self.best} at {self.keys:,} keys ({timed}{dropped})"


def _own_error(error: BaseException) -> BaseException:
    """A failed candidate's own error, also where our strict Triton candidate wrapped it in a KernelFailedError
    (whose advice about `--kernels` is not for `auto`)."""
    return error.__cause__ or error


def _why_dropped(error: BaseException) -> str:
    """A failed candidate's reason in a trial, on one line: its own error (`_own_error`)."""
    error = _own_error(error)
    return f"{type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"


def checked_rows(length: int) -> torch.Tensor:
    """The query rows a trial checks: CHECK_ROWS at each end of the sequence (all of a short one)."""
    if length <= 2 * CHECK_ROWS:
        return torch.arange(length)
    return torch.cat([torch.arange(CHECK_ROWS), torch.arange(length - CHECK_ROWS, length)])


def float32_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, key_chunk: int = 4096
) -> torch.Tensor:
    """Attention in float32 for a few query rows q [B, H, rows, D]: one head and `key_chunk` keys at a time, with
    the softmax accumulated online, so the trial adds tens of MB at the peak, not a head's whole K and V."""
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    for h in range(q.shape[1]):
        qh = q[:, h : h + 1].float() * q.shape[-1] ** -0.5  # [B, 1, rows, D]
        row_max = torch.full((*qh.shape[:3], 1), torch.finfo(torch.float32).min, device=q.device)
        total, acc = torch.zeros_like(row_max), torch.zeros_like(qh)
        for start in range(0, k.shape[2], key_chunk):
            keys = slice(start, start + key_chunk)
            scores = qh @ k[:, h : h + 1, keys].float().transpose(-1, -2)  # [B, 1, rows, chunk]
            if mask is not None:
                scores = scores.masked_fill(~mask[..., keys], float("-inf"))  # mask [B, 1, 1, Lk]
            new_max = torch.maximum(row_max, scores.amax(-1, keepdim=True))
            weights, rescale = torch.exp(scores - new_max), torch.exp(row_max - new_max)
            total = total * rescale + weights.sum(-1, keepdim=True)
            acc = acc * rescale + weights @ v[:, h : h + 1, keys].float()
            row_max = new_max
        out[:, h : h + 1] = acc / total
    return out


def _shape_text(key: tuple) -> str:
    """An attention shape as `RememberedChoices` keys it: q's and k's shapes, the dtype, the mask's shape."""
    q_shape, k_shape, dtype, _, mask_shape = key  # the device is in the environment (its GPU)
    mask = "none" if mask_shape is None else list(mask_shape)
    return f"q {list(q_shape)} k {list(k_shape)} {str(dtype).removeprefix('torch.')} mask {mask}"


def dtype_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, elements: int = 2**22
) -> torch.Tensor:
    """torch's SDPA math kernel in q's dtype for a few query rows q [B, H, rows, D]: how far an exact kernel in that
    dtype is from float32 attention (on the CPU in bf16 SDPA's flash kernel erred 1.0x as much; the GPU's fused
    kernels are not yet measured against it). The math kernel holds every score, so it runs one head and a few rows
    at a time: at most `elements` scores [B, 1, rows, Lk] (tens of MB)."""
    out = torch.empty_like(q)
    step = max(1, elements // (q.shape[0] * k.shape[2]))
    with sdpa_kernel(SDPBackend.MATH):
        for h in range(q.shape[1]):
            for start in range(0, q.shape[2], step):
                rows = slice(start, start + step)
                out[:, h : h + 1, rows] = F.scaled_dot_product_attention(
                    q[:, h : h + 1, rows], k[:, h : h + 1], v[:, h : h + 1], attn_mask=mask
                )
    return out


def row_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """The worst query row's relative L2 error of got against want [B, H, rows, D]. Per row, because a wrong kernel's
    error may sit in a few rows (an ignored key mask changes mostly the rows that attend to the padded keys), while
    rounding spreads over all of them; rows of want near zero are measured against a thousandth of the largest."""
    want = want.float()
    norms = want.norm(dim=-1)
    return ((got.float() - want).norm(dim=-1) / norms.clamp(min=1e-3 * float(norms.max()))).max().item()


ERROR_FLOOR = {torch.float32: 1e-5}  # row_error allowed on top of the dtype's own: float32's; 16-bit dtypes 1e-3


@dataclass
class AgreementCheck:
    """What a trial checks a candidate's output against: float32 attention on the checked query rows (`want`), and
    the row error an exact kernel in the candidate's dtype may have there (`bound`): twice that of torch's SDPA math
    kernel in that dtype on the same rows, plus a small floor. A fixed tolerance cannot tell rounding from a bug in
    bf16 at Motif's lengths: at 4,000 to 20,000 keys a kernel that ignores the key mask, or has its softmax scale 1 %
    off, was as close to float32 attention as 2e-2 of the output's largest value."""

    rows: torch.Tensor
    want: torch.Tensor  # float32 [B, H, rows, D]
    bound: float

    def passes(self, out: torch.Tensor) -> bool:
        """Whether a candidate's whole output [B, H, L, D] agrees on the checked rows (NaN never does)."""
        return row_error(out[:, :, self.rows], self.want) <= self.bound


class AutoAttention:
    """Times the candidates on the first call of each attention shape and uses the fastest from then on, in this
    run and later ones (the trials are kept). With `memory`, a choice an earlier run made for the shape is taken
    again after one checked call, untimed (runtime/attention_choices.py), and new choices are remembered.

    It takes SDPA's additive masks (built once per run by the transformer) and gives a candidate that reads a bool
    mask (row splits, Triton) the bool form, converted once per mask (`BoolMasks`).

    A chosen candidate that fails later (a call its trial did not stand for: the same shapes with another mask or
    other strides) is given up: one warning, plain SDPA for that call and every later one it would have had, in
    this run and later ones, and later trials drop it. Not plain SDPA itself (the fallback), nor out of memory (the
    run's advice is the answer), nor our Triton kernel under `strict` (`--kernels triton`), whose
    `KernelFailedError` stops the run. That kernel is a strict candidate (`auto_candidates`), so that a trial sees
    its failure.

    What it reports covers one run (`begin_run`, `runtime.kernels.RecordsPerRun`, which the pipeline calls as each
    `generate` starts): `describe()` the trials of the shapes called since, and `fallbacks()` the given-up
    candidates those trials chose (`runtime.kernels.ChoosesKernels`, for the run summary and a server job's notes),
    so a later run at other shapes does not report an earlier run's."""

    mask_form: MaskForm = "additive"

    def __init__(
        self,
        candidates: dict[str, AttentionFn],
        timer: Timer = synchronized_timer,
        memory: RememberedChoices | None = None,
        strict: bool = False,
    ) -> None:
        self.candidates, self.timer, self.memory, self.strict = candidates, timer, memory, strict
        self.trials: dict[tuple, Trial] = {}
        self.bool_masks = BoolMasks()
        self.failed: dict[str, str] = {}  # candidate -> why it was given up after a trial chose it
        self.used: set[tuple] = set()  # the keys of `trials` called in this run (`begin_run`)

    def begin_run(self) -> None:
        """`runtime.kernels.RecordsPerRun`: report this run's shapes from now on; the trials and `failed` stay."""
        self.used.clear()

    def end_run(self) -> None:
        """`model.ops.KeepsPerRun`: let the run's masks go, the bool forms and those its candidates keep."""
        self.bool_masks.clear()
        for attend in self.candidates.values():
            end_run_of(attend)

    def call(
        self, name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Candidate `name` on these tensors, with the mask in the form it takes."""
        attend = self.candidates[name]
        if mask is not None and mask_form_of(attend) == "bool":
            mask = self.bool_masks(mask)
        return attend(q, k, v, mask)

    @torch.compiler.disable  # the trial syncs and times: eager, also inside compiled blocks
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        key = (tuple(q.shape), tuple(k.shape), q.dtype, q.device, None if mask is None else tuple(mask.shape))
        if key not in self.trials:
            self.trials[key] = self.remembered(key, q, k, v, mask) or self.remember(key, self.trial(q, k, v, mask))
        self.used.add(key)
        name = self.trials[key].best
        if name not in self.failed:
            try:
                return self.call(name, q, k, v, mask)
            except Exception as exc:
                if not self.can_give_up(name, exc):
                    raise
                self.give_up(name, exc)
        return sdpa_attention(q, k, v, mask)

    def can_give_up(self, name: str, error: Exception) -> bool:
        """Whether chosen candidate `name`, having raised `error`, is given up for plain SDPA (see the class)."""
        if name == "sdpa" or isinstance(error, torch.OutOfMemoryError):
            return False
        return not (self.strict and isinstance(error, KernelFailedError))

    def give_up(self, name: str, error: Exception) -> None:
        """Run plain SDPA instead of candidate `name` from now on, with one warning naming it and its error."""
        self.failed[name] = kernel_failed(_own_error(error))
        warnings.warn(
            f"motif-lite: {name} attention falls back to torch's SDPA from now on (later runs of this pipeline too): "
            f"{self.failed[name]}",
            RuntimeWarning,
            stacklevel=3,
        )

    def fallbacks(self) -> dict[str, str]:
        """`runtime.kernels.ChoosesKernels`: {"NAME attention": why} for each candidate given up that a trial of
        this run's shapes chose (so this run called torch's SDPA in its place)."""
        chosen = {self.trials[key].best for key in self.used}
        return {f"{name} attention": why for name, why in self.failed.items() if name in chosen}

    def remember(self, key: tuple, trial: Trial) -> Trial:
        """Keep a timed trial's choice for later runs (none when every candidate failed: nothing was chosen)."""
        if self.memory is not None and trial.seconds:
            self.memory.put(_shape_text(key), trial.best)
        return trial

    def remembered(
        self, key: tuple, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> Trial | None:
        """An earlier run's choice for this shape, if it is still on offer and its call here passes the trial's
        check (it may not: e.g. out of memory in a tighter plan than that run's); else None."""
        name = self.memory.get(_shape_text(key)) if self.memory is not None else None
        if name not in self.candidates or name in self.failed:
            return None
        check = self.agreement(q, k, v, mask)
        try:
            if check.passes(self.call(name, q, k, v, mask)):
                return Trial(keys=k.shape[2], remembered=name)
        except Exception:  # whatever failed, the trial finds out again and says why
            pass
        return None

    def agreement(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> AgreementCheck:
        """float32 attention on the checked query rows, and the row error allowed there (`AgreementCheck`)."""
        rows = checked_rows(q.shape[2]).to(q.device)
        mask = None if mask is None else self.bool_masks(mask)
        want = float32_attention(q[:, :, rows], k, v, mask)
        own_error = row_error(dtype_attention(q[:, :, rows], k, v, mask), want)
        return AgreementCheck(rows, want, 2 * own_error + ERROR_FLOOR.get(q.dtype, 1e-3))

    def trial(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> Trial:
        """Time every candidate on these tensors; drop the ones that fail or disagree with float32 attention."""
        result = Trial(keys=k.shape[2])
        check = self.agreement(q, k, v, mask)
        for name in self.candidates:
            if name in self.failed:  # given up: not to be chosen again
                result.dropped[name] = "failed after an earlier trial chose it"
                continue
            try:
                if not check.passes(self.call(name, q, k, v, mask)):  # the whole call: its real tiling
                    result.dropped[name] = "output differs from float32 attention"
                    continue
                result.seconds[name] = self.timer(name, lambda name=name: self.call(name, q, k, v, mask))
            except Exception as exc:  # no kernel for this dtype/GPU/shape, out of memory, a Triton error...
                result.dropped[name] = _why_dropped(exc)
        return result

    def inner_ops(self) -> list[AttentionFn]:
        """`runtime.kernels.WrapsOps`: its candidates (`kernel_ops` lists our Triton kernel's)."""
        return list(self.candidates.values())

    def describe(self) -> str:
        """The trials of the shapes this run called (`begin_run`), in the order they were first made."""
        trials = [trial for key, trial in self.trials.items() if key in self.used]
        if not trials:
            return "auto (no attention call in this run yet)"
        return "auto: " + "; ".join(self.describe_trial(trial) for trial in trials)

    def describe_trial(self, trial: Trial) -> str:
        """The trial's choice, and that torch's attention runs instead where that choice failed after the trial."""
        later = ", then torch's attention: it failed after its trial" if trial.best in self.failed else ""
        return trial.describe() + later


class FixedAttention:
    """A named fixed backend (the `Ops.attention` callable plus its name for the run summary)."""

    def __init__(self, name: str, strict: bool = False, device: torch.device = CURRENT_GPU) -> None:
        self.name, self.attend = name, candidate(name, strict, device)
        self.mask_form: MaskForm = mask_form_of(self.attend)  # the mask form its kernel takes (ops.py)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.attend(q, k, v, mask)

    def inner_ops(self) -> list[AttentionFn]:
        """`runtime.kernels.WrapsOps`: the one kernel it calls."""
        return [self.attend]

    def end_run(self) -> None:
        """`model.ops.KeepsPerRun`: let the run's masks go, where its kernel keeps them (row splits)."""
        end_run_of(self.attend)

    def describe(self) -> str:
        return self.name


AttentionBackend = AutoAttention | FixedAttention


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


def unused_backend_note(attention: str, backend: str) -> str | None:
    """What to say when `--attention-backend` was given but has nothing to choose: with `--attention int8` every
    attention runs the 8-bit kernel, and where that cannot run, its own exact fallback (load_pipeline)."""
    if attention != "int8" or backend == "auto":
        return None
    return (
        f"--attention-backend {backend} chooses the exact attention kernel: with --attention int8 every attention "
        f"runs the 8-bit kernel (where it cannot run, PyTorch's SDPA), so {backend} is not used"
    )


PROBE_HEAD_DIM = 128  # Motif-Video's


def _cuda_only(name: str) -> str:
    """The error for a fixed CUDA attention kernel asked for on the CPU."""
    return (
        f"--attention-backend {name} is a CUDA kernel: on the CPU PyTorch has sdpa and flash; choose auto (sdpa on "
        "the CPU) or sdpa"
    )


def check_backend_runs(name: str, device: torch.device | str, dtype: torch.dtype | None = None) -> None:
    """Raise ConfigError when the fixed backend `name` has no kernel for `device` and `dtype` (default: float32 on the
    CPU, float16 on CUDA): cuDNN's or the memory-efficient kernel on the CPU, FlashAttention on a GPU before compute
    capability 8.0 or in float32, FA3 off Hopper. One tiny call without and one with a key mask, so that this is
    said before any weights load instead of as PyTorch's error at the first step. `auto` (which drops what fails)
    and `sdpa` (which always has its math kernel) need none; `triton` is refused off CUDA, where the kernel never
    runs (on a GPU a failure falls back to SDPA with a warning)."""
    device = torch.device(device)
    if name == "triton" and device.type != "cuda":  # else the run would name a kernel in its summary that never ran
        raise ConfigError(_cuda_only(name))
    if name in ("auto", "sdpa", "triton"):
        return
    if device.type == "cuda" and nvidia_only_attention(name, gpu := gpu_facts(device)):
        raise ConfigError(
            f"--attention-backend {name} is a kernel for NVIDIA GPUs, and {gpu.name} is an AMD GPU (PyTorch's ROCm "
            "build has neither cuDNN nor FlashAttention-3): choose auto, which times the kernels that run here, "
            "sdpa, flash or efficient"
        )
    dtype = dtype or (torch.float32 if device.type == "cpu" else torch.float16)
    attend = candidate(name)
    q = torch.zeros(2, 1, 16, PROBE_HEAD_DIM, dtype=dtype, device=device)
    mask = (torch.arange(16, device=device) < torch.tensor([[16], [9]], device=device))[:, None, None]
    with WARNINGS_STATE, warnings.catch_warnings(record=True) as caught:  # PyTorch: why each kernel was not usable
        warnings.simplefilter("always")
        try:
            attend(q, q, q, None)
            attend(q, q, q, mask)
        except Exception as exc:  # no kernel for this device, dtype or GPU; FA3 built for another GPU
            if device.type == "cpu":  # PyTorch's own message there only says that no kernel was left
                raise ConfigError(_cuda_only(name)) from None
            reasons = [str(w.message).strip() for w in caught] + [str(exc).strip()]
            why = next((r.splitlines()[0] for r in reasons if r), type(exc).__name__)
            gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
            raise ConfigError(
                f"--attention-backend {name} cannot run on {gpu} in "
                f"{str(dtype).removeprefix('torch.')} ({why[:200]}); choose auto, which times the kernels that run "
                "here, or sdpa"
            ) from None


def attention_backend(
    name: str,
    device: torch.device | str,
    triton_ok: bool = False,
    dtype: torch.dtype | None = None,
    strict: bool = False,
) -> AttentionBackend:
    """The backend for `--attention-backend NAME` on `device`; `triton_ok`: our Triton kernels can run here. A fixed
    kernel that cannot run on `device` in `dtype` is a ConfigError here (`check_backend_runs`). `strict`
    (`--kernels triton`): our Triton kernel never falls back to SDPA, fixed or chosen by `auto`. In `auto`'s trial
    (or a remembered choice's check) no candidate does, whatever `strict`: where one fails there, it is dropped with
    its reason; where it fails after being chosen, it falls back, but for our Triton kernel under `strict`, which
    stops the run (`AutoAttention`)."""
    if name not in ATTENTION_BACKENDS:
        raise _unknown_backend(name)
    if name != "auto":
        check_backend_runs(name, device, dtype)
        return FixedAttention(name, strict, torch.device(device))
    device = torch.device(device)
    if device.type != "cuda":
        return FixedAttention("sdpa")
    candidates = auto_candidates(triton_ok, gpu_facts(device), device)
    return AutoAttention(candidates, memory=RememberedChoices(environment(device, list(candidates))), strict=strict)


def apply_attention_backend(model: nn.Module, backend: AttentionFn) -> None:
    """Put `backend` behind `model.ops.attention`, and behind `decoder_attention` too unless a different op (a
    sparse pattern) was installed there, for as long as the model lives. Nothing takes it out again: putting the
    earlier `Ops` back would also undo the torch norm ops that `apply_compile` installs after it."""
    ops = model.ops
    decoder = backend if ops.decoder_attention is ops.attention else ops.decoder_attention
    model.ops = dataclasses.replace(ops, attention=backend, decoder_attention=decoder)
