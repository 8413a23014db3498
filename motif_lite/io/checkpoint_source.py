"""Find a checkpoint folder: a local path, the Hugging Face cache, or a download (`find_checkpoint`).

A local folder is checked for the files a request needs (missing ones, shards an interrupted download left out,
Git LFS pointers) and never downloaded into; a Hub repo id is looked up in the cache, then downloaded. What cannot
be had is raised as one `MissingFilesError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from huggingface_hub import snapshot_download

from motif_lite.choices import MOTIF_REPO
from motif_lite.errors import (
    LFS_POINTER_START,
    CheckpointError,
    LFSPointerError,
    MotifLiteError,
    is_lfs_pointer,
    listed,
)
from motif_lite.io.copied_links import dangling_links_note, refuse_link_texts
from motif_lite.io.gguf_source import gguf_address_problem, is_gguf_repo
from motif_lite.io.hub import (
    HUB_ERRORS,
    DownloadPlan,
    HubAccess,
    cached_snapshot,
    cached_spelling,
    is_repo_id,
    local_dir_for,
    model_address_problem,
    quiet_hub,
    refuse_unknown_repo,
    revision_problem,
    start_download,
)
from motif_lite.io.missing_report import MissingFiles, MissingFilesError
from motif_lite.io.path_fixes import (
    GGUF_REPO_AS_MODEL,
    close_checkpoint,
    expanded_as,
    file_fix,
    file_hint,
    refuse_non_checkpoint_folder,
)
from motif_lite.paths import user_path, windows_path_problem


def missing_patterns(root: Path | None, patterns: Sequence[str]) -> list[str]:
    """The patterns that match no file under `root` (all of them when there is no root)."""
    return [p for p in patterns if root is None or not any(f.is_file() for f in root.glob(p))]


def missing_files(root: Path, required: Sequence[str]) -> list[str]:
    """The `required` patterns that match no file under `root`, then the shards that the safetensors index of a
    required weights folder names but that are not there (an interrupted download), relative to `root`."""
    from motif_lite.weights.safetensors_files import weight_files  # safetensors: only for a local folder

    missing = missing_patterns(root, required)
    folders = dict.fromkeys(Path(p).parent for p in required if ".safetensors" in p)
    for folder in folders:
        try:
            files, index = weight_files(root / folder)
        except CheckpointError:
            continue  # an unreadable index: the weights check names it, with its own fix
        if index is not None:
            missing += [file.relative_to(root).as_posix() for file in files if not file.is_file()]
    return missing


def find_checkpoint(
    source: str | Path, required: Sequence[str] = (), download: Sequence[str] = (), hub: HubAccess | None = None
) -> Path:
    """A checkpoint folder for a local path or a Hub repo id, holding a file for every `required` pattern.

    A local folder is used as is. A repo id: its cached snapshot when that holds every required pattern, else a
    download of the `download` patterns (which should cover the required ones; e.g. `vae/*`). Raises
    `MissingFilesError` (what is missing and how to get it) or `CheckpointError` (a path that is not a folder).
    """
    hub = hub or HubAccess()
    text = str(source)
    path = user_path(text)
    if path.is_dir():
        refuse_link_texts(path)  # before the missing files: those are present, but hold a link's target
        missing = missing_files(path, required)
        if missing:
            refuse_non_checkpoint_folder(text)
            note = dangling_links_note(path) or ""  # files `ls` shows that cannot be read: not to be downloaded
            item = MissingFiles(MOTIF_REPO, tuple(missing), covering(missing, download), text, note, in_folder=True)
            raise MissingFilesError([item])
        refuse_lfs_pointers(path, required)
        return path
    if path.exists():
        raise CheckpointError(f"{text} is a file; expected a checkpoint directory (or a Hub repo id){file_hint(text)}")
    if (revision := revision_problem(text)) is not None:
        raise CheckpointError("{}: {}; {}".format(text, *revision))
    if (address := model_address_problem(text)) is not None:
        raise CheckpointError("{}: {}; {}".format(text, *address))
    if (gguf := gguf_address_problem(text)) is not None:  # a .gguf's address: where it goes, and how
        raise CheckpointError(f"{text}: a GGUF file on the Hub, not a checkpoint; it goes to --gguf: {gguf[1]}")
    if (windows := windows_path_problem(text)) is not None:
        raise CheckpointError(f"checkpoint folder {windows}")
    if path.suffix.lower() == ".gguf":  # stable-diffusion.cpp's `-m model.gguf` (one that is there: a file, above)
        raise CheckpointError(
            f"no such checkpoint directory: {text}{expanded_as(text)}; a .gguf file goes after --gguf, not -m: "
            f"{file_fix(text)}"
        )
    if not is_repo_id(text):
        meant = close_checkpoint(text)
        typo = f"; did you mean -m {meant}?" if meant else ""
        raise CheckpointError(f"no such checkpoint directory: {text}{expanded_as(text)}{typo}")
    if is_gguf_repo(text):  # before any lookup: nothing of a checkpoint is there to download
        raise CheckpointError(f"{text} {GGUF_REPO_AS_MODEL[0]}; {GGUF_REPO_AS_MODEL[1]}")
    text = cached_spelling(text)
    cached = cached_snapshot(text)
    if cached is not None and not missing_files(cached, required):
        return cached
    include = tuple(dict.fromkeys([*download, *_uncovered(required, download)]))

    def unavailable(reason: str) -> MissingFilesError:
        absent = missing_patterns(cached, include)
        if cached is not None:  # a cache holding part of a pattern (`vae/*`): the files it lacks, by name
            absent += _uncovered(missing_files(cached, required), absent)
        return MissingFilesError([MissingFiles(text, tuple(absent), include, local_dir_for(text), reason)])

    if not hub.online:
        raise unavailable(hub.offline_reason or "downloads are off")
    try:
        plan = DownloadPlan.of(text, hub.file_sizes(text), include, cached)
        start_download(plan, hub.before_download, hub.later.values())
        with quiet_hub():
            root = Path(snapshot_download(text, allow_patterns=list(include) or None))
    except MotifLiteError:  # no room for it, or `before_download` stopped it: said as it is, not as a failed download
        raise
    except HUB_ERRORS as exc:
        refuse_unknown_repo(exc, text, "-m")
        raise unavailable(hub.failed("download", exc, text)) from exc
    still = missing_files(root, required)
    if still:
        reason = f"{text} has no files matching {', '.join(still)}"
        raise MissingFilesError([MissingFiles(text, tuple(still), include, local_dir_for(text), reason)])
    return root


def lfs_pointers(root: Path, patterns: Sequence[str]) -> list[str]:
    """The files matching `patterns` under `root` that are Git LFS pointers (a clone made without git-lfs), relative
    to `root`; only small files are opened."""
    found = {f for p in patterns for f in root.glob(p) if f.is_file() and f.stat().st_size < 1024}
    pointers = []
    for file in sorted(found):
        with open(file, "rb") as f:
            if is_lfs_pointer(f.read(len(LFS_POINTER_START))):
                pointers.append(file.relative_to(root).as_posix())
    return pointers


def refuse_lfs_pointers(root: Path, required: Sequence[str]) -> None:
    """An `LFSPointerError` naming the `required` files of a local folder that are Git LFS pointers, before any of
    them is read (the tokenizer's would fail as bad JSON, the weights' as a bad header); nothing otherwise."""
    pointers = lfs_pointers(root, required)
    if len(pointers) == 1:
        raise LFSPointerError(root, f"{pointers[0]} is a Git LFS pointer, not the file itself")
    if pointers:
        raise LFSPointerError(root, f"{listed(pointers, 4)} are Git LFS pointers, not the files themselves")


def covering(files: Sequence[str], download: Sequence[str]) -> tuple[str, ...]:
    """The download patterns that fetch `files` (e.g. `vae/*` for a missing VAE file), plus any file none covers."""
    patterns = [d for d in download if any(fnmatchcase(f, d) for f in files)]
    return tuple(dict.fromkeys([*patterns, *_uncovered(files, download)]))


def _uncovered(files: Sequence[str], download: Sequence[str]) -> list[str]:
    return [f for f in files if not any(fnmatchcase(f, d) for d in download)]
