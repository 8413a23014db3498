"""What `generate` reports: progress and previews while it runs, `GenerationResult` at the end."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motif_lite.errors import counted
from motif_lite.frame_rates import rate_said
from motif_lite.io.clip import Clip, clip_frames
from motif_lite.pipeline.from_diffusers import RESULT_ADVICE
from motif_lite.request import GenerationRequest, extended_frames
from motif_lite.settings import Settings

# (stage, done, total): stage is "encode", "denoise" or "decode"; called with done = 0 when a stage starts.
ProgressFn = Callable[[str, int, int], None]
# (steps done, steps, frames): a preview of the clip after that many steps, uint8 [latent frames, H, W, 3].
PreviewFn = Callable[[int, int, np.ndarray], None]


# Other libraries' names for what a generation gave (AnimateDiff's and others' `.videos`, diffusers' image
# pipelines' `.images`, a file's path under various names) -> where it is here. diffusers' video output's own fields
# are RESULT_ADVICE, tied to its class.
_THE_FILE = "the video file written is result.output (a Path)"
OTHER_RESULT_NAMES = {
    **dict.fromkeys(("videos", "video", "images", "samples"), RESULT_ADVICE["frames"]),
    **dict.fromkeys(("path", "video_path", "output_path", "file", "filename"), _THE_FILE),
}
INDEXED_RESULT = f"diffusers' output[0] is its frames; here {RESULT_ADVICE['frames']}"


@dataclass
class GenerationResult:
    """What `generate` produced: the file, the settings actually used, time per stage, peak memory."""

    output: Path  # the video file written (`generate` gives no frames in memory: `read_frames()` reads them back)
    request: GenerationRequest  # resolved: normalized frames, the seed that was used
    shift: float | None  # the flow shift the schedule ran with; None under the checkpoint's dynamic shifting
    timings: dict[str, float]  # seconds per stage ("encode", "denoise", "decode") and "total"
    peak_rss_bytes: int | None  # peak resident memory of this process so far (None: the OS does not say)
    peak_device_bytes: int | None  # peak CUDA memory allocated during this generation (None on CPU)
    # What the user should know of the run: settings that were normalized (e.g. frames), what loading found,
    # the settings' own notes, and a resumed run's differences from the run that stopped.
    notes: list[str] = field(default_factory=list)
    stage_peaks: dict[str, int] = field(default_factory=dict)  # peak CUDA bytes allocated per stage (empty: CPU)
    settings: Settings | None = None  # every effective setting and where it came from (flag / checkpoint / default)
    parallel: str | None = None  # the layout of a parallel run, e.g. "cfg 2 x sp 2 on 4 ranks (nccl)"
    attention: str = "exact"  # the attention that ran: "exact", "int8", or "exact (int8 fell back: why)"
    step_seconds: list[float] = field(default_factory=list)  # wall time of each denoising step
    guidance_batch: int = 1  # rows per transformer forward on guided steps: 2 = cond + uncond batched
    step_cache: tuple[int, int] | None = None  # (reused, made) transformer predictions with a step cache
    # The run that compiled the blocks (the first at its shapes): first step minus the median later step; else None.
    compile_seconds: float | None = None
    attention_backend: str | None = None  # the exact attention kernel used (with `auto`: what it chose and why)
    resumed_at: int | None = None  # a resumed run: the steps an earlier run had done (`generate(resume=...)`)
    image_size: tuple[int, int] | None = None  # image-to-video: the input image's (width, height), upright
    clip_frames: int | None = None  # an extended clip (`request.extend`): its frames, which the file holds first
    # The caching allocator's reserved memory, what the GPU holds (nvidia-smi adds the CUDA context): peak during
    # this generation and per stage; None and empty on the CPU. Allocated (above) is what the planner estimates.
    peak_reserved_bytes: int | None = None
    stage_reserved_peaks: dict[str, int] = field(default_factory=dict)

    # Kernels that ran torch's version of the same math instead ("auto" falls back when one fails): our Triton ops
    # and the attention kernels auto chose (flash, cuDNN, efficient, fa3), {op: first reason}
    kernel_fallbacks: dict[str, str] = field(default_factory=dict)

    @property
    def fallbacks_said(self) -> str | None:
        """The run summary's line (and a server job's note) on `kernel_fallbacks`; None when nothing fell back."""
        if not self.kernel_fallbacks:
            return None
        said = "; ".join(f"{op} ({reason})" for op, reason in self.kernel_fallbacks.items())
        return f"kernels: fell back to torch (slower, same math): {said}"

    def read_frames(self) -> np.ndarray:
        """The frames of the file written, read back: uint8 RGB `[F, H, W, 3]`, an extended clip's frames first, as
        the file holds them. PNG frames (`output="fox_%03d.png"`) give the exact pixels the run made; a video gives
        its codec's (H.264 at CRF 18 for .mp4: within a few levels). Reads the file each call."""
        r = self.request
        # The file as written, not `read_clip`'s check of a clip to go on from, which refuses a one-frame file.
        written = Clip(Path(self.output), self.frames_written, r.width, r.height, r.fps)
        return np.stack(list(clip_frames(written)))

    @property
    def frames_written(self) -> int:
        """The frames in the file: the request's, after an extended clip's frames but its last (the same frame)."""
        return extended_frames(self.request.frames, self.clip_frames)

    def __repr__(self) -> str:
        """One line, as a notebook shows the result of a cell ending in `pipe.generate(...)`: the file, what it
        holds, the seed and the time. The dataclass's own repr ran to thousands of characters (the negative prompt
        twice, every setting with its source); the fields named at the end hold all of it."""
        r = self.request
        notes = f"{counted(len(self.notes), 'note')} (.notes); " if self.notes else ""
        seconds = f" in {self.timings['total']:.1f} s" if "total" in self.timings else ""
        return (
            f"GenerationResult(output={str(self.output)!r}: {r.width}x{r.height}, "
            f"{counted(self.frames_written, 'frame')} at {rate_said(r.fps)}, seed {r.seed}, {counted(r.steps, 'step')}"
            f"{seconds}; {notes}the rest: .request, .settings, "
            ".timings, .step_seconds, .peak_rss_bytes, ...)"
        )

    def __getattr__(self, name: str) -> object:
        """Only for names the result lacks: diffusers' `.frames`, and other libraries' names for the frames or the
        file, say where they are."""
        message = f"{type(self).__name__!r} object has no attribute {name!r}"
        advice = RESULT_ADVICE.get(name) or OTHER_RESULT_NAMES.get(name)
        raise AttributeError(message if advice is None else f"{message}: {advice}", name=name, obj=self)

    def __getitem__(self, index: object) -> object:
        """diffusers' outputs index (`pipe(...)[0]`, `return_dict=False`'s tuple): say where the frames are rather
        than Python's bare "not subscriptable". Unpacking (`frames, = result`) comes here too."""
        raise TypeError(f"{type(self).__name__!r} object is not subscriptable: {INDEXED_RESULT}")


@dataclass
class DenoiseRecord:
    """What one sampling loop did: rows per guided forward, the step cache's counts, each step's seconds."""

    guidance_batch: int
    step_cache: tuple[int, int] | None  # (reused, made) predictions; the cache's tensors are freed after the loop
    step_seconds: list[float] = field(default_factory=list)
    compiled: bool = False  # its first step compiled the blocks: the pipeline's first run at these shapes


def first_step_overhead(step_seconds: list[float]) -> float | None:
    """The first step's extra time over the median later step (compiling happens on first use); None with fewer
    than two steps."""
    if len(step_seconds) < 2:
        return None
    return max(0.0, step_seconds[0] - statistics.median(step_seconds[1:]))
