"""What a request needs and cannot have, in one message with the commands that fetch it.

`MissingFiles` is the part of one Hub repo that is missing, and the `hf download` command for it;
`MissingFilesError` turns every missing piece of a request into one message: what is missing, the `hf download`
commands to fetch it on a connected machine, and the `motif-lite run` command to type afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import constants

from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import CheckpointError, both_spellings
from motif_lite.io.hub import (
    OFFLINE_SET,
    TRANSFORMERS_OFFLINE_SET,
    homeless_cache,
    offline_variables,
    stray_snapshots_note,
)
from motif_lite.shell_syntax import pattern_quoted, quoted, variable_unset


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
        if self.in_folder:  # `reason`, if any: why files that are listed there cannot be read
            missing = f"incomplete checkpoint {self.local_dir}: missing {', '.join(self.missing)}"
            return f"{missing}\n{self.reason}" if self.reason else missing
        return f"{self.repo}: {', '.join(self.missing)} ({self.reason})"

    def command(self) -> str:
        includes = [f"--include {quoted(p)}" for p in self.include]
        return " ".join(["hf download", self.repo, *includes, "--local-dir", quoted(self.folder())])

    def folder(self) -> str:
        """`local_dir` as an absolute path (a leading `~` expanded): the download may be typed in another terminal
        or on another machine, the folder copied here, and the run's command after it from any folder. A relative
        `./Motif-Video-2B` named the folder the failed run started in, and only from there. The current folder
        removed under the process: `local_dir` as it is, there being no absolute path to give."""
        try:
            return os.path.abspath(os.path.expanduser(self.local_dir))
        except FileNotFoundError:
            return self.local_dir


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
            out["gguf" if item.repo == GGUF_REPO else "model"] = item.folder()
        return out

    def default_run_command(self) -> str:
        """The command, and the Python call, that use the downloaded folders: the commands set `run_command` to the
        user's own command line, so this is what `load_pipeline` says (a notebook's user was
        told only of `motif-lite run`, which loads the weights again on each call)."""
        parts = ["motif-lite run"]
        folders = self.replacements
        arguments = [repr(folders["model"]) if "model" in folders else "..."]
        if "model" in folders:
            parts.append(f"-m {quoted(folders['model'])}")
        if "gguf" in folders:
            parts.append(f"--gguf {quoted(folders['gguf'])}")
            arguments.append(f"gguf={folders['gguf']!r}")
        arguments += ["..."] if "model" in folders else []
        return both_spellings(" ".join([*parts, '-p "..."']), f"load_pipeline({', '.join(arguments)})")

    def __str__(self) -> str:
        lines = list(self.problems)
        if self.missing:
            hub = [item for item in self.missing if not item.in_folder]
            lines += [item.describe() for item in self.missing if item.in_folder]
            if hub:
                lines.append(f"missing files, not in the Hugging Face cache ({constants.HF_HUB_CACHE}):")
                lines += [f"  {item.describe()}" for item in hub]
                for item in hub:  # the cache may hold the files in a snapshot that refs/main does not name
                    if (
                        stray := stray_snapshots_note(item.repo, "--gguf" if item.repo == GGUF_REPO else "-m")
                    ) is not None:
                        lines.append(f"Note: {stray}.")
                if (homeless := homeless_cache()) is not None:  # the weights may well be in a cache elsewhere
                    lines.append(f"Note: {homeless}.")
            offline = [item.reason for item in hub if item.reason in (OFFLINE_SET, TRANSFORMERS_OFFLINE_SET)]
            if offline:  # e.g. set by a notebook, on a connected machine
                # Every one that is set: unsetting one leaves the other turning the downloads off. The reason's
                # own where the environment no longer says (the error made before a change to it).
                names = offline_variables() or [offline[0].split("=", 1)[0]]
                unset = " and ".join(variable_unset(name) for name in names)
                lines.append(f"With a network here, {unset} and run again: they then download themselves.")
            lines.append("Download them (on a machine with network access if this one has none):")
            lines += [f"  {item.command()}" for item in self.missing]
            lines.append("(older huggingface_hub: `huggingface-cli download` takes the same arguments), then run:")
            lines.append(f"  {self.run_command or self.default_run_command()}")
        return "\n".join(lines)


def download_command(pattern: str, repo: str | None, folder: Path, again: bool = False) -> str:
    """The command that downloads a checkpoint's files `pattern` to where a run reads them: for a Hub `repo`, into
    its Hugging Face cache; for a local checkpoint `folder` (repo None), from the official repo into that folder.
    `again`: over a damaged copy, which huggingface_hub keeps in the cache unless told to download it anyway."""
    target = "" if repo else f" --local-dir {quoted(str(folder))}"
    force = " --force-download" if again else ""
    return f"hf download {repo or MOTIF_REPO} --include {pattern_quoted(pattern)}{target}{force}"
