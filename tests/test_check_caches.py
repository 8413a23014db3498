"""`motif-lite check` on a shared cluster's login node: every cache a run writes is listed with its folder, the free
space of its disk and the variable that moves it, so a user with a small home quota sees what lands there before
a first run fills it. No weights: the caches are said before the checkpoint is looked at."""

from __future__ import annotations

import os
import tempfile

import pytest
from huggingface_hub import constants

from motif_lite import cli
from motif_lite.io.cache_folders import inductor_cache_dir

VARIABLES = {  # each cache's line names the variable that moves it
    "Hugging Face cache": "HF_HUB_CACHE or HF_HOME",
    "motif-lite cache": "XDG_CACHE_HOME",
    "Triton cache": "TRITON_CACHE_DIR",
    "torch.compile cache": "TORCHINDUCTOR_CACHE_DIR",
}


def check_lines(tmp_path, capsys) -> dict[str, str]:
    """`motif-lite check`'s line for each cache, by its name (the model is absent: a problem, said after them)."""
    cli.main(["check", "-m", str(tmp_path / "no-model")])
    lines = capsys.readouterr().out.splitlines()
    return {name: next(line for line in lines if f" {name}: " in line) for name in VARIABLES}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home of its own, with every cache in it by default (as on a cluster where nobody moved them)."""
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for variable in ("XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TRITON_HOME", "TORCHINDUCTOR_CACHE_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / ".cache/huggingface/hub"))
    return home


def test_each_cache_is_listed_with_its_folder_free_space_and_variable(home, tmp_path, capsys):
    lines = check_lines(tmp_path, capsys)
    for name, variable in VARIABLES.items():
        assert lines[name].startswith("ok ") and " free on its disk" in lines[name], lines[name]
        assert f"{variable} moves it" in lines[name], lines[name]
    assert f"{home}/.cache/huggingface/hub (" in lines["Hugging Face cache"]
    assert f"{home}/.cache/motif-lite (" in lines["motif-lite cache"]
    assert f"{home}/.triton/cache (" in lines["Triton cache"]
    for name in ("Hugging Face cache", "motif-lite cache", "Triton cache"):
        assert "in your home" in lines[name], lines[name]
    assert "in your home" not in lines["torch.compile cache"]  # the temporary directory


def test_caches_moved_by_their_variables_are_listed_where_they_went(home, tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "scratch"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(scratch / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(scratch / "cache"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(scratch / "triton"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(scratch / "inductor"))
    lines = check_lines(tmp_path, capsys)
    for name, folder in zip(VARIABLES, ("hf", "cache/motif-lite", "triton", "inductor"), strict=True):
        assert f" {scratch / folder} (" in lines[name] and "in your home" not in lines[name], lines[name]
    assert not scratch.exists()  # listed, not made


def test_a_cache_that_cannot_be_written_is_a_warning_and_a_read_only_hub_cache_is_not(
    home, tmp_path, capsys, monkeypatch
):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a file where the folder should be: no one can write under it, root included
    monkeypatch.setenv("TRITON_CACHE_DIR", str(blocked / "triton"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(blocked / "hub"))
    lines = check_lines(tmp_path, capsys)
    assert lines["Triton cache"].startswith("warning ") and "cannot be written" in lines["Triton cache"]
    assert lines["Hugging Face cache"].startswith("ok ") and "read-only" in lines["Hugging Face cache"]


def test_an_empty_triton_cache_dir_is_a_warning(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", "")
    line = check_lines(tmp_path, capsys)["Triton cache"]
    assert line.startswith("warning ") and "TRITON_CACHE_DIR is set but empty" in line, line


def test_the_compile_cache_is_where_torch_puts_it(monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir  # the oracle: torch's own (private)

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert str(inductor_cache_dir(os.environ)) == default_cache_dir()
    assert str(inductor_cache_dir({"TORCHINDUCTOR_CACHE_DIR": "rel"})) == os.path.abspath("rel")
    assert inductor_cache_dir({}).parent == type(inductor_cache_dir({}))(tempfile.gettempdir())


@pytest.mark.parametrize("user", ["CORP\\ann", 'a:b*c?"<>|/d'])
def test_the_compile_cache_of_a_user_name_with_path_characters_is_where_torch_puts_it(monkeypatch, user):
    # A Windows domain account (CORP\ann) or an odd LDAP name: torch replaces each character a path cannot hold.
    import getpass

    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: user)
    assert str(inductor_cache_dir(os.environ)) == default_cache_dir()


def test_a_home_of_slash_puts_no_cache_in_your_home(home, tmp_path, capsys, monkeypatch):
    # HOME=/ (a service account's, a container's) is no home: "in your home" would be said of every folder.
    monkeypatch.setenv("HOME", "/")
    lines = check_lines(tmp_path, capsys)
    assert not [line for line in lines.values() if "in your home" in line], lines
