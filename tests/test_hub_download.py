"""A new user's first download, on a mocked Hub: what is fetched and how much is said up front, the free space of
the cache's disk is checked first (an interrupted download's bytes counted as there), and a failed Hub call (a
gated repo, a refused token, a full disk, no connection, a typo in the repo id) ends in one line saying what to do;
a mistake found on this machine (the device, a speed flag, a file the user gave) is said before any download."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import math
import re
import shutil
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from motif_lite import cli
from motif_lite.checkpoint import find_text_encoder_gguf
from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.io import checkpoint_source, gguf_source, hub
from motif_lite.io.checkpoint_source import find_checkpoint
from motif_lite.io.gguf_source import check_gguf_variant, find_gguf
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.shell_syntax import posix_quoted
from motif_lite.units import file_size

# The official repos' files as the Hub lists them (sizes in bytes).
CHECKPOINT_FILES = {
    "model_index.json": 712,
    "text_encoder/config.json": 4_210,
    "text_encoder/model-00001-of-00002.safetensors": 4_990_000_000,
    "text_encoder/model-00002-of-00002.safetensors": 3_610_000_000,
    "text_encoder/model.safetensors.index.json": 90_000,
    "tokenizer/tokenizer.json": 33_400_000,
    "tokenizer/tokenizer_config.json": 1_150_000,
    "vae/config.json": 900,
    "vae/diffusion_pytorch_model.safetensors": 253_815_318,
    "transformer/config.json": 600,
    "transformer/diffusion_pytorch_model.safetensors": 4_075_000_000,
}
GGUF_FILES = {"motif-video-2b-Q4_K_M.gguf": 1_350_000_000, "motif-video-2b-Q8_0.gguf": 2_170_000_000}
WITH_GGUF = ["text_encoder/*", "tokenizer/*", "vae/*", "transformer/config.json", "model_index.json"]
Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


class FakeHub:
    """The Hub's listing and downloads; `fail` is raised by every call when set."""

    def __init__(self) -> None:
        self.downloads: list[tuple] = []
        self.listed: list[str] = []
        self.fail: BaseException | None = None
        self.snapshot: Path | None = None  # what a snapshot download returns; None: it fails

    def model_info(self, repo_id: str, files_metadata: bool = False) -> SimpleNamespace:
        self.listed.append(repo_id)
        if self.fail is not None:
            raise self.fail
        files = GGUF_FILES if repo_id == GGUF_REPO else CHECKPOINT_FILES
        # As the Hub: the files' sizes only with files_metadata=True (None otherwise).
        sizes = {n: s if files_metadata else None for n, s in files.items()}
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=n, size=s) for n, s in sizes.items()])

    def snapshot_download(self, repo_id: str, allow_patterns=None) -> str:
        self.downloads.append((repo_id, allow_patterns))
        if self.snapshot is not None:
            return str(self.snapshot)
        raise ConnectionError("the test stops here: the plan and the space check came before")

    def hf_hub_download(self, repo_id: str, filename: str) -> str:
        self.downloads.append((repo_id, filename))
        return f"/downloaded/{filename}"


@pytest.fixture
def fake_hub(monkeypatch, tmp_path) -> FakeHub:
    """Online, the Hub cache in a folder not made yet (as HF_HUB_CACHE on a new disk), a fake Hub."""
    fake = FakeHub()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "data" / "hf-cache"))
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    monkeypatch.setattr(checkpoint_source, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(gguf_source, "hf_hub_download", fake.hf_hub_download)
    return fake


def free_space(monkeypatch, free: int) -> list[Path]:
    """The disk has `free` bytes free; returns the folders asked about."""
    asked = []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: asked.append(Path(path)) or Usage(10**13, 0, free))
    return asked


def selected(patterns: list[str]) -> int:
    return sum(s for n, s in CHECKPOINT_FILES.items() if any(Path(n).match(p) or n == p for p in patterns))


def test_the_download_is_announced_with_its_size_and_where_it_goes(fake_hub, monkeypatch, capsys):
    asked = free_space(monkeypatch, 10**12)
    with pytest.raises(MissingFilesError):
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    said = capsys.readouterr().err
    total = selected(WITH_GGUF)
    text_encoder = sum(s for n, s in CHECKPOINT_FILES.items() if n.startswith("text_encoder/"))
    assert f"downloading {file_size(total)} of {MOTIF_REPO} (text_encoder/ {file_size(text_encoder)}, vae/ " in said
    assert f"into the Hugging Face cache {constants.HF_HUB_CACHE}" in said and hub.after_a_stop() in said
    assert "transformer/diffusion" not in said and file_size(total + 4_075_000_000) not in said  # a GGUF replaces it
    cache = Path(constants.HF_HUB_CACHE)
    assert asked == [cache.parent.parent]  # the nearest folder that exists on the cache's way, not the current one
    assert fake_hub.downloads == [(MOTIF_REPO, WITH_GGUF)]


def test_a_download_that_does_not_fit_is_refused_before_it_starts(fake_hub, monkeypatch):
    total = selected(WITH_GGUF)
    free_space(monkeypatch, total - 1)
    with pytest.raises(CheckpointError) as error:
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    message = str(error.value)
    assert not isinstance(error.value, MissingFilesError)  # said as it is, not as a failed download
    assert message.startswith(f"not enough disk space to download {MOTIF_REPO}: it needs {file_size(total)} in the ")
    assert f"needs {file_size(total)} in the Hugging Face cache {constants.HF_HUB_CACHE}" in message
    assert "HF_HUB_CACHE=" in message and "HF_HOME" in message and fake_hub.downloads == []
    free_space(monkeypatch, total // 3)  # a free figure far from the need: the message gives each its own
    with pytest.raises(CheckpointError, match=f"whose disk has {re.escape(file_size(total // 3))} free;"):
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    free_space(monkeypatch, total)  # just enough: it starts
    with pytest.raises(MissingFilesError):
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    assert fake_hub.downloads == [(MOTIF_REPO, WITH_GGUF)]


def test_a_download_for_a_user_without_a_home_is_refused_before_it_writes_a_folder_named_tilde(
    fake_hub, monkeypatch, tmp_path
):
    # `docker run -u 12345` with HOME unset: huggingface_hub's cache stayed "~/.cache/huggingface/hub", relative to
    # the current folder, and 10 GB went into ./~ (or failed on a read-only root with a traceback about "~").
    free_space(monkeypatch, 10**12)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", "~/.cache/huggingface/hub")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    assert not isinstance(error.value, MissingFilesError)
    assert str(error.value).startswith(
        "the Hugging Face cache would be ~/.cache/huggingface/hub in the current folder, a folder named '~': this "
        "user has no home"
    )
    assert "set HF_HOME (or HF_HUB_CACHE) to the cache, a folder you can write, e.g. a mounted vol" in str(error.value)
    assert fake_hub.downloads == [] and not (tmp_path / "~").exists()
    # Offline (weights baked into the image, HF_HOME forgotten): the list of missing files says why the cache is '~'.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MissingFilesError) as missing:
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    assert "\nNote: the Hugging Face cache would be ~/.cache/huggingface/hub in the current" in str(missing.value)


@pytest.fixture
def resuming_hub(monkeypatch):
    """huggingface_hub before 1.18: it goes on with a file cut off in an earlier run (`hub.RESUMES_CUT_FILES`)."""
    monkeypatch.setattr(hub, "RESUMES_CUT_FILES", True)


def test_what_the_cache_holds_is_not_fetched_again_and_a_partial_download_counts(
    fake_hub, resuming_hub, monkeypatch, capsys
):
    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B"
    snapshot = repo / "snapshots" / ("0" * 40)
    (snapshot / "vae").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name in ("vae/config.json", "vae/diffusion_pytorch_model.safetensors"):
        (snapshot / name).write_text("cached")
    (repo / "blobs").mkdir()
    (repo / "blobs" / "0123abcd.incomplete").write_bytes(b"\0" * 1000)  # Ctrl-C in the middle of a file
    total = selected(WITH_GGUF) - selected(["vae/*"])
    asked = free_space(monkeypatch, total - 1000)  # fits only with the interrupted download's bytes counted
    with pytest.raises(MissingFilesError):
        find_checkpoint(MOTIF_REPO, ["text_encoder/*.safetensors"], download=WITH_GGUF)
    assert asked == [Path(constants.HF_HUB_CACHE)]  # the cache is there: its own disk (it may be a mount or a link)
    said = capsys.readouterr().err
    assert f"downloading {file_size(total)} of" in said and "vae/" not in said
    assert f"{file_size(1000)} of it there from an interrupted download" in said


def test_a_partial_file_huggingface_hub_does_not_go_on_from_is_not_counted_and_is_named(fake_hub, monkeypatch, capsys):
    # huggingface_hub 1.18 and later starts a file cut off again: the partial file of a download killed outright
    # (Ctrl-C's it removes) is never used again. It counted as there, so a disk short of room was let start, and
    # the line said the run would go on where it stopped.
    monkeypatch.setattr(hub, "RESUMES_CUT_FILES", False)
    blobs = hub.blobs_folder(MOTIF_REPO)
    blobs.mkdir(parents=True)
    (blobs / "0123abcd.1a2b3c4d.incomplete").write_bytes(b"\0" * 1000)
    total = selected(WITH_GGUF)
    free_space(monkeypatch, total - 1000)
    with pytest.raises(CheckpointError) as error:
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    assert f"it needs {file_size(total)} in the Hugging Face cache" in str(error.value)
    assert f"; {file_size(1000)} of that disk is taken by partial files of stopped downloads, which no download " in (
        str(error.value)
    )
    assert f"delete {blobs}/*.incomplete (while no download is running); free space there" in str(error.value)
    free_space(monkeypatch, total)
    with pytest.raises(MissingFilesError):
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF)
    said = capsys.readouterr().err
    assert "interrupted download" not in said and "goes on where it stopped" not in said
    assert "if it stops, run again: the files downloaded whole stay in the cache and only the others are fetched " in (
        said
    )
    assert "(a file cut off starts again)" in said


def test_resuming_a_cut_off_file_is_said_as_the_installed_huggingface_hub_does_it(tmp_path, monkeypatch):
    # `RESUMES_CUT_FILES` against the library itself: a first attempt writes part of a file and loses the link, a
    # second one starts on the same incomplete file where 1.17 and older went on from it, on a new one after that.
    from huggingface_hub import file_download

    started_at = []

    def http_get(url, temp_file, *, resume_size=0, **_):
        started_at.append(temp_file.tell())
        temp_file.write(b"x" * (4 - temp_file.tell()) if started_at[1:] else b"xx")
        if not started_at[1:]:
            raise ConnectionError("the link dropped")

    monkeypatch.setattr(file_download, "http_get", http_get)
    arguments = {
        "incomplete_path": tmp_path / "etag.incomplete",
        "destination_path": tmp_path / "blob",
        "url_to_download": "https://example.invalid/file",
        "proxies": None,
        "headers": {},
        "expected_size": None,
        "filename": "file",
        "force_download": False,
        "etag": "etag",
        "xet_file_data": None,
    }
    taken = inspect.signature(file_download._download_to_tmp_and_move).parameters
    download = functools.partial(
        file_download._download_to_tmp_and_move, **{k: v for k, v in arguments.items() if k in taken}
    )
    with pytest.raises(ConnectionError):
        download()
    download()
    assert (tmp_path / "blob").read_bytes() == b"xxxx"
    assert started_at == [0, 2 if hub.RESUMES_CUT_FILES else 0]


def test_a_gguf_variant_is_announced_and_checked_for_space(fake_hub, monkeypatch, capsys):
    free_space(monkeypatch, 10**12)
    assert find_gguf("Q4_K_M") == Path("/downloaded/motif-video-2b-Q4_K_M.gguf")
    assert (
        f"downloading {file_size(GGUF_FILES['motif-video-2b-Q4_K_M.gguf'])} of {GGUF_REPO}" in capsys.readouterr().err
    )
    free_space(monkeypatch, GGUF_FILES["motif-video-2b-Q8_0.gguf"] - 1)
    with pytest.raises(CheckpointError, match="not enough disk space to download"):
        find_gguf("Q8_0")
    assert fake_hub.downloads == [(GGUF_REPO, "motif-video-2b-Q4_K_M.gguf")]


def http_error(kind: type, status: int) -> Exception:
    return kind(f"{status} Client Error.", response=SimpleNamespace(status_code=status, headers={}, request=None))


def raised_from(error: Exception, cause: Exception) -> Exception:
    """`error` as raised from `cause` (huggingface_hub wraps its HTTP client's and the OS's errors)."""
    error.__cause__ = cause
    return error


def raised_while_handling(error: Exception, earlier: Exception) -> Exception:
    """`error` raised inside an `except` of `earlier`, without `from` (Python keeps `earlier` as its context)."""
    error.__context__ = earlier
    return error


class ConnectError(Exception):
    """httpx's connection error by its name: httpx's errors do not derive from Python's ConnectionError."""


class RemoteProtocolError(Exception):
    """httpx's error for a server that closed the connection in the middle of a file, by its name."""


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (http_error(GatedRepoError, 403), "is gated: accept its conditions at https://hf-mirror.com/{repo}"),
        (http_error(HfHubHTTPError, 401), "the Hub refused the token: log in with `hf auth login` or set HF_TOKEN"),
        (http_error(HfHubHTTPError, 403), "the token may not read {repo}"),
        (OSError(errno.ENOSPC, "No space left on device"), "the disk of the Hugging Face cache ({cache}) is full"),
        (
            LocalEntryNotFoundError("Got: ConnectError"),
            "cannot reach https://hf-mirror.com: check the network (and HTTPS_PROXY behind a proxy), or check the "
            "mirror HF_ENDPOINT names; run again to go on",
        ),
        (TimeoutError("read timed out"), "or HF_HUB_DOWNLOAD_TIMEOUT=60 for a slow link"),
        # A link that dropped in the middle of a file, once huggingface_hub's own retries were spent: it was the
        # error's own line alone, without the network's advice or that running again goes on.
        (RemoteProtocolError("peer closed connection without sending complete message body"), "cannot reach"),
        (OSError("Consistency check failed: file should be of size 9 but has size 4 (x)."), "run again to go on"),
        # hf_xet's, for the repos stored with Xet: a RuntimeError known by its words alone.
        (RuntimeError("Data processing error: CAS service error : IO Error: Timer expired"), "cannot reach"),
        (RuntimeError("CAS service error : Reqwest Error: error sending request for url"), "run again to go on"),
        (RuntimeError("Reqwest(reqwest::Error { kind: Request, source: hyper::Error(IncompleteMessage) })"), "cannot"),
        (RuntimeError("IO Error: Custom { kind: UnexpectedEof, error: IncompleteBody }"), "run again to go on"),
        # The cause behind huggingface_hub's own error, and an HTTP client's error known by its name only.
        (raised_from(RuntimeError("download failed"), OSError(errno.ENOSPC, "No space")), "is full: free space"),
        (raised_from(RuntimeError("request failed"), ConnectError("[Errno 111]")), "cannot reach https://hf-mirror"),
        # An error raised while handling the disk's: the cause is only its context.
        (raised_while_handling(RuntimeError("clean-up failed"), OSError(errno.ENOSPC, "No space")), "is full: free"),
        # A used-up disk quota (a shared server's home) is the want of space every writer of ours counts, as an
        # errno or in the words of an error that wraps it: it was the download's own message without advice, then
        # the full disk's advice, which the disk's free space belies. The quota's, as the video writer says it.
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "your disk quota in the Hugging Face cache ({cache}) is used"),
        (RuntimeError(f"writing the blob failed: [Errno {errno.EDQUOT}] Disk quota exceeded"), "is used up: free"),
        # A cluster's shared cache, read-only for its users: huggingface_hub fails on its lock file or folders.
        (PermissionError(errno.EACCES, "Permission denied"), "the Hugging Face cache ({cache}) cannot be written"),
        (raised_from(RuntimeError("download failed"), OSError(errno.EROFS, "Read-only")), "set HF_HUB_CACHE to a"),
    ],
)
def test_a_failed_hub_call_says_what_to_do(fake_hub, monkeypatch, error, advice):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")
    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.com")  # as huggingface_hub read it at import
    fake_hub.fail = error
    for find, repo in ((lambda: find_checkpoint(MOTIF_REPO), MOTIF_REPO), (find_gguf, GGUF_REPO)):
        with pytest.raises(MissingFilesError) as failed:
            find("Q4_K_M") if find is find_gguf else find()
        assert advice.format(repo=repo, cache=constants.HF_HUB_CACHE) in str(failed.value)


def test_the_gguf_downloads_partial_files_are_named_where_both_downloads_do_not_fit(fake_hub, monkeypatch):
    # The GGUF repo's partial file of a download killed outright takes room too: the refusal of both downloads
    # named only the checkpoint's, so the file to delete for room was left unsaid.
    from motif_lite.checkpoint import locate_sources

    monkeypatch.setattr(hub, "RESUMES_CUT_FILES", False)
    blobs = hub.blobs_folder(GGUF_REPO)
    blobs.mkdir(parents=True)
    (blobs / "0123abcd.1a2b3c4d.incomplete").write_bytes(b"\0" * 1000)
    free_space(monkeypatch, selected(WITH_GGUF))  # room for the checkpoint alone
    with pytest.raises(CheckpointError) as error:
        locate_sources(MOTIF_REPO, gguf="Q4_K_M")
    assert f"not enough disk space to download {MOTIF_REPO} and then {GGUF_REPO}" in str(error.value)
    assert f"; {file_size(1000)} of that disk is taken by partial files of stopped downloads, which no download " in (
        str(error.value)
    )
    assert f"delete {blobs}/*.incomplete (while no download is running); free space there" in str(error.value)
    assert fake_hub.downloads == []


def test_a_later_download_with_nothing_to_fetch_is_not_said_or_counted(fake_hub, monkeypatch, capsys):
    # `start_download` counts and names only the later downloads that have files to fetch: one whose files are all
    # in the cache is no "then 0 B of ..." and no total "in all".
    free_space(monkeypatch, 10**12)
    plan = hub.DownloadPlan(MOTIF_REPO, {"vae/diffusion_pytorch_model.safetensors": 2_000})
    asked = []
    hub.start_download(plan, asked.append, [hub.DownloadPlan(GGUF_REPO, {})])
    said = capsys.readouterr().err
    assert said.startswith(f"downloading {file_size(2_000)} of {MOTIF_REPO} (1 small file) into the Hugging Face")
    assert GGUF_REPO not in said and "in all" not in said
    assert [given.then for given in asked] == [()]


@pytest.mark.parametrize(
    ("version", "resumes"),
    [("0.36.0", True), ("1.17.9", True), ("1.18.0", False), ("1.18.0rc1", False), ("2.4.0", False)],
)
def test_huggingface_hub_goes_on_with_a_cut_file_before_1_18_only(version, resumes):
    # 1.18 (its PR #4306) writes each attempt to a file of its own and removes it when the attempt fails.
    assert hub.resumes_cut_files(version) is resumes


def test_a_repo_the_hub_does_not_know_is_one_line_without_a_download_command(fake_hub, tmp_path, capsys):
    fake_hub.fail = http_error(RepositoryNotFoundError, 401)
    with pytest.raises(CheckpointError) as error:
        find_checkpoint("Motif-Technologies/Motif-Vidoe-2B")
    assert not isinstance(error.value, MissingFilesError)
    assert str(error.value) == (
        f"Motif-Technologies/Motif-Vidoe-2B (-m): no such model repo on {constants.ENDPOINT}: check its spelling; "
        "a private repo needs a token (`hf auth login`, or HF_TOKEN)"
    )
    argv = ["run", "-m", "Motif-Technologies/Motif-Vidoe-2B", "--gguf", "Q4_K_M", "-p", "fox"]
    assert cli.main([*argv, "-o", str(tmp_path / "fox.mp4")]) == 2
    err = capsys.readouterr().err
    assert "no such model repo" in err and "Traceback" not in err and "hf download" not in err


@pytest.fixture
def in_folder(monkeypatch, tmp_path):
    """The current folder a new one; returns what turns a hint's `./NAME` into the absolute folder it names."""
    here = tmp_path / "videos"
    here.mkdir()
    monkeypatch.chdir(here)
    return lambda text: text.replace(" ./", f" {here}/")


def test_a_web_address_hint_names_the_absolute_folder_it_fills(no_network, tmp_path, monkeypatch):
    # The hints for a web address said `--local-dir ./NAME`, then `-m ./NAME` or `--gguf ./NAME/...`: typed in
    # another terminal or folder, they named another folder than the one the download filled. They name it in full
    # now, quoted where the path has a space, as the offline hints do.
    import shlex

    started = tmp_path / "my videos"
    started.mkdir()
    monkeypatch.chdir(started)
    given = {
        ("-m", "https://huggingface.co/Org/Name/tree/v2/"): (started / "Name", started / "Name"),
        ("--gguf", "https://huggingface.co/Org/Name/tree/main/vae"): (started / "Name", started / "Name" / "vae"),
        ("--gguf", "https://huggingface.co/Org/Name/blob/main/x-Q8_0.gguf"): (
            started / "Name", started / "Name" / "x-Q8_0.gguf"
        ),
        ("--gguf", "https://huggingface.co/Org/Name/"): (started / "Name", started / "Name"),
    }  # fmt: skip
    for (flag, address), (filled, then) in given.items():
        with pytest.raises(CheckpointError) as error:
            (find_checkpoint if flag == "-m" else find_gguf)(address)
        words = shlex.split(str(error.value).split("hf download ", 1)[1].replace(",", ""))
        assert words[words.index("--local-dir") + 1] == str(filled), error.value
        assert words[words.index(flag) + 1] == str(then), error.value


def test_a_repo_at_a_revision_says_how_to_use_that_revision(no_network, in_folder, capsys):
    # `-m Org/Name@v2` (as some tools write a revision): -m takes a repo's main revision; the fix downloads the
    # revision into a folder, in a run and in check alike (not "no such checkpoint directory").
    fix = in_folder("hf download Org/Name --revision v2 --local-dir ./Name, then -m ./Name")
    with pytest.raises(CheckpointError, match="-m takes a Hub repo's main revision only") as error:
        find_checkpoint("Org/Name@v2")
    assert str(error.value).endswith(fix)
    assert cli.main(["check", "-m", "Org/Name@v2"]) == 2
    assert (
        f"problem  Org/Name@v2: -m takes a Hub repo's main revision only; fix: download 'v2' into a folder: {fix}"
        in (capsys.readouterr().out)
    )


def test_a_repo_with_an_at_and_no_revision_is_no_revision_problem(no_network):
    # `Org/Name@` names no revision: no `hf download --revision ''` is made up for it.
    assert hub.revision_problem("Org/Name@") is None
    assert hub.revision_problem("Org/Name@v2") is not None


OFFICIAL_Q4 = f"https://huggingface.co/{GGUF_REPO}/resolve/main/motif-video-2b-Q4_K_M.gguf?download=true"
# --gguf given a Hub file as users copy it (the browser's address, llama.cpp's hf.co/repo:TAG, repo:file): the fix.
GGUF_ADDRESSES = {
    OFFICIAL_Q4: "--gguf Q4_K_M",
    f"hf.co/{GGUF_REPO}:q8_0": "--gguf q8_0",
    f"{GGUF_REPO}:motif-video-2b-Q4_K_M.gguf": "--gguf Q4_K_M",
    f"hf.co/{GGUF_REPO.lower()}:Q4_K_M": "--gguf Q4_K_M",  # the official repo in other letter case
    f"https://huggingface.co/{GGUF_REPO}": "e.g. --gguf Q4_K_M",
    "https://huggingface.co/city96/Wan2.1-T2V-14B-gguf/blob/main/wan2.1-t2v-14b-Q4_K_M.gguf": "download it first: "
    "hf download city96/Wan2.1-T2V-14B-gguf wan2.1-t2v-14b-Q4_K_M.gguf --local-dir ./Wan2.1-T2V-14B-gguf, then "
    "--gguf ./Wan2.1-T2V-14B-gguf/wan2.1-t2v-14b-Q4_K_M.gguf",
    "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M": "download it first: hf download unsloth/Qwen3-8B-GGUF --include "
    "'*Q4_K_M*.gguf' --local-dir ./Qwen3-8B-GGUF, then --gguf ./Qwen3-8B-GGUF",
    # A tag that is no type's name: the closest (it was `--gguf q4km`); Ollama's default tag: the repo alone.
    f"hf.co/{GGUF_REPO}:q4km": "--gguf Q4_K_M",
    f"{GGUF_REPO}:4bit": "--gguf Q4_K_M",
    f"hf.co/{GGUF_REPO}:latest": "e.g. --gguf Q4_K_M",
    # --include matches letter case, the tag does not: the files' spelling (it was '*q4_k_m*.gguf', which fetched
    # nothing of Qwen3-8B-Q4_K_M.gguf).
    "hf.co/unsloth/Qwen3-8B-GGUF:q4_k_m": "download it first: hf download unsloth/Qwen3-8B-GGUF --include "
    "'*Q4_K_M*.gguf' --local-dir ./Qwen3-8B-GGUF, then --gguf ./Qwen3-8B-GGUF",
    # A tag that names no type stays as given (a part of the file's name, in its case); Ollama's default tag of
    # another repo: a file the user picks; a tag of the official repo that names no type: a variant to give.
    "hf.co/city96/Wan2.1-T2V-14B-gguf:14b-Q4_K_M": "download it first: hf download city96/Wan2.1-T2V-14B-gguf "
    "--include '*14b-Q4_K_M*.gguf' --local-dir ./Wan2.1-T2V-14B-gguf, then --gguf ./Wan2.1-T2V-14B-gguf",
    "hf.co/unsloth/Qwen3-8B-GGUF:latest": "download it first: hf download unsloth/Qwen3-8B-GGUF --include "
    "FILE.gguf --local-dir ./Qwen3-8B-GGUF, then --gguf ./Qwen3-8B-GGUF",
    f"hf.co/{GGUF_REPO}:banana": "e.g. --gguf Q4_K_M",
    # A folder's page: its name was read as a tag, and '*vae*.gguf' fetched nothing of vae/x.gguf. The folder's
    # files, and the folder to give; a file that is no GGUF: its folder's; the official repo's: the variant its name
    # carries (a folder per variant is a common layout), else a variant to give.
    "https://huggingface.co/someone/gguf/tree/main/vae": "download it first: hf download someone/gguf --include "
    "'vae/*.gguf' --local-dir ./gguf, then --gguf ./gguf/vae",
    "https://huggingface.co/someone/gguf/tree/v2/sub/q8/": "download it first: hf download someone/gguf --include "
    "'sub/q8/*.gguf' --revision v2 --local-dir ./gguf, then --gguf ./gguf/sub/q8",
    "https://huggingface.co/someone/gguf/blob/main/vae/config.json": "download it first: hf download someone/gguf "
    "--include 'vae/*.gguf' --local-dir ./gguf, then --gguf ./gguf/vae",
    f"https://huggingface.co/{GGUF_REPO}/tree/main/Q8_0": "carries; --gguf Q8_0",
    f"https://huggingface.co/{GGUF_REPO}/tree/main/vae": "e.g. --gguf Q4_K_M",
    # The checkpoint's repo holds no GGUF: the download given was `--include 'transformer/*.gguf'`, which fetched
    # nothing. Its safetensors go with -m, a GGUF is a variant of the GGUF repo (the one a tag names).
    f"https://huggingface.co/{MOTIF_REPO}/tree/main/transformer": f"-m {MOTIF_REPO} runs its safetensors as they "
    f"are (leave out --gguf); the GGUF files are the variants of {GGUF_REPO}: e.g. --gguf Q4_K_M",
    f"https://huggingface.co/{MOTIF_REPO}/blob/main/transformer/config.json": f"variants of {GGUF_REPO}: e.g. --gguf "
    "Q4_K_M",
    f"https://huggingface.co/{MOTIF_REPO.lower()}": f"variants of {GGUF_REPO}: e.g. --gguf Q4_K_M",
    f"hf.co/{MOTIF_REPO}:q4_k_m": f"variants of {GGUF_REPO}: --gguf q4_k_m",
}


@pytest.mark.parametrize("address", GGUF_ADDRESSES)
def test_a_hub_address_given_to_gguf_says_what_to_give_instead(address, no_network, in_folder, capsys):
    # It used to be "no such GGUF file: https:/huggingface.co/..." (the path's // made one), with no fix.
    with pytest.raises(CheckpointError) as error:
        find_gguf(address)
    fix = in_folder(GGUF_ADDRESSES[address])
    assert str(error.value).startswith(f"{address}: --gguf ") and str(error.value).endswith(fix)
    assert cli.main(["check", "--gguf", address]) == 2
    assert f"problem  {address}: --gguf " in capsys.readouterr().out


@pytest.mark.parametrize("address", [f"hf.co/{GGUF_REPO}:Q4_K_M", f"{GGUF_REPO}:q4km", "unsloth/Qwen3-8B-GGUF:Q4_K_M"])
def test_a_hub_address_given_to_gguf_is_said_before_the_checkpoint_downloads(empty_cache_run, fake_hub, address):
    # Ollama's and LM Studio's `hf.co/OWNER/REPO:TAG`, in a run whose checkpoint is not in the cache: what to give
    # instead, with nothing downloaded.
    code, err = empty_cache_run("--gguf", address)
    assert code == cli.EXIT_USER_ERROR and f"error: {address}: --gguf " in err, err
    assert "downloading" not in err and fake_hub.downloads == []


@pytest.mark.parametrize(("address", "holds"), [
    (f"https://huggingface.co/{MOTIF_REPO}/tree/main/transformer", "the folder transformer/ of "),
    (f"https://huggingface.co/{MOTIF_REPO}", ""),
])  # fmt: skip
def test_the_checkpoints_repo_given_to_gguf_is_refused_as_holding_none_before_any_download(
    empty_cache_run, fake_hub, address, holds
):
    code, err = empty_cache_run("--gguf", address)
    said = f"error: {address}: --gguf takes a GGUF file, and {holds}{MOTIF_REPO} holds none; -m {MOTIF_REPO} runs its"
    assert code == cli.EXIT_USER_ERROR and said in err, err
    assert "hf download" not in err and "downloading" not in err and fake_hub.downloads == []


def test_the_checkpoints_repo_folder_given_to_gguf_is_listed_from_the_cache(no_network):
    snapshot = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    (snapshot / "transformer").mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (snapshot / "transformer" / name).write_text("cached")
    address = f"https://huggingface.co/{MOTIF_REPO}/tree/main/transformer"
    with pytest.raises(CheckpointError) as error:
        find_gguf(address)
    assert str(error.value).startswith(f"{address}: --gguf takes a GGUF file, and the folder transformer/ of "
                                       f"{MOTIF_REPO} holds none (it holds config.json, "
                                       "diffusion_pytorch_model.safetensors); -m ")  # fmt: skip
    (snapshot / "model_index.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"holds none \(it holds model_index.json, transformer/\); -m "):
        find_gguf(f"https://huggingface.co/{MOTIF_REPO}")


def test_the_checkpoints_repo_folder_given_to_text_encoder_gguf_says_how_to_make_one(checkpoint, no_network):
    address = f"https://huggingface.co/{MOTIF_REPO}/tree/main/text_encoder"
    with pytest.raises(CheckpointError) as error:
        find_text_encoder_gguf(checkpoint, address, str(checkpoint))
    assert str(error.value) == (
        f"{address}: --text-encoder-gguf takes a GGUF file, and the folder text_encoder/ of {MOTIF_REPO} holds none; "
        f"-m {MOTIF_REPO} runs its safetensors as they are (leave out --text-encoder-gguf), or make a text encoder "
        f"GGUF from them: python -m motif_lite.quantize {MOTIF_REPO} --component text_encoder --type Q8_0 -o "
        "te-Q8_0.gguf, then --text-encoder-gguf te-Q8_0.gguf"
    )


def test_a_hub_folder_given_to_gguf_gets_its_folders_download_in_a_dry_run(empty_cache_run, fake_hub, in_folder):
    address = "https://huggingface.co/someone/gguf/tree/main/vae"
    code, err = empty_cache_run("--dry-run", "--gguf", address)
    fix = in_folder("--include 'vae/*.gguf' --local-dir ./gguf, then --gguf ./gguf/vae")
    assert code == cli.EXIT_USER_ERROR and fix in err, err
    assert "'*vae*.gguf'" not in err and fake_hub.downloads == []


TEXT_ENCODER_ADDRESSES = {
    "https://huggingface.co/someone/te-gguf/resolve/main/te-Q8_0.gguf": "download it first: hf download "
    "someone/te-gguf te-Q8_0.gguf --local-dir ./te-gguf, then --text-encoder-gguf ./te-gguf/te-Q8_0.gguf",
    "https://huggingface.co/someone/te-gguf/tree/main/te": "download it first: hf download someone/te-gguf "
    "--include 'te/*.gguf' --local-dir ./te-gguf, then --text-encoder-gguf ./te-gguf/te",
}


def test_another_revision_of_the_checkpoints_repo_given_to_gguf_keeps_it(checkpoint, no_network, in_folder):
    # The fix said -m Motif-Technologies/Motif-Video-2B, which runs main, not the dev the address named: it gives
    # the download of that revision into a folder, as -m's own check of the same address does.
    address = f"https://huggingface.co/{MOTIF_REPO}/tree/dev"
    download = in_folder(
        f"download 'dev' into a folder: hf download {MOTIF_REPO} --revision dev --local-dir ./Motif-Video-2B"
    )
    with pytest.raises(CheckpointError) as error:
        find_gguf(address)
    runs = in_folder(" -m ./Motif-Video-2B runs its safetensors as they are")
    assert f"holds none; {download}, then{runs}" in str(error.value)
    with pytest.raises(CheckpointError) as error:
        find_text_encoder_gguf(checkpoint, address, str(checkpoint))
    quantize = in_folder("motif_lite.quantize ./Motif-Video-2B --component")
    assert download in str(error.value) and quantize in str(error.value)


def test_the_gguf_repo_given_to_text_encoder_gguf_says_how_to_make_one(checkpoint, no_network):
    # It gave the download of the transformer's *Q8_0*.gguf as the text encoder, though the GGUF repo holds the
    # transformer's files only (as the checkpoint's repo's error says): the quantizer's command instead.
    address = f"hf.co/{GGUF_REPO}:Q8_0"
    with pytest.raises(CheckpointError) as error:
        find_text_encoder_gguf(checkpoint, address, str(checkpoint))
    assert str(error.value) == (
        f"{address}: --text-encoder-gguf takes a text encoder GGUF file, and {GGUF_REPO} holds the transformer's "
        f"only; make one from the checkpoint's text encoder: python -m motif_lite.quantize {MOTIF_REPO} --component "
        "text_encoder --type Q8_0 -o te-Q8_0.gguf, then --text-encoder-gguf te-Q8_0.gguf"
    )


@pytest.mark.parametrize("address", TEXT_ENCODER_ADDRESSES)
def test_a_hub_address_given_to_text_encoder_gguf_says_what_to_give_instead(
    address, checkpoint, no_network, in_folder, capsys
):
    # It was "no such text encoder GGUF file: https:/huggingface.co/..." with the quantizer's command writing into
    # that "path" as the fix.
    with pytest.raises(CheckpointError) as error:
        find_text_encoder_gguf(checkpoint, address, str(checkpoint))
    assert str(
        error.value
    ) == f"{address}: --text-encoder-gguf reads a file on this machine, not a web address; " + in_folder(
        TEXT_ENCODER_ADDRESSES[address]
    )
    assert cli.main(["check", "-m", str(checkpoint), "--text-encoder-gguf", address]) == 2
    assert f"problem  {address}: --text-encoder-gguf reads a file" in capsys.readouterr().out


MODEL_ADDRESSES = {
    f"https://huggingface.co/{MOTIF_REPO}": f"-m {MOTIF_REPO}",
    f"huggingface.co/{MOTIF_REPO}/tree/main/": f"-m {MOTIF_REPO}",
    # A folder of the repo: its name was read as llama.cpp's :TAG, so it was called a GGUF file for --gguf.
    f"https://huggingface.co/{MOTIF_REPO}/tree/main/vae": f"-m {MOTIF_REPO}",
    f"https://huggingface.co/{MOTIF_REPO}/tree/main/transformer/": f"-m {MOTIF_REPO}",
    f"https://huggingface.co/{MOTIF_REPO}/tree/v2": f"hf download {MOTIF_REPO} --revision v2 --local-dir "
    "./Motif-Video-2B, then -m ./Motif-Video-2B",
    OFFICIAL_Q4: "it goes to --gguf: --gguf Q4_K_M",
    # llama.cpp's repo:TAG of the checkpoint's repo, which holds no GGUF: it named the repo, not a GGUF file.
    f"hf.co/{MOTIF_REPO}:Q4_K_M": f"-m {MOTIF_REPO} --gguf Q4_K_M",  # the variant asked for is kept
    f"hf.co/{MOTIF_REPO}:latest": f"-m {MOTIF_REPO}",  # Ollama's default tag names no variant
    f"hf.co/{GGUF_REPO}:Q8_0": "it goes to --gguf: --gguf Q8_0",  # llama.cpp's repo:TAG names a GGUF file too
}


@pytest.mark.parametrize("address", MODEL_ADDRESSES)
def test_a_hub_address_given_to_m_says_what_to_give_instead(address, no_network, in_folder, capsys):
    fix = in_folder(MODEL_ADDRESSES[address])
    with pytest.raises(CheckpointError) as error:
        find_checkpoint(address)
    assert str(error.value).endswith(fix) and "no such" not in str(error.value)
    assert cli.main(["check", "-m", address]) == 2
    assert f"problem  {address}: " in (out := capsys.readouterr().out) and fix in out


def test_a_gguf_file_that_is_not_there_says_what_gguf_takes(no_network, tmp_path, monkeypatch):
    # `--gguf q4_k_m.gguf` in a folder without it, meant as the official variant: it said only "no such GGUF file".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("q4_k_m.gguf")
    assert str(error.value) == (
        f"no such GGUF file: q4_k_m.gguf; give the path of a .gguf file, or a variant of {GGUF_REPO} without .gguf "
        "(for this name: --gguf Q4_K_M), which is downloaded"
    )


def test_an_official_file_name_or_the_gguf_repo_that_is_not_there_names_the_variant(no_network, tmp_path, monkeypatch):
    # The repo's own file name (as `hf download` or a model page shows it) or its id, typed where the file is not:
    # the variant to give was "e.g. --gguf Q4_K_M" whatever the name said.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"\(for this name: --gguf Q8_0\), which is downloaded$"):
        find_gguf("motif-video-2b-Q8_0.gguf")
    with pytest.raises(CheckpointError) as error:
        find_gguf(GGUF_REPO)
    assert (
        str(error.value)
        == f"{GGUF_REPO} is the official GGUF repo: --gguf takes one of its variants, e.g. --gguf Q4_K_M"
    )


def test_a_local_file_named_like_a_hub_address_is_read_as_a_file(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Org").mkdir()
    (tmp_path / "Org" / "Name:Q4_K_M").write_bytes(b"GGUF")
    assert find_gguf("Org/Name:Q4_K_M") == Path("Org/Name:Q4_K_M")
    from motif_lite.io.hub import model_address_problem

    assert model_address_problem("Org/Name:model.safetensors") is not None
    (tmp_path / "Org" / "Name:model.safetensors").write_bytes(b"{}")  # given to -m: the file's own message
    assert model_address_problem("Org/Name:model.safetensors") is None


def test_a_repo_id_in_other_letter_case_reads_the_cached_repo(no_network, tmp_path):
    # The Hub takes either spelling, the cache's folders do not: it was "missing files", or online a second download.
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    (repo / "snapshots" / "abc" / "vae").mkdir(parents=True)
    (repo / "snapshots" / "abc" / "vae" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    assert find_checkpoint("motif-technologies/motif-video-2b", ["vae/config.json"]) == repo / "snapshots" / "abc"
    with pytest.raises(MissingFilesError) as error:  # what the cache lacks is fetched under the cached spelling
        find_checkpoint("motif-technologies/motif-video-2b", ["vae/config.json", "tokenizer/*"])
    local = posix_quoted(str(Path.cwd() / "Motif-Video-2B"))  # quoted as the hint does: a cwd may hold a space
    assert f"hf download {MOTIF_REPO} --include" in str(error.value) and f"--local-dir {local}" in str(error.value)


def test_of_two_cached_spellings_the_one_with_a_snapshot_is_read(no_network):
    # A folder of another spelling that no download finished (no refs/main) sorts first: the complete one is read,
    # not the empty one, which would fetch the whole checkpoint again.
    (no_network / "models--MOTIF-Technologies--Motif-Video-2B" / "blobs").mkdir(parents=True)
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    (repo / "snapshots" / "abc" / "vae").mkdir(parents=True)
    (repo / "snapshots" / "abc" / "vae" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    assert hub.cached_spelling("motif-technologies/motif-video-2b") == MOTIF_REPO
    assert find_checkpoint("motif-technologies/motif-video-2b", ["vae/config.json"]) == repo / "snapshots" / "abc"


@pytest.mark.parametrize(("small", "said"), [(1, "1 small file)"), (2, "2 small files or folders)")])
def test_the_small_files_of_a_download_are_counted_in_words(no_network, small, said):
    sizes = {"transformer/model.safetensors": 4 * 10**9, "model_index.json": 500, "scheduler/config.json": 400}
    plan = hub.DownloadPlan.of(MOTIF_REPO, dict(list(sizes.items())[: 1 + small]), [], None)
    assert f"(transformer/ {file_size(4 * 10**9)}, {said}" in plan.describe()


def test_a_cached_file_whose_blob_a_clean_up_removed_is_missing(no_network):
    # The cache's files are links into its blobs/: a clean-up that removed a blob (or a download stopped between
    # two files) leaves a link to nothing, which no reader can open; `hf download` fetches it again, so it is named
    # as missing and the snapshot is not used.
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    vae = repo / "snapshots" / "abc" / "vae"
    vae.mkdir(parents=True)
    (vae / "config.json").write_text("{}")
    (vae / "diffusion_pytorch_model.safetensors").symlink_to(repo / "blobs" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint(MOTIF_REPO, ["vae/config.json", "vae/diffusion_pytorch_model.safetensors*"], ["vae/*"])
    # Named, also offline: the cache holds part of `vae/*`, so the pattern alone would name nothing.
    assert f"{MOTIF_REPO}: vae/diffusion_pytorch_model.safetensors* (HF_HUB_OFFLINE=1 is set)" in str(error.value)
    assert f"hf download {MOTIF_REPO} --include" in str(error.value)


def test_a_fetch_into_a_new_snapshot_checks_its_configs_against_its_own_model_index(fake_hub, checkpoint, monkeypatch):
    # The cached snapshot (an older revision) lists a CFG guider whose config it lacks, so the guider is fetched;
    # the Hub's main has moved on since, and the download is a new snapshot folder that lists and holds an APG
    # guider. The old folder's model_index.json was checked against the new folder's guider config: a valid
    # checkpoint refused, with a message naming a model_index.json that does not say what it quoted.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.checkpoint_configs import CheckpointConfigs

    free_space(monkeypatch, 10**14)
    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B"
    old, new = repo / "snapshots" / ("a" * 40), repo / "snapshots" / ("b" * 40)
    shutil.copytree(checkpoint, old, ignore=lambda folder, names: ["guider"] if Path(folder) == checkpoint else [])
    index = json.loads((old / "model_index.json").read_text())
    index["guider"] = ["diffusers", "ClassifierFreeGuidance"]
    (old / "model_index.json").write_text(json.dumps(index))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    fake_hub.snapshot = shutil.copytree(checkpoint, new)
    sources = locate_sources(MOTIF_REPO)
    assert [patterns for _, patterns in fake_hub.downloads if "guider/*" in patterns]  # the guider was fetched
    assert sources.root == new
    assert sources.configs == CheckpointConfigs.read(new)  # the new folder's configs, as read on their own


def test_hf_hub_offline_is_named_as_what_stops_the_download(no_network):
    # A notebook set HF_HUB_OFFLINE=1 on a machine that has a network: unsetting it is the fix, before the commands.
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint(MOTIF_REPO, download=["vae/*"])
    lines = str(error.value).splitlines()
    unset = "With a network here, unset HF_HUB_OFFLINE and run again: they then download themselves."
    assert lines[lines.index(unset) + 1].startswith("Download them")


def test_a_typo_in_the_gguf_variant_is_said_before_the_checkpoint_downloads(fake_hub, monkeypatch, tmp_path):
    from motif_lite.checkpoint import locate_sources

    free_space(monkeypatch, 10**12)
    with pytest.raises(CheckpointError) as error:
        locate_sources(MOTIF_REPO, gguf="Q6_K")  # a type the repo has no file of
    assert str(error.value) == (
        f"no file in {GGUF_REPO} match variant 'Q6_K'; available: {', '.join(sorted(GGUF_FILES))}"
    )
    assert fake_hub.downloads == []
    # A right one: the GGUF repo is listed once for both the check and the download.
    fake_hub.snapshot, fake_hub.listed = tmp_path, []  # a checkpoint "downloaded" without its files
    with pytest.raises(MissingFilesError):
        locate_sources(MOTIF_REPO, gguf="Q4_K_M")
    assert fake_hub.listed == [GGUF_REPO, MOTIF_REPO]
    assert [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO, GGUF_REPO]


def test_a_first_run_with_a_gguf_variant_counts_both_downloads_before_the_first(
    fake_hub, monkeypatch, tmp_path, capsys
):
    # A disk with room for the checkpoint but not for the GGUF file after it: the checkpoint's 8.9 GB downloaded,
    # over a slow link, and only then was the GGUF file refused for want of room.
    from motif_lite.checkpoint import locate_sources

    checkpoint, gguf = selected(WITH_GGUF), GGUF_FILES["motif-video-2b-Q4_K_M.gguf"]
    free_space(monkeypatch, checkpoint + gguf - 1)
    with pytest.raises(CheckpointError) as error:
        locate_sources(MOTIF_REPO, gguf="Q4_K_M")
    assert str(error.value).startswith(
        f"not enough disk space to download {MOTIF_REPO} and then {GGUF_REPO}: they need "
        f"{file_size(checkpoint + gguf)} ({file_size(checkpoint)} + {file_size(gguf)}) in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE}, whose disk has {file_size(checkpoint + gguf - 1)} free; free space there"
    )
    assert fake_hub.downloads == []
    # Room for both: the first line says both, and the total.
    free_space(monkeypatch, checkpoint + gguf)
    fake_hub.snapshot = tmp_path  # a checkpoint "downloaded" without its files: the test stops there
    with pytest.raises(MissingFilesError):
        locate_sources(MOTIF_REPO, gguf="Q4_K_M")
    assert [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO, GGUF_REPO]
    said = capsys.readouterr().err
    assert f"downloading {file_size(checkpoint)} of {MOTIF_REPO} (text_encoder/ " in said
    assert f"), then {file_size(gguf)} of {GGUF_REPO} (motif-video-2b-Q4_K_M.gguf): " in said
    assert f": {file_size(checkpoint + gguf)} in all, into the Hugging Face cache" in said


@pytest.mark.parametrize(("typed", "closest"), [("Q4KM", "Q4_K_M"), ("4bit", "Q4_K_M"), ("Q4_K_N", "Q4_K_M")])
def test_a_variant_that_is_no_types_name_is_said_before_the_hub_is_asked(fake_hub, monkeypatch, typed, closest):
    # Offline it was the `hf download --include '*Q4KM*.gguf'` command, which fetches nothing; without a connection
    # "cannot reach": the name is said first, with the closest one and the names there are.
    free_space(monkeypatch, 10**12)
    # In a Python caller's words as well as run's: find_gguf is what load_pipeline(gguf=...) reaches.
    said = (
        f"--gguf {typed} (in Python gguf={typed!r}): no such file, and no quantization type has that name; the "
        f"closest is {closest}: --gguf {closest} (in Python gguf={closest!r}); "
    )
    fake_hub.fail = ConnectionError("no route to host")  # online, no connection
    for offline in (False, True):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        with pytest.raises(CheckpointError) as error:
            find_gguf(typed)
        assert str(error.value).startswith(said) and "Q4_K_M, Q4_K_S" in str(error.value)
        with pytest.raises(CheckpointError, match=re.escape(said)):
            check_gguf_variant(typed, hub.HubAccess())  # before the checkpoint's download
    assert fake_hub.listed == fake_hub.downloads == []


def test_a_variant_close_to_no_type_gets_the_names_there_are_and_no_closest(fake_hub):
    # No "the closest is None" nor "--gguf None" for a name no recipe is near: the names to choose from.
    with pytest.raises(CheckpointError) as error:
        find_gguf("banana")
    said = str(error.value)
    assert said.startswith(
        "--gguf banana (in Python gguf='banana'): no such file, and no quantization type has that name: a variant of "
    )
    assert "Q4_K_M, Q4_K_S" in said and "closest" not in said and "None" not in said, said
    assert fake_hub.listed == fake_hub.downloads == []


def test_a_variant_in_other_letter_case_is_downloaded_by_the_repos_spelling(no_network, tmp_path, monkeypatch):
    # `hf download --include '*q4_k_m*.gguf'` matches letter case: it fetched nothing of motif-video-2b-Q4_K_M.gguf.
    with pytest.raises(MissingFilesError) as error:
        find_gguf("q4_k_m")
    assert f"hf download {GGUF_REPO} --include '*Q4_K_M*.gguf'" in str(error.value)
    with pytest.raises(MissingFilesError) as error:
        find_gguf("fp16")  # the quantizer's alias: the files say F16 (it was '*FP16*.gguf', which fetches nothing)
    assert f"hf download {GGUF_REPO} --include '*F16*.gguf'" in str(error.value)
    monkeypatch.chdir(tmp_path)
    for typed in ("Q4-K-M", "q4km.gguf", "Q4KM.GGUF"):  # not a variant's characters, or a file name: the variant
        with pytest.raises(CheckpointError, match=r"\(for this name: --gguf Q4_K_M\), which is downloaded$"):
            find_gguf(typed)
    with pytest.raises(CheckpointError, match=r"\(e.g. --gguf Q4_K_M\), which is downloaded$"):
        find_gguf("../q4km.gguf")  # a path to a file, not a name: no guess at the variant


@pytest.mark.parametrize("variant", ["IQ3_M", "q3_k_l", "Q2_K_S"])
def test_llama_cpps_file_types_are_variants_the_hub_is_asked_for(no_network, variant):
    # Types llama.cpp makes files of (not gguf-py's tensor types): asked of the Hub, not refused as unknown names.
    with pytest.raises(MissingFilesError) as error:
        find_gguf(variant)
    assert f"--include '*{variant.upper()}*.gguf'" in str(error.value), str(error.value)


def test_unset_hf_hub_offline_is_said_only_when_it_is_set(fake_hub):
    # Downloads off for another reason (check, a dry run): no advice about a setting the user did not make.
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint(MOTIF_REPO, download=["vae/*"], hub=hub.HubAccess(download=False))
    assert "HF_HUB_OFFLINE" not in str(error.value) and "Download them" in str(error.value)


def test_an_unknown_gguf_repo_is_one_line_naming_gguf(fake_hub):
    # The GGUF repo missing on the endpoint (a mirror without it): "no such repo" with --gguf, no download command.
    fake_hub.fail = http_error(RepositoryNotFoundError, 404)
    with pytest.raises(CheckpointError) as error:
        find_gguf("Q4_K_M")
    assert not isinstance(error.value, MissingFilesError)
    assert str(error.value).startswith(f"{GGUF_REPO} (--gguf): no such model repo on {constants.ENDPOINT}")


def test_the_variant_check_asks_the_hub_once_and_only_when_it_may(fake_hub, tmp_path, monkeypatch):
    # A failed listing is not asked again in the same request: the download reports the failure the check passed
    # over.
    fake_hub.fail = ConnectionError("no route to host")
    access = hub.HubAccess()
    check_gguf_variant("Q4_K_M", access)
    with pytest.raises(MissingFilesError, match="cannot reach"):
        find_gguf("Q4_K_M", access)
    assert fake_hub.listed == [GGUF_REPO]
    # No listing with downloads off (a dry run, check), even for a typo; none for a variant the cache holds.
    fake_hub.fail, fake_hub.listed = None, []
    check_gguf_variant("Q6_K", hub.HubAccess(download=False))
    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B-GGUF"
    (repo / "snapshots" / ("1" * 40)).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    (repo / "snapshots" / ("1" * 40) / "motif-video-2b-Q4_K_M.gguf").write_bytes(b"GGUF")
    check_gguf_variant("Q4_K_M", hub.HubAccess())
    assert fake_hub.listed == []


def test_the_partial_bytes_count_up_to_what_is_fetched(fake_hub, resuming_hub, capsys):
    # Interrupted downloads of other files (a transformer a GGUF now replaces) cannot make the bytes to fetch
    # negative or say more is there than is fetched; a plan with nothing to fetch says nothing.
    blobs = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "big.incomplete").write_bytes(b"\0" * 5000)
    plan = hub.DownloadPlan.of(MOTIF_REPO, {"vae/config.json": 900}, ["vae/*"], None)
    assert (plan.partial, plan.needed) == (900, 0)
    hub.start_download(hub.DownloadPlan.of(MOTIF_REPO, CHECKPOINT_FILES, ["nothing/*"], None))
    assert capsys.readouterr().err == ""


def test_a_file_named_like_a_revision_is_a_file_to_check(tmp_path, monkeypatch, capsys):
    # ./Org/Name@v2 that exists is the user's file, not a repo at a revision.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Org").mkdir()
    (tmp_path / "Org" / "Name@v2").write_bytes(b"not a checkpoint")
    assert cli.main(["check", "-m", "Org/Name@v2"]) == 2
    out = capsys.readouterr().out
    assert "problem  Org/Name@v2: is a file, not a checkpoint folder" in out and "revision" not in out


def test_the_suite_has_a_temporary_hugging_face_cache_and_no_token(tmp_path_factory):
    # tests/conftest.py's `private_caches`: Hugging Face reads HF_HOME, HF_TOKEN and HF_HUB_OFFLINE as it is imported,
    # so the tests used the contributor's cache and token, and their offline mode.
    from huggingface_hub import get_token

    base = tmp_path_factory.getbasetemp()
    assert Path(constants.HF_HUB_CACHE).is_relative_to(base) and Path(constants.HF_TOKEN_PATH).is_relative_to(base)
    assert get_token() is None and not constants.HF_HUB_OFFLINE


def test_a_hook_before_the_download_comes_after_the_space_check_and_can_stop_it(fake_hub, monkeypatch):
    # `HubAccess.before_download`: where `run` asks its CPU time question, just before the gigabytes come.
    plans = []
    free_space(monkeypatch, selected(WITH_GGUF) - 1)
    with pytest.raises(CheckpointError, match="not enough disk space"):  # no room: said before any question
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF, hub=hub.HubAccess(before_download=plans.append))
    assert plans == []
    free_space(monkeypatch, 10**12)

    def refuse(plan: hub.DownloadPlan) -> None:
        plans.append(plan)
        raise MotifLiteError("not started")

    with pytest.raises(MotifLiteError) as error:
        find_checkpoint(MOTIF_REPO, download=WITH_GGUF, hub=hub.HubAccess(before_download=refuse))
    assert str(error.value) == "not started" and not isinstance(error.value, MissingFilesError)
    with pytest.raises(MotifLiteError, match="^not started$"):
        find_gguf("Q4_K_M", hub.HubAccess(before_download=refuse))
    assert [(plan.repo, sum(plan.files.values())) for plan in plans] == [
        (MOTIF_REPO, selected(WITH_GGUF)),
        (GGUF_REPO, GGUF_FILES["motif-video-2b-Q4_K_M.gguf"]),
    ]
    assert fake_hub.downloads == []


class Reached(Exception):
    """Raised by the stand-in for load_pipeline: the run went past its checks and its question."""


@pytest.fixture
def slow_cpu(monkeypatch):
    """A machine without a GPU torch can use, whose CPU does 1 MFLOP/s (any run is long there: even the tiny
    checkpoint's), a disk with room, and a run that stops where it would load."""
    import torch

    from motif_lite import pipeline
    from motif_lite.runtime import cost

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: 1e6)
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.0)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))
    free_space(monkeypatch, 10**12)


def answering(monkeypatch, answer: str | None) -> list[str]:
    """The questions asked on a terminal, each answered `answer`; None: no terminal."""
    questions: list[str] = []
    monkeypatch.setattr("motif_lite.cli.run_time.can_ask", lambda: answer is not None)
    monkeypatch.setattr("builtins.input", lambda prompt: questions.append(prompt) or answer)
    return questions


def test_the_cpu_time_question_comes_before_the_checkpoint_downloads(fake_hub, slow_cpu, monkeypatch, tmp_path, capsys):
    # Before: a CPU-only torch and an empty cache downloaded the whole checkpoint (10+ GB), and then asked whether to
    # start a run of months. Now the question comes first, from the official configs (the checkpoint's are not here).
    run = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4")]
    answering(monkeypatch, None)
    assert cli.main(run) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: on the CPU this run (1280x736x121, 50 steps) is 4.9e+17 FLOPs" in err
    assert "Pass --yes to start it anyway." in err and "downloading" not in err and fake_hub.downloads == []
    questions = answering(monkeypatch, "n")
    assert cli.main(run) == cli.EXIT_USER_ERROR
    assert "error: not started" in capsys.readouterr().err and fake_hub.downloads == []
    assert questions[0].endswith(f"Start it anyway (downloading {file_size(selected(['*']))} of {MOTIF_REPO} first)? "
                                 "[y/N] ")  # fmt: skip
    # --yes: said once, before the download (which fails here: the fake Hub has no files to give).
    assert cli.main([*run, "--yes"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("starting it (--yes)") == 1 and err.index("starting it (--yes)") < err.index("downloading")
    assert [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO]


def test_the_cpu_time_question_is_asked_once_when_the_download_came_after_it(
    checkpoint, fake_hub, slow_cpu, monkeypatch, tmp_path, capsys
):
    # Answered yes before the download, it is not asked again once the checkpoint's own configs are there.
    fake_hub.snapshot = checkpoint  # the download "gives" the tiny checkpoint
    questions = answering(monkeypatch, "y")
    run = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4")]  # long at 1 MFLOP/s, with either model's configs
    with pytest.raises(Reached):
        cli.main(run)
    assert len(questions) == 1 and "(downloading " in questions[0] and len(fake_hub.downloads) == 1
    capsys.readouterr()
    with pytest.raises(Reached):
        cli.main([*run, "--yes"])
    assert capsys.readouterr().err.count("starting it (--yes)") == 1
    # The checkpoint and a GGUF variant to download: asked before the first, not again before the second.
    questions.clear()
    fake_hub.downloads = []
    cli.main([*run, "--gguf", "Q4_K_M"])  # the fake Hub's GGUF file is nowhere: the run stops there
    assert len(questions) == 1 and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO, GGUF_REPO]
    # The question named the checkpoint's size alone, though the GGUF file follows: both, and the total.
    checkpoint_size, gguf_size = selected(WITH_GGUF), GGUF_FILES["motif-video-2b-Q4_K_M.gguf"]
    assert questions[0].endswith(
        f"(downloading {file_size(checkpoint_size)} of {MOTIF_REPO}, then {file_size(gguf_size)} of {GGUF_REPO} "
        f"first; {file_size(checkpoint_size + gguf_size)} in all)? [y/N] "
    )


def test_the_cpu_time_question_comes_before_a_gguf_variant_downloads(
    checkpoint, fake_hub, slow_cpu, monkeypatch, tmp_path, capsys
):
    # The checkpoint in the cache, the GGUF variant not: the question comes before the variant's download.
    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B"
    shutil.copytree(checkpoint, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    questions = answering(monkeypatch, "n")
    args = ["run", "--gguf", "Q4_K_M", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    assert cli.main(args) == cli.EXIT_USER_ERROR
    assert "error: not started" in capsys.readouterr().err and fake_hub.downloads == []
    size = file_size(GGUF_FILES["motif-video-2b-Q4_K_M.gguf"])
    assert len(questions) == 1 and f"(downloading {size} of {GGUF_REPO} first)? [y/N]" in questions[0]
    # Nothing to download (the checkpoint alone): asked after the checks, from its own configs, as it always was.
    answering(monkeypatch, None)
    fake_hub.listed = []
    assert cli.main(args[:1] + args[3:]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: on the CPU this run (1280x736x121, 50 steps) is " in err and "Pass --yes to start it" in err
    assert "downloading" not in err and fake_hub.downloads == fake_hub.listed == []


def test_the_cpu_time_question_before_a_download_counts_the_lora_adapters_work(
    checkpoint, fake_hub, slow_cpu, monkeypatch, tmp_path
):
    # The checkpoint in the cache, the GGUF variant not: its packed layers keep a LoRA's adapters beside them, whose
    # work the run's estimate counts after the download. The question before it counted the transformer alone.
    from test_lora_estimates import write_heavy_lora

    from motif_lite.preflight import locate_sources

    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B"
    shutil.copytree(checkpoint, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    lora = write_heavy_lora(tmp_path / "heavy.safetensors", locate_sources(checkpoint).transformer.value)
    questions = answering(monkeypatch, "n")
    # A small video of many steps: the tiny transformer's linears, which the adapters sit beside, are most of its work.
    args = ["run", "--gguf", "Q4_K_M", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    args += ["-W", "128", "-H", "128", "--video-frames", "17", "--steps", "1000"]
    assert cli.main(args) == cli.main([*args, "--lora", f"{lora}:0.5"]) == cli.EXIT_USER_ERROR
    assert len(questions) == 2 and all("(downloading " in question for question in questions), questions
    without, with_lora = (float(re.search(r" is (\S+) FLOPs", question)[1]) for question in questions)
    assert with_lora > 1.5 * without
    assert fake_hub.downloads == []


def test_a_lora_the_gguf_refuses_is_said_before_the_cpu_time_question_and_the_download(
    checkpoint, fake_hub, slow_cpu, monkeypatch, tmp_path, capsys
):
    # A .diff of a weight the GGUF will pack once passed the LoRA check of the files at hand (which read LoRAs
    # without the packed names) and was refused when the time question counted the adapters' work: that question
    # was skipped then, and the download started without asking. The check at hand knows the packed names now.
    import torch

    repo = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B"
    shutil.copytree(checkpoint, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    diff = lora_file(tmp_path / "diff.safetensors", {"transformer_blocks.0.attn.to_q.diff": torch.randn(64, 64)})
    questions = answering(monkeypatch, "n")
    args = ["run", "--gguf", "Q4_K_M", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    args += ["-W", "128", "-H", "128", "--video-frames", "17", "--steps", "1000"]
    assert cli.main([*args, "--lora", str(diff)]) == cli.EXIT_USER_ERROR
    assert questions == [] and "which a Q4_K_M GGUF holds quantized: our quantizer's" in capsys.readouterr().err
    assert cli.main(args) == cli.EXIT_USER_ERROR  # without it, the question (answered no)
    assert len(questions) == 1 and "(downloading " in questions[0], questions
    assert fake_hub.downloads == []


def test_local_mistakes_are_said_before_the_cpu_time_question_and_the_download(
    fake_hub, slow_cpu, monkeypatch, tmp_path, capsys
):
    answering(monkeypatch, None)
    run = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4")]
    assert cli.main([*run, "-i", str(tmp_path / "missing.png")]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "missing.png" in err and "Pass --yes" not in err and fake_hub.downloads == fake_hub.listed == []
    # A flag that contradicts another, and a typo in the GGUF variant (which the Hub's listing tells).
    assert cli.main([*run, "--gguf", "Q4_K_M", "--quantize", "Q8_0"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "leave out one of them" in err and "Pass --yes" not in err and fake_hub.downloads == []
    assert cli.main([*run, "--gguf", "Q6_K"]) == cli.EXIT_USER_ERROR  # a type the repo has no file of
    err = capsys.readouterr().err
    assert "match variant 'Q6_K'" in err and "Pass --yes" not in err and fake_hub.downloads == []


@pytest.fixture
def empty_cache_run(fake_hub, monkeypatch, tmp_path, capsys):
    """`motif-lite run --yes` of the official checkpoint on a machine without a GPU, online, its cache empty and its
    disk roomy (--yes: no CPU time question stops it before the download, however fast this CPU is): returns a
    function that runs it with more flags and gives (exit code, stderr)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)

    def run(*flags: str) -> tuple[int, str]:
        code = cli.main(["run", "--yes", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), *flags])
        return code, capsys.readouterr().err

    return run


def test_a_device_this_machine_lacks_is_said_before_the_checkpoint_downloads(empty_cache_run, fake_hub, monkeypatch):
    # It was said after the whole checkpoint (10+ GB) had downloaded: preflight collected it and went on.
    import torch

    code, err = empty_cache_run("--device", "cuda")
    assert code == cli.EXIT_USER_ERROR and err.count("CUDA is not available") == 1, err  # said once, not per holder
    assert "downloading" not in err and "hf download" not in err and fake_hub.downloads == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a one-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, err = empty_cache_run("--device", "cuda:3")
    assert code == cli.EXIT_USER_ERROR and "there are only 1 CUDA device(s)" in err
    assert "downloading" not in err and fake_hub.downloads == []


@pytest.mark.parametrize(
    ("device", "gpus", "said"),
    [
        ("CPU", 0, "unknown device 'CPU': device names are lower case: --device cpu"),
        ("Cuda:0", 1, "unknown device 'Cuda:0': device names are lower case: --device cuda:0"),
        ("cuda0", 1, "unknown device 'cuda0': a GPU's number goes after a colon: --device cuda:0"),
        ("gpu", 1, "unknown device 'gpu': a GPU is cuda here: --device cuda"),
        ("cuda:3", 1, "device 'cuda:3': there are only 1 CUDA device(s) here, numbered from 0: cuda:0; use one of"),
        ("mps", 0, "device 'mps', an Apple silicon GPU (mps), is not supported: motif-lite runs on CUDA GPUs"),
        ("metal", 0, "unknown device 'metal': a Mac's GPU (mps in torch) is not supported: motif-lite runs on CUDA"),
    ],
)
def test_a_device_name_is_said_with_the_one_meant_before_the_checkpoint_downloads(
    empty_cache_run, fake_hub, monkeypatch, device, gpus, said
):
    # "CPU" and "cuda0" were "unknown device ... (use auto, cpu, cuda or cuda:N)", "metal" too; `cuda:3` on a
    # one-GPU machine named no GPU to use instead.
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    code, err = empty_cache_run("--device", device)
    assert code == cli.EXIT_USER_ERROR and err.count(said) == 1, err
    assert "Traceback" not in err and "downloading" not in err and fake_hub.downloads == []


def test_a_wrong_weights_file_of_the_users_is_said_before_the_checkpoint_downloads(
    empty_cache_run, fake_hub, checkpoint, tmp_path
):
    # A file the user gave is read on this machine: its problem comes before the rest of the checkpoint downloads.
    import torch
    from safetensors.torch import load_file, save_file

    code, err = empty_cache_run("--vae", str(tmp_path / "missing.safetensors"))
    assert code == cli.EXIT_USER_ERROR and err.count("missing.safetensors does not exist") == 1, err
    assert "downloading" not in err and fake_hub.downloads == []
    truncated = tmp_path / "vae.safetensors"
    truncated.write_bytes((checkpoint / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()[:-100])
    code, err = empty_cache_run("--vae", str(truncated))
    assert code == cli.EXIT_USER_ERROR and f"{truncated}" in err and "replace it with a complete copy" in err
    assert fake_hub.downloads == []
    transformer = next((checkpoint / "transformer").glob("*.safetensors"))
    code, err = empty_cache_run("--vae", str(transformer))  # another component's file, given to the wrong flag
    assert code == cli.EXIT_USER_ERROR and "is not the VAE" in err and fake_hub.downloads == []
    scaled = tmp_path / "vae_fp8_scaled.safetensors"  # ComfyUI's fp8_scaled, which only the transformer may be
    vae = load_file(checkpoint / "vae" / "diffusion_pytorch_model.safetensors")
    save_file({**{n: t.to(torch.float8_e4m3fn) for n, t in vae.items()}, "scaled_fp8": torch.empty(0)}, scaled)
    code, err = empty_cache_run("--vae", str(scaled))
    assert code == cli.EXIT_USER_ERROR and "is a scaled fp8 file" in err and fake_hub.downloads == []
    prefixed = tmp_path / "transformer_comfy.safetensors"  # ComfyUI's prefix on some names only: neither layout
    stored = load_file(transformer)
    first = next(iter(stored))
    save_file({(f"model.diffusion_model.{n}" if n == first else n): t for n, t in stored.items()}, prefixed)
    code, err = empty_cache_run("--diffusion-model", str(prefixed))
    assert code == cli.EXIT_USER_ERROR and "neither ComfyUI's layout nor diffusers'" in err
    assert fake_hub.downloads == []
    scaled_transformer = tmp_path / "transformer_fp8_scaled.safetensors"  # to the wrong flag: said as that alone
    fp8 = {n: t.to(torch.float8_e4m3fn) for n, t in load_file(transformer).items()}
    save_file({**fp8, "scaled_fp8": torch.empty(0)}, scaled_transformer)
    code, err = empty_cache_run("--vae", str(scaled_transformer))
    assert code == cli.EXIT_USER_ERROR and "is not the VAE" in err and "is a scaled fp8 file" not in err, err
    # With a wrong device too: both, in one message, and still no download.
    code, err = empty_cache_run("--vae", str(tmp_path / "missing.safetensors"), "--device", "cuda")
    assert "CUDA is not available" in err and "missing.safetensors does not exist" in err
    assert fake_hub.downloads == []


def test_a_run_no_memory_plan_fits_is_refused_before_the_checkpoint_downloads(empty_cache_run, fake_hub, monkeypatch):
    # A 4 GB laptop GPU with 2 GiB free: even the smallest plan of the official video needs more. The refusal came
    # after the whole checkpoint (10+ GB) had downloaded; now the plan is made from the official configs first.
    import torch

    # On the CPU, --ram alone makes a plan: one it cannot hold is refused before the download too.
    code, err = empty_cache_run("--gguf", "Q4_K_M", "--ram", "1")
    assert code == cli.EXIT_USER_ERROR and "of host memory, but --ram is 1.00 GiB" in err, err
    assert "downloading" not in err and fake_hub.downloads == []
    # With --quantize, at the quantized sizes: 22 GiB holds a Q4_K_M run (about 21), not a bf16 one (about 24).
    code, err = empty_cache_run("--ram", "22")
    assert code == cli.EXIT_USER_ERROR and "of host memory, but --ram is 22.00 GiB" in err, err
    code, err = empty_cache_run("--quantize", "Q4_K_M", "--ram", "22")
    assert "--ram is" not in err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO], err
    fake_hub.downloads.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 2**30, 4 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3050 Laptop GPU")
    code, err = empty_cache_run("--gguf", "Q4_K_M")
    assert code == cli.EXIT_USER_ERROR and "1280x736x121 needs at least" in err and "At this budget" in err
    assert "downloading" not in err and fake_hub.downloads == []
    # --ram below what the run's host memory needs: refused before the download too, with the --ram that fits.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (7 * 2**30, 8 * 2**30))
    code, err = empty_cache_run("--gguf", "Q4_K_M", "--ram", "4")
    assert code == cli.EXIT_USER_ERROR and "of host memory, but --ram is 4.00 GiB" in err and "or give it --ram" in err
    assert "downloading" not in err and fake_hub.downloads == []
    # Another model's sizes are not guessed from the official ones: it is planned once its files are there.
    code, err = empty_cache_run("-m", "someone/motif-finetune", "--vram", "0.0001")
    assert "needs at least" not in err and [repo for repo, _ in fake_hub.downloads] == ["someone/motif-finetune"]


def test_a_rank_of_a_parallel_run_no_plan_fits_is_refused_before_the_checkpoint_downloads(
    fake_hub, monkeypatch, tmp_path
):
    # Under torchrun each rank had no check before its download: each fetched the checkpoint (10+ GB), then refused.
    # Now each plans what it will plan (one row per forward, the text encoder on the main rank only) first.
    import torch

    from motif_lite.cli.run_videos import Run
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.parallel import choose_layout

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    output = str(tmp_path / "fox.mp4")
    args = cli.build_parser().parse_args(["run", "-p", "fox", "-o", output, "--device", "cpu", "--vram", "0.0001"])
    args.weights = {}  # as run's main sets it (no --vae and such)
    request, _ = GenerationRequest("fox", output=output).resolve()
    for main in (True, False):
        rank = SimpleNamespace(layout=choose_layout(2, guided=True, heads=12), is_main=main)
        with pytest.raises(MotifLiteError, match="1280x736x121 needs at least"):
            Run(args, rank).generate([request], "cpu", [])
    assert fake_hub.downloads == []


def test_serve_refuses_what_no_plan_fits_before_the_checkpoint_downloads(fake_hub, monkeypatch):
    # serve planned its largest video once the checkpoint (10+ GB) was there, and refused it then.
    import torch

    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import ServerConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    args = cli.build_parser().parse_args(["serve", "--device", "cpu", "--vram", "0.0001"])
    args.weights = {}  # as serve's main sets it (no --vae and such)
    with pytest.raises(MotifLiteError, match="1280x736x121 needs at least"):
        load_served_pipeline(args, ServerConfig(model_name="m"), [])
    assert fake_hub.downloads == []
    args = cli.build_parser().parse_args(["serve", "--device", "cpu", "--vram", "0.0001", "--max-video", "64x64x5"])
    args.weights = {}
    with pytest.raises(MotifLiteError, match="64x64x5 needs at least"):  # the largest video jobs may ask for
        load_served_pipeline(args, ServerConfig(model_name="m", max_video=(64, 64, 5)), [])
    assert fake_hub.downloads == []


def test_a_bad_gguf_file_of_the_users_is_said_before_the_checkpoint_downloads(empty_cache_run, fake_hub, tmp_path):
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf_helpers import write_test_gguf

    code, err = empty_cache_run("--gguf", str(tmp_path / "typo.gguf"))
    assert code == cli.EXIT_USER_ERROR and "no such GGUF file" in err and fake_hub.downloads == []
    code, err = empty_cache_run("--text-encoder-gguf", str(tmp_path / "typo.gguf"))
    assert code == cli.EXIT_USER_ERROR and "no such text encoder GGUF file" in err and fake_hub.downloads == []
    spec = {"tok.weight": (np.ones((2, 32), np.float32), GGMLQuantizationType.F32, (2, 32))}
    llm = write_test_gguf(tmp_path / "llm.gguf", spec, arch="llama")  # another model's file
    for flag in ("--gguf", "--text-encoder-gguf"):
        code, err = empty_cache_run(flag, str(llm))
        assert code == cli.EXIT_USER_ERROR and "'llama'" in err and "downloading" not in err
        assert fake_hub.downloads == []


def test_a_bad_gguf_file_is_said_with_a_bad_weights_file_before_the_checkpoint_downloads(
    empty_cache_run, fake_hub, tmp_path
):
    # Every mistake in the files given at once: the GGUF's was read only while no other file had a problem.
    code, err = empty_cache_run("--vae", str(tmp_path / "missing.safetensors"), "--gguf", str(tmp_path / "typo.gguf"))
    assert code == cli.EXIT_USER_ERROR and "missing.safetensors does not exist" in err and "no such GGUF file" in err
    assert fake_hub.downloads == []


def test_a_speed_flag_the_device_cannot_run_is_said_before_the_checkpoint_downloads(
    empty_cache_run, fake_hub, monkeypatch
):
    # They were checked once the checkpoint was there: after its download.
    from motif_lite.runtime import compile as compiling

    code, err = empty_cache_run("--device", "cpu", "--attention-backend", "cudnn")
    assert code == cli.EXIT_USER_ERROR and "--attention-backend cudnn is a CUDA kernel" in err
    assert "downloading" not in err and fake_hub.downloads == []
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)  # no C++ compiler on this machine
    code, err = empty_cache_run("--device", "cpu", "--compile")
    assert code == cli.EXIT_USER_ERROR and "--compile on the CPU needs a C++ compiler" in err
    assert "downloading" not in err and fake_hub.downloads == []


def test_a_quantize_recipe_is_checked_before_anything_downloads(fake_hub, monkeypatch):
    # In Python no flag parser checks it first: an unknown recipe, or one with a GGUF besides, was said after the
    # checkpoint's (and the GGUF variant's) download.
    from motif_lite.errors import ConfigError
    from motif_lite.preflight import preflight

    free_space(monkeypatch, 10**12)
    with pytest.raises(ConfigError, match="^--quantize: "):
        preflight(MOTIF_REPO, device="cpu", quantize="Q4_X")
    with pytest.raises(ConfigError, match="leave out one of them$"):
        preflight(MOTIF_REPO, gguf="Q4_K_M", device="cpu", quantize="Q8_0")
    assert fake_hub.downloads == []


def test_the_cpu_time_question_before_a_download_counts_the_batch_and_the_quantizing(
    fake_hub, slow_cpu, monkeypatch, tmp_path, capsys
):
    # The estimate before the download is the one the run gives after it: every video of the batch, and the
    # quantizing as it loads.
    questions = answering(monkeypatch, "n")
    run = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "-b", "2", "--quantize", "Q8_0"]
    assert cli.main(run) == cli.EXIT_USER_ERROR
    assert "error: not started" in capsys.readouterr().err and fake_hub.downloads == []
    (question,) = questions
    assert "(1280x736x121, 50 steps, 2 videos)" in question, question
    assert "and quantizing the transformer to Q8_0 as it loads about " in question, question


def test_a_gpu_run_downloads_without_the_cpu_time_question(fake_hub, slow_cpu, monkeypatch, tmp_path, capsys):
    # The question is the CPU's: a run on a GPU (a long one gets a note after the checks) is not asked before its
    # download.
    import torch

    from motif_lite import devices, preflight

    for module in (devices, preflight):  # the checks' and the time question's
        monkeypatch.setattr(module, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * 2**30, 80 * 2**30))  # the plan's GPU
    answering(monkeypatch, None)
    run = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda", "--dtype", "bf16"]
    assert cli.main(run) != 0  # bf16 given: the default dtype asks the GPU its name
    assert "Pass --yes" not in capsys.readouterr().err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO]


def lora_file(path: Path, tensors: dict) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, path)
    return path


def lora_of(shape: tuple[int, int], module: str = "transformer_blocks.0.attn.to_q", rank: int = 2) -> dict:
    """A PEFT LoRA of one layer of `shape` (out, in)."""
    import torch

    out_features, in_features = shape
    return {
        f"transformer.{module}.lora_A.weight": torch.ones(rank, in_features),
        f"transformer.{module}.lora_B.weight": torch.ones(out_features, rank),
    }


def test_a_wrong_lora_file_is_said_before_the_checkpoint_downloads(empty_cache_run, fake_hub, tmp_path):
    # A LoRA file is read on this machine: it was read after the checkpoint (10+ GB) had downloaded.
    import torch

    (tmp_path / "notes.safetensors").write_text("not a safetensors file")
    vae = lora_file(tmp_path / "vae.safetensors", {"decoder.conv_in.weight": torch.ones(2, 2)})
    loha = {"transformer.transformer_blocks.0.attn.to_q.hada_t1": torch.ones(2, 2, 1, 1)}  # a Tucker LoHa: not read
    wrong = {
        tmp_path / "notes.safetensors": "is not a LoRA file: it is text, not weights",
        lora_file(tmp_path / "empty.safetensors", {}): "holds no tensors",
        vae: "is not a LoRA: it holds",
        lora_file(tmp_path / "loha.safetensors", loha): "is a LyCORIS LoHa or LoKr with a Tucker core",
        lora_file(tmp_path / "sdxl.safetensors", lora_of((640, 640), "down_blocks.1.attentions.0.proj_in")): (
            "none of its layers (1) matches a linear layer of the Motif-Video transformer"
        ),
        # Named like the official transformer's layers, shaped like another model's (the tiny test model's).
        lora_file(tmp_path / "tiny.safetensors", lora_of((64, 64))): "LoRA shapes for transformer_blocks.0.attn.to_q",
    }
    for file, said in wrong.items():
        code, err = empty_cache_run("--lora", str(file))
        assert code == cli.EXIT_USER_ERROR and said in err, err
        assert "downloading" not in err and fake_hub.downloads == []
    code, err = empty_cache_run("--lora", str(tmp_path / "tiny.safetensors"), "--device", "cuda")  # both at once
    assert "CUDA is not available" in err and "LoRA shapes" in err and fake_hub.downloads == []
    # A LoRA that fits the official transformer holds nothing: the download starts (and fails on the fake Hub).
    fits = lora_file(tmp_path / "style.safetensors", lora_of((1536, 1536)))
    code, err = empty_cache_run("--lora", str(fits))
    assert "downloading" in err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO]


def full_difference_lora(tmp_path: Path) -> Path:
    """A LoRA file holding a full difference (`.diff`) of the first block's to_q weight, which every packed format
    (a GGUF variant, --quantize, an fp8 file) keeps packed."""
    import torch

    layer = "diffusion_model.transformer_blocks.0.attn.to_q"
    return lora_file(tmp_path / "diff.safetensors", {f"{layer}.diff": torch.zeros(1536, 1536, dtype=torch.float16)})


def test_a_full_difference_of_a_weight_the_gguf_packs_is_refused_before_the_download(
    empty_cache_run, fake_hub, tmp_path
):
    # The LoRA check before a download read the files against a float model of the config, so a `.diff` of a
    # weight the Q4_K_M file holds quantized passed it: the refusal came after the download, as the run loaded.
    # The recipe's (or a GGUF file's) tensor table says which weights load packed without a byte of them.
    diff = full_difference_lora(tmp_path)
    code, err = empty_cache_run("--gguf", "Q4_K_M", "--lora", str(diff))
    # judged by our quantizer's recipe for the variant, and said so: the official file is not here to read
    said = "which a Q4_K_M GGUF holds quantized: our quantizer's Q4_K_M recipe packs it (the official file is not"
    assert code == cli.EXIT_USER_ERROR and said in err and "leave out --gguf" in err, err
    assert "downloading" not in err and fake_hub.downloads == []
    code, err = empty_cache_run("--lora", str(diff))  # bf16 weights take it: the download starts
    assert "downloading" in err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO], err


def test_a_full_difference_of_a_weight_quantize_packs_is_refused_before_the_download(
    empty_cache_run, fake_hub, tmp_path
):
    # --quantize packs the weights as its recipe says, as a GGUF variant not at hand does: the check at hand knew the
    # variant's packed names but read the LoRA against float weights for --quantize, so the refusal of a `.diff` of
    # a packed weight came once the checkpoint had downloaded.
    diff = full_difference_lora(tmp_path)
    code, err = empty_cache_run("--quantize", "Q4_K", "--lora", str(diff))
    said = "which --quantize Q4_K_M packs as it loads: a full difference applies to plain tensors only; leave out"
    assert code == cli.EXIT_USER_ERROR and said + " --quantize" in err, err
    assert "downloading" not in err and fake_hub.downloads == []


def test_a_full_difference_of_a_weight_an_fp8_diffusion_model_keeps_is_refused_before_the_download(
    empty_cache_run, fake_hub, tmp_path
):
    # The check before the download read the LoRA against the checkpoint at hand, leaving out the user's own
    # --diffusion-model: a `.diff` of a weight an fp8 file keeps in 8 bits was refused once the checkpoint had
    # downloaded. Its header alone says which weights it keeps so.
    from fp8_files import official_transformer_file

    fp8 = official_transformer_file(tmp_path / "motif_fp8_e4m3fn.safetensors", float8=True)
    diff = full_difference_lora(tmp_path)
    code, err = empty_cache_run("--diffusion-model", str(fp8), "--lora", str(diff))
    said = "which the fp8 transformer file keeps in 8 bits: a full difference applies to plain tensors only; use a bf16"
    assert code == cli.EXIT_USER_ERROR and said in err, err
    assert "downloading" not in err and fake_hub.downloads == []
    bf16 = official_transformer_file(tmp_path / "motif_bf16.safetensors")  # the same file in bf16 takes it
    code, err = empty_cache_run("--diffusion-model", str(bf16), "--lora", str(diff))
    assert "downloading" in err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO], err


def test_serves_wrong_lora_file_is_said_before_the_checkpoint_downloads(fake_hub, monkeypatch, tmp_path):
    # serve read its --lora files only as the model loaded: after the checkpoint (10+ GB) had downloaded.
    import torch

    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import ServerConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    tiny = lora_file(tmp_path / "tiny.safetensors", lora_of((64, 64)))  # shaped like another model's layers
    args = cli.build_parser().parse_args(["serve", "--lora", str(tiny), "--device", "cpu"])
    args.weights = {}  # as serve's main sets it (no --vae and such)
    with pytest.raises(MotifLiteError, match="LoRA shapes for transformer_blocks.0.attn.to_q"):
        load_served_pipeline(args, ServerConfig(model_name="m"), [(tiny, 1.0)])
    assert fake_hub.downloads == []


def test_a_lora_of_another_checkpoint_not_here_is_checked_as_a_file_before_it_downloads(
    empty_cache_run, fake_hub, tmp_path
):
    # Its config is not here yet, and the official one may not be its own: the file alone before the download, its
    # layers against the checkpoint's config after it.
    from safetensors.torch import save_file

    (tmp_path / "notes.safetensors").write_text("not a safetensors file")
    code, err = empty_cache_run("-m", "someone/motif-finetune", "--lora", str(tmp_path / "notes.safetensors"))
    assert (
        code == cli.EXIT_USER_ERROR
        and "is not a LoRA file: it is text, not weights" in err
        and fake_hub.downloads == []
    )
    dora = tmp_path / "dora.safetensors"  # PEFT settings are read from the file alone too
    save_file(lora_of((64, 64)), dora, metadata={"lora_adapter_metadata": '{"use_dora": true}'})
    code, err = empty_cache_run("-m", "someone/motif-finetune", "--lora", str(dora))
    assert code == cli.EXIT_USER_ERROR and "DoRA adapters" in err and fake_hub.downloads == [], err
    other_shapes = lora_file(tmp_path / "tiny.safetensors", lora_of((64, 64)))
    code, err = empty_cache_run("-m", "someone/motif-finetune", "--lora", str(other_shapes))
    assert "LoRA shapes" not in err and [repo for repo, _ in fake_hub.downloads] == ["someone/motif-finetune"]


@pytest.mark.parametrize(
    ("keywords", "said"),
    [
        ({"attention_backend": "cudnn"}, "--attention-backend cudnn is a CUDA kernel"),
        ({"attention_backend": "flash3"}, "unknown attention backend 'flash3'"),
        ({"attention": "fp8"}, "unknown attention 'fp8'"),
        # With 8-bit attention no backend is probed, but an unknown one is still a typo, not a setting to drop.
        ({"attention": "int8", "attention_backend": "flash3"}, "unknown attention backend 'flash3'"),
        ({"compile": True}, "--compile on the CPU needs a C++ compiler"),
        ({"step_cache": -0.1}, "step cache threshold must be a finite number >= 0"),
        ({"step_cache": "0.1"}, "step cache threshold must be a number"),
        ({"loras": ["notes.safetensors"]}, "is not a LoRA file: it is text, not weights"),
    ],
)
def test_the_python_apis_local_mistakes_are_said_before_the_checkpoint_downloads(
    fake_hub, monkeypatch, tmp_path, keywords, said
):
    # load_pipeline checked its speed settings and LoRA files once the checkpoint was there: after its download.
    import torch

    from motif_lite.pipeline import load_pipeline
    from motif_lite.runtime import compile as compiling

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)  # no C++ compiler on this machine
    free_space(monkeypatch, 10**12)
    monkeypatch.chdir(tmp_path)
    Path("notes.safetensors").write_text("not a safetensors file")
    with pytest.raises(MotifLiteError) as error:
        load_pipeline(MOTIF_REPO, device="cpu", **keywords)
    assert said in str(error.value) and fake_hub.downloads == []


def test_a_memory_plan_for_another_device_is_said_before_the_checkpoint_downloads(fake_hub, monkeypatch):
    # It was said after the download, and after the text encoder had loaded: the VAE went to the plan's device.
    import torch

    from motif_lite.memory_plan import plan_generation
    from motif_lite.pipeline import load_pipeline
    from motif_lite.request import GenerationRequest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    request, _ = GenerationRequest("a fox").resolve()
    plan = plan_generation(request, MOTIF_REPO, device="cuda", vram_gib=8)  # a GPU's plan, from the built-in sizes
    with pytest.raises(MotifLiteError, match="^the plan is for cuda and load_pipeline loads on cpu: make the plan "):
        load_pipeline(MOTIF_REPO, device="cpu", plan=plan)
    assert fake_hub.downloads == []
    cpu_plan = plan_generation(request, MOTIF_REPO, device="cpu")  # made without the step cache, loaded with it
    with pytest.raises(MotifLiteError, match="^the memory plan was made without a step cache's tensors"):
        load_pipeline(MOTIF_REPO, device="cpu", plan=cpu_plan, step_cache=0.05)
    assert fake_hub.downloads == []


def test_load_pipelines_fixed_attention_backend_is_checked_in_its_dtype_before_the_checkpoint_downloads(
    fake_hub, monkeypatch
):
    # FlashAttention runs in bf16 but not in fp32: the check before the download must probe the dtype asked for (fp32
    # here, not the default bf16).
    import torch

    from motif_lite import preflight
    from motif_lite.pipeline import load_pipeline

    checked = []
    monkeypatch.setattr(preflight, "check_backend_runs", lambda *args: checked.append(args))
    free_space(monkeypatch, 10**12)
    with pytest.raises(MissingFilesError):  # the fake Hub's download fails
        load_pipeline(MOTIF_REPO, device="cpu", dtype="fp32", attention_backend="flash")
    assert checked[0] == ("flash", torch.device("cpu"), torch.float32)


def test_a_memory_plan_for_the_same_gpu_by_another_name_is_not_refused(fake_hub, monkeypatch):
    # "cuda" and "cuda:0" are one GPU: its plan loads; a plan for the second GPU is refused before the download.
    import torch

    from motif_lite.memory_plan import plan_generation
    from motif_lite.pipeline import load_pipeline
    from motif_lite.request import GenerationRequest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100")
    free_space(monkeypatch, 10**12)
    request, _ = GenerationRequest("a fox").resolve()
    plan = plan_generation(request, MOTIF_REPO, device="cuda", vram_gib=8)
    with pytest.raises(MotifLiteError) as error:
        load_pipeline(MOTIF_REPO, device="cuda:0", plan=plan, dtype="bf16", kernels="torch")
    assert "the plan is for" not in str(error.value) and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO]
    fake_hub.downloads.clear()
    with pytest.raises(MotifLiteError, match="^the plan is for cuda and load_pipeline loads on cuda:1"):
        load_pipeline(MOTIF_REPO, device="cuda:1", plan=plan, dtype="bf16", kernels="torch")
    assert fake_hub.downloads == []


def test_a_text_encoder_file_of_the_official_shapes_holds_no_download(empty_cache_run, fake_hub, tmp_path):
    # The official config bundled with motif-lite is the official file's: its shapes pass, and the download starts.
    from fp8_files import header_only_file

    from motif_lite.encoders.text_config import meta_encoder, official_text_encoder_config
    from motif_lite.sizes import OFFICIAL_TEXT_ENCODER_PARAMS
    from motif_lite.weights.shapes import expected_shapes

    shapes = expected_shapes(meta_encoder(official_text_encoder_config()))
    assert sum(math.prod(shape) for shape in shapes.values()) == OFFICIAL_TEXT_ENCODER_PARAMS  # the official size
    official = header_only_file(tmp_path / "t5gemma2_encoder.safetensors", shapes)
    code, err = empty_cache_run("--text-encoder", str(official))
    assert "does not hold" not in err and [repo for repo, _ in fake_hub.downloads] == [MOTIF_REPO], err


def test_a_weights_file_of_another_size_is_said_before_the_checkpoint_downloads(
    empty_cache_run, fake_hub, checkpoint, tmp_path
):
    # Its names are the component's, its shapes another model's (Wan2.2's VAE, a smaller transformer): they were
    # checked against the checkpoint's configs once it had downloaded. Before it, the official ones are bundled.
    vae = checkpoint / "vae" / "diffusion_pytorch_model.safetensors"  # the tiny test model's
    code, err = empty_cache_run("--vae", str(vae))
    assert code == cli.EXIT_USER_ERROR and f"{vae} does not hold the VAE of Motif-Video" in err
    assert "downloading" not in err and fake_hub.downloads == []
    transformer = next((checkpoint / "transformer").glob("*.safetensors"))
    code, err = empty_cache_run("--diffusion-model", str(transformer))
    assert code == cli.EXIT_USER_ERROR and str(transformer) in err and "downloading" not in err, err
    assert fake_hub.downloads == []
    # The text encoder's too, against the official config bundled with motif-lite: it was read after the download.
    text_encoder = checkpoint / "text_encoder" / "model.safetensors"
    code, err = empty_cache_run("--text-encoder", str(text_encoder))
    assert code == cli.EXIT_USER_ERROR and f"{text_encoder} does not hold the text encoder of Motif-Video" in err, err
    assert "downloading" not in err and fake_hub.downloads == []
    # Another model's configs are not guessed: it downloads, and its configs check the file.
    code, err = empty_cache_run("-m", "someone/motif-finetune", "--vae", str(vae))
    assert "downloading" in err and [repo for repo, _ in fake_hub.downloads] == ["someone/motif-finetune"]
    # With a GGUF for the same component (in Python), the file is refused before any download, as the CLI
    # refuses the flags' pair.
    from motif_lite.errors import ConfigError
    from motif_lite.preflight import preflight

    fake_hub.downloads.clear()
    with pytest.raises(ConfigError, match="both give the transformer"):
        preflight(MOTIF_REPO, "Q4_K_M", "cpu", weights={"transformer": transformer})
    with pytest.raises(ConfigError, match="both give the text encoder"):
        preflight(
            MOTIF_REPO, None, "cpu", text_encoder_gguf=tmp_path / "te-Q8_0.gguf", weights={"text_encoder": text_encoder}
        )
    assert fake_hub.downloads == []


LONG_PROMPT = "a red fox runs " * 40 + "through deep snow at dusk"  # 625 characters: over 512 of the tiny tokens
SAID = "warning: prompt is 626 tokens, over the text encoder's limit of 512: it reads up to '... "


def tokenizer_snapshot(checkpoint: Path, folder: Path) -> Path:
    """A snapshot folder holding only the checkpoint's tokenizer: what the fake Hub's downloads return."""
    shutil.copytree(checkpoint / "tokenizer", folder / "tokenizer")
    return folder


def test_a_long_prompt_is_said_before_the_checkpoint_downloads(empty_cache_run, fake_hub, checkpoint, tmp_path, capsys):
    # It was said only once the whole checkpoint (10+ GB) had downloaded, since the tokenizer comes with it: its
    # files alone come first now (a few MB), then the warning, then the rest.
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    code = cli.main(["run", "--yes", "-p", LONG_PROMPT, "-o", str(tmp_path / "fox.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err  # the fake Hub's checkpoint has nothing but the tokenizer
    assert fake_hub.downloads[0] == (MOTIF_REPO, ["tokenizer/*"]) and len(fake_hub.downloads) == 2, err
    assert "transformer/*" in fake_hub.downloads[1][1] and err.count(SAID) == 1, err
    tokenizer = err.index(f"downloading {file_size(33_400_000 + 1_150_000)} of {MOTIF_REPO} (1 small file)")
    assert tokenizer < err.index(SAID) < err.index("downloading", tokenizer + 1), err


def test_a_run_that_downloads_loads_the_tokenizer_once(
    empty_cache_run, fake_hub, checkpoint, tmp_path, monkeypatch, capsys
):
    # The tokenizer fetched first measured the long prompt, and was dropped: once the checkpoint had downloaded, the
    # run loaded it again from the same folder. The text encoder takes the one loaded first.
    from motif_lite.encoders import text

    fake_hub.snapshot = checkpoint  # both downloads "give" the tiny checkpoint: the tokenizer's, then the rest
    loads: list[Path] = []
    load_tokenizer = text.load_tokenizer
    monkeypatch.setattr(text, "load_tokenizer", lambda root, *a: loads.append(root) or load_tokenizer(root, *a))
    run = ["run", "--yes", "-p", LONG_PROMPT, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    code = cli.main([*run, "--dtype", "fp32", "--device", "cpu", "-o", str(tmp_path / "fox.gif")])
    err = capsys.readouterr().err
    assert code == 0 and err.count(SAID) == 1, err
    assert [patterns for _, patterns in fake_hub.downloads][0] == ["tokenizer/*"] and len(fake_hub.downloads) == 2
    assert loads == [checkpoint], loads


def test_a_negative_prompt_the_guidance_does_not_read_downloads_no_tokenizer_first(
    empty_cache_run, fake_hub, checkpoint, tmp_path
):
    # APG at scale 0 never encodes the negative prompt: it is not measured, nor a tokenizer fetched for it.
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    code, err = empty_cache_run("-n", "blurry " * 86, "--cfg-scale", "0")
    assert "negative prompt is" not in err and fake_hub.downloads[0][1] != ["tokenizer/*"], err


def test_a_tokenizer_that_cannot_be_had_first_does_not_stop_the_download(fake_hub, tmp_path, capsys, monkeypatch):
    # The snapshot comes without the tokenizer: the prompt is not measured before the download (the encode says
    # the cut), and the checkpoint's download goes ahead.
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    fake_hub.snapshot = tmp_path / "no tokenizer"
    fake_hub.snapshot.mkdir()
    cli.main(["run", "--yes", "-p", LONG_PROMPT, "-o", str(tmp_path / "fox.mp4")])
    assert fake_hub.downloads[0] == (MOTIF_REPO, ["tokenizer/*"]) and len(fake_hub.downloads) == 2
    assert "transformer/*" in fake_hub.downloads[1][1] and SAID not in capsys.readouterr().err


def test_a_short_prompt_downloads_no_tokenizer_first(empty_cache_run, fake_hub):
    # The official negative prompt is over the length that surely fits, but not over the official tokenizer's limit.
    code, err = empty_cache_run()
    assert [patterns for _, patterns in fake_hub.downloads] == [fake_hub.downloads[0][1]] and "warning" not in err
    assert "tokenizer/*" in fake_hub.downloads[0][1] and "transformer/*" in fake_hub.downloads[0][1], err


def test_a_dry_run_measures_a_long_prompt_with_the_tokenizer_alone(fake_hub, checkpoint, tmp_path, capsys):
    # It planned without saying the prompt would be cut where the checkpoint was not in the cache.
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    assert cli.main(["run", "--dry-run", "-p", LONG_PROMPT, "--device", "cpu"]) == 0
    assert fake_hub.downloads == [(MOTIF_REPO, ["tokenizer/*"])] and SAID in capsys.readouterr().err
    fake_hub.downloads.clear()
    assert cli.main(["run", "--dry-run", "-p", "a red fox", "--device", "cpu"]) == 0
    assert fake_hub.downloads == [] and "warning: prompt" not in capsys.readouterr().err  # nothing to measure


def partial_cache(name: str, text: str) -> None:
    """The official repo in the Hub cache with one file, `name` holding `text`: a download stopped part way."""
    snapshot = Path(constants.HF_HUB_CACHE) / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    (snapshot / name).parent.mkdir(parents=True)
    (snapshot / name).write_text(text)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)


def test_a_dry_run_with_a_partial_cache_measures_a_long_prompt_with_the_tokenizer_fetched(
    fake_hub, checkpoint, tmp_path, capsys
):
    # The cache holds part of the checkpoint (a download stopped before the tokenizer): its files alone come first.
    partial_cache("vae/config.json", "{}")
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    assert cli.main(["run", "--dry-run", "-p", LONG_PROMPT, "--device", "cpu"]) == 0
    assert fake_hub.downloads == [(MOTIF_REPO, ["tokenizer/*"])] and SAID in capsys.readouterr().err


@pytest.mark.parametrize("main", [True, False])
def test_the_main_rank_of_a_parallel_run_says_a_long_prompt_before_its_download(
    fake_hub, checkpoint, tmp_path, main, capsys
):
    # Only a run on one process said it before the download; a parallel run's main rank (the one that encodes and
    # prints) said it after, and the other ranks say nothing of it.
    from motif_lite.cli import before_download, run_request
    from motif_lite.io.hub import DownloadPlan

    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    args = cli.build_parser().parse_args(["run", "-p", LONG_PROMPT, "--device", "cpu"])
    args.weights = {}
    said = {}
    rank = SimpleNamespace(is_main=main, layout=None)
    before = before_download.rank_refuses_before_download(args, run_request.request_from_args(args), "cpu", rank, said)
    before(DownloadPlan(MOTIF_REPO, {}))
    before(DownloadPlan(MOTIF_REPO, {}))  # a GGUF variant's download after the checkpoint's: not said again
    assert list(said) == (["prompt", "negative prompt"] if main else []), said  # the tiny tokenizer counts both
    assert capsys.readouterr().err.count("warning: ") == len(said)
    assert fake_hub.downloads == ([(MOTIF_REPO, ["tokenizer/*"])] if main else [])


def test_a_run_reads_what_is_at_hand_once_before_its_download(fake_hub, checkpoint, tmp_path, capsys, monkeypatch):
    # The prompts the text encoder cuts and the CPU time question both count with the settings at hand: they were
    # resolved twice, once for each. A later download (a GGUF variant's), with both said, reads nothing again.
    from motif_lite import settings
    from motif_lite.cli import before_download, run_request
    from motif_lite.cli.run_time import CpuTimeQuestion
    from motif_lite.io.hub import DownloadPlan

    resolved, resolve_settings = [], settings.resolve_settings

    def counted(*args, **kwargs):
        resolved.append(args[0])
        return resolve_settings(*args, **kwargs)

    monkeypatch.setattr(settings, "resolve_settings", counted)
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    args = cli.build_parser().parse_args(["run", "-p", LONG_PROMPT, "--device", "cpu", "--yes", "--steps", "2"])
    args.weights = {}
    request = run_request.request_from_args(args)
    question, said = CpuTimeQuestion(yes=True), {}
    before = before_download.ask_before_download(args, [request], "cpu", question, said)
    before(DownloadPlan(MOTIF_REPO, {}))
    assert len(resolved) == 1 and question.said and "prompt" in said
    before(DownloadPlan(MOTIF_REPO, {}))
    assert len(resolved) == 1
    assert capsys.readouterr().err.count(SAID) == 1


def test_the_quantizers_fp16_and_fp32_find_the_repos_f16_and_f32_files(fake_hub, monkeypatch):
    # The check before the checkpoint's download looked for '*FP16*' too: a repo with an F16 file refused --gguf fp16.
    monkeypatch.setitem(GGUF_FILES, "motif-video-2b-F16.gguf", 4_100_000_000)
    monkeypatch.setitem(GGUF_FILES, "motif-video-2b-F32.gguf", 8_200_000_000)
    free_space(monkeypatch, 10**12)
    for typed, spelled in (("fp16", "F16"), ("FP32", "F32")):
        check_gguf_variant(typed, hub.HubAccess())
        assert find_gguf(typed) == Path(f"/downloaded/motif-video-2b-{spelled}.gguf")


def long_prompt_run(capsys, tmp_path, *flags: str) -> tuple[int, str]:
    """`empty_cache_run`'s run with LONG_PROMPT."""
    code = cli.main(["run", "--yes", "-p", LONG_PROMPT, "-o", str(tmp_path / "fox.mp4"), *flags])
    return code, capsys.readouterr().err


def test_long_prompts_are_said_before_the_download_that_replaces_a_broken_config(
    empty_cache_run, fake_hub, checkpoint, tmp_path, capsys
):
    # A download stopped within transformer/config.json: the settings cannot be told before the download that
    # replaces it, so both prompts are measured (the guidance may read the negative one) with the tokenizer first.
    partial_cache("transformer/config.json", "{")
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    code, err = long_prompt_run(capsys, tmp_path)
    assert fake_hub.downloads[0] == (MOTIF_REPO, ["tokenizer/*"]) and len(fake_hub.downloads) == 2, err
    assert SAID in err and "warning: negative prompt is " in err, err  # the tiny tokenizer cuts the official one
    assert err.index("warning: negative prompt is ") < err.index("downloading", err.index("(1 small file)")), err


def test_a_run_no_plan_fits_is_refused_before_the_tokenizer_downloads(
    empty_cache_run, fake_hub, checkpoint, tmp_path, capsys
):
    # The refusal comes first: nothing is fetched (not even the tokenizer's few MB) for a run that cannot start.
    fake_hub.snapshot = tokenizer_snapshot(checkpoint, tmp_path / "snapshot")
    code, err = long_prompt_run(capsys, tmp_path, "--vram", "0.01")
    assert code == cli.EXIT_USER_ERROR and "--vram" in err, err
    assert fake_hub.downloads == [] and SAID not in err, err


def test_a_variant_motif_lite_cannot_run_is_refused_before_any_download(empty_cache_run, fake_hub, monkeypatch):
    # --gguf TQ1_0, a file of which the repo might hold: a dry run refused it, a run downloaded the checkpoint and
    # the file to refuse it once it loaded. The run's refusal is the dry run's, the GGUF repo not even listed; in
    # run's words (it was the quantizer's "the nearest recipe is Q2_K, or choose one of: ..."): what it can run.
    monkeypatch.setitem(GGUF_FILES, "motif-video-2b-TQ1_0.gguf", 600_000_000)
    code, err = empty_cache_run("--gguf", "tq1_0")
    assert code == cli.EXIT_USER_ERROR and "error: --gguf tq1_0: motif-lite cannot run a file of GGUF type TQ1_0: " \
        "--gguf Q2_K is the nearest variant it runs; it runs F32, F16, BF16, Q8_0, " in err, err  # fmt: skip
    assert "IQ4_XS (any letter case)" in err and "recipe" not in err and "quantizer" not in err, err
    assert "downloading" not in err and fake_hub.downloads == [] and GGUF_REPO not in fake_hub.listed
    assert "in Python" not in err, err  # run's flags alone
    dry_code, dry_err = empty_cache_run("--dry-run", "--gguf", "tq1_0")
    errors = [[line for line in said.splitlines() if line.startswith("error: ")] for said in (err, dry_err)]
    assert dry_code == code and errors[0] == errors[1] and len(errors[0]) == 1, dry_err


def test_a_variant_motif_lite_cannot_run_is_refused_from_python_in_its_words(fake_hub, monkeypatch):
    # load_pipeline(gguf="TQ1_0") was refused as "--gguf TQ1_0: ... --gguf Q2_K is the nearest variant": flags a
    # Python caller never typed. Now each setting is named with its keyword too, before anything downloads.
    import motif_lite

    monkeypatch.setitem(GGUF_FILES, "motif-video-2b-TQ1_0.gguf", 600_000_000)
    with pytest.raises(MotifLiteError) as error:
        motif_lite.load_pipeline(MOTIF_REPO, gguf="TQ1_0", device="cpu")
    said = str(error.value)
    assert "--gguf TQ1_0 (in Python gguf='TQ1_0'): motif-lite cannot run a file of GGUF type TQ1_0: " \
        "--gguf Q2_K (in Python gguf='Q2_K') is the nearest variant it runs; it runs F32, " in said, said  # fmt: skip
    assert fake_hub.downloads == [] and GGUF_REPO not in fake_hub.listed


def test_the_lora_check_before_the_download_reads_no_gguf_header_again(
    empty_cache_run, fake_hub, shared_checkpoint_and_gguf, monkeypatch, tmp_path
):
    # With --lora, the check of the user's files before the download (`local_file_problems`) read the --gguf file's
    # header once more: it takes the one read for the checks that follow, so --lora adds no read.
    from motif_lite.weights import gguf_file

    gguf = shared_checkpoint_and_gguf[1]
    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(Path(path)) or read_header(path))
    code, err = empty_cache_run("--gguf", str(gguf))
    assert "downloading" in err, err
    without = reads.count(gguf)
    reads.clear()
    lora = lora_file(tmp_path / "style.safetensors", lora_of((64, 64)))  # fits the GGUF's (tiny) transformer
    code, err = empty_cache_run("--gguf", str(gguf), "--lora", str(lora))
    assert "downloading" in err, err  # the check before the download ran, and found nothing wrong
    assert without >= 1 and reads.count(gguf) == without, (without, reads)


@pytest.mark.parametrize("lora", [False, True])
def test_a_run_reads_the_gguf_header_once_with_a_download(
    empty_cache_run, fake_hub, shared_checkpoint_and_gguf, monkeypatch, tmp_path, lora
):
    # The check before the download (the memory plan's refusal, the prompts, the CPU time question: each through
    # `sources_at_hand`) read the --gguf file's header twice more after preflight read it: it takes preflight's.
    from motif_lite.weights import gguf_file

    gguf = shared_checkpoint_and_gguf[1]
    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(Path(path)) or read_header(path))
    flags = ["--lora", str(lora_file(tmp_path / "style.safetensors", lora_of((64, 64))))] if lora else []
    code, err = empty_cache_run("--gguf", str(gguf), *flags)
    assert "downloading" in err, err  # the checks before the download ran
    assert reads.count(gguf) == 1, reads


def test_serve_reads_the_gguf_header_once_with_a_download(fake_hub, shared_checkpoint_and_gguf, monkeypatch, tmp_path):
    # serve's check before the download (the memory plan's refusal, through `sources_at_hand`) read the --gguf
    # file's header again after its early check had: it takes the one read.
    import torch

    from motif_lite.server.runner import VideoServer
    from motif_lite.weights import gguf_file

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    free_space(monkeypatch, 10**12)
    gguf = shared_checkpoint_and_gguf[1]
    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(Path(path)) or read_header(path))
    failed: list[BaseException] = []

    def load_once(self, sock, load) -> None:  # load (the download fails: the test's Hub stops it), then stop
        try:
            load()
        except Exception as exc:
            failed.append(exc)

    monkeypatch.setattr(VideoServer, "serve", load_once)
    flags = ["--port", "0", "--vram", "4", "--data", str(tmp_path / "served")]
    assert cli.main(["serve", "--gguf", str(gguf), *flags]) == 0
    assert fake_hub.downloads and failed, (fake_hub.downloads, failed)  # the check before the download ran
    assert reads.count(gguf) == 1, reads


def test_a_rank_checks_before_its_download_with_the_gguf_header_read(shared_checkpoint_and_gguf, monkeypatch):
    # Each rank of a parallel run read the --gguf file's header twice more before its download (its plan's refusal,
    # the main rank's prompts), after its run had read it for preflight: they take that read.
    from types import SimpleNamespace

    from motif_lite.cli import before_download, build_parser, run_request
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.preflight import gguf_header_read_first
    from motif_lite.runtime.parallel import ParallelLayout
    from motif_lite.weights import gguf_file

    root, gguf = shared_checkpoint_and_gguf
    planned = []
    monkeypatch.setattr(PlannedRun, "plan", lambda run, vram_gib=None: planned.append(run.sources.gguf_header))
    flags = ["run", "-m", str(root), "--gguf", str(gguf), "-p", "a fox", "--device", "cpu", "--vram", "8"]
    args = build_parser().parse_args(flags)
    args.weights = take_weight_flags(args)
    request = run_request.request_from_args(args)
    header_read = gguf_header_read_first(root, gguf)
    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(Path(path)) or read_header(path))
    for is_main in (True, False):
        rank = SimpleNamespace(layout=ParallelLayout(2, 1), is_main=is_main)
        before_download.rank_refuses_before_download(args, request, "cpu", rank, {}, header_read)(
            DownloadPlan("someone/motif", {})
        )
    assert [header is header_read.transformer for header in planned] == [True, True]  # each rank's plan took it
    assert reads == []


def test_the_folder_route_docs_usage_gives_for_a_small_disk_is_the_commands_a_run_prints():
    # docs/usage.md, "On a small disk or a slow link": `hf download` into /data, then check and run on the folders.
    from motif_lite.checkpoint import download_patterns
    from motif_lite.io.missing_report import MissingFiles

    docs = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    section = docs.split("\n## On a small disk or a slow link\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.split("```bash", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    checkpoint = MissingFiles(MOTIF_REPO, (), tuple(download_patterns({"transformer"})), "/data/Motif-Video-2B", "")
    gguf = MissingFiles(GGUF_REPO, (), ("*Q4_K_M*.gguf",), "/data/Motif-Video-2B-GGUF", "")
    assert commands[:2] == [checkpoint.command(), gguf.command()]
    folders = "-m /data/Motif-Video-2B --gguf /data/Motif-Video-2B-GGUF"
    assert commands[2:] == [f"motif-lite check {folders}", f'motif-lite run {folders} -p "a red fox" -o /data/fox.mp4']


def test_another_repos_id_given_to_gguf_gets_the_download_of_its_file(no_network, tmp_path, monkeypatch):
    # `--gguf city96/NAME-gguf`, a repo of GGUF files as ComfyUI-GGUF's users name one: it was "no such GGUF file
    # ... or a variant of the official repo", where the repo's web address gets the download. A path whose first
    # folder is here is a path with a typo, and stays "no such GGUF file".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("city96/Motif-Video-2B-gguf")
    folder = tmp_path / "Motif-Video-2B-gguf"
    assert str(error.value) == (
        f"city96/Motif-Video-2B-gguf is no file or folder here, and --gguf downloads the variants of {GGUF_REPO} "
        "only; if it is a Hub repo, download its file first: hf download city96/Motif-Video-2B-gguf --include "
        f"FILE.gguf --local-dir {folder}, then --gguf {folder}"
    )
    (tmp_path / "models").mkdir()
    with pytest.raises(CheckpointError, match="^no such GGUF file: models/unet; give the path of a .gguf file"):
        find_gguf("models/unet")


def test_huggingface_hubs_file_system_address_is_read_as_a_hub_address(no_network, tmp_path, monkeypatch):
    # hf://owner/name/file (huggingface_hub's HfFileSystem) was "no such GGUF file: hf:/..." (the path's // made one),
    # with no download; -m said it was no folder.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf(f"hf://{GGUF_REPO}/motif-video-2b-Q8_0.gguf")
    assert str(error.value).endswith(": --gguf takes the variant a file of the official repo carries; --gguf Q8_0")
    with pytest.raises(CheckpointError) as error:
        find_gguf("hf://city96/Name-gguf@v2/sub/x-Q4_K_M.gguf")
    folder = tmp_path / "Name-gguf"
    assert str(error.value).endswith(
        "download it first: hf download city96/Name-gguf sub/x-Q4_K_M.gguf --revision v2 "
        f"--local-dir {folder}, then --gguf {folder}/sub/x-Q4_K_M.gguf"
    )
    assert hub.model_address_problem(f"hf://{MOTIF_REPO}") == (
        "-m takes a checkpoint folder or a Hub repo id, not a web address",
        f"-m {MOTIF_REPO}",
    )


@pytest.mark.parametrize(
    "given",
    ["hf://city96/Name-gguf@refs%2Fpr%2F1/x.gguf", "https://huggingface.co/city96/Name-gguf/blob/refs%2Fpr%2F1/x.gguf"],
)
def test_a_pull_requests_ref_in_an_address_is_downloaded_as_the_hub_names_it(no_network, tmp_path, monkeypatch, given):
    # Both addresses write refs/pr/1 as refs%2Fpr%2F1; `hf download --revision refs%2Fpr%2F1` asked for no such ref.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf(given)
    folder = tmp_path / "Name-gguf"
    assert str(error.value).endswith(
        f"hf download city96/Name-gguf x.gguf --revision refs/pr/1 --local-dir {folder}, then --gguf {folder}/x.gguf"
    )


@pytest.mark.parametrize("given", [GGUF_REPO, MOTIF_REPO, "city96/Name-gguf"])
def test_a_repo_id_given_to_gguf_is_told_by_its_text_as_windows_spells_its_path(no_network, monkeypatch, given):
    # On Windows str(Path("city96/Name-gguf")) is city96\Name-gguf, which is no repo id: every repo id given to
    # --gguf was "no such GGUF file". Here a path whose str() has the backslash stands in for Windows' spelling.
    with pytest.raises(CheckpointError) as as_posix:
        find_gguf(given)
    monkeypatch.setattr(gguf_source, "user_path", lambda text: Path(str(text).replace("/", "\\")))
    with pytest.raises(CheckpointError) as as_windows:
        find_gguf(given)
    assert str(as_windows.value) == str(as_posix.value)
    assert not str(as_posix.value).startswith("no such GGUF file")


def test_a_dataset_repos_file_system_address_is_told_as_typed_with_its_download(no_network, tmp_path, monkeypatch):
    # hf://datasets/owner/name/x.gguf was "no such GGUF file: hf:/datasets/..." (a path made one slash of two), with
    # no word of where the file comes from; hf download needs --repo-type dataset to find it.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("hf://datasets/owner/name/x-Q4_K_M.gguf")
    folder = tmp_path / "name"
    assert str(error.value) == (
        "hf://datasets/owner/name/x-Q4_K_M.gguf: --gguf reads a file on this machine, not a dataset repo's address; "
        f"download it first: hf download owner/name x-Q4_K_M.gguf --repo-type dataset --local-dir {folder}, "
        f"then --gguf {folder}/x-Q4_K_M.gguf"
    )


@pytest.mark.parametrize(
    "given",
    [
        "https://huggingface.co/datasets/owner/name/blob/main/x-Q4_K_M.gguf",
        "https://huggingface.co/datasets/owner/name/resolve/main/x-Q4_K_M.gguf?download=true",
        "hf.co/datasets/owner/name/blob/main/x-Q4_K_M.gguf",
    ],
)
def test_a_dataset_repos_web_address_is_told_with_its_download(no_network, tmp_path, monkeypatch, given):
    # The dataset page's address (or its download button's) was "no such GGUF file: https:/huggingface.co/datasets/
    # ...", a slash lost, as hf://datasets/... was: only the file-system address got its download.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf(given)
    folder = tmp_path / "name"
    assert str(error.value) == (
        f"{given}: --gguf reads a file on this machine, not a dataset repo's address; download it first: "
        f"hf download owner/name x-Q4_K_M.gguf --repo-type dataset --local-dir {folder}, then --gguf "
        f"{folder}/x-Q4_K_M.gguf"
    )


def test_a_spaces_web_address_at_a_pull_requests_revision_names_it_plain(no_network, tmp_path, monkeypatch):
    # hf download takes refs/pr/1, not the address's refs%2Fpr%2F1; main is the default and goes unsaid.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("https://huggingface.co/spaces/owner/app/blob/refs%2Fpr%2F1/x.gguf")
    assert "hf download owner/app x.gguf --repo-type space --revision refs/pr/1 --local-dir" in str(error.value)
    with pytest.raises(CheckpointError) as error:
        find_gguf("hf://spaces/owner/app@main/x.gguf")
    assert "--repo-type space --local-dir" in str(error.value)


@pytest.mark.parametrize(
    ("given", "pattern", "inside"),
    [
        ("https://huggingface.co/datasets/owner/name/tree/main/q4", "q4/*.gguf", "/q4"),
        ("hf://datasets/owner/name/q4/config.json", "q4/*.gguf", "/q4"),
        ("https://huggingface.co/datasets/owner/name/blob/main/README.md", "*.gguf", ""),
    ],
)
def test_a_dataset_repos_folder_address_gets_the_download_of_its_gguf_files(
    no_network, tmp_path, monkeypatch, given, pattern, inside
):
    # A folder's page (or a file beside the GGUF) was told `hf download owner/name q4`, which fetches no file named q4.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf(given)
    folder = tmp_path / "name"
    assert str(error.value).endswith(
        f"hf download owner/name --include '{pattern}' --repo-type dataset --local-dir {folder}, "
        f"then --gguf {folder}{inside}"
    )


def test_a_dataset_repos_gguf_named_in_capitals_is_downloaded_as_that_file(no_network, tmp_path, monkeypatch):
    # Mutation pass 71: X.GGUF is the GGUF file itself, not a file beside it whose folder's .gguf files are fetched.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("hf://datasets/owner/name/X-Q4_K_M.GGUF")
    folder = tmp_path / "name"
    assert f"hf download owner/name X-Q4_K_M.GGUF --repo-type dataset --local-dir {folder}, " in str(error.value)
    assert str(error.value).endswith(f"then --gguf {folder}/X-Q4_K_M.GGUF")


def test_a_file_on_this_machine_at_a_dataset_address_path_is_read(no_network, tmp_path, monkeypatch):
    # Mutation pass 71: hf://datasets/... is a path too (hf:/datasets/...); where that file is there, it is read.
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf_helpers import write_test_gguf

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf:" / "datasets" / "owner" / "name").mkdir(parents=True)
    there = tmp_path / "hf:" / "datasets" / "owner" / "name" / "x.gguf"
    write_test_gguf(there, {"a": (np.zeros((2, 32), np.float32), Q.F32, (2, 32))})
    assert Path(find_gguf("hf://datasets/owner/name/x.gguf")).resolve() == there.resolve()


@pytest.mark.parametrize(
    ("given", "download", "then"),
    [
        ("hf://datasets/squad/x-Q4_K_M.gguf", "squad x-Q4_K_M.gguf", "x-Q4_K_M.gguf"),
        ("hf://datasets/squad@refs%2Fpr%2F1/x.GGUF", "squad x.GGUF --repo-type dataset --revision refs/pr/1", "x.GGUF"),
        ("https://huggingface.co/datasets/squad/blob/main/x-Q4_K_M.gguf", "squad x-Q4_K_M.gguf", "x-Q4_K_M.gguf"),
        ("https://huggingface.co/datasets/squad/tree/main/q4", "squad --include 'q4/*.gguf'", "q4"),
        # with an owner, as before: a folder between the name and the file is the repo's name
        ("hf://datasets/owner/squad/x.gguf", "owner/squad x.gguf", "x.gguf"),
    ],
)
def test_a_canonical_datasets_address_without_an_owner_is_read_as_that_repo(
    no_network, tmp_path, monkeypatch, given, download, then
):
    # hf://datasets/squad/x.gguf (a canonical dataset has no owner) was read as the repo squad/x.gguf, and its web
    # address as the model repo datasets/squad: either download fetched nothing.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf(given)
    folder = tmp_path / "squad"
    assert f"hf download {download} " in str(error.value)
    assert "--repo-type dataset" in str(error.value)
    assert str(error.value).endswith(f"--local-dir {folder}, then --gguf {folder}/{then}")


@pytest.mark.parametrize("ref", ["a" * 40, None], ids=["refs-main-names-a-removed-snapshot", "no-refs-folder"])
def test_a_cached_repo_whose_refs_main_leads_nowhere_names_the_snapshot_it_holds(checkpoint, no_network, ref):
    # An offline machine given a copied cache: refs/main missing, or naming a snapshot not copied, made the run say
    # the whole repo was missing from the cache, while a complete snapshot sat beside it.
    repo = no_network / "models--Org--Name"
    held = repo / "snapshots" / ("b" * 40)
    shutil.copytree(checkpoint, held)
    if ref is not None:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(ref)
    required = ["vae/config.json", "transformer/config.json"]
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", required, ["vae/*", "transformer/*"])
    said = str(error.value)
    why = (
        f"its refs/main names snapshot {ref}, which is not in"
        if ref
        else f"it has no refs/main (a copy without {repo / 'refs'})"
    )
    assert f"Note: the cache holds Org/Name but {why}" in said, said
    assert f"it holds snapshots/{held.name}: make refs/main name it: " in said
    assert f"printf '%s' {held.name} > {repo / 'refs' / 'main'}, or pass a snapshot's folder, -m {held}" in said
    assert find_checkpoint(str(held), required) == held  # the folder the note names is a checkpoint
    from motif_lite.checkup import check_setup

    said = [f.line() for f in check_setup("Org/Name").problems if f.subject == "Org/Name"]
    assert len(said) == 1 and f"(check never downloads): the cache holds Org/Name but {why}" in said[0], said


def test_a_repo_the_cache_does_not_hold_gets_no_snapshot_note(no_network):
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", ["vae/config.json"], ["vae/*"])
    assert "Note:" not in str(error.value)


def test_an_owners_dataset_named_as_a_web_pages_part_is_read_with_its_owner(no_network, tmp_path, monkeypatch):
    # A dataset named tree (or blob, resolve) has a file page huggingface.co/datasets/owner/tree/blob/main/x.gguf
    # that the owner-less page's pattern reads too, as the repo owner at the revision blob: owner/name is tried
    # first.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        find_gguf("https://huggingface.co/datasets/owner/tree/blob/main/x.gguf")
    folder = tmp_path / "tree"
    assert "hf download owner/tree x.gguf --repo-type dataset " in str(error.value), error.value
    assert str(error.value).endswith(f"--local-dir {folder}, then --gguf {folder}/x.gguf")


def test_a_stray_snapshot_note_gives_the_command_that_makes_refs_main_name_the_newest_snapshot(
    checkpoint, no_network, monkeypatch
):
    # The note said to "write the snapshot's name into refs/main", no command to type, with the last snapshot by
    # name as its example, not the newest; and a read-only copied cache, which cannot take it, was told the same.
    import os
    import subprocess

    from motif_lite.io import hub

    repo = no_network / "models--Org--Name"
    newest, older = repo / "snapshots" / ("b" * 40), repo / "snapshots" / ("c" * 40)  # the older last by name
    for snapshot, written in ((older, 1_000_000), (newest, 2_000_000)):
        shutil.copytree(checkpoint, snapshot)
        os.utime(snapshot, (written, written))
    note = hub.stray_snapshots_note("Org/Name")
    command = note.split("make refs/main name it: ")[1].split(", or pass")[0]
    assert note.endswith(f"or pass a snapshot's folder, -m {newest}"), note
    subprocess.run(["bash", "-c", command], check=True)  # as a user would paste it
    assert hub.cached_snapshot("Org/Name") == newest and hub.stray_snapshots_note("Org/Name") is None
    # A read-only cache: the flag first, the command for a user who may write it.
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hub.os, "access", lambda path, mode: mode != os.W_OK)
    note = hub.stray_snapshots_note("Org/Name")
    said = f"pass a snapshot's folder, -m {newest} (this user may not write the cache), or, as a user who may, make"
    assert said in note, note


def test_a_stray_snapshot_notes_command_writes_a_snapshot_name_with_a_space_and_a_quote_whole(checkpoint, no_network):
    # The snapshot's name went into the printf command unquoted: pasted, `printf '%s' it's mine` was a shell error,
    # and a name with a space alone was written without it (printf reused its format), naming no snapshot again.
    # A copied or hand-made cache, the only kind this note is for, may name its snapshot folders anything.
    import subprocess

    from motif_lite.io import hub

    snapshot = no_network / "models--Org--Name" / "snapshots" / "it's mine"
    shutil.copytree(checkpoint, snapshot)
    note = hub.stray_snapshots_note("Org/Name")
    command = note.split("make refs/main name it: ")[1].split(", or pass")[0]
    subprocess.run(["bash", "-c", command], check=True)  # as a user would paste it
    assert hub.cached_snapshot("Org/Name") == snapshot and hub.stray_snapshots_note("Org/Name") is None


def test_a_stray_snapshot_note_for_a_refs_main_this_user_may_not_write_gives_the_flag_first(
    checkpoint, no_network, monkeypatch
):
    # The command writes refs/main itself: a refs/main this user may not write (another user's file) in a cache
    # folder this user may write is a read-only cache for it, and the flag is the way this user has.
    import os

    from motif_lite.io import hub

    repo = no_network / "models--Org--Name"
    snapshot, ref = repo / "snapshots" / ("b" * 40), repo / "refs" / "main"
    shutil.copytree(checkpoint, snapshot)
    ref.parent.mkdir(parents=True)
    ref.write_text("a" * 40)
    real_access = os.access
    monkeypatch.setattr(hub.os, "access", lambda path, mode: Path(path) != ref and real_access(path, mode))
    note = hub.stray_snapshots_note("Org/Name")
    assert f"-m {snapshot} (this user may not write the cache), or, as a user who may, make" in note, note
