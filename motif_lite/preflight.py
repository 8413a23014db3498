"""What a run checks before any weights load: the device, the kernel backend and the checkpoint's files
(`preflight`), the speed settings and the LoRA files' headers. Each raises a `MotifLiteError` that says what to
change, so a mistake ends a run in seconds, not after loading. The memory plan is made in memory_plan.py (its
`plan_generation` is imported from here too, as docs/usage.md and the messages write it); the --quantize recipes
are checked in quantize_settings.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import torch

from motif_lite.checkpoint import GGUFFilesRead, ModelSources, check_gguf_files, locate_sources
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.choices import ATTENTION_BACKENDS, ATTENTION_MODES, MOTIF_REPO
from motif_lite.config import TransformerConfig
from motif_lite.devices import resolve_device
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError, both_spellings
from motif_lite.gpus import gpu_facts, int8_attention_blocker
from motif_lite.io.hub import DownloadHeld, DownloadPlan, held_while
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.memory_plan import AT_HAND
from motif_lite.memory_plan import plan_generation as plan_generation  # docs/usage.md and messages import it from here
from motif_lite.paths import user_path
from motif_lite.quantize_settings import text_encoder_recipe, transformer_recipe, with_quantize
from motif_lite.runtime.attention import AttentionBackend, check_backend_runs
from motif_lite.runtime.attention import attention_backend as attention_backend_for
from motif_lite.runtime.compile import CompileConfig, check_compile_possible
from motif_lite.runtime.kernels import KernelBackendError, use_triton
from motif_lite.runtime.parallel import Parallel
from motif_lite.runtime.step_cache import StepCacheConfig
from motif_lite.settings import CHECKPOINT, resolve_dtype
from motif_lite.sizes import FLOAT8_PACKING, float8_linear_weights, packed_by, packed_weight_names
from motif_lite.weight_checks import check_your_shapes
from motif_lite.weights.gguf_loader import meta_gguf_transformer
from motif_lite.weights.loader import meta_transformer
from motif_lite.weights.lora import check_lora_file, check_read_loras, diff_targets, lora_targets, read_loras
from motif_lite.weights.lora_errors import PackedDiffError
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.lora_updates import LoRAFile
from motif_lite.weights.shapes import build_model


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
        transformer_recipe(quantize, None if gguf is None else str(gguf))
    if text_encoder_quantize is not None:
        text_encoder_recipe(text_encoder_quantize, None if text_encoder_gguf is None else str(text_encoder_gguf))
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
