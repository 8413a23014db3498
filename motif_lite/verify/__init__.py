"""`motif-lite verify`: our pipeline against diffusers' `MotifVideoPipeline` on the same weights, stage by stage.

    result = verify("Motif-Video-2B/", gguf="motif-video-2b-Q4_K_M.gguf")
    print("\\n".join(result.lines()))  # one line per stage, then "verdict: match", "verdict: mismatch at STAGE", ...

This is how a machine with the real weights settles what no random-weight test can: the checkpoint's own configs
(rope_theta, the guider's settings, the VAE's latent statistics) and the GGUF files' tensor layout. Each stage gets
the same inputs on both sides, so a difference points at one part:

- text: the prompt and negative prompt embeddings (our unpadded encoding vs the reference's 512-token padding,
  compared on the valid tokens);
- transformer: one forward on the same noise, timestep and (reference) text embeddings, with a first frame also
  the reference's first-frame latents, mask and image embeddings;
- guidance: the guided velocity of step 0 from the same two predictions (our guidance vs the checkpoint's guider);
- vae: the decode of the same latents, each side denormalizing them with its own latent statistics;
- frames: both whole pipelines at the same seed and settings, as uint8 frames.

With a first frame (`VerifySettings.image`), the reference is `MotifVideoImage2VideoPipeline` over the same
components, and two stages follow the text stage: image, the SigLIP embeddings of the first frame (each side reads,
resizes and normalizes the file itself), and conditioning, the first frame's latents and mask as each side puts them
into the transformer's 33 input channels (the VAE posterior's sample, drawn after the noise from the same seed). The
transformer stage then gives both transformers the reference's first-frame latents, mask and image embeddings (so
our image projection is compared there); guidance follows from its predictions, vae is as without an image; the
frames stage runs both image-to-video pipelines.

The difference of a stage is relative: ||ours - reference|| / ||reference||, against a tolerance that depends on
the dtype. A stage whose output holds inf or NaN says on which side; on both, the reference read the same
files, so the verdict points at the weights, not at our code. The text encoder module is shared by both pipelines
(loaded once; its code is transformers' in both); everything else is loaded twice. diffusers is imported in
this package only (the `verify` extra): never at run time.

The package, by role: settings.py = what verify runs (VerifySettings, ForcedSettings) and the request both
pipelines get; refusals.py = what it refuses before the loads (files, configs and settings the reference cannot
compare); file_settings.py = a `--settings-from` file's sampler and guidance as the configs both sides read;
reference.py = diffusers' side (its import and pipeline); comparison.py = the stages; results.py = each
stage's result, the table and the verdict. `verify` below runs them in that order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from motif_lite.devices import on_device
from motif_lite.io.settings_file import StoredSettings
from motif_lite.log_filters import filtered_log
from motif_lite.verify.comparison import Comparison
from motif_lite.verify.file_settings import file_sampling
from motif_lite.verify.reference import (
    DIFFUSERS_MIN,
    INSTALL_HINT,
    VerifyError,
    diffusers_bars_off,
    import_diffusers,
    reference_pipeline,
    without_library_notices,
)
from motif_lite.verify.refusals import (
    over_available_ram,
    refuse_a_scheduler_the_reference_cannot_sample,
    refuse_comfy_prefixed,
    refuse_settings_verify_runs,
    require_accelerate,
    require_image_preprocessor,
    require_reference_configs,
)
from motif_lite.verify.results import (
    GGUF_TRANSFORMER_TOLERANCE,
    STAGES,
    TOLERANCES,
    StageResult,
    VerifyResult,
    relative_difference,
    stage_names,
)
from motif_lite.verify.settings import (
    ForcedSettings,
    VerifySettings,
    apply_forced,
    request_for,
    resolve_verify_settings,
    resolved,
    with_home_expanded,
)

__all__ = [
    "DIFFUSERS_MIN",
    "GGUF_TRANSFORMER_TOLERANCE",
    "INSTALL_HINT",
    "STAGES",
    "TOLERANCES",
    "ForcedSettings",
    "StageResult",
    "VerifyError",
    "VerifyResult",
    "VerifySettings",
    "relative_difference",
    "resolve_verify_settings",
    "stage_names",
    "verify",
]

logger = logging.getLogger(__name__)


def verify(
    model: str | Path,
    gguf: str | Path | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    settings: VerifySettings = VerifySettings(),
    forced: ForcedSettings = ForcedSettings(),
    on_stage: Callable[[StageResult], None] | None = None,
    weights: Mapping[str, str | Path] | None = None,
    on_loading: Callable[[], None] | None = None,
    library_bars: bool = True,
    settings_from: StoredSettings | None = None,
) -> VerifyResult:
    """Run both pipelines on the checkpoint `model` (and `gguf`) and compare them stage by stage.

    dtype: float32 on the CPU, bfloat16 on a GPU unless given. `on_stage` sees each result as it is ready;
    `on_loading` is called once the flags and files are checked, as the loads (minutes on the real weights) begin.
    `weights`: the user's own weight files for some components (`locate_sources`); both pipelines read them.
    `library_bars`: False turns diffusers' own bars off while its pipeline loads (a log's reader: each is redrawn
    with carriage returns). `settings_from`: a motif-lite output file's stored settings (`read_settings`), whose
    sampler, flow shift and guidance both sides sample in place of the checkpoint's (`file_sampling`); `settings`
    holds its size, steps, seed and prompts where the caller takes them."""
    from motif_lite.pipeline import load_pipeline
    from motif_lite.preflight import preflight

    settings = with_home_expanded(settings)  # both sides then read the file `run` would read
    # A bad size or step count fails here, as in `run`; the frames are rounded to 4k+1 with run's note, and seed -1
    # is a random seed, the one both pipelines then use.
    request, size_notes = resolved(settings, forced.apg_eta)
    settings = dataclasses.replace(settings, frames=request.frames, seed=request.seed)
    if forced.image_mean_shift is not None and settings.image is None:
        raise VerifyError("--force image_mean_shift changes how our side reads a first frame: give one with -i FILE")
    diffusers = import_diffusers(image=settings.image is not None)
    sources, target = preflight(model, gguf, device, weights=weights)  # checked once, for both pipelines
    sampling = None if settings_from is None else file_sampling(settings_from, sources, request)
    if sampling is not None:  # the file's scheduler and guider configs in place of the checkpoint's, on our side
        sources, request = sampling.sources(sources), sampling.request(request)
    require_reference_configs(sources.root, str(model))
    if settings.image is not None:
        require_image_preprocessor(sources.root)
    refuse_comfy_prefixed(sources.weight_files.get("transformer"))  # before our pipeline loads, not after
    if sources.gguf is not None:
        require_accelerate()  # before our pipeline loads (minutes on the real weights), not after
    dtype = dtype or (torch.float32 if target.type == "cpu" else torch.bfloat16)
    if target.type == "cpu" and (note := over_available_ram(sources, dtype)) is not None:
        logger.warning(note)  # before the loads (minutes on the real weights), which the system may kill
    root = sources.root
    # Before the loads: a scheduler the reference cannot sample with (first: no other settings would let it run),
    # then what our pipeline refuses in the settings both sides will sample.
    refuse_a_scheduler_the_reference_cannot_sample(diffusers, sources.configs.scheduler)
    refuse_settings_verify_runs(request, sources)
    if on_loading is not None:
        on_loading()
    ours = load_pipeline(sources, dtype=dtype, device=target)
    with contextlib.nullcontext() if library_bars else diffusers_bars_off(diffusers):
        reference = reference_pipeline(diffusers, root, ours, sources.gguf, dtype, target)
    if sampling is not None:  # and on the reference's, built from the same values
        sampling.apply_to_reference(diffusers, reference)
    # The image-to-video reference over the same components (diffusers' own way to switch: no second load).
    reference_i2v = None
    if settings.image is not None:
        with without_library_notices():
            reference_i2v = diffusers.MotifVideoImage2VideoPipeline(**reference.components)
        reference_i2v.set_progress_bar_config(disable=True)
    apply_forced(ours, forced)
    tolerances = dict(TOLERANCES.get(dtype, TOLERANCES[torch.bfloat16]))
    if gguf is not None:
        tolerances["transformer"] = max(tolerances["transformer"], GGUF_TRANSFORMER_TOLERANCE)
    files = {**sources.weight_files, **({"transformer": gguf} if gguf is not None else {})}
    where = model if sources.weight_files else root  # the linked folder means nothing to the user
    source = f"{where}" + "".join(f" with {component.replace('_', ' ')} {file}" for component, file in files.items())
    pipeline = "MotifVideoPipeline" if settings.image is None else "MotifVideoImage2VideoPipeline"
    first_frame = "" if settings.image is None else f", first frame {settings.image}"
    result = VerifyResult(
        f"verify: motif-lite vs diffusers {pipeline} on {source}; {target}, {str(dtype).split('.')[-1]}, "
        f"{settings.width}x{settings.height}x{settings.frames}, {settings.steps} steps, seed {settings.seed}"
        f"{first_frame}",
        notes=size_notes,
        dtype=dtype,
    )
    request = request_for(ours, reference, request, result)
    comparison = Comparison(ours, reference, request, forced, target, tolerances, reference_i2v=reference_i2v)

    def record(stage: StageResult) -> None:
        result.stages.append(stage)
        if on_stage is not None:
            on_stage(stage)

    # The text and frames stages both encode the prompts: a truncation warning is said once, not twice.
    # On cuda:N, the stages' forwards run our kernels outside `generate`: its GPU is made current here as there.
    with torch.no_grad(), on_device(target), _each_warning_once(logging.getLogger("motif_lite.encoders.text")):
        for name in stage_names(settings.image is not None):
            record(getattr(comparison, name)())
    return result


class _FirstOfEach(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        first = message not in self.seen
        self.seen.add(message)
        return first


def _each_warning_once(logger: logging.Logger) -> contextlib.AbstractContextManager[None]:
    """While inside, `logger` drops any message it has already emitted."""
    return filtered_log(logger, _FirstOfEach())
