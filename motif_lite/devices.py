"""Device names -> `torch.device`, with one clear error when the device cannot be used here.

torch reports a missing GPU in several ways (an AssertionError from a CPU-only build, a RuntimeError about the
NVIDIA driver, an invalid device ordinal); the loaders call `checked_device` first so that users get one message.
"""

from __future__ import annotations

import torch

from motif_lite.errors import DeviceError


def checked_device(device: str | torch.device) -> torch.device:
    """The `torch.device` for `device`, or a `DeviceError` saying why it cannot be used on this machine."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from exc
    if resolved.type != "cuda":
        return resolved
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no NVIDIA driver or GPU was found"
        raise DeviceError(f"device {str(device)!r} requested but CUDA is not available ({why}); use the CPU")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"device {str(device)!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    return resolved
