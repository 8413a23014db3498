#!/usr/bin/env bash
# Wheels for `bash bench/gpu_check.sh --wheels DIR` on a GPU machine that cannot reach a package index: what a CUDA
# image with torch, triton, transformers and pytest usually lacks for the GPU check — the oracle (diffusers, at the
# version installed here, so the GPU and CI compare against the same reference), gguf, imageio-ffmpeg (the ffmpeg
# binary a video output needs; 0.5.1, our lower bound's release, whose x86_64 wheel is 27 MB where 0.8's is 68 MB,
# more than some GPU machines take along) and sageattention 1.0.6 (the 8-bit attention benchmark's baseline).
# Wheels without their dependencies (~34 MB).
#
#     bash bench/gpu_wheels.sh [DIR]        # default DIR: .whl (ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
DIFFUSERS=$(python -c "import diffusers; print(diffusers.__version__)")
GGUF=$(python -c "import importlib.metadata as m; print(m.version('gguf'))")
python -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    "diffusers==$DIFFUSERS" "gguf==$GGUF" "imageio-ffmpeg==0.5.1" "sageattention==1.0.6"
ls "$DIR"
