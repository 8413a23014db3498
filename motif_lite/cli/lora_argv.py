"""The --lora values of a command line as typed, for the hints on a LoRA's strength typed apart from its file
(`--lora style.safetensors 0.8`, as other tools take one): which words are such strengths, what the hint gives, and
the refusal following it would meet next."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from motif_lite.cli.common import STRENGTH_WORD
from motif_lite.shell_syntax import quoted


def lora_values(argv: list[str]) -> Iterator[tuple[str, int]]:
    """Each --lora value typed in `argv`, as `--lora FILE` or `--lora=FILE`, with the position of the word after it
    (which may be past the end). The one walk of both hints that read the --lora values: a form one walk alone knew
    would give a strength hint whose values the other never checked."""
    for index, word in enumerate(argv):
        if word == "--lora" and index + 1 < len(argv):
            yield argv[index + 1], index + 2
        elif word.startswith("--lora="):
            yield word.removeprefix("--lora="), index + 1


def lora_strengths(argv: list[str]) -> tuple[dict[str, str], set[int]]:
    """Numbers typed after a --lora's file with a space (`--lora style.safetensors 0.8`, as other tools take a
    strength), each with its hint: {number: the --lora to give}, and their positions in `argv`. Without this, the
    number was taken for a word of the prompt ('a prompt goes after -p, in quotes: -p "a fox 0.8"'). One number
    after two files (`--lora a 0.5 --lora b 0.5`) is one word of the hints, so its hint names every --lora it
    followed."""
    found: dict[str, list[str]] = {}
    positions: set[int] = set()
    for file, position in lora_values(argv):
        if position == len(argv):  # the --lora came last: no word after it
            continue
        after = argv[position]
        if has_strength(file) or STRENGTH_WORD.fullmatch(after) is None:  # (`:0.5 0.8`: a colon would give two)
            continue
        found.setdefault(after, []).append(f"--lora {quoted(f'{file}:{after}')}")
        positions.add(position)
    hints = {
        after: f"{after}: a LoRA's strength goes after its file and a colon: {' '.join(loras)}"
        for after, loras in found.items()
    }
    return hints, positions


def repeat_once_joined(argv: list[str], typed_apart: set[int]) -> str | None:
    """The refusal `--lora` would give the command `argv` once each strength typed apart (at `typed_apart`, its
    positions) is joined to its file with a colon, where that names one file twice (`--lora a.safetensors 0.5
    --lora a.safetensors 0.5`); None where it names each file once. Following the hint alone led to that refusal."""
    from motif_lite.cli.common import same_file_refusal
    from motif_lite.paths import user_path
    from motif_lite.weights.lora_values import split_strength

    values = [f"{value}:{argv[after]}" if after in typed_apart else value for value, after in lora_values(argv)]
    loras = []
    for value in values:
        file, strength = split_strength(value)
        loras.append((user_path(file), strength) if strength is not None else (user_path(value), 1.0))
    return same_file_refusal([quoted(value) for value in values], loras)


def extras_at(parser: argparse.ArgumentParser, argv: list[str], positions: set[int]) -> set[int]:
    """The indices, among the words `parser` left unrecognized in `argv` (the command first), of the words at
    `positions` of `argv`. Found by parsing the command again with those words marked: a word of the prompt may be
    the same number as a strength typed apart (`-p 0.5 --lora a.safetensors 0.5`), so a word alone cannot tell."""
    marked = [f"\0typed apart {i}" if i in positions else word for i, word in enumerate(argv)]
    _, extras = parser.parse_known_args(marked[1:])
    return {index for index, word in enumerate(extras) if word.startswith("\0typed apart ")}


def has_strength(lora: str) -> bool:
    """Whether a --lora value ends in its strength (`style.safetensors:0.5`, or `:inf`, which --lora refuses)."""
    from motif_lite.weights.lora_values import strength_after_colon

    read = strength_after_colon(lora)
    return read is not None and bool(read[0])
