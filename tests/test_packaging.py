"""A real install, as a distribution packager makes one: the sdist, the wheel built from it, and that wheel
installed into a fresh environment and run from outside the repository.

Every other test and CI install the project editable (the source folders themselves), which hides a package or a
data file left out of pyproject.toml: an editable install imports it from the folder, a wheel lacks it and fails at
the first import or page load. The builds run without build isolation (no network): the setuptools of this
environment builds them, so the test extra requires one that reads pyproject.toml's license expression."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import NamedTuple

import pytest

from motif_lite.version import VERSION

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
# The source folders and where their files install (pyproject.toml's package-dir).
SOURCES = {"motif_lite": "motif_lite", "kernels": "motif_lite/kernels", "quantize": "motif_lite/quantize"}
# What the sdist must hold beside the sources: the tests and what they read (conda-forge runs them from the sdist).
SDIST_EXTRAS = ("tests", "docs", "bench", "README.md", "LICENSE", "pyproject.toml")
# What the builds read. They run on a copy: a build in the checkout leaves build/ behind, and the next build packs
# whatever an earlier one left in build/lib (a module since deleted included).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", *SOURCES, "tests", "docs", "bench")
BUILD_SECONDS = 300


def _copy_of_the_sources(target: Path) -> Path:
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".benchmarks")
    target.mkdir(parents=True)
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=caches)
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target / name)
    return target


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    return _finished(command, cwd, env).stdout


def _finished(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=BUILD_SECONDS, env=env)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def _build_sdist(source: Path, out: Path) -> Path:
    """The sdist through the build backend pyproject.toml names (its PEP 517 hook, what `python -m build --sdist`
    calls; `build` itself is not a dependency)."""
    backend = tomllib.loads((source / "pyproject.toml").read_text())["build-system"]["build-backend"]
    code = f"import sys, {backend} as backend; print(backend.build_sdist(sys.argv[1]))"
    name = _run([sys.executable, "-c", code, str(out)], cwd=source).strip().splitlines()[-1]
    return out / name


def _build_wheel(source: Path, out: Path) -> tuple[Path, str]:
    """The wheel, and what the build backend said (pip -v passes it on, on stderr)."""
    out.mkdir(parents=True, exist_ok=True)
    done = _finished(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", str(source), "-w", str(out)],
        cwd=out,
    )
    (wheel,) = out.glob("*.whl")
    return wheel, done.stderr


def _tree_files(root: Path, folder: str) -> set[str]:
    """Every file under root/folder (caches aside), as a path relative to root."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def missing_from_wheel(wheel: Path, root: Path) -> list[str]:
    """The files of the source folders under root (modules and the data files the code reads, such as the server's
    page) that the wheel lacks, by their installed path."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        installed + "/" + name.removeprefix(folder + "/")
        for folder, installed in SOURCES.items()
        for name in _tree_files(root, folder)
    }
    return sorted(wanted - names)


class Builds(NamedTuple):
    sdist: Path
    unpacked: Path  # the sdist unpacked, as a packager's build and test run see it
    wheel: Path
    wheel_log: str  # setuptools' warnings among it


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Builds:
    """The sdist of a copy of the checkout, and the wheel built from that sdist (what conda-forge and `pip install
    motif-lite` from an sdist do)."""
    work = tmp_path_factory.mktemp("packaging")
    sdist = _build_sdist(_copy_of_the_sources(work / "checkout"), work)
    with tarfile.open(sdist) as archive:
        # The "data" filter (Python 3.11.4 on) refuses links and paths outside the folder.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(work / "unpacked", **safe)
    (unpacked,) = (work / "unpacked").iterdir()
    return Builds(sdist, unpacked, *_build_wheel(unpacked, work / "wheel"))


def _wheel_metadata(wheel: Path) -> tuple[object, str]:
    with zipfile.ZipFile(wheel) as archive:
        info = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        scripts = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
        return Parser().parsestr(archive.read(info).decode()), scripts


def test_the_wheel_holds_every_module_and_data_file(built):
    wheel = built.wheel
    assert missing_from_wheel(wheel, ROOT) == []
    # One import namespace: nothing installs as a top-level kernels or quantize (or tests) package.
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert top_level == {"motif_lite", f"motif_lite-{VERSION}.dist-info"}


def test_the_wheel_builds_without_setuptools_warning_of_an_ignored_package(built):
    """A data folder Python could import (the server's static/) once drew setuptools' "Package would be ignored"
    warning, which reads to a packager as a package missing from the wheel."""
    assert "would be ignored" not in built.wheel_log
    assert "running bdist_wheel" in built.wheel_log  # the backend's own output, where that warning would be


def test_the_sdist_holds_the_sources_the_tests_and_the_readme(built):
    with tarfile.open(built.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = set()
    for name in (*SOURCES, *SDIST_EXTRAS):
        wanted |= _tree_files(ROOT, name) if (ROOT / name).is_dir() else {name}
    assert sorted(wanted - names) == []


def test_the_tests_that_list_the_repositorys_files_run_from_the_sdist(built):
    """An sdist is no git clone: the docs test that reads every file of the repository reads the unpacked tree."""
    plugins = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    command = [sys.executable, "-m", "pytest", "-q", *plugins, "tests/test_docs.py"]
    done = subprocess.run(command, cwd=built.unpacked, capture_output=True, text=True, timeout=BUILD_SECONDS)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_wheel_metadata_is_pyprojects(built):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    metadata, entry_points = _wheel_metadata(built.wheel)
    assert metadata["Name"] == project["name"]
    assert metadata["Version"] == VERSION  # motif_lite/version.py, the one place the version is written
    assert metadata["License-Expression"] == project["license"]
    assert metadata.get_all("License-File") == ["LICENSE"]  # the license's text travels with the wheel
    with zipfile.ZipFile(built.wheel) as archive:
        assert archive.read(f"motif_lite-{VERSION}.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert metadata["Requires-Python"] == project["requires-python"]
    assert sorted(metadata.get_all("Provides-Extra")) == sorted(project["optional-dependencies"])
    assert f"motif-lite = {project['scripts']['motif-lite']}" in entry_points.splitlines()


def _site_packages() -> list[str]:
    """The folders this environment's dependencies import from (Debian's Python names them dist-packages)."""
    return [path for path in sys.path if path.endswith(("site-packages", "dist-packages"))]


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """The wheel in a fresh environment that sees this one's packages for the dependencies but not the project (a
    .pth line adds a folder without running its .pth files, so the editable install's import hook stays out): its
    Python."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=BUILD_SECONDS)
    python = venv / "bin" / "python"
    own = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv).strip()
    Path(own, "dependencies.pth").write_text("\n".join(_site_packages()) + "\n")
    # pip from this environment, running under the new one: --ignore-installed, or it finds the editable install.
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(built.wheel)], cwd=venv)
    return python


def _run_outside(command: list[str], tmp_path: Path) -> str:
    """`command`'s output, run in a folder outside the repository with no PYTHONPATH (nothing but the install)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return _run(command, cwd=tmp_path, env=env).strip()


def test_the_installed_wheel_starts_from_outside_the_repository(built, installed, tmp_path):
    """Both ways to start the program give the wheel's version, from the installed copy."""
    said = f"motif-lite {_wheel_metadata(built.wheel)[0]['Version']}"
    assert _run_outside([str(installed), "-m", "motif_lite", "--version"], tmp_path) == said
    assert _run_outside([str(installed.parent / "motif-lite"), "--version"], tmp_path) == said
    own = _run_outside([str(installed), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path)
    where = _run_outside([str(installed), "-c", "import motif_lite; print(motif_lite.__file__)"], tmp_path)
    assert where == f"{own}/motif_lite/__init__.py"


IMPORT_EVERY_MODULE = """
import importlib, pkgutil, motif_lite, motif_lite.kernels, motif_lite.quantize
for package in (motif_lite, motif_lite.kernels, motif_lite.quantize):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):  # those run the command line
            importlib.import_module(module.name)
            print(module.name)
"""


@pytest.mark.slow  # torch and transformers imported in a fresh process: 25-30 s on a busy 2-core machine
def test_every_module_of_the_installed_wheel_imports(installed, tmp_path):
    imported = _run_outside([str(installed), "-c", IMPORT_EVERY_MODULE], tmp_path).splitlines()
    assert "motif_lite.pipeline.generation" in imported
    assert len(imported) > 100, imported  # every module, not a walk that found none


def test_a_package_or_data_file_left_out_of_pyproject_is_caught(tmp_path):
    """The negative control: the same check on a wheel whose pyproject.toml leaves out a package and the server's
    page names both."""
    source = _copy_of_the_sources(tmp_path / "checkout")
    pyproject = (source / "pyproject.toml").read_text()
    for entry in ('    "motif_lite.pipeline",\n', '"motif_lite.server" = ["static/*"]\n'):
        assert entry in pyproject
        pyproject = pyproject.replace(entry, "")
    (source / "pyproject.toml").write_text(pyproject)
    missing = missing_from_wheel(_build_wheel(source, tmp_path / "wheel")[0], source)
    assert "motif_lite/pipeline/__init__.py" in missing
    assert "motif_lite/server/static/index.html" in missing
