"""What Triton needs from the machine besides a GPU. At its first launch in a new cache, Triton compiles a small C
module (its launcher) with the system's C compiler against Python's headers; a machine without either (a slim
container image, Ubuntu's python3 without python3-dev) fails there, at the first step, after the minutes of
loading. `launcher_build_problem` says it before anything loads. Triton's own search is followed: the compiler
named by CC, else gcc, else clang; Python.h in the include folder of the interpreter's install scheme."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


def c_compiler() -> str | None:
    """The C compiler Triton would use: CC (taken as given, as Triton does), else gcc, else clang; None if none."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")


def python_headers() -> Path:
    """The folder where Triton looks for Python.h."""
    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":  # Debian's scheme for /usr/local: its headers lie under posix_prefix's folder
        scheme = "posix_prefix"
    return Path(sysconfig.get_paths(scheme=scheme)["include"])


def _custom_build() -> bool:
    """Whether Triton was told to build its modules another way (`triton.knobs.build.impl`, Triton 3.4 on)."""
    try:
        from triton import knobs
    except ImportError:
        return False
    return getattr(getattr(knobs, "build", None), "impl", None) is not None


def launcher_build_problem(platform: str = sys.platform) -> str | None:
    """Why Triton cannot build its kernel launcher on this machine (no C compiler, or no Python.h), with the
    packages that fix it, else None. On Windows the Triton build brings its own compiler: not checked there."""
    if platform == "win32" or _custom_build():
        return None
    lacking, packages, devel = [], [], []
    if c_compiler() is None:
        lacking.append("a C compiler (gcc or clang; or name one in CC)")
        packages.append("gcc")
        devel.append("gcc")
    headers = python_headers()
    if not (headers / "Python.h").is_file():
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        lacking.append(f"Python's C headers (no Python.h in {headers})")
        packages.append(f"{version}-dev")
        devel.append(f"{version}-devel")
    if not lacking:
        return None
    return (
        f"Triton compiles its kernel launcher at the first launch and needs {' and '.join(lacking)}: install "
        f"{'them' if len(lacking) > 1 else 'it'} (Debian, Ubuntu: sudo apt install {' '.join(packages)}; Fedora: "
        f"sudo dnf install {' '.join(devel)})"
    )


def windows_install_hint(error: BaseException) -> str | None:
    """On Windows, where to get Triton when `error` says it is not installed: PyPI's triton has no Windows builds
    (pip installs torch there without it), and the community's triton-windows package is the build ComfyUI's guides
    name; else None."""
    if sys.platform != "win32" or not isinstance(error, ModuleNotFoundError) or error.name != "triton":
        return None
    return (
        "PyPI's triton has no Windows builds: the community's triton-windows does (pip install triton-windows, the "
        "release its page pairs with your torch); without it the torch ops run, the same math, slower"
    )
