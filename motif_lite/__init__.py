"""motif-lite: a lean, quantized, low-VRAM runtime for Motif-Video 2B.

The public names are imported on first use, so that `import motif_lite.cli` (and `motif-lite --help`) does not
pay for torch and transformers.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

from motif_lite.version import VERSION as __version__

_PUBLIC = {
    "GenerationRequest": "motif_lite.request",  # what `load_pipeline(...).generate` takes
    "GenerationResult": "motif_lite.pipeline",  # what `generate` returns (the output file, its settings, times)
    "MotifVideoPipeline": "motif_lite.pipeline",  # what `load_pipeline` returns, for type hints
    "LoRAError": "motif_lite.weights.lora_errors",  # a LoRA file or strength `load_pipeline(loras=...)` cannot take
    "MotifLiteError": "motif_lite.errors",  # every error a user can cause: the class the others derive from
    "RequestError": "motif_lite.request",  # a request's wrong settings, one line each
    "MotifVideoTransformer": "motif_lite.model.transformer",
    "ProgressBars": "motif_lite.progress",  # a bar per stage for `generate(on_progress=...)`, in a notebook too
    "TransformerConfig": "motif_lite.config",
    "load_pipeline": "motif_lite.pipeline",
    "load_transformer": "motif_lite.weights.loader",
    "plan_generation": "motif_lite.memory_plan",  # the memory plan `load_pipeline(plan=...)` takes
    "read_latents": "motif_lite.io.latents",  # a stopped run's saved state, for `generate(..., resume=...)`
}
# diffusers' names a user coming from it imports first -> what does the same here.
_DIFFUSERS_NAMES = {
    "MotifVideoImage2VideoPipeline": "image-to-video is the same pipeline: load_pipeline(...), then "
    "GenerationRequest(..., image='first_frame.png')",
    "DiffusionPipeline": "load_pipeline(...) loads Motif-Video (a Hub repo id or a local folder)",
    "export_to_video": "generate writes the video itself: GenerationRequest(..., output='fox.mp4', fps=24)",
    "MotifVideoTransformer3DModel": "the transformer is MotifVideoTransformer, loaded by load_transformer(...)",
}
__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "LoRAError",
    "MotifLiteError",
    "MotifVideoPipeline",
    "MotifVideoTransformer",
    "ProgressBars",
    "RequestError",
    "TransformerConfig",
    "__version__",
    "load_pipeline",
    "load_transformer",
    "plan_generation",
    "read_latents",
]

if TYPE_CHECKING:
    from motif_lite.config import TransformerConfig
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.latents import read_latents
    from motif_lite.memory_plan import plan_generation
    from motif_lite.model.transformer import MotifVideoTransformer
    from motif_lite.pipeline import GenerationResult, MotifVideoPipeline, load_pipeline
    from motif_lite.progress import ProgressBars
    from motif_lite.request import GenerationRequest, RequestError
    from motif_lite.weights.loader import load_transformer
    from motif_lite.weights.lora_errors import LoRAError


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'motif_lite' has no attribute {name!r}{_instead(name)}")


def _instead(name: str) -> str:
    """What to use for a name motif_lite lacks (`motif_lite.X`; `from motif_lite import X` is Python's own
    ImportError): diffusers' name's counterpart, else the public name it misspells."""
    if name in _DIFFUSERS_NAMES:
        return f" (a diffusers name): {_DIFFUSERS_NAMES[name]}"
    close = difflib.get_close_matches(name, __all__, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def __dir__() -> list[str]:
    # The public names, lazy ones included, so that completion in a REPL or notebook offers
    # `motif_lite.load_pipeline` and not this file's own imports (`Any`, `importlib`, ...).
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
