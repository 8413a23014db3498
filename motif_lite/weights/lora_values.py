"""--lora's `FILE:STRENGTH` values, read and written in one place. Torch-free (weights/lora.py is not), so that the
flags can read a value while they are parsed and the messages can write one without loading torch."""

from __future__ import annotations

import math
from pathlib import Path


def split_strength(text: str) -> tuple[str, float | None]:
    """(file, strength) of `text` read as `FILE:STRENGTH`: the strength is what follows the last colon when it is a
    finite number, and the file what precedes it (empty for `:0.8`, as an unset variable in a script leaves it);
    (`text`, None) without one. Plain text only: `LoRASpec.parse` decides what a value means for the files on disk
    (a file whose name ends in a colon and a number)."""
    file, colon, tail = text.rpartition(":")
    try:
        strength = float(tail) if colon else math.nan
    except ValueError:
        strength = math.nan
    return (file, strength) if math.isfinite(strength) else (text, None)


def lora_flag(file: str | Path, strength: float) -> str:
    """The `--lora` value of a LoRA file at a strength, the strength as a video's settings and a latents file store
    it: `style.safetensors:0.8`, `style.safetensors:1`. The strength is written in the shortest form that reads back
    as the same float (`repr`), so that a resumed run merges exactly the weights of the run it continues."""
    return f"{file}:{repr(float(strength)).removesuffix('.0')}"
