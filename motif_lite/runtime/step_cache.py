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
forces a refresh); a batched call (both branches in one forward) decides for each branch as separate calls
would: a branch that passes is served from its cache, and when the other does not, that branch's rows alone go
through the rest of the network (a batch-1 forward) and only its cache is refreshed, so that batched guidance
gives the predictions of separate calls with a step cache too. Threshold 0 never reuses and stores nothing: the
stages then run exactly as the plain forward (bit-equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
        reusable = self._reusable(step, branches, probes)
        self.reused += sum(reusable)
        if all(reusable):
            residual = torch.cat([self.branches[name].residual for name in branches])
            return model.head(s.x + residual, s)
        # Only the branches that must be computed again go through the rest of the network: in a batched call where
        # one branch may reuse and the other may not, the other's row alone (a batch-1 forward), so that each branch
        # is decided and served exactly as in separate calls. The branches computed again let go of their last
        # probe and residual before the forward, not after it: at its peak only a reused branch's pair and this
        # call's probe and first-block output of the computed rows are held (`activation_memory.step_cache_bytes`).
        computed = [i for i, reuse in enumerate(reusable) if not reuse]
        for i in computed:
            self.branches.pop(branches[i], None)
        decoder_x, ctx, decoder_ctx = s.x, s.ctx, s.decoder_ctx
        if len(computed) < len(branches):  # one of two branches: its rows of each per-row tensor
            (i,) = computed
            n = len(branches)
            probes = [probes[i]]  # the reused branch's new probe is not kept
            x, context = (t.chunk(n)[i].clone() for t in (x, context))  # the whole batch's storage let go
            decoder_x = s.x.chunk(n)[i]  # a view: s.x is held anyway
            temb = _row(ctx.silu_temb, i, n)
            ctx = replace(ctx, silu_temb=temb, mask=_row(ctx.mask, i, n), text_mask=_row(ctx.text_mask, i, n))
            decoder_ctx = replace(decoder_ctx, silu_temb=temb)
        decoded = model.run_decoder(decoder_x, model.run_encoder(x, context, ctx, first=k), decoder_ctx)
        del x, context
        residuals = _per_branch_difference(decoded, decoder_x, len(computed))
        for i, probe, residual in zip(computed, probes, residuals, strict=True):
            self.branches[branches[i]] = _Branch(probe, residual)
        if len(computed) < len(branches):  # the reused branch's rows as a reused call makes them
            embedded = s.x.chunk(len(branches))
            rows = [decoded if i in computed else embedded[i] + self.branches[name].residual
                    for i, name in enumerate(branches)]  # fmt: skip
            decoded = torch.cat(rows)
        return model.head(decoded, s)

    def _reusable(self, step: int, branches: tuple[str, ...], probes: list[torch.Tensor]) -> list[bool]:
        """Per branch in the call: whether its prediction may come from its own cache (its probe within the threshold
        of its probe at its last full computation); never on the first or the last step."""
        if step == 0 or step >= self.steps - 1:
            return [False] * len(branches)
        known = [(name, probe) for name, probe in zip(branches, probes, strict=True) if name in self.branches]
        if not known:
            return [False] * len(branches)
        changes = torch.stack([relative_l1(probe, self.branches[name].probe) for name, probe in known])
        below = iter((changes < self.config.threshold).tolist())  # one host sync per call
        return [next(below) if name in self.branches else False for name in branches]


def _row(t: torch.Tensor | None, i: int, branches: int) -> torch.Tensor | None:
    """Branch `i`'s rows of a per-row tensor whose batch is `branches` equal chunks (None stays None)."""
    return None if t is None else t.chunk(branches)[i]
