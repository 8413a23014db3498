"""The names users choose from on the command line and in requests, importable without torch.

`motif-lite --help` builds its parser from these, so it must not pay for importing torch and transformers.
"""

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
# The exact attention kernel (`--attention-backend`): auto = a timed trial on the GPU (docs/kernels.md).
ATTENTION_BACKENDS = ("auto", "sdpa", "flash", "cudnn", "efficient", "triton", "fa3")
# --crf: the constant-rate factors each video encoder takes (lower = better and larger), as ffmpeg checks them.
CRF_RANGES = {"H.264": (0, 51), "VP9": (0, 63)}
# The formats -o writes, by extension: those ffmpeg encodes (io.video's encoders), then those Pillow writes (and a
# PNG per frame).
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
