"""What to give `GenerationRequest` for what it does not take: a keyword it has no field for (another tool's name,
a typo), values given by position after the prompts, and diffusers' generator in place of a seed."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from motif_lite.errors import counted, shown

# Why a seed stands for diffusers' generator: the same noise, where the generator is a fresh CPU one.
_SEED_OF_GENERATOR = (
    "the seed it was made with: the noise is drawn from a CPU generator seeded with it, as diffusers draws it from "
    "a fresh CPU generator"
)
_NOT_TAKEN = "not taken: motif-lite encodes the prompts and draws the noise itself"


# The names other tools give a request's settings (diffusers' pipeline call, ComfyUI's nodes and widgets, Wan2.1's
# generate.py, stable-diffusion.cpp's options, `motif-lite run`'s flags, the server's fields) -> the GenerationRequest
# field they stand for. The one table of these names: the run flags' hints map the field with `run_flag`, the
# server's with API_FIELDS, and each interface keeps its own advice for names that are no field here.
OTHER_FIELD_NAMES = {
    "num_frames": "frames",
    "video_frames": "frames",
    "length": "frames",  # ComfyUI's latent video nodes
    "frame_num": "frames",  # Wan2.1's generate.py
    "num_inference_steps": "steps",
    "sample_steps": "steps",
    "guidance_scale": "cfg_scale",
    "cfg": "cfg_scale",  # ComfyUI's KSampler
    "sample_guide_scale": "cfg_scale",  # Wan2.1's
    "guidance_method": "guidance",
    "sampling_method": "sampler",
    "sampler_name": "sampler",  # ComfyUI's KSampler
    "sample_solver": "sampler",  # Wan2.1's
    "shift": "flow_shift",  # ComfyUI's ModelSamplingSD3
    "sample_shift": "flow_shift",  # Wan2.1's
    "positive": "prompt",  # ComfyUI's KSampler input
    "negative": "negative_prompt",  # ComfyUI's KSampler input
    "neg_prompt": "negative_prompt",
    "noise_seed": "seed",  # ComfyUI's KSamplerAdvanced
    "base_seed": "seed",  # Wan2.1's
    "frame_rate": "fps",  # ComfyUI's Video Combine
    "framerate": "fps",  # ffmpeg's -framerate
    "init_image": "image",
    "init_img": "image",
    "input_image": "image",
    "start_image": "image",  # ComfyUI's WanImageToVideo
    "input_reference": "image",  # the server's (OpenAI's) field
    "out": "output",
    "output_path": "output",
    "output_file": "output",
    "save_file": "output",  # Wan2.1's
    "save_path": "output",
    "filename_prefix": "output",  # ComfyUI's Save nodes
}


# Other tools' names that no field stands for, with what to give a GenerationRequest instead (Python's own advice).
PYTHON_FIELD_ADVICE = {
    "generator": "give seed=N in place of generator=torch.Generator().manual_seed(N): " + _SEED_OF_GENERATOR,
    "output_type": "give output='fox.mp4' (or .webm, .gif, .webp, PNG frames 'frames/fox_%03d.png'): the video is "
    "written to that file, no frames come back in memory",
    "size": "give width= and height=, e.g. width=1280, height=736",
    "seconds": "give frames=, 4k+1 of them: 121 frames are 5 s at fps=24",
    "duration": "give frames=, 4k+1 of them: 121 frames are 5 s at fps=24",
    "num_videos_per_prompt": "make one request per video, each with its own seed and output",
    "batch_size": "make one request per video, each with its own seed and output",
    "loras": "give load_pipeline(..., loras={'style.safetensors': 0.8}) or pipe.set_loras(...): LoRAs are the "
    "pipeline's",
    "crf": "give pipe.generate(request, crf=N): an encoding option of the file, not a setting of the video",
    # diffusers' other call arguments, which no field stands for (a close spelling would mislead: latents, frames)
    "max_sequence_length": "not needed: a prompt is cut at 512 tokens, diffusers' default, with a warning",
    "timesteps": "the schedule comes from steps, flow_shift and sampler",
    "latents": _NOT_TAKEN,
    "prompt_embeds": _NOT_TAKEN,
    "prompt_attention_mask": _NOT_TAKEN,
    "negative_prompt_embeds": _NOT_TAKEN,
    "negative_prompt_attention_mask": _NOT_TAKEN,
    "return_dict": "pipe.generate(request) returns a GenerationResult: .output is the file, .settings what was used",
    "callback_on_step_end": "give pipe.generate(request, on_progress=fn): it calls fn(stage, done, total)",
    "callback_on_step_end_tensor_inputs": "give pipe.generate(request, on_progress=fn): it calls fn(stage, done, "
    "total)",
    "attention_kwargs": "LoRA strengths are set with pipe.set_loras({'style.safetensors': 0.8})",
    "vae_batch_size": "the VAE decodes in bands that a memory plan sizes (load_pipeline(plan=...))",
    # img2img's and video2video's denoising strength: ComfyUI's `length` is its closest spelling, frames a wrong guess
    "strength": "there is no denoising strength: an image= is the video's first frame as given, and extend= goes on "
    "from a clip's last frame",
}


# diffusers' positional order after the prompts (pipe("a fox", "", 480, 832, 121, 50)) -> our fields.
_DIFFUSERS_POSITIONS = ("height", "width", "frames", "steps")


def positional_fields_advice(values: tuple[object, ...], fields: Sequence[str]) -> str:
    """What to give `GenerationRequest` (its `fields`, in order) for the `values` given by position after the prompt
    and the negative prompt: the fields by name, as diffusers' order means the values (height before width), in the
    order of our fields."""
    named = dict(zip(_DIFFUSERS_POSITIONS, values, strict=False))
    given = ", ".join(f"{name}={shown(named[name])}" for name in fields if name in named)
    rest = len(values) - len(named)
    more = f" (and {counted(rest, 'more value')}, for which GenerationRequest has no field)" if rest else ""
    return (
        "GenerationRequest takes only the prompt and the negative prompt by position (diffusers' order puts height "
        f"before width): give them by name: {given}{more}"
    )


def unknown_field_advice(name: str, value: object, fields: Sequence[str]) -> str:
    """What to give `GenerationRequest` (its `fields`, in order) for the keyword `name` (given `value`) it has no
    field for: the field another tool's name stands for, else the field closest in spelling (a typo), else the list
    of fields."""
    if name == "generator" and is_generator(value):
        return f"GenerationRequest has no field generator: {seed_of_generator(value)}"
    other_names = {**OTHER_FIELD_NAMES, **PYTHON_FIELD_ADVICE}
    meant = other_names.get(name)
    if meant is None:
        close = difflib.get_close_matches(name, [*fields, *other_names], n=1)
        meant = other_names.get(close[0], close[0]) if close else None
    if meant is None:
        return f"GenerationRequest has no field {name}; its fields are {', '.join(fields)}"
    if meant in fields:
        return f"GenerationRequest has no field {name}: give {meant}={shown(value)} instead"
    return f"GenerationRequest has no field {name}: {meant}"


def is_generator(value: object) -> bool:
    """Whether `value` is a torch generator, told without importing torch, which requests do not need."""
    return hasattr(value, "initial_seed") and hasattr(value, "manual_seed")


def seed_of_generator(generator: Any) -> str:
    """What to give for a generator passed as diffusers takes one: its seed, and, for a generator on a GPU (whose
    draw diffusers makes there), that the noise is not the one diffusers drew with it."""
    device = getattr(getattr(generator, "device", None), "type", "cpu")
    other = (f" (this {device} generator's draw differs: the video will not be the one diffusers made with it)"
             if device != "cpu" else "")  # fmt: skip
    return f"give seed={seed_drawing_as(generator)}, {_SEED_OF_GENERATOR}{other}"


def seed_drawing_as(generator: Any) -> int:
    """The seed (0 to 2**32 - 1, the range a request takes) that draws the noise `generator` draws: torch's CPU
    generator is seeded with the low 32 bits of its seed only, and `initial_seed()` gives the seed as set, up to
    2**64 - 1 (`manual_seed(2**40)`, or `manual_seed(-1)`, which torch stores as 2**64 - 1)."""
    return generator.initial_seed() % 2**32
