"""The flags of `motif-lite run`, grouped as `--help` shows them (stable-diffusion.cpp names where they exist).

Defaults shown in `--help` come from `GenerationRequest`; the checkpoint-dependent ones (sampler, shift, guidance)
are None here so that `motif_lite.settings` can tell a flag from a default. The checks of the values that are
numbers are in flag_numbers, of those that name a choice in flag_choices.
"""

from __future__ import annotations

import argparse
from typing import Any

from motif_lite.choices import (
    ATTENTION_BACKENDS,
    ATTENTION_MODES,
    DTYPE_NAMES,
    GUIDANCE_METHODS,
    KERNEL_BACKENDS,
    MOTIF_REPO,
    SAMPLERS,
    dtype_name,
)
from motif_lite.cli.common import text_from_argv
from motif_lite.cli.flag_choices import (
    attention,
    attention_backend,
    guidance,
    kernel_backend,
    quantize_type,
    sampler,
    text_encoder_quantize_type,
)
from motif_lite.cli.flag_numbers import (
    batch_count,
    crf_value,
    decimal,
    frame_count,
    frame_rate,
    gpu_count,
    positive_int,
    positive_seconds,
    ram_gib,
    seed_value,
    size_side,
    step_cache_threshold,
    vram_gib,
    whole_number,
)
from motif_lite.errors import Audience
from motif_lite.io.linked import refuse_file_beside_gguf
from motif_lite.paths import path_arg
from motif_lite.request import (
    I2V_SHIFT,
    MAX_SEED,
    REQUEST_DEFAULTS,
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
        type=sampler,
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
        type=batch_count,
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
        type=guidance,
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
        type=ram_gib,
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


def add_attention_flags(run: argparse.ArgumentParser) -> None:
    a = run.add_argument_group("attention")
    a.add_argument(
        "--attention",
        type=attention,
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
        type=gpu_count,
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
        type=positive_seconds,
        metavar="S",
        help="seconds a rank waits for the others during generation before it gives up (default 600)",
    )


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
        type=attention_backend,
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
