"""`load_pipeline`: the checks, then the text encoder, the VAE and the transformer, then the speed settings."""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from motif_lite import devices, dtypes
from motif_lite.checkpoint import ModelSources, refuse_wrong_weights
from motif_lite.choices import MOTIF_REPO
from motif_lite.dtypes import checked_dtype
from motif_lite.errors import ConfigError
from motif_lite.memory_plan import batched_guidance, unplanned_memory_warning
from motif_lite.paths import names_too_long_refused
from motif_lite.pipeline.call_guards import PIPELINE_FOLDER
from motif_lite.pipeline.from_diffusers import is_same_device, load_advice
from motif_lite.pipeline.generation import MotifVideoPipeline
from motif_lite.pipeline.recipe import TransformerRecipe, load_transformer_stage, quantize_search_device
from motif_lite.preflight import check_loras, check_speed, check_speed_on_device, preflight, step_cache_setting
from motif_lite.runtime.compile import CompileConfig
from motif_lite.runtime.kernels import apply_dequant_kernels
from motif_lite.runtime.parallel import Parallel
from motif_lite.runtime.planner import Plan
from motif_lite.runtime.step_cache import StepCacheConfig
from motif_lite.runtime.streaming import TextEncoderPlacement
from motif_lite.settings import resolve_dtype
from motif_lite.vae import load_vae
from motif_lite.weights.lora_specs import LoRAEntry, lora_specs, spec_of
from motif_lite.weights.lora_values import warn_of_unusual_strengths

if TYPE_CHECKING:  # transformers takes seconds to import: plans and dry runs never need it
    from transformers import PreTrainedTokenizerBase

    from motif_lite.encoders.text import TextEncoder


def load_pipeline(
    model: str | Path | ModelSources = MOTIF_REPO,
    gguf: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "auto",
    kernels: str = "auto",
    plan: Plan | None = None,
    text_encoder_dtype: torch.dtype | str | None = None,
    loras: Sequence[LoRAEntry] | Mapping[str | Path, float] = (),
    attention: str = "exact",
    *,
    text_encoder_gguf: str | Path | None = None,
    parallel: Parallel | None = None,
    batch_guidance: bool | None = None,
    compile: bool | CompileConfig = False,
    attention_backend: str = "auto",
    step_cache: float | StepCacheConfig | None = None,
    weights: Mapping[str, str | Path] | None = None,
    quantize: str | None = None,
    text_encoder_quantize: str | None = None,
    prompt_tokenizer: PreTrainedTokenizerBase | None = None,
    **other_keywords: object,
) -> MotifVideoPipeline:
    """Load Motif-Video from a local checkpoint folder (official layout) or a Hub repo id (cache first).

    `gguf`: a `.gguf` file, a folder holding one, or a variant name of the official GGUF repo (e.g. "Q4_K_M") that
    replaces the checkpoint's transformer weights; the transformer config still comes from the checkpoint's
    `transformer/config.json`. `model` may also be the `ModelSources` that `preflight` / `locate_sources` found
    (then `gguf` is ignored). Every check that needs no weights runs first (`preflight`): one error lists every
    problem. The text encoder is loaded on the CPU and visits `device` only while prompts are encoded. `plan`
    (from `plan_generation`, made with this call's `step_cache` and `attention`: a plan made for others is refused
    before loading): load on the CPU, then stream / chunk / tile as the memory plan says instead of
    putting everything on `device` (without one, a warning when the official video would not fit the GPU by the
    planner's estimate). `dtype`: torch.bfloat16, torch.float16 or torch.float32, or its name ("bf16",
    "float32", ...); None: float16 on a GPU before compute capability 8.0 (no bfloat16 tensor cores; float32 on the
    GTX 16xx and before 7.0: `dtypes.fp16_problem`), else bfloat16, the published dtype (`pipe.dtype_setting`
    says which and why; a row of the settings table).
    `text_encoder_dtype` (default `dtype`, but bfloat16 when `dtype` is float16, or float32 by default rather than
    asked for: `dtypes.text_encoder_dtype`): e.g. bfloat16 (the checkpoint's own dtype) next to a float32
    transformer on the CPU, halving the encoder's 17 GB; its outputs are cast to `dtype`. `pipe.text_encoder_dtype`
    says which it got (a stopped run keeps it, and `motif-lite run --resume` loads the encoder in it again).
    `loras`: files (strength 1) or (file, strength) pairs (or a {file: strength} dict), checked against the
    transformer before any weight is read, then merged into its float weights or kept beside packed GGUF weights
    (motif_lite/weights/lora.py, lora_apply.py); `MotifVideoPipeline.set_loras` switches them later. A `LoRAFile`
    (`read_loras`' against this transformer's layers: `motif-lite run` hands on those it checked) is not read again.
    `attention`: "exact" or "int8" (8-bit attention on GPUs with INT8 tensor cores, lossy; elsewhere exact attention
    with one warning; docs/kernels.md). `text_encoder_gguf`: a text encoder GGUF (`python -m motif_lite.quantize
    CKPT --component text_encoder`) replacing `text_encoder/`'s weights; its quantized layers stay packed,
    memory-mapped on the CPU (ignored when `model` is `ModelSources`, which says it). `weights`: component
    ("transformer", "text_encoder", "vae") -> a .safetensors file holding its official weights under another name
    (e.g. ComfyUI's copies), used instead of the checkpoint's (`locate_sources`; ignored with `ModelSources` too;
    refused beside `gguf` / `text_encoder_gguf` for the same component, which would leave the file unread).
    `quantize`: a recipe of the quantizer ("Q8_0", "Q4_K_M", ...) the transformer's safetensors are quantized to as
    they load (quantize/on_load.py: the model a GGUF file of that type would give; every load quantizes again,
    `set_loras` too). `text_encoder_quantize`: a text encoder recipe of the quantizer ("Q8_0", "Q6_K", "Q5_K_M",
    "Q4_K_M") its safetensors are quantized to as they load: the encoder the `text_encoder_gguf` file of that type
    would give (not with `text_encoder_gguf`).
    `parallel`: this process's part of a parallel run (`runtime.parallel`): only its main rank loads the text
    encoder; every rank loads the transformer and the VAE from the (memory-mapped) files itself.
    `prompt_tokenizer`: the checkpoint's tokenizer as the caller loaded it from the same folder already
    (`encoders.text.load_tokenizer`: `motif-lite run` measures its prompts with it first), not loaded again with the
    text encoder (one of another folder is not used). diffusers' `tokenizer=` (a tokenizer of your own) is not taken.

    Speed (docs/usage.md, "Going faster"): `batch_guidance` runs a guided step's two predictions as one batch-2
    forward (None: on CUDA when the memory plan has room; the same numbers either way; never in a parallel
    run). `compile`: torch.compile every block (or a `CompileConfig`). `attention_backend`: "auto" (timed trial on
    the GPU) or a fixed exact kernel (`motif_lite.choices.ATTENTION_BACKENDS`); not used with `attention="int8"`,
    whose fallback is plain SDPA. `step_cache`: a threshold (lossy, opt-in; 0 = exact) or a
    `StepCacheConfig` (not in a parallel run).

    Any other keyword (diffusers' `from_pretrained`'s `torch_dtype`, `variant`, `device_map`, ..., or a misspelled
    one of the above) is a `ConfigError` saying what to give instead (`pipeline.from_diffusers.load_advice`).
    """
    if other_keywords:  # Python's own TypeError would only name the keyword
        raise ConfigError(load_advice(other_keywords, load_pipeline))
    # A path no file can have (a name longer than the file system allows, anywhere among the files): the command
    # line's one-line error.
    with names_too_long_refused():
        # Every check that needs no weights comes first, in this order, so that an error is said before any weights
        # load (and before any download).
        _check_model(model)
        _check_gguf(gguf)
        _check_argument_types(plan, parallel, compile, batch_guidance, weights, quantize, text_encoder_quantize)
        _check_prompt_tokenizer(prompt_tokenizer)
        asked = checked_dtype(dtype) if dtype is not None else None  # a wrong one fails before any download
        given = checked_dtype(text_encoder_dtype, "text_encoder_dtype") if text_encoder_dtype is not None else None
        specs = lora_specs(loras)  # the argument's shape before any check that may download
        # A `LoRAFile` (`read_loras`) too: its reader did not warn (`motif-lite run`, which warned of its --lora
        # files already, shows each warning once).
        warn_of_unusual_strengths(((spec.path, spec.strength) for spec in map(spec_of, specs)), PIPELINE_FOLDER)
        cache_setting = step_cache_setting(step_cache, parallel)  # a threshold that is no number >= 0, say

        def device_checks(target: torch.device) -> None:  # with the device's own check: before any download
            check_speed_on_device(target, attention, kernels, attention_backend, compile, asked)
            _check_plan_matches(plan, target, cache_setting, attention)

        sources, target = preflight(model, gguf, device, kernels, text_encoder_gguf=text_encoder_gguf, weights=weights,
                                    quantize=quantize, text_encoder_quantize=text_encoder_quantize,
                                    device_checks=device_checks, loras=[spec_of(s) for s in specs])  # fmt: skip
        dtype_setting = resolve_dtype(asked, target)
        dtype = dtype_setting.value
        text_dtype = dtypes.text_encoder_dtype(dtype, given, by_default=asked is None)
        _warn_of_device_fit(device, target, dtype, asked)
        # The rest with the target as the current CUDA device: the attention trial and the kernels launch on it.
        with devices.on_device(target):
            backend_name = attention_backend if attention == "exact" else "auto"  # int8 chooses no exact kernel
            cache_config, backend = check_speed(target, kernels, backend_name, cache_setting, parallel, dtype)
            if cache_config is not None:  # else it fails only in generate, once the prompts are encoded
                cache_config.check_blocks(sources.transformer.value)
            lora_files = check_loras(specs, sources)
            if plan is None and parallel is None:  # everything goes on the device: on a small GPU, a sure out-of-memory
                memory = unplanned_memory_warning(sources, dtype, target, kernels, attention, batch_guidance, given)
                if memory:
                    warnings.warn(memory, stacklevel=2)

            # Then the weights: the text encoder, the VAE and the transformer.
            text_encoder = vae = loaded = pipe = None  # what a stop part way lets go of (below)
            try:
                text_encoder = _load_text_encoder(
                    sources, text_dtype, kernels, plan, parallel, target, prompt_tokenizer
                )
                vae_device = target if plan is None else plan.device  # as the plan says
                vae = load_vae(sources.root, dtype=dtype, device=vae_device, config=sources.configs.vae)  # as read
                load_device = "cpu" if plan is not None else target  # the plan moves what fits
                # int8 attention keeps the op `apply_kernels` chose: no exact kernel goes in its place.
                # The recipe and the pipeline keep the sources without the GGUF header, which this load alone uses.
                exact_backend = None if attention == "int8" else backend
                recipe = TransformerRecipe(sources.without_header(), dtype, load_device, kernels, attention, plan,
                                           compile, exact_backend)  # fmt: skip
                loaded = load_transformer_stage(recipe, lora_files, sources.gguf_header)

                pipe = MotifVideoPipeline(loaded, text_encoder, vae, target, dtype, recipe.sources)
                pipe.dtype_setting = dtype_setting
                pipe.text_encoder_dtype = None if text_encoder is None else text_dtype
                pipe._transformer_recipe = recipe
                pipe.parallel = parallel
                pipe.attention_backend = recipe.attention_backend
                if plan is not None:
                    _follow_plan(pipe, plan)
                install_speed(pipe, plan, batch_guidance, cache_config)
            except (KeyboardInterrupt, torch.OutOfMemoryError) as exc:
                # A notebook keeps the traceback of its stop button, and with it every frame's locals: the weights
                # loaded so far stayed in memory beside those of the cell run again.
                traceback.clear_frames(exc.__traceback__)  # the loaders' frames, which have ended
                text_encoder = vae = loaded = pipe = None  # this frame's: it is still running
                raise
        return pipe


def _check_model(model: object) -> None:
    """Raise `ConfigError` for a `model` that names no checkpoint: `load_pipeline(None)` was "no such checkpoint
    directory: None", as if a folder of that name were missing."""
    if isinstance(model, str | os.PathLike | ModelSources):
        return
    raise ConfigError(
        "model (load_pipeline's first argument) must be a local checkpoint folder or a Hub repo id (a str or Path), "
        f"e.g. load_pipeline('{MOTIF_REPO}'), got {type(model).__name__} {model!r}"
    )


def _check_gguf(gguf: object) -> None:
    """Raise `ConfigError` for a `gguf` that names no file: `load_pipeline(model, torch.bfloat16)`, diffusers'
    habit of a dtype second, was "no such GGUF file: torch.bfloat16"."""
    if gguf is None or isinstance(gguf, str | os.PathLike):
        return
    dtype = f"; for the dtype, give dtype={gguf}" if isinstance(gguf, torch.dtype) else ""
    raise ConfigError(
        "gguf (load_pipeline's second argument) must be a .gguf file, a folder holding one or a variant name such as "
        f"'Q4_K_M' (or None), got {type(gguf).__name__} {gguf!r}{dtype}"
    )


def _check_argument_types(
    plan: object,
    parallel: object,
    compile: object,
    batch_guidance: object,
    weights: object,
    quantize: object,
    text_encoder_quantize: object,
) -> None:
    """Raise `ConfigError` for an argument of a type `load_pipeline` cannot use, before any file is read: a str for
    `plan` or `parallel` was an AttributeError after the checks (or after the weights loaded), a str or a dict for
    `compile` compiled with the default settings, a str for `weights` or an int for `quantize` was an
    AttributeError from inside the checks."""
    expected = [
        ("plan", plan, Plan, "a Plan from plan_generation(request, model) (motif_lite.preflight)"),
        ("parallel", parallel, Parallel, "a Parallel of motif_lite.runtime.parallel (docs/parallel.md)"),
        ("compile", compile, bool | CompileConfig, "True, False or a CompileConfig of motif_lite.runtime.compile"),
        ("batch_guidance", batch_guidance, bool, "True or False"),
        ("quantize", quantize, str, "a quantization type such as 'Q4_K_M' or 'Q8_0'"),
        ("text_encoder_quantize", text_encoder_quantize, str, "a quantization type such as 'Q8_0'"),
    ]
    for name, value, kind, wanted in expected:
        if value is not None and not isinstance(value, kind):
            none = "" if name == "compile" else " (or None)"
            raise ConfigError(f"{name} must be {wanted}{none}, got {type(value).__name__} {value!r}")
    refuse_wrong_weights(weights)  # as locate_sources and check_setup refuse it


def _check_prompt_tokenizer(prompt_tokenizer: object) -> None:
    """Raise `ConfigError` for a `prompt_tokenizer` that is no transformers tokenizer: a path (diffusers takes
    folders) was an AttributeError once the checks were done, after the download of a Hub id. One loaded from a
    tokenizer folder with other settings than that folder's (`AutoTokenizer.from_pretrained(folder,
    truncation_side="left")`) is refused too: it was used as given, and tokenized prompts unlike the reference."""
    if prompt_tokenizer is None:
        return
    # Imported only here: transformers takes seconds to import, and a tokenizer given means it was imported already.
    from transformers import PreTrainedTokenizerBase

    from motif_lite.encoders.tokenizer_config import check_tokenizer_settings

    if not isinstance(prompt_tokenizer, PreTrainedTokenizerBase):
        raise ConfigError(
            "prompt_tokenizer must be the checkpoint's tokenizer as motif_lite.encoders.text.load_tokenizer(root) "
            f"returns it (or None, to load it with the text encoder), got {type(prompt_tokenizer).__name__} "
            f"{prompt_tokenizer!r}"
        )
    folder = Path(prompt_tokenizer.name_or_path)
    if (folder / "tokenizer_config.json").is_file():  # else not the checkpoint's: `load_text_encoder` does not use it
        check_tokenizer_settings(prompt_tokenizer, folder, "prompt_tokenizer")


def _check_plan_matches(
    plan: Plan | None, target: torch.device, cache_config: StepCacheConfig | None, attention: str
) -> None:
    """Raise `ConfigError` for a memory plan made for another device than the one loaded on (it places the VAE and
    the streamed blocks on its own device, which failed once the text encoder had loaded, or ran on another GPU),
    or whose estimates count another step cache or attention than the pipeline loads with: a plan made without a
    step cache's or 8-bit attention's tensors can run out of memory with them, one made with them streams more
    than it needs to."""
    if plan is None:
        return
    planned = torch.device(plan.device)
    if not is_same_device(planned, target):
        raise ConfigError(
            f"the plan is for {planned} and load_pipeline loads on {target}: make the plan for that device "
            f'(plan_generation(..., device="{target}")) or load on the plan\'s (device="{planned}")'
        )
    caches = cache_config is not None and cache_config.threshold > 0  # a threshold of 0 stores nothing
    if plan.step_cache != caches:
        made = "with a step cache's tensors" if plan.step_cache else "without a step cache's tensors"
        loads = "a step cache" if caches else "no step cache (or a threshold of 0, which stores nothing)"
        raise ConfigError(
            f"the memory plan was made {made} and load_pipeline loads with {loads}: make the plan with "
            f"plan_generation(..., step_cache={caches}), or load with the step cache the plan was made for"
        )
    if plan.attention != attention:
        raise ConfigError(
            f'the memory plan was made for attention="{plan.attention}" and load_pipeline loads with '
            f'attention="{attention}": make the plan with plan_generation(..., attention="{attention}"), or load '
            f'with attention="{plan.attention}"'
        )


def _warn_of_device_fit(
    device: str | torch.device, target: torch.device, dtype: torch.dtype, asked: torch.dtype | None
) -> None:
    """Warn, before minutes of loading rather than after, of a dtype asked for that fits the device poorly and of
    a device "auto" that leaves an accelerator unused. `stacklevel` 3: the warning names the caller of
    `load_pipeline`."""
    advice = dtypes.dtype_note(target, dtype) if asked is not None else None  # a default is never a poor fit
    if advice:  # bf16 asked for on a GPU before Ampere (a notebook's T4)
        warnings.warn(advice, stacklevel=3)
    if isinstance(device, str) and (unused := devices.auto_cpu_note(device, target)):
        warnings.warn(unused, stacklevel=3)  # a Mac's GPU: the user should know why the run is slow
    if isinstance(device, str) and (no_gpu := devices.no_gpu_note(device, target)):
        warnings.warn(no_gpu, stacklevel=3)  # a notebook on a CPU runtime


def _load_text_encoder(
    sources: ModelSources,
    dtype: torch.dtype,
    kernels: str,
    plan: Plan | None,
    parallel: Parallel | None,
    target: torch.device,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> TextEncoder | None:
    """The text encoder, on the CPU (it visits the device only while prompts are encoded); None on a parallel run's
    other ranks, which never encode. Quantized as it loads with `sources.text_encoder_quantize` (the K-quants'
    search on `target` when it is a GPU)."""
    from motif_lite.encoders.text import load_text_encoder
    from motif_lite.encoders.text_gguf import packed_text_encoder
    from motif_lite.quantize.on_load import quantize_text_encoder_tensors

    if parallel is not None and not parallel.is_main:
        return None
    gguf = sources.text_encoder_gguf
    config = sources.configs.text_encoder_config  # as the configs read it: not read again, so all three agree
    if sources.text_encoder_quantize is not None:
        search = quantize_search_device(target)
        recipe = sources.text_encoder_quantize
        packed = quantize_text_encoder_tensors(sources.root, recipe, device=search, config_values=config)
        folder = sources.root / "text_encoder"
        gguf = packed_text_encoder(packed, folder / "config.json", recipe, folder, config_values=config)
    # `tokenizer` is load_pipeline's prompt_tokenizer, whose settings `_check_prompt_tokenizer` checked already.
    text_encoder = load_text_encoder(
        sources.root,
        dtype=dtype,
        device="cpu",
        gguf=gguf,
        config_values=config,
        tokenizer=tokenizer,
        tokenizer_checked=True,
    )
    if plan is None or plan.text_placement is not TextEncoderPlacement.CPU:  # packed layers run where it visits
        apply_dequant_kernels(text_encoder.model, kernels, target)
    return text_encoder


def _follow_plan(pipe: MotifVideoPipeline, plan: Plan) -> None:
    """Where the memory plan keeps the text encoder, and how the VAE decodes within it."""
    pipe.text_placement = plan.text_placement
    pipe.vae_mode = pipe.plan_handle.vae


def install_speed(
    pipe: MotifVideoPipeline,
    plan: Plan | None,
    batch_guidance: bool | None,
    cache_config: StepCacheConfig | None,
) -> None:
    """Install the speed settings that are the pipeline's, not the transformer's (`load_transformer_stage`)."""
    batch_guidance, refused = batched_guidance(batch_guidance, pipe.device, plan)
    if refused:  # a batch 2 would need twice the activations the plan counted
        warnings.warn(
            "batch_guidance=True does not fit the memory plan (room for one prediction per transformer forward): "
            "the two guidance predictions run one after the other",
            stacklevel=3,
        )
    # A parallel run splits the two guidance predictions over rank groups (runtime/parallel.py): one call each.
    pipe.batch_guidance = batch_guidance and pipe.parallel is None
    pipe.step_cache = cache_config
