"""Which flag a mistyped one means, for the hints of `motif-lite` and of `python -m motif_lite.quantize`: both
spell a flag the same way and match a typo as closely, so that one typo gets the same advice from either."""

from __future__ import annotations

import argparse
import difflib
import itertools
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn

from motif_lite.shell_syntax import quoted

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


# What a Korean, Japanese or Chinese input method in full-width mode, or a word processor's autocorrect, types where a
# flag wants ASCII: dashes that look like '-' (-- becomes an en or em dash), and the ideographic space U+3000, at which
# the shell does not split words.
_DASHES = "\uff0d\u2212\u2010\u2011\u2012\u2013\u2014\u2015\ufe63"
_WIDE_SPACE = "\u3000"
_WIDE_DASH = "\uff0d"  # a full-width input method's '-': two of them are a flag, not a dash of prose


def lookalike_hint(word: str, known: Sequence[str]) -> str | None:
    """For a `word` that is one of the flags `known` once its leading look-alike dashes are typed as '-' and a wide
    space as a space (`－－steps`, `–steps`, `--steps　4`; a typo of one only behind two full-width or ASCII dashes):
    what it holds in their place and the flag as typed in ASCII. None for any other word: a prompt may hold such
    characters."""
    found = lookalike_flag(word, known)
    return f"{found.said}: type {found.typed}" if found else None


class Lookalike(NamedTuple):
    """A flag typed with look-alike characters: `said` names them, `typed` is the flag (and its value) as the
    user's shell takes it in ASCII (`shell_syntax.quoted`), `words` the same unquoted."""

    said: str
    typed: str
    words: tuple[str, ...]


def lookalike_flag(word: str, known: Sequence[str]) -> Lookalike | None:
    """`lookalike_hint`'s parts: what `word` holds in place of ASCII, and what to type instead; None as there."""
    name = word.lstrip(_DASHES + "-")
    dashes = word[: len(word) - len(name)]
    name, space, value = name.partition(_WIDE_SPACE)
    name, equals, attached = name.partition("=")
    if space and equals and not attached:  # `-o=　x.mp4`: the value follows the '=', the wide space is the typo
        equals = ""
    odd = [char for char in dict.fromkeys(dashes + space) if char in _DASHES + _WIDE_SPACE]
    if not dashes or not odd:
        return None
    tries = [spelled("-" * len(dashes) + name), spelled("--" + name)]  # autocorrect makes "--" one dash
    flag = next((flag for flag in tries if flag in known), None)
    if flag is None and dashes in ("--", _WIDE_DASH * 2):
        # A typo is looked for only behind two dashes of one kind: an en or em dash stuck to a word is prose as
        # often as a flag (`-p a fox —come closer`), and a typo's match (--compile) would hide the prompt advice.
        flag = closest_flag(tries[-1], [option for option in known if option.startswith("--")])
    if flag is None:
        return None
    wants = " and ".join(what for what, there in (("a plain '-'", set(dashes) - {"-"}), ("a space", space)) if there)
    # The value as typed after the wide space, quoted: its own wide spaces are part of it (`-p　赤い　狐`), and a
    # space or quote in it (`-o　my video.mp4`) would split it or leave the line unbalanced.
    words = (flag + equals + attached, *((value,) if space else ()))
    typed = " ".join(quoted(word) for word in words)
    named = ", ".join(f"U+{ord(char):04X} ({unicodedata.name(char).lower()})" for char in odd)
    said = f"{word}: it holds {named} where {flag} wants {wants} (an input method in full-width mode, or autocorrect)"
    return Lookalike(said, typed, words)


def refuse_lookalike_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit (`parser.error`) naming a flag typed with look-alike dashes that argparse took for a positional argument
    (`decode －－output x.mp4`: the latents file; the quantizer's `－－type Q4_K_M SRC`: SRC), as the unknown
    arguments' hints name one: it was answered "x.mp4: the output goes after -o", or "no such latents file:
    －－output". A file or folder of that name is what was meant: it is kept."""
    known = option_strings(parser)
    for action in parser._actions:  # argparse keeps no public list
        value = None if action.option_strings else getattr(args, action.dest, None)
        if isinstance(value, str) and (hint := lookalike_hint(value, known)) and not os.path.lexists(value):
            parser.error(hint)


# What such an input method types in a number: a look-alike minus sign, and the full-width full stop for its point
# (full-width digits need nothing: Python reads them as digits).
_NUMBER_LOOKALIKES = {**dict.fromkeys(_DASHES, "-"), "\uff0e": "."}


def lookalike_number_note(text: str, read: Callable[[str], object] = float) -> str:
    """For a number's `text` that `read` (int: a whole number) takes once its look-alike signs and points are typed
    in ASCII (`−1`, `７．５`): `; it holds U+2212 (minus sign) where a number has '-' (...): type -1`; else ''."""
    odd = [char for char in dict.fromkeys(text) if char in _NUMBER_LOOKALIKES]
    typed = unicodedata.normalize("NFKC", "".join(_NUMBER_LOOKALIKES.get(char, char) for char in text)).strip()
    try:
        read(typed)
    except ValueError:
        return ""
    if not odd:
        return ""
    named = ", ".join(f"U+{ord(char):04X} ({unicodedata.name(char).lower()})" for char in odd)
    wants = " and ".join(dict.fromkeys(f"'{_NUMBER_LOOKALIKES[char]}'" for char in odd))
    return f"; it holds {named} where a number has {wants} (an input method in full-width mode): type {typed}"


class ValueNamingParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose error for a flag given without its value says what the value is: argparse's bare
    "argument --preview: expected one argument" leaves a user who typed --preview as an on/off switch guessing.
    Its subparsers are of this class too (argparse makes them of the parser's class)."""

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # The words as given (argparse hands a subcommand's parser its own): `_dash_value_hint` reads the word
        # that followed a flag argparse found without its value.
        self._words = list(sys.argv[1:] if args is None else args)  # argparse's own default
        self._refuse_wide_space_glued_to_a_flag()
        return super().parse_known_args(args, namespace)

    def _refuse_wide_space_glued_to_a_flag(self) -> None:
        """Exit naming the ideographic space in a short flag's word (`-o　x.mp4`, one word to the shell) or after a
        flag's '=' (`-o=　x.mp4`, `--output=　x.mp4`): argparse takes the rest of the word for the value, so the
        video was written to a file named '　x.mp4' and `-p　fox` gave the prompt '\u3000fox'. A value that starts
        with U+3000 on purpose is a word of its own (`-p "　fox"`)."""
        words = self._words[: self._words.index("--")] if "--" in self._words else self._words
        known = option_strings(self)
        for word in words:
            short = word[:1] == "-" and word[1:2] not in ("-", "") and word[2:3] == _WIDE_SPACE
            flag, equals, value = word.partition("=")
            after_equals = equals and flag in known and value[:1] == _WIDE_SPACE
            if (short or after_equals) and (hint := lookalike_hint(word, known)):
                self.error(hint)

    def error(self, message: str) -> NoReturn:
        super().error(message + self._value_wanted(message))

    def _value_wanted(self, message: str) -> str:
        """`: --preview FILE (what its help says first)` for a message about a flag missing its value, else ''."""
        named, _, problem = message.partition(": ")
        if not named.startswith("argument ") or not problem.startswith("expected "):
            return ""
        flags = named.removeprefix("argument ").split("/")  # argparse names a flag by all its spellings: -o/--output
        action = next((action for action in self._actions if action.option_strings == flags), None)
        if action is None or action.nargs == 0:
            return ""
        flag = flags[-1]  # the long spelling, which says the most
        hint = f": {flag} {value_name(action)}"
        clause = first_clause(self._expanded_help(action))
        return (f"{hint} ({clause})" if clause else hint) + self._dash_value_hint(flags)

    def _dash_value_hint(self, flags: list[str]) -> str:
        """How to give a value that starts with a dash (`-p "-fox"`, a line of a prompts file): argparse takes such
        a word for a flag and finds the flag before it without its value. The word is the one after the occurrence
        of the flag that argparse stopped at (`-p fox -p -fox`: the second). '' where there is none, or where the
        word is one of our flags, a typo or shortening of one (`--dry`), or one given with its value (`-W48`,
        `--steps=4`): then the value was left out."""
        words = getattr(self, "_words", [])
        words = words[: words.index("--")] if "--" in words else words  # after it: no flag, nor a missing value
        after = next((then for word, then in itertools.pairwise(words) if word in flags and then[:1] == "-"), None)
        if after is None or after == "-" or self._names_our_flag(after):
            return ""
        given = quoted(f"{flags[-1]}={after}")
        script = f'{flags[-1]}="$VALUE"'
        return f"; a value that starts with a dash is given after '=', as one word: {given} (in a script: {script})"

    def _names_our_flag(self, word: str) -> bool:
        """Whether `word` is one of this parser's flags as typed, misspelled or cut short (`--dry` for --dry-run), or
        one given with its value attached (`-W48`, `--steps=4`)."""
        ours = self._option_string_actions
        name, equals, _ = word.partition("=")
        if word in ours or (equals and name in ours):
            return True
        if word.startswith("--"):
            longs = [option for option in ours if option.startswith("--")]
            return closest_flag(spelled(name), longs) is not None or any(o.startswith(spelled(name)) for o in longs)
        short = ours.get(word[:2])
        return short is not None and short.nargs != 0 and is_number(word[2:])  # `-W48`, `-s42`; `-ocean` is text

    def _expanded_help(self, action: argparse.Action) -> str | None:
        """The flag's help as --help prints it: `%(default)s` filled in, `%%` a single `%`."""
        try:
            return action.help % dict(vars(action), prog=self.prog) if action.help else action.help
        except (KeyError, TypeError, ValueError):  # a help that argparse would not format either
            return action.help


def is_number(text: str) -> bool:
    """Whether `text` reads as a number (`48`, `-0.5`, `1e3`)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def value_name(action: argparse.Action) -> str:
    """What --help shows for the flag's value: its metavar, its choices, or its name in capitals."""
    if isinstance(action.metavar, str):
        return action.metavar
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    return action.dest.upper()


def first_clause(help_text: str | None) -> str:
    """The start of a flag's help, what its value is without the details: up to the first '; ' or ': ' outside
    parentheses. Each help leads with such a clause (tests/test_cli.py reads them all), so no guess is needed of
    where the words that name the value end."""
    if not help_text or help_text == argparse.SUPPRESS:
        return ""
    depth = 0
    for i, char in enumerate(help_text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if not depth and char in ";:" and help_text[i + 1 : i + 2] == " ":
            return help_text[:i]
    return help_text
