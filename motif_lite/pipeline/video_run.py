"""What one `generate` call fixed before its stages ran (`VideoRun`), and what it measured of each stage
(`StageMeasures`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from motif_lite.io.clip import Clip
from motif_lite.io.latents_saving import LatentsFile
from motif_lite.pipeline.result import ProgressFn
from motif_lite.progress import ProgressBars
from motif_lite.request import GenerationRequest
from motif_lite.settings import Settings


@dataclasses.dataclass
class StageMeasures:
    """Each stage's seconds (`generate`'s "encode", "denoise", "decode", then "total") and, on CUDA, its own peak of
    memory allocated (what the planner estimates) and reserved (the caching allocator's segments, what the GPU
    actually holds); empty on the CPU."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    allocated: dict[str, int] = dataclasses.field(default_factory=dict)
    reserved: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VideoRun:
    """What one `generate` call fixed before its stages ran, passed to each stage whole: the request (its inputs
    resolved) and its effective settings, where progress goes, where the work is kept, and the video's options."""

    request: GenerationRequest
    settings: Settings
    progress: ProgressFn
    keeper: LatentsFile | None = None  # None: the work is not kept (keep_latents=False, or a parallel rank > 0)
    clip: Clip | None = None  # the clip `request.extend` names, as read once: its frames go first in the video
    crf: int | None = None  # the video encoder's constant-rate factor (`write_video`; None: the codec's default)
    stored_inputs: Mapping[str, str] | None = None  # what the file's settings say of the clip and the first frame
    # The checksum of the file the first frame comes from (`ResolvedRequest.first_frame_sha256`), hashed once.
    first_frame_sha256: str | None = None
    # A video was at the output as the run began (a file -o named): its video replaces that file, and so may this
    # run's resume, which reads this from the kept state (`cli.resume.output_left_to_replace`).
    replaces_output: bool = False
    # A resumed run: the `ran_on` of the file it goes on from (None: a new run, or a file from before it was stored),
    # and whether it samples a step (False: the file's sampling is done, and this run decodes it alone).
    resumed_ran_on: object = None
    samples: bool = True

    def end_progress(self) -> None:
        """Close the bar of a `ProgressBars` given as `on_progress` when the run stops part way (a caller's own
        callback is the caller's to end): before the note on the work kept, which ran on from the bar's line; and
        an open tqdm bar stays among tqdm's, so every later bar in the process (the next cell's, transformers'
        "Loading weights") was drawn one line below it with cursor-up escapes, which a notebook shows as a new line
        per update."""
        if isinstance(self.progress, ProgressBars):
            self.progress.close()
