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


def _source_files() -> list[Path]:
    return [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]


def _third_party_imports(path: Path) -> set[str]:
    """The top-level names of the third-party modules a file imports (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names}
    return {top for top in found if top not in sys.stdlib_module_names and top != "motif_lite"}


def _imports() -> dict[str, set[Path]]:
    """Third-party distributions -> the files that import them."""
    found: dict[str, set[Path]] = {}
    for path in _source_files():
        for top in _third_party_imports(path):
            found.setdefault(_normalize(DISTRIBUTIONS.get(top, top)), set()).add(path)
    return found


# Optional features: their extra, and the only modules that may import its packages.
EXTRAS = {"verify": ("motif_lite/verify/",), "server": ("motif_lite/server/",)}
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
    assert "diffusers" not in runtime  # the test oracle: only the motif_lite.verify package imports it
    undeclared = sorted(set(imports) - runtime)
    unused = sorted(runtime - set(imports))
    assert not undeclared, f"imported but not declared: {undeclared}"
    assert not unused, f"declared but never imported: {unused}"


# Standard-library modules that exist on Linux and macOS but not on Windows.
POSIX_ONLY = ("resource", "fcntl", "termios", "tty", "pty", "pwd", "grp", "syslog")
_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
import motif_lite, motif_lite.kernels, motif_lite.quantize

def import_every_module():
    for package in (motif_lite, motif_lite.kernels, motif_lite.quantize):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):  # those run the command line
                importlib.import_module(module.name)

# Once as is, so that the dependencies are loaded (they have their own Windows code), then ours alone again
# with the POSIX-only modules gone: `import name` now raises ImportError, as on Windows.
import_every_module()
ours = [name for name in sys.modules if name == "motif_lite" or name.startswith("motif_lite.")]
for name in ours + {posix_only!r}:
    sys.modules.pop(name, None)
for name in {posix_only!r}:
    sys.modules[name] = None
import motif_lite, motif_lite.kernels, motif_lite.quantize
import_every_module()
print("imported", len(ours), "modules")
"""


def test_every_module_imports_without_posix_only_modules():
    """Windows has no `resource` or `fcntl`: a top-level import of either stops `motif-lite` before it starts."""
    import subprocess

    code = _IMPORT_EVERY_MODULE.format(posix_only=list(POSIX_ONLY))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[1]) > 100, done.stdout  # every module, not a walk that found none


def test_peak_rss_is_unknown_without_the_resource_module(monkeypatch):
    from motif_lite.runtime.host_memory import peak_rss

    assert peak_rss() > 100 * 2**20  # Linux: KiB scaled to bytes (this process holds torch: well over 100 MiB)
    monkeypatch.setitem(sys.modules, "resource", None)
    assert peak_rss() is None


def test_no_module_imports_another_modules_private_name():
    """A name with a leading underscore is its module's own: one that another module imports is public in all but
    name (verify's file_settings imported settings' `_UNIPC_SETTINGS`), and a rename there breaks the importer."""
    imported = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {node.module}"
        for path in (ROOT / "motif_lite").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not imported, imported
