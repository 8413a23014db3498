"""How long a run will take, said before it starts: the question before a long CPU run, the note before a long GPU
run and what a dry run says of both (the estimates themselves are motif_lite.run_estimates, which the Python API
shares), and the seconds of quantizing as it loads (--quantize, --text-encoder-quantize) at the rates measured on 2
cores."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from motif_lite.cli.common import can_ask, print_notes
from motif_lite.request import GenerationRequest
from motif_lite.run_estimates import cpu_time_note, gpu_time_note

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.settings import Settings


def confirm_cpu_time(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    yes: bool,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
    download: DownloadPlan | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> bool:
    """Ask before a CPU run estimated at more than LONG_CPU_RUN_SECONDS (`cpu_time_note`): the CPU is for tests and
    tiny sizes. `yes` starts it anyway; without a terminal to ask on, it is refused; end of input (Ctrl-D) answers
    no. `download`: the download that a yes starts first, named in the question with the ones after it (a GGUF
    variant's). `adapter_macs`: the LoRA adapters beside packed layers (`cpu_time_note`'s). Returns whether the
    estimate was said (asked, or noted with `yes`); False for a short run."""
    from motif_lite.errors import MotifLiteError

    message = cpu_time_note(request, settings, configs, dtype, videos, quantizing, adapter_macs=adapter_macs)
    if message is None:
        return False
    if yes:
        print(f"note: {message}; starting it (--yes)", file=sys.stderr)
        return True
    if not can_ask():  # no terminal, or a background job's (`&`): an answer nobody could give
        raise MotifLiteError(f"{message}. Pass --yes to start it anyway.")
    first = "" if download is None else f" (downloading {_downloads(download)})"
    try:
        answer = input(f"{message}.\nStart it anyway{first}? [y/N] ")
    except EOFError:  # Ctrl-D (end of input): no, as the default answer is
        print(file=sys.stderr)  # the error on a line of its own, not after the question
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise MotifLiteError("not started")
    return True


def _downloads(download: DownloadPlan) -> str:
    """`download` and the ones after it, as the question names them: "8.85 GB of A, then 1.35 GB of B first;
    10.20 GB in all" (the line said as it starts counts the same)."""
    from motif_lite.units import file_size

    downloads = [download, *download.then]
    what = ", then ".join(f"{file_size(each.needed)} of {each.repo}" for each in downloads)
    in_all = f"; {file_size(sum(each.needed for each in downloads))} in all" if download.then else ""
    return f"{what} first{in_all}"


class CpuTimeQuestion:
    """The question before a long CPU run (`confirm_cpu_time`), said once per run: before a download where the run
    needs one (the checkpoint's, a GGUF variant's: its hours are said before the gigabytes download, from the
    configs at hand or the official ones), else after the checks, from the checkpoint's own configs. `yes`: --yes."""

    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.said = False  # asked (and answered yes), or noted with --yes: not said a second time

    def ask(
        self,
        request: GenerationRequest,
        settings: Settings,
        configs: CheckpointConfigs,
        dtype: torch.dtype,
        videos: int = 1,
        quantizing: dict[str, float] | None = None,
        download: DownloadPlan | None = None,
        adapter_macs: Mapping[str, int] | None = None,
    ) -> None:
        """`confirm_cpu_time` of this run, unless the estimate was said already."""
        if not self.said:
            yes = self.yes
            self.said = confirm_cpu_time(
                request, settings, configs, dtype, yes, videos, quantizing, download, adapter_macs
            )


def quantizing_seconds(
    sources: ModelSources, on_gpu: bool = False, transformer_values: int | None = None
) -> dict[str, float]:
    """About how long quantizing each component as it loads takes on a CPU (`quantize.on_load.cpu_seconds`), by
    what is quantized to what: {"the transformer to Q4_K_M": 204.0}; empty when nothing is. `on_gpu`: for a GPU
    run, which still rounds to nearest on the CPU (Q8_0: about a minute for the transformer) but searches the
    K-quants on the GPU, whose time is not measured yet (docs/benchmarks.md): those recipes are left out.
    `transformer_values`: its weights as the plan's sizes counted them (`ModelSizes.transformer_values`), else
    counted here (the transformer built on the meta device)."""
    from motif_lite.quantize.components import TEXT_ENCODER
    from motif_lite.quantize.on_load import cpu_seconds, is_slow_on_cpu
    from motif_lite.sizes import text_encoder_weights, transformer_weights

    seconds = {}
    transformer = sources.quantize
    if transformer is not None and not (on_gpu and is_slow_on_cpu(transformer)):
        weights = transformer_values or transformer_weights(sources.transformer.value)
        seconds[f"the transformer to {transformer}"] = cpu_seconds(weights, transformer)
    text_encoder = sources.text_encoder_quantize
    if text_encoder is not None and not (on_gpu and is_slow_on_cpu(text_encoder, TEXT_ENCODER)):
        weights = text_encoder_weights(sources.root)
        seconds[f"the text encoder to {text_encoder}"] = cpu_seconds(weights, text_encoder, TEXT_ENCODER)
    return seconds


def dry_run_time_notes(
    request: GenerationRequest,
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    videos: int,
    transformer_values: int | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> list[str]:
    """What a run of `videos` videos would say about its time before it loads (a dry run asks nothing): measured on
    this machine's CPU, or on its GPU when the plan is for one that is here. `transformer_values`: the
    transformer's weights as the plan counted them (`quantizing_seconds`)."""
    from motif_lite.devices import is_here

    if device.type == "cpu":
        quantizing = quantizing_seconds(sources, transformer_values=transformer_values)
        note = cpu_time_note(request, settings, sources.configs, dtype, videos, quantizing, adapter_macs=adapter_macs)
        return [] if note is None else [f"{note}; a run asks before it starts (--yes starts it)"]
    if is_here(device):  # a GPU of this machine's
        return _gpu_time_notes(request, settings, sources, dtype, device, videos, transformer_values, adapter_macs)
    return []


def _gpu_time_notes(
    request: GenerationRequest,
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    videos: int,
    transformer_values: int | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> list[str]:
    """The note before a long run of `videos` videos on this GPU (`gpu_time_note`, with the quantizing as it loads
    that a GPU run still does on the CPU); none for a short one. `transformer_values`: as `quantizing_seconds`."""
    quantizing = quantizing_seconds(sources, on_gpu=True, transformer_values=transformer_values)
    note = gpu_time_note(request, settings, sources.configs, dtype, device, videos, quantizing, adapter_macs)
    return [] if note is None else [note]


def say_run_time(
    question: CpuTimeQuestion,
    requests: list[GenerationRequest],
    settings: Settings,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device,
    say: Callable,
    adapter_macs: Mapping[str, int] | None = None,
) -> None:
    """How long a run on one process will take, before it loads: the question before a long CPU run (--yes answers
    it; not asked again when it came before a download), the note before a long GPU run. `adapter_macs`: the LoRA
    adapters beside packed layers (`memory_plan.packed_adapter_macs`), whose work the estimate counts."""
    if device.type == "cpu":
        quantizing = quantizing_seconds(sources)
        question.ask(requests[0], settings, sources.configs, dtype, len(requests), quantizing, None, adapter_macs)
    elif device.type == "cuda":
        notes = _gpu_time_notes(requests[0], settings, sources, dtype, device, len(requests), None, adapter_macs)
        print_notes(notes, say)
