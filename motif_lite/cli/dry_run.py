"""`motif-lite run --dry-run`: the effective settings, the sizes and the memory plan of the run the flags ask for,
printed as the run prepares them (`run_prepare.prepare`), with the speed flags in one line and, for several
processes, the host memory of those on this machine; it reads no weights and never downloads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite import launcher_variables
from motif_lite.cli.batch_notes import batch_label, listed
from motif_lite.cli.prepare import planned_run
from motif_lite.cli.run_prepare import prepare
from motif_lite.cli.run_request import seed_was_drawn
from motif_lite.cli.run_summary import planned_image_line, prompt_line
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    import torch

    from motif_lite.runtime.parallel import ParallelLayout


def dry_run(
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    loras: list[tuple[Path, float]],
    layout: ParallelLayout | None = None,
) -> int:
    """Print the effective settings, the sizes and the memory plan of the run the flags ask for (`prepare`, as the
    run prepares it); reads no weights and never downloads."""
    prepared = prepare(args, requests, args.device, loras, layout=layout)
    sources, device, dtype, plan = prepared.sources, prepared.device, prepared.dtype, prepared.plan
    described = plan.describe() if layout is None else f"{layout.describe()}; per rank:\n{plan.describe()}"
    if layout is not None and plan.host is not None:
        others = planned_run(args, requests[0], sources, dtype, device, layout, text_encoder=False).plan()
        described += "\n" + _host_of_the_machine(plan.host.peak_bytes, others.host.peak_bytes, layout.world)
    sizes = prepared.planned.sizes.lines()  # the ones the plan counted with
    prompt = args.prompt if args.resume is None else requests[0].prompt  # a resumed run's is in its latents file
    image = planned_image_line(requests[0]) if args.resume is None else []  # a resumed run's is in its file
    lines = [
        prompt_line(prompt),
        *image,
        _seed_line(args, requests),
        *prepared.settings.lines(),
        dry_run_speed(args, device),
        *sizes,
    ]
    lora_lines = ["loras: " + ", ".join(f.describe() for f in prepared.lora_files)] if prepared.lora_files else []
    print("\n".join([*lines, *lora_lines, described]))
    return 0


def _seed_line(args: argparse.Namespace, requests: list[GenerationRequest]) -> str:
    """The seeds of the run's videos, as the run's own line names them ("seed: 5", "seeds: 5, 6"), or that the run
    draws them: without it a dry run's printout, kept as the record of a run's settings, named no seed. A resumed
    run's seed is its latents file's, which leaves -s unset."""
    if args.resume is None and seed_was_drawn(args):
        return f"{batch_label('seed', requests)}: drawn by the run and printed as it starts (-s N chooses one)"
    return f"{batch_label('seed', requests)}: {listed([str(request.seed) for request in requests])}"


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
