"""The commands a message suggests are pasted into a shell: a path that starts at the home folder (`~/x.gguf`, typed
in quotes, in a settings file or an entry script) must keep its `~` where the shell expands it. Bash is the oracle:
each suggested word is given to it, and what it hands a program is compared with the path meant.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.shell_syntax import file_text, posix_quoted, quoted, variable_set

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="needs bash")


def as_bash_reads(words: str, home: Path) -> list[str]:
    """The arguments bash gives a program for the command-line text `words`, with HOME at `home`."""
    script = f'for word in {words}; do printf "%s\\0" "$word"; done'
    done = subprocess.run([BASH, "-c", script], env={"HOME": str(home)}, capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


@needs_bash
@pytest.mark.parametrize("path", ["~/x.gguf", "~/models/a b.gguf", "~/it's.gguf", "~/$HOME.gguf", "~/", "~"])
def test_a_path_under_the_home_folder_is_quoted_so_that_the_shell_still_expands_its_tilde(path, tmp_path):
    expected = str(tmp_path) + path[1:]
    assert as_bash_reads(posix_quoted(path), tmp_path) == [expected]
    assert as_bash_reads(quoted(path), tmp_path) == [expected]


@needs_bash
@pytest.mark.parametrize("text", ["a b", "x ~/y", "~user/x", "it's", "$HOME", "plain.gguf", ""])
def test_other_words_are_quoted_as_shlex_quotes_them(text, tmp_path):
    assert as_bash_reads(posix_quoted(text), tmp_path) == [text]


@needs_bash
def test_a_gguf_given_to_m_from_the_home_folder_is_suggested_to_gguf_as_a_path_the_shell_expands(
    tmp_path, capsys, monkeypatch, no_network
):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    code = cli.main(["run", "-m", "~/x.gguf", "-p", "fox", "--dry-run"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    suggested = err.split("pass it as --gguf ", 1)[1].split(";", 1)[0]
    assert as_bash_reads(suggested, tmp_path) == [str(tmp_path / "x.gguf")], err


@needs_bash
@pytest.mark.parametrize("name", ["~", "~x.png"])
def test_a_file_named_from_a_url_starting_with_a_tilde_is_read_as_that_file(tmp_path, monkeypatch, name):
    # A quoted `~` (or `~x`, read as a user's home) reaches motif-lite unexpanded and motif-lite expands it itself,
    # so the advised `curl -o '~'` wrote the file and `-i '~'` then read the home folder.
    from PIL import Image

    from motif_lite.io.image import read_image
    from motif_lite.paths import url_fix, user_path

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    advice = url_fix(f"https://example.com/{name}", "-i", "image.png")
    curl, given = advice.split("download it first, e.g. ", 1)[1].split(", then give ", 1)
    written = as_bash_reads(curl, home)[3]  # curl -L -o NAME URL: the file curl writes, relative to here
    Image.new("RGB", (8, 8)).save(tmp_path / written, format="PNG")
    flag, image_arg = as_bash_reads(given, home)
    assert flag == "-i"
    assert user_path(image_arg).absolute() == tmp_path / name  # --extend's reading too
    image, _ = read_image(image_arg)
    assert image.size == (8, 8)


@needs_bash
def test_a_variable_set_to_a_path_under_the_home_folder_gets_the_expanded_path(tmp_path):
    # bash expands a tilde after an assignment's `=` only unquoted: NAME='~/big cache' set a folder named ~.
    script = f'{variable_set("HF_HOME", "~/big cache")}; printf "%s" "$HF_HOME"'
    done = subprocess.run([BASH, "-c", script], env={"HOME": str(tmp_path)}, capture_output=True, check=True)
    assert done.stdout.decode() == str(tmp_path / "big cache")


@needs_bash
def test_the_text_of_a_file_under_the_home_folder_is_read_from_the_home_folder(tmp_path):
    # "$(cat '~/prompt.txt')" looked for a folder named ~ in the current one.
    (tmp_path / "my prompt.txt").write_text("a fox")
    script = f'printf "%s" {file_text("~/my prompt.txt")}'
    done = subprocess.run([BASH, "-c", script], env={"HOME": str(tmp_path)}, capture_output=True, check=True)
    assert done.stdout.decode() == "a fox"
