"""What `run` and `serve` do before loading the model: `preflight` with the command's flags (every check, and any
download), the notes on what was found, and the memory plan when there is a budget (--vram / --ram) or CUDA; and
what a planned run says when it runs out of device memory all the same."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from motif_lite.log_filters import quiet_warnings

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from transformers import PreTrainedTokenizerBase

    from motif_lite.checkpoint import GGUFFilesRead, ModelSources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.parallel import Parallel, ParallelLayout
    from motif_lite.runtime.planner import Plan
    from motif_lite.weights.lora_specs import LoRAEntry
    from motif_lite.weights.lora_updates import LoRAFile


def preflight_flags(
    args: argparse.Namespace,
    device: str | torch.device,
    before_download: Callable[[DownloadPlan], None] | None = None,
    loras: Iterable[tuple[Path, float]] = (),
    header_read: GGUFFilesRead | None = None,
) -> tuple[ModelSources, torch.device]:
    """`preflight` of the model the flags name: every check, and any download, before planning (so that the plan is
    made from the files that will load, not from the built-in sizes of a model not yet on disk); the speed flags
    with the device (`preflight.check_speed_on_device`) and the `loras` (--lora's files and strengths) before any
    download. `before_download`: called just before a download starts (`run` asks its CPU time question there).
    `header_read`: the GGUF files read already (serve's `check_gguf_files`, run's `gguf_header_read_first`), not
    read again."""
    from motif_lite.io.gguf_source import refuse_variant_flag
    from motif_lite.preflight import preflight
    from motif_lite.weights.lora_specs import LoRASpec

    refuse_variant_flag(args.gguf)  # in run's words: `preflight` says it in Python's
    quantize = getattr(args, "quantize", None)  # run's flags (serve has neither)
    text_encoder_quantize = getattr(args, "text_encoder_quantize", None)
    return preflight(
        args.model, args.gguf, device, args.kernels, text_encoder_gguf=args.text_encoder_gguf, weights=args.weights,
        quantize=quantize,
        text_encoder_quantize=text_encoder_quantize, before_download=before_download,
        device_checks=speed_checks(args, args.dtype), loras=[LoRASpec(path, strength) for path, strength in loras],
        header_read=header_read,
    )  # fmt: skip


def speed_checks(args: argparse.Namespace, dtype: torch.dtype | str | None) -> Callable[[torch.device], None]:
    """`preflight.check_speed_on_device` with the speed flags, to call with the device: `preflight`'s `device_checks`
    (with --dtype), and a dry run's, which does not preflight (with the dtype it resolved)."""
    from motif_lite.preflight import check_speed_on_device

    return functools.partial(
        check_speed_on_device, attention=args.attention, kernels=args.kernels,
        attention_backend=args.attention_backend, compile=args.compile, dtype=dtype,
    )  # fmt: skip


def sources_at_hand(
    args: argparse.Namespace,
    *,
    text_encoder_gguf: bool = True,
    quantized: bool = True,
    header_read: GGUFFilesRead | None = None,
    configs_read: CheckpointConfigs | None = None,
) -> ModelSources:
    """The model the flags name as far as it is at hand (a folder, the Hugging Face cache; no download): its files
    and configs, else the official configs bundled with motif-lite (`locate_sources` with `memory_plan.AT_HAND`).
    `text_encoder_gguf=False`: without --text-encoder-gguf, where it changes nothing and its problems are the later
    checks' to name. `quantized`: with --quantize / --text-encoder-quantize applied (`quantized_as_asked`).
    `header_read`: the GGUF files read already (`preflight.gguf_header_read_first`), not read again. `configs_read`:
    the configs an earlier look at the same files read, not read again (`locate_sources`)."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.io.gguf_source import refuse_variant_flag
    from motif_lite.memory_plan import AT_HAND

    refuse_variant_flag(args.gguf)  # in run's words: `locate_sources` says it in Python's
    text_gguf = args.text_encoder_gguf if text_encoder_gguf else None
    sources = locate_sources(
        args.model, args.gguf, text_encoder_gguf=text_gguf, weights=args.weights, header_read=header_read,
        configs_read=configs_read, **AT_HAND,
    )  # fmt: skip
    return quantized_as_asked(sources, args) if quantized else sources


def quantized_as_asked(sources: ModelSources, args: argparse.Namespace) -> ModelSources:
    """`sources` with the --quantize and --text-encoder-quantize recipes (`quantize_settings.with_quantize`; serve has
    neither flag)."""
    from motif_lite.quantize_settings import with_quantize

    quantize, text_encoder_quantize = getattr(args, "quantize", None), getattr(args, "text_encoder_quantize", None)
    return with_quantize(sources, quantize, text_encoder_quantize)


def sources_before_download(
    args: argparse.Namespace,
    header_read: GGUFFilesRead | None = None,
    located: Callable[[], ModelSources] | None = None,
) -> ModelSources | None:
    """What a memory plan made before the checkpoint downloads counts with (a run's refusal before its download, the
    launcher's plan of the ranks): the files and configs at hand (a folder, the cache), else, for the official model,
    its configs bundled with motif-lite; None for another model not at hand, whose sizes may differ from the
    official ones: it is planned once its files are there. Raises what `locate_sources` finds wrong at hand.
    `header_read`: the GGUF files read already, not read again. `located`: what gives `sources_at_hand(args,
    quantized=False)` located once already (the checks before a download share one), not located again."""
    from motif_lite.choices import MOTIF_REPO

    sources = located() if located is not None else sources_at_hand(args, quantized=False, header_read=header_read)
    if sources.root is None and str(args.model) != MOTIF_REPO:
        return None
    return quantized_as_asked(sources, args)  # only now: a recipe's problem is not another model's to name


def refuse_what_no_plan_fits(
    args: argparse.Namespace,
    request: GenerationRequest | Callable[[ModelSources], GenerationRequest],
    device: str | torch.device,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
    header_read: GGUFFilesRead | None = None,
    located: Callable[[], ModelSources] | None = None,
) -> Plan | None:
    """Before a download: the memory plan the run will make (`plan_if_budget`; in a parallel run this rank's, by
    its `layout` and whether it loads the `text_encoder`), from the configs at hand or the official ones
    (`sources_before_download`), raising its refusal when even the smallest plan does not fit the device budget or
    --ram: said now, not after gigabytes of downloading for a run that is then refused. A problem with the flags or
    files is left to the checks, which name it. `request`: the request, or how it follows from those sources (the
    server's: image-to-video where the checkpoint takes images). `header_read`: the GGUF files read already (the
    run's, which its preflight takes too), not read again. `located`: as `sources_before_download`'s. -> the plan
    (None where none is made here)."""
    from motif_lite.cli.common import lora_args
    from motif_lite.devices import resolve_device
    from motif_lite.errors import MotifLiteError
    from motif_lite.settings import resolve_dtype

    try:
        target = resolve_device(device)
        sources = sources_before_download(args, header_read, located)
        dtype = resolve_dtype(args.dtype, target).value
        # The --lora files at hand: their adapters beside packed layers count, as in the plan after the download.
        loras = [] if sources is None else checked_lora_files(lora_args(getattr(args, "lora", None) or []), sources)
    except MotifLiteError:
        return None
    if sources is None:  # another model's sizes are not guessed
        return None
    if plans_nothing(args, target):
        return None
    with quiet_warnings():  # the plan's warnings come with the plan the run prints after the download
        planned = request(sources) if callable(request) else request
        return planned_run(args, planned, sources, dtype, target, layout, text_encoder, loras).plan()


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


def checked_lora_files(loras: Iterable[tuple[Path, float]], sources: ModelSources) -> list[LoRAFile]:
    """The --lora files, read and checked against the transformer's layers (headers and the config: no weights),
    before the plan, which counts their adapters: a LoRA of another model is refused in seconds, by a run as by its
    dry run, a parallel run's launcher and serve (the check `preflight` makes of the files at hand before a
    download, `check_loras_at_hand`)."""
    from motif_lite.preflight import loras_for_config
    from motif_lite.sizes import packed_by, packed_weight_names
    from motif_lite.weights.lora_specs import LoRASpec

    specs = [LoRASpec(path, strength) for path, strength in loras]
    if not specs:
        return []
    return loras_for_config(specs, sources.transformer.value, packed_weight_names(sources), packed_by(sources))


def plans_nothing(args: argparse.Namespace, device: torch.device) -> bool:
    """Whether a run on `device` makes no memory plan: a CPU run without a budget (--vram, --ram) loads everything
    where it runs."""
    return args.vram is None and args.ram is None and device.type != "cuda"


def plan_if_budget(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
    say: Callable = print,
    loras: Sequence[LoRAFile] = (),
) -> tuple[PlannedRun, Plan] | tuple[None, None]:
    """With a budget (--vram, --ram) or on CUDA: the memory plan of `request`, printed, with what it was made for
    (`planned_run`: the out-of-memory advice plans again from it); it raises if nothing fits, before anything loads.
    Else (None, None): a run that `plans_nothing`."""
    if plans_nothing(args, device):
        return None, None
    planned = planned_run(args, request, sources, dtype, device, layout, text_encoder, loras)
    plan = planned.plan()
    say(plan.describe(), file=sys.stderr)
    if (note := smaller_transformer_note(planned, plan)) is not None:
        say(f"note: {note}", file=sys.stderr)
    return planned, plan


def planned_batch_guidance(
    wanted: bool | None, device: torch.device, plan: Plan | None, guided: bool
) -> tuple[bool, str | None]:
    """`--batch-guidance` as the memory plan allows (`memory_plan.batched_guidance`), run's and serve's, and the note
    when the flag asked for it and there is no room for steps that are `guided`: the planner falls back to one row
    per forward where batch 2 does not fit, and a batch-2 forward would then need twice the activation memory the
    plan counted."""
    from motif_lite.memory_plan import batched_guidance
    from motif_lite.runtime.budget_advice import free_for
    from motif_lite.units import memory_size

    batched, refused = batched_guidance(wanted, device, plan)
    if refused and guided:
        # Not "allow more memory (--vram)": without --vram the budget is all the free memory already, and a budget
        # above it runs out of memory (or spills into system memory on Windows): the free memory is named too.
        budget = "" if plan is None or plan.budget_bytes is None else f" this plan's {memory_size(plan.budget_bytes)}"
        more = "a higher --vram where the GPU has that much free"
        if plan is not None and plan.batched_vram_gib is not None:
            vram, free = plan.batched_vram_gib, free_for(plan.batched_vram_gib)
            more = f"--vram {vram:.2f} (the least budget that batches them) where the GPU has {free:.2f} GiB free"
        return batched, (
            "--batch-guidance does not fit the memory plan (room for one prediction per transformer forward): the "
            f"two guidance predictions run one after the other; batching them needs more than{budget or ' its'} "
            f"budget: a smaller video, or {more}"
        )
    return batched, None


def load_from_flags(
    args: argparse.Namespace,
    sources: ModelSources,
    device: torch.device,
    plan: Plan | None,
    loras: Sequence[LoRAEntry],
    batch_guidance: bool | None,
    parallel: Parallel | None = None,
    *,
    prompt_tokenizer: PreTrainedTokenizerBase | None = None,
) -> MotifVideoPipeline:
    """`load_pipeline` of the checked `sources` (`preflight_flags`) as run and serve load it: the flags' dtype,
    kernels, attention and speed settings, with the memory `plan`, the `loras` (--lora's (file, strength) pairs, or
    the `LoRAFile`s read from them already) and `batch_guidance` as the plan allows; `parallel`: this rank's part of
    a parallel run; `prompt_tokenizer`: the checkpoint's, loaded already to measure the prompts (not loaded again)."""
    from motif_lite.cli.run_inputs import run_inputs
    from motif_lite.pipeline import load_pipeline

    return load_pipeline(
        sources, dtype=args.dtype, device=device, kernels=args.kernels, plan=plan, loras=loras,
        attention=args.attention, parallel=parallel, batch_guidance=batch_guidance, compile=args.compile,
        attention_backend=args.attention_backend,  # unused with int8 attention (flag_notes says so)
        # A parallel run has no step cache: `launch.parallel_layout` refused any but 0, which reuses nothing.
        step_cache=args.step_cache if parallel is None else None,
        text_encoder_dtype=run_inputs(args).text_encoder_dtype, prompt_tokenizer=prompt_tokenizer,
    )  # fmt: skip


def text_encoder_words(sources: ModelSources) -> str | None:
    """The text encoder a run loads, in words for what it says once loaded: quantized as it loads
    (--text-encoder-quantize, run's only), a GGUF file, else None (the checkpoint's own)."""
    if sources.text_encoder_quantize is not None:
        return f"quantized to {sources.text_encoder_quantize} as it loaded"
    return None if sources.text_encoder_gguf is None else sources.text_encoder_gguf.describe()


# The GGUF a streamed full-precision transformer is pointed to: the official 4-bit file, a third of bf16's bytes.
SMALLER_TRANSFORMER = "Q4_K_M"


def smaller_transformer_note(planned: PlannedRun, plan: Plan) -> str | None:
    """When `plan` (made for `planned`) streams blocks of a transformer loaded in full precision (an 8 GB GPU's
    default run), what `--gguf Q4_K_M` would plan instead (the planner's estimate for the same request and budget);
    None where the transformer is quantized already, is the user's own file, or nothing is streamed or gained."""
    import torch

    from motif_lite.errors import MotifLiteError
    from motif_lite.quantize_settings import with_quantize
    from motif_lite.units import memory_size

    sources = planned.sources
    own_file = "transformer" in sources.weight_files  # an fp8 copy, say: not ours to judge
    quantized = sources.gguf is not None or sources.gguf_request is not None or sources.quantize is not None
    if plan.resident_blocks is None or own_file or quantized or torch.device(plan.device).type != "cuda":
        return None
    try:
        smaller = with_quantize(sources, SMALLER_TRANSFORMER)  # our recipe's size: the official file's
        with quiet_warnings():  # the budget's and the host's warnings were given for `plan`
            other = planned.with_sources(smaller).plan()
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
        f"the transformer in {str(planned.dtype).removeprefix('torch.')} does not fit whole: {streamed} of its "
        f"{plan.num_blocks} blocks stream from host memory at every forward. --gguf {SMALLER_TRANSFORMER} (4-bit "
        f"weights, a third of the bytes) {gain}: est. peak {memory_size(other.peak_bytes)} allocated{host} "
        "(the planner's estimate)"
    )


def planned_run(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device | str,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
    loras: Sequence[LoRAFile] = (),
) -> PlannedRun:
    """What the memory plan of the run the flags ask for is made for (its `plan()`, which raises when nothing fits);
    in a parallel run (`layout`) one rank's, which never batches the guidance branches (they run one call each, on
    their own ranks with cfg 2): one row per forward. So does a resumed run with no guided step left (`first_step`).
    Only the main rank loads the text encoder (`text_encoder`); the plans printed before a run are the main rank's."""
    from motif_lite.cli.run_inputs import run_inputs
    from motif_lite.memory_advice import PlannedRun

    return PlannedRun(
        request, sources, dtype, device, vram_gib=args.vram, ram_gib=args.ram, kernels=args.kernels,
        attention=args.attention, batch_guidance=args.batch_guidance if layout is None else False,
        step_cache=bool(args.step_cache), sequence_parallel=layout.sp if layout is not None else 1,
        text_encoder=text_encoder, first_step=first_step(args), attention_backend=args.attention_backend,
        dtype_by_default=args.dtype is None, text_encoder_given=run_inputs(args).text_encoder_dtype, loras=tuple(loras),
    )  # fmt: skip


def first_step(args: argparse.Namespace) -> int:
    """The first step the run samples: a resumed run's (`--resume`) steps already done, else 0. What the settings
    (`resolve_settings(first_step=)`), the memory plan and the time estimate count from."""
    from motif_lite.cli.run_inputs import run_inputs

    return run_inputs(args).resumed_at  # set by resume_args; 0 for the commands that resume nothing


@contextlib.contextmanager
def figures_on_out_of_memory(
    planned: PlannedRun | None, plan: Plan | None, advice: Callable[[PlannedRun, Plan], str] | None = None
) -> Iterator[None]:
    """Torch's out-of-memory error raised inside, with a note of what to do in figures (`advice`, by default
    `run_out_of_memory_advice`: run's words), which `motif-lite` prints in place of its advice without figures; nothing
    is added without a plan."""
    import torch

    from motif_lite.keeping import DECODE_ADVICE_GIVEN

    try:
        yield
    except torch.OutOfMemoryError as exc:
        if planned is None or plan is None or getattr(exc, DECODE_ADVICE_GIVEN, False):  # a decode's: its own
            raise
        with contextlib.suppress(Exception):  # a help: failing to make it must not hide the error it is for
            exc.add_note((advice or run_out_of_memory_advice)(planned, plan))
        raise


def run_out_of_memory_advice(planned: PlannedRun, plan: Plan) -> str:
    """What to do when a run made with `plan` ran out of device memory, with the figures the planner's refusals give
    (`memory_advice.out_of_memory_figures`): the plan's budget and estimated peak, and the --vram just under that
    peak, which gives the next plan down the ladder, said in words; where no plan fits under it, the way to the
    sizes that do."""
    from motif_lite.memory_advice import out_of_memory_figures

    figures = out_of_memory_figures(planned, plan)
    lower = figures.lower_gib
    if (under := figures.under_the_smallest_plan()) is not None:  # other processes hold what a smaller plan needs
        return f"{figures.said}. {under}: close what holds GPU memory, or make a smaller video"
    if lower is None:
        return f"{figures.said}. Make a smaller video"
    if figures.next_plan is None:
        return (
            f"{figures.said}. No plan of this video needs less: make a smaller video (--dry-run --vram {lower:.2f} "
            "names the sizes that fit)"
        )
    return (
        f"{figures.said}. --vram {lower:.2f} ({figures.lower_why}) gives {figures.next_plan_words()} (--dry-run "
        f"--vram {lower:.2f} shows it)"
    )
