"""What `motif-lite run` and its dry run do before a run loads (`prepare`), in one order so that a check made for one
is made for the other: the checks of the device, the speed flags and the files, the notes on what was found, the
prompts the text encoder will cut, the memory plan and the time; and what a dry run says of a device this machine
lacks. The steps that `serve` shares are in prepare."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite import launcher_variables
from motif_lite.cli.before_download import ask_before_download, prompts_measured, rank_refuses_before_download
from motif_lite.cli.common import print_notes
from motif_lite.cli.kernel_cache import writable_kernel_cache
from motif_lite.cli.launch import missing_gpus
from motif_lite.cli.prepare import (
    checked_lora_files,
    first_step,
    loading_notes,
    plan_if_budget,
    planned_batch_guidance,
    planned_run,
    preflight_flags,
    smaller_transformer_note,
    sources_at_hand,
)
from motif_lite.cli.resume import refused_settings_of_resumed
from motif_lite.cli.run_inputs import given_sources, run_inputs
from motif_lite.cli.run_time import CpuTimeQuestion, dry_run_time_notes, say_run_time
from motif_lite.cli.settings_from import recalled_model_notes, recalled_settings_notes
from motif_lite.request import GenerationRequest
from motif_lite.units import RESERVED_RATIO

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from motif_lite.checkpoint import ModelSources
    from motif_lite.encoders.text import PromptTruncation
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.runtime.parallel import Parallel, ParallelLayout
    from motif_lite.runtime.planner import Plan
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile


@dataclass
class _Prepared:
    """A run made ready to load, or to print as a dry run (`prepare`): what was found, on which device, in which
    dtype and with which settings; the memory plan and what it was made for (None, None: a CPU run without a
    budget plans nothing); the --lora files read (for the dry run's table; a run hands them to `load_pipeline`,
    which does not read them again); whether the guidance predictions are batched; and the prompts the text encoder
    will cut, said already."""

    sources: ModelSources
    device: torch.device
    dtype: torch.dtype
    settings: Settings
    planned: PlannedRun | None
    plan: Plan | None
    lora_files: list[LoRAFile]
    batch_guidance: bool
    long_prompts: dict[str, PromptTruncation]
    tokenizer: PreTrainedTokenizerBase | None = None  # loaded to measure them: the text encoder takes it


def prepare(
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    device: str | torch.device,
    loras: list[tuple[Path, float]],
    parallel: Parallel | None = None,
    layout: ParallelLayout | None = None,
    say: Callable = print,
) -> _Prepared:
    """Everything a run and its dry run (--dry-run) do before a run loads, in one order, so that a check made for
    one is made for the other: the checks of the device, the speed flags and the files (a run's `preflight`, with
    any download last; a dry run's of the files at hand: no download, and any GPU may be planned for), the
    --lora files against the transformer's layers, the settings, the notes on what was found, the prompts the text
    encoder will cut, the memory plan (its refusal when nothing fits), then the time (a CPU run's question,
    after every refusal). `parallel`: this rank's part of a run on several processes; `layout`: a dry run's of
    several processes; `say`: print, or `_quiet` on ranks other than the main one."""
    from motif_lite.devices import is_here
    from motif_lite.memory_plan import packed_adapter_macs
    from motif_lite.preflight import gguf_header_read_first
    from motif_lite.ran_on import kernels_a_run_runs, other_machine_note
    from motif_lite.settings import resolve_dtype, resolve_settings

    request = requests[0]  # the videos differ in seed and file only: the first stands for all in the checks
    layout, main = (layout, True) if parallel is None else (parallel.layout, parallel.is_main)
    question = CpuTimeQuestion(args.yes)
    said: dict[str, PromptTruncation] = {}  # the long prompts said before a download: not said again
    tokenizers: dict[Path, PreTrainedTokenizerBase] = {}  # the one that measured them: not loaded again after it
    if args.dry_run:
        sources, device = _checked_at_hand(args)
        kernel_cache = None  # a dry run compiles nothing
    else:  # on the CPU, a long run is asked about before any download
        # The --gguf file's header, read once for preflight and every check before the download.
        header_read = gguf_header_read_first(args.model, args.gguf)
        if parallel is None:
            before_download = ask_before_download(args, requests, device, question, said, header_read, tokenizers)
        else:
            before_download = rank_refuses_before_download(
                args, request, device, parallel, said, header_read, tokenizers
            )
        # The speed flags with the device.
        sources, device = preflight_flags(args, device, before_download, loras, header_read)
        kernel_cache = writable_kernel_cache(os.environ, args.kernels, device)  # said before it compiles
    lora_files = checked_lora_files(loras, sources)  # the files' headers against the transformer's layers
    # A run's device is the one preflight resolved; a dry run's may be another machine's GPU, whose default is unknown.
    dtype_setting = resolve_dtype(args.dtype, device if not args.dry_run or is_here(device) else None)
    dtype = dtype_setting.value
    # The flags typed and the files under them: the sources a refusal, the notes and a dry run's table name, the same
    # in a run and its dry run.
    given = given_sources(args)
    with refused_settings_of_resumed(args):
        settings = resolve_settings(
            request, sources.configs, sources.transformer, dtype_setting, first_step(args), given=given
        )
    recalled = run_inputs(args).recalled
    notes = [kernel_cache] if kernel_cache else []
    notes += recalled_model_notes(recalled, args, sources, dtype, device) if recalled else []
    notes += recalled_settings_notes(recalled, settings, sources.configs) if recalled else []
    # The machine the file's video was made on (a record, not a setting): its frames may differ from this run's.
    if recalled is not None:
        # This run's kernels, whose Triton version counts where the file's run ran Triton's too; not known for a
        # dry run's GPU of another machine.
        kernels = kernels_a_run_runs(args.kernels, device) if is_here(device) else None
        if machine := other_machine_note(recalled.file.name, recalled.ran_on, device, kernels):
            notes.append(machine)
    notes += loading_notes(sources, device, args.device, settings.notes)
    notes += _dry_run_device_notes(args, device) if args.dry_run else []
    print_notes(notes, say)
    measured = prompts_measured(args.model, sources.root, settings.encoded_prompts, tokenizers) if main else ({}, None)
    long_prompts, tokenizer = measured
    for label, truncation in long_prompts.items():  # before the plan and the time question, and minutes before the load
        if said.get(label) != truncation:
            say(f"warning: {truncation.advice(label)}", file=sys.stderr)
    if args.dry_run:  # plans every run, a CPU run without a budget too; its table prints the plan
        planned = planned_run(args, request, sources, dtype, device, layout, loras=lora_files)
        plan = planned.plan()
        print_notes(filter(None, [smaller_transformer_note(planned, plan), _vram_as_card_note(args, device, plan)]))
    else:  # in a parallel run, the plan of one rank, which loads the text encoder only if it is the main one
        planned, plan = plan_if_budget(
            args, request, sources, dtype, device, layout, text_encoder=main, say=say, loras=lora_files
        )
    # A parallel run never batches them (cfg 2 puts them on processes of their own), and says so (flag_notes).
    wanted = False if layout is not None else args.batch_guidance
    batch_guidance, note = planned_batch_guidance(wanted, device, plan, settings.guided)
    print_notes([note] if note else [], say)
    adapter_macs = packed_adapter_macs(sources, lora_files, dtype)  # the time estimate counts their work
    if args.dry_run:
        values = planned.sizes.transformer_values  # counted for the plan: the quantizing estimate counts with them
        videos = len(requests)
        print_notes(dry_run_time_notes(request, settings, sources, dtype, device, videos, values, adapter_macs))
    elif parallel is None:
        say_run_time(question, requests, settings, sources, dtype, device, say, adapter_macs)
    return _Prepared(
        sources, device, dtype, settings, planned, plan, lora_files, batch_guidance, long_prompts, tokenizer
    )


def _checked_at_hand(args: argparse.Namespace) -> tuple[ModelSources, torch.device]:
    """A dry run's checks, which neither download nor preflight: the model the flags name as far as it is at hand
    (`sources_at_hand`), the device, which may be one this machine lacks (the plan may be for another machine's
    GPU), and on a device here the speed flags, as `preflight` checks them (the kernels, then
    `check_speed_on_device`): each raises what the run would."""
    import torch

    from motif_lite.cli.prepare import speed_checks
    from motif_lite.devices import absent_gpu, is_here, parse_device
    from motif_lite.errors import DeviceError
    from motif_lite.preflight import check_kernels
    from motif_lite.settings import resolve_dtype

    sources = sources_at_hand(args)
    device = parse_device(args.device)
    # A GPU number this machine lacks although it has CUDA: its facts cannot be read (torch raises); a run refuses it.
    if not is_here(device) and torch.cuda.is_available() and (absent := absent_gpu(device)) is not None:
        raise DeviceError(absent)
    if is_here(device):
        check_kernels(args.kernels, device)
        speed_checks(args, resolve_dtype(args.dtype, device).value)(device)
    return sources, device


# What a dry run for a GPU this machine lacks says: a run on that GPU plans for its free memory / RESERVED_RATIO
# (planner.default_budget), which the user reads in nvidia-smi in MiB: 1024 x RESERVED_RATIO MiB per GiB of --vram
# (an 8 GB card with 7380 MiB free as the example).
_MIB_PER_VRAM_GIB = round(1024 * RESERVED_RATIO)


NO_GPU_HERE = (
    "no CUDA device on this machine: planned without a budget; give --vram GiB to plan as a run on your GPU would, "
    f"for its free memory / {RESERVED_RATIO:g}: nvidia-smi's free MiB / {_MIB_PER_VRAM_GIB} (7380 MiB free: --vram "
    f"{7380 / _MIB_PER_VRAM_GIB:.2f})"
)


# nvidia-smi shows a card's total in MiB a little under the whole GiB it is sold as, the driver keeping some back:
# 8188MiB for 8 GiB, 24564MiB for 24, 81559MiB for an 80 GB H100 (0.4 % under), 16160MiB for a 16 GB V100 (1.4 %).
_CARD_TOTAL_SHORTFALL = 0.02
# With ECC on, a card of GDDR memory keeps a sixteenth of it back for the check bits, and nvidia-smi's total is a
# few MiB under 15/16 of the whole GiB: 23028MiB for a 24 GB A10G, 23034MiB for an L4 (2.2 % under 23 GiB). Only
# that close: the free memory of an 8 GB card (7600MiB, 1 % under 15/16 of 8 GiB) is no card's total.
_ECC_SHARE = 15 / 16
_ECC_TOTAL_SHORTFALL = 0.002
# A multiple of 100 MiB (8100MB, 81000MB, 23000MB) is a round number a user picked, within those bands by chance;
# no card's total in nvidia-smi is one (8188, 16160, 23028, 46068, 81559 MiB).
_ROUND_MIB = 100


def _card_size_typed(vram_gib: float) -> str | None:
    """`--vram` as typed where it reads as a card's size: a whole number of GiB (`8`, the size on the box), or a
    whole number of MiB at most 2 % under a whole GiB (`24564MB`, nvidia-smi's total) or 0.2 % under 15/16 of one
    (`23028MB`, with ECC on); None for any other budget. A budget typed in GiB is whole MiB only as a multiple of
    1/16 GiB (7.75: 7936 MiB), which no card's total in nvidia-smi is, so those are none; nor is a round number of
    MiB (8100MB), a value with decimals (6.67, as the note advises) or free memory well under a whole GiB (7380MB
    on an 8 GB card)."""
    if vram_gib.is_integer():
        return f"{vram_gib:g}"
    mib = vram_gib * 1024
    if not mib.is_integer() or mib % 64 == 0 or mib % _ROUND_MIB == 0:
        return None
    card_mib, ecc_mib = math.ceil(vram_gib) * 1024, math.ceil(vram_gib / _ECC_SHARE) * 1024 * _ECC_SHARE
    whole = card_mib - mib <= _CARD_TOTAL_SHORTFALL * card_mib
    with_ecc = ecc_mib - mib <= _ECC_TOTAL_SHORTFALL * ecc_mib
    return f"{mib:.0f}MB" if whole or with_ecc else None


def _vram_as_card_note(args: argparse.Namespace, device: torch.device, plan: Plan) -> str | None:
    """A dry run's note for a GPU this machine lacks where `--vram` reads as the card's size (`_card_size_typed`):
    the plan needs more free memory (its expected reserve) than the --vram itself, so a card of that size cannot
    hold it, and a run there would plan for its free memory instead (`memory_plan._gpu_budget`). None where it fits
    that much, and for a --vram that is no card's size, as a plan fills its budget and so needs a little more than
    it on almost every run."""
    from motif_lite.devices import is_here
    from motif_lite.units import memory_size

    if args.vram is None or is_here(device) or device.type != "cuda":
        return None
    typed = _card_size_typed(float(args.vram))
    if typed is None or plan.reserved_bytes <= args.vram * 2**30:
        return None
    size = f"{args.vram:g} GiB" if float(args.vram).is_integer() else f"{args.vram * 1024:.0f} MiB"
    return (
        f"--vram {typed} is what this plan may allocate, not the GPU's size: it needs "
        f"~{memory_size(plan.reserved_bytes)} free on the GPU, more than {size}. If that is your card's "
        f"size, a run on it plans for its free memory / {RESERVED_RATIO:g} instead: nvidia-smi's free MiB / "
        f"{_MIB_PER_VRAM_GIB} is the --vram that plans as it would (7380 MiB free on an 8 GB card: --vram "
        f"{7380 / _MIB_PER_VRAM_GIB:.2f})"
    )


def _dry_run_device_notes(args: argparse.Namespace, device: torch.device) -> list[str]:
    """What a dry run says about planning for a device this machine lacks (a Mac's unused GPU is `loading_notes`'
    note, as a run says it)."""
    from motif_lite.devices import is_here, torch_build_gpu_problem
    from motif_lite.memory_advice import gpu_memory_note

    notes = []
    if not is_here(device) and args.vram is None:  # `dry_run` refused a GPU number beyond this machine's: no CUDA
        notes.append(NO_GPU_HERE)
    # A GPU here that this torch cannot run: a note, not an error (the plan may be for another machine's GPU).
    if device.type == "cuda" and is_here(device) and (lacking := torch_build_gpu_problem(device)) is not None:
        notes.append(f"a run of this command would be refused here: {lacking}")
    if str(args.device) == "auto" and device.type == "cpu":
        notes.append("no CUDA device on this machine: planned for the CPU; --device cuda plans for a GPU")
    if (memory := gpu_memory_note(device, args.vram is not None)) is not None:  # what nvidia-smi shows, in its words
        notes.append(memory)
    if launcher_variables.torchrun_world() == 1 and (missing := missing_gpus(args.gpus, args.device)) is not None:
        notes.append(f"a run of this command would be refused here: {missing}")  # the plan may be for other GPUs
    return notes
