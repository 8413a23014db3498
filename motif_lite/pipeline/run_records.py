"""What a `MotifVideoPipeline` tells of how its videos are made: the model it runs (as `motif-lite run`'s flags, as
a video's file stores it, as `load_pipeline`'s keywords, in its repr), the kernels that fell back and the attention
that ran in the latest run, and what a video and a run's saved latents store."""

from __future__ import annotations

import dataclasses

import torch

from motif_lite.io.latents import SavedLatents
from motif_lite.paths import user_path
from motif_lite.pipeline.metadata import findable, jsonable, model_flags_of, model_metadata_of, stored_settings
from motif_lite.pipeline.video_run import VideoRun
from motif_lite.ran_on import RAN_ON_KEY, decoded_record, ran_on_record, resumed_record
from motif_lite.request import GenerationRequest
from motif_lite.runtime.kernels import INT8_ATTENTION, FallbackOp, begin_run, fallbacks, kernel_ops
from motif_lite.runtime.planner import Plan
from motif_lite.sampling import SamplingState
from motif_lite.settings import DTYPE_FLAG_NAMES
from motif_lite.units import memory_size


def _plan_in_brief(plan: Plan) -> str:
    """A memory plan in a few words, for the pipeline's repr: the video it was made for, its budget and the blocks
    it streams (`plan.describe()` is the whole table)."""
    words = f"for {plan.width}x{plan.height}x{plan.frames}"
    if plan.budget_bytes is not None:
        words += f" within {memory_size(plan.budget_bytes)}"
    if plan.resident_blocks is not None:
        words += f", {plan.num_blocks - plan.resident_blocks} of {plan.num_blocks} transformer blocks streamed"
    return words


class RunRecords:
    """`MotifVideoPipeline`'s methods that tell how it makes its videos: a part of that class, which sets what they
    read (`sources`, `loras`, `dtype`, `device`, `step_cache`, `text_encoder_dtype`, ...)."""

    def _begin_kernel_record(self) -> None:
        """Start this run's record of fallbacks (`runtime.kernels.begin_run`), so that `kernel_fallbacks` and
        `attention_used` tell this run's, not those of earlier runs (server jobs) on this pipeline."""
        for model in (self.transformer, None if self.text_encoder is None else self.text_encoder.model):
            if model is not None:
                begin_run(model)

    def kernel_fallbacks(self) -> dict[str, str]:
        """{op: first reason} for every kernel that ran torch's version of the same math in the latest run (a Triton
        op, or a kernel `auto` attention chose that failed later): the transformer's, and the text encoder's packed
        linears (with a text encoder GGUF). 8-bit attention's fallback is another math,
        exact attention: `attention_used` tells it."""
        text = fallbacks(self.text_encoder.model) if self.text_encoder is not None else {}
        own = {op: why for op, why in fallbacks(self.transformer).items() if op != INT8_ATTENTION}
        return {**own, **{f"text encoder {op}": why for op, why in text.items()}}

    def attention_used(self) -> str:
        """ "int8" while the 8-bit kernel runs, "exact (int8 fell back: REASON)" once it could not in the latest
        run (warned), "none" while there is no transformer (a failed `set_loras`), else "exact"."""
        if self.transformer is None:
            return "none"
        op = self.transformer.ops.attention
        if not isinstance(op, FallbackOp) or op.name != INT8_ATTENTION:
            return "exact"
        return f"exact (int8 fell back: {op.fallback_reason})" if op.warned else "int8"

    def _saved_latents(self, run: VideoRun, latents: torch.Tensor, state: SamplingState | None = None) -> SavedLatents:
        """`latents` with what writing `run`'s video needs, and the checkpoint, VAE file and dtype this run used;
        with `state` (latents still being sampled), what going on from it needs too."""
        request, sources = run.request, self.sources
        model = None if sources is None else findable(sources.model)
        vae = None if sources is None or "vae" not in sources.weight_files else str(sources.weight_files["vae"])
        vae_dtype = str(self.vae.post_quant_conv.weight.dtype).removeprefix("torch.")  # e.g. "bfloat16"
        output = user_path(request.output).absolute()
        clip_path = None if request.extend is None else str(user_path(request.extend).absolute())  # found from anywhere
        saved = SavedLatents(
            latents, output, request.width, request.height, request.frames, request.fps, vae_dtype,
            self._video_metadata(run), model, vae, clip_path,
        )  # fmt: skip
        if state is None:
            return saved
        tensors = {f"solver.{name}": t for name, t in state.solver.items()}
        if state.apg_running is not None:
            tensors["apg_running"] = state.apg_running
        image = None if request.image is None else user_path(request.image).absolute()
        fields = jsonable({**dataclasses.asdict(request), "output": str(output),
                           "image": None if image is None else str(image), "extend": clip_path})  # fmt: skip
        # Beside the model flags, what a resume checks before it goes on: the image's checksum (given again, moved,
        # it must be the same image), the weight files' stamps (one changed in place), and an extended clip's
        # checksum of the file its last frame, this run's first, came from. Both hashed as the run began: the first
        # frame it sampled from. And whether a video was at the output as it began, which a resume may replace.
        clip_checksum = None if request.extend is None else run.first_frame_sha256
        image_checksum = None if image is None else run.first_frame_sha256
        checked = {**self.model_flags(), "file_stamps": self.file_stamps, "image_sha256": image_checksum,
                   "clip_sha256": clip_checksum, "replaces_output": run.replaces_output}  # fmt: skip
        if self.text_encoder_dtype is not None:  # bf16 beside a default fp32 (`dtypes.text_encoder_dtype`), which
            checked["text_encoder_dtype"] = DTYPE_FLAG_NAMES[self.text_encoder_dtype]  # the dtype alone cannot say
        return dataclasses.replace(saved, progress=(state.done, request.steps), state=tensors, request=fields,
                                   run=checked)  # fmt: skip

    def stored_settings_for(self, request: GenerationRequest) -> dict:
        """The settings a video of the resolved `request` made now by this pipeline would store (its file's comment,
        as `generate` writes it): a file that holds these is that video already (`run -b N` skips it)."""
        return jsonable(stored_settings(request, self.settings_for(request), self.model_metadata()))

    def _video_metadata(self, run: VideoRun) -> dict:
        # Made when stored, not once per run: int8 attention that falls back while sampling makes the model "exact".
        stored = stored_settings(run.request, run.settings, self.model_metadata(), run.stored_inputs)
        # The machine that sampled the last step, and the ones that sampled the first or decode where others: a
        # resumed run of a finished sampling decodes it alone (none where its file, from before ran_on, has none).
        if run.samples:
            ran_on = resumed_record(run.resumed_ran_on, self._ran_on())
        else:
            ran_on = decoded_record(run.resumed_ran_on, self.device)
        return jsonable({**stored, **({} if ran_on is None else {RAN_ON_KEY: ran_on})})

    def _ran_on(self) -> dict:
        """Where this pipeline makes its videos, as a video's file stores it beside the settings (`ran_on`): the
        device, GPU, versions, the kernels its transformer runs and how many processes share a run (--gpus N)."""
        processes = 1 if self.parallel is None else self.parallel.layout.world
        return ran_on_record(self.device, self._kernels_used(), processes)

    def _kernels_used(self) -> str | None:
        """ "triton" where the transformer's Triton ops ran (one at least did not fall back), else "torch"; None
        without a transformer. 8-bit attention is the model's `attention`, not counted here."""
        if self.transformer is None:
            return None
        ops = [op for op in kernel_ops(self.transformer) if op.name != INT8_ATTENTION]
        return "triton" if any(op.fallback_reason is None for op in ops) else "torch"

    def model_metadata(self) -> dict:
        """The model a video was made with, as its file stores it: `model_flags` with each file and folder by its
        name (a Hub repo id as it is), so that a shared video tells nothing of the user's disk; the attention asked
        for where 8-bit attention fell back to exact (`attention` says what ran); and a lossy step cache's
        threshold, which changes the video as much as the model does (`--settings-from` notes it)."""
        metadata = model_metadata_of(self.model_flags())
        if self.attention_used().startswith("exact (int8 fell back"):  # what ran, and what was asked: a rerun of
            metadata["attention_asked"] = "int8"  # the same command compares the request (`settings_as_asked`)
        if self.step_cache is not None and self.step_cache.threshold > 0:  # 0 gives exactly the plain run
            metadata["step_cache"] = self.step_cache.threshold
        return metadata

    def model_flags(self) -> dict:
        """The model this pipeline runs, as `motif-lite run`'s flags (dests) name it: what a resumed run loads."""
        return model_flags_of(self.sources, self.dtype, self.attention_used(), self.loras)

    def load_keywords(self) -> dict[str, str]:
        """What this pipeline was loaded from, as `load_pipeline`'s keywords would load it again (each value as
        Python writes it): the checkpoint, the weights that replace its own, the LoRAs, the device and the dtype."""
        flags = self.model_flags()
        keywords = {"model": repr(flags.get("model"))}
        for name in ("gguf", "quantize", "text_encoder_gguf", "text_encoder_quantize"):
            if flags.get(name) is not None:
                keywords[name] = repr(flags[name])
        components = {"diffusion_model": "transformer", "text_encoder": "text_encoder", "vae": "vae"}
        weights = {component: flags[flag] for flag, component in components.items() if flags.get(flag) is not None}
        if weights:
            keywords["weights"] = repr(weights)
        if self.loras is not None and self.loras.files:
            keywords["loras"] = repr({str(f.spec.path): f.spec.strength for f in self.loras.files})
        keywords["device"] = repr(str(self.device))
        keywords["dtype"] = str(self.dtype)  # torch.float32: the name to type
        return keywords

    def __repr__(self) -> str:
        """What a notebook shows for `pipe`: where it was loaded from, on which device in which dtype, the attention
        and the memory plan (None: everything on the device)."""
        plan = self._transformer_recipe.plan if self._transformer_recipe is not None else None
        planned = "None" if plan is None else repr(_plan_in_brief(plan))
        shown = {**self.load_keywords(), "attention": repr(self.attention_used()), "plan": planned}
        return f"{type(self).__name__}({', '.join(f'{name}={value}' for name, value in shown.items())})"
