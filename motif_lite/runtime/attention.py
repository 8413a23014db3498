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

This module chooses the backend (`attention_backend`: `AutoAttention` or `FixedAttention`), checks before any
weights load that a fixed kernel runs (and that SDPA has a kernel of linear memory here), and puts the backend
behind the model (`apply_attention_backend`). The backends themselves are in runtime/attention_candidates.py,
what `auto`'s trial times and checks in runtime/attention_trials.py, and the key masks of kernels that take none
in runtime/attention_masks.py.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from motif_lite.choices import ATTENTION_BACKENDS
from motif_lite.devices import CURRENT_GPU
from motif_lite.errors import ConfigError
from motif_lite.gpus import gpu_facts, nvidia_only_attention
from motif_lite.log_filters import WARNINGS_STATE
from motif_lite.model.ops import AttentionFn, MaskForm, end_run_of, mask_form_of, sdpa_attention
from motif_lite.runtime.attention_candidates import auto_candidates, candidate, unknown_backend
from motif_lite.runtime.attention_choices import RememberedChoices, environment
from motif_lite.runtime.attention_masks import BoolMasks
from motif_lite.runtime.attention_trials import (
    ERROR_FLOOR,
    AgreementCheck,
    Timer,
    Trial,
    checked_rows,
    dtype_attention,
    float32_attention,
    row_error,
    synchronized_timer,
)
from motif_lite.runtime.kernels import KernelFailedError, kernel_failed

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


def _own_error(error: BaseException) -> BaseException:
    """A failed candidate's own error, also where our strict Triton candidate wrapped it in a KernelFailedError
    (whose advice about `--kernels` is not for `auto`)."""
    return error.__cause__ or error


def _why_dropped(error: BaseException) -> str:
    """A failed candidate's reason in a trial, on one line: its own error (`_own_error`)."""
    error = _own_error(error)
    return f"{type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"


def _shape_text(key: tuple) -> str:
    """An attention shape as `RememberedChoices` keys it: q's and k's shapes, the dtype, the mask's shape."""
    q_shape, k_shape, dtype, _, mask_shape = key  # the device is in the environment (its GPU)
    mask = "none" if mask_shape is None else list(mask_shape)
    return f"q {list(q_shape)} k {list(k_shape)} {str(dtype).removeprefix('torch.')} mask {mask}"


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
        raise unknown_backend(name)
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
