#!/usr/bin/env bash
# What a short GPU slot should measure, most wanted first, within a time budget: one command for a machine lent
# for minutes (bench/gpu_check.sh --full wants far longer).
#
#     bash bench/gpu_slot.sh [OUT_DIR] [BUDGET_S] [STEP ...]      # defaults: gpu-slot/, 540 s, every step
#
# Steps, in order (each under `timeout`, skipped when less than its minimum is left; pytest is stopped with
# SIGINT at its share, and the report keeps every row measured until then):
#   core      the GPU suite's own file, the 8-bit runtime and the no-sync step (tests/test_cuda.py: the
#             transformer with Triton ops, every kernel compiled, streaming, the planner's peaks; no
#             fallback; tests/test_launches.py: a step under set_sync_debug_mode('error'))       60-300 s
#   norms     the two norm kernels against torch, timed (rms_norm_rope rewritten 2026-12-01)      20-60 s
#   int8      8-bit attention vs SDPA and sageattention, and the 720p forwards                   60-200 s
#   speed480  s/step at 832x480x49: diffusers, ours, with int8 attention, compiled, fp8 weights   90-220 s
#             (3 steps)
#   profile   where one 480p step's time goes: kernel time by kind, TFLOP/s, idle time           45-100 s
#   suite     the rest of the GPU suite (the kernel tests compiled, --compile on CUDA)            60 s-rest
#   speed720  s/step at 1280x736x121: ours, ours with int8 attention (2 steps)                   150 s-rest
# Only when named (not in the default list):
#   planner   the whole 720p T2V per stage against the plan, 6 GiB plan and all resident        150-300 s
#   floor     the same in the 3.3 GiB plan: everything streamed, head groups (the lowest floor)   150-300 s
#   onload    run --quantize: the transformer quantized as it loads, K-quants searched on the GPU 120-300 s
# The whole script ends within BUDGET_S: the wheels' installation counts, and each step's limit leaves GRACE_S for
# pytest's 20 s to stop after SIGINT and for the packing. A test file that cannot be imported there (a package the
# GPU machine lacks) is an error of its step, not the end of it (--continue-on-collection-errors).
# OUT_DIR/env.log records the machine check; each step writes OUT_DIR/STEP.log (a skipped step: one line why) and
# OUT_DIR/STEP.xml (JUnit: every test's outcome and recorded values), the benchmarks also their report
# OUT_DIR/STEP.md / .json; all of it is packed into OUT_DIR.tar.gz at the end, also when a step failed or ran out
# of time. Run `bash bench/gpu_wheels.sh .whl` first where the GPU machine has no network: the wheels in .whl/ (if
# present) are installed before the first step.
# MOTIF_LITE_SLOT_DRY=1 rehearses it all on a CPU (tests/test_gpu_slot.py): nothing installed, no GPU needed, every
# step's pytest run with the GPU tests skipping.
# The interpreter is $PYTHON, else python3, else python. Exit status: 0 if every step that ran passed, 2 if the
# machine check failed (no step ran).
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh
OUT="${1:-gpu-slot}"
OUT="${OUT%/}"  # OUT_DIR/ would put the tar inside the folder it packs
BUDGET="${2:-540}"
GRACE=30
shift $(( $# < 2 ? $# : 2 ))
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(core norms int8 speed480 profile suite speed720)
KNOWN="core norms int8 speed480 profile suite speed720 planner floor onload"
for name in "${STEPS[@]}"; do
    [[ " $KNOWN " == *" $name "* ]] || { echo "gpu_slot: no step '$name'; the steps: $KNOWN"; exit 2; }
done
mkdir -p "$OUT"
START=$(date +%s)
STATUS=0

pack() {
    tar czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && echo "gpu_slot: everything in $OUT.tar.gz"
}

WHEELS=""
compgen -G ".whl/*.whl" >/dev/null && WHEELS=.whl
gpu_env "$WHEELS" gpu_slot 2>&1 | tee "$OUT/env.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { pack; exit 2; }

# step NAME MIN_S MAX_S [VAR=VALUE ...] -- PYTEST_ARGS...
step() {
    local name=$1 min=$2 max=$3 left
    shift 3
    local env=()
    while [ "$1" != "--" ]; do env+=("$1"); shift; done
    shift
    [[ " ${STEPS[*]} " == *" $name "* ]] || return 0
    left=$(( BUDGET - ($(date +%s) - START) - GRACE ))
    if [ "$left" -lt "$min" ]; then
        echo "gpu_slot: $name skipped: ${left} s left (after ${GRACE} s kept back), it needs ${min} s" \
            | tee "$OUT/$name.log"
        return 0
    fi
    local limit=$(( left < max ? left : max ))
    echo "gpu_slot: $name, up to ${limit} s"
    env "${env[@]}" PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=20 "$limit" \
        "$PYTHON" -m pytest -rA -p no:cacheprovider --continue-on-collection-errors -o junit_family=xunit1 \
        --junitxml "$OUT/$name.xml" "$@" 2>&1 | tee "$OUT/$name.log"
    local code=${PIPESTATUS[0]}
    echo "gpu_slot: $name exit $code after $(( $(date +%s) - START )) s"
    [ "$code" -eq 0 ] || STATUS=1
}

CORE=(tests/test_cuda.py tests/test_attention_int8_runtime.py tests/test_launches.py)
step core 60 300 -- "${CORE[@]}" -m "cuda and not slow"
step norms 20 60 -- bench/bench_kernels.py -m cuda -k "norm" -s --bench-report "$OUT/norms"
step int8 60 200 -- bench/bench_attention_int8.py -m cuda -s --bench-report "$OUT/int8"
step speed480 90 220 MOTIF_BENCH_SIZES=832x480x49 MOTIF_BENCH_STEPS=3 \
    MOTIF_BENCH_ROWS=diffusers,ours,ours-int8,ours-compile,ours-fp8 \
    -- bench/bench_speed.py -m cuda -s --bench-report "$OUT/speed480"
step profile 45 100 -- bench/bench_profile.py -m cuda -s --bench-report "$OUT/profile"
step suite 60 100000 -- tests/ "${CORE[@]/#/--ignore=}" -m "cuda and not slow"
step speed720 150 100000 MOTIF_BENCH_SIZES=1280x736x121 MOTIF_BENCH_STEPS=2 MOTIF_BENCH_ROWS=ours,ours-int8 \
    -- bench/bench_speed.py -m cuda -s --bench-report "$OUT/speed720"
step planner 150 300 -- bench/bench_planner.py -m cuda -s --bench-report "$OUT/planner"
step floor 150 300 PLANNER_BENCH_VRAM=3.3 -- bench/bench_planner.py -m cuda -k "whole_t2v and planned" -s --bench-report "$OUT/floor"
step onload 120 300 -- bench/bench_quantize_on_load.py -m cuda -s --bench-report "$OUT/onload"
pack
exit "$STATUS"
