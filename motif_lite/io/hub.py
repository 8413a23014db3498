"""Find checkpoints: a local directory, the Hugging Face cache, or a download.

Resolution order for `resolve_checkpoint`: an existing local directory as is; else a Hub repo id looked up in
the local HF cache (no network); else downloaded (unless `HF_HUB_OFFLINE=1`). Every failure ends in a
`CheckpointError` that says which files to fetch and how, so offline machines get a command to run elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download

from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import CheckpointError

__all__ = ["GGUF_REPO", "MOTIF_REPO", "resolve_checkpoint", "resolve_gguf"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_VARIANT = re.compile(r"^[A-Za-z0-9_]+$")  # Q4_K_M, Q8_0, BF16, ...
# huggingface_hub reports a missing network or cache entry through errors of several libraries (its own,
# OSError, and its HTTP client's, which changed between versions); all mean "not available" to us.
_HUB_ERRORS = (Exception,)


def resolve_checkpoint(source_or_repo: str, allow_patterns: list[str] | None = None) -> Path:
    """Return a local checkpoint directory for a path or a Hub repo id (cache first, then download).

    `allow_patterns` limits what is fetched from the Hub (e.g. `["text_encoder/*", "tokenizer/*"]`).
    Raises `CheckpointError` naming the repo, the files and a download command when nothing usable is found.
    """
    path = Path(source_or_repo).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; expected a checkpoint directory (or a Hub repo id)")
    if not _REPO_ID.match(source_or_repo):
        raise CheckpointError(f"no such checkpoint directory: {path}")
    cached = _cached_snapshot(source_or_repo, allow_patterns)
    if cached is not None:
        return cached
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(_download_hint(source_or_repo, allow_patterns, "HF_HUB_OFFLINE=1 is set"))
    try:
        return Path(snapshot_download(source_or_repo, allow_patterns=allow_patterns))
    except _HUB_ERRORS as exc:
        reason = f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise CheckpointError(_download_hint(source_or_repo, allow_patterns, reason)) from exc


def _cached_snapshot(repo_id: str, allow_patterns: list[str] | None) -> Path | None:
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True))
    except _HUB_ERRORS:
        return None  # not (fully) in the cache


def _download_hint(repo_id: str, allow_patterns: list[str] | None, reason: str) -> str:
    include = " ".join(f"--include '{p}'" for p in allow_patterns or [])
    target = f"./{repo_id.split('/')[-1]}"
    command = f"hf download {repo_id} {include} --local-dir {target}".replace("  ", " ")
    files = ", ".join(allow_patterns) if allow_patterns else "the whole repo"
    return (
        f"cannot get {files} of Hugging Face repo {repo_id} ({reason}) and it is not in the local cache "
        f"({constants.HF_HUB_CACHE}).\nDownload it on a machine with network access:\n  {command}\n"
        f"(older huggingface_hub: `huggingface-cli download` with the same arguments), then pass {target} "
        "as the checkpoint path."
    )


def resolve_gguf(variant_or_path: str) -> Path:
    """Return a local `.gguf` file for a path or a quantization variant name of the official GGUF repo.

    A variant such as `Q4_K_M` is looked up in the local cache of `Motif-Technologies/Motif-Video-2B-GGUF`,
    then (online) by listing the repo's files and downloading the one whose name carries the variant.
    """
    path = Path(variant_or_path).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists() or not _VARIANT.match(variant_or_path):
        if not path.is_file():
            raise CheckpointError(f"no such GGUF file: {path}")
        return path
    cached = _cached_snapshot(GGUF_REPO, [f"*{variant_or_path}*.gguf"])
    if cached is not None:
        found = _match_variant([p.name for p in cached.rglob("*.gguf")], variant_or_path)
        if len(found) == 1:
            return next(cached.rglob(found[0]))
    patterns = [f"*{variant_or_path}*.gguf"]
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(_download_hint(GGUF_REPO, patterns, "HF_HUB_OFFLINE=1 is set"))
    try:
        names = [n for n in HfApi().list_repo_files(GGUF_REPO) if n.endswith(".gguf")]
    except _HUB_ERRORS as exc:
        raise CheckpointError(_download_hint(GGUF_REPO, patterns, f"cannot list the repo: {exc!r}")) from exc
    return Path(hf_hub_download(GGUF_REPO, _pick_variant(names, variant_or_path)))


def _match_variant(names: list[str], variant: str) -> list[str]:
    # Whole-token match so that Q4_K does not pick Q4_K_M and q8_0 matches Q8_0.
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(variant)}(?![A-Za-z0-9_])", re.IGNORECASE)
    return sorted(n for n in names if pattern.search(Path(n).name))


def _pick_variant(names: list[str], variant: str) -> str:
    found = _match_variant(names, variant)
    if len(found) != 1:
        available = ", ".join(sorted(Path(n).name for n in names)) or "none"
        what = "no file" if not found else f"{len(found)} files ({', '.join(found)})"
        raise CheckpointError(f"{what} in {GGUF_REPO} match variant {variant!r}; available: {available}")
    return found[0]
