"""Errors raised by the kernels."""

from motif_lite.errors import MotifLiteError


class KernelInputError(MotifLiteError, ValueError):
    """A kernel was called with inputs it does not support (shape, dtype, quant type, mask layout)."""
