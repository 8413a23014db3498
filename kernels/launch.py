"""Triton options that every launch of our kernels states instead of leaving them to Triton's defaults."""

# FMA contraction on: the kernels were tuned, read in SASS and measured with it. Stated because Triton 3.9 warns
# on every first compile when it is left to the default, and Triton 3.10 turns that default off.
FUSED_FP = {"enable_fp_fusion": True}
