"""A checkpoint folder that is a Hugging Face cache snapshot copied without the files its links point to.

A cache's `snapshots/COMMIT/` holds links into the repo's `blobs/` folder. Copied without it (`cp -r` of the
snapshot, `rsync -a`, an archive that keeps links), every file is still listed by `ls` but none can be read: a run
and `motif-lite check` called them "missing" and offered a download, which an offline machine cannot do, while the
fix is to copy again with the links followed. Copied by a tool that writes a link as a text file of its target (a
zip made on Windows, git with core.symlinks off), every config was "not valid JSON", with a download as its fix.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from motif_lite.errors import CheckpointError
from motif_lite.shell_syntax import on_windows, one_after_another, quoted


def _entries(root: Path) -> list[Path]:
    """What the official layout can hold: `root`'s entries and those of its folders (`vae/config.json`), not
    deeper (a -m that names a large folder by mistake is not walked whole), nor `hf download`'s `.cache/`."""
    try:
        top = sorted(root.iterdir())
    except OSError:
        return []
    entries = list(top)
    for folder in top:
        if folder.name != ".cache" and not folder.is_symlink() and folder.is_dir():
            with contextlib.suppress(OSError):
                entries += sorted(folder.iterdir())
    return entries


def dangling_links(root: Path) -> list[Path]:
    """The symbolic links in `root` and its folders into a cache's blobs/ folder whose target is not there, sorted.
    A broken link of any other kind (a notes file on a share no longer mounted) is none of a cache snapshot's: a
    complete checkpoint folder holding one was called unusable by `motif-lite check`."""
    return sorted(path for path in _entries(root) if path.is_symlink() and not path.exists() and _into_blobs(path))


def _into_blobs(link: Path) -> bool:
    try:
        return "blobs" in Path(os.readlink(link)).parts
    except OSError:
        return False


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
    fix = f"{_copy_again(root)}, or copy the whole models--... folder of the cache, blobs/ with it"
    return what, fix


def dangling_links_note(root: Path) -> str | None:
    """`dangling_links_problem` in one sentence, for a run's error; None where there are no dangling links."""
    problem = dangling_links_problem(root)
    return None if problem is None else "{}; {}".format(*problem)


# What a symbolic link of a cache snapshot becomes as a plain file (a zip made on Windows, git with core.symlinks
# off, a copy tool that writes links as text): its target, `../../blobs/` and the file's SHA-1 or SHA-256.
_LINK_TEXT = re.compile(rb"(\.\./)+blobs/[0-9a-f]{40}([0-9a-f]{24})?\s*")


def link_texts(root: Path) -> list[Path]:
    """The small files in `root` and its folders that hold nothing but a cache snapshot's link target, sorted."""
    found = []
    for path in _entries(root):
        with contextlib.suppress(OSError):
            small = not path.is_symlink() and path.is_file() and path.stat().st_size < 200
            if small and _LINK_TEXT.fullmatch(path.read_bytes()):
                found.append(path)
    return sorted(found)


def link_texts_problem(root: Path) -> tuple[str, str] | None:
    """What the files under `root` that hold a link's target in place of its file are, and how to copy the folder
    again; None where there are none."""
    texts = link_texts(root)
    if not texts:
        return None
    first = texts[0]
    example = f"{first.relative_to(root).as_posix()} holds {first.read_bytes().decode().strip()}"
    count = "1 file there holds" if len(texts) == 1 else f"{len(texts)} files there hold"
    what = (
        f"{count} the target of a symbolic link, not its data ({example}): a Hugging Face cache snapshot copied by "
        "a tool that wrote its links as text (a zip made on Windows, git with core.symlinks off)"
    )
    return what, _copy_again(root)


def _copy_again(root: Path) -> str:
    """How to copy a snapshot again, with its links followed, in place of the broken copy `root`: removed first, as
    `cp -rL SNAPSHOT ROOT` onto an existing ROOT copies the snapshot into it (ROOT/COMMIT/...) and leaves the broken
    files, and `cp` refuses to write through a dangling link. On Windows robocopy's, which follows links unless told
    `/SL` (PowerShell's `cp` is Copy-Item, which refuses `-rL`)."""
    folder = quoted(str(root))
    if on_windows():
        copy = one_after_another(f"Remove-Item -Recurse -LiteralPath {folder}", f"robocopy SNAPSHOT {folder} /E")
    else:
        copy = one_after_another(f"rm -r {folder}", f"cp -rL SNAPSHOT {folder}")
    return f"copy it again with the links followed, in place of this copy ({copy})"


class CopiedLinksError(CheckpointError):
    """A checkpoint folder whose files are a cache snapshot's links written as text; `problem` and `fix` said apart
    for `motif-lite check`."""

    def __init__(self, root: Path, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{root}: {problem}; {fix}")


def refuse_link_texts(root: Path) -> None:
    """A `CopiedLinksError` where files under `root` hold a link's target in place of its data, before any is read
    (a config would fail as bad JSON, with a download as its fix); nothing otherwise."""
    problem = link_texts_problem(root)
    if problem is not None:
        raise CopiedLinksError(root, *problem)
