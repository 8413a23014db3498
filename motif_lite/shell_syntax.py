"""The commands a message suggests, written for the shell the user most likely types them into: bash (any POSIX
shell) on Linux and macOS, PowerShell on Windows, whose terminal opens it by default (cmd's forms are in
docs/usage.md, "On Windows"). On POSIX the words are what the messages always said. Every argument of a suggested
command goes through `quoted`; `posix_quoted` is for a command that a POSIX shell runs wherever motif-lite does.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable

# An argument that needs no quotes in cmd or PowerShell (both read a backslash as a plain character; PowerShell
# reads a comma as making an array, passed as two arguments, and a word that starts with `@` as splatting).
_PLAIN = re.compile(r"[\w%+=:./\\-][\w@%+=:./\\-]*")
# What PowerShell reads inside double quotes: a variable, an escape, the string's end (it takes curly double quotes
# for straight ones).
_POWERSHELL_IN_DOUBLE_QUOTES = re.compile('[$`"\u201c\u201d\u201e]')
# What cmd expands in a typed line, inside double quotes too: `%NAME%` (or `%NAME:~0,5%`), where NAME is a variable
# (the value it has in the window the hint is pasted into, unknown here). Inside quotes cmd has no escape for it (a
# `^` there is kept as typed). A name starts with a letter or `_`: `50% off, 20% more` and `out_%03d.png` hold none.
_CMD_VARIABLE = re.compile(r"%[A-Za-z_][^%\s]*%")
# The characters PowerShell ends a single-quoted string at: the straight quote, and the curly ones it takes for it
# (U+2018 to U+201B: a typographic apostrophe, U+2019, is one).
_POWERSHELL_SINGLE_QUOTE = re.compile("['\u2018\u2019\u201a\u201b]")


def on_windows() -> bool:
    """Whether this is Windows: Python there says so in `os.name` and in `sys.platform` alike, and code (or a test
    standing in for Windows) that looks at either one gets the same commands."""
    return os.name == "nt" or sys.platform == "win32"


def posix_quoted(text: str) -> str:
    """`text` as one argument of a POSIX shell, as shlex quotes it, except that a leading `~/` (or a lone `~`) stays
    outside the quotes: a shell expands `~` only unquoted, so `'~/x.gguf'` named a folder `~` in the current one."""
    if text == "~":
        return text
    if text.startswith("~/"):
        rest = text[2:]
        return "~/" + (shlex.quote(rest) if rest else "")
    return shlex.quote(text)


def quoted(text: str | os.PathLike) -> str:
    """`text` (a path, a prompt) as one argument of a command a message suggests, for the shell it is pasted into:
    as `posix_quoted` quotes it on POSIX. On Windows in double quotes, which cmd and PowerShell both take (cmd keeps
    single quotes as part of the name: `'C:\\Users\\John Smith\\fox.mp4'` named no file there); text holding a `$`,
    a backtick or a double quote, which PowerShell would read inside double quotes, or a `%NAME%`, which cmd would
    expand inside them, goes in PowerShell's single quotes, as no quoting passes it whole in both shells. A backslash
    that ends text in double quotes is doubled, and in single quotes where the text holds white space."""
    text = os.fspath(text)
    if not on_windows():
        return posix_quoted(text)
    cmd_expands = _CMD_VARIABLE.search(text)
    if _PLAIN.fullmatch(text) and not cmd_expands:
        return text
    # Backslashes before the closing quote are doubled: a program started from cmd (or from Windows PowerShell 5.1,
    # which passes the quotes on) reads `"D:\my models\"` as `D:\my models"` and the words after it, one argument.
    # Doubled, the runtime reads each pair as one; PowerShell 7 passes the value as typed, the same folder with two.
    trailing = text[len(text.rstrip("\\")) :]
    if _POWERSHELL_IN_DOUBLE_QUOTES.search(text) or cmd_expands:
        # In single quotes too where there is white space: Windows PowerShell 5.1 passes such a value to a program in
        # double quotes of its own, a backslash before the closing one as it is (`'D:\$work\my models\'` went as
        # `"D:\$work\my models\"`); a value without white space goes bare, read as typed.
        return _single_quoted(text + trailing if re.search(r"\s", text) else text)
    return f'"{text}{trailing}"'


def quoted_text(text: str) -> str:
    """`text` (a prompt) as `quoted` writes it, in quotes even where it needs none: a line that shows a prompt says
    where it starts and ends, and the user can paste it after -p as it stands. A Python repr could not be pasted: it
    writes a backslash before a quote of the kind around it (`'it\\'s a "fox"'`), which no shell takes away. A word
    that ends in a backslash stays bare on Windows, where a closing quote after one would be read as part of it.
    Text holding a control character (a prompt file's line ends) is written with escapes (`escaped_text`)."""
    if _CONTROL.search(text):
        return escaped_text(text)
    written = quoted(text)
    if written != text:
        return written
    if on_windows():
        return text if text.endswith("\\") else f'"{text}"'
    return f"'{text}'"  # bare: shlex found no character a shell reads, the single quote among them


# Control characters: written raw, a line end broke the line that shows a prompt in two, a CR sent the cursor back
# over its start, an ESC reached the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BASH_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "'": "\\'"}
# PowerShell's escapes inside double quotes (a backtick before the character), the curly double quotes it reads as
# straight ones among them.
_POWERSHELL_ESCAPES = {"\n": "`n", "\r": "`r", "\t": "`t", "\x07": "`a", "\b": "`b", "\f": "`f", "\v": "`v"} | {
    c: "`" + c for c in '$`"\u201c\u201d\u201e'
}


def escaped_text(text: str) -> str:
    """`text` on one line, its control characters as escapes a shell turns back into them: bash's `$'...'` (`\\n`,
    `\\xHH`), or on Windows PowerShell's double quotes (`` `n ``; any other control character as `` `u{HH} ``,
    which PowerShell 7 reads). cmd has no escape for a line end."""
    if on_windows():
        return '"' + "".join(_POWERSHELL_ESCAPES.get(c) or _powershell_code(c) for c in text) + '"'
    return "$'" + "".join(_BASH_ESCAPES.get(c) or _bash_code(c) for c in text) + "'"


def _bash_code(character: str) -> str:
    return f"\\x{ord(character):02x}" if _CONTROL.fullmatch(character) else character


def _powershell_code(character: str) -> str:
    return f"`u{{{ord(character):x}}}" if _CONTROL.fullmatch(character) else character


def command_line(words: Iterable[str]) -> str:
    """`words`, a command line's arguments as a program got them, typed again for the shell a message's command is
    pasted into: as `shlex.join` writes them on POSIX (a `~/` among them reached the program unexpanded, so it was
    typed in quotes, and stays in them), else each as `quoted` writes it. On Windows a word holding a double quote
    (a prompt `a "red" fox`) reaches the program whole from PowerShell 7.3 and later only: Windows PowerShell 5.1
    and PowerShell 7.0 to 7.2 drop the quote. The line then ends in a PowerShell comment giving those versions'
    form of each such word (`old_powershell_word`); pasted whole, the comment is left out. Callers put the line
    last in their message."""
    words = list(words)
    if not on_windows():
        return shlex.join(words)
    return " ".join(quoted(word) for word in words) + old_powershell_comment(words)


def old_powershell_comment(words: Iterable[str], quote: Callable[[str], str] = quoted) -> str:
    """On Windows, where a word of `words` holds a double quote, the PowerShell comment that ends a line giving them
    (a command line, a prompt to paste after -p): each such word as Windows PowerShell 5.1 and PowerShell 7.0 to 7.2
    must be given it (`old_powershell_word`), written by `quote`; pasted whole, the line runs as PowerShell 7.3
    reads it. Else empty."""
    if not on_windows():
        return ""
    older = [quote(old_powershell_word(word)) for word in words if '"' in word]
    if not older:
        return ""
    return (
        f'  # Windows PowerShell 5.1 and PowerShell 7.0-7.2 drop a " inside an argument: there type {", ".join(older)}'
    )


def old_powershell_word(word: str) -> str:
    """`word` as Windows PowerShell 5.1 and PowerShell 7.0 to 7.2 must be given it to pass it whole to a program:
    they write an argument on the program's command line as it is (in double quotes of their own where it holds
    white space), so each double quote inside is escaped for the C runtime that splits that line, `\\"`, the
    backslashes before it doubled. PowerShell 7.3 and later escape it themselves, and pass these backslashes on."""
    return re.sub(r'(\\*)"', lambda quote: quote[1] * 2 + '\\"', word)


def pattern_quoted(pattern: str) -> str:
    """A file pattern of `hf download --include` as one argument: on POSIX always in single quotes (what the hints
    always wrote; a shell would expand a `*` left bare), else as `quoted` writes it."""
    if on_windows():
        return quoted(pattern)
    return "'" + pattern.replace("'", "'\"'\"'") + "'"


def variable_set(name: str, value: str, windows_value: str | None = None) -> str:
    """Setting the environment variable `name` for the commands after it: `NAME=value`, or PowerShell's
    `$env:NAME = 'value'` with `windows_value` where a POSIX example path (`/big/disk/...`) would mislead."""
    if not on_windows():
        return f"{name}={posix_quoted(value)}"
    return f"$env:{name} = {_single_quoted(windows_value or value)}"


def with_variable(name: str, value: str, command: str, windows_value: str | None = None) -> str:
    """`command` run with the environment variable `name` set: bash's `NAME=value command`, which sets it for that
    command alone, or PowerShell's `$env:NAME = 'value'; command`, which has no such form (it keeps the variable for
    the window's later commands too)."""
    if not on_windows():
        return f"{variable_set(name, value)} {command}"
    return f"{variable_set(name, value, windows_value)}; {command}"


def variable_from_home_file(name: str, file_name: str, command: str) -> str:
    """`command` run with the environment variable `name` set to the text of `file_name` in the home folder (a
    secret kept out of the command line, where the process list shows it): `NAME="$(cat ~/FILE)" command`, or
    PowerShell's `$env:NAME = (Get-Content -Raw ~\\FILE); command`."""
    if not on_windows():
        return f'{name}="$(cat ~/{shlex.quote(file_name)})" {command}'
    # PowerShell's file system, not its parser, reads the ~: a path in quotes keeps it, so the whole path is quoted.
    path = "~\\" + file_name
    argument = path if _PLAIN.fullmatch(file_name) else _single_quoted(path)
    return f"$env:{name} = (Get-Content -Raw {argument}); {command}"


def variable_unset(name: str) -> str:
    """Removing the environment variable `name` for the commands after it: `unset NAME`, or PowerShell's
    `Remove-Item Env:NAME`."""
    return f"Remove-Item Env:{name}" if on_windows() else f"unset {name}"


def file_text(path: str) -> str:
    """An argument that is the whole text of the file `path`: bash's `"$(cat FILE)"`, which leaves out the line ends
    (LF) at its end, or PowerShell's `((Get-Content -Raw -Encoding UTF8 -LiteralPath FILE).TrimEnd())`, which leaves
    out all white space at its end, a CRLF's CR with it (`-Raw` keeps it, and the text encoder reads it). Without
    `-Encoding UTF8`, Windows PowerShell 5.1 read a file without a byte-order mark (Notepad's "UTF-8") in the ANSI
    code page (`café` came as `cafÃ©`); without `-LiteralPath`, a `[` in the name was a wildcard, which found no
    file of its own name."""
    if not on_windows():
        return f'"$(cat {posix_quoted(path)})"'
    return f"((Get-Content -Raw -Encoding UTF8 -LiteralPath {quoted(path)}).TrimEnd())"


def text_written(text: str, path: str) -> str:
    """The command that makes `text` the whole of the file `path`, no line end after it: printf's, or PowerShell's
    `Set-Content -NoNewline` (`-LiteralPath`: a `[` in the path is no wildcard there). There `text` is always in
    single quotes: a cmdlet reads a bare word that looks like a number as one (a snapshot `0123` written `123`, an
    all-digit one in exponent form) and one that starts with `-` as a parameter's name."""
    if not on_windows():
        return f"printf '%s' {posix_quoted(text)} > {posix_quoted(path)}"
    return f"Set-Content -NoNewline -LiteralPath {quoted(path)} -Value {_single_quoted(text)}"


def one_after_another(first: str, second: str) -> str:
    """`first`, then `second` if it did not fail: bash's `first && second`; on Windows `first; second`, as Windows
    PowerShell 5.1 has no `&&` (a parse error there; the second command then runs after a failed first one, whose
    error it shows)."""
    return f"{first}; {second}" if on_windows() else f"{first} && {second}"


def _single_quoted(text: str) -> str:
    """PowerShell's literal string: nothing inside is expanded, a quote is doubled, a curly one too (left single,
    PowerShell ended the string at it: a prompt `the fox's $5 hat` typed with a typographic apostrophe passed `the
    fox`, and `$5` was read as a variable)."""
    return "'" + _POWERSHELL_SINGLE_QUOTE.sub(lambda quote: quote[0] * 2, text) + "'"
