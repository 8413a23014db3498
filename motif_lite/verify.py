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
(loaded once; its code is transformers' in both); everything else is loaded twice. diffusers is imported here
only (the `verify` extra): never at run time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from motif_lite.config import MAX_PROMPT_TOKENS
from motif_lite.devices import on_device
from motif_lite.errors import MotifLiteError
from motif_lite.log_filters import filtered_log
from motif_lite.numerics import FLOAT16_ADVICE, NonFiniteError
from motif_lite.paths import user_path
from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT, GenerationRequest
from motif_lite.sampling import APGState, guide, schedule_for
from motif_lite.settings import TWO_STEPS, describe_guidance, resolve_flow_shift, resolve_settings
from motif_lite.shell_syntax import quoted

if TYPE_CHECKING:
    from motif_lite.checkpoint import ModelSources
    from motif_lite.config import TransformerConfig
    from motif_lite.settings import CheckpointConfigs, Setting

logger = logging.getLogger(__name__)
INSTALL_HINT = 'pip install -e ".[verify]" (diffusers, and accelerate for GGUF files)'
# The first diffusers release with MotifVideoPipeline (pyproject.toml's `verify` extra asks for it).
DIFFUSERS_MIN = "0.42.1"
STAGES = {
    "text": "prompt and negative prompt embeddings (valid tokens)",
    "image": "SigLIP embeddings of the first frame, each side reading the file",
    "conditioning": "first frame's latents and mask in the 33 input channels",
    "transformer": "one forward: same noise, timestep and inputs (text; with -i, the first frame's)",
    "guidance": "guided velocity of step 0 from the same two predictions",
    "vae": "decode of the same latents, each side denormalizing them",
    "frames": "both pipelines end to end, uint8 frames",
}
IMAGE_STAGES = ("image", "conditioning")  # with a first frame only, right after the text stage
# Relative differences allowed. float32: summation order only (tests measure ~1e-7 per stage; frames round to
# uint8, where a value near a rounding edge flips one level). bfloat16: 8 mantissa bits, ~0.4 % per rounding, and
# GPU kernels differ in summation order (a 2B transformer forward differs ~1 % between implementations).
TOLERANCES = {
    torch.float32: {
        "text": 1e-4,
        "image": 1e-4,
        "conditioning": 1e-4,
        "transformer": 1e-4,
        "guidance": 1e-4,
        "vae": 1e-4,
        "frames": 5e-3,
    },
    torch.bfloat16: {
        "text": 2e-2,
        "image": 2e-2,
        "conditioning": 2e-2,
        "transformer": 3e-2,
        "guidance": 3e-2,
        "vae": 2e-2,
        "frames": 5e-2,
    },  # fmt: skip
}
# Notices of the reference's libraries that say nothing to a verify user, by logger (a run never prints them: it
# does not import diffusers, and picks the Pillow image processor itself, encoders/text.py): transformers falling
# back to that processor without torchvision (ours uses the same one, for -i), and diffusers'
# guider API being experimental (verify only calls it).
LIBRARY_NOTICES = {
    "transformers.utils.import_utils": "`SiglipImageProcessor` requires torchvision (not installed)",
    "diffusers.guiders.guider_utils": "Guiders are currently an experimental feature",
}
# What a stage whose output holds inf or NaN on one side or both says next to it.
NOT_FINITE = {
    "ours": "inf/NaN in motif-lite's output only",
    "reference": "inf/NaN in the reference's output only",
    "both": "inf/NaN on both sides",
}
# What our pipeline's NonFiniteError calls the first frame's latents (pipeline/generation.py), the conditioning
# stage's own output; any other inf/NaN it stops at comes from an earlier stage's.
FIRST_FRAME_LATENTS = "the VAE's latents of the first frame"
# Whose weights a stage that gives inf/NaN on both sides (from the same files) points at.
STAGE_WEIGHTS = {
    "text": "the text encoder's", "image": "the text encoder's (its SigLIP tower)", "conditioning": "the VAE's",
    "transformer": "the transformer's", "vae": "the VAE's",
}  # fmt: skip
# diffusers' GGUF layers dequantize in float16 before casting to the compute dtype (ggml uses float32): at float32
# the two transformers then differ by ~5e-4, which says nothing about the layout.
GGUF_TRANSFORMER_TOLERANCE = 3e-3


class VerifyError(MotifLiteError):
    """verify cannot run: diffusers missing, or the reference cannot load these files."""


@dataclass(frozen=True)
class VerifySettings:
    """The request both pipelines run: small, so that the real 2B weights take minutes, not hours."""

    width: int = 256
    height: int = 256
    frames: int = 9
    steps: int = 2
    seed: int = 0
    prompt: str = "a red fox runs through snow, cinematic lighting"
    negative_prompt: str = OFFICIAL_NEGATIVE_PROMPT
    image: Path | None = None  # the first frame: image-to-video on both sides (run's -i)


@dataclass(frozen=True)
class ForcedSettings:
    """Deliberately wrong settings on our side, to see verify catch them (negative controls)."""

    rope_theta: float | None = None  # our transformer's RoPE base
    apg_eta: float | None = None  # our APG's eta (as --apg-eta would set it: guidance stage and frames)
    latents_mean_shift: float | None = None  # added to our VAE's latents_mean (every channel)
    max_prompt_tokens: int | None = None  # our text encoder's token limit (text stage)
    image_mean_shift: float | None = None  # added to our SigLIP preprocessor's image_mean (image stage; needs -i)

    @classmethod
    def parse(cls, items: list[str]) -> ForcedSettings:
        """From `NAME=VALUE` strings (the CLI's --force)."""
        kinds = {f.name: (int if f.name == "max_prompt_tokens" else float) for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for item in items:
            name, _, text = item.partition("=")
            if name not in kinds or not text:
                raise VerifyError(f"--force {item!r}: use NAME=VALUE with NAME one of {', '.join(kinds)}")
            try:
                value = kinds[name](text)
            except ValueError:
                raise VerifyError(f"--force {item!r}: {text!r} is not a number") from None
            # Said here, before the loads (minutes on the real weights), not by the config they would reach after.
            if not math.isfinite(value):
                raise VerifyError(f"--force {item!r}: {text!r} is not a finite number")
            if name in ("rope_theta", "max_prompt_tokens") and value <= 0:
                raise VerifyError(f"--force {item!r}: {name} must be > 0")
            values[name] = value
        return cls(**values)


def stage_names(image: bool) -> list[str]:
    """The stages verify runs, in order: with a first frame (`image`), the image stages follow the text stage."""
    names = [name for name in STAGES if name not in IMAGE_STAGES]
    return [names[0], *IMAGE_STAGES, *names[1:]] if image else names


@dataclass(frozen=True)
class StageResult:
    stage: str
    difference: float  # relative L2 difference (inf when the shapes differ, NaN when a side is not finite)
    tolerance: float
    note: str = ""
    not_finite: str = ""  # the side whose output holds inf or NaN: "ours", "reference" or "both" (NOT_FINITE)

    @property
    def matches(self) -> bool:
        return not self.not_finite and self.difference <= self.tolerance

    @property
    def verdict(self) -> str:
        """match, MISMATCH, or inf/NaN when both sides give it: then they agree, and neither is to blame."""
        if self.not_finite == "both":
            return "inf/NaN"
        return "match" if self.matches else "MISMATCH"

    @property
    def outcome(self) -> str:
        """The verdict in words, with the side that gives inf/NaN: what the progress line says as the stage ends."""
        if self.not_finite == "both":
            return NOT_FINITE["both"]
        return f"{self.verdict} ({NOT_FINITE[self.not_finite]})" if self.not_finite else self.verdict

    @property
    def notes(self) -> str:
        return "; ".join(note for note in (NOT_FINITE.get(self.not_finite, ""), self.note) if note)

    def line(self) -> str:
        note = f" ({self.notes})" if self.notes else ""
        numbers = f"{self.difference:>10.3g} {self.tolerance:>10.0e}"
        return f"{self.stage:<12} {numbers}  {self.verdict:<9} {STAGES[self.stage]}{note}"


@dataclass
class VerifyResult:
    header: str
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dtype: torch.dtype = torch.float32

    @property
    def first_mismatch(self) -> StageResult | None:
        """The first stage that does not match (stages run in pipeline order), or None."""
        return next((s for s in self.stages if not s.matches), None)

    @property
    def mismatch(self) -> str | None:
        """The name of `first_mismatch`, or None."""
        return None if self.first_mismatch is None else self.first_mismatch.stage

    def verdict(self) -> str:
        first = self.first_mismatch
        if first is None:
            return "verdict: match"
        if first.not_finite == "both":
            return f"verdict: inf/NaN at {first.stage}, in the reference too: {self._both_not_finite(first.stage)}"
        return f"verdict: mismatch at {first.stage}"

    def _both_not_finite(self, stage: str) -> str:
        """What to do when both sides give inf/NaN: they read the same files, so our code is not what differs."""
        if self.dtype == torch.float16:
            return FLOAT16_ADVICE
        weights = f"{STAGE_WEIGHTS.get(stage, 'a')} weight file"
        return f"both sides read the same files, so {weights} is likely damaged (not motif-lite): download it again"

    def lines(self) -> list[str]:
        table = [f"{'stage':<12} {'rel. diff':>10} {'tolerance':>10}  verdict"] + [s.line() for s in self.stages]
        return [self.header, *(f"note: {n}" for n in self.notes), *table, self.verdict()]


def _over_available_ram(sources: ModelSources, dtype: torch.dtype) -> str | None:
    """What to say when both pipelines' weights on the CPU (the text encoder once, the transformer twice) exceed the
    RAM available now: Linux then kills the process part-way through loading, with no message of ours (35 GB
    in float32 on the real weights; a laptop has 16). None when they fit, or the RAM cannot be read."""
    from motif_lite.runtime.host_memory import available_ram
    from motif_lite.sizes import model_sizes
    from motif_lite.units import memory_size

    available = available_ram()
    sizes = model_sizes(sources, dtype)
    needed = sizes.text_encoder_bytes + 2 * sizes.transformer_bytes
    if available is None or needed <= available:
        return None
    less = "--dtype bf16 about halves it; " if dtype == torch.float32 else ""
    # Windows kills no process for memory: it moves pages to the page file, then refuses allocations past its limit.
    if sys.platform == "win32":
        then = "Windows may move it to the page file, where it crawls, or stop it part-way for want of memory"
    else:
        then = "the system may stop it part-way without a word"
    return (
        f"verify holds both pipelines in RAM on the CPU: about {memory_size(needed)} of weights in "
        f"{str(dtype).removeprefix('torch.')} (the text encoder once, the transformer twice), more than the "
        f"{memory_size(available)} available now, so {then}: {less}"
        "close other programs, or verify on a GPU (--device cuda)"
    )


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    if ours.shape != reference.shape:
        return math.inf
    ours, reference = ours.detach().double().cpu(), reference.detach().double().cpu()
    return float((ours - reference).norm() / reference.norm().clamp_min(1e-30))


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
) -> VerifyResult:
    """Run both pipelines on the checkpoint `model` (and `gguf`) and compare them stage by stage.

    dtype: float32 on the CPU, bfloat16 on a GPU unless given. `on_stage` sees each result as it is ready;
    `on_loading` is called once the flags and files are checked, as the loads (minutes on the real weights) begin.
    `weights`: the user's own weight files for some components (`locate_sources`); both pipelines read them.
    `library_bars`: False turns diffusers' own bars off while its pipeline loads (a log's reader: each is redrawn
    with carriage returns)."""
    from motif_lite.pipeline import load_pipeline
    from motif_lite.preflight import preflight

    settings = _with_home_expanded(settings)  # both sides then read the file `run` would read
    # A bad size or step count fails here, as in `run`; the frames are rounded to 4k+1 with run's note, and seed -1
    # is a random seed, the one both pipelines then use.
    request, size_notes = _resolved(settings, forced.apg_eta)
    settings = dataclasses.replace(settings, frames=request.frames, seed=request.seed)
    if forced.image_mean_shift is not None and settings.image is None:
        raise VerifyError("--force image_mean_shift changes how our side reads a first frame: give one with -i FILE")
    diffusers = _import_diffusers(image=settings.image is not None)
    sources, target = preflight(model, gguf, device, weights=weights)  # checked once, for both pipelines
    _require_reference_configs(sources.root, str(model))
    if settings.image is not None:
        _require_image_preprocessor(sources.root)
    _refuse_comfy_prefixed(sources.weight_files.get("transformer"))  # before our pipeline loads, not after
    if sources.gguf is not None:
        _require_accelerate()  # before our pipeline loads (minutes on the real weights), not after
    dtype = dtype or (torch.float32 if target.type == "cpu" else torch.bfloat16)
    if target.type == "cpu" and (note := _over_available_ram(sources, dtype)) is not None:
        logger.warning(note)  # before the loads (minutes on the real weights), which the system may kill
    root = sources.root
    # Before the loads: a scheduler the reference cannot sample with (first: no other settings would let it run),
    # then what our pipeline refuses in the settings both sides will sample.
    _refuse_a_scheduler_the_reference_cannot_sample(diffusers, sources.configs.scheduler)
    _refuse_settings_verify_runs(request, sources)
    if on_loading is not None:
        on_loading()
    ours = load_pipeline(sources, dtype=dtype, device=target)
    with contextlib.nullcontext() if library_bars else _diffusers_bars_off(diffusers):
        reference = _reference_pipeline(diffusers, root, ours, sources.gguf, dtype, target)
    # The image-to-video reference over the same components (diffusers' own way to switch: no second load).
    reference_i2v = None
    if settings.image is not None:
        with _without_library_notices():
            reference_i2v = diffusers.MotifVideoImage2VideoPipeline(**reference.components)
        reference_i2v.set_progress_bar_config(disable=True)
    _apply_forced(ours, forced)
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
    request = _request_for(ours, reference, request, result)
    comparison = _Comparison(ours, reference, request, forced, target, tolerances, reference_i2v=reference_i2v)

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


class _Dropping(logging.Filter):
    """Drops the messages that begin with `start`."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def _each_warning_once(logger: logging.Logger) -> contextlib.AbstractContextManager[None]:
    """While inside, `logger` drops any message it has already emitted."""
    return filtered_log(logger, _FirstOfEach())


@contextlib.contextmanager
def _without_library_notices() -> Iterator[None]:
    """While inside, the LIBRARY_NOTICES are not shown; everything else the libraries log is."""
    with contextlib.ExitStack() as stack:
        for logger, start in LIBRARY_NOTICES.items():
            stack.enter_context(filtered_log(logger, _Dropping(start)))
        yield


def _import_diffusers(image: bool = False) -> Any:
    try:
        import diffusers
    except ImportError:
        raise VerifyError(f"verify compares against diffusers, which is not installed: {INSTALL_HINT}") from None
    # An older diffusers (e.g. one installed for other models) imports fine but lacks the pipeline, and one whose
    # own dependencies do not fit fails only when the pipeline is imported: both used to be found after our pipeline
    # had loaded (minutes on the real weights), the second as a traceback.
    version = getattr(diffusers, "__version__", "of unknown version")
    name = "MotifVideoPipeline" + (" or no MotifVideoImage2VideoPipeline" if image else "")  # with -i: both
    try:
        with _without_library_notices():  # the pipeline's module imports transformers' SiglipImageProcessor
            diffusers.MotifVideoPipeline  # noqa: B018 (diffusers imports its pipelines on first access)
            if image:
                diffusers.MotifVideoImage2VideoPipeline  # noqa: B018
    except AttributeError:
        raise VerifyError(
            f"the installed diffusers {version} has no {name}; verify needs diffusers >= {DIFFUSERS_MIN}: "
            f'pip install -U "diffusers>={DIFFUSERS_MIN}"'
        ) from None
    except (ImportError, RuntimeError) as exc:  # diffusers wraps a failed lazy import in a RuntimeError
        reason = str(exc).strip().splitlines()[-1]
        raise VerifyError(
            f"diffusers {version} cannot import its MotifVideoPipeline ({reason}); repair the environment: "
            f"{INSTALL_HINT}"
        ) from None
    return diffusers


@contextlib.contextmanager
def _diffusers_bars_off(diffusers: Any) -> Iterator[None]:
    """diffusers' progress bars ("Loading pipeline components...", a checkpoint's shards) off while inside, then as
    they were: a switch of diffusers' own, which huggingface_hub's setting does not reach."""
    switch = diffusers.utils.logging
    if not switch.is_progress_bar_enabled():  # turned off already by the program that called us
        yield
        return
    switch.disable_progress_bar()
    try:
        yield
    finally:
        switch.enable_progress_bar()


def _require_accelerate() -> None:
    """diffusers' GGUF loader (the reference for a GGUF transformer) refuses to run without accelerate."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise VerifyError(
            f"verify reads a GGUF transformer with diffusers' GGUF loader, which needs accelerate: {INSTALL_HINT}"
        ) from None


def _reference_pipeline(
    diffusers: Any, root: Path, ours: Any, gguf: Path | None, dtype: torch.dtype, device: torch.device
) -> Any:
    """diffusers' pipeline from the same files; it borrows our text encoder module (the same transformers class)."""
    components: dict[str, Any] = {"text_encoder": ours.text_encoder.model}
    if gguf is not None:
        components["transformer"] = _reference_gguf_transformer(diffusers, root, gguf, dtype)
    if (wan_named := _wan_named_vae(root)) is not None:  # ComfyUI's wan_2.1_vae: read by diffusers' own converter
        components["vae"] = _reference_single_file_vae(diffusers, root, wan_named, dtype)
    try:
        with _without_library_notices():  # loading the guider says its API is experimental
            reference = diffusers.MotifVideoPipeline.from_pretrained(root, dtype=dtype, **components)
        # In the try: weights diffusers did not take stay on the meta device, and only the move says so.
        reference.transformer.to(device)
        reference.vae.to(device)
    except torch.OutOfMemoryError:  # the files are fine: cli says "out of device memory", with its exit code
        raise
    except Exception as exc:  # diffusers raises many types for files it cannot use
        raise VerifyError(f"diffusers cannot load the checkpoint {root}: {type(exc).__name__}: {exc}") from exc
    reference.set_progress_bar_config(disable=True)
    return reference


def _refuse_comfy_prefixed(transformer: Path | None) -> None:
    """A transformer safetensors file of the user's whose every name carries ComfyUI's prefix: motif-lite reads it,
    but diffusers' `from_pretrained`, the reference, reads only its own names (it would leave every weight
    unloaded). Said in one line with the command that writes an unprefixed copy, before either pipeline loads."""
    from motif_lite.weights.float8 import is_companion
    from motif_lite.weights.safetensors_files import read_tensor_refs
    from motif_lite.weights.shapes import comfy_prefix

    if transformer is None or transformer.suffix == ".gguf":
        return
    file = transformer.resolve()  # the user's file, not its link in the linked folder
    prefix = comfy_prefix([name for name in read_tensor_refs([file]) if not is_companion(name)])
    if prefix is None:
        return
    fixed = file.with_name(f"{file.stem}-unprefixed.safetensors")
    # The prefix and paths go in as arguments, each quoted for the shell alone: a path with a quote or a `$` in a
    # Python literal inside the shell's quotes would break the command.
    script = (
        "import sys; from safetensors.torch import load_file, save_file; prefix, source, target = sys.argv[1:]; "
        "save_file({k.removeprefix(prefix): v for k, v in load_file(source).items()}, target)"
    )
    command = " ".join(quoted(word) for word in ("python", "-c", script, prefix, str(file), str(fixed)))
    raise VerifyError(
        f"{file}: every tensor name starts with {prefix!r} (a file ComfyUI saved), which diffusers, the reference, "
        f"does not read; verify an unprefixed copy: {command}"
    )


def _wan_named_vae(root: Path) -> Path | None:
    """The checkpoint's VAE file when it holds Wan's own tensor names (`vae.wan_names`), which diffusers'
    `from_pretrained` does not read; None otherwise."""
    from motif_lite.vae.wan_names import is_wan_named
    from motif_lite.weights.safetensors_files import find_weight_files, read_tensor_refs

    files = find_weight_files(root / "vae")
    return files[0] if len(files) == 1 and is_wan_named(read_tensor_refs(files)) else None


def _reference_single_file_vae(diffusers: Any, root: Path, path: Path, dtype: torch.dtype) -> Any:
    """diffusers' VAE from a file under Wan's names, renamed by its single-file converter: the reference for ours."""
    try:
        with _without_library_notices():
            return diffusers.AutoencoderKLWan.from_single_file(
                str(path), config=str(root), subfolder="vae", torch_dtype=dtype
            )
    except Exception as exc:  # diffusers raises many types for files it cannot use
        raise VerifyError(f"diffusers cannot load the VAE file {path}: {type(exc).__name__}: {exc}") from exc


def _reference_gguf_transformer(diffusers: Any, root: Path, path: Path, dtype: torch.dtype) -> Any:
    if not (root / "transformer" / "config.json").is_file():
        raise VerifyError(f"diffusers reads a GGUF transformer with the checkpoint's transformer/config.json: {root}")
    try:
        return diffusers.MotifVideoTransformer3DModel.from_single_file(
            str(path),
            quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
            config=str(root),
            subfolder="transformer",
            dtype=dtype,
        )
    except Exception as exc:  # ImportError (accelerate, gguf), ValueError (unexpected keys), ...
        raise VerifyError(
            f"diffusers cannot load {path} ({type(exc).__name__}: {exc}); its GGUF loader needs accelerate and "
            f"tensor names in the diffusers layout: {INSTALL_HINT}"
        ) from exc


def resolve_verify_settings(settings: VerifySettings) -> tuple[VerifySettings, list[str]]:
    """The settings with the size, frame count and seed resolved as `run` resolves them (`GenerationRequest.resolve`):
    a frame count that is not 4k+1 rounded to the nearest one, with the note `run` prints; seed -1 a random seed
    (the result's first line names it); a size or seed `run` refuses refused with its error. Returns (the settings
    both pipelines run, the notes)."""
    settings = _with_home_expanded(settings)
    resolved, notes = _resolved(settings)
    return dataclasses.replace(settings, frames=resolved.frames, seed=resolved.seed), notes


def _with_home_expanded(settings: VerifySettings) -> VerifySettings:
    """The settings with a first frame's leading `~` expanded, as `run` expands it (a quoted path, or one from
    Python): diffusers' `load_image`, the reference's reader, takes `~/x.png` for a URL and fails."""
    if settings.image is None or not os.fspath(settings.image).startswith("~"):
        return settings  # `./~/x.png` is the folder named ~ here, as `run` reads it: a Path would drop the `./`
    return dataclasses.replace(settings, image=user_path(settings.image))


def _require_reference_configs(root: Path, model: str) -> None:
    """The configs diffusers' pipeline (the reference) cannot load without: it reads every component
    `model_index.json` lists, where a run takes the official values for a missing scheduler or guider config. Raised
    before anything loads, with the download command (`MissingFilesError`)."""
    from motif_lite.checkpoint import listed_configs
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.io.missing_report import MissingFiles, MissingFilesError

    missing = listed_configs(root)
    if missing:
        include = tuple(f"{Path(file).parent}/*" for file in missing)
        problem = (
            "verify compares with diffusers' MotifVideoPipeline, which loads every component model_index.json lists "
            "(a run takes the official values for a missing scheduler or guider config; diffusers cannot)"
        )
        folder = model if user_path(model).is_dir() else str(root)
        raise MissingFilesError([MissingFiles(MOTIF_REPO, tuple(missing), include, folder, "", True)], [problem])


def _require_image_preprocessor(root: Path) -> None:
    """Image-to-video reads the first frame with the checkpoint's SigLIP preprocessor config, on both sides: without
    it a run refuses the image (after loading), and the reference has no `feature_extractor`. Said before the loads,
    as is a model_index.json that does not list it: diffusers then loads none, and its image stage cannot run."""
    import json

    if not (root / "feature_extractor" / "preprocessor_config.json").is_file():
        raise VerifyError(
            f"{root} has no feature_extractor/preprocessor_config.json, which image-to-video reads the first frame "
            "with (on both sides): download the checkpoint's feature_extractor/ folder, or verify without -i"
        )
    index = root / "model_index.json"
    try:
        entry = json.loads(index.read_text(encoding="utf-8")).get("feature_extractor")
        # `[null, null]` is listed but loads nothing: the reference's first-frame reader would be None.
        listed = isinstance(entry, list) and bool(entry) and entry[0] is not None
    except (OSError, ValueError, AttributeError):
        return  # _require_reference_configs and diffusers' own load say what is wrong with the file
    if not listed:
        raise VerifyError(
            f"{index} does not list feature_extractor, so diffusers' MotifVideoImage2VideoPipeline (the reference) "
            'loads no SigLIP preprocessor for the first frame: add "feature_extractor": ["transformers", '
            '"SiglipImageProcessor"] to it (as the official model_index.json has), or verify without -i'
        )


def _refuse_a_scheduler_the_reference_cannot_sample(diffusers: Any, config: Mapping[str, Any] | None) -> None:
    """Refuse, before the loads, a scheduler config diffusers' MotifVideoPipeline cannot sample with: the pipeline
    hands its scheduler's `set_timesteps` a sigma table, which DPMSolverMultistepScheduler takes none of (diffusers
    0.42), so its whole run fails at the frames stage, the last, after minutes of loading and comparing. Read from
    the scheduler class's own signature, so a diffusers that learns to take them is let through."""
    import inspect

    name = (config or {}).get("_class_name")  # the checkpoint's scheduler config, as `CheckpointConfigs` read it
    scheduler = getattr(diffusers, name, None) if isinstance(name, str) else None
    if scheduler is None or "sigmas" in inspect.signature(scheduler.set_timesteps).parameters:
        return
    raise VerifyError(
        f"diffusers' MotifVideoPipeline cannot sample with this checkpoint's {name} (scheduler/scheduler_config.json): "
        f"it gives the scheduler a sigma table, which {name}.set_timesteps does not take, so verify would have no "
        "reference video to compare with; verify a copy of the checkpoint whose scheduler is "
        "FlowMatchEulerDiscreteScheduler (the official one) or UniPCMultistepScheduler"
    )


def _refuse_settings_verify_runs(request: GenerationRequest, sources: ModelSources) -> None:
    """Refuse, before the loads, the settings our pipeline refuses at the flow shift both sides will sample
    (`_request_for`'s: the reference scheduler's where it differs from ours), a sigma table whose stretch divides
    by 0 say; verify takes no flow shift or sampler, so its advice names none (fewer steps would not help there).
    One step with the config's shift_terminal (NaN sigmas, the reference's too) is told --steps 2 alone, not run's
    other way out, a sampler other than euler."""
    from motif_lite.request import RequestError

    configs, transformer = sources.configs, sources.transformer
    try:
        resolve_settings(_at_the_shift_verify_runs(request, configs, transformer), configs, transformer)
    except RequestError as exc:
        if "flow_shift" not in exc.fields and "steps" not in exc.fields:
            raise
        # The refusal ends with the run's advice (": give a smaller flow shift ...", "... or --sampling-method
        # dpm++2m"), flags verify does not have.
        refusal = str(exc).rsplit(": give ", 1)[0]
        samples = "verify samples the checkpoint's scheduler config on both sides and takes no flow shift or sampler"
        if "flow_shift" in exc.fields:
            advice = f"{samples}, so it cannot compare at this config's shift"
        else:  # one step with shift_terminal: NaN sigmas in the reference too; more steps are the one way out
            advice = f"give {TWO_STEPS.flag} or more ({samples})"
        raise RequestError(
            f"{refusal}: {advice}",
            exc.fields,
        ) from None


def _at_the_shift_verify_runs(
    request: GenerationRequest, configs: CheckpointConfigs, transformer: Setting[TransformerConfig] | None
) -> GenerationRequest:
    """`request` at the flow shift `_request_for` will sample on both sides: the reference scheduler's (its config's
    shift, 1.0 where it gives none, as diffusers reads it), unless both shift by the video's size."""
    config = configs.scheduler or {}
    reference_shift = float(config.get("shift", config.get("flow_shift", 1.0)))
    if resolve_flow_shift(request, configs.scheduler_shift, []).value == reference_shift:
        return request  # ours as it is, its refusal naming where the shift came from
    if (
        config.get("use_dynamic_shifting", False)
        and resolve_settings(request, configs, transformer).schedule.time_shift
    ):
        return request
    return dataclasses.replace(request, flow_shift=reference_shift)


# run's advice to go on from a clip or PNG sequence given to -i with --extend, a flag verify does not have.
_EXTEND_ADVICE = (
    re.compile(r", or go on from the sequence with --extend .*? in place of -i$"),
    re.compile(r"to go on from the clip, give --extend .*? instead of -i; or "),
)


def _resolved(settings: VerifySettings, apg_eta: float | None = None) -> tuple[GenerationRequest, list[str]]:
    """`_request(settings, apg_eta).resolve()`: refused as `run` refuses it, less run's advice to use --extend."""
    from motif_lite.request import RequestError

    try:
        return _request(settings, apg_eta).resolve()
    except RequestError as exc:
        message = str(exc)
        for advice in _EXTEND_ADVICE:
            message = advice.sub("", message)
        if message == str(exc):
            raise
        raise RequestError(message, exc.fields) from None


def _request(settings: VerifySettings, apg_eta: float | None = None) -> GenerationRequest:
    """The chosen size and seed as a request, to be checked as `run` checks them (`resolve()`: a user error names the
    bad value); the frames stage writes into a folder of its own."""
    s = settings
    return GenerationRequest(
        s.prompt, s.negative_prompt, width=s.width, height=s.height, frames=s.frames, steps=s.steps, seed=s.seed,
        image=s.image, apg_eta=apg_eta, output=Path(tempfile.gettempdir()) / "verify_%03d.png",
    )  # fmt: skip


def _request_for(ours: Any, reference: Any, request: GenerationRequest, result: VerifyResult) -> GenerationRequest:
    """Our request: the chosen size and seed; everything else as our pipeline resolves it from the checkpoint,
    except the flow shift when the reference's scheduler applies another one (both sides then use the reference's:
    a different default is a choice, not a bug, and a note says so)."""
    config = reference.scheduler.config
    reference_shift = float(config.get("shift", config.get("flow_shift", 1.0)))
    if config.get("use_dynamic_shifting", False):
        dynamic = ours.settings_for(request)
        if dynamic.schedule.time_shift:
            result.notes.extend(dynamic.notes)
            return request  # both sides shift by the video's size; a flow shift given here would turn ours off
    # Our shift alone, not our settings at it: those may be a DPM++ table diffusers cannot step where the reference's
    # shift gives one it can (a config shift of 1.0, diffusers' default, in place of which ours is 15).
    shift_notes: list[str] = []
    shift = resolve_flow_shift(request, ours.sources.configs.scheduler_shift, shift_notes)
    if shift.value != reference_shift:
        request = dataclasses.replace(request, flow_shift=reference_shift)
    result.notes.extend([*shift_notes, *ours.settings_for(request).notes])
    if shift.value != reference_shift:
        result.notes.append(
            f"the reference's scheduler shifts by {reference_shift:g}, motif-lite by {shift.value:g} "
            f"({shift.origin or shift.source}): both sides use {reference_shift:g}"
        )
    return request


def _apply_forced(ours: Any, forced: ForcedSettings) -> None:
    if forced.rope_theta is not None:
        ours.transformer.config = ours.transformer.config.replace(rope_theta=forced.rope_theta)
    if forced.latents_mean_shift is not None:
        mean = [m + forced.latents_mean_shift for m in ours.vae.config.latents_mean]
        ours.vae.config = dataclasses.replace(ours.vae.config, latents_mean=mean)
    if forced.image_mean_shift is not None:
        processor = ours.text_encoder.loaded_image_processor()  # kept by the encoder: its encode_image uses it
        processor.image_mean = [m + forced.image_mean_shift for m in processor.image_mean]


@dataclass
class _Comparison:
    """The stage comparisons; each stage reuses what the earlier ones computed (embeddings, predictions).
    `reference_i2v`: the image-to-video reference, with a first frame (`request.image`); None without."""

    ours: Any
    reference: Any
    request: GenerationRequest
    forced: ForcedSettings
    device: torch.device
    tolerances: dict[str, float]
    embeds: dict[str, torch.Tensor] = field(default_factory=dict)
    timestep: torch.Tensor | None = None
    cond: torch.Tensor | None = None
    uncond: torch.Tensor | None = None
    reference_i2v: Any = None
    # The reference's first-frame inputs to its transformer (conditioning stage): (latents, mask, image embeddings
    # in the transformer's dtype or None); both transformers get them at the transformer stage. None without -i.
    first_frame: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def stage(self, name: str, ours: torch.Tensor, reference: torch.Tensor, note: str = "") -> StageResult:
        sides = _not_finite(not bool(torch.isfinite(ours).all()), not bool(torch.isfinite(reference).all()))
        return StageResult(name, relative_difference(ours, reference), self.tolerances[name], note, sides)

    def text(self) -> StageResult:
        encoder, s = self.ours.text_encoder, self.request
        limit = MAX_PROMPT_TOKENS if self.forced.max_prompt_tokens is None else self.forced.max_prompt_tokens
        encoder.to(self.device)
        try:
            pe, npe, pm, npm = self.reference.encode_prompt(s.prompt, s.negative_prompt, device=self.device)
            prompts = {"prompt": s.prompt, "negative prompt": s.negative_prompt}
            ours = [encoder.encode([p], limit, labels=[label])[0][0] for label, p in prompts.items()]
        finally:
            encoder.offload()
        # Both transformers get them in their own dtype, as our pipeline casts them: a float16 run's text encoder
        # stays in bfloat16 (`devices.text_encoder_dtype`), and diffusers' transformer takes no other dtype.
        transformer_dtype = self.reference.transformer.dtype
        self.embeds = dict(pe=pe.to(transformer_dtype), npe=npe.to(transformer_dtype), pm=pm, npm=npm)
        reference = [pe[0, pm[0]], npe[0, npm[0]]]  # the valid tokens of each
        counts = [(len(o), len(r)) for o, r in zip(ours, reference, strict=True)]
        if any(a != b for a, b in counts):
            note = "token counts " + ", ".join(f"{a} vs {b}" for a, b in counts)
            return StageResult("text", math.inf, self.tolerances["text"], note)
        return self.stage("text", torch.cat(ours), torch.cat(reference).to(ours[0].dtype))

    def image(self) -> StageResult:
        """Our SigLIP embeddings of the first frame (read, resized and normalized as a run does) against the
        reference's (its own reading and preprocessing of the same file)."""
        from motif_lite.io.image import load_image, preprocess_image

        s, encoder, reference = self.request, self.ours.text_encoder, self.reference_i2v
        pixels = preprocess_image(load_image(s.image), s.height, s.width).to(self.device, self.ours.dtype)
        first_frame = ((self._reference_video()[:, 0] + 1) / 2).clamp(0, 1)  # as the reference's conditioning does
        encoder.to(self.device)  # one module on both sides: its SigLIP tower is the reference's vision_tower
        try:
            ours = encoder.encode_image(pixels)
            tower, processor = reference.text_encoder.vision_tower, reference.feature_extractor
            expected = reference._get_image_embeds(tower, processor, first_frame, self.device)
        finally:
            encoder.offload()
        return self.stage("image", ours, expected.to(ours.dtype), _reading_note(s.image))

    def conditioning(self) -> StageResult:
        """The first frame's latents and mask (16 + 1 of the 33 input channels) as each pipeline builds them: its
        VAE encodes its own pixels, and the posterior's sample is drawn after the noise from the same seed."""
        s, reference = self.request, self.reference_i2v
        generator = torch.Generator().manual_seed(s.seed)
        dtype = reference.transformer.dtype
        z_dim = reference.vae.config.z_dim
        latents = reference.prepare_latents(1, z_dim, s.height, s.width, s.frames, dtype, self.device, generator)
        with _encoder_on(self.ours.text_encoder, self.device):  # the reference runs its SigLIP tower here
            expected, mask, embeds = reference._prepare_first_frame_conditioning(
                self._reference_video(), latents, True, generator
            )
        self.first_frame = (expected, mask, None if embeds is None else embeds.to(dtype))
        expected = torch.cat([expected, mask], dim=1)
        generator = torch.Generator().manual_seed(s.seed)
        noise = self.ours.initial_noise(s, generator)
        try:
            ours = self.ours.encode(s, noise, generator, lambda *_: None)
        except NonFiniteError as exc:  # our pipeline stops there, as a run would: the result of this stage
            sides = _not_finite(True, not bool(torch.isfinite(expected).all()))
            note = f"ours: {exc.what} hold inf or NaN"
            if exc.what != FIRST_FRAME_LATENTS:  # our encode stops at the text or SigLIP embeddings, before the VAE
                note += " (an earlier stage's output, not this stage's)"
            return StageResult("conditioning", math.nan, self.tolerances["conditioning"], note, sides)
        return self.stage("conditioning", torch.cat([ours.latents, ours.mask], dim=1), expected)

    def _reference_video(self) -> torch.Tensor:
        """The first frame as the reference's `__call__` prepares it: [1, 1, 3, H, W] in [-1, 1], its dtype."""
        from diffusers.utils import load_image

        s, reference = self.request, self.reference_i2v
        video = reference.video_processor.preprocess_video([load_image(str(s.image))], height=s.height, width=s.width)
        return video.permute(0, 2, 1, 3, 4).to(self.device, reference.transformer.dtype)

    def transformer(self) -> StageResult:
        request = self.request
        noise = self.ours.initial_noise(request, torch.Generator().manual_seed(request.seed))
        # With a first frame, the reference's latents, mask and image embeddings to both: a mismatch here is then
        # our transformer's image path too (its image projection), not only the frames stage's.
        without_image = (torch.zeros_like(noise), torch.zeros_like(noise[:, :1]), None)
        latents, mask, image_embeds = self.first_frame or without_image
        hidden = torch.cat([noise, latents, mask], dim=1)
        settings = self.ours.settings_for(request)
        schedule = schedule_for(settings.solver, request.steps, settings.flow_shift.value, settings.schedule)
        self.timestep = schedule.timesteps[:1].to(self.device)
        e = self.embeds

        def reference(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            kwargs = dict(encoder_hidden_states=text, encoder_attention_mask=mask, return_dict=False)
            transformer = self.reference.transformer
            return transformer(hidden_states=hidden, timestep=self.timestep, image_embeds=image_embeds, **kwargs)[0]

        self.cond, self.uncond = reference(e["pe"], e["pm"]), reference(e["npe"], e["npm"])
        ours = self.ours.transformer(hidden, self.timestep, e["pe"], e["pm"], image_embeds)
        return self.stage("transformer", ours, self.cond, f"t = {float(self.timestep[0]):.1f}")

    def guidance(self) -> StageResult:
        request = self.request
        ours_guidance = self.ours.settings_for(request).guidance.value
        ours = guide(ours_guidance, self.cond, self.uncond, APGState(), 0, request.steps)
        guider, e = self.reference.guider, self.embeds
        guider.set_state(step=0, num_inference_steps=request.steps, timestep=self.timestep[0])
        inputs = {"encoder_hidden_states": (e["pe"], e["npe"]), "encoder_attention_mask": (e["pm"], e["npm"])}
        batches = guider.prepare_inputs(inputs)
        predictions = {"pred_cond": self.cond, "pred_uncond": self.uncond}
        for batch in batches:
            batch.noise_pred = predictions[getattr(batch, guider._identifier_key)]
        reference = guider(batches).pred
        return self.stage("guidance", ours, reference, f"ours: {describe_guidance(ours_guidance, request.steps)}")

    def vae(self) -> StageResult:
        request = self.request
        shape = self.ours.vae.config.latent_shape(request.width, request.height, request.frames)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(request.seed + 1))
        vae = self.reference.vae
        z = latents.to(self.device, vae.dtype)
        raw = self.reference._denormalize_latents(z, vae.config.latents_mean, vae.config.latents_std)
        reference = vae.decode(raw, return_dict=False)[0]
        ours_vae, mode = self.ours.vae, self.ours.vae_mode
        ours = ours_vae.decode(ours_vae.denormalize_latents(z), mode.tile, mode.frame_by_frame, mode.bands)
        return self.stage("vae", ours, reference)

    def frames(self) -> StageResult:
        e, s = self.embeds, self.request
        # As floats, which still show inf/NaN; then to uint8 frames as the reference's "pil" output makes them.
        first_frame = {}
        if self.reference_i2v is not None:  # its `prompt` has no default: the embeddings stand for it, as above
            from diffusers.utils import load_image

            first_frame = {"image": load_image(str(s.image)), "prompt": None}
        pipeline = self.reference if self.reference_i2v is None else self.reference_i2v
        with contextlib.ExitStack() as image_path:  # entered first: a context that fails to enter undoes the others
            if self.reference_i2v is not None:  # it runs the SigLIP tower (our text encoder's) on its device
                image_path.enter_context(_encoder_on(self.ours.text_encoder, self.device))
                image_path.enter_context(_image_embeds_in_dtype(pipeline.transformer))
            video = pipeline(
                **first_frame, prompt_embeds=e["pe"], negative_prompt_embeds=e["npe"], prompt_attention_mask=e["pm"],
                negative_prompt_attention_mask=e["npm"], height=s.height, width=s.width, num_frames=s.frames,
                num_inference_steps=s.steps, generator=torch.Generator().manual_seed(s.seed), output_type="np",
            ).frames[0]  # fmt: skip
        reference_finite, tolerance = bool(np.isfinite(video).all()), self.tolerances["frames"]
        try:
            ours = self._our_frames()
        except NonFiniteError as exc:  # our run stops there: the result of this stage, not an error of verify
            sides = _not_finite(True, not reference_finite)
            return StageResult("frames", math.nan, tolerance, f"ours: {exc.what} hold inf or NaN", sides)
        if not reference_finite:
            return StageResult("frames", math.nan, tolerance, "", "reference")
        frames = self.reference.video_processor.numpy_to_pil(video)
        expected = torch.from_numpy(np.stack([np.asarray(frame) for frame in frames]).astype(np.float64))
        levels = int((ours - expected).abs().max()) if ours.shape == expected.shape else -1
        return self.stage("frames", ours, expected, f"max difference {levels}/255" if levels >= 0 else "")

    def _our_frames(self) -> torch.Tensor:
        """Our whole pipeline's frames as written to PNG files, [frames, H, W, 3] in levels of 255."""
        with tempfile.TemporaryDirectory() as folder:
            self.ours.generate(dataclasses.replace(self.request, output=Path(folder) / "frame_%03d.png"))
            files = sorted(Path(folder).glob("frame_*.png"))
            frames = np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in files])
        return torch.from_numpy(frames).double()


@contextlib.contextmanager
def _encoder_on(encoder: Any, device: torch.device) -> Iterator[None]:
    """Our text encoder on `device` while inside, back on the CPU after (`offload`, also on an error): its SigLIP
    tower is the reference's `text_encoder.vision_tower`, which the reference runs on the device its pixels are on,
    while our pipeline keeps the encoder on the CPU between uses."""
    encoder.to(device)
    try:
        yield
    finally:
        encoder.offload()


@contextlib.contextmanager
def _image_embeds_in_dtype(transformer: torch.nn.Module) -> Iterator[None]:
    """While inside, `transformer` gets its `image_embeds` in its own dtype. The reference borrows our text encoder,
    which keeps its own dtype (bfloat16 in a float16 run, `devices.text_encoder_dtype`), and passes the SigLIP
    embeddings on uncast, where diffusers loaded alone in float16 would hand over float16 ones: its image projection
    refuses the mix. Our pipeline casts them the same way."""

    def cast(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        embeds = kwargs.get("image_embeds")
        if embeds is not None:
            kwargs = {**kwargs, "image_embeds": embeds.to(transformer.dtype)}
        return args, kwargs

    handle = transformer.register_forward_pre_hook(cast, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _reading_note(path: Path) -> str:
    """What the image stage says when the two sides read other pixels from the first frame's file (before any
    resizing), so that the mismatch that follows is not taken for a bug: "" when they read the same."""
    from diffusers.utils import load_image as reference_load_image

    from motif_lite.io.image import load_image

    ours, reference = np.asarray(load_image(path)), np.asarray(reference_load_image(str(path)))
    if ours.shape == reference.shape and np.array_equal(ours, reference):
        return ""
    return (
        "the two sides read other pixels from this file: motif-lite scales a 16-bit or float image to 8 bits, "
        "diffusers' load_image clips it at 255; a mismatch from here on is expected, not a fault of either"
    )


def _not_finite(ours: bool, reference: bool) -> str:
    """The side whose output holds inf or NaN ("ours", "reference" or "both"), or "" when neither does."""
    if ours and reference:
        return "both"
    return "ours" if ours else "reference" if reference else ""
