#!/usr/bin/env bash
# Wheels for `bash bench/gpu_check.sh --wheels DIR` on a GPU machine that cannot reach a package index: what a CUDA
# image with torch, triton, transformers and pytest usually lacks for the GPU check — the oracle (diffusers, at the
# version installed here, so the GPU and CI compare against the same reference), gguf, and sageattention 1.0.6 (the
# 8-bit attention benchmark's baseline). Pure-Python wheels without their dependencies (~7 MB).
#
#     bash bench/gpu_wheels.sh [DIR]        # default DIR: .whl (ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
DIFFUSERS=$(python -c "import diffusers; print(diffusers.__version__)")
GGUF=$(python -c "import importlib.metadata as m; print(m.version('gguf'))")
python -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    "diffusers==$DIFFUSERS" "gguf==$GGUF" "sageattention==1.0.6"
ls "$DIR"
