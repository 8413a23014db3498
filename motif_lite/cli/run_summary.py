"""What `motif-lite run` prints when a video is done: the settings (once per run), times, memory against the plan,
the attention and speed features used, fallbacks and the output."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.errors import counted
from motif_lite.frame_rates import rate_said
from motif_lite.io.staging import described_output
from motif_lite.request import video_seconds
from motif_lite.shell_syntax import old_powershell_comment, quoted_text
from motif_lite.units import RESERVED_RATIO, memory_size

if TYPE_CHECKING:
    import torch

    from motif_lite.gpu_memory import GpuMemory
    from motif_lite.pipeline import GenerationResult
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.planner import Plan
    from motif_lite.settings import Given
    from motif_lite.weights.lora_apply import AppliedLoRAs


def _settings_lines(result: GenerationResult, given: Given | None) -> list[str]:
    if result.settings is None:
        return []
    settings = result.settings if given is None else result.settings.with_given(given)
    return settings.lines()


def summary(
    result: GenerationResult,
    load_seconds: float,
    plan: Plan | None = None,
    loras: AppliedLoRAs | None = None,
    text_encoder: str | None = None,
    with_settings: bool = True,
    ran_on: str | None = None,
    given: Given | None = None,
    gpu_memory: GpuMemory | None = None,
) -> str:
    """The final report of a run (of one video of it); `text_encoder`: the text encoder GGUF in words, when one was
    used; `with_settings`: lead with the settings table (once per run), with the sources the command knows (`given`:
    the flags typed, the files under them) where given; `ran_on`: the device, dtype and GGUF file;
    `gpu_memory`: the GPU's (`gpu_memory_of`), to warn when the peak went past it into system memory."""
    t = result.timings
    r = result.request
    lines = [
        *([prompt_line(r.prompt)] if with_settings else []),
        *(_settings_lines(result, given) if with_settings else []),
        f"done: {r.width}x{r.height}, {counted(r.frames, 'frame')}, {counted(r.steps, 'step')}, seed {r.seed}, "
        f"shift {'dynamic' if result.shift is None else f'{result.shift:g}'}",
        *([image_line(result)] if r.image is not None else []),
        *([_extended_line(result)] if result.clip_frames is not None else []),
        f"time: load {load_seconds:.1f}s | encode {t['encode']:.1f}s | denoise {t['denoise']:.1f}s "
        f"({t['denoise'] / max(1, r.steps - (result.resumed_at or 0)):.2f} s/step) | decode {t['decode']:.1f}s | "
        f"total {load_seconds + t['total']:.1f}s",
        # A parallel run's summary is rank 0's, whose memory is not the other processes': said, not summed.
        f"peak memory{'' if result.parallel is None else ' of rank 0'}: RSS "
        + ("n/a" if result.peak_rss_bytes is None else memory_size(result.peak_rss_bytes))
        + ("" if plan is None or plan.host is None else f" (planned {memory_size(plan.host.peak_bytes)})")
        + _device_peak(result),
        *([f"warning: {spilled}"] if (spilled := _spill_note(result, gpu_memory)) else []),
        f"attention: {result.attention}" + (f", {result.attention_backend}" if result.attention_backend else ""),
        f"output: {described_output(result.output, result.frames_written)}",
    ]
    if ran_on is not None:
        lines.insert(-1, f"ran on: {ran_on}")
    if loras is not None:
        lines.insert(-1, f"loras: {loras.describe()}")
    if text_encoder is not None:
        lines.insert(-1, f"text encoder: {text_encoder}")
    if result.parallel is not None:
        lines.insert(-1, f"parallel: {result.parallel}")
    lines[-1:-1] = speed_lines(result)
    if result.stage_peaks:
        planned = {stage.name: stage.peak_bytes for stage in plan.stages} if plan is not None else {}
        lines.insert(-1, "device peak per stage: " + " | ".join(
            f"{name} {memory_size(peak)}" + (f" (planned {memory_size(planned[name])})" if name in planned else "")
            for name, peak in result.stage_peaks.items()
        ))  # fmt: skip
    if result.resumed_at is not None and result.resumed_at == r.steps:  # its state after the last step
        lines.insert(-1, "resumed: every step sampled by the run that stopped, only the decode ran here")
    elif result.resumed_at is not None:
        here, before = _step_range(result.resumed_at + 1, r.steps), _step_range(1, result.resumed_at)
        lines.insert(-1, f"resumed: {here} sampled here, {before} by the run that stopped")
    if result.fallbacks_said is not None:
        lines.insert(-1, result.fallbacks_said)
    return "\n".join(lines)


def _device_peak(result: GenerationResult) -> str:
    """ ", device 5.46 GiB allocated, 5.96 GiB reserved" on CUDA (reserved is what nvidia-smi compares with), "" on
    the CPU; a result without the reserved peak gives the allocated one alone."""
    if result.peak_device_bytes is None:
        return ""
    if result.peak_reserved_bytes is None:
        return f", device {memory_size(result.peak_device_bytes)}"
    return (
        f", device {memory_size(result.peak_device_bytes)} allocated, "
        f"{memory_size(result.peak_reserved_bytes)} reserved"
    )


def _spill_note(result: GenerationResult, gpu_memory: GpuMemory | None) -> str | None:
    from motif_lite.gpu_memory import sysmem_spill_note  # torch: not for `--help`, which imports this module

    # Reserved memory is what the driver must place: past the GPU's total it spilled, even where allocated did not.
    reserved = result.peak_reserved_bytes
    peak = result.peak_device_bytes if reserved is None else reserved
    return sysmem_spill_note(peak, gpu_memory, _vram_within(result, gpu_memory))


def _vram_within(result: GenerationResult, gpu_memory: GpuMemory | None) -> float | None:
    """The --vram (GiB, rounded down) whose plan would have stayed within the GPU: a plan allocates up to its
    budget, and the allocator reserved this run's measured ratio of reserved to allocated on top (the planner's
    RESERVED_RATIO where the reserved peak is unknown); None without the GPU's facts or a peak."""
    allocated, reserved = result.peak_device_bytes, result.peak_reserved_bytes
    if gpu_memory is None or not allocated:
        return None
    ratio = max(reserved / allocated, 1.0) if reserved else RESERVED_RATIO
    return math.floor(gpu_memory.total_bytes / ratio / 2**30 * 100) / 100


def gpu_memory_of(device: torch.device) -> GpuMemory | None:
    """The facts the summary's spill warning needs about the GPU a run used; None on the CPU."""
    import torch  # not for `--help`, which imports this module

    from motif_lite.gpu_memory import GpuMemory
    from motif_lite.io.wsl import windows_gpu_driver

    if device.type != "cuda":
        return None
    return GpuMemory(torch.cuda.get_device_properties(device).total_memory, windows_gpu_driver())


def _extended_line(result: GenerationResult) -> str:
    """What an extended video's file holds (the done line counts the new frames only)."""
    r = result.request
    return (
        f"extended: {Path(r.extend).name}'s {counted(result.clip_frames, 'frame')}, then {r.frames - 1} new: "
        f"{result.frames_written} frames, {video_seconds(result.frames_written, r.fps):g} s at {rate_said(r.fps)}"
    )


def image_line(result: GenerationResult) -> str:
    """The input image and what was done to it (the notes before loading said it too, long scrolled away)."""
    return _image_words(result.request, result.image_size)


def planned_image_line(request: GenerationRequest) -> list[str]:
    """A dry run's line on the first frame, as the summary words it (`image_line`): without it a dry run of an
    image-to-video said nothing of the image where its shape fitted, not even that it was taken. Empty without an
    image, or where the first frame is a clip's (`--extend`)."""
    from motif_lite.io.image import upright_size

    if request.image is None or request.extend is not None:
        return []
    size = upright_size(request.image) if request.conditions_on_image else None
    return [_image_words(request, size)]


def _image_words(request: GenerationRequest, image_size: tuple[int, int] | None) -> str:
    from motif_lite.io.image import resize_description  # torch: not for `--help`, which imports this module

    r = request
    if image_size is None:  # the request was not image-to-video after all (`conditions_on_image`)
        return f"image: {r.image} not used: a 1-frame video is one latent frame, which the image does not condition"
    return f"image: {r.image}, {resize_description(image_size, r.width, r.height)}"


def _step_range(first: int, last: int) -> str:
    """ "step 1", "steps 2-4"."""
    return f"step {first}" if first == last else f"steps {first}-{last}"


def speed_lines(result: GenerationResult) -> list[str]:
    """One summary line per speed feature that was in use."""
    lines = []
    if result.guidance_batch > 1:
        lines.append("guidance: conditional + unconditional predictions in one batch-2 forward per guided step")
    if result.compile_seconds is not None:
        lines.append(f"compile: ~{result.compile_seconds:.1f}s, the first step's extra time (compiling the blocks)")
    if result.step_cache is not None:
        reused, calls = result.step_cache
        lines.append(f"step cache: {reused} of {calls} transformer calls reused")
    return lines


PROMPT_SHOWN = 100  # characters of the prompt shown: its start says which one it is


def prompt_line(prompt: str | None) -> str:
    """The prompt as a dry run and the summary show it (the settings table has no row for it): quoted for the
    user's shell (`quoted_text`), so that it pastes after -p as it stands, and cut when long. On Windows a prompt
    holding a double quote ends in the comment that gives it as PowerShell 5.1 and 7.0 to 7.2 take it
    (`old_powershell_comment`), as a command line typed again does: pasted as shown, those drop the quote."""
    if prompt is None:
        return "prompt: none (a dry run needs none; a run takes it with -p)"
    if not prompt.strip():  # taken with a first frame alone (`request.field_checks.check_prompt`)
        return f"prompt: {quoted_text(prompt)} (empty: the first frame moves with no text)"
    if len(prompt) <= PROMPT_SHOWN:
        return f"prompt: {quoted_text(prompt)}{old_powershell_comment([prompt], quoted_text)}"
    shown = prompt[: PROMPT_SHOWN - 3]
    return f"prompt: {quoted_text(shown)}... ({len(prompt)} characters){old_powershell_comment([shown], quoted_text)}"
