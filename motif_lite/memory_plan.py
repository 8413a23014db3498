"""The memory plan of a run, made before any weights load from configs and file headers only
(`plan_generation`): the device budget a --vram gives on a GPU at hand or read by another process
(`device_budget`), the planner's inputs for a request, the kernels the ranks of `run --gpus N` run, the warning for
a pipeline loaded without a plan, and the work of the LoRA adapters kept beside packed layers (the time estimate's).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from motif_lite.checkpoint import ModelSources, locate_sources
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.choices import MOTIF_REPO
from motif_lite.devices import is_here, parse_device
from motif_lite.dtypes import checked_dtype, default_dtype_of
from motif_lite.dtypes import text_encoder_dtype as text_encoder_dtype_of
from motif_lite.errors import ConfigError, both_spellings
from motif_lite.gpu_memory import GpuReading, gpu_memory, gpu_use, plan_over_room_note, vram_over_free_note
from motif_lite.gpus import AMD, NVIDIA, GpuFacts, rocm_build
from motif_lite.io.wsl import windows_gpu_driver
from motif_lite.log_filters import quiet_warnings
from motif_lite.quantize_settings import with_quantize
from motif_lite.request import GenerationRequest
from motif_lite.runtime.activation_memory import ImageTowerShape
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.runtime.kernels import (
    KernelBackendError,
    attention_workspace_bytes,
    autotune_buffer_bytes,
    triton_problem_of,
    use_triton,
)
from motif_lite.runtime.planner import (
    RESERVED_RATIO,
    Plan,
    PlannerInputs,
    default_budget,
    plan_memory,
    positive_budget,
    unplanned_peak_bytes,
)
from motif_lite.settings import resolve_dtype, resolve_settings
from motif_lite.sizes import ModelSizes, model_sizes, packed_weight_names
from motif_lite.units import MiB, memory_size
from motif_lite.weights.lora_apply import side_adapter_bytes, side_adapter_macs, side_adapter_temporary_bytes
from motif_lite.weights.lora_updates import LoRAFile

# `locate_sources` for plans: what is on disk or in the cache, never a download, never an error for absent weights.
AT_HAND = {"download": False, "require_weights": False}


def batched_guidance(wanted: bool | None, device: torch.device, plan: Plan | None = None) -> tuple[bool, bool]:
    """(whether a guided step's two predictions run as one batch-2 forward, whether an explicit request for that
    was refused): `wanted` (`--batch-guidance`; None: on a GPU, as batch 2 measured 3-11 % slower on the CPU,
    docs/benchmarks.md) where the memory plan has room for two rows per forward (`plan.cfg_batch`; None: no plan)."""
    no_room = plan is not None and plan.cfg_batch < 2
    if wanted is None:
        return device.type == "cuda" and not no_room, False
    return wanted and not no_room, wanted and no_room


def device_budget(target: torch.device, vram_gib: float | None) -> int | None:
    """The device memory budget of a plan for `target` (a run's, a decode's): on a GPU at hand `vram_gib` as
    `_gpu_budget` takes it, else its free memory; for another device `vram_gib` in bytes (None: no limit). A plan
    for a GPU this machine lacks (a dry run's) takes `vram_gib` as given: there is no memory to check it against."""
    if target.type == "cuda" and is_here(target):
        return _gpu_budget(target, vram_gib)
    return None if vram_gib is None else int(vram_gib * 2**30)


def _gpu_budget(gpu: torch.device, vram_gib: float | None) -> int:
    """The budget of a plan for a GPU at hand: `vram_gib`, else its free memory. A budget above the GPU's whole
    memory is a slip (megabytes for GiB?) that would plan a run the GPU cannot hold: its free memory instead, with a
    warning. One whose allocator reserve (RESERVED_RATIO x the budget) would not fit the GPU's memory is lowered to
    the most that does, with a warning naming that --vram. One above its free memory is kept, with a warning where
    Windows' driver would spill what does not fit into system memory (`gpu_memory.vram_over_free_note`)."""
    if vram_gib is None:
        return default_budget(gpu)
    total = gpu_memory(gpu)[1]
    budget = int(vram_gib * 2**30)
    if budget > total:
        return _free_budget_for_a_slip(default_budget(gpu), vram_gib, budget, total)
    if budget > (most := int(total / RESERVED_RATIO)):  # the allocated peak would fit, what is reserved would not
        warnings.warn(_reserve_over_total_note(vram_gib, budget, total, most), stacklevel=4)
        budget = most
    # The user's, even above what is free now; Windows' driver then spills: said before the run.
    if (spills := vram_over_free_note(budget, default_budget(gpu), windows_gpu_driver())) is not None:
        warnings.warn(spills, stacklevel=4)
    return budget


def _read_gpu_budget(gpu: GpuReading, vram_gib: float | None) -> int:
    """`_gpu_budget` of a GPU another process read (`GpuReading`), from its figures: nothing asks CUDA here."""
    if vram_gib is None:
        return gpu.free_budget_bytes
    total, budget = gpu.use.total_bytes, int(vram_gib * 2**30)
    if budget > total:
        return _free_budget_for_a_slip(gpu.free_budget_bytes, vram_gib, budget, total)
    if budget > (most := int(total / RESERVED_RATIO)):
        warnings.warn(_reserve_over_total_note(vram_gib, budget, total, most), stacklevel=4)
        budget = most
    if (spills := vram_over_free_note(budget, gpu.free_budget_bytes, windows_gpu_driver())) is not None:
        warnings.warn(spills, stacklevel=4)
    return budget


def smallest_budget_gpu(readings: Sequence[GpuReading], vram_gib: float | None) -> GpuReading:
    """The GPU of `readings` whose rank plans for the smallest budget: the least free memory without --vram; with
    it, --vram or, on a card smaller than --vram, its free memory (`_read_gpu_budget`), so not always the busiest
    card. Its warnings are not said here: the plan made on the GPU chosen says its own."""
    with quiet_warnings():
        return min(readings, key=lambda gpu: _read_gpu_budget(gpu, vram_gib))


def _free_budget_for_a_slip(free_budget: int, vram_gib: float, budget: int, total: int) -> int:
    """The free memory's budget for a `--vram` above the GPU's whole memory, with the warning that says so."""
    # In MiB, as nvidia-smi shows it: an "8 GB" card has 8188 MiB, which memory_size would round to "8.00 GiB",
    # the very figure it is more than.
    warnings.warn(
        f"--vram {vram_gib:g} GiB ({budget // MiB} MiB) is more than this GPU's whole memory, {total // MiB} MiB "
        "(--vram is in GiB; 8000MB is also understood): planned for its free memory instead, a budget of "
        f"{memory_size(free_budget)}; leave --vram out to get that",
        stacklevel=5,
    )
    return free_budget


def _reserve_over_total_note(vram_gib: float, budget: int, total: int, most: int) -> str:
    """Why a `--vram` within the GPU's memory is planned for less: a plan may allocate up to its budget, and the
    allocator reserves about RESERVED_RATIO times that, which past the GPU's memory runs out at the peak."""
    fits = math.floor(most / 2**30 * 100) / 100  # rounded down: --vram with this figure plans within `most`
    return (
        f"--vram {vram_gib:g} lets a plan allocate up to {memory_size(budget)}, and PyTorch's allocator reserves "
        f"about {RESERVED_RATIO:g}x what is allocated, up to {memory_size(int(budget * RESERVED_RATIO))}: more than "
        f"this GPU's {total // MiB} MiB, so such a plan would run out of memory at its peak. Planned for a budget of "
        f"{memory_size(most)} instead, the most whose reserve fits; give --vram {fits:.2f} or less to plan that way"
    )


def plan_generation(
    request: GenerationRequest,
    model: str | Path | ModelSources = MOTIF_REPO,
    gguf: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "auto",
    vram_gib: float | None = None,
    kernels: str = "auto",
    attention: str = "exact",
    *,
    sequence_parallel: int = 1,
    batch_guidance: bool | None = None,
    step_cache: bool = False,
    ram_gib: float | None = None,
    text_encoder_dtype: torch.dtype | str | None = None,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    text_encoder: bool = True,
    quantize: str | None = None,
    text_encoder_quantize: str | None = None,
    first_step: int = 0,
    sizes: ModelSizes | None = None,
    attention_backend: str = "auto",
    loras: Sequence[LoRAFile] = (),
    adapter_temporaries: bool = True,
    gpu: GpuReading | None = None,
    configs_read: CheckpointConfigs | None = None,
) -> Plan:
    """The memory plan for a (resolved) request, from configs and file headers only: no weights, no network.

    `model` / `gguf` are looked up on disk and in the Hugging Face cache only (or given as `ModelSources`); what is
    not at hand is planned from the official architecture (`model_sizes` says where each size came from). The
    device need not exist here: `device="cuda"` plans for a CUDA GPU with the CUDA kernels on any machine. The
    budget is `vram_gib`, else the device's free memory (no limit on the CPU, or for a GPU this machine lacks). Raises a
    `MotifLiteError` naming the smallest possible peak when nothing fits. `sequence_parallel`: plan for one of that many
    ranks sharing the video tokens (runtime/parallel.py). With guidance, each memory plan is tried with both guidance
    predictions in one batch-2 forward first (on CUDA, or with `batch_guidance=True`); `step_cache`: reserve the step
    cache's tensors; `text_encoder_gguf`: a quantized text encoder file (the host and device estimates count it as it
    loads: packed blocks as stored, float tensors in the text encoder's dtype). The host budget is `ram_gib` (None: no
    limit; page-locked block homes are then used only if they fit the memory available now); `text_encoder_dtype`: the
    dtype the text encoder is loaded in (default: `dtypes.text_encoder_dtype`); `weights`: the user's own weight files
    (`locate_sources`); `text_encoder=False`: a process that never loads the text encoder (the ranks of a parallel run
    other than the main one), planned without it; `quantize` / `text_encoder_quantize`: the recipe the transformer / the
    text encoder is quantized to as it loads (its size is then our quantizer's for it). `dtype` None: what
    `load_pipeline` picks on that device (`settings.resolve_dtype`: fp16 (or fp32) before compute capability 8.0, else
    bfloat16). `first_step`: a resumed run's first step; one resumed past the guidance window plans one row per forward,
    as it runs (`Settings.guided`). `sizes`: `model_sizes` of these sources, dtype and text encoder dtype counted
    already (`PlannedRun.sizes`), not counted again. `attention_backend`: `--attention-backend` (with `auto` and
    `triton` the denoise stage counts Triton's tuning buffer for our attention kernel). `loras`: the checked LoRA
    files the run applies (`check_loras`): on a packed transformer their adapters count with their blocks.
    `adapter_temporaries=False`: those adapters' weights are counted, not the temporaries their updates keep as a
    layer runs (a server's refusal asks which of the two a loaded plan has no room for). `gpu`: the CUDA GPU as
    another process read it (`gpu_memory.GpuReading`; `motif-lite run --gpus N` reads its GPUs in a child process):
    planned from its figures, without starting CUDA in this process. `configs_read`: the checkpoint's configs as a
    caller read them already (`motif-lite check`, `CheckpointConfigs.read`), not read again where their folder is the
    one found.
    """
    for name, gib in (("vram", vram_gib), ("ram", ram_gib)):
        if gib is not None and not positive_budget(gib):
            budget = both_spellings(f"--{name}", f"{name}_gib")  # plan_generation is called from Python too
            raise ConfigError(f"{budget} must be a positive number of GiB, got {gib!r}")
    given = checked_dtype(dtype) if dtype is not None else None
    if text_encoder_dtype is not None:
        text_encoder_dtype = checked_dtype(text_encoder_dtype, "text_encoder_dtype")
    if isinstance(model, ModelSources):
        sources = model
    else:
        sources = locate_sources(
            model, gguf, text_encoder_gguf=text_encoder_gguf, weights=weights, configs_read=configs_read, **AT_HAND
        )
    sources = with_quantize(sources, quantize, text_encoder_quantize)
    target = parse_device(device)
    here = is_here(target) and gpu is None  # a GPU read elsewhere is planned from its figures: CUDA is not started
    # What load_pipeline picks on that device; for a GPU this machine lacks (its capability unknown), without it.
    if gpu is not None and given is None:
        dtype = default_dtype_of(gpu.facts)[0]
    else:
        dtype = resolve_dtype(given, target if here else None).value
    text_encoder_dtype = text_encoder_dtype_of(dtype, text_encoder_dtype, by_default=given is None)
    budget = device_budget(target, vram_gib) if gpu is None else _read_gpu_budget(gpu, vram_gib)
    inputs = _planner_inputs(
        request, sources, dtype, target, kernels, attention, batch_guidance, sequence_parallel, text_encoder_dtype,
        text_encoder, first_step, sizes, attention_backend, loras, adapter_temporaries, gpu,
    )  # fmt: skip
    plan = plan_memory(
        inputs, budget, device=str(target), step_cache=step_cache, sequence_parallel=sequence_parallel,
        ram_budget_bytes=None if ram_gib is None else int(ram_gib * 2**30),
    )  # fmt: skip
    if vram_gib is not None and target.type == "cuda" and (gpu is not None or here):  # the free memory's fits it
        use = gpu_use(target) if gpu is None else gpu.use
        if (over := plan_over_room_note(vram_gib, plan.reserved_bytes, use, windows_gpu_driver())) is not None:
            warnings.warn(over, stacklevel=2)
    return dataclasses.replace(plan, attention=attention)


# The smallest run the planner makes: one 64x64 frame, one unguided step, the transformer and the text encoder in
# the smallest types motif-lite quantizes each to (`quantize.RECIPES`' Q2_K, `quantize.TEXT_RECIPES`' Q4_K_M).
SMALLEST_RUN = GenerationRequest("a fox", width=64, height=64, frames=1, steps=1, seed=0, cfg_scale=0.0)

SMALLEST_TYPES = {"quantize": "Q2_K", "text_encoder_quantize": "Q4_K_M"}


def smallest_run_host_bytes(device: str) -> int:
    """The host memory the smallest run (`SMALLEST_RUN`, `SMALLEST_TYPES`) needs as it loads on `device` ("cpu" or
    "cuda"), by the planner's host estimate: below it no run loads (`check`'s floor under a memory limit). From the
    configs at hand, else the official ones: no weights, no network. The device memory is not planned (a budget no
    plan misses): only the host's is asked."""
    with quiet_warnings():  # the estimate against the memory available now: the caller says what it finds
        plan = plan_generation(SMALLEST_RUN, device=device, vram_gib=1e6, **SMALLEST_TYPES)
    return plan.host.load_bytes


def _planner_inputs(
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    target: torch.device,
    kernels: str,
    attention: str,
    batch_guidance: bool | None,
    sequence_parallel: int = 1,
    text_encoder_dtype: torch.dtype | None = None,
    text_encoder: bool = True,
    first_step: int = 0,
    sizes: ModelSizes | None = None,
    attention_backend: str = "auto",
    loras: Sequence[LoRAFile] = (),
    adapter_temporaries: bool = True,
    gpu: GpuReading | None = None,
) -> PlannerInputs:
    """What the planner's estimates (`plan_memory`, `unplanned_peak_bytes`) take about `request` on this model,
    dtype and device: the sizes from the files' headers, the rows per forward (from `first_step` on: a resumed
    run's steps left), the kernels' savings and costs. `sizes`: those sizes counted already; `gpu`: the GPU as
    another process read it (`plan_generation`)."""
    here = is_here(target) and gpu is None
    if gpu is not None:
        kernels = _kernels_on(kernels, gpu.facts)  # as `use_triton` decides on the GPU at hand
    sizes = sizes or model_sizes(sources, dtype, text_encoder_dtype)
    config = sources.transformer.value
    tokens = video_tokens(request.width, request.height, request.frames, config, sizes.vae_config)
    guided = resolve_settings(request, sources.configs, sources.transformer, first_step=first_step).guided
    # A parallel run computes the two guidance predictions in separate calls (on separate ranks when it can).
    batched = guided and batched_guidance(batch_guidance, target)[0] and sequence_parallel == 1
    triton_on = target.type == "cuda" and (use_triton(kernels, target) if here else kernels != "torch")
    # The first frame's tokens: the checkpoint's (from its configs as read), not a constant.
    tower = ImageTowerShape.of_config(sources.configs.text_encoder_config)
    image_tokens = tower.tokens if request.conditions_on_image else 0
    # A LoRA on packed linears keeps its adapter beside each, in the run's dtype; on float ones it merges: no bytes.
    packed = packed_weight_names(sources) if loras else frozenset()
    adapters = side_adapter_bytes(list(loras), dtype) if packed else None
    if adapters:
        adapters = {module: n for module, n in adapters.items() if f"{module}.weight" in packed}
    temporaries = side_adapter_temporary_bytes(list(loras), dtype) if adapters and adapter_temporaries else {}
    token_bytes = {module: n for module, n in temporaries.items() if f"{module}.weight" in packed} or None
    return PlannerInputs(
        width=request.width, height=request.height, frames=request.frames, transformer_config=config,
        weight_bytes=sizes.transformer_bytes, text_encoder_bytes=sizes.text_encoder_bytes if text_encoder else 0,
        vae_config=sizes.vae_config, cfg_batch=2 if batched else 1, vae_dtype=dtype, activation_dtype=dtype,
        text_encoder_dtype=text_encoder_dtype,  # None: the planner picks what load_pipeline does
        fused_norms=triton_on, autotune_bytes=autotune_buffer_bytes(triton_on),
        text_encoder_quantized=text_encoder and sizes.text_encoder_quantized,  # packed blocks, not F32/F16 tensors
        triton_attention=triton_on and attention_backend in ("auto", "triton"),  # auto's trial times our kernel
        attention_workspace_bytes=functools.partial(
            attention_workspace_bytes, attention, config, tokens, image_tokens=image_tokens
        ),
        image=request.conditions_on_image,  # the first frame goes through the VAE
        image_tower=tower, adapter_bytes=adapters, adapter_token_bytes=token_bytes,
    )  # fmt: skip


def kernels_on_unread_gpus(kernels: str) -> str:
    """`kernels` as the ranks of `run --gpus N` resolve it on this machine's GPUs where the launcher could not read
    them, from what is known without starting CUDA: a ROCm build (AMD GPUs), Triton's import and its launcher's
    build. Planned with Triton's kernels, as for a GPU not here, a run whose ranks run torch's ops was planned unlike
    theirs: Triton's tuning buffers made its smallest plan larger, and a --vram every rank fits was refused. The
    GPUs' compute capability is not known: one too old for Triton runs in float32, planned larger than this anyway."""
    return _kernels_on(kernels, GpuFacts(AMD if rocm_build() else NVIDIA, "", None))


def _kernels_on(kernels: str, gpu: GpuFacts) -> str:
    """`kernels` as `use_triton` resolves it on `gpu`, read by another process: "auto" runs torch's ops on AMD and
    where Triton's cannot run; "triton" there is refused (`KernelBackendError`, in `use_triton`'s words), once,
    before the ranks start and each refuses it."""
    if kernels == "torch":
        return kernels
    problem = triton_problem_of(gpu)
    if kernels == "triton" and problem is not None:
        raise KernelBackendError(f"kernel backend 'triton' is not possible here: {problem}")
    if kernels == "auto" and (gpu.is_amd or problem is not None):
        return "torch"
    return kernels


def unplanned_memory_warning(
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    kernels: str = "auto",
    attention: str = "exact",
    batch_guidance: bool | None = None,
    text_encoder_dtype: torch.dtype | None = None,
) -> str | None:
    """What `load_pipeline` without a plan says on a CUDA `device` (here) whose whole memory is less than the
    planner's estimate of the official video with everything on it (what a pipeline without a plan does, the
    guidance predictions batched as it batches them): that video would run out of memory at its first step.
    None when it fits, or on another device."""
    if device.type != "cuda":
        return None
    official = GenerationRequest("-")
    inputs = _planner_inputs(
        official, sources, dtype, device, kernels, attention, batch_guidance, 1, text_encoder_dtype
    )
    need = unplanned_peak_bytes(inputs)
    total = gpu_memory(device)[1]
    if need <= total:
        return None
    size = f"{official.width}x{official.height}x{official.frames}"
    return (
        f"no memory plan: everything goes on {torch.cuda.get_device_name(device)}, whose {memory_size(total)} "
        f"are less than the {memory_size(need)} the planner estimates for the official {size} video that way, "
        "so a video near that size would run out of memory at its first step. Plan for the largest video you will "
        "make: plan = plan_generation(request, model, dtype=..., device=...) (from motif_lite.preflight, with "
        "load_pipeline's model and files), then load_pipeline(..., plan=plan), which streams and splits what does "
        'not fit (docs/usage.md, "In a notebook")'
    )


def packed_adapter_macs(sources: ModelSources, loras: Sequence[LoRAFile], dtype: torch.dtype) -> dict[str, int]:
    """Multiply-adds per token of the LoRA adapters kept beside the transformer's packed layers
    (`lora_apply.side_adapter_macs`), for the time estimate: a LoRA on a float layer merges and costs nothing."""
    packed = packed_weight_names(sources) if loras else frozenset()
    if not packed:
        return {}
    return {m: macs for m, macs in side_adapter_macs(list(loras), dtype).items() if f"{m}.weight" in packed}
