"""motif-lite's folder in the user's cache: `$XDG_CACHE_HOME/motif-lite`, else `~/.cache/motif-lite` (on Windows
too, as Hugging Face's cache). What lives there can be deleted at any time; it is made again when needed.

A container often runs as a user with no home: an odd UID (`docker run -u 12345`, OpenShift) that /etc/passwd
lacks, with HOME unset. There the folder is `motif-lite-cache-UID` in the temporary directory, which goes with the
container: set XDG_CACHE_HOME to a mounted volume to keep it."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from motif_lite.errors import MotifLiteError
from motif_lite.paths import user_path


def user_cache_folder(environ: Mapping[str, str] = os.environ, uid: int | None = None) -> Path:
    """The folder for `environ` and the user `uid` (this process's when None)."""
    if environ.get("XDG_CACHE_HOME"):
        return user_path(environ["XDG_CACHE_HOME"]) / "motif-lite"
    uid = os.getuid() if uid is None and hasattr(os, "getuid") else uid
    home = _home(environ, uid)
    if home is not None and _can_write(home / ".cache" / "motif-lite"):
        return home / ".cache" / "motif-lite"
    return private_temp_folder(f"motif-lite-cache-{uid}", "set XDG_CACHE_HOME to a folder of yours")


def private_temp_folder(name: str, fix: str) -> Path:
    """The folder `name` in the temporary directory, made for this user alone (mode 0o700). The name is
    predictable, so on a shared machine another user could make it first, or a link by that name, and read or
    swap what is kept there: such a folder is refused (MotifLiteError, its message ending with `fix`). One that
    cannot be made is returned as it is: its users say so as for any folder they cannot write."""
    folder = Path(tempfile.gettempdir()) / name
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return folder
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise MotifLiteError(f"{folder} is not a folder of this user (another user's, or a link): remove it, or {fix}")
    return folder


def _can_write(folder: Path) -> bool:
    """Whether this user could make `folder`: write to it, or to the nearest folder above it that exists. A folder
    on the way this user may not enter (another user's home left in HOME, as `su -m` or `sudo -E` leave it)
    makes that folder's `exists` raise PermissionError: no folder there can be written."""
    try:
        existing = next((f for f in (folder, *folder.parents) if f.exists()), None)
    except OSError:
        return False
    return existing is not None and os.access(existing, os.W_OK | os.X_OK)


def _home(environ: Mapping[str, str], uid: int | None) -> Path | None:
    """HOME, else the user's home in the password database (as Python's `Path.home()`, which raises a bare
    RuntimeError where neither has one); None then."""
    if environ.get("HOME"):
        return Path(environ["HOME"])
    if uid is None:  # Windows: no UIDs; pathlib reads its own variables
        return Path.home()
    import pwd  # POSIX only

    try:
        return Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:  # a UID /etc/passwd lacks
        return None
