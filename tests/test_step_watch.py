"""The denoising loop's per-step bookkeeping (pipeline/step_watch.py): on a GPU each step is checked one step late,
so the host waits for a step only while the next one is queued (issue #17)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from test_launches import launches

from motif_lite.numerics import NonFiniteError
from motif_lite.pipeline import step_watch
from motif_lite.pipeline.step_watch import StepWatch


def watch(lag: int) -> tuple[StepWatch, list[float], list[tuple[int, int]]]:
    seconds, progress = [], []
    return StepWatch(seconds, 4, lambda done, total: progress.append((done, total)), lag=lag), seconds, progress


def test_a_gpu_step_reads_only_the_step_before_it():
    # lag 1: the host reads one flag per step, the previous step's; the last is read by `finish`. Step 0's call
    # reads nothing (with lag 0 it would read its own flag: the negative control).
    for lag, expected in ((1, [0, 1, 1, 1, 1]), (0, [1, 1, 1, 1, 0])):
        steps, seconds, progress = watch(lag)
        syncs = []
        for i in range(4):
            with launches.recording() as log:
                steps(i, torch.full((2, 3), float(i)))
            syncs.append(len(log.syncs))
        with launches.recording() as log:
            steps.finish()
        assert [*syncs, len(log.syncs)] == expected
        assert len(seconds) == 4 and progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert steps.next_step == 4


@pytest.mark.parametrize("lag", [0, 1])
def test_inf_or_nan_still_stops_the_run_naming_its_step(lag):
    steps, _, progress = watch(lag)
    steps(0, torch.ones(3))
    bad = torch.tensor([1.0, float("nan"), 2.0])
    if lag == 0:
        with pytest.raises(NonFiniteError, match="after step 2 of 4"):
            steps(1, bad)
        return
    steps(1, bad)  # queued: found once step 2 is queued too
    with pytest.raises(NonFiniteError, match="after step 2 of 4"):
        steps(2, torch.ones(3))
    assert progress == [(1, 4)]
    steps, _, _ = watch(lag)
    steps(0, bad)  # the last step of a run: found by finish
    with pytest.raises(NonFiniteError, match="after step 1 of 4"):
        steps.finish()


@pytest.mark.parametrize("lag", [0, 1])
def test_each_step_is_timed_from_the_end_of_the_step_before(lag, monkeypatch):
    # The host's clock reads 10 at the start, then 11, 13, 16, 20 as steps settle: each step's own seconds, not
    # the time since the start and not negative. The summary's s/step and the benchmark's step times come from them.
    clock = iter([10.0, 11.0, 13.0, 16.0, 20.0])
    monkeypatch.setattr(step_watch, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    steps, seconds, _ = watch(lag)
    for i in range(4):
        steps(i, torch.ones(2))
    steps.finish()
    assert seconds == [1.0, 2.0, 3.0, 4.0]
