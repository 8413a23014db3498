"""The commands messages suggest, in the user's shell: bash's words on POSIX (what they always said), PowerShell's
on Windows, where `export`, `VAR=value command` and `$(cat FILE)` do nothing or fail. Tested on Linux by telling
the code it runs on Windows (`os.name`, inside each test only)."""

from __future__ import annotations

import argparse
import errno
import os
import tempfile
from collections.abc import Callable
from unittest import mock

import pytest

from motif_lite import cli
from motif_lite.cli import serve
from motif_lite.cli.command_hints import subcommands
from motif_lite.cli.flag_hints import VALUED_HINTS
from motif_lite.cli.unknown_flags import reject
from motif_lite.errors import MotifLiteError
from motif_lite.io import ffmpeg_writer, missing_report
from motif_lite.io.hub import OFFLINE_SET, failure_advice
from motif_lite.io.missing_report import MissingFiles, MissingFilesError
from motif_lite.shell_syntax import (
    file_text,
    quoted,
    variable_from_home_file,
    variable_set,
    variable_unset,
    with_variable,
)


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
                    "((Get-Content -Raw -Encoding UTF8 -LiteralPath prompt.txt).TrimEnd())",
                    "((Get-Content -Raw -Encoding UTF8 -LiteralPath 'my $prompt.txt').TrimEnd())",
                    r"D:\renders\fox.mp4"]  # fmt: skip


def test_the_first_runs_advice_is_in_powershell_on_windows(monkeypatch):
    # A full disk while the weights download, and a prompt given as a file: the two a new user meets first.
    _, prompt_file_hint = VALUED_HINTS["--prompt-file"]  # `motif-lite run --prompt-file prompt.txt`'s hint
    full_disk = OSError(errno.ENOSPC, "No space left on device")
    advice, hint = on_windows(monkeypatch, lambda: (failure_advice(full_disk, "Org/Repo"), prompt_file_hint("p.txt")))
    assert r"($env:HF_HUB_CACHE = 'D:\hf-cache', or HF_HOME)" in advice and "/big/disk" not in advice
    assert "read it from the file with -p ((Get-Content -Raw -Encoding UTF8 -LiteralPath p.txt).TrimEnd())" in hint


def test_a_variable_for_one_command_and_an_unset_one_in_each_shell(monkeypatch):
    def said() -> list[str]:
        return [
            with_variable("CUDA_VISIBLE_DEVICES", "2,3", "motif-lite run --gpus 2 ..."),
            variable_from_home_file("KEY", ".motif-lite-key", "motif-lite serve"),
            variable_unset("HF_HUB_OFFLINE"),
            variable_from_home_file("KEY", "my key", "motif-lite serve"),
        ]

    assert said() == ["CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2 ...",
                      'KEY="$(cat ~/.motif-lite-key)" motif-lite serve', "unset HF_HUB_OFFLINE",
                      """KEY="$(cat ~/'my key')" motif-lite serve"""]  # fmt: skip
    # PowerShell has no "for this command alone": the variable is set first, for the window, then the command runs.
    assert on_windows(monkeypatch, said) == ["$env:CUDA_VISIBLE_DEVICES = '2,3'; motif-lite run --gpus 2 ...",
                                             r"$env:KEY = (Get-Content -Raw ~\.motif-lite-key); motif-lite serve",
                                             "Remove-Item Env:HF_HUB_OFFLINE",
                                             r"$env:KEY = (Get-Content -Raw '~\my key'); motif-lite serve"]  # fmt: skip


def _refusal(make: Callable[[], object]) -> str:
    """The message `make` refuses with (a `MotifLiteError`, or argparse's exit after writing to stderr, which the
    caller reads), or what it returns."""
    try:
        return str(make())
    except MotifLiteError as error:
        return str(error)
    except SystemExit:
        return ""


def _unknown_flags_hint(*extras: str) -> Callable[[], object]:
    run_parser = subcommands(cli.build_parser())["run"]  # built before `on_windows`: argparse reads no os.name
    return lambda: reject(run_parser, list(extras), argparse.Namespace(prompt="a fox"))


def _parallel_device_refusal() -> object:
    from motif_lite.runtime.parallel import check_device  # imports torch: only for this case

    return check_device("cuda:2")


def _offline_report() -> object:
    # The notes on a cache left elsewhere and on a copied cache's snapshots look at the cache's path, which pathlib
    # cannot make as a Windows one on Linux: left out here, as they are where no such cache exists.
    with (
        mock.patch.object(missing_report, "homeless_cache", lambda: None),
        mock.patch.object(missing_report, "stray_snapshots_note", lambda *args: None),
    ):
        return str(MissingFilesError([MissingFiles("Org/Repo", ("*.gguf",), ("*.gguf",), "/models/gguf", OFFLINE_SET)]))


def _temporary_folder_refusal() -> object:
    # the video's metadata file, the one file ffmpeg reads from the temp folder
    with ffmpeg_writer._metadata_file("a fox"):
        return None


# The hints that set an environment variable, as bash writes it (what they always said) and as PowerShell does.
VARIABLE_HINTS = {
    "GPUs chosen by number": (lambda: VALUED_HINTS["--gpu-ids"][1]("2,3"),
                              "CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2 ...",
                              "$env:CUDA_VISIBLE_DEVICES = '2,3'; motif-lite run --gpus 2 ..."),
    "a GPU given to a parallel run": (_parallel_device_refusal,
                                      "CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2 ... runs on GPUs 2 and 3",
                                      "$env:CUDA_VISIBLE_DEVICES = '2,3'; motif-lite run --gpus 2 ... runs on GPUs 2 "
                                      "and 3"),
    "CPU threads": (_unknown_flags_hint("--threads", "4"), "OMP_NUM_THREADS=N before the command sets N",
                    "$env:OMP_NUM_THREADS = 'N' before the command sets N"),
    "log levels": (_unknown_flags_hint("--verbose"), "TQDM_DISABLE=1 hides the progress bars",
                   "$env:TQDM_DISABLE = '1' hides the progress bars"),
    "a slow link": (lambda: failure_advice(TimeoutError("read timed out"), "Org/Repo"),
                    "or HF_HUB_DOWNLOAD_TIMEOUT=60 for a slow link",
                    "or $env:HF_HUB_DOWNLOAD_TIMEOUT = '60' for a slow link"),
    "offline with a network": (_offline_report,
        "With a network here, unset HF_HUB_OFFLINE and run again",
        "With a network here, Remove-Item Env:HF_HUB_OFFLINE and run again"),
    "a full temporary folder": (_temporary_folder_refusal, "set TMPDIR to a folder with room (TMPDIR=/data/tmp)",
                                r"set TMPDIR to a folder with room ($env:TMPDIR = 'D:\tmp')"),
    "serve's key from a file": (serve.epilog,
                                'MOTIF_LITE_API_KEY="$(cat ~/.motif-lite-key)" motif-lite serve --host 0.0.0.0',
                                r"$env:MOTIF_LITE_API_KEY = (Get-Content -Raw ~\.motif-lite-key); motif-lite serve "
                                "--host 0.0.0.0"),
}  # fmt: skip


@pytest.mark.parametrize("case", VARIABLE_HINTS)
def test_a_hint_that_sets_a_variable_is_in_the_users_shell(case, monkeypatch, capsys):
    make, bash, powershell = VARIABLE_HINTS[case]
    # A temporary folder that takes no file: its creation fails as a full disk's would.
    no_space = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *args, **kwargs: (_ for _ in ()).throw(no_space))
    posix = _refusal(make) + capsys.readouterr().err
    windows = on_windows(monkeypatch, lambda: _refusal(make)) + capsys.readouterr().err
    assert bash in posix
    assert powershell in windows and bash not in windows
