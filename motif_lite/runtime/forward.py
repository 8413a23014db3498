"""The sampling loop's velocity callbacks: the transformer's forward, with the speed features that wrap it.

    predict_velocity, predict_guided = velocity_fns(transformer, cond.inputs, lambda: watch.next_step,
                                                    cache=cache, parallel=parallel, batched=True)
    denoise(predict_velocity, noise, schedule, ..., predict_guided=predict_guided)

Each feature, from the model outwards: sequence parallel runs the model's forward split over its ranks
(`Parallel.transformer`); a step cache runs the transformer's stages itself in place of that forward, skipping
them where it may (`StepCache`); batched guidance adds a callback that makes both guidance branches' predictions
in one batch-2 forward; and a parallel run's guidance split sends each branch of the one-branch callback to its own
group of ranks (`Parallel.velocity`). load_pipeline gives a parallel run neither a step cache (refused:
`preflight.step_cache_setting`) nor batched guidance (turned off: `loading.install_speed`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.runtime.parallel import Parallel
from motif_lite.runtime.step_cache import StepCache
from motif_lite.sampling import GuidedVelocityFn, VelocityFn

# The transformer's inputs (hidden, text, text mask, image embeds) for the noisy latents once per guidance branch
# (True: the prompt, False: the negative prompt), stacked along the batch: `Conditioning.inputs`.
BranchInputs = Callable[
    [torch.Tensor, tuple[bool, ...]], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]
]


def velocity_fns(
    transformer: MotifVideoTransformer,
    inputs: BranchInputs,
    next_step: Callable[[], int],
    cache: StepCache | None = None,
    parallel: Parallel | None = None,
    batched: bool = False,
) -> tuple[VelocityFn, GuidedVelocityFn | None]:
    """`denoise`'s `predict_velocity` and `predict_guided` (None unless `batched`) for `transformer`.

    `next_step()`: the sampling step the next forward belongs to (the step cache never reuses on the first or the
    last). `cache`: this run's step cache (it holds the transformer itself). `parallel`: this rank's part of a
    parallel run."""
    model = transformer if parallel is None else parallel.transformer(transformer)

    @torch.no_grad()
    def forward(x: torch.Tensor, t: torch.Tensor, branches: tuple[bool, ...]) -> torch.Tensor:
        hidden, text, text_mask, image_embeds = inputs(x, branches)  # [B * len(branches), ...]
        t = t.repeat(len(branches))
        if cache is None:
            return model(hidden, t, text, text_mask, image_embeds)
        names = tuple("cond" if branch else "uncond" for branch in branches)
        return cache(next_step(), hidden, t, text, text_mask, image_embeds, names)

    def predict_velocity(x: torch.Tensor, t: torch.Tensor, conditional: bool) -> torch.Tensor:
        return forward(x, t, (conditional,))

    def predict_guided(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward(x, t, (True, False)).chunk(2)  # [2B, ...] -> the conditional, the unconditional

    one_branch = predict_velocity if parallel is None else parallel.velocity(predict_velocity)
    return one_branch, predict_guided if batched else None
