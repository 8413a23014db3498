"""The docs stand on their own: no file cites notes outside the repository, README links resolve, and every
benchmarks section the README quotes ("...") is a heading of docs/benchmarks.md."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Names of notes that live outside the repository (spelled in pieces so that this file does not contain them).
OUTSIDE_NOTES = ["shared" + "/", "model" + "-facts", "style" + "-anchors", "field" + "-anchors"]


def tracked_files() -> list[Path]:
    """The repository's files: git's list in a clone, every file in an unpacked sdist (no .git; tests/test_packaging.py
    runs this file there), all of which are the release's."""
    if not (ROOT / ".git").exists():
        return sorted(path for path in ROOT.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
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


def section_names(path: Path) -> list[str]:
    """The headings of a page and the bold leads that open its paragraphs, list items and table rows: the names
    the docs quote as "Section"."""
    names, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            names.append(line.lstrip("#").strip())
        elif not fenced and (lead := re.match(r"\s*(?:[-|]\s*)?\*\*(.+?)\*\*", line)):
            names.append(lead.group(1))
    return [" ".join(name.split()) for name in names]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_cross_reference_resolves():
    # `docs/FILE.md, "Section"` (also across a line break, and several: `docs/FILE.md, "A", "B"`) must name a
    # heading or a bold paragraph lead of that page; `[text](docs/FILE.md#anchor)` must name a heading's anchor.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        where = page.relative_to(ROOT)
        for match in re.finditer(r"(docs/[\w-]+\.md|README\.md),?((?:\s+(?:and\s+)?\"[^\"]+\",?)+)", text):
            target = ROOT / match.group(1)
            if not target.exists():
                broken.append(f"{where}: {match.group(1)} does not exist")
                continue
            names = section_names(target)
            for quoted in re.findall(r'"([^"]+)"', match.group(2)):
                quoted = " ".join(quoted.split())
                if not any(name.startswith(quoted) for name in names):
                    broken.append(f'{where}: {match.group(1)}, "{quoted}"')
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, fragment = link.partition("#")
            target = (page.parent / file_part).resolve() if file_part else page
            if not target.exists():
                broken.append(f"{where}: link {link}")
            elif fragment and target.suffix == ".md":
                anchors = {
                    anchor(line.lstrip("#").strip()) for line in target.read_text().splitlines() if line.startswith("#")
                }
                if fragment not in anchors:
                    broken.append(f"{where}: link {link}")
    assert not broken, broken


# Long pages a reader looks things up in get a contents list; these two are records that other pages quote by section
# ("docs/benchmarks.md, "Sizes"", "docs/testing.md, "Versions"") instead.
PAGES_WITHOUT_CONTENTS = {"docs/benchmarks.md": "figures by area", "docs/testing.md": "one bold lead per topic"}
LONG_PAGE_LINES = 500


def headings(text: str) -> list[tuple[int, str]]:
    """The (level, title) of each heading outside code blocks, in page order."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"(#+) (.+)", line)):
            found.append((len(heading.group(1)), heading.group(2).strip()))
    return found


def test_long_pages_have_a_current_contents_list():
    # A page over LONG_PAGE_LINES lines opens with a "**Contents**" paragraph or list linking every `##` section in
    # page order (test_every_cross_reference_resolves checks that each link lands).
    problems = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        name, text = str(page.relative_to(ROOT)), page.read_text()
        if name in PAGES_WITHOUT_CONTENTS or len(text.splitlines()) <= LONG_PAGE_LINES:
            continue
        if "\n**Contents**" not in text:
            problems.append(f"{name}: no **Contents** list")
            continue
        contents = text.split("\n**Contents**", 1)[1].split("\n\n#", 1)[0].split("\n\n```", 1)[0]
        linked = re.findall(r"\]\(#([^)]+)\)", contents)
        sections = [anchor(title) for level, title in headings(text) if level == 2]
        if [section for section in linked if section in sections] != sections:
            problems.append(f"{name}: its contents list {linked} is not its sections {sections}")
    assert not problems, "\n".join(problems)


DOC_WIDTH = 115


def unfenced_lines() -> Iterator[tuple[str, int, str]]:
    """(page, line number, line) of README.md and docs/*.md, the lines of fenced code blocks and their fences left
    out."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        fenced = False
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                yield str(page.relative_to(ROOT)), number, line


def test_prose_wraps_at_the_docs_width():
    # Prose lines of README.md and docs/*.md fit DOC_WIDTH columns; code blocks, tables and headings (which cannot
    # wrap) may be longer.
    long_lines = [
        f"{page}:{number}: {len(line)} columns"
        for page, number, line in unfenced_lines()
        if len(line) > DOC_WIDTH and not (line.startswith(("    ", "#")) or line.lstrip().startswith("|"))
    ]
    advice = f"wrap these prose lines at {DOC_WIDTH} columns (DOC_WIDTH), as the rest of their paragraph"
    assert not long_lines, advice + ":\n" + "\n".join(long_lines)


# A page cited by a section name, in code (`docs/usage.md, 'Going faster'`, `docs/memory.md ("The planner's
# formulas")`, across string pieces) or in the docs (`README, "What you need"`).
CITATION = re.compile(r"(docs/[\w-]+\.md|README(?:\.md)?)(?:,\s*\(?|\s*\()\\?([\"'])(.+?)\\?\2")


def cited_sections(text: str) -> list[tuple[str, str]]:
    """(page, section) for each citation in `text`, with adjacent string literals joined first."""
    joined = re.sub(r"[\"']\s*\n\s*f?[\"']", "", text)
    found = []
    for page, _, name in CITATION.findall(joined):
        found.append(("README.md" if page.startswith("README") else page, " ".join(name.split())))
    return found


def test_sections_cited_in_messages_and_docs_exist():
    # The messages a user reads name a page and a section to read next; a renamed section must not leave them
    # pointing nowhere. test_every_cross_reference_resolves covers `docs/FILE.md, "Section"` in the docs.
    sources = [path for package in ("motif_lite", "quantize", "kernels") for path in (ROOT / package).rglob("*.py")]
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken, checked = [], 0
    for path in [*sources, *pages]:
        for page, name in cited_sections(path.read_text()):
            checked += 1
            target = ROOT / page
            if not target.exists() or not any(section.startswith(name) for section in section_names(target)):
                broken.append(f'{path.relative_to(ROOT)}: {page}, "{name}"')
    assert checked >= 20, checked
    assert not broken, "\n".join(broken)


def test_no_code_span_breaks_a_path_across_lines():
    # A line break inside a code span renders as a space: `models/text_encoders/` + newline + `x.safetensors` showed
    # a path with a blank in it. A prose line must not end inside a code span right after a "/".
    broken = [
        f"{page}:{number}"
        for page, number, line in unfenced_lines()
        if line.count("`") % 2 == 1 and line.rstrip().endswith("/")
    ]
    assert not broken, broken


def test_every_source_and_test_file_the_docs_name_exists():
    # A path under motif_lite/, kernels/, quantize/ or tests/ that README.md or docs/*.md gives (`tests/test_x.py`,
    # `motif_lite/runtime/cost.py`) is a file of the repository; kernels/ and quantize/ are also named as
    # motif_lite.kernels and motif_lite.quantize, so `motif_lite/kernels/x.py` is kernels/x.py.
    missing = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    numbered = [(page, n, line) for page in pages for n, line in enumerate(page.read_text().splitlines(), start=1)]
    for page, number, line in numbered:
        for path in re.findall(r"(?<![\w./-])((?:motif_lite|kernels|quantize|tests)/[\w/]+\.(?:py|json|md))", line):
            real = re.sub(r"^motif_lite/(kernels|quantize)/", r"\1/", path)
            if not (ROOT / real).exists():
                missing.append(f"{page.relative_to(ROOT)}:{number}: {path}")
    assert not missing, "\n".join(missing)
