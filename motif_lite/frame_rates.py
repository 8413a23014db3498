"""Frame rates as users write them, NTSC's included.

NTSC video runs at k*1000/1001 frames per second (24000/1001 for film, 30000/1001 for TV), which editors and ffmpeg
name by rounded decimals: 23.976, 29.97, 59.94. Taken as the decimal it is, 23.976 would be written at 2997/125 fps,
a rate no NTSC clip has, so those names mean the exact rate here, and so does a fraction as ffmpeg's `-r 24000/1001`
takes it. Every other rate (24, 12.5) is the number given.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# The NTSC rates, by the frames per second each is a thousandth (and a bit) short of.
NTSC_RATES = tuple(Fraction(k * 1000, 1001) for k in (24, 30, 48, 60, 120))
# The decimals each is known by: 23.976 and 23.98, 29.97, 47.952 and 47.95, 59.94, 119.88.
_NTSC_NAMES = {round(float(rate), decimals): rate for rate in NTSC_RATES for decimals in (2, 3)}
# ffmpeg's names for them (`-r ntsc-film`), as its video size and rate abbreviations spell them.
_FFMPEG_NAMES = {"ntsc-film": Fraction(24000, 1001), "ntsc": Fraction(30000, 1001)}
_FRACTION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*")


def exact_rate(fps: float) -> float:
    """`fps`, or the NTSC rate it names (23.976 -> 24000/1001) as the float nearest to it; any other rate as it is."""
    exact = _NTSC_NAMES.get(fps)
    return float(exact) if exact is not None else fps


def parse_rate(text: str) -> float:
    """A frame rate as a user writes it: a number (`24`, `12.5`; NTSC's names by `exact_rate`), a fraction
    (`24000/1001`) or ffmpeg's `ntsc-film` / `ntsc`. ValueError, one line, for anything else (`24/`, `1/0`, a
    fraction too large for a float); the rate's range is the request's to check."""
    named = _FFMPEG_NAMES.get(text.strip().lower())
    if named is not None:
        return float(named)
    if "/" in text:
        parts = _FRACTION.fullmatch(text)
        if parts is None or float(parts[2]) == 0:
            raise ValueError(f"must be a number or a fraction such as 24000/1001, got {text!r}")
        try:
            return float(Fraction(parts[1]) / Fraction(parts[2]))
        except OverflowError:  # a numerator hundreds of digits long: no float holds it
            raise ValueError(f"must be a frame rate a float holds, got a fraction of {len(text)} characters") from None
    return exact_rate(float(text))


def rate_name(fps: float) -> str:
    """`fps` as a number users write: "24", "12.5", and an NTSC rate by the name `exact_rate` takes back, "23.976",
    "59.94" (`:g` would say 59.9401 for 60000/1001)."""
    return f"{round(fps, 3):g}" if _is_ntsc(fps) else f"{fps:g}"


def rate_said(fps: float) -> str:
    """`fps` with its unit, for messages and summaries: "24 fps", and an NTSC rate by its name and its fraction,
    "23.976 fps (24000/1001)": 23.976 alone does not say it is not 2997/125."""
    return f"{rate_name(fps)} fps ({Fraction(fps).limit_denominator()})" if _is_ntsc(fps) else f"{fps:g} fps"


def rate_flag_value(fps: float) -> str:
    """`fps` as a value `--fps` (and Python, as an expression) takes back exactly: "24", "12.5", and a fraction
    where `:g` would give another rate: NTSC's (24000/1001: Python takes 23.976 as it is), and 2997/125, which
    `--fps 23.976` no longer means."""
    written = f"{fps:g}"
    if not _is_ntsc(fps) and parse_rate(written) == fps:
        return written
    return str(Fraction(fps).limit_denominator())


def _is_ntsc(fps: float) -> bool:
    """Whether `fps` is an NTSC rate, as io.video writes it (the fraction nearest to the float)."""
    return math.isfinite(fps) and Fraction(fps).limit_denominator() in NTSC_RATES
