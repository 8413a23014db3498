"""Numbers that stopped being numbers: a run whose embeddings, latents or decoded frames hold inf or NaN stops
where that first happens, with what to try, instead of sampling on and writing a black video an hour later.

float16 is where this is expected: its largest value is 65504, and the model was trained and published in
bfloat16, whose range is float32's. A damaged weight file or LoRA can do it in any dtype.
"""

from __future__ import annotations

import torch

from motif_lite.errors import MotifLiteError, both_spellings

TORCH_KERNELS = both_spellings("--kernels torch", 'kernels="torch"')
FLOAT16_ADVICE = (
    "float16's range (up to 65504) is too narrow for this model here: run in bf16 on GPUs of compute capability 8.0 "
    f"and newer: {both_spellings('--dtype bf16', 'dtype=torch.bfloat16')}; or in fp32: "
    f"{both_spellings('--dtype fp32', 'dtype=torch.float32')}"
)


class NonFiniteError(MotifLiteError):
    """A tensor of the generation holds inf or NaN. `what` names it (e.g. "the latents after step 3 of 50"), for a
    caller that says it its own way (`motif-lite verify` reports it as a stage's result, not with this advice)."""

    def __init__(self, message: str, what: str = "") -> None:
        super().__init__(message)
        self.what = what


def check_finite(tensor: torch.Tensor, what: str, likely_cause: str | None = None) -> None:
    """Raise `NonFiniteError` naming `what` (e.g. "the latents after step 3 of 50") if `tensor` holds inf or NaN.
    `likely_cause`: what the caller knows to be the likeliest cause (a huge LoRA strength), said instead of the
    general advice. One reduction and one host sync: per step, nothing next to a transformer forward."""
    if bool(torch.isfinite(tensor).all()):
        return
    dtype = str(tensor.dtype).removeprefix("torch.")
    raise NonFiniteError(f"{what} hold inf or NaN ({dtype}): {likely_cause or advice(tensor)}", what)


def advice(tensor: torch.Tensor) -> str:
    """What to try when `tensor` holds inf or NaN, for where it was computed: in float16 its range; else the weights,
    and on a GPU the kernels (on the CPU only torch's own ops run: --kernels torch would change nothing)."""
    if tensor.dtype == torch.float16:
        return FLOAT16_ADVICE
    on_gpu = tensor.device.type != "cpu"
    causes = "a weight file or a LoRA may be damaged" + (", or a kernel may have failed" if on_gpu else "")
    kernels = f"try {TORCH_KERNELS}; " if on_gpu else ""
    return (
        f"{causes}: {kernels}leave out any --lora, and run `motif-lite verify`, which compares every stage with the "
        "reference"
    )
