"""--lora's `FILE:STRENGTH` values, read and written in one place. Torch-free (weights/lora.py is not), so that the
flags can read a value while they are parsed and the messages can write one without loading torch."""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from types import FrameType


def strength_after_colon(text: str) -> tuple[str, float] | None:
    """(file, strength) of `text` read as `FILE:STRENGTH` as --lora reads it: the strength is what follows the last
    colon when float() reads it, finite or not (`a:inf` gives a strength, which --lora refuses as no finite number,
    rather than a file named so), and the file what precedes it (empty for `:0.8`); None without one. The one reading
    of a strength after a colon: `split_strength` and the unknown-argument hints both use it."""
    file, colon, tail = text.rpartition(":")
    if not colon:
        return None
    try:
        return file, float(tail)
    except ValueError:
        return None


def split_strength(text: str) -> tuple[str, float | None]:
    """(file, strength) of `text` read as `FILE:STRENGTH` (`strength_after_colon`) where the strength is a finite
    number (empty file for `:0.8`, as an unset variable in a script leaves it); (`text`, None) without one. Plain
    text only: `LoRASpec.parse` decides what a value means for the files on disk (a file whose name ends in a colon
    and a number)."""
    read = strength_after_colon(text)
    return read if read is not None and math.isfinite(read[1]) else (text, None)


def lora_flag(file: str | Path, strength: float) -> str:
    """The `--lora` value of a LoRA file at a strength, the strength as a video's settings and a latents file store
    it: `style.safetensors:0.8`, `style.safetensors:1`. The strength is written in the shortest form that reads back
    as the same float (`repr`), so that a resumed run merges exactly the weights of the run it continues."""
    return f"{file}:{repr(float(strength)).removesuffix('.0')}"


def lora_totals(loras: Iterable[str], file_key: Callable[[str], str] = str) -> dict[str, float]:
    """`--lora` values (`style.safetensors:0.8`) as each file's total strength, the files by `file_key` (a name, a
    resolved path): what two runs' LoRAs are compared by. LoRAs merge by adding their changes, so their order is no
    difference, nor one file given twice (`a:1`, `a:0.5`) against once at the sum (`a:1.5`), nor `a` against `a:1`,
    nor a file whose strengths add up to 0 (`a:0.5`, `a:-0.5`: it changes nothing) against none: such a file is left
    out. Rounded to 6 significant digits: files written before strengths were stored exactly kept them so (`:g`)."""
    strengths: dict[str, list[float]] = {}
    for lora in loras:
        file, strength = split_strength(lora)
        if strength is None:  # no strength, or a value we did not write: the file as it is, at strength 1
            file, strength = lora, 1.0
        strengths.setdefault(file_key(file), []).append(strength)
    return {key: summed_strength(*each) for key, each in strengths.items() if not strengths_cancel(each)}


def same_file_twice(files: Sequence[Path]) -> tuple[int, int] | None:
    """The positions of the first two of `files` that are one file on disk, however each is spelled
    (`a.safetensors` and `./a.safetensors`, an absolute path, a symbolic or a hard link); None when each is another
    file. Applied twice, a LoRA would act at the sum of its strengths without a word, so its callers refuse it. A
    file that cannot be looked at (removed meanwhile), or whose file system gives it no number (st_ino 0: Windows
    on some network shares and RAM disks, where every file would look like every other), is compared by its
    resolved path. Its size and modification time count too: Python before 3.12 gives a ReFS file (a Windows Dev
    Drive) 64 bits of its 128-bit number, which another file there may share; one file's names share all four."""
    seen: dict[object, int] = {}
    for position, file in enumerate(files):
        try:
            stat = os.stat(file)
        except OSError:
            stat = None
        numbered = stat is not None and stat.st_ino
        identity: object = (
            (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) if numbered else Path(file).resolve()
        )
        if identity in seen:
            return seen[identity], position
        seen[identity] = position
    return None


def same_file_positions(files: Sequence[Path]) -> tuple[int, ...] | None:
    """The positions of every name in `files` of the first file `same_file_twice` finds given more than once (a
    third `a:-1` after `a:0.5` twice changes what one strength gives what they give); None when each is another
    file."""
    if (twice := same_file_twice(files)) is None:
        return None
    first = twice[0]
    later = (p for p in range(first + 1, len(files)) if same_file_twice([files[first], files[p]]) is not None)
    return (first, *later)


def times(count: int) -> str:
    """How often a file given `count` times (2 or more) is named: `twice`, `3 times`."""
    return "twice" if count == 2 else f"{count} times"


def times_applied(strengths: Sequence[float]) -> str:
    """How often, and at what, a file given at each of `strengths` would apply: `twice (at 0.5 + -0.5)`,
    `3 times (at 0.5 + 0.5 + -1)`."""
    return f"{times(len(strengths))} (at {' + '.join(f'{each:g}' for each in strengths)})"


def cancelling_advice(count: int, leave_out: str) -> str:
    """What a refusal of one file given `count` times at strengths that cancel (`strengths_cancel`) advises: the
    file at 0 would be read and change nothing, so its entries go (`leave_out`: "--lora out", "out of loras")."""
    them = "both" if count == 2 else "them all"
    return f"their strengths add up to 0, so together they change nothing: leave {them} {leave_out}"


def summed_strength(*strengths: float) -> float:
    """The one strength that gives what a file given at each of `strengths` (twice or more) gave, as a refusal
    offers it: rounded to 6 significant digits, so that 0.1 and 0.2 read 0.3 rather than 0.30000000000000004; 0
    where they cancel (`strengths_cancel`)."""
    if strengths_cancel(strengths):
        return 0.0
    if not math.isfinite(total := sum(strengths)):  # `:1e308` twice: past the floats, as the caller says
        return total
    return float(f"{float(_exact_sum(strengths)):.6g}")  # 1e16 + 1 - 1e16 is 1, not the floats' 0


def strengths_cancel(strengths: Sequence[float]) -> bool:
    """Whether a file given at each of `strengths` changes nothing: they add up to 0, but for what floats round. A
    decimal strength is the float nearest it, and one computed (-0.1 - 0.2) is within a step of float precision of
    its value: such strengths typed or computed to cancel may leave a residue (0.1 + 0.2 - 0.3 is 5.6e-17 in floats,
    0.3 - 0.30000000000000004 one step). So their exact sum (no rounding of its own) may differ from 0 by a step of
    each strength that is no exact decimal; one that is (1, 0.5, 1e16, 9999999999999998) was not rounded and leaves
    no residue. A tolerance by the strengths' size alone took 1e16 and -9999999999999998 (2 apart) for cancelling,
    and 1e16 + 1 - 1e16, whose float sum is 0. A strength past the floats (inf) is no number to cancel."""
    if not all(math.isfinite(each) for each in strengths):
        return False
    rounded = (each for each in strengths if Fraction(repr(float(each))) != Fraction(each))
    return abs(_exact_sum(strengths)) <= sum(math.ulp(each) for each in rounded)


def _exact_sum(strengths: Sequence[float]) -> Fraction:
    """The sum of finite `strengths`, the floats as they are, without the rounding of each float addition."""
    return sum(map(Fraction, strengths), Fraction(0))


# LoRAs are applied at strengths of 0 to 2 (1 as trained); past this either way a strength is far more often a typo
# (`:80` for `:0.8`) than a wish. Such a strength is warned of and applied as given: a user may mean it.
UNUSUAL_STRENGTH = 4.0


def unusual_strength(file: str | Path, strength: float) -> str | None:
    """The warning for a LoRA `file` given at `strength` past `UNUSUAL_STRENGTH` either way, with the strength its
    digits likely meant where it has few (80 -> 0.8, -15 -> -1.5, 125 -> 1.25); None for a usual one."""
    if abs(strength) <= UNUSUAL_STRENGTH:
        return None
    meant = strength
    while abs(meant) > 2:  # the decimal point typed too far right, or left out
        meant /= 10
    usual = "far above the usual 0-2" if strength > 0 else "far below the usual -2 to 0 (negative inverts it)"
    typo = f": a typo for {meant:g}?" if abs(strength) < 1000 else "."  # 1e30 is no slip of the point
    return f"LoRA {file}: strength {strength:g} is {usual}, 1 being as trained{typo} It is applied as given"


def warn_of_unusual_strengths(loras: Iterable[tuple[str | Path, float]], skip_folder: str | None = None) -> None:
    """A warning per LoRA (file, strength) whose strength is unusual (`unusual_strength`), before anything loads,
    named by the place that called the caller (as `stacklevel=3`), or with `skip_folder` (a folder's path) by the
    first place from there out whose file is not in that folder: `set_loras`' decorators are frames of their own,
    and the warning named one of them. The standard library's thread machinery is passed too: a thread started on
    the method itself (`Thread(target=pipe.set_loras)`, `executor.submit(pipe.set_loras, ...)`) holds no line of
    the caller's, and the warning named threading.py; it names that thread then (`<thread Thread-1 (set_loras)>`).
    Said on every call: Python's registry shows a warning of one text from one place once per process, so a
    notebook's second `set_loras` (or `load_pipeline`) at the same strength was silent. The warning filters still
    apply (an "ignore" silences it)."""
    inside = os.path.join(skip_folder, "") if skip_folder is not None else None

    def passed(frame: FrameType) -> bool:
        ours = inside is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside)
        module = frame.f_globals.get("__name__", "")
        return ours or module == "threading" or module.startswith("concurrent.futures")

    place = sys._getframe(1)
    if place.f_back is not None:  # else called from a module's top level: no caller's caller
        place = place.f_back
    while passed(place) and place.f_back is not None:
        place = place.f_back
    if passed(place):  # the thread's first frame: no line of the caller's in this thread
        filename = module = f"<thread {threading.current_thread().name}>"  # a module of None: no warning at all
        line = 0
    else:
        filename, line, module = place.f_code.co_filename, place.f_lineno, place.f_globals.get("__name__")
    for file, strength in loras:
        if (warning := unusual_strength(file, strength)) is not None:
            # registry=None: none of the per-place records that would leave the next call silent
            warnings.warn_explicit(warning, UserWarning, filename, line, module=module, registry=None)
