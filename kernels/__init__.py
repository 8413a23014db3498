"""Triton kernels (importable as motif_lite.kernels)."""
