"""The `motif-lite` program's entry point: Ctrl-C while the command line is still being imported (the first moments
after Enter) gets the command's own "interrupted" line and exit status, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
# How subprocess sees a program that Ctrl-C ended: by the signal itself, as Python ends; a shell shows 130.
ENDED_BY_CTRL_C = -signal.SIGINT

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
    assert (done.returncode, done.stderr.strip()) == (ENDED_BY_CTRL_C, line), done.stderr


def test_ctrl_c_while_python_m_motif_lite_imports_is_one_line(tmp_path):
    run_as_main = (
        "import runpy\nsys.argv = ['motif_lite', 'check']\nrunpy.run_module('motif_lite', run_name='__main__')\n"
    )
    code = INTERRUPT_THE_IMPORT + run_as_main
    done = run_python(code, tmp_path)
    assert (done.returncode, done.stderr.strip()) == (ENDED_BY_CTRL_C, "interrupted"), done.stderr


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


# A command that Ctrl-C stops as it runs: the terminal signals its whole foreground process group, so a shell
# looping over commands gets the SIGINT too. `WHOM` is that group (`0`) or this process alone (`os.getpid()`).
CTRL_C_WHILE_IT_RUNS = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the test inherited
from motif_lite import cli
from motif_lite.cli import check

def pressed_ctrl_c(args):
    os.killpg(WHOM, signal.SIGINT) if WHOM == 0 else os.kill(WHOM, signal.SIGINT)
    time.sleep(60)

check.main = pressed_ctrl_c
sys.argv = ["motif-lite", "check"]
cli.entry()
"""


def run_bash(script: str, child: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`script` in bash, in a process group of its own with SIGINT at its default (a test run in the background
    inherits it ignored, and bash would then ignore the Ctrl-C itself); `$CHILD` runs `child` with Python."""
    (tmp_path / "child.py").write_text(child)
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK")}
    env["CHILD"] = f"{sys.executable} child.py"
    return subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="a shell's loop and process groups")
def test_ctrl_c_stops_a_shell_loop_of_runs_not_only_its_run(tmp_path):
    # docs/usage.md's loop over a prompt file: an exit with 130 told bash the run had handled the Ctrl-C, and the
    # loop went on with the next prompt (a Ctrl-C needed per line left). Ending by SIGINT, as Python does, stops it.
    loop = 'for n in 1 2 3; do echo "start $n"; $CHILD; echo "status $?"; done'
    done = run_bash(loop, CTRL_C_WHILE_IT_RUNS.replace("WHOM", "0"), tmp_path)
    assert done.stdout == "start 1\n" and done.returncode == -signal.SIGINT, (done.stdout, done.stderr)
    assert done.stderr.strip() == "interrupted"
    # What a shell shows of the run itself is still 130 (a Ctrl-C sent to the run alone leaves the shell going).
    done = run_bash('$CHILD; echo "status $?"', CTRL_C_WHILE_IT_RUNS.replace("WHOM", "os.getpid()"), tmp_path)
    assert done.stdout == "status 130\n", done.stderr
