"""`load_pipeline` and `MotifVideoPipeline.generate`: encode -> denoise -> decode, nothing else.

    pipe = load_pipeline("Motif-Technologies/Motif-Video-2B", gguf="Q4_K_M")
    result = pipe.generate(GenerationRequest("a red fox runs through snow", output="fox.mp4"))

Same seed, same settings -> the same video as the diffusers `MotifVideoPipeline` / `MotifVideoImage2VideoPipeline`:
the noise and the VAE posterior sample are drawn from one CPU `torch.Generator` in the reference's order, the
sampling loop is `motif_lite.sampling.denoise` (tested step by step against the reference's scheduler and guider).
The pipeline only orchestrates: model math, sampling, weights, memory placement and file formats live elsewhere,
and what a run checks and plans before loading lives in `motif_lite.preflight` and `motif_lite.memory_plan`.

Its modules: `loading` (load_pipeline), `recipe` (how the transformer is built, and rebuilt by `set_loras`),
`generation` (MotifVideoPipeline), `conditioning` (the encoded prompts and first frame, and those kept between
videos), `metadata` (what a video and a saved run store of how they were made), `resuming` (a stopped run's
sampling state, checked against the request), `result` (GenerationResult), `from_diffusers` (a diffusers call or
method answered with what does the same here).
"""

from motif_lite.io.image import image_sha256
from motif_lite.pipeline.conditioning import TEXTS_KEPT, pad_prompts
from motif_lite.pipeline.generation import MotifVideoPipeline
from motif_lite.pipeline.loading import load_pipeline
from motif_lite.pipeline.result import GenerationResult, PreviewFn, ProgressFn, first_step_overhead

__all__ = [
    "TEXTS_KEPT",
    "GenerationResult",
    "MotifVideoPipeline",
    "PreviewFn",
    "ProgressFn",
    "first_step_overhead",
    "image_sha256",
    "load_pipeline",
    "pad_prompts",
]
