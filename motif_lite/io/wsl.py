"""What differs under WSL2 (Linux in a virtual machine on Windows), and the advice each difference needs.

    is_wsl()                                 # "microsoft" in /proc/sys/kernel/osrelease
    windows_drive_note([gguf, vae_file])     # files on /mnt/c etc.: slow to read, the copy command
    libcuda_fix(str(error))                  # Triton cannot find the driver's libcuda.so: where it is
    wsl_driver_problem()                     # no GPU under WSL: the Windows driver missing, or a Linux one inside
    windows_gpu_driver()                     # on Windows or WSL2: the driver spills into system memory

- The Windows drives appear under /mnt/c, /mnt/d, ... through a 9p file server ("drvfs"): reading gigabytes from
  there, and memory-mapping them, is many times slower than from the VM's own disk (the Linux home).
- The VM gets part of the Windows machine's memory (by default half), set in %UserProfile%\\.wslconfig.
- CUDA on WSL limits page-locked (pinned) host memory (NVIDIA's "CUDA on WSL" user guide).
- The NVIDIA driver comes from Windows: its libcuda.so lies in /usr/lib/wsl/lib, where Triton does not always look.
  A Linux NVIDIA driver installed inside WSL hides it; so, like Windows itself, WSL2 has the driver that spills
  memory beyond the GPU into system memory (`gpu_memory.sysmem_spill_note`).

Every function takes the text of the /proc file it reads as an optional argument, so that the tests can pass a WSL
machine's contents; without it, the file is read (a file that cannot be read: not WSL, no Windows mounts). The
driver probe likewise takes the library folders it looks in.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

# POSIX quoting, not `quoted`: these commands are typed in WSL's Linux shell, never in cmd or PowerShell.
from motif_lite.shell_syntax import posix_quoted

OSRELEASE = Path("/proc/sys/kernel/osrelease")  # e.g. "5.15.167.4-microsoft-standard-WSL2"
MOUNTS = Path("/proc/mounts")
WSL_LIBCUDA = "/usr/lib/wsl/lib"  # the Windows driver's libcuda.so.1, mounted into the VM
# Where a Linux NVIDIA driver's libcuda.so lies (Ubuntu's and Fedora's packages): inside WSL it should not exist.
LINUX_LIB_FOLDERS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
# The advice wherever host memory runs short under WSL2: the VM's size is a Windows setting.
WSLCONFIG_FIX = (
    "under WSL2 the Linux VM gets only part of this machine's memory (by default half): raise it in "
    "%UserProfile%\\.wslconfig, e.g. [wsl2] memory=14GB, then run `wsl --shutdown` in Windows and reopen the shell"
)

# Where CUDA under WSL2 comes from: the Windows driver (a Linux driver inside the VM breaks it).
WSL_DRIVER_FIX = (
    "under WSL2 the GPU comes from the NVIDIA driver for Windows: install or update it in Windows, and install no "
    "Linux NVIDIA driver inside WSL (NVIDIA's CUDA on WSL guide); `nvidia-smi` in this shell should then list the GPU"
)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def is_wsl(osrelease: str | None = None) -> bool:
    """Whether this Linux runs under WSL: its kernel release names Microsoft (`osrelease`: that file's text)."""
    text = _read(OSRELEASE) if osrelease is None else osrelease
    return "microsoft" in text.lower()


def _unescaped(field: str) -> str:
    """A /proc/mounts field with its octal escapes decoded: `/mnt/my\\040drive` -> `/mnt/my drive`."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def windows_mounts(mounts: str | None = None) -> list[str]:
    """The mount points of Windows drives in a /proc/mounts text: 9p mounts of WSL's drvfs (WSL1: type drvfs).
    Other 9p mounts of WSL (its /usr/lib/wsl/drivers) are not drives and are left out."""
    text = _read(MOUNTS) if mounts is None else mounts
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point, kind, options = _unescaped(fields[1]), fields[2], fields[3]
        if kind == "drvfs" or (kind == "9p" and "aname=drvfs" in options):
            found.append(point)
    return found


def windows_mount_of(path: Path, mount_points: Iterable[str]) -> str | None:
    """The Windows drive's mount point that holds `path` (already resolved), or None."""
    holding = [point for point in mount_points if path == Path(point) or Path(point) in path.parents]
    return max(holding, key=len, default=None)


def on_windows_drives(paths: Iterable[Path], mounts: str | None = None) -> list[Path]:
    """The paths (each as given) whose file, links followed, lies on a Windows drive. Empty outside WSL."""
    points = windows_mounts(mounts)
    if not points:
        return []
    return [path for path in paths if windows_mount_of(Path(os.path.realpath(path)), points) is not None]


def copy_command(path: Path) -> str:
    """The command that copies a weight file, or a checkpoint folder (links followed: a Hugging Face cache's
    snapshot holds links to its blobs), into ~/models/."""
    if not path.is_dir():
        return f"cp {posix_quoted(str(path))} ~/models/"
    name = path.name
    if path.parent.name == "snapshots":  # .../models--Motif-Technologies--Motif-Video-2B/snapshots/<commit>
        name = path.parent.parent.name.rpartition("--")[2] or name
    return f"cp -rL {posix_quoted(str(path))} ~/models/{posix_quoted(name)}"


def windows_drive_note(paths: Iterable[Path], mounts: str | None = None) -> str | None:
    """One note for the weight files (or checkpoint folders) in `paths` that lie on a Windows drive: which they
    are, why that is slow and the commands that copy them under the Linux home; None when none of them does."""
    slow = list(dict.fromkeys(on_windows_drives(paths, mounts)))
    if not slow:
        return None
    one = len(slow) == 1
    return (
        f"{', '.join(str(path) for path in slow)} {'is' if one else 'are'} on a Windows drive, which WSL2 reads many "
        f"times slower than its own disk (loading can take minutes longer). Copy {'it' if one else 'them'} under "
        "your Linux home once: mkdir -p ~/models; "
        + "; ".join(copy_command(path) for path in slow)
        + f"; then pass the {'copy' if one else 'copies'} in place of the original{'' if one else 's'} (a checkpoint "
        "folder with -m)"
    )


def libcuda_fix(error: str, osrelease: str | None = None) -> str | None:
    """Under WSL, the fix for a Triton error that says it cannot find the driver's libcuda.so (Triton's "libcuda.so
    cannot found!", or the linker's "cannot find -lcuda"); None for any other error or outside WSL."""
    if "libcuda" not in error and "-lcuda" not in error:
        return None
    if not is_wsl(osrelease):
        return None
    return (
        f"under WSL2 the driver's libcuda.so is in {WSL_LIBCUDA}: `export TRITON_LIBCUDA_PATH={WSL_LIBCUDA}` "
        "before motif-lite (or add it to ~/.bashrc) lets Triton find it"
    )


def windows_gpu_driver(platform: str = sys.platform, osrelease: str | None = None) -> bool:
    """Whether the GPU's driver is Windows' NVIDIA driver: on Windows itself (`platform`, as `sys.platform` says
    it), or under WSL2, which maps that driver into the VM."""
    return platform == "win32" or is_wsl(osrelease)


def linux_libcudas(folders: Iterable[str | Path] | None = None, wsl_lib: str | Path | None = None) -> list[Path]:
    """The libcuda.so files of a Linux NVIDIA driver in `folders` (default `LINUX_LIB_FOLDERS`); links into
    `wsl_lib` (default `WSL_LIBCUDA`; a fix some guides give) are the Windows driver's and are left out."""
    wsl_lib = WSL_LIBCUDA if wsl_lib is None else wsl_lib
    found = []
    for folder in map(Path, LINUX_LIB_FOLDERS if folders is None else folders):
        for library in sorted(folder.glob("libcuda.so*")):
            if Path(wsl_lib).resolve() not in library.resolve().parents:
                found.append(library)
    return found


def wsl_driver_problem(wsl_lib: str | Path | None = None, linux_folders: Iterable[str | Path] | None = None) -> str:
    """Under WSL2, when torch finds no GPU: what the library folders say is wrong, and the fix. No libcuda.so in
    `wsl_lib` (default `WSL_LIBCUDA`): the Windows driver is missing or too old; a Linux driver's libcuda in
    `linux_folders` (default `LINUX_LIB_FOLDERS`): it hides the Windows one; neither: where the driver should come
    from (`WSL_DRIVER_FIX`). The defaults are read at each call, as `OSRELEASE` and `MOUNTS` are."""
    wsl_lib = WSL_LIBCUDA if wsl_lib is None else wsl_lib
    if not any(Path(wsl_lib).glob("libcuda.so*")):
        return (
            f"{wsl_lib} has no libcuda.so, which WSL2 maps in from the NVIDIA driver for Windows: that driver is "
            "missing or too old. Install the current NVIDIA driver in Windows, run `wsl --shutdown` in PowerShell "
            "and open the WSL shell again"
        )
    if linux := linux_libcudas(linux_folders, wsl_lib):
        return (
            f"a Linux NVIDIA driver is installed inside WSL ({linux[0]}), which hides the Windows driver's libcuda in "
            f"{wsl_lib} (NVIDIA's CUDA on WSL guide: install no Linux driver inside WSL). `dpkg -S {linux[0]}` names "
            "its package: remove that package, then open the WSL shell again"
        )
    return WSL_DRIVER_FIX
