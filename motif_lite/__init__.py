"""motif-lite: a lean, quantized, low-VRAM runtime for Motif-Video 2B."""

from motif_lite.config import TransformerConfig
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.pipeline import load_pipeline
from motif_lite.weights.loader import load_transformer

__all__ = ["MotifVideoTransformer", "TransformerConfig", "load_pipeline", "load_transformer"]
