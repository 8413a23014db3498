"""The hints that depend on the value given to an unknown flag: another tool's flag whose value tells the flags of
ours to type (`--size 1280x720`: -W 1280 -H 720; `--scheduler simple`; `--seconds 5`: --video-frames), and cfg 1
or a sampler that --sampling-method would refuse.

`unknown_flags` picks the hint for a flag; this module words the ones that read its value.
"""

from __future__ import annotations

import argparse
import os
import re

from motif_lite import flag_spelling
from motif_lite.choices import (
    SAMPLER_ALIASES,
    SAMPLERS,
    SIMPLE_SIGMAS,
    choice_name,
    chosen_gpus_command,
    gpu_numbers,
    is_list,
    lines_size,
    sampler_hint,
    split_size,
)
from motif_lite.cli.run_inputs import seconds_in_frames
from motif_lite.shell_syntax import quoted


def value_of(flag: str, following: list[str]) -> str | None:
    """The value an unknown flag was given: after its `=`, else the next word unless that is a flag."""
    if "=" in flag:
        return flag.split("=", 1)[1]
    return following[0] if following and not following[0].startswith("-") else None


# ComfyUI's schedules that step evenly through flow time: `simple` picks the very sigmas of the flow-matching schedule
# here at a step count that divides 1000, and rounds them to its table's at others (`SIMPLE_SIGMAS`); `normal` and
# `sgm_uniform` step from other ends. "Not offered" sent a user of `simple` looking for a schedule they had.
NEAR_SCHEDULES = ("normal", "sgm-uniform")


def _schedule_hint(value: str | None) -> str:
    """What a sigma schedule (stable-diffusion.cpp's --scheduler, ComfyUI's scheduler) is here: the flow-matching
    schedule, shaped by --flow-shift, which steps through flow time as ComfyUI's simple does; any other is not
    offered."""
    spelled = (value or "").lower().replace("_", "-")
    if spelled == "simple":
        return (
            f"{value} needs no flag: the schedule here takes even steps through flow time as it does, shaped by "
            f"--flow-shift (ModelSamplingSD3's shift); with euler or unipc its sigmas are {SIMPLE_SIGMAS}: leave "
            "it out"
        )
    if spelled in NEAR_SCHEDULES:
        return (
            f"{value} is not offered: it ends its steps a little differently from the schedule here, which takes "
            "even steps through flow time as ComfyUI's simple does (shaped by --flow-shift)"
        )
    named = (
        f"a {value} schedule is"
        if re.fullmatch(r"[A-Za-z][\w-]*", value or "")
        else "sigma schedules such as karras are"
    )
    return (
        f"{named} not offered: Motif samples on the flow-matching schedule, which --flow-shift shapes; the sampler "
        "is --sampling-method"
    )


# ComfyUI's and stable-diffusion.cpp's cfg 1 is no guidance; the official guider's formulation (cond + s·update) still
# guides at 1, so "did you mean --cfg-scale?" sent them to a guided run at twice the cost.
CFG_ONE = ("did you mean --cfg-scale? No guidance (their cfg 1) is --cfg-scale 0 with the official guider, where 1 "
           "still guides")  # fmt: skip
# Classic CFG (--guidance cfg) reads the scale as they do (uncond + s·(cond − uncond)): 1 is no guidance there, and 0
# keeps the negative prompt's prediction alone, so the official guider's advice would send them to that.
CLASSIC_CFG_ONE = ("did you mean --cfg-scale? With --guidance cfg, --cfg-scale 1 is no guidance, as their cfg 1 is "
                   "(0 keeps only the negative prompt's prediction)")  # fmt: skip


def other_sampler(value: str | None) -> str | None:
    """For a sampler given to another tool's sampler flag (ComfyUI's `sampler_name euler_ancestral`) that
    --sampling-method would refuse, what its refusal adds (ours closest to it, or the one it misspells), so that the
    hint gives the value to type too; None for a sampler --sampling-method takes, no value, or one it names none for."""
    if value is None or choice_name(value, tuple(SAMPLERS), SAMPLER_ALIASES) in SAMPLERS:
        return None
    return sampler_hint(value)


def is_one(value: str | None) -> bool:
    """Whether `value` reads as the number 1."""
    return flag_spelling.is_number(value or "") and float(value or "") == 1


NO_STRENGTH = ("there is no strength: -i IMAGE is the video's first frame as it is, and --extend CLIP goes on from a "
               "clip")  # fmt: skip


def _strength_hint(value: str | None) -> str:
    """What a denoising strength is here (ComfyUI's denoise, img2img's strength): 1, a full denoise from noise, is
    what every run does; no other value has a counterpart."""
    try:
        whole = float(value or "") == 1
    except ValueError:
        whole = False
    return f"{value} is a full denoise from pure noise, which every run does: leave it out" if whole else NO_STRENGTH


def _size_hint(value: str | None) -> str:
    """-W and -H for a size given as one value: WIDTHxHEIGHT (`split_size`'s forms) or lines (720p), as -W and -H
    themselves read it (`size_side`)."""
    size = split_size(value or "") or lines_size(value or "")
    if size is None:
        return "the size is two flags here, -W WIDTH -H HEIGHT (multiples of 16, e.g. -W 1280 -H 736)"
    return f"the size is two flags here: -W {size[0]} -H {size[1]}"


def _prompt_file_hint(value: str | None) -> str:
    """How to give a prompt kept in a file: there is no prompt-file flag, -p takes the text."""
    from motif_lite.shell_syntax import file_text

    return (
        f"-p takes the prompt's text: read it from the file with -p {file_text(value or 'FILE')} (several prompts: "
        'one run each, docs/usage.md, "Batches")'
    )


def _output_folder_hint(value: str | None) -> str:
    """-o with a file in the folder another tool's output-folder flag names."""
    example = quoted(os.path.join(value, "fox.mp4")) if value else "DIR/fox.mp4"
    return f"-o names the video's file, its folder included: -o {example} (the folder must exist)"


def _gpu_list_hint(value: str | None) -> str:
    """ComfyUI's --cuda-device and accelerate's --gpu-ids choose GPUs: the run on the GPUs the value names, in its
    own numbers ("Did you mean --device?" would send them to one GPU)."""
    numbers = gpu_numbers(value or "")
    example = chosen_gpus_command(numbers or ["2", "3"])  # an example where the value names no GPU
    if numbers is not None and len(numbers) == 1:
        example = f"--device cuda:{numbers[0]}"
    return f"one GPU is --device cuda:N; several are --gpus N, CUDA_VISIBLE_DEVICES choosing which ({example})"


def _devices_hint(value: str | None) -> str:
    """PyTorch Lightning's --devices: a count of GPUs (`2`), or a list of their numbers (`0,1`), run with theirs."""
    numbers = gpu_numbers(value or "") if is_list(value or "") else None
    chosen = f": {chosen_gpus_command(numbers)}" if numbers is not None else ""
    return (
        f"several GPUs: --gpus N (one process each, CUDA_VISIBLE_DEVICES picks which){chosen}; one GPU: --device cuda:N"
    )


# Other tools' flags whose hint shows ours for the value given, with the flag of ours the hint needs.
VALUED_HINTS = {
    **dict.fromkeys(("--cuda-device", "--gpu-ids"), ("--device", _gpu_list_hint)),
    "--devices": ("--gpus", _devices_hint),
    **dict.fromkeys(("--strength", "--denoise", "--denoising-strength"), ("--image", _strength_hint)),
    **dict.fromkeys(("--size", "--resolution", "--res"), ("--width", _size_hint)),
    **dict.fromkeys(("--scheduler", "--schedule"), ("--flow-shift", _schedule_hint)),
    **dict.fromkeys(("--prompt-file", "--prompts-file", "--from-file"), ("--prompt", _prompt_file_hint)),
    **dict.fromkeys(
        ("--output-dir", "--outdir", "--out-dir", "--output-folder", "--save-dir", "--output-directory"),
        ("--output", _output_folder_hint),
    ),
}


def duration_hint(flag: str, following: list[str], args: argparse.Namespace) -> str:
    """What a length in seconds is here: --video-frames, counted as `seconds_in_frames` counts it."""
    try:
        seconds = float(value_of(flag, following) or "")
    except ValueError:
        seconds = None
    return f"{flag}: the length is --video-frames here: {seconds_in_frames(seconds, args)}"
