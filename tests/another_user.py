"""Running a check as another user than the tests' own: root, whom no permission bits stop, cannot see a folder it
may not enter, so such checks run as UID 65534 (nobody) in a forked child."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pkgutil
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Modules of Python's own library and of the packages that the commands import only when they need them
# (safetensors' torch module, and the numpy.ctypeslib its save_file imports). Where the interpreter lives in root's
# home (pyenv's ~/.pyenv), the child, another user, could not read them: they are imported before it forks, so that
# a check's result does not depend on whether an earlier test of the session happened to import them.
_IMPORTED_LATER = (
    "cProfile",
    "encodings.idna",
    "importlib.readers",
    "sysconfig",
    "tty",
    "safetensors.torch",
    "numpy.ctypeslib",
)


@functools.cache
def _motif_lite_imported_where_others_may_not_read_it() -> None:
    """Each of motif-lite's modules imported, where its checkout lies in a folder others may not enter (a clone in
    root's home): the child could import none that the commands import only when they need them, and a check's
    result would depend on which an earlier test happened to import."""
    import motif_lite
    import motif_lite.kernels
    import motif_lite.quantize

    checkout = Path(motif_lite.__file__).resolve().parent
    if all(folder.stat().st_mode & 0o001 for folder in (checkout, *checkout.parents)):
        return  # others may enter every folder on its way: the child reads the modules itself
    for package in (motif_lite, motif_lite.kernels, motif_lite.quantize):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):  # __main__ runs the command
                importlib.import_module(module.name)


def as_another_user(compute):
    """`compute()`'s repr as UID 65534 (nobody) where the tests run as root, whom no permission bits stop; as this
    user otherwise. Run in a forked child that drops its user, so the test process keeps its own."""
    if os.getuid() != 0:  # an exception's repr too, as the child's below
        try:
            return repr(compute())
        except Exception as exc:
            return repr(exc)
    for name in _IMPORTED_LATER:
        importlib.import_module(name)
    _motif_lite_imported_where_others_may_not_read_it()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, repr(compute()).encode())
        except BaseException as exc:
            os.write(write, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    return said


@contextlib.contextmanager
def folder_closed_to_others(inside: str, *, base_mode: int = 0o755) -> Iterator[tuple[Path, Path]]:
    """(base, closed) for the block: a new folder under /tmp (mode `base_mode`) holding `closed/inside/`, `closed` at
    mode 0, so that another user may not enter it; all removed after. Not pytest's tmp_path: for root's tests that is
    a folder only root may enter, and the checks run as another user (`as_another_user`)."""
    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    closed = base / "closed"
    try:
        base.chmod(base_mode)
        (closed / inside).mkdir(parents=True)
        closed.chmod(0o000)
        yield base, closed
    finally:
        if closed.exists():
            closed.chmod(0o755)
        shutil.rmtree(base)
