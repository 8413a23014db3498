"""What a run that ran out of device memory with a memory plan is told, in the planner's figures: the plan's budget
and estimated peak, and the --vram just under that peak, which gives the next plan down the ladder (slower, in less
memory); on a GPU whose other processes now hold too much for the plan beside them, what they hold and the --vram
that fits what they left. `motif-lite run`, `motif-lite serve` and `motif-lite decode` word these figures for their
own users, so that all three give the same ones. Also what a dry run says of a GPU's memory (`gpu_memory_note`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from motif_lite.errors import MemoryBudgetError, MotifLiteError
from motif_lite.log_filters import quiet_warnings
from motif_lite.units import RESERVED_RATIO, GiB, memory_size

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.gpu_memory import GpuReading, GpuUse
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.planner import Plan
    from motif_lite.sizes import ModelSizes
    from motif_lite.weights.lora_updates import LoRAFile

# Where a plan's budget came from when no --vram was given (the planner's margin on the free memory).
FREE_MEMORY_BUDGET = f"the GPU's free memory at the start / {RESERVED_RATIO:g}"


@dataclass(frozen=True)
class PlannedRun:
    """What a memory plan is made for: the request, the model's files and the settings the planner counts with.
    `vram_gib` / `ram_gib`: the budgets given (None: the device's free memory / no host limit);
    `sequence_parallel`: the ranks sharing the video tokens; `text_encoder`: whether this process loads it;
    `first_step`: a resumed run's first step (its steps left decide whether a batch-2 forward is planned)."""

    request: GenerationRequest
    sources: ModelSources
    dtype: torch.dtype
    device: torch.device | str
    vram_gib: float | None = None
    ram_gib: float | None = None
    kernels: str = "auto"
    attention: str = "exact"
    batch_guidance: bool | None = None
    step_cache: bool = False
    sequence_parallel: int = 1
    text_encoder: bool = True
    first_step: int = 0
    attention_backend: str = "auto"
    dtype_by_default: bool = False  # no dtype asked for: a float32 default keeps the text encoder in bf16
    text_encoder_given: str | None = None  # the text encoder's dtype by name, given (a resumed run's, say)
    loras: tuple[LoRAFile, ...] = ()  # the checked --lora files: their adapters beside packed layers are planned
    gpu: GpuReading | None = None  # the GPU as another process read it: planned from its figures (`plan_generation`)

    @property
    def text_encoder_dtype(self) -> torch.dtype:
        """The dtype the text encoder loads in, as `load_pipeline` picks it (`dtypes.text_encoder_dtype`)."""
        from motif_lite.dtypes import COMPUTE_DTYPES, text_encoder_dtype

        given = None if self.text_encoder_given is None else COMPUTE_DTYPES[self.text_encoder_given]
        return text_encoder_dtype(self.dtype, given, by_default=self.dtype_by_default)

    @functools.cached_property
    def sizes(self) -> ModelSizes:
        """The model's sizes the plans count with (`model_sizes`), counted once: building the transformer on the
        meta device for them takes a fraction of a second, and a dry run prints them beside its plan."""
        from motif_lite.sizes import model_sizes

        return model_sizes(self.sources, self.dtype, self.text_encoder_dtype)

    def plan(self, vram_gib: float | None = None, adapter_temporaries: bool = True) -> Plan:
        """The memory plan (raises when nothing fits), with the budget `vram_gib` where it is not `self.vram_gib`;
        `adapter_temporaries=False`: without the LoRA adapters' temporaries (`plan_generation`)."""
        from motif_lite.memory_plan import plan_generation

        return plan_generation(
            self.request, self.sources, dtype=self.dtype, device=self.device,
            vram_gib=self.vram_gib if vram_gib is None else vram_gib, kernels=self.kernels, attention=self.attention,
            sequence_parallel=self.sequence_parallel, ram_gib=self.ram_gib, batch_guidance=self.batch_guidance,
            step_cache=self.step_cache, text_encoder=self.text_encoder, first_step=self.first_step, sizes=self.sizes,
            attention_backend=self.attention_backend, text_encoder_dtype=self.text_encoder_dtype, loras=self.loras,
            adapter_temporaries=adapter_temporaries,
            gpu=self.gpu,
        )  # fmt: skip

    def with_sources(self, sources: ModelSources) -> PlannedRun:
        return dataclasses.replace(self, sources=sources)


def vram_just_under(peak_bytes: int) -> float | None:
    """The --vram, in GiB rounded down to hundredths, just under an estimated peak: the budget that makes the
    planner choose a plan that needs less. None for a peak under 0.01 GiB, which no --vram figure is under."""
    lower = math.floor((peak_bytes - 1) / GiB * 100) / 100
    return lower if lower > 0 else None


def budget_source(vram_given: bool) -> str:
    """Where a plan's budget came from, in words."""
    return "--vram" if vram_given else FREE_MEMORY_BUDGET


# Why the --vram an out-of-memory error names is that figure: the usual reason, the next plan down the ladder.
JUST_UNDER_THE_PEAK = "just under that peak"


@dataclass(frozen=True)
class OutOfMemoryFigures:
    """What a planned run that ran out of device memory can be told. `said`: the plan's budget and estimated peak,
    and why a run may run out all the same; `lower_gib`: the --vram that plans for less (None: no such figure),
    `lower_why`: why that figure, in words; `next_plan`: what that budget plans (None where nothing fits under it);
    `room_bytes`: what the GPU leaves a run now, where other processes hold too much for the plan beside them;
    `smallest_vram_gib`: the --vram of this video's smallest plan, where no plan fits what is left."""

    said: str
    lower_gib: float | None
    next_plan: Plan | None
    lower_why: str = JUST_UNDER_THE_PEAK
    room_bytes: int | None = None
    smallest_vram_gib: float | None = None

    def under_the_smallest_plan(self) -> str | None:
        """`What the GPU leaves a run now (0.50 GiB) is under this video's smallest plan, --vram 3.41, which needs
        3.69 GiB free`, where other processes left less than that plan needs; None otherwise. Not "no plan needs
        less": smaller plans than the one that ran out may well exist, only none fits beside the other processes."""
        from motif_lite.runtime.budget_advice import free_for

        if self.room_bytes is None or self.next_plan is not None or self.smallest_vram_gib is None:
            return None
        least = self.smallest_vram_gib
        return (
            f"What the GPU leaves a run now ({memory_size(self.room_bytes)}) is under this video's smallest plan, "
            f"--vram {least:.2f}, which needs {free_for(least):.2f} GiB free"
        )

    def next_plan_words(self) -> str:
        """`the next plan, 2: ...` (what it moves where, in words; `plan 9: ...` where the figure is what the GPU
        has left, which may skip several); empty without a next plan."""
        if self.next_plan is None:
            return ""
        moves = self.next_plan.in_words().removeprefix("In short: ")
        which = "the next plan," if self.lower_why == JUST_UNDER_THE_PEAK else "plan"
        return f"{which} {self.next_plan.ladder_index + 1}: {moves}"


def out_of_memory_figures(planned: PlannedRun, plan: Plan, what: str = "the memory plan") -> OutOfMemoryFigures:
    """The figures of `plan` (made for `planned`; `what`: how the plan is named in `said`) for a run that ran out of
    device memory with it, and the next plan down the ladder. Where other processes hold so much of the GPU now
    that the plan's reserve cannot fit beside them (one started since the plan was made, or a --vram above the free
    memory), that is said, and the --vram named is what the GPU has left for a run (`GpuUse.room_bytes`), not just
    under the peak, which would run out again."""
    said = (
        f"{what} ({plan.ladder_index + 1} of {plan.ladder_size}) had a budget of {memory_size(plan.budget_bytes)} "
        f"({budget_source(planned.vram_gib is not None)}) for an est. peak of {memory_size(plan.peak_bytes)} "
        f"allocated (~{memory_size(plan.reserved_bytes)} reserved)"
    )
    budget = lower_budget(planned.device, plan.peak_bytes, plan.reserved_bytes, "a run")
    said, advice = said + budget.held, budget.advice
    lower, why, room = budget.vram_gib, budget.why, budget.room_bytes
    if lower is None and room is None:
        return OutOfMemoryFigures(said + advice, None, None, why)
    smallest = None
    try:
        with quiet_warnings():  # the budget's warnings were given with the plan
            smaller = planned.plan(vram_gib=LEAST_VRAM if lower is None else lower)
    except MemoryBudgetError as exc:  # nothing fits under it: the smallest plan's --vram, for what is left
        smaller, smallest = None, exc.smallest_vram_gib
    except MotifLiteError:
        smaller = None
    if lower is None:  # planned only for the smallest plan's figure
        smaller = None
    figures = OutOfMemoryFigures(said + advice, lower, smaller, why, room, smallest)
    if figures.under_the_smallest_plan() is not None:  # nothing fits what is left: not "plan for what is left"
        return dataclasses.replace(figures, said=said)
    return figures


LEAST_VRAM = 0.01  # GiB: the least --vram figure, which no plan fits, planned for the smallest plan's figure


@dataclass(frozen=True)
class LowerBudget:
    """The --vram an out-of-memory error names (`vram_gib`, None: no such figure) and why (`why`), for a plan that
    ran out: just under its peak, or, where other processes now crowd the GPU (`crowded_gpu`), what they left
    (`room_bytes`, set only then). `held`: what they hold (", but the GPU has ...", empty where they do not crowd
    it); `advice`: what to do about it, said after `held`."""

    vram_gib: float | None
    why: str
    room_bytes: int | None
    held: str
    advice: str


def lower_budget(device: torch.device | str, peak_bytes: int, reserved_bytes: int, who: str) -> LowerBudget:
    """`LowerBudget` for a plan of `peak_bytes` (`reserved_bytes` reserved) that ran out on `device`; `who`: "a run"
    or "a decode", as `crowded_gpu` says it. Run's and decode's advice both start from it."""
    lower = vram_just_under(peak_bytes)
    if (crowded := crowded_gpu(device, reserved_bytes, who)) is None:
        advice = ": another program may have taken GPU memory since (close it), or the estimate fell short"
        return LowerBudget(lower, JUST_UNDER_THE_PEAK, None, "", advice)
    held = f", {crowded.held}"
    if lower is not None and (crowded.vram_gib is None or crowded.vram_gib < lower):
        return LowerBudget(crowded.vram_gib, WHAT_IS_LEFT, crowded.room_bytes, held, crowded.advice)
    return LowerBudget(lower, JUST_UNDER_THE_PEAK, None, held, crowded.advice)


# Why the --vram an out-of-memory error names is that figure where other processes crowd the GPU (`crowded_gpu`).
WHAT_IS_LEFT = f"what the GPU has left now / {RESERVED_RATIO:g}"


@dataclass(frozen=True)
class CrowdedGpu:
    """What is said of a GPU whose other processes now hold so much that a plan's reserve cannot fit beside them:
    `held`, what they hold and what that leaves (`room_bytes`); `vram_gib`, the --vram that fits what is left (what
    is left / RESERVED_RATIO, rounded down; None where nothing is left)."""

    held: str
    room_bytes: int
    vram_gib: float | None
    advice: str = ": close what holds it, or plan for what is left"

    @property
    def said(self) -> str:
        return self.held + self.advice


def crowded_gpu(device: torch.device | str, reserved_bytes: int, who: str) -> CrowdedGpu | None:
    """`CrowdedGpu` for the CUDA `device` now, where a reserve of `reserved_bytes` cannot fit beside what other
    processes hold (`GpuUse.room_bytes`: what `who`, "a run" or "a decode", started again would have); None where
    it fits, for another device, or where the GPU cannot be read. The --vram just under the plan's peak would run
    out of memory again there: the one that fits what is left is named instead."""
    use = _gpu_use_now(device)
    if use is None or use.room_bytes >= reserved_bytes:
        return None
    held = f"but the GPU has {use.describe()}, which leaves {who} {memory_size(use.room_bytes)}"
    left = math.floor(use.room_bytes / RESERVED_RATIO / GiB * 100) / 100
    return CrowdedGpu(held, use.room_bytes, left if left > 0 else None)


def _gpu_use_now(device: torch.device | str) -> GpuUse | None:
    """Who holds the CUDA `device`'s memory now; None for another device, or where it cannot be read (the advice
    is then given without it)."""
    import torch

    from motif_lite.devices import is_here
    from motif_lite.gpu_memory import gpu_use

    device = torch.device(device)
    if device.type != "cuda" or not is_here(device):
        return None
    try:
        return gpu_use(device)
    except (MotifLiteError, RuntimeError):
        return None


def gpu_memory_note(device: torch.device, vram_given: bool) -> str | None:
    """What a dry run says of a CUDA GPU here: its memory now, by who holds it (what nvidia-smi shows), and without
    --vram (`vram_given` False) the budget a run takes from it; None for another device or one not here."""
    import torch

    from motif_lite.runtime.planner import default_budget

    if (use := _gpu_use_now(device)) is None:
        return None
    said = f"{torch.cuda.get_device_name(device)} ({device}) has {use.describe()}"
    if vram_given:
        return f"{said}: the plan is made for --vram's budget"
    return f"{said}: a run plans for {FREE_MEMORY_BUDGET}, a budget of {memory_size(default_budget(device))}"
