"""What `motif-lite run` does just before a download and before the weights load: the prompts the text encoder will
cut, said with the tokenizer's files alone (fetched first where the checkpoint is not at hand), and on the CPU the time
question, from the files at hand or the official architecture."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.cli.prepare import (
    checked_lora_files,
    first_step,
    plans_nothing,
    quantized_as_asked,
    refuse_what_no_plan_fits,
    sources_at_hand,
    sources_before_download,
)
from motif_lite.cli.run_time import CpuTimeQuestion, quantizing_seconds
from motif_lite.errors import MotifLiteError
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from motif_lite.checkpoint import GGUFFilesRead, ModelSources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.encoders.text import PromptTruncation
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.runtime.parallel import Parallel
    from motif_lite.settings import Settings


def prompts_measured(
    model: str,
    root: Path | None,
    prompts: dict[str, str],
    tokenizers_loaded: dict[Path, PreTrainedTokenizerBase] | None = None,
) -> tuple[dict[str, PromptTruncation], PreTrainedTokenizerBase | None]:
    """The `prompts` (label -> text) the text encoder will cut, measured with the checkpoint's tokenizer alone before
    any weights load: `root`'s, else `model`'s tokenizer files alone, from the cache or downloaded (a few MB) where a
    prompt of the user's may be over the limit; empty where there is no tokenizer to read (the encode says it). With
    the tokenizer it loaded from `root` (None where it loaded none, or another folder's): the text encoder of the
    same folder takes it rather than loading it again. `tokenizers_loaded`: the tokenizers
    loaded so far, by their folder resolved; one of the folder to read is taken, not loaded again, and one loaded
    here is added (a run measures its prompts with the tokenizer fetched before its download, then again once the
    checkpoint is in that same folder)."""
    from motif_lite.encoders.text import fits_without_tokenizer, load_tokenizer, long_prompts, tokenizer_root
    from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT

    loaded = {} if tokenizers_loaded is None else tokenizers_loaded

    def tokenizer_of(checkpoint: Path) -> PreTrainedTokenizerBase:
        folder = (checkpoint / "tokenizer").resolve()
        if folder not in loaded:
            loaded[folder] = load_tokenizer(checkpoint)
        return loaded[folder]

    prompts = {label: prompt for label, prompt in prompts.items() if not fits_without_tokenizer(prompt)}
    if not prompts:
        return {}, None
    try:
        if root is None or not (root / "tokenizer").is_dir():
            # The official negative prompt is some 150 tokens to the official tokenizer: no reason to download one.
            if all(prompt == OFFICIAL_NEGATIVE_PROMPT for prompt in prompts.values()):
                return {}, None
            return long_prompts(tokenizer_of(tokenizer_root(model)), prompts), None
        tokenizer = tokenizer_of(root)
        return long_prompts(tokenizer, prompts), tokenizer
    except MotifLiteError:
        return {}, None


def not_said_again(long_prompts: dict[str, PromptTruncation]) -> contextlib.AbstractContextManager:
    """While inside, the text encoder's warnings on `long_prompts`, said before the load in more words, are not
    logged again as they are encoded."""
    from motif_lite.encoders.text import warnings_not_logged

    return warnings_not_logged({truncation.warning(label) for label, truncation in long_prompts.items()})


def tokenizer_notes_once() -> contextlib.AbstractContextManager:
    """While inside, a note on the tokenizer's files is said once, though a run loads the tokenizer before the
    download, to measure the prompts, and with the text encoder."""
    from motif_lite.encoders.text import tokenizer_notes_said_once

    return tokenizer_notes_said_once()


def ask_before_download(
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    device: str | torch.device,
    question: CpuTimeQuestion,
    said: dict[str, PromptTruncation],
    header_read: GGUFFilesRead | None = None,
    tokenizers_loaded: dict[Path, PreTrainedTokenizerBase] | None = None,
) -> Callable[[DownloadPlan], None]:
    """What the checks call just before a download starts (`HubAccess.before_download`): the prompts the text
    encoder will cut, with the tokenizer fetched first (`said` gets them: not said again before the load;
    `tokenizers_loaded` the tokenizer, which the run takes once the checkpoint is in its folder); on the
    CPU, the time question, from the configs at hand or the official ones as a dry run counts (the checkpoint's own
    are not downloaded yet): not after hours of downloading for a run the user would not start. `header_read`: the
    GGUF files the run read already (`preflight.gguf_header_read_first`, which its preflight takes too): each
    check here takes it, not reading the --gguf file's header again."""

    def before_download(plan: DownloadPlan) -> None:
        located = LocatedOnce(args, header_read)  # this download's: an earlier one changed what is at hand
        # Before the time question: no question, no download.
        refuse_settings_first(args, requests[0], device, header_read, located.sources)
        refuse_what_no_plan_fits(args, requests[0], device, header_read=header_read, located=located.sources)
        if said and question.said:  # both said before an earlier download (the checkpoint's, then a GGUF variant's)
            return
        at_hand = _at_hand(args, requests[0], located)  # resolved once, for the prompts and the time question
        _say_long_prompts_first(args, requests[0], said, at_hand, tokenizers_loaded)
        if question.said:  # before the checkpoint's download, not again before the GGUF variant's
            return
        estimate = _estimate_at_hand(args, device, at_hand)
        if estimate is not None:
            settings, configs, dtype, quantizing, adapter_macs = estimate
            question.ask(requests[0], settings, configs, dtype, len(requests), quantizing, plan, adapter_macs)

    return before_download


def refuse_settings_first(
    args: argparse.Namespace,
    request: GenerationRequest,
    device: str | torch.device,
    header_read: GGUFFilesRead | None = None,
    located: Callable[[], ModelSources] | None = None,
) -> None:
    """Before a download: the settings' refusal (a DPM++ table diffusers cannot step, say) from the configs at hand,
    as the run resolves them after it (`run_prepare.prepare`): with the sources the command gave (a --settings-from
    or --resume file's name, not a flag the user did not type), so the run and its dry run name the same one. A
    problem with the files is left to the checks, which name it. Only where the memory plan comes next (whose
    settings would refuse it, naming no source): without one, the run's own resolve says it after the checks.
    `located`: the files at hand located once already (`LocatedOnce.sources`), not located again."""
    from motif_lite.cli.resume import refused_settings_of_resumed
    from motif_lite.cli.run_inputs import given_sources
    from motif_lite.devices import resolve_device
    from motif_lite.settings import resolve_settings

    try:
        if plans_nothing(args, resolve_device(device)):
            return
        sources = sources_before_download(args, header_read, located)
    except MotifLiteError:
        return
    if sources is None:  # another model not at hand: its configs decide, after the download
        return
    given = given_sources(args)
    with refused_settings_of_resumed(args):
        resolve_settings(request, sources.configs, sources.transformer, first_step=first_step(args), given=given)


def rank_refuses_before_download(
    args: argparse.Namespace,
    request: GenerationRequest,
    device: str | torch.device,
    parallel: Parallel,
    said: dict[str, PromptTruncation],
    header_read: GGUFFilesRead | None = None,
    tokenizers_loaded: dict[Path, PreTrainedTokenizerBase] | None = None,
) -> Callable[[DownloadPlan], None]:
    """What a rank of a parallel run calls just before its download starts: its own plan's refusal, as a run on one
    process refuses (`prepare.refuse_what_no_plan_fits`), and on the main rank the prompts the text encoder will cut
    (`said` gets them); the CPU time question is a one-process run's. `header_read`, `tokenizers_loaded`: as
    `ask_before_download`'s."""

    def before_download(plan: DownloadPlan) -> None:
        located = LocatedOnce(args, header_read)
        refuse_settings_first(args, request, device, header_read, located.sources)
        refuse_what_no_plan_fits(
            args, request, device, parallel.layout, text_encoder=parallel.is_main, header_read=header_read,
            located=located.sources,
        )  # fmt: skip
        if parallel.is_main:  # the one that encodes, and prints
            _say_long_prompts_first(args, request, said, _at_hand(args, request, located), tokenizers_loaded)

    return before_download


def _say_long_prompts_first(
    args: argparse.Namespace,
    request: GenerationRequest,
    said: dict[str, PromptTruncation],
    at_hand: tuple[ModelSources, Settings] | None,
    tokenizers_loaded: dict[Path, PreTrainedTokenizerBase] | None = None,
) -> None:
    """Before a download: the prompts the text encoder will cut (`at_hand`'s settings tell which it encodes; both
    where nothing is at hand: the official guidance reads the negative prompt), measured with the tokenizer's files
    fetched first (a few MB), said now and kept in `said` (the run does not say them again before it loads; the
    tokenizer goes into `tokenizers_loaded`). Once something is said, not again before a later download (a GGUF
    variant's)."""
    if said:
        return
    prompts = {"prompt": request.prompt, "negative prompt": request.negative_prompt}
    encoded = prompts if at_hand is None else at_hand[1].encoded_prompts
    said.update(prompts_measured(args.model, None, encoded, tokenizers_loaded)[0])
    for label, truncation in said.items():
        print(f"warning: {truncation.advice(label)}", file=sys.stderr)


def _at_hand(
    args: argparse.Namespace, request: GenerationRequest, located: LocatedOnce
) -> tuple[ModelSources, Settings] | None:
    """The sources and settings a run knows before a download: from the files at hand, else the official
    architecture; None where the flags or files have a problem (the checks go on to name it). `located`: the files
    at hand, located once for every check before this download."""
    from motif_lite.settings import resolve_settings

    try:
        # No --text-encoder-gguf: it changes nothing here, and its problems are the checks' to name.
        sources = quantized_as_asked(located.sources(text_encoder_gguf=False), args)
        return sources, resolve_settings(request, sources.configs, sources.transformer, first_step=first_step(args))
    except MotifLiteError:
        return None


def _estimate_at_hand(
    args: argparse.Namespace, device: str | torch.device, at_hand: tuple[ModelSources, Settings] | None
) -> tuple[Settings, CheckpointConfigs, torch.dtype, dict[str, float], dict[str, int] | None] | None:
    """What the CPU time estimate counts with before a download (`cpu_time_note`'s settings, configs, dtype,
    quantizing and the work of the --lora adapters beside packed layers, as the run counts them after it), from the
    sources and settings `at_hand`; None on a device other than the CPU, and where the flags or files have a problem
    (nothing at hand, a device or dtype refused), which the checks go on to name. A --lora the LoRA check refuses
    (a .diff of a weight the GGUF packs: the check before the download reads LoRAs without the packed names) still
    gets the question, without the adapters' work (None): the run names the LoRA's problem, as before."""
    from motif_lite.cli.common import lora_args
    from motif_lite.devices import resolve_device
    from motif_lite.memory_plan import packed_adapter_macs
    from motif_lite.settings import resolve_dtype

    if at_hand is None:
        return None
    sources, settings = at_hand
    try:
        target = resolve_device(device)
        if target.type != "cpu":
            return None
        dtype = resolve_dtype(args.dtype, target).value
    except MotifLiteError:
        return None
    try:
        loras = checked_lora_files(lora_args(getattr(args, "lora", None) or []), sources)
        adapter_macs = packed_adapter_macs(sources, loras, dtype)
    except MotifLiteError:
        adapter_macs = None  # asked without the LoRA's work, rather than downloading without asking
    return settings, sources.configs, dtype, quantizing_seconds(sources), adapter_macs


class LocatedOnce:
    """The files at hand, located once for every check before one download: the settings' and the plan's refusals,
    the prompts the text encoder cuts and the time question each located them, reading every config file again.
    What `sources_at_hand(args, quantized=False)` gives, with --text-encoder-gguf or without it (located apart only
    where it was given, with the configs the other look read: not read twice); what locating raised is raised again
    to each check, which handles it as before."""

    def __init__(self, args: argparse.Namespace, header_read: GGUFFilesRead | None) -> None:
        self._args = args
        self._header_read = header_read
        self._found: dict[bool, ModelSources | MotifLiteError] = {}

    def sources(self, text_encoder_gguf: bool = True) -> ModelSources:
        """The unquantized sources at hand; `text_encoder_gguf=False`: without --text-encoder-gguf."""
        with_gguf = text_encoder_gguf and self._args.text_encoder_gguf is not None  # without it, one and the same
        if with_gguf not in self._found:
            read = next((found.configs for found in self._found.values() if not isinstance(found, Exception)), None)
            try:
                self._found[with_gguf] = sources_at_hand(
                    self._args, text_encoder_gguf=with_gguf, quantized=False, header_read=self._header_read,
                    configs_read=read,
                )  # fmt: skip
            except MotifLiteError as exc:
                self._found[with_gguf] = exc
        found = self._found[with_gguf]
        if isinstance(found, MotifLiteError):
            raise found
        return found
