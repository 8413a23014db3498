"""What a run checks and plans before any weights load: the device, the kernel backend and the checkpoint's files
(`preflight`), the speed settings, the LoRA files' headers, and the memory plan (`plan_generation`). Each raises a
`MotifLiteError` that says what to change, so a mistake ends a run in seconds, not after loading.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import torch

from motif_lite.checkpoint import GGUFFilesRead, ModelSources, check_gguf_files, locate_sources
from motif_lite.choices import ATTENTION_BACKENDS, ATTENTION_MODES, MOTIF_REPO, quantized_twice
from motif_lite.config import TransformerConfig
from motif_lite.devices import (
    AMD,
    NVIDIA,
    GpuFacts,
    GpuReading,
    checked_dtype,
    default_dtype_of,
    gpu_facts,
    gpu_memory,
    gpu_use,
    int8_attention_blocker,
    is_here,
    parse_device,
    plan_over_room_note,
    resolve_device,
    rocm_build,
    vram_over_free_note,
)
from motif_lite.devices import text_encoder_dtype as text_encoder_dtype_of
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError, both_spellings
from motif_lite.io.hub import DownloadHeld, DownloadPlan, held_while
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.io.wsl import windows_gpu_driver
from motif_lite.log_filters import quiet_warnings
from motif_lite.paths import user_path
from motif_lite.request import GenerationRequest
from motif_lite.runtime.activation_memory import ImageTowerShape
from motif_lite.runtime.attention import AttentionBackend, check_backend_runs
from motif_lite.runtime.attention import attention_backend as attention_backend_for
from motif_lite.runtime.compile import CompileConfig, check_compile_possible
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.runtime.kernels import (
    KernelBackendError,
    attention_workspace_bytes,
    autotune_buffer_bytes,
    triton_problem_of,
    use_triton,
)
from motif_lite.runtime.parallel import Parallel
from motif_lite.runtime.planner import (
    RESERVED_RATIO,
    Plan,
    PlannerInputs,
    default_budget,
    plan_memory,
    positive_budget,
    unplanned_peak_bytes,
)
from motif_lite.runtime.step_cache import StepCacheConfig
from motif_lite.settings import CHECKPOINT, CheckpointConfigs, resolve_dtype, resolve_settings
from motif_lite.shell_syntax import quoted
from motif_lite.sizes import (
    FLOAT8_PACKING,
    ModelSizes,
    float8_linear_weights,
    model_sizes,
    packed_by,
    packed_weight_names,
)
from motif_lite.units import MiB, memory_size
from motif_lite.weight_checks import check_your_shapes, float8_notes
from motif_lite.weights.gguf_loader import meta_gguf_transformer
from motif_lite.weights.loader import meta_transformer
from motif_lite.weights.lora import check_lora_file, check_read_loras, diff_targets, lora_targets, read_loras
from motif_lite.weights.lora_apply import side_adapter_bytes, side_adapter_macs, side_adapter_temporary_bytes
from motif_lite.weights.lora_errors import PackedDiffError
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.lora_updates import LoRAFile
from motif_lite.weights.shapes import build_model

# `locate_sources` for plans: what is on disk or in the cache, never a download, never an error for absent weights.
AT_HAND = {"download": False, "require_weights": False}


def preflight(
    model: str | Path | ModelSources = MOTIF_REPO,
    gguf: str | Path | None = None,
    device: str | torch.device = "auto",
    kernels: str = "auto",
    *,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    quantize: str | None = None,
    text_encoder_quantize: str | None = None,
    before_download: Callable[[DownloadPlan], None] | None = None,
    device_checks: Callable[[torch.device], None] | None = None,
    loras: Sequence[LoRASpec] = (),
    header_read: GGUFFilesRead | None = None,
) -> tuple[ModelSources, torch.device]:
    """Every check a run can make before reading weights: the device, the kernel backend, the checkpoint and GGUF
    files (found, fetched if missing, headers and architecture read, every transformer tensor against the config,
    a text encoder GGUF's config and tensors against the checkpoint's text encoder config). `weights`: weight files
    of the user's that replace the checkpoint's for some components (`locate_sources`); `quantize` /
    `text_encoder_quantize`: the recipe the transformer / the text encoder is quantized to as it loads
    (`with_quantize`; both checked before any download); `before_download`: called just before a download starts
    (`locate_sources`); `device_checks`: the caller's checks of the device it resolved (the speed settings:
    `check_speed_on_device`), whose problem is collected with the device's; `loras`: the LoRA files, read before a
    download starts, as the user's VAE and transformer files' shapes are (`local_file_problems`; the caller
    checks the LoRAs against the checkpoint's own transformer once it is there, `check_loras`); `header_read`: the
    GGUF files read already (`locate_sources`).

    Raises one `MotifLiteError` listing every problem (a `MissingFilesError`, with the download commands, when files
    are missing; the problem's own error, e.g. a `DeviceError`, when there is one; else a `CheckpointError`); returns
    what was found and the device. A problem found on this machine (the device, a flag, a file the user gave) holds
    any download: it is raised before one starts (`io.hub.held_while`).
    """
    # A wrong type, or a GGUF besides, said before any download.
    if quantize is not None:
        _transformer_recipe(quantize, None if gguf is None else str(gguf))
    if text_encoder_quantize is not None:
        _text_encoder_recipe(text_encoder_quantize, None if text_encoder_gguf is None else str(text_encoder_gguf))
    problems: list[MotifLiteError] = []
    target = None
    try:
        target = resolve_device(device)
        check_kernels(kernels, target)
        if device_checks is not None:
            device_checks(target)
    except MotifLiteError as exc:
        problems.append(exc)
    try:
        if isinstance(model, ModelSources):
            sources = model
        else:  # the device's problem holds any download: said now, not after the gigabytes
            held = held_while(problems, before_download)
            if loras or weights:  # checked against the configs at hand: a wrong one holds the download
                # The --gguf file's header read once for both: the checks at hand and the ones that follow.
                header_read = header_read or gguf_header_read_first(model, gguf)
                held = _local_files_read_first(
                    model, gguf, text_encoder_gguf=text_encoder_gguf, weights=weights, loras=loras, problems=problems,
                    then=held, header_read=header_read, quantize=quantize,
                )  # fmt: skip
            sources = locate_sources(
                model, gguf, text_encoder_gguf=text_encoder_gguf, weights=weights, before_download=held,
                header_read=header_read,
            )  # fmt: skip
    except DownloadHeld as exc:  # the device's problem and the files' found so far (the device's, said once)
        said = {str(problem) for problem in problems}
        problems.extend(CheckpointError(problem) for problem in exc.problems if problem not in said)
    except MissingFilesError as exc:
        exc.problems[:0] = [str(problem) for problem in problems]
        raise
    except MotifLiteError as exc:
        problems.append(exc)
    if len(problems) == 1:  # its own type, so that `except DeviceError` catches a device problem
        raise problems[0]
    if problems:
        raise CheckpointError("\n".join(str(problem) for problem in problems))
    return with_quantize(sources, quantize, text_encoder_quantize), target


def _local_files_read_first(
    model: str | Path,
    gguf: str | Path | None,
    *,
    text_encoder_gguf: str | Path | None,
    weights: Mapping[str, str | Path] | None,
    loras: Sequence[LoRASpec],
    problems: list[MotifLiteError],
    then: Callable[[DownloadPlan], None],
    header_read: GGUFFilesRead | None = None,
    quantize: str | None = None,
) -> Callable[[DownloadPlan], None]:
    """A `before_download` that checks the user's files against the configs at hand
    (`local_file_problems`) before the first download, their problems joining `problems`, then calls `then`
    (`held_while`'s, which those problems hold). Only where a download comes: without one, the checks after it
    read the files once, against the configs found. `header_read`: the GGUF files read already, not read again.
    `quantize`: the --quantize recipe, whose packed weights a LoRA's full difference cannot change."""
    read = False

    def before_download(plan: DownloadPlan) -> None:
        nonlocal read
        if not read:
            read = True
            problems.extend(local_file_problems(
                model, gguf, text_encoder_gguf=text_encoder_gguf, weights=weights, loras=loras, header_read=header_read,
                quantize=quantize,
            ))  # fmt: skip
        then(plan)

    return before_download


def gguf_header_read_first(model: str | Path, gguf: str | Path | None) -> GGUFFilesRead | None:
    """The --gguf file's header (`check_gguf_files`), for the checks before a download and after it to share; None
    where it has a problem, which those checks name as they read it."""
    try:
        return check_gguf_files(model, gguf)
    except MotifLiteError:
        return None


def local_file_problems(
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    *,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    loras: Sequence[LoRASpec] = (),
    header_read: GGUFFilesRead | None = None,
    quantize: str | None = None,
) -> list[MotifLiteError]:
    """What is wrong with the user's files against the configs at hand, before the checkpoint downloads: the LoRA
    files (`check_loras_at_hand`) and the VAE, transformer and text encoder weight files
    (`weight_checks.check_your_shapes`; the text encoder's not beside a `text_encoder_gguf`, which replaces it), each
    against the checkpoint's config where the cache or a folder holds it, else, for the official model, the official
    architecture bundled with motif-lite. The full checks, against the checkpoint's own configs, come after.
    `header_read`: the GGUF files read already (`locate_sources`). `quantize`: the --quantize recipe (checked
    already), whose packed weights a LoRA's full difference is refused on, as a GGUF variant's are."""
    try:  # the user's weight files change no config: the checkpoint's and the GGUF's
        at_hand = locate_sources(model, gguf, **AT_HAND, header_read=header_read)
    except MotifLiteError:  # a problem of the files at hand (a broken config, say): the checks name or fetch it
        at_hand = None
    # The weights --quantize packs as they load: a LoRA's full difference of one is refused now, as a GGUF's is.
    quantized = None if at_hand is None else with_quantize(at_hand, quantize)
    official = str(model) == MOTIF_REPO
    configs = at_hand.configs if at_hand is not None else CheckpointConfigs()
    root = at_hand.root if at_hand is not None else None
    problems: list[MotifLiteError] = []
    packed, packed_words = _packed_at_hand(quantized, loras), None if quantized is None else packed_by(quantized)
    float8, float8_words = _float8_weights_given(weights, loras)  # the user's own file: linked in after a download
    if float8:
        packed, packed_words = packed | float8, packed_words if packed else float8_words
    checks = [
        lambda: check_loras_at_hand(loras, _known_transformer_config(at_hand, official), packed, packed_words),
        lambda: check_your_shapes(
            weights or {}, configs, official, gguf is not None, root, text_encoder_gguf is not None
        ),
    ]
    for check in checks:
        try:
            check()
        except MotifLiteError as exc:
            problems.append(exc)
    return problems


def _packed_at_hand(at_hand: ModelSources | None, loras: Sequence[LoRASpec]) -> frozenset[str]:
    """The transformer weights known before a download to load packed (`sizes.packed_weight_names`): a GGUF file's
    quantized tensors from its header, an official variant's or --quantize's from the recipe; none where nothing is
    at hand (or no LoRA asks: a variant's are counted on a model built for it)."""
    return frozenset() if at_hand is None or not loras else packed_weight_names(at_hand)


def _float8_weights_given(
    weights: Mapping[str, str | Path] | None, loras: Sequence[LoRASpec]
) -> tuple[frozenset[str], tuple[str, str]]:
    """The linear weights the user's own transformer file (--diffusion-model) keeps in 8 bits, read from its header
    alone (`sizes.float8_linear_weights`), so that a LoRA's full difference of one is refused before the download
    as well as after it, and what a refusal says packs them (`sizes.FLOAT8_PACKING`); no weights for a float file,
    a file not there (its own check names it), or no LoRA to check."""
    given = (weights or {}).get("transformer")
    if given is None or not loras or not (path := user_path(given)).is_file():
        return frozenset(), FLOAT8_PACKING
    return frozenset(float8_linear_weights([path])), FLOAT8_PACKING


def _known_transformer_config(at_hand: ModelSources | None, official: bool) -> TransformerConfig | None:
    """The transformer config to check files against before a download: the checkpoint's or the GGUF's at hand,
    else the built-in one for the official model (whose GGUF files have it too); None for another model whose config
    is not here, which may differ from the official one."""
    if at_hand is not None and at_hand.transformer.source == CHECKPOINT:
        return at_hand.transformer.value
    return TransformerConfig() if official else None


def loras_for_config(
    specs: Sequence[LoRASpec],
    config: TransformerConfig,
    packed_weights: Collection[str] = (),
    packed_words: tuple[str, str] | None = None,
) -> list[LoRAFile]:
    """The LoRA files read and checked against the layers of a transformer of `config` (built on the meta device:
    file headers, the LoRAs' small tensors and the config, no model weights), each marked with `config` so that
    `check_loras` takes it as it is for a transformer of that config. `packed_weights`: the weights
    that will load packed (`sizes.packed_weight_names`), so a full difference of one is refused now, in
    `packed_words` (`sizes.packed_by`: what packs them and what to do) where given. Raises `LoRAError`."""
    model = build_model(config)
    try:
        read = read_loras(specs, lora_targets(model), diff_targets(model, packed_weights))
    except PackedDiffError as exc:
        if packed_words is None:
            raise
        raise exc.packed_by(*packed_words) from None
    return [dataclasses.replace(lora, checked_for=config) for lora in read]


def check_loras_at_hand(
    specs: Sequence[LoRASpec],
    config: TransformerConfig | None,
    packed_weights: Collection[str] = (),
    packed_words: tuple[str, str] | None = None,
) -> None:
    """The LoRA files read before the checkpoint is there (file headers and the LoRAs' small tensors): against the
    transformer `config` at hand (`local_file_problems`), or, where there is none (another model's config, not
    downloaded yet), the files alone (a readable safetensors LoRA, not another kind of adapter): their layers once
    that config is there (`check_loras`). `packed_weights`: the weights known to load packed (`_packed_at_hand`),
    whose full difference is refused now, in `packed_words` where given (`loras_for_config`). Raises `LoRAError`."""
    if config is not None:
        loras_for_config(specs, config, packed_weights, packed_words)
        return
    for spec in specs:
        check_lora_file(spec)


def with_quantize(
    sources: ModelSources, quantize: str | None, text_encoder_quantize: str | None = None
) -> ModelSources:
    """`sources` with the transformer quantized to the recipe `quantize` (--quantize; any letter case, the
    quantizer's aliases) as it loads, and the text encoder to its recipe `text_encoder_quantize`
    (--text-encoder-quantize), checked before any weights load: a recipe the quantizer has for that component, and
    safetensors to quantize (a GGUF's weights are quantized already). Each one's note says that every run does it
    again, and how long it takes. None: that component as it is."""
    sources = _with_text_encoder_quantize(sources, text_encoder_quantize)
    if quantize is None:
        return sources
    from motif_lite.quantize.on_load import is_slow_on_cpu

    recipe = _transformer_recipe(quantize, sources.gguf_request)
    mine = sources.weight_files.get("transformer")
    made_from = mine or sources.model
    out = f"transformer-{recipe.name}.gguf"
    cost = (
        "its K-quants' search: minutes on a CPU; a GPU run searches on the GPU"
        if is_slow_on_cpu(recipe)
        else "about a minute on a CPU"
    )
    note = (
        f"the transformer is quantized to {recipe.name} as it loads, in every run ({cost}); to do it once: "
        f"python -m motif_lite.quantize {quoted(made_from)} --type {recipe.name} -o {out}, then --gguf {out}"
    )
    # An fp8 copy's weights do not stay in 8 bits, as its note says: they are quantized from their fp8 values.
    kept = float8_notes("transformer", mine) if mine is not None else []
    notes = tuple(said for said in sources.notes if said not in kept)
    return dataclasses.replace(sources, quantize=recipe.name, notes=(*notes, note))


def _with_text_encoder_quantize(sources: ModelSources, quantize: str | None) -> ModelSources:
    """`with_quantize` for the text encoder: the recipe checked, its note (with the quantizer's command that makes
    the file once) added."""
    if quantize is None:
        return sources
    from motif_lite.quantize.components import TEXT_ENCODER
    from motif_lite.quantize.on_load import is_slow_on_cpu

    given = sources.text_encoder_gguf
    recipe = _text_encoder_recipe(quantize, None if given is None else str(given.path))
    # A file of the user's is quantized from the folder that links it beside -m's text_encoder/config.json (the
    # quantizer needs that config), as the run does.
    made_from = sources.root if "text_encoder" in sources.weight_files and sources.root else sources.model
    out = f"te-{recipe.name}.gguf"
    cost = (
        "its K-quants' search: minutes on a CPU; a GPU run searches on the GPU"
        if is_slow_on_cpu(recipe, TEXT_ENCODER)
        else "about a minute on a CPU"
    )
    note = (
        f"the text encoder is quantized to {recipe.name} as it loads, in every run ({cost}); to do it once: python -m "
        f"motif_lite.quantize {quoted(made_from)} --component text_encoder --type {recipe.name} -o {out}, then "
        f"--text-encoder-gguf {out}"
    )
    return dataclasses.replace(sources, text_encoder_quantize=recipe.name, notes=(*sources.notes, note))


def _transformer_recipe(quantize: str, gguf: str | None):
    """The quantizer's recipe called `quantize`; a `ConfigError` listing them for another name, or when a GGUF
    (`gguf`, --gguf as given) is given too."""
    from motif_lite.quantize.recipes import get_recipe

    try:
        recipe = get_recipe(quantize)
    except ConfigError as exc:  # it lists the recipes
        raise ConfigError(f"--quantize: {exc}") from None
    if gguf is not None:
        raise ConfigError(quantized_twice("", quantize, gguf))
    return recipe


def _text_encoder_recipe(quantize: str, text_encoder_gguf: str | None):
    """The quantizer's text encoder recipe called `quantize`; a `ConfigError` listing them for another name (a
    transformer-only type such as Q4_0 included), or when a text encoder GGUF is given too."""
    from motif_lite.quantize.text_recipes import get_text_recipe

    try:
        recipe = get_text_recipe(quantize)
    except ConfigError as exc:  # it lists the text encoder's recipes
        raise ConfigError(f"--text-encoder-quantize: {exc}") from None
    if text_encoder_gguf is not None:
        raise ConfigError(quantized_twice("text-encoder-", quantize, text_encoder_gguf))
    return recipe


AUTO_KERNELS = both_spellings("--kernels auto", 'kernels="auto"')
EXACT_ATTENTION = both_spellings("--attention exact", 'attention="exact"')


def check_kernels(kernels: str, device: torch.device) -> None:
    """Raise `KernelBackendError` when the backend cannot run on `device` (e.g. triton without CUDA)."""
    if kernels == "triton" and device.type != "cuda":
        raise KernelBackendError(
            f"--kernels triton needs a CUDA device, but the device is {device}; use auto or torch: {AUTO_KERNELS}"
        )
    if kernels != "auto":
        use_triton(kernels, device)  # an unknown backend, or triton that cannot be imported or build for the GPU


def check_strict_int8(attention: str, kernels: str, device: torch.device) -> None:
    """Raise `KernelBackendError` before loading when `--attention int8` with `--kernels triton` (no fallback) meets
    a GPU the 8-bit kernel does not run on (no INT8 tensor cores, or an AMD GPU): it would fail at the first step.
    (`auto` falls back to exact attention with a warning instead.)"""
    if attention != "int8" or kernels != "triton" or device.type != "cuda":
        return
    blocker = int8_attention_blocker(gpu_facts(device))
    if blocker is not None:
        raise KernelBackendError(
            f"--attention int8 {blocker}, and --kernels triton never falls back: use {EXACT_ATTENTION}, or "
            f"{AUTO_KERNELS}, which runs exact attention there with a warning"
        )


def check_speed_on_device(
    device: torch.device,
    attention: str = "exact",
    kernels: str = "auto",
    attention_backend: str = "auto",
    compile: bool | CompileConfig = False,
    dtype: torch.dtype | str | None = None,
) -> None:
    """The speed settings' checks that need only the device (and the dtype it gives: `dtype`, else the device's
    default), made with the device's own check (`preflight`'s `device_checks`) so that a setting this machine
    cannot run is said before any download: `run`'s flags and `load_pipeline`'s keywords alike. An unknown
    attention or attention backend, 8-bit attention with triton kernels on a GPU without its kernel, a fixed
    attention backend the device lacks in that dtype, compiling without a compiler."""
    if attention not in ATTENTION_MODES:
        raise ConfigError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTION_MODES)}")
    if attention_backend not in ATTENTION_BACKENDS:
        raise ConfigError(
            f"unknown attention backend {attention_backend!r}; choose one of {', '.join(ATTENTION_BACKENDS)}"
        )
    check_strict_int8(attention, kernels, device)
    if attention == "exact" and attention_backend != "auto":  # auto drops what does not run; int8 uses none
        check_backend_runs(attention_backend, device, resolve_dtype(dtype, device).value)
    if compile:
        check_compile_possible(device)


def step_cache_setting(
    step_cache: float | StepCacheConfig | None, parallel: Parallel | None = None
) -> StepCacheConfig | None:
    """`load_pipeline`'s `step_cache` as a `StepCacheConfig` (None: none), checked before any download: a threshold
    that is a number >= 0, and no parallel run."""
    # A threshold of any other type goes to StepCacheConfig too, whose check names it (a str would fail mid-run).
    cache_config = (
        step_cache if step_cache is None or isinstance(step_cache, StepCacheConfig) else StepCacheConfig(step_cache)
    )
    if cache_config is not None and parallel is not None:
        raise ConfigError("a step cache is not supported in a parallel run (--gpus / torchrun) yet")
    return cache_config


def check_speed(
    target: torch.device,
    kernels: str,
    attention_backend: str,
    step_cache: float | StepCacheConfig | None,
    parallel: Parallel | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[StepCacheConfig | None, AttentionBackend]:
    """`load_pipeline`'s speed settings, checked before any weights load: the step cache, the attention backend (a
    fixed kernel in the run's `dtype`: FlashAttention has none for float32). Compiling was checked with the device,
    before any download (`check_speed_on_device`)."""
    cache_config = step_cache_setting(step_cache, parallel)
    attention = attention_backend_for(
        attention_backend, target, use_triton(kernels, target), dtype, strict=kernels == "triton"
    )
    return cache_config, attention


def check_loras(loras: Sequence[LoRASpec | LoRAFile], sources: ModelSources) -> list[LoRAFile]:
    """Read the LoRA files and check them against the transformer's layers, from file headers only. A `LoRAFile`
    (read already: run's, or a Python caller's) has its layers' names and shapes checked against them too, before
    anything is let go: one read for another model is a `LoRAError`, not a failure mid-load. Files all checked
    against this transformer's config already (`loras_for_config`: run's) are taken as they are: the model is not
    built again."""
    if all(isinstance(lora, LoRAFile) and lora.checked_for == sources.transformer.value for lora in loras):
        return list(loras)  # none at all too
    if sources.gguf is not None:
        model = meta_gguf_transformer(sources.gguf, sources.transformer.value, sources.gguf_header)
    else:
        model = meta_transformer(sources.root)
    targets = lora_targets(model)
    # The tensors that will load packed (`quantize=` packs a float checkpoint's): a full difference of one is refused
    # here, before the old transformer is let go.
    tensors = diff_targets(model, packed_weight_names(sources, model))
    specs = [lora for lora in loras if isinstance(lora, LoRASpec)]
    try:
        check_read_loras([lora for lora in loras if isinstance(lora, LoRAFile)], targets, tensors)
        read = iter(read_loras(specs, targets, tensors))
    except PackedDiffError as exc:
        raise exc.packed_by(*packed_by(sources)) from None
    return [next(read) if isinstance(lora, LoRASpec) else lora for lora in loras]


def batched_guidance(wanted: bool | None, device: torch.device, plan: Plan | None = None) -> tuple[bool, bool]:
    """(whether a guided step's two predictions run as one batch-2 forward, whether an explicit request for that
    was refused): `wanted` (`--batch-guidance`; None: on a GPU, as batch 2 measured 3-11 % slower on the CPU,
    docs/benchmarks.md) where the memory plan has room for two rows per forward (`plan.cfg_batch`; None: no plan)."""
    no_room = plan is not None and plan.cfg_batch < 2
    if wanted is None:
        return device.type == "cuda" and not no_room, False
    return wanted and not no_room, wanted and no_room


def device_budget(target: torch.device, vram_gib: float | None) -> int | None:
    """The device memory budget of a plan for `target` (a run's, a decode's): on a GPU at hand `vram_gib` as
    `_gpu_budget` takes it, else its free memory; for another device `vram_gib` in bytes (None: no limit). A plan
    for a GPU this machine lacks (a dry run's) takes `vram_gib` as given: there is no memory to check it against."""
    if target.type == "cuda" and is_here(target):
        return _gpu_budget(target, vram_gib)
    return None if vram_gib is None else int(vram_gib * 2**30)


def _gpu_budget(gpu: torch.device, vram_gib: float | None) -> int:
    """The budget of a plan for a GPU at hand: `vram_gib`, else its free memory. A budget above the GPU's whole
    memory is a slip (megabytes for GiB?) that would plan a run the GPU cannot hold: its free memory instead, with a
    warning. One whose allocator reserve (RESERVED_RATIO x the budget) would not fit the GPU's memory is lowered to
    the most that does, with a warning naming that --vram. One above its free memory is kept, with a warning where
    Windows' driver would spill what does not fit into system memory (`devices.vram_over_free_note`)."""
    if vram_gib is None:
        return default_budget(gpu)
    total = gpu_memory(gpu)[1]
    budget = int(vram_gib * 2**30)
    if budget > total:
        return _free_budget_for_a_slip(default_budget(gpu), vram_gib, budget, total)
    if budget > (most := int(total / RESERVED_RATIO)):  # the allocated peak would fit, what is reserved would not
        warnings.warn(_reserve_over_total_note(vram_gib, budget, total, most), stacklevel=4)
        budget = most
    # The user's, even above what is free now; Windows' driver then spills: said before the run.
    if (spills := vram_over_free_note(budget, default_budget(gpu), windows_gpu_driver())) is not None:
        warnings.warn(spills, stacklevel=4)
    return budget


def _read_gpu_budget(gpu: GpuReading, vram_gib: float | None) -> int:
    """`_gpu_budget` of a GPU another process read (`GpuReading`), from its figures: nothing asks CUDA here."""
    if vram_gib is None:
        return gpu.free_budget_bytes
    total, budget = gpu.use.total_bytes, int(vram_gib * 2**30)
    if budget > total:
        return _free_budget_for_a_slip(gpu.free_budget_bytes, vram_gib, budget, total)
    if budget > (most := int(total / RESERVED_RATIO)):
        warnings.warn(_reserve_over_total_note(vram_gib, budget, total, most), stacklevel=4)
        budget = most
    if (spills := vram_over_free_note(budget, gpu.free_budget_bytes, windows_gpu_driver())) is not None:
        warnings.warn(spills, stacklevel=4)
    return budget


def smallest_budget_gpu(readings: Sequence[GpuReading], vram_gib: float | None) -> GpuReading:
    """The GPU of `readings` whose rank plans for the smallest budget: the least free memory without --vram; with
    it, --vram or, on a card smaller than --vram, its free memory (`_read_gpu_budget`), so not always the busiest
    card. Its warnings are not said here: the plan made on the GPU chosen says its own."""
    with quiet_warnings():
        return min(readings, key=lambda gpu: _read_gpu_budget(gpu, vram_gib))


def _free_budget_for_a_slip(free_budget: int, vram_gib: float, budget: int, total: int) -> int:
    """The free memory's budget for a `--vram` above the GPU's whole memory, with the warning that says so."""
    # In MiB, as nvidia-smi shows it: an "8 GB" card has 8188 MiB, which memory_size would round to "8.00 GiB",
    # the very figure it is more than.
    warnings.warn(
        f"--vram {vram_gib:g} GiB ({budget // MiB} MiB) is more than this GPU's whole memory, {total // MiB} MiB "
        "(--vram is in GiB; 8000MB is also understood): planned for its free memory instead, a budget of "
        f"{memory_size(free_budget)}; leave --vram out to get that",
        stacklevel=5,
    )
    return free_budget


def _reserve_over_total_note(vram_gib: float, budget: int, total: int, most: int) -> str:
    """Why a `--vram` within the GPU's memory is planned for less: a plan may allocate up to its budget, and the
    allocator reserves about RESERVED_RATIO times that, which past the GPU's memory runs out at the peak."""
    fits = math.floor(most / 2**30 * 100) / 100  # rounded down: --vram with this figure plans within `most`
    return (
        f"--vram {vram_gib:g} lets a plan allocate up to {memory_size(budget)}, and PyTorch's allocator reserves "
        f"about {RESERVED_RATIO:g}x what is allocated, up to {memory_size(int(budget * RESERVED_RATIO))}: more than "
        f"this GPU's {total // MiB} MiB, so such a plan would run out of memory at its peak. Planned for a budget of "
        f"{memory_size(most)} instead, the most whose reserve fits; give --vram {fits:.2f} or less to plan that way"
    )


def plan_generation(
    request: GenerationRequest,
    model: str | Path | ModelSources = MOTIF_REPO,
    gguf: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "auto",
    vram_gib: float | None = None,
    kernels: str = "auto",
    attention: str = "exact",
    *,
    sequence_parallel: int = 1,
    batch_guidance: bool | None = None,
    step_cache: bool = False,
    ram_gib: float | None = None,
    text_encoder_dtype: torch.dtype | str | None = None,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    text_encoder: bool = True,
    quantize: str | None = None,
    text_encoder_quantize: str | None = None,
    first_step: int = 0,
    sizes: ModelSizes | None = None,
    attention_backend: str = "auto",
    loras: Sequence[LoRAFile] = (),
    adapter_temporaries: bool = True,
    gpu: GpuReading | None = None,
    configs_read: CheckpointConfigs | None = None,
) -> Plan:
    """The memory plan for a (resolved) request, from configs and file headers only: no weights, no network.

    `model` / `gguf` are looked up on disk and in the Hugging Face cache only (or given as `ModelSources`); what is
    not at hand is planned from the official architecture (`model_sizes` says where each size came from). The
    device need not exist here: `device="cuda"` plans for a CUDA GPU with the CUDA kernels on any machine. The
    budget is `vram_gib`, else the device's free memory (no limit on the CPU, or for a GPU this machine lacks). Raises a
    `MotifLiteError` naming the smallest possible peak when nothing fits. `sequence_parallel`: plan for one of that many
    ranks sharing the video tokens (runtime/parallel.py). With guidance, each memory plan is tried with both guidance
    predictions in one batch-2 forward first (on CUDA, or with `batch_guidance=True`); `step_cache`: reserve the step
    cache's tensors; `text_encoder_gguf`: a quantized text encoder file (the host and device estimates count it as it
    loads: packed blocks as stored, float tensors in the text encoder's dtype). The host budget is `ram_gib` (None: no
    limit; page-locked block homes are then used only if they fit the memory available now); `text_encoder_dtype`: the
    dtype the text encoder is loaded in (default: `devices.text_encoder_dtype`); `weights`: the user's own weight files
    (`locate_sources`); `text_encoder=False`: a process that never loads the text encoder (the ranks of a parallel run
    other than the main one), planned without it; `quantize` / `text_encoder_quantize`: the recipe the transformer / the
    text encoder is quantized to as it loads (its size is then our quantizer's for it). `dtype` None: what
    `load_pipeline` picks on that device (`settings.resolve_dtype`: fp16 (or fp32) before compute capability 8.0, else
    bfloat16). `first_step`: a resumed run's first step; one resumed past the guidance window plans one row per forward,
    as it runs (`Settings.guided`). `sizes`: `model_sizes` of these sources, dtype and text encoder dtype counted
    already (`PlannedRun.sizes`), not counted again. `attention_backend`: `--attention-backend` (with `auto` and
    `triton` the denoise stage counts Triton's tuning buffer for our attention kernel). `loras`: the checked LoRA
    files the run applies (`check_loras`): on a packed transformer their adapters count with their blocks.
    `adapter_temporaries=False`: those adapters' weights are counted, not the temporaries their updates keep as a
    layer runs (a server's refusal asks which of the two a loaded plan has no room for). `gpu`: the CUDA GPU as
    another process read it (`devices.GpuReading`; `motif-lite run --gpus N` reads its GPUs in a child process):
    planned from its figures, without starting CUDA in this process. `configs_read`: the checkpoint's configs as a
    caller read them already (`motif-lite check`, `CheckpointConfigs.read`), not read again where their folder is the
    one found.
    """
    for name, gib in (("vram", vram_gib), ("ram", ram_gib)):
        if gib is not None and not positive_budget(gib):
            budget = both_spellings(f"--{name}", f"{name}_gib")  # plan_generation is called from Python too
            raise ConfigError(f"{budget} must be a positive number of GiB, got {gib!r}")
    given = checked_dtype(dtype) if dtype is not None else None
    if text_encoder_dtype is not None:
        text_encoder_dtype = checked_dtype(text_encoder_dtype, "text_encoder_dtype")
    if isinstance(model, ModelSources):
        sources = model
    else:
        sources = locate_sources(
            model, gguf, text_encoder_gguf=text_encoder_gguf, weights=weights, configs_read=configs_read, **AT_HAND
        )
    sources = with_quantize(sources, quantize, text_encoder_quantize)
    target = parse_device(device)
    here = is_here(target) and gpu is None  # a GPU read elsewhere is planned from its figures: CUDA is not started
    # What load_pipeline picks on that device; for a GPU this machine lacks (its capability unknown), without it.
    if gpu is not None and given is None:
        dtype = default_dtype_of(gpu.facts)[0]
    else:
        dtype = resolve_dtype(given, target if here else None).value
    text_encoder_dtype = text_encoder_dtype_of(dtype, text_encoder_dtype, by_default=given is None)
    budget = device_budget(target, vram_gib) if gpu is None else _read_gpu_budget(gpu, vram_gib)
    inputs = _planner_inputs(
        request, sources, dtype, target, kernels, attention, batch_guidance, sequence_parallel, text_encoder_dtype,
        text_encoder, first_step, sizes, attention_backend, loras, adapter_temporaries, gpu,
    )  # fmt: skip
    plan = plan_memory(
        inputs, budget, device=str(target), step_cache=step_cache, sequence_parallel=sequence_parallel,
        ram_budget_bytes=None if ram_gib is None else int(ram_gib * 2**30),
    )  # fmt: skip
    if vram_gib is not None and target.type == "cuda" and (gpu is not None or here):  # the free memory's fits it
        use = gpu_use(target) if gpu is None else gpu.use
        if (over := plan_over_room_note(vram_gib, plan.reserved_bytes, use, windows_gpu_driver())) is not None:
            warnings.warn(over, stacklevel=2)
    return dataclasses.replace(plan, attention=attention)


# The smallest run the planner makes: one 64x64 frame, one unguided step, the transformer and the text encoder in
# the smallest types motif-lite quantizes each to (`quantize.RECIPES`' Q2_K, `quantize.TEXT_RECIPES`' Q4_K_M).
SMALLEST_RUN = GenerationRequest("a fox", width=64, height=64, frames=1, steps=1, seed=0, cfg_scale=0.0)
SMALLEST_TYPES = {"quantize": "Q2_K", "text_encoder_quantize": "Q4_K_M"}


def smallest_run_host_bytes(device: str) -> int:
    """The host memory the smallest run (`SMALLEST_RUN`, `SMALLEST_TYPES`) needs as it loads on `device` ("cpu" or
    "cuda"), by the planner's host estimate: below it no run loads (`check`'s floor under a memory limit). From the
    configs at hand, else the official ones: no weights, no network. The device memory is not planned (a budget no
    plan misses): only the host's is asked."""
    with quiet_warnings():  # the estimate against the memory available now: the caller says what it finds
        plan = plan_generation(SMALLEST_RUN, device=device, vram_gib=1e6, **SMALLEST_TYPES)
    return plan.host.load_bytes


def _planner_inputs(
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    target: torch.device,
    kernels: str,
    attention: str,
    batch_guidance: bool | None,
    sequence_parallel: int = 1,
    text_encoder_dtype: torch.dtype | None = None,
    text_encoder: bool = True,
    first_step: int = 0,
    sizes: ModelSizes | None = None,
    attention_backend: str = "auto",
    loras: Sequence[LoRAFile] = (),
    adapter_temporaries: bool = True,
    gpu: GpuReading | None = None,
) -> PlannerInputs:
    """What the planner's estimates (`plan_memory`, `unplanned_peak_bytes`) take about `request` on this model,
    dtype and device: the sizes from the files' headers, the rows per forward (from `first_step` on: a resumed
    run's steps left), the kernels' savings and costs. `sizes`: those sizes counted already; `gpu`: the GPU as
    another process read it (`plan_generation`)."""
    here = is_here(target) and gpu is None
    if gpu is not None:
        kernels = _kernels_on(kernels, gpu.facts)  # as `use_triton` decides on the GPU at hand
    sizes = sizes or model_sizes(sources, dtype, text_encoder_dtype)
    config = sources.transformer.value
    tokens = video_tokens(request.width, request.height, request.frames, config, sizes.vae_config)
    guided = resolve_settings(request, sources.configs, sources.transformer, first_step=first_step).guided
    # A parallel run computes the two guidance predictions in separate calls (on separate ranks when it can).
    batched = guided and batched_guidance(batch_guidance, target)[0] and sequence_parallel == 1
    triton_on = target.type == "cuda" and (use_triton(kernels, target) if here else kernels != "torch")
    # The first frame's tokens: the checkpoint's (from its configs as read), not a constant.
    tower = ImageTowerShape.of_config(sources.configs.text_encoder_config)
    image_tokens = tower.tokens if request.conditions_on_image else 0
    # A LoRA on packed linears keeps its adapter beside each, in the run's dtype; on float ones it merges: no bytes.
    packed = packed_weight_names(sources) if loras else frozenset()
    adapters = side_adapter_bytes(list(loras), dtype) if packed else None
    if adapters:
        adapters = {module: n for module, n in adapters.items() if f"{module}.weight" in packed}
    temporaries = side_adapter_temporary_bytes(list(loras), dtype) if adapters and adapter_temporaries else {}
    token_bytes = {module: n for module, n in temporaries.items() if f"{module}.weight" in packed} or None
    return PlannerInputs(
        width=request.width, height=request.height, frames=request.frames, transformer_config=config,
        weight_bytes=sizes.transformer_bytes, text_encoder_bytes=sizes.text_encoder_bytes if text_encoder else 0,
        vae_config=sizes.vae_config, cfg_batch=2 if batched else 1, vae_dtype=dtype, activation_dtype=dtype,
        text_encoder_dtype=text_encoder_dtype,  # None: the planner picks what load_pipeline does
        fused_norms=triton_on, autotune_bytes=autotune_buffer_bytes(triton_on),
        text_encoder_quantized=text_encoder and sizes.text_encoder_quantized,  # packed blocks, not F32/F16 tensors
        triton_attention=triton_on and attention_backend in ("auto", "triton"),  # auto's trial times our kernel
        attention_workspace_bytes=functools.partial(
            attention_workspace_bytes, attention, config, tokens, image_tokens=image_tokens
        ),
        image=request.conditions_on_image,  # the first frame goes through the VAE
        image_tower=tower, adapter_bytes=adapters, adapter_token_bytes=token_bytes,
    )  # fmt: skip


def kernels_on_unread_gpus(kernels: str) -> str:
    """`kernels` as the ranks of `run --gpus N` resolve it on this machine's GPUs where the launcher could not read
    them, from what is known without starting CUDA: a ROCm build (AMD GPUs), Triton's import and its launcher's
    build. Planned with Triton's kernels, as for a GPU not here, a run whose ranks run torch's ops was planned unlike
    theirs: Triton's tuning buffers made its smallest plan larger, and a --vram every rank fits was refused. The
    GPUs' compute capability is not known: one too old for Triton runs in float32, planned larger than this anyway."""
    return _kernels_on(kernels, GpuFacts(AMD if rocm_build() else NVIDIA, "", None))


def _kernels_on(kernels: str, gpu: GpuFacts) -> str:
    """`kernels` as `use_triton` resolves it on `gpu`, read by another process: "auto" runs torch's ops on AMD and
    where Triton's cannot run; "triton" there is refused (`KernelBackendError`, in `use_triton`'s words), once,
    before the ranks start and each refuses it."""
    if kernels == "torch":
        return kernels
    problem = triton_problem_of(gpu)
    if kernels == "triton" and problem is not None:
        raise KernelBackendError(f"kernel backend 'triton' is not possible here: {problem}")
    if kernels == "auto" and (gpu.is_amd or problem is not None):
        return "torch"
    return kernels


def unplanned_memory_warning(
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    kernels: str = "auto",
    attention: str = "exact",
    batch_guidance: bool | None = None,
    text_encoder_dtype: torch.dtype | None = None,
) -> str | None:
    """What `load_pipeline` without a plan says on a CUDA `device` (here) whose whole memory is less than the
    planner's estimate of the official video with everything on it (what a pipeline without a plan does, the
    guidance predictions batched as it batches them): that video would run out of memory at its first step.
    None when it fits, or on another device."""
    if device.type != "cuda":
        return None
    official = GenerationRequest("-")
    inputs = _planner_inputs(
        official, sources, dtype, device, kernels, attention, batch_guidance, 1, text_encoder_dtype
    )
    need = unplanned_peak_bytes(inputs)
    total = gpu_memory(device)[1]
    if need <= total:
        return None
    size = f"{official.width}x{official.height}x{official.frames}"
    return (
        f"no memory plan: everything goes on {torch.cuda.get_device_name(device)}, whose {memory_size(total)} "
        f"are less than the {memory_size(need)} the planner estimates for the official {size} video that way, "
        "so a video near that size would run out of memory at its first step. Plan for the largest video you will "
        "make: plan = plan_generation(request, model, dtype=..., device=...) (from motif_lite.preflight, with "
        "load_pipeline's model and files), then load_pipeline(..., plan=plan), which streams and splits what does "
        'not fit (docs/usage.md, "In a notebook")'
    )


def packed_adapter_macs(sources: ModelSources, loras: Sequence[LoRAFile], dtype: torch.dtype) -> dict[str, int]:
    """Multiply-adds per token of the LoRA adapters kept beside the transformer's packed layers
    (`lora_apply.side_adapter_macs`), for the time estimate: a LoRA on a float layer merges and costs nothing."""
    packed = packed_weight_names(sources) if loras else frozenset()
    if not packed:
        return {}
    return {m: macs for m, macs in side_adapter_macs(list(loras), dtype).items() if f"{m}.weight" in packed}
