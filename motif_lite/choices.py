"""The names users choose from on the command line and in requests, and how a name or size typed another way is
read (other tools' spellings, typos), importable without torch.

`motif-lite --help` builds its parser from these, so it must not pay for importing torch and transformers.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import TypeVar

from motif_lite.errors import Audience
from motif_lite.shell_syntax import with_variable

T = TypeVar("T")

MOTIF_REPO = "Motif-Technologies/Motif-Video-2B"
GGUF_REPO = "Motif-Technologies/Motif-Video-2B-GGUF"
DTYPE_NAMES = ("bf16", "fp16", "fp32")
# Other names of the same dtypes (torch's, numpy's, other tools'), which --dtype takes as the name they stand for.
DTYPE_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "f16": "fp16", "float32": "fp32",
                 "float": "fp32", "f32": "fp32"}  # fmt: skip
KERNEL_BACKENDS = ("auto", "torch", "triton")
ATTENTION_MODES = ("exact", "int8")  # --attention: exact softmax attention, or 8-bit (INT8 QKᵀ, FP8/16-bit P·V)
GUIDANCE_METHODS = ("apg", "cfg")
# Other tools' guidance methods, not here, that are spelled close to ours (perturbed-attention, skip-layer and
# spatiotemporal skip guidance, CFG-Zero*, CFG++): no typo of apg or cfg, so the refusal guesses none.
OTHER_GUIDANCE_METHODS = ("pag", "slg", "stg", "cfgzero", "cfgzero*", "cfg++")
SAMPLERS = {
    "euler": "euler",
    "dpm++2m": "dpmpp_2m",
    "unipc": "unipc",
}  # user-facing name -> motif_lite.sampling solver name
# Other tools' names of our samplers that no change of case or separators gives: ComfyUI's `uni_pc_bh2` (its `uni_pc`
# spells `unipc` already; it is ComfyUI's bh1 variant, run here as diffusers' bh2 UniPC: docs/usage.md says so).
# diffusers' scheduler classes, as the settings table names a checkpoint's (DPM++ 2M only as the model card's
# flow-sigma dpmsolver++ order 2, UniPC only as diffusers' defaults with flow sigmas): a Python user swapping
# schedulers types these.
SCHEDULER_CLASS_SAMPLERS = {
    "FlowMatchEulerDiscreteScheduler": "euler",
    "DPMSolverMultistepScheduler": "dpm++2m",
    "UniPCMultistepScheduler": "unipc",
}
SAMPLER_ALIASES = {"uni_pc_bh2": "unipc", **SCHEDULER_CLASS_SAMPLERS}
# Other tools' samplers that are not here (stable-diffusion.cpp's, ComfyUI's, diffusers'), each with ours that comes
# closest, for the refusal to name: ancestral and SDE samplers add fresh noise at every step, ours add none.
OTHER_SAMPLERS = {
    **dict.fromkeys(("euler_a", "euler_ancestral", "heun", "ddim", "ddim_trailing", "lcm", "tcd"), "euler"),
    **dict.fromkeys(("dpm++2s_a", "dpm++2m_sde", "dpm++2mv2", "dpm++3m_sde", "dpm++sde", "dpm2", "dpm2_a"), "dpm++2m"),
    **dict.fromkeys(("ipndm", "ipndm_v", "deis", "res_multistep"), "unipc"),
}  # fmt: skip
# Sigma schedules other tools name with the sampler (AUTOMATIC1111's "DPM++ 2M Karras", ComfyUI's scheduler names):
# here the schedule is the flow-matching one, shaped by --flow-shift, whatever the sampler.
OTHER_SCHEDULES = ("karras", "exponential", "sgm_uniform", "simple", "normal", "beta", "ddim_uniform", "kl_optimal",
                   "linear_quadratic", "polyexponential", "align_your_steps", "ays")  # fmt: skip
# How the schedule here compares with ComfyUI's `simple`, which picks sigmas from ModelSamplingSD3's table of 1000
# shifted ones: at a step count that does not divide 1000 its picks round to a table entry, up to 1/1000 higher in
# flow time (before the shift; after a shift of 1 or more, up to 0.001 times the shift in sigma). DPM++'s table
# starts a training step below sigma 1 whatever the count. tests/test_cli_comfyui.py computes both.
SIMPLE_SIGMAS = ("simple's where the step count divides 1000, else within 1/1000 of them in flow time (up to 0.015 "
                 "in sigma at shift 15)")  # fmt: skip
DPM_SIMPLE_SIGMAS = "within 1/500 of simple's in flow time (it starts a training step below sigma 1)"
# The exact attention kernel (`--attention-backend`): auto = a timed trial on the GPU (docs/kernels.md).
ATTENTION_BACKENDS = ("auto", "sdpa", "flash", "cudnn", "efficient", "triton", "fa3")
# --crf: the constant-rate factors each video encoder takes (lower = better and larger), as ffmpeg checks them.
CRF_RANGES = {"H.264": (0, 51), "VP9": (0, 63)}
# The formats -o writes, by extension: those ffmpeg encodes (io.output_formats' encoders), then those Pillow writes
# (and a PNG per frame).
FFMPEG_FORMATS = (".mp4", ".mkv", ".mov", ".webm")
VIDEO_EXTENSIONS = (*FFMPEG_FORMATS, ".webp", ".gif", ".png")
# The file a run or a server job keeps its latents in (fox.mp4 -> fox.latents.safetensors), which decode and
# --resume read.
LATENTS_SUFFIX = ".latents.safetensors"


def dtype_name(text: str) -> str:
    """--dtype's value as one of DTYPE_NAMES where it is another name of one (any case, "torch." prefix allowed);
    anything else as given, for argparse to refuse with the choices."""
    name = text.strip().lower().removeprefix("torch.")
    return DTYPE_ALIASES.get(name, name)


def choice_name(value: T, choices: tuple[str, ...], aliases: dict[str, str] | None = None) -> T:
    """`value` as the name in `choices` it spells another way (ComfyUI's `dpmpp_2m` or `DPM++ 2M` for `dpm++2m`,
    `CFG` for `cfg`) or an alias of (`aliases`: other name -> choice, spelled freely too); anything else unchanged,
    for the check to name."""
    if not isinstance(value, str):
        return value
    names = {**{choice: choice for choice in choices}, **(aliases or {})}
    spelled = {_spelling(name): choice for name, choice in names.items()}
    return spelled.get(_spelling(value), value)


def _spelling(name: str) -> str:
    # Case, separators and "pp" for "++" are how other tools spell the same sampler.
    return re.sub(r"[\s_-]", "", name.lower()).replace("pp", "++")


def sampler_hint(name: str, audience: Audience = Audience.RUN_OR_PYTHON) -> str | None:
    """What the refusal of a sampler that is not here adds (`--sampling-method` and `sampler=` alike): for another
    tool's sampler, ours closest to it, rather than a spelling near it (`closest_sampler`); else for a typo the
    sampler it spells (`misspelled_choice`); None for any other name."""
    return closest_sampler(name, audience) or misspelled_choice(name, SAMPLERS)


def misspelled_guidance(name: str) -> str | None:
    """For a typo of a guidance method (`ap`), the words that name it ("; did you mean apg?"); None for another
    tool's method spelled close to ours (`pag`: `OTHER_GUIDANCE_METHODS`) and for any other name."""
    if _spelling(name) in {_spelling(other) for other in OTHER_GUIDANCE_METHODS}:
        return None
    return misspelled_choice(name, GUIDANCE_METHODS)


def misspelled_choice(name: str, choices: Iterable[str]) -> str | None:
    """For a typo of one of `choices` (the sampler `eulr`, the guidance method `ap`), the words that name it ("; did
    you mean euler?"); None when none is spelled close to `name` (another tool's sampler: `closest_sampler`)."""
    spelled = {_spelling(ours): ours for ours in choices}
    close = difflib.get_close_matches(_spelling(name), list(spelled), n=1, cutoff=0.6)
    return f"; did you mean {spelled[close[0]]}?" if close else None


def closest_sampler(name: str, audience: Audience = Audience.RUN_OR_PYTHON) -> str | None:
    """For another tool's sampler that is not here (stable-diffusion.cpp's `euler_a`, ComfyUI's `dpmpp_2m_sde`), the
    words that name ours closest to it ("; closest to euler_a here: euler"); for a sampler named with a sigma
    schedule (AUTOMATIC1111's "DPM++ 2M Karras"), the sampler it names (ours closest to it where that is another
    tool's: `euler_ancestral_simple`), on the schedule there is here (which the flow shift shapes, named as
    `audience` sets it); None for any other name."""
    spelled = _spelling(name)
    closest = {_spelling(other): ours for other, ours in OTHER_SAMPLERS.items()}
    if ours := closest.get(spelled):
        return f"; closest to {name} here: {ours}"
    exact = {_spelling(ours): ours for ours in SAMPLERS}
    for schedule in OTHER_SCHEDULES:
        sampler = spelled.removesuffix(_spelling(schedule))
        if sampler == spelled or not (ours := exact.get(sampler) or closest.get(sampler)):
            continue
        shift = "flow_shift" if audience is Audience.API else "--flow-shift"
        as_simple = f"its sigmas are {DPM_SIMPLE_SIGMAS if ours == 'dpm++2m' else SIMPLE_SIGMAS}"
        if schedule == "simple" and sampler in exact:  # ComfyUI's simple schedule over the shifted flow sigmas
            return f"; {name} here is {ours}, on the flow-matching schedule that {shift} shapes: {as_simple}"
        # Another tool's sampler (euler_ancestral_simple) is not ours even on the schedule there is here.
        on = f"on the flow-matching schedule that {shift} shapes"
        return f"; closest to {name} here: {ours}, " + (
            f"{on}: {as_simple}" if schedule == "simple" else f"{on} (no {schedule} schedule here)"
        )
    return None


def split_size(text: str) -> tuple[int, int] | None:
    """(width, height) of a size written as one value, WIDTHxHEIGHT, as other tools write it (`1280x720`, the
    server's; `1280*720`, Wan's; `1280,720` and `1280:720`, ffmpeg's); None for anything else."""
    size = re.fullmatch(r"\s*(\d+)\s*[x*X\u00d7,:]\s*(\d+)\s*", text)
    return None if size is None else (int(size[1]), int(size[2]))


def lines_size(text: str) -> tuple[int, int] | None:
    """(width, height) of a size written as a video's lines (`720p`): that height, at 16:9 with the width a
    multiple of 16 (720p: 1280x720); None for anything else."""
    lines = re.fullmatch(r"\s*(\d+)\s*[pP]\s*", text)
    if lines is None:
        return None
    height = int(lines[1])
    return round(height * 16 / 9 / 16) * 16, height


# The commas an input method types between a list's entries: its full-width one (`１，２`), and the ideographic one
# (`１、２`) that a Japanese input method types for the comma key.
_INPUT_METHOD_COMMAS = str.maketrans({"\uff0c": ",", "\u3001": ","})


def is_list(text: str) -> bool:
    """Whether `text` is a list of entries (`0,1`), its commas ASCII or an input method's full-width ones."""
    return "," in text.translate(_INPUT_METHOD_COMMAS)


def gpu_numbers(text: str) -> list[str] | None:
    """The GPU numbers a list of them names, as other tools take one (`2,3`, accelerate's; `cuda:0,cuda:1`; `1`),
    bare as CUDA_VISIBLE_DEVICES takes them (`cuda:0` or an empty entry there hides every GPU), in ASCII digits
    and commas (an input method's full-width `１，２` there is no GPU number: CUDA sees no GPU); None for anything
    else, and for a list that names a GPU twice (`0,0`, `1,01`), with which CUDA sees no GPU either."""
    entries = text.translate(_INPUT_METHOD_COMMAS).split(",")
    numbers = [part.strip().lower().removeprefix("cuda:") for part in entries if part.strip()]
    # isdecimal, not isdigit: a superscript ² is a digit that int() does not read
    if not numbers or not all(number.isdecimal() for number in numbers):
        return None
    numbers = [str(int(number)) for number in numbers]
    return numbers if len(set(numbers)) == len(numbers) else None


def chosen_gpus_command(numbers: list[str]) -> str:
    """The run on the GPUs `numbers` (`gpu_numbers`): one process each, CUDA_VISIBLE_DEVICES choosing them, in the
    user's shell."""
    return with_variable("CUDA_VISIBLE_DEVICES", ",".join(numbers), f"motif-lite run --gpus {len(numbers)} ...")


def quantized_twice(prefix: str, quantize: str, gguf: str) -> str:
    """The refusal of a component both quantized as it loads and given as a GGUF: `prefix` is "" for the transformer
    (--quantize, --gguf), "text-encoder-" for the text encoder. One wording for run's early check and preflight's."""
    component = "the text encoder" if prefix else "the transformer"
    return (
        f"--{prefix}quantize {quantize} quantizes {component}'s safetensors as they load, and --{prefix}gguf {gguf} "
        "gives weights quantized already: leave out one of them"
    )
