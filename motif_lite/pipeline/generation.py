"""MotifVideoPipeline: `generate` makes one video, encode -> denoise -> decode.

The class is made of parts by role, each in its module: its encode stage (`encode_stage`), its denoise stage
(`denoise_stage`), what it tells of how its videos are made (`run_records`) and its answers to diffusers' habits
(`diffusers_habits`). Here: what it holds, `set_loras`, and `generate`'s run: its stages in order, the decode, and
the work a failed run keeps."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from motif_lite.checkpoint import ModelSources
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.decoding import decode_video
from motif_lite.errors import Audience, ConfigError, MotifLiteError
from motif_lite.io.clip import Clip
from motif_lite.io.latents import SavedLatents
from motif_lite.io.latents_saving import LatentsFile
from motif_lite.io.model_stamps import changed_file_notes, other_model_notes
from motif_lite.io.output_claims import holds_video
from motif_lite.io.video import check_crf
from motif_lite.keeping import (
    SAVE_FINAL_STATE_AFTER_SECONDS,
    SAVE_STATE_EVERY_SECONDS,
    StateSaver,
    advise_decode_out_of_memory,
    keep,
    untouched,
)
from motif_lite.memory_plan import packed_adapter_macs
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.numerics import NonFiniteError
from motif_lite.paths import user_path
from motif_lite.pipeline.arguments import check_generate_arguments, check_preview_spacing, check_resolved
from motif_lite.pipeline.call_guards import (
    PIPELINE_FOLDER,
    CallGuard,
    frees_memory_when_stopped,
    on_its_device,
    one_call_at_a_time,
    undone_if_refused,
)
from motif_lite.pipeline.conditioning import Conditioning, KeptEncodings, KeptText
from motif_lite.pipeline.denoise_stage import DenoiseStage
from motif_lite.pipeline.diffusers_habits import DiffusersHabits
from motif_lite.pipeline.encode_stage import EncodeStage
from motif_lite.pipeline.from_diffusers import generate_advice, missing_request_advice, set_loras_advice
from motif_lite.pipeline.recipe import LoadedTransformer, TransformerRecipe, load_transformer_stage
from motif_lite.pipeline.result import DenoiseRecord, GenerationResult, PreviewFn, ProgressFn, first_step_overhead
from motif_lite.pipeline.resuming import earlier_run_note, resumed_state
from motif_lite.pipeline.run_records import RunRecords
from motif_lite.pipeline.video_run import StageMeasures, VideoRun
from motif_lite.preflight import check_loras
from motif_lite.ran_on import RAN_ON_KEY
from motif_lite.request import GenerationRequest, RequestError, ResolvedRequest
from motif_lite.run_estimates import cpu_time_note
from motif_lite.runtime.attention import AttentionBackend
from motif_lite.runtime.compile import CompileHandle
from motif_lite.runtime.host_memory import peak_rss
from motif_lite.runtime.parallel import Parallel
from motif_lite.runtime.planner import PlanHandle
from motif_lite.runtime.step_cache import StepCacheConfig
from motif_lite.runtime.streaming import TextEncoderPlacement
from motif_lite.sampling import SamplingState, StepCallback
from motif_lite.settings import FLAG, Setting, Settings, resolve_settings
from motif_lite.vae import WanVAE
from motif_lite.vae.preview import LatentRGB
from motif_lite.vae.tiling import VAEMode
from motif_lite.weights.lora_apply import AppliedLoRAs
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRAEntry, lora_specs, spec_of
from motif_lite.weights.lora_values import warn_of_unusual_strengths

if TYPE_CHECKING:  # transformers takes seconds to import: plans and dry runs never need it
    from motif_lite.encoders.text import TextEncoder


logger = logging.getLogger(__name__)


def _tell(exc: BaseException, note: str) -> None:
    """Add `note` to the message of a user-facing error (the CLI prints that message), else log it as a warning:
    out of memory, Ctrl-C or a bug keep their type, their message and their traceback."""
    if isinstance(exc, MotifLiteError) and type(exc).__str__ is Exception.__str__ and len(exc.args) == 1:
        exc.args = (f"{exc.args[0]}\n{note}",)
    else:
        logger.warning(note)


class MotifVideoPipeline(EncodeStage, DenoiseStage, RunRecords, DiffusersHabits):
    """The loaded components plus what the checkpoint's configs say; `generate` makes one video.

    `transformer`: the model, or the `LoadedTransformer` that `load_pipeline` built (the model with what it
    installed on it: LoRAs, a memory plan's hooks, compiled blocks). `sources` (from `locate_sources`, as
    `load_pipeline` passes it): the checkpoint's configs, which decide every setting a request leaves open
    (`motif_lite.settings`); without it the official values do. `plan_handle`: what a memory plan installed on a
    model given alone and the VAE (`apply_plan`), for a pipeline built from its parts.
    """

    def __init__(
        self,
        transformer: MotifVideoTransformer | LoadedTransformer,
        text_encoder: TextEncoder | None,
        vae: WanVAE,
        device: torch.device,
        dtype: torch.dtype,
        sources: ModelSources | None = None,
        plan_handle: PlanHandle | None = None,
    ) -> None:
        # The transformer and what was installed on it (LoRAs, a memory plan's hooks, compiling), read through
        # `transformer`, `loras`, `plan_handle`, ...: one value, which `set_loras` drops and replaces whole; None
        # after a failed `set_loras`, until one succeeds.
        if not isinstance(transformer, LoadedTransformer):  # a model built by hand, with a plan's `plan_handle`
            transformer = LoadedTransformer(transformer, plan_handle=plan_handle)
        self._loaded: LoadedTransformer | None = transformer
        self.text_encoder = text_encoder
        self.vae = vae
        self.device = torch.device(device)
        self.dtype = dtype  # the transformer's compute dtype; the initial noise is drawn in it, like the reference
        self.dtype_setting: Setting[torch.dtype] | None = None  # where `dtype` came from (load_pipeline sets it)
        # The dtype load_pipeline gave the text encoder (None: not loaded by it): a resume loads it so again.
        self.text_encoder_dtype: torch.dtype | None = None
        self.sources = sources
        # The VAE's tiles, frames at a time and exact bands (the decoder's, and the encoder's for the first frame);
        # a memory plan sets it.
        self.vae_mode = VAEMode()
        # How the text encoder runs while prompts are encoded (whole on the device, layers streamed to it, or on
        # the CPU). In every case it holds no device memory before or after encoding.
        self.text_placement = TextEncoderPlacement.DEVICE
        self.preview_projection: LatentRGB | None = None  # fitted to the VAE on the first run with previews
        self._preview_fitted_to: weakref.ref | None = None  # that VAE: another one (swapped by hand) is fitted again
        # A parallel run (runtime/parallel.py): rank 0 encodes and writes, every rank denoises and decodes its share.
        # The text encoder is None on the other ranks.
        self.parallel: Parallel | None = None
        # Speed features (load_pipeline sets them): the guided steps' two predictions as one batch-2 forward, a
        # step cache, compiled blocks, the attention backend in use.
        self.batch_guidance = False
        self.step_cache: StepCacheConfig | None = None
        self.attention_backend: AttentionBackend | None = None
        self.save_state_every = SAVE_STATE_EVERY_SECONDS  # seconds of sampling between saves of its state (keeping.py)
        # A sampling that took at least this long saves its state after its last step too: the decode may be killed.
        self.save_final_state_after = SAVE_FINAL_STATE_AFTER_SECONDS
        # Where a run's latents go when their own place takes no file (a full disk): `motif-lite run` sets one.
        self.latents_fallback: Path | None = None
        # Whether `generate` on the CPU warns before a run estimated at over LONG_CPU_RUN_SECONDS: a library call
        # cannot ask, as `motif-lite run` does; the CLI and the server, which said or refused it already, turn it off.
        self.warns_long_cpu_runs = True
        # The last texts and first frame encoded, kept for the next videos (a batch, a server's repeated prompts).
        self.kept_encodings = KeptEncodings()
        # The cuts of long texts said so far, as (the text's SHA-256, warning): each is said once, on the first video
        # of the text, however many videos use it since (a sweep of seeds) and whether its encoding is kept or made
        # again. A digest, not the text: a server's one pipeline would keep every long prompt it ran, whole, for days.
        self.cuts_said: set[tuple[bytes, str]] = set()
        self._transformer_recipe: TransformerRecipe | None = None  # how load_pipeline built it: for `set_loras`
        # Held by the `generate` or `set_loras` that runs (`one_call_at_a_time`).
        self._calls = CallGuard()

    def __getstate__(self) -> dict:
        """What copy.deepcopy and pickle copy (a host's state: Gradio's gr.State, multiprocessing's spawn, Ray,
        joblib): everything but the caches a run leaves, which the copy builds again on its next run, to the same
        bits. The preview's latent -> RGB fit is dropped with the weak reference to the VAE it was fitted to (which
        pickle cannot write, and the copy's VAE is another object); the kept encodings empty themselves
        (`KeptEncodings.__reduce__`), and the call guard comes fresh (`CallGuard.__reduce__`). The pipeline itself
        is left as it was. A shallow copy (copy.copy) shares the rest, the kept encodings and the guard included,
        and fits its own preview again."""
        state = dict(self.__dict__)
        state["preview_projection"], state["_preview_fitted_to"] = None, None
        return state

    @property
    def transformer(self) -> MotifVideoTransformer | None:
        """The transformer; None after a failed `set_loras`, until one succeeds."""
        return None if self._loaded is None else self._loaded.model

    @property
    def loras(self) -> AppliedLoRAs | None:
        """The LoRAs `load_pipeline` or `set_loras` applied to the transformer; None: none."""
        return None if self._loaded is None else self._loaded.loras

    @property
    def plan_handle(self) -> PlanHandle | None:
        """What a memory plan installed (streaming hooks, chunking); None: everything resident on `device`."""
        return None if self._loaded is None else self._loaded.plan_handle

    @property
    def compile_handle(self) -> CompileHandle | None:
        """The transformer's compiled blocks (`compile=`); None: not compiled."""
        return None if self._loaded is None else self._loaded.compile_handle

    @property
    def file_stamps(self) -> dict[str, dict[str, int]]:
        """The size and time of each weight file as the model was loaded (`LoadedTransformer.file_stamps`)."""
        return {} if self._loaded is None else self._loaded.file_stamps

    @property
    def encoded_texts(self) -> OrderedDict[str, KeptText]:
        """The last texts encoded, the most recently used last: host copies of their embeddings and masks by text."""
        return self.kept_encodings.texts

    @property
    def notes(self) -> tuple[str, ...]:
        """What loading found worth knowing (e.g. a GGUF's embedded config disagreeing with the checkpoint's)."""
        return self.sources.notes if self.sources is not None else ()

    def settings_for(self, request: GenerationRequest, audience: Audience = Audience.RUN_OR_PYTHON) -> Settings:
        """The effective settings of `request` on this checkpoint (flag, else checkpoint config, else official);
        `audience`: who a refusal speaks to (the server: its client)."""
        if self.sources is None:
            transformer = Setting(self.transformer.config, FLAG, "the transformer given to MotifVideoPipeline")
            return resolve_settings(request, CheckpointConfigs(), transformer, self.dtype_setting, audience=audience)
        configs, transformer = self.sources.configs, self.sources.transformer
        return resolve_settings(request, configs, transformer, self.dtype_setting, audience=audience)

    @frees_memory_when_stopped
    @one_call_at_a_time
    @on_its_device
    def set_loras(
        self, loras: Sequence[LoRAEntry] | Mapping[str | Path, float] | None = None, **other_keywords: object
    ) -> None:
        """Replace the transformer's LoRAs with `loras` (what `load_pipeline(loras=...)` takes; [] removes them all)
        without loading the text encoder and the VAE again: the transformer is read again from its files with the
        new LoRAs applied, exactly as `load_pipeline` with the same arguments would build it (dtype, device,
        kernels, attention, memory plan, speed options); the text encoder, the VAE and the kept encoded prompts stay.

        The files are read and checked against the transformer first: a `LoRAError` leaves the pipeline as it was.
        The old transformer is freed before the new one loads, so memory never holds two; should that load fail
        (a weight file gone, out of memory), the pipeline has no transformer until `set_loras` succeeds.

        Another keyword (diffusers' `adapter_weights=`, `adapter_names=`, `weight_name=`, or a misspelled one) is a
        `LoRAError` saying what to give instead; `loras` is needed: its default None is there only so that
        `set_loras(adapter_names=[...])` gets that line too."""
        if other_keywords:  # Python's own TypeError would only name the keyword
            raise LoRAError(set_loras_advice(loras, other_keywords, MotifVideoPipeline.set_loras))
        if self._transformer_recipe is None:
            raise ConfigError(
                "set_loras loads the transformer again from its files: it needs a pipeline made by load_pipeline"
            )
        recipe = self._transformer_recipe
        specs = lora_specs(loras)
        strengths = [(spec.path, spec.strength) for spec in map(spec_of, specs)]  # read already or not
        warn_of_unusual_strengths(strengths, PIPELINE_FOLDER)  # named by the caller's line, past the decorators
        lora_files = check_loras(specs, recipe.sources)
        self._drop_transformer()
        try:
            self._loaded = load_transformer_stage(recipe, lora_files)
        except BaseException as exc:
            _tell(exc, "the pipeline has no transformer now: call set_loras again once the cause is fixed")
            raise

    def _drop_transformer(self) -> None:
        """Let go of the transformer and of what was installed on it (the plan's streamers hold its blocks), so
        that its memory is free before another one loads; whatever still holds it in a reference cycle (a compiled
        graph, a kept traceback) would keep it alive until the next collection: hence one now."""
        self._loaded = None
        gc.collect()

    @frees_memory_when_stopped
    @one_call_at_a_time
    @on_its_device
    def generate(
        self,
        request: GenerationRequest | None = None,
        on_progress: ProgressFn | None = None,
        on_preview: PreviewFn | None = None,
        preview_every: int | None = None,
        *,
        keep_latents: bool = True,
        resume: SavedLatents | None = None,
        latents_file: str | Path | None = None,
        clip: Clip | None = None,
        crf: int | None = None,
        stored_clip: Mapping[str, str] | None = None,
        stored_image: Mapping[str, str] | None = None,
        resolved: ResolvedRequest | None = None,
        **other_keywords: object,
    ) -> GenerationResult:
        """Generate one video and write it to `request.output` (always a file: no frames come back in memory,
        `result.read_frames()` reads them from it; a file there is replaced, and a request without `output` takes a
        free name: `result.output`); no partial video is left behind if it fails.

        `on_progress(stage, done, total)` may raise to stop the run (cancelling from code): that exception comes out
        of `generate` unchanged, after the work is kept as for any failure (below).

        One call at a time: called from several threads at once, each call waits for the one before it to return
        (`set_loras` too); called from a callback of this pipeline's own run, on its thread, it is a `ConfigError`,
        which stops that run as a callback's exception does (a call the callback hands to another thread and waits
        for still hangs).

        `on_preview(done, steps, frames)` gets a cheap preview of the clip (vae/preview.py) every `preview_every`
        steps (default: a quarter of the steps, rounded up: up to 3 previews), not after the last step.

        `keep_latents`: the work is not lost when the run fails (io/latents.py; the file is `fox.mp4` ->
        `fox.latents.safetensors`, removed once the video is written): when sampling stops early (Ctrl-C, out of
        memory, an error; not inf/NaN, which would come back), its state after the last finished step is saved, and
        while it runs long, every `save_state_every` seconds, and after the last step when sampling took at least
        `save_final_state_after` seconds (a decode killed where no handler runs, by the OOM killer, loses no
        sampling: `resume` with that file goes straight to the decode); when the decode fails, the denoised latents
        (for `motif-lite decode`). The error's message (or, for errors other than a `MotifLiteError`, a logged
        warning) says where.

        `resume`: the saved state of a run that stopped while sampling (`read_latents`), with `request` that run's
        (`resume.request`): sampling goes on from its last step and the video is the one that run would have made
        (a failed decode's denoised latents: straight to the decode); a model other than that run's goes on all the
        same, with a note in the result.

        `latents_file`: where this run keeps its work (default: the file it resumed from, else a free name beside
        the output).

        `clip`: the clip `request.extend` names, as the caller read it already (`read_clip`; read here once
        otherwise): reading it again would decode a video file, or every header of a PNG sequence.

        `crf`: the video encoder's constant-rate factor for .mp4/.mkv/.mov (H.264, 0-51) and .webm (VP9, 0-63),
        lower is better and larger; None keeps the codec's default (18, 30); other formats refuse one. An encoding
        option: it is not stored with the settings in the file.

        `stored_clip`: what the file's settings say of the clip instead of its path's name, where that is not the
        name its user knows (the server's copy of an upload): `{"extend": name, "extend_sha256": checksum}`, either
        or both. `stored_image`: likewise of the first frame (the server's copy of an uploaded image,
        `inputs/ID.png`): `{"image": name, "image_sha256": checksum}`, either or both.

        `resolved`: what `request.resolve_with_inputs(clip)` returned, for a caller that resolved the request first
        (the server's worker, to check a saved state against it), given as `generate(resolved.request,
        resolved=resolved)`: the request is not resolved again, nor its input image read again (its clip is the one
        `resolve_with_inputs` was given; a `clip` beside it that is another one is a `RequestError`). A first frame
        made in memory that `generate` resolves itself is written as its PNG and, where the run is refused before its
        work, removed again (or the file it replaced put back); one that the caller's `resolved` wrote is the
        caller's (`resolved.first_frame_written.undo()`).

        Any other keyword (diffusers' call's `num_inference_steps`, `generator`, ..., or a misspelled one of the
        above) is a `RequestError` saying what to give instead. `request` is needed: its default None is there only
        so that settings given as keywords without it (`generate(prompt="a fox")`) get the line to write."""
        # Before any work: a wrong argument costs no encoding.
        if request is None:  # Python's own TypeError would only say that `request` is missing
            raise RequestError(missing_request_advice(other_keywords, MotifVideoPipeline.generate))
        if other_keywords:  # Python's own TypeError would only name the keyword
            raise RequestError(generate_advice(other_keywords, MotifVideoPipeline.generate))
        callbacks = {"on_progress": on_progress, "on_preview": on_preview}
        check_generate_arguments(
            request, preview_every, callbacks, keep_latents, latents_file, clip, stored_clip, stored_image
        )
        check_resolved(request, resolved, clip)
        # One mapping from here on: `stored_settings` takes the keys of each for the input the request has.
        stored_inputs = {**(stored_clip or {}), **(stored_image or {})} or None
        if self.transformer is None:
            raise ConfigError("this pipeline has no transformer: its set_loras failed to load one; call it again")
        # The input image is read once: for the request's notes, and for the first frame here; and hashed once.
        # A first frame made in memory that this call's resolve wrote as its PNG is undone if the run is refused
        # before its work: nothing stays behind of a run that never started (a caller's `resolved` is the caller's).
        resolved_here = resolved is None
        # A resumed run's own output keeps its name: an older version wrote `fox_{seed}.mp4` as named.
        taken_output = None if resume is None else resume.output
        resolved = request.resolve_with_inputs(clip, taken_output=taken_output) if resolved is None else resolved
        request, clip, input_image, notes, checksum, written = resolved
        with undone_if_refused(written if resolved_here else None):
            check_crf(request.output, crf)
            check_preview_spacing(request.steps, preview_every)
            settings = self.settings_for(request)
            start = None if resume is None else self._resume_state(resume, request, settings, checksum)
            if start is not None:  # the steps left to sample decide what guidance prepares (`Settings.guided`)
                settings = dataclasses.replace(settings, first_step=start.done)
            if self.warns_long_cpu_runs and self.device.type == "cpu":  # before hours of work start without a word
                self._warn_long_cpu_run(request, settings)
            # The record starts before the notes: a resumed run's notes then compare this run's attention, not the
            # one the pipeline's last run fell back to.
            self._begin_kernel_record()
            notes = notes + self._run_notes(settings, resume)  # a new list: `resolved`'s is the caller's
            if (beyond := self._beyond_plan_note(request)) is not None:
                notes.append(beyond)
            # A stopped run of this output (a cell stopped, then run again) is not gone on with unasked: say so before
            # the work starts. `motif-lite run` and the server name their own latents file and say it themselves.
            asked = resume is None and latents_file is None and keep_latents
            if asked and (earlier := earlier_run_note(request.output)):
                logger.warning(earlier)
                notes.append(earlier)
            progress = on_progress or (lambda stage, done, total: None)
            measures = StageMeasures()
            begin = time.perf_counter()
            generator = torch.Generator().manual_seed(request.seed)
            keeper = self._latents_file(request, resume, latents_file) if keep_latents else None
            # Before anything writes it.
            replaces = request.output is not None and holds_video(user_path(request.output))
            # Where the file's steps were sampled: the video's `ran_on` names it where it is another machine.
            resumed_ran_on = None if resume is None else resume.video_metadata.get(RAN_ON_KEY)
            samples = start is None or start.done < request.steps
            run = VideoRun(request, settings, progress, keeper, clip, crf, stored_inputs, checksum, replaces,
                           resumed_ran_on, samples)  # fmt: skip
        try:
            with self._stage("encode", measures):
                # A resumed run draws the noise too: the generator's next draw (I2V's posterior sample) follows it.
                noise, cond = self._inputs(run, generator, input_image)
                del input_image  # a large photo's pixels are not held through the denoising
                on_denoised = self._preview_callback(request.steps, on_preview, preview_every)
        except BaseException as exc:
            run.end_progress()  # the later stages end it themselves, before their notes
            # Ctrl-C said only "interrupted": is the state still there? Said where this run keeps its work in the
            # file it resumed from: a `latents_file` of its own is not written yet, and naming it would send the
            # user to a file that is not there.
            resumed_file = None if resume is None or resume.file is None else user_path(resume.file)
            kept_in_it = keeper is not None and resumed_file is not None and keeper.path == resumed_file
            if kept_in_it and isinstance(exc, KeyboardInterrupt):
                _tell(exc, untouched(keeper))
            raise
        with self._stage("denoise", measures):
            latents, record = self._sample_keeping_state(run, noise, cond, on_denoised, start)
        with self._stage("decode", measures):
            # An extension's video holds the clip's frames first, then the new ones (the clip's last frame once).
            output = self._decode(run, latents)
        if keeper is not None:
            keeper.remove()  # the video is written: the run's saved state is of no more use
        measures.seconds["total"] = time.perf_counter() - begin
        return self._result(run, output, notes, measures, record, start, cond)

    def _run_notes(self, settings: Settings, resume: SavedLatents | None) -> list[str]:
        """What loading and the settings found worth knowing, and for a resumed run, how this pipeline's model
        differs from that run's (as `run --resume` notes it: the rest of the video is not the one that run made)."""
        notes = [*self.notes, *settings.notes]
        if resume is not None:
            notes += other_model_notes(resume.run, self.model_flags(), "this pipeline's model")
            notes += changed_file_notes(resume.run, self.model_flags())
        return notes

    def _beyond_plan_note(self, request: GenerationRequest) -> str | None:
        """The note for a request the memory plan the pipeline loaded with was not made for (`Plan.uncovered_note`);
        None without a plan."""
        plan = self._transformer_recipe.plan if self._transformer_recipe is not None else None
        if plan is None:
            return None
        return plan.uncovered_note(request.width, request.height, request.frames, request.conditions_on_image)

    def _warn_long_cpu_run(self, request: GenerationRequest, settings: Settings) -> None:
        """Log the estimate `motif-lite run` would ask about (`cpu_time_note`), in the Python API's keywords, when
        this CPU run is estimated at over LONG_CPU_RUN_SECONDS; a short run costs no measuring. The LoRA adapters
        kept beside packed layers count, as the command line counts them (`packed_adapter_macs`)."""
        configs = self.sources.configs if self.sources is not None else CheckpointConfigs()
        loras = self.loras.files if self.loras is not None and self.sources is not None else []
        macs = packed_adapter_macs(self.sources, loras, self.dtype) if loras else None
        note = cpu_time_note(request, settings, configs, self.dtype, in_python=True, adapter_macs=macs)
        if note is not None:
            logger.warning("%s; starting it anyway (a library call does not ask)", note)

    def _result(
        self,
        run: VideoRun,
        output: Path,
        notes: list[str],
        measures: StageMeasures,
        record: DenoiseRecord,
        start: SamplingState | None,
        cond: Conditioning,
    ) -> GenerationResult:
        """What `generate` tells of the run it finished: its output and settings, and what it measured."""
        settings = run.settings
        return GenerationResult(
            output=output,
            request=run.request,
            shift=settings.flow_shift_used,
            timings=measures.seconds,
            peak_rss_bytes=peak_rss(),
            peak_device_bytes=max(measures.allocated.values(), default=None),
            notes=notes,
            stage_peaks=measures.allocated,
            settings=settings,
            parallel=None if self.parallel is None else self.parallel.describe(),
            attention=self.attention_used(),
            step_seconds=record.step_seconds,
            guidance_batch=record.guidance_batch,
            step_cache=record.step_cache,
            compile_seconds=first_step_overhead(record.step_seconds) if record.compiled else None,
            attention_backend=None if self.attention_backend is None else self.attention_backend.describe(),
            kernel_fallbacks=self.kernel_fallbacks(),
            resumed_at=None if start is None else start.done,
            image_size=cond.image_size,
            clip_frames=None if run.clip is None else run.clip.frames,
            peak_reserved_bytes=max(measures.reserved.values(), default=None),
            stage_reserved_peaks=measures.reserved,
        )  # fmt: skip

    def _sample_keeping_state(
        self,
        run: VideoRun,
        noise: torch.Tensor,
        cond: Conditioning,
        on_denoised: StepCallback | None,
        start: SamplingState | None,
    ) -> tuple[torch.Tensor, DenoiseRecord]:
        """`sample`, with its state saved to `run.keeper` (when given) every `save_state_every` seconds, after the
        last step when sampling took `save_final_state_after` seconds or more, and when it stops early; not on
        inf/NaN, which a resumed run would meet again."""
        saver = None
        if run.keeper is not None:

            def saved(state: SamplingState) -> SavedLatents:
                return self._saved_latents(run, state.latents, state)

            saver = StateSaver(
                run.keeper, saved, self.save_state_every, run.request.steps, start, self.save_final_state_after
            )
        try:
            return self.sample(run.request, noise, cond, run.settings, run.progress, on_denoised, start, saver)
        except BaseException as exc:
            run.end_progress()
            if saver is not None and not isinstance(exc, NonFiniteError):
                _tell(exc, saver.save_on_failure())
            raise

    def _latents_file(
        self, request: GenerationRequest, resume: SavedLatents | None, path: str | Path | None
    ) -> LatentsFile | None:
        """Where this run keeps its work (`path`, else the file it resumed from, else one beside the output); None
        on the ranks of a parallel run other than the main one, which keeps it for all."""
        if self.parallel is not None and not self.parallel.is_main:
            return None
        if path is None and resume is not None:
            path = resume.file
        return LatentsFile(request.output, None if path is None else user_path(path), self.latents_fallback)

    def _resume_state(
        self, resume: SavedLatents, request: GenerationRequest, settings: Settings, first_frame_sha256: str | None
    ) -> SamplingState:
        """The sampling state `resume` holds, on this pipeline's device and dtype, after checking that it continues
        this request with these settings, from the first frame whose file has this checksum (`RequestError`
        otherwise, before any work)."""
        shape = self.vae.config.latent_shape(request.width, request.height, request.frames)
        return resumed_state(resume, request, settings, shape, self.device, self.dtype, first_frame_sha256)

    @contextlib.contextmanager
    def _stage(self, name: str, measures: StageMeasures) -> Iterator[None]:
        """Time a stage and, on CUDA, record its own peaks of memory into `measures`."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield
        measures.seconds[name] = time.perf_counter() - start
        if cuda:
            measures.allocated[name] = torch.cuda.max_memory_allocated(self.device)
            measures.reserved[name] = torch.cuda.max_memory_reserved(self.device)

    def _decode(self, run: VideoRun, latents: torch.Tensor) -> Path:
        """Stream decoded frames straight into `run`'s video file (one latent frame of pixels alive at a time), the
        frames of `run.clip` first. With `run.keeper`, a decode that fails in any way (out of memory, inf/NaN, a full
        disk, Ctrl-C) does not lose the sampling: the latents are saved there first, then the original error goes
        on, saying where they are and how to decode them (`motif-lite decode`)."""
        request = run.request
        output = user_path(request.output)
        try:
            written = decode_video(
                self.vae, latents, output, request.fps, self._video_metadata(run), run.progress, mode=self.vae_mode,
                parallel=self.parallel, clip=run.clip, crf=run.crf,
            )  # fmt: skip
        except BaseException as exc:
            run.end_progress()
            if run.keeper is not None:
                _tell(exc, keep(run.keeper, self._saved_latents(run, latents)))
                kept = run.keeper.kept
                # The denoised latents, or where their save failed, the state saved after the last step: either
                # is all the sampling, so the advice is the decode alone, not the run's, which samples again.
                if isinstance(exc, torch.OutOfMemoryError) and kept is not None and kept.sampling_done:
                    advise_decode_out_of_memory(exc, run.keeper.path, self.device)
            raise
        return written or output  # another name when output could not be replaced; None on parallel ranks > 0
