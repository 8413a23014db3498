"""What a LoRA that motif-lite cannot take raises: `LoRAError`, and `PackedDiffError` for a full difference of a
tensor the run holds quantized; and the ways out that several of their messages give."""

from __future__ import annotations

from pathlib import Path

from motif_lite.errors import MotifLiteError

# What to do with an adapter that would need its own math or loader (a DoRA, a LoHa on a convolution, ...).
MERGE_IT = (
    "merge it into the transformer's weights with the tool that trained it and pass those with --diffusion-model, "
    "or use a plain LoRA (lora_A/lora_B or lora_down/lora_up)"
)

# What to do about PEFT settings no PEFT version writes, and other contents no trainer writes.
EDITED = "the file was edited or damaged; export the LoRA again"


class LoRAError(MotifLiteError, ValueError):
    """A LoRA file cannot be read or does not fit the transformer."""


class UnreadableLoRAError(LoRAError):
    """A LoRA file there that this process's user may not read (its permissions): whoever owns the file must let
    it, not pick another LoRA (a server answers 503, its operator's to fix)."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


# What a `PackedDiffError` says before the caller that knows how the run packs its weights names it.
_ANY_PACKING = "which this run holds quantized (a GGUF's packed tensor, a --quantize recipe's, or an fp8 file's)"
_ANY_PACKING_ADVICE = "run it on the bf16/fp16 safetensors transformer (no GGUF, no --quantize, not an fp8 file)"


class PackedDiffError(LoRAError):
    """A full difference (`key` of file `path`) of a tensor (`name`) the run holds quantized; said in words true of
    every way a tensor is packed, until `packed_by` names the one at hand (`what`) and the way out of whoever
    loaded the model (`advice`)."""

    def __init__(
        self,
        path: Path,
        key: str,
        name: str,
        what: str = _ANY_PACKING,
        advice: str = _ANY_PACKING_ADVICE,
    ) -> None:
        self.path, self.key, self.name, self.what = path, key, name, what
        super().__init__(self._said(f"{advice}, or use a LoRA without full differences"))

    def packed_by(self, what: str, advice: str) -> PackedDiffError:
        """This refusal naming `what` packs the tensor (a clause: "which ...") and the `advice` for it."""
        return PackedDiffError(self.path, self.key, self.name, what, advice)

    def for_a_client(self) -> str:
        """This refusal as a server's client reads it: the way out that is the client's to take (another LoRA), not
        the flags the server was started with, which only its operator sets."""
        return self._said("send a LoRA without full differences (this server's transformer cannot take them)")

    def _said(self, ways_out: str) -> str:
        return (
            f"{self.path}: its full difference {self.key} changes {self.name}, {self.what}: a full difference "
            f"applies to plain tensors only; {ways_out}"
        )
