"""Triton kernels (importable as motif_lite.kernels).

The kernel modules (`dequant_matmul`, `norm`, `attention`) import triton; `patterns` and `reference` are pure
torch, so sparse patterns and their torch reference work where triton is missing. The model never imports this
package: `motif_lite.runtime.kernels` puts the kernels behind the `Ops` seams.

This file imports nothing on purpose: run from the repository root, `kernels/` is also visible as a top-level
package `kernels`, which transformers probes for (the Hugging Face `kernels` library) by importing it.
"""
