"""The declared dependencies are exactly what the code imports: every third-party import of the installed packages
is declared, every declared runtime dependency is imported, and an optional extra's packages (diffusers, the test
oracle, for `motif-lite verify`; FastAPI for `motif-lite serve`) are imported only by the modules of that feature."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("motif_lite", "kernels", "quantize")  # what `pip install` ships (kernels/ and quantize/ as motif_lite.*)
DISTRIBUTIONS = {"PIL": "pillow", "imageio_ffmpeg": "imageio-ffmpeg"}  # import name -> distribution, where they differ


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalize(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def _imports() -> dict[str, set[Path]]:
    """Third-party top-level import names -> the files that import them (lazy imports inside functions too)."""
    found: dict[str, set[Path]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "motif_lite":
                        found.setdefault(_normalize(DISTRIBUTIONS.get(top, top)), set()).add(path)
    return found


# Optional features: their extra, and the only modules that may import its packages.
EXTRAS = {"verify": ("motif_lite/verify.py",), "server": ("motif_lite/server/",)}
# Imported through a declared package that depends on it and exposes its API (fastapi is built on starlette).
COMES_WITH = {"starlette": "fastapi"}


def test_declared_dependencies_match_the_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(r) for r in project["dependencies"]}
    imports = _imports()
    for extra, homes in EXTRAS.items():
        declared = {_requirement_name(r) for r in project["optional-dependencies"][extra]}
        for name in sorted(set(imports) - runtime):
            if name in declared or COMES_WITH.get(name) in declared:
                files = {str(path.relative_to(ROOT)) for path in imports.pop(name)}
                outside = sorted(f for f in files if not f.startswith(homes))
                assert not outside, f"{name} ({extra} extra) imported outside {homes}: {outside}"
    assert "diffusers" not in runtime  # the test oracle: only motif-lite verify imports it
    undeclared = sorted(set(imports) - runtime)
    unused = sorted(runtime - set(imports))
    assert not undeclared, f"imported but not declared: {undeclared}"
    assert not unused, f"declared but never imported: {unused}"
