# Sourced by bench/gpu_check.sh and bench/gpu_slot.sh: the Python to run ($PYTHON, else python3, the one that holds
# torch on CUDA images, else python), and `gpu_env WHEELS_DIR` to install the wheels in WHEELS_DIR (if given) and
# this checkout without network or dependencies, then check that torch sees a GPU. Returns 2 when either fails.
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"

gpu_env() {
    local wheels="$1" name="$2"
    if [ -n "$wheels" ]; then
        "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation "$wheels"/*.whl -e . \
            || { echo "$name: installing from $wheels failed"; return 2; }
    fi
    "$PYTHON" - "$name" <<'PY' || return 2
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"{sys.argv[1]}: no CUDA device visible to torch; nothing to check")

# Every package motif-lite needs at run time, and the oracle, before any GPU minute is spent: the first run of
# 2026-12-04 lacked imageio-ffmpeg (the request's output check needs it) and lost every row of ours to it.
from importlib import metadata

from packaging.requirements import Requirement

try:
    needed = [Requirement(line) for line in metadata.requires("motif-lite") or []]
except metadata.PackageNotFoundError:
    sys.exit(f"{sys.argv[1]}: motif-lite is not installed here (pip install --no-deps -e .)")
needed = [r for r in needed if r.marker is None or r.marker.evaluate({"extra": ""})] + [Requirement("diffusers")]
missing = []
for requirement in needed:
    try:
        metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        missing.append(requirement.name)
if missing:
    sys.exit(f"{sys.argv[1]}: not installed: {', '.join(missing)} (bash bench/gpu_wheels.sh .whl carries them)")
print(f"{sys.argv[1]}: {torch.cuda.get_device_name()}, torch {torch.__version__}")
PY
}
