"""Triton kernels (importable as motif_lite.kernels).

The kernel modules (`dequant_matmul`, `norm`, `attention`) import triton; `patterns` and `reference` are pure
torch, so sparse patterns and their torch reference work where triton is missing. The model never imports this
package: `motif_lite.runtime.kernels` puts the kernels behind the `Ops` seams.
"""

from motif_lite.errors import MotifLiteError


class KernelInputError(MotifLiteError, ValueError):
    """A kernel was called with inputs it does not support (shape, dtype, quant type, mask layout)."""
