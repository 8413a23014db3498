"""A checkpoint folder whose files are symbolic links to nothing: a Hugging Face cache snapshot copied on its own.

A cache's `snapshots/COMMIT/` holds links into the repo's `blobs/` folder. Copied without it (`cp -r` of the
snapshot, `rsync -a`, an archive that keeps links), every file is still listed by `ls` but none can be read: a run
and `motif-lite check` called them "missing" and offered a download, which an offline machine cannot do, while the
fix is to copy again with the links followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from motif_lite.shell_syntax import quoted


def dangling_links(root: Path) -> list[Path]:
    """The symbolic links under `root` whose target is not there, sorted; none where `root` cannot be walked."""
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name != ".cache"]  # `hf download --local-dir`'s own records
        for name in files + folders:
            path = Path(folder) / name
            if path.is_symlink() and not path.exists():
                found.append(path)
    return sorted(found)


def dangling_links_problem(root: Path) -> tuple[str, str] | None:
    """What the dangling links under `root` are, and how to copy the folder again; None where there are none."""
    links = dangling_links(root)
    if not links:
        return None
    first = links[0]
    example = f"{first.relative_to(root).as_posix()} -> {os.readlink(first)}"
    if len(links) == 1:
        count = "1 file there is a symbolic link to a file that is not there"
    else:
        count = f"{len(links)} files there are symbolic links to files that are not there"
    what = f"{count} ({example}): a Hugging Face cache snapshot copied without the blobs/ folder its links point into"
    fix = (
        f"copy it again with the links followed (cp -rL SNAPSHOT {quoted(str(root))}, or rsync -rL), or copy the "
        "whole models--... folder of the cache, blobs/ with it"
    )
    return what, fix


def dangling_links_note(root: Path) -> str | None:
    """`dangling_links_problem` in one sentence, for a run's error; None where there are no dangling links."""
    problem = dangling_links_problem(root)
    return None if problem is None else "{}; {}".format(*problem)
