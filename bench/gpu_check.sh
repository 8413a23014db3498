#!/usr/bin/env bash
# The GPU check, one command on a CUDA machine: the GPU test suite (tests/ marked `cuda`: numbers checked against
# torch ops and the reference, no silent fallback, streaming, planner vs measured peaks) and the GPU benchmarks
# (bench/ marked `cuda`), in one pytest session with one report.
#
#     bash bench/gpu_check.sh [OUT_DIR] [--full] [--wheels DIR] [-- PYTEST_ARGS...]
#
# Writes OUT_DIR/report.json and OUT_DIR/report.md (default OUT_DIR: gpu-check/): the benchmark tables, then
# "Outcomes" with every test's result and measured values; the pytest log goes to OUT_DIR/pytest.log. Without
# --full the slow GPU benchmarks (the whole text-to-video at 720p, minutes each) are left out. --wheels DIR first
# installs this checkout and the wheels in DIR without network and without their dependencies (for a CUDA image
# that has torch and triton but lacks the oracle: `bash bench/gpu_wheels.sh DIR` fetches them elsewhere). Arguments
# after `--` go to pytest (e.g. `-- -k int8 -x`). The interpreter is $PYTHON, else python3 (the one that holds torch
# on CUDA images), else python. Exit status: pytest's (0 = every selected test passed).
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh

OUT="gpu-check"
MARKS="cuda and not slow"
WHEELS=""
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --full) MARKS="cuda" ;;
        --wheels) WHEELS="$2"; shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) OUT="$1" ;;
    esac
    shift
done
mkdir -p "$OUT"

gpu_env "$WHEELS" gpu_check || exit 2

"$PYTHON" -m pytest tests/ bench/ -m "$MARKS" -rA -p no:cacheprovider --continue-on-collection-errors \
    --bench-report "$OUT/report" "${PYTEST_ARGS[@]}" 2>&1 | tee "$OUT/pytest.log"
status=${PIPESTATUS[0]}
echo "gpu_check: exit $status; report in $OUT/report.md"
exit "$status"
