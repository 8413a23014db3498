"""Find checkpoints and GGUF files: a local path, the Hugging Face cache, or a download.

A Hub repo id is looked up in the local HF cache first (no network); only files that are not there are downloaded
(never with `HF_HUB_OFFLINE=1`). One `HubAccess` serves a whole request: after the first failed Hub call it stops
trying, so an unreachable Hub costs one fast failure rather than one retry loop per file. What could not be found
is reported as `MissingFiles`, and `MissingFilesError` turns every missing piece of a request into one message: what
is missing, the `hf download` commands to fetch it on a connected machine, and the `motif-lite run` command to
type afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import filter_repo_objects

from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import LFS_POINTER_START, CheckpointError, LFSPointerError, is_lfs_pointer, listed
from motif_lite.paths import user_path
from motif_lite.units import file_size

__all__ = [
    "GGUF_REPO",
    "MOTIF_REPO",
    "HubAccess",
    "MissingFiles",
    "MissingFilesError",
    "find_checkpoint",
    "find_gguf",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_VARIANT = re.compile(r"^[A-Za-z0-9_]+$")  # Q4_K_M, Q8_0, BF16, ...
# huggingface_hub reports a missing network or cache entry through errors of several libraries (its own,
# OSError, and its HTTP client's, which changed between versions); all mean "not available" to us.
_HUB_ERRORS = (Exception,)


OFFLINE_SET = "HF_HUB_OFFLINE=1 is set"


class HubAccess:
    """How one request may use the Hub: downloads allowed (`download`) until a Hub call fails or when
    `HF_HUB_OFFLINE=1`; `offline_reason` then says why every later lookup stays in the cache."""

    def __init__(self, download: bool = True) -> None:
        self.download = download
        self.offline_reason: str | None = OFFLINE_SET if constants.HF_HUB_OFFLINE else None
        self._listings: dict[str, dict[str, int] | Exception] = {}

    def file_sizes(self, repo: str) -> dict[str, int]:
        """The files of `repo` on the Hub and their sizes in bytes: one listing per repo and request (its failure,
        too, is raised again rather than asked again)."""
        if repo not in self._listings:
            try:
                with quiet_hub():
                    info = HfApi().model_info(repo, files_metadata=True)
                self._listings[repo] = {s.rfilename: s.size or 0 for s in info.siblings or ()}
            except _HUB_ERRORS as exc:
                self._listings[repo] = exc
        listing = self._listings[repo]
        if isinstance(listing, Exception):
            raise listing
        return listing

    @property
    def online(self) -> bool:
        return self.download and self.offline_reason is None

    def failed(self, what: str, exc: BaseException, repo: str) -> str:
        """Record a failed Hub call (no further calls in this request) and return its reason, in words: the cause
        and what to do where the error tells one (`failure_advice`)."""
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        self.offline_reason = "not tried: an earlier Hub call of this request failed"
        reason = f"{what} failed: {type(exc).__name__}: {first_line}".rstrip(": ")
        advice = failure_advice(exc, repo)
        return f"{reason}; {advice}" if advice else reason


def failure_advice(exc: BaseException, repo: str) -> str | None:
    """What to do about a failed Hub call: a gated repo, a refused token, a full disk, no connection; None for
    anything else (its own message is all there is)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    login = "log in with `hf auth login` or set HF_TOKEN"
    if isinstance(exc, GatedRepoError):
        return f"{repo} is gated: accept its conditions at {constants.ENDPOINT}/{repo}, then {login}"
    if status == 401:
        return f"the Hub refused the token: {login} with a valid token"
    if status == 403:
        return f"the token may not read {repo}: {login} with a token that may"
    if _read_only(exc):
        return (
            f"the Hugging Face cache ({constants.HF_HUB_CACHE}) cannot be written here (a shared cache is often "
            "read-only): download the missing files into a folder of yours with the command below, or set "
            "HF_HUB_CACHE to a cache of your own (where everything downloads again)"
        )
    if _disk_full(exc):
        return (
            f"the disk of the Hugging Face cache ({constants.HF_HUB_CACHE}) is full: free space there, or move the "
            "cache to a bigger disk (HF_HUB_CACHE=/big/disk/hf-cache, or HF_HOME), then run again: the download "
            "goes on where it stopped"
        )
    if _no_connection(exc):
        slow = ", or HF_HUB_DOWNLOAD_TIMEOUT=60 for a slow link" if _is_timeout(exc) else ""
        mirror = "check the mirror HF_ENDPOINT names" if "HF_ENDPOINT" in os.environ else "set HF_ENDPOINT to a mirror"
        return (
            f"cannot reach {constants.ENDPOINT}: check the network (and HTTPS_PROXY behind a proxy), or {mirror}"
            f"{slow}; run again to go on: what was downloaded stays in the cache"
        )
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from (huggingface_hub wraps its HTTP client's errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _disk_full(exc: BaseException) -> bool:
    return any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _causes(exc))


def _read_only(exc: BaseException) -> bool:
    """A cache this user may not write (permissions, a read-only mount): huggingface_hub fails on its lock file."""
    return any(isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) for e in _causes(exc))


def _is_timeout(exc: BaseException) -> bool:
    return any("Timeout" in cls.__name__ for e in _causes(exc) for cls in type(e).__mro__)


def _no_connection(exc: BaseException) -> bool:
    """A network failure: huggingface_hub's "cannot reach the Hub and nothing cached", or its HTTP client's
    connection errors and timeouts (requests' and httpx's names differ, hence the names)."""
    kinds = (LocalEntryNotFoundError, ConnectionError, TimeoutError)
    names = ("Connect", "Timeout", "NetworkError", "ProxyError")
    return any(
        isinstance(e, kinds) or any(n in cls.__name__ for n in names for cls in type(e).__mro__) for e in _causes(exc)
    )


def refuse_unknown_repo(exc: BaseException, repo: str, flag: str) -> None:
    """The `CheckpointError` for a repo the Hub does not know (a typo in `flag`'s value, or a private repo without
    a token): an `hf download` elsewhere would fail too, so no download command is printed. Nothing for any other
    error (a gated repo is one the Hub knows)."""
    if isinstance(exc, RepositoryNotFoundError) and not isinstance(exc, GatedRepoError):
        raise CheckpointError(
            f"{repo} ({flag}): no such model repo on {constants.ENDPOINT}: check its spelling; a private repo needs "
            "a token (`hf auth login`, or HF_TOKEN)"
        ) from None


@dataclass(frozen=True)
class MissingFiles:
    """Files of a Hub repo that a request needs and cannot have: not in the local checkpoint folder (`in_folder`),
    or, for a repo id, neither in the cache nor downloadable (`reason` says why).

    missing: the patterns (or files) not found; include: what the download command fetches (for a repo id,
    everything the request reads from it, so that the downloaded folder is complete); local_dir: where the command
    puts them.
    """

    repo: str
    missing: tuple[str, ...]
    include: tuple[str, ...]
    local_dir: str
    reason: str
    in_folder: bool = False  # missing from a local checkpoint folder (else: from the cache of a Hub repo id)

    def describe(self) -> str:
        if self.in_folder:
            return f"incomplete checkpoint {self.local_dir}: missing {', '.join(self.missing)}"
        return f"{self.repo}: {', '.join(self.missing)} ({self.reason})"

    def command(self) -> str:
        includes = [f"--include {shlex.quote(p)}" for p in self.include]
        return " ".join(["hf download", self.repo, *includes, "--local-dir", shlex.quote(self.local_dir)])


@dataclass(eq=False)
class MissingFilesError(CheckpointError):
    """Everything a request needs that is not on this machine, with the commands that fetch it.

    `problems` are other errors of the same request (e.g. a bad `--gguf` path), listed first so that one run
    reports them all. `run_command` is the command to type once the files are downloaded; the CLI sets it to the
    user's own command line with the new local paths (`replacements`).
    """

    missing: list[MissingFiles]
    problems: list[str] = field(default_factory=list)
    run_command: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def replacements(self) -> dict[str, str]:
        """{"model": local folder, "gguf": local folder} for the repos whose files are missing."""
        out = {}
        for item in self.missing:
            out["gguf" if item.repo == GGUF_REPO else "model"] = item.local_dir
        return out

    def default_run_command(self) -> str:
        parts = ["motif-lite run"]
        if "model" in self.replacements:
            parts.append(f"-m {shlex.quote(self.replacements['model'])}")
        if "gguf" in self.replacements:
            parts.append(f"--gguf {shlex.quote(self.replacements['gguf'])}")
        return " ".join([*parts, '-p "..."'])

    def __str__(self) -> str:
        lines = list(self.problems)
        if self.missing:
            hub = [item for item in self.missing if not item.in_folder]
            lines += [item.describe() for item in self.missing if item.in_folder]
            if hub:
                lines.append(f"missing files, not in the Hugging Face cache ({constants.HF_HUB_CACHE}):")
                lines += [f"  {item.describe()}" for item in hub]
            if any(item.reason == OFFLINE_SET for item in hub):  # e.g. set by a notebook, on a connected machine
                lines.append("With a network here, unset HF_HUB_OFFLINE and run again: they then download themselves.")
            lines.append("Download them (on a machine with network access if this one has none):")
            lines += [f"  {item.command()}" for item in self.missing]
            lines.append("(older huggingface_hub: `huggingface-cli download` takes the same arguments), then run:")
            lines.append(f"  {self.run_command or self.default_run_command()}")
        return "\n".join(lines)


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's log lines (retry notices, warnings) during our calls: we report failures
    ourselves, in one message. Download progress bars stay."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def revision_problem(text: str) -> tuple[str, str] | None:
    """For `owner/name@revision` (a branch, tag or commit of a Hub repo, as some tools write it): (the problem: -m
    takes a repo's main revision only, the fix: download that revision into a folder); None for anything else."""
    repo, at, revision = text.partition("@")
    if not at or not revision or not is_repo_id(repo) or user_path(text).exists():
        return None
    local = local_dir_for(repo)
    command = f"hf download {repo} --revision {shlex.quote(revision)} --local-dir {local}"
    fix = f"download {revision!r} into a folder: {command}, then -m {local}"
    return "-m takes a Hub repo's main revision only", fix


def is_repo_id(text: str) -> bool:
    """Whether `text` reads as a Hub repo id (`owner/name`)."""
    return bool(_REPO_ID.match(text))


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of `repo_id`'s main revision (the HF cache layout), or None; no network."""
    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = folder / "refs" / "main"
    if not ref.is_file():
        return None
    snapshot = folder / "snapshots" / ref.read_text().strip()
    return snapshot if snapshot.is_dir() else None


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


def expanded_as(path: str) -> str:
    """ " (that is /home/me/x)" for a path whose ~ was expanded (a quoted ~ reaches us as it is), so that an error
    shows where it looked; "" otherwise."""
    expanded = str(user_path(path))
    return f" (that is {expanded})" if path.startswith("~") and not expanded.startswith("~") else ""


# -m given the GGUF repo (a variant of it goes to --gguf): the problem and its fix, shared by `run` and `check`.
GGUF_REPO_AS_MODEL = (
    "is the official GGUF repo, not a checkpoint",
    f"give a variant of it to --gguf (e.g. --gguf Q4_K_M) and leave -m out: -m stays the official checkpoint "
    f"{MOTIF_REPO}, which the configs, text encoder and VAE come from",
)


def is_gguf_repo(model: str) -> bool:
    """Whether -m names the official GGUF repo (Hub repo ids are case-insensitive)."""
    return model.lower() == GGUF_REPO.lower()


def local_dir_for(repo_id: str) -> str:
    return f"./{repo_id.split('/')[-1]}"


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
        missing = missing_files(path, required)
        if missing:
            refuse_non_checkpoint_folder(text)
            item = MissingFiles(MOTIF_REPO, tuple(missing), covering(missing, download), text, "", in_folder=True)
            raise MissingFilesError([item])
        refuse_lfs_pointers(path, required)
        return path
    if path.exists():
        raise CheckpointError(f"{text} is a file; expected a checkpoint directory (or a Hub repo id){file_hint(text)}")
    if (revision := revision_problem(text)) is not None:
        raise CheckpointError("{}: {}; {}".format(text, *revision))
    if not is_repo_id(text):
        raise CheckpointError(f"no such checkpoint directory: {text}{expanded_as(text)}")
    if is_gguf_repo(text):  # before any lookup: nothing of a checkpoint is there to download
        raise CheckpointError(f"{text} {GGUF_REPO_AS_MODEL[0]}; {GGUF_REPO_AS_MODEL[1]}")
    cached = cached_snapshot(text)
    if cached is not None and not missing_files(cached, required):
        return cached
    include = tuple(dict.fromkeys([*download, *_uncovered(required, download)]))

    def unavailable(reason: str) -> MissingFilesError:
        absent = missing_patterns(cached, include)
        return MissingFilesError([MissingFiles(text, tuple(absent), include, local_dir_for(text), reason)])

    if not hub.online:
        raise unavailable(hub.offline_reason or "downloads are off")
    try:
        start_download(DownloadPlan.of(text, hub.file_sizes(text), include, cached))
        with quiet_hub():
            root = Path(snapshot_download(text, allow_patterns=list(include) or None))
    except CheckpointError:
        raise
    except _HUB_ERRORS as exc:
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


def is_component_folder(path: Path) -> bool:
    """Whether `path` is a folder inside a checkpoint (its parent holds model_index.json) rather than one."""
    return not (path / "model_index.json").is_file() and (path.parent / "model_index.json").is_file()


def checkpoint_folders_inside(path: Path) -> list[Path]:
    """The checkpoint folders (holding model_index.json) directly inside `path`, when `path` is none itself: a
    folder of checkpoints given to -m."""
    if (path / "model_index.json").is_file():
        return []
    try:
        return sorted(child for child in path.iterdir() if (child / "model_index.json").is_file())
    except OSError:
        return []


def refuse_non_checkpoint_folder(model: str) -> None:
    """The `CheckpointError` for a local -m folder (as given: `model`) that is part of a checkpoint (e.g.
    ./Motif-Video-2B/transformer) or a folder holding checkpoint folders, naming the folder -m takes; nothing for
    any other folder."""
    path = user_path(model)
    gguf_fix = gguf_folder_fix(model)
    if gguf_fix is not None:
        raise CheckpointError(f"{model} {GGUF_FOLDER}; {gguf_fix}")
    if is_component_folder(path):
        parent = parent_as_given(model)
        raise CheckpointError(
            f"{model} is the {path.name}/ folder of the checkpoint {parent}; -m takes the checkpoint folder itself: "
            f"-m {shlex.quote(parent)}"
        )
    inside = checkpoint_folders_inside(path)
    if inside:
        names = ", ".join(child.name for child in inside)
        what = "the checkpoint folder" if len(inside) == 1 else "the checkpoint folders"
        which = "the checkpoint folder itself" if len(inside) == 1 else "one of them"
        first = shlex.quote(str(Path(model) / inside[0].name))
        raise CheckpointError(
            f"{model} is not a checkpoint folder but holds {what} {names}; -m takes {which}: -m {first}"
        )


GGUF_FOLDER = "holds GGUF files, not a checkpoint"
# What a weights file given to -m is told beside the flag that takes it.
KEEP_MODEL = "; -m stays the checkpoint folder or Hub repo id the configs come from (leave it out for the official one)"


def gguf_folder_fix(model: str) -> str | None:
    """For a local -m folder that holds .gguf files and nothing of a checkpoint (as `hf download` of the GGUF repo
    leaves it): the flag that takes them instead; None for any other folder."""
    path = user_path(model)
    if not path.is_dir() or (path / "model_index.json").is_file():
        return None
    files = gguf_files(path)
    if not files or any(child.is_dir() and not child.name.startswith(".") for child in path.iterdir()):
        return None
    if len(files) == 1:
        return f"pass it as {_gguf_flag(files[0])} {shlex.quote(model)}{KEEP_MODEL}"
    names = listed([file.name for file in files], 4)
    return f"pass one of its files ({names}) as --gguf {shlex.quote(str(Path(model) / files[0].name))}{KEEP_MODEL}"


def parent_as_given(model: str) -> str:
    """The parent folder of the path `model`, written as the user wrote it (./a/b -> ./a, not a)."""
    return os.path.dirname(model.rstrip("/\\")) or "."


def file_hint(model: str) -> str:
    """ "; " and `file_fix(model)` for a file given to -m that belongs elsewhere; "" for any other file."""
    fix = file_fix(model)
    return f"; {fix}" if fix else ""


def file_fix(model: str) -> str | None:
    """For a file given to -m: the flag that takes a weights file (stable-diffusion.cpp's `-m model.gguf`, a ComfyUI
    model file), told from its name and header as the weight-file flags tell a file given to the wrong one; the
    checkpoint folder for a file inside one (its model_index.json, a component's config.json); None otherwise."""
    path = user_path(model)
    if path.suffix.lower() == ".gguf":
        return f"pass it as {_gguf_flag(path)} {shlex.quote(model)}{KEEP_MODEL}"
    checkpoint = checkpoint_of_file(model)
    if checkpoint is not None:  # e.g. -m ./Motif-Video-2B/model_index.json, or its vae/config.json
        return f"it is a file of the checkpoint {checkpoint}: give the folder: -m {shlex.quote(checkpoint)}"
    if path.suffix.lower() != ".safetensors":
        return None
    from motif_lite.io.linked import other_component  # safetensors: only for a file given to -m
    from motif_lite.weights.safetensors_header import read_header

    try:
        names = list(read_header(path).tensors)
    except CheckpointError:
        names = []
    holds = other_component("checkpoint", names)  # "the VAE's tensors (pass it as --vae)", or None
    if holds is None:
        return (
            f"a weights file goes to the flag of its component (--diffusion-model, --text-encoder or --vae "
            f"{shlex.quote(model)}){KEEP_MODEL}"
        )
    return f"it holds {holds.replace(')', f' {shlex.quote(model)})')}{KEEP_MODEL}"


def checkpoint_of_file(model: str) -> str | None:
    """The checkpoint folder (as the user wrote the path) that the file `model` is part of: the folder of a
    model_index.json, or the parent of a component folder; None for a file elsewhere."""
    path = user_path(model)
    if (path.parent / "model_index.json").is_file():
        return parent_as_given(model)
    if is_component_folder(path.parent):
        return parent_as_given(parent_as_given(model))
    return None


def _gguf_flag(path: Path) -> str:
    """--gguf for a transformer GGUF, --text-encoder-gguf for a text encoder one (told from its header; a file that
    cannot be read goes to --gguf, which says what is wrong with it)."""
    from motif_lite.weights.gguf_file import OtherGGUFKindError, read_gguf  # gguf: only for a file given to -m

    try:
        read_gguf(path)
    except OtherGGUFKindError as exc:
        return exc.flag
    except CheckpointError:
        pass
    return "--gguf"


def covering(files: Sequence[str], download: Sequence[str]) -> tuple[str, ...]:
    """The download patterns that fetch `files` (e.g. `vae/*` for a missing VAE file), plus any file none covers."""
    patterns = [d for d in download if any(fnmatchcase(f, d) for f in files)]
    return tuple(dict.fromkeys([*patterns, *_uncovered(files, download)]))


def _uncovered(files: Sequence[str], download: Sequence[str]) -> list[str]:
    return [f for f in files if not any(fnmatchcase(f, d) for d in download)]


def is_gguf_variant(variant_or_path: str | Path) -> bool:
    """Whether `--gguf` names a variant of the official GGUF repo (e.g. Q4_K_M) rather than a file or folder."""
    text = str(variant_or_path)
    path = user_path(text)
    return not (path.suffix.lower() == ".gguf" or path.exists() or not _VARIANT.match(text))


def find_gguf(variant_or_path: str | Path, hub: HubAccess | None = None) -> Path:
    """A local `.gguf` file for a path, a folder holding exactly one, or a variant name of the official GGUF repo.

    A variant such as `Q4_K_M` is looked up in the cache of `Motif-Technologies/Motif-Video-2B-GGUF`, then (online)
    in the repo's file list, and the one file whose name carries the variant as a whole token is downloaded.
    Raises `MissingFilesError` when it cannot be had, `CheckpointError` for a wrong path.
    """
    hub = hub or HubAccess()
    text = str(variant_or_path)
    if not is_gguf_variant(text):
        return _local_gguf(user_path(text))
    cached = cached_variant(text)
    if cached is not None:
        return cached
    pattern = f"*{text}*.gguf"
    missing = MissingFiles(GGUF_REPO, (pattern,), (pattern,), local_dir_for(GGUF_REPO), "")
    if not hub.online:
        reason = hub.offline_reason or "downloads are off"
        raise MissingFilesError([_with_reason(missing, reason)])
    try:
        sizes = {name: size for name, size in hub.file_sizes(GGUF_REPO).items() if name.endswith(".gguf")}
    except _HUB_ERRORS as exc:
        refuse_unknown_repo(exc, GGUF_REPO, "--gguf")
        failed = hub.failed("listing the GGUF repo", exc, GGUF_REPO)
        raise MissingFilesError([_with_reason(missing, failed)]) from exc
    name = _pick_variant(list(sizes), text)
    start_download(DownloadPlan.of(GGUF_REPO, sizes, [name], cached_snapshot(GGUF_REPO)))
    try:
        with quiet_hub():
            return Path(hf_hub_download(GGUF_REPO, name))
    except _HUB_ERRORS as exc:
        raise MissingFilesError([_with_reason(missing, hub.failed("download", exc, GGUF_REPO))]) from exc


def cached_variant(variant: str) -> Path | None:
    """The one file of the cached GGUF repo whose name carries `variant`; None when there is none (or several)."""
    cached = cached_snapshot(GGUF_REPO)
    if cached is None:
        return None
    found = match_variant([str(p.relative_to(cached)) for p in cached.rglob("*.gguf")], variant)
    return cached / found[0] if len(found) == 1 else None


def check_gguf_variant(variant: str, hub: HubAccess) -> None:
    """A `--gguf` variant that no file of the official GGUF repo carries (a typo such as Q4_K_N): its
    `CheckpointError` (with the variants there are) before anything else downloads, not after the checkpoint's
    gigabytes. Nothing when the cache has it or the Hub cannot be asked: `find_gguf` reports that."""
    if not is_gguf_variant(variant) or not hub.online or cached_variant(variant) is not None:
        return
    try:
        names = [name for name in hub.file_sizes(GGUF_REPO) if name.endswith(".gguf")]
    except _HUB_ERRORS:
        return
    _pick_variant(names, variant)


@dataclass(frozen=True)
class DownloadPlan:
    """What a download of `repo` fetches into the Hugging Face cache: `files` (name -> bytes) that are not cached
    yet, and `partial`: the bytes an interrupted download left there, which huggingface_hub goes on from."""

    repo: str
    files: dict[str, int]
    partial: int = 0

    @classmethod
    def of(cls, repo: str, sizes: dict[str, int], patterns: Sequence[str], cached: Path | None) -> DownloadPlan:
        """The plan for the files of `sizes` (the repo's listing) that `patterns` select and `cached` lacks."""
        wanted = filter_repo_objects(list(sizes), allow_patterns=list(patterns) or None)
        files = {name: sizes[name] for name in wanted if cached is None or not (cached / name).is_file()}
        blobs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"
        partial = sum(f.stat().st_size for f in blobs.glob("*.incomplete")) if blobs.is_dir() else 0
        return cls(repo, files, min(partial, sum(files.values())))

    @property
    def needed(self) -> int:
        """The bytes still to be written to the cache's disk."""
        return sum(self.files.values()) - self.partial

    def describe(self) -> str:
        by_folder: dict[str, int] = {}
        for name, size in self.files.items():
            folder = f"{name.split('/')[0]}/" if "/" in name else name
            by_folder[folder] = by_folder.get(folder, 0) + size
        big = [f"{folder} {file_size(size)}" for folder, size in by_folder.items() if size >= 10**8]
        small = [folder for folder, size in by_folder.items() if size < 10**8]
        parts = big + ([f"{len(small)} small {'file' if len(small) == 1 else 'files or folders'}"] if small else [])
        resumed = f", {file_size(self.partial)} of it there from an interrupted download" if self.partial else ""
        return (
            f"downloading {file_size(sum(self.files.values()))} of {self.repo} ({', '.join(parts)}{resumed}) into the "
            f"Hugging Face cache {constants.HF_HUB_CACHE}; later runs read it from there, and a download that stops "
            "goes on where it stopped when you run again"
        )


def start_download(plan: DownloadPlan) -> None:
    """Say what is about to be downloaded, and where, after checking that it fits on the cache's disk
    (`CheckpointError` otherwise: huggingface_hub would only log a warning and fail with the disk full)."""
    if not plan.files:
        return
    cache = Path(constants.HF_HUB_CACHE)
    existing = next(folder for folder in [cache, *cache.parents] if folder.exists())
    free = shutil.disk_usage(existing).free
    if plan.needed > free:
        raise CheckpointError(
            f"not enough disk space to download {plan.repo}: it needs {file_size(plan.needed)} in the Hugging Face "
            f"cache {cache}, whose disk has {file_size(free)} free; free space there, or put the cache on a bigger "
            "disk (HF_HUB_CACHE=/big/disk/hf-cache, or HF_HOME=/big/disk/huggingface) and run again"
        )
    print(plan.describe(), file=sys.stderr)


def gguf_file_fix(path: Path, model: str) -> str:
    """The fix for a damaged or mismatched GGUF transformer file: a file of the official GGUF repo is downloaded
    again with the command `run` would give; one of the user's own (a name that is no official file's) is made again
    from the checkpoint -m names (`model`, as given), with the type it was made with, or copied again."""
    cached = cached_snapshot(GGUF_REPO)
    if cached is not None and path.resolve().is_relative_to(cached.resolve()):  # our own download, in the cache
        return f"download the file again: hf download {GGUF_REPO} --include '{path.name}' --force-download"
    made_as = made_with_type(path)
    remake = f"python -m motif_lite.quantize {shlex.quote(model)} -o {shlex.quote(str(path))} --type "
    remake += f"{made_as} --force" if made_as else "TYPE --force, TYPE being the type you made it with"
    if not _official_gguf_name(path):
        return (
            f"{path.name} is not a file of {GGUF_REPO}: make it again from the checkpoint ({remake}), or copy it "
            "again from where it came"
        )
    command = MissingFiles(GGUF_REPO, (path.name,), (path.name,), str(path.parent), "").command()
    return f"download the file again ({command}), or make one from the checkpoint: {remake}"


def text_encoder_gguf_fix(path: Path, model: str | None) -> str:
    """The fix for a text encoder GGUF that is missing or damaged: the quantizer's command that makes it (again),
    from the checkpoint -m names (`model`, as given; a placeholder when unknown), with the type it was made with
    (Q8_0, the one the docs advise, for a new file or an unknown type)."""
    source = shlex.quote(model) if model else "CHECKPOINT"
    made_as = made_with_type(path) if path.is_file() else None
    command = f"python -m motif_lite.quantize {source} --component text_encoder -o {shlex.quote(str(path))}"
    command += f" --type {made_as or 'Q8_0'}"
    return f"make it again: {command} --force" if path.is_file() else f"make one: {command}"


def foreign_gguf_fix(path: Path, model: str | None, component: str) -> str:
    """The fix for another model's GGUF (an LLM, another diffusion model) given as the transformer's or the text
    encoder's (`component`): where the right file comes from, under a new name, since the file given is the user's to
    keep (`model`: -m as given, which the quantizer's command names; a placeholder when unknown)."""
    quantize = f"python -m motif_lite.quantize {shlex.quote(model) if model else 'CHECKPOINT'}"
    if component == "text_encoder":
        made = f"{quantize} --component text_encoder -o {shlex.quote(str(path.parent / 'te-Q8_0.gguf'))}"
        return f"it is another model's file; pass a text encoder GGUF made by {made}"
    made = f"{quantize} -o {shlex.quote(str(path.parent / 'motif-video-2b-Q4_K_M.gguf'))}"
    return f"it is another model's file; pass an official one (--gguf Q4_K_M downloads it), or make one: {made}"


def made_with_type(path: Path) -> str | None:
    """The quantizer type a GGUF file was made with: from its header where that is readable, else from its name
    (motif-video-2b-Q8_0.gguf); None when neither tells one our quantizer makes."""
    from motif_lite.quantize.recipes import ALIASES, RECIPES  # only for a damaged file's fix
    from motif_lite.weights.gguf_file import quantization_type

    recorded = quantization_type(path)
    if recorded is not None:
        return recorded if recorded in RECIPES or recorded in ALIASES else None
    named = [name for name in [*RECIPES, *ALIASES] if match_variant([path.name], name)]
    return named[0] if len(named) == 1 else None


def _official_gguf_name(path: Path) -> bool:
    """Whether `path` is a file of the official GGUF repo by name: `hf download --local-dir` left its record beside
    it, or it has the repo's naming (motif-video-2b-VARIANT.gguf)."""
    record = path.parent / ".cache" / "huggingface" / "download" / f"{path.name}.metadata"
    return record.is_file() or re.fullmatch(r"motif-video-2b-[A-Za-z0-9_]+\.gguf", path.name, re.IGNORECASE) is not None


def _with_reason(missing: MissingFiles, reason: str) -> MissingFiles:
    return MissingFiles(missing.repo, missing.missing, missing.include, missing.local_dir, reason)


def gguf_files(folder: Path) -> list[Path]:
    """The `.gguf` files of a folder (`hf download ... --local-dir` fills one; its .cache/ holds no weights)."""
    return sorted(p for p in folder.rglob("*.gguf") if ".cache" not in p.relative_to(folder).parts)


def single_gguf(folder: Path, flag: str = "--gguf") -> Path:
    """The one `.gguf` file of a folder (`gguf_files`) given to `flag`; `CheckpointError` naming what it holds
    when that is none or several."""
    files = gguf_files(folder)
    if len(files) == 1:
        return files[0]
    listed = ", ".join(str(f.relative_to(folder)) for f in files) or "none"
    raise CheckpointError(f"{flag} folder {folder} must hold exactly one .gguf file (found: {listed}); pass the file")


def _local_gguf(path: Path) -> Path:
    if path.is_dir():
        return single_gguf(path)
    if not path.is_file():
        raise CheckpointError(f"no such GGUF file: {path}")
    return path


def match_variant(names: list[str], variant: str) -> list[str]:
    # Whole-token match so that Q4_K does not pick Q4_K_M and q8_0 matches Q8_0.
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(variant)}(?![A-Za-z0-9_])", re.IGNORECASE)
    return sorted(n for n in names if pattern.search(Path(n).name))


def _pick_variant(names: list[str], variant: str) -> str:
    found = match_variant(names, variant)
    if len(found) != 1:
        available = ", ".join(sorted(Path(n).name for n in names)) or "none"
        what = "no file" if not found else f"{len(found)} files ({', '.join(found)})"
        raise CheckpointError(f"{what} in {GGUF_REPO} match variant {variant!r}; available: {available}")
    return found[0]
