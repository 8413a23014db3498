"""The GGUF quantize tool (python -m motif_lite.quantize)."""
