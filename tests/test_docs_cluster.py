"""docs/usage.md "On a cluster (Slurm)": its job-array script is valid bash that runs each task's prompt under its
own names and resumes the latents file a stopped run of it leaves (motif-lite replaced by a stand-in that prints
its arguments), its `exec` and `--signal=B:...` go together, and the section names the variable of every cache a
run writes (`cache_folders`, which `motif-lite check` lists)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from motif_lite.io.cache_folders import cache_folders
from motif_lite.io.latents import latents_path

USAGE = Path(__file__).resolve().parent.parent / "docs" / "usage.md"


def cluster_section() -> str:
    text = USAGE.read_text()
    return text.split("## On a cluster (Slurm)\n", 1)[1].split("\n## ", 1)[0]


def array_script() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", cluster_section(), re.DOTALL)
    return next(block for block in blocks if "#SBATCH --array" in block)


def test_the_section_names_the_variable_of_every_cache_a_run_writes():
    section = cluster_section()
    for cache in cache_folders({}):
        for variable in cache.variables.split(" or "):
            assert f"`{variable}" in section or f" {variable}=" in section, (cache.name, variable)


def test_the_schedulers_warning_reaches_motif_lite():
    # B: signals the batch shell alone: every motif-lite of the script must replace that shell (exec).
    script = array_script()
    assert re.search(r"#SBATCH .*--signal=B:USR1@\d+", script)
    calls = [line.strip() for line in script.splitlines() if "motif-lite " in line and not line.startswith("#")]
    assert calls and all(line.startswith("exec motif-lite ") for line in calls), calls


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_array_script_runs_each_tasks_prompt_and_resumes_its_own_file(tmp_path):
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    stand_in = bin_folder / "motif-lite"
    stand_in.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    stand_in.chmod(0o755)
    (tmp_path / "prompts.txt").write_text("a red fox runs through snow\na heron lands on a misty lake\n")
    script = tmp_path / "job.sh"
    script.write_text(array_script())
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    environ = {**os.environ, "PATH": f"{bin_folder}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "2"}

    def run() -> list[str]:
        done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=environ, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    first = run()
    assert first[0] == "run"
    given = dict(zip(first[1::2], first[2::2], strict=False))
    assert given["-p"] == "a heron lands on a misty lake" and given["-s"] == "2", first
    # A stopped run leaves its latents file beside its output, named as the program names it: the next job resumes it.
    latents_path(tmp_path / given["-o"]).write_bytes(b"")
    assert run() == ["run", "--resume", latents_path(given["-o"]).name]
