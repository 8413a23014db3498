"""The `motif-lite` program's entry point: Ctrl-C while the command line is still being imported (the first moments
after Enter) gets the command's own "interrupted" line and exit status, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]

# Ctrl-C lands in the middle of the command line's import: the import of one of its subcommand modules raises it.
INTERRUPT_THE_IMPORT = """\
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "motif_lite.cli.run":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
"""


def console_script() -> tuple[str, str]:
    """The module and function pyproject.toml's `motif-lite` console script calls."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["motif-lite"]
    module, function = target.split(":")
    return module, function


def run_python(code: str, tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env={**env, **environment}
    )


@pytest.mark.parametrize(
    ("environment", "line"), [({}, "interrupted"), ({"WORLD_SIZE": "2", "RANK": "1"}, "[rank 1] interrupted")]
)
def test_ctrl_c_while_the_console_script_imports_is_one_line(tmp_path, environment, line):
    # What pip's generated launcher does: import the function, then call it.
    module, function = console_script()
    launcher = (
        f"{INTERRUPT_THE_IMPORT}from {module} import {function}\nsys.argv = ['motif-lite', 'check']\n{function}()\n"
    )
    done = run_python(launcher, tmp_path, **environment)
    assert (done.returncode, done.stderr.strip()) == (130, line), done.stderr


def test_ctrl_c_while_python_m_motif_lite_imports_is_one_line(tmp_path):
    run_as_main = (
        "import runpy\nsys.argv = ['motif_lite', 'check']\nrunpy.run_module('motif_lite', run_name='__main__')\n"
    )
    code = INTERRUPT_THE_IMPORT + run_as_main
    done = run_python(code, tmp_path)
    assert (done.returncode, done.stderr.strip()) == (130, "interrupted"), done.stderr


def test_importing_the_console_script_imports_nothing_of_the_command_line(tmp_path):
    # Whatever the launcher imports before calling is a moment in which Ctrl-C is a traceback: keep it to the package.
    module, _ = console_script()
    code = f"import sys, {module}\nprint(sorted(name for name in sys.modules if name.startswith('motif_lite')))\n"
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == str(sorted({"motif_lite", "motif_lite.version", module})), done.stderr


def test_the_console_script_runs_the_command(tmp_path):
    module, function = console_script()
    code = f"import sys\nfrom {module} import {function}\nsys.argv = ['motif-lite', '--version']\n{function}()\n"
    done = run_python(code, tmp_path)
    assert (done.returncode, done.stdout.split()[0]) == (0, "motif-lite"), done.stderr
