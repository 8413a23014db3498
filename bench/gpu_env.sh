# Sourced by bench/gpu_check.sh and bench/gpu_slot.sh: the Python to run ($PYTHON, else python3, the one that holds
# torch on CUDA images, else python), and `gpu_env WHEELS_DIR NAME` to install the wheels in WHEELS_DIR (if given) and
# this checkout without network or dependencies, then check that torch sees a GPU and that the packages the GPU run
# needs are installed at versions pyproject.toml allows. Returns 2 when any of it fails.
# MOTIF_LITE_SLOT_DRY=1 is the CPU rehearsal of a GPU run: nothing is installed and no GPU is needed (the GPU tests
# then skip); the packages are checked all the same.
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"

gpu_env() {
    local wheels="$1" name="$2"
    if [ -n "$wheels" ] && [ "${MOTIF_LITE_SLOT_DRY:-}" != 1 ]; then
        "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation "$wheels"/*.whl -e . \
            || { echo "$name: installing from $wheels failed"; return 2; }
    fi
    "$PYTHON" - "$name" <<'PY' || return 2
import os
import sys

import torch

name = sys.argv[1]
dry = os.environ.get("MOTIF_LITE_SLOT_DRY") == "1"
if not dry and not torch.cuda.is_available():
    sys.exit(f"{name}: no CUDA device visible to torch; nothing to check")

# Every package motif-lite needs at run time, and the oracle, at versions pyproject.toml allows, before any GPU minute
# is spent: the first run of 2026-12-04 lacked imageio-ffmpeg (the request's output check needs it) and lost every
# row of ours to it. The rest of the test extra that GPU tests import is only named when missing or outside its
# range (it costs a few tests, not the run); the server's packages, ruff and selenium serve CPU tests alone.
from importlib import metadata

from packaging.requirements import Requirement

REQUIRED_FOR_TESTS = {"diffusers"}
NAMED_FOR_TESTS = {"pytest-benchmark", "accelerate", "peft"}


def problems(requirements: list[Requirement]) -> list[str]:
    found = []
    for requirement in requirements:
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            found.append(f"{requirement.name} is not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement.name} {version} is outside {requirement.specifier}")
    return found


try:
    declared = [Requirement(line) for line in metadata.requires("motif-lite") or []]
except metadata.PackageNotFoundError:
    sys.exit(f"{name}: motif-lite is not installed here (pip install --no-deps -e .)")
runtime = [r for r in declared if r.marker is None or r.marker.evaluate({"extra": ""})]
tests = [r for r in declared if r.marker is not None and r.marker.evaluate({"extra": "test"})]
required = problems(runtime + [r for r in tests if r.name in REQUIRED_FOR_TESTS])
if required:
    sys.exit(f"{name}: {'; '.join(required)} (bash bench/gpu_wheels.sh .whl carries what the GPU image lacks)")
for problem in problems([r for r in tests if r.name in NAMED_FOR_TESTS]):
    print(f"{name}: {problem}: some GPU tests will fail")
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "dry run, no GPU"
print(f"{name}: {device}, torch {torch.__version__}")
PY
}
