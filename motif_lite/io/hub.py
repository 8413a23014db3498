"""Hugging Face Hub access: one `HubAccess` per request, the cache's snapshots, repo ids, and downloads.

A Hub repo id is looked up in the local HF cache first (no network); only files that are not there are downloaded
(never with `HF_HUB_OFFLINE=1`). One `HubAccess` serves a whole request: after the first failed Hub call it stops
trying, so an unreachable Hub costs one fast failure rather than one retry loop per file; `failure_advice` says what
to do about the failure. `DownloadPlan` and `start_download` say what a download fetches, and refuse one that does
not fit on the cache's disk; a request's `before_download` (`HubAccess`) is called just before each download starts,
and `held_while` makes one that stops it while the request has problems found on this machine (`DownloadHeld`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import filter_repo_objects

from motif_lite.choices import MOTIF_REPO
from motif_lite.errors import CheckpointError
from motif_lite.io.staging import said_out_of_space, said_quota_used_up
from motif_lite.paths import user_path
from motif_lite.shell_syntax import one_after_another, quoted, text_written, variable_set
from motif_lite.units import file_size

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# huggingface_hub reports a missing network or cache entry through errors of several libraries (its own,
# OSError, and its HTTP client's, which changed between versions); all mean "not available" to us.
HUB_ERRORS = (Exception,)


OFFLINE_SET = "HF_HUB_OFFLINE=1 is set"
TRANSFORMERS_OFFLINE_SET = "TRANSFORMERS_OFFLINE=1 is set, which huggingface_hub reads as HF_HUB_OFFLINE"


def offline_set() -> str:
    """Which variable turned huggingface_hub's downloads off, as a reason: HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE,
    which huggingface_hub reads where HF_HUB_OFFLINE is unset or empty. A studio's TRANSFORMERS_OFFLINE=1 alone
    was said as HF_HUB_OFFLINE, and "unset HF_HUB_OFFLINE" (which was not set) left the downloads off."""
    if not os.environ.get("HF_HUB_OFFLINE") and os.environ.get("TRANSFORMERS_OFFLINE"):
        return TRANSFORMERS_OFFLINE_SET
    return OFFLINE_SET


def offline_variables() -> list[str]:
    """The variables to unset for huggingface_hub to download again: each of HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE
    set to a true value. With both set, "unset HF_HUB_OFFLINE" alone left TRANSFORMERS_OFFLINE=1 turning the
    downloads off, which huggingface_hub reads once HF_HUB_OFFLINE is unset."""
    return [name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if _true(os.environ.get(name, ""))]


def _true(value: str) -> bool:
    return value.upper() in {"1", "ON", "YES", "TRUE"}  # huggingface_hub.constants' true values


# Where the advice moves the cache to, as an example path (POSIX, Windows): `shell_syntax.variable_set`'s words.
_BIG_CACHE = ("/big/disk/hf-cache", r"D:\hf-cache")
_OTHER_CACHE = ("/other/disk/hf-cache", r"D:\hf-cache")
_BIG_HOME = ("/big/disk/huggingface", r"D:\huggingface")


def resumes_cut_files(version: str) -> bool:
    """Whether huggingface_hub `version` goes on, in one run, with a file cut off in an earlier one. Before 1.18 it
    wrote a file being downloaded to `<etag>.incomplete` in the cache's blobs/ and went on from it; 1.18 and later
    write each attempt to a file of its own, removed when the attempt fails (huggingface_hub's PR #4306), so the file
    starts again. Within one run both retry a dropped HTTP connection from where it was; the files downloaded whole
    stay either way."""
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return major_minor < (1, 18)


RESUMES_CUT_FILES = resumes_cut_files(huggingface_hub.__version__)  # the installed one's


def after_a_stop() -> str:
    """What running again fetches after a download stopped (Ctrl-C, a dropped link, a full disk), as the installed
    huggingface_hub does it (`RESUMES_CUT_FILES`)."""
    if RESUMES_CUT_FILES:
        return "the download goes on where it stopped"
    return "the files downloaded whole stay in the cache and only the others are fetched (a file cut off starts again)"


class HubAccess:
    """How one request may use the Hub: downloads allowed (`download`) until a Hub call fails or when
    `HF_HUB_OFFLINE=1`; `offline_reason` then says why every later lookup stays in the cache. `before_download`, when
    given, is called with each download's plan just before it starts (after the disk space check): `motif-lite run`
    asks its CPU time question there, so that a CPU run's hours are said before the gigabytes download, not after
    them. Whatever it raises stops the request before the download."""

    def __init__(self, download: bool = True, before_download: Callable[[DownloadPlan], None] | None = None) -> None:
        self.download = download
        self.before_download = before_download
        self.offline_reason: str | None = offline_set() if constants.HF_HUB_OFFLINE else None
        # The request's downloads planned ahead, by repo: a GGUF variant's, checked before the checkpoint downloads
        # (`gguf_source.check_gguf_variant`), whose room is counted with the checkpoint's (`start_download`)
        self.later: dict[str, DownloadPlan] = {}
        self._listings: dict[str, dict[str, int] | Exception] = {}

    def file_sizes(self, repo: str) -> dict[str, int]:
        """The files of `repo` on the Hub and their sizes in bytes: one listing per repo and request (its failure,
        too, is raised again rather than asked again)."""
        if repo not in self._listings:
            try:
                with quiet_hub():
                    info = HfApi().model_info(repo, files_metadata=True)
                self._listings[repo] = {s.rfilename: s.size or 0 for s in info.siblings or ()}
            except HUB_ERRORS as exc:
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
    if said_quota_used_up(exc):  # the disk may have room: the quota, not the disk, is what to look at
        return (
            f"your disk quota in the Hugging Face cache ({constants.HF_HUB_CACHE}) is used up: free space within it, "
            f"or move the cache where your quota has room ({variable_set('HF_HUB_CACHE', *_OTHER_CACHE)}, or "
            f"HF_HOME), then run again: {after_a_stop()}"
        )
    if said_out_of_space(exc):  # as every writer of ours counts it
        return (
            f"the disk of the Hugging Face cache ({constants.HF_HUB_CACHE}) is full: free space there, or move the "
            f"cache to a bigger disk ({variable_set('HF_HUB_CACHE', *_BIG_CACHE)}, or HF_HOME), then run again: "
            f"{after_a_stop()}"
        )
    if _no_connection(exc):
        slow = f", or {variable_set('HF_HUB_DOWNLOAD_TIMEOUT', '60')} for a slow link" if _is_timeout(exc) else ""
        mirror = "check the mirror HF_ENDPOINT names" if "HF_ENDPOINT" in os.environ else "set HF_ENDPOINT to a mirror"
        return (
            f"cannot reach {constants.ENDPOINT}: check the network (and HTTPS_PROXY behind a proxy), or {mirror}"
            f"{slow}; run again to go on: {after_a_stop()}"
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


def _read_only(exc: BaseException) -> bool:
    """A cache this user may not write (permissions, a read-only mount): huggingface_hub fails on its lock file."""
    return any(isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) for e in _causes(exc))


def _is_timeout(exc: BaseException) -> bool:
    return any("Timeout" in cls.__name__ for e in _causes(exc) for cls in type(e).__mro__)


# hf_xet's words for a link that failed in the middle of a file (its errors are RuntimeErrors, without a type of
# their own), as its issues quote them: "Data processing error: CAS service error : IO Error: Timer expired",
# "... Reqwest(reqwest::Error { kind: Request, ... IncompleteMessage ...", "... UnexpectedEof, error: IncompleteBody".
_XET_LINK_FAILURES = ("Timer expired", "IncompleteBody", "IncompleteMessage", "error sending request")


def _no_connection(exc: BaseException) -> bool:
    """A network failure: huggingface_hub's "cannot reach the Hub and nothing cached", or its HTTP client's
    connection errors and timeouts (requests' and httpx's names differ, hence the names), or a link that dropped
    in the middle of a file once huggingface_hub's retries were spent: the server's "peer closed connection"
    (RemoteProtocolError), or a file that came out short ("Consistency check failed"); hf_xet's by their words."""
    kinds = (LocalEntryNotFoundError, ConnectionError, TimeoutError)
    names = ("Connect", "Timeout", "NetworkError", "ProxyError", "RemoteProtocolError")
    return any(
        isinstance(e, kinds)
        or any(n in cls.__name__ for n in names for cls in type(e).__mro__)
        or str(e).startswith("Consistency check failed")
        or any(words in str(e) for words in _XET_LINK_FAILURES)
        for e in _causes(exc)
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
    local = quoted(local_folder_for(repo))
    command = f"hf download {repo} --revision {quoted(revision)} --local-dir {local}"
    fix = f"download {revision!r} into a folder: {command}, then -m {local}"
    return "-m takes a Hub repo's main revision only", fix


# A Hub repo or one of its files as users copy it: from the browser (https://huggingface.co/owner/name, its
# .../resolve/main/x.gguf or .../blob/main/x.gguf), from llama.cpp or Ollama (hf.co/owner/name:Q4_K_M), or as
# owner/name:x.gguf.
_WEB_ADDRESS = re.compile(
    r"^(?:https?:/+)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<repo>[\w.-]+/[\w.-]+?)(?::(?P<tag>[\w.-]+))?"
    r"(?:/(?:resolve|blob|tree)/(?P<revision>[^/]+)(?:/(?P<file>[^?]+?))?)?/?(?:\?.*)?$"
)
_REPO_AND_FILE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+):(?P<tag>[\w.-]+)$")
# huggingface_hub's file-system address of a model repo's file or folder: hf://owner/name[@revision]/path
_FILE_SYSTEM_ADDRESS = re.compile(
    r"^hf://(?!datasets/|spaces/)(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<revision>[^/]+))?(?:/(?P<file>.+?))?/?$"
)


@dataclass(frozen=True)
class HubAddress:
    """A Hub repo, or a folder or file of it, as a web address or another tool's `repo:TAG` (`hub_address`)."""

    repo: str
    path: str | None = None  # after /tree|blob|resolve/REVISION/: a folder (vae) or a file (x.gguf) of the repo
    tag: str | None = None  # after `repo:`: llama.cpp's name of a GGUF file (Q4_K_M), or a file's name (x.gguf)
    revision: str = "main"

    @property
    def file(self) -> str | None:
        """The path, else the tag: what of the repo it names; None: the repo itself."""
        return self.path or self.tag

    @property
    def names_gguf(self) -> bool:
        """Whether it names a GGUF file: by a .gguf name, or by a tag without a file extension (llama.cpp's
        hf.co/owner/name:Q4_K_M). A path without one is a folder of the repo (.../tree/main/vae), not a tag."""
        if (self.file or "").lower().endswith(".gguf"):
            return True
        return self.path is None and bool(self.tag) and "." not in self.tag


def hub_address(text: str) -> HubAddress | None:
    """`text` read as a Hub web address (https://huggingface.co/..., hf.co/owner/name:TAG), huggingface_hub's
    hf://owner/name/file or `owner/name:file`; None for anything else (a path, a plain repo id)."""
    match = _WEB_ADDRESS.match(text) or _FILE_SYSTEM_ADDRESS.match(text) or _REPO_AND_FILE.match(text)
    if match is None:
        return None
    found = match.groupdict()
    # A pull request's ref, refs/pr/1, is refs%2Fpr%2F1 in both addresses; `hf download --revision` takes it plain.
    revision = unquote(found.get("revision") or "main")
    return HubAddress(found["repo"], found.get("file"), found.get("tag"), revision)


def model_address_problem(text: str) -> tuple[str, str] | None:
    """For a Hub web address (or `repo:file`) given to -m: (the problem, the fix: the repo id; for another revision,
    its download); None for anything else, and for a GGUF file's (`gguf_source.gguf_address_problem` tells it) but
    one the checkpoint's repo would hold: it holds none, and `hf.co/REPO:Q4_K_M` names the repo to -m."""
    address = hub_address(text)
    gguf = address is not None and address.names_gguf and address.repo.lower() != MOTIF_REPO.lower()
    if address is None or gguf or user_path(text).exists():
        return None
    problem = "-m takes a checkpoint folder or a Hub repo id, not a web address"
    revision = revision_problem(f"{address.repo}@{address.revision}") if address.revision != "main" else None
    if revision:
        return problem, revision[1]
    # hf.co/REPO:Q4_K_M asked for that GGUF variant: the fix keeps it. Imported here: gguf_source imports this module.
    from motif_lite.io.gguf_source import variant_named_by

    variant = variant_named_by(address) if address.names_gguf else None
    return problem, f"-m {address.repo}" + (f" --gguf {variant}" if variant else "")


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


def stray_snapshots_note(repo_id: str, flag: str = "-m") -> str | None:
    """Where the cache holds snapshots of `repo_id` that its refs/main does not lead to (a cache copied without its
    refs/ folder, or whose refs/main names a snapshot a clean-up removed): which, and how to use one; else None.
    huggingface_hub, offline, finds no file there, and the run said the whole repo was missing from the cache."""
    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    if cached_snapshot(repo_id) is not None or not (folder / "snapshots").is_dir():
        return None
    found = [path for path in (folder / "snapshots").iterdir() if path.is_dir()]
    if not found:
        return None
    snapshots = sorted(path.name for path in found)
    ref = folder / "refs" / "main"
    if ref.is_file():
        why = f"its refs/main names snapshot {ref.read_text().strip()}, which is not in {folder / 'snapshots'}"
    else:
        why = f"it has no refs/main (a copy without {folder / 'refs'})"
    held = f"snapshots/{snapshots[0]}" if len(snapshots) == 1 else f"snapshots {', '.join(snapshots)}"
    # The newest one (last written) as the example, likely the one the cache used last; the last by name is any.
    newest = max(found, key=lambda path: path.stat().st_mtime)
    use = f"pass a snapshot's folder, {flag} {quoted(str(newest))}"
    write = text_written(newest.name, str(ref))
    if not ref.parent.is_dir():
        write = one_after_another(f"mkdir {quoted(str(ref.parent))}", write)
    write = f"make refs/main name it: {write}"
    written = next(path for path in (ref, ref.parent, folder) if path.exists())  # what the command writes into
    if not os.access(written, os.W_OK):  # a read-only copy: the flag is the way this user has
        return (
            f"the cache holds {repo_id} but {why}; it holds {held}: {use} (this user may not write the cache), or, "
            f"as a user who may, {write}"
        )
    return f"the cache holds {repo_id} but {why}; it holds {held}: {write}, or {use}"


def cached_spelling(repo_id: str) -> str:
    """`repo_id` as a cached repo spells it where that differs in letter case only, else as given. The Hub takes
    either spelling, the cache's folders do not: `-m motif-technologies/motif-video-2b` would download the whole
    checkpoint again, into a second folder, next to the cached Motif-Technologies/Motif-Video-2B."""
    cache = Path(constants.HF_HUB_CACHE)
    wanted = repo_folder_name(repo_id=repo_id, repo_type="model")
    if (cache / wanted).is_dir() or not cache.is_dir():
        return repo_id
    for folder in sorted(cache.iterdir()):
        if folder.name.lower() == wanted.lower() and (folder / "refs" / "main").is_file():
            return folder.name.removeprefix("models--").replace("--", "/", 1)  # repo ids hold no "--"
    return repo_id


def local_dir_for(repo_id: str) -> str:
    return f"./{repo_id.split('/')[-1]}"


def local_folder_for(repo_id: str) -> str:
    """The folder a suggested `hf download REPO --local-dir` fills (`local_dir_for`), as an absolute path: the
    download and the flag that reads it after may be typed in another terminal or folder, where `./NAME` names
    another folder (as `MissingFiles.folder` says it). The current folder removed under the process: `./NAME`,
    there being no absolute path to give."""
    local = local_dir_for(repo_id)
    try:
        return os.path.abspath(local)
    except FileNotFoundError:
        return local


@dataclass(frozen=True)
class DownloadPlan:
    """What a download of `repo` fetches into the Hugging Face cache: `files` (name -> bytes) that are not cached
    yet, and `partial`: the bytes an interrupted download left there, which huggingface_hub goes on from."""

    repo: str
    files: dict[str, int]
    partial: int = 0
    # The bytes of partial files in the repo's blobs/ that no download goes on from (huggingface_hub 1.18 and later
    # removes a failed attempt's file, but not one of a process killed outright): they take room on the disk.
    leftovers: int = 0
    # The request's downloads after this one (`start_download`'s `later`), as its `before` hook gets them: a question
    # before the download names them too.
    then: tuple[DownloadPlan, ...] = ()

    @classmethod
    def of(cls, repo: str, sizes: dict[str, int], patterns: Sequence[str], cached: Path | None) -> DownloadPlan:
        """The plan for the files of `sizes` (the repo's listing) that `patterns` select and `cached` lacks."""
        wanted = filter_repo_objects(list(sizes), allow_patterns=list(patterns) or None)
        files = {name: sizes[name] for name in wanted if cached is None or not (cached / name).is_file()}
        blobs = blobs_folder(repo)
        partial = sum(f.stat().st_size for f in blobs.glob("*.incomplete")) if blobs.is_dir() else 0
        if not RESUMES_CUT_FILES:
            return cls(repo, files, 0, partial)
        return cls(repo, files, min(partial, sum(files.values())))

    @property
    def needed(self) -> int:
        """The bytes still to be written to the cache's disk."""
        return sum(self.files.values()) - self.partial

    def describe(self) -> str:
        """The line said as it starts, with the request's downloads after it (`then`) and the total."""
        by_folder: dict[str, int] = {}
        for name, size in self.files.items():
            folder = f"{name.split('/')[0]}/" if "/" in name else name
            by_folder[folder] = by_folder.get(folder, 0) + size
        big = [f"{folder} {file_size(size)}" for folder, size in by_folder.items() if size >= 10**8]
        small = [folder for folder, size in by_folder.items() if size < 10**8]
        parts = big + ([f"{len(small)} small {'file' if len(small) == 1 else 'files or folders'}"] if small else [])
        resumed = f", {file_size(self.partial)} of it there from an interrupted download" if self.partial else ""
        later = "".join(
            f", then {file_size(sum(p.files.values()))} of {p.repo} ({', '.join(p.files)})" for p in self.then
        )
        total = sum(sum(p.files.values()) for p in [self, *self.then])
        in_all = f": {file_size(total)} in all," if self.then else ""
        return (
            f"downloading {file_size(sum(self.files.values()))} of {self.repo} ({', '.join(parts)}{resumed}){later}"
            f"{in_all} into the Hugging Face cache {constants.HF_HUB_CACHE}; later runs read it from there; if it "
            f"stops, run again: {after_a_stop()}"
        )

    def leftovers_note(self) -> str:
        """Where the disk is short: the partial files no download goes on from, to delete; "" where there are none."""
        if not self.leftovers:
            return ""
        return (
            f"; {file_size(self.leftovers)} of that disk is taken by partial files of stopped downloads, which no "
            f"download goes on from: delete {blobs_folder(self.repo)}/*.incomplete (while no download is running)"
        )


def blobs_folder(repo: str) -> Path:
    """The folder of the cache where huggingface_hub writes `repo`'s files (as `<etag>.incomplete` while they
    download)."""
    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"


class DownloadHeld(CheckpointError):
    """A download not started because the request has problems found on this machine already (a flag, the device,
    a file of the user's): they are said now, not after gigabytes of downloading (`held_while`). `problems`: their
    messages, as the holder knew them."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = [str(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


def held_while(
    problems: Sequence[object], before: Callable[[DownloadPlan], None] | None = None
) -> Callable[[DownloadPlan], None]:
    """A `HubAccess.before_download` that raises `DownloadHeld` while `problems` (a list its caller goes on filling)
    holds any, else calls `before`: a request's local mistakes stop its downloads."""

    def before_download(plan: DownloadPlan) -> None:
        if problems:
            raise DownloadHeld(problems)
        if before is not None:
            before(plan)

    return before_download


def homeless_cache() -> str | None:
    """Where the user has no home (HOME unset and no /etc/passwd entry: a container run with -u UID by a launcher
    that leaves HOME unset; Docker and Kubernetes set HOME to `/` instead), huggingface_hub's os.path.expanduser
    leaves its cache `~/.cache/huggingface/hub`, a folder named '~' in the current folder: that said, up to the
    fix (HF_HOME); None where the cache is a real path."""
    cache = Path(constants.HF_HUB_CACHE)
    if cache.parts[0] != "~":
        return None
    return (
        f"the Hugging Face cache would be {cache} in the current folder, a folder named '~': this user has no home "
        "(HOME is unset and /etc/passwd has no entry for it, as in a container run with -u UID); set HF_HOME (or "
        "HF_HUB_CACHE) to the cache, a folder you can write"
    )


def cache_disk() -> Path:
    """The folder whose disk the Hugging Face cache's files go to: the cache's own, or where it is not made yet the
    nearest folder above it (HF_HUB_CACHE on a new disk; the cache itself may be a mount or a link)."""
    cache = Path(constants.HF_HUB_CACHE)
    return next(folder for folder in [cache, *cache.parents] if folder.exists())


def start_download(
    plan: DownloadPlan, before: Callable[[DownloadPlan], None] | None = None, later: Iterable[DownloadPlan] = ()
) -> None:
    """Say what is about to be downloaded, and where, after checking that it fits on the cache's disk
    (`CheckpointError` otherwise: huggingface_hub would only log a warning and fail with the disk full) and calling
    `before` (a request's `HubAccess.before_download`), which may stop it by raising. `later`: the request's
    downloads after this one, known ahead (`HubAccess.later`: a GGUF variant's, after the checkpoint's), counted
    and said with it: a disk with room for the checkpoint alone is refused before its gigabytes, not after them."""
    if not plan.files:
        return
    then = [other for other in later if other.files]
    cache = Path(constants.HF_HUB_CACHE)
    if (homeless := homeless_cache()) is not None:
        raise CheckpointError(f"{homeless}, e.g. a mounted volume, and run again")
    free = shutil.disk_usage(cache_disk()).free
    needed = sum(each.needed for each in [plan, *then])
    if needed > free:
        plans = [plan, *then]
        what = " and then ".join(each.repo for each in plans)
        parts = f" ({' + '.join(file_size(each.needed) for each in plans)})" if then else ""
        leftovers = "".join(each.leftovers_note() for each in plans)
        raise CheckpointError(
            f"not enough disk space to download {what}: {'they need' if then else 'it needs'} {file_size(needed)}"
            f"{parts} in the Hugging Face cache {cache}, whose disk has {file_size(free)} free{leftovers}; free space "
            f"there, or put the cache on a bigger disk ({variable_set('HF_HUB_CACHE', *_BIG_CACHE)}, or "
            f"{variable_set('HF_HOME', *_BIG_HOME)}) and run again"
        )
    plan = replace(plan, then=tuple(then))
    if before is not None:
        before(plan)
    print(plan.describe(), file=sys.stderr)
