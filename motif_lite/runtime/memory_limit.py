"""The memory limit a container (or a Slurm job, a systemd unit) puts on this process: its control group's.

/proc/meminfo counts the whole machine, also inside a container: a 16 GiB container on a 256 GiB host reads
MemAvailable as about 256 GiB, and a plan made on that is killed part way by the out-of-memory killer. The limit
is in the cgroup filesystem, in one of two layouts:

- cgroup v2 (Docker, Podman and Kubernetes on current distributions): /proc/self/cgroup has the line `0::PATH`;
  `memory.max` ("max": none) and `memory.current` in PATH's folder and each folder above it, under
  /sys/fs/cgroup. Inside a container PATH is usually `/` (its own cgroup namespace), so the folder is the mount
  itself; where the host's PATH is not mounted, the mount is the container's own cgroup.
- cgroup v1 (older hosts, many Slurm clusters): a line `N:...memory...:PATH`; `memory.limit_in_bytes` (a huge
  number: none) and `memory.usage_in_bytes` under /sys/fs/cgroup/memory/PATH and each folder above it; where
  those above are not visible, `hierarchical_memory_limit` in its `memory.stat` (the smallest limit of the
  folder and those above it) with the folder's own usage.

The usage counts the page cache (files read, the weights' memory maps), which the kernel drops before it kills
anything, so the inactive part of it (`inactive_file`) counts as free, as `kubectl top` and `docker stats` do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned int64; anything past 2**60 bytes (an exbibyte) is none.
_NO_LIMIT = 1 << 60


@dataclass(frozen=True)
class MemoryLimit:
    """A control group's memory limit and what its processes use now (bytes), with the version it came from."""

    limit_bytes: int
    used_bytes: int  # the usage less the page cache the kernel can drop first
    version: int  # 1 or 2

    @property
    def available_bytes(self) -> int:
        return max(0, self.limit_bytes - self.used_bytes)


def memory_limit(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> MemoryLimit | None:
    """This process's cgroup memory limit, the tightest of its cgroup and those above it; None where there is none
    (a plain machine, macOS, Windows) or it cannot be read. `root` and `proc_self_cgroup` are the files to read
    (tests point them at a fake tree)."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # "ID:CONTROLLERS:PATH"; v2 is the line "0::PATH"
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "" and (limit := _v2_limit(root, path)) is not None:
            return limit
        if "memory" in controllers.split(",") and (limit := _v1_limit(root / "memory", path)) is not None:
            return limit
    return None


def _v2_limit(root: Path, path: str) -> MemoryLimit | None:
    """The tightest `memory.max` of the process's folder and those above it, with that folder's usage."""
    return _tightest(root, path, ("memory.max", "memory.current", "inactive_file"), version=2)


def _v1_limit(root: Path, path: str) -> MemoryLimit | None:
    """As `_v2_limit`, with v1's file names. Each limit is set against its own folder's usage, which counts the
    siblings sharing it (the other steps and ranks of a Slurm job); the leaf's usage alone would miss them."""
    tightest = _tightest(root, path, ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"), 1)
    if tightest is not None:
        return tightest
    # Folders above not visible (a container's mount): the hierarchical limit is the best left, with our usage.
    folder = _own_folder(root, path)
    limit = _stat(folder, "hierarchical_memory_limit")
    used = _read_int(folder / "memory.usage_in_bytes")
    if not limit or limit >= _NO_LIMIT or used is None:
        return None
    return MemoryLimit(limit, max(0, used - _stat(folder, "total_inactive_file")), version=1)


def _tightest(root: Path, path: str, names: tuple[str, str, str], version: int) -> MemoryLimit | None:
    """The limit of the process's folder or one above it that leaves the least available, each with its own
    folder's usage less its inactive file pages; `names` are the limit file, usage file and memory.stat key."""
    limit_file, usage_file, inactive_key = names
    folder: Path | None = _own_folder(root, path)
    tightest: MemoryLimit | None = None
    while folder is not None:
        limit = _read_int(folder / limit_file)  # None: "max", or no such file (the root has none)
        used = _read_int(folder / usage_file)
        if limit is not None and limit < _NO_LIMIT and used is not None:
            candidate = MemoryLimit(limit, max(0, used - _stat(folder, inactive_key)), version=version)
            if tightest is None or candidate.available_bytes < tightest.available_bytes:
                tightest = candidate
        folder = folder.parent if folder != root else None
    return tightest


def _own_folder(root: Path, path: str) -> Path:
    """The folder of the process's cgroup, or the mount itself where that path is not mounted (a container that
    sees the host's path but has its own cgroup mounted at the root)."""
    folder = root / path.lstrip("/")
    return folder if folder.is_dir() else root


def _read_int(file: Path) -> int | None:
    try:
        return int(file.read_text().strip())
    except (OSError, ValueError):  # "max", a missing file, a kernel without the controller
        return None


def _stat(folder: Path, name: str) -> int:
    """One count of the folder's memory.stat; 0 where it is missing."""
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0
