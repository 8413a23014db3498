"""bench/gpu_slot.sh rehearsed on the CPU (MOTIF_LITE_SLOT_DRY=1): a GPU slot lasts minutes, and a mistake in the
script found only there wastes it. Each run here is the script itself, with the GPU tests skipping."""

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent


def slot(out: Path, *args: str, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_slot.sh"), str(out), *args],
        env={**os.environ, "MOTIF_LITE_SLOT_DRY": "1", "PYTHON": python, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def packed(out: Path) -> set[str]:
    with tarfile.open(f"{out}.tar.gz") as tar:
        return {Path(name).name for name in tar.getnames()}


def test_a_failed_step_and_a_skipped_one_still_leave_every_record_in_the_tar(tmp_path):
    # norms runs its real pytest selection, each test made to fail at its set-up by a plugin, beside a test file that
    # cannot be imported (as the server's tests on a GPU machine without the server's packages); int8 finds too
    # little of the 60 s budget left once 30 s are kept back for stopping and packing.
    (tmp_path / "fail_every_test.py").write_text(
        "import pytest\n\n\n@pytest.hookimpl(tryfirst=True)\ndef pytest_runtest_setup(item):\n"
        "    raise RuntimeError('failed on purpose')\n"
    )
    out = tmp_path / "slot"
    (tmp_path / "test_needs_a_missing_package.py").write_text("import no_such_package_on_the_gpu_machine\n")
    addopts = f"-p fail_every_test {tmp_path / 'test_needs_a_missing_package.py'}"
    run = slot(out, "60", "norms", "int8", PYTEST_ADDOPTS=addopts, PYTHONPATH=str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "gpu_slot: dry run, no GPU" in (out / "env.log").read_text()
    assert "gpu_slot: norms exit 1" in run.stdout, run.stdout
    # The step's limit leaves the 30 s for stopping and packing: the whole run ends within its budget.
    limit = int(re.search(r"gpu_slot: norms, up to (\d+) s", run.stdout).group(1))
    assert 20 <= limit <= 60 - 30
    log = (out / "norms.log").read_text()
    assert "ERROR collecting" in log and "RuntimeError: failed on purpose" in log, log
    suite = ElementTree.parse(out / "norms.xml").getroot().find("testsuite")
    assert int(suite.get("errors")) == int(suite.get("tests")) > 0
    assert "| error |" in (out / "norms.md").read_text()
    assert "int8 skipped" in (out / "int8.log").read_text()
    names = {"env.log", "norms.log", "norms.xml", "norms.json", "norms.md", "int8.log"}
    assert names <= packed(out), packed(out)


def test_a_failed_machine_check_is_packed_too(tmp_path):
    # An interpreter without site-packages has no torch: the check fails before any step, and says why.
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    out = tmp_path / "slot"
    run = slot(out, "60", "norms", python=str(python))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "No module named 'torch'" in (out / "env.log").read_text()
    assert packed(out) == {"slot", "env.log"}


def test_a_misspelt_step_is_one_line_before_anything_runs(tmp_path):
    run = slot(tmp_path / "slot", "60", "core", "speed 480")
    assert run.returncode == 2
    assert run.stdout.strip().splitlines() == [
        "gpu_slot: no step 'speed 480'; the steps: core norms int8 speed480 profile suite speed720 planner floor onload"
    ]
    assert not (tmp_path / "slot").exists()
