"""`motif-lite run`: the command line over `GenerationRequest` and `load_pipeline`, with stable-diffusion.cpp flags.

    motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4

A failed or interrupted run never leaves a half-written output file (see `motif_lite.io.staging.staged_output`).
The command's parts live beside it: its flags (run_flags), what its command line gave (run_inputs), the videos
they ask for (run_request), `--resume` (resume), `--gpus N` (launch), the time estimates (run_time) and the
summary (run_summary); what it shares with `serve` before loading is in prepare, and what several commands share
in common.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite import launcher_variables
from motif_lite.cli.before_download import (
    ask_before_download,
    not_said_again,
    prompts_measured,
    rank_refuses_before_download,
    tokenizer_notes_once,
)
from motif_lite.cli.common import download_hint_repeats, lora_args, print_notes
from motif_lite.cli.kernel_cache import writable_kernel_cache
from motif_lite.cli.launch import all_gpus, launch_run, missing_gpus, parallel_layout, torchrun_notes
from motif_lite.cli.prepare import (
    checked_lora_files,
    figures_on_out_of_memory,
    first_step,
    load_from_flags,
    loading_notes,
    plan_if_budget,
    planned_batch_guidance,
    planned_run,
    preflight_flags,
    smaller_transformer_note,
    sources_at_hand,
    text_encoder_words,
)
from motif_lite.cli.resume import (
    earlier_runs,
    goes_on_with_resume,
    kept_anywhere,
    kept_state,
    output_left_to_replace,
    refused_settings_of_resumed,
    request_from_file,
)
from motif_lite.cli.run_flags import add_run_flags, take_weight_flags
from motif_lite.cli.run_inputs import given_sources, run_inputs
from motif_lite.cli.run_request import (
    checked_request,
    resolve_requests,
    seed_was_drawn,
)
from motif_lite.cli.run_summary import gpu_memory_of, planned_image_line, prompt_line, summary
from motif_lite.cli.run_time import CpuTimeQuestion, quantizing_seconds
from motif_lite.cli.settings_from import recalled_model_notes, recalled_settings_notes, settings_from_args
from motif_lite.progress import ProgressBars
from motif_lite.request import TEMPORAL_FACTOR, GenerationRequest
from motif_lite.run_estimates import cpu_time_note, gpu_time_note
from motif_lite.shell_syntax import quoted
from motif_lite.units import RESERVED_RATIO
from motif_lite.weights.lora_values import warn_of_unusual_strengths

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from motif_lite.checkpoint import ModelSources
    from motif_lite.encoders.text import PromptTruncation
    from motif_lite.io.clip import Clip
    from motif_lite.io.latents import SavedLatents
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.pipeline import GenerationResult, MotifVideoPipeline
    from motif_lite.runtime.parallel import Parallel, ParallelLayout, Session
    from motif_lite.runtime.planner import Plan
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile

EPILOG = """\
examples:
  motif-lite run -p "a red fox runs through snow" -o fox.mp4
  motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4
  motif-lite run -i first_frame.png -p "the fox turns its head" -o fox_i2v.mp4          (image-to-video)
  motif-lite run --extend fox.mp4 -p "the fox stops and looks back" -o fox-10s.mp4      (go on from a clip)
  motif-lite run --gguf Q4_K_M -b 4 -p "a red fox runs through snow" -o fox.mp4        (4 seeds: fox-1..4.mp4)
  motif-lite run -W 832 -H 480 --video-frames 65 --steps 30 -p "..." -o fast.mp4        (faster, unofficial)
  motif-lite run --gpus 4 -p "a red fox runs through snow" -o fox.mp4                    (4 GPUs: cfg 2 x sp 2)
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m motif_lite run ...
                                                           (2 machines x 8 GPUs; see docs/parallel.md)

Defaults are the official settings: 1280x736, 121 frames at 24 fps, 50 steps and the official negative
prompt; sampler, flow shift and guidance come from the checkpoint's scheduler and guider configs (else Euler,
shift 15 T2V / 8 I2V, APG scale 8 with norm threshold 12 and momentum 0.1). A flag always wins; --dry-run and
the final summary list every setting with its source. See docs/usage.md.

Coming from ComfyUI, Wan2GP or stable-diffusion.cpp: type their setting as they name it (--cfg 6, length=81,
--lowvram) and the error names ours; docs/usage.md, "Coming from ComfyUI or stable-diffusion.cpp", has the table.
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` to the `motif-lite` subcommands."""
    run = commands.add_parser(
        "run",
        help="generate a video from a prompt (and optionally a first-frame image)",
        description="Generate a video with Motif-Video 2B.",
        usage="motif-lite run -p PROMPT [options]   (every option: motif-lite run --help)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(run)
    run.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """The `run` handler: check every setting and file, plan, load, generate, print a summary. With `--gpus N`
    (outside torchrun) it checks the settings, then starts N processes that each run this handler under torchrun."""
    # A malformed WORLD_SIZE, and under torchrun RANK or LOCAL_WORLD_SIZE, is refused before anything is read.
    torchrun_world = launcher_variables.torchrun_world()
    rank = None
    if torchrun_world > 1:
        rank = launcher_variables.launcher_number("RANK")
        launcher_variables.launcher_number("LOCAL_WORLD_SIZE", torchrun_world, smallest=1)  # read by a dry run
    args.weights = take_weight_flags(args)  # a .gguf given as --diffusion-model / --text-encoder becomes --gguf / ...
    if rank is not None:  # under torchrun --gpus is ignored: torchrun started the ranks
        return _run_under_torchrun(args, rank)
    _read_settings_from(args)
    if args.gpus == "all":
        args.gpus = all_gpus(args.device)
    if args.gpus is not None and args.gpus > 1 and not args.dry_run:
        return launch_run(args)
    return _run(args)


def _run_under_torchrun(args: argparse.Namespace, rank: int) -> int:
    """One rank of a parallel run that torchrun (or `--gpus N`) started: it joins the process group and runs."""
    if args.dry_run:  # loads nothing and needs no other rank: the main rank prints the plan once, the others nothing
        _read_settings_from(args)
        return _run(args) if rank == 0 else 0
    from motif_lite.errors import MotifLiteError
    from motif_lite.runtime import parallel

    session = parallel.start(args.device)
    try:
        # Each rank reads these files itself: one that cannot (another machine's path) stops every rank here, not
        # itself alone while the others wait for it.
        parallel.check_every_rank_reads(_files_every_rank_reads(args))
        _read_settings_from(args)
        if args.dtype is None:  # each rank's default is its own GPU's
            from motif_lite.settings import resolve_dtype

            parallel.check_same_dtype(resolve_dtype(None, session.device).value)
        return _run(args, session)
    except Exception as exc:  # user errors print "[rank r] error: ..." in cli.main; anything else is logged here
        if (lost := parallel.lost_peer(exc)) is not None:  # another rank's failure: one line, no traceback
            parallel.wait_for_the_lost_peer()
            raise lost from exc
        if not isinstance(exc, MotifLiteError):
            print(f"[rank {session.rank}] failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        parallel.stop()


def _read_settings_from(args: argparse.Namespace) -> None:
    """--settings-from: the file's settings become flags before anything reads them (also before --gpus N starts
    its processes)."""
    if args.settings_from is not None:
        run_inputs(args).recalled = settings_from_args(args)


def _files_every_rank_reads(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The input files of a parallel run that every rank reads itself, as (flag, path); -i is read by rank 0 alone
    (it makes the conditioning) and -o and --preview are written by rank 0 alone."""
    from motif_lite.errors import MotifLiteError
    from motif_lite.weights.lora_specs import LoRASpec

    files = [(flag, path) for flag, path in (("--resume", args.resume), ("--settings-from", args.settings_from),
                                             ("--extend", args.extend)) if path is not None]  # fmt: skip
    for value in args.lora:
        try:
            files.append(("--lora", str(LoRASpec.parse(value).path)))
        except MotifLiteError:  # a strength that is no number, a folder with no LoRA: its own check says so
            continue
    return files


def _run(args: argparse.Namespace, session: Session | None = None) -> int:
    from motif_lite.cli import use_expandable_segments
    from motif_lite.io.output_claims import release

    use_expandable_segments()  # before torch starts CUDA
    resume, resume_notes, clip, unresolved = checked_request(args)
    torchrun_world = launcher_variables.torchrun_world()  # a dry run under torchrun joins no process group
    world = session.world if session is not None else torchrun_world if torchrun_world > 1 else args.gpus or 1
    layout = parallel_layout(args, unresolved, world) if world > 1 or args.sp not in (None, 1) else None
    # The file at a stopped run's output that predates its last save (its claim, or the video its -o replaces) is
    # this run's to replace, as it was the stopped run's.
    if resume is not None and args.output is None:
        left_behind, replacing = output_left_to_replace(resume)
        resume_notes += [replacing] if replacing else []
    else:
        left_behind = None
    with request_from_file(resume, run_inputs(args).recalled):
        parallel, requests, notes = _resolve(args, unresolved, session, layout, clip, left_behind)
    request = requests[0]  # the videos differ in seed and file only: the first stands for all in the checks
    main_rank = parallel is None or parallel.is_main
    # The default names the main rank claimed (empty files): freed again unless a video replaced them; the names
    # given with -o it claimed (`claim_named_output`): freed as the run ends.
    claimed = [r.output for r in requests] if main_rank and not args.dry_run else []
    on_preview = None
    try:
        say = print if main_rank else _quiet
        loras = lora_args(args.lora)
        warn_of_unusual_strengths(loras)  # once, here: the other looks at --lora (before a download, ...) do not
        on_preview = _preview_writer(args.preview, request.fps, args.dry_run) if args.preview and main_rank else None
        done = resume.progress[0] if resume is not None else 0  # a resumed run previews only the steps it samples
        previews = _preview_notes(args.preview, request.steps, args.preview_every, done)
        ignored = torchrun_notes(args.gpus, torchrun_world)
        flags = flag_notes(args, layout)
        recalled = run_inputs(args).recalled
        recalled_notes = list(recalled.notes) if recalled is not None else []
        print_notes([*resume_notes, *recalled_notes, *notes, *previews, *flags, *ignored], say)
        if args.dry_run:
            # A dry run before running a stopped run's command again says, as the run would, that --resume goes on.
            earlier = earlier_runs(requests) if resume is None else []
            print_notes([*earlier, *_batch_videos_note(requests, drawn=seed_was_drawn(args))], say)
            return dry_run(args, requests, loras, layout)
        device = args.device if session is None else session.device
        with download_hint_repeats(run_inputs(args).argv), tokenizer_notes_once():
            return _Run(args, parallel, say, resume, clip, on_preview).generate(requests, device, loras)
    finally:
        if on_preview is not None:
            on_preview.close()
        release(claimed, named=args.output is not None)


def _resolve(
    args: argparse.Namespace,
    unresolved: GenerationRequest,
    session: Session | None,
    layout: ParallelLayout | None,
    clip: Clip | None,
    claimed: Path | None = None,
) -> tuple[Parallel | None, list[GenerationRequest], list[str]]:
    """-> (this process's part of a parallel run, else None; the run's videos; their notes), every setting checked
    before anything loads. In a parallel run rank 0 checks the settings (its output folder, its image), draws the
    seed and names the outputs, and the other ranks get its answer."""
    if session is None:
        return None, *resolve_requests(args, unresolved, clip, claim=True, claimed=claimed)
    from motif_lite.runtime.parallel import DEFAULT_STEP_TIMEOUT_S, Parallel

    timeout = args.comm_timeout if args.comm_timeout is not None else DEFAULT_STEP_TIMEOUT_S
    parallel = Parallel.create(layout, session.device, timeout)
    return parallel, *parallel.share(lambda: resolve_requests(args, unresolved, clip, claim=True, claimed=claimed))


def flag_notes(args: argparse.Namespace, layout: ParallelLayout | None) -> list[str]:
    """The notes on flags this run does not use as given (from the flags alone): a step cache threshold that reuses
    nearly every step, an attention backend that int8 attention leaves unused, a flag for (or against) a run on
    several processes (`layout`: how they split the run; None on one), and what --quantize costs there."""
    from motif_lite.runtime.attention import unused_backend_note
    from motif_lite.runtime.step_cache import threshold_note

    # A bad threshold was refused as the flags were read.
    notes = [threshold_note(args.step_cache) if args.step_cache is not None else None]
    notes.append(unused_backend_note(args.attention, args.attention_backend))
    several_processes = layout is not None
    if not several_processes and args.comm_timeout is not None:
        notes.append("--comm-timeout is for a run on several processes (--gpus N, torchrun): this one has no others")
    if layout is not None and args.batch_guidance:
        # cfg 1 (--sp given, or no guidance) runs the predictions on the same ranks: no "side by side" there.
        how = (
            "the two guidance predictions run side by side, each on its own processes"
            if layout.cfg == 2
            else "every prediction is shared by all of them, one after another (sequence parallelism does not batch)"
        )
        notes.append(f"--batch-guidance is not used on several processes ({layout.describe()}): {how}")  # fmt: skip
    if several_processes and args.quantize is not None:  # docs/parallel.md, "Quantizing as it loads"
        notes.append(f"--quantize on several processes: each one quantizes the transformer to {args.quantize} itself "
                     "as it loads (the work times the processes, and each holds its packed weights in host memory "
                     "until they move to its GPU); a file made once, given as --gguf, is read by all of them from "
                     "one copy in the page cache")  # fmt: skip
    return [note for note in notes if note]


@dataclass
class _Prepared:
    """A run made ready to load, or to print as a dry run (`_prepare`): what was found, on which device, in which
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


def _prepare(
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
    from motif_lite.preflight import gguf_header_read_first, packed_adapter_macs
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
        print_notes(filter(None, [smaller_transformer_note(planned, plan)]))
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
        print_notes(_dry_run_time_notes(request, settings, sources, dtype, device, videos, values, adapter_macs))
    elif parallel is None:
        _say_run_time(question, requests, settings, sources, dtype, device, say, adapter_macs)
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


def dry_run(
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    loras: list[tuple[Path, float]],
    layout: ParallelLayout | None = None,
) -> int:
    """Print the effective settings, the sizes and the memory plan of the run the flags ask for (`_prepare`, as the
    run prepares it); reads no weights and never downloads."""
    prepared = _prepare(args, requests, args.device, loras, layout=layout)
    sources, device, dtype, plan = prepared.sources, prepared.device, prepared.dtype, prepared.plan
    described = plan.describe() if layout is None else f"{layout.describe()}; per rank:\n{plan.describe()}"
    if layout is not None and plan.host is not None:
        others = planned_run(args, requests[0], sources, dtype, device, layout, text_encoder=False).plan()
        described += "\n" + _host_of_the_machine(plan.host.peak_bytes, others.host.peak_bytes, layout.world)
    sizes = prepared.planned.sizes.lines()  # the ones the plan counted with
    prompt = args.prompt if args.resume is None else requests[0].prompt  # a resumed run's is in its latents file
    image = planned_image_line(requests[0]) if args.resume is None else []  # a resumed run's is in its file
    lines = [prompt_line(prompt), *image, *prepared.settings.lines(), dry_run_speed(args, device), *sizes]
    lora_lines = ["loras: " + ", ".join(f.describe() for f in prepared.lora_files)] if prepared.lora_files else []
    print("\n".join([*lines, *lora_lines, described]))
    return 0


def _batch_videos_note(requests: list[GenerationRequest], drawn: bool) -> list[str]:
    """A dry run's note on the videos of a batch: each one's file, and its seed unless the seeds are `drawn` (the run
    draws its own), which a run names as it starts (a file's seed with --settings-from, say)."""
    if len(requests) == 1:
        return []
    label = _batch_label("video", requests)
    if drawn:
        return [f"{label}: {_listed([str(r.output) for r in requests])} (the run draws their seeds)"]
    return [f"{label}: " + _listed([f"{r.output} (seed {r.seed})" for r in requests])]


# The most files or seeds of a batch a line lists whole: `-b 10000` made a dry run's note of its files 169 kB long
# (and a run's line of seeds 110 kB), burying the notes after it. The rest follow from the first (-1, -2, ...; SEED,
# SEED+1, ...).
LISTED_AT_MOST = 8


def _listed(items: list[str]) -> str:
    """`items` joined with commas; beyond `LISTED_AT_MOST` of them, the first three, "...", and the last."""
    shown = items if len(items) <= LISTED_AT_MOST else [*items[:3], "...", items[-1]]
    return ", ".join(shown)


def _batch_label(noun: str, requests: list[GenerationRequest]) -> str:
    """The label of a batch's list of `noun`s: "seed" for one, "videos", or with their count where `_listed`
    leaves some out: "videos (10000)"."""
    label = noun if len(requests) == 1 else f"{noun}s"
    return label + _count_if_cut(requests)


def _count_if_cut(items: list) -> str:
    """ " (N)" where `_listed` leaves some of the N `items` out, else nothing."""
    return f" ({len(items)})" if len(items) > LISTED_AT_MOST else ""


def _host_of_the_machine(main_bytes: int, other_bytes: int, world: int) -> str:
    """The host memory of a parallel run's processes on this machine together: each holds its transformer, only the
    first the text encoder too. Under torchrun over several machines, LOCAL_WORLD_SIZE of them are on this one
    (`--gpus N` starts all N here)."""
    from motif_lite.units import memory_size

    torchrun = launcher_variables.torchrun_world() > 1
    here = launcher_variables.launcher_number("LOCAL_WORLD_SIZE", world, smallest=1) if torchrun else world
    total = main_bytes + (here - 1) * other_bytes
    return (
        f"host, the {here} processes on this machine together: about {memory_size(total)} RSS (the first, with "
        f"the text encoder, {memory_size(main_bytes)}; each other {memory_size(other_bytes)})"
    )


def _dry_run_time_notes(
    request: GenerationRequest,
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    videos: int,
    transformer_values: int | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> list[str]:
    """What a run of `videos` videos would say about its time before it loads (a dry run asks nothing): measured on
    this machine's CPU, or on its GPU when the plan is for one that is here. `transformer_values`: the
    transformer's weights as the plan counted them (`quantizing_seconds`)."""
    from motif_lite.devices import is_here

    if device.type == "cpu":
        quantizing = quantizing_seconds(sources, transformer_values=transformer_values)
        note = cpu_time_note(request, settings, sources.configs, dtype, videos, quantizing, adapter_macs=adapter_macs)
        return [] if note is None else [f"{note}; a run asks before it starts (--yes starts it)"]
    if is_here(device):  # a GPU of this machine's
        return _gpu_time_notes(request, settings, sources, dtype, device, videos, transformer_values, adapter_macs)
    return []


def _gpu_time_notes(
    request: GenerationRequest,
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    videos: int,
    transformer_values: int | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> list[str]:
    """The note before a long run of `videos` videos on this GPU (`gpu_time_note`, with the quantizing as it loads
    that a GPU run still does on the CPU); none for a short one. `transformer_values`: as `quantizing_seconds`."""
    quantizing = quantizing_seconds(sources, on_gpu=True, transformer_values=transformer_values)
    note = gpu_time_note(request, settings, sources.configs, dtype, device, videos, quantizing, adapter_macs)
    return [] if note is None else [note]


# What a dry run for a GPU this machine lacks says: a run on that GPU plans for its free memory / RESERVED_RATIO
# (planner.default_budget), which the user reads in nvidia-smi in MiB: 1024 x RESERVED_RATIO MiB per GiB of --vram
# (an 8 GB card with 7380 MiB free as the example).
_MIB_PER_VRAM_GIB = round(1024 * RESERVED_RATIO)
NO_GPU_HERE = (
    "no CUDA device on this machine: planned without a budget; give --vram GiB to plan as a run on your GPU would, "
    f"for its free memory / {RESERVED_RATIO:g}: nvidia-smi's free MiB / {_MIB_PER_VRAM_GIB} (7380 MiB free: --vram "
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


def dry_run_speed(args: argparse.Namespace, device: torch.device) -> str:
    """The speed flags as a run on `device` would use them, in one line (the settings table has none of them)."""
    gpu = device.type == "cuda"
    if args.attention == "int8":
        where = "on the CPU" if not gpu else "with --kernels torch" if args.kernels == "torch" else None
        attention = f"int8, which falls back to exact {where}" if where else "int8 (lossy)"
    elif args.attention_backend == "auto":
        attention = "exact, auto (timed at the first step, or as an earlier run chose)" if gpu else "exact, sdpa (auto)"
    else:
        attention = f"exact, {args.attention_backend}"
    parts = [f"attention {attention}"]
    if args.compile:
        parts.append("compiled blocks (the first step compiles)")
    if args.step_cache is not None:
        parts.append(f"step cache {args.step_cache:g}" + (" (lossy)" if args.step_cache else " (exact)"))
    return "speed: " + "; ".join(parts)


@dataclass
class _Run:
    """What every video of a run is made with besides its request: the flags, this process's part of a parallel run
    (None on one process), how it prints (`_quiet` on ranks other than 0), the latents file it resumes, the clip it
    extends and the --preview writer."""

    args: argparse.Namespace
    parallel: Parallel | None = None
    say: Callable = print
    resume: SavedLatents | None = None
    clip: Clip | None = None
    on_preview: Callable | None = None

    def generate(
        self, requests: list[GenerationRequest], device: str | torch.device, loras: list[tuple[Path, float]]
    ) -> int:
        """Check, plan and load on `device` (with --lora's `loras`), then make the `requests`' videos."""
        from motif_lite.io.latents_saving import fallback_folder

        args, parallel, say = self.args, self.parallel, self.say
        if self.resume is None:
            print_notes(earlier_runs(requests), say)
        prepared = _prepare(args, requests, device, loras, parallel, say=say)
        say(f"{_batch_label('seed', requests)}: {_listed([str(r.seed) for r in requests])}", file=sys.stderr)
        sources, plan = prepared.sources, prepared.plan
        # Out of memory all the same: said with the figures of the plan and of the next one down (its note).
        with not_said_again(prepared.long_prompts), figures_on_out_of_memory(prepared.planned, plan):
            start = time.perf_counter()
            # The --lora files as `_prepare` read and checked them: not read again as the model loads.
            pipe = load_from_flags(args, sources, prepared.device, plan, prepared.lora_files, prepared.batch_guidance,
                                   parallel, prompt_tokenizer=prepared.tokenizer)  # fmt: skip
            pipe.latents_fallback = fallback_folder()  # a full output disk must not lose hours of sampling
            pipe.warns_long_cpu_runs = False  # its time was asked about (or said with --yes) before it loaded
            load_seconds = time.perf_counter() - start
            self.make_videos(pipe, requests, sources, prepared.dtype, plan, load_seconds)
        return 0

    def make_videos(
        self,
        pipe: MotifVideoPipeline,
        requests: list[GenerationRequest],
        sources: ModelSources,
        dtype: torch.dtype,
        plan: Plan | None,
        load_seconds: float,
    ) -> None:
        """The run's videos one after another with the loaded `pipe`, each with its summary (the first's with the
        `load_seconds`)."""
        text_encoder = text_encoder_words(sources)
        ran_on = _ran_on(pipe, dtype, sources)
        gpu_memory = gpu_memory_of(pipe.device)  # to warn when a video's peak spilled past it (Windows' driver)
        made_before, other_versions = self.made_before(pipe, requests)
        for video in made_before:
            self.say(f"skipped {video.output}: already made with these settings", file=sys.stderr)
        for note in other_versions:
            self.say(f"note: {note}", file=sys.stderr)
        to_make = [video for video in requests if video not in made_before]
        start = time.perf_counter()
        for made, video in enumerate(to_make):
            number = requests.index(video) + 1
            if len(requests) > 1:
                pace = _batch_pace(made, len(to_make), time.perf_counter() - start)
                self.say(f"video {number} of {len(requests)}: seed {video.seed}, {video.output}{pace}", file=sys.stderr)
            unstarted = [r for r in requests[number:] if r not in made_before]
            result = self.sample(
                pipe, video, in_batch=len(requests) > 1, finished=requests[: number - 1], unstarted=unstarted
            )
            first = made == 0
            given = run_inputs(self.args).given()  # the flags typed and the files under them: the table's sources
            self.say(summary(
                result, load_seconds if first else 0.0, plan, pipe.loras, text_encoder, first, ran_on, given, gpu_memory
            ))  # fmt: skip
        if len(requests) > 1:
            took = load_seconds + time.perf_counter() - start
            self.say(batch_done(requests, took, len(made_before)), file=sys.stderr)

    def made_before(
        self, pipe: MotifVideoPipeline, requests: list[GenerationRequest]
    ) -> tuple[list[GenerationRequest], list[str]]:
        """The videos of a batch named with -o whose files are there with the settings this run would store in them
        (an earlier run of the same command, stopped before its end, made them): not made again; and the notes on
        those whose files hold these settings but another motif-lite version's, made again (the stored version is
        compared too), said so that a rerun after an upgrade does not replace finished videos without a word. Each
        file read once, on the main rank of a parallel run, so that every rank skips the same ones. Nothing for a
        single video, which -o replaces."""
        from motif_lite.pipeline.metadata import settings_as_asked

        if len(requests) == 1 or self.args.output is None:  # without -o a batch never writes over earlier files
            return [], []

        def judged() -> tuple[list[int], list[str]]:
            made, notes = [], []
            for i, video in enumerate(requests):
                if (stored := _stored_settings_of(video.output)) is None:
                    continue
                # The attention asked for, not the exact attention an 8-bit one fell back to (the file says both).
                stored, wanted = settings_as_asked(stored), settings_as_asked(pipe.stored_settings_for(video))
                version = stored.get("version")
                if stored == wanted:
                    made.append(i)
                elif version != wanted["version"] and {**stored, "version": wanted["version"]} == wanted:
                    notes.append(
                        f"{video.output} was made with these settings by motif-lite {version}: this run, of "
                        f"{wanted['version']}, makes it again (a stored version that differs is made again)"
                    )
            return made, notes

        made, notes = judged() if self.parallel is None else self.parallel.share(judged)
        return [requests[i] for i in made], notes

    def sample(
        self,
        pipe: MotifVideoPipeline,
        video: GenerationRequest,
        in_batch: bool,
        finished: list[GenerationRequest],
        unstarted: list[GenerationRequest],
    ) -> GenerationResult:
        """One video of the run (`in_batch`: one of several), with progress bars on the main rank; when it fails,
        the notes on the videos of the batch: those `finished` before it (written: not to make again), this one
        when nothing of it was saved, and those it leaves `unstarted`."""
        from motif_lite.io.latents import latents_path
        from motif_lite.io.output_claims import unused_path

        resume = self.resume
        progress = ProgressBars() if self.parallel is None or self.parallel.is_main else None
        # Named here (the pipeline would name it on its first save): a failure can tell whether anything was kept.
        keeps = unused_path(latents_path(video.output)) if resume is None else resume.file
        # A resumed run's image was hashed as `resume_args` found it the one the run sampled from (else refused):
        # its checksum is the one the file keeps, not hashed again.
        checked = None if resume is None else resume.run.get("image_sha256")
        try:
            # The output is -o, checked in run's words, or the stopped run's own (or a free name beside it).
            resolved = (
                None
                if resume is None
                else video.resolve_with_inputs(self.clip, checksum=checked, taken_output=video.output)
            )
            result = pipe.generate(
                video if resolved is None else resolved.request, progress, self.on_preview, self.args.preview_every,
                resume=resume, latents_file=keeps, clip=self.clip, crf=self.args.crf, resolved=resolved,
            )  # fmt: skip
        except BaseException:
            kept = kept_anywhere(keeps, video.output)  # keeps is a path always: a free name or the resumed file
            lost = [video] if in_batch and not kept else []
            if progress is not None:  # its bar ends its line first: a note printed after it was glued to the bar
                progress.close()
            # Only after a --resume command this run gave (not a failed decode's `motif-lite decode`).
            parallel_kept = kept and self.parallel is not None
            resumable = parallel_kept and goes_on_with_resume(kept_state(keeps, video.output), resume)
            again = [_resume_on_as_many(self.args, self.parallel)] if resumable else []
            drawn = self.args.output is not None and seed_was_drawn(self.args)  # a rerun skips them only with -s
            notes = [*finished_videos(finished, drawn), *unsaved_videos(lost), *unstarted_videos(unstarted), *again]
            print_notes(notes, self.say)
            raise
        finally:
            if progress is not None:
                progress.close()
        if self.parallel is None:
            return result
        # After every rank's last collective of the video, so that all of them reach this one.
        everyones = self.parallel.every_ranks_fallbacks(result.kernel_fallbacks)
        return dataclasses.replace(result, kernel_fallbacks=everyones)


def _resume_on_as_many(args: argparse.Namespace, parallel: Parallel) -> str:
    """The note after the kept state's --resume command in a parallel run: that command, as printed, would go on in
    one process, since the saved file does not record the processes."""
    world = parallel.layout.world
    # torchrun sets LOCAL_WORLD_SIZE: fewer than the world means several machines (read before anything loads).
    here = launcher_variables.launcher_number_or_none("LOCAL_WORLD_SIZE", smallest=1) or world
    if args.gpus is not None:  # --gpus N started the ranks (each is given the flags typed)
        how = f"add --gpus {world} to it"
    elif here >= world:
        how = f"start it under torchrun with {world} processes again (torchrun --nproc-per-node {world} -m motif_lite)"
    elif world % here == 0:  # a world in processes per machine would be too many for one machine, or fail
        machines = world // here
        how = (
            f"start it as this run was started, under torchrun on {machines} machines of {here} processes each "
            f"(torchrun --nnodes {machines} --nproc-per-node {here}, this run's --rdzv flags, -m motif_lite)"
        )
    else:  # machines with different counts: only the way it was started says which has how many
        how = f"start it as this run was started ({world} processes in all, {here} on this machine)"
    return f"this run had {world} processes: to go on with as many, {how}; as printed, --resume goes on in one"


def _say_run_time(
    question: CpuTimeQuestion,
    requests: list[GenerationRequest],
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    say: Callable,
    adapter_macs: Mapping[str, int] | None = None,
) -> None:
    """How long a run on one process will take, before it loads: the question before a long CPU run (--yes answers
    it; not asked again when it came before a download), the note before a long GPU run. `adapter_macs`: the LoRA
    adapters beside packed layers (`preflight.packed_adapter_macs`), whose work the estimate counts."""
    if device.type == "cpu":
        quantizing = quantizing_seconds(sources)
        question.ask(requests[0], settings, sources.configs, dtype, len(requests), quantizing, None, adapter_macs)
    elif device.type == "cuda":
        notes = _gpu_time_notes(requests[0], settings, sources, dtype, device, len(requests), None, adapter_macs)
        print_notes(notes, say)


def _ran_on(pipe: MotifVideoPipeline, dtype: torch.dtype, sources: ModelSources) -> str:
    """Where and in what precision the run ran, for its summary: nothing else there says it (a CPU run prints no
    memory plan)."""
    ran_on = f"{pipe.device}, {str(dtype).removeprefix('torch.')}"
    if sources.quantize is not None:
        return ran_on + f", transformer quantized to {sources.quantize} as it loaded"
    return ran_on + (f", transformer {sources.gguf.name}" if sources.gguf is not None else "")


def _batch_pace(done: int, videos: int, seconds: float) -> str:
    """What a batch's "video N of M" line adds once `done` of the `videos` this run makes took `seconds`: that time,
    and the time the rest would take at that pace (each video of a batch has the same size and steps), so that a
    night's batch says when it will end."""
    if done == 0:
        return ""
    left = datetime.timedelta(seconds=round(seconds / done * (videos - done)))
    return f" ({done} done in {datetime.timedelta(seconds=round(seconds))}, about {left} left at that pace)"


def batch_done(requests: list[GenerationRequest], seconds: float, made_before: int = 0) -> str:
    """The last line of a batch that made every video: after hours of summaries, how many, how long in all and
    which files, in one line. `made_before`: how many of them an earlier run had made (skipped by this one)."""
    took = datetime.timedelta(seconds=round(seconds))
    files = _listed([str(r.output) for r in requests])
    before = f"; {made_before} of them made before, by an earlier run" if made_before else ""
    return f"batch done: {len(requests)} videos in {took} (h:mm:ss, the load included{before}): {files}"


def _stored_settings_of(output: Path | str) -> dict | None:
    """The settings the video at `output` stores (of a PNG sequence, its first frame's); None where there is none,
    or a file without motif-lite's settings."""
    from motif_lite.io.settings_file import SettingsFileError, read_settings
    from motif_lite.io.staging import frame_file, is_frame_sequence

    path = Path(output)
    try:
        return read_settings(frame_file(path, 0) if is_frame_sequence(path) else path).values
    except SettingsFileError:
        return None


def finished_videos(requests: list[GenerationRequest], seed_drawn: bool = False) -> list[str]:
    """The note on the videos of a batch finished before a failure: written, so not to make again (the same command
    with its seed (-s), run again with -o, skips them: `_Run.made_before`). `seed_drawn`: the batch named with -o drew
    its seeds (no -s), so the note gives the -s that goes on where it stopped: the same command again draws new seeds
    and makes every video again."""
    if not requests:
        return []
    videos = _listed([f"{r.output} (seed {r.seed})" for r in requests])
    # requests[0] is the batch's first video: its seed is the batch's -s.
    go_on = f"; to go on where the batch stopped, run the same command with -s {requests[0].seed}" if seed_drawn else ""
    return [f"finished{_count_if_cut(requests)}: {videos}{go_on}"]


def unsaved_videos(requests: list[GenerationRequest]) -> list[str]:
    """The note on the videos of a batch that a failure stopped before anything of them was saved (before the first
    step): which, and the command for each."""
    return [
        f"started, nothing saved: {r.output} (seed {r.seed}); run it again as an ordinary run of the same command "
        f"with -b 1 -s {r.seed} -o {quoted(str(r.output))}"
        for r in requests
    ]


def unstarted_videos(requests: list[GenerationRequest]) -> list[str]:
    """The note on the videos of a batch that a failure left unstarted: which (the ends of a long list, as
    `finished_videos` lists them: `-b 10000` stopped early wrote a 258 kB line), and the command for each."""
    if not requests:
        return []
    videos = _listed([f"{r.output} (seed {r.seed})" for r in requests])
    return [
        f"not started{_count_if_cut(requests)}: {videos}; each is an ordinary run of the same command with -b 1, "
        "-s SEED and -o FILE"
    ]


def _quiet(*values: object, **kwargs: object) -> None:
    """Ranks other than 0 print nothing but errors."""


def _preview_notes(path: str | None, steps: int, every: int | None, done: int) -> list[str]:
    """Where and when the previews come (after step `done`, where a resumed run starts): a terminal shows nothing
    of them otherwise."""
    from motif_lite.io.preview import preview_note

    return [preview_note(path, steps, every, done)] if path else []


def _preview_writer(path: str, fps: float, dry_run: bool = False):
    """The `on_preview` callback writing `path` in the background (its path checked now, before anything loads);
    a `dry_run` checks the path alone: a writer that wrote nothing warns, as it closes, that no preview was
    written."""
    from motif_lite.io.preview import PreviewFile, check_preview_path

    if dry_run:
        check_preview_path(path)
        return None
    return PreviewFile(path, fps / TEMPORAL_FACTOR)  # one preview frame per latent frame
