"""How `motif-lite serve` loads its model: checked, planned and loaded as `run` does, for the largest job the
server takes (`largest_job`), with what every job gets said once loaded; and, for a server on the CPU without
--max-video, which jobs are refused as too long (`cpu_time_limit`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.request import REQUEST_DEFAULTS, GenerationRequest
from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS

if TYPE_CHECKING:  # torch and the pipeline load only when the command runs
    import torch

    from motif_lite.checkpoint import GGUFFilesRead, ModelSources
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.server.app import ServerConfig
    from motif_lite.server.submission import TooLong
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile


def load_served_pipeline(
    args: argparse.Namespace,
    config: ServerConfig,
    loras: list[tuple[Path, float]],
    header_read: GGUFFilesRead | None = None,
) -> tuple[MotifVideoPipeline, ServerConfig]:
    """Check, plan and load the model as run does, saying what it loads; -> (the pipeline, `config` with what the
    loaded model decides: the largest video a job may ask for, the planned size when there is a plan; whether it
    takes images; on the CPU without --max-video, which jobs are too long). `header_read`: the GGUF files read
    already (`check_gguf_files`): each file's header is read once, and the --gguf one not held once loaded."""
    from motif_lite.cli.common import print_notes
    from motif_lite.cli.kernel_cache import writable_kernel_cache
    from motif_lite.cli.prepare import (
        checked_lora_files,
        figures_on_out_of_memory,
        load_from_flags,
        loading_notes,
        plan_if_budget,
        planned_batch_guidance,
        preflight_flags,
        refuse_what_no_plan_fits,
        text_encoder_words,
    )
    from motif_lite.server.worker import operator_advice
    from motif_lite.settings import resolve_dtype

    max_video = config.max_video
    # A plan is made for the largest video a job may ask for, which is then the official size unless --max-video says.
    planned_video = max_video or (REQUEST_DEFAULTS.width, REQUEST_DEFAULTS.height, REQUEST_DEFAULTS.frames)

    def before_download(download: DownloadPlan) -> None:  # what no plan fits, said before gigabytes, as run says it
        refuse_what_no_plan_fits(
            args, lambda sources: largest_job(sources, planned_video), args.device, header_read=header_read
        )

    # Every check, and any download, before planning, as run: the --lora files before the download too.
    sources, device = preflight_flags(args, args.device, before_download, loras, header_read)
    largest = largest_job(sources, planned_video)
    print_notes(filter(None, [writable_kernel_cache(os.environ, args.kernels, device)]))  # before it compiles
    dtype = resolve_dtype(args.dtype, device).value  # as load_pipeline resolves it: --dtype, else the GPU's default
    print_notes(loading_notes(sources, device, args.device))  # as run prints them
    # The --lora files' adapters beside packed layers count, as in run's plan (a job's own LoRAs are checked against
    # this plan as it is submitted: `server.loras.check_loras_fit_plan`).
    lora_files = checked_lora_files(loras, sources)
    planned, plan = plan_if_budget(args, largest, sources, dtype, device, loras=lora_files)
    if plan is not None:
        max_video = planned_video
    # As run says it, with --vram's advice; a job may guide its steps (the official settings do).
    batch_guidance, note = planned_batch_guidance(args.batch_guidance, device, plan, guided=True)
    print_notes([note] if note else [])
    with_files = [f for f in (args.gguf, args.text_encoder_gguf) if f]
    print(f"loading {args.model}" + (f" with {' and '.join(map(str, with_files))}" if with_files else "") + " ...",
          file=sys.stderr)  # fmt: skip
    # Out of memory while it loads: the operator's figures, as a job's out-of-memory error gives them.
    with figures_on_out_of_memory(planned, plan, operator_advice):
        pipe = load_from_flags(args, sources, device, plan, lora_files, batch_guidance)
    _say_loaded(args, pipe, text_encoder_words(sources), max_video)
    pipe.warns_long_cpu_runs = False  # a long CPU job is refused (cpu_time_limit), or --max-video accepts it
    too_long = cpu_time_limit(pipe, dtype) if device.type == "cpu" and max_video is None else None
    if too_long is not None:  # said now, not first to the client whose job it refuses
        print(CPU_TIME_LIMIT_LINE, file=sys.stderr)
    if planned is not None:  # kept for the advice of a job out of memory: with the sources the pipeline keeps
        planned = dataclasses.replace(planned, sources=pipe.sources)
    loaded = dataclasses.replace(
        config, max_video=max_video, image_to_video=sources.takes_images, too_long=too_long,
        planned=planned, plan=plan,
    )  # fmt: skip
    return pipe, loaded


def largest_job(sources: ModelSources, video: tuple[int, int, int]) -> GenerationRequest:
    """The job a server's memory plan is made for: the largest `video` (width, height, frames) it takes, as
    image-to-video where the checkpoint takes images (`ModelSources.takes_images`, which also decides whether the
    server accepts them): the first frame's VAE encoding and the image tokens are then counted."""
    width, height, frames = video
    image = Path("first-frame.png") if sources.takes_images else None  # only its being there counts for the plan
    return GenerationRequest("-", width=width, height=height, frames=frames, image=image)


def _say_loaded(
    args: argparse.Namespace, pipe: MotifVideoPipeline, text_encoder: str | None, max_video: tuple[int, int, int] | None
) -> None:
    """What every job gets from the loaded model: its LoRAs, or those jobs may name, and the default settings."""
    from motif_lite.request import GenerationRequest
    from motif_lite.server.submission import within_max_video

    if pipe.loras is not None:
        print(f"loras: {pipe.loras.describe()}", file=sys.stderr)
    if args.lora_dir is not None:
        from motif_lite.server.loras import available_loras

        files = available_loras(args.lora_dir)
        print(f"LoRAs jobs may name, from {args.lora_dir}: {', '.join(files) or 'none yet'}", file=sys.stderr)
    print("\n".join(pipe.settings_for(GenerationRequest("-")).lines()), file=sys.stderr)  # what jobs get by default
    for note in within_max_video({}, max_video)[1]:  # the table's official size, where --max-video allows less
        print(f"jobs by default: {note}", file=sys.stderr)
    if text_encoder is not None:  # as run's summary says it: the table's row names the encoder's config only
        print(f"text encoder: {text_encoder}", file=sys.stderr)
    if args.crf is not None:  # an encoding option, not in the settings table: the jobs' default said here
        print(f"crf: {args.crf} for every job that gives no crf of its own", file=sys.stderr)


# The banner's line for a server on the CPU without --max-video (`cpu_time_limit` refuses such jobs).
CPU_TIME_LIMIT_LINE = (
    f"jobs estimated over {LONG_CPU_RUN_SECONDS // 60} minutes on this CPU are refused (the CPU is meant for tests); "
    "restart with --max-video WxHxF to accept videos up to that size whatever they take"
)


# The small video a CPU server's refusal suggests; a job's size, frames or steps brought down to it shows which of
# them make the job too long.
SMALL_CPU_VIDEO = {"width": 256, "height": 256, "frames": 9, "steps": 2}


def cpu_time_limit(
    pipe: MotifVideoPipeline, dtype: torch.dtype
) -> Callable[[GenerationRequest, Settings, Sequence[LoRAFile]], TooLong | None]:
    """For a server on the CPU without --max-video: a job that `motif-lite run` would ask about (estimated over
    ~10 minutes at this CPU's matrix-multiply rate and fixed cost per transformer call, measured once now) is
    refused with the estimate and the fields that make it that long, so that a default-size request cannot hold
    the queue for months. The work of the LoRA adapters beside packed layers counts, as `run` counts it: the job's
    LoRA files (the limit's third argument), or where it names none the server's own (--lora)."""
    from motif_lite.memory_plan import packed_adapter_macs
    from motif_lite.run_estimates import long_cpu_run, run_flops, transformer_calls
    from motif_lite.runtime import cost
    from motif_lite.server.submission import TooLong

    throughput = cost.measure_matmul_flops(dtype)
    call_seconds = cost.measure_call_seconds(pipe.sources.transformer.value, dtype)
    configs = pipe.sources.configs
    own_loras = pipe.loras.files if pipe.loras is not None else []
    own_macs = packed_adapter_macs(pipe.sources, own_loras, dtype)

    def too_long(request: GenerationRequest, settings: Settings, loras: Sequence[LoRAFile] = ()) -> TooLong | None:
        macs = packed_adapter_macs(pipe.sources, loras, dtype) if loras else own_macs

        def estimate(asked: GenerationRequest) -> str | None:
            flops, calls = run_flops(asked, settings, configs, macs), transformer_calls(asked, settings)
            return long_cpu_run(asked, flops, dtype, throughput, calls=calls, call_seconds=call_seconds)

        said = estimate(request)
        if said is None:
            return None
        small = SMALL_CPU_VIDEO
        why = (
            f"{said}. This server runs on the CPU, which is meant for tests: ask for a small video (e.g. size "
            f"{small['width']}x{small['height']}, {small['frames']} frames, {small['steps']} steps), or restart the "
            "server with --max-video WxHxF to accept videos up to that size whatever they take"
        )
        return TooLong(why, fields_too_long(request, lambda asked: estimate(asked) is not None))

    return too_long


def fields_too_long(request: GenerationRequest, is_long: Callable[[GenerationRequest], bool]) -> tuple[str, ...]:
    """The fields of `request` (too long, as `is_long` says) that make it so: "width" for the size, "frames",
    "steps", each larger than the small video's (`SMALL_CPU_VIDEO`). Those that, each brought down to the small
    video's alone, make the job short enough; where none does alone, all of them (only together do they)."""
    small = SMALL_CPU_VIDEO
    lowered = {
        "width": dataclasses.replace(request, width=small["width"], height=small["height"]),
        "frames": dataclasses.replace(request, frames=small["frames"]),
        "steps": dataclasses.replace(request, steps=small["steps"]),
    }
    larger = {
        "width": request.width * request.height > small["width"] * small["height"],
        "frames": request.frames > small["frames"],
        "steps": request.steps > small["steps"],
    }
    over = [field for field, is_larger in larger.items() if is_larger]
    alone = tuple(field for field in over if not is_long(lowered[field]))
    return alone or tuple(over) or ("width",)  # the small video itself too long (a very slow CPU): its size first
