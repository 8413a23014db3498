"""The commands messages suggest, in the user's shell: bash's words on POSIX (what they always said), PowerShell's
on Windows, where `export`, `VAR=value command` and `$(cat FILE)` do nothing or fail. Tested on Linux by telling
the code it runs on Windows (`os.name`, inside each test only)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from motif_lite.cli.unknown_flags import VALUED_HINTS
from motif_lite.io.hub import failure_advice
from motif_lite.shell_syntax import file_text, quoted, variable_set


def on_windows(monkeypatch, make: Callable[[], object]) -> object:
    """What `make` returns with `os.name` "nt", undone before any assert: pytest's own report of a failure builds
    paths, which pathlib would make Windows ones (refused on Linux)."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "name", "nt")
        return make()


def test_posix_keeps_bash_words():
    assert variable_set("HF_HUB_CACHE", "/big/disk/hf-cache", r"D:\hf-cache") == "HF_HUB_CACHE=/big/disk/hf-cache"
    assert variable_set("HF_HUB_CACHE", "/my cache") == "HF_HUB_CACHE='/my cache'"
    assert file_text("my prompt.txt") == """"$(cat 'my prompt.txt')\""""


def test_windows_gets_powershell_words(monkeypatch):
    said = on_windows(monkeypatch, lambda: [
        variable_set("HF_HUB_CACHE", "/big/disk/hf-cache", r"D:\hf-cache"),
        variable_set("HF_HUB_CACHE", r"C:\Users\o'neil\hf"),
        file_text("prompt.txt"),
        file_text("my $prompt.txt"),  # single quotes: no variable expanded
        quoted(r"D:\renders\fox.mp4"),
    ])  # fmt: skip
    assert said == [r"$env:HF_HUB_CACHE = 'D:\hf-cache'", r"$env:HF_HUB_CACHE = 'C:\Users\o''neil\hf'",
                    "(Get-Content -Raw prompt.txt)", "(Get-Content -Raw 'my $prompt.txt')",
                    r"D:\renders\fox.mp4"]  # fmt: skip


def test_the_first_runs_advice_is_in_powershell_on_windows(monkeypatch):
    # A full disk while the weights download, and a prompt given as a file: the two a new user meets first.
    _, prompt_file_hint = VALUED_HINTS["--prompt-file"]  # `motif-lite run --prompt-file prompt.txt`'s hint
    full_disk = OSError(errno.ENOSPC, "No space left on device")
    advice, hint = on_windows(monkeypatch, lambda: (failure_advice(full_disk, "Org/Repo"), prompt_file_hint("p.txt")))
    assert r"($env:HF_HUB_CACHE = 'D:\hf-cache', or HF_HOME)" in advice and "/big/disk" not in advice
    assert "read it from the file with -p (Get-Content -Raw p.txt)" in hint
