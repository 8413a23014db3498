"""What `motif-lite verify` reports: its stages, the tolerance of each, a stage's result (the relative difference
against its tolerance, and the side whose output holds inf or NaN), and the whole result's table and verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from motif_lite.numerics import FLOAT16_ADVICE

STAGES = {
    "text": "prompt and negative prompt embeddings (valid tokens)",
    "image": "SigLIP embeddings of the first frame, each side reading the file",
    "conditioning": "first frame's latents and mask in the 33 input channels",
    "transformer": "one forward: same noise, timestep and inputs (text; with -i, the first frame's)",
    "guidance": "guided velocity of step 0 from the same two predictions",
    "vae": "decode of the same latents, each side denormalizing them",
    "frames": "both pipelines end to end, uint8 frames",
}
IMAGE_STAGES = ("image", "conditioning")  # with a first frame only, right after the text stage
# Relative differences allowed. float32: summation order only (tests measure ~1e-7 per stage; frames round to
# uint8, where a value near a rounding edge flips one level). bfloat16: 8 mantissa bits, ~0.4 % per rounding, and
# GPU kernels differ in summation order (a 2B transformer forward differs ~1 % between implementations).
TOLERANCES = {
    torch.float32: {
        "text": 1e-4,
        "image": 1e-4,
        "conditioning": 1e-4,
        "transformer": 1e-4,
        "guidance": 1e-4,
        "vae": 1e-4,
        "frames": 5e-3,
    },
    torch.bfloat16: {
        "text": 2e-2,
        "image": 2e-2,
        "conditioning": 2e-2,
        "transformer": 3e-2,
        "guidance": 3e-2,
        "vae": 2e-2,
        "frames": 5e-2,
    },  # fmt: skip
}
# What a stage whose output holds inf or NaN on one side or both says next to it.
NOT_FINITE = {
    "ours": "inf/NaN in motif-lite's output only",
    "reference": "inf/NaN in the reference's output only",
    "both": "inf/NaN on both sides",
}
# Whose weights a stage that gives inf/NaN on both sides (from the same files) points at.
STAGE_WEIGHTS = {
    "text": "the text encoder's", "image": "the text encoder's (its SigLIP tower)", "conditioning": "the VAE's",
    "transformer": "the transformer's", "vae": "the VAE's",
}  # fmt: skip
# diffusers' GGUF layers dequantize in float16 before casting to the compute dtype (ggml uses float32): at float32
# the two transformers then differ by ~5e-4, which says nothing about the layout.
GGUF_TRANSFORMER_TOLERANCE = 3e-3


def stage_names(image: bool) -> list[str]:
    """The stages verify runs, in order: with a first frame (`image`), the image stages follow the text stage."""
    names = [name for name in STAGES if name not in IMAGE_STAGES]
    return [names[0], *IMAGE_STAGES, *names[1:]] if image else names


@dataclass(frozen=True)
class StageResult:
    stage: str
    difference: float  # relative L2 difference (inf when the shapes differ, NaN when a side is not finite)
    tolerance: float
    note: str = ""
    not_finite: str = ""  # the side whose output holds inf or NaN: "ours", "reference" or "both" (NOT_FINITE)

    @property
    def matches(self) -> bool:
        return not self.not_finite and self.difference <= self.tolerance

    @property
    def verdict(self) -> str:
        """match, MISMATCH, or inf/NaN when both sides give it: then they agree, and neither is to blame."""
        if self.not_finite == "both":
            return "inf/NaN"
        return "match" if self.matches else "MISMATCH"

    @property
    def outcome(self) -> str:
        """The verdict in words, with the side that gives inf/NaN: what the progress line says as the stage ends."""
        if self.not_finite == "both":
            return NOT_FINITE["both"]
        return f"{self.verdict} ({NOT_FINITE[self.not_finite]})" if self.not_finite else self.verdict

    @property
    def notes(self) -> str:
        return "; ".join(note for note in (NOT_FINITE.get(self.not_finite, ""), self.note) if note)

    def line(self) -> str:
        note = f" ({self.notes})" if self.notes else ""
        numbers = f"{self.difference:>10.3g} {self.tolerance:>10.0e}"
        return f"{self.stage:<12} {numbers}  {self.verdict:<9} {STAGES[self.stage]}{note}"


@dataclass
class VerifyResult:
    header: str
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dtype: torch.dtype = torch.float32

    @property
    def first_mismatch(self) -> StageResult | None:
        """The first stage that does not match (stages run in pipeline order), or None."""
        return next((s for s in self.stages if not s.matches), None)

    @property
    def mismatch(self) -> str | None:
        """The name of `first_mismatch`, or None."""
        return None if self.first_mismatch is None else self.first_mismatch.stage

    def verdict(self) -> str:
        first = self.first_mismatch
        if first is None:
            return "verdict: match"
        if first.not_finite == "both":
            return f"verdict: inf/NaN at {first.stage}, in the reference too: {self._both_not_finite(first.stage)}"
        return f"verdict: mismatch at {first.stage}"

    def _both_not_finite(self, stage: str) -> str:
        """What to do when both sides give inf/NaN: they read the same files, so our code is not what differs."""
        if self.dtype == torch.float16:
            return FLOAT16_ADVICE
        weights = f"{STAGE_WEIGHTS.get(stage, 'a')} weight file"
        return f"both sides read the same files, so {weights} is likely damaged (not motif-lite): download it again"

    def lines(self) -> list[str]:
        table = [f"{'stage':<12} {'rel. diff':>10} {'tolerance':>10}  verdict"] + [s.line() for s in self.stages]
        return [self.header, *(f"note: {n}" for n in self.notes), *table, self.verdict()]


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    if ours.shape != reference.shape:
        return math.inf
    ours, reference = ours.detach().double().cpu(), reference.detach().double().cpu()
    return float((ours - reference).norm() / reference.norm().clamp_min(1e-30))
