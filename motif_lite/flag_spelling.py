"""Which flag a mistyped one means, for the hints of `motif-lite` and of `python -m motif_lite.quantize`: both
spell a flag the same way and match a typo as closely, so that one typo gets the same advice from either."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence

TYPO_CUTOFF = 0.8  # difflib's ratio: one or two letters off in a flag's name, not another flag


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of `parser` (`-o`, `--output`, ...)."""
    return [option for action in parser._actions for option in action.option_strings]  # argparse keeps no public list


def spelled(name: str) -> str:
    """A long flag as our flags are spelled: lower case, dashes (`--Num_Frames` -> `--num-frames`); -M stays -M."""
    return "--" + name[2:].replace("_", "-").lower() if name.startswith("--") else name


def closest_flag(name: str, candidates: Sequence[str]) -> str | None:
    """The flag of `candidates` that `name` (already `spelled`) most likely misspells, or None."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=TYPO_CUTOFF)
    return close[0] if close else None
