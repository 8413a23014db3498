"""Step caching (opt-in, lossy): skip most of the transformer on steps where its input barely changed.

    cache = StepCache(transformer, StepCacheConfig(threshold=0.05), steps=50)
    velocity = cache(step, latents, timestep, text, text_mask, image_embeds, branches=("cond", "uncond"))
    cache.reused, cache.calls            # predictions served from the cache, predictions made

First-Block-Cache style, built from the transformer's public stages (embed -> encoder blocks -> DDT decoder ->
head). Every call runs `embed` and the first `blocks` encoder blocks. Their effect on the video stream,
`probe = x_after_first_blocks - x_embedded`, is the change detector: when, for every guidance branch in the
batch, its relative L1 distance to the probe of that branch's last full computation is below `threshold`,
the remaining blocks are skipped and the cached residual is used instead.

What "the residual of the remaining blocks" is for Motif-Video: the video stream that reaches the output head
is the DDT decoder's, and the decoder restarts from the patch-embedded input `x_embedded` (it attends over the
encoder's output, which does not flow into it as a residual). So the cached quantity is `decoder_output -
x_embedded` of the last full computation, and a reused call predicts `head(x_embedded + cached)` with this
step's own `x_embedded` and timestep (the head's AdaLN still sees the current timestep). Everything between the
first blocks and the head is skipped: the rest of the encoder and all decoder blocks. (Caching only the
encoder's residual would still run the decoder, about half of the work at 720p.)

Rules: never reuse on the first or the last step; each branch ("cond", "uncond") keeps its own probe and
residual, compared against its own last full computation (not the previous step, so slow drift adds up and
forces a refresh); a batched call (both branches in one forward) is reused only when every branch passes, and
a full computation refreshes every branch in it. Threshold 0 never reuses and stores nothing: the stages then
run exactly as the plain forward (bit-equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.model.transformer import MotifVideoTransformer


@dataclass(frozen=True)
class StepCacheConfig:
    """threshold: relative L1 change of the probe below which a call is served from the cache (0 = never).
    blocks: leading encoder blocks run on every call to compute the probe (1 = First-Block-Cache)."""

    threshold: float
    blocks: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ConfigError(f"step cache threshold must be a number (e.g. 0.05), got {self.threshold!r}")
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ConfigError(f"step cache threshold must be a finite number >= 0, got {self.threshold!r}")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 1:
            raise ConfigError(f"step cache blocks must be an integer >= 1, got {self.blocks!r}")

    def check_blocks(self, config: TransformerConfig) -> None:
        """Raise `ConfigError` when the probe's `blocks` leave no encoder block of a transformer of `config` to skip
        (its dual-stream blocks and the single-stream ones before the DDT decoder)."""
        encoder_blocks = config.num_layers + config.num_encoder_single_layers
        if self.blocks >= encoder_blocks:
            raise ConfigError(
                f"step cache blocks={self.blocks}: the encoder has only {encoder_blocks} blocks; give blocks from 1 "
                f"to {encoder_blocks - 1} (1, the default, probes with the first block)"
            )


def threshold_note(threshold: float) -> str | None:
    """What to say about a threshold of 1 or more: the probe's relative change is a fraction, so such a threshold
    reuses nearly every step (the first and the last excepted), which is rarely what was meant (5 for 5 %, or
    another tool's scale)."""
    if threshold < 1:
        return None
    return (
        f"--step-cache {threshold:g} reuses the cached work whenever the first block's output changed by less than "
        f"{threshold:.0%}, i.e. on nearly every step but the first and the last: the video will be far from the "
        "uncached one. The threshold is a fraction (0.05 = 5 %); try 0.05-0.1"
    )


@dataclass
class _Branch:
    probe: torch.Tensor  # [B, N, C] the first blocks' effect at the last full computation
    residual: torch.Tensor  # [B, N, C] decoder output - decoder input at the last full computation


def _per_branch_difference(a: torch.Tensor, b: torch.Tensor, branches: int) -> list[torch.Tensor]:
    """a - b for each branch's rows ([B, N, C] -> `branches` x [B / branches, N, C]), each in its own storage.
    Not `(a - b).chunk(...)`: a stored branch would then be a view that keeps the whole batch's storage alive,
    so after a batched step a cond-only call (a guidance window) would hold the uncond branch's probe and
    residual at twice their size, beyond what the planner counts (`STEP_CACHE_VIDEO_TENSORS`). The same
    element-wise subtraction, so the same values, and no copy."""
    return [x - y for x, y in zip(a.chunk(branches), b.chunk(branches), strict=True)]


def relative_l1(now: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """mean |now - before| / mean |before| (0-dim, float32)."""
    return (now - before).float().abs().mean() / before.float().abs().mean()


class StepCache:
    """Runs the transformer for one sampling run, reusing the skipped part's residual where allowed."""

    def __init__(self, transformer: MotifVideoTransformer, config: StepCacheConfig, steps: int) -> None:
        config.check_blocks(transformer.config)
        self.transformer, self.config, self.steps = transformer, config, steps
        self.branches: dict[str, _Branch] = {}
        self.reused = 0  # predictions (one per branch and step) served from the cache
        self.calls = 0  # predictions made

    def __call__(
        self,
        step: int,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor | None,
        image_embeds: torch.Tensor | None,
        branches: tuple[str, ...],
    ) -> torch.Tensor:
        """The velocity for the transformer inputs (as `MotifVideoTransformer.forward` takes them) at sampling
        step `step`; the batch is `len(branches)` equal chunks, one per named guidance branch."""
        model, k = self.transformer, self.config.blocks
        s = model.embed(latents, timestep, text_embeds, text_mask, image_embeds)
        x, context = model.run_encoder_blocks(s.x, s.context, s.ctx, 0, k)
        self.calls += len(branches)
        if self.config.threshold == 0:  # never reused: nothing to keep
            encoded = model.run_encoder(x, context, s.ctx, first=k)
            return model.head(model.run_decoder(s.x, encoded, s.decoder_ctx), s)
        probes = _per_branch_difference(x, s.x, len(branches))
        if self._may_reuse(step, branches, probes):
            self.reused += len(branches)
            residual = torch.cat([self.branches[name].residual for name in branches])
            return model.head(s.x + residual, s)
        # The branches computed again let go of their last probe and residual before the forward, not after it:
        # at its peak only the other branch's pair (a batch-1 call) and this call's probe and first-block output
        # are held (`activation_memory.step_cache_bytes`).
        for name in branches:
            self.branches.pop(name, None)
        decoded = model.run_decoder(s.x, model.run_encoder(x, context, s.ctx, first=k), s.decoder_ctx)
        residuals = _per_branch_difference(decoded, s.x, len(branches))
        for name, probe, residual in zip(branches, probes, residuals, strict=True):
            self.branches[name] = _Branch(probe, residual)
        return model.head(decoded, s)

    def _may_reuse(self, step: int, branches: tuple[str, ...], probes: list[torch.Tensor]) -> bool:
        if step == 0 or step >= self.steps - 1 or any(name not in self.branches for name in branches):
            return False
        changes = torch.stack([relative_l1(p, self.branches[n].probe) for n, p in zip(branches, probes, strict=True)])
        return bool((changes < self.config.threshold).all())  # one host sync per call
