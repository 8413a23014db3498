"""What guards a call of `MotifVideoPipeline.generate` or `set_loras`: one call at a time on a pipeline, run on
its device, its tensors let go when it stops on Ctrl-C or out of memory, and a run refused before its work leaving
nothing behind."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import traceback
from collections.abc import Callable, Iterator

import torch

from motif_lite.devices import on_device
from motif_lite.errors import ConfigError
from motif_lite.io.image import WrittenFirstFrame

# The pipeline's own code, these guards included: a warning about a call names the caller's line, past its frames.
PIPELINE_FOLDER = os.path.dirname(os.path.abspath(__file__))


def frees_memory_when_stopped(method: Callable) -> Callable:
    """`method` (`generate`, `set_loras`), letting go of its tensors when it stops on Ctrl-C (a notebook's stop
    button) or out of memory.

    The traceback of such a stop keeps every frame it passed through alive with its locals: a forward's activations,
    gigabytes of GPU memory at 720p, or the transformer `set_loras` was loading. A notebook keeps the last traceback
    (`sys.last_traceback`), so the next call would meet a GPU still holding them and run out of memory. These
    frames' locals are cleared (a stopped run's state is saved before); other errors keep theirs, for a debugger."""

    @functools.wraps(method)
    def stoppable(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (KeyboardInterrupt, torch.OutOfMemoryError) as exc:
            traceback.clear_frames(exc.__traceback__)  # the frames still running (this one) are left as they are
            # This frame stays in the traceback too: without its arguments there, `del pipe` frees the pipeline.
            del args, kwargs
            raise

    return stoppable


class CallGuard:
    """The lock that the running `generate` or `set_loras` holds, with its thread and name: one object, so that a
    shallow copy of the pipeline (`copy.copy`), which shares its weights, shares the lock and who holds it too, and
    its call from a run's callback is refused as the pipeline's own would be. A deep copy or an unpickled pipeline
    gets a fresh one (a lock cannot be copied, and the copy runs nothing yet): a host's state (Gradio's gr.State)
    deep-copies what it holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: int | None = None
        self.method: str | None = None

    def __reduce__(self) -> tuple:  # copy.deepcopy and pickle: a fresh guard, held by no thread
        return (CallGuard, ())


def one_call_at_a_time(method: Callable) -> Callable:
    """`method` (`generate`, `set_loras`) run by one thread at a time on a pipeline: a host application's threads
    (a UI's workers, a web app's requests) calling it at once wait for the call before them. Two runs at once would
    need twice the memory the pipeline was planned for, and `set_loras` would take the transformer away from a run
    part way. Called from inside a call (a callback of `generate`, on its thread), it is refused: waiting there
    would hang the thread for good."""

    @functools.wraps(method)
    def one_at_a_time(self, *args, **kwargs):
        guard = getattr(self, "_calls", None)
        if guard is None:  # a pipeline not made by __init__ holds no model to share: its calls check arguments
            return method(self, *args, **kwargs)
        if guard.thread == threading.get_ident():
            raise ConfigError(
                f"pipe.{method.__name__} was called while this pipeline's {guard.method} runs, from its "
                "own thread (a callback such as on_progress): a pipeline runs one call at a time; call it after "
                f"{guard.method} returns"
            )
        with guard.lock:
            guard.thread, guard.method = threading.get_ident(), method.__name__
            try:
                return method(self, *args, **kwargs)
            finally:
                guard.thread, guard.method = None, None

    return one_at_a_time


def on_its_device(method: Callable) -> Callable:
    """A pipeline method run with the pipeline's device as the current CUDA device (`devices.on_device`): our Triton
    kernels launch on the current device, so a pipeline on `cuda:1` would launch them on `cuda:0`."""

    @functools.wraps(method)
    def run_on_its_device(self, *args, **kwargs):
        # A pipeline not made by load_pipeline (no device yet) has no GPU to make current: its calls check arguments.
        with on_device(torch.device(getattr(self, "device", "cpu"))):
            return method(self, *args, **kwargs)

    return run_on_its_device


@contextlib.contextmanager
def undone_if_refused(written: WrittenFirstFrame | None) -> Iterator[None]:
    """`written` (the PNG of a first frame made in memory) undone when the block raises: the run is refused before
    its work, and leaves nothing behind (nor loses the file it replaced)."""
    try:
        yield
    except BaseException:
        if written is not None:
            written.undo()
        raise
