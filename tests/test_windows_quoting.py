"""The commands messages suggest are pasted into a shell: on Windows that is cmd or PowerShell, and an argument must
reach the program whole from either (cmd keeps POSIX single quotes as part of the name). Tested on Linux by telling
the code it runs on Windows (`sys.platform`, inside each test only), with the two shells' rules for an argument
written out below; on POSIX the hints stay what they were, shlex's quoting, which bash reads back
(tests/test_container_quoting.py)."""

from __future__ import annotations

import ntpath
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from motif_lite.errors import MotifLiteError
from motif_lite.shell_syntax import posix_quoted, quoted

# The variables of the cmd window a hint is pasted into (its names are case-insensitive).
CMD_VARIABLES = {"USERPROFILE": r"C:\Users\you", "TEMP": r"C:\Users\you\AppData\Local\Temp", "DATE": "Mon 12/07/2026"}


def cmd_expanded(line: str) -> str:
    """What cmd makes of a typed line before it runs it: `%NAME%` where NAME is a variable is its value, in double
    quotes as well as outside them; an undefined one stays as typed, and the scan goes on after its first `%`."""
    expanded, i = "", 0
    while i < len(line):
        end = line.find("%", i + 1) if line[i] == "%" else -1
        if end > i and line[i + 1 : end].upper() in CMD_VARIABLES:
            expanded, i = expanded + CMD_VARIABLES[line[i + 1 : end].upper()], end + 1
        else:
            expanded, i = expanded + line[i], i + 1
    return expanded


def cmd_arguments(line: str) -> list[str]:
    """The arguments a program started from cmd gets for the command-line text `line`: cmd hands the text over with
    its variables expanded (`cmd_expanded`), which the C runtime splits."""
    return c_runtime_arguments(cmd_expanded(line))


def c_runtime_arguments(line: str) -> list[str]:
    """The arguments a program gets for its command line `line`, split by the C runtime's rules
    (CommandLineToArgvW): at spaces outside double quotes; a double quote opens or closes a quoted part; backslashes
    are plain unless they stand before a double quote."""
    words: list[str] = []
    word, in_quotes, started, i = "", False, False, 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            run = len(line[i:]) - len(line[i:].lstrip("\\"))
            if line[i + run : i + run + 1] == '"':
                word += "\\" * (run // 2) + ('"' if run % 2 else "")
                i += run + (1 if run % 2 else 0)
            else:
                word, i = word + "\\" * run, i + run
            started = True
            continue
        if char == '"':
            in_quotes, started = not in_quotes, True
        elif char == " " and not in_quotes:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + char, True
        i += 1
    assert not in_quotes, f"unbalanced double quote in {line!r}"
    return [*words, word] if started else words


# What PowerShell reads as more than a name in a bare word (an array's comma, a variable, a statement's end, a
# block, a redirection; a comment or splatting at its start) or inside double quotes (a variable, an escape).
_POWERSHELL_BARE = re.compile(r"[^,;&|(){}<>$`'\"#@\s][^,;&|(){}<>$`'\"\s]*")
_POWERSHELL_IN_DOUBLE_QUOTES = re.compile(r'[^$`"\u201c\u201d\u201e]*')
# A literal string: PowerShell takes the curly single quotes (U+2018 to U+201B) for straight ones, and a pair of any
# two of them inside for one quote, the second.
_QUOTE = "['\u2018\u2019\u201a\u201b]"
_POWERSHELL_SINGLE_QUOTED = re.compile(f"{_QUOTE}((?:(?!{_QUOTE}).|{_QUOTE}{{2}})*){_QUOTE}")


def powershell_arguments(line: str) -> list[str]:
    """The arguments PowerShell passes a program for the command-line text `line`, for the forms a suggested
    argument takes: a bare word; a literal string in single quotes (`''` is one quote, curly ones too); a string in
    double quotes with nothing in it that PowerShell expands. A word that starts with a quote ends where its quotes
    do. Anything else fails the test: PowerShell would read it as more than the text of an argument."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
        elif re.match(_QUOTE, line[i]):
            end = _POWERSHELL_SINGLE_QUOTED.match(line, i)
            assert end is not None, f"unbalanced single quote in {line!r}"
            words.append(re.sub(f"{_QUOTE}({_QUOTE})", r"\1", end.group(1)))
            i = end.end()
        elif line[i] == '"':
            end = line.find('"', i + 1)
            assert end > i, f"unbalanced double quote in {line!r}"
            inside = line[i + 1 : end]
            assert _POWERSHELL_IN_DOUBLE_QUOTES.fullmatch(inside), f"PowerShell expands {inside!r} in double quotes"
            words.append(inside)
            i = end + 1
        else:
            bare = _POWERSHELL_BARE.match(line, i)
            assert bare is not None and not (line[bare.end() : bare.end() + 1].strip()), f"PowerShell reads {line!r}"
            words.append(bare.group())
            i = bare.end()
    return words


def windows_powershell_arguments(line: str) -> list[str]:
    """The arguments a program started from Windows PowerShell 5.1 (still Windows 10's and 11's own) gets for the
    command-line text `line`: PowerShell parses it as `powershell_arguments` does, then writes each argument on the
    program's command line as it is, in double quotes it adds itself where it holds white space outside double
    quotes of its own, with nothing escaped (PowerShell 7.3 escapes a quote inside and a backslash before the closing
    one for the C runtime); an empty argument is left out. The C runtime splits that line."""

    def needs_quotes(argument: str) -> bool:
        quotes, after_backslash = 0, False
        for char in argument:
            if char == '"' and not after_backslash:
                quotes += 1
            elif char.isspace() and quotes % 2 == 0:
                return True
            after_backslash = char == "\\"
        return False

    passed = [f'"{word}"' if needs_quotes(word) else word for word in powershell_arguments(line) if word]
    return c_runtime_arguments(" ".join(passed))


def on_windows(monkeypatch: pytest.MonkeyPatch, make: Callable[[], str]) -> str:
    """What `make` says with `sys.platform` "win32", undone before any assert."""
    with monkeypatch.context() as patch:
        patch.setattr(sys, "platform", "win32")
        return make()


def said(make: Callable[[], object]) -> str:
    """The message `make` refuses with, or what it returns."""
    try:
        return str(make())
    except MotifLiteError as error:
        return str(error)


@pytest.mark.parametrize(
    "text",
    [
        r"C:\Users\John Smith\fox.mp4",
        r"D:\renders\fox-new.mp4",
        "caf\xe9 \u72d0.mp4",
        r"C:\loras\style one.safetensors:0.8",
        r"C:\it's here\x.gguf",
        "a,b.mp4",  # PowerShell's comma makes an array, passed as two arguments
        "@fox.mp4",  # and an `@` that starts a word, splatting
        "fox & hound.mp4",
        "50%.mp4",
        "50% off, 20% more",  # no variable's name between the two: cmd keeps them
        "out_%03d_%02d.png",
        "",
    ],
)
def test_an_argument_pastes_whole_into_cmd_and_powershell(text, monkeypatch):
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    assert cmd_arguments(pasted) == [text]
    assert powershell_arguments(pasted) == [text]
    # Windows PowerShell 5.1 leaves an empty argument out, however it is quoted (`'""'` would pass it there, and
    # PowerShell 7.3 passes its two quotes): the one form of the list it cannot pass.
    assert windows_powershell_arguments(pasted) == ([text] if text else [])
    assert not pasted.startswith("'")  # cmd's way too: its single quote is part of the name


def test_an_empty_argument_passes_from_windows_powershell_as_the_docs_say():
    # docs/usage.md, "On Windows": `-n ""` loses its empty argument there, `-n '""'` passes it.
    assert windows_powershell_arguments('-n ""') == ["-n"]
    assert windows_powershell_arguments("""-n '""'""") == ["-n", ""]


@pytest.mark.parametrize(
    "text",
    [
        r"C:\Users\me\$work\fox.mp4",
        "a sign that says `hi`",
        'a "red" fox',
        "the fox\u2019s $5 hat",  # PowerShell ends a single-quoted string at a curly quote too
        "\u2018$5\u2019 it says, it\u2019s",
    ],
)
def test_what_powershell_expands_in_double_quotes_goes_in_its_single_quotes(text, monkeypatch):
    # No quoting passes these whole in both shells: PowerShell's terminal is Windows' default, so its form is given.
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    assert powershell_arguments(pasted) == [text]
    if '"' not in text:  # Windows PowerShell 5.1 drops a double quote inside an argument (docs/usage.md says so)
        assert windows_powershell_arguments(pasted) == [text]


@pytest.mark.parametrize(
    "text", [r"%USERPROFILE%\models\fox.gguf", "%temp%\\my renders", "a sign that says %DATE%", "%TEMP%"]
)
def test_what_cmd_expands_in_double_quotes_goes_in_powershells_single_quotes(text, monkeypatch):
    # cmd expands `%NAME%` inside double quotes too, and has no escape there (a `^` is kept as typed): the hint's
    # `"%USERPROFILE%\models\fox.gguf"` reached the program as `C:\Users\you\models\fox.gguf` from cmd. No quoting
    # passes it whole in both shells, so PowerShell's form is given, as for a `$`.
    assert cmd_expanded(f'"{text}"') != f'"{text}"'
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    assert pasted.startswith("'") and powershell_arguments(pasted) == [text]
    assert windows_powershell_arguments(pasted) == [text]


@pytest.mark.parametrize(
    "text",
    [
        "D:\\my models\\",
        "C:\\Program Files\\AI\\\\",
        "\\\\nas\\my share\\",
        "D:\\$work\\my models\\",  # in PowerShell's single quotes, for the `$`
        "C:\\`draft` renders\\",
        "C:\\$work\\",
    ],
)
def test_a_folder_ending_in_a_backslash_stays_one_argument_before_the_next_word(text, monkeypatch):
    # `"D:\my models\"` was read by the C runtime as `D:\my models"` and the words after it, one argument: from cmd,
    # and from Windows PowerShell 5.1, which passes a value with a space on in double quotes as it is (a value it
    # had in single quotes too: `'D:\$work\my models\'` went as `"D:\$work\my models\"`).
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    line, words = f"motif-lite check -m {pasted} -p fox", ["motif-lite", "check", "-m", text, "-p", "fox"]
    if not pasted.startswith("'"):  # PowerShell's single quotes are for PowerShell alone
        assert cmd_arguments(line) == words
    assert windows_powershell_arguments(line) == words
    (value,) = powershell_arguments(pasted)
    assert ntpath.normpath(value) == ntpath.normpath(text)  # PowerShell 7 passes the value as typed: the same folder


def _hub_download_hint() -> str:
    from motif_lite.io.hub import revision_problem

    return revision_problem("someone/tiny-motif@v1.0")[1]  # the folder the download fills, absolute


def _quantize_source_hint() -> str:
    from motif_lite.quantize.cli import main

    main(["someone/tiny-motif", "-o", "out.gguf", "--quiet"])  # not in the (empty) cache
    return ""  # the message goes to stderr, read by the caller


def _lora_hint(folder: Path) -> Callable[[], str]:
    from motif_lite.weights.lora_specs import LoRASpec

    return lambda: said(lambda: LoRASpec.parse(f"{folder / 'style one.safetensors'}:0,8"))


def _output_hint(folder: Path) -> Callable[[], str]:
    from motif_lite.io.video import check_output_path

    return lambda: said(lambda: check_output_path(folder / "fox"))


def _extension_only_hint(folder: Path) -> Callable[[], str]:
    # `-o "my models\.mp4"`: the name suggested was quoted without its extension, two words in PowerShell
    from motif_lite.io.video import check_output_path

    return lambda: said(lambda: check_output_path(folder / ".mp4"))


@pytest.mark.parametrize("kind", ["hub download", "quantize source", "--lora", "-o", "-o .mp4"])
def test_each_kind_of_hint_names_its_path_as_one_argument_in_each_shell(
    kind, tmp_path, monkeypatch, capsys, no_network
):
    folder = tmp_path / "my models"  # a space: the path must be quoted to stay one argument
    folder.mkdir()
    monkeypatch.chdir(folder)  # the hub hints name the folder a download fills, in the current one
    (folder / "style one.safetensors").write_bytes(b"")
    make, meant = {
        "hub download": (_hub_download_hint, os.path.abspath("tiny-motif")),
        "quantize source": (_quantize_source_hint, os.path.abspath("tiny-motif")),
        "--lora": (_lora_hint(folder), f"{folder / 'style one.safetensors'}:0.8"),
        "-o": (_output_hint(folder), f"{folder / 'fox'}.mp4"),
        "-o .mp4": (_extension_only_hint(folder), f"{folder / 'output'}.mp4"),
    }[kind]
    posix = make() + capsys.readouterr().err
    windows = on_windows(monkeypatch, make) + capsys.readouterr().err
    assert posix_quoted(meant) in posix, posix  # what it always said
    assert f'"{meant}"' in windows and posix_quoted(meant) not in windows, windows
    assert cmd_arguments(f'"{meant}"') == powershell_arguments(f'"{meant}"') == [meant]


@pytest.mark.parametrize("revision", ["main", "v1"])
def test_the_repo_folder_the_quantizer_advises_is_one_argument_in_each_shell(
    revision, tmp_path, monkeypatch, capsys, no_network
):
    # `then quantize "C:\...\my models\tiny-motif"/transformer`: PowerShell ends a word that starts with a quoted part
    # where its quotes do, and passed the folder and `/transformer` as two arguments.
    from motif_lite.quantize.cli import main

    folder = tmp_path / "my models"
    folder.mkdir()
    monkeypatch.chdir(folder)
    meant = f"{os.path.abspath('tiny-motif')}/transformer"

    def advised() -> str:
        main([f"https://huggingface.co/someone/tiny-motif/tree/{revision}/transformer", "-o", "out.gguf", "--quiet"])
        return capsys.readouterr().err.partition("then quantize ")[2].strip()

    assert shlex.split(advised()) == [meant]
    windows = on_windows(monkeypatch, advised)
    assert cmd_arguments(windows) == powershell_arguments(windows) == [meant], windows


def test_a_download_pattern_stays_in_quotes_in_each_shell(tmp_path, monkeypatch, capsys, no_network):
    # A bare `*` is expanded by bash, so POSIX keeps it in single quotes; cmd would pass those quotes to hf, and its
    # pattern with them matched no file.
    monkeypatch.chdir(tmp_path)
    posix = _quantize_source_hint() + capsys.readouterr().err
    windows = on_windows(monkeypatch, _quantize_source_hint) + capsys.readouterr().err
    assert "--include 'transformer/*'" in posix, posix
    assert '--include "transformer/*"' in windows and "'" not in windows.partition("hf download")[2], windows


def _prompt_as_command() -> str:
    from motif_lite.cli.command_hints import prompt_as_command

    return prompt_as_command(["a red fox", "-o", "my fox.mp4"]).partition("after -p: motif-lite ")[2]


def _wide_space_before_value() -> str:
    from motif_lite import cli
    from motif_lite.cli.command_hints import wide_space_before_value

    # An input method's full-width dash and space (U+FF0D, U+3000), the value typed as the next word.
    return wide_space_before_value(["run", "\uff0do\u3000", "my fox.mp4"], cli.build_parser()).partition("type ")[2]


def _lookalike_hint() -> str:
    from motif_lite.flag_spelling import lookalike_hint

    return lookalike_hint("\uff0do\u3000my fox.mp4", ["-o", "--output"]).partition("type ")[2]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_prompt_as_command, ["run", "-p", "a red fox", "-o", "my fox.mp4"]),
        (_wide_space_before_value, ["-o", "my fox.mp4"]),
        (_lookalike_hint, ["-o", "my fox.mp4"]),
    ],
)
def test_a_command_line_typed_again_pastes_as_the_same_words_in_each_shell(make, words, monkeypatch):
    # The line the user meant, from the words they typed: on Windows shlex's single quotes kept "my fox.mp4"'s
    # quotes in cmd, where -o then named a file 'my.
    windows = on_windows(monkeypatch, make)
    assert make() == " ".join(map(posix_quoted, words))  # what it always said
    assert cmd_arguments(windows) == powershell_arguments(windows) == words, windows


@pytest.mark.parametrize("quote", ["\u201c", "\u201d", "\u201e"])
def test_each_curly_double_quote_alone_goes_in_single_quotes(quote, monkeypatch):
    # PowerShell ends a double-quoted string at each of the curly double quotes, as at `"`: a text holding one of
    # them alone, and nothing else PowerShell reads there, is still no text for its double quotes.
    text = f"a {quote}sly fox"
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    assert powershell_arguments(pasted) == [text], pasted
    assert windows_powershell_arguments(pasted) == [text], pasted


@pytest.mark.parametrize("quote", ["'", "\u2018", "\u2019", "\u201a", "\u201b"])
def test_each_quote_powershell_ends_a_literal_string_at_is_doubled(quote, monkeypatch):
    # In single quotes for the `$`: each of the five quotes that ends PowerShell's literal string is doubled, the
    # low-9 and reversed-9 ones too, which a prompt pasted from a word processor may hold.
    text = f"the fox{quote}s $5 hat"
    pasted = on_windows(monkeypatch, lambda: quoted(text))
    assert pasted.startswith("'") and powershell_arguments(pasted) == [text], pasted
    assert windows_powershell_arguments(pasted) == [text], pasted


_PAGE = "https://example.com/get?file=style&v=2"  # an `&`: cmd would end the command there, unquoted


def _image_url_hint() -> str:
    from motif_lite.io.image import load_image

    return said(lambda: load_image(f"{_PAGE}/fox.png"))


def _clip_url_hint() -> str:
    from motif_lite.io.clip import read_clip

    return said(lambda: read_clip(f"{_PAGE}/fox.mp4"))


def _lora_url_hint(url: str) -> Callable[[], str]:
    from motif_lite.cli.common import lora_args

    return lambda: said(lambda: lora_args([f"{url}:0.8"]))


@pytest.mark.parametrize(
    "make",
    [
        _image_url_hint,
        _clip_url_hint,
        _lora_url_hint("https://huggingface.co/u/r/blob/main/my style.safetensors"),
        _lora_url_hint("https://civitai.com/models/123/paper-cut?modelVersionId=678"),
        _lora_url_hint("https://civitai.com/models/123/paper-cut"),  # the version to fill in
    ],
    ids=["-i", "--extend", "--lora", "civitai", "civitai-no-version"],
)
def test_a_url_is_downloaded_with_curl_exe_on_windows(make, tmp_path, monkeypatch):
    # Windows PowerShell 5.1 (Windows' own) takes `curl` for its alias of Invoke-WebRequest, which refuses `-L`: the
    # hints' `curl -L -o NAME URL` failed there. curl.exe (Windows 10 1803 and later) is curl itself in both shells.
    monkeypatch.chdir(tmp_path)
    command = re.compile(r"curl(?:\.exe)? -L -o .*?(?=, then give | \(VERSION)")
    posix, windows = make(), on_windows(monkeypatch, make)
    (posix_curl,) = command.findall(posix)
    (windows_curl,) = command.findall(windows)
    assert shlex.split(posix_curl)[:3] == ["curl", "-L", "-o"]  # what it always said
    words = cmd_arguments(windows_curl)
    assert words[0] == "curl.exe" and words[1:3] == ["-L", "-o"], windows
    assert words[3:] == shlex.split(posix_curl)[3:]  # the same file name and URL
    assert powershell_arguments(windows_curl) == windows_powershell_arguments(windows_curl) == words


def _unknown_cors_switch_hint() -> str:
    from motif_lite.cli.foreign_flags import OTHER_TOOLS_SETTINGS

    advice = OTHER_TOOLS_SETTINGS["--enable-cors-header"][1]
    return advice() if callable(advice) else advice


def _origin_null_refusal() -> str:
    from motif_lite.server.cross_site import _no_origin

    return _no_origin().message


@pytest.mark.parametrize("make", [_unknown_cors_switch_hint, _origin_null_refusal])
def test_the_any_origin_hint_pastes_as_a_star_in_each_shell(make, monkeypatch):
    # `--cors-origin '*'` pasted into cmd passed the single quotes on, and serve refused the value it got.
    from motif_lite.cli.serve_flag_values import cors_origin

    assert "--cors-origin '*'" in make()  # what it always said, which bash and zsh read as *
    windows = on_windows(monkeypatch, make)
    argument = re.findall(r"--cors-origin (\S+) ", windows)[-1]  # the last one given, after an example origin
    (value,) = cmd_arguments(argument)
    assert powershell_arguments(argument) == windows_powershell_arguments(argument) == [value]
    assert cors_origin(value) == "*", windows


def powershell_variable_set(line: str) -> tuple[str, str]:
    """The environment variable, and its value, that PowerShell's `$env:NAME = VALUE` sets, VALUE read as
    `powershell_arguments` reads one literal (a bare number would be a number, an array with a comma)."""
    assignment = re.fullmatch(r"\$env:(\w+) = ('.*')", line)
    assert assignment is not None, f"PowerShell sets no variable with {line!r} as typed"
    (value,) = powershell_arguments(assignment[2])
    return assignment[1], value


def bash_variable_set(line: str, name: str) -> str:
    """The value bash gives the variable `name` after running `line` (`NAME=value`): bash itself, which expands a `$`
    inside double quotes where shlex keeps it as typed."""
    if shutil.which("bash") is None:
        pytest.skip("no bash here to read the assignment")
    script = f'{line}\nprintf %s "${name}"'
    read = subprocess.run(["bash", "-c", script], capture_output=True, encoding="utf-8", check=True)
    return read.stdout


@pytest.mark.parametrize(
    "folder",
    [
        "Zo\xeb/hf cache",  # a user name beyond ASCII, and a space
        "2026 renders/hf",  # a folder that starts with a digit
        "\u5f20\u4f1f/hf",
        "O\u2019Brien/$work/hf",  # a curly apostrophe, which ends PowerShell's literal, and a `$`
    ],
)
def test_the_cache_variable_a_hint_sets_is_read_back_whole_by_each_shell(folder, tmp_path, monkeypatch):
    # `-m` given a repo folder of another Hugging Face cache: the hint sets HF_HUB_CACHE to that cache's folder,
    # a path under the user's home (C:\Users\Zoë\...), for bash (`NAME=value`) or PowerShell (`$env:NAME = '...'`).
    from motif_lite.io.path_fixes import cache_repo_fix

    cache = tmp_path / folder
    (cache / "models--org--tiny" / "snapshots").mkdir(parents=True)

    def hint() -> str:
        return cache_repo_fix(str(cache / "models--org--tiny")).rpartition(", with ")[2]

    posix = hint()
    assert bash_variable_set(posix, "HF_HUB_CACHE") == str(cache), posix
    windows = on_windows(monkeypatch, hint)
    assert powershell_variable_set(windows) == ("HF_HUB_CACHE", str(cache)), windows


@pytest.mark.parametrize("numbers", [["2", "3"], ["0"], ["10", "11"]])
def test_the_gpus_a_hint_chooses_are_read_back_by_each_shell(numbers, monkeypatch):
    # `0,1` bare would be an array in PowerShell (passed as `0 1`): the value is in its single quotes there.
    from motif_lite.choices import chosen_gpus_command

    posix = chosen_gpus_command(numbers)
    assert shlex.split(posix)[0] == f"CUDA_VISIBLE_DEVICES={','.join(numbers)}", posix
    windows = on_windows(monkeypatch, lambda: chosen_gpus_command(numbers))
    setting, _, command = windows.partition("; ")
    assert powershell_variable_set(setting) == ("CUDA_VISIBLE_DEVICES", ",".join(numbers)), windows
    assert powershell_arguments(command.removesuffix(" ...")) == ["motif-lite", "run", "--gpus", str(len(numbers))]


def test_the_image_processors_download_passes_its_pattern_whole_in_each_shell(tmp_path, monkeypatch):
    # A first frame on a checkpoint folder without feature_extractor/ (a ComfyUI-style copy): the fix's
    # `--include 'feature_extractor/*'` kept its single quotes in cmd, whose hf then matched no file and downloaded
    # nothing, without an error.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.settings import _no_image_processor

    folder = tmp_path / "my models"
    folder.mkdir()
    configs = CheckpointConfigs(root=folder, index={"_class_name": "MotifVideoPipeline"})

    def download() -> str:
        return _no_image_processor(configs).partition(": hf download ")[2]

    meant = ["--include", "feature_extractor/*", "--local-dir", str(folder)]
    assert shlex.split(download())[1:] == meant  # what it always said, bash's words
    windows = on_windows(monkeypatch, download)
    assert cmd_arguments(windows)[1:] == powershell_arguments(windows)[1:] == meant, windows


def powershell_file_text(expression: str, folder: Path) -> str:
    """The text Windows PowerShell 5.1 passes for `(Get-Content -Raw [-Encoding UTF8] [-LiteralPath] FILE)`, with or
    without `.TrimEnd()` on it (FILE relative to `folder`): a file with UTF-8's byte-order mark as UTF-8, as one
    without with `-Encoding UTF8`, else in the ANSI code page (cp1252 in Western Europe); -Raw keeps every line end,
    which `.TrimEnd()` takes off the end with any other white space. Without -LiteralPath FILE is a wildcard
    pattern, in which `[...]` stands for one of the characters in it: a name holding one fails the test."""
    read = re.fullmatch(
        r"\(?\(Get-Content -Raw( -Encoding UTF8)?( -LiteralPath)? (.+?)\)(\.TrimEnd\(\)\))?", expression
    )
    assert read is not None, f"PowerShell reads no file's text with {expression!r} as this test knows it"
    (name,) = powershell_arguments(read[3])
    assert read[2] or not re.search(r"[][*?]", name), f"PowerShell reads {name!r} as a wildcard: no such file"
    data = (folder / name).read_bytes()
    text = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") or read[1] else "cp1252")
    return text.rstrip() if read[4] else text


@pytest.mark.parametrize("saved", ["caf\xe9 au lait\r\n", "a fox in snow", "a fox\r\nin snow\r\n"])
def test_a_prompt_read_from_a_file_is_its_text_in_each_shell(saved, tmp_path, monkeypatch):
    # The hint for a prompt kept in a file (`-p prompt.txt`): PowerShell's `(Get-Content -Raw prompt.txt)` read
    # Notepad's UTF-8 (no byte-order mark) as cp1252 in Windows PowerShell 5.1, `café` as `cafÃ©`, and kept the
    # file's CRLF at its end: another prompt, another video, without a word. Bash drops the LF at the end (of a
    # Windows file, not its CR); PowerShell's `.TrimEnd()` drops the CRLF.
    from motif_lite.shell_syntax import file_text

    name = "my prompt [v2].txt"  # `[v2]` is a wildcard to Get-Content -Path, which then finds no file of that name
    (tmp_path / name).write_bytes(saved.encode("utf-8"))
    monkeypatch.chdir(tmp_path)
    if shutil.which("bash") is None:
        pytest.skip("no bash here to read the file")
    script = f"printf %s {file_text(name)}"  # bytes back: text mode would read each \r as a line end
    bash_read = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.decode("utf-8")
    assert bash_read == saved.removesuffix("\n")  # what it always said: bash drops the newline, keeps the \r
    windows = on_windows(monkeypatch, lambda: file_text(name))
    assert powershell_file_text(windows, tmp_path) == saved.rstrip(), windows


def powershell_list(line: str) -> list[str]:
    """The values of PowerShell's list `A, B, C` as one argument of a cmdlet, each item a word
    `powershell_arguments` reads; anything else between the items fails the test."""
    items, i = [], 0
    while True:
        item = re.match(r"'(?:[^']|'')*'|\"[^\"]*\"|[^,\s'\"]+", line[i:])
        assert item is not None, f"no list item at {line[i:]!r} in {line!r}"
        items += powershell_arguments(item.group())
        i += item.end()
        if i == len(line):
            return items
        assert line[i : i + 2] == ", ", f"PowerShell reads {line!r} as more than one list"
        i += 2


def test_the_files_a_batch_note_says_to_delete_are_one_list_in_powershell(monkeypatch):
    # --crf given to a batch run again: the note's `del "my videos\fox-1.mp4" "my videos\fox-2.mp4"` was refused by
    # PowerShell's del (Remove-Item), which takes the files as one list: "A positional parameter cannot be found".
    from types import SimpleNamespace

    from motif_lite.cli.run_videos import _crf_note

    files = [r"C:\my videos\fox-1.mp4", r"C:\my videos\$fox-2.mp4", r"C:\my videos\fox-3.mp4"]
    skipped = [SimpleNamespace(output=Path(file)) for file in files]
    posix = _crf_note(skipped, 10).partition(": rm ")[2]
    assert shlex.split(posix) == files  # what it always said
    windows = on_windows(monkeypatch, lambda: _crf_note(skipped, 10))
    assert powershell_removed(windows.partition("--crf 10: ")[2]) == files, windows


@pytest.mark.parametrize("refs_folder", [True, False], ids=["refs-main-names-a-removed-snapshot", "no-refs-folder"])
def test_the_stray_snapshot_notes_command_is_powershells_on_windows(refs_folder, no_network, monkeypatch):
    # A copied cache whose refs/main leads nowhere: the note's `mkdir X && printf '%s' NAME > X\main` was a parse
    # error in Windows PowerShell 5.1 (no `&&`), and neither PowerShell nor cmd has printf.
    from motif_lite.io import hub

    repo = no_network / "models--Org--Name"
    snapshot = repo / "snapshots" / "it's mine"
    snapshot.mkdir(parents=True)
    ref = repo / "refs" / "main"
    if refs_folder:
        ref.parent.mkdir()
        ref.write_text("a" * 40)

    def command() -> str:
        return hub.stray_snapshots_note("Org/Name").split("make refs/main name it: ")[1].split(", or pass")[0]

    posix = command()
    assert posix.endswith(f"printf '%s' {shlex.quote(snapshot.name)} > {ref}"), posix  # what it always said
    steps = on_windows(monkeypatch, command).split("; ")
    made = [powershell_arguments(step) for step in steps]
    assert made[-1] == ["Set-Content", "-NoNewline", "-LiteralPath", str(ref), "-Value", snapshot.name], steps
    assert made[:-1] == ([] if refs_folder else [["mkdir", str(ref.parent)]]), steps


@pytest.mark.parametrize("copied_as", ["dangling links", "link texts"])
def test_the_copy_of_a_snapshot_with_its_links_followed_replaces_the_broken_copy(copied_as, tmp_path, monkeypatch):
    # A cache snapshot copied without its blobs (or git-cloned on Windows, core.symlinks off). The fix's
    # `cp -rL SNAPSHOT "my models"` copied the snapshot into the broken copy, as my models/COMMIT/..., which kept its
    # broken files: the run failed again alike. On Windows `cp -rL` is Copy-Item, which refuses -rL, and no command
    # in cmd: robocopy there.
    from motif_lite.io.copied_links import dangling_links_problem, link_texts_problem

    snapshot = tmp_path / "cache" / "snapshots" / ("a" * 40)
    (snapshot / "vae").mkdir(parents=True)
    (snapshot / "vae" / "config.json").write_text('{"z_dim": 16}')
    root = tmp_path / "my models"
    (root / "vae").mkdir(parents=True)
    target = "../../blobs/" + "0" * 40
    if copied_as == "dangling links":
        (root / "vae" / "config.json").symlink_to(target)
    else:
        (root / "vae" / "config.json").write_text(target)
    problem = dangling_links_problem if copied_as == "dangling links" else link_texts_problem

    def copy_again() -> str:
        return problem(root)[1].partition("in place of this copy (")[2].partition(")")[0]

    posix = copy_again()
    windows = on_windows(monkeypatch, copy_again).split("; ")
    assert [powershell_arguments(command) for command in windows] == [
        ["Remove-Item", "-Recurse", "-LiteralPath", str(root)],
        ["robocopy", "SNAPSHOT", str(root), "/E"],
    ], windows
    assert cmd_arguments(windows[1]) == ["robocopy", "SNAPSHOT", str(root), "/E"]  # robocopy: cmd's too
    if shutil.which("bash") is None:
        pytest.skip("no bash here to run the copy")
    subprocess.run(["bash", "-c", posix.replace("SNAPSHOT", shlex.quote(str(snapshot)))], check=True)  # as printed
    assert dangling_links_problem(root) is None and link_texts_problem(root) is None, sorted(root.rglob("*"))
    assert (root / "vae" / "config.json").read_text() == '{"z_dim": 16}', posix


def powershell_removed(command: str) -> list[str]:
    """The files PowerShell's Remove-Item (or its alias `del`) deletes for `command`: the list after -LiteralPath
    as named; a list given to its plain -Path (the first place's) must hold no `[`, `]`, `*` or `?`, which it reads
    as a wildcard, matching other files or none of that name. Any other command fails the test."""
    name, _, rest = command.partition(" ")
    assert name in ("Remove-Item", "del"), f"no PowerShell delete: {command!r}"
    if rest.startswith("-LiteralPath "):
        return powershell_list(rest.removeprefix("-LiteralPath "))
    files = powershell_list(rest.removeprefix("-Path "))
    assert not any(set("[]*?") & set(file) for file in files), f"Remove-Item -Path reads a wildcard in {files}"
    return files


def test_the_files_a_batch_note_says_to_delete_are_named_literally_in_powershell(monkeypatch):
    # PNG frames and takes numbered in brackets: `del "C:\my videos\fox[1].mp4"` read `[1]` as a wildcard (the
    # character 1), matched `fox1.mp4` and deleted it, or nothing, and left the video encoded at the old --crf.
    from types import SimpleNamespace

    from motif_lite.cli.run_videos import _crf_note

    files = [r"C:\my videos\fox[1].mp4", r"C:\my videos\fox[2].mp4"]
    skipped = [SimpleNamespace(output=Path(file)) for file in files]
    assert shlex.split(_crf_note(skipped, 10).partition(": rm ")[2]) == files  # what it always said
    windows = on_windows(monkeypatch, lambda: _crf_note(skipped, 10))
    assert powershell_removed(windows.partition("--crf 10: ")[2]) == files, windows


# A bare word a cmdlet reads as a number: decimal, hexadecimal or in exponent form, with a type suffix (`d`, `l`)
# and a multiplier (`kb` ... `pb`); `0123` is 123, and forty digits a double, `1.23456789012346E+38`.
_POWERSHELL_NUMBER = re.compile(r"[+-]?(0x[0-9a-f]+|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?)[dl]?([kmgtp]b)?", re.IGNORECASE)


def powershell_cmdlet_value(text: str) -> str:
    """The string a cmdlet's parameter gets for the argument `text`, one word as `powershell_arguments` reads it: a
    bare word read as a number (`_POWERSHELL_NUMBER`) or a parameter's name (a leading `-`) fails the test."""
    [value] = powershell_arguments(text)
    if not text.startswith(("'", '"')):
        assert not _POWERSHELL_NUMBER.fullmatch(text), f"a cmdlet reads {text} as a number"
        assert not text.startswith("-"), f"a cmdlet reads {text} as a parameter's name"
    return value


@pytest.mark.parametrize("name", ["0123456789" * 4, "1e5", "-old"])
def test_the_stray_snapshot_notes_value_is_the_snapshots_name_in_powershell(name, no_network, monkeypatch):
    # Set-Content's -Value bare: a snapshot whose name was all digits was written as a number (`0123...` lost its
    # 0, forty digits became `1.23456789012346E+38`), and refs/main named no snapshot again.
    from motif_lite.io import hub

    repo = no_network / "models--Org--Name"
    (repo / "snapshots" / name).mkdir(parents=True)
    ref = repo / "refs" / "main"
    ref.parent.mkdir()
    ref.write_text("a" * 40)

    def command() -> str:
        return hub.stray_snapshots_note("Org/Name").split("make refs/main name it: ")[1].split(", or pass")[0]

    assert command().endswith(f"printf '%s' {shlex.quote(name)} > {ref}")  # what it always said
    windows = on_windows(monkeypatch, command)
    written, _, value = windows.partition(" -Value ")
    assert powershell_arguments(written) == ["Set-Content", "-NoNewline", "-LiteralPath", str(ref)], windows
    assert powershell_cmdlet_value(value) == name, windows


@pytest.mark.parametrize("prompt", ['a "red" fox', 'a sign that says "hi"', r"a \"quoted\" word", '"fox" at dawn'])
def test_a_prompt_with_a_double_quote_typed_again_says_how_older_powershells_pass_it(prompt, monkeypatch):
    # Windows PowerShell 5.1 and PowerShell 7.0-7.2 drop a `"` inside an argument: the line typed again for
    # `motif-lite 'a "red" fox'` ran there with the prompt `a red fox`, and nothing said so.
    from motif_lite.cli.command_hints import prompt_as_command

    words = ["run", "-p", prompt, "-o", "my fox.mp4"]
    posix = prompt_as_command([prompt, "-o", "my fox.mp4"]).partition("after -p: motif-lite ")[2]
    assert shlex.split(posix) == words, posix  # what it always said
    said = on_windows(monkeypatch, lambda: prompt_as_command([prompt, "-o", "my fox.mp4"]))
    line, _, comment = said.partition("after -p: motif-lite ")[2].partition("  # ")
    assert powershell_arguments(line) == words, line  # PowerShell 7.3 and later pass it as typed
    assert windows_powershell_arguments(line) != words, line  # the older ones: what the comment is for
    older = comment.partition("there type ")[2]
    typed = on_windows(monkeypatch, lambda: quoted(prompt))
    assert windows_powershell_arguments(line.replace(typed, older)) == words, comment


@pytest.mark.parametrize("prompt", ['a "red" fox', 'a sign that says "hi"', r"a \"quoted\" word", '"fox" at dawn'])
def test_the_summarys_prompt_line_says_how_older_powershells_take_a_double_quote(prompt):
    # The run summary's and dry run's prompt line is meant to be pasted after -p: from Windows PowerShell 5.1 and
    # PowerShell 7.0-7.2 `'a "red" fox'` ran as `a red fox`, with no comment giving them its form, as a command
    # line typed again has (`command_line`).
    from motif_lite.cli.run_summary import prompt_line

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "platform", "win32")
        line = prompt_line(prompt)
    shown, _, comment = line.removeprefix("prompt: ").partition("  # ")
    assert powershell_arguments(shown) == [prompt], line  # PowerShell 7.3 and later pass it as shown
    assert windows_powershell_arguments(shown) != [prompt], line  # the older ones: what the comment is for
    older = comment.partition("there type ")[2]
    assert windows_powershell_arguments(older) == [prompt], line
    assert prompt_line(prompt) == f"prompt: {posix_quoted(prompt)}"  # bash takes it as shown: no comment
