"""Running a check as another user than the tests' own: root, whom no permission bits stop, cannot see a folder it
may not enter, so such checks run as UID 65534 (nobody) in a forked child."""

from __future__ import annotations

import contextlib
import importlib
import os
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
