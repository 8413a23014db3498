"""motif-lite: a lean, quantized, low-VRAM runtime for Motif-Video 2B."""
