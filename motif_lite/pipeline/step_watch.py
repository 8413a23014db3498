"""What the host does after each denoising step: time it, check its latents for inf/NaN, report the progress.

Checking the latents reads a value on the host, which waits for the device to finish the step. Done right after
the step is queued, the GPU would idle while the host then queues the next step's first kernels. On a GPU
(`lag=1`) each step is therefore settled one step late, once the next step is queued: the host waits for step
i while step i+1 runs, and the GPU's queue never runs dry. On the CPU (`lag=0`) a step is done when the loop
returns from it, so it is settled at once. Either way every step is timed, checked and reported, in order; the
times are those of its end as the host sees it (the device's, where the host waits)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from motif_lite.numerics import check_finite


class StepWatch:
    """The denoising loop's `on_step`. `seconds`: the list each step's time is appended to; `progress(done, total)`
    after each; `overflow_cause`: what an inf/NaN most likely comes from (`check_finite`); `first`: the first step
    of a resumed run."""

    def __init__(
        self,
        seconds: list[float],
        total: int,
        progress: Callable[[int, int], None],
        overflow_cause: str | None = None,
        lag: int = 0,
        first: int = 0,
    ) -> None:
        self.seconds, self.total, self.progress = seconds, total, progress
        self.overflow_cause, self.lag = overflow_cause, lag
        self.next_step = first  # the step the loop runs next (the step cache's index)
        self.pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (step, its latents, "all finite" flag)
        self.last = time.perf_counter()

    def __call__(self, step: int, latents: torch.Tensor) -> None:
        self.next_step = step + 1
        self.pending.append((step, latents, torch.isfinite(latents).all()))  # queued: read when settled
        while len(self.pending) > self.lag:
            self._settle(*self.pending.pop(0))

    def finish(self) -> None:
        """Settle the steps still pending (the last one, on a GPU): after the loop."""
        while self.pending:
            self._settle(*self.pending.pop(0))

    def _settle(self, step: int, latents: torch.Tensor, finite: torch.Tensor) -> None:
        if not bool(finite):  # the one host sync per step: waits for this step only
            check_finite(latents, f"the latents after step {step + 1} of {self.total}", self.overflow_cause)
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now
        self.progress(step + 1, self.total)
