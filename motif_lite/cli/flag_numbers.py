"""The values of the flags that take a number (--steps, -W/-H, --video-frames, --fps, -s, --crf, -b, --vram, --ram,
--step-cache, --gpus, --comm-timeout, ...), checked as argparse reads them: each type gives the value, or an error
that names what was wrong and what to type instead (a decimal comma, a size in one value, a length in seconds, MiB
given as GiB)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from motif_lite.choices import CRF_RANGES, chosen_gpus_command, gpu_numbers, is_list, lines_size, split_size
from motif_lite.errors import ConfigError
from motif_lite.flag_spelling import is_number, lookalike_number_note
from motif_lite.frame_rates import parse_rate
from motif_lite.request import SEED_RANGE


def whole_number(text: str) -> int:
    """A whole number (--steps); argparse alone says "invalid int value", which names neither the flag's unit nor
    what was wrong (`20.5`)."""
    try:
        return int(text)
    except ValueError:
        pass
    if re.fullmatch(r"\s*\d{1,3}(,\d{3})+\s*", text):  # `--max-queue 1,000` said only "must be a whole number"
        raise argparse.ArgumentTypeError(f"takes no thousands separator: {text.strip().replace(',', '')}")
    raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}{lookalike_number_note(text, int)}")


def size_side(text: str) -> int:
    """-W or -H: pixels. Other tools' ways of giving the size in one value (`1280x720`, `720p`) get the two flags
    they stand for."""
    if (size := split_size(text)) is not None:
        raise argparse.ArgumentTypeError(f"takes one side in pixels: the size {text} is -W {size[0]} -H {size[1]}")
    if (size := lines_size(text)) is not None:  # a video's height in lines, 16:9 (720p: 1280x720)
        raise argparse.ArgumentTypeError(f"takes pixels: {text} is -H {size[1]}, and -W {size[0]} makes it 16:9")
    return whole_number(text)


@dataclass(frozen=True)
class SecondsGiven:
    """--video-frames given a length in seconds: an error whose frame count needs the run's --fps, which an
    argparse type cannot see (it may even come later); `run_inputs.refuse_seconds` says it once every flag is parsed."""

    seconds: float


def frame_count(text: str) -> int | SecondsGiven:
    """--video-frames: frames. A length in seconds (`5s`, as a duration is written elsewhere) is kept for
    `refuse_seconds`, which gives the frames it is at the run's --fps."""
    number = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"  # 5, 2.5, .5, 1e3
    duration = re.fullmatch(rf"\s*({number})\s*(s|sec|secs|seconds?)\s*", text, flags=re.IGNORECASE)
    if duration and float(duration[1]) > 0:
        return SecondsGiven(float(duration[1]))
    return whole_number(text)


def decimal(text: str) -> float:
    """A number (--cfg-scale, --fps, ...); one written with a decimal comma (`7,5`, as many locales write it) gets
    the same number with a point, where argparse said only "invalid float value"."""
    try:
        return float(text)
    except ValueError:
        pass
    if re.fullmatch(r"\s*-?\d+,\d+\s*", text):
        raise argparse.ArgumentTypeError(f"takes a decimal point, not a comma: {text.strip().replace(',', '.')}")
    raise argparse.ArgumentTypeError(f"must be a number, got {text!r}{lookalike_number_note(text)}")


def frame_rate(text: str) -> float:
    """--fps's rate: a number as `decimal` takes it, a fraction (24000/1001, as ffmpeg's -r takes it) or an NTSC
    rate's name (23.976, ntsc-film), which is its exact rate (`frame_rates.parse_rate`)."""
    try:
        return parse_rate(text)
    except ValueError as error:
        if "/" in text:
            raise argparse.ArgumentTypeError(str(error)) from None
    return decimal(text)  # no number: its message (a decimal comma, say)


def seed_value(text: str) -> int:
    """--seed's whole number (its range is the request's to check); a word such as ComfyUI's "randomize" gets the
    -1 that draws a random seed, where argparse would say only "invalid int value"."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {SEED_RANGE}, got {text!r}{lookalike_number_note(text, int)}"
        ) from None


def crf_value(text: str) -> int:
    """--crf's number: a whole number within some codec's range (0-63). The range of the output's own codec (H.264:
    0-51) is checked against -o once the output is known, before anything loads (`io.video.check_crf`)."""
    low = min(low for low, _ in CRF_RANGES.values())
    high = max(high for _, high in CRF_RANGES.values())
    ranges = ", ".join(f"{codec} {first}-{last}" for codec, (first, last) in CRF_RANGES.items())
    expected = f"a whole number from {low} to {high} ({ranges}; lower is better and larger)"
    try:
        value = int(text)
    except ValueError:  # argparse would say "invalid crf_value value"
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def gib(text: str) -> float:
    """A memory budget in GiB: a finite number > 0, optionally followed by G, GB or GiB (in any case: "8GB" is taken
    as 8 GiB, as a card sold as 8 GB has) or by M, MB or MiB (MiB: "8000MB" is 7.8 GiB), which argparse reports as
    a usage error otherwise."""
    number = text.strip()
    megabytes = re.search(r"\s*(m|mb|mib)$", number, flags=re.IGNORECASE)
    if megabytes:
        return positive_number(number[: megabytes.start()], "GiB", text) / 1024
    return positive_number(re.sub(r"\s*(g|gb|gib)$", "", number, flags=re.IGNORECASE), "GiB", text)


# Words other tools take for "as much as there is" (`--vram auto`): motif-lite's default, which the flag left out gives.
_DEFAULT_BUDGET_WORDS = ("auto", "default", "max")


def _refuse_default_word(text: str, flag: str, default: str) -> None:
    """A word for the default budget given to `flag` is told to leave the flag out, where `gib` said only "must be a
    number of GiB > 0, got auto"."""
    if text.strip().lower() in _DEFAULT_BUDGET_WORDS:
        raise argparse.ArgumentTypeError(f"takes a number of GiB, got {text}: leave {flag} out {default}")


def _refuse_grouped_gib(text: str, most_gib: float | None) -> None:
    """A budget in GiB with a comma before three digits (`--vram 1,000`) reads two ways: a decimal comma (1 GiB) or
    a thousands separator (1000 GiB). Where the thousands reading is a size the flag can mean (at most `most_gib`;
    any where None), the error names both; otherwise `gib` advises the decimal point alone (`--vram 8,000`: 8000 GiB
    is no card, so 8.000)."""
    grouped = re.fullmatch(r"\s*([1-9]\d{0,2}),(\d{3})\s*((?:g|gb|gib)?)\s*", text, flags=re.IGNORECASE)
    if grouped is None:
        return
    whole, fraction, unit = grouped.groups()
    thousands = int(whole + fraction)
    if most_gib is not None and thousands > most_gib:
        return
    decimal_value = float(f"{whole}.{fraction}")
    raise argparse.ArgumentTypeError(
        f"takes a decimal point, not a comma: {whole}.{fraction}{unit} ({decimal_value:g} GiB), or no thousands "
        f"separator: {whole}{fraction}{unit} ({thousands} GiB)"
    )


def ram_gib(text: str) -> float:
    """--ram's budget (`gib`); left out, a run has no host memory limit. A comma before three digits is read as a
    thousands separator too where this machine has that many GiB (`_refuse_grouped_gib`)."""
    _refuse_default_word(text, "--ram", "for no host memory limit (the default)")
    if "," in text:  # the machine's memory is read only for a budget that may need it
        from motif_lite.runtime.host_memory import total_ram

        total = total_ram()
        _refuse_grouped_gib(text, None if total is None else total / 2**30)
    return gib(text)


# More GiB than any one GPU holds (the largest, in 2026, hold under 300 GiB): a larger --vram is a slip of units.
MOST_VRAM_GIB = 1024


def vram_gib(text: str) -> float:
    """--vram's budget (`gib`), refusing one that no GPU has: `--vram 8192`, meant as MiB (nvidia-smi's unit), was
    planned for 8192 GiB without a word where no GPU is there to compare it with (`--dry-run --device cuda` on
    another machine, as docs/memory.md suggests); on a GPU it was planned for the free memory, with a warning."""
    _refuse_default_word(text, "--vram", "to plan for the GPU's free memory (the default; on the CPU, no limit)")
    _refuse_grouped_gib(text, MOST_VRAM_GIB - 1)  # `--vram 8,000`: 8000 GiB is no card, so 8.000 alone
    value = gib(text)
    if value >= MOST_VRAM_GIB:
        number = text.strip()
        mib_meant = is_number(number) and value / 1024 < MOST_VRAM_GIB
        as_mib = f"; for {number} MiB give --vram {number}MB ({value / 1024:.2f} GiB)" if mib_meant else ""
        raise argparse.ArgumentTypeError(f"is in GiB, and {value:g} GiB is more than any GPU holds{as_mib}")
    return value


def step_cache_threshold(text: str) -> float:
    """--step-cache's threshold, checked as the step cache checks it (a finite number >= 0) when the flags are read:
    for `serve` too, before any file is looked at or downloaded."""
    from motif_lite.runtime.step_cache import StepCacheConfig  # imports torch: only when the flag is given

    try:
        return StepCacheConfig(float(text)).threshold
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (e.g. 0.05), got {text}") from None


def positive_number(number: str, unit: str, text: str) -> float:
    """`number` as a finite float > 0, else argparse's usage error naming `unit` and what was given (`text`)."""
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        # A flag in MiB (serve's --max-upload-mb) takes a bare number: `2,048MB` was advised 2048MB, refused next.
        advised = re.sub(r"[a-zA-Z]", "", text) if unit == "MiB" else text
        # In MiB (nvidia-smi's unit, serve's --max-upload-mb) and in seconds, a comma before three digits groups
        # thousands: `--vram 8,000MB` was advised 8.000MB, 8 MiB, and `--comm-timeout 1,800` 1.800, 1.8 seconds.
        mib = unit == "MiB" or re.search(r"(m|mb|mib)\s*$", text, flags=re.IGNORECASE)
        if (mib or unit == "seconds") and re.fullmatch(r"\s*\d{1,3},\d{3}\s*[a-zA-Z]*\s*", text):
            joined = re.sub(r"[\s,]", "", advised)
            raise argparse.ArgumentTypeError(f"takes no thousands separator: {joined}")
        if re.fullmatch(r"\s*\d+,\d+\s*[a-zA-Z]*\s*", text):  # `--vram 7,5`: a decimal comma, as `decimal` says it
            raise argparse.ArgumentTypeError(f"takes a decimal point, not a comma: {advised.strip().replace(',', '.')}")
        raise argparse.ArgumentTypeError(f"must be a number of {unit} > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (--batch-count, --preview-every, serve's --max-queue), worded as the request's checks
    word theirs."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# Far beyond any real batch (100,000 videos of the official size take years on one GPU); a typo's 10**30 made the
# list of the batch's requests until the machine ran out of memory.
MAX_BATCH_COUNT = 100_000


def batch_count(text: str) -> int:
    count = positive_int(text)
    if count > MAX_BATCH_COUNT:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_BATCH_COUNT:,}, got {text}: run a larger batch as several commands, each with "
            "its own -s SEED"
        )
    return count


def gpu_count(text: str) -> int | str:
    """`--gpus`: a number of GPUs, or "all" (counted when the run starts, where torch is loaded anyway)."""
    if text.lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        value = 0
    # GPU numbers, as accelerate's --gpu_ids and other tools' device lists take them (a list of words is no count)
    if is_list(text) and (indices := gpu_numbers(text)) is not None:
        raise argparse.ArgumentTypeError(
            f"must be a number of GPUs, got the list {text}: to run on those GPUs, choose them with "
            f"CUDA_VISIBLE_DEVICES and count them: {chosen_gpus_command(indices)}"
        )
    if value < 1:  # other tools take 0 or -1 for "every GPU" (PyTorch Lightning) or for "none"
        raise argparse.ArgumentTypeError(
            f"must be a number of GPUs, 1 or more, or all (every GPU this process sees), got {text}; "
            "one process on the CPU is --device cpu"
        )
    return value


# A week: far beyond any wait for the other ranks, and within what a timedelta holds (1e30 overflowed it once the
# processes had started).
MAX_COMM_TIMEOUT_SECONDS = 7 * 24 * 3600


def positive_seconds(text: str) -> float:
    """A time in seconds: a finite number > 0 (0 or less would fail every wait for the other ranks at once), at most
    a week."""
    seconds = positive_number(text, "seconds", text)
    if seconds > MAX_COMM_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COMM_TIMEOUT_SECONDS:,} seconds (a week), got {text}")
    return seconds
