"""What a check found: findings at three levels, and where the checked checkpoint's files come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.io.linked import FLAGS
from motif_lite.io.missing_report import download_command

if TYPE_CHECKING:
    from motif_lite.runtime.planner import Plan


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warning" or "problem"
    subject: str  # a file (relative to the checkpoint) or a part of the machine
    message: str  # what was found; a problem ends with "; fix: ..."

    def line(self) -> str:
        return f"{self.level:<8} {self.subject}: {self.message}"


@dataclass
class Checkup:
    """Everything a check found, in the order it looked; `plan` is the default request's memory plan."""

    findings: list[Finding] = field(default_factory=list)
    plan: Plan | None = None

    def ok(self, subject: str, message: str) -> None:
        self.findings.append(Finding("ok", subject, message))

    def warning(self, subject: str, message: str) -> None:
        self.findings.append(Finding("warning", subject, message))

    def problem(self, subject: str, message: str, fix: str) -> None:
        self.findings.append(Finding("problem", subject, f"{message}; fix: {fix}"))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [f.line() for f in self.findings]


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint folder on disk and how to fetch a file it lacks."""

    root: Path
    repo: str | None = None  # the Hub repo when `root` is its snapshot in the Hugging Face cache
    # official name -> the user's own file that `root` links under that name (`io.linked`)
    linked: Mapping[str, Path] = field(default_factory=dict)
    # where a missing file is downloaded to when `root` is such a folder of links: the checkpoint folder it links
    # (its own files, rebuilt with each run, are not where a download belongs); None: `root` itself
    downloads_to: Path | None = None
    # The config files as `check` read them (path under `root` -> JSON object; None: absent), each read once: the
    # memory plan takes them rather than reading the files again (a file edited in between would differ)
    configs_read: dict[str, dict | None] = field(default_factory=dict)

    def fetch(self, pattern: str, again: bool = False) -> str:
        """The fix for missing (or, `again`, damaged) files: the command that downloads them to where they belong;
        for a file of the user's linked under that name, a word that it is theirs."""
        users = [str(file) for name, file in self.linked.items() if fnmatchcase(name, pattern)]
        if users:
            return f"this is your file {', '.join(users)}: replace it with the official {pattern}"
        command = download_command(pattern, self.repo, self.downloads_to or self.root, again)
        if again:
            return f"download it again: {command}"
        # Beside your own weight files (ComfyUI's, say), a component's missing weights may be at hand too: its flag
        weights = self.downloads_to is not None and ".safetensors" in pattern  # not its config.json
        flag = FLAGS.get(pattern.split("/", 1)[0]) if weights else None
        return f"download it: {command}" + (f"; or give your own file: {flag} FILE" if flag else "")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
