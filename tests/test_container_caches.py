"""`motif-lite check` in a container whose home cannot be written or is not there (`docker run -u 12345`): the
Triton cache's line says where a run compiles its kernels instead, the folder a run then uses
(motif_lite/cli/kernel_cache.py), not only that the home's cannot be written.

A folder that cannot be written is made as a path under a regular file: the tests run as root in CI, where
permission bits stop nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from motif_lite import cli
from motif_lite.cli.kernel_cache import writable_kernel_cache
from motif_lite.io.cache_folders import triton_tilde


def triton_line(tmp_path, capsys) -> str:
    cli.main(["check", "-m", str(tmp_path / "no-model")])
    return next(line for line in capsys.readouterr().out.splitlines() if " Triton cache: " in line)


def test_an_unwritable_triton_cache_is_said_with_the_folder_a_run_compiles_into(
    tmp_path, temp_dir, capsys, monkeypatch
):
    (tmp_path / "home").write_text("a file where the home should be")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("TRITON_CACHE_DIR", "TRITON_HOME"):
        monkeypatch.delenv(variable, raising=False)
    line = triton_line(tmp_path, capsys)
    environ = {"HOME": str(tmp_path / "home")}
    assert writable_kernel_cache(environ, "auto", torch.device("cuda")) is not None  # what a GPU run does
    assert line.startswith("warning ") and "cannot be written" in line, line
    assert f"compiles its kernels into {environ['TRITON_CACHE_DIR']} instead" in line, line


def test_a_user_without_a_home_is_told_so_not_that_a_folder_named_tilde_is_fine(
    tmp_path, temp_dir, capsys, monkeypatch
):
    # HOME unset and a UID /etc/passwd lacks: os.path.expanduser("~") stays "~". The current folder can be written,
    # so the line said "ok ~/.triton/cache", a folder that a run never uses.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # what it does for a user without a home
    for variable in ("TRITON_CACHE_DIR", "TRITON_HOME"):
        monkeypatch.delenv(variable, raising=False)
    line = triton_line(tmp_path, capsys)
    assert line.startswith("warning ") and "this user has no home" in line, line
    assert f"into {Path(tempfile.gettempdir()) / f'motif-lite-triton-{os.getuid()}'} instead" in line, line
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("variable", ["TRITON_CACHE_DIR", "TRITON_HOME"])
def test_a_tilde_left_in_a_triton_variable_is_named_not_a_missing_home(
    tmp_path, temp_dir, capsys, monkeypatch, variable
):
    # A Dockerfile's `ENV TRITON_CACHE_DIR=~/tc` keeps the ~ (so does Triton): the folder is one named '~' in the
    # working folder, while the user has a home. The line said "this user has no home".
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for other in ("TRITON_CACHE_DIR", "TRITON_HOME"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(variable, "~/tc")
    line = triton_line(tmp_path, capsys)
    assert line.startswith("warning ") and f"{variable} starts with a ~ that nothing expanded" in line, line
    assert "no home" not in line, line
    note = writable_kernel_cache({"HOME": str(tmp_path), variable: "~/tc"}, "auto", torch.device("cuda"))
    assert note is not None and f"{variable} starts with a ~" in note and "no home" not in note, note


def test_a_user_without_a_home_is_told_so_by_a_gpu_run(tmp_path, temp_dir, monkeypatch):
    # No HOME and a UID /etc/passwd lacks: os.path.expanduser leaves "~", the default folder Triton then takes.
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)
    note = writable_kernel_cache({}, "auto", torch.device("cuda"))
    assert note is not None and note.startswith("this user has no home"), note


def test_an_empty_triton_cache_dir_says_where_a_run_compiles_instead(tmp_path, temp_dir, capsys, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", "")
    line = triton_line(tmp_path, capsys)
    assert "TRITON_CACHE_DIR is set but empty" in line, line
    assert f"into {Path(tempfile.gettempdir()) / f'motif-lite-triton-{os.getuid()}'} instead" in line, line


@pytest.mark.parametrize(
    ("variable", "cache"), [("TRITON_CACHE_DIR", "Triton cache"), ("HF_HUB_CACHE", "Hugging Face cache")]
)
def test_a_cache_set_to_the_current_folder_is_checked_not_a_traceback(
    tmp_path, temp_dir, capsys, monkeypatch, variable, cache
):
    # Path(".") has no parts: the test for a leading `~` indexed its first part and `check` ended in an IndexError.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, ".")
    if variable == "HF_HUB_CACHE":  # read by huggingface_hub as it is imported, as conftest's private_caches sets it
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_CACHE", ".")
    assert cli.main(["check", "-m", str(tmp_path / "no-model")]) is not None
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if f" {cache}: " in line)
    assert line.split()[0] == "ok" and f"{cache}: . (" in line, line


def test_a_tilde_in_triton_cache_dir_is_blamed_on_it_not_on_a_triton_home_beside_it(tmp_path):
    # TRITON_CACHE_DIR decides the folder where both are set: its ~ is the cause, not TRITON_HOME's absolute path.
    why = triton_tilde({"TRITON_CACHE_DIR": "~/tc", "TRITON_HOME": str(tmp_path), "HOME": str(tmp_path)})
    assert why is not None and why.startswith("TRITON_CACHE_DIR starts with a ~"), why
    assert triton_tilde({"TRITON_CACHE_DIR": str(tmp_path), "TRITON_HOME": "~", "HOME": str(tmp_path)}) is None
