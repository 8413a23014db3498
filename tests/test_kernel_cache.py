"""Triton's kernel cache where it cannot be written (a cluster's read-only home): a run points it at a folder of the
temporary directory before anything compiles, with a note (motif_lite/cli/kernel_cache.py).

A folder that cannot be written is made here as a path under a regular file: the tests run as root in CI, where
permission bits stop nothing (a read-only mount, the real case, needs privileges a test does not have)."""

from __future__ import annotations

import errno
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from motif_lite.cli.kernel_cache import triton_cache_dir, writable_kernel_cache

CUDA = torch.device("cuda")  # no CUDA call is made: the device's type decides whether Triton will compile


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def blocked(tmp_path: Path, name: str) -> Path:
    """A folder that cannot be made: its parent is a file."""
    (tmp_path / name).write_text("a file where a folder should be")
    return tmp_path / name / "cache"


def test_the_cache_is_found_where_triton_looks(tmp_path):
    assert triton_cache_dir({"TRITON_CACHE_DIR": "/x/c", "TRITON_HOME": "/h"}) == Path("/x/c")
    assert triton_cache_dir({"TRITON_HOME": "/h"}) == Path("/h/.triton/cache")
    assert triton_cache_dir({}) == Path.home() / ".triton/cache"
    from triton import knobs  # Triton's own answer under this process's environment

    assert triton_cache_dir(os.environ) == Path(knobs.cache.dir)


def test_an_empty_variable_is_read_as_triton_reads_it(monkeypatch):
    # Triton takes a variable set but empty as set: TRITON_HOME="" is the current folder, and TRITON_CACHE_DIR=""
    # (a job script's `export TRITON_CACHE_DIR=$UNSET`) leaves it no folder at all, where every compile fails.
    from triton import knobs
    from triton.runtime.cache import FileCacheManager

    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.setenv("TRITON_HOME", "")
    assert triton_cache_dir(os.environ) == Path(knobs.cache.dir) == Path(".triton/cache")
    monkeypatch.setenv("TRITON_CACHE_DIR", "")
    assert triton_cache_dir(os.environ) is None and knobs.cache.dir == ""
    with pytest.raises(RuntimeError, match="Could not create or locate cache dir"):
        FileCacheManager("a kernel's key")


def test_a_writable_cache_is_left_alone(tmp_path, temp_dir):
    environ = {"TRITON_CACHE_DIR": str(tmp_path / "new" / "cache")}
    assert writable_kernel_cache(environ, "auto", CUDA) is None
    assert environ == {"TRITON_CACHE_DIR": str(tmp_path / "new" / "cache")}
    assert (tmp_path / "new" / "cache").is_dir() and not list((tmp_path / "new" / "cache").iterdir())  # no litter


def test_an_unwritable_cache_is_replaced_with_a_note(tmp_path, temp_dir):
    environ = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home"))}
    note = writable_kernel_cache(environ, "auto", CUDA)
    fallback = Path(environ["TRITON_CACHE_DIR"])
    # The user's own folder: another user's, left in a shared /tmp, could not be written.
    assert fallback.parent == temp_dir and fallback.is_dir() and fallback.name == f"motif-lite-triton-{os.getuid()}"
    why = os.strerror(errno.ENOTDIR)  # the OS's words, not the exception's type
    assert note.startswith(f"Triton's kernel cache {tmp_path / 'home' / 'cache'} cannot be written ({why})")
    assert f"this run compiles its kernels into {fallback}; set TRITON_CACHE_DIR" in note
    # The same run again: the folder of the first is used again, and said again.
    again = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home2"))}
    assert writable_kernel_cache(again, "triton", CUDA) is not None and again["TRITON_CACHE_DIR"] == str(fallback)


def test_an_empty_cache_variable_is_replaced_with_a_note(temp_dir):
    environ = {"TRITON_CACHE_DIR": ""}
    note = writable_kernel_cache(environ, "auto", CUDA)
    assert note.startswith("Triton has no kernel cache (TRITON_CACHE_DIR is set but empty): this run compiles")
    assert Path(environ["TRITON_CACHE_DIR"]).parent == temp_dir


def test_a_user_without_a_home_gets_the_fallback_not_a_folder_named_tilde(tmp_path, temp_dir, monkeypatch):
    # `docker run -u 12345` with HOME unset: os.path.expanduser("~") stays "~", so Triton (and our check, which
    # made the folder to test it) put the kernels under ./~/.triton/cache, in whatever folder the run started in.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # what it does for a user without a home
    environ: dict[str, str] = {}
    note = writable_kernel_cache(environ, "auto", CUDA)
    assert note.startswith("this user has no home, so Triton's kernel cache would be ~/.triton/cache under a ")
    assert Path(environ["TRITON_CACHE_DIR"]).parent == temp_dir and not (tmp_path / "~").exists()


def test_nothing_writable_says_so_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(blocked(tmp_path, "tmp")))
    environ = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home"))}
    note = writable_kernel_cache(environ, "auto", CUDA)
    assert "nor " in note and note.endswith("set TRITON_CACHE_DIR to a folder you may write")
    assert environ == {"TRITON_CACHE_DIR": str(tmp_path / "home" / "cache")}


def test_nothing_is_checked_where_triton_does_not_compile(tmp_path, temp_dir):
    environ = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home"))}
    assert writable_kernel_cache(environ, "auto", torch.device("cpu")) is None
    assert writable_kernel_cache(environ, "torch", CUDA) is None
    assert environ == {"TRITON_CACHE_DIR": str(tmp_path / "home" / "cache")} and not list(temp_dir.iterdir())


class Reached(Exception):
    """Raised by a stand-in to stop a command at the point the test looks at, before anything loads."""


def test_run_serve_and_verify_fix_the_cache_before_loading(checkpoint, tmp_path, monkeypatch):
    # On the CPU the check itself does nothing: the stand-in shows each command calls it, with its --kernels.
    from motif_lite import cli
    from motif_lite.cli import kernel_cache, prepare
    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import ServerConfig

    seen = []

    def check(environ, kernels, device):
        seen.append((environ is os.environ, kernels, device.type))
        raise Reached

    monkeypatch.setattr(importlib.import_module("motif_lite.cli.run_prepare"), "writable_kernel_cache", check)
    monkeypatch.setattr(kernel_cache, "writable_kernel_cache", check)  # serve and verify import it when called
    model = ["-m", str(checkpoint), "--device", "cpu"]
    with pytest.raises(Reached):
        cli.main(["run", *model, "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--kernels", "torch"])
    with pytest.raises(Reached):
        cli.main(["verify", *model])  # verify has no --kernels: both pipelines run auto
    args = cli.build_parser().parse_args(["serve", "-m", str(checkpoint), "--kernels", "torch"])
    args.weights = {}  # as serve's main sets it (no --vae and such)
    with pytest.raises(Reached):
        load_served_pipeline(args, ServerConfig(model_name="m"), [])
    assert seen == [(True, "torch", "cpu"), (True, "auto", "cpu"), (True, "torch", "cpu")]
    # serve's loading notes are told the device asked for (auto: a Mac's GPU is named), as run's are.
    monkeypatch.setattr(kernel_cache, "writable_kernel_cache", lambda *args: None)

    def notes(sources, device, asked_device, settings_notes=()):
        seen.append(asked_device)
        raise Reached

    monkeypatch.setattr(prepare, "loading_notes", notes)
    with pytest.raises(Reached):
        load_served_pipeline(args, ServerConfig(model_name="m"), [])
    assert seen[-1] == "auto"


# What the fix relies on, with Triton's real compiler (no GPU needed): an unwritable cache stops compiling, and the
# variable set after Triton was imported is the folder the next compile uses.
COMPILE = """
import sys
sys.path.insert(0, "tests")
from cubins import compile_or_skip
from motif_lite.kernels import norm
import os
os.environ["TRITON_CACHE_DIR"] = sys.argv[1]  # after importing Triton
pointers = dict(x_ptr="*bf16", shift_ptr="*bf16", scale_ptr="*bf16", y_ptr="*bf16", eps="fp32")
compile_or_skip(norm._layer_norm_modulate_kernel, 90, pointers, dict(BLOCK_C=2048), num_warps=4)
"""


def test_triton_compiles_into_the_folder_set_before_compiling(tmp_path):
    cache = tmp_path / "fresh"
    run = subprocess.run([sys.executable, "-c", COMPILE, str(cache)], capture_output=True, text=True)
    if "Skipped" in run.stderr:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    assert run.returncode == 0, run.stderr
    assert any(cache.rglob("*.cubin")), list(cache.rglob("*"))
    refused = subprocess.run([sys.executable, "-c", COMPILE, str(blocked(tmp_path, "x"))], capture_output=True)
    assert refused.returncode != 0 and (b"NotADirectoryError" in refused.stderr or b"FileExistsError" in refused.stderr)


@pytest.mark.cuda
def test_a_gpu_run_with_an_unwritable_cache_runs_its_kernels(checkpoint, tmp_path):
    """On a GPU: `--kernels triton` (no fallback allowed) runs with the cache under a file, and says where it went."""
    env = {**os.environ, "TRITON_CACHE_DIR": str(blocked(tmp_path, "home"))}
    args = ["-m", str(checkpoint), "-p", "a fox", "-W", "64", "-H", "64", "--video-frames", "5", "--steps", "2"]
    run = subprocess.run(
        [sys.executable, "-m", "motif_lite", "run", *args, "--kernels", "triton", "-o", str(tmp_path / "fox.mp4")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "cannot be written" in run.stderr and "this run compiles its kernels into" in run.stderr


def test_the_suite_compiles_into_a_temporary_triton_cache(tmp_path_factory):
    # tests/conftest.py's `private_caches`: test_kernels_compile.py's builds went to the contributor's ~/.triton/cache.
    assert triton_cache_dir(os.environ).is_relative_to(tmp_path_factory.getbasetemp())


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_a_fallback_folder_that_is_not_this_users_is_refused_in_the_note(tmp_path, temp_dir):
    # Its name is predictable: another user of a shared /tmp could make it first (or a link by that name) and swap
    # the compiled kernels this run loads. It is made private (0o700), and one that is not this user's is refused.
    environ = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home"))}
    assert writable_kernel_cache(environ, "auto", CUDA) is not None
    fallback = Path(environ["TRITON_CACHE_DIR"])
    assert fallback.stat().st_mode & 0o777 == 0o700
    fallback.rmdir()
    fallback.symlink_to(tmp_path)
    environ = {"TRITON_CACHE_DIR": str(blocked(tmp_path, "home2"))}
    note = writable_kernel_cache(environ, "auto", CUDA)
    assert environ["TRITON_CACHE_DIR"] == str(tmp_path / "home2" / "cache")  # left as it was
    assert note.endswith(f"{fallback} is not a folder of this user (another user's, or a link): remove it, or set "
                         "TRITON_CACHE_DIR to a folder you may write"), note  # fmt: skip


def test_a_cache_on_a_disk_whose_quota_is_used_up_is_replaced(tmp_path):
    # A home at its quota takes an empty file but no data: every kernel would fail as Triton writes it. The quota is
    # played by a file size limit (the same refusal of data after the file is made), in a process of its own.
    code = f"""
import resource, signal, tempfile, torch
from pathlib import Path
from motif_lite.cli.kernel_cache import writable_kernel_cache
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
tempfile.tempdir = {str(tmp_path / "tmp")!r}
Path(tempfile.tempdir).mkdir()
print(writable_kernel_cache({{"TRITON_CACHE_DIR": {str(tmp_path / "home")!r}}}, "auto", torch.device("cuda")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    why = os.strerror(errno.EFBIG)
    assert done.stdout.startswith(f"Triton's kernel cache {tmp_path / 'home'} cannot be written ({why})"), done.stdout
    assert not list((tmp_path / "home").iterdir())  # the probe removed


def test_a_quota_said_only_as_the_probe_is_synced_counts_as_unwritable(tmp_path, monkeypatch):
    # NFS reports a used-up quota only when the data reaches the server: at the sync, after every write succeeded.
    from motif_lite.cli import kernel_cache

    def quota_at_sync(handle: int) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(kernel_cache.os, "fsync", quota_at_sync)
    assert kernel_cache.unwritable(tmp_path / "home") == os.strerror(errno.EDQUOT)
    assert not list((tmp_path / "home").iterdir())  # the probe removed
