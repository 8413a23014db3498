"""What `run` and `serve` do before loading the model: `preflight` with the command's flags (every check, and any
download), the notes on what was found, and the memory plan when there is a budget (--vram / --ram) or CUDA; and
what a planned run says when it runs out of device memory all the same."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.parallel import ParallelLayout
    from motif_lite.runtime.planner import Plan


def preflight_flags(
    args: argparse.Namespace,
    device: str | torch.device,
    before_download: Callable[[DownloadPlan], None] | None = None,
    loras: Iterable[tuple[Path, float]] = (),
) -> tuple[ModelSources, torch.device]:
    """`preflight` of the model the flags name: every check, and any download, before planning (so that the plan is
    made from the files that will load, not from the built-in sizes of a model not yet on disk); the speed flags
    with the device (`preflight.check_speed_on_device`) and the `loras` (--lora's files and strengths) before any
    download. `before_download`: called just before a download starts (`run` asks its CPU time question there)."""
    from motif_lite.preflight import check_speed_on_device, preflight
    from motif_lite.weights.lora import LoRASpec

    quantize = getattr(args, "quantize", None)  # run's flags (serve has neither)
    text_encoder_quantize = getattr(args, "text_encoder_quantize", None)
    speed = functools.partial(
        check_speed_on_device,
        attention=args.attention,
        kernels=args.kernels,
        attention_backend=args.attention_backend,
        compile=args.compile,
        dtype=args.dtype,
    )
    return preflight(
        args.model, args.gguf, device, args.kernels, args.text_encoder_gguf, weights=args.weights, quantize=quantize,
        text_encoder_quantize=text_encoder_quantize, before_download=before_download, device_checks=speed,
        loras=[LoRASpec(path, strength) for path, strength in loras],
    )  # fmt: skip


def sources_before_download(args: argparse.Namespace) -> ModelSources | None:
    """What a memory plan made before the checkpoint downloads counts with (a run's refusal before its download, the
    launcher's plan of the ranks): the files and configs at hand (a folder, the cache), else, for the official model,
    its configs bundled with motif-lite; None for another model not at hand, whose sizes may differ from the
    official ones: it is planned once its files are there. Raises what `locate_sources` finds wrong at hand."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.preflight import AT_HAND, with_quantize

    sources = locate_sources(args.model, args.gguf, args.text_encoder_gguf, weights=args.weights, **AT_HAND)
    if sources.root is None and str(args.model) != MOTIF_REPO:
        return None
    # serve has no --quantize or --text-encoder-quantize
    quantize, text_encoder_quantize = getattr(args, "quantize", None), getattr(args, "text_encoder_quantize", None)
    return with_quantize(sources, quantize, text_encoder_quantize)


def refuse_what_no_plan_fits(
    args: argparse.Namespace,
    request: GenerationRequest,
    device: str | torch.device,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
) -> None:
    """Before a download: the memory plan the run will make (`plan_if_budget`; in a parallel run this rank's, by
    its `layout` and whether it loads the `text_encoder`), from the configs at hand or the official ones
    (`sources_before_download`), raising its refusal when even the smallest plan does not fit the device budget or
    --ram: said now, not after gigabytes of downloading for a run that is then refused. A problem with the flags or
    files is left to the checks, which name it."""
    from motif_lite.devices import resolve_device
    from motif_lite.errors import MotifLiteError
    from motif_lite.settings import resolve_dtype

    try:
        target = resolve_device(device)
        sources = sources_before_download(args)
        dtype = resolve_dtype(args.dtype, target).value
    except MotifLiteError:
        return
    if sources is None:  # another model's sizes are not guessed
        return
    if args.vram is None and args.ram is None and target.type != "cuda":  # a run that plans nothing (plan_if_budget)
        return
    with warnings.catch_warnings():  # the plan's warnings come with the plan the run prints after the download
        warnings.simplefilter("ignore")
        plan_run(args, request, sources, dtype, target, layout, text_encoder=text_encoder)


def loading_notes(
    sources: ModelSources,
    device: torch.device,
    asked_device: str,
    settings_notes: Iterable[str] = (),
) -> list[str]:
    """The notes printed before loading, in order: the device's (`asked_device`, --device: auto on a Mac, whose GPU is
    not used), the files' (where they came from) and the settings' (a run's). The dtype's advice (bf16 asked for on
    a GPU without bf16 tensor cores) is `load_pipeline`'s warning, before it loads."""
    from motif_lite.devices import auto_cpu_note

    device_note = auto_cpu_note(asked_device, device)
    return [*([device_note] if device_note else []), *sources.notes, *settings_notes]


def plan_if_budget(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
    say: Callable = print,
) -> Plan | None:
    """With a budget (--vram, --ram) or on CUDA: the memory plan of `request`, printed; it raises if nothing fits,
    before anything loads. Else None: a CPU run without a budget loads everything where it runs."""
    if args.vram is None and args.ram is None and device.type != "cuda":
        return None
    plan = plan_run(args, request, sources, dtype, device, layout, text_encoder=text_encoder)
    say(plan.describe(), file=sys.stderr)
    if (note := smaller_transformer_note(args, request, sources, dtype, device, plan, layout)) is not None:
        say(f"note: {note}", file=sys.stderr)
    return plan


# The GGUF a streamed full-precision transformer is pointed to: the official 4-bit file, a third of bf16's bytes.
SMALLER_TRANSFORMER = "Q4_K_M"


def smaller_transformer_note(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    plan: Plan,
    layout: ParallelLayout | None = None,
) -> str | None:
    """When `plan` streams blocks of a transformer loaded in full precision (an 8 GB GPU's default run), what
    `--gguf Q4_K_M` would plan instead (the planner's estimate for the same request and budget); None where the
    transformer is quantized already, is the user's own file, or nothing is streamed or gained."""
    import torch

    from motif_lite.errors import MotifLiteError
    from motif_lite.preflight import with_quantize
    from motif_lite.units import memory_size

    own_file = "transformer" in sources.weight_files  # an fp8 copy, say: not ours to judge
    quantized = sources.gguf is not None or sources.gguf_request is not None or sources.quantize is not None
    if plan.resident_blocks is None or own_file or quantized or torch.device(plan.device).type != "cuda":
        return None
    try:
        smaller = with_quantize(sources, SMALLER_TRANSFORMER)  # our recipe's size: the official file's
        with warnings.catch_warnings():  # the budget's and the host's warnings were given for `plan`
            warnings.simplefilter("ignore")
            other = plan_run(args, request, smaller, dtype, device, layout)
    except MotifLiteError:  # nothing fits with it either, or a model the recipe does not take
        return None
    streamed = plan.num_blocks - plan.resident_blocks
    if other.resident_blocks is None:
        gain = "keeps it whole on the GPU"
    elif other.resident_blocks > plan.resident_blocks:
        gain = f"streams {other.num_blocks - other.resident_blocks} of them"
    else:
        return None
    host = ""
    if plan.host is not None and other.host is not None and other.host.peak_bytes < plan.host.peak_bytes:
        host = f", and {memory_size(plan.host.peak_bytes - other.host.peak_bytes)} less host memory"
    return (
        f"the transformer in {str(dtype).removeprefix('torch.')} does not fit whole: {streamed} of its "
        f"{plan.num_blocks} blocks stream from host memory at every forward. --gguf {SMALLER_TRANSFORMER} (4-bit "
        f"weights, a third of the bytes) {gain}: est. peak {memory_size(other.peak_bytes)} allocated{host} "
        "(the planner's estimate)"
    )


def plan_run(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device | str,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
    vram_gib: float | None = None,
) -> Plan:
    """The memory plan of the run the flags ask for (raises when nothing fits); in a parallel run (`layout`) the plan
    of one rank, which never batches the guidance branches (they run one call each, on their own ranks with cfg 2):
    one row per forward. Only the main rank loads the text encoder (`text_encoder`); the plans printed before a
    run are the main rank's. `vram_gib`: the budget, where it is not --vram's (None: --vram, else the device's free
    memory)."""
    from motif_lite.preflight import plan_generation

    return plan_generation(
        request, sources, dtype=dtype, device=device, vram_gib=args.vram if vram_gib is None else vram_gib,
        kernels=args.kernels, attention=args.attention, sequence_parallel=layout.sp if layout is not None else 1,
        ram_gib=args.ram, batch_guidance=False if layout is not None else args.batch_guidance,
        step_cache=bool(args.step_cache), text_encoder=text_encoder,
    )  # fmt: skip


@contextlib.contextmanager
def figures_on_out_of_memory(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    plan: Plan | None,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
) -> Iterator[None]:
    """Torch's out-of-memory error raised inside, with a note of what to do in figures (`out_of_memory_advice`),
    which `motif-lite` prints in place of its advice without figures; nothing is added without a plan."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as exc:
        if plan is None:
            raise
        with contextlib.suppress(Exception):  # a help: failing to make it must not hide the error it is for
            exc.add_note(out_of_memory_advice(args, request, sources, dtype, device, plan, layout, text_encoder))
        raise


def out_of_memory_advice(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    plan: Plan,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
) -> str:
    """What to do when a run made with `plan` ran out of device memory, with the figures the planner's refusals give:
    the plan's budget and estimated peak, and the --vram just under that peak, which gives the next plan down the
    ladder (slower, in less memory), said in words; where no plan fits under it, the way to the sizes that do."""
    from motif_lite.errors import MotifLiteError
    from motif_lite.units import GiB, memory_size

    where = "--vram" if args.vram is not None else "the GPU's free memory at the start / 1.08"
    said = (
        f"the memory plan ({plan.ladder_index + 1} of {plan.ladder_size}) had a budget of "
        f"{memory_size(plan.budget_bytes)} ({where}) for an est. peak of {memory_size(plan.peak_bytes)} allocated "
        f"(~{memory_size(plan.reserved_bytes)} reserved): another program may have taken GPU memory since (close it), "
        "or the estimate fell short"
    )
    lower = math.floor((plan.peak_bytes - 1) / GiB * 100) / 100  # rounded down: its budget is under the peak
    if lower <= 0:  # a peak under 0.01 GiB: no --vram figure under it
        return f"{said}. Make a smaller video"
    try:
        with warnings.catch_warnings():  # the budget's warnings were given with the plan
            warnings.simplefilter("ignore")
            smaller = plan_run(args, request, sources, dtype, device, layout, text_encoder, vram_gib=lower)
    except MotifLiteError:  # nothing fits under this plan's peak
        return (
            f"{said}. No plan of this video needs less: make a smaller video (--dry-run --vram {lower:.2f} names "
            "the sizes that fit)"
        )
    moves = smaller.in_words().removeprefix("In short: ")
    return (
        f"{said}. --vram {lower:.2f} (just under that peak) gives the next plan, {smaller.ladder_index + 1}: "
        f"{moves} (--dry-run --vram {lower:.2f} shows it)"
    )
