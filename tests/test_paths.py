"""Paths as users type them (`motif_lite.paths.user_path`), through every command that takes one."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.errors import MotifLiteError
from motif_lite.paths import user_path

NO_SUCH_USER = "~motif-lite-no-such-user"


def test_a_home_is_expanded_and_other_paths_are_kept(monkeypatch, tmp_path):
    # `~` is $HOME (%USERPROFILE% on Windows) and `~user` the password database's home: they differ in many
    # containers and under sudo, where this test compared the two and failed.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert user_path("~/fox.mp4") == tmp_path / "fox.mp4"
    user = getpass.getuser()
    assert user_path(f"~{user}/fox.mp4") == Path(os.path.expanduser(f"~{user}")) / "fox.mp4" != Path(f"~{user}/fox.mp4")
    assert user_path(Path("renders/fox.mp4")) == Path("renders/fox.mp4")


def test_a_home_this_machine_lacks_is_an_error_that_says_so():
    # Before: pathlib's bare RuntimeError ("Could not determine home directory"), a traceback from every command.
    with pytest.raises(MotifLiteError) as raised:
        user_path(f"{NO_SUCH_USER}/model")
    assert str(raised.value) == (
        f"{NO_SUCH_USER}/model: {NO_SUCH_USER} names the home folder of a user 'motif-lite-no-such-user', and this "
        "machine has none; give the path in full (or ~/motif-lite-no-such-user/model for one in your home)"
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["-m", f"{NO_SUCH_USER}/ckpt"],
        ["-o", f"{NO_SUCH_USER}/fox.mp4"],
        ["-i", f"{NO_SUCH_USER}/first.png"],
        ["--gguf", f"{NO_SUCH_USER}/model.gguf"],
        ["--lora", f"{NO_SUCH_USER}/style.safetensors"],
    ],
)
def test_each_path_flag_of_run_refuses_it_in_one_line(flags, tmp_path, capsys):
    args = ["run", "-p", "a fox", "--dry-run", "-o", str(tmp_path / "fox.mp4"), *flags]
    assert cli.main(args) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"{NO_SUCH_USER} names the home folder of a user" in err and "Traceback" not in err, err
