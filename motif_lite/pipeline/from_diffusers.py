"""What a diffusers user types, said the motif-lite way: a pipeline called as diffusers' is
(`pipe("a fox", num_inference_steps=30)`) or asked for diffusers' methods (`pipe.to("cuda")`,
`pipe.enable_model_cpu_offload()`) gets the line that does the same here instead of a bare TypeError or
AttributeError. docs/usage.md, "Coming from diffusers", has the same table for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# diffusers' `MotifVideoPipeline.__call__` argument -> the `GenerationRequest` field that sets the same thing.
CALL_FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "height": "height",
    "width": "width",
    "num_frames": "frames",
    "num_inference_steps": "steps",
    "guidance_scale": "cfg_scale",
    "image": "image",
}
_NOT_TAKEN = "not taken: motif-lite encodes the prompts and draws the noise itself"
# Its other arguments -> what to do instead.
CALL_ADVICE = {
    "generator": "give seed=N for torch.Generator().manual_seed(N): the noise is drawn from a CPU generator, as "
    "diffusers draws it from a CPU generator (a CUDA generator's noise differs)",
    "output_type": "the video is written to output= (.mp4, .webm, .gif or PNG frames), no frames come back in "
    "memory: read the file, or show it with IPython.display.Video",
    "return_dict": "generate returns a GenerationResult: .output is the file, .settings what was used",
    "callback_on_step_end": "generate(request, on_progress=fn) calls fn(stage, done, total); on_preview= gets "
    "preview frames",
    "callback_on_step_end_tensor_inputs": "see callback_on_step_end",
    "num_videos_per_prompt": "one request per video, each with its own seed (docs/usage.md, 'Batches')",
    "timesteps": "the schedule comes from steps, flow_shift and sampler",
    "attention_kwargs": "LoRA strengths are set with pipe.set_loras({'style.safetensors': 0.8})",
    "max_sequence_length": "a prompt is cut at 512 tokens, diffusers' default, with a warning",
    "vae_batch_size": "the VAE decodes in bands that a memory plan sizes (load_pipeline(plan=...))",
    "latents": _NOT_TAKEN,
    "prompt_embeds": _NOT_TAKEN,
    "prompt_attention_mask": _NOT_TAKEN,
    "negative_prompt_embeds": _NOT_TAKEN,
    "negative_prompt_attention_mask": _NOT_TAKEN,
}
_PLAN = (
    "give load_pipeline(..., plan=plan_generation(request, model)) (motif_lite.preflight): it keeps on the GPU what "
    "fits and streams the rest (docs/memory.md)"
)
_LORAS = "pipe.set_loras({'style.safetensors': 0.8}) replaces the LoRAs (set_loras({}) removes them)"
_APPLIED = "pipe.loras are the LoRAs applied (pipe.loras.describe() lists them; None: none)"
_BARS = (
    "generate shows no progress unless given on_progress: generate(request, on_progress=ProgressBars()) draws a bar "
    "per stage, with ProgressBars from motif_lite"
)
# diffusers pipeline methods (the LoRA ones of its video pipelines that take LoRAs, e.g. Wan's) and attributes -> what
# does the same here.
METHOD_ADVICE = {
    "to": "the device is chosen when loading: load_pipeline(..., device='cuda'), dtype=torch.bfloat16 likewise",
    "enable_model_cpu_offload": _PLAN,
    "enable_sequential_cpu_offload": _PLAN,
    "enable_group_offload": _PLAN,
    "enable_attention_slicing": _PLAN,
    "enable_xformers_memory_efficient_attention": "attention already runs a memory-efficient exact kernel; "
    "load_pipeline(..., attention_backend=...) picks another",
    "load_lora_weights": _LORAS,
    "set_adapters": _LORAS,
    "fuse_lora": _LORAS + "; they are merged into the weights when loaded",
    "unfuse_lora": _LORAS,
    "unload_lora_weights": _LORAS,
    "delete_adapters": _LORAS,
    "enable_lora": _LORAS,
    "disable_lora": _LORAS,
    "enable_lora_hotswap": _LORAS + "; each call reads the transformer again, with the new LoRAs merged",
    "get_active_adapters": _APPLIED,
    "get_list_adapters": _APPLIED,
    "set_lora_device": "the LoRAs are on the transformer's device, merged into its weights or beside its packed "
    "layers: load_pipeline(..., device='cuda') chooses it",
    "save_pretrained": "the pipeline loads the official files as they are; to save a quantized transformer, "
    "python -m motif_lite.quantize (docs/quantize.md)",
    "set_progress_bar_config": _BARS,
    "progress_bar": _BARS,
    # Its components that are settings here, read (`pipe.scheduler.config`) before one is swapped for another.
    "scheduler": "the sampler is a request field: GenerationRequest(..., sampler='dpm++2m', flow_shift=...); "
    "without one the checkpoint's scheduler config decides (result.settings says which)",
    "guider": "guidance is set by request fields: GenerationRequest(..., guidance='cfg', cfg_scale=5.0), or "
    "apg_eta, apg_norm_threshold, apg_momentum; without them the checkpoint's guider config decides",
    "components": "the loaded components are pipe.transformer, pipe.text_encoder and pipe.vae",
}

# The fields of diffusers' `MotifVideoPipelineOutput` (what its pipeline returns) -> where the same thing is here.
RESULT_ADVICE = {
    "frames": "generate writes the video to result.output and keeps no frames in memory: read them back from the "
    "file (docs/usage.md, 'Errors, stopping a run, frames and output files'), or show it with "
    "IPython.display.Video(str(result.output))",
}


def call_advice(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What to write instead of `pipe(*args, **kwargs)`, a diffusers pipeline's call: the `generate` line that makes
    the same video, then a line for each argument that has no field."""
    image_first = bool(args) and not isinstance(args[0], str | list | tuple)  # the image-to-video pipeline's order
    order = ("image",) * image_first + ("prompt", "negative_prompt", "height", "width", "num_frames")
    given = dict(zip(order, args, strict=False))
    given.update(kwargs)
    fields: dict[str, Any] = {}
    advice: list[str] = []
    for name, value in given.items():
        if name == "image" and not isinstance(value, str | Path):
            fields["image"] = "first_frame.png"
            advice.append("image: the path of an image file is taken; save the image first (image.save(...))")
        elif name in CALL_FIELDS:  # a Path as a plain string: the line must run with only GenerationRequest
            fields[CALL_FIELDS[name]] = str(value) if isinstance(value, Path) else value
        elif name == "generator" and _cpu_generator(value):
            fields["seed"] = value.initial_seed()
        else:
            advice.append(f"{name}: {CALL_ADVICE.get(name, 'not an argument of diffusers MotifVideoPipeline')}")
    prompt = fields.pop("prompt", "a red fox runs through snow")
    if isinstance(prompt, list | tuple):
        advice.insert(0, "a list of prompts: one request per prompt")
        prompt = prompt[0] if prompt else "a red fox runs through snow"
    fields.setdefault("output", "video.mp4")
    arguments = ", ".join([repr(prompt), *(f"{name}={value!r}" for name, value in fields.items())])
    lines = [
        "MotifVideoPipeline is not called as diffusers' pipelines are: it writes the video to a file. The same "
        f"video here: pipe.generate(GenerationRequest({arguments})), with GenerationRequest from motif_lite",
        *advice,
    ]
    return "\n".join(lines)


def method_advice(name: str) -> str | None:
    """What does here what diffusers' pipeline method `name` does; None for a name diffusers' pipelines lack."""
    return METHOD_ADVICE.get(name)


def _cpu_generator(value: object) -> bool:
    return isinstance(value, torch.Generator) and value.device.type == "cpu"
