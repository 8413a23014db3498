"""The flags of `motif-lite run`, grouped as `--help` shows them (stable-diffusion.cpp names where they exist).

Defaults shown in `--help` come from `GenerationRequest`; the checkpoint-dependent ones (sampler, shift, guidance)
are None here so that `motif_lite.settings` can tell a flag from a default.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from motif_lite.choices import (
    ATTENTION_BACKENDS,
    ATTENTION_MODES,
    CRF_RANGES,
    DTYPE_NAMES,
    GUIDANCE_METHODS,
    KERNEL_BACKENDS,
    MOTIF_REPO,
    SAMPLER_ALIASES,
    SAMPLERS,
    choice_name,
    chosen_gpus_command,
    dtype_name,
    gpu_numbers,
    lines_size,
    misspelled_guidance,
    sampler_hint,
    split_size,
)
from motif_lite.cli.common import text_from_argv
from motif_lite.errors import Audience, ConfigError
from motif_lite.flag_spelling import is_number, lookalike_number_note
from motif_lite.frame_rates import parse_rate
from motif_lite.io.linked import refuse_file_beside_gguf
from motif_lite.paths import path_arg
from motif_lite.request import (
    I2V_SHIFT,
    MAX_SEED,
    REQUEST_DEFAULTS,
    SEED_RANGE,
    T2V_SHIFT,
)
from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS
from motif_lite.weights.lora_values import split_strength

DTYPE_HELP = (
    "compute dtype (default bf16; fp16 before compute capability 8.0, which lacks bf16 tensor cores, fp32 on the GTX "
    "16xx and before 7.0); bf16 is the published one, and in fp16 the text encoder stays bf16"
)
GGUF_HELP = (
    "quantized transformer (a .gguf file, a folder holding one, or a variant of the GGUF repo, e.g. Q4_K_M); the "
    "transformer config still comes from -m"
)
# Far beyond any real batch (100,000 videos of the official size take years on one GPU); a typo's 10**30 made the
# list of the batch's requests until the machine ran out of memory.
MAX_BATCH_COUNT = 100_000


class StoreOnce(argparse.Action):
    """Store a flag's one value, as argparse's default action does, but refuse the flag given again with another
    value: argparse keeps the last silently, so `-p "a red fox" -p "a blue bird"` ran the blue bird alone (one run
    makes one prompt's videos). The same value twice is harmless (a script that repeats a flag). A value counts as
    given when it is not the default object itself: argparse puts the default there first, and a value from the
    command line is a new object. `why`: words the refusal ends with, where the flag's meaning makes a second value
    likely to be a misunderstanding (`-i first.png -i last.png` for a first and a last frame)."""

    def __init__(self, *args: Any, why: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.why = why

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest, self.default)
        if before is not self.default and before != values:
            why = f" ({self.why})" if self.why else ""
            raise argparse.ArgumentError(
                self, f"given twice, as {_shown(before)} and then {_shown(values)}: give it once{why}"
            )
        setattr(namespace, self.dest, values)


def _shown(value: object, limit: int = 40) -> str:
    """A flag's value in an error line, quoted, its end cut when long (a whole prompt would bury the message)."""
    text = str(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def add_run_flags(run: argparse.ArgumentParser) -> None:
    """Every flag of `motif-lite run`."""
    for add in (
        _add_generation_flags, _add_guidance_flags, _add_model_flags, _add_confirmation_flags, _add_lora_flags,
        add_attention_flags, add_speed_flags, _add_parallel_flags, add_text_encoder_flags, add_weight_file_flags,
    ):  # fmt: skip
        add(run)


def _add_generation_flags(run: argparse.ArgumentParser) -> None:
    d = REQUEST_DEFAULTS
    g = run.add_argument_group("generation")
    # The prompts and the first frame refuse a second, different value (`StoreOnce`): a second -i was taken for a
    # last frame and silently became the first. Other flags keep argparse's "the last one wins", which wrappers and
    # aliases rely on to override a flag they set.
    g.add_argument(
        "-p",
        "--prompt",
        action=StoreOnce,
        type=text_from_argv,
        help="what the video shows (required, except with --dry-run, --resume and --settings-from)",
    )
    g.add_argument(
        "-n",
        "--negative-prompt",
        action=StoreOnce,
        type=text_from_argv,
        default=d.negative_prompt,
        help="what to avoid (default: the official negative prompt)",
    )
    g.add_argument(
        "-i",
        "--image",
        "--init-img",
        action=StoreOnce,
        why="one run starts from one image, its first frame; a last frame is not offered",
        type=path_arg,
        help="first frame for image-to-video (png, jpg, webp, ...): resized to -W x -H as the reference pipeline "
        "does, stretched where its shape differs, never cropped or padded (a note gives a -W/-H of its shape)",
    )
    g.add_argument(
        "--extend",
        action=StoreOnce,
        type=path_arg,
        metavar="CLIP",
        help="go on from a clip (a video file, or a PNG sequence fox_%%03d.png): its last frame is the first frame, "
        "and -o holds the clip's frames, then the new ones (the clip is decoded and encoded again); its size and "
        "frame rate are the defaults of -W/-H/--fps",
    )
    g.add_argument(
        "-W", "--width", type=size_side, default=d.width, help=f"width in pixels, multiple of 16 (default {d.width})"
    )
    g.add_argument(
        "-H",
        "--height",
        type=size_side,
        default=d.height,
        help=f"height in pixels, multiple of 16 (default {d.height})",
    )
    g.add_argument(
        "--video-frames",
        type=frame_count,
        default=d.frames,
        help=f"frames, 4k+1 (others are rounded; default {d.frames})",
    )
    g.add_argument(
        "--fps",
        type=frame_rate,
        default=d.fps,
        help=f"frames per second of the file (default {d.fps:g}); 24000/1001 or 23.976 is NTSC's exact rate",
    )
    g.add_argument("--steps", type=whole_number, default=d.steps, help=f"sampling steps (default {d.steps})")
    g.add_argument(
        "--flow-shift",
        type=decimal,
        default=None,
        help=f"flow shift (default: checkpoint's, else {T2V_SHIFT:g} T2V / {I2V_SHIFT:g} I2V)",
    )
    g.add_argument(
        "--sampling-method",
        type=_sampler,
        choices=tuple(SAMPLERS),
        default=None,
        help="sampler (default: the checkpoint's scheduler, else euler)",
    )
    g.add_argument(
        "-s",
        "--seed",
        type=seed_value,
        default=-1,
        help=f"random seed, 0 to {MAX_SEED} (32 bits); -1 = random, printed (default -1)",
    )
    g.add_argument(
        "-o",
        "--output",
        type=path_arg,
        help="the video file, .mp4 .mkv .mov .webm .webp .gif or out_%%03d.png (out.png for one frame); an existing "
        "file is "
        "replaced (default output.mp4, or output-2.mp4, output-3.mp4, ... when it exists: the default never replaces "
        "an earlier video)",
    )
    add_crf_flag(g)
    g.add_argument(
        "-b",
        "--batch-count",
        type=_batch_count,
        default=1,
        metavar="N",
        help="make N videos one after another with seeds SEED, SEED+1, ... (the model loads once); their files "
        "get -1, -2, ... before the extension (default 1)",
    )
    g.add_argument(
        "--resume",
        type=path_arg,
        metavar="FILE",
        help="go on with a run that stopped while sampling (Ctrl-C, out of memory, a crash): FILE is the "
        ".latents.safetensors it kept beside its output (or, when that disk was full, in "
        "$XDG_CACHE_HOME/motif-lite/latents, else ~/.cache/motif-lite/latents; its message said where). "
        "The video's settings and the model come from FILE; -o, --crf, -i for a moved image, a model flag (-m for a "
        "moved checkpoint: a note says what changed) and the device, memory and speed flags may be given anew",
    )
    g.add_argument(
        "--settings-from",
        type=path_arg,
        metavar="FILE",
        help="make a video again with the settings stored in FILE, a video or image motif-lite wrote (.mp4 .mkv .mov "
        ".webm .webp .gif .png): prompt, negative prompt, seed, size, frames, fps, steps, sampler, flow shift and "
        "guidance method, scale and APG parameters (the rest of the guider and the sigma spacing are the "
        "checkpoint's: a note names those that differ); every flag given wins over them (-s -1: a new seed), and -p "
        "may be left out. The model comes from this command's flags; an image-to-video file needs -i again",
    )


def add_crf_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--crf, as `run` and `decode` take it: an encoding option of the output file, not a setting of the video."""
    parser.add_argument(
        "--crf",
        type=crf_value,
        metavar="N",
        help="the video encoder's constant-rate factor, lower = better and larger: .mp4 .mkv .mov (H.264) 0-51, "
        "default 18; .webm (VP9) 0-63, default 30. H.264 at 28 makes a smaller file to share, at 12 a near-lossless "
        "one to edit. Not for .webp, .gif or PNG",
    )


def whole_number(text: str) -> int:
    """A whole number (--steps); argparse alone says "invalid int value", which names neither the flag's unit nor
    what was wrong (`20.5`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, got {text!r}{lookalike_number_note(text, int)}"
        ) from None


def size_side(text: str) -> int:
    """-W or -H: pixels. Other tools' ways of giving the size in one value (`1280x720`, `720p`) get the two flags
    they stand for."""
    if (size := split_size(text)) is not None:
        raise argparse.ArgumentTypeError(f"takes one side in pixels: the size {text} is -W {size[0]} -H {size[1]}")
    if (size := lines_size(text)) is not None:  # a video's height in lines, 16:9 (720p: 1280x720)
        raise argparse.ArgumentTypeError(f"takes pixels: {text} is -H {size[1]}, and -W {size[0]} makes it 16:9")
    return whole_number(text)


@dataclass(frozen=True)
class SecondsGiven:
    """--video-frames given a length in seconds: an error whose frame count needs the run's --fps, which an
    argparse type cannot see (it may even come later); `run_inputs.refuse_seconds` says it once every flag is parsed."""

    seconds: float


def frame_count(text: str) -> int | SecondsGiven:
    """--video-frames: frames. A length in seconds (`5s`, as a duration is written elsewhere) is kept for
    `refuse_seconds`, which gives the frames it is at the run's --fps."""
    number = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"  # 5, 2.5, .5, 1e3
    duration = re.fullmatch(rf"\s*({number})\s*(s|sec|secs|seconds?)\s*", text, flags=re.IGNORECASE)
    if duration and float(duration[1]) > 0:
        return SecondsGiven(float(duration[1]))
    return whole_number(text)


def decimal(text: str) -> float:
    """A number (--cfg-scale, --fps, ...); one written with a decimal comma (`7,5`, as many locales write it) gets
    the same number with a point, where argparse said only "invalid float value"."""
    try:
        return float(text)
    except ValueError:
        pass
    if re.fullmatch(r"\s*-?\d+,\d+\s*", text):
        raise argparse.ArgumentTypeError(f"takes a decimal point, not a comma: {text.strip().replace(',', '.')}")
    raise argparse.ArgumentTypeError(f"must be a number, got {text!r}{lookalike_number_note(text)}")


def frame_rate(text: str) -> float:
    """--fps's rate: a number as `decimal` takes it, a fraction (24000/1001, as ffmpeg's -r takes it) or an NTSC
    rate's name (23.976, ntsc-film), which is its exact rate (`frame_rates.parse_rate`)."""
    try:
        return parse_rate(text)
    except ValueError as error:
        if "/" in text:
            raise argparse.ArgumentTypeError(str(error)) from None
    return decimal(text)  # no number: its message (a decimal comma, say)


def seed_value(text: str) -> int:
    """--seed's whole number (its range is the request's to check); a word such as ComfyUI's "randomize" gets the
    -1 that draws a random seed, where argparse would say only "invalid int value"."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {SEED_RANGE}, got {text!r}{lookalike_number_note(text, int)}"
        ) from None


def crf_value(text: str) -> int:
    """--crf's number: a whole number within some codec's range (0-63). The range of the output's own codec (H.264:
    0-51) is checked against -o once the output is known, before anything loads (`io.video.check_crf`)."""
    low = min(low for low, _ in CRF_RANGES.values())
    high = max(high for _, high in CRF_RANGES.values())
    ranges = ", ".join(f"{codec} {first}-{last}" for codec, (first, last) in CRF_RANGES.items())
    expected = f"a whole number from {low} to {high} ({ranges}; lower is better and larger)"
    try:
        value = int(text)
    except ValueError:  # argparse would say "invalid crf_value value"
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def _add_guidance_flags(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group(
        "guidance",
        # The run parser's raw formatter keeps this as written: lines end where the docs' 115 columns would.
        "Default: the checkpoint's guider/guider_config.json (method and every parameter; enabled: false = none),\n"
        "else the official APG (scale 8, norm threshold 12, momentum 0.1). A flag changes only what it names.",
    )
    g.add_argument(
        "--cfg-scale",
        type=decimal,
        help="guidance scale, as diffusers' guider reads it (default: the guider's, else 8); no guidance: 0 with "
        "the official guider, 1 with a standard-formulation one",
    )
    g.add_argument(
        "--guidance",
        type=_guidance,
        choices=GUIDANCE_METHODS,
        help="apg or classic cfg (default: the guider's method); another method than the guider's takes its "
        "official parameters",
    )
    # Any eta is taken, as diffusers' APG takes it: refusing a value the reference runs would keep its results out
    # of reach; the help says what it does and where it is usually set.
    g.add_argument(
        "--apg-eta",
        type=decimal,
        help="the weight APG gives the guidance update's part parallel to the prediction: 0 drops it (less "
        "saturation), "
        "1 keeps it as classic CFG would; usually 0..1, above 1 amplifies it (default: the guider's, else 1)",
    )
    g.add_argument(
        "--apg-norm-threshold",
        type=decimal,
        help="clip APG's guidance norm to this (0 = off; default: the guider's, else 12)",
    )
    g.add_argument(
        "--apg-momentum",
        type=decimal,
        help="momentum of APG's running guidance average (0 = off; default: the guider's, else 0.1); a negative "
        "one, the APG paper's reverse momentum, is allowed",
    )


def _sampler(text: str) -> str:
    """ComfyUI's `dpmpp_2m` (and other spellings) as `dpm++2m`, its `uni_pc` and `uni_pc_bh2` as `unipc`; argparse's
    choices name anything else, and ours closest to another tool's sampler that is not here (sd.cpp's euler_a) or
    to a typo (eulr)."""
    name = choice_name(text, tuple(SAMPLERS), SAMPLER_ALIASES)
    if name not in SAMPLERS and (hint := sampler_hint(text)):
        choices = ", ".join(repr(ours) for ours in SAMPLERS)
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices}){hint}")
    return name


def kernel_backend(text: str) -> str:
    """--kernels' backend in any letter case (Triton, TORCH), as --dtype and --guidance take theirs."""
    return choice_name(text, KERNEL_BACKENDS)


def _guidance(text: str) -> str:
    """The guidance method; a number is stable-diffusion.cpp's `--guidance` (a scale), which is --cfg-scale here."""
    try:
        float(text)
    except ValueError:
        name = choice_name(text, GUIDANCE_METHODS)
        if name not in GUIDANCE_METHODS and (typo := misspelled_guidance(text)):
            choices = ", ".join(repr(method) for method in GUIDANCE_METHODS)
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices}){typo}") from None
        return name
    raise argparse.ArgumentTypeError(f"takes the method, apg or cfg; the guidance scale is --cfg-scale {text}")


def quantize_type(text: str) -> str:
    """--quantize's type as the quantizer names its recipe (any letter case, its aliases: q4_k is Q4_K_M), or the
    argparse error listing them."""
    from motif_lite.quantize.recipes import get_recipe

    try:
        return get_recipe(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def text_encoder_quantize_type(text: str) -> str:
    """--text-encoder-quantize's type as the quantizer names its text encoder recipe (any letter case, q4_k is
    Q4_K_M), or the argparse error listing them."""
    from motif_lite.quantize.text_recipes import get_text_recipe

    try:
        return get_text_recipe(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_checkpoint_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """-m and --gguf, as every command that reads a checkpoint takes them."""
    parser.add_argument(
        "-m", "--model", type=path_arg, default=MOTIF_REPO, help=f"checkpoint folder or Hub repo (default {MOTIF_REPO})"
    )
    parser.add_argument("--gguf", type=path_arg, help=GGUF_HELP)


def _add_model_flags(run: argparse.ArgumentParser) -> None:
    m = run.add_argument_group("model and runtime")
    add_checkpoint_flags(m)
    m.add_argument(
        "--quantize",
        type=quantize_type,
        metavar="TYPE",
        help="quantize the transformer's safetensors to TYPE as they load (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, ...); "
        "as python -m motif_lite.quantize --type TYPE would (stable-diffusion.cpp's --type): the memory of a GGUF, "
        "no file written; every run quantizes again (K-quants take minutes on a CPU)",
    )
    m.add_argument(
        "--text-encoder-quantize",
        type=text_encoder_quantize_type,
        metavar="TYPE",
        help="quantize the text encoder's safetensors to TYPE as they load (Q8_0, Q6_K, Q5_K_M, Q4_K_M); as python "
        "-m motif_lite.quantize --component text_encoder --type TYPE would: the memory of --text-encoder-gguf, no "
        "file written; every run quantizes again",
    )
    add_device_flags(
        m,
        device_help="auto, cpu, cuda or cuda:N (default auto); a dry run may plan for any",
        vram_help="device memory budget: stream/chunk/tile to fit it (default: the GPU's free memory; CPU: no limit)",
    )
    m.add_argument(
        "--dry-run",
        action="store_true",
        help="print the settings and the memory plan, then exit: reads and downloads no weights, needs no -p",
    )


def add_device_flags(group: argparse._ArgumentGroup, *, device_help: str, vram_help: str) -> None:
    """The device, compute type, kernels and memory budgets of a command that runs the transformer (run, serve)."""
    group.add_argument("--dtype", type=dtype_name, choices=DTYPE_NAMES, help=DTYPE_HELP)  # None: the device's default
    group.add_argument("--device", default="auto", help=device_help)
    group.add_argument(
        "--kernels",
        type=kernel_backend,
        choices=KERNEL_BACKENDS,
        default="auto",
        help="kernel backend (default auto): auto runs our Triton kernels on an NVIDIA GPU Triton can build for, else "
        "torch's ops (the same math), and a kernel that fails mid-run falls back to torch with a warning; triton "
        "stops with the kernel's error instead",
    )
    group.add_argument("--vram", type=vram_gib, metavar="GiB", help=vram_help)
    group.add_argument(
        "--ram",
        type=gib,
        metavar="GiB",
        help="host memory budget: refuse before loading if the run would need more; decides whether streamed "
        "weights are page-locked (default: no limit)",
    )


def _add_confirmation_flags(run: argparse.ArgumentParser) -> None:
    c = run.add_argument_group("long runs")
    c.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"start a CPU run estimated at over {LONG_CPU_RUN_SECONDS // 60} minutes without asking "
        "(without a terminal to ask on, such a run is refused unless --yes is given)",
    )


def gib(text: str) -> float:
    """A memory budget in GiB: a finite number > 0, optionally followed by G, GB or GiB (in any case: "8GB" is taken
    as 8 GiB, as a card sold as 8 GB has) or by M, MB or MiB (MiB: "8000MB" is 7.8 GiB), which argparse reports as
    a usage error otherwise."""
    number = text.strip()
    megabytes = re.search(r"\s*(m|mb|mib)$", number, flags=re.IGNORECASE)
    if megabytes:
        return positive_number(number[: megabytes.start()], "GiB", text) / 1024
    return positive_number(re.sub(r"\s*(g|gb|gib)$", "", number, flags=re.IGNORECASE), "GiB", text)


# More GiB than any one GPU holds (the largest, in 2026, hold under 300 GiB): a larger --vram is a slip of units.
MOST_VRAM_GIB = 1024


def vram_gib(text: str) -> float:
    """--vram's budget (`gib`), refusing one that no GPU has: `--vram 8192`, meant as MiB (nvidia-smi's unit), was
    planned for 8192 GiB without a word where no GPU is there to compare it with (`--dry-run --device cuda` on
    another machine, as docs/memory.md suggests); on a GPU it was planned for the free memory, with a warning."""
    value = gib(text)
    if value >= MOST_VRAM_GIB:
        number = text.strip()
        mib_meant = is_number(number) and value / 1024 < MOST_VRAM_GIB
        as_mib = f"; for {number} MiB give --vram {number}MB ({value / 1024:.2f} GiB)" if mib_meant else ""
        raise argparse.ArgumentTypeError(f"is in GiB, and {value:g} GiB is more than any GPU holds{as_mib}")
    return value


def step_cache_threshold(text: str) -> float:
    """--step-cache's threshold, checked as the step cache checks it (a finite number >= 0) when the flags are read:
    for `serve` too, before any file is looked at or downloaded."""
    from motif_lite.runtime.step_cache import StepCacheConfig  # imports torch: only when the flag is given

    try:
        return StepCacheConfig(float(text)).threshold
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (e.g. 0.05), got {text}") from None


def positive_number(number: str, unit: str, text: str) -> float:
    """`number` as a finite float > 0, else argparse's usage error naming `unit` and what was given (`text`)."""
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of {unit} > 0, got {text}")
    return value


def _add_lora_flags(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("LoRA and previews")
    g.add_argument(
        "--lora",
        type=lora_value,
        action="append",
        default=[],
        metavar="FILE[:STRENGTH]",
        help="a LoRA for the transformer (diffusers/PEFT or kohya/ComfyUI .safetensors, or a folder holding one); "
        "its strength, default 1, is a number after the last colon (C:\\loras\\x.safetensors is a path); repeat for "
        "several",
    )
    g.add_argument(
        "--preview",
        type=path_arg,
        metavar="FILE",
        help="while sampling, keep rewriting a cheap preview: .png (middle frame) or .webp (every latent frame)",
    )
    g.add_argument(
        "--preview-every",
        type=positive_int,
        metavar="K",
        help=(
            "steps between previews; default: a quarter of --steps, rounded up (up to 3 previews); none after the "
            "last step, so K must be below --steps"
        ),
    )


def lora_value(text: str) -> str:
    """`--lora FILE[:STRENGTH]`, its file checked not to be empty as the flags are read: `--lora "$LORA:0.8"` with
    LORA unset gives ":0.8", the current folder at strength 0.8, which took the one LoRA file found there."""
    file, strength = split_strength(path_arg(text))
    if strength is not None and not file.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} gives a strength but no file (an unset variable in a script?): use FILE:STRENGTH, e.g. "
            "style.safetensors:0.8"
        )
    return text


def add_text_encoder_flags(run: argparse.ArgumentParser) -> None:
    add_text_encoder_gguf_flag(run.add_argument_group("text encoder"))


def add_text_encoder_gguf_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--text-encoder-gguf",
        type=path_arg,
        metavar="FILE",
        help="quantized T5Gemma2 text encoder, used instead of -m's text_encoder/ weights: 4.7 GB in Q8_0 instead "
        "of 8.6 GB, memory-mapped; python -m motif_lite.quantize CKPT --component text_encoder -o te-Q8_0.gguf "
        "--type Q8_0 makes it, and its config must match -m's text_encoder/config.json",
    )


def add_weight_file_flags(parser: argparse.ArgumentParser, text_encoder_gguf: bool = True) -> None:
    """--diffusion-model, --text-encoder and --vae; `text_encoder_gguf`: whether the command reads a text encoder
    GGUF (verify does not: diffusers, its reference, cannot)."""
    te_gguf = (
        "or a .gguf file (as --text-encoder-gguf)" if text_encoder_gguf else "not a .gguf file (diffusers reads none)"
    )
    g = parser.add_argument_group(
        "weight files you already have (docs/usage.md, Weight files you already have)",
        # Line breaks of its own: the commands' raw description formatter (kept for their examples) keeps it as is.
        "One file per component, e.g. ComfyUI's renamed copies of the official weights\n"
        "(models/diffusion_models/motifvideo_2b.safetensors, ...): used instead of -m's weights for that component,\n"
        "while -m still gives the configs and the tokenizer (from the Hub: tens of MB instead of the weights' GB).",
    )
    g.add_argument(
        "--diffusion-model",
        type=path_arg,
        metavar="FILE",
        help="the transformer as one file: .safetensors (diffusers or ComfyUI tensor names), or a .gguf file "
        "(as --gguf)",
    )
    g.add_argument(
        "--text-encoder",
        type=path_arg,
        metavar="FILE",
        help=f"the T5Gemma2 text encoder as one file: .safetensors (the checkpoint's text_encoder/model.safetensors), "
        f"{te_gguf}",
    )
    g.add_argument(
        "--vae",
        type=path_arg,
        metavar="FILE",
        help="the Wan2.1 VAE as one file: .safetensors (the checkpoint's vae/diffusion_pytorch_model...)",
    )


def take_weight_flags(args: argparse.Namespace) -> dict[str, str]:
    """--diffusion-model / --text-encoder / --vae as `locate_sources`' `weights`. A .gguf file given to the first two
    is moved to --gguf / --text-encoder-gguf (`args` is updated, so a second call gives the same); giving both for
    one component is an error."""
    given = {"transformer": getattr(args, "diffusion_model", None), "text_encoder": getattr(args, "text_encoder", None)}
    refuse_file_beside_gguf(
        given, getattr(args, "gguf", None), getattr(args, "text_encoder_gguf", None), audience=Audience.FLAGS
    )
    files = {}
    for flag, component, gguf_flag in (
        ("diffusion_model", "transformer", "gguf"),
        ("text_encoder", "text_encoder", "text_encoder_gguf"),
        ("vae", "vae", None),
    ):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if gguf_flag is not None and str(value).lower().endswith(".gguf"):
            setattr(args, gguf_flag, value)
            setattr(args, flag, None)
        else:
            files[component] = value
    return files


def positive_int(text: str) -> int:
    """A whole number >= 1 (--batch-count, --preview-every, serve's --max-queue), worded as the request's checks
    word theirs."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _batch_count(text: str) -> int:
    count = positive_int(text)
    if count > MAX_BATCH_COUNT:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_BATCH_COUNT:,}, got {text}: run a larger batch as several commands, each with "
            "its own -s SEED"
        )
    return count


SAGE_HINT = "8-bit attention (SageAttention's scheme, in motif-lite's own kernel; lossy) is --attention int8"


def _attention(text: str) -> str:
    """--attention's mode; SageAttention's name (ComfyUI's --use-sage-attention) and the exact kernels' names (which
    are --attention-backend's) get the flag they mean."""
    if text.lower().startswith("sage"):
        raise argparse.ArgumentTypeError(f"{text}: {SAGE_HINT}")
    if text in ATTENTION_BACKENDS and text != "auto":
        raise argparse.ArgumentTypeError(
            f"{text} is an exact attention kernel: --attention-backend {text} (--attention is exact or int8)"
        )
    return choice_name(text, ATTENTION_MODES)  # INT8, Exact: any letter case, as the other choices


def _attention_backend(text: str) -> str:
    """--attention-backend's kernel; SageAttention's name or int8 (8-bit attention is --attention int8) get a hint."""
    if text.lower().startswith("sage") or text.lower() == "int8":
        raise argparse.ArgumentTypeError(f"{text}: {SAGE_HINT}; --attention-backend chooses among exact kernels")
    return choice_name(text, ATTENTION_BACKENDS)  # SDPA, Flash: any letter case


def add_attention_flags(run: argparse.ArgumentParser) -> None:
    a = run.add_argument_group("attention")
    a.add_argument(
        "--attention",
        type=_attention,
        choices=ATTENTION_MODES,
        default="exact",
        help="exact (default) or int8: 8-bit attention (INT8 QK; FP8 PV on RTX 40xx/H100 and newer) for GPUs "
        "with INT8 tensor cores (RTX 30xx/A100 and newer); slightly lossy, and a whole step with it is not yet "
        "timed (the first version was no faster on an H200). Elsewhere (CPU, --kernels "
        "torch, older GPUs) exact attention with one warning. See docs/kernels.md",
    )


def _add_parallel_flags(run: argparse.ArgumentParser) -> None:
    p = run.add_argument_group("several GPUs (docs/parallel.md; under torchrun every process runs this command)")
    p.add_argument(
        "--gpus",
        type=_gpu_count,
        metavar="N|all",
        help="run on N GPUs of this machine (all: every GPU this process sees, after CUDA_VISIBLE_DEVICES): starts "
        "N processes as torchrun --nproc-per-node N -m motif_lite run does (with --device cpu: N CPU processes, for "
        "testing)",
    )
    p.add_argument(
        "--sp",
        type=positive_int,
        metavar="N",
        help="sequence-parallel degree, the ranks sharing the video tokens: a divisor of the 12 attention heads "
        "(default: half the ranks with guidance on an even count, the other half runs the unconditional "
        "branch; else all ranks)",
    )
    p.add_argument(
        "--comm-timeout",
        type=_positive_seconds,
        metavar="S",
        help="seconds a rank waits for the others during generation before it gives up (default 600)",
    )


def _gpu_count(text: str) -> int | str:
    """`--gpus`: a number of GPUs, or "all" (counted when the run starts, where torch is loaded anyway)."""
    if text.lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        value = 0
    # GPU numbers, as accelerate's --gpu_ids and other tools' device lists take them (a list of words is no count)
    if "," in text and (indices := gpu_numbers(text)) is not None:
        raise argparse.ArgumentTypeError(
            f"must be a number of GPUs, got the list {text}: to run on those GPUs, choose them with "
            f"CUDA_VISIBLE_DEVICES and count them: {chosen_gpus_command(indices)}"
        )
    if value < 1:  # other tools take 0 or -1 for "every GPU" (PyTorch Lightning) or for "none"
        raise argparse.ArgumentTypeError(
            f"must be a number of GPUs, 1 or more, or all (every GPU this process sees), got {text}; "
            "one process on the CPU is --device cpu"
        )
    return value


# A week: far beyond any wait for the other ranks, and within what a timedelta holds (1e30 overflowed it once the
# processes had started).
MAX_COMM_TIMEOUT_SECONDS = 7 * 24 * 3600


def _positive_seconds(text: str) -> float:
    """A time in seconds: a finite number > 0 (0 or less would fail every wait for the other ranks at once), at most
    a week."""
    seconds = positive_number(text, "seconds", text)
    if seconds > MAX_COMM_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COMM_TIMEOUT_SECONDS:,} seconds (a week), got {text}")
    return seconds


def add_speed_flags(run: argparse.ArgumentParser) -> None:
    s = run.add_argument_group("speed (docs/usage.md, Going faster)")
    s.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile every transformer block; the first step at each size compiles (minutes), later steps "
        "run faster",
    )
    s.add_argument(
        "--attention-backend",
        type=_attention_backend,
        choices=ATTENTION_BACKENDS,
        default="auto",
        help="exact attention kernel; auto = time the candidates at each new attention shape on the GPU (default auto)",
    )
    s.add_argument(
        "--step-cache",
        type=step_cache_threshold,
        metavar="THRESHOLD",
        help="reuse most of the transformer on steps whose first block changed less than THRESHOLD (relative L1), "
        "lossy; 0 = exact; try 0.05-0.1 (default off)",
    )
    s.add_argument(
        "--batch-guidance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the conditional and unconditional predictions as one batch-2 forward (same result; default: on a GPU "
        "when the memory plan allows, off on the CPU where it is slower)",
    )


def run_only_parser() -> argparse.ArgumentParser:
    """A parser of run's flags alone, as the command parses them (no abbreviations): a new one each time, for a
    caller that changes its defaults."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_run_flags(parser)
    return parser
