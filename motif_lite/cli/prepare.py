"""What a run plans before loading the model: the memory plan of the run the flags ask for (`plan_run`), made by
`run`, its dry run and `--gpus N` before it starts its processes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.parallel import ParallelLayout
    from motif_lite.runtime.planner import Plan


def plan_run(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device | str,
    layout: ParallelLayout | None = None,
    text_encoder: bool = True,
) -> Plan:
    """The memory plan of the run the flags ask for (raises when nothing fits); in a parallel run (`layout`) the plan
    of one rank, which never batches the guidance branches (they run one call each, on their own ranks with cfg 2):
    one row per forward. Only the main rank loads the text encoder (`text_encoder`); the plans printed before a
    run are the main rank's."""
    from motif_lite.preflight import plan_generation

    return plan_generation(
        request, sources, dtype=dtype, device=device, vram_gib=args.vram, kernels=args.kernels,
        attention=args.attention, sequence_parallel=layout.sp if layout is not None else 1, ram_gib=args.ram,
        batch_guidance=False if layout is not None else args.batch_guidance, step_cache=bool(args.step_cache),
        text_encoder=text_encoder,
    )  # fmt: skip
