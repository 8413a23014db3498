"""Triton kernels (importable as motif_lite.kernels).

The kernel modules (`dequant_matmul`, `norm`, `attention`, `attention_int8`) and their helpers (`launch`,
`compiled`) import triton; `patterns`, `reference` and `int8_scheme` are pure torch, so sparse patterns, the
torch references and the 8-bit attention's workspace size work where triton is missing. The model never imports
this package: `motif_lite.runtime.kernels` puts the kernels behind the `Ops` seams.

This file imports nothing on purpose: run from the repository root, `kernels/` is also visible as a top-level
package `kernels`, which transformers probes for (the Hugging Face `kernels` library) by importing it.
"""
