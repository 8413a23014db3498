"""The docs stand on their own: no file cites notes outside the repository, README links resolve, and every
benchmarks section the README quotes ("...") is a heading of docs/benchmarks.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Names of notes that live outside the repository (spelled in pieces so that this file does not contain them).
OUTSIDE_NOTES = ["shared" + "/", "model" + "-facts", "style" + "-anchors", "field" + "-anchors"]


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.splitlines() if (ROOT / name).is_file()]


def test_no_file_cites_notes_outside_the_repository():
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE_NOTES if name in text]
    assert not offenders, offenders


def test_readme_links_and_benchmark_sections_exist():
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
    headings = {line.lstrip("#").strip() for line in (ROOT / "docs/benchmarks.md").read_text().splitlines()}
    # README quotes a section as ("Name") or "Name" next to docs/benchmarks.md; each must start a heading.
    quoted = re.findall(r'\("([^"]+)"\)|docs/benchmarks\.md, "([^"]+)"', readme)
    names = {a or b for a, b in quoted}
    assert names, "the README quotes no benchmarks section"
    missing = [name for name in names if not any(h.startswith(name) for h in headings)]
    assert not missing, missing
