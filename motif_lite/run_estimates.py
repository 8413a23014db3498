"""How long a run will take, in words, before it starts: its FLOPs (motif_lite.runtime.cost) over this machine's
measured matrix-multiply rate, on the CPU plus the fixed cost of its transformer calls and the quantizing as it
loads. Shared by `motif-lite run` (its question before a long CPU run, its note before a long GPU run: cli/run_time),
the server (its refusal of a long CPU job) and the Python API (its warning before a long CPU run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from motif_lite.errors import counted
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.settings import Settings

LONG_CPU_RUN_SECONDS = 600  # a CPU run estimated longer than this asks first (--yes skips the question)
LONG_GPU_RUN_SECONDS = 600  # a GPU run estimated longer than this says how long first (a note, no question)


def cpu_time_note(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
    in_python: bool = False,
    adapter_macs: Mapping[str, int] | None = None,
) -> str | None:
    """How long `videos` videos of `request` would take on this CPU, in words, with the way out, when that is over
    LONG_CPU_RUN_SECONDS (see motif_lite.runtime.cost); None when it is not. Counts with the checkpoint's configs
    (`settings`, `configs`), the official architecture standing in for a missing one; `quantizing`: the seconds of
    quantizing as it loads (`quantizing_seconds`), once before the videos. `in_python`: the way out in the Python
    API's keywords instead of the flags, for `generate`'s warning. `adapter_macs`: the LoRA adapters kept beside packed
    layers (`memory_plan.packed_adapter_macs`; None: none)."""
    import torch

    from motif_lite.runtime import cost

    total = run_flops(request, settings, configs, adapter_macs) * videos
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
        to_fp32 = "load_pipeline(..., dtype=torch.float32)" if in_python else "--dtype fp32"
        message += f"; in float32 it does {fp32 / 1e9:.0f} GFLOP/s ({to_fp32})"
    smaller = "a small size such as " + (
        "width=256, height=256, frames=9, steps=2" if in_python else "-W 256 -H 256 --video-frames 9 --steps 2"
    )
    if quantizing_total > total / throughput + calls * call_seconds:  # a smaller video saves little
        smaller = "quantize once with the command its note gives and load that file"
    return message + f". The CPU is meant for tests{_why_no_gpu()}: use a GPU, or {smaller}"


def _why_no_gpu() -> str:
    """Why this run is not on a GPU, where the machine has none that torch can use: the user may think they have
    one (a CPU-only torch, a driver too old for it), and only the reason says what to fix."""
    import torch

    from motif_lite.devices import no_gpu_reason

    return "" if torch.cuda.is_available() else f" (no GPU here: {no_gpu_reason()})"


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


def run_flops(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    adapter_macs: Mapping[str, int] | None = None,
) -> float:
    """FLOPs of one video of `request` (motif_lite.runtime.cost), with the checkpoint's configs or the official;
    `adapter_macs`: the LoRA adapters kept beside packed layers (`memory_plan.packed_adapter_macs`; None: none)."""
    from motif_lite.runtime import cost
    from motif_lite.runtime.activation_memory import TextEncoderShape
    from motif_lite.vae.config import WanVAEConfig

    prompts = tuple(settings.encoded_prompts.values())  # the negative prompt only where a step left is guided
    size = (request.width, request.height, request.frames, _sampled_steps(request, settings))
    text_shape = TextEncoderShape.of_config(configs.text_encoder_config)  # as read with the configs
    vae_config = configs.vae or WanVAEConfig()
    guided = _guided_steps(request, settings)
    config = settings.transformer.value
    return cost.generation_cost(config, vae_config, text_shape, *size, prompts, guided, adapter_macs).total


def gpu_time_note(
    request: GenerationRequest,
    settings: Settings,
    configs: CheckpointConfigs,
    dtype: torch.dtype,
    device: torch.device,
    videos: int = 1,
    quantizing: dict[str, float] | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> str | None:
    """Before a long GPU run, what it will take: its FLOPs over this GPU's measured matrix-multiply rate, as a range
    (motif_lite.runtime.cost says why "T to 1.5 T"), and the quantizing as it loads that runs on the CPU
    (`quantizing_seconds(sources, on_gpu=True)`), once before the videos; None for a run estimated under
    LONG_GPU_RUN_SECONDS. `adapter_macs`: as `cpu_time_note`'s."""
    from motif_lite.runtime import cost

    total = run_flops(request, settings, configs, adapter_macs) * videos
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
