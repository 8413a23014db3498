"""The LoRAs as a user gives them: `--lora FILE[:STRENGTH]` (`LoRASpec.parse`, which names the likely mistake: files
joined by commas, a decimal comma, a strength that is not a number) and the Python API's `loras=` (`lora_specs`: files,
(file, strength) pairs or a {file: strength} dict). The text of a value alone is read in weights/lora_values.py; the
files themselves in weights/lora.py."""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from motif_lite.io.file_kinds import PICKLE_SUFFIXES, has_extension
from motif_lite.paths import user_path, user_path_kept_here
from motif_lite.shell_syntax import quoted
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_updates import LoRAFile
from motif_lite.weights.lora_values import (
    cancelling_advice,
    same_file_positions,
    split_strength,
    summed_strength,
    times,
    times_applied,
)


@dataclass(frozen=True)
class LoRASpec:
    """A LoRA file and its strength (1.0 = as trained; 0 = no effect; negative inverts it)."""

    path: Path
    strength: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoRASpec:
        """`FILE[:STRENGTH]`, as `--lora` takes it: the strength is what follows the last colon, if a number
        (`C:\\loras\\x.safetensors` is a file, `C:\\loras\\x.safetensors:0.8` that file at 0.8). A file that
        exists as written is taken whole, though its name ends in a colon and a number, unless the part before
        that colon exists too."""
        path, sep, tail = text.rpartition(":")
        if sep and user_path(text).exists() and not user_path(path).exists():
            return cls(_lora_file(text))
        if (joined := _files_joined_by_commas(text)) is not None:
            # quoted: pasted, a path with a space in it would be two words
            raise LoRAError(f"--lora {text}: one LoRA per --lora: {' '.join(f'--lora {quoted(f)}' for f in joined)}")
        # `style.safetensors:0.8:extra`: a file, then more than one strength (was "LoRA file not found")
        missing = sep and not user_path(text).exists() and not user_path(path).exists()
        if missing and (found := _file_before_a_colon(text)) is not None:
            file, rest = found
            raise LoRAError(
                f"--lora {text}: the strength {rest!r} is not a number; use FILE:STRENGTH, e.g. {quoted(f'{file}:0.8')}"
            )
        if sep:
            try:
                strength = float(tail)
            except ValueError:
                if user_path(path).exists() and re.fullmatch(r"[+-]?\d*,\d+", tail):  # a locale's decimal comma
                    meant = f"{path}:{tail.replace(',', '.')}"
                    raise LoRAError(
                        f"--lora {text}: the strength takes a decimal point, not a comma: --lora {quoted(meant)}"
                    ) from None
                if user_path(path).exists() and not user_path(text).exists():  # `style.safetensors:strong`: a typo
                    raise LoRAError(
                        f"--lora {text}: the strength {tail!r} is not a number; use FILE:STRENGTH, e.g. "
                        f"{quoted(f'{path}:0.8')}"
                    ) from None
                return cls(_lora_file(text))  # a path with a colon in it
            if not math.isfinite(strength):
                raise LoRAError(f"LoRA strength must be a finite number, got {tail!r} in {text!r}")
            return cls(_lora_file(path), strength)
        return cls(_lora_file(text))


def _files_joined_by_commas(text: str) -> list[str] | None:
    """The `FILE[:STRENGTH]` parts of `text` where it is two or more LoRAs joined by commas (as some tools take a
    list) and each part names a file, a strength written with a decimal comma given its point (`a:0,5,b`); None
    for anything else, a file so named included."""
    parts = text.split(",")
    if len(parts) < 2 or user_path(text).exists():
        return None
    for joined in (parts, _decimal_commas_mended(parts)):
        files = [split_strength(part)[0] for part in joined]
        if len(joined) > 1 and all(file and user_path(file).is_file() for file in files):
            return joined
    return None


def _decimal_commas_mended(parts: list[str]) -> list[str]:
    """`parts` with each part of digits alone put back after the strength before it, with a point:
    ["a.safetensors:0", "5", "b.safetensors"] -> ["a.safetensors:0.5", "b.safetensors"]."""
    mended: list[str] = []
    for part in parts:
        if mended and re.fullmatch(r"\d+", part) and re.search(r":[+-]?\d*$", mended[-1]):
            mended[-1] += f".{part}"
        else:
            mended.append(part)
    return mended


def _file_before_a_colon(text: str) -> tuple[str, str] | None:
    """(file, the rest) where `text` is an existing file, a colon and more; None when no colon ends a file's name."""
    for colon in (m.start() for m in re.finditer(":", text)):
        if user_path(text[:colon]).is_file():
            return text[:colon], text[colon + 1 :]
    return None


def lora_specs(loras: Sequence[LoRAEntry] | Mapping[str | Path, float]) -> list[LoRASpec | LoRAFile]:
    """The LoRAs as the Python API takes them: each a file or a (file, strength) pair, or a {file: strength} dict;
    `LoRAError` naming the entry for anything else (a bare file instead of a list, a strength that is not a finite
    number, a missing file). A `LoRAFile` (read already) is kept as it is: `preflight.check_loras` reads the rest."""
    if isinstance(loras, str | Path):  # a str is a sequence too: its letters would be read as files
        file, strength = _file_and_strength(str(loras))
        raise LoRAError(
            f"loras takes a list of files or (file, strength) pairs, or a {{file: strength}} dict, e.g. "
            f"loras={{{file!r}: {_exact(strength)}}}"
        )
    if _one_pair(loras):  # iterating it would read the file as a LoRA and its strength as another
        file, strength = str(loras[0]), loras[1]  # as given: np.float32(0.8) is 0.8, not 0.800000011920929
        raise LoRAError(
            f"loras takes a list of (file, strength) pairs, even for one LoRA: loras=[({file!r}, {_exact(strength)})] "
            f"(or loras={{{file!r}: {_exact(strength)}}}), got the pair alone"
        )
    if isinstance(loras, Mapping):  # iterating it would give the files alone, each at strength 1
        loras = list(loras.items())
    if not isinstance(loras, Iterable):  # None (as "no LoRAs"?) was a TypeError from the loop below
        raise LoRAError(
            f"loras takes a list of files or (file, strength) pairs, e.g. loras=[('style.safetensors', 0.8)], or [] "
            f"for none; got {type(loras).__name__} {loras!r}"
        )
    specs: list[LoRASpec | LoRAFile] = []
    for entry in loras:
        if isinstance(entry, LoRAFile):
            specs.append(entry)
            continue
        if isinstance(entry, str | Path):
            specs.append(LoRASpec(_lora_file(entry)))
            continue
        path, strength = entry if isinstance(entry, tuple | list) and len(entry) == 2 else (None, None)
        number = isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength)
        if not isinstance(path, str | Path) or not number:
            raise LoRAError(
                f"each LoRA is a file or a (file, strength) pair with a finite number as strength, e.g. "
                f"('style.safetensors', 0.8); got {entry!r}"
            )
        specs.append(LoRASpec(_lora_file(path), float(strength)))
    for spec in specs:
        if isinstance(spec, LoRASpec) and not spec.path.is_file():
            raise LoRAError(_not_found(spec.path))
    if (same := same_file_positions([spec_of(s).path for s in specs])) is not None:
        # Every entry of the file: a third one changes the one strength that gives them all.
        entries = [spec_of(specs[i]) for i in same]
        strengths = [entry.strength for entry in entries]
        total = summed_strength(*strengths)
        if total == 0:  # (a, 1) and (a, -1): the file at 0 would be read and change nothing
            advice = cancelling_advice(len(entries), "out of loras")
        elif math.isfinite(total):
            advice = f"give it once with the summed strength: ({str(entries[0].path)!r}, {total:g})"
        else:  # 1e308 twice: the sum overflows, and (file, inf) would be refused
            advice = "their sum is no finite strength: give it once, with the strength you mean"
        names = [repr(str(entry.path)) for entry in entries]
        raise LoRAError(
            f"loras names the same file {times(len(entries))} ({', '.join(names[:-1])} and {names[-1]}), which would "
            f"apply {times_applied(strengths)}; {advice}"
        )
    return specs


def spec_of(lora: LoRASpec | LoRAFile) -> LoRASpec:
    """The file and strength of a LoRA `lora_specs` gave, read already or not."""
    return lora.spec if isinstance(lora, LoRAFile) else lora


def _one_pair(loras: object) -> bool:
    """Whether `loras` is one (file, strength) pair where a list of them belongs: `set_loras(("style", 0.8))`."""
    if not isinstance(loras, tuple | list) or len(loras) != 2:
        return False
    file, strength = loras
    return isinstance(file, str | Path) and isinstance(strength, numbers.Real) and not isinstance(strength, bool)


def _file_and_strength(text: str) -> tuple[str, float]:
    """(file, strength) of `text` read as --lora's `FILE:STRENGTH`, for the Python API's messages: a `:STRENGTH`
    typed the command line's way belongs in the strength of `loras=`, not in its file name; strength 1 without one."""
    file, strength = split_strength(text)
    return (file, strength) if file and strength is not None else (text, 1.0)


def _exact(strength: float) -> str:
    """`strength` in full, for advice to paste (a float as Python reads it back the same): `:g` cut 0.1234567 to
    0.123457. A whole number without its `.0` (`1`), as `lora_flag` writes it."""
    return str(strength).removesuffix(".0")


def _not_found(path: Path) -> str:
    """What to say about a LoRA entry of the Python API that names no file: `FILE:STRENGTH` is how --lora takes a
    strength, not how `loras=` does; when the file before the colon exists, that is the likely mistake. Else the file
    of that folder it likely meant, if one (`meant_lora_file`)."""
    file, strength = _file_and_strength(str(path))
    if file != str(path):  # `style.safetensors:0.8`, or `style:0.8` for the file beside it
        pair_file = file if Path(file).is_file() else meant_lora_file(Path(file))
        if pair_file is not None:
            return (
                f"LoRA file not found: {path}; loras= takes a strength as a (file, strength) pair, e.g. "
                f"loras=[({str(pair_file)!r}, {_exact(strength)})]"
            )
    if (before_colon := meant_before_a_colon(path)) is not None:  # `style:0.8.safetensors`, `style:strong`
        pair_file, after, strength = before_colon
        said = "" if strength is not None else f"{after!r} is no strength: "
        return (
            f"LoRA file not found: {path}; {said}loras= takes a strength as a (file, strength) pair, e.g. "
            f"loras=[({str(pair_file)!r}, {_exact(0.8 if strength is None else strength)})]"
        )
    meant = meant_lora_file(path)
    return f"LoRA file not found: {path}" + (f"; did you mean {str(meant)!r}?" if meant else "")


def meant_lora_file(path: Path) -> Path | None:
    """The `.safetensors` file beside a missing LoRA `path` that it most likely meant: the one it names without its
    extension (`style` for style.safetensors, as ComfyUI's LoRA lists and A1111's `<lora:style:0.8>` show them),
    else the closest spelling (`syle.safetensors`, `Style.safetensors`); None where its folder holds none. Names are
    compared without their extensions, which most share and would make any two look alike. The folder's listing
    tells what is a file (`os.scandir`): a stat per LoRA took a round trip each on a network share."""
    try:
        with os.scandir(path.parent) as entries:
            by_stem = {
                Path(entry.name).stem: path.parent / entry.name
                for entry in entries
                if has_extension(entry.name, ".safetensors") and not entry.name.startswith(".") and entry.is_file()
            }
    except OSError:  # no such folder, or one that cannot be read
        return None
    if path.name in by_stem:
        return by_stem[path.name]
    close = difflib.get_close_matches(path.stem, list(by_stem), 1)
    return by_stem[close[0]] if close else None


def meant_before_a_colon(path: Path) -> tuple[Path, str, float | None] | None:
    """For a missing LoRA `path` whose name holds a colon that --lora's `FILE:STRENGTH` did not read as a strength
    (`style:strong`, or a strength with the extension typed after it: `style:0.8.safetensors`): the file before the
    colon that it likely meant (`meant_lora_file`), the text after the colon, and the strength that text holds
    before a `.safetensors` (None where it holds no finite number). Offered alone, the file would drop that text in
    silence: the closest spelling of `style:0.8` is `style`, at strength 1. None for a name without such a colon,
    or where the folder holds a name with a colon that the whole name likely meant."""
    before, colon, after = path.name.rpartition(":")
    whole = meant_lora_file(path) if colon and before else None
    if not before or (whole is not None and ":" in whole.stem):
        return None
    if (file := meant_lora_file(path.parent / before)) is None:
        return None
    number = after[: -len(".safetensors")] if has_extension(after, ".safetensors") else ""
    try:
        strength = float(number) if number else None
    except ValueError:
        strength = None
    return file, after, strength if strength is not None and math.isfinite(strength) else None


# What `load_pipeline(loras=...)` takes per LoRA: a file (strength 1, as --lora FILE), a (file, strength) pair, or
# a `LoRAFile` read and checked already (`read_loras`: run hands on the files it checked before the plan).
LoRAEntry = str | Path | tuple[str | Path, float] | LoRAFile


def _lora_file(given: str | os.PathLike) -> Path:
    """The LoRA file `given` names: a folder holding one .safetensors file (as diffusers' `save_lora_weights` and
    `hf download` leave one) stands for that file. A leading `~` is the home folder, as in a shell (the Python API's
    paths); `./~` is a file or folder named `~` here, kept absolute: pathlib drops the `./`, and a later reader of
    the path (`user_path`) would take what is left for the home folder."""
    path = user_path_kept_here(given)
    if not path.is_dir():
        return path
    files = sorted(f for f in path.iterdir() if has_extension(f, ".safetensors") and f.is_file())
    if len(files) == 1:
        return files[0]
    pickles = sorted(f for f in path.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES)
    if not files and len(pickles) == 1:  # an older PEFT folder's adapter_model.bin: refused when read, with the fix
        return pickles[0]
    holds = f"{len(files)} .safetensors files ({', '.join(f.name for f in files)})" if files else "no .safetensors file"
    raise LoRAError(f"LoRA {path} is a folder holding {holds}; pass the LoRA file itself")
