"""What a diffusers user types, said the motif-lite way: a pipeline called as diffusers' is
(`pipe("a fox", num_inference_steps=30)`), asked for diffusers' methods (`pipe.to("cuda")`,
`pipe.enable_model_cpu_offload()`) or loaded with `from_pretrained`'s keywords (`torch_dtype=torch.bfloat16`) gets
the line that does the same here instead of a bare TypeError or AttributeError. docs/usage.md, "Coming from
diffusers", has the same table for people."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from motif_lite.errors import ConfigError, shown
from motif_lite.io.image import IN_MEMORY, is_in_memory
from motif_lite.request import GenerationRequest
from motif_lite.request.advice import seed_drawing_as
from motif_lite.vae.diffusers_habits import vae_method_advice

# diffusers' `MotifVideoPipeline.__call__` argument -> the `GenerationRequest` field that sets the same thing.
CALL_FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "height": "height",
    "width": "width",
    "num_frames": "frames",
    "num_inference_steps": "steps",
    "guidance_scale": "cfg_scale",  # Wan's call takes it; Motif-Video's reads its guider's (`translated`)
    "image": "image",
}
_NOT_TAKEN = "not taken: motif-lite encodes the prompts and draws the noise itself"
# Its other arguments -> what to do instead.
CALL_ADVICE = {
    "generator": "give seed=N for torch.Generator().manual_seed(N): the noise is drawn from a CPU generator, as "
    "diffusers draws it from a CPU generator (a CUDA generator's noise differs)",
    "output_type": "the video is written to output= (.mp4, .webm, .gif or PNG frames), no frames come back in "
    "memory: result.read_frames() reads them from the file, or show it with IPython.display.Video",
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
# The VAE's memory savers as diffusers' pipelines had them before 0.40 (removed since, still in many notebooks) ->
# what its VAE's own methods (`pipe.vae.enable_tiling()`) are answered with.
FORMER_METHODS = {
    "enable_vae_tiling": "enable_tiling",
    "disable_vae_tiling": "disable_tiling",
    "enable_vae_slicing": "enable_slicing",
    "disable_vae_slicing": "disable_slicing",
}

_HUB_ENVIRONMENT = "set in the environment before loading"
_NOT_PYTORCH = "not taken: motif-lite runs Motif-Video's own PyTorch code"
_COMPONENT_FILE = (
    "weights={'transformer': 'file.safetensors'} (or 'text_encoder', 'vae') loads a component's official weights "
    "from another file (docs/usage.md, 'Weight files you already have'); gguf= a GGUF transformer"
)
_MEMORY_MAPPED = "not needed: the weights are memory-mapped and go straight into the model, never held twice"
# diffusers' `DiffusionPipeline.from_pretrained` keywords (and the components it takes as keywords) -> what
# `load_pipeline` takes for the same, or why it needs nothing.
LOAD_ADVICE = {
    "torch_dtype": "give dtype=torch.bfloat16 (or torch.float16, torch.float32, or a name: 'bf16', 'fp16', 'fp32'); "
    "without it bf16 (fp16 on a GPU before Ampere, fp32 on the GTX 16xx and before Volta)",
    "variant": "not needed: the checkpoint's published bf16 files are read as they are; a smaller transformer is "
    "gguf='Q4_K_M' (a published GGUF) or quantize='Q8_0' (quantized as it loads)",
    "use_safetensors": "not needed: the checkpoint's .safetensors files are the weights read (a GGUF transformer: "
    "gguf=)",
    "device_map": "device='cuda' (or 'cpu', 'cuda:1') places the pipeline; to keep on the GPU what fits and stream "
    "the rest, plan=plan_generation(request, model) (motif_lite.preflight); several GPUs: parallel= "
    "(docs/parallel.md)",
    "max_memory": "plan=plan_generation(request, model, vram_gib=N) (motif_lite.preflight) plans the run within N "
    "GiB of GPU memory, streaming what does not fit",
    "offload_folder": "not needed: a memory plan (plan=) streams the weights from their memory-mapped files",
    "offload_state_dict": "not needed: a memory plan (plan=) streams the weights from their memory-mapped files",
    "low_cpu_mem_usage": _MEMORY_MAPPED,
    "disable_mmap": "not taken: " + _MEMORY_MAPPED.removeprefix("not needed: "),
    "cache_dir": f"the Hub cache is HF_HUB_CACHE (or HF_HOME), {_HUB_ENVIRONMENT}; or give model= a local folder",
    "force_download": "not taken: files complete in the Hub cache are used as they are; `hf download REPO "
    "--force-download` fetches them again",
    "local_files_only": f"HF_HUB_OFFLINE=1, {_HUB_ENVIRONMENT}: then only the cache and local folders are read",
    "proxies": f"HTTPS_PROXY, {_HUB_ENVIRONMENT}",
    "token": f"log in with `hf auth login`, or HF_TOKEN {_HUB_ENVIRONMENT}",
    "revision": "a Hub repo id loads its main revision; for another one, `hf download REPO --revision REV "
    "--local-dir DIR`, then load_pipeline('DIR')",
    "quantization_config": "quantize='Q8_0' (or 'Q4_K_M', ...) quantizes the transformer as it loads, gguf='Q4_K_M' "
    "loads a published GGUF, text_encoder_quantize='Q8_0' quantizes the text encoder (docs/quantize.md)",
    "custom_pipeline": _NOT_PYTORCH,
    "custom_revision": _NOT_PYTORCH,
    "trust_remote_code": _NOT_PYTORCH,
    "load_connected_pipeline": _NOT_PYTORCH,
    "use_onnx": _NOT_PYTORCH,
    "provider": _NOT_PYTORCH,
    "provider_options": _NOT_PYTORCH,
    "sess_options": _NOT_PYTORCH,
    "use_flashpack": "not needed: " + _MEMORY_MAPPED.removeprefix("not needed: "),
    # Components given to from_pretrained in place of the checkpoint's.
    "transformer": _COMPONENT_FILE,
    "text_encoder": _COMPONENT_FILE,
    "vae": _COMPONENT_FILE,
    "tokenizer": "not taken: the checkpoint's tokenizer is the text encoder's",
    "feature_extractor": "not taken: the checkpoint's image processor is the one image-to-video needs",
    "scheduler": METHOD_ADVICE["scheduler"],
    "guider": METHOD_ADVICE["guider"],
}

# The fields of diffusers' `MotifVideoPipelineOutput` (what its pipeline returns) -> where the same thing is here.
RESULT_ADVICE = {
    "frames": "generate writes the video to result.output and keeps no frames in memory: result.read_frames() "
    "reads them back from the file (uint8 [F, H, W, 3]), or show it with IPython.display.Video(str(result.output))",
}


NO_NEGATIVE_PROMPT = (
    "'' is what diffusers' MotifVideoPipeline uses without one (or with None); leave it out for the official "
    "negative prompt the model was trained against, motif-lite's default"
)


def translated(name: str, value: Any) -> tuple[Any, str | None]:
    """A value of diffusers' call argument `name` as its field here makes the same video, and what to know of it
    (None: nothing). diffusers floors num_frames to 4k+1 (it samples (n - 1) // 4 + 1 latent frames) where a request
    rounds to the nearest; diffusers' MotifVideoPipeline takes no guidance_scale (its guider holds the scale)."""
    if name == "num_frames" and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        frames = 4 * ((value - 1) // 4) + 1
        if frames != value:
            return frames, (
                f"num_frames: diffusers makes {frames} frames of num_frames={value} (it rounds down to 4k+1); "
                f"frames={frames} makes them here (frames={value} would round to the nearest 4k+1)"
            )
    if name == "guidance_scale":
        return value, (
            "guidance_scale: diffusers' MotifVideoPipeline call takes none (a TypeError there): the scale is its "
            "guider's (pipe.guider, guider/guider_config.json's guidance_scale); cfg_scale= sets it here"
        )
    return value, None


def call_advice(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What to write instead of `pipe(*args, **kwargs)`, a diffusers pipeline's call: the `generate` line that makes
    the same video, then a line for each argument that has no field."""
    if any(isinstance(value, GenerationRequest) for value in (*args, *kwargs.values())):  # ours, called as a function
        return "a GenerationRequest is given to generate, not to the pipeline: pipe.generate(request)"
    image_first = bool(args) and not isinstance(args[0], str | list | tuple)  # the image-to-video pipeline's order
    order = ("image",) * image_first + ("prompt", "negative_prompt", "height", "width", "num_frames")
    given = dict(zip(order, args, strict=False))
    given.update(kwargs)
    fields: dict[str, Any] = {}
    advice: list[str] = []
    for name, value in given.items():
        one_in_memory = isinstance(value, list) and len(value) == 1 and is_in_memory(value[0])  # as diffusers takes
        if name == "image" and (is_in_memory(value) or one_in_memory):  # taken as it is: the user's variable named
            fields["image"] = _Variable("image")
            advice.append(f"image: {IN_MEMORY} is taken as it is (and written beside the video as "
                          "video.first-frame.png, which its settings name)")  # fmt: skip
        elif name == "image" and not isinstance(value, str | Path):  # a list of images, a URL's response, ...
            fields["image"] = "first_frame.png"
            advice.append(f"image: one first frame is taken, as the path of an image file or {IN_MEMORY}")
        elif name in CALL_FIELDS:  # a Path as a plain string: the line must run with only GenerationRequest
            value, note = translated(name, value)
            fields[CALL_FIELDS[name]] = str(value) if isinstance(value, Path) else value
            advice.extend(filter(None, [note]))
        elif name == "generator" and _cpu_generator(value):
            fields["seed"] = seed_drawing_as(value)
        else:
            advice.append(f"{name}: {CALL_ADVICE.get(name, 'not an argument of diffusers MotifVideoPipeline')}")
    if fields.get("negative_prompt") is None:  # diffusers' pipeline runs without a negative prompt, None or absent
        fields["negative_prompt"] = ""
        advice.append(f"negative_prompt: {NO_NEGATIVE_PROMPT}")
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


class _Variable(str):
    """A name the advice's line writes as it is (`image=image`), where its other values are written as literals."""

    def __repr__(self) -> str:
        return str(self)


def load_advice(keywords: Mapping[str, object], load_pipeline: Callable) -> str:
    """What to write instead of the `keywords` that `load_pipeline` does not take, a line each: a keyword of
    diffusers' `from_pretrained` gets what does the same here; any other the closest of `load_pipeline`'s own
    arguments, as a typo of ours would, else the list of them."""
    return _keyword_advice(load_pipeline, keywords, LOAD_ADVICE, "diffusers' from_pretrained does")


def generate_advice(keywords: Mapping[str, object], generate: Callable) -> str:
    """As `load_advice`, for `generate`: a keyword of diffusers' pipeline call gets the request field that sets the
    same (`num_inference_steps=` -> `steps=`) or what to do instead (`generator=` -> `seed=`)."""
    fields = {}
    for name, field in CALL_FIELDS.items():
        if name in keywords:
            value, note = translated(name, keywords[name])
            said = f"a request field here: GenerationRequest(..., {field}={shown(value)})"
            fields[name] = said + (f" ({note})" if note else "")
    generator = keywords.get("generator")
    if _cpu_generator(generator):  # its seed draws the same noise: the number to give
        fields["generator"] = f"a request field here: GenerationRequest(..., seed={seed_drawing_as(generator)})"
    return _keyword_advice(generate, keywords, {**CALL_ADVICE, **fields}, "diffusers' pipeline call does")


# The keywords of diffusers' LoRA methods (`set_adapters(names, adapter_weights=...)`, `load_lora_weights(repo,
# weight_name=..., adapter_name=...)`) given to `set_loras` -> what does the same here.
_NAMED_BY_FILE = "a LoRA is named by its file here: " + _LORAS
SET_LORAS_ADVICE = {
    "adapter_weights": "the strengths are the values of a {file: strength} dict: " + _LORAS,
    "adapter_names": _NAMED_BY_FILE,
    "adapter_name": _NAMED_BY_FILE,
    "hotswap": METHOD_ADVICE["enable_lora_hotswap"],
    "weight_name": "give the LoRA file's own path (a file of a Hub repo: `hf download REPO FILE` prints its path): "
    + _LORAS,
}


def set_loras_advice(loras: object, keywords: Mapping[str, object], set_loras: Callable) -> str:
    """As `load_advice`, for `set_loras` given the keywords of diffusers' LoRA methods: where `loras` names the files
    and `adapter_weights` their strengths, one each (or one for all, as diffusers takes it), the dict to give."""
    advice = dict(SET_LORAS_ADVICE)
    weights = keywords.get("adapter_weights")
    files = [loras] if isinstance(loras, str | Path) else loras
    if isinstance(files, list | tuple) and all(isinstance(file, str | Path) for file in files) and files:
        weights = weights if isinstance(weights, list | tuple) else [weights] * len(files)
        strengths = [1.0 if weight is None else weight for weight in weights]  # diffusers reads None as 1
        # No dict for what set_loras refuses (True, NaN, diffusers' per-block dicts), nor for a file named twice:
        # a dict literal keeps its last strength alone, and pasted, it applied another one without a word.
        usable = all(_is_strength(strength) for strength in strengths)
        if usable and len(strengths) == len(files) and len({str(file) for file in files}) == len(files):
            pairs = ", ".join(f"{str(file)!r}: {shown(each)}" for file, each in zip(files, strengths, strict=True))
            advice["adapter_weights"] = f"the strengths are the values of a {{file: strength}} dict: " \
                f"pipe.set_loras({{{pairs}}}) (set_loras({{}}) removes them)"  # fmt: skip
    return _keyword_advice(set_loras, keywords, advice, "diffusers' LoRA methods do")


def _is_strength(value: object) -> bool:
    """Whether `value` is a strength `set_loras` takes: a finite number, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def missing_request_advice(keywords: Mapping[str, object], generate: Callable) -> str:
    """For `generate` called without its request, its settings as keywords (`pipe.generate(prompt="a fox",
    num_inference_steps=30)`, as diffusers' call takes them): the line that makes that video, with each keyword that
    is a request field, or diffusers' name of one, inside the `GenerationRequest`; a line for each other keyword."""
    own_fields = {field.name for field in dataclasses.fields(GenerationRequest)}
    fields: dict[str, object] = {}
    others: dict[str, object] = {}
    notes: list[str] = []
    for name, value in keywords.items():
        field = name if name in own_fields else CALL_FIELDS.get(name)
        if field is None:
            others[name] = value
        elif field == name:
            fields[field] = value
        else:  # diffusers' name: its value as diffusers reads it
            fields[field], note = translated(name, value)
            notes.extend(filter(None, [note]))
    prompt = fields.pop("prompt", "a red fox runs through snow")
    fields.setdefault("output", "fox.mp4")
    arguments = ", ".join([shown(prompt), *(f"{name}={shown(value)}" for name, value in fields.items())])
    line = (
        f"generate takes the video's settings in a GenerationRequest: pipe.generate(GenerationRequest({arguments})), "
        "with GenerationRequest from motif_lite"
    )
    return "\n".join([line, *notes, *([generate_advice(others, generate)] if others else [])])


def _keyword_advice(function: Callable, keywords: Mapping[str, object], advice: Mapping[str, str], whose: str) -> str:
    """A line per keyword `function` does not take: `advice`'s for a keyword of diffusers (`whose`), else the
    closest of its own names, which a misspelled keyword of ours must get rather than diffusers' advice."""
    parameters = inspect.signature(function).parameters.values()
    own = [p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    lines = []
    for name in keywords:
        if name in advice:
            lines.append(f"{function.__name__} takes no {name}= ({whose}): {advice[name]}")
            continue
        close = difflib.get_close_matches(name, own, n=1)
        meant = f"did you mean {close[0]}=?" if close else f"its arguments are {', '.join(own)}"
        lines.append(f"{function.__name__} takes no {name}=: {meant}")
    return "\n".join(lines)


def method_advice(name: str) -> str | None:
    """What does here what diffusers' pipeline method `name` does; None for a name diffusers' pipelines lack."""
    if name in FORMER_METHODS:
        return vae_method_advice(FORMER_METHODS[name])
    return METHOD_ADVICE.get(name)


def _cpu_generator(value: object) -> bool:
    return isinstance(value, torch.Generator) and value.device.type == "cpu"


def to_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[torch.device | None, torch.dtype | None]:
    """The device and the dtype of diffusers' `pipe.to(...)`, as it takes them: `to("cuda")`, `to(torch.float16)`,
    `to("cuda", torch.float16)`, `to(device=..., dtype=...)` (None: not given). Anything else is a `ConfigError`."""
    others = [name for name in kwargs if name not in ("device", "dtype", "silence_dtype_warnings")]
    if others:
        raise ConfigError(f"pipe.to takes a device and a dtype, as diffusers' does, not {others[0]}=")
    device, dtype = None, None
    for value in [*args, *(kwargs[name] for name in ("device", "dtype") if name in kwargs)]:
        if isinstance(value, torch.dtype):
            dtype = value
        elif isinstance(value, str | torch.device):
            try:
                device = torch.device(value)
            except RuntimeError:  # torch's "Expected one of cpu, cuda, ... device type at start of device string"
                raise ConfigError(f"pipe.to: {value!r} is no device; give 'cuda', 'cuda:1', 'cpu', ...") from None
        else:
            raise ConfigError(f"pipe.to takes a device ('cuda') and a dtype (torch.float16), got {value!r}")
    return device, dtype


def is_same_device(asked: torch.device, loaded: torch.device) -> bool:
    """Whether `asked` (diffusers' "cuda" is its first GPU) is the device `loaded` is."""
    return asked.type == loaded.type and (asked.index or 0) == (loaded.index or 0)
