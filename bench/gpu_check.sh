#!/usr/bin/env bash
# The GPU check, one command on a CUDA machine: the GPU test suite (tests/ marked `cuda`: numbers checked against
# torch ops and the reference, no silent fallback, streaming, planner vs measured peaks) and the GPU benchmarks
# (bench/ marked `cuda`), in one pytest session with one report.
#
#     bash bench/gpu_check.sh [OUT_DIR] [--full]
#
# Writes OUT_DIR/report.json and OUT_DIR/report.md (default OUT_DIR: gpu-check/): the benchmark tables, then
# "Outcomes" with every test's result and measured values; the pytest log goes to OUT_DIR/pytest.log. Without
# --full the slow GPU benchmarks (the whole text-to-video at 720p, minutes each) are left out. Exit status:
# pytest's (0 = every selected test passed).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="gpu-check"
MARKS="cuda and not slow"
for arg in "$@"; do
    case "$arg" in
        --full) MARKS="cuda" ;;
        *) OUT="$arg" ;;
    esac
done
mkdir -p "$OUT"

python - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; nothing to check")
print(f"gpu_check: {torch.cuda.get_device_name()}, torch {torch.__version__}")
PY
[ $? -eq 0 ] || exit 2

python -m pytest tests/ bench/ -m "$MARKS" -rA -p no:cacheprovider --bench-report "$OUT/report" 2>&1 \
    | tee "$OUT/pytest.log"
status=${PIPESTATUS[0]}
echo "gpu_check: exit $status; report in $OUT/report.md"
exit "$status"
