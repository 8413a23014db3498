#!/usr/bin/env bash
# Wheels for `bash bench/gpu_check.sh --wheels DIR` on a GPU machine that cannot reach a package index: what a CUDA
# image with torch, triton, transformers and pytest usually lacks for the GPU check — the oracle (diffusers, at the
# version installed here, so the GPU and CI compare against the same reference), gguf, imageio-ffmpeg (the ffmpeg
# binary a video output needs; 0.5.1, our lower bound's release, whose x86_64 wheel is 27 MB where 0.8's is 68 MB,
# more than some GPU machines take along) and sageattention 1.0.6 (the 8-bit attention benchmark's baseline).
# Wheels without their dependencies (~33 MB): the image has every one they declare (diffusers' importlib_metadata
# aside, which it needs only below Python 3.8), and the rest of motif-lite's own (tokenizers among them, installed
# with transformers); bench/gpu_env.sh checks all of them there before the first test. The old wheels in DIR go
# first: two versions of one package stop the whole installation.
#
#     bash bench/gpu_wheels.sh [DIR]        # default DIR: .whl (ignored by git)
#
# The versions are read with $PYTHON, else this checkout's .venv/bin/python, else python3; the wheels are those for
# the GPU machine's Python, $GPU_PYTHON_VERSION (default 3.12, that of the CUDA images lent so far).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3)}"
version_here() {
    "$PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null \
        || { echo "gpu_wheels: $PYTHON has no $1 (set PYTHON)" >&2; return 2; }
}
DIFFUSERS=$(version_here diffusers) || exit 2
GGUF=$(version_here gguf) || exit 2
mkdir -p "$DIR"
rm -f "$DIR"/*.whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    --python-version "${GPU_PYTHON_VERSION:-3.12}" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    "diffusers==$DIFFUSERS" "gguf==$GGUF" "imageio-ffmpeg==0.5.1" "sageattention==1.0.6"
ls "$DIR"
