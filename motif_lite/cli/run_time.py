"""How long a run will take, said before it starts: the question before a long CPU run and the note before a long
GPU run, both from the run's FLOPs (motif_lite.runtime.cost) over this machine's measured matrix-multiply rate, on
the CPU plus the fixed cost of its transformer calls and the quantizing as it loads (--quantize,
--text-encoder-quantize) at the rates measured on 2 cores."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from motif_lite.cli.common import can_ask
from motif_lite.cli.run_flags import LONG_CPU_RUN_SECONDS, LONG_GPU_RUN_SECONDS
from motif_lite.errors import counted
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.settings import CheckpointConfigs, Settings


def cpu_time_note(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
) -> str | None:
    """How long `videos` videos of `request` would take on this CPU, in words, with the way out, when that is over
    LONG_CPU_RUN_SECONDS (see motif_lite.runtime.cost); None when it is not. Counts with the checkpoint's configs
    (`settings`, `configs`), the official architecture standing in for a missing one; `quantizing`: the seconds of
    quantizing as it loads (`quantizing_seconds`), once before the videos."""
    import torch

    from motif_lite.runtime import cost

    total = run_flops(request, settings, configs) * videos
    calls = transformer_calls(request, settings) * videos
    config = settings.transformer.value
    slowest_fixed = calls * cost.slowest_call_seconds(config)
    quantizing_total = sum((quantizing or {}).values())
    if total / cost.SLOWEST_CPU_FLOPS + slowest_fixed + quantizing_total < LONG_CPU_RUN_SECONDS:
        return None  # short on any CPU: not worth measuring this one
    throughput = cost.measure_matmul_flops(dtype)
    # The calls' fixed cost is timed where it can change the estimate by a percent (not for a 720p video's weeks).
    call_seconds = cost.measure_call_seconds(config, dtype) if slowest_fixed > 0.01 * total / throughput else 0.0
    first = settings.first_step
    message = long_cpu_run(request, total, dtype, throughput, videos, calls, call_seconds, quantizing, first)
    if message is None:
        return None
    if dtype != torch.float32 and (fp32 := cost.measure_matmul_flops(torch.float32)) > 1.5 * throughput:
        message += f"; in float32 it does {fp32 / 1e9:.0f} GFLOP/s (--dtype fp32)"
    smaller = "a small size such as -W 256 -H 256 --video-frames 9 --steps 2"
    if quantizing_total > total / throughput + calls * call_seconds:  # a smaller video saves little
        smaller = "quantize once with the command its note gives and load that file"
    return message + f". The CPU is meant for tests{_why_no_gpu()}: use a GPU, or {smaller}"


def _why_no_gpu() -> str:
    """Why this run is not on a GPU, where the machine has none that torch can use: the user may think they have
    one (a CPU-only torch, a driver too old for it), and only the reason says what to fix."""
    import torch

    from motif_lite.devices import no_gpu_reason

    return "" if torch.cuda.is_available() else f" (no GPU here: {no_gpu_reason()})"


def confirm_cpu_time(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    yes: bool,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
    download: DownloadPlan | None = None,
) -> bool:
    """Ask before a CPU run estimated at more than LONG_CPU_RUN_SECONDS (`cpu_time_note`): the CPU is for tests and
    tiny sizes. `yes` starts it anyway; without a terminal to ask on, it is refused; end of input (Ctrl-D) answers
    no. `download`: the download that a yes starts first, named in the question. Returns whether the estimate was
    said (asked, or noted with `yes`); False for a short run."""
    from motif_lite.errors import MotifLiteError
    from motif_lite.units import file_size

    message = cpu_time_note(request, settings, configs, dtype, videos, quantizing)
    if message is None:
        return False
    if yes:
        print(f"note: {message}; starting it (--yes)", file=sys.stderr)
        return True
    if not can_ask():  # no terminal, or a background job's (`&`): an answer nobody could give
        raise MotifLiteError(f"{message}. Pass --yes to start it anyway.")
    first = f" (downloading {file_size(download.needed)} of {download.repo} first)" if download is not None else ""
    try:
        answer = input(f"{message}.\nStart it anyway{first}? [y/N] ")
    except EOFError:  # Ctrl-D (end of input): no, as the default answer is
        print(file=sys.stderr)  # the error on a line of its own, not after the question
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise MotifLiteError("not started")
    return True


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
    ) -> None:
        """`confirm_cpu_time` of this run, unless the estimate was said already."""
        if not self.said:
            self.said = confirm_cpu_time(request, settings, configs, dtype, self.yes, videos, quantizing, download)


def long_cpu_run(
    request: GenerationRequest,
    total: float,
    dtype: torch.dtype,
    throughput: float,
    videos: int = 1,
    calls: int = 0,
    call_seconds: float = 0.0,
    quantizing: dict[str, float] | None = None,
    first_step: int = 0,
) -> str | None:
    """How long `videos` videos of `request` (resumed at `first_step`), `total` FLOPs (`run_flops`) in `calls`
    transformer calls (`transformer_calls`), would take on a CPU that does `throughput` FLOP/s in `dtype` and
    `call_seconds` of fixed cost per call (`cost.measure_call_seconds`), after `quantizing` (`quantizing_seconds`),
    in words, when that is over LONG_CPU_RUN_SECONDS; None when it is not. The calls are named where their fixed
    cost is a tenth of the time or more (a tiny model's many steps)."""
    fixed = calls * call_seconds
    quantize = sum((quantizing or {}).values())
    seconds = total / throughput + fixed
    if seconds + quantize <= LONG_CPU_RUN_SECONDS:
        return None
    kind = str(dtype).split(".")[-1]
    run, about = (
        f"on the CPU this run ({_described(request, videos, first_step)}) is {total:.2g} FLOPs",
        _duration(seconds),
    )
    rate = f"the {throughput / 1e9:.0f} GFLOP/s this CPU does now ({kind} matrix multiply)"
    if fixed < 0.1 * seconds:
        return f"{run}: about {about} at {rate}" + _quantizing_words(quantizing)
    return (
        f"{run} and {calls:,} transformer calls: about {about} at {rate} and {call_seconds * 1e3:.0f} ms per call "
        "however small (Python and op launches, timed now)" + _quantizing_words(quantizing)
    )


def _quantizing_words(quantizing: dict[str, float] | None) -> str:
    """What quantizing as it loads adds to the estimate, in words ("" when nothing is quantized)."""
    if not quantizing:
        return ""
    what = " and ".join(quantizing)
    they = "they load" if len(quantizing) > 1 else "it loads"
    return (
        f", and quantizing {what} as {they} about {_duration(sum(quantizing.values()))} more (approximate: the "
        "rates measured on 2 CPU cores)"
    )


def quantizing_seconds(sources: ModelSources, on_gpu: bool = False) -> dict[str, float]:
    """About how long quantizing each component as it loads takes on a CPU (`quantize.on_load.cpu_seconds`), by
    what is quantized to what: {"the transformer to Q4_K_M": 204.0}; empty when nothing is. `on_gpu`: for a GPU
    run, which still rounds to nearest on the CPU (Q8_0: about a minute for the transformer) but searches the
    K-quants on the GPU, whose time is not measured yet (docs/benchmarks.md): those recipes are left out."""
    from motif_lite.quantize.components import TEXT_ENCODER
    from motif_lite.quantize.on_load import cpu_seconds, is_slow_on_cpu
    from motif_lite.sizes import text_encoder_weights, transformer_weights

    seconds = {}
    transformer = sources.quantize
    if transformer is not None and not (on_gpu and is_slow_on_cpu(transformer)):
        weights = transformer_weights(sources.transformer.value)
        seconds[f"the transformer to {transformer}"] = cpu_seconds(weights, transformer)
    text_encoder = sources.text_encoder_quantize
    if text_encoder is not None and not (on_gpu and is_slow_on_cpu(text_encoder, TEXT_ENCODER)):
        weights = text_encoder_weights(sources.root)
        seconds[f"the text encoder to {text_encoder}"] = cpu_seconds(weights, text_encoder, TEXT_ENCODER)
    return seconds


def _described(request: GenerationRequest, videos: int, first_step: int = 0) -> str:
    """The run in a few words, for the time estimates: "1280x736x121, 50 steps[, N videos]"; a resumed run's
    steps left: "20 of 50 steps"."""
    left = f"{request.steps - first_step} of " if first_step else ""
    what = f"{request.width}x{request.height}x{request.frames}, {left}{request.steps} steps"
    return what + (f", {videos} videos" if videos > 1 else "")


def _guided_steps(request: GenerationRequest, settings: Settings) -> int:
    """How many steps call the transformer for the negative prompt too: those of the guidance window that the run
    samples (a resumed run: from `settings.first_step` on)."""
    from motif_lite.sampling import guided_steps

    return len(guided_steps(settings.guidance.value, request.steps, settings.first_step))


def _sampled_steps(request: GenerationRequest, settings: Settings) -> int:
    """How many steps the run samples: all of them, or a resumed run's steps left."""
    return request.steps - settings.first_step


def transformer_calls(request: GenerationRequest, settings: Settings) -> int:
    """Transformer calls of one video of `request`: one per step sampled, and one more per guided step (a CPU run
    batches the two guidance predictions only with --batch-guidance, which this count leaves out)."""
    return _sampled_steps(request, settings) + _guided_steps(request, settings)


def run_flops(request: GenerationRequest, settings: Settings, configs: CheckpointConfigs) -> float:
    """FLOPs of one video of `request` (motif_lite.runtime.cost), with the checkpoint's configs or the official."""
    from motif_lite.runtime import cost
    from motif_lite.vae.config import WanVAEConfig

    prompts = tuple(settings.encoded_prompts.values())  # the negative prompt only where a step left is guided
    size = (request.width, request.height, request.frames, _sampled_steps(request, settings))
    text_shape = cost.text_encoder_shape(configs.root)
    vae_config = configs.vae or WanVAEConfig()
    guided = _guided_steps(request, settings)
    return cost.generation_cost(settings.transformer.value, vae_config, text_shape, *size, prompts, guided).total


def gpu_time_note(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    device: torch.device,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
) -> str | None:
    """Before a long GPU run, what it will take: its FLOPs over this GPU's measured matrix-multiply rate, as a range
    (motif_lite.runtime.cost says why "T to 1.5 T"), and the quantizing as it loads that runs on the CPU
    (`quantizing_seconds(sources, on_gpu=True)`), once before the videos; None for a run estimated under
    LONG_GPU_RUN_SECONDS."""
    from motif_lite.runtime import cost

    total = run_flops(request, settings, configs) * videos
    quantizing_total = sum((quantizing or {}).values())
    if total / cost.SLOWEST_GPU_FLOPS + quantizing_total < LONG_GPU_RUN_SECONDS:
        return None  # short on any GPU: no probe on the way to the run
    try:
        throughput = cost.measure_matmul_flops(dtype, seconds=0.2, device=device)
    except RuntimeError:  # e.g. out of memory on a GPU another process fills: the run itself will say more
        return None
    seconds = total / throughput
    if seconds + quantizing_total <= LONG_GPU_RUN_SECONDS:
        return None
    kind, described = str(dtype).split(".")[-1], _described(request, videos, settings.first_step)
    quicker = "For a quick look first: -W 832 -H 480 --video-frames 49 --steps 25"
    if quantizing_total > seconds:  # a smaller video saves little
        quicker = "To skip the quantizing: quantize once with the command its note gives and load that file"
    return (
        f"this run ({described}) is {total:.2g} FLOPs: about {_duration(seconds)} to "
        f"{_duration(1.5 * seconds)} on this GPU ({throughput / 1e12:.0f} TFLOP/s {kind} matrix multiply now; "
        f"attention and streamed weights are slower){_quantizing_words(quantizing)}. {quicker}"
    )


def _duration(seconds: float) -> str:
    """ "1 minute", "25 minutes", "2.5 hours", "40 days": what follows "about" in a time note (never "0 minutes": a
    quantizing of a few seconds is about a minute, as the whole estimate is approximate)."""
    if seconds < 5400:
        return counted(max(1, round(seconds / 60)), "minute")
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"
