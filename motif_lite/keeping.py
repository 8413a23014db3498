"""A run's work kept when it stops (io/latents.py has the file): the sampling state after the last finished step
when sampling stops early or runs long (and after the last step of a long sampling, before the decode), the
denoised latents when the decode fails, and what to tell the user.

    saver = StateSaver(keeper, to_saved, every=600.0, steps=50, start=None, final_after=60.0)  # the loop's on_state
    ...
    except BaseException as exc:
        note = saver.save_on_failure()                                     # "sampling stopped after step 31 ..."
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from motif_lite.io.latents import SavedLatents, latents_path
from motif_lite.io.latents_saving import LatentsFile, LatentsSaveError
from motif_lite.sampling import SamplingState
from motif_lite.shell_syntax import quoted
from motif_lite.stopping import Terminated

logger = logging.getLogger(__name__)

# A run saves its sampling state this often while it samples (`MotifVideoPipeline.save_state_every`): a crash that
# no handler sees (power, the kernel's OOM killer, `kill -9`) loses at most this much.
SAVE_STATE_EVERY_SECONDS = 600.0

# A run whose sampling took at least this long saves its state after the last step too, before the decode: the
# decode needs the most host and GPU memory of the run, so it is where the kernel's OOM killer strikes (no handler
# runs then), and without this save everything since the last periodic one (all of a run of under 10 minutes) is
# sampled again. A shorter sampling is cheap to redo and not worth a write of its latents (tiny test runs write none).
SAVE_FINAL_STATE_AFTER_SECONDS = 60.0


class StateSaver:
    """The sampling loop's `on_state` in a run that keeps its work: holds the state after the last step, writes it
    every `every` seconds of sampling, after the last step when sampling took at least `final_after` seconds (the
    decode, which comes next, may be killed), and when sampling fails (`save_on_failure`). It never writes a state
    holding inf/NaN: going on from it would give them again.

    `to_saved(state)`: the state as the file stores it (with the run's request and model); `start`: where a
    resumed run began."""

    def __init__(
        self,
        keeper: LatentsFile,
        to_saved: Callable[[SamplingState], SavedLatents],
        every: float,
        steps: int,
        start: SamplingState | None = None,
        final_after: float = SAVE_FINAL_STATE_AFTER_SECONDS,
    ) -> None:
        self.keeper, self.to_saved, self.every, self.steps, self.start = keeper, to_saved, every, steps, start
        self.final_after = final_after
        self.last: SamplingState | None = None
        self.began = self.saved_at = time.monotonic()
        self.warned = False  # a failed save during sampling is said once; sampling goes on

    def __call__(self, state: SamplingState) -> None:
        self.last = state
        now = time.monotonic()
        if state.done == self.steps:
            if now - self.began >= self.final_after:
                self._save(state, "the decode goes on")
            return
        if now - self.saved_at < self.every:
            return
        self.saved_at = now
        self._save(state, "sampling goes on")

    def _save(self, state: SamplingState, going_on: str) -> None:
        """Write `state`, unless it holds inf/NaN; a failed save is warned of once (saying what goes on), not
        raised: the run goes on without it."""
        if not _finite(state.latents):
            return
        moved = self.keeper.moved
        try:
            path = self.keeper.save(self.to_saved(state))
        except Exception as error:
            if not self.warned:
                logger.warning(f"{_not_saved(self.keeper, error)}; {going_on}")
                self.warned = True
            return
        if self.keeper.moved != moved:  # said once: a crash from here on leaves the state there
            logger.warning(f"{self.keeper.moved}; the run's state is kept in {path} instead")

    def save_on_failure(self) -> str:
        """Write the state after the last step this run finished; -> what to tell the user."""
        state = self.last if self.last is not None else self.start  # a resumed run: at least where it began
        if state is None:
            return "no sampling step had finished: nothing to save"
        if not _finite(state.latents):
            return "the sampled latents hold inf or NaN: nothing saved"
        return keep(self.keeper, self.to_saved(state))


# What `motif-lite decode FILE` runs, for a Python caller (docs/usage.md): the VAE alone, no sampling again.
PYTHON_DECODE = (
    "in Python: from motif_lite.decoding import prepare_decode, run_decode; "
    "run_decode(prepare_decode(motif_lite.read_latents(that file)))"
)


# Set on an out-of-memory error of a run's decode whose latents were kept: its advice is `motif-lite decode`'s, and
# the run's own (`prepare.figures_on_out_of_memory`: a lower --vram for the whole run) is not added after it.
DECODE_ADVICE_GIVEN = "motif_lite_decode_advice"


def advise_decode_out_of_memory(error: BaseException, path: Path, device: torch.device | str = "cuda") -> None:
    """Note on a run's decode `error` (out of `device`'s memory) what to do with the denoised latents kept in
    `path`: decode them alone, which plans its memory again, where the same command again would sample the video
    again; worded for the device the run used (a GPU's free memory is planned for, other devices' only with --vram).
    The CLI prints a note in place of its advice without figures."""
    pasted = quoted(str(path))
    kind = torch.device(device).type
    if kind == "cuda":
        how = ("which plans the decode for the GPU memory free then (add --vram GiB to decode in less memory, or "
               "--device cpu to use none of the GPU's)")  # fmt: skip
    elif kind == "cpu":
        how = "which loads the VAE alone (add --vram GiB to decode in less memory)"
    else:  # mps, xpu, ...: no free memory to read, so no plan without --vram
        how = (f"which loads the VAE alone (add --vram GiB to plan the decode for less {kind} memory, or "
               "--device cpu to use none of it)")  # fmt: skip
    error.add_note(
        f"the sampling is done and kept: make the video with motif-lite decode {pasted}, {how}; the same run again "
        "would sample the video again"
    )
    setattr(error, DECODE_ADVICE_GIVEN, True)


def keep(keeper: LatentsFile, saved: SavedLatents) -> str:
    """Save `saved` with `keeper`; return what to tell the user. Never raises (but for a second Ctrl-C or a stop
    signal): a failed save must not hide the error that called for it."""
    try:
        return _kept(keeper.save(saved), saved, keeper.moved)
    except KeyboardInterrupt as stop:  # the file is whole either way (staged); say which
        # A stop signal (SIGTERM, ...) is a KeyboardInterrupt too: a scheduler's first one may land in a save that
        # an error or a first Ctrl-C began.
        stopped_by = stop.args[0] if isinstance(stop, Terminated) else "a second Ctrl-C"
        logger.warning(f"{stopped_by} stopped the save: {_left(keeper)}")
        raise
    except Exception as error:
        # An earlier save of this run is still whole in the file (a save is staged): said, or the user would sample
        # again what it holds (after the last step, all the sampling: the decode alone makes the video).
        said = _not_saved(keeper, error)
        return said if keeper.kept is None else f"{said}; {_left(keeper)}"


def untouched(keeper: LatentsFile) -> str:
    """What to tell of a resumed run stopped before its sampling began (in its encode): its file is as it was."""
    pasted = quoted(str(keeper.path))
    return f"{keeper.path} is as it was when this run began: go on from it with motif-lite run --resume {pasted}"


def _left(keeper: LatentsFile) -> str:
    """What a save stopped halfway leaves: the file as an earlier save of this run wrote it, or as it was."""
    path, saved = keeper.path, keeper.kept
    pasted = quoted(str(path))
    if saved is not None and saved.denoised:
        return f"{path} holds the denoised latents an earlier save kept: motif-lite decode {pasted} ({PYTHON_DECODE})"
    if saved is not None and saved.sampling_done:  # the state saved after the last step, before the decode
        return (f"{path} holds the state after the last step, from an earlier save: all the sampling; make the "
                f"video from it without sampling again: motif-lite decode {pasted} ({PYTHON_DECODE})")  # fmt: skip
    if saved is not None:
        done, steps = saved.progress
        return (f"{path} holds the state after step {done} of {steps}, from an earlier save: go on from there with "
                f"motif-lite run --resume {pasted}")  # fmt: skip
    if path is not None and path.exists():  # the file this run resumed from, untouched
        return f"{path} is as it was when this run began"
    return "nothing is kept"


def _kept(path: Path, saved: SavedLatents, moved: str | None = None) -> str:
    """What to tell the user of latents saved in `path`: how to make the video, or to go on sampling; `moved`: why
    they are not beside the output (`LatentsFile.moved`)."""
    pasted = quoted(str(path))
    where = f"{path} ({moved})" if moved else str(path)
    # Said to `motif-lite run` and to Python's generate alike (a warning, or the error's message): both ways.
    if saved.denoised:
        return (f"the denoised latents are saved in {where}; make the video from them without sampling again: "
                f"motif-lite decode {pasted} ({PYTHON_DECODE})")  # fmt: skip
    done, steps = saved.progress
    if saved.sampling_done:  # stopped after its last step, before the decode (a Ctrl-C on the last step's report)
        return (f"sampling stopped after its last step, before the decode: all {steps} steps are sampled, their state "
                f"is saved in {where}; make the video from it without sampling again: motif-lite decode {pasted} "
                f"({PYTHON_DECODE}), or motif-lite run --resume {pasted}")  # fmt: skip
    python = (
        "in Python: saved = motif_lite.read_latents(that file); "
        "pipe.generate(motif_lite.GenerationRequest(**saved.request), resume=saved)"
    )
    return (f"sampling stopped after step {done} of {steps}; its state is saved in {where}: go on from there with "
            f"motif-lite run --resume {pasted} ({python})")  # fmt: skip


def _not_saved(keeper: LatentsFile, error: Exception) -> str:
    if isinstance(error, LatentsSaveError):  # says each place tried and the space needed
        return str(error)
    where = keeper.path or latents_path(keeper.output)
    return f"the latents could not be saved to {where} ({type(error).__name__}: {error})"


def _finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())
