"""What a diffusers user types on the VAE (`pipe.vae.enable_tiling()`), said the motif-lite way: diffusers'
`AutoencoderKLWan` switches its memory savers on by hand; here a memory plan decides how the VAE decodes (frame by
frame, in exact row bands), and nothing needs switching. The pipeline's own table is pipeline/from_diffusers.py."""

from __future__ import annotations

_BANDS = (
    "motif-lite's VAE decodes as the memory plan allows, all frames at once, frame by frame or in exact row bands "
    "(the same pixels as a whole-frame decode, where diffusers' tiles blend and change them): "
    "load_pipeline(..., plan=plan_generation(request, model)) (motif_lite.preflight, docs/memory.md) picks the way; "
    "nothing to switch"
)
_ONE_VIDEO = (
    "motif-lite's VAE decodes one video at a time (one request makes one video), as the memory plan allows "
    "(load_pipeline(..., plan=plan_generation(request, model)): frame by frame or in exact row bands where memory is "
    "short); nothing to switch"
)
# diffusers' `AutoencoderKLWan` methods -> what does the same here.
VAE_METHOD_ADVICE = {
    "enable_tiling": _BANDS,
    "disable_tiling": _BANDS,
    "enable_slicing": _ONE_VIDEO,
    "disable_slicing": _ONE_VIDEO,
}


def vae_method_advice(name: str) -> str | None:
    """What does here what diffusers' VAE method `name` does; None for a name diffusers' VAE lacks."""
    return VAE_METHOD_ADVICE.get(name)
