"""`motif-lite run --gpus N`: the settings and the GPUs checked once, then N processes started with torch's elastic
launcher, each running `run` under torchrun; and the layout (`parallel_layout`) in which the ranks split the work."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.cli.common import lora_specs_from_flags
from motif_lite.cli.resume import request_from_file
from motif_lite.cli.run_inputs import run_inputs
from motif_lite.cli.run_request import batch_outputs, checked_request
from motif_lite.launcher_variables import launcher_number_or_none
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    from motif_lite.checkpoint import ModelSources
    from motif_lite.gpu_memory import GpuReading
    from motif_lite.runtime.parallel import ParallelLayout
    from motif_lite.runtime.planner import Plan


def launch_run(args: argparse.Namespace) -> int:
    """Check the settings and the GPUs, then start `args.gpus` processes with torch's elastic launcher. This process
    never starts CUDA: a context would hold memory on cuda:0 for the whole run, taking it from rank 0."""
    import torch

    from motif_lite.io.output_claims import named_claims
    from motif_lite.runtime.launcher import gpu_readings, launch
    from motif_lite.runtime.parallel import ParallelError, check_device

    check_device(args.device)
    if (copies := srun_copies()) is not None:
        raise ParallelError(copies)
    # -o is claimed here, before any process starts: a run writing it already refuses this one in one line, not
    # rank 0 once every process has started. Rank 0, started by this process, takes the claim as its own.
    with contextlib.ExitStack() as claims:
        with warnings_left_to_the_ranks():
            resume, _, clip, unresolved = checked_request(args)  # as each rank's run will check them
            with request_from_file(resume, run_inputs(args).recalled):
                request, _ = unresolved.resolve(clip, taken_output=unresolved.output)  # as run_request's
            del resume  # a resumed run's latents, not held while the ranks run: each reads its file itself
            named = batch_outputs(Path(request.output), args.batch_count) if args.output is not None else []
            claims.enter_context(named_claims(named))
            layout = parallel_layout(args, request, args.gpus)
            _check_loras_before_launch(args)
            if args.preview:
                from motif_lite.io.preview import check_preview_path

                check_preview_path(args.preview)
            if (missing := missing_gpus(args.gpus, args.device)) is not None:
                raise ParallelError(missing)
            # Each GPU read once, in a child process: CUDA is never started in this one (docs/parallel.md).
            # Without them (the CPU, no GPU here, GPUs that could not be read), --vram's budget alone is planned, as
            # for a GPU not here: a rank's budget is never above it, so what no plan fits there no rank runs. The
            # rest of a GPU that could not be read (its free memory, its size) is left to its rank.
            gpus_here = args.device != "cpu" and torch.cuda.is_available()
            readings = gpu_readings(args.gpus) if gpus_here else None
            if gpus_here and readings is None:
                # --kernels triton where Triton cannot run on this machine: refused once here, with or without a
                # --vram to plan, rather than by every rank once started (another --kernels has nothing to refuse:
                # Triton is not imported for it, a second's wait).
                if args.kernels == "triton":
                    from motif_lite.memory_plan import kernels_on_unread_gpus

                    kernels_on_unread_gpus(args.kernels)
                print(f"note: {UNREAD_GPUS_NOTE}", file=sys.stderr)
            if readings is not None or args.vram is not None:
                _plan_before_launch(args, request, layout, readings)
        return launch(args.gpus, args.argv)


UNREAD_GPUS_NOTE = (
    "the GPUs could not be read before the processes start (a GPU in exclusive mode, or a child process that failed "
    "or took over a minute): the memory plan on each GPU's own memory is left to its rank, which refuses a run that "
    "does not fit it"
)


@contextlib.contextmanager
def warnings_left_to_the_ranks() -> Iterator[None]:
    """Python's warnings of the checks made before the processes start (a checkpoint config's unknown key, say) held
    back: rank 0 reads the same files and makes the same checks, and says each warning in its own output, so that
    the command says it once. Where a check refuses the run, no rank starts to say them: they are said here, before
    the refusal."""
    held: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as held:
            yield
    except Exception:
        for warning in held:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        raise


def all_gpus(device: str) -> int:
    """What `--gpus all` means here: the CUDA devices this process sees (CUDA_VISIBLE_DEVICES applies)."""
    import torch

    from motif_lite.runtime.parallel import ParallelError

    if device == "cpu":
        raise ParallelError("--gpus all counts this machine's GPUs, but --device cpu runs on the CPU: give the number "
                            "of CPU processes instead (--gpus 2)")  # fmt: skip
    found = torch.cuda.device_count()
    if found == 0:
        raise ParallelError(f"--gpus all: this machine has no CUDA device{_visible_note()}; --gpus N --device cpu runs "
                            "N processes on the CPU (slow, for testing)")  # fmt: skip
    return found


def torchrun_notes(gpus: int | str | None, world: int) -> list[str]:
    """Under torchrun (`world` > 1 processes), the note on a --gpus that asks for another count: torchrun decides."""
    if world == 1 or gpus is None or gpus in ("all", world):
        return []
    return [f"--gpus {gpus} is not used under torchrun, which started {world} processes: this run is on {world} "
            "(torchrun --nproc-per-node N decides; leave --gpus out)"]  # fmt: skip


def srun_copies() -> str | None:
    """Why `--gpus N` must not start here: Slurm's `srun` started more copies of this command than nodes, so each
    node's copies would all start N processes on the same GPUs, each planning for the whole GPU memory and writing
    the same output. None outside such a job step (plain commands, the batch script itself, one task per node)."""
    # Slurm sets both to whole numbers in a job step; anything else is no job step of Slurm's, which this guards.
    tasks, nodes = launcher_number_or_none("SLURM_STEP_NUM_TASKS"), launcher_number_or_none("SLURM_STEP_NUM_NODES")
    if tasks is None or nodes is None or tasks <= nodes:
        return None
    return (
        f"srun started {tasks} copies of this command on {nodes} node{'s' if nodes > 1 else ''} "
        f"(SLURM_STEP_NUM_TASKS={tasks}), and each one's --gpus would start its processes on the same GPUs: start one "
        'per node (srun --ntasks-per-node=1, or run it in the batch script itself; docs/parallel.md, "Under Slurm")'
    )


def missing_gpus(gpus: int | None, device: str) -> str | None:
    """Why `--gpus N` cannot start its processes on this machine (fewer CUDA devices than N, and not
    `--device cpu`), with what to do instead; None when it can."""
    import torch

    if gpus is None or gpus < 2 or device == "cpu":
        return None
    found = torch.cuda.device_count()
    if found >= gpus:
        return None
    has = "no CUDA device" if found == 0 else f"only {found} CUDA device{'s' if found > 1 else ''}"
    has += _visible_note()
    fewer = f"give --gpus {found} or fewer, or " if found > 1 else ""
    return (
        f"--gpus {gpus} starts {gpus} processes, one per GPU, but this machine has {has}: {fewer}add --device cpu "
        f"to run the {gpus} processes on the CPU (slow, for testing)"
    )


def parallel_layout(args: argparse.Namespace, request: GenerationRequest, world: int) -> ParallelLayout:
    """How `world` ranks split the work; a layout that cannot work is an error before anything loads."""
    from motif_lite.cli.prepare import first_step, sources_at_hand
    from motif_lite.runtime.parallel import ParallelError, check_device, choose_layout
    from motif_lite.sampling import needs_uncond
    from motif_lite.settings import resolve_guidance

    if world > 1:  # also in a dry run, which starts no rank to refuse it
        check_device(args.device)
    sources = sources_at_hand(args, text_encoder_gguf=False, quantized=False)  # configs at hand, else built-in
    # A run resumed past the guidance window gives the negative prompt no rank: every rank shares the video.
    # `Settings.guided`'s rule, by hand: `request` may be unresolved here (run lays out the ranks before it resolves
    # its request), and only a resolved request makes `Settings`.
    guided = needs_uncond(resolve_guidance(request, sources.configs.guider).value, request.steps, first_step(args))
    layout = choose_layout(world, guided, sources.transformer.value.num_attention_heads, args.sp)
    if (few := too_few_tokens(request, sources, layout)) is not None:  # else every rank refuses it in its first step
        raise ParallelError(few)
    # Else each process would refuse it as it loads. A threshold of 0 reuses nothing: the plain run, which the ranks
    # make without a cache (`prepare.load_from_flags`).
    if args.step_cache:
        raise ParallelError(_step_cache_refusal(args))
    return layout


def _step_cache_refusal(args: argparse.Namespace) -> str:
    """Why a parallel run refuses its step cache, and what to do: leave out the flag typed, or, for the cache of the
    run being resumed (which its file gives where no --step-cache is typed), give --step-cache 0."""
    if "step_cache" in run_inputs(args).typed:
        return "--step-cache is not supported in a parallel run (--gpus / torchrun) yet: leave it out"
    return (
        f"the run being resumed had --step-cache {args.step_cache:g}, which a parallel run (--gpus / torchrun) does "
        "not support yet: add --step-cache 0 to sample the rest without it, or resume it in one process"
    )


def too_few_tokens(request: GenerationRequest, sources: ModelSources, layout: ParallelLayout) -> str | None:
    """Why `layout` cannot share this video's tokens: fewer of them than its sequence-parallel ranks, each of which
    must hold at least one; None when it can (or when the size is one the request's own checks refuse)."""
    from motif_lite.errors import ConfigError
    from motif_lite.request import nearest_video_frames
    from motif_lite.runtime.generation_sizes import video_tokens
    from motif_lite.vae.config import WanVAEConfig

    if layout.sp == 1:
        return None
    vae = sources.configs.vae or WanVAEConfig()
    # An unresolved request (a dry run's, a rank's, before its checks) holds the frames as given: count those the
    # run will make (2 makes 1), and let its own checks refuse a size that is no video's.
    if isinstance(request.frames, bool) or not isinstance(request.frames, int) or request.frames < 1:
        return None
    made = nearest_video_frames(request.frames)
    try:
        tokens = video_tokens(request.width, request.height, made, sources.transformer.value, vae)
    except ConfigError:
        return None
    if tokens >= layout.sp:
        return None
    frames = f"{made} frame{'s' if made > 1 else ''}"
    return (
        f"{layout.describe()} shares the video tokens among {layout.sp} processes, but a {request.width}x"
        f"{request.height} video of {frames} has only {tokens} (latent frames x width / 16 x height / 16), and each "
        "process needs one at least: make the video larger or longer, or give a smaller --sp"
    )


def _check_loras_before_launch(args: argparse.Namespace) -> None:
    """The LoRA files exist and fit the transformer's layers (file headers only, as each rank checks them before
    loading), so that a LoRA of another model is refused once, before N processes start and each prints the
    refusal: against the checkpoint at hand, else as a run checks them before its download (the official configs
    bundled with motif-lite; another model's LoRA as a file alone, its layers once the ranks have its files)."""
    from motif_lite.cli.prepare import quantized_as_asked, sources_at_hand
    from motif_lite.preflight import check_loras, local_file_problems

    specs = lora_specs_from_flags(args)
    if not specs:
        return
    sources = sources_at_hand(args, text_encoder_gguf=False, quantized=False)
    if sources.root is not None and (args.gguf is None or sources.gguf is not None):
        check_loras(specs, quantized_as_asked(sources, args))  # a .diff of a weight --quantize packs: refused
        return
    quantize = getattr(args, "quantize", None)
    # With the user's weight files: an fp8 --diffusion-model keeps weights a LoRA's full difference cannot change.
    for problem in local_file_problems(args.model, args.gguf, weights=args.weights, loras=specs, quantize=quantize):
        raise problem


def _plan_before_launch(
    args: argparse.Namespace,
    request: GenerationRequest,
    layout: ParallelLayout,
    readings: list[GpuReading] | None = None,
) -> list[Plan]:
    """Plan here what the ranks will plan, so that a run that does not fit is refused once, before N processes start
    and each prints the refusal. Each rank plans for its own GPU (`readings`, rank r on cuda:r, read in a child
    process: nothing here starts CUDA): with --vram that budget, without it its free memory. The main rank, which
    also loads the text encoder, is planned on cuda:0; the others on the one of theirs with the smallest budget.
    Without readings (the CPU, no GPU here, or GPUs here that could not be read) one plan of --vram's budget, as for a
    GPU not here. From the files at hand, else the official configs for the official model, as a run plans before its
    download (`sources_before_download`); another model not at hand is left to the ranks, which plan with its files.
    -> the plans made (the main rank's first; none for a model left to the ranks)."""
    import dataclasses

    import torch

    from motif_lite.cli.common import lora_args
    from motif_lite.cli.prepare import checked_lora_files, planned_run, sources_before_download
    from motif_lite.dtypes import default_dtype_of  # here: devices imports torch, which --help must not wait for
    from motif_lite.memory_plan import kernels_on_unread_gpus, smallest_budget_gpu
    from motif_lite.settings import resolve_dtype

    sources = sources_before_download(args)
    if sources is None:
        return []
    # Every rank applies the --lora files: their adapters beside packed layers count in each rank's plan.
    loras = checked_lora_files(lora_args(args.lora), sources)
    device, kernels = "cpu" if args.device == "cpu" else "cuda", args.kernels
    if device == "cuda" and readings is None and torch.cuda.is_available():
        # GPUs here that could not be read: planned for one past them, a GPU not here, whose memory nothing reads
        # (reading cuda:0's would start CUDA in this process, holding its memory for the whole run), with the
        # kernels the ranks run on this machine (a GPU not here is planned with Triton's).
        device, kernels = f"cuda:{torch.cuda.device_count()}", kernels_on_unread_gpus(args.kernels)
    # The ranks resolve --dtype on their own GPUs as `plan_generation` does on cuda:0's reading (one machine's GPUs
    # are alike here); without a reading, as for a GPU not here.
    if readings is not None and args.dtype is None:
        dtype = default_dtype_of(readings[0].facts)[0]
    else:
        dtype = resolve_dtype(args.dtype, torch.device("cpu") if device == "cpu" else None).value
    main = dataclasses.replace(planned_run(args, request, sources, dtype, device, layout, loras=loras), kernels=kernels)
    if readings is None:
        return [main.plan()]
    plans = [dataclasses.replace(main, gpu=readings[0]).plan()]
    if len(readings) > 1:
        others = planned_run(args, request, sources, dtype, device, layout, text_encoder=False, loras=loras)
        smallest = smallest_budget_gpu(readings[1:], args.vram)
        plans.append(dataclasses.replace(others, gpu=smallest).plan())
    return plans


def _visible_note() -> str:
    """Where CUDA_VISIBLE_DEVICES hides GPUs from this process, a note naming it (the machine may have more)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "" if visible is None else f" visible (CUDA_VISIBLE_DEVICES={visible!r})"
